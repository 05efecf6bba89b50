# SPDX-License-Identifier: MIT
"""Protocol v1 strictness over a raw Unix socket: every malformed request is answered with the
right stable error code (id null when the id could not be read), never a crash, and the daemon
keeps answering hello afterwards."""

import json
import socket
import time

import harness
from harness import Conn, send_raw_line

ID_MAX = 2 ** 53

# (label, raw line, expected code, expected id)
BAD_LINES = [
    ("truncated JSON", b'{"id":1,"method":"hello"', "invalid_json", None),
    ("not JSON at all", b"hello", "invalid_json", None),
    ("trailing garbage", b'{"id":1,"method":"hello"} x', "invalid_json", None),
    ("two objects on one line", b'{"id":1,"method":"hello"}{"id":2,"method":"hello"}', "invalid_json", None),
    ("duplicate key", b'{"id":1,"id":2,"method":"hello"}', "invalid_json", None),
    ("duplicate key inside params", b'{"id":1,"method":"up","params":{"to":1,"to":1}}', "invalid_json", None),
    ("raw NUL byte inside a string", b'{"id":1,"method":"hel\x00lo"}', "invalid_json", None),
    ("raw NUL byte after the object", b'{"id":1,"method":"hello"}\x00', "invalid_json", None),
    ("invalid UTF-8", b'{"id":1,"method":"hel\xfflo"}', "invalid_json", None),
    ("nesting deeper than the parser allows",
     b'{"id":1,"method":"hello","params":{"a":' + b"[" * 20000 + b"]" * 20000 + b"}}", "invalid_json", None),
    ("unknown top-level field", b'{"id":5,"method":"hello","extra":true}', "invalid_request", 5),
    ("protocol version out of range", b'{"id":6,"method":"hello","protocol":3}', "invalid_request", 6),
    ("protocol version not an integer", b'{"id":7,"method":"hello","protocol":"2"}', "invalid_request", 7),
    ("missing id", b'{"method":"hello"}', "invalid_request", None),
    ("id is an array", b'{"id":[1],"method":"hello"}', "invalid_request", None),
    ("id is an object", b'{"id":{"a":1},"method":"hello"}', "invalid_request", None),
    ("id is a float", b'{"id":1.5,"method":"hello"}', "invalid_request", None),
    ("id is a boolean", b'{"id":true,"method":"hello"}', "invalid_request", None),
    ("id is null", b'{"id":null,"method":"hello"}', "invalid_request", None),
    ("id is negative", b'{"id":-1,"method":"hello"}', "invalid_request", None),
    ("id is 2^53", ('{"id":%d,"method":"hello"}' % ID_MAX).encode(), "invalid_request", None),
    ("id is an empty string", b'{"id":"","method":"hello"}', "invalid_request", None),
    ("id is a string of 65 bytes", ('{"id":"%s","method":"hello"}' % ("x" * 65)).encode(), "invalid_request", None),
    ("missing method", b'{"id":9}', "invalid_request", 9),
    ("method is a number", b'{"id":10,"method":5}', "invalid_request", 10),
    ("method is empty", b'{"id":11,"method":""}', "invalid_request", 11),
    ("params is an array", b'{"id":12,"method":"status","params":[]}', "invalid_request", 12),
    ("params is a string", b'{"id":13,"method":"status","params":"x"}', "invalid_request", 13),
    ("unknown method", b'{"id":7,"method":"frobnicate"}', "unknown_method", 7),
    ("unknown method with a string id", b'{"id":"req-a","method":"drop_everything"}', "unknown_method", "req-a"),
    ("unknown parameter of up", b'{"id":20,"method":"up","params":{"bogus":1}}', "invalid_params", 20),
    ("unknown parameter of status", b'{"id":21,"method":"status","params":{"verbose":true}}', "invalid_params", 21),
    ("unknown parameter of hello", b'{"id":22,"method":"hello","params":{"x":1}}', "invalid_params", 22),
    ("up to is a string", b'{"id":23,"method":"up","params":{"to":"1"}}', "invalid_params", 23),
    ("up to is a float", b'{"id":24,"method":"up","params":{"to":1.5}}', "invalid_params", 24),
    ("up dry_run is a number", b'{"id":25,"method":"up","params":{"dry_run":1}}', "invalid_params", 25),
    ("up per_migration is a string", b'{"id":26,"method":"up","params":{"per_migration":"yes"}}',
     "invalid_params", 26),
    ("down steps is a string", b'{"id":27,"method":"down","params":{"steps":"2"}}', "invalid_params", 27),
    ("down steps is negative", b'{"id":28,"method":"down","params":{"steps":-1}}', "invalid_params", 28),
    ("history limit is a string", b'{"id":29,"method":"history","params":{"limit":"5"}}', "invalid_params", 29),
    ("history limit is negative", b'{"id":30,"method":"history","params":{"limit":-5}}', "invalid_params", 30),
    ("plan direction is a number", b'{"id":31,"method":"plan","params":{"direction":1}}', "invalid_params", 31),
]


class ProtocolTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        # One pending migration: any request that wrongly starts a job would apply it.
        self.mig = harness.write_migrations(self.path("migrations"), {
            1: ("first", "CREATE TABLE first (id INTEGER PRIMARY KEY);\n", "DROP TABLE first;\n"),
        })
        self.db = self.path("db.sqlite")
        self.d = self.daemon(self.db, self.mig)

    def assertHello(self, conn=None, id=424242):
        if conn is None:
            _, final = self.d.rpc("hello", id=id, timeout=10)
        else:
            _, final = conn.call("hello", id=id, timeout=10)
        self.assertEqual(final.get("id"), id, final)
        res = self.assertResult(final)
        self.assertEqual(res.get("protocol"), 1, res)
        return res

    def assertNothingApplied(self):
        self.assertEqual(harness.applied_versions(self.db), [])
        self.assertNotIn("first", harness.tables(self.db))

    def test_hello(self):
        res = self.assertHello()
        self.assertIsInstance(res.get("server"), str)
        self.assertIsInstance(res.get("version"), str)
        self.assertIsInstance(res.get("methods"), list)
        for m in ("hello", "status", "plan", "up", "down", "history", "verify"):
            self.assertIn(m, res["methods"])
        self.assertIn("capabilities", res)
        # the fixed capabilities, then one per migration format that announces itself
        self.assertEqual(res["capabilities"], ["events", "coalescing", "dry_run", "units", "wait", "backups",
                                               "rehearse", "prisma", "goose", "golang-migrate", "flyway"])

    def test_hello_without_params_and_with_empty_params(self):
        reply = send_raw_line(self.d.socket, b'{"id":1,"method":"hello"}')
        self.assertEqual(reply["id"], 1)
        self.assertEqual(self.assertResult(reply)["protocol"], 1)
        reply = send_raw_line(self.d.socket, b'{"params":{},"method":"hello","id":2}')
        self.assertEqual(reply["id"], 2)
        self.assertEqual(self.assertResult(reply)["protocol"], 1)

    def test_valid_id_forms_are_echoed(self):
        for id in (0, ID_MAX - 1, "a", "x" * 64, "ünïcödé"):
            with self.subTest(id=id):
                _, final = self.d.rpc("hello", id=id, timeout=10)
                self.assertEqual(final.get("id"), id)
                self.assertResult(final)

    def test_bad_lines_answered_with_right_code(self):
        for label, line, code, id in BAD_LINES:
            with self.subTest(label):
                reply = send_raw_line(self.d.socket, line)
                self.assertIsNotNone(reply, "daemon closed without answering %r" % label)
                self.assertIn("error", reply, reply)
                self.assertEqual(reply["error"].get("code"), code, reply)
                self.assertIsInstance(reply["error"].get("message"), str)
                self.assertIn("id", reply, "the error line must carry id (null when unknown): %r" % reply)
                self.assertEqual(reply["id"], id, reply)
                self.assertNotIn("result", reply)
            self.assertTrue(self.d.alive(), "daemon died on %r; log:\n%s" % (label, self.d.log()))
            self.assertHello()
        self.assertNothingApplied()

    def test_array_and_scalar_top_level_refused(self):
        # protocol.h: invalid_json "the line is not a JSON object"; invalid_request "missing/unknown/
        # mistyped top-level field". Both readings are accepted; the id must be null.
        for line in (b"[1,2]", b'[{"id":1,"method":"hello"}]', b"42", b'"hello"', b"null"):
            with self.subTest(line=line):
                reply = send_raw_line(self.d.socket, line)
                self.assertIsNotNone(reply)
                self.assertIn(reply.get("error", {}).get("code"), ("invalid_json", "invalid_request"), reply)
                self.assertIsNone(reply["id"], reply)
            self.assertHello()

    def test_same_connection_survives_bad_lines(self):
        # A line-oriented protocol: a refused line is answered and the next line is served.
        with Conn(self.d.socket, 10) as c:
            for label, line, code, id in BAD_LINES:
                with self.subTest(label):
                    c.send_raw(line + b"\n")
                    reply = c.read_json(10)
                    self.assertIsNotNone(reply, "connection closed after %r" % label)
                    self.assertEqual(reply.get("error", {}).get("code"), code, reply)
                    self.assertHello(c, id=1000)

    def test_line_too_long(self):
        pad = "A" * 70000
        line = json.dumps({"id": 1, "method": "hello", "params": {"pad": pad}}).encode()
        reply = send_raw_line(self.d.socket, line)
        self.assertIsNotNone(reply)
        self.assertEqual(reply.get("error", {}).get("code"), "line_too_long", reply)
        self.assertIsNone(reply["id"], reply)
        self.assertHello()

    def test_line_length_boundary(self):
        # 65536 bytes (without the newline) is the longest line decoded; one more is too long.
        base = json.dumps({"id": 3, "method": "hello", "params": {"pad": ""}})
        for size, code, id in ((65536, "invalid_params", 3), (65537, "line_too_long", None)):
            with self.subTest(size=size):
                line = json.dumps({"id": 3, "method": "hello", "params": {"pad": "B" * (size - len(base))}}).encode()
                self.assertEqual(len(line), size)
                reply = send_raw_line(self.d.socket, line)
                self.assertEqual(reply.get("error", {}).get("code"), code, reply)
                self.assertEqual(reply["id"], id)
        self.assertHello()

    def test_many_connections(self):
        conns = []
        try:
            for i in range(300):
                conns.append(Conn(self.d.socket, 20))
            for i, c in enumerate(conns):
                c.send("hello", id=i)
            for i, c in enumerate(conns):
                _, final = c.read_reply(i, 20)
                self.assertEqual(final["id"], i)
                self.assertEqual(final["result"]["protocol"], 1)
            self.assertHello()
        finally:
            for c in conns:
                c.close()
        self.assertHello()

    def test_line_just_under_limit_is_decoded(self):
        # 65000 bytes is within 64 KiB: decoded normally, refused for its unknown parameter.
        base = json.dumps({"id": 3, "method": "hello", "params": {"pad": ""}})
        line = json.dumps({"id": 3, "method": "hello", "params": {"pad": "B" * (65000 - len(base))}}).encode()
        self.assertEqual(len(line), 65000)
        reply = send_raw_line(self.d.socket, line)
        self.assertEqual(reply.get("error", {}).get("code"), "invalid_params", reply)
        self.assertEqual(reply["id"], 3)
        self.assertHello()

    def test_huge_line_answered_once(self):
        # 4 MiB without a newline until the end: one line_too_long, the daemon survives and does not
        # treat the rest of the line as further requests.
        data = b'{"id":1,"method":"hello","params":{"pad":"' + b"C" * (4 << 20) + b'"}}\n'
        with Conn(self.d.socket, 20) as c:
            try:
                c.send_raw(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the daemon may stop reading once it answered
            reply = c.read_json(20)
            self.assertIsNotNone(reply, "no answer to a 4 MiB line")
            self.assertEqual(reply.get("error", {}).get("code"), "line_too_long", reply)
            self.assertIsNone(reply["id"])
            # If the connection stays open, the next reply must be for the next request.
            try:
                c.send("hello", id=77)
                nxt = c.read_json(10)
            except (BrokenPipeError, ConnectionResetError):
                nxt = None
            if nxt is not None:
                self.assertEqual(nxt.get("id"), 77, "garbage after line_too_long answered: %r" % nxt)
                self.assertIn("result", nxt)
        self.assertTrue(self.d.alive(), self.d.log())
        self.assertHello()

    def test_pipelined_requests_each_answered_once(self):
        # Replies are matched by id: their order is not part of the contract, their number is.
        with Conn(self.d.socket, 10) as c:
            c.send_raw(b'{"id":1,"method":"hello"}\n{"id":2,"method":"status"}\n'
                       b'{"id":3,"method":"nope"}\n{"id":"four","method":"history"}\n')
            finals = {}
            while len(finals) < 4:
                msg = c.read_json(10)
                self.assertIsNotNone(msg, "connection closed after %r" % finals)
                if "event" in msg:
                    continue
                self.assertNotIn(msg["id"], finals, "two final lines for one id: %r" % msg)
                finals[msg["id"]] = msg
            self.assertEqual(set(finals), {1, 2, 3, "four"})
            self.assertEqual(finals[1]["result"]["protocol"], 1)
            self.assertIn("current_version", finals[2]["result"])
            self.assertEqual(finals[3]["error"]["code"], "unknown_method")
            self.assertIsInstance(finals["four"]["result"]["attempts"], list)
            # Nothing more comes.
            self.assertHello(c, id=5)

    def test_request_split_across_writes(self):
        with Conn(self.d.socket, 10) as c:
            c.send_raw(b'{"id":1,"me')
            time.sleep(0.2)
            c.send_raw(b'thod":"hel')
            time.sleep(0.2)
            c.send_raw(b'lo"}\n')
            _, final = c.read_reply(1, 10)
            self.assertEqual(self.assertResult(final)["protocol"], 1)

    def test_client_closing_mid_line_and_abrupt_reset(self):
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.d.socket)
            s.sendall(b'{"id":1,"method":"sta')
            s.close()
        # Requests whose answer the client never reads.
        for _ in range(20):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(5)
            s.connect(self.d.socket)
            s.sendall(b'{"id":1,"method":"status"}\n{"id":2,"method":"history"}\n')
            s.close()
        self.assertTrue(self.d.alive(), self.d.log())
        self.assertHello()

    def test_status_and_history_shapes(self):
        st = self.d.status()
        for key in ("database", "migrations_dir", "journal_mode", "current_version", "latest_version",
                    "applied", "pending", "problems", "state", "job", "queue_length"):
            self.assertIn(key, st)
        self.assertIn(st["current_version"], (0, None))
        self.assertEqual(st["latest_version"], 1)
        self.assertEqual(st["applied"], [])
        self.assertEqual([(p["version"], p["name"], p["reversible"]) for p in st["pending"]], [(1, "first", True)])
        self.assertEqual(st["state"], "idle")
        self.assertIsNone(st["job"])
        self.assertEqual(st["journal_mode"], "wal")
        self.assertEqual(self.d.call("history")["attempts"], [])
        plan = self.d.call("plan", {"direction": "up"})
        self.assertEqual(plan["direction"], "up")
        self.assertEqual(plan["to_version"], 1)
        self.assertEqual([s["version"] for s in plan["steps"]], [1])
        self.assertNothingApplied()

    def test_semantic_errors_of_valid_requests(self):
        _, final = self.d.rpc("up", {"to": 99}, id=40)
        self.assertEqual(final["id"], 40)
        self.assertError(final, "unknown_version")
        _, final = self.d.rpc("plan", {"direction": "sideways"}, id=41)
        self.assertError(final, "invalid_params")
        self.assertNothingApplied()


if __name__ == "__main__":
    harness.main()
