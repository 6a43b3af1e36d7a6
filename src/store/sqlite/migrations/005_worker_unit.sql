-- Migration 5: the systemd unit a worker runs as (NULL for a process-supervised
-- or hand-started worker), so `queuectl status` on another host can name it.
ALTER TABLE workers ADD COLUMN unit TEXT;
