ALTER TABLE users ADD COLUMN name TEXT;
UPDATE users SET name = display_name;
