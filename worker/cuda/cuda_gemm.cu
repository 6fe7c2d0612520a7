/*
 * cuda_gemm.cu - Linear and multiply (torch.matmul) through cuBLAS.
 *
 * Row-major products are computed as their column-major transposes, so
 * no data moves: row-major C = A.B is column-major C^T = B^T.A^T, which is
 * cuBLAS's gemm with the operands swapped.  The precision mode picks the
 * compute type: TF32 tensor cores by default, plain float32 for
 * BACKEND_STRICT_FP32, and bf16 tensor cores with float32 accumulation
 * for BACKEND_BF16 (cuBLAS converts the float32 operands itself).
 *
 * multiply broadcasts batch dimensions.  When each operand's batch is
 * either whole or entirely broadcast, one strided-batched call does it;
 * otherwise a small kernel writes per-batch pointers into the workspace
 * for a pointer-array batched call.  The gradient of a broadcast operand
 * is computed per output batch into the workspace and then summed over
 * the broadcast dimensions by the reduction engine.
 */
#include "cuda_reduce.cuh"

#define GEMM_MAX_BATCH_DIMS CUDA_PLAN_MM_BATCH

static cublasComputeType_t s_compute(backend_t *be)
{
    switch (cuda_impl(be)->precision) {
    case BACKEND_STRICT_FP32:
        return CUBLAS_COMPUTE_32F;
    case BACKEND_BF16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
    default:
        return CUBLAS_COMPUTE_32F_FAST_TF32;
    }
}

/* Column-major C (m x n) = op(A) op(B) + beta C, float32 storage. */
static int s_gemm(backend_t *be, const net_node_t *node, cublasOperation_t ta,
                  cublasOperation_t tb, int m, int n, int k, const float *A, int lda,
                  const float *B, int ldb, float *C, int ldc, float beta)
{
    const float one = 1.0f;
    BLAS_TRY(cublasGemmEx(cuda_impl(be)->cublas, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B,
                          CUDA_R_32F, ldb, &beta, C, CUDA_R_32F, ldc, s_compute(be),
                          CUBLAS_GEMM_DEFAULT));
    return 0;
}

/* ------------------------------------------------------------------ Linear */

static void s_linear_geom(const net_t *net, const net_node_t *node, int *M, int *K, int *N)
{
    const graph_shape_t *xs = cuda_in_shape_n(net, node, 0);
    *K = (int)xs->d[xs->ndim - 1];
    *M = (int)(cuda_numel(xs) / *K);
    *N = (int)node->shape.d[node->shape.ndim - 1];
}

static void s_bias_plan(backend_t *be, int M, int N, cuda_red_plan_t *p)
{
    int64_t shape[2] = {M, N};
    cuda_red_plan_make(p, 2, shape, 1u, cuda_impl(be)->sm_count);
}

size_t cuda_linear_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_red_plan_t p;
    int M, K, N;
    s_linear_geom(net, node, &M, &K, &N);
    s_bias_plan(be, M, N, &p);
    return cuda_align(cuda_red_partials(&p, 1) * sizeof(float));
}

__global__ void s_bias_rows_kernel(float *y, const float *b, int rows, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * n)
        return;
    y[i] = b[i % n];
}

int cuda_linear_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int M, K, N;
    bool bias = node->bias;

    s_linear_geom(op->net, node, &M, &K, &N);
    if (bias) {
        s_bias_rows_kernel<<<cuda_blocks((int64_t)M * N), CUDA_THREADS, 0,
                             cuda_impl(be)->stream>>>(op->y, op->w[1], M, N);
        LAUNCH_TRY("Linear bias");
    }
    /* y^T (N x M) = W (N x K) . x^T (K x M) in column-major terms. */
    return s_gemm(be, node, CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, op->w[0], K, op->x[0], K, op->y,
                  N, bias ? 1.0f : 0.0f);
}

int cuda_linear_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int M, K, N;

    s_linear_geom(op->net, node, &M, &K, &N);
    if (op->dx && op->dx[0])
        RC_TRY(s_gemm(be, node, CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, op->w[0], K, op->dy, N,
                      op->dx[0], K,
                      op->dx_accumulate && op->dx_accumulate[0] ? 1.0f : 0.0f));
    if (op->dw && op->dw[0])
        RC_TRY(s_gemm(be, node, CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, op->x[0], K, op->dy, N,
                      op->dw[0], K, 0.0f));
    if (node->bias && op->dw && op->dw[1]) {
        cuda_red_plan_t p;
        cuda_ws_t ws = cuda_ws_of(op);
        float *part = NULL;
        s_bias_plan(be, M, N, &p);
        if (cuda_red_partials(&p, 1))
            WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
        RC_TRY(cuda_sum_into(be, node, &p, op->dy, op->dw[1], 1.0f, false, part));
    }
    return 0;
}

