-- IRREVERSIBLE: replaces the raw 10-second vitals samples by per-minute averages and deletes the
-- raw samples. The originals cannot be reconstructed from their averages, so this migration has
-- no down file; restore a backup taken before it if you really need the raw samples back.
--
-- Why: at one sample every 10 seconds per side, vitals had grown to millions of rows and was
-- filling the hub's 4 GB eMMC. The app only ever plots per-minute values. From firmware 2.1 on
-- the pod itself writes one averaged row per minute; samples says how many readings a row
-- averages.

ALTER TABLE vitals ADD COLUMN samples INTEGER NOT NULL DEFAULT 1;

-- Mark the raw rows, add one averaged row per session and minute, then delete the raw rows.
UPDATE vitals SET samples = 0;

INSERT INTO vitals (session_id, sampled_at, heart_rate_bpm, hrv_ms, breathing_rate, samples)
SELECT session_id, strftime('%Y-%m-%dT%H:%M:00Z', sampled_at),
       round(avg(heart_rate_bpm), 1), round(avg(hrv_ms), 1), round(avg(breathing_rate), 1), count(*)
FROM vitals
WHERE samples = 0
GROUP BY session_id, strftime('%Y-%m-%dT%H:%M:00Z', sampled_at)
ORDER BY session_id, strftime('%Y-%m-%dT%H:%M:00Z', sampled_at);

DELETE FROM vitals WHERE samples = 0;
