#!/usr/bin/env bash
# netreel-capture recording `-i any`, where it splits `any` into one interface per device
# (docs/capture.md, "One interface per device": per packet, the loop reads the LINUX_SLL2
# interface index and rewrites the EPB's interface id), next to tcpdump -i any and, when given,
# another commit's capture, on the same traffic, in one run:
#   bench/capture-any.sh BUILD_DIR
#   BENCH_BASE_COMMIT=126ef89 bench/capture-any.sh BUILD_DIR   # against the commit before the split
#   BENCH_BASE=OTHER_BUILD_DIR bench/capture-any.sh BUILD_DIR  # against a build already made
# It is bench/capture.sh with BENCH_IFACE=any, the unlimited profiles ("tcp max", where the share
# recorded is at stake, and "udp64 max", ~200 k small packets a second, where a per-packet cost
# shows most), BENCH_REPS (default 3) rounds with the recorders interleaved, and the recorders
# netreel, netreel-base (BENCH_BASE's capture, on this build's store) and tcpdump. Per run and
# as medians (lowest-highest) it prints the share of the wire recorded and the recorder's CPU
# per packet.
#
# BENCH_BASE_COMMIT=REV builds REV's netreel-capture in a temporary `git worktree` of this
# repository (under TMPDIR; `make -j BENCH_BASE_JOBS`, default 2), uses it, and removes the
# worktree at the end. Other variables (BENCH_SECONDS, BENCH_DIR, BENCH_PROFILES,
# BENCH_RECORDERS) go through to bench/capture.sh.
set -euo pipefail

build=${1:?usage: bench/capture-any.sh BUILD_DIR}
here=$(cd "$(dirname "$0")" && pwd)
die() { echo "bench: $*" >&2; exit 1; }

wt=
cleanup() {
    if [ -n "$wt" ]; then
        git -C "$here" worktree remove --force "$wt" 2>/dev/null || rm -rf "$wt"
        git -C "$here" worktree prune 2>/dev/null || true
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -n "${BENCH_BASE_COMMIT:-}" ] && [ -z "${BENCH_BASE:-}" ]; then
    rev=$(git -C "$here" rev-parse --verify "${BENCH_BASE_COMMIT}^{commit}") ||
        die "BENCH_BASE_COMMIT=$BENCH_BASE_COMMIT is no commit of this repository"
    wt=$(mktemp -d "${TMPDIR:-/tmp}/netreel-bench-base.XXXXXX")
    rmdir "$wt"
    git -C "$here" worktree add --detach "$wt" "$rev" >/dev/null 2>&1 ||
        die "git worktree add $wt $rev failed"
    echo "bench: building $(git -C "$wt" log -1 --format='%h %s') in $wt" >&2
    make -C "$wt" -j"${BENCH_BASE_JOBS:-2}" >"$wt.build.log" 2>&1 ||
        die "the build of $rev failed: $(tail -n 5 "$wt.build.log")"
    rm -f "$wt.build.log"
    export BENCH_BASE=$wt/build/release
fi

recorders="netreel tcpdump"
[ -z "${BENCH_BASE:-}" ] || recorders="netreel netreel-base tcpdump"
BENCH_IFACE=any \
    BENCH_PROFILES=${BENCH_PROFILES:-"tcp max,udp64 max"} \
    BENCH_RECORDERS=${BENCH_RECORDERS:-$recorders} \
    BENCH_REPS=${BENCH_REPS:-3} \
    "$here/capture.sh" "$build"
