#!/usr/bin/env bash
# Runs netreel's tests and ends with one line: "N passed, N failed".
#   tests/run.sh [--asan] [--asan-build DIR] [--only unit,integration,fuzz,faults] BUILD_DIR
# Unit tests are cmocka programs; integration tests are pytest under /usr/bin/python3 (Debian's
# python3-grpcio); fuzz targets each run FUZZ_SECONDS (default 5) under ASan+UBSan; faults (only
# when asked for: make test-faults) are the long fault-injection tests (NETREEL_FAULTS=1).
# --asan: BUILD_DIR is a sanitizer build. --asan-build DIR: also run the unit and integration
# suites against the sanitizer build in DIR, counted in the same total.
set -uo pipefail

only="unit,integration,fuzz"
asan=0
asan_build=""

while [ $# -gt 1 ]; do
    case "$1" in
    --only) only="$2"; shift 2 ;;
    --asan) asan=1; shift ;;
    --asan-build) asan_build="$2"; shift 2 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
build=${1:?usage: tests/run.sh [--asan] [--only SUITES] BUILD_DIR}
build=$(cd "$build" 2>/dev/null && pwd) || { echo "run.sh: no build directory $1" >&2; exit 2; }
top=$(cd "$(dirname "$0")/.." && pwd)
passed=0
failed=0
failures=()

if [ $asan = 1 ]; then
    export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

want() { [[ ",$only," == *",$1,"* ]]; }

# count_pytest LOG RC LABEL: adds pytest's summary line in LOG to the totals.
count_pytest() {
    local log=$1 rc=$2 label=$3 last p f e
    # pytest's summary line; grpc-core may print after it.
    last=$(grep -E '[0-9]+ (passed|failed|errors?)' "$log" | tail -n 1)
    p=$(grep -oP '[0-9]+(?= passed)' <<<"$last")
    f=$(grep -oP '[0-9]+(?= failed)' <<<"$last")
    e=$(grep -oP '[0-9]+(?= error)' <<<"$last")
    passed=$((passed + ${p:-0}))
    failed=$((failed + ${f:-0} + ${e:-0}))
    # No test collected (exit 5) or no count at all is a failure, not a pass.
    if { [ "$rc" -ne 0 ] && [ -z "$f$e" ]; } || [ -z "$p$f$e" ]; then
        failed=$((failed + 1))
        failures+=("$label: pytest exited $rc")
    fi
}

# run_suites BUILD_DIR LABEL: the unit and integration suites against one build.
run_suites() {
    local b=$1 label=$2 is_asan=$3
    if want unit; then
        for t in "$b"/tests/unit/test_*; do
            [ -x "$t" ] || continue
            out=$(timeout 300 "$t" 2>&1)
            rc=$?
            p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' <<<"$out" | tail -n 1)
            f=$(grep -oP '^\[  FAILED  \] \K[0-9]+' <<<"$out" | tail -n 1)
            passed=$((passed + ${p:-0}))
            failed=$((failed + ${f:-0}))
            if [ $rc -ne 0 ] || [ -n "$f" ]; then
                [ -n "$f" ] || failed=$((failed + 1))
                failures+=("$label unit: $(basename "$t")")
                printf '%s\n' "$out"
            else
                printf '%-5s %-32s %s passed\n' "$label" "$(basename "$t")" "${p:-0}"
            fi
        done
    fi

    if want integration; then
        log=$(mktemp)
        NETREEL_BUILD="$b" NETREEL_ASAN=$is_asan timeout 1800 /usr/bin/python3 -m pytest -q \
            -p no:cacheprovider "$top/tests/integration" 2>&1 | tee "$log"
        rc=${PIPESTATUS[0]}
        count_pytest "$log" "$rc" "$label integration"
        rm -f "$log"
    fi
}

run_suites "$build" "$( [ $asan = 1 ] && echo asan || echo unit)" $asan
if [ -n "$asan_build" ]; then
    export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:halt_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
    run_suites "$(cd "$asan_build" && pwd)" asan 1
fi

if want faults; then
    log=$(mktemp)
    NETREEL_BUILD="$build" NETREEL_FAULTS=1 timeout 900 /usr/bin/python3 -m pytest -q -rs \
        -p no:cacheprovider -m faults "$top/tests/integration/faults" 2>&1 | tee "$log"
    count_pytest "$log" "${PIPESTATUS[0]}" "faults"
    rm -f "$log"
fi

if want fuzz; then
    secs=${FUZZ_SECONDS:-5}
    for t in "$(dirname "$build")"/fuzz/tests/fuzz/fuzz_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        corpus=$(mktemp -d)
        [ -d "$top/tests/fuzz/corpus/$name" ] && cp -r "$top/tests/fuzz/corpus/$name/." "$corpus/"
        # -timeout: one input running 20 s is a finding (libFuzzer prints it, base64, in the
        # tail below), not a silent stall until the outer timeout (fuzz_cli_args stalled once so).
        out=$(timeout $((secs + 120)) "$t" -max_total_time="$secs" -rss_limit_mb=1024 \
            -timeout=20 -print_final_stats=1 "$corpus" 2>&1)
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
