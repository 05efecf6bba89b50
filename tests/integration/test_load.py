# SPDX-License-Identifier: MIT
"""Load: 1000 concurrent connections asking status over and over while a slow data migration runs.

One selector-driven client in this process holds all the connections (no threads), each with one
request in flight at a time (closed loop): 1000 requests are outstanding at every moment. Every
request must get a result, none an error; the job must go on and finish. Prints

    LOAD: p50=… ms p99=… ms max=… ms peak_rss=… MiB connections=1000 requests=N

Latencies are measured in the client, from sending a request to parsing its reply, so they include
the time the single-threaded client takes to get round to a ready socket.

Environment: MIGRATED_TEST_LOAD_CONNECTIONS (1000), MIGRATED_TEST_LOAD_SECONDS (5).
"""

import json
import os
import resource
import selectors
import socket
import sys
import time

import harness
from harness import Conn, applied_versions

CONNECTIONS = int(os.environ.get("MIGRATED_TEST_LOAD_CONNECTIONS", "1000"))
LOAD_SECONDS = float(os.environ.get("MIGRATED_TEST_LOAD_SECONDS", "5"))
MIN_REQUESTS = 5  # per connection, however fast or slow the load phase

# The daemon's memory and the latencies under this load are printed (the LOAD line), never
# asserted: tests/bench measures them (status and memory rows). This test asserts behaviour: every
# request answered, each with the running job's state, nothing refused or dropped.