/* ---------------------------------------------------------------- multiply */

typedef cuda_bmap_t s_bmap_t;
typedef cuda_mm_plan_t s_mm_t;

static bool s_mm_geom(const net_t *net, const net_node_t *node, s_mm_t *g)
{
    const graph_shape_t *sa = cuda_in_shape_n(net, node, 0);
    const graph_shape_t *sb = cuda_in_shape_n(net, node, 1);
    return cuda_mm_plan_make(g, sa->ndim, sa->d, sb->ndim, sb->d);
}

__global__ void s_ptrs_kernel(int nb, s_bmap_t ma, s_bmap_t mb, s_bmap_t mc, const float *a,
                              const float *b, float *c, const float **pa, const float **pb,
                              float **pc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nb)
        return;
    pa[i] = a + cuda_bmap_offset(&ma, i);
    pb[i] = b + cuda_bmap_offset(&mb, i);
    pc[i] = c + cuda_bmap_offset(&mc, i);
}

/*
 * Column-major batched C_i = op(A_i) op(B_i) + beta C_i over nb batches,
 * where each operand's batch offsets come from its map.
 */
static int s_gemm_batched(backend_t *be, const net_node_t *node, cuda_ws_t *ws,
                          cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                          const float *A, int lda, const s_bmap_t *ma, int ea, const float *B,
                          int ldb, const s_bmap_t *mb, int eb, float *C, int ldc,
                          const s_bmap_t *mc, int ec, int nb, float beta)
{
    const float one = 1.0f;
    cublasHandle_t h = cuda_impl(be)->cublas;

    if (nb == 1)
        return s_gemm(be, node, ta, tb, m, n, k, A, lda, B, ldb, C, ldc, beta);
    int64_t sa = cuda_bmap_uniform(ma, ea), sb = cuda_bmap_uniform(mb, eb);
    int64_t sc = cuda_bmap_uniform(mc, ec);
    if (sa >= 0 && sb >= 0 && sc >= 0) {
        BLAS_TRY(cublasGemmStridedBatchedEx(h, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, sa, B,
                                            CUDA_R_32F, ldb, sb, &beta, C, CUDA_R_32F, ldc, sc,
                                            nb, s_compute(be), CUBLAS_GEMM_DEFAULT));
        return 0;
    }
    const float **pa, **pb;
    float **pc;
    WS_TAKE(pa, *ws, (size_t)nb * sizeof(void *));
    WS_TAKE(pb, *ws, (size_t)nb * sizeof(void *));
    WS_TAKE(pc, *ws, (size_t)nb * sizeof(void *));
    s_ptrs_kernel<<<cuda_blocks(nb), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        nb, *ma, *mb, *mc, A, B, C, pa, pb, pc);
    LAUNCH_TRY("multiply pointers");
    BLAS_TRY(cublasGemmBatchedEx(h, ta, tb, m, n, k, &one, (const void *const *)pa, CUDA_R_32F,
                                 lda, (const void *const *)pb, CUDA_R_32F, ldb, &beta,
                                 (void *const *)pc, CUDA_R_32F, ldc, nb, s_compute(be),
                                 CUBLAS_GEMM_DEFAULT));
    return 0;
}

static void s_grad_red_plan(backend_t *be, const s_mm_t *g, uint32_t red, int rows, int cols,
                            cuda_red_plan_t *p)
{
    int64_t shape[CUDA_PLAN_MM_BATCH + 2];
    for (int d = 0; d < g->bdims; d++)
        shape[d] = g->bshape[d];
    shape[g->bdims] = rows;
    shape[g->bdims + 1] = cols;
    cuda_red_plan_make(p, g->bdims + 2, shape, red, cuda_impl(be)->sm_count);
}

