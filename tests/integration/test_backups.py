# SPDX-License-Identifier: MIT
"""Backups, restore, integrity checks and rehearsals: a real daemon on real SQLite files.

Every job that changes the database is preceded by an integrity check and an online backup into
the backup directory (<database>-backups unless --backup-dir or [backup] dir says otherwise).
These tests restore such backups and compare schema and data with what the database held, take
backups while another process keeps writing, fill the backup directory's filesystem, rehearse
failing plans on a copy, corrupt databases, and check the permissions of what is written."""

import hashlib
import json
import contextlib
import os
import re
import shlex
import sqlite3
import stat
import time

import harness
from harness import applied_versions, db_connect, schema, sha256_file, wait_until

# <dbname>-<YYYYmmddTHHMMSS.mmmZ>-v<version>-job<id>.sqlite
BACKUP_NAME_RE = re.compile(r"^(?P<db>.+)-(?P<stamp>\d{8}T\d{6}\.\d{3}Z)-v(?P<version>-?\d+)-job(?P<job>\d+)(?P<kind>-manual)?\.sqlite$")
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
MiB = 1024 * 1024


# ---------------------------------------------------------------------------------------------
# Helpers the harness does not have


def ro_connect(path):
    """A read-only connection that creates nothing beside the file (backups are in rollback-journal
    mode, so no -wal or -shm appears)."""
    return sqlite3.connect("file:%s?mode=ro" % path, uri=True, isolation_level=None, timeout=10)


def snapshot(path, readonly=False):
    """(sqlite_master rows including rootpage, {table: rows ordered by rowid}) of every table,
    bookkeeping included."""
    c = ro_connect(path) if readonly else db_connect(path)
    try:
        master = c.execute("SELECT type, name, tbl_name, rootpage, sql FROM sqlite_master "
                           "ORDER BY type, name").fetchall()
        data = {}
        for (name,) in c.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND "
                                 "name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
            data[name] = c.execute('SELECT * FROM "%s" ORDER BY rowid' % name).fetchall()
        return master, data
    finally:
        c.close()


def dump_hash(path):
    c = db_connect(path)
    try:
        h = hashlib.sha256()
        for line in c.iterdump():
            h.update(line.encode() + b"\n")
        return h.hexdigest()
    finally:
        c.close()


def checkpoint(path):
    """PRAGMA wal_checkpoint(TRUNCATE) from our own connection; returns (busy, log, checkpointed)."""
    c = db_connect(path)
    try:
        return tuple(c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone())
    finally:
        c.close()


def wal_size(path):
    try:
        return os.stat(path + "-wal").st_size
    except FileNotFoundError:
        return 0


def logical_size(path):
    c = db_connect(path)
    try:
        return c.execute("SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()").fetchone()[0]
    finally:
        c.close()


def header_journal_bytes(path):
    """Bytes 18 and 19 of the database header: 1/1 rollback journal, 2/2 WAL."""
    with open(path, "rb") as f:
        head = f.read(100)
    return head[18], head[19]


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return None


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def integrity(path):
    c = ro_connect(path)
    try:
        return [r[0] for r in c.execute("PRAGMA integrity_check").fetchall()]
    finally:
        c.close()


def version_in(path):
    c = ro_connect(path)
    try:
        return c.execute("SELECT coalesce(max(version), 0) FROM migrated_schema").fetchone()[0]
    finally:
        c.close()


def write_sample_rows(db, tag, n=5):
    """Rows in the tables of the example migrations present at versions 1-3, in one transaction."""
    c = db_connect(db)
    try:
        c.execute("BEGIN IMMEDIATE")
        names = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        cols = {r[1] for r in c.execute("PRAGMA table_info(sleep_sessions)")}
        temp = "target_temp_c" if "target_temp_c" in cols else "target_temp_f"
        for i in range(n):
            dev = c.execute("INSERT INTO devices (serial, model, firmware_version) VALUES (?, 'pod4', '1.2')",
                            ("%s-%d" % (tag, i),)).lastrowid
            ses = c.execute("INSERT INTO sleep_sessions (device_id, side, started_at, ended_at, %s) "
                            "VALUES (?, 'left', '2024-03-01T22:00:00Z', '2024-03-02T06:30:00Z', ?)" % temp,
                            (dev, (20.0 if temp.endswith("_c") else 68.0) + i)).lastrowid
            if "vitals" in names:
                for k in range(3):
                    c.execute("INSERT INTO vitals (session_id, sampled_at, heart_rate_bpm, hrv_ms, breathing_rate) "
                              "VALUES (?, ?, ?, 40.5, 14.0)", (ses, "2024-03-01T23:00:%02dZ" % (k * 10), 55 + k))
            if "water_readings" in names:
                wcols = {r[1] for r in c.execute("PRAGMA table_info(water_readings)")}
                wt = "water_temp_c" if "water_temp_c" in wcols else "water_temp_f"
                c.execute("INSERT INTO water_readings (device_id, measured_at, level_pct, %s, leak_detected) "
                          "VALUES (?, '2024-03-01T21:00:00Z', 80, ?, ?)" % wt,
                          (dev, 30.0 if wt.endswith("_c") else 86.0, i % 2))
        c.execute("COMMIT")
    finally:
        c.close()


class BackupTestCase(harness.TestCase):

    def copy_examples(self, name="migrations"):
        """The example migrations, copied; self.latest is their highest version (the tests rely on
        versions 1..latest without gaps, on 0006 being irreversible, and on the tables of 0001-0003)."""
        dst = super().copy_examples(name)
        versions = sorted(int(f.split("_", 1)[0]) for f in os.listdir(dst) if f.endswith(".up.sql"))
        self.assertEqual(versions, list(range(1, len(versions) + 1)), "example migrations: %r" % versions)
        self.assertGreaterEqual(len(versions), 7, "example migrations: %r" % versions)
        self.latest = versions[-1]
        return dst

    def backup_dir_of(self, db):
        return db + "-backups"

    def assertBackupInfo(self, info, version, job_id, directory, db_base):
        """A backup object of a result: its fields, its name, and the file itself."""
        self.assertIsInstance(info, dict, info)
        m = BACKUP_NAME_RE.match(info.get("file", ""))
        self.assertIsNotNone(m, "backup file name does not follow <db>-<stamp>-v<version>-job<id>.sqlite: %r" % info)
        self.assertEqual(m.group("db"), db_base, info)
        self.assertEqual(int(m.group("version")), version, info)
        self.assertEqual(int(m.group("job")), job_id, info)
        self.assertEqual(info.get("version"), version, info)
        self.assertEqual(info.get("job_id"), job_id, info)
        self.assertEqual(info.get("path"), os.path.join(directory, info["file"]), info)
        self.assertRegex(info.get("time", ""), TIME_RE)
        st = m.group("stamp")
        self.assertEqual(info["time"], "%s-%s-%sT%s:%s:%s" % (st[0:4], st[4:6], st[6:8], st[9:11], st[11:13], st[13:]),
                         "time must be the stamp of the file name")
        self.assertIsInstance(info.get("size"), int, info)
        self.assertGreater(info["size"], 0, info)
        self.assertTrue(os.path.isfile(info["path"]), "backup file %s does not exist" % info["path"])
        self.assertEqual(version_in(info["path"]), version, "the backup does not hold version %d" % version)
        return info


