#!/usr/bin/env bash
# The cost of `netreel-capture --tls`: to the TLS application, and to the recorder, in one run:
#   bench/tls.sh BUILD_DIR
# A python3 `ssl` client sends BENCH_TLS_MB (default 1024) MB of plaintext to a python3 `ssl`
# server over TLS 1.3 (the system's libssl, the one the capture attaches to) on the loopback of
# network namespace B, in two shapes: bulk (16 KiB writes) and small messages (1 KiB writes,
# where the per-call cost dominates; BENCH_TLS_SMALL_MB, default BENCH_TLS_MB). The server reads
# into a 16 KiB buffer; SSL_read returns one TLS record at most, so it makes as many calls as the
# client. Each shape is timed BENCH_TLS_REPS (default 3) times without and with the capture,
# alternating (without, with, without, with...), so that whatever else runs on the machine hits
# both alike.
#
# "With": a fresh netreel-store (writing segments under BENCH_DIR, default ./build) and a fresh
# `netreel-capture --tls` streaming to it, both in namespace A, the capture's packet interface one
# end of a veth pair with no address, which sees no packet: what it records is the decrypted TLS alone (interface `tls`).
# The uprobes are on the library file, so namespaces do not hide the peers from them; they also
# catch any other OpenSSL user on the machine while the capture runs (counted apart, below).
#
# Per run it prints
#   the application's throughput: plaintext MB/s from the client's first write to the server's
#     1-byte answer after the last read (handshake excluded), and the CPU seconds (user, system)
#     of client and server over the transfer (getrusage / wait4);
#   with the capture: the capture's and the store's CPU seconds (/proc/PID/stat utime+stime)
#     from just before the transfer to the moment the capture's spool is empty (everything it
#     took is in the store), per GB of plaintext recorded;
#   what was recorded: TCP payload bytes of the store's segments on interface `tls` that belong
#     to the bench's server port (both ends are traced, so each byte is recorded twice: once
#     written by the client, once read by the server), against 2 x the bytes sent, and the
#     capture's netreel_capture_tls_* counters (calls, lost records and bytes).
set -euo pipefail

build=${1:?usage: bench/tls.sh BUILD_DIR}
build=$(cd "$build" && pwd)
mb_bulk=${BENCH_TLS_MB:-1024}
mb_small=${BENCH_TLS_SMALL_MB:-$mb_bulk}
reps=${BENCH_TLS_REPS:-3}
py=/usr/bin/python3
capture_bin=$build/bin/netreel-capture
store_bin=$build/bin/netreel-store
tls_port=18443
store_port=18898

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
for b in "$capture_bin" "$store_bin"; do
    [ -x "$b" ] || die "$b is missing: build it with make"
done
for t in openssl ip; do
    command -v "$t" >/dev/null || die "$t is not installed (make deps)"
done
[ "$(id -u)" = 0 ] || die "needs root (network namespaces, eBPF uprobes)"
[ -e /sys/kernel/btf/vmlinux ] || die "the kernel has no BTF: --tls cannot run here"

work=$(mktemp -d "${BENCH_DIR:-$PWD/build}/bench-tls.XXXXXX")
nsa=nrt$$a
nsb=nrt$$b
pids=()
bench_traps

# ---- the two namespaces: A holds the store and the capture (its interface a quiet veth), B the peers
for ns in "$nsa" "$nsb"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
done
ip netns exec "$nsa" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
# (a veth pair with no address and nothing behind it: the `dummy` link type is not in every kernel)
ip -n "$nsa" link add nrtquiet0 type veth peer name nrtquiet1
ip -n "$nsa" link set nrtquiet0 up
ip -n "$nsa" link set nrtquiet1 up
# (processes started in the background are started with `ip netns exec` itself, which execs
# them, so that $! is their pid: a shell function in the background would be a subshell)

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bench \
    -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null || die "openssl req failed"

