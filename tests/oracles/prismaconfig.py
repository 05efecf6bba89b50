# SPDX-License-Identifier: MIT
"""The prisma.config.ts of the Prisma oracle tests: the CLI's JS/wasm schema engine with a driver
adapter (libSQL for SQLite, pg for PostgreSQL), so that it runs offline."""

TEMPLATE = """import path from "node:path";
import { defineConfig } from "prisma/config";
%s

export default defineConfig({
  experimental: { adapter: true },
  engine: "js",
  schema: path.join("prisma", "schema.prisma"),
  async adapter() {
    return %s;
  },
});
"""


def config(import_line, adapter):
    """The file's text, with the adapter's import and the expression that makes it."""
    return TEMPLATE % (import_line, adapter)


SCHEMA_TEMPLATE = """generator client {
  provider   = "prisma-client-js"
  engineType = "client"
}

datasource db {
  provider = "%s"
  url      = %s
}
"""


def schema(provider, url):
    """prisma/schema.prisma: no model, the client generator that downloads no engine, and a
    datasource (its url is the adapter's concern; Prisma only wants one)."""
    return SCHEMA_TEMPLATE % (provider, url)
