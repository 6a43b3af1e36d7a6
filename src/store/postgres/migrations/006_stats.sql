-- Migration 6: the figures of the dashboard and /metrics, as SQLite's
-- migration 9, kept without a hot row: every finishing worker on every host
-- would queue behind one counter row. Counter rows are shards: a writer
-- updates a row of its key that no other transaction holds (FOR UPDATE SKIP
-- LOCKED) or adds one, so it never waits; readers sum the shards.
-- Histogram columns b00..b13 count observations at most
-- HISTOGRAM_BOUNDS_SECONDS[i] (src/store/dashboard.rs): 10 ms, 50 ms, 100 ms,
-- 250 ms, 500 ms, 1 s, 2.5 s, 5 s, 10 s, 30 s, 1 min, 5 min, 15 min, 1 h.

-- Jobs per queue and state: an index-only GROUP BY (as `status` counts by
-- jobs_state), no counter a claim or finish would lock.
CREATE INDEX jobs_queue_state ON jobs (queue, state);

-- Histograms per kind, queue and outcome: run times of ended attempts
-- ('duration', per outcome, so their `observations` are the attempts per
-- outcome) and waits of started ones ('wait', outcome ''): from the job
-- being due (its run_at when claimed) to the attempt's start.
CREATE TABLE histograms (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind         text   NOT NULL CHECK (kind IN ('duration', 'wait')),
    queue        text   NOT NULL,
    outcome      text   NOT NULL,
    observations bigint NOT NULL DEFAULT 0,
    sum_ms       bigint NOT NULL DEFAULT 0,
    b00 bigint NOT NULL DEFAULT 0,
    b01 bigint NOT NULL DEFAULT 0,
    b02 bigint NOT NULL DEFAULT 0,
    b03 bigint NOT NULL DEFAULT 0,
    b04 bigint NOT NULL DEFAULT 0,
    b05 bigint NOT NULL DEFAULT 0,
    b06 bigint NOT NULL DEFAULT 0,
    b07 bigint NOT NULL DEFAULT 0,
    b08 bigint NOT NULL DEFAULT 0,
    b09 bigint NOT NULL DEFAULT 0,
    b10 bigint NOT NULL DEFAULT 0,
    b11 bigint NOT NULL DEFAULT 0,
    b12 bigint NOT NULL DEFAULT 0,
    b13 bigint NOT NULL DEFAULT 0
);
CREATE INDEX histograms_key ON histograms (kind, queue, outcome);

-- Adds one observation of `ms` to a shard of (k, q, o) no other
-- transaction holds, or to a new shard.
CREATE FUNCTION queuectl_observe(k text, q text, o text, ms bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d bigint := greatest(ms, 0);
    target bigint;
BEGIN
    SELECT id INTO target FROM histograms WHERE kind = k AND queue = q AND outcome = o
        LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF target IS NULL THEN
        INSERT INTO histograms (kind, queue, outcome) VALUES (k, q, o) RETURNING id INTO target;
    END IF;
    UPDATE histograms SET observations = observations + 1, sum_ms = sum_ms + d,
            b00 = b00 + (d <= 10)::int,
            b01 = b01 + (d <= 50)::int,
            b02 = b02 + (d <= 100)::int,
            b03 = b03 + (d <= 250)::int,
            b04 = b04 + (d <= 500)::int,
            b05 = b05 + (d <= 1000)::int,
            b06 = b06 + (d <= 2500)::int,
            b07 = b07 + (d <= 5000)::int,
            b08 = b08 + (d <= 10000)::int,
            b09 = b09 + (d <= 30000)::int,
            b10 = b10 + (d <= 60000)::int,
            b11 = b11 + (d <= 300000)::int,
            b12 = b12 + (d <= 900000)::int,
            b13 = b13 + (d <= 3600000)::int
        WHERE id = target;
END $$;

-- The last two hours of attempts that ran to an end (succeeded, failed,
-- timed out) per minute of their end, class ('s' succeeded, 'f' failed or
-- timed out) and run time rounded up to two significant digits (ms).
CREATE TABLE attempt_minutes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    minute      bigint NOT NULL,  -- finished_at / 60000
    class       text   NOT NULL CHECK (class IN ('s', 'f')),
    duration_ms bigint NOT NULL,
    attempts    bigint NOT NULL DEFAULT 0
);
CREATE INDEX attempt_minutes_key ON attempt_minutes (minute, class, duration_ms);

