#!/usr/bin/env bash
# cuda_library.sh - the CUDA backend is a library opened only by the
# processes that use a GPU: the programs themselves load no CUDA library
# (a CLI command or a CPU training job does not pay for them, and a
# machine without them runs everything on its CPU), `--device cuda:N`
# names the reason when the library cannot be opened, and CPU training
# never opens it.
set -u
cd "$(dirname "$0")/../.."
B=${NADER_BIN:-build}
fail() { echo "FAIL: $*"; exit 1; }

for p in nader nader-worker nader-coordinator; do
    libs=$(ldd "$B/$p") || fail "ldd $p"
    if grep -E -q 'libcud(art|nn)|libcublas' <<<"$libs"; then
        fail "$p links CUDA libraries: $(grep -E 'cud|cublas' <<<"$libs")"
    fi
done
echo "nader, nader-worker and nader-coordinator link no CUDA library"

if [[ ! -e $B/lib/nader-cuda.so ]]; then
    echo "this build has no CUDA backend library; nothing more to check"
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 tests/py/fixtures/make_colours.py "$tmp/data" >/dev/null ||
    fail "making the data set"
design=tests/integration/data/tiny.txt
args=(train "$design" --dataset cifar10 --data "$tmp/data" --width 4
      --cells 1 --batch 16 --epochs 1 --max-steps 2 --quiet)

NADER_CUDA_LIBRARY=/nonexistent/nader-cuda.so "$B/nader" "${args[@]}" \
    --device cuda:0 >"$tmp/bad.out" 2>&1 && fail "cuda:0 with no library ran"
grep -q "the CUDA backend cannot be loaded: /nonexistent/nader-cuda.so" \
    "$tmp/bad.out" || fail "no reason given: $(cat "$tmp/bad.out")"

# The CPU never opens it: a broken library path changes nothing there.
NADER_CUDA_LIBRARY=/nonexistent/nader-cuda.so "$B/nader" "${args[@]}" \
    --device cpu --json-out "$tmp/cpu.json" >"$tmp/cpu.out" 2>&1 ||
    fail "CPU training with no CUDA library: $(cat "$tmp/cpu.out")"

# Found next to the executable: no complaint about loading (the device
# itself may be missing on this machine).
"$B/nader" "${args[@]}" --device cuda:0 >"$tmp/gpu.out" 2>&1
if grep -q "cannot be loaded" "$tmp/gpu.out"; then
    fail "the build's own library was not loaded: $(cat "$tmp/gpu.out")"
fi
echo "ok: the CUDA backend loads only when asked for, with reasons"
