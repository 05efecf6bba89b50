# SPDX-License-Identifier: MIT
"""migratectl: exit codes, MIGRATED_SOCKET, --json output, `new`."""

import json
import os
import signal
import socket
import time

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

    def test_json_documents(self):
        d = self.simple_daemon()
        for args in (["status"], ["plan"], ["history"], ["verify"], ["up", "--dry-run"],
                     ["up"], ["plan", "down"], ["down"], ["history", "--limit", "1"]):
            with self.subTest(args=args):
                r = d.ctl(*args)
                self.assertEqual(r.rc, 0, r)
                doc = r.json
                self.assertIsInstance(doc, dict)
                self.assertNotIn("error", doc)
        r = d.ctl("down", "--to", 0)  # nothing left to revert
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.json["status"], "current")
        r = d.ctl("up", "--to", 7)
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(set(r.json), {"error"})
        self.assertEqual(r.json["error"]["code"], "unknown_version")

    def test_human_output(self):
        d = self.simple_daemon()
        r = d.ctl("status", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("one", r.out)
        r = d.ctl("up", json_out=False)
        self.assertEqual(r.rc, 0, r)
        r = d.ctl("history", json_out=False)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("succeeded", r.out)

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
