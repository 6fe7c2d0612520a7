#!/usr/bin/env bash
# tests/bench/run.sh [FILTER] - run the benchmarks; each prints its figures.
#
# C benchmarks are the binaries $BUILD/bench/bench_*; Python ones are
# tests/bench/bench_*.py, run with Debian's /usr/bin/python3.  FILTER keeps
# the benchmarks whose name contains it.  Figures taken while other work
# shares the machine are noisy: read them as such.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
export NADER_BIN="$PWD/$BUILD"
PY=${PYTHON:-/usr/bin/python3}
filter=${1:-}
status=0

for b in "$BUILD"/bench/bench_* tests/bench/bench_*.py; do
    [[ -e $b ]] || continue
    name=$(basename "$b")
    [[ -n $filter && $name != *"$filter"* ]] && continue
    echo "== $name"
    if [[ $b == *.py ]]; then
        "$PY" "$b" || status=1
    else
        "$b" || status=1
    fi
done
exit $status
