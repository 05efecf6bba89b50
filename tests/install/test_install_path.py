# SPDX-License-Identifier: MIT
"""The first hour's install path: packaging/install-deps.sh waits for the dpkg lock that another
real process holds (as unattended-upgrades does on a freshly booted box) and then goes on, and the
README's first command (packaging/quickstart.sh) runs with no sudo on the PATH.

Only the lock wait of the installer runs here (--wait-lock-only), never an install; the real dpkg
lock is held for as long as one test needs it and released at its end. Needs root (the lock file
is root's, and the quickstart's privilege step is skipped for root only); exits 77 otherwise.
Environment: that of the integration tests, and QUICKSTART_BUILD, a configured build directory
that the quickstart reuses (meson passes its own)."""

import os
import shutil
import signal
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

INSTALL_DEPS = os.path.join(harness.SRC_ROOT, "packaging", "install-deps.sh")
AS_ROOT = os.path.join(harness.SRC_ROOT, "packaging", "as-root.sh")
DPKG_LOCK = "/var/lib/dpkg/lock-frontend"
LOCK_TIMEOUT = 120.0  # safety net for another apt run holding the lock before the test takes it
LINE_TIMEOUT = 60.0

# Holds the lock the way dpkg and apt take it (an fcntl lock), until its stdin closes.
POSIX_HOLDER = r'''
import fcntl, sys, time
f = open(sys.argv[1], "a")
deadline = time.monotonic() + float(sys.argv[2])
while True:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        break
    except OSError:
        if time.monotonic() > deadline:
            print("busy", flush=True)
            sys.exit(1)
        time.sleep(0.2)
print("locked", flush=True)
sys.stdin.read()
'''


def read_line(stream, timeout=LINE_TIMEOUT):
    """One line from a pipe, or None after timeout (a safety net, not a measurement)."""
    box = []
    t = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    t.start()
    t.join(timeout)
    return box[0] if box else None


def readme_commands():
    """The commands of the README's quickstart block, without their comments."""
    with open(os.path.join(harness.SRC_ROOT, "README.md")) as f:
        text = f.read()
    block = text.split("\n## Quickstart", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in block.splitlines() if line.split("#", 1)[0].strip()]


def path_without(tool, tmp):
    """A directory of links to every program on PATH but tool, to be the whole PATH."""
    d = os.path.join(tmp, "bin-without-" + tool)
    os.makedirs(d)
    for p in os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin").split(":"):
        if not os.path.isdir(p):
            continue
        for name in os.listdir(p):
            target = os.path.join(p, name)
            if name != tool and not os.path.exists(os.path.join(d, name)) and os.access(target, os.X_OK):
                os.symlink(target, os.path.join(d, name))
    return d


