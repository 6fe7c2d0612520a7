/*
 * cuda_pointwise.cu - elementwise operations on the GPU: broadcast Add and
 * Mul over any number of inputs, ReLU, GELU (exact erf form), Sigmoid,
 * DropPath, softmax along any dimension, and the copy/scale helpers the
 * other files share.
 *
 * Broadcasting follows NumPy: shapes are aligned on the right and a size-1
 * dimension repeats.  Before launching, dimensions that every operand walks
 * contiguously are merged (cuda_plan.h) (a (B,C,1,1) gate times (B,C,H,W) becomes
 * (B*C, H*W) with strides (1, 0) for the gate), so a kernel decomposes an
 * index over two or three dimensions, not six.  The gradient of an operand
 * that was broadcast is the output gradient summed over the broadcast
 * dimensions, done by the reduction engine.
 *
 * DropPath draws one uniform number per sample from the node's rng_key
 * with engine_rng_uniform() (rng.h), the same function the CPU backend
 * uses, so both backends drop the same samples.
 */
#include "cuda_reduce.cuh"
#include "rng.h"

#define BC_MAX_IN CUDA_PLAN_MAX_IN

/* The collapsed dimensions and the operands' pointers. */
typedef struct s_bcast {
    cuda_bcast_t d;
    const float *x[BC_MAX_IN];
} s_bcast_t;

/* ------------------------------------------------------------- helpers */

__global__ void s_copy_add_kernel(float *dst, const float *src, float alpha, int64_t n, bool acc)
{
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (; i < n; i += step) {
        float v = alpha * src[i];
        dst[i] = acc ? dst[i] + v : v;
    }
}

static unsigned s_grid(backend_t *be, int64_t n)
{
    int64_t cap = (int64_t)cuda_impl(be)->sm_count * 16;
    int64_t b = (n + CUDA_THREADS - 1) / CUDA_THREADS;
    if (b > cap)
        b = cap;
    return (unsigned)(b < 1 ? 1 : b);
}

int cuda_scale_into(backend_t *be, const net_node_t *node, float *dst, const float *src,
                    float alpha, int64_t n, bool accumulate)
{
    if (n <= 0)
        return 0;
    if (!accumulate && alpha == 1.0f) {
        if (dst != src)
            CU_TRY(cudaMemcpyAsync(dst, src, (size_t)n * sizeof(float),
                                   cudaMemcpyDeviceToDevice, cuda_impl(be)->stream));
        return 0;
    }
    s_copy_add_kernel<<<s_grid(be, n), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        dst, src, alpha, n, accumulate);
    LAUNCH_TRY("copy");
    return 0;
}

int cuda_copy_or_add(backend_t *be, const net_node_t *node, float *dst, const float *src,
                     int64_t n, bool accumulate)
{
    return cuda_scale_into(be, node, dst, src, 1.0f, n, accumulate);
}

/* ------------------------------------------------------ broadcast Add/Mul */

/* Fill b for the output shape out and the operand shapes in[0..nin). */
static void s_bcast_make(s_bcast_t *b, const graph_shape_t *out, const graph_shape_t *const *in,
                         const float *const *x, int nin)
{
    const int64_t *dims[BC_MAX_IN];
    int nd[BC_MAX_IN];

    memset(b, 0, sizeof(*b));
    for (int i = 0; i < nin; i++) {
        dims[i] = in[i]->d;
        nd[i] = in[i]->ndim;
        b->x[i] = x[i];
    }
    cuda_bcast_make(&b->d, out->ndim, out->d, nin, dims, nd);
}

/* y = combine(x_0, ..., x_{nin-1}) (+ y when acc); Mul: product, Add: sum. */
template <bool MUL>
__global__ void s_bcast_kernel(s_bcast_t b, int n, float *y, bool acc)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n)
        return;
    int off[BC_MAX_IN];
    /* Constant indices only (unrolled, guarded): off stays in registers. */
