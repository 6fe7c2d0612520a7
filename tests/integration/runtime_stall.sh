#!/usr/bin/env bash
# runtime_stall.sh - a trainer that stops making steps is found and
# killed.  One CPU worker with a 3 s stall timeout trains a real job
# (checkpoint every epoch); once it is past its first epoch its trainer
# process is frozen with SIGSTOP, as a trainer stuck in a kernel would
# be.  The worker must kill it, report the attempt failed with the
# reason, and take the retry, which resumes from the checkpoint and
# finishes, untouched by the stall watch.  About 5 s on 2 cores.
source "$(dirname "$0")/runtime.bash"

RT_STATE=$RT_DIR/state
DATA=$RT_DIR/data
DESIGN=$(dirname "$0")/data/tiny.txt
/usr/bin/python3 "$(dirname "$0")/../py/fixtures/make_colours.py" "$DATA" ||
    fail "making the data set"
PW=$(rt_port)
PS=$(rt_port)
rt_config "$RT_DIR/c.yaml" "$PW" "$PS" "jobs.checkpoint_every: 1" \
    "jobs.max_attempts: 2"
rt_coordinator coord "$RT_DIR/c.yaml"
rt_worker w1 --connect "tcp://127.0.0.1:$PW" --device cpu --data "$DATA" \
    --threads 1 --scratch "$RT_DIR/scratch" --stall-timeout 3s
WPID=$RT_LAST

"$BIN/nader" submit "$DESIGN" --state "$RT_STATE" --dataset cifar10 \
    --epochs 6 --width 8 --cells 1 --batch 16 --seeds 1 --tag stall \
    >"$RT_DIR/submit.out" || fail "submit: $(cat "$RT_DIR/submit.out")"

# Wait for the first checkpoint, then freeze the trainer.
for i in $(seq 1 300); do
    compgen -G "$RT_DIR/scratch/*/checkpoint.ckpt" >/dev/null && break
    sleep 0.1
done
compgen -G "$RT_DIR/scratch/*/checkpoint.ckpt" >/dev/null ||
    fail "no checkpoint after 30 s"
TPID=$(pgrep -P "$WPID" -f -- '--trainer-fd' | head -n 1)
[[ -n $TPID ]] || fail "no trainer process under the worker"
kill -STOP "$TPID"
echo "froze trainer $TPID"

# The worker kills it within the stall timeout (and a poll or two).
for i in $(seq 1 100); do
    kill -0 "$TPID" 2>/dev/null || break
    sleep 0.1
done
kill -0 "$TPID" 2>/dev/null && fail "frozen trainer $TPID still alive after 10 s"
grep -q "finished no step for 3 s; killing it" "$RT_DIR/w1.log" ||
    fail "no stall message in the worker's log"

rt_wait_results 1 60
"$BIN/nader" results --state "$RT_STATE" --json --epochs >"$RT_DIR/r.json"
/usr/bin/python3 - "$RT_DIR/r.json" <<'PY' || fail "results: $(cat "$RT_DIR/r.json")"
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
assert len(rs) == 1, rs
r = rs[0]
assert r["status"] == "ok", r
assert r["attempt"] == 2, ("the retry should have finished the job", r)
assert r["epochs_done"] == 6 and len(r["per_epoch"]) == 6, r
print("job finished on attempt 2 after the stall, %d epochs, %.1f%%" %
      (r["epochs_done"], r["final_valid_acc"]))
PY
grep -q "trainer stalled: no training step for 3 s" "$RT_DIR/coord.log" ||
    fail "the coordinator did not get the stall as the failure's reason"
grep -q "resuming from a checkpoint" "$RT_DIR/w1.log" ||
    fail "the retry did not resume from the checkpoint"
# Only one stall: the healthy retry was left alone.
[[ $(grep -c "killing it" "$RT_DIR/w1.log") -eq 1 ]] ||
    fail "more than one trainer killed"
echo "ok: a frozen trainer was killed, reported and retried"
