# SPDX-License-Identifier: MIT
"""migratectl: exit codes, MIGRATED_SOCKET, --json output, `new`."""

import json
import os
import signal
import socket

import harness
from harness import ctl


class ClientTest(harness.TestCase):

    def simple_daemon(self):
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
        })
        self.db = self.path("db.sqlite")
        return self.daemon(self.db, self.mig)

    def test_exit_3_when_socket_missing(self):
        sock = self.path("no-such.sock")
        for args in (["status"], ["up"], ["down"], ["history"], ["verify"], ["plan"], ["status", "--check"]):
            with self.subTest(args=args):
                r = ctl(*args, sock=sock, timeout=10)
                self.assertEqual(r.rc, 3, r)
                self.assertTrue((r.out + r.err).strip(), "a message must say why")
                r = ctl(*args, sock=sock, json_out=True, timeout=10)
                self.assertEqual(r.rc, 3, r)

    def test_exit_3_when_nobody_listens(self):
        sock = self.path("stale.sock")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(sock)
        s.close()  # the file stays, nobody listens
        self.assertTrue(os.path.exists(sock))
        r = ctl("status", sock=sock, timeout=10)
        self.assertEqual(r.rc, 3, r)

    def test_migrated_socket_environment(self):
        d = self.simple_daemon()
        r = ctl("--json", "status", env={"MIGRATED_SOCKET": d.socket}, timeout=10)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(os.path.realpath(r.json["database"]), os.path.realpath(self.db))
        r = ctl("status", env={"MIGRATED_SOCKET": self.path("elsewhere.sock")}, timeout=10)
        self.assertEqual(r.rc, 3, r)

    def test_usage_errors_exit_2(self):
        d = self.simple_daemon()
        for args in ([], ["frobnicate"], ["up", "--to", "abc"], ["up", "--bogus"], ["down", "--steps", "x"],
                     ["down", "--steps", "1", "--to", "0"], ["history", "--limit", "many"],
                     ["status", "extra-arg"], ["new"]):
            with self.subTest(args=args):
                r = d.ctl(*args, json_out=False, timeout=10)
                self.assertEqual(r.rc, 2, r)
        self.assertEqual(harness.applied_versions(self.db), [])

    def three_daemon(self):
        self.mig = harness.write_migrations(self.path("migrations"), {
            v: ("t%d" % v, "CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v, "DROP TABLE t%d;\n" % v)
            for v in (1, 2, 3)
        })
        self.db = self.path("db.sqlite")
        return self.daemon(self.db, self.mig)

    def steps_of(self, doc):
        return [(s["version"], s["name"], s["file"], s["transaction"]) for s in doc["steps"]]

    def test_json_documents(self):
        """What a script reads: each --json document against the content it must have."""
        d = self.three_daemon()
        up_steps = [(v, "t%d" % v, "000%d_t%d.up.sql" % (v, v), True) for v in (1, 2, 3)]

        doc = self.assertCtl(d.ctl("status"), 0).json
        self.assertEqual((doc["current_version"], doc["latest_version"], doc["applied"], doc["problems"],
                          doc["state"], doc["queue_length"]), (None, 3, [], [], "idle", 0))
        self.assertEqual([(p["version"], p["name"], p["file"], p["reversible"], p["transaction"])
                          for p in doc["pending"]], [(v, n, f, True, True) for v, n, f, _ in up_steps])

        doc = self.assertCtl(d.ctl("plan"), 0).json
        self.assertEqual((doc["direction"], doc["from_version"], doc["to_version"], doc["atomic"]), ("up", 0, 3, True))
        self.assertEqual(self.steps_of(doc), up_steps)

        doc = self.assertCtl(d.ctl("up", "--dry-run"), 0).json
        self.assertIs(doc["dry_run"], True)
        self.assertEqual(self.steps_of(doc), up_steps)
        self.assertEqual([s["sql"] for s in doc["steps"]],
                         ["CREATE TABLE t%d (id INTEGER PRIMARY KEY);\n" % v for v in (1, 2, 3)])
        self.assertEqual(doc["transactions"], [{"transaction": True, "versions": [1, 2, 3]}])
        self.assertEqual(harness.applied_versions(self.db), [], "a dry run changed the database")

        doc = self.assertCtl(d.ctl("up", "--to", 2), 0).json
        self.assertEqual((doc["status"], doc["from_version"], doc["to_version"]), ("applied", 0, 2))
        self.assertEqual([(a["version"], a["name"]) for a in doc["applied"]], [(1, "t1"), (2, "t2")])
        self.assertEqual((doc["backup"]["version"], doc["backup"]["job_id"]), (0, doc["job_id"]))

        doc = self.assertCtl(d.ctl("plan", "down"), 0).json
        self.assertEqual((doc["direction"], doc["from_version"], doc["to_version"]), ("down", 2, 1))
        self.assertEqual(self.steps_of(doc), [(2, "t2", "0002_t2.down.sql", True)])

        doc = self.assertCtl(d.ctl("down"), 0).json
        self.assertEqual((doc["status"], doc["from_version"], doc["to_version"]), ("reverted", 2, 1))
        self.assertEqual([(a["version"], a["name"]) for a in doc["reverted"]], [(2, "t2")])
        self.assertCtl(d.ctl("up"), 0)

        # history, newest first: up 1 → 3, down 2 → 1, up 0 → 2; --limit N gives exactly N
        expected = [("up", "succeeded", 1, 3, [2, 3]), ("down", "succeeded", 2, 1, [2]), ("up", "succeeded", 0, 2, [1, 2])]
        for limit in (None, 1, 2, 3, 4):
            args = ["history"] + (["--limit", limit] if limit else [])
            doc = self.assertCtl(d.ctl(*args), 0).json
            got = [(a["direction"], a["status"], a["from_version"], a["to_version"], a["versions"])
                   for a in doc["attempts"]]
            self.assertEqual(got, expected[:limit], "history --limit %s" % limit)

        doc = self.assertCtl(d.ctl("verify"), 0).json
        self.assertEqual(doc, {"ok": True, "checked": 3, "problems": []})
        r = d.ctl("down", "--to", 0)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual((r.json["status"], r.json["to_version"]), ("reverted", 0))
        r = d.ctl("down", "--to", 0)  # nothing left to revert
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["status"], "current")
        r = d.ctl("up", "--to", 7)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(set(r.json), {"error"})
        self.assertEqual(r.json["error"]["code"], "unknown_version")

    def table(self, out, header_word):
        """The rows of the table whose header line starts with header_word, as lists of cells."""
        lines = out.splitlines()
        for i, line in enumerate(lines):
            if line.split()[:1] == [header_word]:
                rows = []
                for row in lines[i + 1:]:
                    if not row.strip() or not row.startswith((" ", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9")):
                        break
                    rows.append(row.split())
                return line.split(), rows
        self.fail("no table with a %s column in:\n%s" % (header_word, out))

    def test_human_output(self):
        """What a person reads: the status, plan and history tables row by row."""
        d = self.three_daemon()
        r = self.assertCtl(d.ctl("status", json_out=False), 0)
        self.assertRegex(r.out, r"(?m)^Version: +none \(latest 3, 3 pending\)$")
        # the backend's facts, one row each, from the status's "backend" object
        self.assertRegex(r.out, r"(?m)^Journal mode: +wal$")
        # the format the daemon chose and the table of its bookkeeping
        self.assertRegex(r.out, r"(?m)^Format: +native\b")
        self.assertRegex(r.out, r"(?m)^History table: +migrated_schema$")
        st = d.status()
        self.assertEqual(st["backend"], {"name": "sqlite", "journal_mode": "wal"})
        self.assertEqual(st["journal_mode"], "wal")
        head, rows = self.table(r.out, "VERSION")
        self.assertEqual(head, ["VERSION", "NAME", "NOTES"])
        self.assertEqual(rows, [["0001", "t1"], ["0002", "t2"], ["0003", "t3"]])

        r = self.assertCtl(d.ctl("plan", json_out=False), 0)
        self.assertRegex(r.out, r"(?m)^Plan: up 0 → 3, 3 migrations, atomic")
        head, rows = self.table(r.out, "VERSION")
        self.assertEqual(head, ["VERSION", "NAME", "FILE", "TRANSACTION"])
        self.assertEqual(rows, [["000%d" % v, "t%d" % v, "000%d_t%d.up.sql" % (v, v), "yes"] for v in (1, 2, 3)])

        r = self.assertCtl(d.ctl("up", "--to", 2, json_out=False), 0)
        self.assertRegex(r.out, r"(?m)^Applied 2 migrations: 0 → 2 in \d+ ms$")
        self.assertCtl(d.ctl("up", json_out=False), 0)
        r = self.assertCtl(d.ctl("status", json_out=False), 0)
        self.assertRegex(r.out, r"(?m)^Version: +3 \(latest 3, 0 pending\)$")
        head, rows = self.table(r.out, "VERSION")
        self.assertEqual(head, ["VERSION", "NAME", "APPLIED", "AT", "CHECKSUM"])
        self.assertEqual([row[:2] for row in rows], [["0001", "t1"], ["0002", "t2"], ["0003", "t3"]])

        for limit, n in ((None, 2), ("1", 1), ("2", 2), ("5", 2)):
            args = ["history"] + (["--limit", limit] if limit else [])
            r = self.assertCtl(d.ctl(*args, json_out=False), 0)
            head, rows = self.table(r.out, "ID")
            self.assertEqual(head[:6], ["ID", "STARTED", "DIRECTION", "STATUS", "CHANGE", "BY"])
            self.assertEqual([(row[0], row[2], row[3], " ".join(row[4:7])) for row in rows],
                             [("2", "up", "succeeded", "2 → 3"), ("1", "up", "succeeded", "0 → 2")][:n],
                             "history --limit %s:\n%s" % (limit, r.out))

    def test_daemon_dying_mid_job_does_not_hang_client(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("slow_fill", harness.slow_sql(), "DROP TABLE big;\n"),
        })
        d = self.daemon(self.path("db.sqlite"), mig)
        p = self.spawn([harness.MIGRATECTL_BIN, "--socket", d.socket, "up"])
        harness.wait_until(lambda: d.status()["state"] == "running", 10, what="the job to start")
        d.signal(signal.SIGKILL)
        out, err = p.communicate(timeout=20)
        self.assertIn(p.returncode, (1, 3), (out, err))

    def test_new_creates_next_numbered_pair(self):
        examples = harness.example_migrations()
        mig = self.copy_examples()
        before = set(os.listdir(mig))
        latest = examples[-1][0]
        width = len(examples[-1][2].split("_", 1)[0])
        r = ctl("new", "add_alarms", "--migrations", mig, timeout=10)
        self.assertEqual(r.rc, 0, r)
        created = set(os.listdir(mig)) - before
        base = "%0*d_add_alarms" % (width, latest + 1)
        self.assertEqual(created, {base + ".up.sql", base + ".down.sql"})
        for f in created:
            self.assertIn(f, r.out + r.err, "migratectl new must say which files it created")
        # The next one gets the next number.
        r = ctl("new", "more_things", "--migrations", mig, timeout=10)
        self.assertEqual(r.rc, 0, r)
        self.assertTrue(os.path.exists(os.path.join(mig, "%0*d_more_things.up.sql" % (width, latest + 2))))
        # A daemon sees them as pending, reversible.
        d = self.daemon(self.path("db.sqlite"), mig)
        st = d.status()
        self.assertEqual([(p["version"], p["name"], p["reversible"]) for p in st["pending"][-2:]],
                         [(latest + 1, "add_alarms", True), (latest + 2, "more_things", True)])
        self.assertEqual(st["problems"], [])

    def test_new_in_empty_directory_and_bad_names(self):
        mig = self.path("empty")
        os.mkdir(mig)
        r = ctl("new", "first", "--migrations", mig, timeout=10)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(os.listdir(mig)), ["0001_first.down.sql", "0001_first.up.sql"])
        for bad in ("Bad-Name", "with space", "", "a/b", "../escape"):
            with self.subTest(name=bad):
                r = ctl("new", bad, "--migrations", mig, timeout=10)
                self.assertIn(r.rc, (1, 2), r)
                self.assertNotEqual(r.rc, 0)
        self.assertEqual(sorted(os.listdir(mig)), ["0001_first.down.sql", "0001_first.up.sql"])
        self.assertFalse(os.path.exists(self.path("escape.up.sql")))


if __name__ == "__main__":
    harness.main()
