-- Migration 5: workflows, as SQLite's migration 8. Named queues with limits,
-- dependencies between jobs, unique keys and recurring schedules.

-- The queue a job belongs to; per-queue limits live in `queues`.
ALTER TABLE jobs ADD COLUMN queue text NOT NULL DEFAULT 'default';
-- Dependencies not yet completed. Above 0 only while the job waits (or after
-- a dependency's end cancelled it), so blocked jobs stay out of the claim's
-- indexes below and cost a claim nothing.
ALTER TABLE jobs ADD COLUMN deps_left bigint NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD CONSTRAINT jobs_deps_left_check
    CHECK (deps_left >= 0 AND (deps_left = 0 OR state IN ('pending', 'cancelled')));
-- Edges pointing to this job (an upper bound): 0 lets a finish skip propagation.
ALTER TABLE jobs ADD COLUMN dependents bigint NOT NULL DEFAULT 0 CHECK (dependents >= 0);
-- The dependency whose end cancelled this job: restarting it revives this one.
ALTER TABLE jobs ADD COLUMN cancelled_by bigint;
-- At most one unfinished job per key (jobs_unique).
ALTER TABLE jobs ADD COLUMN unique_key text;
-- The schedule that enqueued this job.
ALTER TABLE jobs ADD COLUMN schedule text;

-- The same roles as before, with blocked jobs left out.
DROP INDEX jobs_claim;
DROP INDEX jobs_due;
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND deps_left = 0;
-- Workers restricted to some queues read each queue in claim order.
CREATE INDEX jobs_claim_queue ON jobs (queue, priority DESC, run_at, seq)
    WHERE state IN ('pending', 'failed') AND deps_left = 0;
-- The next due time per queue, for an idle worker's sleep.
CREATE INDEX jobs_due ON jobs (queue, run_at)
    WHERE state IN ('pending', 'failed') AND deps_left = 0;
CREATE UNIQUE INDEX jobs_unique ON jobs (unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('pending', 'processing', 'failed');
CREATE INDEX jobs_schedule ON jobs (schedule, seq) WHERE schedule IS NOT NULL;
CREATE INDEX jobs_cancelled_by ON jobs (cancelled_by) WHERE cancelled_by IS NOT NULL;

-- job_seq waits for dep_seq to complete.
CREATE TABLE job_deps (
    job_seq bigint NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    dep_seq bigint NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    PRIMARY KEY (job_seq, dep_seq),
    CHECK (job_seq <> dep_seq)
);
CREATE INDEX job_deps_dep ON job_deps (dep_seq, job_seq);

-- Settings of named queues. No row: unlimited and running. A limited
-- queue's row is also the lock its claimers take (ARCHITECTURE.md).
CREATE TABLE queues (
    name       text PRIMARY KEY,
    parallel   bigint CHECK (parallel IS NULL OR parallel >= 1),
    paused     boolean NOT NULL DEFAULT false,
    updated_at bigint NOT NULL
);

-- Recurring schedules. `job` is the validated job JSON, env included: its
-- values are never printed. `next_elapse_at` is the compare-and-set column of
-- the workers' fallback (driver 'workers'); systemd keeps its own timers.
CREATE TABLE schedules (
    name                text    PRIMARY KEY,
    on_calendar         text    NOT NULL,
    time_zone           text    NOT NULL,
    job                 text    NOT NULL,
    overlap             text    NOT NULL CHECK (overlap IN ('skip', 'queue', 'replace')),
    persistent          boolean NOT NULL DEFAULT false,
    randomized_delay_ms bigint  NOT NULL DEFAULT 0 CHECK (randomized_delay_ms >= 0),
    driver              text    NOT NULL CHECK (driver IN ('systemd', 'workers')),
    host                text,
    managed             boolean NOT NULL DEFAULT false,
    next_elapse_at      bigint,
    last_job_id         text,
    last_fired_at       bigint,
    created_at          bigint  NOT NULL,
    updated_at          bigint  NOT NULL,
    CHECK ((driver = 'workers') = (next_elapse_at IS NOT NULL))
);
