#!/usr/bin/env bash
# make test-stress (issue 19): the integration suites on a busy machine, where their races show
# (a teardown error once came only with other work beside `make test`). Each of STRESS_ROUNDS
# rounds runs `tests/run.sh --only integration` while `stress-ng --cpu STRESS_CPU` (or, without
# stress-ng, as many busy shell loops) keeps the CPUs busy; ends with "N passed, N failed" over
# all rounds.
#   mk/stress.sh BUILD_DIR
#   STRESS_ROUNDS=3 STRESS_CPU=2 (defaults); PYTEST_ADDOPTS='-k client_errors' narrows the tests
set -uo pipefail

build=${1:?usage: mk/stress.sh BUILD_DIR}
top=$(cd "$(dirname "$0")/.." && pwd)
rounds=${STRESS_ROUNDS:-3}
cpu=${STRESS_CPU:-2}
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "stress: STRESS_ROUNDS must be a count, not '$rounds'" >&2; exit 2; }
[[ $cpu =~ ^[1-9][0-9]*$ ]] || { echo "stress: STRESS_CPU must be a count, not '$cpu'" >&2; exit 2; }

load=()
stop_load() {
    [ ${#load[@]} -gt 0 ] || return 0
    kill "${load[@]}" 2>/dev/null
    wait "${load[@]}" 2>/dev/null
    load=()
}
trap stop_load EXIT
trap 'exit 130' INT TERM

if command -v stress-ng >/dev/null; then
    what="stress-ng --cpu $cpu"
    # --timeout: a safety net should this script be killed without its trap (-9).
    stress-ng --cpu "$cpu" --quiet --timeout $((rounds * 7200))s &
    load+=($!)
else
    what="$cpu busy shell loops (no stress-ng: apt-get install stress-ng)"
    for _ in $(seq "$cpu"); do
        (while :; do :; done) &
        load+=($!)
    done
fi

passed=0
failed=0
summary=()
for r in $(seq "$rounds"); do
    echo "== stress round $r of $rounds: integration suites beside $what"
    log=$(mktemp)
    "$top/tests/run.sh" --only integration "$build" 2>&1 | tee "$log"
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$log" | tail -n 1)
    if [ -z "$line" ]; then
        failed=$((failed + 1))
        summary+=("round $r: tests/run.sh printed no count")
    else
        p=${line%% passed*}
        f=${line#*, }
        f=${f%% failed}
        passed=$((passed + p))
        failed=$((failed + f))
        summary+=("round $r: $line")
        while IFS= read -r ln; do
            summary+=("round $r: $ln")
        done < <(grep -E '^(FAILED|ERROR) ' "$log")
    fi
    rm -f "$log"
    for pid in "${load[@]}"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            # A round on an idle machine proves nothing here: a failure.
            summary+=("round $r: the load ($what) had ended")
            failed=$((failed + 1))
            break
        fi
    done
done
stop_load

echo "== stress: $rounds round(s) beside $what"
for s in "${summary[@]}"; do echo "$s"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
