-- Migration 7, as SQLite's migration 10: a queue's jobs newest first, for
-- `list --queue` and the dashboard's search by queue. Finished jobs are in
-- no other queue index. Written at enqueue (and by `edit --queue`) only:
-- a claim or finish changes no indexed column of it (HOT updates stay
-- possible as far as this index goes).
CREATE INDEX jobs_queue ON jobs (queue, seq);
