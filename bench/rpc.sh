#!/usr/bin/env bash
# lib/rpc throughput against loopback TCP on this machine, measured in one run:
#   bench/rpc.sh BUILD_DIR
# iperf3 (one TCP stream over 127.0.0.1) is the peer; lib/rpc streams 1 MiB messages with
# rpc-test-client bench, plaintext and TLS. Prints `what  Gbit/s  ratio-to-iperf3`.
# BENCH_SECONDS (default 5) sets each run's length.
set -euo pipefail

build=${1:?usage: bench/rpc.sh BUILD_DIR}
build=$(cd "$build" && pwd)
secs=${BENCH_SECONDS:-5}
size=1048576
py=/usr/bin/python3
server_bin=$build/tests/rpc-test-server
client_bin=$build/tests/rpc-test-client

# shellcheck source=bench/lib.sh
. "$(dirname "$0")/lib.sh"
need_bins "$server_bin" "$client_bin"
command -v iperf3 >/dev/null || die "iperf3 is not installed (make deps)"
command -v openssl >/dev/null || die "openssl is not installed (make deps)"

work=$(mktemp -d)
pids=()
bench_traps

forget() {   # a pid we have reaped must not be killed later
    local p keep=()
    for p in "${pids[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
    pids=("${keep[@]}")
}

free_port() {
    "$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- iperf3 over loopback ------------------------------------------------------------------------
# Sets iperf (Gbit/s). Not run in $(...): its background server must stay in pids for the trap.
iperf_bench() {
    local port pid cpid i err
    port=$(free_port)
    iperf3 -s -1 -B 127.0.0.1 -p "$port" >"$work/iperf3-server.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    # The server is up when the client stops being refused (a probe would use up the -1).
    # iperf3 3.12 exits 0 even when it fails with -J: the JSON's "error" tells.
    for i in $(seq 1 100); do
        iperf3 -c 127.0.0.1 -p "$port" -t "$secs" -J >"$work/iperf3.json" 2>&1 &
        cpid=$!
        pids+=("$cpid")
        wait "$cpid" || true
        forget "$cpid"
        err=$(json "$work/iperf3.json" 'j.get("error", "")' 2>&1) ||
            die "iperf3 client printed no JSON: $(cat "$work/iperf3.json")"
        [ -z "$err" ] && break
        [[ "$err" == *"Connection refused"* ]] || die "iperf3 client: $err"
        [ "$i" -lt 100 ] || die "iperf3 server did not come up: $(cat "$work/iperf3-server.log")"
        sleep 0.1
    done
    wait "$pid" || die "iperf3 server failed: $(cat "$work/iperf3-server.log")"
    forget "$pid"
    iperf=$(json "$work/iperf3.json" 'j["end"]["sum_received"]["bits_per_second"] / 1e9')
}

# ---- lib/rpc -------------------------------------------------------------------------------------
server_pid=
server_addr=
start_server() {
    local out=$work/server.out i
    : >"$out"
    "$server_bin" "$@" >"$out" 2>"$work/server.err" &
    server_pid=$!
    pids+=("$server_pid")
    for i in $(seq 1 100); do
        server_addr=$(sed -n 's/^listening on //p' "$out" | head -n 1)
        [ -n "$server_addr" ] && return 0
        kill -0 "$server_pid" 2>/dev/null ||
            die "rpc-test-server $* exited: $(cat "$work/server.err")"
        sleep 0.1
    done
    die "rpc-test-server $* printed no 'listening on' line in 10 s: $(cat "$work/server.err")"
}

stop_server() {
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" || die "rpc-test-server exited with status $? after SIGTERM: $(cat "$work/server.err")"
    forget "$server_pid"
}

# rpc_bench VAR CLIENT_ARGS...: sets VAR to the Gbit/s of rpc-test-client bench.
rpc_bench() {
    local var=$1 out=$work/$1.json pid gbps
    shift
    "$client_bin" "$@" bench --seconds "$secs" --size "$size" >"$out" &
    pid=$!
    pids+=("$pid")
    wait "$pid" || die "rpc-test-client bench ($var) failed with status $?"
    forget "$pid"
    gbps=$(json "$out" 'j["gbit_per_s"] if j["status"] == 0 else sys.exit("bench: status %d: %s" % (j["status"], j["message"]))')
    printf -v "$var" '%s' "$gbps"
}

make_certs() {
    local d=$work/pki
    mkdir -p "$d"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/ca.key" -out "$d/ca.pem" -days 1 -subj "/CN=netreel bench CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "extendedKeyUsage=serverAuth" \
        "subjectAltName=DNS:localhost,IP:127.0.0.1" >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -set_serial 1 \
        -days 1 -sha256 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
}

echo "bench: ${secs} s per run, lib/rpc with ${size}-byte messages" >&2

iperf_bench

start_server
rpc_bench plain --target "$server_addr"
stop_server

make_certs
start_server --tls-cert "$work/pki/server.pem" --tls-key "$work/pki/server.key"
rpc_bench tls --target "$server_addr" --tls-ca "$work/pki/ca.pem" --authority localhost
stop_server

row() { awk -v w="$1" -v g="$2" -v ref="$iperf" 'BEGIN { printf "%-22s %8.2f %16.3f\n", w, g, g / ref }'; }
printf '%-22s %8s %16s\n' what Gbit/s ratio-to-iperf3
row "iperf3 loopback TCP" "$iperf"
row "lib/rpc plaintext" "$plain"
row "lib/rpc TLS" "$tls"
