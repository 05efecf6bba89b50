-- Removes the indexes created by 0004.

DROP INDEX idx_sleep_sessions_device_start;
DROP INDEX idx_vitals_session_time;
