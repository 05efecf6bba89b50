-- Vitals sampled by the piezo sensors during a sleep session.
--
-- The pod derives heart rate, heart rate variability (RMSSD, in ms) and breathing rate from the
-- ballistocardiogram every 10 seconds while someone is in bed. Each sample belongs to the session
-- it was taken in; deleting a session deletes its vitals.

CREATE TABLE vitals (
        id INTEGER PRIMARY KEY,
        session_id INTEGER NOT NULL REFERENCES sleep_sessions (id) ON DELETE CASCADE,
        sampled_at TEXT NOT NULL,
        heart_rate_bpm REAL,
        hrv_ms REAL,
        breathing_rate REAL
);
