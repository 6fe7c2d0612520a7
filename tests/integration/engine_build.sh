#!/usr/bin/env bash
# engine_build.sh - `make engine`, the build the GPU device check uses
# (against libjansson, OpenBLAS and libsodium only), builds and its
# nader-train trains, here without CUDA (NO_CUDA=1: the CUDA files are
# built by every `make`).  A GPU session gets minutes, not time to find a
# link error.  About 40 s on 2 cores.
set -u
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

make -s -j2 engine NO_CUDA=1 ENGINE_BUILD="$tmp/be" >"$tmp/make.log" 2>&1 ||
    fail "make engine: $(tail -n 20 "$tmp/make.log")"
for t in nader-train cuda_parity gpu_train; do
    [[ -x $tmp/be/$t ]] || fail "make engine did not build $t"
done
/usr/bin/python3 tests/py/fixtures/make_colours.py "$tmp/data" >/dev/null ||
    fail "making the data set"
"$tmp/be/nader-train" tests/integration/data/tiny.txt --dataset cifar10 \
    --data "$tmp/data" --width 4 --cells 1 --batch 16 --epochs 1 \
    --max-steps 3 --quiet --json-out "$tmp/r.json" >"$tmp/train.out" 2>&1 ||
    fail "nader-train: $(cat "$tmp/train.out")"
grep -q '"status": "ok"' "$tmp/r.json" ||
    fail "no result from nader-train: $(head -c 400 "$tmp/r.json")"
"$tmp/be/cuda_parity" --device cpu >"$tmp/parity.out" 2>&1 ||
    fail "cuda_parity --device cpu: $(tail -n 5 "$tmp/parity.out")"
echo "ok: make engine builds, and its nader-train and cuda_parity run"