# ---------------------------------------------------------------------------------------------
# 1. Restore round trip


class RestoreRoundTripTest(BackupTestCase):

    def test_restore_pre_up_backup_gives_back_schema_and_data(self):
        db = self.path("sleep.db")
        bdir = self.backup_dir_of(db)
        d = self.daemon(db, self.copy_examples())
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        write_sample_rows(db, "before")
        before = snapshot(db)
        self.assertGreater(len(before[1]["devices"]), 0)
        attempts_before = before[1]["migrated_attempts"]

        # The up takes its backup first: a backup event before anything is applied.
        events, final = d.rpc("up")
        res = self.assertResult(final)
        self.assertEqual((res["status"], res["from_version"], res["to_version"]), ("applied", 3, self.latest), res)
        pre_up = self.assertBackupInfo(res.get("backup"), 3, res["job_id"], bdir, "sleep.db")
        self.assertIsInstance(pre_up.get("duration_ms"), int, pre_up)
        kinds = [e["event"] for e in events]
        self.assertIn("backup", kinds, events)
        first_backup = kinds.index("backup")
        self.assertLess(first_backup, kinds.index("migration"), "the backup event must precede the migration: %r" % kinds)
        self.assertLess(len(kinds) - 1 - kinds[::-1].index("backup"), kinds.index("migration"), kinds)
        done = [e for e in events if e["event"] == "backup" and e.get("phase") == "done"]
        self.assertEqual(len(done), 1, events)
        self.assertEqual(done[0]["backup"]["file"], pre_up["file"], events)
        self.assertEqual(done[0]["job_id"], res["job_id"], events)

        # The backup is exactly the database as it was before the up.
        self.assertEqual(snapshot(pre_up["path"], readonly=True), before,
                         "the pre-up backup differs from the database before the up")

        # The world moves on: data written at the new version.
        write_sample_rows(db, "after", n=3)
        after = snapshot(db)
        self.assertNotEqual(after, before)
        self.assertEqual(applied_versions(db), list(range(1, self.latest + 1)))

        # Restore the pre-up backup.
        _, final = d.rpc("restore", {"backup": pre_up["file"]})
        r = self.assertResult(final)
        self.assertEqual(r["status"], "restored", r)
        self.assertEqual((r["from_version"], r["to_version"]), (self.latest, 3), r)
        self.assertEqual(r["restored_from"], pre_up["file"], r)
        pre_restore = self.assertBackupInfo(r.get("backup"), self.latest, r["job_id"], bdir, "sleep.db")
        self.assertNotEqual(pre_restore["file"], pre_up["file"])

        # Schema (all of sqlite_master) and data exactly as before the up; history has the restore on top.
        now = snapshot(db)
        self.assertEqual(now[0], before[0], "sqlite_master differs from before the up")
        for table, rows in before[1].items():
            if table != "migrated_attempts":
                self.assertEqual(now[1][table], rows, "table %s differs from before the up" % table)
        self.assertEqual(set(now[1]), set(before[1]))
        self.assertEqual(now[1]["migrated_attempts"][:-1], after[1]["migrated_attempts"],
                         "the history below the restore must be the live history: a restore forgets no attempt")
        hist = d.call("history")["attempts"]
        top = hist[0]
        self.assertEqual((top["direction"], top["status"], top["from_version"], top["to_version"]),
                         ("restore", "succeeded", self.latest, 3), top)
        self.assertEqual(top["detail"], "restored from %s" % pre_up["file"], top)
        self.assertEqual(top["job_id"], r["job_id"], top)
        self.assertEqual([a["id"] for a in hist[1:]], [row[0] for row in reversed(after[1]["migrated_attempts"])])
        self.assertEqual(top["id"], after[1]["migrated_attempts"][-1][0] + 1, "attempt ids continue, never reused")
        self.assertEqual(harness.journal_mode(db), "wal", "a restore must leave the live database in WAL mode")
        st = d.status()
        self.assertEqual(st["current_version"], 3, st)
        self.assertEqual([p["version"] for p in st["pending"]], list(range(4, self.latest + 1)))
        self.assertEqual(st["problems"], [], st)

        # The pre-restore backup holds the post-up state, rows written after the up included.
        self.assertEqual(snapshot(pre_restore["path"], readonly=True), after,
                         "the pre-restore backup is not the database as it was before the restore")
        self.assertEqual(integrity(pre_restore["path"]), ["ok"])

        # The restore can itself be undone with migratectl, and the daemon still migrates afterwards.
        rr = d.ctl("restore", pre_restore["file"], json_out=False)
        self.assertCtl(rr, 0)
        self.assertIn("Restored %s" % pre_restore["file"], rr.out)
        undone = snapshot(db)
        self.assertEqual(undone[0], after[0])
        for table, rows in after[1].items():
            if table != "migrated_attempts":
                self.assertEqual(undone[1][table], rows, table)
        self.assertEqual(d.status()["current_version"], self.latest)
        self.assertCtl(d.ctl("down"), 0)
        self.assertEqual(harness.current_version(db), self.latest - 1)

    def test_restore_backup_of_database_never_migrated(self):
        """The very first up of a database backs it up at version 0, before the bookkeeping tables
        exist; that backup is the way back to before the up and must be restorable. Both a fresh
        database (created by the daemon) and an existing one with its own tables."""
        for legacy in (False, True):
            with self.subTest(legacy=legacy):
                db = self.path("legacy.db" if legacy else "fresh.db")
                if legacy:
                    harness.create_wal_db(db, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL);\n"
                                              "INSERT INTO notes (body) VALUES ('first'), ('second'), ('third');\n")
                d = self.daemon(db, self.copy_examples("migrations-%d" % legacy))
                before_schema = schema(db)
                notes_before = None
                if legacy:
                    c = db_connect(db)
                    notes_before = c.execute("SELECT * FROM notes ORDER BY id").fetchall()
                    c.close()
                res = d.call("up")
                pre_up = self.assertBackupInfo_v0(res.get("backup"), res["job_id"], self.backup_dir_of(db))
                write_sample_rows(db, "after-up")
                if legacy:
                    c = db_connect(db)
                    c.execute("INSERT INTO notes (body) VALUES ('after the up')")
                    c.close()
                _, final = d.rpc("restore", {"backup": pre_up["file"]})
                r = self.assertResult(final, "restoring the backup the first up took (%s) failed: %r"
                                      % (pre_up["file"], final))
                self.assertEqual((r["status"], r["from_version"], r["to_version"]),
                                 ("restored", self.latest, 0), r)
                self.assertEqual(schema(db), before_schema)
                if legacy:
                    c = db_connect(db)
                    self.assertEqual(c.execute("SELECT * FROM notes ORDER BY id").fetchall(), notes_before)
                    c.close()
                self.assertEqual(applied_versions(db), [])
                st = d.status()
                self.assertIn(st["current_version"], (0, None), st)
                self.assertEqual(len(st["pending"]), self.latest, st)
                self.assertEqual(harness.attempts(db)[-1]["direction"], "restore")
                d.stop()

    def assertBackupInfo_v0(self, info, job_id, directory):
        self.assertIsInstance(info, dict, info)
        m = BACKUP_NAME_RE.match(info.get("file", ""))
        self.assertIsNotNone(m, info)
        self.assertEqual((int(m.group("version")), int(m.group("job"))), (0, job_id), info)
        self.assertEqual(info["path"], os.path.join(directory, info["file"]))
        self.assertTrue(os.path.isfile(info["path"]))
        return info

    def test_restore_default_newest_and_refusals(self):
        db = self.path("db.sqlite")
        bdir = self.backup_dir_of(db)
        d = self.daemon(db, self.copy_examples())

        # No backups at all yet.
        _, final = d.rpc("restore")
        err = self.assertError(final, "unknown_backup")
        self.assertIn(bdir, err["message"])
        self.assertEqual([f for f in (listdir(bdir) or []) if BACKUP_NAME_RE.match(f)], [])

        self.assertCtl(d.ctl("up", "--to", 2), 0)     # backup v0
        b2 = d.call("backup")["backup"]                # v2
        self.assertCtl(d.ctl("up", "--to", 4), 0)     # backup v2 (newer)
        b4 = d.call("backup")["backup"]                # v4, the newest
        self.assertEqual(b4["version"], 4)
        listed = d.call("backups")["backups"]
        self.assertEqual(listed[0]["file"], b4["file"], "backups must list the newest first")
        times = [b["time"] for b in listed]
        self.assertEqual(times, sorted(times, reverse=True), listed)
        self.assertCtl(d.ctl("up"), 0)
        files_before = listdir(bdir)
        checkpoint(db)
        h = dump_hash(db)
        n_attempts = len(harness.attempts(db))

        # Refusals change nothing.
        for params, code in (({"backup": "../" + b2["file"]}, "invalid_params"),
                             ({"backup": os.path.join(bdir, b2["file"])}, "invalid_params"),
                             ({"backup": "sub/" + b2["file"]}, "invalid_params"),
                             ({"backup": "db.sqlite-20000101T000000.000Z-v1-job999.sqlite"}, "unknown_backup"),
                             ({"backup": "nonsense.sqlite"}, "unknown_backup")):
            _, final = d.rpc("restore", params)
            self.assertError(final, code, "restore %r: %r" % (params, final))
        # A file named like a backup that is not a complete database: never listed, never restored.
        junk = "db.sqlite-20000101T000000.000Z-v3-job998.sqlite"
        with open(os.path.join(bdir, junk), "wb") as f:
            f.write(b"this is not an SQLite database" * 200)
        self.assertNotIn(junk, [b["file"] for b in d.call("backups")["backups"]])
        _, final = d.rpc("restore", {"backup": junk})
        err = self.assertError(final, "unknown_backup")
        self.assertIn(junk, err["message"])
        # One whose header is sound but whose pages are damaged: listed, refused by the verification.
        junk2 = "db.sqlite-20000101T000000.000Z-v3-job997.sqlite"
        with open(b2["path"], "rb") as f:
            data = bytearray(f.read())
        page = int.from_bytes(data[16:18], "big")
        data[page:page + 64] = b"\xa5" * 64  # page 2's b-tree header
        with open(os.path.join(bdir, junk2), "wb") as f:
            f.write(bytes(data))
        os.chmod(os.path.join(bdir, junk2), 0o600)
        _, final = d.rpc("restore", {"backup": junk2})
        err = self.assertError(final, "integrity_failed")
        self.assertIn(junk2, err["message"])
        os.unlink(os.path.join(bdir, junk))
        os.unlink(os.path.join(bdir, junk2))
        r = d.ctl("restore", "no-such-backup.sqlite")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "unknown_backup")
        self.assertEqual(dump_hash(db), h, "a refused restore changed the database")
        self.assertEqual(len(harness.attempts(db)), n_attempts)
        self.assertEqual(listdir(bdir), files_before, "a refused restore must not take a backup")
        self.assertEqual(harness.current_version(db), self.latest)

        # Without a name: the newest backup, which is the pre-up backup of the last up (v4).
        newest = d.call("backups")["backups"][0]
        self.assertEqual(newest["version"], 4, newest)
        r = d.ctl("restore")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["restored_from"], newest["file"], r.json)
        self.assertEqual(r.json["to_version"], 4)
        self.assertEqual(applied_versions(db), [1, 2, 3, 4])


