-- Migration 2: what each attempt needs for containment and honest output.
-- host:   where the attempt ran; leftovers are only ever killed on that host.
-- cgroup: the attempt's own cgroup (under systemd), killed whole by a rescue.
-- output_truncated: 1 when some of the attempt's output could not be kept
--         (a full disk, an unreachable journal).
ALTER TABLE attempts ADD COLUMN host TEXT;
ALTER TABLE attempts ADD COLUMN cgroup TEXT;
ALTER TABLE attempts ADD COLUMN output_truncated INTEGER NOT NULL DEFAULT 0 CHECK (output_truncated IN (0, 1));
