-- Migration 4: the last few KiB of each attempt's output (both streams, as
-- written), so `show` and `logs` work on any host that reads the queue. NULL
-- when none was recorded (never started, rescued, or from before this).
ALTER TABLE attempts ADD COLUMN output_tail TEXT;
