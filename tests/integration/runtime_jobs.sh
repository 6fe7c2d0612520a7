#!/usr/bin/env bash
# runtime_jobs.sh - the life of real training jobs through faults:
#  - a worker killed after a checkpoint: the job resumes from it on
#    another worker and ends exactly as an uninterrupted run;
#  - cancel: the trainer is stopped, the worker carries on;
#  - a trainer that crashes: a failed attempt with the reason, then a
#    retry that succeeds;
#  - divergence: a final failure, not retried.
# About 40 s on 2 cores.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
DATA=$RT_DIR/data
DESIGN=$(dirname "$0")/data/tiny.txt
/usr/bin/python3 "$(dirname "$0")/../py/fixtures/make_colours.py" "$DATA" ||
    fail "making the data set"
PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "jobs.checkpoint_every: 1"
rt_coordinator coord "$RT_DIR/c.yaml"
EP=tcp://127.0.0.1:$PW
ADMIN=ipc://$RT_STATE/admin.sock
job() {  # job ID EXPR: a field of the job record (or its result)
    "$BIN/tools/nader_peer" status "$ADMIN" "{\"op\":\"job\",\"id\":$1}" |
        rt_json "$2"
}
wait_job() {  # wait_job ID EXPR SECONDS: until EXPR is true
    local i
    for i in $(seq 1 $(($3 * 10))); do
        [[ $(job "$1" "$2" 2>/dev/null) == True ]] && return 0
        sleep 0.1
    done
    fail "job $1: '$2' not true after $3 s: $(job "$1" 'j')"
}
submit() {
    "$BIN/nader" submit "$DESIGN" --state "$RT_STATE" --width 8 --cells 1 \
        --batch 16 "$@" >>"$RT_DIR/submit.out" || fail "submit $*"
}
TRAIN="--device cpu --data $DATA --threads 1"

# 1. Checkpoint and resume elsewhere.
rt_worker a --connect "$EP" $TRAIN --scratch "$RT_DIR/scratch-a"
WA=$RT_LAST
submit --epochs 6 --seeds 5
wait_job 1 'j["job"].get("checkpoint_epoch", -1) >= 1' 60
kill -9 "$WA"
wait "$WA" 2>/dev/null
rt_worker b --connect "$EP" $TRAIN --scratch "$RT_DIR/scratch-b"
WB=$RT_LAST
wait_job 1 'j["job"]["state"] == "done"' 90
"$BIN/tools/nader_train_ref" "$DESIGN" --dataset cifar10 --data "$DATA" \
    --epochs 6 --width 8 --cells 1 --batch 16 --seed 5 --threads 1 \
    >"$RT_DIR/ref.json" || fail "reference run"
job 1 'j' >"$RT_DIR/job1.txt"
/usr/bin/python3 - "$ADMIN" "$RT_DIR/ref.json" <<PY || fail "resume: $(cat "$RT_DIR/job1.txt")"
import json, subprocess, sys
out = subprocess.run(["$BIN/tools/nader_peer", "status", sys.argv[1],
                      '{"op":"job","id":1}'], capture_output=True, text=True)
j = json.loads(out.stdout)
r, ref = j["result"], json.load(open(sys.argv[2]))
assert r["worker"] == "b", r["worker"]
assert r.get("resumed_from_epoch", -1) >= 1, r
assert j["job"]["attempts"] == 2, j["job"]
got = [(e["valid_acc"], e["train_loss"]) for e in r["per_epoch"]]
want = [(e["valid_acc"], e["train_loss"]) for e in ref["epochs"]]
assert got == want, ("resumed run differs", got, want)
print("resumed from epoch %d on b, figures identical" %
      r["resumed_from_epoch"])
PY

# 2. Cancel a running job: its trainer goes, the worker stays.
submit --epochs 40 --seeds 6
wait_job 2 'j["job"]["state"] == "running"' 30
"$BIN/nader" cancel 2 --state "$RT_STATE" >/dev/null || fail "cancel"
for i in $(seq 1 50); do
    pgrep -P "$WB" >/dev/null || break
    sleep 0.1
done
pgrep -P "$WB" >/dev/null && fail "the trainer outlived its cancel"
kill -0 "$WB" 2>/dev/null || fail "the worker died with the cancel"
[[ $(job 2 'j["job"]["state"]') == cancelled ]] || fail "job 2 not cancelled"

# 3. A trainer that crashes: a failed attempt, then a retry.
submit --epochs 3 --seeds 7
wait_job 3 'j["job"]["state"] == "running"' 30
pkill -9 -P "$WB" || fail "no trainer to kill"
wait_job 3 'j["job"]["state"] == "done"' 60
[[ $(job 3 'j["job"]["failures"]') == 1 ]] || fail "crash not counted"
grep -q "killed by signal 9" "$RT_DIR/coord.log" ||
    fail "the crash's reason was not reported"
[[ $(job 3 'j["result"]["attempt"]') == 2 ]] || fail "not retried"

# 4. Divergence is final.
submit --epochs 2 --seeds 8 --lr 1e30
wait_job 4 'j["job"]["state"] == "failed"' 60
[[ $(job 4 'j["result"]["status"]') == diverged ]] ||
    fail "job 4: $(job 4 'j["result"]')"
[[ $(job 4 'j["job"]["attempts"]') == 1 ]] || fail "divergence was retried"

"$BIN/nader" results --store "$RT_STATE" --audit >/dev/null ||
    fail "store audit"
echo "ok: resume, cancel, crash and divergence behave"