-- Counts one attempt of outcome o that ran from `started` to `finished`
-- in its minute, when it ran to an end (succeeded, failed, timed out).
CREATE FUNCTION queuectl_count_minute(o text, started bigint, finished bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    d bigint := greatest(finished - started, 0);
    -- Rounded up (never down), so `rounded <= bound` iff `d <= bound`.
    p bigint := CASE WHEN d < 100 THEN 1 ELSE power(10, length(d::text) - 2)::bigint END;
    m bigint := finished / 60000;
    c text := CASE WHEN o = 'succeeded' THEN 's' ELSE 'f' END;
    target bigint;
BEGIN
    IF o NOT IN ('succeeded', 'failed', 'timed_out') THEN
        RETURN;
    END IF;
    SELECT id INTO target FROM attempt_minutes
        WHERE minute = m AND class = c AND duration_ms = (d + p - 1) / p * p
        LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF target IS NULL THEN
        INSERT INTO attempt_minutes (minute, class, duration_ms) VALUES (m, c, (d + p - 1) / p * p)
            RETURNING id INTO target;
    END IF;
    UPDATE attempt_minutes SET attempts = attempts + 1 WHERE id = target;
    DELETE FROM attempt_minutes WHERE id IN (
        SELECT id FROM attempt_minutes WHERE minute < m - 120 FOR UPDATE SKIP LOCKED);
END $$;

-- Counts one ended attempt of queue q (every end goes through here: a
-- finish, a rescue, a copied or imported finished attempt).
CREATE FUNCTION queuectl_count_attempt_end(q text, o text, started bigint, finished bigint)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queuectl_observe('duration', q, o, finished - started);
    PERFORM queuectl_count_minute(o, started, finished);
END $$;

CREATE FUNCTION queuectl_attempt_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queuectl_count_attempt_end(
        (SELECT queue FROM jobs WHERE seq = NEW.job_seq), NEW.outcome, NEW.started_at, NEW.finished_at);
    RETURN NULL;
END $$;

-- A claim's attempt: the job's run_at is still its due time.
CREATE FUNCTION queuectl_attempt_started() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM queuectl_observe('wait', queue, '', NEW.started_at - run_at)
        FROM jobs WHERE seq = NEW.job_seq;
    RETURN NULL;
END $$;

CREATE TRIGGER attempts_end AFTER UPDATE OF outcome ON attempts FOR EACH ROW
    WHEN (OLD.outcome IS NULL AND NEW.outcome IS NOT NULL)
    EXECUTE FUNCTION queuectl_attempt_ended();
CREATE TRIGGER attempts_insert_ended AFTER INSERT ON attempts FOR EACH ROW
    WHEN (NEW.outcome IS NOT NULL)
    EXECUTE FUNCTION queuectl_attempt_ended();
CREATE TRIGGER attempts_start AFTER INSERT ON attempts FOR EACH ROW
    WHEN (NEW.outcome IS NULL)
    EXECUTE FUNCTION queuectl_attempt_started();

-- The history present now, in one pass (a function call per attempt would
-- take minutes on a large queue). Waits are not backfilled: the due time of
-- a past attempt was never recorded (a retry moves run_at), so the wait
-- histogram starts at this migration.
INSERT INTO histograms (kind, queue, outcome, observations, sum_ms, b00, b01, b02, b03, b04, b05, b06, b07, b08, b09, b10, b11, b12, b13)
SELECT 'duration', j.queue, a.outcome, count(*), COALESCE(sum(x.d), 0),
    count(*) FILTER (WHERE x.d <= 10),
    count(*) FILTER (WHERE x.d <= 50),
    count(*) FILTER (WHERE x.d <= 100),
    count(*) FILTER (WHERE x.d <= 250),
    count(*) FILTER (WHERE x.d <= 500),
    count(*) FILTER (WHERE x.d <= 1000),
    count(*) FILTER (WHERE x.d <= 2500),
    count(*) FILTER (WHERE x.d <= 5000),
    count(*) FILTER (WHERE x.d <= 10000),
    count(*) FILTER (WHERE x.d <= 30000),
    count(*) FILTER (WHERE x.d <= 60000),
    count(*) FILTER (WHERE x.d <= 300000),
    count(*) FILTER (WHERE x.d <= 900000),
    count(*) FILTER (WHERE x.d <= 3600000)
FROM attempts a JOIN jobs j ON j.seq = a.job_seq,
    LATERAL (SELECT greatest(a.finished_at - a.started_at, 0) AS d) x
WHERE a.outcome IS NOT NULL
GROUP BY j.queue, a.outcome;

-- The last two hours' minutes, through the one rule above (few rows).
SELECT queuectl_count_minute(a.outcome, a.started_at, a.finished_at)
FROM attempts a
WHERE a.outcome IN ('succeeded', 'failed', 'timed_out')
  AND a.finished_at >= queuectl_now_ms() - 7200000;
