-- Migration 11: blocked jobs (pending, waiting for dependencies) per queue,
-- kept as jobs change like queue_counts (migration 9), so `queue list` and
-- the dashboard read counters, not every unfinished job: the claim's
-- indexes leave blocked jobs out, so nothing else finds them but a scan of
-- every pending one. Empty rows (n = 0) stay, as in queue_counts.
CREATE TABLE blocked_counts (
    queue TEXT    NOT NULL PRIMARY KEY,
    n     INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO blocked_counts (queue, n)
    SELECT queue, COUNT(*) FROM jobs WHERE state = 'pending' AND deps_left > 0 GROUP BY queue;

-- A job is blocked while pending with deps_left > 0 (deps_left > 0 is only
-- ever pending or cancelled: migration 8's CHECK). An update counts only
-- when the job enters or leaves that, or moves to another queue while in it.
CREATE TRIGGER jobs_blocked_insert AFTER INSERT ON jobs
    WHEN NEW.state = 'pending' AND NEW.deps_left > 0 BEGIN
    INSERT INTO blocked_counts (queue, n) VALUES (NEW.queue, 1)
        ON CONFLICT (queue) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER jobs_blocked_delete AFTER DELETE ON jobs
    WHEN OLD.state = 'pending' AND OLD.deps_left > 0 BEGIN
    UPDATE blocked_counts SET n = n - 1 WHERE queue = OLD.queue;
END;
CREATE TRIGGER jobs_blocked_leave AFTER UPDATE OF state, queue, deps_left ON jobs
    WHEN OLD.state = 'pending' AND OLD.deps_left > 0
     AND NOT (NEW.state = 'pending' AND NEW.deps_left > 0 AND NEW.queue = OLD.queue) BEGIN
    UPDATE blocked_counts SET n = n - 1 WHERE queue = OLD.queue;
END;
CREATE TRIGGER jobs_blocked_enter AFTER UPDATE OF state, queue, deps_left ON jobs
    WHEN NEW.state = 'pending' AND NEW.deps_left > 0
     AND NOT (OLD.state = 'pending' AND OLD.deps_left > 0 AND OLD.queue = NEW.queue) BEGIN
    INSERT INTO blocked_counts (queue, n) VALUES (NEW.queue, 1)
        ON CONFLICT (queue) DO UPDATE SET n = n + 1;
END;