READER_SCRIPT = r'''
import json, os, sqlite3, sys
db, out_path, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=60, isolation_level=None)
seen, errors = {}, []
print("ready", flush=True)
while not os.path.exists(stop_path):
    try:
        c.execute("BEGIN")
        row = c.execute("SELECT (SELECT group_concat(tag) FROM marker), (SELECT count(*) FROM filler), "
                        "(SELECT coalesce(max(version), 0) FROM migrated_schema)").fetchone()
        c.execute("COMMIT")
        key = json.dumps(list(row))
        if key not in seen:
            print("saw " + key, flush=True)  # each new state once: the test waits for these
        seen[key] = seen.get(key, 0) + 1
    except sqlite3.Error as e:
        errors.append(repr(e))
        if c.in_transaction:
            c.execute("ROLLBACK")
with open(out_path, "w") as f:
    json.dump({"seen": seen, "errors": errors}, f)
print("done", flush=True)
'''


class RestoreAtomicityTest(BackupTestCase):

    def test_reader_sees_old_or_new_content_never_a_mix(self):
        db = self.path("db.sqlite")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("tables", "CREATE TABLE marker (tag TEXT NOT NULL);\nCREATE TABLE filler (x BLOB);\n",
                "DROP TABLE filler;\nDROP TABLE marker;\n"),
            2: ("extra", "CREATE TABLE extra (id INTEGER PRIMARY KEY);\n", "DROP TABLE extra;\n"),
        })
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        c = db_connect(db)
        c.executescript("BEGIN; INSERT INTO marker VALUES ('A');"
                        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 12) "
                        "INSERT INTO filler SELECT randomblob(1048576) FROM n; COMMIT;")
        c.close()
        state_a = d.call("backup")["backup"]
        self.assertCtl(d.ctl("up"), 0)
        c = db_connect(db)
        c.executescript("BEGIN; DELETE FROM filler; UPDATE marker SET tag = 'B'; COMMIT;")
        c.close()

        out, stop = self.path("reader.json"), self.path("reader.stop")
        rd = self.helper(READER_SCRIPT, [db, out, stop], "reader")
        rd.expect_line("ready")
        rd.expect_line('saw ["B", 0, 2]')  # reading the state before the restore
        res = d.call("restore", {"backup": state_a["file"]})
        self.assertEqual(res["to_version"], 1)
        rd.expect_line('saw ["A", 12, 1]', timeout=30)  # and then the restored one, nothing between
        with open(stop, "w"):
            pass
        rd.expect_line("done", timeout=30)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual(report["errors"], [], "the reader got errors during the restore")
        seen = {tuple(json.loads(k)): n for k, n in report["seen"].items()}
        self.assertEqual(set(seen), {("B", 0, 2), ("A", 12, 1)},
                         "a reader saw something else than the state before or after the restore: %r" % seen)


# ---------------------------------------------------------------------------------------------
# 2. Consistency while another process writes


