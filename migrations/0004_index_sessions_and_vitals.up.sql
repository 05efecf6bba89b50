-- Indexes for the app's night view.
--
-- The night view loads one session's vitals in time order and lists a pod's sessions newest
-- first; with a few months of 10-second samples both turned into full table scans that took
-- seconds on the hub's eMMC.

CREATE INDEX idx_vitals_session_time ON vitals (session_id, sampled_at);
CREATE INDEX idx_sleep_sessions_device_start ON sleep_sessions (device_id, started_at);
