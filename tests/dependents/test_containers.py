# SPDX-License-Identifier: MIT
"""container: and compose: dependents against real engines started by the test, through the
Docker Engine API: Debian's docker.io (dockerd on its own socket, data root and exec root, without
a bridge or firewall rules) and Debian's podman (its Docker-compatible service), the same cases on
each. The image is built here from an empty root with the host's /usr
mounted read-only (busybox-static and python3 come from there): containers run the writer on the
database in a directory mounted into them, and every acknowledged insert must survive."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import unittest

import deplib as D
from deplib import H

IMAGE = "migrated-test:1"


def engine_unavailable(why):
    """This engine cannot run here: SKIP its cases, or FAIL them under CI=true."""
    if H.in_ci():
        raise AssertionError("required engine cannot run under CI=true: %s" % why)
    raise unittest.SkipTest(why)


class Engine:
    """An engine on a private socket, data root and run root, driven by the docker CLI through its
    Docker-compatible API; removed with everything it ran when its class's tests end."""

    name = None

    def __init__(self, socket_dir=None):
        """socket_dir: where its API socket goes (a directory bound into a container elsewhere)."""
        self.dir = tempfile.mkdtemp(prefix="migrated-%s-" % self.name)
        self.socket = os.path.join(socket_dir or self.dir, self.name + ".sock")
        self.log = open(os.path.join(self.dir, self.name + ".log"), "wb")
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=self.log, stdin=subprocess.DEVNULL,
                                     start_new_session=True, env=self.env())
        H.wait_until(lambda: self.docker("version", check=False).returncode == 0 or self.proc.poll() is not None,
                     60, interval=0.1, what="%s answering" % self.name)
        if self.proc.poll() is not None:
            raise H.HarnessError("%s exited: %s" % (self.name, self.log_text()))
        root = os.path.join(self.dir, "rootfs")
        for d in ("usr", "tmp", "etc", "proc", "sys", "dev"):
            os.makedirs(os.path.join(root, d))
        for link in ("bin", "lib", "lib64", "sbin"):
            os.symlink("usr/" + link, os.path.join(root, link))
        tar = subprocess.Popen(["tar", "-C", root, "-c", "."], stdout=subprocess.PIPE)
        self.docker("import", "-", IMAGE, stdin=tar.stdout)
        tar.stdout.close()
        tar.wait()

    def env(self):
        return None

    def log_text(self):
        with open(os.path.join(self.dir, self.name + ".log"), "rb") as f:
            return f.read().decode(errors="replace")[-4000:]

    def docker(self, *args, check=True, stdin=subprocess.DEVNULL):
        r = subprocess.run(["docker", "-H", "unix://" + self.socket] + list(args), stdin=stdin,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
        if check and r.returncode != 0:
            raise H.HarnessError("docker %s: %s" % (" ".join(args), r.stderr.decode(errors="replace")))
        return r

    def remove(self, *names):
        """Kills first: podman's forced removal waits for the stop timeout."""
        if names:
            self.docker("kill", *names, check=False)
            self.docker("rm", "-f", *names, check=False)

    def health_timer(self, name):
        pass

    def stop(self):
        self.remove(*self.docker("ps", "-aq", check=False).stdout.decode().split())
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()
        self.cleanup()
        subprocess.run(["umount", "-R", os.path.join(self.dir, "root")], stderr=subprocess.DEVNULL)
        shutil.rmtree(self.dir, ignore_errors=True)

    def cleanup(self):
        pass


class Dockerd(Engine):
    """Debian's docker.io, without a bridge or firewall rules."""

    name = "dockerd"
    tools = ("dockerd", "docker")

    def command(self):
        return ["dockerd", "--data-root", os.path.join(self.dir, "root"), "--exec-root", os.path.join(self.dir, "exec"),
                "--pidfile", os.path.join(self.dir, "pid"), "-H", "unix://" + self.socket, "--bridge=none",
                "--iptables=false", "--ip6tables=false"]


class Podman(Engine):
    """Debian's podman serving its Docker-compatible API (`podman system service`), rootful, with
    the runc runtime (crun refuses hybrid cgroups) and ulimits within the hard limit."""

    name = "podman"
    tools = ("podman", "runc", "docker")

    def global_args(self):
        return ["podman", "--root", os.path.join(self.dir, "root"), "--runroot", os.path.join(self.dir, "run"),
                "--tmpdir", os.path.join(self.dir, "tmp")]

    def env(self):
        conf = os.path.join(self.dir, "containers.conf")
        with open(conf, "w") as f:
            f.write('[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
                    '[engine]\nruntime = "runc"\n')
        return dict(os.environ, CONTAINERS_CONF=conf)

    def command(self):
        return self.global_args() + ["system", "service", "--time=0", "unix://" + self.socket]

    def health_timer(self, name):
        """podman runs a health check from a systemd timer it creates with systemd-run; with no
        systemd as PID 1 (these machines) nothing runs it, so the test plays the timer: `podman
        healthcheck run` every second while the container exists."""
        def tick():
            while subprocess.run(self.global_args() + ["healthcheck", "run", name], env=self.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 timeout=60).stderr.find(b"no such container") < 0 and self.proc.poll() is None:
                time.sleep(1)  # the timer's interval, not a synchronisation
        threading.Thread(target=tick, daemon=True).start()

    def cleanup(self):
        subprocess.run(self.global_args() + ["rm", "-fa"], env=self.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        subprocess.run(self.global_args() + ["system", "reset", "--force"], env=self.env(), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        subprocess.run(["umount", "-R", os.path.join(self.dir, "run")], stderr=subprocess.DEVNULL)


def setUpModule():
    if os.geteuid() != 0:
        H.cannot_run("the container tests start dockerd and podman: they need root")
    for tool in ("busybox", "tar"):
        if not shutil.which(tool):
            H.cannot_run("%s is not installed (packaging/install-deps.sh test installs busybox-static)" % tool)


class ContainerCases:
    """The same cases against each engine (ENGINE_CLASS)."""

    ENGINE_CLASS = None

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        missing = [t for t in cls.ENGINE_CLASS.tools if not shutil.which(t)]
        if missing:
            engine_unavailable("%s is not installed (packaging/install-deps.sh test installs docker.io and podman)"
                               % ", ".join(missing))
        cls.engine = cls.ENGINE_CLASS()

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "engine", None):
            cls.engine.stop()
        super().tearDownClass()

    def setUp(self):
        super().setUp()
        os.chmod(self.tmp, 0o755)
        self.db = self.path("app.sqlite")
        D.create_db(self.db)
        self.mig = D.migrations(self.path("migrations"))
        self.writer = self.path("writer.py")
        shutil.copy(D.WRITER, self.writer)
        self.names = []
        self.addCleanup(lambda: self.engine.remove(*self.names))

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
        self.engine.docker(*(args + [IMAGE, "/usr/bin/python3", self.writer, db or self.db, log.path, name, "--mode", mode]))
        self.names.append(name)
        if health:
            self.engine.health_timer(name)
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
                text += "[%s.%s]\nsocket = %s\n" % (kind, section, self.engine.socket)
        with open(path, "w") as f:
            f.write(text)
        return path

    def inspect(self, name):
        import json
        return json.loads(self.engine.docker("inspect", name).stdout)[0]["State"]

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
        cid = self.engine.docker("inspect", "-f", "{{.Id}}", "web").stdout.decode().strip()
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
        self.engine.docker("run", "-d", "--name", "gated", "--network", "none", "-v", "/usr:/usr:ro",
                      "-v", "%s:%s" % (sock_dir, sock_dir), IMAGE, "/bin/sh", "-c", entry)
        self.names.append("gated")
        # the entrypoint's migratectl runs (3 migrations pending: the gate is shut)
        D.wait_for(lambda: "wait --timeout" in self.engine.docker("top", "gated", check=False).stdout.decode(),
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


class DockerdTest(ContainerCases, H.TestCase):
    ENGINE_CLASS = Dockerd


class PodmanTest(ContainerCases, H.TestCase):
    ENGINE_CLASS = Podman


if __name__ == "__main__":
    H.main()
