-- Converts temperatures back to degrees Fahrenheit and restores the 0004 column names.
--
-- The pod reports °F with one decimal; 0.01 °C is finer than 0.1 °F, so rounding to one decimal
-- gives back the original readings exactly.

ALTER TABLE water_readings RENAME COLUMN water_temp_c TO water_temp_f;
UPDATE water_readings SET water_temp_f = round(water_temp_f * 9.0 / 5.0 + 32, 1)
WHERE water_temp_f IS NOT NULL;

ALTER TABLE sleep_sessions RENAME COLUMN target_temp_c TO target_temp_f;
UPDATE sleep_sessions SET target_temp_f = round(target_temp_f * 9.0 / 5.0 + 32, 1)
WHERE target_temp_f IS NOT NULL;
