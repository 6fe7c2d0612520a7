#!/usr/bin/env bash
# runtime_train.sh - a coordinator and three CPU workers train 30 small
# jobs for real (a tiny network on a generated data set in the CIFAR-10
# layout); a fourth worker joins half-way and takes work.  Every result
# is a finished training run well above chance, and three of them (one
# from the late worker) match, epoch by epoch, the same training run
# in one process (tools/nader_train_ref): the distributed path changes
# nothing.  Then an ImageNet-style design is refused at stem_scale 1 and
# trained at stem_scale 4.  About 40 s on 2 cores.
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
for w in w1 w2 w3; do
    rt_worker $w --connect "$EP" --device cpu --data "$DATA" --threads 1 \
        --scratch "$RT_DIR/scratch-$w"
done
"$BIN/nader" submit "$DESIGN" --state "$RT_STATE" --dataset cifar10 \
    --epochs 2 --width 8 --cells 1 --batch 16 --seeds "$(seq -s, 1 30)" \
    --tag train >"$RT_DIR/submit.out" || fail "submit: $(cat \
    "$RT_DIR/submit.out")"
grep -q "jobs 1 2 3" "$RT_DIR/submit.out" || fail "$(cat "$RT_DIR/submit.out")"

rt_wait_results 15 120
rt_worker w4 --connect "$EP" --device cpu --data "$DATA" --threads 1 \
    --scratch "$RT_DIR/scratch-w4"
rt_wait_results 30 120

"$BIN/nader" results --state "$RT_STATE" --json --epochs >"$RT_DIR/r.json"
/usr/bin/python3 - "$RT_DIR/r.json" >"$RT_DIR/check.out" <<'PY' ||
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
assert len(rs) == 30, len(rs)
assert sorted(r["seed"] for r in rs) == list(range(1, 31))
for r in rs:
    assert r["status"] == "ok", r
    assert not r["load_test"], r
    assert r["epochs_done"] == 2 and len(r["per_epoch"]) == 2, r
    assert r["width"] == 8, r
    assert r["final_valid_acc"] > 10, ("at chance (10%)", r)
late = [r for r in rs if r["worker"] == "w4"]
assert late, "the late worker took no job"
# Two epochs leave single runs anywhere from 20% to 80%; the mean over
# the 30 seeds is what shows that training learns (about 55%).
mean = sum(r["final_valid_acc"] for r in rs) / 30
assert mean > 40, ("mean validation accuracy near chance", mean)
print("mean validation accuracy %.1f%%; w4 ran %d jobs; seeds to check: "
      "1 2 %d" % (mean, len(late), late[0]["seed"]))
PY
    fail "results: $(cat "$RT_DIR/check.out")"
cat "$RT_DIR/check.out"

# The same training runs in one process give the very same figures.
for seed in 1 2 $(awk '{print $NF}' "$RT_DIR/check.out"); do
    "$BIN/tools/nader_train_ref" "$DESIGN" --dataset cifar10 --data "$DATA" \
        --epochs 2 --width 8 --cells 1 --batch 16 --seed "$seed" \
        --threads 1 >"$RT_DIR/ref-$seed.json" || fail "reference $seed"
    /usr/bin/python3 - "$RT_DIR/r.json" "$RT_DIR/ref-$seed.json" "$seed" \
        <<'PY' || fail "seed $seed differs from the reference"
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
ref = json.load(open(sys.argv[2]))
r = [r for r in rs if r["seed"] == int(sys.argv[3])][0]
got = [(e["valid_acc"], e["train_loss"]) for e in r["per_epoch"]]
want = [(e["valid_acc"], e["train_loss"]) for e in ref["epochs"]]
assert got == want, (got, want)
assert r["params"] == ref["params"] and r["width"] == ref["width"]
PY
done
# A job whose skeleton's stem reduces the input 4 times (an ImageNet-style
# design): the recipe carries stem_scale to the worker, which trains the
# network the coordinator measured.
IMNET=$(dirname "$0")/../blocks/good/imagenet_basic.txt
"$BIN/nader" submit "$IMNET" --state "$RT_STATE" --dataset cifar10 \
    --epochs 1 --width 8 --cells 1 --batch 16 --seeds 3 --tag imagenet \
    >"$RT_DIR/submit4.out" 2>&1 && fail "stem_scale 1 took a 4x stem"
grep -q "stem node 1 (output): gets (B,8,8,8), but a stem must return dim channels at the input resolution 32x32 (stem_scale 1), (B,8,32,32)" \
    "$RT_DIR/submit4.out" || fail "no rule-6 line: $(cat "$RT_DIR/submit4.out")"
"$BIN/nader" submit "$IMNET" --state "$RT_STATE" --dataset cifar10 \
    --epochs 1 --width 8 --cells 1 --batch 16 --seeds 3 --tag imagenet \
    --stem-scale 4 --json >"$RT_DIR/submit4.json" 2>&1 ||
    fail "submit --stem-scale 4: $(cat "$RT_DIR/submit4.json")"
rt_wait_results 31 60
"$BIN/nader" results --state "$RT_STATE" --json --tag imagenet \
    >"$RT_DIR/r4.json"
/usr/bin/python3 - "$RT_DIR/r4.json" "$RT_DIR/submit4.json" <<'PY' ||
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
c = json.load(open(sys.argv[2]))
assert len(rs) == 1, rs
r = rs[0]
assert r["status"] == "ok" and r["epochs_done"] == 1, r
assert r["params"] == c["params"] and r["width"] == 8, (r, c["params"])
PY
    fail "the stem_scale 4 job: $(cat "$RT_DIR/r4.json")"
echo "ok: 30 jobs trained on 4 workers, matching local training; an" \
    "ImageNet-style design trained at stem_scale 4"
