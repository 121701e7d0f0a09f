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
netreel: cannot record yet: ${missing[*]} do not exist in this version.
netreel: what exists: netreel-capture (docs/capture.md) and netreel-store (docs/store.md),
netreel: on the gRPC transport (lib/rpc), pcapng (lib/pcapng) and pod targeting (lib/kube).
netreel: Recording this machine with one command needs the hub and the CLI (netreel tap
netreel: --local), the next issue. Until then the two can be run by hand: see README.md.
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