PAIR_WRITER = r'''
import os, sqlite3, sys, time
db, log_path, stop_path = sys.argv[1], sys.argv[2], sys.argv[3]
c = sqlite3.connect(db, timeout=60, isolation_level=None)
assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal", "database not in WAL mode"
log = open(log_path, "a", buffering=1)
print("ready", flush=True)
while not os.path.exists(stop_path):
    c.execute("BEGIN IMMEDIATE")
    rid = c.execute("INSERT INTO a (payload) VALUES (randomblob(300))").lastrowid
    c.execute("INSERT INTO b (id, payload) VALUES (?, randomblob(300))", (rid,))
    c.execute("COMMIT")
    log.write("%d\n" % rid)
    time.sleep(0.001)
log.close()
print("done", flush=True)
'''


def logged_ids(path):
    """Ids of complete lines only: a line being written has no newline yet."""
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")[:-1]
    return [int(x) for x in lines]


class BackupWhileWritingTest(BackupTestCase):

    def test_backup_is_a_consistent_snapshot(self):
        db = self.path("busy.db")
        harness.create_wal_db(db, "CREATE TABLE filler (x BLOB);\n"
                                  "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 40) "
                                  "INSERT INTO filler SELECT randomblob(1048576) FROM c;\n")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("pairs", "CREATE TABLE a (id INTEGER PRIMARY KEY, payload BLOB);\n"
                         "CREATE TABLE b (id INTEGER PRIMARY KEY, payload BLOB);\n", "DROP TABLE b;\nDROP TABLE a;\n"),
            2: ("later", "CREATE TABLE later (id INTEGER PRIMARY KEY);\n", "DROP TABLE later;\n"),
        })
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        log, stop = self.path("writer.log"), self.path("writer.stop")
        w = self.helper(PAIR_WRITER, [db, log, stop], "pair-writer")
        w.expect_line("ready")
        wait_until(lambda: len(logged_ids(log)) >= 100, 30, what="the writer's first 100 commits")

        grew_during = 0
        for round_no in range(3):
            committed = logged_ids(log)
            _, final = d.rpc("backup")
            after = logged_ids(log)
            res = self.assertResult(final)
            self.assertEqual(res["status"], "backed_up", res)
            info = self.assertBackupInfo(res["backup"], 1, res["job_id"], self.backup_dir_of(db), "busy.db")
            if len(after) > len(committed):
                grew_during += 1
            self.assertIsNone(w.proc.poll(), "the writer died: %s" % w.stderr())

            path = info["path"]
            self.assertEqual(header_journal_bytes(path), (1, 1), "a backup must be stored in rollback-journal mode")
            self.assertEqual(integrity(path), ["ok"], "backup %d fails integrity_check" % round_no)
            c = ro_connect(path)
            try:
                a_ids = [r[0] for r in c.execute("SELECT id FROM a ORDER BY id")]
                b_ids = [r[0] for r in c.execute("SELECT id FROM b ORDER BY id")]
                n_filler = c.execute("SELECT count(*) FROM filler").fetchone()[0]
            finally:
                c.close()
            self.assertEqual(n_filler, 40)
            # No partial transaction: every transaction wrote the same id into a and b.
            self.assertEqual(len(a_ids), len(b_ids), "backup %d holds half a transaction" % round_no)
            self.assertEqual(a_ids, b_ids)
            # One writer, sequential ids: a snapshot holds exactly ids 1..n.
            self.assertEqual(a_ids, list(range(1, len(a_ids) + 1)))
            # Everything committed before the request is in it.
            missing = set(committed) - set(a_ids)
            self.assertFalse(missing, "backup %d lacks %d rows committed before the request, e.g. %r"
                             % (round_no, len(missing), sorted(missing)[:5]))
            # Nothing that was not committed when the answer came (the writer logs after COMMIT, so
            # at most the one transaction between its COMMIT and its log line).
            self.assertLessEqual(len(a_ids), len(after) + 1, "backup %d holds rows never committed" % round_no)

        # The backup an up takes before its change, with the writer still going.
        committed = logged_ids(log)
        res = d.call("up")
        info = self.assertBackupInfo(res["backup"], 1, res["job_id"], self.backup_dir_of(db), "busy.db")
        self.assertEqual(integrity(info["path"]), ["ok"])
        c = ro_connect(info["path"])
        try:
            a_ids = [r[0] for r in c.execute("SELECT id FROM a ORDER BY id")]
            b_ids = [r[0] for r in c.execute("SELECT id FROM b ORDER BY id")]
            self.assertIsNone(c.execute("SELECT 1 FROM sqlite_master WHERE name = 'later'").fetchone())
        finally:
            c.close()
        self.assertEqual(a_ids, b_ids)
        self.assertEqual(a_ids, list(range(1, len(a_ids) + 1)))
        self.assertFalse(set(committed) - set(a_ids))
        self.assertEqual(applied_versions(db), [1, 2])

        with open(stop, "w"):
            pass
        w.expect_line("done", timeout=30)
        self.assertGreater(grew_during, 0, "the writer never committed while a backup ran; the test proves nothing")
        self.assertFalse(w.stderr().strip(), w.stderr())
        # The live database is unharmed and the writer's rows are all there.
        c = db_connect(db)
        self.assertEqual(c.execute("SELECT count(*) FROM a").fetchone()[0], len(logged_ids(log)))
        self.assertEqual(c.execute("SELECT count(*) FROM b").fetchone()[0], len(logged_ids(log)))
        c.close()


# ---------------------------------------------------------------------------------------------
# 3. No space for the backup


