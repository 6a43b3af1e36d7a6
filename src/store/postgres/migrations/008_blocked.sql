-- Migration 8: blocked jobs (pending, waiting for dependencies) per queue
-- for `queue list` and the dashboard, read from their own small index (the
-- claim's indexes leave them out, so otherwise every pending job is read).
-- Its predicate is the query's, word for word (src/store/postgres/queues.rs).
CREATE INDEX jobs_blocked ON jobs (queue) WHERE state = 'pending' AND deps_left > 0;
