/*
 * cuda_layout.cu - operations that move data without arithmetic: permute,
 * repeat, concat and reshape, forward and backward.
 *
 * permute and its gradient are one gather kernel (the gradient of a
 * permutation is the inverse permutation).  repeat's gradient sums each
 * input element's copies, one thread per input element.  concat copies
 * each input into its slice of every row with one 2-D memory copy (a
 * strided cudaMemcpy2DAsync, which graph capture records as one node);
 * only an accumulating gradient needs a kernel.
 */
#include "cuda_common.cuh"

typedef struct s_gather {
    int ndim;
    int size[CUDA_MAX_DIMS];     /* the output's shape */
    int stride[CUDA_MAX_DIMS];   /* source stride for each output dim */
} s_gather_t;

__global__ void s_gather_kernel(s_gather_t g, int n, const float *src, float *dst, bool acc)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n)
        return;
    int off = 0, t = o;
    for (int d = g.ndim - 1; d >= 0; d--) {
        int c = t % g.size[d];
        t /= g.size[d];
        off += c * g.stride[d];
    }
    float v = src[off];
    dst[o] = acc ? dst[o] + v : v;
}

static void s_strides(const graph_shape_t *s, int *stride)
{
    int k = 1;
    for (int d = s->ndim - 1; d >= 0; d--) {
        stride[d] = k;
        k *= (int)s->d[d];
    }
}

static int s_gather_run(backend_t *be, const net_node_t *node, const s_gather_t *g,
                        const float *src, float *dst, bool acc)
{
    int n = 1;
    for (int d = 0; d < g->ndim; d++)
        n *= g->size[d];
    s_gather_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(*g, n, src,
                                                                               dst, acc);
    LAUNCH_TRY("gather");
    return 0;
}

/* ----------------------------------------------------------------- permute */

int cuda_permute_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    int xstride[CUDA_MAX_DIMS];
    s_gather_t g;

    s_strides(xs, xstride);
    g.ndim = node->shape.ndim;
    for (int d = 0; d < g.ndim; d++) {
        g.size[d] = (int)node->shape.d[d];
        g.stride[d] = xstride[node->dims[d]];
    }
    return s_gather_run(be, node, &g, op->x[0], op->y, false);
}

int cuda_permute_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    int ystride[CUDA_MAX_DIMS], inv[CUDA_MAX_DIMS];
    s_gather_t g;

    if (!op->dx || !op->dx[0])
        return 0;
    s_strides(&node->shape, ystride);
    for (int d = 0; d < node->shape.ndim; d++)
        inv[node->dims[d]] = d;
    g.ndim = xs->ndim;
    for (int j = 0; j < g.ndim; j++) {
        g.size[j] = (int)xs->d[j];
        g.stride[j] = ystride[inv[j]];
    }
    return s_gather_run(be, node, &g, op->dy, op->dx[0],
                        op->dx_accumulate && op->dx_accumulate[0]);
}

/* ------------------------------------------------------------------ repeat */

typedef struct s_tile {
    int ndim;
    int xsize[CUDA_MAX_DIMS];    /* input shape, padded with leading 1s */
    int reps[CUDA_MAX_DIMS];
    int ystride[CUDA_MAX_DIMS];
    int ntiles;
} s_tile_t;

static void s_tile_make(const backend_op_t *op, s_tile_t *t)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    int pad = node->n_sizes - xs->ndim;

    t->ndim = node->n_sizes;
    t->ntiles = 1;
    for (int d = 0; d < t->ndim; d++) {
        t->xsize[d] = d < pad ? 1 : (int)xs->d[d - pad];
        t->reps[d] = (int)node->sizes[d];
        t->ntiles *= t->reps[d];
    }
    s_strides(&node->shape, t->ystride);
}

__global__ void s_repeat_kernel(s_tile_t t, int n, const float *x, float *y)
{
    int o = blockIdx.x * blockDim.x + threadIdx.x;
    if (o >= n)
        return;
    int off = 0, k = 1, u = o;
    for (int d = t.ndim - 1; d >= 0; d--) {
        int ysize = t.xsize[d] * t.reps[d];
        int c = u % ysize;
        u /= ysize;
        off += (c % t.xsize[d]) * k;
        k *= t.xsize[d];
    }
    y[o] = x[off];
}

