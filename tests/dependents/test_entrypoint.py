# SPDX-License-Identifier: MIT
"""packaging/examples/container/entrypoint.sh in real containers: dockerd started by the test
(test_containers.Dockerd), an image built here with `docker import` from a root holding
migratectl, migrated, the shared libraries `ldd` names for them, busybox as /bin/sh, the entrypoint
and the migrations. Three containers started at once on one database volume apply the migrations
once (one attempt per version) and all run their command; RUN_MIGRATIONS=false applies nothing and
runs it; MIGRATED_SOCKET waits on a daemon of the host, its socket mounted in, until `up`."""

import json
import os
import re
import shutil
import subprocess
import tarfile
import threading

import deplib as D
from deplib import H
import test_containers as TC

IMAGE = "migrated-entrypoint:1"
ENTRYPOINT = os.path.join(D.TESTS, "..", "packaging", "examples", "container", "entrypoint.sh")
BUSYBOX_APPLETS = ("sh", "echo", "sleep", "cat", "test", "[", "hostname", "env")
# the command each container runs after its entrypoint: it marks that it started, then serves
COMMAND = ["sh", "-c", "echo serving > /data/serving-$(hostname); exec sleep 100000"]
ENGINE = None


def shared_libraries(binary):
    """The absolute paths ldd prints for binary (its libraries and the dynamic loader)."""
    out = subprocess.run(["ldd", binary], check=True, stdout=subprocess.PIPE, text=True).stdout
    return sorted(set(re.findall(r"(/\S+) \(0x", out)))


