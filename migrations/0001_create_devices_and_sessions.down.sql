-- Removes the pod and sleep session tables created by 0001 (children first).

DROP TABLE sleep_sessions;
DROP TABLE devices;