__global__ void s_repeat_bwd_kernel(s_tile_t t, int n, const float *dy, float *dx, bool acc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    int base = 0, u = i;
    for (int d = t.ndim - 1; d >= 0; d--) {
        int c = u % t.xsize[d];
        u /= t.xsize[d];
        base += c * t.ystride[d];
    }
    float s = 0.0f;
    for (int j = 0; j < t.ntiles; j++) {
        int off = base, v = j;
        for (int d = t.ndim - 1; d >= 0; d--) {
            int r = v % t.reps[d];
            v /= t.reps[d];
            off += r * t.xsize[d] * t.ystride[d];
        }
        s += dy[off];
    }
    dx[i] = acc ? dx[i] + s : s;
}

int cuda_repeat_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    s_tile_t t;
    int n = (int)cuda_numel(&node->shape);

    s_tile_make(op, &t);
    s_repeat_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(t, n, op->x[0],
                                                                               op->y);
    LAUNCH_TRY("repeat");
    return 0;
}

int cuda_repeat_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    s_tile_t t;
    int n = (int)cuda_numel(cuda_in_shape(op, 0));

    if (!op->dx || !op->dx[0])
        return 0;
    s_tile_make(op, &t);
    s_repeat_bwd_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, cuda_impl(be)->stream>>>(
        t, n, op->dy, op->dx[0], op->dx_accumulate && op->dx_accumulate[0]);
    LAUNCH_TRY("repeat backward");
    return 0;
}

/* ------------------------------------------------------------------ concat */

/* dst (rows x width, pitch dpitch) += src (pitch spitch). */
__global__ void s_add2d_kernel(float *dst, int dpitch, const float *src, int spitch, int rows,
                               int width)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows * width)
        return;
    int r = i / width, c = i - r * width;
    dst[(size_t)r * dpitch + c] += src[(size_t)r * spitch + c];
}

/* outer = product of the dims before dim; inner(i) = the rest of input i. */
static void s_concat_geom(const backend_op_t *op, int *outer, int *row)
{
    const net_node_t *node = op->node;
    int dim = node->dims[0];
    *outer = 1;
    for (int d = 0; d < dim; d++)
        *outer *= (int)node->shape.d[d];
    *row = (int)(cuda_numel(&node->shape) / *outer);
}

int cuda_concat_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int outer, row, col = 0;

    s_concat_geom(op, &outer, &row);
    for (int i = 0; i < op->n_inputs; i++) {
        int w = (int)(cuda_numel(cuda_in_shape(op, i)) / outer);
        if (w > 0)
            CU_TRY(cudaMemcpy2DAsync(op->y + col, (size_t)row * sizeof(float), op->x[i],
                                     (size_t)w * sizeof(float), (size_t)w * sizeof(float),
                                     (size_t)outer, cudaMemcpyDeviceToDevice,
                                     cuda_impl(be)->stream));
        col += w;
    }
    return 0;
}

int cuda_concat_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int outer, row, col = 0;

    s_concat_geom(op, &outer, &row);
    for (int i = 0; i < op->n_inputs; i++) {
        int w = (int)(cuda_numel(cuda_in_shape(op, i)) / outer);
        bool acc = op->dx_accumulate && op->dx_accumulate[i];
        if (op->dx && op->dx[i] && w > 0) {
            if (acc) {
                s_add2d_kernel<<<cuda_blocks((int64_t)outer * w), CUDA_THREADS, 0,
                                 cuda_impl(be)->stream>>>(op->dx[i], w, op->dy + col, row,
                                                          outer, w);
                LAUNCH_TRY("concat backward");
            } else {
                CU_TRY(cudaMemcpy2DAsync(op->dx[i], (size_t)w * sizeof(float), op->dy + col,
                                         (size_t)row * sizeof(float), (size_t)w * sizeof(float),
                                         (size_t)outer, cudaMemcpyDeviceToDevice,
                                         cuda_impl(be)->stream));
            }
        }
        col += w;
    }
    return 0;
}

/* ----------------------------------------------------------------- reshape */

int cuda_reshape_forward(backend_t *be, const backend_op_t *op)
{
    return cuda_copy_or_add(be, op->node, op->y, op->x[0], cuda_numel(&op->node->shape), false);
}

int cuda_reshape_backward(backend_t *be, const backend_op_t *op)
{
    if (!op->dx || !op->dx[0])
        return 0;
    return cuda_copy_or_add(be, op->node, op->dx[0], op->dy, cuda_numel(&op->node->shape),
                            op->dx_accumulate && op->dx_accumulate[0]);
}
