-- Migration 7: no statement reads attempts by their finish time (retention
-- goes by jobs.finished_at and deletes attempts with their job), so the index
-- only cost a B-tree write, and a WAL page, per finished attempt.
DROP INDEX IF EXISTS attempts_finished;
