#!/usr/bin/env bash
# netreel-capture (+ netreel-store writing to disk), with each of its two ways of reading the
# ring (--read-mode thread and poll), against tcpdump -w and dumpcap -w, on the same traffic, in
# one run:
#   bench/capture.sh BUILD_DIR
# Two network namespaces joined by a veth pair; iperf3 from B to A: TCP at 1, 2 and 3 Gbit/s and
# unlimited, and UDP with 64-byte payloads unlimited, BENCH_SECONDS (default 5) each; then the
# sustained profile "tcp disk": TCP for BENCH_SUSTAINED_SECONDS (default 60) at the rate this
# disk takes through the page cache (dd of 2 GiB with conv=fdatasync under BENCH_DIR, measured
# first and printed with the rate around it, oflag=direct), long enough that the page cache no
# longer hides the disk from either recorder. Every
# recorder listens on A's end of the veth with the same snaplen (262144) and kernel buffer
# (64 MiB) and writes to the disk under BENCH_DIR (default ./build).
#
# The recorders run one at a time, each on its own iperf3 run of the same profile (profile by
# profile, recorders interleaved), not all four at once: on a 2-core machine four recorders
# plus iperf3's sender and receiver would fight for the cores, and the figures would say more
# about the scheduler than about the recorders; a packet socket per recorder would also tax the
# traffic itself. The cost is that the unlimited profiles do not carry exactly the same packets
# for each recorder, so the share is always against the packets that crossed the interface
# during that recorder's own run (the veth's rx+tx counters).
#
# For each run it prints the share of packets recorded
#   stats: as the recorder counts it: tcpdump captured / received by filter (pcap_stats);
#          dumpcap received / (received + dropped); netreel (either read mode) from /metrics:
#          packets in batches minus batches the spool dropped, over those plus kernel and buffer
#          drops;
#   files: packets in the files it wrote (netreel: the store's segments, after every batch was
#          acknowledged) over the packets the veth counted;
#   cpu:   the recorder's own CPU (utime + stime of its process, all threads, from just before
#          the traffic until it has written everything: netreel's spool empty), in seconds and
#          per packet it took from the kernel (netreel: put in batches; tcpdump: captured;
#          dumpcap: received). netreel's store is not counted.
#
# Options (environment):
#   BENCH_IFACE=any   every recorder records `-i any` in namespace A (its loopback and its end of
#                     the veth) instead of the veth alone: netreel-capture then splits `any` into
#                     one interface per device (docs/capture.md). The wire is still the veth's
#                     count; packets on A's loopback (the bench polling /metrics) are not counted
#                     in the files.
#   BENCH_BASE=DIR    another build dir (another commit's, e.g. a `git worktree`): recorder
#                     "netreel-base" is its netreel-capture (thread read mode), streaming to this
#                     build's netreel-store, so that two captures are compared on one store.
#   BENCH_REPS=N      N rounds of each profile (default 1), recorders interleaved, their order
#                     reversed every other round; with N > 1 the medians, lowest and highest per
#                     profile and recorder are printed last.
#   BENCH_STORE_ARGS="--sync-interval 0"  more flags for netreel-store (e.g. its strict mode).
#   BENCH_PROFILES, BENCH_RECORDERS: below.
#
# The verdict per profile compares netreel's share with tcpdump's round by round (each round's
# runs are back to back): "ok" only when netreel's is at least tcpdump's in every round.
set -euo pipefail

build=${1:?usage: bench/capture.sh BUILD_DIR}
build=$(cd "$build" && pwd)
short_secs=${BENCH_SECONDS:-5}
sustained_secs=${BENCH_SUSTAINED_SECONDS:-60}
secs=$short_secs
read -r -a store_args <<<"${BENCH_STORE_ARGS:-}"
py=/usr/bin/python3
capture_bin=$build/bin/netreel-capture
store_bin=$build/bin/netreel-store
snaplen=262144
buf_mib=64
a_ip=10.78.0.1
b_ip=10.78.0.2
store_port=18897
iface_opt=${BENCH_IFACE:-}
reps=${BENCH_REPS:-1}
base_capture_bin=${BENCH_BASE:+$BENCH_BASE/bin/netreel-capture}

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
for b in "$capture_bin" "$store_bin"; do
    [ -x "$b" ] || die "$b is missing: build it with make"
