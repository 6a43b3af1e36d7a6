-- Migration 4: no statement reads attempts by their finish time (retention
-- goes by jobs.finished_at and deletes attempts with their job), so the index
-- only cost an index write per finished attempt.
DROP INDEX IF EXISTS attempts_finished;
