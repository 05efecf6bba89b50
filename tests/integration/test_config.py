# SPDX-License-Identifier: MIT
"""The INI configuration file: same settings as the flags, flags win, mistakes exit 2 naming the
file, the line and the key."""

import os
import re
import textwrap

import harness
from harness import applied_versions

ONE = {1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n")}
TWO = {
    1: ("one", "CREATE TABLE one (id INTEGER PRIMARY KEY);\n", "DROP TABLE one;\n"),
    2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
}


class ConfigTest(harness.TestCase):

    def write_config(self, text, name="migrated.conf"):
        path = self.path(name)
        with open(path, "w") as f:
            f.write(textwrap.dedent(text))
        return path

    def standard_config(self, db, mig, sock, busy=500, auto_up="false"):
        return self.write_config("""\
            # migrated configuration for the test
            [database]
            path = %s
            busy_timeout_ms = %d

            [migrations]
            directory = %s
            auto_up = %s

            [daemon]
            socket = %s
            """ % (db, busy, mig, auto_up, sock))

    def assertBusyBeforeDefault(self, d, db):
        """A writer holding the lock for 4 s: the 5000 ms default busy timeout would wait it out
        and apply, a configured 500 ms gives up with busy while the lock is still held."""
        h = self.helper(harness.HOLDER_SCRIPT, [db, 4.0], "holder")
        h.expect_line("locked")
        r = d.ctl("up")
        self.assertCtl(r, 6)
        self.assertEqual(r.json["error"]["code"], "busy", r)
        h.kill()
        return r

    def start_failing(self, *args):
        d = self.daemon(start=False, args=list(args))
        d.start(wait=False)
        rc = d.wait(5)
        return d, rc

    def test_config_file_alone(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db, sock = self.path("db.sqlite"), self.path("from-config.sock")
        conf = self.standard_config(db, mig, sock, busy=500)
        d = self.daemon(args=["--config", conf], socket_path=sock)
        st = d.status()
        self.assertEqual(os.path.realpath(st["database"]), os.path.realpath(db))
        self.assertEqual(os.path.realpath(st["migrations_dir"]), os.path.realpath(mig))
        self.assertEqual([p["version"] for p in st["pending"]], [1, 2], "auto_up = false: nothing applied")
        self.assertEqual(applied_versions(db), [])
        # busy_timeout_ms = 500 from the file: busy well before the 5 s default.
        r = self.assertBusyBeforeDefault(d, db)
        self.assertEqual(r.json["error"]["code"], "busy")
        self.assertCtl(d.ctl("up"), 0)
        self.assertEqual(applied_versions(db), [1, 2])

    def test_config_auto_up(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db, sock = self.path("db.sqlite"), self.path("c.sock")
        conf = self.standard_config(db, mig, sock, auto_up="true")
        d = self.daemon(args=["--config", conf], socket_path=sock)
        st = d.wait_idle(30)
        self.assertEqual(st["current_version"], 2)
        self.assertEqual(applied_versions(db), [1, 2])

    def test_flags_win_over_file(self):
        mig_file = harness.write_migrations(self.path("mig-file"), ONE)
        mig_flag = harness.write_migrations(self.path("mig-flag"), TWO)
        db_file, db_flag = self.path("file.sqlite"), self.path("flag.sqlite")
        sock_file, sock_flag = self.path("file.sock"), self.path("flag.sock")
        conf = self.standard_config(db_file, mig_file, sock_file, busy=60000)
        d = self.daemon(args=["--config", conf, "--database", db_flag, "--migrations", mig_flag,
                              "--socket", sock_flag, "--busy-timeout", "300"], socket_path=sock_flag)
        self.assertFalse(os.path.exists(sock_file), "the daemon must not listen on the file's socket")
        st = d.status()
        self.assertEqual(os.path.realpath(st["database"]), os.path.realpath(db_flag))
        self.assertEqual(os.path.realpath(st["migrations_dir"]), os.path.realpath(mig_flag))
        self.assertEqual(st["latest_version"], 2)
        self.assertFalse(os.path.exists(db_file), "the file's database must not be touched")
        self.assertBusyBeforeDefault(d, db_flag)

    def test_auto_up_flag_wins_over_false_in_file(self):
        mig = harness.write_migrations(self.path("migrations"), TWO)
        db, sock = self.path("db.sqlite"), self.path("c.sock")
        conf = self.standard_config(db, mig, sock, auto_up="false")
        d = self.daemon(args=["--config", conf, "--auto-up"], socket_path=sock)
        st = d.wait_idle(30)
        self.assertEqual(st["current_version"], 2)

    def test_max_queue(self):
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("slow_fill", harness.slow_sql(), "DROP TABLE big;\n"),
            2: ("two", "CREATE TABLE two (id INTEGER PRIMARY KEY);\n", "DROP TABLE two;\n"),
        })
        db, sock = self.path("db.sqlite"), self.path("q.sock")
        conf = self.write_config("""\
            [database]
            path = %s
            [migrations]
            directory = %s
            [daemon]
            socket = %s
            max_queue = 1
            """ % (db, mig, sock))
        d = self.daemon(args=["--config", conf], socket_path=sock)
        running = harness.Conn(sock, 60)
        self.addCleanup(running.close)
        running.send("up", {"to": 1}, id="run")
        harness.wait_until(lambda: d.status()["state"] == "running", 10, what="the slow job")
        waiting = harness.Conn(sock, 60)
        self.addCleanup(waiting.close)
        waiting.send("up", {}, id="wait")
        harness.wait_until(lambda: d.status()["queue_length"] == 1, 5, what="one waiting job")
        # An identical up joins the waiting one; a different request finds the queue full.
        joining = harness.Conn(sock, 60)
        self.addCleanup(joining.close)
        joining.send("up", {}, id="join")
        _, final = d.rpc("down", {"steps": 1}, id="full", timeout=10)
        self.assertError(final, "queue_full")
        self.assertEqual(final["id"], "full")
        self.assertEqual(d.status()["queue_length"], 1)
        _, final = running.read_reply("run", 60)
        self.assertEqual(self.assertResult(final)["status"], "applied")
        _, w = waiting.read_reply("wait", 60)
        _, j = joining.read_reply("join", 60)
        self.assertEqual(self.assertResult(w)["status"], "applied")
        self.assertEqual(self.assertResult(j)["job_id"], w["result"]["job_id"])
        self.assertEqual(applied_versions(db), [1, 2])

    def assertConfigError(self, conf, lines, word):
        d, rc = self.start_failing("--config", conf)
        log = d.log()
        self.assertEqual(rc, 2, log)
        self.assertIn(os.path.basename(conf), log, "the message must name the file")
        self.assertIn(word, log, "the message must name the key or section")
        if isinstance(lines, int):
            lines = (lines,)
        self.assertTrue(any(re.search(r"(:%d\b|line %d\b)" % (n, n), log) for n in lines),
                        "the message must name line %s: %r" % (" or ".join(map(str, lines)), log))
        self.assertFalse(os.path.exists(self.path("db.sqlite")), "nothing may be created on a config error")

    def test_unknown_key(self):
        conf = self.write_config("""\
            [database]
            path = %s
            busy_timeot_ms = 500
            [migrations]
            directory = %s
            """ % (self.path("db.sqlite"), self.path()))
        self.assertConfigError(conf, 3, "busy_timeot_ms")

    def test_unknown_key_in_daemon_section(self):
        conf = self.write_config("""\
            [database]
            path = %s

            [daemon]
            socket = %s
            sockett_mode = 0600
            """ % (self.path("db.sqlite"), self.path("x.sock")))
        self.assertConfigError(conf, 6, "sockett_mode")

    def test_unknown_section(self):
        conf = self.write_config("""\
            [database]
            path = %s
            [migrationz]
            directory = %s
            """ % (self.path("db.sqlite"), self.path()))
        # The section header is on line 3, its first key on line 4: either names the place.
        self.assertConfigError(conf, (3, 4), "migrationz")

    def test_unknown_empty_section(self):
        # A section with no keys at all is still unknown.
        conf = self.write_config("""\
            [database]
            path = %s
            [migrations]
            directory = %s
            [daemon]
            socket = %s

            [backups]
            """ % (self.path("db.sqlite"), self.path(), self.path("s.sock")))
        self.assertConfigError(conf, 8, "backups")

    def test_bad_values(self):
        for text, line, key in (
                ("[database]\npath = {db}\nbusy_timeout_ms = soon\n", 3, "busy_timeout_ms"),
                ("[database]\npath = {db}\nbusy_timeout_ms = -5\n", 3, "busy_timeout_ms"),
                ("[database]\npath = {db}\n[migrations]\ndirectory = {dir}\nauto_up = maybe\n", 5, "auto_up")):
            with self.subTest(text=text):
                conf = self.write_config(text.format(db=self.path("db.sqlite"), dir=self.path()),
                                         name="bad-%d.conf" % line)
                self.assertConfigError(conf, line, key)

    def test_flag_does_not_excuse_bad_file(self):
        # Flags win over values, but a broken file is still an error.
        conf = self.write_config("[database]\nbogus = 1\n")
        d, rc = self.start_failing("--config", conf, "--database", self.path("db.sqlite"),
                                   "--migrations", self.path(), "--socket", self.path("s.sock"))
        self.assertEqual(rc, 2, d.log())
        self.assertIn("bogus", d.log())

    def test_missing_config_file(self):
        d, rc = self.start_failing("--config", self.path("nope.conf"))
        self.assertNotEqual(rc, 0)
        self.assertIn("nope.conf", d.log())


if __name__ == "__main__":
    harness.main()
