#!/usr/bin/env bash
# Live latency: from a datagram sent to its packet's bytes on `netreel pcapdump --follow`'s
# stdout, next to tcpdump --immediate-mode -U -w - (the peer at its most live) on the same
# datagrams, in one run:
#   bench/follow.sh BUILD_DIR
# One node on this machine: netreel-store, netreel-capture -i lo (its default batching: a batch
# goes 200 ms after its first packet, or at 1 MiB) and netreel-hub. A sender puts BENCH_RATE
# (default 200) UDP datagrams a second on 127.0.0.1 for BENCH_SECONDS (default 10), each
# carrying its send time; a reader takes the pcapng stream as it comes and notes when each
# datagram's packet is read. Three readers at once, on the same datagrams:
#   tcpdump         tcpdump -i lo --immediate-mode -U -w -: each packet as the kernel has it;
#   netreel         pcapdump --follow through a hub of this one store;
#   netreel+silent  the same through a hub that also follows a store with no traffic (a node
#                   without packets holds the watermark back: packets wait out --lateness).
# Prints, per reader and repetition (BENCH_REPS, default 3), the datagrams read and the median,
# 99th percentile and worst latency in ms. Needs root (the capture), tcpdump, /usr/bin/python3.
set -euo pipefail

build=${1:?usage: bench/follow.sh BUILD_DIR}
build=$(cd "$build" && pwd)
rate=${BENCH_RATE:-200}
secs=${BENCH_SECONDS:-10}
reps=${BENCH_REPS:-3}
lateness=${BENCH_LATENESS:-1s}
store_bin=$build/bin/netreel-store
capture_bin=$build/bin/netreel-capture
hub_bin=$build/bin/netreel-hub
cli_bin=$build/bin/netreel
here=$(cd "$(dirname "$0")" && pwd)
lat="/usr/bin/python3 $here/follow_latency.py"

# shellcheck source=bench/lib.sh
. "$here/lib.sh"
need_bins "$store_bin" "$capture_bin" "$hub_bin" "$cli_bin"
command -v tcpdump >/dev/null || die "tcpdump is not installed (make deps)"
[ "$(id -u)" = 0 ] || die "the capture needs root"

work=$(bench_workdir follow)
pids=()
bench_traps

start_store() { # NAME: its address into $addr
    "$store_bin" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/$1" --node "$1" \
        >/dev/null 2>"$work/$1.err" &
    pids+=($!)
    addr="127.0.0.1:$(port_of "$work/$1.err" $! netreel-store)"
}
start_hub() { # NAME STORES: its address into $addr
    "$hub_bin" --listen 127.0.0.1:0 --metrics-listen off --node "$1" --stores "$2" \
        >/dev/null 2>"$work/$1.err" &
    pids+=($!)
    addr="127.0.0.1:$(port_of "$work/$1.err" $! netreel-hub)"
}

port=$((20000 + RANDOM % 20000))
start_store node-1
store=$addr
start_store node-2
silent=$addr
"$capture_bin" -i lo --filter "udp port $port" --store "$store" --metrics-listen off \
    --node node-1 >/dev/null 2>"$work/capture.err" &
pids+=($!)
for _ in $(seq 1 100); do grep -q msg=capturing "$work/capture.err" && break; sleep 0.1; done
grep -q msg=capturing "$work/capture.err" ||
    die "the capture did not start: $(tail -3 "$work/capture.err")"
start_hub hub-1 "$store"
hub1=$addr
start_hub hub-2 "$store,$silent"
hub2=$addr

echo "bench: $rate datagrams/s for $secs s, $reps times; latency from send to read, ms" >&2
printf '%-16s %4s %8s %8s %8s %8s\n' reader rep packets median p99 worst
for rep in $(seq 1 "$reps"); do
    tcpdump -i lo --immediate-mode -U -w - "udp port $port" 2>/dev/null | $lat read tcpdump >"$work/r-tcpdump" &
    tpid=$!
    "$cli_bin" pcapdump --hub "$hub1" --follow --lateness "$lateness" -q -o - \
        2>"$work/cli1.err" | $lat read netreel >"$work/r-netreel" &
    n1=$!
    "$cli_bin" pcapdump --hub "$hub2" --follow --lateness "$lateness" -q -o - \
        2>"$work/cli2.err" | $lat read netreel+silent >"$work/r-silent" &
    n2=$!
    sleep 1.5 # the follows are on and tcpdump listens
    $lat send "$port" "$rate" "$secs"
    sleep 3 # what was sent last reaches every reader (the silent store's lateness included)
    pkill -INT -x tcpdump || true
    pkill -INT -f "pcapdump --hub $hub1 --follow" || true
    pkill -INT -f "pcapdump --hub $hub2 --follow" || true
    wait "$tpid" "$n1" "$n2" || true
    for r in tcpdump netreel silent; do
        read -r name n med p99 worst <"$work/r-$r" || die "no result from $r"
        printf '%-16s %4s %8s %8s %8s %8s\n' "$name" "$rep" "$n" "$med" "$p99" "$worst"
    done
done
