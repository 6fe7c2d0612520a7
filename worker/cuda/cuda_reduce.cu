/*
 * cuda_reduce.cu - the block format's mean, max and sum operations on the
 * GPU, on the reduction engine of cuda_reduce.cuh.
 *
 * mean/max/sum reduce any set of dimensions keeping each with size 1, so
 * the output has the input's rank; the kept elements are numbered in the
 * output's row-major order, which is what the engine's plan numbers them.
 * Backward broadcasts the output gradient back over the reduced
 * dimensions; for max, the gradient goes to the input elements equal to
 * the maximum, shared evenly among ties (torch.amax's rule).
 */
#include "cuda_reduce.cuh"

int cuda_sum_into(backend_t *be, const net_node_t *node, const cuda_red_plan_t *plan,
                  const float *x, float *out, float scale, bool accumulate, float *partials)
{
    cuda_load_x ld = {x};
    cuda_epi_store epi = {out, scale, accumulate};
    return cuda_red_run<1, cuda_sum_op>(be, node, plan, ld, epi, partials);
}

/* ---------------------------------------------------- mean, max, sum ops */

static uint32_t s_red_mask(const net_node_t *node)
{
    uint32_t m = 0;
    for (int i = 0; i < node->n_dims; i++)
        m |= 1u << node->dims[i];
    return m;
}

static void s_plan(backend_t *be, const net_t *net, const net_node_t *node, cuda_red_plan_t *p)
{
    const graph_shape_t *xs = cuda_in_shape_n(net, node, 0);
    cuda_red_plan_make(p, xs->ndim, xs->d, s_red_mask(node), cuda_impl(be)->sm_count);
}

size_t cuda_reduce_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_red_plan_t p;
    s_plan(be, net, node, &p);
    /* forward: partials; backward of max: the tie counts (one per output). */
    size_t fwd = cuda_align(cuda_red_partials(&p, 1) * sizeof(float));
    size_t bwd = cuda_align((size_t)p.out_n * sizeof(float)) + fwd;
    return fwd > bwd ? fwd : bwd;
}

int cuda_reduce_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    cuda_red_plan_t p;
    cuda_ws_t ws = cuda_ws_of(op);
    float *part = NULL;

    s_plan(be, op->net, node, &p);
    if (cuda_red_partials(&p, 1))
        WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
    if (node->op == GRAPH_OP_MAX) {
        cuda_load_x ld = {op->x[0]};
        cuda_epi_store epi = {op->y, 1.0f, false};
        return cuda_red_run<1, cuda_max_op>(be, node, &p, ld, epi, part);
    }
    float scale = node->op == GRAPH_OP_MEAN ? 1.0f / (float)p.red_n : 1.0f;
    return cuda_sum_into(be, node, &p, op->x[0], op->y, scale, false, part);
}

/* Output offsets of an input element: strides with zeros on reduced dims. */
typedef struct s_expand {
    int ndim;
    int size[CUDA_MAX_DIMS];
    int ostride[CUDA_MAX_DIMS];
} s_expand_t;

static s_expand_t s_expand_make(const graph_shape_t *xs, uint32_t mask)
{
    s_expand_t e;
    int s = 1;
    e.ndim = xs->ndim;
    for (int d = xs->ndim - 1; d >= 0; d--) {
        e.size[d] = (int)xs->d[d];
        bool red = (mask >> d) & 1;
        e.ostride[d] = red ? 0 : s;
        if (!red)
            s *= (int)xs->d[d];
    }
    return e;
}

__device__ __forceinline__ int s_out_offset(const s_expand_t &e, int i)
{
    int off = 0;
    for (int d = e.ndim - 1; d >= 0; d--) {
        int c = i % e.size[d];
        i /= e.size[d];
        off += c * e.ostride[d];
    }
    return off;
}

/* mean and sum: dx = scale * dy broadcast. */
__global__ void s_expand_kernel(s_expand_t e, int n, const float *dy, float scale, float *dx,
                                bool acc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    float g = scale * dy[s_out_offset(e, i)];
    dx[i] = acc ? dx[i] + g : g;
}

/* max: how many inputs tie with each maximum. */
struct s_load_ties {
    const float *x, *y;
    s_expand_t e;
    __device__ __forceinline__ void operator()(int off, int k, float (&v)[1]) const
    {
        v[0] = x[off] == y[k] ? 1.0f : 0.0f;
    }
};

__global__ void s_max_back_kernel(s_expand_t e, int n, const float *x, const float *y,
                                  const float *dy, const float *ties, float *dx, bool acc)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    int o = s_out_offset(e, i);
    float g = x[i] == y[o] ? dy[o] / ties[o] : 0.0f;
    dx[i] = acc ? dx[i] + g : g;
}

int cuda_reduce_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    int n = (int)cuda_numel(xs);
    bool acc = op->dx_accumulate && op->dx_accumulate[0];
    cudaStream_t st = cuda_impl(be)->stream;
    s_expand_t e = s_expand_make(xs, s_red_mask(node));
    cuda_red_plan_t p;

    if (!op->dx || !op->dx[0])
        return 0;
    s_plan(be, op->net, node, &p);
    if (node->op != GRAPH_OP_MAX) {
        float scale = node->op == GRAPH_OP_MEAN ? 1.0f / (float)p.red_n : 1.0f;
        s_expand_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(e, n, op->dy, scale,
                                                                  op->dx[0], acc);
        LAUNCH_TRY("expand");
        return 0;
    }

    cuda_ws_t ws = cuda_ws_of(op);
    float *ties, *part = NULL;
    WS_TAKE(ties, ws, (size_t)p.out_n * sizeof(float));
    if (cuda_red_partials(&p, 1))
        WS_TAKE(part, ws, cuda_red_partials(&p, 1) * sizeof(float));
    s_load_ties ld = {op->x[0], op->y, e};
    cuda_epi_store epi = {ties, 1.0f, false};
    RC_TRY((cuda_red_run<1, cuda_sum_op>(be, node, &p, ld, epi, part)));
    s_max_back_kernel<<<cuda_blocks(n), CUDA_THREADS, 0, st>>>(e, n, op->x[0], op->y, op->dy,
                                                                ties, op->dx[0], acc);
    LAUNCH_TRY("max backward");
    return 0;
}
