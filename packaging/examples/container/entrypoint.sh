#!/bin/sh
# SPDX-License-Identifier: MIT
# A container's entrypoint: bring the database's schema up to date, then run the container's
# command. Three modes, chosen by the environment:
#
#   MIGRATED_SOCKET=PATH   a host daemon's socket mounted into the container: the host migrates;
#                          wait until the schema is current (migratectl wait), then start.
#   RUN_MIGRATIONS=false   do nothing (another container or a release job migrates).
#   otherwise              migrate here without a daemon (the one-shot mode):
#                          migratectl --database "$MIGRATED_DATABASE" --migrations "$MIGRATED_MIGRATIONS" up
#
# Several replicas starting at once on one database migrate once: the one-shot mode takes the
# database's lock; the others wait for it, then find the schema current.
#
# Environment: MIGRATED_DATABASE (a SQLite file on a volume, or a PostgreSQL URL),
# MIGRATED_MIGRATIONS (default /migrations), MIGRATED_WAIT_TIMEOUT (seconds, default 300),
# MIGRATECTL (default migratectl). Exit: migratectl's exit code when migrating fails, else the
# command's.
set -eu

migratectl=${MIGRATECTL:-migratectl}

if [ $# -eq 0 ]; then
        echo "entrypoint: no command to run after migrating" >&2
        exit 2
fi

if [ -n "${MIGRATED_SOCKET:-}" ]; then
        "$migratectl" --socket "$MIGRATED_SOCKET" wait --timeout "${MIGRATED_WAIT_TIMEOUT:-300}"
else
        case "${RUN_MIGRATIONS:-true}" in
        false | no | 0 | off)
                ;;
        *)
                if [ -z "${MIGRATED_DATABASE:-}" ]; then
                        echo "entrypoint: set MIGRATED_DATABASE (or RUN_MIGRATIONS=false, or MIGRATED_SOCKET)" >&2
                        exit 2
                fi
                "$migratectl" --database "$MIGRATED_DATABASE" --migrations "${MIGRATED_MIGRATIONS:-/migrations}" up
                ;;
        esac
fi

exec "$@"
