/*
 * cuda_reduce.cuh - one reduction engine for every reduction the backend
 * does: the mean/max/sum operations, bias gradients of Conv2d and Linear,
 * batch-norm statistics and gradients, layer-norm parameter gradients, and
 * the gradients of broadcast Add and Mul.
 *
 * A reduction of a contiguous tensor over a set of its dimensions is first
 * collapsed (cuda_plan.h): size-1 dimensions dropped, neighbours of the
 * same kind (reduced or kept) merged.  Almost every case then has the form
 * (A, K, R): reduce over A and R, keep K (per-channel statistics of NCHW
 * are (N, C, H*W); a bias gradient of Linear is (M, N, 1); a mean over
 * the last dimension is (1, rows, D)).  That form runs as two kernels: the
 * first splits each kept element's A*R values over several blocks, so that
 * a reduction with few kept elements (a BN with 16 channels) still fills
 * the GPU, and writes partial results; the second combines the partials
 * in a fixed order (so results are deterministic) and applies an
 * epilogue.  Anything else (rare: reducing dims 1 and 3 of a 4-D tensor)
 * runs a plain kernel with one thread per kept element.
 *
 * What is reduced is a Load functor (values from an element offset and
 * its kept index), NV values at once (BN needs two sums per pass); the
 * combination is an Op (sum or max); the Epi functor writes the result.
 */
#ifndef NADER_CUDA_REDUCE_CUH
#define NADER_CUDA_REDUCE_CUH

#include <math.h>

#include "cuda_common.cuh"
#include "cuda_plan.h"

struct cuda_sum_op {
    static __device__ __forceinline__ float init() { return 0.0f; }
    static __device__ __forceinline__ float apply(float a, float b) { return a + b; }
};

struct cuda_max_op {
    static __device__ __forceinline__ float init() { return -INFINITY; }
    static __device__ __forceinline__ float apply(float a, float b)
    {
        return (b > a || b != b) ? b : a;   /* NaN wins, as in PyTorch */
    }
};

/* Reduce NV values across the block; the result is valid in thread 0. */
template <int NV, class Op>
__device__ __forceinline__ void cuda_block_reduce(float (&v)[NV])
{
    __shared__ float sh[NV][32];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int nwarps = (blockDim.x + 31) >> 5;

#pragma unroll
    for (int i = 0; i < NV; i++)
        for (int o = 16; o > 0; o >>= 1)
            v[i] = Op::apply(v[i], __shfl_down_sync(0xffffffffu, v[i], o));
    if (lane == 0)
#pragma unroll
        for (int i = 0; i < NV; i++)
            sh[i][warp] = v[i];
    __syncthreads();
    if (warp == 0) {
#pragma unroll
        for (int i = 0; i < NV; i++) {
            v[i] = lane < nwarps ? sh[i][lane] : Op::init();
            for (int o = 16; o > 0; o >>= 1)
                v[i] = Op::apply(v[i], __shfl_down_sync(0xffffffffu, v[i], o));
        }
    }
}

/* (A, K, R) with R >= 32: block (k, slice) over flattened (a, r). */
template <int NV, class Op, class Load>
__global__ void cuda_red_rows_kernel(Load ld, cuda_red_plan_t p, float *part)
{
    int k = blockIdx.x, s = blockIdx.y, R = p.R, K = p.K;
    int e = p.A * R;
    int j0 = s * p.chunk, j1 = min(e, j0 + p.chunk);
    float acc[NV];

#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = Op::init();
    /* (a, r) of j, divided once and then carried: no division per element */
    int j = j0 + threadIdx.x, a = j / R, r = j - a * R;
    for (; j < j1; j += blockDim.x) {
        float v[NV];
        ld(cuda_red_akr_offset(&p, a, k, r), k, v);
#pragma unroll
        for (int i = 0; i < NV; i++)
            acc[i] = Op::apply(acc[i], v[i]);
        for (r += blockDim.x; r >= R; r -= R)
            a++;
    }
    cuda_block_reduce<NV, Op>(acc);
    if (threadIdx.x == 0)
#pragma unroll
        for (int i = 0; i < NV; i++)
            part[((size_t)s * K + k) * NV + i] = acc[i];
}

