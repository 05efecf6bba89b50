-- migrated: online
-- A bounded backfill: an UPDATE is breaking unless its file says it is safe to run beside the
-- services (these only ever write both columns by now).
UPDATE users SET display_name = name WHERE display_name IS NULL;