#pragma unroll
    for (int i = 0; i < BC_MAX_IN; i++)
        off[i] = 0;
    /* cuda_bcast_offset() for every operand, one decomposition for all */
    int t = o;
    for (int d = b.d.ndim - 1; d >= 0; d--) {
        int c = t % b.d.size[d];
        t /= b.d.size[d];
#pragma unroll
        for (int i = 0; i < BC_MAX_IN; i++)
            if (i < b.d.nin)
                off[i] += c * b.d.stride[i][d];
    }
    float v = b.x[0][off[0]];
#pragma unroll
    for (int i = 1; i < BC_MAX_IN; i++)
        if (i < b.d.nin)
            v = MUL ? v * b.x[i][off[i]] : v + b.x[i][off[i]];
    y[o] = acc ? y[o] + v : v;
}

/* The same when every operand has the output's shape. */
template <bool MUL>
__global__ void s_flat_kernel(s_bcast_t b, int n, float *y, bool acc)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n)
        return;
    float v = b.x[0][o];
    for (int i = 1; i < b.d.nin; i++)
        v = MUL ? v * b.x[i][o] : v + b.x[i][o];
    y[o] = acc ? y[o] + v : v;
}

static int s_bcast_run(backend_t *be, const net_node_t *node, const graph_shape_t *out,
                       float *y, const graph_shape_t *const *in, const float *const *x, int nin,
                       bool mul, bool acc)
{
    s_bcast_t b;
    int n = (int)cuda_numel(out);
    bool flat = true;
    cudaStream_t st = cuda_impl(be)->stream;

    if (nin > BC_MAX_IN)
        return cuda_failf(be, node, -EINVAL, "%d inputs (at most %d)", nin, BC_MAX_IN);
    for (int i = 0; i < nin; i++)
        flat = flat && cuda_numel(in[i]) == n;
    s_bcast_make(&b, out, in, x, nin);
    if (flat && mul)
        s_flat_kernel<true><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(b, n, y, acc);
    else if (flat)
        s_flat_kernel<false><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(b, n, y, acc);
    else if (mul)
        s_bcast_kernel<true><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(b, n, y, acc);
    else
        s_bcast_kernel<false><<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(b, n, y, acc);
    LAUNCH_TRY("broadcast");
    return 0;
}

/* The reduction that sums the output gradient onto operand shape xs. */
static void s_grad_plan(backend_t *be, const graph_shape_t *ys, const graph_shape_t *xs,
                        cuda_red_plan_t *p, bool *reduced)
{
    uint32_t mask = 0;
    int off = ys->ndim - xs->ndim;
    for (int d = 0; d < ys->ndim; d++) {
        int64_t n = d >= off ? xs->d[d - off] : 1;
        if (n == 1 && ys->d[d] > 1)
            mask |= 1u << d;
    }
    *reduced = mask != 0;
    cuda_red_plan_make(p, ys->ndim, ys->d, mask, cuda_impl(be)->sm_count);
}

size_t cuda_eltwise_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    size_t part = 0;
    bool any = false;
    for (int i = 0; i < node->n_inputs; i++) {
        cuda_red_plan_t p;
        bool reduced;
        s_grad_plan(be, &node->shape, cuda_in_shape_n(net, node, i), &p, &reduced);
        if (!reduced)   /* backward copies or multiplies straight into dx */
            continue;
        size_t b = cuda_align(cuda_red_partials(&p, 1) * sizeof(float));
        any = true;
        if (b > part)
            part = b;
    }
    if (node->op == GRAPH_OP_MUL && any)
        return cuda_align(cuda_numel(&node->shape) * sizeof(float)) + part;
    return part;
}

int cuda_eltwise_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *in[BC_MAX_IN];
    const net_node_t *node = op->node;

    if (op->n_inputs > BC_MAX_IN)
        return cuda_failf(be, node, -EINVAL, "%d inputs (at most %d)", op->n_inputs,
                          BC_MAX_IN);
    for (int i = 0; i < op->n_inputs; i++)
        in[i] = cuda_in_shape(op, i);
    return s_bcast_run(be, node, &node->shape, op->y, in, op->x, op->n_inputs,
                       node->op == GRAPH_OP_MUL, false);
}

