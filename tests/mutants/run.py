#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The mutation check: plants each small defect of tests/mutants/*.mutant in a scratch copy of the
tree, builds it, and runs the tests the mutant names; a mutant is caught when one of them fails.

    tests/mutants/run.py                 every mutant
    tests/mutants/run.py NAME...         the named ones (file names without .mutant)
    tests/mutants/run.py --rotate N      N of them, chosen by today's date (or --seed S)
    tests/mutants/run.py --list          the mutants and the promise each one breaks

Before any mutant, the unmutated copy is built and the named tests are run once: a test that
fails (or skips) there would "catch" every mutant, so the run stops instead. Prints a table
(mutant, result, caught by, time) and the score; exits 0 only when every chosen mutant applied,
built and was caught. A mutant whose snippet does not occur exactly once (the code moved) is an
error, not a catch: realign it (see README.md beside this file).
"""

import argparse
import datetime
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC_ROOT = os.path.dirname(os.path.dirname(HERE))
TEST_TIMEOUT = 600  # one test file; a hang caused by a mutant counts as caught


class MutantError(Exception):
    pass


class Mutant:
    """One .mutant file: header lines (key: value), then the snippet to find and its replacement."""

    def __init__(self, path):
        self.path = path
        self.name = os.path.basename(path)[:-len(".mutant")]
        self.header = {}
        self.find = self.replace = None
        section, lines = None, {"find": [], "replace": []}
        with open(path, encoding="utf-8") as f:
            for raw in f.read().split("\n"):
                if raw.startswith("--- "):
                    section = raw[4:].strip()
                    if section == "end":
                        break
                    if section not in lines:
                        raise MutantError("%s: unknown section %r" % (path, raw))
                    continue
                if section is None:
                    if not raw.strip() or raw.startswith("#"):
                        continue
                    key, sep, value = raw.partition(":")
                    if not sep:
                        raise MutantError("%s: header line without a colon: %r" % (path, raw))
                    key = key.strip()
                    self.header[key] = (self.header.get(key, "") + " " + value.strip()).strip()
                else:
                    lines[section].append(raw)
        for key in ("promise", "file", "tests"):
            if not self.header.get(key):
                raise MutantError("%s: no %r line" % (path, key))
        if not lines["find"]:
            raise MutantError("%s: no '--- find' section" % path)
        if section != "end":
            raise MutantError("%s: no '--- end' line" % path)
        self.find = "\n".join(lines["find"])
        self.replace = "\n".join(lines["replace"])
        if self.find == self.replace:
            raise MutantError("%s: the replacement equals the snippet" % path)
        self.file = self.header["file"]
        self.promise = self.header["promise"]
        self.tests = self.header["tests"].split()

    def mutate(self, text):
        """The file's text with the defect planted; MutantError unless the snippet occurs once."""
        n = text.count(self.find)
        if n != 1:
            raise MutantError("snippet occurs %d times in %s (must be exactly once): realign the mutant" %
                              (n, self.file))
        return text.replace(self.find, self.replace, 1)


def load_mutants():
    out = []
    for f in sorted(os.listdir(HERE)):
        if f.endswith(".mutant"):
            out.append(Mutant(os.path.join(HERE, f)))
    return out


def choose(mutants, names, rotate, seed):
    if names:
        by_name = {m.name: m for m in mutants}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            sys.exit("unknown mutant(s): %s" % ", ".join(unknown))
        return [by_name[n] for n in names]
    if rotate:
        if seed is None:
            seed = datetime.date.today().toordinal()
        n = min(rotate, len(mutants))
        start = (seed * n) % len(mutants)
        return [mutants[(start + i) % len(mutants)] for i in range(n)]
    return mutants


def copy_tree(dst):
    """The tree as git sees it (tracked and new files, uncommitted edits included); no build dirs."""
    p = subprocess.run(["git", "-C", SRC_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       capture_output=True, check=True)
    for rel in filter(None, p.stdout.decode().split("\0")):
        if rel.startswith("build"):
            continue
        src = os.path.join(SRC_ROOT, rel)
        if not os.path.lexists(src):  # deleted but not yet committed
            continue
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        shutil.copy2(src, os.path.join(dst, rel), follow_symlinks=False)


def run(argv, log, cwd=None, env=None, timeout=None):
    """Runs argv with its output into log; returns the exit status, or None on a timeout."""
    with open(log, "ab") as f:
        f.write(("\n$ %s\n" % " ".join(argv)).encode())
        f.flush()
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT,
                             start_new_session=True)
        try:
            return p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            return None


