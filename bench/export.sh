#!/usr/bin/env bash
# netreel pcapdump of a whole window through netreel-hub, next to mergecap and cat of the same
# segment files, in one run:
#   bench/export.sh BUILD_DIR
# Four netreel-stores are filled by four store-feeders at once with BENCH_EXPORT_MB (default
# 2048) MB of IMIX packets in all, a quarter each, their timestamps interleaved packet by packet
# (store k at t0 + k*250 + i*1000 ns), so a merge of them takes turns among all four for the
# whole window. Then, each writing one file onto the same disk (BENCH_DIR, default ./build):
#   cat       the segment files one after the other: no merge, the I/O ceiling;
#   mergecap  -F pcapng -w: the same segment files merged by timestamp into one pcapng;
#   netreel   `netreel pcapdump -o FILE` of the whole window from netreel-hub --stores (all
#             four): each store's own merge and gRPC stream (first hop), the hub's heap merge
#             of the four into one pcapng file streamed as FileChunks (second hop), the CLI
#             writing it through .part + fsync + rename.
# The CLI ends with fsync, so cat and mergecap are timed up to their file's fsync as well
# (coreutils `sync FILE`). Then the three again writing to stdout into /dev/null (`-o -`,
# `-w -`): the merge and the transport without the disk. Everything reads from the page cache
# (the segments are read once before the first timing). Prints wall times, MB/s of the window
# and each one's time as a ratio to mergecap's (the issue's aim: netreel within 1.3x of
# mergecap's wall time).
set -euo pipefail

build=${1:?usage: bench/export.sh BUILD_DIR}
build=$(cd "$build" && pwd)
mb=${BENCH_EXPORT_MB:-2048}
store_bin=$build/bin/netreel-store
hub_bin=$build/bin/netreel-hub
cli_bin=$build/bin/netreel
feeder_bin=$build/tests/store-feeder
stores=4

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_bins "$store_bin" "$hub_bin" "$cli_bin" "$feeder_bin"
command -v mergecap >/dev/null || die "mergecap is not installed (make deps)"

work=$(bench_workdir export)
pids=()
bench_traps

# ---- four stores, filled at once ---------------------------------------------------------------
addrs=()
for k in $(seq 1 $stores); do
    "$store_bin" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/data-$k" \
        --max-size 64GB --time-interval 1h --max-time 0 --node "node-$k" 2>"$work/store-$k.err" &
    pids+=($!)
    addrs+=("127.0.0.1:$(port_of "$work/store-$k.err" $! netreel-store)")
done

echo "bench: $mb MB of IMIX packets into $stores stores, then the whole window three ways" >&2
t0=$(($(date +%s%N) / 1000000000 * 1000000000 - 600000000000))
feeders=()
start=$(now)
for k in $(seq 1 $stores); do
    "$feeder_bin" --store "${addrs[$((k - 1))]}" --capture-id "bench-$k" --node "node-$k" \
        --bytes "$((mb / stores))MB" --batch-bytes 1MiB --ts-start $((t0 + (k - 1) * 250)) \
        --ts-step 1000 >"$work/feed-$k.json" &
    feeders+=($!)
    pids+=($!)
done
for k in $(seq 1 $stores); do
    wait "${feeders[$((k - 1))]}" || die "feeder $k failed: $(cat "$work/feed-$k.json")"
done
ingest_s=$(elapsed "$start" "$(now)")
packets=0
for k in $(seq 1 $stores); do
    packets=$((packets + $(json "$work/feed-$k.json" 'j["packets"]')))
done

"$hub_bin" --listen 127.0.0.1:0 --metrics-listen off --node bench \
    --stores "$(IFS=,; echo "${addrs[*]}")" 2>"$work/hub.err" &
hub_pid=$!
pids+=("$hub_pid")
hub_port=$(port_of "$work/hub.err" "$hub_pid" netreel-hub)

