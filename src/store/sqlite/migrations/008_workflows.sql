-- Migration 8: workflows. Named queues with limits, dependencies between
-- jobs, unique keys and recurring schedules (ARCHITECTURE.md, "Workflows").

-- The queue a job belongs to; per-queue limits live in `queues`.
ALTER TABLE jobs ADD COLUMN queue TEXT NOT NULL DEFAULT 'default';
-- Dependencies not yet completed. Above 0 only while the job waits (or after
-- a dependency's end cancelled it), so blocked jobs stay out of the claim's
-- indexes below and cost a claim nothing.
ALTER TABLE jobs ADD COLUMN deps_left INTEGER NOT NULL DEFAULT 0
    CHECK (deps_left >= 0 AND (deps_left = 0 OR state = 'pending' OR state = 'cancelled'));
-- Edges pointing to this job (an upper bound): 0 lets a finish skip propagation.
ALTER TABLE jobs ADD COLUMN dependents INTEGER NOT NULL DEFAULT 0 CHECK (dependents >= 0);
-- The dependency whose end cancelled this job: restarting it revives this one.
ALTER TABLE jobs ADD COLUMN cancelled_by INTEGER;
-- At most one unfinished job per key (jobs_unique).
ALTER TABLE jobs ADD COLUMN unique_key TEXT;
-- The schedule that enqueued this job.
ALTER TABLE jobs ADD COLUMN schedule TEXT;

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
    WHERE unique_key IS NOT NULL AND (state = 'pending' OR state = 'processing' OR state = 'failed');
CREATE INDEX jobs_schedule ON jobs (schedule, seq) WHERE schedule IS NOT NULL;
CREATE INDEX jobs_cancelled_by ON jobs (cancelled_by) WHERE cancelled_by IS NOT NULL;

-- job_seq waits for dep_seq to complete.
CREATE TABLE job_deps (
    job_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    dep_seq INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    PRIMARY KEY (job_seq, dep_seq),
    CHECK (job_seq <> dep_seq)
) WITHOUT ROWID;
CREATE INDEX job_deps_dep ON job_deps (dep_seq, job_seq);

-- Settings of named queues. No row: unlimited and running.
CREATE TABLE queues (
    name       TEXT PRIMARY KEY,
    parallel   INTEGER CHECK (parallel IS NULL OR parallel >= 1),
    paused     INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Recurring schedules. `job` is the validated job JSON, env included: its
-- values are never printed. `next_elapse_at` is the compare-and-set column of
-- the workers' fallback (driver 'workers'); systemd keeps its own timers.
CREATE TABLE schedules (
    name                TEXT PRIMARY KEY,
    on_calendar         TEXT    NOT NULL,
    time_zone           TEXT    NOT NULL,
    job                 TEXT    NOT NULL,
    overlap             TEXT    NOT NULL CHECK (overlap = 'skip' OR overlap = 'queue' OR overlap = 'replace'),
    persistent          INTEGER NOT NULL DEFAULT 0 CHECK (persistent IN (0, 1)),
    randomized_delay_ms INTEGER NOT NULL DEFAULT 0 CHECK (randomized_delay_ms >= 0),
    driver              TEXT    NOT NULL CHECK (driver = 'systemd' OR driver = 'workers'),
    host                TEXT,
    managed             INTEGER NOT NULL DEFAULT 0 CHECK (managed IN (0, 1)),
    next_elapse_at      INTEGER,
    last_job_id         TEXT,
    last_fired_at       INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    CHECK ((driver = 'workers') = (next_elapse_at IS NOT NULL))
) WITHOUT ROWID;
