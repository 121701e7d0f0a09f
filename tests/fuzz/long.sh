#!/usr/bin/env bash
# Runs every libFuzzer target of a fuzz build to FUZZ_RUNS executions (default 1 000 000), one
# at a time in one process (no -jobs, no -fork), each from a copy of its seed corpus
# (tests/fuzz/corpus/NAME), and prints one line per target: executions, exec/s, coverage (cov,
# ft), wall time, verdict.
#   tests/fuzz/long.sh FUZZ_BIN_DIR [NAME...]
# FUZZ_RUNS=N changes the count; FUZZ_KEEP=DIR keeps each grown corpus and log in DIR/NAME.
# A crash, leak, UBSan report or timeout leaves its input under /tmp (the line says where).
set -uo pipefail

bindir=${1:?usage: tests/fuzz/long.sh FUZZ_BIN_DIR [NAME...]}
shift
bindir=$(cd "$bindir" 2>/dev/null && pwd) || { echo "long.sh: no directory $bindir" >&2; exit 2; }
top=$(cd "$(dirname "$0")/../.." && pwd)
runs=${FUZZ_RUNS:-1000000}
failed=0

if [ $# -gt 0 ]; then
    targets=("$@")
else
    targets=()
    for t in "$bindir"/fuzz_*; do
        [ -x "$t" ] && targets+=("$(basename "$t")")
    done
fi
[ ${#targets[@]} -gt 0 ] || { echo "long.sh: no fuzz target in $bindir (make fuzz)" >&2; exit 2; }

# The same sanitizer options as a crash report would want; leaks are findings too.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

printf '%-24s %10s %8s %7s %8s %7s  %s\n' target runs exec/s cov ft seconds result
for name in "${targets[@]}"; do
    t=$bindir/$name
    work=$(mktemp -d "/tmp/fuzz-long-$name.XXXXXX")
    mkdir -p "$work/corpus" "$work/artifacts"
    [ -d "$top/tests/fuzz/corpus/$name" ] && cp -r "$top/tests/fuzz/corpus/$name/." "$work/corpus/"
    start=$(date +%s)
    (cd "$work" && "$t" -runs="$runs" -rss_limit_mb=2048 -timeout=30 \
        -print_final_stats=1 -artifact_prefix="$work/artifacts/" corpus) >"$work/log" 2>&1
    rc=$?
    secs=$(($(date +%s) - start))
    n=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' "$work/log")
    speed=$(grep -oP 'stat::average_exec_per_sec:\s*\K[0-9]+' "$work/log")
    done_line=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$work/log" | tail -n 1)
    cov=$(grep -oP 'cov: \K[0-9]+' <<<"$done_line")
    ft=$(grep -oP 'ft: \K[0-9]+' <<<"$done_line")
    if [ $rc -eq 0 ] && [ "${n:-0}" -ge "$runs" ]; then
        result=clean
    else
        failed=$((failed + 1))
        result="FAILED (rc $rc, log and input in $work)"
    fi
    printf '%-24s %10s %8s %7s %8s %7s  %s\n' "$name" "${n:-?}" "${speed:-?}" "${cov:-?}" \
        "${ft:-?}" "$secs" "$result"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        mkdir -p "$FUZZ_KEEP/$name" && cp -r "$work/." "$FUZZ_KEEP/$name/"
    fi
    [ "$result" = clean ] && rm -rf "$work"
done
[ $failed -eq 0 ]
