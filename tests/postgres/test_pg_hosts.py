#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Many hosts on one PostgreSQL database: several daemons (each its own "host", named with
--host-name) against one database apply a plan once, and every client is answered, naming the host
that applied it; a daemon killed while it holds the lock leaves the work to another daemon."""

import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402
from test_postgres import BASIC, write  # noqa: E402

# only host a's session sleeps: the plan is the same for every host, its cost is not
SLOW_ON_A = ("SELECT pg_sleep(CASE WHEN current_setting('application_name') = 'migrated-a' "
             "THEN 600 ELSE 0 END);\n")


class TestHosts(PgTestCase):
    def host(self, name):
        """A daemon for host name, its sessions named migrated-NAME on the server."""
        return self.daemon(name=name, extra=["--connection",
                                             self.cluster.conninfo(self.dbname) + " application_name=migrated-" + name])

    def test_five_daemons_fifty_concurrent_up_apply_once(self):
        write(self.migrations, BASIC + [(3, "slow", "SELECT pg_sleep(0.5);\nCREATE TABLE t3 (x int);\n", None)])
        daemons = [self.host("host%d" % i) for i in range(5)]
        answers = [None] * 50

        def up(i):
            answers[i] = harness.ctl("up", sock=daemons[i % 5].socket, timeout=300)

        t0 = time.monotonic()
        threads = [threading.Thread(target=up, args=(i,)) for i in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - t0
        print("\n5 daemons, 50 concurrent up: every answer after %.2f s" % elapsed, file=sys.stderr)

        for a in answers:
            self.assertEqual(a.rc, 0, a)
        applied = [a for a in answers if a.out.startswith("Applied")]
        current = [a for a in answers if a.out.startswith("Already current")]
        self.assertGreaterEqual(len(applied), 1, answers)
        self.assertEqual(len(applied) + len(current), 50, answers)
        # exactly once: one attempt, each version once, the schema there
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_attempts WHERE status = 'succeeded'"), [["1"]])
        self.assertEqual(self.sql("SELECT version FROM migrated_schema ORDER BY version"), [["1"], ["2"], ["3"]])
        self.assertEqual(self.sql("SELECT count(*) FROM pg_tables WHERE tablename = 't3'"), [["1"]])
        # the history names the host that applied it, and the other answers say so
        (by, at), = self.sql("SELECT requested_by, finished_at FROM migrated_attempts WHERE status = 'succeeded'")
        host = re.search(r"host=(\S+)", by).group(1)
        self.assertIn(host, ["host%d" % i for i in range(5)])
        for a in current:
            self.assertIn("(applied by host %s at %s)" % (host, at), a.out)
        for a in applied:
            self.assertIn(" on host %s" % host, a.out)
        # a later request on another daemon answers the same
        other = daemons[(int(host[-1]) + 1) % 5]
        res = other.call("up")
        self.assertEqual(res["status"], "current", res)
        self.assertEqual(res["applied_by"]["host"], host, res)
        self.assertEqual(res["applied_by"]["at"], at, res)

    def test_kill_9_of_the_lock_holder_another_waiting_daemon_completes(self):
        write(self.migrations, BASIC[:1] + [
            (2, "slow", "CREATE TABLE t2 (x int);\n" + SLOW_ON_A, None)])
        a = self.host("a")
        b = self.host("b")
        with harness.Conn(a.socket, 120) as ca, harness.Conn(b.socket, 120) as cb:
            ca.send("up")
            while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(CASE%' "
                               "AND application_name = 'migrated-a'"):
                pass
            # b waits for the lock and says who holds it
            cb.send("up")
            while True:
                ev = cb.read_json(60)
                if ev.get("event") == "lock" and ev.get("phase") == "waiting" and ev.get("holder"):
                    break
            self.assertEqual(ev["holder"]["application_name"], "migrated-a", ev)
            a.kill()
            _, final = cb.read_reply(timeout=120)
        res = harness.result_of(final)
        self.assertEqual((res["status"], res["to_version"]), ("applied", 2), final)
        self.assertEqual(self.sql("SELECT version FROM migrated_schema ORDER BY version"), [["1"], ["2"]])
        rows = self.sql("SELECT status, requested_by FROM migrated_attempts ORDER BY id")
        self.assertEqual([r[0] for r in rows], ["interrupted", "succeeded"], rows)
        self.assertIn("host=a", rows[0][1])
        self.assertIn("host=b", rows[1][1])

    def hosts_of(self, d):
        return {h["host"]: h for h in d.status().get("hosts", [])}

    def test_status_shows_every_host_alive_by_its_lock(self):
        write(self.migrations, BASIC)
        a, b, c = self.host("a"), self.host("b"), self.host("c")
        hosts = self.hosts_of(a)
        self.assertEqual(sorted(hosts), ["a", "b", "c"], hosts)
        for name, d in (("a", a), ("b", b), ("c", c)):
            self.assertTrue(hosts[name]["alive"], hosts)
            self.assertEqual(hosts[name]["pid"], d.pid, hosts)
            self.assertEqual(hosts[name]["state"], "idle", hosts)
        # the liveness is the host's session advisory lock: it goes with the session
        self.assertEqual(self.sql("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                  "classid = 1835624307 AND granted"), [["3"]])
        c.kill()
        while self.sql("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = 1835624307 "
                       "AND objid = hashtext('c')::oid AND granted"):
            pass
        hosts = self.hosts_of(b)
        self.assertEqual((hosts["a"]["alive"], hosts["b"]["alive"], hosts["c"]["alive"]), (True, True, False), hosts)
        r = harness.ctl("status", sock=b.socket)
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.out, r"(?m)^ +c +dead")
        self.assertRegex(r.out, r"(?m)^ +a +alive")

    def test_one_daemon_per_host_name(self):
        write(self.migrations, BASIC)
        self.host("a")
        again = self.daemon(name="a2", start=False, extra=["--host-name", "a"])  # the last one counts
        again.start(wait=False)
        self.assertNotEqual(again.wait(timeout=60), 0)
        self.assertIn("Another migrated runs as host a on this database", again.log())

    def test_a_wait_on_one_host_opens_at_another_hosts_commit(self):
        write(self.migrations, BASIC)
        a, b = self.host("a"), self.host("b")
        with harness.Conn(b.socket, 120) as cb:
            cb.send("wait", {"timeout_ms": 90000})
            res = a.call("up")
            self.assertEqual(res["status"], "applied", res)
            _, final = cb.read_reply(timeout=120)
        got = harness.result_of(final)
        self.assertEqual((got["schema_current"], got["current_version"]), (True, 2), final)

    def test_a_waiting_host_says_what_it_waits_for(self):
        write(self.migrations, BASIC[:1] + [(2, "slow", SLOW_ON_A, None)])
        a, b = self.host("a"), self.host("b")
        with harness.Conn(a.socket, 120) as ca, harness.Conn(b.socket, 120) as cb:
            ca.send("up")
            while not self.sql("SELECT 1 FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(CASE%'"):
                pass
            cb.send("up")
            while True:
                ev = cb.read_json(60)
                if ev.get("event") == "lock" and ev.get("holder"):
                    break
            while not self.sql("SELECT 1 FROM migrated_hosts WHERE host = 'b' AND waiting_for IS NOT NULL"):
                pass
            hosts = self.hosts_of(a)
            self.assertIn("held by migrated-a", hosts["b"]["waiting_for"], hosts)
            self.assertEqual(hosts["a"]["state"], "up", hosts)
            a.kill()
            _, final = cb.read_reply(timeout=120)
        self.assertEqual(harness.result_of(final)["status"], "applied", final)
        # the row follows (sent without waiting, so it may land a moment after the answer)
        while self.sql("SELECT 1 FROM migrated_hosts WHERE host = 'b' AND (state <> 'idle' OR waiting_for IS NOT NULL)"):
            pass


if __name__ == "__main__":
    unittest.main()
