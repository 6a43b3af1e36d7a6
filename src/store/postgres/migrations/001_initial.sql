-- queuectl schema for PostgreSQL, migration 1: the same tables, columns and
-- meaning as SQLite's migrations 1-3 (so `queuectl copy` maps every column
-- 1:1), plus attempts.output_tail. Times are bigint milliseconds since the
-- Unix epoch (UTC), always the server's clock (queuectl_now_ms()).

-- Which application owns this schema and at which version.
CREATE TABLE queuectl_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO queuectl_meta (key, value) VALUES ('application', 'queuectl'), ('schema_version', '0');

-- The one clock of the queue: the server's now() (the transaction's start)
-- in epoch milliseconds. Tests pin it per session with
-- SET queuectl.pinned_now_ms = ...; RESET leaves '' behind, hence NULLIF.
CREATE FUNCTION queuectl_now_ms() RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT COALESCE(NULLIF(current_setting('queuectl.pinned_now_ms', true), '')::bigint,
                    floor(extract(epoch FROM now()) * 1000)::bigint)
$$;

CREATE TABLE jobs (
    seq              bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- enqueue order
    id               text    NOT NULL UNIQUE,
    command          text    NOT NULL CHECK (command <> ''),
    state            text    NOT NULL CHECK (state IN ('pending', 'processing', 'completed', 'failed', 'dead', 'cancelled')),
    priority         bigint  NOT NULL DEFAULT 0,
    run_at           bigint  NOT NULL,             -- due time while pending/failed
    max_retries      bigint  NOT NULL CHECK (max_retries >= 0),
    timeout_seconds  bigint  NOT NULL CHECK (timeout_seconds >= 0),
    env              text,                         -- JSON object of strings, kept as written
    cwd              text,
    attempts         bigint  NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- runs started, ever
    failures         bigint  NOT NULL DEFAULT 0 CHECK (failures >= 0),  -- failed runs counted against max_retries
    created_at       bigint  NOT NULL,
    updated_at       bigint  NOT NULL,
    finished_at      bigint,
    worker           text,
    lease_token      bigint,
    lease_expires_at bigint,
    cancel_requested boolean NOT NULL DEFAULT false,
    last_error       text,
    env_file         text,
    -- A lease exists exactly while a job is processing.
    CHECK ((state = 'processing') = (worker IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
    -- A finish time exists exactly in the terminal states.
    CHECK ((state IN ('completed', 'dead', 'cancelled')) = (finished_at IS NOT NULL))
);

-- The claim: due jobs by priority, then due time, then enqueue order.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, seq) WHERE state IN ('pending', 'failed');
-- When the next job falls due, for an idle worker's sleep.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('pending', 'failed');
-- Leases to rescue.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'processing';
-- Jobs a worker holds (status, a restarted worker's rescue).
CREATE INDEX jobs_worker ON jobs (worker) WHERE state = 'processing';
-- list --state, and the counts for status (an index-only scan).
CREATE INDEX jobs_state ON jobs (state, seq);
-- Retention and "finished in the last hour".
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    job_seq          bigint  NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    number           bigint  NOT NULL CHECK (number >= 1),
    worker           text    NOT NULL,
    started_at       bigint  NOT NULL,
    finished_at      bigint,
    outcome          text    CHECK (outcome IN ('succeeded', 'failed', 'timed_out', 'cancelled', 'lease_expired', 'interrupted')),
    exit_code        integer,
    signal           integer,
    error            text,
    output           text    NOT NULL CHECK (output IN ('file', 'journal')),
    host             text,                         -- where it ran; leftovers are only killed there
    cgroup           text,                         -- its own cgroup, killed whole by a rescue
    output_truncated boolean NOT NULL DEFAULT false,
    output_tail      text,                         -- the last few KiB of its output
    PRIMARY KEY (job_seq, number),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
);

CREATE INDEX attempts_finished ON attempts (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE workers (
    name         text    PRIMARY KEY,
    pid          bigint  NOT NULL,
    host         text    NOT NULL,
    started_at   bigint  NOT NULL,
    heartbeat_at bigint  NOT NULL,
    status       text    NOT NULL
);
