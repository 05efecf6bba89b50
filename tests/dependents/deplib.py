# SPDX-License-Identifier: MIT
"""The dependents tests' shared part: a real pm2 from npm (the version pinned by package.json and
package-lock.json beside this file, installed once with `npm ci` into MIGRATED_TEST_NPM_DIR), one
PM2_HOME per test, real writer processes (tests/systemd/writer.py: a real process holding the WAL
database open and acknowledging each committed insert in its log), and a migrated configured with
`pm2:` and `exec:` dependents.

pm2 runs the writer with `--interpreter python3`: Node 20 has no SQLite of its own and a native
module would need a compiler; what migrated coordinates is the pm2 process, whatever it runs."""

import os
import signal
import subprocess
import sys
import textwrap
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
sys.path.append(os.path.join(TESTS, "integration"))

import harness as H  # noqa: E402

WRITER = os.path.join(TESTS, "systemd", "writer.py")
PYTHON = sys.executable or "python3"
PM2_TIMEOUT = 60.0


def install_pm2():
    """The pm2 CLI of package-lock.json beside this file (see harness.npm_install)."""
    return H.npm_install(HERE, "pm2", "pm2")


def migrations(directory):
    """v1 a table, v2 a table rebuild (12 steps), v3 a quick table; the writers touch only `acks`."""
    return H.write_migrations(directory, {
        1: ("items", "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
                     "INSERT INTO items (name) VALUES ('a'), ('b'), ('c');\n", "DROP TABLE items;\n"),
        2: ("rebuild_items", textwrap.dedent("""\
                CREATE TABLE items_new (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, note TEXT);
                INSERT INTO items_new (id, name) SELECT id, name FROM items;
                DROP TABLE items;
                ALTER TABLE items_new RENAME TO items;
                """), "CREATE TABLE items_old (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
                      "INSERT INTO items_old SELECT id, name FROM items;\nDROP TABLE items;\n"
                      "ALTER TABLE items_old RENAME TO items;\n"),
        3: ("settings", "CREATE TABLE settings (k TEXT PRIMARY KEY, v TEXT);\n", "DROP TABLE settings;\n"),
    })


def failing_migration(directory):
    H.write_migrations(directory, {4: ("broken", "CREATE TABLE t4 (x);\nINSERT INTO no_such_table VALUES (1);\n",
                                       "DROP TABLE t4;\n")})


def create_db(path):
    c = H.db_connect(path)
    try:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE acks (id INTEGER PRIMARY KEY, writer TEXT, pid INTEGER, at REAL)")
        c.commit()
    finally:
        c.close()


# a writer's log: the same records as under systemd
Log = H.WriterLog


class PM2:
    """One PM2_HOME with its own pm2 daemon; killed (with its processes) at cleanup."""

    def __init__(self, tc, pm2_bin, home):
        self.tc = tc
        self.bin = pm2_bin
        self.home = home
        os.makedirs(home, exist_ok=True)
        tc.addCleanup(self.kill)

    def env(self):
        e = dict(os.environ)
        e["PM2_HOME"] = self.home  # before any pm2 command: even --version starts a daemon
        return e

    def run(self, *args, check=True):
        r = subprocess.run([self.bin] + list(args), env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=PM2_TIMEOUT)
        if check and r.returncode != 0:
            raise H.HarnessError("pm2 %s failed (%d): %s %s" % (" ".join(args), r.returncode,
                                                                r.stdout.decode(errors="replace"),
                                                                r.stderr.decode(errors="replace")))
        return r

    def jlist(self):
        import json
        out = self.run("jlist").stdout.decode()
        for line in out.splitlines():
            if line.startswith("["):
                try:
                    return {p["name"]: (p["pm2_env"]["status"], p.get("pid") or 0) for p in json.loads(line)}
                except ValueError:
                    continue
        raise H.HarnessError("pm2 jlist printed no list: %r" % out)

    def start_writer(self, name, db, mode="write", kill_timeout_ms=None):
        log = Log(self.tc.path(name + ".acks"))
        args = ["start", WRITER, "--name", name, "--interpreter", PYTHON]
        if kill_timeout_ms is not None:
            args += ["--kill-timeout", str(kill_timeout_ms)]
        self.run(*(args + ["--", db, log.path, name, "--mode", mode]))
        return log

    def state(self, name):
        return self.jlist().get(name, ("missing", 0))

    def kill(self):
        try:
            self.run("kill", check=False)
        except (subprocess.TimeoutExpired, OSError):
            pass
        pid_file = os.path.join(self.home, "pm2.pid")
        try:
            with open(pid_file) as f:
                os.kill(int(f.read().strip()), signal.SIGKILL)
        except (OSError, ValueError):
            pass


def all_acked_in_db(tc, db, logs):
    """Every insert any writer acknowledged is in the database. The logs are read first: a writer
    still running acknowledges inserts that a table read before them would not see."""
    acked = [i for log in logs for i in log.acked_ids()]
    c = H.db_connect(db)
    try:
        have = {r[0] for r in c.execute("SELECT id FROM acks")}
    finally:
        c.close()
    missing = [i for i in acked if i not in have]
    where = {}
    for log in logs:
        recs = log.records()
        for n, (kind, value, _) in enumerate(recs):
            if kind == "ack" and value in missing:
                where[value] = (log.path, recs[max(0, n - 3):n + 4])
    tc.assertEqual(missing, [], "acknowledged inserts lost: %r (max id in the table %s)" % (where, max(have or [0])))
    return acked


def wait_for(predicate, what, timeout=60.0):
    return H.wait_until(predicate, timeout, interval=0.05, what=what)


def now():
    return time.monotonic()
