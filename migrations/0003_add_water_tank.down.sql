-- Removes the water tank readings, leak alerts and the tank_status view created by 0003.
-- Dropping water_readings drops its index and trigger with it.

DROP VIEW tank_status;
DROP TABLE leak_alerts;
DROP TABLE water_readings;
