-- Removes sleep_sessions.duration_s added by 0008; it is derived from the timestamps, so
-- nothing is lost.

ALTER TABLE sleep_sessions DROP COLUMN duration_s;
