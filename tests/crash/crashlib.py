# SPDX-License-Identifier: MIT
"""The crash test's shared part: a migration set with one slow step, the schema each version must
have, jobs started over the protocol and killed (SIGKILL) at points chosen by seeded randomness
after an observed event (a migration running, a backup's temporary file appearing), and the checks
made after every restart. Where a kill landed is read from the state it left, never from timing:
a "running" attempt means inside the migration transaction, a backup's temporary file means
inside a backup.

MIGRATED_CRASH_SEED replays a run (the seed is printed at the start and in the counts)."""

import json
import os
import random
import sqlite3
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.append(os.path.join(os.path.dirname(HERE), "integration"))

import harness as H  # noqa: E402

LATEST = 5
JOB_TIMEOUT = 120.0
SLOW_N = int(os.environ.get("MIGRATED_CRASH_SLOW_N", "8000000"))


def seed():
    s = os.environ.get("MIGRATED_CRASH_SEED")
    return int(s) if s else random.SystemRandom().randrange(1, 2 ** 31)


def migrations(directory):
    """Five reversible versions; version 3 is a data migration slow enough to be killed inside."""
    return H.write_migrations(directory, {
        1: ("items", "CREATE TABLE c_items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n",
            "DROP TABLE c_items;\n"),
        2: ("items_note", "ALTER TABLE c_items ADD COLUMN note TEXT;\nCREATE INDEX c_items_name ON c_items (name);\n",
            "DROP INDEX c_items_name;\nALTER TABLE c_items DROP COLUMN note;\n"),
        3: ("slow_fill", H.slow_sql("c_big", SLOW_N), "DROP TABLE c_big;\n"),
        4: ("log", "CREATE TABLE c_log (id INTEGER PRIMARY KEY, at TEXT);\n"
                   "CREATE VIEW c_recent AS SELECT * FROM c_log ORDER BY id DESC LIMIT 10;\n",
            "DROP VIEW c_recent;\nDROP TABLE c_log;\n"),
        5: ("tags", "CREATE TABLE c_tags (tag TEXT PRIMARY KEY);\nINSERT INTO c_tags VALUES ('a'), ('b');\n",
            "DROP TABLE c_tags;\n"),
    })


def ro(path):
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=10)


def schema_of(path, readonly=False):
    c = ro(path) if readonly else H.db_connect(path)
    try:
        return c.execute(H.SCHEMA_QUERY).fetchall()
    finally:
        c.close()


def known_schemas(workdir, mig_dir, base_sql):
    """The schema of every version, from the up scripts applied one by one to a database made
    with base_sql (the tables the database has besides the migrations', without their rows)."""
    path = os.path.join(workdir, "reference.sqlite")
    H.create_wal_db(path, base_sql)
    out = {0: schema_of(path)}
    c = H.db_connect(path)
    for v in range(1, LATEST + 1):
        with open(os.path.join(mig_dir, H.up_file(mig_dir, v))) as f:
            c.executescript(f.read())
        out[v] = schema_of(path)
    c.close()
    os.unlink(path)
    return out


def integrity(path):
    c = ro(path)
    try:
        return [r[0] for r in c.execute("PRAGMA integrity_check").fetchall()]
    finally:
        c.close()


def version_in(path):
    c = ro(path)
    try:
        if not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'migrated_schema'").fetchone():
            return 0  # taken before the first migration
        return c.execute("SELECT coalesce(max(version), 0) FROM migrated_schema").fetchone()[0]
    finally:
        c.close()


def temporaries(bdir):
    try:
        return [f for f in os.listdir(bdir) if f.startswith(".") and ".partial" in f]
    except FileNotFoundError:
        return []