def build_image(engine, workdir):
    """The image's root as a tarball for `docker import`: nothing but what the entrypoint runs."""
    migrations = H.write_migrations(os.path.join(workdir, "migrations"), {
        1: ("fast", "CREATE TABLE a (id INTEGER PRIMARY KEY);\n", None),
        2: ("slower", H.slow_sql(n=H.SLOW_N // 10), None),
    })
    tar_path = os.path.join(workdir, "image.tar")
    with tarfile.open(tar_path, "w") as tar:
        def add(src, dst, mode=None):
            info = tar.gettarinfo(os.path.realpath(src), arcname=dst.lstrip("/"))
            if mode is not None:
                info.mode = mode
            with open(os.path.realpath(src), "rb") as f:
                tar.addfile(info, f)

        def mkdir(path, mode=0o755):
            info = tarfile.TarInfo(path.lstrip("/"))
            info.type, info.mode = tarfile.DIRTYPE, mode
            tar.addfile(info)

        for d in ("/bin", "/usr", "/usr/bin", "/usr/sbin", "/usr/local", "/usr/local/bin", "/etc", "/tmp",
                  "/proc", "/sys", "/dev", "/data", "/migrations"):
            mkdir(d, 0o1777 if d == "/tmp" else 0o755)
        add(shutil.which("busybox"), "/bin/busybox", 0o755)
        for applet in BUSYBOX_APPLETS:
            info = tarfile.TarInfo("bin/" + applet)
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
        add(H.MIGRATECTL_BIN, "/usr/bin/migratectl", 0o755)  # finds migrated in ../sbin
        add(H.MIGRATED_BIN, "/usr/sbin/migrated", 0o755)
        libs = set(shared_libraries(H.MIGRATECTL_BIN)) | set(shared_libraries(H.MIGRATED_BIN))
        dirs = set()
        for lib in sorted(libs):
            for parent in reversed([p for p in _parents(lib) if p not in dirs]):
                dirs.add(parent)
                mkdir(parent)
            add(lib, lib)
        add(ENTRYPOINT, "/usr/local/bin/migrate-entrypoint", 0o755)
        for name in sorted(os.listdir(migrations)):
            add(os.path.join(migrations, name), "/migrations/" + name, 0o644)
    with open(tar_path, "rb") as f:
        engine.docker("import", "--change", 'ENTRYPOINT ["/usr/local/bin/migrate-entrypoint"]',
                      "--change", "ENV MIGRATED_DATABASE=/data/app.sqlite MIGRATED_MIGRATIONS=/migrations "
                      "STATE_DIRECTORY=/data/.migrated MIGRATECTL=/usr/bin/migratectl", "-", IMAGE, stdin=f)


def _parents(path):
    """"/usr/lib/x86_64-linux-gnu/libc.so.6" → its directories, deepest first, "/" left out."""
    out = []
    p = os.path.dirname(path)
    while p not in ("/", ""):
        out.append(p)
        p = os.path.dirname(p)
    return out


def setUpModule():
    global ENGINE
    if os.geteuid() != 0:
        H.cannot_run("the entrypoint tests start dockerd: they need root")
    for tool in ("dockerd", "docker", "busybox", "ldd"):
        if not shutil.which(tool):
            H.cannot_run("%s is not installed (packaging/install-deps.sh test installs docker.io and busybox-static)"
                         % tool)
    ENGINE = TC.Dockerd()
    try:
        build_image(ENGINE, ENGINE.dir)
    except BaseException:
        ENGINE.stop()
        raise


def tearDownModule():
    if ENGINE:
        ENGINE.stop()


class EntrypointTest(H.TestCase):

    def setUp(self):
        super().setUp()
        self.names = []
        self.volumes = []
        self.addCleanup(self.remove_all)

    def remove_all(self):
        ENGINE.remove(*self.names)
        for v in self.volumes:
            ENGINE.docker("volume", "rm", "-f", v, check=False)

    def volume(self):
        """A named volume of the engine; returns (name, its directory on the host)."""
        name = ENGINE.docker("volume", "create").stdout.decode().strip()
        self.volumes.append(name)
        return name, json.loads(ENGINE.docker("volume", "inspect", name).stdout)[0]["Mountpoint"]

    def create(self, name, volume, *args):
        ENGINE.docker(*(["create", "--name", name, "--hostname", name, "--network", "none",
                         "-v", "%s:/data" % volume] + list(args) + [IMAGE] + COMMAND))
        self.names.append(name)

    def start_at_once(self, names):
        """`docker start` of each name from its own thread, released together."""
        go = threading.Barrier(len(names))
        results = {}

        def start(n):
            go.wait()
            results[n] = ENGINE.docker("start", n, check=False)
        threads = [threading.Thread(target=start, args=(n,)) for n in names]
        for t in threads:
            t.start()
        for t in threads:
            t.join(180)
        for n in names:
            self.assertEqual(results[n].returncode, 0, results[n].stderr)

    def state(self, name):
        return json.loads(ENGINE.docker("inspect", name).stdout)[0]["State"]

    def assertServing(self, name, host_dir):
        """Its command started after the entrypoint (the mark it writes) and it still runs."""
        D.wait_for(lambda: os.path.exists(os.path.join(host_dir, "serving-" + name)) or
                   not self.state(name)["Running"], "%s's command" % name, timeout=120)
        logs = ENGINE.docker("logs", name, check=False)
        self.assertTrue(os.path.exists(os.path.join(host_dir, "serving-" + name)),
                        "%s's command never started: %s %s" % (name, logs.stdout, logs.stderr))
        self.assertTrue(self.state(name)["Running"], "%s stopped" % name)
        top = ENGINE.docker("top", name).stdout.decode()
        self.assertIn("sleep 100000", top, "%s's main process is its command" % name)

    def test_three_containers_at_once_migrate_once_and_all_serve(self):
        vol, host_dir = self.volume()
        names = ["app1", "app2", "app3"]
        for n in names:
            self.create(n, vol)
        self.start_at_once(names)
        for n in names:
            self.assertServing(n, host_dir)
        db = os.path.join(host_dir, "app.sqlite")
        self.assertEqual(H.applied_versions(db), [1, 2])
        # one job applied both versions; the other replicas found the schema current
        ups = [a for a in H.attempts(db) if a["direction"] == "up"]
        self.assertEqual([(a["status"], a["from_version"], a["to_version"]) for a in ups], [("succeeded", 0, 2)], ups)

    def test_run_migrations_false_applies_nothing(self):
        vol, host_dir = self.volume()
        self.create("off", vol, "-e", "RUN_MIGRATIONS=false")
        self.start_at_once(["off"])
        self.assertServing("off", host_dir)
        self.assertEqual(H.applied_versions(os.path.join(host_dir, "app.sqlite")), [])

    def test_waits_on_a_mounted_host_daemon_socket(self):
        vol, host_dir = self.volume()
        data = self.path("hostdata")
        os.makedirs(data)
        db = os.path.join(data, "app.sqlite")
        d = self.daemon(db, os.path.join(ENGINE.dir, "migrations"))
        sock_dir = os.path.dirname(d.socket)
        self.create("gated", vol, "-v", "%s:/run/migrated" % sock_dir,
                    "-e", "MIGRATED_SOCKET=/run/migrated/" + os.path.basename(d.socket))
        self.start_at_once(["gated"])
        D.wait_for(lambda: "wait --timeout" in ENGINE.docker("top", "gated", check=False).stdout.decode(),
                   "migratectl wait running in the container")
        self.assertFalse(os.path.exists(os.path.join(host_dir, "serving-gated")),
                         "the command started before the schema was current")
        self.assertCtl(d.ctl("up"), 0)
        self.assertServing("gated", host_dir)
        self.assertEqual(H.applied_versions(db), [1, 2])
        self.assertEqual(H.applied_versions(os.path.join(host_dir, "app.sqlite")), [], "the host migrates, not it")


if __name__ == "__main__":
    H.main()