done
[ -z "$base_capture_bin" ] || [ -x "$base_capture_bin" ] || die "BENCH_BASE: $base_capture_bin is missing"
[ -z "$base_capture_bin" ] || base_capture_bin=$(cd "$(dirname "$base_capture_bin")" && pwd)/netreel-capture
case $iface_opt in "" | any) ;; *) die "BENCH_IFACE=$iface_opt: only any (or unset: the veth)" ;; esac
for t in iperf3 tcpdump dumpcap ip; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps)"
done
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, packet capture)"

work=$(mktemp -d "${BENCH_DIR:-$PWD/build}/bench-capture.XXXXXX")
nsa=nrb$$a
nsb=nrb$$b
pids=()
bench_traps

# ---- the two namespaces ----------------------------------------------------------------------
for ns in "$nsa" "$nsb"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
done
ip link add "$nsa" type veth peer name "$nsb"
ip link set "$nsa" netns "$nsa"
ip link set "$nsb" netns "$nsb"
ip -n "$nsa" addr add "$a_ip/24" dev "$nsa"
ip -n "$nsb" addr add "$b_ip/24" dev "$nsb"
ip -n "$nsa" link set "$nsa" up
ip -n "$nsb" link set "$nsb" up
# (A process started in the background is started with `ip netns exec` itself, which execs it,
# so that $! is its pid; a shell function in the background would be a subshell.)
inB() { ip netns exec "$nsb" "$@"; }
iface=${iface_opt:-$nsa} # what every recorder records

# ---- helpers ---------------------------------------------------------------------------------
cat >"$work/count.py" <<'EOF'
"""count.py FILE...: packets (EPBs, SPBs, pcap records) in pcapng or pcap files, summed. Packets
of an `any` recording (LINUX_SLL/SLL2) that crossed the loopback are not counted: the bench's own
polls of /metrics, not the traffic measured."""
import mmap, struct, sys
SLL, SLL2 = 113, 276
def on_lo(linktype, m, off, caplen):
    # SLL2: if_index at byte 4; SLL: ARPHRD_LOOPBACK (772) in the hatype at byte 2
    if linktype == SLL2 and caplen >= 8:
        return struct.unpack_from(">I", m, off + 4)[0] == 1
    if linktype == SLL and caplen >= 4:
        return struct.unpack_from(">H", m, off + 2)[0] == 772
    return False
total = 0
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        try:
            m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # empty file
            continue
    n, size = 0, len(m)
    magic = struct.unpack_from("<I", m, 0)[0] if size >= 4 else 0
    if magic == 0x0A0D0D0A:  # pcapng (little-endian here); a torn last block is not counted
        off, links = 0, []
        while off + 12 <= size:
            btype, blen = struct.unpack_from("<II", m, off)
            if blen < 12 or off + blen > size:
                break
            if btype == 0x0A0D0D0A:
                links = []
            elif btype == 1:
                links.append(struct.unpack_from("<H", m, off + 8)[0])
            elif btype == 6:
                ifid, caplen = struct.unpack_from("<I", m, off + 8)[0], struct.unpack_from("<I", m, off + 20)[0]
                lt = links[ifid] if ifid < len(links) else 0
                n += not on_lo(lt, m, off + 28, caplen)
            elif btype == 3:
                n += 1
            off += blen
    elif magic in (0xA1B2C3D4, 0xA1B23C4D):
        off, lt = 24, struct.unpack_from("<I", m, 20)[0] & 0x0FFFFFFF
        while off + 16 <= size:
            caplen = struct.unpack_from("<I", m, off + 8)[0]
            if off + 16 + caplen > size:
                break
            n += not on_lo(lt, m, off + 16, caplen)
            off += 16 + caplen
    total += n
