#!/usr/bin/env bash
# search_daemon.sh - nader-coordinator runs the search of its
# configuration: a head node with a worker that joins from outside.
# SIGTERM in the middle stops the search first and the daemon after it,
# promptly; started again, the daemon resumes the search, finishes it
# and writes its results folder (making its missing parents).  About 25 s.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
PW=$(rt_port)
PS=$(rt_port)
CFG=$RT_DIR/search.yaml
rt_config "$CFG" "$PW" "$PS" \
    "search: {name: daemon, base: $(rt_design), iterations: 3, width: 1}" \
    "train: {screen_epochs: 1, full_fraction: 0, final_seeds: \"\"," \
    "        budget: 20000, cells_per_stage: 1, batch: 64}" \
    "run: {results: $RT_DIR/out/results}" \
    "data: {dir: $RT_DIR/data, generate: synthetic, train_images: 600," \
    "       test_images: 200}"

# The data set, made by a short nader run of the same file (no search
# iterations) under another name and state folder.
"$BIN/nader" run "$CFG" --quiet --set search.iterations=0 \
    --set search.name=warm --set state_dir="$RT_DIR/warm" \
    --set run.results="$RT_DIR/warm-results" \
    >"$RT_DIR/warm.log" 2>&1 || fail "making the data set"

rt_coordinator head "$CFG"
rt_worker w1 --connect "tcp://127.0.0.1:$PW" --device cpu \
    --data "$RT_DIR/data"

# Wait for a design beyond the base, then stop the daemon.
for i in $(seq 1 300); do
    n=$("$BIN/nader" tree "$CFG" --json 2>/dev/null |
        rt_json 'len(j)' 2>/dev/null || echo 0)
    [[ $n -ge 2 ]] && break
    sleep 0.1
done
[[ $n -ge 2 ]] || fail "the search made no design"
t0=$(date +%s.%N)
kill -TERM "$RT_COORD"
wait "$RT_COORD" || fail "the daemon did not stop cleanly"
t1=$(date +%s.%N)
took=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
awk -v t="$took" 'BEGIN { exit !(t < 10) }' ||
    fail "SIGTERM took $took s"
grep -q "interrupted at iteration" "$RT_DIR/head.log" ||
    fail "the search was not stopped first"

# Again: it resumes and finishes.
rt_coordinator head2 "$CFG"
S=$RT_DIR/out/results/daemon/summary.json
for i in $(seq 1 600); do
    [[ -f $S ]] && grep -q '"phase": "done"' "$S" && break
    sleep 0.1
done
grep -q '"phase": "done"' "$S" 2>/dev/null ||
    fail "the resumed search did not finish"
grep -q "resumed at iteration" "$RT_DIR/head2.log" || fail "not resumed"
rt_json 'j["designs"]' <"$S" | grep -qx 4 ||
    fail "4 designs expected: $(cat "$S")"
"$BIN/nader" tree "$CFG" | grep -q "offline edit" || fail "nader tree"
echo "ok: the daemon runs, stops and resumes its search"