def proc_status_kib(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise harness.HarnessError("no %s in /proc/%d/status" % (key, pid))


def loop_cpu_s(pid):
    """CPU time (user + system) of the daemon's main thread, the event loop, in seconds."""
    with open("/proc/%d/task/%d/stat" % (pid, pid)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def raise_nofile(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(hard, need)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


class Client:
    __slots__ = ("sock", "n", "buf", "sent_at", "req_id", "count", "done")

    def __init__(self, sock, n):
        self.sock, self.n = sock, n
        self.buf = b""
        self.sent_at = 0.0
        self.req_id = 0
        self.count = 0
        self.done = False


def connect(path, deadline):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    while True:
        try:
            s.connect(path)
            break
        except (BlockingIOError, InterruptedError):  # backlog full: wait like a blocking client
            if time.monotonic() > deadline:
                s.close()
                raise harness.HarnessError("could not connect within the deadline: backlog full")
            time.sleep(0.002)
    s.setblocking(False)
    return s


class LoadTest(harness.TestCase):

    def test_1000_connections_status_during_slow_migration(self):
        fd_limit = raise_nofile(CONNECTIONS + 256)
        self.assertGreaterEqual(fd_limit, CONNECTIONS + 64, "RLIMIT_NOFILE too low for %d connections" % CONNECTIONS)
        mig = harness.write_migrations(self.path("migrations"), {
            1: ("quick", "CREATE TABLE quick (id INTEGER PRIMARY KEY);\n", "DROP TABLE quick;\n"),
            # about three times the usual slow migration: it must outlast connecting and the load
            2: ("slow_fill", harness.slow_sql(n=harness.SLOW_N * 3), "DROP TABLE big;\n"),
        })
        db = self.path("db.sqlite")
        d = self.daemon(db, mig)
        rss_at_rest = proc_status_kib(d.pid, "VmRSS")

        # the job
        up = Conn(d.socket, 300)
        self.addCleanup(up.close)
        up.send("up", id="load-up")

        def running_slow():
            st = d.status()
            return st if st["state"] == "running" and (st.get("job") or {}).get("version") == 2 else None
        harness.wait_until(running_slow, 30, what="the slow migration to start")

        # 1000 connections
        sel = selectors.DefaultSelector()
        clients = []
        self.addCleanup(lambda: [c.sock.close() for c in clients])
        self.addCleanup(sel.close)
        t_connect = time.monotonic()
        deadline = t_connect + 60
        for n in range(CONNECTIONS):
            clients.append(Client(connect(d.socket, deadline), n))
        connect_s = time.monotonic() - t_connect

        latencies = []
        errors = []
        states = {}
        line_of = json.dumps

        def send_next(c):
            c.req_id += 1
            data = b'{"id":%d,"method":"status"}\n' % c.req_id
            c.sent_at = time.perf_counter()
            sent = c.sock.send(data)  # tiny, and the socket's buffer is empty: never partial
            if sent != len(data):
                raise harness.HarnessError("partial send on connection %d" % c.n)

        for c in clients:
            sel.register(c.sock, selectors.EVENT_READ, c)
        cpu0 = loop_cpu_s(d.pid)
        t0 = time.monotonic()
        end = t0 + LOAD_SECONDS
        hard_deadline = end + 120
        for c in clients:
            send_next(c)
        active = len(clients)
        while active:
            now = time.monotonic()
            if now > hard_deadline:
                stuck = [c.n for c in clients if not c.done]
                self.fail("%d connections still waiting for a reply 120 s after the load ended: %r…"
                          % (len(stuck), stuck[:20]))
            for key, _ in sel.select(timeout=1.0):
                c = key.data
                try:
                    chunk = c.sock.recv(65536)
                except (BlockingIOError, InterruptedError):
                    continue
                except ConnectionResetError:
                    chunk = b""
                if not chunk:
                    errors.append((c.n, "connection closed by the daemon after %d replies" % c.count))
                    sel.unregister(c.sock)
                    c.done = True
                    active -= 1
                    continue
                c.buf += chunk
                while b"\n" in c.buf and not c.done:
                    line, _, c.buf = c.buf.partition(b"\n")
                    msg = json.loads(line)
                    if "event" in msg:
                        errors.append((c.n, "unexpected event line %s" % line_of(msg)))
                        continue
                    latencies.append(time.perf_counter() - c.sent_at)
                    if msg.get("id") != c.req_id:
                        errors.append((c.n, "reply for id %r while %d was outstanding" % (msg.get("id"), c.req_id)))
                    if "result" not in msg:
                        errors.append((c.n, line_of(msg)))
                    else:
                        state = msg["result"].get("state")
                        states[state] = states.get(state, 0) + 1
                    c.count += 1
                    if time.monotonic() < end or c.count < MIN_REQUESTS:
                        send_next(c)
                    else:
                        sel.unregister(c.sock)
                        c.done = True
                        active -= 1
        load_s = time.monotonic() - t0
        loop_cpu = (loop_cpu_s(d.pid) - cpu0) / load_s
        rss_after_load = proc_status_kib(d.pid, "VmRSS")
        still_running = d.status()["state"] == "running"

        requests = sum(c.count for c in clients)
        for c in clients:
            c.sock.close()

        # the job goes on and finishes
        events, final = up.read_reply("load-up", 300)
        res = self.assertResult(final)
        self.assertEqual(res["status"], "applied")
        self.assertEqual(applied_versions(db), [1, 2])
        peak_kib = proc_status_kib(d.pid, "VmHWM")

        lat = sorted(latencies)
        p50, p99, mx = percentile(lat, 50) * 1000, percentile(lat, 99) * 1000, lat[-1] * 1000 if lat else float("nan")
        line = ("LOAD: p50=%.1f ms p99=%.1f ms max=%.1f ms peak_rss=%.1f MiB connections=%d requests=%d"
                % (p50, p99, mx, peak_kib / 1024, CONNECTIONS, requests))
        detail = ("load details: %.1f s of load after %.2f s to connect (%.0f requests/s); states %r; daemon VmRSS "
                  "%.1f MiB at rest, %.1f MiB after the load, VmHWM %.1f MiB; daemon event "
                  "loop thread busy %.0f%% of the load; job %.1f s; slow job still running when the load ended: %s"
                  % (load_s, connect_s, requests / load_s, states, rss_at_rest / 1024, rss_after_load / 1024,
                     peak_kib / 1024, loop_cpu * 100,
                     res["duration_ms"] / 1000, still_running))
        for out in (sys.stdout, sys.stderr):
            out.write("\n%s\n%s\n" % (line, detail))
            out.flush()

        self.assertEqual(errors[:20], [], "%d errors in the load" % len(errors))
        self.assertGreaterEqual(min(c.count for c in clients), MIN_REQUESTS)
        self.assertEqual(len(latencies), requests)
        self.assertEqual(sum(states.values()), requests)
        self.assertTrue(still_running, "the slow migration ended before the load did: raise MIGRATED_TEST_SLOW_N")
        self.assertEqual(set(states), {"running"}, "status during the job reported %r" % states)
        self.assertNotIn("Refused", d.log())
        self.assertNotIn("Dropping", d.log())
        # and the daemon is fine afterwards
        with Conn(d.socket, 5) as c:
            self.assertEqual(c.call("hello", timeout=5)[1]["result"]["server"], "migrated")
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    harness.main()