int cuda_eltwise_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *ys = &node->shape;
    int64_t n = cuda_numel(ys);
    bool mul = node->op == GRAPH_OP_MUL;

    if (op->n_inputs > BC_MAX_IN - 1)
        return cuda_failf(be, node, -EINVAL, "%d inputs (at most %d)", op->n_inputs,
                          BC_MAX_IN - 1);
    for (int i = 0; i < op->n_inputs; i++) {
        if (!op->dx || !op->dx[i])
            continue;
        const graph_shape_t *xs = cuda_in_shape(op, i);
        bool acc = op->dx_accumulate && op->dx_accumulate[i];
        cuda_red_plan_t p;
        bool reduced;
        cuda_ws_t ws = cuda_ws_of(op);
        float *tmp = NULL, *part = NULL;

        s_grad_plan(be, ys, xs, &p, &reduced);

        /* The gradient at the output's shape: dy, or dy times the others. */
        const float *g = op->dy;
        if (mul) {
            const graph_shape_t *in[BC_MAX_IN];
            const float *x[BC_MAX_IN];
            int k = 0;
            in[k] = ys;
            x[k++] = op->dy;
            for (int j = 0; j < op->n_inputs; j++)
                if (j != i) {
                    in[k] = cuda_in_shape(op, j);
                    x[k++] = op->x[j];
                }
            if (!reduced) {
                RC_TRY(s_bcast_run(be, node, ys, op->dx[i], in, x, k, true, acc));
                continue;
            }
            WS_TAKE(tmp, ws, (size_t)n * sizeof(float));
            RC_TRY(s_bcast_run(be, node, ys, tmp, in, x, k, true, false));
            g = tmp;
        }
        if (!reduced) {
            RC_TRY(cuda_copy_or_add(be, node, op->dx[i], g, n, acc));
            continue;
        }
        if (cuda_red_partials(&p, 1))
            WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
        RC_TRY(cuda_sum_into(be, node, &p, g, op->dx[i], 1.0f, acc, part));
    }
    return 0;
}

/* ---------------------------------------------------------- activations */

__device__ __forceinline__ float s_gelu(float x)
{
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

__device__ __forceinline__ float s_gelu_grad(float x)
{
    float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
    float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    return cdf + x * pdf;
}

template <int OP>
__global__ void s_act_fwd_kernel(const float *x, float *y, int n)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float v = x[i];
    if (OP == GRAPH_OP_RELU)
        y[i] = v > 0.0f ? v : 0.0f;
    else if (OP == GRAPH_OP_GELU)
        y[i] = s_gelu(v);
    else if (v >= 0.0f)
        y[i] = 1.0f / (1.0f + expf(-v));
    else
        y[i] = expf(v) / (1.0f + expf(v));
}

/* ReLU and Sigmoid read the output, GELU the input (graph_ops.h). */
template <int OP>
__global__ void s_act_bwd_kernel(const float *x, const float *y, const float *dy, float *dx,
                                 int n, bool acc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float g;
    if (OP == GRAPH_OP_RELU)
        g = y[i] > 0.0f ? dy[i] : 0.0f;
    else if (OP == GRAPH_OP_GELU)
        g = dy[i] * s_gelu_grad(x[i]);
    else
        g = dy[i] * y[i] * (1.0f - y[i]);
    dx[i] = acc ? dx[i] + g : g;
}

