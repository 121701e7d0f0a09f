#!/usr/bin/env bash
# netreel-store against its peers on this machine, in one run:
#   bench/store.sh BUILD_DIR
# Ingest: two store-feeders (two capture streams, interleaved timestamps, IMIX packets) stream
# BENCH_STORE_MB (default 1024) MB into a store as fast as acks allow, twice: with the default
# --sync-interval (an ack once written; synced within 1 s) and with --sync-interval 0 (every ack
# waits for fdatasync). The peers are dd writing the same bytes (the segment files the store
# made) onto the same disk, through the page cache (conv=fdatasync) and around it
# (oflag=direct, then the same flush): the ratios are against the faster dd, which is the
# physical ceiling. Snapshot: store-snapshot takes the whole
# window (a k-way merge of both streams' sorted runs) into a pcapng file; the peer is mergecap
# merging the same segment files into one pcapng file on the same disk.
# Prints the MB/s, packets/s and ratios.
set -euo pipefail

build=${1:?usage: bench/store.sh BUILD_DIR}
build=$(cd "$build" && pwd)
mb=${BENCH_STORE_MB:-1024}
store_bin=$build/bin/netreel-store
feeder_bin=$build/tests/store-feeder
snap_bin=$build/tests/store-snapshot

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_bins "$store_bin" "$feeder_bin" "$snap_bin"
command -v mergecap >/dev/null || die "mergecap is not installed (make deps)"

work=$(bench_workdir store)
pids=()
bench_traps

# ---- ingest ----------------------------------------------------------------------------------
# start_store DATA_DIR STORE_ARGS...: sets store_pid and port
start_store() {
    local data=$1
    shift
    "$store_bin" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$data" \
        --max-size 64GB --time-interval 1h --max-time 0 --node bench "$@" 2>"$work/store.err" &
    store_pid=$!
    pids+=("$store_pid")
    port=$(port_of "$work/store.err" "$store_pid" netreel-store)
}

# ingest: the two feeders into the store on $port; sets ingest_s, bytes and packets
ingest() {
    local start fa fb
    start=$(now)
    "$feeder_bin" --store "127.0.0.1:$port" --capture-id bench-a --bytes "${half}MB" \
        --ts-start "$t0" --ts-step 1000 >"$work/feed-a.json" &
    fa=$!
    pids+=("$fa")
    "$feeder_bin" --store "127.0.0.1:$port" --capture-id bench-b --bytes "${half}MB" \
        --ts-start $((t0 + 500)) --ts-step 1000 >"$work/feed-b.json" &
    fb=$!
    pids+=("$fb")
    wait "$fa" || die "feeder a failed: $(cat "$work/feed-a.json")"
    wait "$fb" || die "feeder b failed: $(cat "$work/feed-b.json")"
    ingest_s=$(elapsed "$start" "$(now)")
    bytes=$(($(json "$work/feed-a.json" 'j["bytes"]') + $(json "$work/feed-b.json" 'j["bytes"]')))
    packets=$(($(json "$work/feed-a.json" 'j["packets"]') + $(json "$work/feed-b.json" 'j["packets"]')))
}

echo "bench: ingest of $mb MB from two feeders (twice), then a snapshot of all of it" >&2
t0=$(($(date +%s%N) - 60000000000))
half=$((mb / 2))
start_store "$work/data0" --sync-interval 0
ingest
strict_s=$ingest_s
kill -TERM "$store_pid"
wait "$store_pid" || die "netreel-store exited with status $? after SIGTERM"
rm -rf "$work/data0"
sync
start_store "$work/data"
cached() { awk '/^Cached:/ { print int($2 / 1024) }' /proc/meminfo; }
cached0=$(cached)
ingest
cache_grew=$(($(cached) - cached0))

# ---- dd of the same bytes onto the same disk ----------------------------------------------------
mapfile -t segs < <(ls "$work"/data/*/*.pcapng)
cat "${segs[@]}" >/dev/null # both peers read from the page cache
sync
start=$(now)
cat "${segs[@]}" | dd of="$work/dd.out" bs=1M iflag=fullblock conv=fdatasync status=none
dd_s=$(elapsed "$start" "$(now)")
dd_bytes=$(stat -c %s "$work/dd.out")
rm -f "$work/dd.out"
sync
start=$(now)
cat "${segs[@]}" | dd of="$work/dd.out" bs=1M iflag=fullblock oflag=direct conv=fdatasync status=none
ddd_s=$(elapsed "$start" "$(now)")
rm -f "$work/dd.out"

# ---- snapshot against mergecap -------------------------------------------------------------------
start=$(now)
"$snap_bin" --store "127.0.0.1:$port" -o "$work/snap.pcapng" >"$work/snap.json" ||
    die "store-snapshot failed: $(cat "$work/snap.json")"
snap_s=$(elapsed "$start" "$(now)")
snap_packets=$(json "$work/snap.json" 'j["packets"]')
[ "$snap_packets" = "$packets" ] || die "the snapshot has $snap_packets packets, $packets were fed"
rm -f "$work/snap.pcapng"
start=$(now)
mergecap -F pcapng -w "$work/merge.pcapng" "${segs[@]}"
merge_s=$(elapsed "$start" "$(now)")
rm -f "$work/merge.pcapng"

kill -TERM "$store_pid"
wait "$store_pid" || die "netreel-store exited with status $? after SIGTERM"

awk -v b="$bytes" -v p="$packets" -v is="$ingest_s" -v zs="$strict_s" -v db="$dd_bytes" -v ds="$dd_s" \
    -v dds="$ddd_s" -v ss="$snap_s" -v ms="$merge_s" -v n="${#segs[@]}" 'BEGIN {
    best = ds < dds ? ds : dds
    printf "%-34s %10s %12s %10s\n", "what", "MB/s", "packets/s", "ratio"
    printf "%-34s %10.1f %12s %10.3f\n", "dd conv=fdatasync (same bytes)", db / ds / 1e6, "-", best / ds
    printf "%-34s %10.1f %12s %10.3f\n", "dd oflag=direct conv=fdatasync", db / dds / 1e6, "-", best / dds
    printf "%-34s %10.1f %12.0f %10.3f\n", "store ingest (acked once written)", b / is / 1e6, p / is, best / is * b / db
    printf "%-34s %10.1f %12.0f %10.3f\n", "store ingest, --sync-interval 0", b / zs / 1e6, p / zs, best / zs * b / db
    printf "%-34s %10.1f %12.0f %10s\n", "mergecap, " n " segments", b / ms / 1e6, p / ms, "1.000"
    printf "%-34s %10.1f %12.0f %10.3f\n", "store snapshot (k-way merge)", b / ss / 1e6, p / ss, ms / ss
}'
echo "the page cache grew by $cache_grew MiB during the ingest of $((bytes / 1000000)) MB (the segments are written around it)"
