# shellcheck shell=bash
# Shared by the benches that run netreel in two network namespaces (bench/capture.sh,
# bench/tls.sh): sourced, not run. The caller sets work (a directory), nsa and nsb (namespace
# names), pids=() and, for netreel_start, store_bin, capture_bin and store_port.

die() { echo "bench: $*" >&2; exit 1; }

# Kills what the bench started, deletes its namespaces (and whatever still runs in them) and
# its work directory. Installed as the EXIT trap by bench_traps.
bench_cleanup() {
    local p ns
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    for ns in "$nsa" "$nsb"; do
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
