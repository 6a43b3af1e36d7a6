-- Migration 3: a job's env_file (a path or a credential name). The worker
-- reads it when an attempt starts; its values never enter the database.
ALTER TABLE jobs ADD COLUMN env_file TEXT;
