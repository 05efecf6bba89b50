-- Stores temperatures in degrees Celsius instead of Fahrenheit.
--
-- Firmware 2.0 ships worldwide and reports °C; the app converts for display. Existing rows are
-- converted in place, rounded to 0.01 °C, and the columns renamed so that no reader can mistake
-- one unit for the other (renaming also updates the tank_status view).

UPDATE sleep_sessions SET target_temp_f = round((target_temp_f - 32) * 5.0 / 9.0, 2)
WHERE target_temp_f IS NOT NULL;
ALTER TABLE sleep_sessions RENAME COLUMN target_temp_f TO target_temp_c;

UPDATE water_readings SET water_temp_f = round((water_temp_f - 32) * 5.0 / 9.0, 2)
WHERE water_temp_f IS NOT NULL;
ALTER TABLE water_readings RENAME COLUMN water_temp_f TO water_temp_c;