class Scratch:
    """A copy of the tree and one build directory reused for every mutant."""

    def __init__(self, workdir):
        self.dir = workdir
        self.src = os.path.join(workdir, "src")
        self.build = os.path.join(self.src, "build-mutants")
        self.log = os.path.join(workdir, "log")

    def setup(self):
        if os.path.exists(self.src):
            shutil.rmtree(self.src)
        os.makedirs(self.src)
        copy_tree(self.src)
        rc = run(["meson", "setup", self.build, "-Dtests=enabled", "-Dwerror=false", "-Dman=disabled",
                  "--buildtype=debugoptimized"], self.log, cwd=self.src)
        if rc != 0:
            raise MutantError("meson setup of the scratch copy failed; see %s" % self.log)

    def ninja(self):
        return run(["ninja", "-C", self.build], self.log) == 0

    def env(self):
        env = dict(os.environ)
        env.update(MIGRATED_BIN=os.path.join(self.build, "daemon", "migrated"),
                   MIGRATECTL_BIN=os.path.join(self.build, "client", "migratectl"),
                   MIGRATIONS_DIR=os.path.join(self.src, "migrations"), PYTHONDONTWRITEBYTECODE="1")
        return env

    def test_argv(self, spec):
        """unit/test-NAME, integration/test_x.py[:Class.test], systemd/, dependents/ and postgres/test_x.py[:Class.test]."""
        path, _, only = spec.partition(":")
        if path.startswith("unit/"):
            return [os.path.join(self.build, "tests", path)]
        if path.startswith(("integration/", "systemd/", "dependents/", "postgres/")) and path.endswith(".py"):
            return [sys.executable, os.path.join(self.src, "tests", path)] + only.split(",") if only else \
                [sys.executable, os.path.join(self.src, "tests", path)]
        raise MutantError("unknown test %r (unit/test-NAME, integration/test_x.py[:Class.test], systemd/…)" % spec)

    def run_test(self, spec):
        """'ok', 'skipped', 'failed' or 'timeout'."""
        rc = run(self.test_argv(spec), self.log, cwd=self.src, env=self.env(), timeout=TEST_TIMEOUT)
        if rc is None:
            return "timeout"
        return {0: "ok", 77: "skipped"}.get(rc, "failed")


def fmt_s(seconds):
    return "%.0f s" % seconds


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--rotate", type=int, metavar="N", help="run N mutants chosen by the date (or --seed)")
    ap.add_argument("--seed", type=int, help="seed for --rotate instead of today's date")
    ap.add_argument("--list", action="store_true", help="list the mutants and what each breaks")
    ap.add_argument("--workdir", help="scratch directory (default: a new one under /var/tmp, removed after)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the run of the tests on the unmutated copy")
    args = ap.parse_args()

    try:
        mutants = load_mutants()
    except MutantError as e:
        sys.exit("mutants: %s" % e)
    if args.list:
        for m in mutants:
            print("%-32s %s\n%32s file %s; tests %s" % (m.name, m.promise, "", m.file, " ".join(m.tests)))
        return 0
    chosen = choose(mutants, args.names, args.rotate, args.seed)
    t_all = time.monotonic()
    workdir = args.workdir or tempfile.mkdtemp(prefix="migrated-mutants-", dir="/var/tmp")
    os.makedirs(workdir, exist_ok=True)
    sc = Scratch(workdir)
    print("mutants: %d of %d, scratch copy in %s (log: %s)" % (len(chosen), len(mutants), sc.src, sc.log), flush=True)
    try:
        sc.setup()
        if not sc.ninja():
            print("mutants: the unmutated copy does not build; see %s" % sc.log)
            return 1
        for m in chosen:
            for spec in m.tests:
                sc.test_argv(spec)  # unknown test names fail here, before any time is spent
        if not args.no_baseline:
            specs = sorted({s for m in chosen for s in m.tests})
            t0 = time.monotonic()
            bad = [(s, r) for s in specs for r in [sc.run_test(s)] if r != "ok"]
            print("baseline: %d test runs on the unmutated copy in %s" % (len(specs), fmt_s(time.monotonic() - t0)),
                  flush=True)
            if bad:
                for s, r in bad:
                    print("baseline: %s %s without any mutant; fix the suite first (log: %s)" % (s, r, sc.log))
                return 1

        rows = []
        for m in chosen:
            t0 = time.monotonic()
            target = os.path.join(sc.src, m.file)
            result, by = "SURVIVED", "-"
            try:
                with open(target, encoding="utf-8") as f:
                    original = f.read()
            except OSError as e:
                original, result, by = None, "APPLY-ERROR", "%s: %s" % (m.file, e.strerror)
            if original is not None:
                try:
                    mutated = m.mutate(original)
                except MutantError as e:
                    result, by = "APPLY-ERROR", str(e)
                else:
                    with open(target, "w", encoding="utf-8") as f:
                        f.write(mutated)
                    try:
                        if not sc.ninja():
                            result, by = "BUILD-ERROR", "the mutated tree does not compile"
                        else:
                            for spec in m.tests:
                                r = sc.run_test(spec)
                                if r in ("failed", "timeout"):
                                    result, by = "caught", spec + (" (timeout)" if r == "timeout" else "")
                                    break
                    finally:
                        with open(target, "w", encoding="utf-8") as f:
                            f.write(original)
            rows.append((m.name, result, by, time.monotonic() - t0))
            print("%-32s %-11s %-60s %6s" % (m.name, result, by, fmt_s(rows[-1][3])), flush=True)
    finally:
        if not args.workdir:
            if os.path.exists(sc.log):
                shutil.copy(sc.log, os.path.join(tempfile.gettempdir(), "migrated-mutants.log"))
            shutil.rmtree(workdir, ignore_errors=True)

    caught = sum(1 for r in rows if r[1] == "caught")
    survived = [r[0] for r in rows if r[1] == "SURVIVED"]
    errors = [r[0] for r in rows if r[1] not in ("caught", "SURVIVED")]
    print()
    print("%-32s %-11s %-60s %6s" % ("mutant", "result", "caught by", "time"))
    for name, result, by, secs in rows:
        print("%-32s %-11s %-60s %6s" % (name, result, by, fmt_s(secs)))
    print("mutation score: %d of %d caught (%d survived, %d did not apply or build) in %s" %
          (caught, len(rows), len(survived), len(errors), fmt_s(time.monotonic() - t_all)))
    if survived:
        print("survivors: %s" % ", ".join(survived))
    if errors:
        print("realign: %s" % ", ".join(errors))
    return 0 if caught == len(rows) and rows else 1


if __name__ == "__main__":
    sys.exit(main())
