# SPDX-License-Identifier: MIT
"""A process that holds a SQLite database in a known way, for lock-check tests: run it as a
subprocess of a test, or as the ExecStart= of a test unit (the unit's name must then show up in
`migratectl lock-check`).

    holder.py DATABASE MODE [--wait stdin|signal] [--rows TABLE]

Modes:
  read       BEGIN; SELECT ... and keep the read transaction open
             (WAL: a read mark lock on -shm; rollback journal: SHARED)
  write      BEGIN IMMEDIATE; INSERT ... and keep the write transaction open
             (WAL: WAL_WRITE on -shm; rollback journal: RESERVED)
  exclusive  BEGIN EXCLUSIVE and keep it (rollback journal: EXCLUSIVE on the database)
  idle       a connection that has read once, without a transaction
             (WAL: SHARED on the database and the DMS byte of -shm)
  open       open(DATABASE) as a plain file and nothing else: no SQLite, no lock

The write mode inserts into TABLE (default holder_rows, created when missing, in its own
transaction before the one kept open). The database is never created: it must exist.

Once the state is reached it prints "ready PID" on stdout (and tells systemd READY=1 when
$NOTIFY_SOCKET is set, for Type=notify units). Then it waits: with --wait stdin (the default)
until a line or EOF on stdin, with --wait signal until SIGTERM or SIGINT. It then rolls back,
prints "released" and exits 0. Errors go to stderr with exit status 1.
"""

import argparse
import os
import signal
import socket
import sqlite3
import sys

MODES = ("read", "write", "exclusive", "idle", "open")


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


def connect(path):
    # mode=rw: never create the database; autocommit so that BEGIN is ours
    return sqlite3.connect("file:%s?mode=rw" % path, uri=True, timeout=10, isolation_level=None)


def hold(args):
    """Reaches the mode's state; returns what must stay referenced (and is released at exit)."""
    if args.mode == "open":
        return open(args.database, "rb")
    c = connect(args.database)
    if args.mode == "idle":
        c.execute("SELECT count(*) FROM sqlite_master").fetchall()
    elif args.mode == "read":
        c.execute("BEGIN")
        c.execute("SELECT count(*) FROM sqlite_master").fetchall()
    elif args.mode == "write":
        c.execute("CREATE TABLE IF NOT EXISTS %s (id INTEGER PRIMARY KEY, pid INTEGER)" % args.rows)
        c.execute("BEGIN IMMEDIATE")
        c.execute("INSERT INTO %s (pid) VALUES (?)" % args.rows, (os.getpid(),))
    elif args.mode == "exclusive":
        c.execute("BEGIN EXCLUSIVE")
        c.execute("SELECT count(*) FROM sqlite_master").fetchall()
    return c


RECEIVED = []


def catch_signals():
    """Before "ready": a unit may be stopped as soon as it is up."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda n, f: RECEIVED.append(n))


def wait(how):
    if how == "stdin":
        sys.stdin.readline()
        return
    while not RECEIVED:
        signal.pause()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("database")
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--wait", choices=("stdin", "signal"), default="stdin")
    ap.add_argument("--rows", default="holder_rows", help="the table the write mode inserts into")
    args = ap.parse_args()
    if not args.rows.replace("_", "").isalnum():
        ap.error("--rows takes a plain table name")
    if args.wait == "signal":
        catch_signals()
    try:
        held = hold(args)
    except (sqlite3.Error, OSError) as e:
        sys.stderr.write("holder.py: %s %s: %s\n" % (args.mode, args.database, e))
        return 1
    print("ready %d" % os.getpid(), flush=True)
    sd_notify("READY=1")
    wait(args.wait)
    if isinstance(held, sqlite3.Connection) and held.in_transaction:
        held.execute("ROLLBACK")
    held.close()
    print("released", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
