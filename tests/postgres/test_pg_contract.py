#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The backend contract (tests/unit/test-db-contract.c) run against the PostgreSQL backend: the
unit suite has no server, so it skips that backend; here it gets one."""

import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402

CONTRACT_BIN = os.environ.get("CONTRACT_BIN", os.path.join(os.path.dirname(os.environ.get(
    "MIGRATED_BIN", "build/daemon/migrated")), "..", "tests", "unit", "test-db-contract"))


class TestContract(PgTestCase):
    def test_contract_on_postgres(self):
        env = dict(os.environ, MIGRATED_TEST_PG=self.cluster.conninfo("postgres"))
        r = subprocess.run([CONTRACT_BIN], env=env, capture_output=True, text=True, timeout=120)
        out = r.stdout + r.stderr
        self.assertEqual(r.returncode, 0, out)
        self.assertNotIn("SKIP: backend postgresql", out)
        self.assertIn("[ RUN      ] test_bookkeeping", out)


if __name__ == "__main__":
    harness.main()
