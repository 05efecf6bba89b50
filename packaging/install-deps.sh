#!/bin/sh
# Installs the Debian 12 packages migrated needs: "build" to build and run it, "test" to run the
# whole test suite as well. Installs only what is missing, so a second run needs no network.
set -eu

build_pkgs="gcc pkg-config meson ninja-build libsqlite3-dev libsystemd-dev libevent-dev libjansson-dev
libinih-dev libmd-dev libpq-dev sqlite3"
# the systemd suites (a user manager in namespaces: systemd, unshare from util-linux), the
# authorization tests (useradd and groupadd from passwd, setpriv) and the mutation check (git)
test_pkgs="$build_pkgs libcmocka-dev python3 socat systemd dbus-user-session util-linux procps psmisc passwd git"
# packaging (packaging/ci-package.sh) and the example install script (packaging/examples/)
test_pkgs="$test_pkgs debhelper dpkg-dev fakeroot scdoc lintian bash-completion man-db jq"
# fuzzing (tests/fuzz/run.sh: clang with its libFuzzer runtime) and tests/valgrind.sh
test_pkgs="$test_pkgs clang libclang-rt-14-dev valgrind"
# the postgres suite (tests/postgres: a real PostgreSQL 15 started by the test; pg_dump and
# pg_restore come with its client) and pgbouncer for the pooler refusal
test_pkgs="$test_pkgs postgresql-15 pgbouncer"
# the shipped units under a system manager (tests/systemd/test_shipped_units.py: systemd-nspawn)
test_pkgs="$test_pkgs systemd-container"

# the container dependents (tests/dependents/test_containers.py: dockerd started by the test, an
# image made from the host's busybox)
test_pkgs="$test_pkgs docker.io busybox-static"
# the dependents suite (tests/dependents: a real pm2 from npm, pinned by its package-lock.json):
# node and npm; Debian's packages unless a node that brings its own npm is installed already
if [ "${1:-build}" = test ] && ! command -v npm >/dev/null 2>&1; then
        test_pkgs="$test_pkgs nodejs npm"
fi

case "${1:-build}" in
build) pkgs=$build_pkgs ;;
test) pkgs=$test_pkgs ;;
*) echo "usage: $0 [build|test]" >&2; exit 2 ;;
esac

missing=""
for p in $pkgs; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
        echo "missing packages:$missing; run this as root (sudo $0 $*)" >&2
        exit 1
fi
echo "Installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