mapfile -t segs < <(ls "$work"/data-*/*/*.pcapng)
seg_bytes=$(cat "${segs[@]}" | wc -c) # also: every peer reads from the page cache
sync

# ---- to a file on the disk, fsynced -------------------------------------------------------------
start=$(now)
cat "${segs[@]}" >"$work/cat.out"
sync "$work/cat.out"
cat_s=$(elapsed "$start" "$(now)")
rm -f "$work/cat.out"

start=$(now)
mergecap -F pcapng -w "$work/merge.pcapng" "${segs[@]}"
sync "$work/merge.pcapng"
merge_s=$(elapsed "$start" "$(now)")
merge_bytes=$(stat -c %s "$work/merge.pcapng")
rm -f "$work/merge.pcapng"

start=$(now)
NETREEL_LOCAL_HUB=off "$cli_bin" pcapdump --hub "127.0.0.1:$hub_port" -o "$work/export.pcapng" \
    >"$work/cli.out" 2>"$work/cli.err" || die "netreel pcapdump failed: $(cat "$work/cli.err")"
export_s=$(elapsed "$start" "$(now)")
export_bytes=$(stat -c %s "$work/export.pcapng")
rm -f "$work/export.pcapng"
got=$(sed -n 's/.*: \([0-9]*\) packets, .*/\1/p' "$work/cli.out")
[ "$got" = "$packets" ] || die "pcapdump wrote $got packets, $packets were fed: $(cat "$work/cli.out")"

# ---- to stdout, into /dev/null: the merge and the transport without the disk's writes ----------
start=$(now)
cat "${segs[@]}" >/dev/null
cat_null_s=$(elapsed "$start" "$(now)")

start=$(now)
mergecap -F pcapng -w - "${segs[@]}" >/dev/null
merge_null_s=$(elapsed "$start" "$(now)")

start=$(now)
NETREEL_LOCAL_HUB=off "$cli_bin" pcapdump --hub "127.0.0.1:$hub_port" -o - >/dev/null \
    2>"$work/cli.err" || die "netreel pcapdump -o - failed: $(cat "$work/cli.err")"
export_null_s=$(elapsed "$start" "$(now)")
got=$(sed -n 's/.*: \([0-9]*\) packets, .*/\1/p' "$work/cli.err")
[ "$got" = "$packets" ] || die "pcapdump -o - wrote $got packets, $packets were fed: $(cat "$work/cli.err")"

hub_rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$hub_pid/status")

kill -TERM "$hub_pid"
wait "$hub_pid" || die "netreel-hub exited with status $? after SIGTERM"

echo "bench: ${#segs[@]} segment files, $seg_bytes bytes, $packets packets (ingest took ${ingest_s}s);" \
    "files: mergecap $merge_bytes bytes, netreel $export_bytes bytes; hub peak RSS $((hub_rss / 1024)) MiB" >&2
awk -v b="$seg_bytes" -v cs="$cat_s" -v ms="$merge_s" -v es="$export_s" -v n="${#segs[@]}" \
    -v cn="$cat_null_s" -v mn="$merge_null_s" -v en="$export_null_s" 'BEGIN {
    f = "%-50s %9.3f %9.1f %12.3f\n"
    printf "%-50s %9s %9s %12s\n", "what (the whole window)", "seconds", "MB/s", "vs mergecap"
    printf f, "cat " n " segments > file; sync file (I/O ceiling)", cs, b / cs / 1e6, cs / ms
    printf f, "mergecap -F pcapng -w file; sync file", ms, b / ms / 1e6, 1
    printf f, "netreel pcapdump -o file (4 stores, hub, CLI)", es, b / es / 1e6, es / ms
    printf f, "cat " n " segments > /dev/null", cn, b / cn / 1e6, cn / mn
    printf f, "mergecap -F pcapng -w - > /dev/null", mn, b / mn / 1e6, 1
    printf f, "netreel pcapdump -o - > /dev/null", en, b / en / 1e6, en / mn
}'
