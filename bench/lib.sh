# shellcheck shell=bash
# Shared by the benches: sourced, not run. The caller sets work (its directory: bench_workdir
# makes one on the disk) and pids=() (every process it starts in the background), then calls
# bench_traps. The benches that run netreel in two network namespaces (bench/capture.sh,
# bench/tls.sh) also set nsa and nsb (namespace names) and, for netreel_start, store_bin,
# capture_bin and store_port.

die() { echo "bench: $*" >&2; exit 1; }

# need_bins PROGRAM...: each must be there and executable, or the bench ends saying so.
need_bins() {
    local b
    for b in "$@"; do
        [ -x "$b" ] || die "$b is missing: build it with make"
    done
}

# bench_workdir NAME: makes and prints a work directory on the disk the programs would use
# (BENCH_DIR, default ./build), not on a tmpfs.
bench_workdir() { mktemp -d "${BENCH_DIR:-$PWD/build}/bench-$1.XXXXXX"; }

# Kills what the bench started, deletes its namespaces if it has any (and whatever still runs in
# them) and its work directory. Installed as the EXIT trap by bench_traps.
bench_cleanup() {
    local p ns
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in ${nsa:-} ${nsb:-}; do
        if ip netns list | grep -qw "$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
            ip netns del "$ns" 2>/dev/null || true
        fi
    done
    rm -rf "$work"
}

bench_traps() {
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

inA() { ip netns exec "$nsa" "$@"; }

# json FILE EXPR: prints EXPR evaluated with j = the JSON object in FILE.
json() {
    /usr/bin/python3 -c 'import json, sys; j = json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"
}

# now: the time, for elapsed START END: the seconds between two of them.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# port_of LOG PID NAME [TRIES]: prints the port of the msg=serving line in LOG, waiting for it
# up to TRIES (default 100) times 0.1 s while PID lives. (Give each process a log of its own: a
# log reused could still hold the last process's line when port_of reads it, before the new
# process's shell has truncated it.)
port_of() {
    local port='' _
    for _ in $(seq 1 "${4:-100}"); do
        port=$(sed -n 's/.*msg=serving .* port=\([0-9]*\) .*/\1/p' "$1" | head -n 1)
        [ -n "$port" ] && { echo "$port"; return; }
        kill -0 "$2" 2>/dev/null || die "$3 exited: $(tail -n 5 "$1")"
        sleep 0.1
    done
    die "$3 did not start: $(tail -n 5 "$1")"
}

wait_for() { # wait_for FILE PATTERN PID WHAT: until FILE holds PATTERN, while PID lives (20 s)
    local _
    for _ in $(seq 1 400); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        kill -0 "$3" 2>/dev/null || die "$4 exited: $(cat "$1")"
        sleep 0.05
    done
    die "$4 did not start: $(cat "$1")"
}

# netreel_start DATA_DIR CAPTURE_ARGS...: a netreel-store on DATA_DIR (with store_args, if set)
# and a netreel-capture streaming to it, both in namespace A; sets spid, cpid and mport (the
# capture's metrics port).
netreel_start() {
    local data=$1
    shift
    # ip netns exec itself in the background (not inA: $! would be a subshell's pid)
    ip netns exec "$nsa" "$store_bin" --listen "127.0.0.1:$store_port" --metrics-listen off --data-dir "$data" \
        --max-size "${store_max_size:-40GB}" --max-time 0 --node bench ${store_args[@]+"${store_args[@]}"} \
        2>"$work/store.err" &
    spid=$!
    pids+=("$spid")
    wait_for "$work/store.err" "msg=serving" "$spid" netreel-store
    ip netns exec "$nsa" "$capture_bin" "$@" --store "127.0.0.1:$store_port" --metrics-listen 127.0.0.1:0 \
        --node bench 2>"$work/capture.err" &
    cpid=$!
    pids+=("$cpid")
    wait_for "$work/capture.err" "msg=capturing" "$cpid" netreel-capture
    mport=$(sed -n 's/.*msg=capturing.* metrics_port=\([0-9]*\).*/\1/p' "$work/capture.err")
}

# netreel_stop: SIGTERM to the capture, then the store; either failing ends the bench.
netreel_stop() {
    kill -TERM "$cpid"
    wait "$cpid" || die "netreel-capture exited with status $?: $(tail -n 5 "$work/capture.err")"
    kill -TERM "$spid"
    wait "$spid" || die "netreel-store exited with status $?: $(tail -n 5 "$work/store.err")"
}
