-- Migration 9: the figures of the dashboard and /metrics, kept as jobs and
-- attempts change (in the same transaction), so reading them costs the same
-- at any queue size and a purge never lowers the cumulative ones.
-- Histogram columns b00..b13 count observations at most
-- HISTOGRAM_BOUNDS_SECONDS[i] (src/store/dashboard.rs): 10 ms, 50 ms, 100 ms,
-- 250 ms, 500 ms, 1 s, 2.5 s, 5 s, 10 s, 30 s, 1 min, 5 min, 15 min, 1 h.

-- Jobs per queue and state; replaces state_counts (per state = the sum over
-- queues), so a claim or a finish still updates two counter rows, not four.
DROP TRIGGER jobs_count_insert;
DROP TRIGGER jobs_count_delete;
DROP TRIGGER jobs_count_update;
DROP TABLE state_counts;

CREATE TABLE queue_counts (
    queue TEXT    NOT NULL,
    state TEXT    NOT NULL,
    n     INTEGER NOT NULL,
    PRIMARY KEY (queue, state)
) WITHOUT ROWID;
INSERT INTO queue_counts (queue, state, n) SELECT queue, state, COUNT(*) FROM jobs GROUP BY queue, state;

CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs BEGIN
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
END;
CREATE TRIGGER jobs_count_update AFTER UPDATE OF state, queue ON jobs
    WHEN OLD.state <> NEW.state OR OLD.queue <> NEW.queue BEGIN
    UPDATE queue_counts SET n = n - 1 WHERE queue = OLD.queue AND state = OLD.state;
    INSERT INTO queue_counts (queue, state, n) VALUES (NEW.queue, NEW.state, 1)
        ON CONFLICT (queue, state) DO UPDATE SET n = n + 1;
END;

-- Histograms per kind, queue and outcome: run times of ended attempts
-- ('duration', per outcome, so their `observations` are the attempts per
-- outcome) and waits of started ones ('wait', outcome ''): from the job
-- being due (its run_at when claimed) to the attempt's start.
CREATE TABLE histograms (
    kind         TEXT    NOT NULL CHECK (kind = 'duration' OR kind = 'wait'),
    queue        TEXT    NOT NULL,
    outcome      TEXT    NOT NULL,
    observations INTEGER NOT NULL,
    sum_ms       INTEGER NOT NULL,
    b00 INTEGER NOT NULL, b01 INTEGER NOT NULL, b02 INTEGER NOT NULL, b03 INTEGER NOT NULL,
    b04 INTEGER NOT NULL, b05 INTEGER NOT NULL, b06 INTEGER NOT NULL, b07 INTEGER NOT NULL,
    b08 INTEGER NOT NULL, b09 INTEGER NOT NULL, b10 INTEGER NOT NULL, b11 INTEGER NOT NULL,
    b12 INTEGER NOT NULL, b13 INTEGER NOT NULL,
    PRIMARY KEY (kind, queue, outcome)
) WITHOUT ROWID;

-- The last two hours of attempts that ran to an end (succeeded, failed,
-- timed out) per minute of their end, class ('s' succeeded, 'f' failed or
-- timed out) and run time rounded up to two significant digits (ms): the
-- overview's hour chart and its percentiles read at most a few thousand rows.
CREATE TABLE attempt_minutes (
    minute      INTEGER NOT NULL,  -- finished_at / 60000
    class       TEXT    NOT NULL CHECK (class = 's' OR class = 'f'),
    duration_ms INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    PRIMARY KEY (minute, class, duration_ms)
) WITHOUT ROWID;

