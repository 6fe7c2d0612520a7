#!/usr/bin/env bash
# tests/run.sh [FILTER] - run every test of the project.
#
# Unit tests are the cmocka binaries in $BUILD/tests; integration tests
# are tests/integration/*.sh; parity and fixture tests that need Python
# are tests/py/test_*.py, run with Debian's /usr/bin/python3 (torch,
# numpy, sklearn).  A test that exits 77 is skipped and must print why.
# Each test's output goes to $BUILD/test-logs/NAME.log and is shown when
# it fails.  FILTER keeps the tests whose name contains it.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
export NADER_BIN="$PWD/$BUILD"
PY=${PYTHON:-/usr/bin/python3}
filter=${1:-}
logs=$BUILD/test-logs
mkdir -p "$logs"

pass=0 fail=0 skip=0
failed=()
t0=$(date +%s)

run_one() {
    local name=$1
    shift
    [[ -n $filter && $name != *"$filter"* ]] && return
    local log=$logs/$name.log start end rc
    start=$(date +%s.%N)
    "$@" >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    local secs
    secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [[ $rc -eq 0 ]]; then
        pass=$((pass + 1))
        printf '  ok    %-40s %6ss\n' "$name" "$secs"
    elif [[ $rc -eq 77 ]]; then
        skip=$((skip + 1))
        printf '  skip  %-40s %s\n' "$name" "$(tail -n 1 "$log")"
    else
        fail=$((fail + 1))
        failed+=("$name")
        printf '  FAIL  %-40s %6ss (exit %d)\n' "$name" "$secs" "$rc"
        sed 's/^/        | /' "$log" | tail -n 60
    fi
}

echo "unit tests ($BUILD/tests)"
for t in "$BUILD"/tests/test_*; do
    [[ -x $t ]] || continue
    run_one "$(basename "$t")" "$t"
done

if compgen -G "tests/integration/*.sh" >/dev/null; then
    echo "integration tests"
    for t in tests/integration/*.sh; do
        run_one "$(basename "$t" .sh)" bash "$t"
    done
fi

if compgen -G "tests/py/test_*.py" >/dev/null; then
    echo "python tests (parity with PyTorch, fixtures)"
    for t in tests/py/test_*.py; do
        run_one "$(basename "$t" .py)" "$PY" "$t"
    done
fi

echo "passed $pass, failed $fail, skipped $skip in $(($(date +%s) - t0)) s"
if [[ $fail -gt 0 ]]; then
    printf 'failed: %s\n' "${failed[*]}"
    exit 1
fi