class NoSpaceTest(BackupTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("mounting a tmpfs needs root")

    def test_up_refused_before_any_change_when_backup_dir_is_full(self):
        db = self.path("big.db")
        harness.create_wal_db(db, "CREATE TABLE filler (x BLOB);\n"
                                  "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 20) "
                                  "INSERT INTO filler SELECT randomblob(1048576) FROM c;\n")
        self.assertGreater(os.path.getsize(db) + wal_size(db), 20 * MiB)
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
            2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
        })
        bdir = self.path("small-backups")
        os.mkdir(bdir, 0o700)
        d = self.daemon(db, mig, extra_args=["--backup-dir", bdir], start=False)
        d.argv = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                  'mount -t tmpfs -o size=4m,mode=0700 tmpfs "$0" && exec "$@"', bdir] + d.argv
        d.start()
        # The daemon's namespace has the 4 MiB tmpfs on the backup dir; ours does not.
        with open("/proc/%d/mountinfo" % d.pid) as f:
            mounts = [l.split() for l in f]
        self.assertTrue([m for m in mounts if m[4] == bdir and "tmpfs" in m], "no tmpfs on %s in the daemon" % bdir)
        self.assertFalse(os.path.ismount(bdir))

        busy, _, _ = checkpoint(db)
        self.assertEqual(busy, 0)
        self.assertEqual(wal_size(db), 0)
        h = sha256_file(db)
        schema_before = schema(db)
        rows_before = harness.applied_rows(db)

        events, final = d.rpc("up")
        # refused before the job starts (before any unit would be stopped): its own code
        err = self.assertError(final, "backup_space")
        msg = err["message"]
        self.assertIn("not enough space for the backup in %s" % bdir, msg)
        self.assertIn("nothing was stopped or changed", msg)
        m = re.search(r"(\d+) MiB free, about (\d+) MiB needed", msg)
        self.assertIsNotNone(m, msg)
        self.assertLessEqual(int(m.group(1)), 4, msg)
        self.assertGreaterEqual(int(m.group(2)), 20 + 16, msg)
        self.assertLessEqual(err.get("free_bytes", 1 << 62), 4 * MiB, err)
        self.assertGreaterEqual(err.get("needed_bytes", 0), 20 * MiB, err)
        self.assertFalse([e for e in events if e["event"] in ("migration", "committed")], events)

        # Nothing changed: not the schema, not the bookkeeping, not a byte of the main file.
        self.assertEqual(schema(db), schema_before)
        self.assertEqual(harness.applied_rows(db), rows_before)
        self.assertEqual(harness.attempts(db), [])
        self.assertEqual(sha256_file(db), h, "the main database file changed")
        self.assertEqual(wal_size(db), 0, "the refused job wrote to the WAL")
        # Nothing half-written in the daemon's view of the backup dir.
        self.assertEqual(os.listdir("/proc/%d/root%s" % (d.pid, bdir)), [])

        # migratectl: exit 1 and the message.
        r = d.ctl("up", json_out=False)
        self.assertCtl(r, 1)
        self.assertIn("not enough space for the backup", r.out + r.err)
        r = d.ctl("up")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "backup_space")
        # An on-demand backup and a rehearsal need the same room.
        _, final = d.rpc("backup")
        self.assertIn("not enough space", self.assertError(final, "backup_failed")["message"])
        _, final = d.rpc("up", {"rehearse": True})
        self.assertError(final, "backup_failed")
        self.assertEqual(os.listdir("/proc/%d/root%s" % (d.pid, bdir)), [])
        self.assertEqual(sha256_file(db), h)
        self.assertEqual(harness.attempts(db), [])
        self.assertTrue(d.alive())
        self.assertIn(d.status()["current_version"], (0, None))


# ---------------------------------------------------------------------------------------------
# 4. Retention


class RetentionTest(BackupTestCase):

    def test_keep_three(self):
        db = self.path("db.sqlite")
        bdir = self.path("kept")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
            2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
        })
        os.mkdir(bdir, 0o700)
        # Files that are not this database's backups are never pruned.
        foreign = ["other.sqlite-20000101T000000.000Z-v1-job1.sqlite", "notes.txt"]
        for f in foreign:
            with open(os.path.join(bdir, f), "w") as fh:
                fh.write("not ours\n")
        d = self.daemon(db, mig, extra_args=["--backup-dir", bdir, "--keep", "3"])
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        first = [f for f in listdir(bdir) if BACKUP_NAME_RE.match(f) and f.startswith("db.sqlite-")]
        self.assertEqual(len(first), 1)
        # Manual backups are kept apart: never pruned, never counted.
        manual = []
        for i in range(6):
            res = d.call("backup")
            self.assertEqual(res["status"], "backed_up")
            info = self.assertBackupInfo(res["backup"], 1, res["job_id"], bdir, "db.sqlite")
            self.assertTrue(info["file"].endswith("-manual.sqlite"), info)
            self.assertEqual(info["kind"], "manual", info)
            manual.append(info["file"])
        ours = sorted(f for f in listdir(bdir) if f.startswith("db.sqlite-"))
        self.assertEqual(ours, sorted(first + manual))
        # Automatic backups rotate: the newest three remain.
        auto = list(first)
        for i in range(4):
            for direction in ("up", "down"):
                res = d.call(direction)
                self.assertEqual(res["backup"]["kind"], "auto", res)
                auto.append(res["backup"]["file"])
                ours = sorted(f for f in listdir(bdir) if f.startswith("db.sqlite-"))
                self.assertEqual(ours, sorted(manual + auto[-3:]), "after %s %d" % (direction, i))
        for f in foreign:
            self.assertIn(f, listdir(bdir), "a file that is not a backup of this database was deleted")
        self.assertEqual(len(listdir(bdir)), 3 + 6 + len(foreign), listdir(bdir))
        listing = d.call("backups")
        self.assertEqual((listing["dir"], listing["keep"]), (bdir, 3), listing)
        self.assertEqual(sorted(b["file"] for b in listing["backups"]), sorted(manual + auto[-3:]), listing)
        r = d.ctl("backups", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("Backups in %s (keeping 3)" % bdir, r.out)
        for f in auto[-3:] + manual:
            self.assertIn(f, r.out)


# ---------------------------------------------------------------------------------------------
# 5. Rehearsal


FAILING_0003 = """\
-- 0003: a good statement, then one that fails at run time.
-- The failing statement is on line 9.

CREATE TABLE c1 (
        id INTEGER PRIMARY KEY
);

-- next line fails: no such table
INSERT INTO no_such_table VALUES (1);
CREATE TABLE c2 (id INTEGER);
"""


class RehearsalTest(BackupTestCase):

    def assertNoRehearsalLeftovers(self, bdir):
        left = [f for f in (listdir(bdir) or []) if ".rehearsal" in f or f.endswith(("-wal", "-shm", "-journal"))]
        self.assertEqual(left, [], "rehearsal leftovers in %s" % bdir)

    def test_failing_rehearsal_leaves_live_database_alone(self):
        db = self.path("db.sqlite")
        bdir = self.backup_dir_of(db)
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("make_a", "CREATE TABLE a (id INTEGER PRIMARY KEY);\nINSERT INTO a VALUES (1);\n", "DROP TABLE a;\n"),
            2: ("make_b", "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER);\n", "DROP TABLE b;\n"),
            3: ("make_c", FAILING_0003, "DROP TABLE c2;\nDROP TABLE c1;\n"),
        })
        d = self.daemon(db, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        d.wait_idle()
        busy, _, _ = checkpoint(db)
        self.assertEqual(busy, 0)
        self.assertEqual(wal_size(db), 0)
        h_main, h_dump = sha256_file(db), dump_hash(db)
        files = listdir(bdir)
        attempts_before = harness.attempts(db)

        events, final = d.rpc("up", {"rehearse": True})
        err = self.assertError(final, "migration_failed")
        self.assertTrue(err["message"].startswith("rehearsal failed (the live database was not touched): "), err)
        self.assertIn("0003_make_c.up.sql:9:", err["message"])
        self.assertIn("no_such_table", err["message"])
        self.assertFileIs(err.get("file"), "0003_make_c.up.sql")
        self.assertEqual(err.get("line"), 9, err)
        self.assertEqual(err.get("version"), 3, err)
        self.assertIs(err.get("rehearsal"), True, err)

        self.assertEqual(sha256_file(db), h_main, "the live main file changed")
        self.assertEqual(wal_size(db), 0, "the rehearsal wrote to the live WAL")
        self.assertEqual(dump_hash(db), h_dump)
        self.assertEqual(harness.attempts(db), attempts_before, "a rehearsal must not touch the live history")
        self.assertNoRehearsalLeftovers(bdir)
        self.assertEqual(listdir(bdir), files)

        r = d.ctl("up", "--rehearse", json_out=False)
        self.assertCtl(r, 1)
        self.assertIn("rehearsal failed (the live database was not touched)", r.out + r.err)
        self.assertIn("0003_make_c.up.sql", r.out + r.err)
        self.assertEqual(sha256_file(db), h_main)
        self.assertEqual(wal_size(db), 0)
        self.assertNoRehearsalLeftovers(bdir)
        self.assertEqual(d.status()["current_version"], 1)

    def test_successful_rehearsal_reports_sizes_and_changes_nothing(self):
        db = self.path("db.sqlite")
        bdir = self.path("bk")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("make_a", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", "DROP TABLE a;\n"),
            2: ("fill", "CREATE TABLE big (id INTEGER PRIMARY KEY, x BLOB);\n"
                        "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 2000) "
                        "INSERT INTO big (x) SELECT randomblob(1000) FROM c;\n", "DROP TABLE big;\n"),
            3: ("idx", "CREATE INDEX big_x ON big (x);\n", "DROP INDEX big_x;\n"),
        })
        d = self.daemon(db, mig, extra_args=["--backup-dir", bdir])
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        d.wait_idle()
        ck = checkpoint(db)
        self.assertEqual((ck[0], wal_size(db)), (0, 0), "checkpoint with the daemon idle: %r" % (ck,))
        h_main, h_dump = sha256_file(db), dump_hash(db)
        size = logical_size(db)
        files = listdir(bdir)

        _, final = d.rpc("up", {"rehearse": True})
        res = self.assertResult(final)
        self.assertIs(res.get("rehearsal"), True, res)
        self.assertEqual((res["status"], res["from_version"], res["to_version"]), ("applied", 1, 3), res)
        self.assertEqual([a["version"] for a in res["applied"]], [2, 3])
        self.assertEqual(res["size_before"], size, res)
        self.assertGreater(res["size_after"], res["size_before"] + 2000 * 1000, res)
        self.assertEqual(res["size_change"], res["size_after"] - res["size_before"], res)

        self.assertEqual(applied_versions(db), [1])
        self.assertNotIn("big", harness.tables(db))
        self.assertEqual(sha256_file(db), h_main)
        self.assertEqual(wal_size(db), 0)
        self.assertEqual(dump_hash(db), h_dump)
        self.assertNoRehearsalLeftovers(bdir)
        self.assertEqual(listdir(bdir), files)
        st = d.status()
        self.assertEqual((st["current_version"], [p["version"] for p in st["pending"]]), (1, [2, 3]), st)

        r = d.ctl("up", "--rehearse", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("Rehearsal on a copy (the live database was not touched)", r.out)
        self.assertIn("Size change: +", r.out)
        self.assertEqual(applied_versions(db), [1])
        # The real thing still works afterwards.
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2, 3])


