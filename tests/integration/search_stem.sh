#!/usr/bin/env bash
# search_stem.sh - a search over ImageNet-style designs, whose stem
# reduces the input 4 times: with train.stem_scale 4 `nader run` (offline
# designer, one CPU worker) screens the base and its edits, every job
# trains at that scale, the results folder records it, and `nader export
# --best` rebuilds the trained network from the folder and from the
# store.  At the default scale the same base is refused with the rule-6
# line.  About 10 s.
set -u
cd "$(dirname "$0")/../.."
BIN=${NADER_BIN:-$PWD/build}
N=$BIN/nader
PY=${PYTHON:-/usr/bin/python3}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() {
    echo "FAIL: $*"
    exit 1
}

cat >"$T/imnet.yaml" <<EOF
state_dir: $T/state
log:
  level: warn
search:
  name: imnet
  base: $PWD/tests/blocks/good/imagenet_basic.txt
  iterations: 2
  width: 1
train:
  screen_epochs: 1
  full_fraction: 0
  final_seeds: ""
  budget: 20000
  cells_per_stage: 1
  batch: 64
  stem_scale: 4
run:
  results: $T/results
data:
  dir: $T/data
  generate: synthetic
  train_images: 400
  test_images: 100
EOF

# The default scale refuses the base, saying what the stem must return.
"$N" run "$T/imnet.yaml" --quiet --set train.stem_scale=1 >"$T/one.log" 2>&1 &&
    fail "stem_scale 1 took an ImageNet-style base"
grep -q "stem node 1 (output): gets (B,[0-9]*,8,8), but a stem must return dim channels at the input resolution 32x32 (stem_scale 1)" \
    "$T/one.log" || fail "no rule-6 line: $(cat "$T/one.log")"
"$N" run "$T/imnet.yaml" --quiet --set train.stem_scale=3 >"$T/three.log" 2>&1 &&
    fail "stem_scale 3 accepted"
grep -q "train.stem_scale" "$T/three.log" || fail "$(cat "$T/three.log")"

"$N" run "$T/imnet.yaml" --quiet >"$T/run.log" 2>&1 ||
    fail "nader run: $(tail -20 "$T/run.log")"
S=$T/results/imnet/summary.json
"$PY" - "$S" <<'PY' || fail "summary: $(cat "$S")"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["stem_scale"] == 4 and s["phase"] == "done", s
assert s["designs"] >= 2 and s["best"], s
PY
"$N" results --store "$T/state" --json >"$T/r.json" ||
    fail "nader results"
"$PY" - "$T/r.json" <<'PY' || fail "results: $(cat "$T/r.json")"
import json, sys
rs = json.load(open(sys.argv[1]))["results"]
assert len(rs) >= 2, rs
assert all(r["status"] == "ok" for r in rs), rs
PY

# The best design, exported from the results folder (which names the
# scale) and from the store (whose job recipes carry it), is the network
# that was trained.
"$N" export --best "$T/results/imnet" -o "$T/a.py" --format json ||
    fail "export --best (folder)"
"$N" export --best "$T/state" -o "$T/b.py" --format json ||
    fail "export --best (store)"
"$PY" - "$T/a.py" "$T/b.py" "$T/r.json" <<'PY' || fail "exports differ"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
rs = json.load(open(sys.argv[3]))["results"]
assert a["stem_scale"] == 4 and b["stem_scale"] == 4, (a, b)
assert a["params"] == b["params"] and a["design"] == b["design"], (a, b)
assert a["params"] in [r["params"] for r in rs], a["params"]
stem = [n for n in a["nodes"] if n["name"].startswith("stem.")][-1]
assert stem["shape"][2:] == [8, 8], stem
PY
echo "ok: a search over ImageNet-style designs at stem_scale 4"
