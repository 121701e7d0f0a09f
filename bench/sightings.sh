#!/usr/bin/env bash
# netreel pcapdump of one window with sightings collapsed (the default, --sightings=one) against
# --sightings=all, on the same stores, in one run:
#   bench/sightings.sh BUILD_DIR
# The hub's default holds each packet 100 ms of the merge's time in a bounded queue and leaves
# out the copies of a packet seen on several nodes (docs/hub.md, "Sightings"); --sightings=all
# writes every sighting at once, with a packet id. The issue's aim: one within 1.15x of all's
# time on the same window.
#
# Each window is four netreel-stores (data under BENCH_DIR, default ./build: the disk, not a
# tmpfs) filled at once by four store-feeders with BENCH_SIGHTINGS_MB (default 1024) MB of IMIX
# packets in all, a quarter each, store k's packet i at t0 + k*250 + i*STEP ns. store-feeder salts
# its packets with the capture id (IP id, TCP sequence, UDP payload), so stores fed under the
# same capture id hold the same packets, 250 ns apart, on another node's interface: the hub takes
# them for sightings of one packet. BENCH_SIGHTINGS_WINDOWS lists the windows as COPIES:STEP
# (default "1:1000 4:1000 1:80000 4:80000"):
#   COPIES 1   four capture ids: no packet is a copy of another;
#   COPIES 2   stores 1-2 and 3-4 share a capture id: every packet seen twice;
#   COPIES 4   one capture id: every packet seen four times (a packet between pods on two nodes:
#              the sending pod's device, both uplinks, the receiving pod's device);
#   STEP 1000  4 million sightings per second of packet time, as bench/export.sh: far past what
#              the hub's table of recent packets keeps for 100 ms (8 192 packets, docs/hub.md), so
#              it keeps only the last 12.5 ms ... 0.2 ms, and the 4 MiB queue decides packets
#              early (after ~1 ms instead of 100);
#   STEP 80000 50 000 sightings per second: 5 000 in 100 ms, ~2 MB, within the table and the
#              queue: every packet waits its full 100 ms.
# For each window, BENCH_SIGHTINGS_REPS (default 3) rounds of: mergecap of the window's segment
# files (every sighting, for reference), `netreel pcapdump --sightings=one` and `--sightings=all`
# (which goes first alternates from round to round), each once into a file on the disk (fsync
# and rename, as a user gets it; mergecap timed up to `sync FILE`) and once to stdout into
# /dev/null (the merges and the transport without the disk). Each pcapdump gets a fresh
# netreel-hub, so that its peak RSS (VmHWM) is that mode's. The segments are read once first:
# every export reads them from the page cache.
#
# Prints a line per export and then, per window and destination, the medians (and the lowest and
# highest) of the seconds, the sightings per second (the window's sightings over the time, the
# same count for both modes), one's time over all's, the hub's peak RSS, and what one left out.
# It checks that all wrote every sighting fed and one every packet (the sightings over COPIES).
set -euo pipefail

build=${1:?usage: bench/sightings.sh BUILD_DIR}
build=$(cd "$build" && pwd)
mb=${BENCH_SIGHTINGS_MB:-1024}
reps=${BENCH_SIGHTINGS_REPS:-3}
windows=${BENCH_SIGHTINGS_WINDOWS:-"1:1000 4:1000 1:80000 4:80000"}
py=/usr/bin/python3
store_bin=$build/bin/netreel-store
hub_bin=$build/bin/netreel-hub
cli_bin=$build/bin/netreel
feeder_bin=$build/tests/store-feeder
stores=4

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_bins "$store_bin" "$hub_bin" "$cli_bin" "$feeder_bin"
command -v mergecap >/dev/null || die "mergecap is not installed (make deps)"
case $("$cli_bin" pcapdump --help 2>&1 || true) in
    *--sightings*) ;;
    *) die "$cli_bin has no --sightings" ;;
esac

work=$(bench_workdir sightings)
pids=()
bench_traps
hz=$(getconf CLK_TCK)

