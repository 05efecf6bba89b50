-- Pods and the sleep sessions they record.
--
-- A pod (mattress cover plus hub) registers itself on first boot; each side of the bed then
-- produces one sleep session per night. Firmware 1.x only speaks degrees Fahrenheit, so the
-- target bed temperature is stored in °F for now (see 0005).

CREATE TABLE devices (
        id INTEGER PRIMARY KEY,
        serial TEXT NOT NULL UNIQUE,
        model TEXT NOT NULL,
        firmware_version TEXT NOT NULL,
        registered_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

CREATE TABLE sleep_sessions (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        side TEXT NOT NULL CHECK (side IN ('left', 'right')),
        started_at TEXT NOT NULL,
        ended_at TEXT,
        target_temp_f REAL
);
