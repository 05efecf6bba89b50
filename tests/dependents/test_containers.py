# SPDX-License-Identifier: MIT
"""container: and compose: dependents against a real Docker engine started by the test (Debian's
docker.io: dockerd on its own socket, data root and exec root, without a bridge or firewall
rules), through the Engine API. The image is built here from an empty root with the host's /usr
mounted read-only (busybox-static and python3 come from there): containers run the writer on the
database in a directory mounted into them, and every acknowledged insert must survive."""

import os
import shutil
import signal
import subprocess
import tempfile

import deplib as D
from deplib import H

IMAGE = "migrated-test:1"
ENGINE = None


class Engine:
    """dockerd on a private socket; killed with everything it ran at the end of the module."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="migrated-dockerd-")
        self.socket = os.path.join(self.dir, "docker.sock")
        self.log = open(os.path.join(self.dir, "dockerd.log"), "wb")
        self.proc = subprocess.Popen(
            ["dockerd", "--data-root", os.path.join(self.dir, "root"), "--exec-root", os.path.join(self.dir, "exec"),
             "--pidfile", os.path.join(self.dir, "pid"), "-H", "unix://" + self.socket, "--bridge=none",
             "--iptables=false", "--ip6tables=false"], stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
            start_new_session=True)
        H.wait_until(lambda: self.docker("version", check=False).returncode == 0 or self.proc.poll() is not None,
                     60, interval=0.1, what="dockerd answering")
        if self.proc.poll() is not None:
            raise H.HarnessError("dockerd exited: %s" % self.log_text())
        root = os.path.join(self.dir, "rootfs")
        for d in ("usr", "tmp", "etc", "proc", "sys", "dev"):
            os.makedirs(os.path.join(root, d))
        for link in ("bin", "lib", "lib64", "sbin"):
            os.symlink("usr/" + link, os.path.join(root, link))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        self.docker("import", "-", IMAGE, stdin=tar.stdout)
        tar.stdout.close()
        tar.wait()

    def log_text(self):
        with open(os.path.join(self.dir, "dockerd.log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def docker(self, *args, check=True, stdin=subprocess.DEVNULL):
        r = subprocess.run(["docker", "-H", "unix://" + self.socket] + list(args), stdin=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if check and r.returncode != 0:
            raise H.HarnessError("docker %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        return r

    def stop(self):
        ids = self.docker("ps", "-aq", check=False).stdout.decode().split()
        if ids:
            self.docker("rm", "-f", *ids, check=False)
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
        subprocess.run(["umount", "-R", os.path.join(self.dir, "root")], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)


def setUpModule():
    global ENGINE
    if os.geteuid() != 0:
        H.cannot_run("the container tests start dockerd: they need root")
    for tool in ("dockerd", "docker", "busybox", "tar"):
        if not shutil.which(tool):
            H.cannot_run("%s is not installed (packaging/install-deps.sh test installs docker.io and busybox-static)"
                         % tool)
    ENGINE = Engine()


def tearDownModule():
    if ENGINE:
        ENGINE.stop()


class ContainerTest(H.TestCase):

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.db = self.path("app.sqlite")
        D.create_db(self.db)
        self.mig = D.migrations(self.path("migrations"))
        self.writer = self.path("writer.py")
        shutil.copy(D.WRITER, self.writer)
        self.names = []
        self.addCleanup(lambda: self.names and ENGINE.docker("rm", "-f", *self.names, check=False))

    def container(self, name, mode="write", compose=None, health=True, db=None):
        """A running writer container; compose=(project, service) adds Compose's labels."""
        log = D.Log(self.path(name + ".acks"))
        args = ["run", "-d", "--name", name, "--network", "none", "--stop-timeout", "600",
                "-v", "/usr:/usr:ro", "-v", "%s:%s" % (self.tmp, self.tmp)]
        if compose:
            args += ["--label", "com.docker.compose.project=" + compose[0],
                     "--label", "com.docker.compose.service=" + compose[1]]
        if health:
            # healthy once this process wrote "ready" (the database is open)
            args += ["--health-cmd", "grep -q ready %s" % log.path, "--health-interval", "1s"]
        ENGINE.docker(*(args + [IMAGE, "/usr/bin/python3", self.writer, db or self.db, log.path, name, "--mode", mode]))
        self.names.append(name)
        log.wait_acks(10)
        return log

    def config(self, names, stop_timeout=10):
        path = self.path("migrated.conf")
        text = ("[database]\npath = %s\n[migrations]\ndirectory = %s\n[units]\nunits = %s\nstop_timeout = %d\n"
                "start_timeout = 60\n" % (self.db, self.mig, " ".join(names), stop_timeout))
        for n in names:
            kind, _, ident = n.partition(":")
            section = ident.split("/")[0] if kind == "compose" else ident
            if "[%s.%s]" % (kind, section) not in text:
                text += "[%s.%s]\nsocket = %s\n" % (kind, section, ENGINE.socket)
        with open(path, "w") as f:
            f.write(text)
        return path

    def inspect(self, name):
        import json
        return json.loads(ENGINE.docker("inspect", name).stdout)[0]["State"]

    def assertRunningAgain(self, name, log, starts_before):
        D.wait_for(lambda: len(log.starts()) > starts_before, "%s started again" % name)
        self.assertTrue(self.inspect(name)["Running"])
        log.wait_acks(5)

    def test_container_and_compose_group_stopped_migrated_started(self):
        web = self.container("web")
        api1 = self.container("myapp-api-1", compose=("myapp", "api"))
        api2 = self.container("myapp-api-2", compose=("myapp", "api"))
        # another service of the project, on another database: not a dependent, never touched
        other_db = self.path("other.sqlite")
        D.create_db(other_db)
        other = self.container("myapp-db-1", compose=("myapp", "db"), health=False, db=other_db)
        logs = [web, api1, api2]
        before = {n: len(l.starts()) for n, l in zip(("web", "myapp-api-1", "myapp-api-2"), logs)}
        d = self.daemon(config=self.config(["container:web", "compose:myapp/api"]), database=None)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        res = r.json
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])
        self.assertEqual(sorted((o["unit"], o["ok"], o["killed"]) for o in res["units"]["stopped"]),
                         [("compose:myapp/api", True, False), ("container:web", True, False)], res)
        self.assertTrue(all(o["ok"] for o in res["units"]["started"]), res)
        for n, log in zip(("web", "myapp-api-1", "myapp-api-2"), logs):
            self.assertIn("stop", [k for k, _, _ in log.records()], "%s not stopped by its signal" % n)
            self.assertRunningAgain(n, log, before[n])
            # started means healthy: the engine ran its check on the new process
            self.assertEqual(self.inspect(n)["Health"]["Status"], "healthy")
        self.assertEqual(len(other.starts()), 1, "another service of the project must be left alone")
        D.all_acked_in_db(self, self.db, logs)
        D.all_acked_in_db(self, other_db, [other])

    def test_lock_check_names_the_container(self):
        self.container("web", health=False)
        cid = ENGINE.docker("inspect", "-f", "{{.Id}}", "web").stdout.decode().strip()
        pid = self.inspect("web")["Pid"]
        d = self.daemon(config=self.config(["container:web"]), database=None)
        r = d.ctl("lock-check")
        holders = {h["pid"]: h.get("unit") for h in r.json.get("holders", [])}
        self.assertEqual(holders.get(pid), "container:" + cid[:12], r)

    def test_gate_from_a_container_entrypoint_through_a_mounted_socket(self):
        """An entrypoint runs `migratectl wait` on migrated's socket, mounted into the container,
        before the writer: it starts only once the pending migrations are applied."""
        d = self.daemon(config=self.config(["container:web"]), database=None)
        log = D.Log(self.path("gated.acks"))
        sock_dir = os.path.dirname(d.socket)
        ctl = self.path("migratectl")
        shutil.copy(H.MIGRATECTL_BIN, ctl)
        entry = "%s --socket %s wait --timeout 120 && exec /usr/bin/python3 %s %s %s gated" % (
            ctl, d.socket, self.writer, self.db, log.path)
        ENGINE.docker("run", "-d", "--name", "gated", "--network", "none", "-v", "/usr:/usr:ro",
                      "-v", "%s:%s" % (sock_dir, sock_dir), IMAGE, "/bin/sh", "-c", entry)
        self.names.append("gated")
        # the entrypoint's migratectl runs (3 migrations pending: the gate is shut)
        D.wait_for(lambda: "wait --timeout" in ENGINE.docker("top", "gated", check=False).stdout.decode(),
                   "migratectl wait running in the container")
        self.assertEqual(len(d.status()["pending"]), 3)
        self.assertEqual(log.starts(), [], "the writer started before the schema was current")

        self.assertCtl(d.ctl("up"), 0)
        log.wait_acks(5)
        self.assertEqual(H.applied_versions(self.db), [1, 2, 3])

    def test_container_ignoring_sigterm_is_killed(self):
        log = self.container("stubborn", mode="ignore-term", health=False)
        d = self.daemon(config=self.config(["container:stubborn"], stop_timeout=2), database=None)

        r = d.ctl("up")
        self.assertCtl(r, 0)
        stopped = r.json["units"]["stopped"][0]
        self.assertEqual((stopped["ok"], stopped["killed"]), (True, True), stopped)
        self.assertRunningAgain("stubborn", log, 1)
        D.all_acked_in_db(self, self.db, [log])

    def test_failing_migration_and_kill9_of_migrated_leave_nothing_stopped(self):
        D.failing_migration(self.mig)
        log = self.container("web", health=False)
        d = self.daemon(config=self.config(["container:web"]), database=None)
        r = d.ctl("up")
        self.assertNotEqual(r.rc, 0, r)
        self.assertEqual(H.applied_versions(self.db), [])
        self.assertRunningAgain("web", log, 1)

        # SIGKILL while the slow migration runs: the next migrated starts the container
        for f in os.listdir(self.mig):
            if f.startswith("0004_"):
                os.unlink(os.path.join(self.mig, f))
        H.write_migrations(self.mig, {4: ("slow", H.slow_sql("big"), "DROP TABLE big;\n")})
        d.stop()
        d = self.daemon(config=self.config(["container:web"]), database=None)
        c = H.Conn(d.socket)
        self.addCleanup(c.close)
        c.send("up", {})
        D.wait_for(lambda: any(a["status"] == "running" for a in H.attempts(self.db)),
                   "the slow migration running")
        self.assertFalse(self.inspect("web")["Running"])
        d.kill()
        self.daemon(config=self.config(["container:web"]), database=None)
        self.assertRunningAgain("web", log, 2)
        self.assertNotIn(4, H.applied_versions(self.db))
        D.all_acked_in_db(self, self.db, [log])


if __name__ == "__main__":
    H.main()
