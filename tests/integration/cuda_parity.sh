#!/usr/bin/env bash
# cuda_parity.sh - every operation on a CUDA device against the CPU
# backend (build/tools/cuda_parity), in TF32, strict fp32 and bf16.
# Skips (exit 77, one line saying why) without a device or without CUDA
# in the build; first checks the harness itself on the CPU (a few seconds).
set -u
cd "$(dirname "$0")/../.."
tool=${NADER_BIN:-build}/tools/cuda_parity
[[ -x $tool ]] || tool=build/tools/cuda_parity

"$tool" --device cpu || { echo "cuda_parity: the harness fails on the CPU"; exit 1; }
rc=0
for p in fp32 strict bf16; do
    "$tool" --precision $p
    r=$?
    if [[ $r -eq 77 ]]; then
        exit 77
    fi
    [[ $r -ne 0 ]] && rc=1
done
exit $rc
