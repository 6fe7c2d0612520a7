#!/usr/bin/env bash
# gpu_train_cpu.sh - the device check's training driver (tools/gpu_train)
# on the CPU backend, so that it keeps working where no GPU is: a tiny
# resnet_basic trained a few steps twice must give the same losses, and
# the data generator must write files of the CIFAR-10 layout's sizes.
set -u
cd "$(dirname "$0")/../.."
tool=${NADER_BIN:-build}/tools/gpu_train
[[ -x $tool ]] || tool=build/tools/gpu_train
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

"$tool" run --design examples/blocks/resnet_basic.txt --width 4 --batch 8 \
    --steps 3 --warmup 2 --device cpu --cpu-ref --cpu-threads 1 \
    --cpu-ref-file "$tmp/cpu.txt" --json "$tmp/r.jsonl" --label cpu || exit 1
[[ $(wc -l <"$tmp/cpu.txt") -eq 3 ]] || { echo "no CPU trajectory file"; exit 1; }
grep -q '"traj_worst_rel": 0.0000e+00' "$tmp/r.jsonl" ||
    { echo "the same steps twice on the CPU differ:"; cat "$tmp/r.jsonl"; exit 1; }

"$tool" data "$tmp/data" || exit 1
for f in data_batch_1 data_batch_2 data_batch_3 data_batch_4 data_batch_5 test_batch; do
    s=$(stat -c %s "$tmp/data/cifar-10-batches-bin/$f.bin")
    [[ $s -eq 30730000 ]] || { echo "$f.bin has $s bytes"; exit 1; }
done
echo "gpu_train on the CPU: ok"