# ---- helpers ---------------------------------------------------------------------------------
cat >"$work/xfer.py" <<'EOF'
"""xfer.py PORT BYTES WRITE_SIZE CERT KEY: one TLS 1.3 connection on 127.0.0.1, client -> server.
Prints: seconds bytes client_user client_sys server_user server_sys (over the transfer)."""
import os, resource, socket, ssl, sys, time
port, total, wsize = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cert, key = sys.argv[4], sys.argv[5]
lsock = socket.socket()
lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lsock.bind(("127.0.0.1", port))
lsock.listen(1)
r, w = os.pipe()
pid = os.fork()
if pid == 0:  # server: read until `total`, then answer one byte
    os.close(r)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    conn, _ = lsock.accept()
    s = sctx.wrap_socket(conn, server_side=True)
    s.recv(1)  # the client's "go", after the handshake
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    buf = bytearray(16384)
    got = 0
    while got < total:
        n = s.recv_into(buf)
        if n == 0:
            break
        got += n
    s.sendall(b"k")
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    os.write(w, b"%d %.6f %.6f" % (got, ru1.ru_utime - ru0.ru_utime, ru1.ru_stime - ru0.ru_stime))
    s.recv(1)  # wait for the client's close so that nothing is cut
    os._exit(0)
os.close(w)
lsock.close()
cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
cctx.check_hostname = False
cctx.verify_mode = ssl.CERT_NONE
c = cctx.wrap_socket(socket.create_connection(("127.0.0.1", port)))
c.sendall(b"g")
payload = memoryview(os.urandom(wsize))
ru0 = resource.getrusage(resource.RUSAGE_SELF)
t0 = time.perf_counter()
sent = 0
while sent < total:
    n = min(wsize, total - sent)
    c.sendall(payload[:n])
    sent += n
ack = c.recv(1)
t1 = time.perf_counter()
ru1 = resource.getrusage(resource.RUSAGE_SELF)
c.close()
got, su, ss = os.read(r, 256).split()
os.waitpid(pid, 0)
if ack != b"k" or int(got) != total:
    sys.exit(f"xfer: server read {int(got)} of {total} bytes")
print(f"{t1 - t0:.6f} {total} {ru1.ru_utime - ru0.ru_utime:.6f} {ru1.ru_stime - ru0.ru_stime:.6f} "
      f"{float(su):.6f} {float(ss):.6f}")
EOF
cat >"$work/tlsbytes.py" <<'EOF'
"""tlsbytes.py PORT FILE...: TCP payload bytes and packets on interface `tls` of pcapng files,
to or from PORT, and the same for any other port (other OpenSSL users on the machine)."""
import struct, sys
port = int(sys.argv[1])
mine = [0, 0]
other = [0, 0]
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        data = f.read()
    off, size, ifaces = 0, len(data), []
    while off + 12 <= size:
        btype, blen = struct.unpack_from("<II", data, off)
        if blen < 12 or off + blen > size:
            break  # a torn last block
        if btype == 0x0A0D0D0A:
            ifaces = []
        elif btype == 1:  # IDB: find if_name (option 2)
            name, o = b"", off + 16
            while o + 4 <= off + blen - 4:
                code, olen = struct.unpack_from("<HH", data, o)
                if code == 0:
                    break
                if code == 2:
                    name = data[o + 4:o + 4 + olen].rstrip(b"\0")
                o += 4 + (olen + 3) // 4 * 4
            ifaces.append(name == b"tls" or name.endswith(b"/tls"))
        elif btype == 6:
            ifid, _, _, caplen, origlen = struct.unpack_from("<IIIII", data, off + 8)
            if ifid < len(ifaces) and ifaces[ifid]:
                p = off + 28  # Ethernet, then IPv6 (all synthetic packets are IPv6)
                if caplen >= 14 + 40 + 20 and struct.unpack_from(">H", data, p + 12)[0] == 0x86DD:
                    tcp = p + 14 + 40
                    sport, dport = struct.unpack_from(">HH", data, tcp)
                    thl = (data[tcp + 12] >> 4) * 4
                    n = origlen - 14 - 40 - thl
                    acc = mine if port in (sport, dport) else other
                    acc[0] += n
                    acc[1] += 1
        off += blen
print(f"rec_bytes={mine[0]} rec_pkts={mine[1]} other_bytes={other[0]} other_pkts={other[1]}")
EOF

# The capture's /metrics the bench reads, as shell variables (bench/metrics.py).
metrics_py=$(dirname "$0")/metrics.py
metrics=("netreel_capture_tls_calls_total=m_calls"
         "netreel_capture_tls_packets_total=m_tls_packets"
         'netreel_capture_tls_lost_total{what="records"}=m_lost_records'
         'netreel_capture_tls_lost_total{what="bytes"}=m_lost_bytes'
         'netreel_capture_dropped_total{where="spool"}=m_spool_drop'
         "netreel_capture_tls_libraries=m_libs"
         "netreel_capture_spool_bytes=m_spool_bytes")

