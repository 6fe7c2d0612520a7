#!/usr/bin/env bash
# runtime_faults.sh - 200 jobs, 4 workers (load-test mode, each job
# "taking" 250 ms, so 12.5 s of work at best), and while jobs remain,
# workers and the coordinator are killed with SIGKILL at random moments
# and restarted.  At the end every job has exactly one result, none is
# lost or duplicated, nothing failed, and `nader status` agrees with an
# audit of the store.  About 25 s.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
PW=$(rt_port)
PS=$(rt_port)
SEED=${FAULT_SEED:-$RANDOM}
RANDOM=$SEED
echo "random seed $SEED (FAULT_SEED=$SEED reproduces the kill pattern)"
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "jobs.max_attempts: 1000"
rt_coordinator coord "$RT_DIR/c.yaml"

EP=tcp://127.0.0.1:$PW
declare -A WPID
start_worker() {
    rt_worker "$1" --connect "$EP" --instant-results-for-load-tests \
        --load-test-job-time 250ms --timeout 1500ms --backoff-max 1s
    WPID[$1]=$RT_LAST
}
for w in w1 w2 w3 w4; do start_worker $w; done

seeds=$(seq -s, 1 200)
"$BIN/nader" submit "$(rt_design)" --state "$RT_STATE" --epochs 1 \
    --seeds "$seeds" --tag faults >/dev/null || fail "submit"

kills_w=0 kills_c=0
end=$((SECONDS + 45))
remaining() {
    "$BIN/nader" results --store "$RT_STATE" --audit 2>/dev/null |
        rt_json '200 - j["jobs_by_state"]["done"]' 2>/dev/null || echo 200
}
while [[ $SECONDS -lt $end && $(remaining) -gt 10 ]]; do
    sleep "0.$((RANDOM % 9 + 1))"
    # a quarter of the kills hit the coordinator, and never fewer than
    # one in four, whatever the random draws
    if [[ $((RANDOM % 4)) -eq 0 || $kills_w -ge $((3 * (kills_c + 1))) ]]; then
        kill -9 "$RT_COORD"
        wait "$RT_COORD" 2>/dev/null
        kills_c=$((kills_c + 1))
        sleep "0.$((RANDOM % 8))"
        rt_coordinator coord "$RT_DIR/c.yaml"
    else
        w=w$((RANDOM % 4 + 1))
        kill -9 "${WPID[$w]}"
        wait "${WPID[$w]}" 2>/dev/null
        kills_w=$((kills_w + 1))
        sleep "0.$((RANDOM % 5))"
        start_worker "$w"
    fi
done
[[ $kills_w -ge 5 && $kills_c -ge 2 ]] ||
    fail "too few kills while jobs ran ($kills_w, $kills_c): too fast?"
echo "killed workers $kills_w times and the coordinator $kills_c times"

# Let it finish: every job done.
for i in $(seq 1 150); do
    done_=$(rt_status 'j["jobs"]["done"]' 2>/dev/null || echo 0)
    [[ $done_ -ge 200 ]] && break
    sleep 0.2
done
[[ $done_ -eq 200 ]] || fail "only $done_ of 200 jobs done"

"$BIN/nader" status --state "$RT_STATE" --json >"$RT_DIR/status.json"
"$BIN/nader" results --store "$RT_STATE" --audit >"$RT_DIR/audit.json" ||
    fail "store audit: $(cat "$RT_DIR/audit.json")"
/usr/bin/python3 - "$RT_DIR/status.json" "$RT_DIR/audit.json" <<'PY' ||
import json, sys
st = json.load(open(sys.argv[1]))
au = json.load(open(sys.argv[2]))
jobs = au["jobs_by_state"]
assert sum(jobs.values()) == 200, ("jobs in store", jobs)
assert jobs["done"] == 200, ("done", jobs)
assert au["results"] == 200, ("results", au["results"])
assert au["finished_without_result"] == 0 and au["results_without_job"] == 0
for k in ("queued", "leased", "running", "done", "failed", "cancelled"):
    assert st["jobs"][k] == jobs[k], (k, st["jobs"][k], jobs[k])
assert st["results"]["total"] == au["results"], "status vs store results"
assert au["counts"]["results"] == au["results"], "counts record"
print("status agrees with the store: 200 jobs, 200 results")
PY
    fail "status and store disagree"

# Every job 1..200 has exactly one result, listed once.
"$BIN/nader" results --state "$RT_STATE" --json --tag faults |
    rt_json 'sorted(r["job"] for r in j["results"]) == list(range(1, 201))' \
    >"$RT_DIR/ids.out"
[[ $(cat "$RT_DIR/ids.out") == True ]] || fail "result ids are not 1..200"
echo "ok: 200 jobs, one result each, through $kills_w worker and" \
    "$kills_c coordinator kills"
