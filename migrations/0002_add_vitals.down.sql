-- Removes the vitals table created by 0002.

DROP TABLE vitals;