hz=$(getconf CLK_TCK)
cpu_ticks() { # utime + stime of PID, in clock ticks
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

# xfer BYTES WSIZE: one transfer in B; sets secs cu cs su ss.
xfer() {
    local out
    out=$(ip netns exec "$nsb" "$py" "$work/xfer.py" "$tls_port" "$1" "$2" "$work/cert.pem" "$work/key.pem") ||
        die "the TLS transfer failed"
    read -r secs _ cu cs su ss <<<"$out"
}

# run_plain BYTES WSIZE / run_capture BYTES WSIZE: one timed transfer, without / with
# the capture; both set secs cu cs su ss, run_capture also cap_s store_s rec_bytes lost.
# Another netreel-capture --tls on the machine (a test, another bench) would put its probes on
# a run too: other_captures [OWN_PID] lists the others, warn_others LIST says so.
other_captures() {
    local p
    for p in $(pgrep -x netreel-capture | grep -vx "${1:-0}"); do
        if tr '\0' '\n' <"/proc/$p/cmdline" 2>/dev/null | grep -qx -- --tls; then
            echo "$p(--tls)"
        else
            echo "$p"
        fi
    done | paste -sd, || true
}
warn_others() {
    local list
    list=$(tr , '\n' <<<"$1" | grep . | sort -u | paste -sd, || true)
    [ -z "$list" ] || echo "bench: WARNING: other netreel-capture processes ran during this run: $list (one with --tls traps this run too)" >&2
}

run_plain() {
    local others
    others=$(other_captures)
    xfer "$@"
    warn_others "$others,$(other_captures)"
    cap_s=- store_s=- rec_bytes=- other_bytes=- lost=-
}

run_capture() {
    local data=$work/data spid cpid mport
    rm -rf "$data"
    netreel_start "$data" -i nrtquiet0 --tls
    grep -q 'decrypted TLS is OFF' "$work/capture.err" &&
        die "--tls is off here: $(grep 'decrypted TLS is OFF' "$work/capture.err")"
    local m_calls=0 m_tls_packets=0 m_lost_records=0 m_lost_bytes=0 m_spool_drop=0 m_libs=0
    local m_spool_bytes=-1
    eval "$(inA "$py" "$metrics_py" "$mport" "${metrics[@]}")"
    [ "$m_libs" -gt 0 ] || die "the capture attached to no libssl: $(tail -n 5 "$work/capture.err")"
    local calls0=$m_calls c0 s0 c1 s1
    c0=$(cpu_ticks "$cpid")
    s0=$(cpu_ticks "$spid")
    local others
    others=$(other_captures "$cpid")
    xfer "$@"
    warn_others "$others,$(other_captures "$cpid")"
    # Its work ends when every record is in the store: the ring read, the spool empty.
    sleep 0.5
    for _ in $(seq 1 1200); do
        eval "$(inA "$py" "$metrics_py" "$mport" "${metrics[@]}")"
        [ "$m_spool_bytes" = 0 ] && break
        sleep 0.1
    done
    c1=$(cpu_ticks "$cpid")
    s1=$(cpu_ticks "$spid")
    netreel_stop
    cap_s=$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
    store_s=$(awk -v a="$s0" -v b="$s1" -v hz="$hz" 'BEGIN { printf "%.2f", (b - a) / hz }')
    eval "$("$py" "$work/tlsbytes.py" "$tls_port" "$data"/*/*.pcapng)"
    calls=$((m_calls - calls0))
    lost="records $m_lost_records bytes $m_lost_bytes spool $m_spool_drop (tls packets $m_tls_packets)"
    rm -rf "$data"
}

# ---- the runs --------------------------------------------------------------------------------
shapes=("bulk:16384:$mb_bulk" "small:1024:$mb_small")
results=$work/results.tsv
: >"$results"
echo "bench: ${#shapes[@]} shapes x $reps x (without, with the capture); files under $work; $(uptime)" >&2
for s in "${shapes[@]}"; do
    IFS=: read -r name wsize mb <<<"$s"
    bytes=$((mb * 1000 * 1000))
    for rep in $(seq 1 "$reps"); do
        for mode in plain capture; do
            calls=- rec_bytes=- other_bytes=-
            "run_$mode" "$bytes" "$wsize"
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$wsize" "$mode" \
                "$rep" "$bytes" "$secs" "$cu" "$cs" "$su" "$ss" "$cap_s" "$store_s" "$rec_bytes" \
                "$other_bytes" "$calls" >>"$results"
            printf 'bench: %-5s %-7s %6.2f s  %7.1f MB/s  client %s+%s s  server %s+%s s  capture %s s  store %s s  recorded %s B (others %s B)  calls %s  lost: %s\n' \
                "$name" "$mode" "$secs" "$(awk -v b="$bytes" -v s="$secs" 'BEGIN { print b / s / 1e6 }')" \
                "$cu" "$cs" "$su" "$ss" "$cap_s" "$store_s" "$rec_bytes" "$other_bytes" "$calls" "$lost" >&2
            if [ "$mode" = capture ] && [ "$rec_bytes" -lt $((2 * bytes)) ]; then
                echo "bench: WARNING: the recording holds $rec_bytes of the $((2 * bytes)) plaintext bytes" >&2
            fi
        done
    done
done

echo "bench: done; $(uptime)" >&2

# ---- the table -------------------------------------------------------------------------------
"$py" - "$results" <<'EOF'
import sys
from statistics import median
rows = [ln.rstrip("\n").split("\t") for ln in open(sys.argv[1]) if ln.strip()]
print(f"{'shape':<6} {'write':>6} {'MB/s without':>13} {'with':>7} {'ratio':>6} "
      f"{'peers CPU s/GB':>16} {'of it sys':>12} {'probe us/call':>14} "
      f"{'capture s/GB':>13} {'store s/GB':>11} {'capture us/rec':>15} {'recorded %':>14}")
for shape in dict.fromkeys(r[0] for r in rows):
    rs = [r for r in rows if r[0] == shape]
    plain = [r for r in rs if r[2] == "plain"]
    cap = [r for r in rs if r[2] == "capture"]
    gb = int(rs[0][4]) / 1e9
    mbs = lambda rr: median(int(r[4]) / float(r[5]) / 1e6 for r in rr)
    # the two peers' CPU (client + server over the transfer), all and system, per GB sent
    app = lambda rr: median((float(r[6]) + float(r[7]) + float(r[8]) + float(r[9])) / gb for r in rr)
    sys_ = lambda rr: median((float(r[7]) + float(r[9])) / gb for r in rr)
    calls = median(int(r[14]) for r in cap)  # SSL calls that moved plaintext = ring records
    probe_us = (sys_(cap) - sys_(plain)) * gb / calls * 1e6
    rec_gb = [int(r[12]) / 1e9 for r in cap]
    cps = median(float(r[10]) / g for r, g in zip(cap, rec_gb) if g)
    sps = median(float(r[11]) / g for r, g in zip(cap, rec_gb) if g)
    cap_us = median(float(r[10]) / int(r[14]) * 1e6 for r in cap)
    shares = [100.0 * int(r[12]) / (2 * int(r[4])) for r in cap]
    print(f"{shape:<6} {rs[0][1]:>6} {mbs(plain):>13.1f} {mbs(cap):>7.1f} {mbs(cap) / mbs(plain):>6.2f} "
          f"{app(plain):>6.2f} -> {app(cap):<6.2f} {sys_(plain):>5.2f} -> {sys_(cap):<5.2f} "
          f"{probe_us:>14.1f} {cps:>13.2f} {sps:>11.2f} {cap_us:>15.1f} {min(shares):>6.2f}..{max(shares):.2f}")
print("medians over the runs. MB/s: plaintext sent, without and with the capture; peers CPU:")
print("client + server, user + system, per GB sent (of it sys: system); probe us/call: the")
print("peers' extra system CPU over the SSL calls that moved plaintext (client's + server's);")
print("capture, store s/GB: per GB of plaintext recorded, each byte recorded at both ends;")
print("capture us/rec: per SSL call recorded; recorded %: the lowest and highest run's share of 2 x")
print("bytes sent (a run below 100 % lost ring records: see its line above).")
EOF
