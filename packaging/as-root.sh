#!/bin/sh
# Runs a command as root: directly when we are root already (root-only boxes and containers have
# no sudo), through sudo when we are not and sudo is there, and otherwise says what to do.
set -eu
if [ "$(id -u)" = 0 ]; then
        exec "$@"
fi
if command -v sudo >/dev/null 2>&1; then
        exec sudo -- "$@"
fi
echo "$(basename "$1"): needs root, and there is no sudo here: run it as root (su -c '$*')" >&2
exit 1