-- The triggers write the counter tables themselves, never through a view
-- with an INSTEAD OF trigger: each nested trigger program costs a claim or a
-- finish about a microsecond (half of the counting's CPU), measured by
-- `queuectl-bench --scenario web`. Bucket columns: see the top of this file.
-- So the histogram upsert is written twice (wait, duration): a shared view
-- would bring the nested program back. Change both together.

-- A claim's attempt: the job's run_at is still its due time.
CREATE TRIGGER attempts_start AFTER INSERT ON attempts WHEN NEW.outcome IS NULL BEGIN
    INSERT INTO histograms (kind, queue, outcome, observations, sum_ms,
        b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13)
    SELECT 'wait', queue, '', 1, d,
        d <= 10, d <= 50, d <= 100, d <= 250, d <= 500, d <= 1000, d <= 2500,
        d <= 5000, d <= 10000, d <= 30000, d <= 60000, d <= 300000, d <= 900000, d <= 3600000
    FROM (SELECT queue, max(NEW.started_at - run_at, 0) AS d FROM jobs WHERE seq = NEW.job_seq)
    WHERE true
    ON CONFLICT (kind, queue, outcome) DO UPDATE SET
        observations = observations + 1, sum_ms = sum_ms + excluded.sum_ms,
        b00 = b00 + excluded.b00, b01 = b01 + excluded.b01, b02 = b02 + excluded.b02,
        b03 = b03 + excluded.b03, b04 = b04 + excluded.b04, b05 = b05 + excluded.b05,
        b06 = b06 + excluded.b06, b07 = b07 + excluded.b07, b08 = b08 + excluded.b08,
        b09 = b09 + excluded.b09, b10 = b10 + excluded.b10, b11 = b11 + excluded.b11,
        b12 = b12 + excluded.b12, b13 = b13 + excluded.b13;
END;

-- Every ended attempt passes here once: a finish or a rescue sets its
-- outcome; an attempt inserted ended (an import) and the backfill below are
-- made to set it too, so the rule lives in one place.
CREATE TRIGGER attempts_end AFTER UPDATE OF outcome ON attempts
    WHEN OLD.outcome IS NULL AND NEW.outcome IS NOT NULL BEGIN
    INSERT INTO histograms (kind, queue, outcome, observations, sum_ms,
        b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13)
    SELECT 'duration', queue, NEW.outcome, 1, d,
        d <= 10, d <= 50, d <= 100, d <= 250, d <= 500, d <= 1000, d <= 2500,
        d <= 5000, d <= 10000, d <= 30000, d <= 60000, d <= 300000, d <= 900000, d <= 3600000
    FROM (SELECT queue, max(NEW.finished_at - NEW.started_at, 0) AS d
          FROM jobs WHERE seq = NEW.job_seq)
    WHERE true
    ON CONFLICT (kind, queue, outcome) DO UPDATE SET
        observations = observations + 1, sum_ms = sum_ms + excluded.sum_ms,
        b00 = b00 + excluded.b00, b01 = b01 + excluded.b01, b02 = b02 + excluded.b02,
        b03 = b03 + excluded.b03, b04 = b04 + excluded.b04, b05 = b05 + excluded.b05,
        b06 = b06 + excluded.b06, b07 = b07 + excluded.b07, b08 = b08 + excluded.b08,
        b09 = b09 + excluded.b09, b10 = b10 + excluded.b10, b11 = b11 + excluded.b11,
        b12 = b12 + excluded.b12, b13 = b13 + excluded.b13;
    -- Rounded up (never down), so `rounded <= bound` iff `d <= bound`.
    INSERT INTO attempt_minutes (minute, class, duration_ms, attempts)
    SELECT NEW.finished_at / 60000,
        CASE WHEN NEW.outcome = 'succeeded' THEN 's' ELSE 'f' END,
        CASE WHEN d < 100 THEN d ELSE (d + p - 1) / p * p END, 1
    FROM (SELECT d, CAST(substr('1000000000000000000', 1, length(d) - 1) AS INTEGER) AS p
          FROM (SELECT max(NEW.finished_at - NEW.started_at, 0) AS d))
    WHERE NEW.outcome = 'succeeded' OR NEW.outcome = 'failed' OR NEW.outcome = 'timed_out'
    ON CONFLICT (minute, class, duration_ms) DO UPDATE SET attempts = attempts + 1;
    DELETE FROM attempt_minutes WHERE minute < NEW.finished_at / 60000 - 120;
END;

-- An attempt inserted ended (an import): unset its end and set it again,
-- which passes attempts_end (another trigger, so it fires from this one).
CREATE TRIGGER attempts_insert_ended AFTER INSERT ON attempts
    WHEN NEW.outcome IS NOT NULL BEGIN
    UPDATE attempts SET outcome = NULL, finished_at = NULL
        WHERE job_seq = NEW.job_seq AND number = NEW.number;
    UPDATE attempts SET outcome = NEW.outcome, finished_at = NEW.finished_at
        WHERE job_seq = NEW.job_seq AND number = NEW.number;
END;

-- The history present now, the same way. Waits are not backfilled: the due
-- time of a past attempt was never recorded (a retry moves run_at), so the
-- wait histogram starts at this migration.
CREATE TEMP TABLE ended AS
    SELECT job_seq, number, outcome, finished_at FROM attempts WHERE outcome IS NOT NULL;
UPDATE attempts SET outcome = NULL, finished_at = NULL WHERE outcome IS NOT NULL;
UPDATE attempts SET (outcome, finished_at) = (e.outcome, e.finished_at)
    FROM ended e WHERE e.job_seq = attempts.job_seq AND e.number = attempts.number;
DROP TABLE ended;