int cuda_act_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int n = (int)cuda_numel(&node->shape);
    cudaStream_t st = cuda_impl(be)->stream;
    unsigned nb = cuda_blocks(n);

    switch (node->op) {
    case GRAPH_OP_RELU:
        s_act_fwd_kernel<GRAPH_OP_RELU><<<nb, CUDA_THREADS, 0, st>>>(op->x[0], op->y, n);
        break;
    case GRAPH_OP_GELU:
        s_act_fwd_kernel<GRAPH_OP_GELU><<<nb, CUDA_THREADS, 0, st>>>(op->x[0], op->y, n);
        break;
    default:
        s_act_fwd_kernel<GRAPH_OP_SIGMOID><<<nb, CUDA_THREADS, 0, st>>>(op->x[0], op->y, n);
        break;
    }
    LAUNCH_TRY("activation");
    return 0;
}

int cuda_act_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int n = (int)cuda_numel(&node->shape);
    cudaStream_t st = cuda_impl(be)->stream;
    unsigned nb = cuda_blocks(n);
    bool acc = op->dx_accumulate && op->dx_accumulate[0];

    if (!op->dx || !op->dx[0])
        return 0;
    const float *x = op->x ? op->x[0] : NULL;
    switch (node->op) {
    case GRAPH_OP_RELU:
        s_act_bwd_kernel<GRAPH_OP_RELU>
            <<<nb, CUDA_THREADS, 0, st>>>(x, op->y, op->dy, op->dx[0], n, acc);
        break;
    case GRAPH_OP_GELU:
        s_act_bwd_kernel<GRAPH_OP_GELU>
            <<<nb, CUDA_THREADS, 0, st>>>(x, op->y, op->dy, op->dx[0], n, acc);
        break;
    default:
        s_act_bwd_kernel<GRAPH_OP_SIGMOID>
            <<<nb, CUDA_THREADS, 0, st>>>(x, op->y, op->dy, op->dx[0], n, acc);
        break;
    }
    LAUNCH_TRY("activation backward");
    return 0;
}

/* ------------------------------------------------------------- DropPath */

/* Sample b's factor: 0 when dropped, 1/(1-p) when kept (rng.h's draw). */
__device__ __forceinline__ float s_droppath_scale(uint64_t key, int b, float prob)
{
    return engine_rng_uniform(key, (uint64_t)b) < prob ? 0.0f : 1.0f / (1.0f - prob);
}

__global__ void s_droppath_kernel(const float *x, float *y, int n, int per_sample,
                                  uint64_t key, float prob, bool acc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float v = x[i] * s_droppath_scale(key, i / per_sample, prob);
    y[i] = acc ? y[i] + v : v;
}

static int s_droppath(backend_t *be, const backend_op_t *op, const float *src, float *dst,
                      bool acc)
{
    const net_node_t *node = op->node;
    int64_t n = cuda_numel(&node->shape);
    int64_t batch = node->shape.ndim > 0 ? node->shape.d[0] : 1;

    if (!op->training || node->prob <= 0.0f)
        return cuda_copy_or_add(be, node, dst, src, n, acc);
    s_droppath_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        src, dst, (int)n, (int)(n / batch), op->rng_key, node->prob, acc);
    LAUNCH_TRY("DropPath");
    return 0;
}

int cuda_droppath_forward(backend_t *be, const backend_op_t *op)
{
    return s_droppath(be, op, op->x[0], op->y, false);
}

int cuda_droppath_backward(backend_t *be, const backend_op_t *op)
{
    if (!op->dx || !op->dx[0])
        return 0;
    return s_droppath(be, op, op->dy, op->dx[0],
                      op->dx_accumulate && op->dx_accumulate[0]);
}

/* -------------------------------------------------------------- softmax */

