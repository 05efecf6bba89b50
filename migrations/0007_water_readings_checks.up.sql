-- Adds range checks to the water tank readings and makes measured_at NOT NULL.
--
-- A batch of hubs with a faulty level sensor reported tank levels of 300% and water at -40 °C,
-- which the app turned into bogus "refill your tank" notifications. Firmware now discards such
-- readings; the database refuses them too. SQLite cannot add a CHECK constraint to an existing
-- table, so the table is rebuilt following the procedure of
-- https://www.sqlite.org/lang_altertable.html ("Making Other Kinds Of Table Schema Changes").
-- migrated has already turned foreign keys off and opened the transaction (steps 1-2), and runs
-- PRAGMA foreign_key_check before it commits (steps 10-12). Every reading stored so far has a
-- measured_at (the column defaults to now) and sane values; a row that does not makes this
-- migration fail and roll back, so it can be looked at rather than silently changed.

-- Step 3 (and 9): tank_status reads water_readings; drop it now and recreate it at the end.
DROP VIEW tank_status;

-- Step 4: the new table, in the desired format.
CREATE TABLE water_readings_new (
        id INTEGER PRIMARY KEY,
        device_id INTEGER NOT NULL REFERENCES devices (id) ON DELETE CASCADE,
        measured_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now')),
        level_pct REAL CHECK (level_pct BETWEEN 0 AND 100),
        water_temp_c REAL CHECK (water_temp_c BETWEEN 0 AND 60),
        leak_detected INTEGER NOT NULL DEFAULT 0 CHECK (leak_detected IN (0, 1))
);

-- Step 5: copy the rows, keeping their ids (leak_alerts.reading_id points at them).
INSERT INTO water_readings_new (id, device_id, measured_at, level_pct, water_temp_c, leak_detected)
SELECT id, device_id, measured_at, level_pct, water_temp_c, leak_detected FROM water_readings;

-- Steps 6-7: drop the old table (its index and trigger go with it) and take its name.
DROP TABLE water_readings;
ALTER TABLE water_readings_new RENAME TO water_readings;

-- Step 8: recreate the index and the trigger, after the copy so that no alert is raised twice.
CREATE INDEX idx_water_readings_device_time ON water_readings (device_id, measured_at);

CREATE TRIGGER water_readings_raise_leak_alert AFTER INSERT ON water_readings
WHEN NEW.leak_detected = 1
BEGIN
        INSERT INTO leak_alerts (device_id, reading_id, raised_at)
        VALUES (NEW.device_id, NEW.id, NEW.measured_at);
END;

-- Step 9: recreate the view.
CREATE VIEW tank_status AS
SELECT d.id AS device_id, d.serial, r.measured_at, r.level_pct, r.water_temp_c,
       (SELECT count(*) FROM leak_alerts AS a WHERE a.device_id = d.id AND a.acknowledged_at IS NULL) AS open_alerts
FROM devices AS d
JOIN water_readings AS r ON r.id = (SELECT w.id FROM water_readings AS w WHERE w.device_id = d.id
                                    ORDER BY w.measured_at DESC, w.id DESC LIMIT 1);
