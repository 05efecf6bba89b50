#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The one-shot mode on PostgreSQL: migratectl --database CONNINFO runs migrated --one-shot with
the PostgreSQL backend (as --connection does), no daemon running."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pgharness import PgTestCase, harness  # noqa: E402
from test_postgres import BASIC, write  # noqa: E402


class TestOneShotOnPostgres(PgTestCase):
    def one(self, *args, conninfo=None):
        return harness.ctl("--database", conninfo or self.cluster.conninfo(self.dbname),
                           "--migrations", self.migrations, *args, json_out=True,
                           env={"STATE_DIRECTORY": os.path.join(self.workdir, "state-oneshot")})

    def test_up_status_down_with_a_connection_string(self):
        write(self.migrations, BASIC)
        r = self.one("status")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(len(r.json["pending"]), 2, r)
        r = self.one("up")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.sql("SELECT version FROM migrated_schema ORDER BY version"), [["1"], ["2"]])
        self.assertEqual(self.one("status", "--check").rc, 0)
        r = self.one("down")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.sql("SELECT version FROM migrated_schema ORDER BY version"), [["1"]])
        self.assertEqual(self.one("verify").rc, 0)

    def test_a_url_selects_the_backend_too(self):
        write(self.migrations, BASIC)
        c = self.cluster
        url = "postgresql://postgres@/%s?host=%s&port=%d" % (self.dbname, c.sock, c.port)
        r = self.one("up", conninfo=url)
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(self.sql("SELECT count(*) FROM migrated_schema"), [["2"]])


if __name__ == "__main__":
    harness.main()
