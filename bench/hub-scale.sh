#!/usr/bin/env bash
# netreel-hub against many stores: its peak memory and its export rate as the number of stores
# grows, with the total window the same:
#   bench/hub-scale.sh BUILD_DIR
# For each count in BENCH_HUB_STORES (default "16 128 1024 4096"), one store-sim process serves that
# many synthetic stores (tests/integration/bin/store-sim.c: Store.Snapshot and Stats on one port
# each, packets interleaved packet by packet across them, BENCH_HUB_SIZE bytes each, default
# 128), BENCH_HUB_PACKETS (default 2000000) packets in all; a fresh netreel-hub --stores (all of
# them) serves `netreel pcapdump -o - >/dev/null` of the whole window. Prints per count: the
# packets the CLI counted, its wall time, the time to the file's first byte (every store answered,
# the clocks measured), packets/s, the hub's peak resident set (VmHWM) and its
# resident set per store, the rate as a ratio to the first count's, and the CPU seconds the hub
# and the simulator used for it (they share the machine's cores: the hub's is what it costs).
# BENCH_HUB_ARGS: more hub flags (--memory-budget 1GiB). BENCH_HUB_RUNS (default 3): the counts
# are run that many times, interleaved, and a last table gives each count's spread.
# BENCH_HUB_TLS=1: mutual TLS between the hub and the stores, with RSA 2048 keys as the chart
# makes them (the first byte then waits for every handshake, the simulator's on the same cores).
# (The hub takes at most 4096 stores per snapshot: HUB_MAX_STORES.)
set -euo pipefail

build=${1:?usage: bench/hub-scale.sh BUILD_DIR}
build=$(cd "$build" && pwd)
counts=${BENCH_HUB_STORES:-16 128 1024 4096}
total=${BENCH_HUB_PACKETS:-2000000}
size=${BENCH_HUB_SIZE:-128}
hub_bin=$build/bin/netreel-hub
cli_bin=$build/bin/netreel
sim_bin=$build/tests/store-sim

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_bins "$hub_bin" "$cli_bin" "$sim_bin"

work=$(bench_workdir hub-scale)
pids=()
bench_traps

