#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A dependent that writes to PostgreSQL continuously, for the drain tests: a real process keeping
a psql session open (its coprocess) and inserting one row into `acks` after another, each in its
own transaction, the way an app host's worker writes.

    pgwriter.py CONNINFO LOG NAME

After each COMMIT it appends "ack ID" to LOG (flush+fsync): the acknowledged inserts. LOG also
gets "start PID" once the session answered, and "stop PID" at a clean exit (SIGTERM: the current
insert finishes first). Each row holds the writer's pid and clock_timestamp() at the insert, so the
database itself tells when a writer last wrote. The table (id bigserial, writer text, pid int,
at timestamptz) is created by the test."""

import os
import signal
import subprocess
import sys

stopping = False


def on_term(signum, frame):
    global stopping
    stopping = True


def log(f, text):
    f.write(text + "\n")
    f.flush()
    os.fsync(f.fileno())


def main():
    conninfo, log_path, name = sys.argv[1:4]
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    psql = subprocess.Popen(["psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=0", conninfo],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            bufsize=1, start_new_session=True)
    with open(log_path, "a") as f:
        log(f, "start %d" % os.getpid())
        while not stopping:
            psql.stdin.write("INSERT INTO acks (writer, pid, at) VALUES ('%s', %d, clock_timestamp()) "
                             "RETURNING 'id=' || id;\n" % (name, os.getpid()))
            psql.stdin.flush()
            line = psql.stdout.readline()
            if not line:
                log(f, "lost %d" % os.getpid())
                return 1
            if line.startswith("id="):
                log(f, "ack %s" % line.strip()[3:])
        psql.stdin.close()
        psql.wait()
        log(f, "stop %d" % os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