/* inner == 1: one warp per row of length d. */
__global__ void s_softmax_rows_kernel(const float *x, float *y, int rows, int d)
{
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const float *xr = x + (size_t)row * d;
    float *yr = y + (size_t)row * d;
    float m = -INFINITY, s = 0.0f;

    for (int i = lane; i < d; i += 32)
        m = fmaxf(m, xr[i]);
    for (int o = 16; o > 0; o >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    for (int i = lane; i < d; i += 32)
        s += expf(xr[i] - m);
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    float inv = 1.0f / s;
    for (int i = lane; i < d; i += 32)
        yr[i] = expf(xr[i] - m) * inv;
}

__global__ void s_softmax_rows_bwd_kernel(const float *y, const float *dy, float *dx, int rows,
                                          int d, bool acc)
{
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    size_t base = (size_t)row * d;
    float dot = 0.0f;

    for (int i = lane; i < d; i += 32)
        dot += y[base + i] * dy[base + i];
    for (int o = 16; o > 0; o >>= 1)
        dot += __shfl_xor_sync(0xffffffffu, dot, o);
    for (int i = lane; i < d; i += 32) {
        float g = y[base + i] * (dy[base + i] - dot);
        dx[base + i] = acc ? dx[base + i] + g : g;
    }
}

/* inner > 1: one thread per (outer, inner) column, strided by inner. */
__global__ void s_softmax_cols_kernel(const float *x, float *y, int outer, int d, int inner)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= outer * inner)
        return;
    int o = t / inner, in = t - o * inner;
    size_t base = (size_t)o * d * inner + in;
    float m = -INFINITY, s = 0.0f;

    for (int i = 0; i < d; i++)
        m = fmaxf(m, x[base + (size_t)i * inner]);
    for (int i = 0; i < d; i++)
        s += expf(x[base + (size_t)i * inner] - m);
    float inv = 1.0f / s;
    for (int i = 0; i < d; i++)
        y[base + (size_t)i * inner] = expf(x[base + (size_t)i * inner] - m) * inv;
}

__global__ void s_softmax_cols_bwd_kernel(const float *y, const float *dy, float *dx, int outer,
                                          int d, int inner, bool acc)
{
    int t = blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= outer * inner)
        return;
    int o = t / inner, in = t - o * inner;
    size_t base = (size_t)o * d * inner + in;
    float dot = 0.0f;

    for (int i = 0; i < d; i++)
        dot += y[base + (size_t)i * inner] * dy[base + (size_t)i * inner];
    for (int i = 0; i < d; i++) {
        size_t k = base + (size_t)i * inner;
        float g = y[k] * (dy[k] - dot);
        dx[k] = acc ? dx[k] + g : g;
    }
}

static void s_softmax_dims(const net_node_t *node, int *outer, int *d, int *inner)
{
    int dim = node->dims[0];
    *outer = *inner = 1;
    for (int i = 0; i < node->shape.ndim; i++) {
        if (i < dim)
            *outer *= (int)node->shape.d[i];
        else if (i > dim)
            *inner *= (int)node->shape.d[i];
    }
    *d = (int)node->shape.d[dim];
}

int cuda_softmax_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    cudaStream_t st = cuda_impl(be)->stream;
    int outer, d, inner;

    s_softmax_dims(node, &outer, &d, &inner);
    if (inner == 1)
        s_softmax_rows_kernel<<<(outer + 7) / 8, 256, 0, st>>>(op->x[0], op->y, outer, d);
    else
        s_softmax_cols_kernel<<<cuda_blocks((int64_t)outer * inner), CUDA_THREADS, 0, st>>>(
            op->x[0], op->y, outer, d, inner);
    LAUNCH_TRY("softmax");
    return 0;
}

int cuda_softmax_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    cudaStream_t st = cuda_impl(be)->stream;
    bool acc = op->dx_accumulate && op->dx_accumulate[0];
    int outer, d, inner;

    if (!op->dx || !op->dx[0])
        return 0;
    s_softmax_dims(node, &outer, &d, &inner);
    if (inner == 1)
        s_softmax_rows_bwd_kernel<<<(outer + 7) / 8, 256, 0, st>>>(op->y, op->dy, op->dx[0],
                                                                   outer, d, acc);
    else
        s_softmax_cols_bwd_kernel<<<cuda_blocks((int64_t)outer * inner), CUDA_THREADS, 0,
                                    st>>>(op->y, op->dy, op->dx[0], outer, d, inner, acc);
    LAUNCH_TRY("softmax backward");
    return 0;
}