hwm_kib() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
# CPU seconds (user + system) a process has used so far, and since an earlier reading.
cpu_s() { awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"; }
cpu_since() { awk -v a="$2" -v b="$(cpu_s "$1")" 'BEGIN { printf "%.2f", b - a }'; }

sim_tls=() hub_tls=()
if [ "${BENCH_HUB_TLS:-0}" = 1 ]; then
    # A CA, and one certificate for every simulated store (127.0.0.1) and for the hub.
    pki=$work/pki
    mkdir -p "$pki"
    ossl() { openssl "$@" 2>/dev/null || die "openssl $1 failed"; }
    ossl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" \
        -subj /CN=bench-ca -days 2
    for who in store hub; do
        printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n' >"$pki/$who.ext"
        ossl req -newkey rsa:2048 -nodes -keyout "$pki/$who.key" -out "$pki/$who.csr" -subj "/CN=$who"
        ossl x509 -req -in "$pki/$who.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
            -CAcreateserial -out "$pki/$who.crt" -days 2 -extfile "$pki/$who.ext"
    done
    sim_tls=(--tls-cert "$pki/store.crt" --tls-key "$pki/store.key" --tls-ca "$pki/ca.crt")
    hub_tls=(--store-tls-ca "$pki/ca.crt" --store-tls-cert "$pki/hub.crt" --store-tls-key "$pki/hub.key")
fi

ulimit -n "$(ulimit -Hn)" # the hub holds a connection per store

runs=${BENCH_HUB_RUNS:-3}
printf '%-4s %-7s %10s %9s %9s %12s %12s %14s %7s %7s %7s\n' run stores packets "wall s" "first s" \
    "packets/s" "hub VmHWM" "per store" ratio "hub cpu" "sim cpu"
: >"$work/rows"
for run in $(seq 1 "$runs"); do
first_rate=
for n in $counts; do
    per=$((total / n))
    rm -f "$work/ports"
    "$sim_bin" --stores "$n" --packets "$per" --size "$size" --ports-file "$work/ports" \
        "${sim_tls[@]}" 2>"$work/sim.err" &
    sim_pid=$!
    pids+=("$sim_pid")
    for _ in $(seq 1 600); do
        [ -s "$work/ports" ] && break
        kill -0 "$sim_pid" 2>/dev/null || die "store-sim exited: $(cat "$work/sim.err")"
        sleep 0.1
    done
    [ -s "$work/ports" ] || die "store-sim wrote no ports file"
    list=$(paste -sd, "$work/ports")
    "$hub_bin" --listen 127.0.0.1:0 --metrics-listen off ${BENCH_HUB_ARGS:-} "${hub_tls[@]}" \
        --stores "$list" 2>"$work/hub.err" &
    hub_pid=$!
    pids+=("$hub_pid")
    port=$(port_of "$work/hub.err" "$hub_pid" netreel-hub 300)
    hub_cpu0=$(cpu_s "$hub_pid") sim_cpu0=$(cpu_s "$sim_pid")
    start=$(now)
    rm -f "$work/first"
    # The file's first byte marks when the stores had all answered (and the clocks were
    # measured): the time to first byte.
    NETREEL_LOCAL_HUB=off "$cli_bin" pcapdump --hub "127.0.0.1:$port" -o - 2>"$work/cli.err" |
        { head -c 1 >/dev/null && now >"$work/first"; cat >/dev/null; } ||
        die "pcapdump failed: $(tail -n 3 "$work/cli.err")"
    wall=$(elapsed "$start" "$(now)")
    [ -s "$work/first" ] || die "$n stores: pcapdump wrote nothing"
    ttfb=$(elapsed "$start" "$(cat "$work/first")")
    got=$(sed -n "s/.*: \([0-9]*\) packets, .*/\1/p" "$work/cli.err" | tail -n 1)
    [ "$got" = $((per * n)) ] || die "$n stores: pcapdump counted ${got:-no} packets, $((per * n)) were served"
    hwm=$(hwm_kib "$hub_pid")
    hub_cpu=$(cpu_since "$hub_pid" "$hub_cpu0") sim_cpu=$(cpu_since "$sim_pid" "$sim_cpu0")
    kill -TERM "$hub_pid" "$sim_pid"
    wait "$hub_pid" || die "netreel-hub exited with status $? after SIGTERM"
    wait "$sim_pid" || die "store-sim exited with status $? after SIGTERM"
    rate=$(awk -v p="$got" -v w="$wall" 'BEGIN { printf "%.0f", p / w }')
    first_rate=${first_rate:-$rate}
    awk -v run="$run" -v n="$n" -v p="$got" -v w="$wall" -v t="$ttfb" -v r="$rate" -v h="$hwm" \
        -v f="$first_rate" -v hc="$hub_cpu" -v sc="$sim_cpu" 'BEGIN {
        printf "%-4d %-7d %10d %9.2f %9.2f %12d %9.1f MiB %10.1f KiB %7.2f %7.2f %7.2f\n", run, n, p,
            w, t, r, h / 1024, h / n, r / f, hc, sc
    }' | tee -a "$work/rows"
done
done

# The spread over the runs: each run's ratio is against the same run's first count (interleaved
# runs, so a slow moment of the machine weighs on both).
echo
printf '%-7s %21s %13s %13s %15s\n' stores "packets/s" ratio "hub cpu s" "hub VmHWM MiB"
for n in $counts; do
    # (fields: run stores packets wall first rate VmHWM MiB per-store KiB ratio hub-cpu sim-cpu)
    awk -v n="$n" '$2 == n {
        for (i = split("6 7 11 12", f, " "); i > 0; i--) {
            v = $f[i]
            if (!k || v < lo[f[i]]) lo[f[i]] = v
            if (!k || v > hi[f[i]]) hi[f[i]] = v
        }
        k++
    } END { printf "%-7d %10d-%-10d %6.2f-%-6.2f %6.2f-%-6.2f %15.1f\n", n, lo[6], hi[6], lo[11],
            hi[11], lo[12], hi[12], hi[7] }' "$work/rows"
done
