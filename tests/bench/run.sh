#!/usr/bin/env bash
# tests/bench/run.sh [FILTER] - run every benchmark in $BUILD/bench (they
# print their own figures).  FILTER keeps those whose name contains it.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
filter=${1:-}
rc=0
for b in "$BUILD"/bench/bench_*; do
    [[ -x $b ]] || continue
    name=$(basename "$b")
    [[ -n $filter && $name != *"$filter"* ]] && continue
    echo "== $name"
    "$b" || rc=1
done
exit $rc
