-- Migration 6: how many jobs a worker runs at once (its slots), so
-- `queuectl status` can show "2/4" for a worker on any host.
ALTER TABLE workers ADD COLUMN slots INTEGER NOT NULL DEFAULT 1;