# fill COPIES STEP: four fresh stores, fed at once; sets addrs, store_pids, sightings, segs.
fill() {
    local copies=$1 step=$2 k cid feeders=() log
    addrs=() store_pids=()
    rm -rf "$work"/data-*
    for k in $(seq 1 $stores); do
        log=$work/store-$copies-$step-$k.err
        "$store_bin" --listen 127.0.0.1:0 --metrics-listen off --data-dir "$work/data-$k" \
            --max-size 64GB --time-interval 1h --max-time 0 --node "node-$k" 2>"$log" &
        pids+=($!)
        store_pids+=($!)
        addrs+=("127.0.0.1:$(port_of "$log" $! netreel-store)")
    done
    t0=$(($(date +%s%N) / 1000000000 * 1000000000 - 600000000000))
    for k in $(seq 1 $stores); do
        cid="bench-$(((k - 1) / copies))" # stores sharing a capture id hold the same packets
        "$feeder_bin" --store "${addrs[$((k - 1))]}" --capture-id "$cid" --node "node-$k" \
            --bytes "$((mb / stores))MB" --batch-bytes 1MiB --ts-start $((t0 + (k - 1) * 250)) \
            --ts-step "$step" >"$work/feed-$k.json" &
        feeders+=($!)
        pids+=($!)
    done
    sightings=0
    for k in $(seq 1 $stores); do
        wait "${feeders[$((k - 1))]}" || die "feeder $k failed: $(cat "$work/feed-$k.json")"
        sightings=$((sightings + $(json "$work/feed-$k.json" 'j["packets"]')))
    done
    mapfile -t segs < <(ls "$work"/data-*/*/*.pcapng)
    cat "${segs[@]}" >/dev/null # every export reads from the page cache
    sync
}

unfill() {
    local p
    for p in "${store_pids[@]}"; do
        kill -TERM "$p"
        wait "$p" || die "netreel-store exited with status $? after SIGTERM"
    done
    rm -rf "$work"/data-*
}

# export MODE DEST: one pcapdump (MODE one|all, DEST file|null) through a fresh hub; sets secs,
# written (packets in the file), left (copies left out), rss_kib (the hub's VmHWM), hub_ms (the
# hub's own log of the snapshot's duration), hub_cpu (its user + system CPU seconds).
export_once() {
    local mode=$1 dest=$2 hub_pid hub_port start out hub_log
    n_hubs=$((n_hubs + 1))
    hub_log=$work/hub-$n_hubs.err
    "$hub_bin" --listen 127.0.0.1:0 --metrics-listen off --node bench \
        --stores "$(IFS=,; echo "${addrs[*]}")" 2>"$hub_log" &
    hub_pid=$!
    pids+=("$hub_pid")
    hub_port=$(port_of "$hub_log" "$hub_pid" netreel-hub)
    if [ "$dest" = file ]; then
        start=$(now)
        NETREEL_LOCAL_HUB=off "$cli_bin" pcapdump --hub "127.0.0.1:$hub_port" --sightings="$mode" \
            -o "$work/export.pcapng" >"$work/cli.out" 2>"$work/cli.err" ||
            die "netreel pcapdump --sightings=$mode failed: $(cat "$work/cli.err")"
        secs=$(elapsed "$start" "$(now)")
        out=$work/cli.out
        rm -f "$work/export.pcapng"
    else
        start=$(now)
        NETREEL_LOCAL_HUB=off "$cli_bin" pcapdump --hub "127.0.0.1:$hub_port" --sightings="$mode" \
            -o - >/dev/null 2>"$work/cli.err" ||
            die "netreel pcapdump --sightings=$mode -o - failed: $(cat "$work/cli.err")"
        secs=$(elapsed "$start" "$(now)")
        out=$work/cli.err
    fi
    rss_kib=$(awk '/^VmHWM/ { print $2 }' "/proc/$hub_pid/status")
    hub_cpu=$(awk -v hz="$hz" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$hub_pid/stat")
    kill -TERM "$hub_pid"
    wait "$hub_pid" || die "netreel-hub exited with status $? after SIGTERM"
    written=$(sed -n 's/.*: \([0-9]*\) packets, .*/\1/p' "$out")
    left=$(sed -n 's/.*msg="snapshot served".* copies=\([0-9]*\) .*/\1/p' "$hub_log")
    hub_ms=$(sed -n 's/.*msg="snapshot served".* ms=\([0-9]*\).*/\1/p' "$hub_log")
    if [ -z "$written" ] || [ -z "$left" ]; then die "no summary: $(cat "$out" "$hub_log")"; fi
    rm -f "$hub_log"
}

mergecap_once() {
    local dest=$1 start
    start=$(now)
    if [ "$dest" = file ]; then
        mergecap -F pcapng -w "$work/merge.pcapng" "${segs[@]}"
        sync "$work/merge.pcapng"
        secs=$(elapsed "$start" "$(now)")
        rm -f "$work/merge.pcapng"
    else
        mergecap -F pcapng -w - "${segs[@]}" >/dev/null
        secs=$(elapsed "$start" "$(now)")
    fi
    written=$sightings left=0 rss_kib=- hub_ms=- hub_cpu=-
}

# ---- the runs --------------------------------------------------------------------------------
results=$work/results.tsv
: >"$results"
n_hubs=0
echo "bench: windows (copies:step) $windows; $mb MB per window in $stores stores, $reps rounds; files under $work; $(uptime)" >&2
for w in $windows; do
    ncopies=${w%%:*} step=${w#*:}
    case $ncopies in 1 | 2 | 4) ;; *) die "BENCH_SIGHTINGS_WINDOWS: copies $ncopies is not 1, 2 or 4" ;; esac
    fill "$ncopies" "$step"
    expect_one=$((sightings / ncopies))
    echo "bench: window $w: ${#segs[@]} segments, $(cat "${segs[@]}" | wc -c) bytes, $sightings sightings of $expect_one packets" >&2
    for rep in $(seq 1 "$reps"); do
        if [ $((rep % 2)) = 1 ]; then order="one all"; else order="all one"; fi
        for dest in file null; do
            for what in mergecap $order; do
                if [ "$what" = mergecap ]; then
                    mergecap_once "$dest"
                else
                    export_once "$what" "$dest"
                    want=$sightings
                    [ "$what" = one ] && want=$expect_one
                    [ "$written" = "$want" ] ||
                        echo "bench: WARNING: --sightings=$what wrote $written packets, expected $want" >&2
                fi
                printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$w" "$rep" "$dest" "$what" "$secs" \
                    "$sightings" "$written" "$left" "$rss_kib" "$hub_ms" "$hub_cpu" >>"$results"
                printf 'bench: %-8s round %s %-4s %-8s %7.3f s  %9.0f sightings/s  wrote %8s  left out %8s  hub RSS %s KiB  hub %s ms, CPU %s s\n' \
                    "$w" "$rep" "$dest" "$what" "$secs" "$(awk -v n="$sightings" -v s="$secs" 'BEGIN { print n / s }')" \
                    "$written" "$left" "$rss_kib" "$hub_ms" "$hub_cpu" >&2
            done
        done
    done
    unfill
