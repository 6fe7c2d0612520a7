#!/usr/bin/env bash
# tests/gpu/check.sh - the device check of the CUDA backend, in one run.
#
#   bash tests/gpu/check.sh            (OUT=DIR for where results go)
#
# On a machine with an NVIDIA GPU (sized for one H200, under 5 minutes):
#  1. finds nvcc, cuDNN (toolkit, system or the pip wheel PyTorch brings),
#     cuBLAS, libjansson, OpenBLAS and libsodium, and says plainly what
#     is missing; .gpu-deps/*.deb (tests/gpu/fetch-deps.sh, carried
#     along) stand in for the last three, unpacked into a private folder
#     (GPU_CHECK_USE_DEBS=1 uses them even where the system has them);
#  2. builds the engine, the CUDA backend and the check's tools
#     (make engine; the full `make` too when every library is there);
#  3. runs every operation against the CPU backend (cuda_parity) in TF32,
#     strict fp32 and bf16, and the convolutions channels-last in fp32;
#  4. trains resnet_basic at width 16 and at the 1.5 M-parameter budget
#     width (gpu_train): the loss over 20 steps against the CPU backend,
#     then images/s, device memory and achieved FLOP/s and bytes/s
#     against the H200's peaks, in TF32, bf16 and strict fp32, with and
#     without graph replay; every Conv2d of the budget network alone;
#  5. runs `nader train` itself (nader-train) on generated data in the
#     CIFAR-10 layout for 1 and 3 epochs, and estimates the 200-epoch
#     protocol from the difference;
#  6. writes $OUT/check.log, $OUT/results.jsonl (one JSON object per
#     measurement) and $OUT/summary.json, and prints a summary.
# Exit status: 0 when every check passed, 1 when one failed, 2 when the
# machine lacks what the check needs.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
OUT=${OUT:-$ROOT/gpu-check-out}
WORK=${GPU_CHECK_WORK:-$(mktemp -d /tmp/nader-gpu-check.XXXXXX)}
mkdir -p "$OUT" "$WORK"
RES=$OUT/results.jsonl
: >"$RES"
JOBS=$(nproc 2>/dev/null || echo 4)
T0=$(date +%s.%N)
DESIGN=examples/blocks/resnet_basic.txt
H200_TF32=494.7
H200_BF16=989.4
H200_FP32=66.9
H200_GBS=4800
failures=()

elapsed() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", b - a }'; }
section() { printf '\n=== %s  [%s s]\n' "$*" "$(elapsed)"; }
missing() { echo "check: MISSING: $*"; }

# stage NAME CRITICAL TIMEOUT CMD...: run, time, record; 77 is a skip.
stage() {
    local name=$1 crit=$2 limit=$3 t rc
    shift 3
    t=$(date +%s.%N)
    timeout "$limit" "$@"
    rc=$?
    t=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
    [[ $rc -eq 124 ]] && echo "check: $name ran past its ${limit} s limit"
    printf '{"kind": "stage", "name": "%s", "rc": %d, "seconds": %s}\n' \
        "$name" "$rc" "$t" >>"$RES"
    printf -- '--- %s: exit %d in %s s\n' "$name" "$rc" "$t"
    if [[ $rc -ne 0 && $crit == 1 ]]; then
        failures+=("$name")
    fi
    return $rc
}

main() {
# ---------------------------------------------------------------- machine
section "machine"
echo "check: $(date -u +%FT%TZ), $(uname -srm), $JOBS CPUs, work in $WORK"
if command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,compute_cap,clocks.sm,clocks.max.sm \
        --format=csv || true
    CC=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' .')
else
    missing "nvidia-smi (no NVIDIA driver?)"
    CC=
fi
NVCC=$(command -v nvcc || true)
[[ -z $NVCC && -x /usr/local/cuda/bin/nvcc ]] && NVCC=/usr/local/cuda/bin/nvcc
if [[ -z $NVCC ]]; then
    missing "nvcc (the CUDA toolkit); the CUDA backend cannot be built"
    return 2
