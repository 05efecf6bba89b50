-- Rebuilds water_readings without the range checks of 0007, exactly as 0006 left it.
--
-- Renaming a rebuilt table makes SQLite store its name quoted (CREATE TABLE "water_readings"),
-- and renaming the live table away would rewrite the foreign key in leak_alerts. So the rows
-- are parked in a scratch table, and the table, its index, its trigger and the view are
-- recreated with their original text, so that the schema is byte for byte what it was.

DROP VIEW tank_status;

CREATE TABLE water_readings_copy AS SELECT * FROM water_readings;
DROP TABLE water_readings;

CREATE TABLE water_readings (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        measured_at TEXT DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        level_pct REAL,
        water_temp_c REAL,
        leak_detected INTEGER NOT NULL DEFAULT 0
);

-- Copy back before the trigger exists, so that no leak alert is raised again.
INSERT INTO water_readings (id, device_id, measured_at, level_pct, water_temp_c, leak_detected)
SELECT id, device_id, measured_at, level_pct, water_temp_c, leak_detected FROM water_readings_copy;
DROP TABLE water_readings_copy;

CREATE INDEX idx_water_readings_device_time ON water_readings (device_id, measured_at);

CREATE TRIGGER water_readings_raise_leak_alert AFTER INSERT ON water_readings
WHEN NEW.leak_detected = 1
BEGIN
        INSERT INTO leak_alerts (device_id, reading_id, raised_at)
        VALUES (NEW.device_id, NEW.id, coalesce(NEW.measured_at, strftime('%Y-%m-%dT%H:%M:%SZ', 'now')));
END;

CREATE VIEW tank_status AS
SELECT d.id AS device_id, d.serial, r.measured_at, r.level_pct, r.water_temp_c,
       (SELECT count(*) FROM leak_alerts AS a WHERE a.device_id = d.id AND a.acknowledged_at IS NULL) AS open_alerts
FROM devices AS d
JOIN water_readings AS r ON r.id = (SELECT w.id FROM water_readings AS w WHERE w.device_id = d.id
                                    ORDER BY w.measured_at DESC, w.id DESC LIMIT 1);