class InstallPathTest(harness.TestCase):

    def hold_lock(self, argv):
        """Starts argv (it prints "locked" once it holds the lock, and releases it when its stdin
        closes) and waits for it to hold the lock."""
        p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             start_new_session=True)
        self.procs.append(p)
        line = read_line(p.stdout, LOCK_TIMEOUT)
        if line != "locked\n":
            self.skipTest("another process kept %s for %ss: cannot hold it for the test" % (DPKG_LOCK, LOCK_TIMEOUT))
        return p

    def check_waits_then_goes_on(self, holder, holder_name):
        inst = subprocess.Popen([INSTALL_DEPS, "--wait-lock-only"], stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.procs.append(inst)
        line = read_line(inst.stderr)
        self.assertIsNotNone(line, "the installer said nothing while the lock was held")
        self.assertIn("Waiting for %s (pid %d) to release %s" % (holder_name, holder.pid, DPKG_LOCK), line)
        self.assertIsNone(inst.poll(), "the installer did not wait for the lock: " + line)
        holder.stdin.close()  # the other package manager finishes
        holder.wait(LINE_TIMEOUT)
        out, err = inst.communicate(timeout=LINE_TIMEOUT)
        self.assertEqual(inst.returncode, 0, err)
        self.assertIn("lock is free: going on", err)

    def test_installer_waits_for_the_dpkg_lock_held_like_apt(self):
        holder = self.hold_lock([sys.executable, "-c", POSIX_HOLDER, DPKG_LOCK, str(LOCK_TIMEOUT)])
        self.check_waits_then_goes_on(holder, "python3")

    def test_installer_waits_for_the_dpkg_lock_held_with_flock(self):
        if not shutil.which("flock"):
            self.skipTest("no flock (util-linux)")
        holder = self.hold_lock(["flock", "-w", str(int(LOCK_TIMEOUT)), DPKG_LOCK, "sh", "-c", "echo locked; exec cat"])
        # flock(1) keeps the lock and waits for its command
        self.check_waits_then_goes_on(holder, "flock")

    def test_installer_gives_up_after_its_timeout_naming_the_holder(self):
        holder = self.hold_lock([sys.executable, "-c", POSIX_HOLDER, DPKG_LOCK, str(LOCK_TIMEOUT)])
        env = dict(os.environ, MIGRATED_APT_LOCK_TIMEOUT="0")
        r = subprocess.run([INSTALL_DEPS, "--wait-lock-only"], env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=LINE_TIMEOUT)
        holder.stdin.close()
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("%s is still held by pid %d" % (DPKG_LOCK, holder.pid), r.stderr)

    def test_readme_first_command_runs_with_no_sudo_on_the_path(self):
        build = os.environ.get("QUICKSTART_BUILD")
        if not build or not os.path.exists(os.path.join(build, "build.ninja")):
            self.skipTest("QUICKSTART_BUILD names no configured build directory")
        demo = self.path("demo")
        env = dict(os.environ, PATH=path_without("sudo", self.tmp), QUICKSTART_BUILD=build, QUICKSTART_DEMO=demo)
        self.assertIsNone(shutil.which("sudo", path=env["PATH"]))
        first = readme_commands()[0]
        self.assertIn("quickstart", first)
        p = subprocess.Popen(["sh", "-c", "exec " + first], cwd=harness.SRC_ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.procs.append(p)
        seen = []
        while True:
            line = read_line(p.stdout, 300)
            self.assertTrue(line, "the quickstart ended before starting migrated:\n" + "".join(seen))
            seen.append(line)
            if line.startswith("migrated is starting on"):
                break
        self.assertNotIn("sudo", "".join(seen))
        # the build's output is shown, not hidden; the man pages are built with it
        self.assertIn("ninja: Entering directory", "".join(seen))
        self.assertTrue(os.path.exists(os.path.join(build, "packaging", "migratectl.1")), "no man page built (scdoc?)")
        sock = os.path.join(demo, "migrated.sock")
        harness.wait_until(lambda: os.path.exists(sock), harness.READY_TIMEOUT * 3, what="the demo daemon's socket")
        st = harness.wait_until(lambda: (lambda s: s if s.get("state") == "idle" and not s.get("pending") else None)(
            harness.result_of(harness.rpc(sock, "status")[1])), 60, interval=0.1, what="migrations applied at start")
        self.assertEqual(st["current_version"], max(v for v, *_ in harness.example_migrations()))
        os.kill(p.pid, signal.SIGTERM)  # the quickstart exec'd migrated: Ctrl-C's equivalent
        self.assertEqual(p.wait(harness.STOP_TIMEOUT), 0)

    def test_as_root_without_sudo_says_what_to_do(self):
        if not shutil.which("setpriv"):
            self.skipTest("no setpriv (util-linux)")
        env = dict(os.environ, PATH=path_without("sudo", self.tmp))
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", AS_ROOT, "id", "-u"],
                           env=env, capture_output=True, text=True, timeout=LINE_TIMEOUT)
        self.assertEqual(r.returncode, 1, r)
        self.assertIn("needs root, and there is no sudo here: run it as root", r.stderr)
        r = subprocess.run([AS_ROOT, "id", "-u"], env=env, capture_output=True, text=True, timeout=LINE_TIMEOUT)
        self.assertEqual((r.returncode, r.stdout), (0, "0\n"), r)


if __name__ == "__main__":
    if os.geteuid() != 0:
        harness.cannot_run("the install path tests need root (the dpkg lock, the quickstart's privilege step)")
    harness.main()
