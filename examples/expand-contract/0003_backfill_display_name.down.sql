SELECT 1; -- the backfilled values stay: display_name was always meant to equal name
