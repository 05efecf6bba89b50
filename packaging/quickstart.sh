#!/bin/sh
# Quickstart: installs what is missing, builds, and runs migrated in the foreground on a demo
# database (demo/sleep.db) with the example migrations applied at start. Ctrl-C stops it.
set -eu
cd "$(dirname "$0")/.."

packaging/install-deps.sh build
[ -f build/build.ninja ] || meson setup build --buildtype=debugoptimized >/dev/null
ninja -C build >/dev/null

mkdir -p demo
sock="$PWD/demo/migrated.sock"
cat <<TXT

migrated is starting on demo/sleep.db with the migrations in migrations/ (applied at start).
From a second shell, try:

  build/client/migratectl --socket $sock status
  build/client/migratectl --socket $sock history
  build/client/migratectl --socket $sock --json status
  build/client/migratectl --socket $sock down --dry-run
  echo '{"id":1,"method":"status"}' | socat - UNIX-CONNECT:$sock

TXT
exec build/daemon/migrated --database demo/sleep.db --migrations migrations --socket "$sock" --auto-up