size_t cuda_matmul_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    s_mm_t g;
    size_t ptrs, fwd, bwd = 0;

    if (!s_mm_geom(net, node, &g))
        return 0;
    ptrs = 3 * cuda_align((size_t)g.nb * sizeof(void *));
    fwd = ptrs;
    if (g.a_bcast) {
        cuda_red_plan_t p;
        s_grad_red_plan(be, &g, g.a_red, g.n, g.k, &p);
        size_t b = cuda_align((size_t)g.nb * g.n * g.k * sizeof(float)) +
                   cuda_align(cuda_red_partials(&p, 1) * sizeof(float));
        bwd = b > bwd ? b : bwd;
    }
    if (g.b_bcast) {
        cuda_red_plan_t p;
        s_grad_red_plan(be, &g, g.b_red, g.k, g.m, &p);
        size_t b = cuda_align((size_t)g.nb * g.k * g.m * sizeof(float)) +
                   cuda_align(cuda_red_partials(&p, 1) * sizeof(float));
        bwd = b > bwd ? b : bwd;
    }
    bwd += ptrs;
    return fwd > bwd ? fwd : bwd;
}

int cuda_matmul_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    cuda_ws_t ws = cuda_ws_of(op);
    s_mm_t g;

    if (!s_mm_geom(op->net, node, &g))
        return cuda_failf(be, node, -EINVAL, "more than %d batch dimensions",
                          GEMM_MAX_BATCH_DIMS);
    /* C^T (m x n) = B^T (m x k) . A^T (k x n), column-major. */
    return s_gemm_batched(be, node, &ws, CUBLAS_OP_N, CUBLAS_OP_N, g.m, g.n, g.k, op->x[1], g.m,
                          &g.bmap, g.k * g.m, op->x[0], g.k, &g.amap, g.n * g.k, op->y, g.m,
                          &g.cmap, g.n * g.m, g.nb, 0.0f);
}

int cuda_matmul_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    s_mm_t g;

    if (!s_mm_geom(op->net, node, &g))
        return cuda_failf(be, node, -EINVAL, "more than %d batch dimensions",
                          GEMM_MAX_BATCH_DIMS);

    /* dA = dC . B^T: column-major dA^T (k x n) = B (k x m)^T-view . dC^T. */
    if (op->dx && op->dx[0]) {
        cuda_ws_t ws = cuda_ws_of(op);
        bool acc = op->dx_accumulate && op->dx_accumulate[0];
        float *dst = op->dx[0], *part = NULL;
        s_bmap_t dmap = g.amap;
        cuda_red_plan_t p;
        if (g.a_bcast) {
            s_grad_red_plan(be, &g, g.a_red, g.n, g.k, &p);
            WS_TAKE(dst, ws, (size_t)g.nb * g.n * g.k * sizeof(float));
            if (cuda_red_partials(&p, 1))
                WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
            dmap = cuda_bmap_full(&g, g.n * g.k);
        }
        RC_TRY(s_gemm_batched(be, node, &ws, CUBLAS_OP_T, CUBLAS_OP_N, g.k, g.n, g.m, op->x[1],
                              g.m, &g.bmap, g.k * g.m, op->dy, g.m, &g.cmap, g.n * g.m, dst,
                              g.k, &dmap, g.n * g.k, g.nb,
                              acc && !g.a_bcast ? 1.0f : 0.0f));
        if (g.a_bcast)
            RC_TRY(cuda_sum_into(be, node, &p, dst, op->dx[0], 1.0f, acc, part));
    }

    /* dB = A^T . dC: column-major dB^T (m x k) = dC^T (m x n) . A (n x k)-view. */
    if (op->dx && op->dx[1]) {
        cuda_ws_t ws = cuda_ws_of(op);
        bool acc = op->dx_accumulate && op->dx_accumulate[1];
        float *dst = op->dx[1], *part = NULL;
        s_bmap_t dmap = g.bmap;
        cuda_red_plan_t p;
        if (g.b_bcast) {
            s_grad_red_plan(be, &g, g.b_red, g.k, g.m, &p);
            WS_TAKE(dst, ws, (size_t)g.nb * g.k * g.m * sizeof(float));
            if (cuda_red_partials(&p, 1))
                WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
            dmap = cuda_bmap_full(&g, g.k * g.m);
        }
        RC_TRY(s_gemm_batched(be, node, &ws, CUBLAS_OP_N, CUBLAS_OP_T, g.m, g.k, g.n, op->dy,
                              g.m, &g.cmap, g.n * g.m, op->x[0], g.k, &g.amap, g.n * g.k, dst,
                              g.m, &dmap, g.k * g.m, g.nb,
                              acc && !g.b_bcast ? 1.0f : 0.0f));
        if (g.b_bcast)
            RC_TRY(cuda_sum_into(be, node, &p, dst, op->dx[1], 1.0f, acc, part));
    }
    return 0;
}
