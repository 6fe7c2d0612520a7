#!/usr/bin/env bash
# tests/bench/run.sh [FILTER] - the `make bench` entry point: runs every
# benchmark binary build/bench/bench_* and every benchmark script
# tests/bench/*.py (Debian's /usr/bin/python3) and tests/bench/*.sh.
# Each prints its own figures; FILTER keeps the benchmarks whose name
# contains it.  Timings on a shared machine are noisy: read the ratios.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export BUILD
export NADER_BIN="$PWD/$BUILD"
PY=${PYTHON:-/usr/bin/python3}
filter=${1:-}
failed=()

run_one() {
    local name=$1
    shift
    [[ -n $filter && $name != *"$filter"* ]] && return
    echo "== $name"
    "$@"
    local rc=$?
    if [[ $rc -ne 0 && $rc -ne 77 ]]; then
        failed+=("$name")
        echo "== $name failed (exit $rc)"
    fi
}

for b in "$BUILD"/bench/bench_*; do
    [[ -x $b ]] || continue
    run_one "$(basename "$b")" "$b"
done
for b in tests/bench/*.py; do
    [[ -e $b ]] || continue
    run_one "$(basename "$b" .py)" "$PY" "$b"
done
for b in tests/bench/*.sh; do
    [[ -e $b && $(basename "$b") != run.sh ]] || continue
    run_one "$(basename "$b" .sh)" bash "$b"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
