-- queuectl schema, migration 1: the initial tables. Times are milliseconds since the Unix epoch (UTC).
-- CHECKs spell out value lists as OR chains: SQLite compiles `x IN (a, b, c)`
-- (more than two constants) into a temporary b-tree built on every execution
-- of every statement that writes the row, which was ~40% of the user-space
-- instructions of a claim + finish cycle. The meaning is the same.

CREATE TABLE jobs (
    seq              INTEGER PRIMARY KEY,          -- enqueue order
    id               TEXT    NOT NULL UNIQUE,
    command          TEXT    NOT NULL CHECK (command <> ''),
    state            TEXT    NOT NULL CHECK (state = 'pending' OR state = 'processing' OR state = 'completed' OR state = 'failed' OR state = 'dead' OR state = 'cancelled'),
    priority         INTEGER NOT NULL DEFAULT 0,
    run_at           INTEGER NOT NULL,             -- due time while pending/failed
    max_retries      INTEGER NOT NULL CHECK (max_retries >= 0),
    timeout_seconds  INTEGER NOT NULL CHECK (timeout_seconds >= 0),
    env              TEXT,                         -- JSON object of strings
    cwd              TEXT,
    attempts         INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),  -- runs started, ever
    failures         INTEGER NOT NULL DEFAULT 0 CHECK (failures >= 0),  -- failed runs counted against max_retries
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    finished_at      INTEGER,
    worker           TEXT,
    lease_token      INTEGER,
    lease_expires_at INTEGER,
    cancel_requested INTEGER NOT NULL DEFAULT 0 CHECK (cancel_requested IN (0, 1)),
    last_error       TEXT,
    -- A lease exists exactly while a job is processing.
    CHECK ((state = 'processing') = (worker IS NOT NULL AND lease_token IS NOT NULL AND lease_expires_at IS NOT NULL)),
    -- A finish time exists exactly in the terminal states.
    CHECK ((state = 'completed' OR state = 'dead' OR state = 'cancelled') = (finished_at IS NOT NULL))
);

-- The claim: due jobs by priority, then due time, then enqueue order.
CREATE INDEX jobs_claim ON jobs (priority DESC, run_at, seq) WHERE state IN ('pending', 'failed');
-- When the next job falls due, for an idle worker's sleep.
CREATE INDEX jobs_due ON jobs (run_at) WHERE state IN ('pending', 'failed');
-- Leases to rescue.
CREATE INDEX jobs_lease ON jobs (lease_expires_at) WHERE state = 'processing';
-- list --state.
CREATE INDEX jobs_state ON jobs (state, seq);
-- Retention and "finished in the last hour".
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE finished_at IS NOT NULL;

CREATE TABLE attempts (
    job_seq     INTEGER NOT NULL REFERENCES jobs (seq) ON DELETE CASCADE,
    number      INTEGER NOT NULL CHECK (number >= 1),
    worker      TEXT    NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    outcome     TEXT CHECK (outcome = 'succeeded' OR outcome = 'failed' OR outcome = 'timed_out' OR outcome = 'cancelled' OR outcome = 'lease_expired' OR outcome = 'interrupted'),
    exit_code   INTEGER,
    signal      INTEGER,
    error       TEXT,
    output      TEXT NOT NULL CHECK (output IN ('file', 'journal')),
    PRIMARY KEY (job_seq, number),
    CHECK ((outcome IS NULL) = (finished_at IS NULL))
) WITHOUT ROWID;

CREATE INDEX attempts_finished ON attempts (finished_at) WHERE finished_at IS NOT NULL;

-- Counts by state, kept by triggers so `status` costs the same at any size.
CREATE TABLE state_counts (
    state TEXT PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO state_counts (state, n) VALUES
    ('pending', 0), ('processing', 0), ('completed', 0), ('failed', 0), ('dead', 0), ('cancelled', 0);

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state ON jobs WHEN OLD.state <> NEW.state BEGIN
    UPDATE state_counts SET n = n - 1 WHERE state = OLD.state;
    UPDATE state_counts SET n = n + 1 WHERE state = NEW.state;
END;

CREATE TABLE workers (
    name         TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    host         TEXT    NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL,
    status       TEXT    NOT NULL
) WITHOUT ROWID;