fi
CUDA_HOME=$(dirname "$(dirname "$(readlink -f "$NVCC")")")
"$NVCC" --version | tail -n 2
export PATH=$(dirname "$NVCC"):$PATH

# ------------------------------------------------------------ libraries
section "libraries"
LINKS=$WORK/links
mkdir -p "$LINKS/lib"
LIBPATHS=()

# Unversioned links (libX.so) to every libX.so* in dir, in $LINKS/lib.
link_libs() {
    local dir=$1 base=$2 f
    for f in "$dir"/"$base".so*; do
        [[ -e $f ]] && ln -sf "$f" "$LINKS/lib/$(basename "$f")"
    done
    if [[ ! -e $LINKS/lib/$base.so ]]; then
        f=$(ls "$dir"/"$base".so.* 2>/dev/null | head -n1)
        [[ -n $f ]] && ln -sf "$f" "$LINKS/lib/$base.so"
    fi
    LIBPATHS+=("$dir")
}

PYSITE=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)

# cuDNN: the toolkit, the system, or PyTorch's wheel.
CUDNN_ARG=()
cudnn_inc= cudnn_lib=
for d in ${CUDNN_HOME:-} "$CUDA_HOME" /usr /usr/local; do
    for i in "$d/include" "$d/include/x86_64-linux-gnu"; do
        [[ -f $i/cudnn.h ]] || continue
        for l in "$d/lib64" "$d/lib" "$d/lib/x86_64-linux-gnu"; do
            if ls "$l"/libcudnn.so* >/dev/null 2>&1; then
                cudnn_inc=$i cudnn_lib=$l
                break 3
            fi
        done
    done
done
if [[ -z $cudnn_inc && -n $PYSITE && -f $PYSITE/nvidia/cudnn/include/cudnn.h ]]; then
    cudnn_inc=$PYSITE/nvidia/cudnn/include cudnn_lib=$PYSITE/nvidia/cudnn/lib
fi
if [[ -z $cudnn_inc ]]; then
    missing "cuDNN 9 (cudnn.h and libcudnn.so): not in $CUDA_HOME, /usr, nor a pip nvidia-cudnn wheel"
    return 2
fi
grep -h -E '#define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ' "$cudnn_inc"/cudnn_version*.h | head -n 3 |
    awk '{ printf "%s%s", (NR > 1 ? "." : "cuDNN "), $3 } END { print "" }'
echo "cuDNN headers $cudnn_inc, libraries $cudnn_lib"
if [[ $cudnn_inc != "$CUDA_HOME/include" || ! -e $CUDA_HOME/lib64/libcudnn.so ]]; then
    mkdir -p "$LINKS/cudnn"
    ln -sfn "$cudnn_inc" "$LINKS/cudnn/include"
    mkdir -p "$LINKS/cudnn/lib"
    for f in "$cudnn_lib"/libcudnn*.so*; do ln -sf "$f" "$LINKS/cudnn/lib/"; done
    [[ -e $LINKS/cudnn/lib/libcudnn.so ]] ||
        ln -sf "$(ls "$cudnn_lib"/libcudnn.so.* | head -n1)" "$LINKS/cudnn/lib/libcudnn.so"
    CUDNN_ARG=(CUDNN_HOME="$LINKS/cudnn")
    LIBPATHS+=("$cudnn_lib")
fi

# cuBLAS and the runtime: the toolkit's, else the wheels'.
for lib in libcublas libcublasLt libcudart; do
    if ! ls "$CUDA_HOME"/lib64/$lib.so >/dev/null 2>&1; then
        d=$(find "${PYSITE:-/nonexistent}/nvidia" -name "$lib.so*" -printf '%h\n' 2>/dev/null | head -n1)
        if [[ -z $d ]]; then
            missing "$lib.so (CUDA toolkit library): not in $CUDA_HOME/lib64 nor a pip wheel"
            return 2
        fi
        echo "$lib from $d"
        link_libs "$d" "$lib"
    fi