print(total)
EOF

# The capture's /metrics the bench reads, as shell variables (bench/metrics.py).
metrics_py=$(dirname "$0")/metrics.py
metrics=("netreel_capture_packets_total=m_packets"
         "netreel_capture_kernel_received_total=m_recv"
         'netreel_capture_dropped_total{where="kernel"}=m_kernel'
         'netreel_capture_dropped_total{where="interface"}=m_ifdrop'
         'netreel_capture_dropped_total{where="buffer"}=m_buffer'
         'netreel_capture_dropped_total{where="spool"}=m_spool'
         "netreel_capture_spool_bytes=m_spool_bytes")

hz=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of PID (all its threads), in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}
cpu_since() { # cpu_since PID TICKS0: seconds of CPU since TICKS0
    awk -v a="$2" -v b="$(cpu_ticks "$1")" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }'
}

wire_packets() { # rx + tx packets of A's end of the veth
    inA cat "/sys/class/net/$nsa/statistics/rx_packets" "/sys/class/net/$nsa/statistics/tx_packets" |
        awk '{ s += $1 } END { print s }'
}

# run_iperf PROFILE_ARGS...: one iperf3 run B -> A; sets gbps (receiver's rate) and wire.
run_iperf() {
    local before after
    ip netns exec "$nsa" iperf3 -s -1 -B "$a_ip" >"$work/iperf-s.out" 2>&1 &
    local spid=$!
    pids+=("$spid")
    sleep 0.3
    before=$(wire_packets)
    inB iperf3 -c "$a_ip" -t "$secs" -J "$@" >"$work/iperf.json" 2>"$work/iperf.err" ||
        die "iperf3 $*: $(cat "$work/iperf.err" "$work/iperf.json" | tail -n 5)"
    after=$(wire_packets)
    wait "$spid" 2>/dev/null || true
    wire=$((after - before))
    gbps=$("$py" -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
s = e.get("sum_received") or e.get("sum")
print("%.2f" % (s["bits_per_second"] / 1e9))' "$work/iperf.json")
}

# Each recorder function runs one iperf3 profile under its recorder and sets
# stats_rec stats_all (the recorder's own count) and file_pkts.
rec_tcpdump() {
    local out=$work/tcpdump.pcap
    ip netns exec "$nsa" tcpdump -n -i "$iface" -s "$snaplen" -B $((buf_mib * 1024)) --time-stamp-precision=nano \
        -w "$out" 2>"$work/tcpdump.err" &
    local tpid=$!
    pids+=("$tpid")
    wait_for "$work/tcpdump.err" "listening on" "$tpid" tcpdump
    local c0
    c0=$(cpu_ticks "$tpid")
    run_iperf "$@"
    sleep 1.5 # its ring's 1 s block timeout: the last packets reach it, then it stops
    cpu_s=$(cpu_since "$tpid" "$c0")
    kill -INT "$tpid"
    wait "$tpid" || true
    local captured received
    captured=$(sed -n 's/^\([0-9]*\) packets\{0,1\} captured.*/\1/p' "$work/tcpdump.err")
    received=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$work/tcpdump.err")
    stats_rec=$captured
    stats_all=$received
    taken=$captured
    note="kernel $((received - captured))"
    file_pkts=$("$py" "$work/count.py" "$out")
    rm -f "$out"
}

rec_dumpcap() {
    local out=$work/dumpcap.pcapng
    ip netns exec "$nsa" dumpcap -q -i "$iface" -s "$snaplen" -B "$buf_mib" -w "$out" 2>"$work/dumpcap.err" &
    local dpid=$!
    pids+=("$dpid")
    wait_for "$work/dumpcap.err" "Capturing on" "$dpid" dumpcap
    sleep 0.2
    local c0
    c0=$(cpu_ticks "$dpid")
    run_iperf "$@"
    sleep 1.5
    cpu_s=$(cpu_since "$dpid" "$c0")
    kill -INT "$dpid"
    wait "$dpid" || true
    local line r d
    line=$(grep "Packets received/dropped" "$work/dumpcap.err" | tail -n 1)
    r=$(sed -n 's#.*: \([0-9]*\)/\([0-9]*\) .*#\1#p' <<<"$line")
    d=$(sed -n 's#.*: \([0-9]*\)/\([0-9]*\) .*#\2#p' <<<"$line")
    [ -n "$r" ] || die "dumpcap printed no statistics: $(cat "$work/dumpcap.err")"
    stats_rec=$r
    stats_all=$((r + d))
    taken=$r
    note="pcap $d"
    file_pkts=$("$py" "$work/count.py" "$out")
    rm -f "$out"
}

# netreel reads its ring in a thread per interface ("netreel") or on the event
# loop when pcap's selectable descriptor is readable ("netreel-poll": --read-mode poll): the
# issue asks which of the two drops less under load.
rec_netreel_poll() { read_mode=poll rec_netreel "$@"; }
# BENCH_BASE's capture, thread read mode, on this build's store.
rec_netreel_base() {
    [ -n "$base_capture_bin" ] || die "recorder netreel-base needs BENCH_BASE=DIR"
    capture_bin=$base_capture_bin rec_netreel "$@"
}

rec_netreel() {
    local data=$work/data spid cpid mport
    rm -rf "$data"
    netreel_start "$data" -i "$iface" --snaplen "$snaplen" --buffer-size "${buf_mib}MiB" \
        --read-mode "${read_mode:-thread}"
    local c0
    c0=$(cpu_ticks "$cpid")
    run_iperf "$@"
    sleep 1.5
    # What the capture still spools goes to the store first (the spool is part of netreel).
    local i m_packets=0 m_recv=0 m_kernel=0 m_ifdrop=0 m_buffer=0 m_spool=0 m_spool_bytes=-1
    for i in $(seq 1 600); do
        eval "$(inA "$py" "$metrics_py" "$mport" "${metrics[@]}")"
        [ "$m_spool_bytes" = 0 ] && break
        sleep 0.1
    done
    cpu_s=$(cpu_since "$cpid" "$c0")
    netreel_stop
    stats_rec=$((m_packets - m_spool))
    stats_all=$((m_packets + m_kernel + m_buffer))
    taken=$m_packets
    note="kernel $m_kernel buffer $m_buffer spool $m_spool"
    file_pkts=$("$py" "$work/count.py" "$data"/*/*.pcapng)
    rm -rf "$data"
}

# ---- the runs --------------------------------------------------------------------------------
profiles=("tcp 1G:-b 1G" "tcp 2G:-b 2G" "tcp 3G:-b 3G" "tcp max:-b 0" "udp64 max:-u -b 0 -l 64"
    "tcp disk:-b @disk")
recorders=(netreel netreel-poll tcpdump dumpcap)
# BENCH_PROFILES="tcp max,udp64 max" and BENCH_RECORDERS="netreel-poll tcpdump" pick a subset.
if [ -n "${BENCH_PROFILES:-}" ]; then
    picked=()
    for p in "${profiles[@]}"; do
        case ",$BENCH_PROFILES," in *",${p%%:*},"*) picked+=("$p") ;; esac
    done
    [ "${#picked[@]}" -gt 0 ] || die "BENCH_PROFILES=$BENCH_PROFILES names no profile"
    profiles=("${picked[@]}")
fi
[ -z "${BENCH_RECORDERS:-}" ] || read -r -a recorders <<<"$BENCH_RECORDERS"
# The disk's sustained rate through the page cache (what tcpdump's writes meet once its dirty
# pages are at the kernel's limit) and around it, for the sustained profile.
disk_mbps=
for p in "${profiles[@]}"; do
    [ "${p#*@disk}" = "$p" ] && continue
    sync
    disk_mbps=$(dd if=/dev/zero of="$work/dd.test" bs=1M count=2048 conv=fdatasync 2>&1 |
        sed -n 's/.* s, \([0-9.]*\) \([MG]\)B\/s$/\1 \2/p' | awk '{ print $2 == "G" ? $1 * 1000 : $1 }')
    rm -f "$work/dd.test"
    direct_mbps=$(dd if=/dev/zero of="$work/dd.test" bs=1M count=2048 oflag=direct conv=fdatasync 2>&1 |
        sed -n 's/.* s, \([0-9.]*\) \([MG]\)B\/s$/\1 \2/p' | awk '{ print $2 == "G" ? $1 * 1000 : $1 }')
    rm -f "$work/dd.test"
    [ -n "$disk_mbps" ] || die "could not measure the disk with dd under $work"
    # One run's recording must fit, whole: the store keeps it all (retention would cut it).
    free_mb=$(df -Pm "$work" | awk 'NR == 2 { print $4 }')
    need_mb=$(awk -v m="$disk_mbps" -v s="$sustained_secs" 'BEGIN { printf "%d", m * s * 1.1 + 1024 }')
    [ "$need_mb" -lt "$free_mb" ] ||
        die "\"tcp disk\" records ${need_mb} MB a run at $disk_mbps MB/s for ${sustained_secs}s; $work has ${free_mb} MB free (lower BENCH_SUSTAINED_SECONDS)"
    store_max_size=${need_mb}MB
    echo "bench: the disk under $work takes $disk_mbps MB/s through the page cache (dd conv=fdatasync), $direct_mbps MB/s with oflag=direct: \"tcp disk\" runs at $(awk -v m="$disk_mbps" 'BEGIN { printf "%.2f", m * 8 / 1000 }') Gbit/s for ${sustained_secs}s" >&2
    break
done

results=$work/results.tsv
: >"$results"
echo "bench: $((${#profiles[@]} * ${#recorders[@]} * reps)) runs of ${short_secs}s (tcp disk: ${sustained_secs}s) on -i $iface; snaplen $snaplen, buffer ${buf_mib}MiB, files under $work; $(uptime)" >&2
for p in "${profiles[@]}"; do
    name=${p%%:*}
    read -r -a args <<<"${p#*:}"
    secs=$short_secs
    if [ "${p#*@disk}" != "$p" ]; then
        args=("${args[@]/@disk/$(awk -v m="$disk_mbps" 'BEGIN { printf "%dM", m * 8 }')}")
        secs=$sustained_secs
    fi
    for rep in $(seq 1 "$reps"); do
        order=("${recorders[@]}")
        if [ $((rep % 2)) = 0 ]; then # every other round the other way round
            order=()
            for ((i = ${#recorders[@]} - 1; i >= 0; i--)); do order+=("${recorders[$i]}"); done
        fi
        for r in "${order[@]}"; do
            sync # the last run's writeback is not this one's
            "rec_${r//-/_}" "${args[@]}"
            us=$(awk -v c="$cpu_s" -v n="$taken" 'BEGIN { printf "%.2f", n ? c / n * 1e6 : 0 }')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$r" "$gbps" "$wire" "$stats_rec" \
                "$stats_all" "$file_pkts" "$note" "$cpu_s" "$taken" "$rep" >>"$results"
            printf 'bench: %-9s %-12s %6s Gbit/s  wire %9s  stats %9s/%-9s  file %9s  cpu %5s s (%s us/pkt of %s)  drops: %s\n' \
                "$name" "$r" "$gbps" "$wire" "$stats_rec" "$stats_all" "$file_pkts" "$cpu_s" "$us" "$taken" "$note" >&2
        done
    done
done
echo "bench: done; $(uptime)" >&2

# ---- the table -------------------------------------------------------------------------------
"$py" - "$results" <<'EOF'
import sys
from statistics import median
rows = [ln.rstrip("\n").split("\t") for ln in open(sys.argv[1]) if ln.strip()]
def pct(a, b):
    return 100.0 * a / b if b else float("nan")
print(f"{'profile':<10} {'recorder':<12} {'Gbit/s':>7} {'wire pkts':>10} {'stats %':>8} "
      f"{'files %':>8} {'in files':>10} {'cpu s':>6} {'us/pkt':>7}  drops counted")
share = {}
for prof, rec, gbps, wire, srec, sall, files, note, cpu, taken, rep in rows:
    wire, srec, sall, files = int(wire), int(srec), int(sall), int(files)
    share[prof, rec] = (files, wire)  # the last round's
    us = float(cpu) / int(taken) * 1e6 if int(taken) else float("nan")
    print(f"{prof:<10} {rec:<12} {float(gbps):>7.2f} {wire:>10} {pct(srec, sall):>8.2f} "
          f"{pct(files, wire):>8.2f} {files:>10} {float(cpu):>6.2f} {us:>7.2f}  {note}")
profiles = list(dict.fromkeys(r[0] for r in rows))
by_round = {(r[0], r[1], r[10]): pct(int(r[6]), int(r[3])) for r in rows}
print()
for prof in profiles:
    for rec in ("netreel", "netreel-poll"):
        pairs = [(by_round[prof, rec, k], by_round[prof, "tcpdump", k])
                 for (p, r, k) in by_round if p == prof and r == rec
                 and (prof, "tcpdump", k) in by_round]
        if pairs:
            below = [i + 1 for i, (n, t) in enumerate(pairs) if n < t - 0.005]
            verdict = ("ok" if not below else
                       "BELOW tcpdump in round " + ", ".join(map(str, below)))
            print(f"{prof:<10} {rec:<12} " + "; ".join(f"{n:6.2f}% vs tcpdump {t:6.2f}%"
                                                         for n, t in pairs) + f": {verdict}")
    th, po = share.get((prof, "netreel")), share.get((prof, "netreel-poll"))
    if th and po:
        # Shares, not counts: at the unlimited rates each run carries its own wire.
        s_th, s_po = pct(*th), pct(*po)
        better = ("neither" if abs(s_th - s_po) < 0.005 else
                  "thread" if s_th > s_po else "poll")
        print(f"{prof:<10} thread {s_th:6.2f}%, poll {s_po:6.2f}% of the wire "
              f"(lost {th[1] - th[0]} / {po[1] - po[0]}): {better} drops less")
def lossless(rec):
    best = None
    for prof in profiles:
        f = share.get((prof, rec))
        if f and f[0] >= f[1] and prof.startswith("tcp"):
            best = prof
    return best or "none"
for rec in ("netreel", "netreel-poll", "tcpdump", "dumpcap"):
    print(f"highest lossless TCP rate, {rec}: {lossless(rec)}")
if len({r[10] for r in rows}) > 1:
    def span(xs, fmt):
        return f"{fmt % median(xs)} ({fmt % min(xs)}-{fmt % max(xs)})"
    print()
    print(f"over {len({r[10] for r in rows})} rounds: median (lowest-highest)")
    print(f"{'profile':<10} {'recorder':<12} {'Gbit/s':>20} {'files %':>22} {'cpu s':>20} {'us/pkt':>20}")
    for prof in profiles:
        for rec in dict.fromkeys(r[1] for r in rows):
            rs = [r for r in rows if r[0] == prof and r[1] == rec]
            if not rs:
                continue
            g = [float(r[2]) for r in rs]
            f = [pct(int(r[6]), int(r[3])) for r in rs]
            c = [float(r[8]) for r in rs]
            u = [float(r[8]) / int(r[9]) * 1e6 for r in rs if int(r[9])]
            print(f"{prof:<10} {rec:<12} {span(g, '%.2f'):>20} {span(f, '%.2f'):>22} "
                  f"{span(c, '%.2f'):>20} {span(u, '%.2f') if u else '-':>20}")
EOF
