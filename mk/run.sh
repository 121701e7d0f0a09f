#!/usr/bin/env bash
# `make run`: record this machine with the local default, i.e. `netreel tap --local -i IFACE`.
#   mk/run.sh BUILD_DIR [IFACE]
# IFACE defaults to the first interface that is up and is not loopback.
set -euo pipefail

build=${1:?usage: mk/run.sh BUILD_DIR [IFACE]}
iface=${2:-}

missing=()
for b in netreel netreel-capture netreel-store netreel-hub; do
    [ -x "$build/bin/$b" ] || missing+=("$b")
done
if [ ${#missing[@]} -gt 0 ]; then
    cat >&2 <<MSG
netreel: cannot record: ${missing[*]} did not build (see the output of make above).
MSG
    exit 2
fi
if [ -z "$iface" ]; then
    iface=$(ip -o link show up 2>/dev/null | awk -F': ' '$2 != "lo" {sub(/@.*/, "", $2); print $2; exit}')
fi
if [ -z "$iface" ]; then
    echo "netreel: no interface is up besides loopback; choose one: make run IFACE=lo" >&2
    exit 1
fi

exec "$build/bin/netreel" tap --local -i "$iface"
