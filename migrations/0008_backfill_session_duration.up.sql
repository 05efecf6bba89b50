-- Adds sleep_sessions.duration_s and backfills it for finished sessions.
--
-- The weekly sleep report sums session lengths; computing them from the timestamps on every
-- query was the report's main cost. Sessions still running keep NULL until the pod ends them.

ALTER TABLE sleep_sessions ADD COLUMN duration_s INTEGER CHECK (duration_s >= 0);

UPDATE sleep_sessions
SET duration_s = CAST(round((julianday(ended_at) - julianday(started_at)) * 86400) AS INTEGER)
WHERE ended_at IS NOT NULL;