done

# libjansson, OpenBLAS and libsodium: the system's, else the carried
# packages.
ENGINE_CFLAGS= ENGINE_LIBS=
need_debs=0
for p in jansson openblas libsodium; do
    if [[ -z ${GPU_CHECK_USE_DEBS:-} ]] && pkg-config --exists $p 2>/dev/null; then
        ENGINE_CFLAGS+=" $(pkg-config --cflags $p)"
        ENGINE_LIBS+=" $(pkg-config --libs $p)"
        echo "$p: system ($(pkg-config --modversion $p))"
    else
        need_debs=1
    fi
done
if [[ $need_debs == 1 ]]; then
    if ! ls .gpu-deps/*.deb >/dev/null 2>&1; then
        missing "libjansson, OpenBLAS or libsodium (no pkg-config entry) and no .gpu-deps/*.deb;" \
            "run tests/gpu/fetch-deps.sh on a machine with apt and carry .gpu-deps"
        return 2
    fi
    DEPS=$WORK/deps
    mkdir -p "$DEPS"
    for f in .gpu-deps/*.deb; do
        if command -v dpkg-deb >/dev/null; then
            dpkg-deb -x "$f" "$DEPS"
        else
            (t=$(mktemp -d) && cd "$t" && ar x "$ROOT/$f" && tar -xf data.tar.* -C "$DEPS" && rm -rf "$t")
        fi
    done
    ML=$DEPS/usr/lib/x86_64-linux-gnu
    ENGINE_CFLAGS="-I$DEPS/usr/include -I$DEPS/usr/include/x86_64-linux-gnu/openblas-pthread"
    ENGINE_LIBS="-L$ML -L$ML/openblas-pthread -ljansson -lopenblas -lsodium -Wl,-rpath,$ML -Wl,-rpath,$ML/openblas-pthread"
    LIBPATHS+=("$ML" "$ML/openblas-pthread")
    echo "libjansson, OpenBLAS and libsodium: from .gpu-deps, unpacked in $DEPS"
fi
export LIBRARY_PATH=$LINKS/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
LD=$LINKS/lib
for d in "${LIBPATHS[@]}"; do LD+=:$d; done
export LD_LIBRARY_PATH=$LD${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# ---------------------------------------------------------------- build
section "build"
ARCH=()
if [[ -n $CC ]]; then
    ARCH=(CUDA_ARCH="-gencode arch=compute_$CC,code=sm_$CC")
fi
stage build 1 240 make -j"$JOBS" engine "${ARCH[@]}" "${CUDNN_ARG[@]}" \
    ENGINE_CFLAGS="$ENGINE_CFLAGS" ENGINE_LIBS="$ENGINE_LIBS" || {
    echo "check: the engine did not build; nothing else can run"
    return 1
}
if pkg-config --exists libzmq libczmq libprotobuf-c lmdb jansson yaml-0.1 libcurl libsodium openblas cmocka 2>/dev/null; then
    stage build-full 0 240 make -j"$JOBS" "${ARCH[@]}" "${CUDNN_ARG[@]}"
else
    echo "check: the full build (make) is skipped: this machine lacks some of ZeroMQ, CZMQ," \
        "protobuf-c, LMDB, libyaml, libcurl, libsodium, cmocka (the daemons' libraries)"
fi
B=$ROOT/build-engine
if ! "$B/cuda_parity" --device cuda:0 --filter relu >/dev/null; then
    echo "check: no usable CUDA device:"
    "$B/cuda_parity" --device cuda:0 --filter relu
    return 2
fi

# --------------------------------------------------------------- parity
section "operations against the CPU backend"
for p in fp32 strict bf16; do
    stage "parity-$p" 1 120 "$B/cuda_parity" --precision $p --json "$WORK/parity-$p.json"
done
stage parity-nhwc-fp32 1 120 env NADER_CUDA_CONV=nhwc "$B/cuda_parity" --precision fp32 \
    --filter conv --json "$WORK/parity-nhwc.json"

# ---------------------------------------------------------------- train
section "training resnet_basic"
peak() { case $1 in bf16) echo $H200_BF16 ;; strict) echo $H200_FP32 ;; *) echo $H200_TF32 ;; esac; }
for w in 16 budget; do
    wa=()
    [[ $w != budget ]] && wa=(--width "$w")
    for p in fp32 bf16 strict; do
        stage "train-w$w-$p" 1 200 "$B/gpu_train" run --design $DESIGN "${wa[@]}" \
            --batch 256 --steps 20 --warmup 60 --precision $p --cpu-ref \
            --cpu-ref-file "$WORK/cpu-w$w.txt" --eval --peak-tflops "$(peak $p)" \
            --peak-gbs $H200_GBS --label "w$w-$p" --json "$RES"
    done
    stage "train-w$w-fp32-nocapture" 0 120 "$B/gpu_train" run --design $DESIGN "${wa[@]}" \
        --batch 256 --steps 2 --warmup 60 --precision fp32 --no-capture \
        --peak-tflops $H200_TF32 --peak-gbs $H200_GBS --label "w$w-fp32-nocapture" --json "$RES"
    stage "train-w$w-fp32-nhwc" 0 120 env NADER_CUDA_CONV=nhwc "$B/gpu_train" run --design $DESIGN \
        "${wa[@]}" --batch 256 --steps 2 --warmup 60 --precision fp32 \
        --peak-tflops $H200_TF32 --peak-gbs $H200_GBS --label "w$w-fp32-nhwc" --json "$RES"
done
for p in fp32 bf16; do
    stage "convs-$p" 0 120 "$B/gpu_train" convs --design $DESIGN --batch 256 --precision $p \
        --peak-tflops "$(peak $p)" --peak-gbs $H200_GBS --label "budget-$p" --json "$RES"
done

# ---------------------------------------------------------- nader train
section "nader train on data in the CIFAR-10 layout"
if [[ -x $B/nader-train ]]; then
    stage data 1 60 "$B/gpu_train" data "$WORK/data"
    for p in bf16 fp32; do
        for e in 1 3; do
            t=$(date +%s.%N)
            stage "nader-train-$p-e$e" 1 150 "$B/nader-train" $DESIGN --dataset cifar10 \
                --data "$WORK/data" --epochs $e --device cuda:0 --precision $p \
                --json-out "$WORK/nt-$p-e$e.json"
            t=$(awk -v a="$t" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
            printf '{"kind": "nader-train", "precision": "%s", "epochs": %d, "wall_s": %s}\n' \
                $p $e "$t" >>"$RES"
        done
    done
else
    echo "check: nader-train was not built (cli/cmd_train.c is not in this tree yet);" \
        "the 200-epoch estimate comes from gpu_train's timed steps only"
fi

# -------------------------------------------------------------- summary
section "summary"
for p in fp32 strict bf16 nhwc; do
    [[ -f $WORK/parity-$p.json ]] && cp "$WORK/parity-$p.json" "$OUT/parity-$p.json"
done
if command -v python3 >/dev/null; then
    python3 tests/gpu/summary.py "$OUT" "$WORK" "${failures[@]}" || failures+=(summary)
else
    missing "python3: no summary.json (the figures are in results.jsonl and check.log)"
fi
echo "check: finished in $(elapsed) s"
if [[ ${#failures[@]} -gt 0 ]]; then
    echo "check: FAILED: ${failures[*]}"
    return 1
fi
echo "check: passed"
return 0
}

main 2>&1 | tee "$OUT/check.log"
exit "${PIPESTATUS[0]}"
