-- migrated: accept drop-column
-- Contract (breaking): once no running service reads users.name, drop it. The lint's data-loss
-- error is accepted here on purpose: display_name holds every value.
ALTER TABLE users DROP COLUMN name;
