-- Expand (online): a nullable column the running services do not know yet. Then release services
-- that write both name and display_name and read display_name when it is set.
ALTER TABLE users ADD COLUMN display_name TEXT;
