#!/bin/sh
# Quickstart: installs what is missing (as root: through sudo when not root and sudo is there),
# builds with the build's output shown, and runs migrated in the foreground on a demo database
# (demo/sleep.db) with the example migrations applied at start. Ctrl-C stops it.
# QUICKSTART_BUILD and QUICKSTART_DEMO name other build and demo directories.
set -eu
cd "$(dirname "$0")/.."
build=${QUICKSTART_BUILD:-build}
demo=${QUICKSTART_DEMO:-demo}

packaging/install-deps.sh build
[ -f "$build/build.ninja" ] || meson setup "$build" --buildtype=debugoptimized
ninja -C "$build"

mkdir -p "$demo"
sock="$(cd "$demo" && pwd)/migrated.sock"
cat <<TXT

migrated is starting on $demo/sleep.db with the migrations in migrations/ (applied at start).
From a second shell, try:

  $build/client/migratectl --socket $sock status
  $build/client/migratectl --socket $sock history
  $build/client/migratectl --socket $sock --json status
  $build/client/migratectl --socket $sock down --dry-run
  echo '{"id":1,"method":"status"}' | socat - UNIX-CONNECT:$sock
  man $build/packaging/migratectl.1

TXT
exec "$build/daemon/migrated" --database "$demo/sleep.db" --migrations migrations --socket "$sock" --auto-up
