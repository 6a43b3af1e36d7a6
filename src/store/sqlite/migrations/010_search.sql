-- Migration 10: a queue's jobs newest first, for `list --queue` and the
-- dashboard's search by queue. Finished jobs are in no other queue index
-- (jobs_claim_queue and jobs_due hold only waiting ones). Written once per
-- job at enqueue (and by `edit --queue`), never by a claim or a finish.
CREATE INDEX jobs_queue ON jobs (queue, seq);