# ---------------------------------------------------------------------------------------------
# 6. Checks after and before the change


class IntegrityTest(BackupTestCase):

    def test_foreign_key_violation_rolled_back_in_every_mode(self):
        for mode in ("quick", "full", "off"):
            with self.subTest(integrity=mode):
                db = self.path("fk-%s.sqlite" % mode)
                bdir = self.backup_dir_of(db)
                mig = harness.write_migrations(self.path("migrations-fk"), {
                    1: ("parents", "CREATE TABLE parent (id INTEGER PRIMARY KEY);\n"
                                   "CREATE TABLE child (id INTEGER PRIMARY KEY,\n"
                                   "        parent_id INTEGER NOT NULL REFERENCES parent (id));\n"
                                   "INSERT INTO parent VALUES (1);\nINSERT INTO child (parent_id) VALUES (1);\n",
                        "DROP TABLE child;\nDROP TABLE parent;\n"),
                    2: ("orphan", "CREATE TABLE other (id INTEGER);\nDELETE FROM parent;\n",
                        "DROP TABLE other;\n"),
                })
                d = self.daemon(db, mig, extra_args=["--integrity", mode])
                self.assertCtl(d.ctl("up", "--to", 1), 0)
                before = snapshot(db)
                n_backups = len(listdir(bdir))
                _, final = d.rpc("up")
                err = self.assertError(final, "foreign_key_violation")
                self.assertIn("parent", err["message"])
                self.assertEqual(applied_versions(db), [1])
                now = snapshot(db)
                self.assertEqual(now[0], before[0])
                for t in ("parent", "child", "migrated_schema"):
                    self.assertEqual(now[1][t], before[1][t], t)
                self.assertNotIn("other", harness.tables(db))
                last = harness.attempts(db)[-1]
                self.assertEqual((last["status"], last["from_version"]), ("failed", 1), last)
                self.assertEqual(d.status()["current_version"], 1)
                # The backup was taken before the change (and it holds version 1).
                self.assertEqual(len(listdir(bdir)), n_backups + 1)
                self.assertCtl(d.ctl("up"), 1)
                d.stop()

    def _corrupt_copy(self):
        """A database at version 1 whose table t has one row changed behind its index's back: a
        record of a leaf page of t is rewritten in place. quick_check does not compare indexes with
        their tables; integrity_check does."""
        good = self.path("good.sqlite")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("names", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL);\n"
                         "CREATE INDEX t_name ON t (name);\n"
                         "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 100) "
                         "INSERT INTO t (name) SELECT printf('name-%05d', n) FROM c;\n", "DROP TABLE t;\n"),
            2: ("more", "CREATE TABLE more (id INTEGER PRIMARY KEY);\n", "DROP TABLE more;\n"),
        })
        d = self.daemon(good, mig)
        self.assertCtl(d.ctl("up", "--to", 1), 0)
        self.assertEqual(d.stop(), 0)
        self.assertEqual(wal_size(good), 0)
        c = db_connect(good)
        page_size = c.execute("PRAGMA page_size").fetchone()[0]
        root = c.execute("SELECT rootpage FROM sqlite_master WHERE name = 't'").fetchone()[0]
        c.close()
        self.assertGreater(root, 1)
        bad = self.path("corrupt.sqlite")
        with open(good, "rb") as f:
            data = bytearray(f.read())
        page = data[(root - 1) * page_size:root * page_size]
        self.assertEqual(page[0], 0x0D, "t's root page should be a table leaf page")
        needle = b"name-00042"
        self.assertEqual(page.count(needle), 1)
        at = (root - 1) * page_size + page.index(needle)
        data[at:at + len(needle)] = b"name-X0042"
        with open(bad, "wb") as f:
            f.write(data)
        # The fixture is what it claims to be.
        c = db_connect(bad)
        self.assertEqual(c.execute("PRAGMA quick_check").fetchall(), [("ok",)])
        self.assertNotEqual(c.execute("PRAGMA integrity_check").fetchall(), [("ok",)])
        c.close()
        return bad, mig

    def test_check_before_skipped_only_when_the_database_is_unchanged(self):
        db = self.path("skip.sqlite")
        mig = harness.write_migrations(self.path("migrations-skip"), {
            v: ("t%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v, None) for v in range(1, 5)
        })
        d = self.daemon(db, mig)
        r = d.ctl("up", "--to", 1)
        self.assertCtl(r, 0)
        self.assertEqual(r.json["integrity_before"], "quick_check")
        # nothing touched the database since the check inside the last job's transaction
        r = d.ctl("up", "--to", 2)
        self.assertCtl(r, 0)
        self.assertEqual(r.json["integrity_before"], "skipped")
        self.assertIn("integrity check before the job skipped", d.log())
        # another connection's commit: checked again
        with contextlib.closing(sqlite3.connect(db)) as c:
            c.execute("INSERT INTO t1 DEFAULT VALUES")
            c.commit()
        r = d.ctl("up", "--to", 3)
        self.assertCtl(r, 0)
        self.assertEqual(r.json["integrity_before"], "quick_check")
        # and the database that check saw is unchanged again
        r = d.ctl("up")
        self.assertCtl(r, 0)
        self.assertEqual(r.json["integrity_before"], "skipped")

    def test_full_integrity_refuses_corrupt_database_before_the_job(self):
        bad, mig = self._corrupt_copy()
        bdir = self.path("bk")
        h = sha256_file(bad)
        rows = harness.applied_rows(bad)
        attempts = harness.attempts(bad)
        d = self.daemon(bad, mig, extra_args=["--integrity", "full", "--backup-dir", bdir])
        events, final = d.rpc("up")
        err = self.assertError(final, "integrity_failed")
        self.assertIn("integrity_check", err["message"])
        self.assertIn("nothing was changed", err["message"])
        self.assertFalse([e for e in events if e["event"] in ("backup", "migration", "committed")], events)
        r = d.ctl("up")
        self.assertCtl(r, 1)
        self.assertEqual(r.json["error"]["code"], "integrity_failed")
        self.assertEqual(sha256_file(bad), h, "the corrupt database was modified")
        self.assertEqual(wal_size(bad), 0)
        self.assertEqual(harness.applied_rows(bad), rows)
        self.assertEqual(harness.attempts(bad), attempts, "a refused job must not be recorded as an attempt")
        self.assertNotIn("more", harness.tables(bad))
        self.assertFalse([f for f in (listdir(bdir) or []) if BACKUP_NAME_RE.match(f)],
                         "the check comes before the backup")
        self.assertEqual(d.status()["current_version"], 1)


    def test_restore_repairs_a_corrupt_database_and_says_so(self):
        """Restoring is the repair path: a database that fails its check is replaced (after a
        backup of it, so nothing is lost), and the result says what the check found."""
        bad, mig = self._corrupt_copy()
        good = self.path("good.sqlite")
        d = self.daemon(good, mig)
        b = d.call("backup")["backup"]
        self.assertEqual(d.stop(), 0)
        bdir = self.path("bk")
        os.mkdir(bdir, 0o700)
        # A sound backup of this database (same content as before the corruption).
        sound = b["file"].replace("good.sqlite", "corrupt.sqlite", 1)
        with open(b["path"], "rb") as src, open(os.path.join(bdir, sound), "wb") as dst:
            dst.write(src.read())
        d = self.daemon(bad, mig, extra_args=["--integrity", "full", "--backup-dir", bdir])
        _, final = d.rpc("restore", {"backup": sound})
        res = self.assertResult(final)
        self.assertEqual(res["status"], "restored")
        self.assertIn("integrity_check failed", res["replaced_database_check"])
        self.assertEqual(len(listdir(bdir)), 2, "the damaged database is backed up before it is replaced")
        with contextlib.closing(sqlite3.connect(bad)) as c:
            self.assertEqual(c.execute("PRAGMA integrity_check").fetchone()[0], "ok")


# ---------------------------------------------------------------------------------------------
# 7. Irreversible migrations point at the backup that undoes them


class IrreversibleTest(BackupTestCase):

    def test_down_across_irreversible_names_backup_and_restore_works(self):
        db = self.path("db.sqlite")
        bdir = self.backup_dir_of(db)
        ex = {v: down for v, _, _, down in harness.example_migrations()}
        self.assertIsNone(ex[6], "0006 of the examples is expected to be irreversible")
        d = self.daemon(db, self.copy_examples())
        self.assertCtl(d.ctl("up", "--to", 4), 0)                 # backup at v0
        write_sample_rows(db, "v4")
        self.assertCtl(d.ctl("up", "--to", 5), 0)                 # backup at v4
        res = d.call("up")                                        # backup at v5: the one that undoes 0006
        b5 = res["backup"]
        self.assertEqual(b5["version"], 5)
        newer = d.call("backup")["backup"]                        # v8, newer but useless for 0006
        self.assertEqual(newer["version"], self.latest)
        checkpoint(db)
        h = dump_hash(db)

        _, final = d.rpc("down", {"to": 4})
        err = self.assertError(final, "irreversible")
        self.assertIn("migratectl restore %s" % b5["file"], err["message"])
        self.assertIn("version 5", err["message"])
        self.assertEqual(err.get("restore_command"), "migratectl restore %s" % b5["file"], err)
        self.assertEqual(err.get("backup", {}).get("file"), b5["file"], err)
        self.assertEqual(err["backup"]["version"], 5, err)
        self.assertEqual(dump_hash(db), h)
        self.assertEqual(harness.current_version(db), self.latest)

        r = d.ctl("down", "--to", 4, json_out=False)
        self.assertCtl(r, 1)
        self.assertIn("migratectl restore %s" % b5["file"], r.out + r.err)

        # Run what the message says.
        argv = shlex.split(err["restore_command"])
        self.assertEqual(argv[:2], ["migratectl", "restore"])
        r = d.ctl(*argv[1:])
        self.assertCtl(r, 0)
        self.assertEqual(r.json["status"], "restored")
        self.assertEqual((r.json["from_version"], r.json["to_version"]), (self.latest, 5), r.json)
        self.assertEqual(d.status()["current_version"], 5)
        self.assertEqual(applied_versions(db), [1, 2, 3, 4, 5])
        c = db_connect(db)
        # The raw vitals samples are back (0006 had replaced them by per-minute averages).
        cols = [row[1] for row in c.execute("PRAGMA table_info(vitals)")]
        self.assertNotIn("samples", cols)
        self.assertEqual(c.execute("SELECT count(*) FROM vitals").fetchone()[0], 15)
        c.close()
        self.assertCtl(d.ctl("down", "--to", 4), 0)
        self.assertEqual(harness.current_version(db), 4)


# ---------------------------------------------------------------------------------------------
# 8. Dry runs


def read_file(path):
    with open(path) as f:
        return f.read()


class DryRunTest(BackupTestCase):

    def test_dry_run_shows_sql_transactions_backup_and_changes_nothing(self):
        db = self.path("db.sqlite")
        bdir = self.backup_dir_of(db)
        mig = self.copy_examples()
        d = self.daemon(db, mig)

        # On a fresh database: not even the backup directory appears.
        res = d.call("up", {"dry_run": True})
        self.assertIs(res.get("dry_run"), True)
        self.assertIsNone(listdir(bdir), "a dry run created the backup directory")
        self.assertEqual(harness.attempts(db), [])

        self.assertCtl(d.ctl("up", "--to", 2), 0)
        d.wait_idle()
        ck = checkpoint(db)
        self.assertEqual((ck[0], wal_size(db)), (0, 0), "checkpoint with the daemon idle: %r" % (ck,))
        files, h = listdir(bdir), sha256_file(db)
        attempts = harness.attempts(db)

        res = d.call("up", {"dry_run": True})
        self.assertIs(res["dry_run"], True)
        self.assertEqual((res["from_version"], res["to_version"]), (2, self.latest), res)
        steps = res["steps"]
        self.assertEqual([s["version"] for s in steps], list(range(3, self.latest + 1)))
        for s in steps:
            self.assertEqual(s["sql"], read_file(os.path.join(mig, harness.up_file(mig, s["version"]))),
                             "step %d's sql is not its file" % s["version"])
        self.assertEqual(res["transactions"], [{"transaction": True, "versions": list(range(3, self.latest + 1))}])
        self.assertEqual(res["backup"], {"dir": bdir, "keep": 10}, res)
        self.assertEqual(res["integrity_check"], "quick_check")
        self.assertEqual(res["units"], [])

        res = d.call("down", {"dry_run": True, "to": 0})
        self.assertEqual([s["version"] for s in res["steps"]], [2, 1])
        for s in res["steps"]:
            down = [f for f in os.listdir(mig) if f.startswith("%04d_" % s["version"]) and f.endswith(".down.sql")][0]
            self.assertEqual(s["sql"], read_file(os.path.join(mig, down)))
        self.assertEqual(res["backup"], {"dir": bdir, "keep": 10})

        r = d.ctl("up", "--dry-run", json_out=False)
        self.assertCtl(r, 0)
        self.assertIn("Dry run, nothing was changed.", r.out)
        self.assertIn("Backup first, into %s (keeping 10)" % bdir, r.out)
        self.assertIn("in one transaction: " + " ".join(str(v) for v in range(3, self.latest + 1)), r.out)
        self.assertIn("ALTER TABLE vitals ADD COLUMN samples INTEGER NOT NULL DEFAULT 1;", r.out)
        r = d.ctl("down", "--dry-run")
        self.assertCtl(r, 0)
        self.assertIn("sql", r.json["steps"][0])

        # Nothing changed: no backup, no attempt, not a byte.
        self.assertEqual(listdir(bdir), files, "a dry run took a backup")
        self.assertEqual(harness.attempts(db), attempts, "a dry run recorded an attempt")
        self.assertEqual(sha256_file(db), h, "a dry run changed the main database file")
        self.assertEqual(wal_size(db), 0, "a dry run wrote to the WAL")
        self.assertEqual(applied_versions(db), [1, 2])

        # Already current: nothing to back up.
        self.assertCtl(d.ctl("up"), 0)
        res = d.call("up", {"dry_run": True})
        self.assertEqual(res["steps"], [])
        self.assertIsNone(res["backup"])

    def test_dry_run_groups_transactions_and_reports_configured_backup(self):
        db = self.path("db.sqlite")
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("a", "CREATE TABLE a (id INTEGER);\n", "DROP TABLE a;\n"),
            2: ("b", "CREATE TABLE b (id INTEGER);\n", "DROP TABLE b;\n"),
            3: ("vacuum", "-- migrated: no-transaction\nVACUUM;\n", "-- migrated: no-transaction\nVACUUM;\n"),
            4: ("c", "CREATE TABLE c (id INTEGER);\n", "DROP TABLE c;\n"),
        })
        cfg = self.path("migrated.ini")
        bdir = self.path("from-config")
        with open(cfg, "w") as f:
            f.write("[backup]\ndir = %s\nkeep = 4\nintegrity = full\n" % bdir)
        d = self.daemon(db, mig, config=cfg)
        res = d.call("up", {"dry_run": True})
        self.assertEqual(res["transactions"], [{"transaction": True, "versions": [1, 2]},
                                               {"transaction": False, "versions": [3]},
                                               {"transaction": True, "versions": [4]}], res)
        self.assertEqual(res["backup"], {"dir": bdir, "keep": 4}, res)
        self.assertEqual(res["integrity_check"], "integrity_check")
        self.assertEqual(res["steps"][2]["sql"], "-- migrated: no-transaction\nVACUUM;\n")
        r = d.ctl("up", "--dry-run", json_out=False)
        self.assertIn("outside a transaction: 3", r.out)
        self.assertIsNone(listdir(bdir))
        # The config's backup dir is really used, and flags win over the file.
        res = d.call("up")
        self.assertEqual(os.path.dirname(res["backup"]["path"]), bdir)
        d.stop()
        d2 = self.daemon(db, mig, config=cfg, extra_args=["--keep", "7", "--integrity", "off",
                                                          "--backup-dir", self.path("flag-dir")])
        self.assertCtl(d2.ctl("down"), 0)
        res = d2.call("up", {"dry_run": True})
        self.assertEqual(res["backup"], {"dir": self.path("flag-dir"), "keep": 7})
        self.assertEqual(res["integrity_check"], "off")