done
echo "bench: done; $(uptime)" >&2

# ---- the table -------------------------------------------------------------------------------
"$py" - "$results" "$mb" <<'EOF'
import sys
from statistics import median
rows = [ln.rstrip("\n").split("\t") for ln in open(sys.argv[1]) if ln.strip()]
def span(xs, fmt):
    return f"{fmt % median(xs)} ({fmt % min(xs)}-{fmt % max(xs)})"
print(f"{sys.argv[2]} MB of sightings in 4 stores per window; medians over the rounds (lowest-highest)")
print(f"{'window':<9} {'to':<5} {'sightings':>9} {'one s':>20} {'all s':>20} {'mergecap s':>20} "
      f"{'one/all':>20} {'one Msightings/s':>20} {'all Msightings/s':>20} "
      f"{'hub RSS MiB one':>16} {'all':>10} {'hub CPU s one':>20} {'all':>20}")
for w in dict.fromkeys(r[0] for r in rows):
    for dest in ("file", "null"):
        rs = [r for r in rows if r[0] == w and r[2] == dest]
        n = int(rs[0][5])
        t = {m: {r[1]: float(r[4]) for r in rs if r[3] == m} for m in ("one", "all", "mergecap")}
        ratio = [t["one"][k] / t["all"][k] for k in t["one"] if k in t["all"]]
        rss = {m: [int(r[8]) / 1024 for r in rs if r[3] == m] for m in ("one", "all")}
        rate = {m: [n / s / 1e6 for s in t[m].values()] for m in ("one", "all")}
        cpu = {m: [float(r[10]) for r in rs if r[3] == m] for m in ("one", "all")}
        print(f"{w:<9} {dest:<5} {n:>9} {span(list(t['one'].values()), '%.3f'):>20} "
              f"{span(list(t['all'].values()), '%.3f'):>20} {span(list(t['mergecap'].values()), '%.3f'):>20} "
              f"{span(ratio, '%.3f'):>20} {span(rate['one'], '%.2f'):>20} {span(rate['all'], '%.2f'):>20} "
              f"{span(rss['one'], '%.0f'):>16} {span(rss['all'], '%.0f'):>10} "
              f"{span(cpu['one'], '%.2f'):>20} {span(cpu['all'], '%.2f'):>20}")
print("window COPIES:STEP (each packet seen COPIES times; STEP ns between a store's packets);")
print("one/all: each round's one time over the same round's all time; Msightings/s: the window's")
print("sightings (the same for both modes) over the time; hub RSS: netreel-hub's VmHWM; hub CPU:")
print("its user + system seconds.")
print("The aim: one/all <= 1.15.")
EOF
