#!/usr/bin/env bash
# fuzz_graph_short.sh - a bounded libFuzzer run of the block reader
# (tests/fuzz/fuzz_graph.c) from the seeds in tests/fuzz/seeds: 20 s of
# fuzzing after a build of about 10 s.  Skipped (77) where clang or its
# libFuzzer runtime is missing.  `make fuzz` runs the same target longer.
set -u
cd "$(dirname "$0")/../.."
BUILD=${BUILD:-build}
SECONDS_TO_FUZZ=${FUZZ_SHORT_SECONDS:-20}

if ! command -v clang >/dev/null; then
    echo "skip: clang is not installed (apt-get install clang)"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n)\n'\
'{ (void)d; (void)n; return 0; }\n' >"$tmp/probe.c"
if ! clang -fsanitize=fuzzer "$tmp/probe.c" -o "$tmp/probe" 2>/dev/null; then
    echo "skip: clang has no libFuzzer runtime (apt-get install" \
         "libclang-rt-14-dev)"
    exit 77
fi

make --no-print-directory BUILD="$BUILD" "$BUILD/fuzz/fuzz_graph" || exit 1
mkdir -p "$tmp/corpus"
"$BUILD/fuzz/fuzz_graph" -max_total_time="$SECONDS_TO_FUZZ" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 "$tmp/corpus" tests/fuzz/seeds \
    >"$tmp/log" 2>&1
rc=$?
grep -E '^(Done|stat::number_of_executed_units|stat::peak_rss_mb)' \
    "$tmp/log"
if [[ $rc -ne 0 ]]; then
    tail -n 40 "$tmp/log"
    echo "fuzz_graph failed (exit $rc)"
    exit 1
fi
