-- The starting point: the services read and write users.name.
CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
