-- Water tank readings of the temperature-control unit, and leak alerts.
--
-- The hub circulates water through the cover; its tank reports its fill level and water
-- temperature (°F, like the rest of firmware 1.x) once a minute, plus a flag from the leak
-- sensor in the drip tray. A reading with the flag set raises a leak alert, which the app shows
-- until the user acknowledges it. tank_status is what the app's home screen reads.

CREATE TABLE water_readings (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        measured_at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        level_pct REAL,
        water_temp_f REAL,
        leak_detected INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX idx_water_readings_device_time ON water_readings (device_id, measured_at);

CREATE TABLE leak_alerts (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        reading_id INTEGER REFERENCES water_readings (id) ON DELETE SET NULL,
        raised_at TEXT NOT NULL,
        acknowledged_at TEXT
);

CREATE TRIGGER water_readings_raise_leak_alert AFTER INSERT ON water_readings
WHEN NEW.leak_detected = 1
BEGIN
        INSERT INTO leak_alerts (device_id, reading_id, raised_at)
        VALUES (NEW.device_id, NEW.id, coalesce(NEW.measured_at, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')));
END;

CREATE VIEW tank_status AS
SELECT d.id AS device_id, d.serial, r.measured_at, r.level_pct, r.water_temp_f,
       (SELECT count(*) FROM leak_alerts AS a WHERE a.device_id = d.id AND a.acknowledged_at IS NULL) AS open_alerts
FROM devices AS d
JOIN water_readings AS r ON r.id = (SELECT w.id FROM water_readings AS w WHERE w.device_id = d.id
                                    ORDER BY w.measured_at DESC, w.id DESC LIMIT 1);
