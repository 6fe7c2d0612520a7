/*
 * cuda_pool.cu - AvgPool2d, MaxPool2d, AdaptiveAvgPool2d and
 * AdaptiveMaxPool2d over the last two dimensions, forward and backward.
 *
 * Own kernels rather than cuDNN's pooling: the block format's "same"
 * padding drops the last output row and column when node->crop is set,
 * which cuDNN cannot express without computing and copying a larger
 * output, and the rules must be the CPU backend's exactly: an average
 * counts padded zeros (divisor kernel_size^2), a maximum ignores padding
 * and takes the first largest element in row-major window order (the last
 * NaN, if any, as the CPU backend and PyTorch do).  Adaptive
 * windows are PyTorch's: rows floor(i*H/O) to ceil((i+1)*H/O).
 *
 * Max pools keep the winning position of each output (int32 within its
 * plane) in the node's saved state.  Every backward is a gather: one
 * thread per input element sums the gradients of the windows covering it,
 * so no atomics and the same result every run.
 */
#include "cuda_common.cuh"

#include "cuda_plan.h"

typedef cuda_pool_t s_pool_t;

static s_pool_t s_pool_of(const net_t *net, const net_node_t *node)
{
    const graph_shape_t *xs = cuda_in_shape_n(net, node, 0);
    const graph_shape_t *ys = &node->shape;
    s_pool_t g;

    g.h = (int)xs->d[xs->ndim - 2];
    g.w = (int)xs->d[xs->ndim - 1];
    g.oh = (int)ys->d[ys->ndim - 2];
    g.ow = (int)ys->d[ys->ndim - 1];
    g.planes = (int)(cuda_numel(xs) / ((int64_t)g.h * g.w));
    bool adaptive = node->op == GRAPH_OP_ADAPTIVEAVGPOOL2D ||
                    node->op == GRAPH_OP_ADAPTIVEMAXPOOL2D;
    g.k = adaptive ? 0 : (int)node->kernel;
    g.s = adaptive ? 0 : (int)node->stride;
    g.p = adaptive ? 0 : (int)node->pad;
    return g;
}

static bool s_is_max(const net_node_t *node)
{
    return node->op == GRAPH_OP_MAXPOOL2D || node->op == GRAPH_OP_ADAPTIVEMAXPOOL2D;
}

size_t cuda_pool_saved(backend_t *be, const net_t *net, const net_node_t *node)
{
    (void)be;
    (void)net;
    return s_is_max(node) ? (size_t)cuda_numel(&node->shape) * sizeof(int32_t) : 0;
}

/* The window of output (i, j): rows [h0, h1), columns [w0, w1). */
__device__ __forceinline__ void s_window(const s_pool_t &g, int i, int j, int *h0, int *h1,
                                         int *w0, int *w1)
{
    cuda_pool_window(&g, i, g.h, g.oh, h0, h1);
    cuda_pool_window(&g, j, g.w, g.ow, w0, w1);
}

template <bool MAX>
__global__ void s_pool_fwd_kernel(s_pool_t g, const float *x, float *y, int32_t *arg)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= g.planes * g.oh * g.ow)
        return;
    int j = o % g.ow, i = (o / g.ow) % g.oh, pl = o / (g.ow * g.oh);
    const float *xp = x + (size_t)pl * g.h * g.w;
    int h0, h1, w0, w1;

    s_window(g, i, j, &h0, &h1, &w0, &w1);
    float div = g.k ? (float)(g.k * g.k) : (float)((h1 - h0) * (w1 - w0));
    h0 = max(h0, 0);
    w0 = max(w0, 0);
    h1 = min(h1, g.h);
    w1 = min(w1, g.w);
    if (MAX) {
        float m = -INFINITY;
        int best = h0 * g.w + w0;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++) {
                float v = xp[h * g.w + w];
                if (v > m || v != v) {
                    m = v;
                    best = h * g.w + w;
                }
            }
        y[o] = m;
        arg[o] = best;
    } else {
        float s = 0.0f;
        for (int h = h0; h < h1; h++)
            for (int w = w0; w < w1; w++)
                s += xp[h * g.w + w];
        y[o] = s / div;
    }
}

template <bool MAX>
__global__ void s_pool_bwd_kernel(s_pool_t g, const float *dy, const int32_t *arg, float *dx,
                                  bool acc)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= g.planes * g.h * g.w)
        return;
    int w = t % g.w, h = (t / g.w) % g.h, pl = t / (g.w * g.h);
    size_t obase = (size_t)pl * g.oh * g.ow;
    int ilo, ihi, jlo, jhi;
    float s = 0.0f;

    cuda_pool_cover(&g, h, g.h, g.oh, &ilo, &ihi);
    cuda_pool_cover(&g, w, g.w, g.ow, &jlo, &jhi);
    for (int i = ilo; i <= ihi; i++)
        for (int j = jlo; j <= jhi; j++) {
            int h0, h1, w0, w1;
            s_window(g, i, j, &h0, &h1, &w0, &w1);
            if (h < h0 || h >= h1 || w < w0 || w >= w1)
                continue;
            size_t o = obase + (size_t)i * g.ow + j;
            if (MAX) {
                if (arg[o] == h * g.w + w)
                    s += dy[o];
            } else {
                float div = g.k ? (float)(g.k * g.k) : (float)((h1 - h0) * (w1 - w0));
                s += dy[o] / div;
            }
        }
    dx[t] = acc ? dx[t] + s : s;
}

int cuda_pool_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    s_pool_t g = s_pool_of(op->net, node);
    int n = g.planes * g.oh * g.ow;
    cudaStream_t st = cuda_impl(be)->stream;

    if (s_is_max(node)) {
        if (!op->saved)
            return cuda_failf(be, node, -EINVAL, "no saved state for the argmax");
        s_pool_fwd_kernel<true><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(
            g, op->x[0], op->y, (int32_t *)op->saved);
    } else {
        s_pool_fwd_kernel<false><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(g, op->x[0], op->y,
                                                                         NULL);
    }
    LAUNCH_TRY("pool");
    return 0;
}

int cuda_pool_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    s_pool_t g = s_pool_of(op->net, node);
    int n = g.planes * g.h * g.w;
    bool acc = op->dx_accumulate && op->dx_accumulate[0];
    cudaStream_t st = cuda_impl(be)->stream;

    if (!op->dx || !op->dx[0])
        return 0;
    if (s_is_max(node)) {
        if (!op->saved)
            return cuda_failf(be, node, -EINVAL, "no saved state for the argmax");
        s_pool_bwd_kernel<true><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(
            g, op->dy, (const int32_t *)op->saved, op->dx[0], acc);
    } else {
        s_pool_bwd_kernel<false><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(g, op->dy, NULL,
                                                                          op->dx[0], acc);
    }
    LAUNCH_TRY("pool backward");
    return 0;
}
