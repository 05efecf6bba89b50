# SPDX-License-Identifier: MIT
"""A dependent service for the systemd tests: a real process, run by a real unit, that keeps a WAL
database open the way free-sleep's services do.

    writer.py DATABASE LOG NAME [--mode write|ignore-term|fail|hold] [--interval S]

Modes:
  write        insert one row into `acks` every --interval seconds (default 0.02), each in its own
               short transaction; after each COMMIT append "ack ID MONOTONIC" to LOG (flush+fsync):
               the acknowledged inserts. SIGTERM: finish the current insert, log "stop", exit 0.
  ignore-term  the same, but SIGTERM and SIGINT are ignored (SIG_IGN): only SIGKILL ends it.
  fail         exit 1 at once (a unit that fails to start).
  hold         open the database (and its -wal/-shm), then do nothing until SIGTERM.

The service tells systemd READY=1 (Type=notify) once the database is open, so "active" means "has
the database open". LOG also gets "start PID MONOTONIC" (process started), "ready PID MONOTONIC"
(READY=1 sent), and at a clean exit "term PID MONOTONIC" (when SIGTERM arrived) and "stop PID
MONOTONIC" (exiting); SIGINT (pm2's stop signal) counts as SIGTERM. MONOTONIC
is CLOCK_MONOTONIC in seconds, the clock of systemd's *TimestampMonotonic properties.

The `acks` table (id INTEGER PRIMARY KEY, writer TEXT, pid INTEGER, at REAL) is created by the test
before migrated starts; the writer never changes the schema.
"""

import argparse
import os
import signal
import socket
import sqlite3
import sys
import time


def sd_notify(text):
    """sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, if there is one."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path:
        return
    if path.startswith("@"):
        path = "\0" + path[1:]
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        s.connect(path)
        s.sendall(text.encode())
    finally:
        s.close()


class Log:
    def __init__(self, path):
        self.f = open(path, "a")

    def line(self, text):
        self.f.write(text + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("database")
    ap.add_argument("log")
    ap.add_argument("name")
    ap.add_argument("--mode", default="write", choices=("write", "ignore-term", "fail", "hold"))
    ap.add_argument("--interval", type=float, default=0.02)
    args = ap.parse_args()

    log = Log(args.log)
    log.line("start %d %.6f" % (os.getpid(), time.monotonic()))
    if args.mode == "fail":
        print("writer %s: failing on purpose" % args.name, file=sys.stderr, flush=True)
        sys.exit(1)

    stopping = []
    # SIGINT is how pm2 stops a process: treated like SIGTERM.
    for sig in (signal.SIGTERM, signal.SIGINT):
        if args.mode == "ignore-term":
            signal.signal(sig, signal.SIG_IGN)
        else:
            signal.signal(sig, lambda *_: stopping.append(time.monotonic()))

    db = sqlite3.connect(args.database, timeout=60, isolation_level=None)
    mode = db.execute("PRAGMA journal_mode").fetchone()[0]
    if mode != "wal":
        print("writer %s: database is not in WAL mode (%s)" % (args.name, mode), file=sys.stderr, flush=True)
        sys.exit(2)
    # Touch the table so that the database, -wal and -shm are all open from here on.
    db.execute("SELECT count(*) FROM acks").fetchone()
    log.line("ready %d %.6f" % (os.getpid(), time.monotonic()))
    sd_notify("READY=1\nSTATUS=%s: %s" % (args.name, args.mode))

    if args.mode == "hold":
        while not stopping:
            time.sleep(0.05)
        log.line("term %d %.6f" % (os.getpid(), stopping[0]))
        log.line("stop %d %.6f" % (os.getpid(), time.monotonic()))
        return

    while not stopping:
        db.execute("BEGIN IMMEDIATE")
        rowid = db.execute("INSERT INTO acks (writer, pid, at) VALUES (?, ?, ?)",
                           (args.name, os.getpid(), time.time())).lastrowid
        db.execute("COMMIT")
        log.line("ack %d %.6f" % (rowid, time.monotonic()))
        time.sleep(args.interval)
    db.close()
    log.line("term %d %.6f" % (os.getpid(), stopping[0]))
    log.line("stop %d %.6f" % (os.getpid(), time.monotonic()))


if __name__ == "__main__":
    main()
