#!/usr/bin/env bash
# train_cli.sh - `nader train` as a user and a script see it: exit codes
# and messages for bad usage, missing or damaged data, invalid designs and
# weights of another width; a short run writing JSON, weights and a
# checkpoint; resuming it; an ImageNet-style design with --stem-scale 4;
# and divergence.  A few seconds.
set -u
cd "$(dirname "$0")/../.."
NADER=${NADER_BIN:-build}/nader
PY=${PYTHON:-/usr/bin/python3}
DESIGN=examples/blocks/resnet_basic.txt
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0

expect_rc() { # WANT CMD...
    local want=$1 rc
    shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
    if [[ $rc -ne $want ]]; then
        echo "FAIL: '$*' exited $rc, wanted $want"
        sed 's/^/  | /' "$tmp/out" "$tmp/err"
        fails=$((fails + 1))
    fi
}

expect_text() { # TEXT: the last command's output contains TEXT
    if ! grep -qF -- "$1" "$tmp/out" "$tmp/err"; then
        echo "FAIL: output lacks '$1'"
        sed 's/^/  | /' "$tmp/out" "$tmp/err"
        fails=$((fails + 1))
    fi
}

# 96 training and 32 test images in the CIFAR-10 layout, with a manifest
data=$tmp/data
mkdir -p "$data"
"$PY" - "$data" <<'EOF'
import json, os, sys
import numpy as np
d = sys.argv[1]
rng = np.random.default_rng(3)
counts = {}
for name, n in [("data_batch_%d.bin" % i, 24 if i < 5 else 0)
                for i in range(1, 6)] + [("test_batch.bin", 32)]:
    rec = rng.integers(0, 256, (n, 3073), dtype=np.uint8)
    rec[:, 0] = rng.integers(0, 10, n)
    rec.tofile(os.path.join(d, name))
    counts[name] = n
json.dump({"records": counts}, open(os.path.join(d, "nader-data.json"), "w"))
EOF
small=(--dataset cifar10 --data "$data" --width 4 --cells 1 --batch 16
       --threads 2)

# usage and input errors: exit 2
expect_rc 2 "$NADER" train
expect_rc 2 "$NADER" train "$DESIGN" --data "$data"
expect_text "--dataset must be"
expect_rc 2 "$NADER" train "$DESIGN" --dataset mnist --data "$data"
expect_rc 2 "$NADER" train "$DESIGN" --dataset cifar10 --data "$tmp/none"
expect_text "no cifar10 files in $tmp/none"
expect_rc 2 "$NADER" train "$DESIGN" "${small[@]}" --epochs zero
expect_text "--epochs wants an integer"
expect_rc 2 "$NADER" train "$tmp/missing.txt" "${small[@]}"
expect_rc 0 "$NADER" train --help
expect_text "--init-weights"

# an invalid design: exit 1 with the error line
printf '##Bad##\n0:input\n1:output\n2:Conv2d(out_channels=C/3,kernel_size=3)\n0->2\n2->1\n' >"$tmp/bad.txt"
expect_rc 1 "$NADER" train "$tmp/bad.txt" "${small[@]}"
expect_text "bad.txt"

# a short run: one line per epoch, the JSON result, weights, checkpoint
expect_rc 0 "$NADER" train "$DESIGN" "${small[@]}" --epochs 3 \
    --json-out "$tmp/r.json" --save-weights "$tmp/w.st" \
    --checkpoint "$tmp/c.ckpt"
expect_text "epoch 3/3"
expect_text "checkpoint after epoch 3"
"$PY" - "$tmp/r.json" <<'EOF' || fails=$((fails + 1))
import json, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok", r
assert r["epochs_done"] == 3 and len(r["epochs"]) == 3, r
assert r["steps"] == 18, r            # 96 images at batch 16, 3 epochs
assert r["width"] == 4 and r["params"] > 0 and r["macs"] > 0, r
assert 0 <= r["final_valid_acc"] <= 100 and r["images_per_s"] > 0, r
assert r["peak_bytes"] > 0 and r["peak_rss_bytes"] > 0, r
EOF

# resuming a finished run reports it without training again
expect_rc 0 "$NADER" train "$DESIGN" "${small[@]}" --epochs 3 \
    --resume "$tmp/c.ckpt" --json-out "$tmp/r2.json"
"$PY" -c "
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a['epochs'] == b['epochs'] and a['steps'] == b['steps'], (a, b)
" "$tmp/r.json" "$tmp/r2.json" || fails=$((fails + 1))

# ... and refuses another batch size, naming it
expect_rc 1 "$NADER" train "$DESIGN" "${small[@]}" --epochs 3 --batch 8 \
    --resume "$tmp/c.ckpt"
expect_text "batch 16, this run has batch 8"

# an ImageNet-style design: its stem reduces the input 4 times, which
# only a skeleton with --stem-scale 4 takes
IMNET=tests/blocks/good/imagenet_patchnext.txt
expect_rc 1 "$NADER" train "$IMNET" "${small[@]}" --max-steps 2
expect_text "stem node 1 (output): gets (B,4,8,8), but a stem must return dim channels at the input resolution 32x32 (stem_scale 1), (B,4,32,32)"
expect_rc 2 "$NADER" train "$IMNET" "${small[@]}" --stem-scale 3
expect_text "--stem-scale wants 1, 2, 4 or 8"
expect_rc 0 "$NADER" train "$IMNET" "${small[@]}" --stem-scale 4 \
    --max-steps 2 --json-out "$tmp/s.json"
expect_rc 0 "$NADER" train "$IMNET" "${small[@]}" --stem-scale 4 \
    --epochs 1 --checkpoint "$tmp/s.ckpt"
expect_rc 0 "$NADER" train "$IMNET" "${small[@]}" --stem-scale 4 \
    --epochs 1 --resume "$tmp/s.ckpt"
"$PY" - "$tmp/s.json" "$tmp/s.ckpt" <<'EOF' || fails=$((fails + 1))
import json, struct, sys
r = json.load(open(sys.argv[1]))
assert r["status"] == "ok" and r["steps"] == 2 and r["width"] == 4, r
with open(sys.argv[2], "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    meta = json.loads(f.read(n))["__metadata__"]
assert meta["stem_scale"] == "4", meta
EOF

# weights of another width
expect_rc 1 "$NADER" train "$DESIGN" "${small[@]}" --width 8 --epochs 1 \
    --init-weights "$tmp/w.st"
expect_text "has shape"

# a damaged data file names itself
cp -r "$data" "$tmp/cut"
truncate -s 1000 "$tmp/cut/test_batch.bin"
expect_rc 1 "$NADER" train "$DESIGN" --dataset cifar10 --data "$tmp/cut" \
    --width 4 --cells 1 --epochs 1
expect_text "test_batch.bin: truncated"

# divergence is a result, not a crash
expect_rc 1 "$NADER" train "$DESIGN" "${small[@]}" --epochs 2 --lr 1e12 \
    --json-out "$tmp/d.json"
expect_text "diverged"
grep -q '"status": "diverged"' "$tmp/d.json" || {
    echo "FAIL: diverged run's JSON"
    fails=$((fails + 1))
}

if [[ $fails -gt 0 ]]; then
    echo "$fails failure(s)"
    exit 1
fi
echo "train_cli: all checks passed"