# ---------------------------------------------------------------------------------------------
# 9. Permissions and leftovers


class PermissionsTest(BackupTestCase):

    def start_with_umask(self, *a, **kw):
        old = os.umask(0)
        try:
            return self.daemon(*a, **kw)
        finally:
            os.umask(old)

    def assertOnlyBackups(self, bdir, db_base):
        for f in listdir(bdir):
            self.assertRegex(f, BACKUP_NAME_RE, "unexpected file in %s" % bdir)
            self.assertTrue(f.startswith(db_base + "-"))
            p = os.path.join(bdir, f)
            self.assertEqual(mode_of(p), 0o600, "%s has mode %o" % (f, mode_of(p)))
            self.assertEqual(header_journal_bytes(p), (1, 1), "%s is not in rollback-journal mode" % f)

    def test_modes_and_no_wal_beside_backups(self):
        db = self.path("db.sqlite")
        bdir = self.backup_dir_of(db)
        # umask 0: whatever is not made private explicitly would be world-readable.
        d = self.start_with_umask(db, self.copy_examples())
        self.assertCtl(d.ctl("up", "--to", 3), 0)
        self.assertEqual(mode_of(bdir), 0o700)
        self.assertOnlyBackups(bdir, "db.sqlite")
        b3 = d.call("backup")["backup"]
        self.assertCtl(d.ctl("up"), 0)
        r = d.call("restore", {"backup": b3["file"]})
        self.assertEqual(r["to_version"], 3)
        self.assertEqual(harness.journal_mode(db), "wal")
        self.assertEqual(header_journal_bytes(db), (2, 2))
        self.assertOnlyBackups(bdir, "db.sqlite")
        self.assertEqual(len(listdir(bdir)), 4)  # up v0, backup v3, up v3, pre-restore v8
        d.call("backups")
        _, final = d.rpc("up", {"rehearse": True})
        self.assertResult(final)
        self.assertOnlyBackups(bdir, "db.sqlite")
        self.assertEqual(mode_of(bdir), 0o700)

    def test_existing_open_directory_is_made_private(self):
        db = self.path("db.sqlite")
        bdir = self.path("shared-backups")
        os.mkdir(bdir)
        os.chmod(bdir, 0o755)
        d = self.start_with_umask(db, self.copy_examples(), extra_args=["--backup-dir", bdir])
        res = d.call("backup")
        self.assertEqual(mode_of(bdir), 0o700)
        self.assertEqual(mode_of(res["backup"]["path"]), 0o600)
        self.assertOnlyBackups(bdir, "db.sqlite")


if __name__ == "__main__":
    harness.main()