/* (A, K, R) with R < 32: a 32x8 block runs along 32 consecutive k. */
template <int NV, class Op, class Load>
__global__ void cuda_red_cols_kernel(Load ld, cuda_red_plan_t p, float *part)
{
    __shared__ float sh[NV][8][33];
    int k = blockIdx.x * 32 + threadIdx.x, s = blockIdx.y, K = p.K;
    int a0 = s * p.chunk, a1 = min(p.A, a0 + p.chunk);
    float acc[NV];

#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = Op::init();
    if (k < K)
        for (int a = a0 + threadIdx.y; a < a1; a += 8)
            for (int r = 0; r < p.R; r++) {
                float v[NV];
                ld(cuda_red_akr_offset(&p, a, k, r), k, v);
#pragma unroll
                for (int i = 0; i < NV; i++)
                    acc[i] = Op::apply(acc[i], v[i]);
            }
#pragma unroll
    for (int i = 0; i < NV; i++)
        sh[i][threadIdx.y][threadIdx.x] = acc[i];
    __syncthreads();
    if (threadIdx.y == 0 && k < K)
#pragma unroll
        for (int i = 0; i < NV; i++) {
            float t = sh[i][0][threadIdx.x];
            for (int y = 1; y < 8; y++)
                t = Op::apply(t, sh[i][y][threadIdx.x]);
            part[((size_t)s * K + k) * NV + i] = t;
        }
}

/* Combine the slices of each kept element in order, then the epilogue. */
template <int NV, class Op, class Epi>
__global__ void cuda_red_final_kernel(Epi epi, int K, int splits, const float *part)
{
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= K)
        return;
    float v[NV];
#pragma unroll
    for (int i = 0; i < NV; i++)
        v[i] = part[(size_t)k * NV + i];
    for (int s = 1; s < splits; s++)
#pragma unroll
        for (int i = 0; i < NV; i++)
            v[i] = Op::apply(v[i], part[((size_t)s * K + k) * NV + i]);
    epi(k, v);
}

/* The general form: one thread per kept element. */
template <int NV, class Op, class Load, class Epi>
__global__ void cuda_red_general_kernel(Load ld, Epi epi, cuda_red_plan_t p)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= p.out_n)
        return;
    int base = cuda_red_base(&p, o);
    float acc[NV];
#pragma unroll
    for (int i = 0; i < NV; i++)
        acc[i] = Op::init();
    for (int j = 0; j < p.red_n; j++) {
        float v[NV];
        ld(base + cuda_red_step(&p, j), o, v);
#pragma unroll
        for (int i = 0; i < NV; i++)
            acc[i] = Op::apply(acc[i], v[i]);
    }
    epi(o, acc);
}

/*
 * Run a planned reduction on the backend's stream.  partials must hold
 * cuda_red_partials(p, NV) floats.  Returns 0 or a message on the node.
 */
template <int NV, class Op, class Load, class Epi>
int cuda_red_run(backend_t *be, const net_node_t *node, const cuda_red_plan_t *p, Load ld,
                 Epi epi, float *partials)
{
    cudaStream_t st = cuda_impl(be)->stream;

    if (!p->akr) {
        cuda_red_general_kernel<NV, Op, Load, Epi>
            <<<cuda_blocks(p->out_n), CUDA_THREADS, 0, st>>>(ld, epi, *p);
        LAUNCH_TRY("reduce");
        return 0;
    }
    if (p->col) {
        dim3 grid((unsigned)((p->K + 31) / 32), (unsigned)p->splits), block(32, 8);
        cuda_red_cols_kernel<NV, Op, Load><<<grid, block, 0, st>>>(ld, *p, partials);
    } else {
        dim3 grid((unsigned)p->K, (unsigned)p->splits);
        cuda_red_rows_kernel<NV, Op, Load><<<grid, CUDA_THREADS, 0, st>>>(ld, *p, partials);
    }
    LAUNCH_TRY("reduce");
    cuda_red_final_kernel<NV, Op, Epi>
        <<<cuda_blocks(p->K), CUDA_THREADS, 0, st>>>(epi, p->K, p->splits, partials);
    LAUNCH_TRY("reduce");
    return 0;
}

/* ------------------------------------------------ common loads and epilogues */

/* The tensor's own values. */
struct cuda_load_x {
    const float *x;
    __device__ __forceinline__ void operator()(int off, int, float (&v)[1]) const
    {
        v[0] = x[off];
    }
};

/* out[k] = scale * v (+ out[k] when accumulating). */
struct cuda_epi_store {
    float *out;
    float scale;
    bool accumulate;
    __device__ __forceinline__ void operator()(int k, const float (&v)[1]) const
    {
        float r = scale * v[0];
        out[k] = accumulate ? out[k] + r : r;
    }
};

/*
 * Sum x (a tensor of the given shape) over the dimensions in red_mask into
 * out (kept elements, row-major): out = scale * sum (+ out if accumulate).
 * partials: cuda_red_partials(plan, 1) floats.
 */
int cuda_sum_into(backend_t *be, const net_node_t *node, const cuda_red_plan_t *plan,
                  const float *x, float *out, float scale, bool accumulate, float *partials);

#endif
