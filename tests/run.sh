#!/usr/bin/env bash
# Runs netreel's tests and ends with one line: "N passed, N failed".
#   tests/run.sh [--asan] [--only unit,integration,fuzz] BUILD_DIR
# Unit tests are cmocka programs; integration tests are pytest under /usr/bin/python3 (Debian's
# python3-grpcio); fuzz targets each run FUZZ_SECONDS (default 5) under ASan+UBSan.
set -uo pipefail

only="unit,integration,fuzz"
asan=0
while [ $# -gt 1 ]; do
    case "$1" in
    --only) only="$2"; shift 2 ;;
    --asan) asan=1; shift ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
build=${1:?usage: tests/run.sh [--asan] [--only SUITES] BUILD_DIR}
build=$(cd "$build" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
failures=()

if [ $asan = 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

want() { [[ ",$only," == *",$1,"* ]]; }

if want unit; then
    for t in "$build"/tests/unit/test_*; do
        [ -x "$t" ] || continue
        out=$("$t" 2>&1)
        rc=$?
        p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' <<<"$out" | tail -n 1)
        f=$(grep -oP '^\[  FAILED  \] \K[0-9]+' <<<"$out" | tail -n 1)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0}))
        if [ $rc -ne 0 ] || [ -n "$f" ]; then
            [ -n "$f" ] || failed=$((failed + 1))
            failures+=("unit: $(basename "$t")")
            printf '%s\n' "$out"
        else
            printf 'unit  %-32s %s passed\n' "$(basename "$t")" "${p:-0}"
        fi
    done
fi

if want integration; then
    log=$(mktemp)
    NETREEL_BUILD="$build" NETREEL_ASAN=$asan /usr/bin/python3 -m pytest -q -p no:cacheprovider \
        "$top/tests/integration" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    last=$(tail -n 1 "$log")
    p=$(grep -oP '[0-9]+(?= passed)' <<<"$last")
    f=$(grep -oP '[0-9]+(?= failed)' <<<"$last")
    e=$(grep -oP '[0-9]+(?= error)' <<<"$last")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ] && [ -z "$f$e" ]; then
        failed=$((failed + 1))
        failures+=("integration: pytest exited $rc")
    fi
    rm -f "$log"
fi

if want fuzz; then
    secs=${FUZZ_SECONDS:-5}
    for t in "$top"/build/fuzz/tests/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        corpus=$(mktemp -d)
        [ -d "$top/tests/fuzz/corpus/$name" ] && cp -r "$top/tests/fuzz/corpus/$name/." "$corpus/"
        out=$("$t" -max_total_time="$secs" -rss_limit_mb=1024 -print_final_stats=1 \
            "$corpus" 2>&1)
        rc=$?
        runs=$(grep -oP 'stat::number_of_executed_units:\s*\K[0-9]+' <<<"$out")
        rm -rf "$corpus"
        if [ $rc -eq 0 ]; then
            passed=$((passed + 1))
            printf 'fuzz  %-32s %s runs in %ss, clean\n' "$name" "${runs:-?}" "$secs"
        else
            failed=$((failed + 1))
            failures+=("fuzz: $name")
            printf '%s\n' "$out" | tail -n 40
        fi
    done
fi

for f in "${failures[@]}"; do echo "FAILED $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
