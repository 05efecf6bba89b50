# SPDX-License-Identifier: MIT
"""dbmate as a peer in the benchmarks: the static binary of npm @dbmate/linux-x64, pinned by
tests/oracles/package-lock.json and installed with `npm ci` the way the oracle tests install it
(tests/integration/harness.py: npm_install_or_reason). The workloads of bench.py in dbmate's
layout (`-- migrate:up` / `-- migrate:down` in one file per migration, its schema_migrations),
run inside the same rounds as migrated and the sqlite3 CLI, so that load on the machine hits every
tool alike. Without node, npm or the registry, the peer's cells say so and nothing fails."""

import json
import os
import subprocess

import harness as H

PROGRAM = os.path.join("node_modules", "@dbmate", "linux-x64", "bin", "dbmate")


class Dbmate:
    def __init__(self, bench):
        self.B = bench   # the bench module: run(), SRC_ROOT
        self.bin, self.why = H.npm_install_or_reason(os.path.join(bench.SRC_ROOT, "tests", "oracles"), PROGRAM,
                                                     "dbmate")
        self.version = None
        if self.bin:
            r = subprocess.run([self.bin, "--version"], capture_output=True, text=True)
            self.version = (r.stdout.strip().split() or ["?"])[-1]
        else:
            self.why = self.why.splitlines()[0]

    @property
    def ok(self):
        return self.bin is not None

    def label(self):
        return "dbmate %s" % self.version if self.ok else "dbmate"

    def missing(self):
        """The cell of a peer that could not be installed."""
        return "not measured: %s" % self.why

    def argv(self, db, mig, *args):
        return [self.bin, "--url", "sqlite:" + db, "--migrations-dir", mig, "--no-dump-schema"] + list(args)

    @staticmethod
    def write(directory, migrations):
        """migrations: [(version, name, up_sql, down_sql)] as dbmate files."""
        os.makedirs(directory, exist_ok=True)
        for v, name, up, down in migrations:
            with open(os.path.join(directory, "%04d_%s.sql" % (v, name)), "w") as f:
                f.write("-- migrate:up\n%s\n-- migrate:down\n%s\n" % (up, down))
        return directory

    def up(self, db, mig):
        """One `dbmate up`, timed like every other tool (bench.run)."""
        return self.B.run(self.argv(db, mig, "up"))

    def status_spawn(self, benchtool, db, mig, runs):
        """`dbmate status` as whole processes, timed by benchtool spawn (p50_us, p99_us, ...)."""
        return json.loads(subprocess.run([benchtool, "spawn", str(runs), "--"] + self.argv(db, mig, "status"),
                                         capture_output=True, text=True, check=True).stdout)