class Job:
    """A request sent over its own connection; a thread collects its events and final line."""

    def __init__(self, sock, method, params):
        self.events, self.final, self.done = [], None, threading.Event()
        self.conn = H.Conn(sock, JOB_TIMEOUT)
        self.conn.send(method, params)
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        try:
            while True:
                msg = self.conn.read_json(JOB_TIMEOUT)
                if msg is None:
                    break
                if "event" in msg:
                    self.events.append(msg)
                elif "result" in msg or "error" in msg:
                    self.final = msg
                    break
        except Exception:  # the daemon was killed under us: no final line
            pass
        finally:
            self.done.set()

    def wait_for(self, predicate, timeout=JOB_TIMEOUT):
        """Polls until predicate() or the job ended; True when predicate() held first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            if self.done.is_set():
                return False
            time.sleep(0.001)
        return False

    def close(self):
        self.done.wait(JOB_TIMEOUT)
        self.conn.close()


class CrashRun:
    """One crash run. kill() SIGKILLs the daemon and waits for it to be gone; restart() brings it
    back and waits until it serves requests; after_restart() adds checks of its own."""

    def __init__(self, tc, db, bdir, sock, known, rng, kill, restart, kinds, after_restart=None):
        self.tc, self.db, self.bdir, self.sock, self.known, self.rng = tc, db, bdir, sock, known, rng
        self.kill, self.restart, self.kinds, self.after_restart = kill, restart, kinds, after_restart
        self.checked_backups = set()
        self.seen_attempts = set()
        self.counts = dict(jobs=0, kills=0, kills_in_transaction=0, kills_in_backup=0, kills_in_restore_copy=0,
                           half_applied=0, integrity_failures=0, bad_backups_listed=0, leftovers=0,
                           attempts_lost=0, duplicate_ids=0, next_up_failed=0)

    def call(self, method, params=None):
        _, final = H.rpc(self.sock, method, params, timeout=JOB_TIMEOUT)
        if "result" not in final:
            raise H.HarnessError("%s %r: %r" % (method, params, final))
        return final["result"]

    def pick_job(self):
        cur = H.current_version(self.db)
        kind = self.rng.choice(self.kinds)
        if kind == "up" and cur < LATEST:
            return "up", {"to": self.rng.randint(cur + 1, LATEST)}
        if kind == "down" and cur > 0:
            return "down", {"to": self.rng.randint(0, cur - 1)}
        if kind == "restore":
            listed = self.call("backups")["backups"]
            if listed:
                return "restore", {"backup": self.rng.choice(listed)["file"]}
        if kind == "backup":
            return "backup", {}
        return ("down", {"to": 0}) if cur == LATEST else ("up", {})

    def kill_point(self, method, params, job):
        """Waits for the point chosen for this job; False when the job ended first."""
        how = self.rng.choice(["offset", "backup", "backup", "migration", "migration", "migration", "migration"])
        slow = method == "up" and params.get("to", LATEST) >= 3 and H.current_version(self.db) < 3
        if how == "migration" and method in ("up", "down"):
            def applying():
                return any(e.get("event") == "migration" and (not slow or e.get("version") == 3) for e in job.events)
            if not job.wait_for(applying):
                return False
            time.sleep(self.rng.uniform(0, 0.8) if slow else self.rng.uniform(0, 0.05))
        elif how == "migration" and method == "restore":
            if not job.wait_for(lambda: [f for f in temporaries(self.bdir) if "-restore-job" in f]):
                return False
            time.sleep(self.rng.uniform(0, 0.1))
        elif how in ("backup", "migration"):
            if not job.wait_for(lambda: temporaries(self.bdir)):
                return False
            time.sleep(self.rng.uniform(0, 0.05))
        else:
            time.sleep(self.rng.uniform(0, 0.3))
        return not job.done.is_set()

    def one_job(self, kill_probability):
        method, params = self.pick_job()
        job = Job(self.sock, method, params)
        self.counts["jobs"] += 1
        if self.rng.random() < kill_probability and self.kill_point(method, params, job):
            self.kill()
            job.close()
            self.counts["kills"] += 1
            self.observe_kill()
            self.restart()
            self.check()
            # The next up succeeds: nothing the kill left blocks it.
            self.counts["jobs"] += 1
            _, final = H.rpc(self.sock, "up", {}, timeout=JOB_TIMEOUT)
            if "result" not in final:
                self.counts["next_up_failed"] += 1
                sys.stderr.write("up after a kill failed: %r\n" % final)
            return
        job.close()
        if job.final is None:
            raise H.HarnessError("%s %r: no final line" % (method, params))

    def observe_kill(self):
        temps = temporaries(self.bdir)
        if [f for f in temps if "-restore-job" not in f]:
            self.counts["kills_in_backup"] += 1
        if [f for f in temps if "-restore-job" in f]:
            self.counts["kills_in_restore_copy"] += 1
        if any(a["status"] == "running" for a in H.attempts(self.db)):
            self.counts["kills_in_transaction"] += 1

    def check(self):
        c = self.counts
        v = H.current_version(self.db)
        if schema_of(self.db) != self.known.get(v):
            c["half_applied"] += 1
            sys.stderr.write("schema does not match version %d\n" % v)
        if integrity(self.db) != ["ok"]:
            c["integrity_failures"] += 1
        if temporaries(self.bdir):
            c["leftovers"] += 1
        for b in self.call("backups")["backups"]:
            if b["file"] in self.checked_backups:
                continue
            self.checked_backups.add(b["file"])
            try:
                ok = (integrity(b["path"]) == ["ok"] and version_in(b["path"]) == b["version"]
                      and schema_of(b["path"], readonly=True) == self.known.get(b["version"]))
            except sqlite3.Error as e:
                ok = False
                sys.stderr.write("backup %s: %s\n" % (b["file"], e))
            if not ok:
                c["bad_backups_listed"] += 1
                sys.stderr.write("bad backup listed: %r\n" % b)
        rows = H.attempts(self.db)
        ids = [r["id"] for r in rows]
        jobs = [r["job_id"] for r in rows]
        c["duplicate_ids"] += (len(ids) - len(set(ids))) + (len(jobs) - len(set(jobs)))
        lost = self.seen_attempts - set(ids)
        c["attempts_lost"] += len(lost)
        self.seen_attempts |= set(ids)
        if self.after_restart:
            self.after_restart(c)
        # manual backups are the operator's to delete: keep the three newest, like a cron job would
        manual = [b for b in self.call("backups")["backups"] if b.get("kind") == "manual"]
        for b in manual[3:]:
            os.unlink(b["path"])

    def run(self, n_jobs, kill_probability):
        while self.counts["jobs"] < n_jobs:
            self.one_job(kill_probability)
        self.check()
        return self.counts


def report(name, s, counts, elapsed):
    print("CRASH %s: seed %d (replay: MIGRATED_CRASH_SEED=%d), %.1f s: %s"
          % (name, s, s, elapsed, json.dumps(counts, sort_keys=True)), flush=True)


LOSSES = ("half_applied", "integrity_failures", "bad_backups_listed", "leftovers", "attempts_lost",
          "duplicate_ids", "next_up_failed", "units_left_down", "rows_lost")
