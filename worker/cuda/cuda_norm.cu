/*
 * cuda_norm.cu - batch normalisation (BN, over dim 1) and layer
 * normalisation (LN, over the last dimension), forward and backward.
 *
 * BN in training uses the batch's statistics with the biased variance to
 * normalise, and updates the running statistics (w[2], w[3]) in place
 * with momentum 0.1 and the unbiased variance, as PyTorch does; in
 * evaluation it uses the running statistics.  Epsilon is 1e-5 for both.
 *
 * The per-channel sums run on the reduction engine, split over many blocks
 * (a BN of 16 channels over a batch of 256 images would otherwise keep 16
 * multiprocessors of 132 busy), over values shifted by each channel's
 * first element so that the variance from sum and sum of squares does
 * not cancel.  The mean and 1/sqrt(var + eps) used are kept in the node's
 * saved state for backward.  LN keeps each row's mean and 1/std the same
 * way; its rows are short (the channel count), so a warp handles a row.
 */
#include "cuda_reduce.cuh"

#define NORM_EPS 1e-5f
#define BN_MOMENTUM 0.1f

/* ------------------------------------------------------------------- BN */

static void s_bn_plan(backend_t *be, const graph_shape_t *xs, cuda_red_plan_t *p)
{
    uint32_t mask = 0;
    for (int d = 0; d < xs->ndim; d++)
        if (d != 1)
            mask |= 1u << d;
    cuda_red_plan_make(p, xs->ndim, xs->d, mask, cuda_impl(be)->sm_count);
}

size_t cuda_bn_saved(backend_t *be, const net_t *net, const net_node_t *node)
{
    (void)be;
    (void)net;
    return 2 * (size_t)node->shape.d[1] * sizeof(float);
}

size_t cuda_bn_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_red_plan_t p;
    s_bn_plan(be, cuda_in_shape_n(net, node, 0), &p);
    return cuda_align(cuda_red_partials(&p, 2) * sizeof(float)) +
           cuda_align(2 * (size_t)node->shape.d[1] * sizeof(float));
}

/* Sum and sum of squares of x - x[first element of the channel]. */
struct s_bn_load_stats {
    const float *x;
    int R;
    __device__ __forceinline__ void operator()(int off, int k, float (&v)[2]) const
    {
        float t = x[off] - x[k * R];
        v[0] = t;
        v[1] = t * t;
    }
};

struct s_bn_epi_stats {
    const float *x;
    int R;
    float n;
    float *mean, *invstd;      /* saved state */
    float *run_mean, *run_var;
    __device__ __forceinline__ void operator()(int k, const float (&v)[2]) const
    {
        float m1 = v[0] / n;
        float var = fmaxf(v[1] / n - m1 * m1, 0.0f);
        float mu = x[k * R] + m1;
        mean[k] = mu;
        invstd[k] = rsqrtf(var + NORM_EPS);
        float unbiased = n > 1.0f ? var * n / (n - 1.0f) : var;
        run_mean[k] = (1.0f - BN_MOMENTUM) * run_mean[k] + BN_MOMENTUM * mu;
        run_var[k] = (1.0f - BN_MOMENTUM) * run_var[k] + BN_MOMENTUM * unbiased;
    }
};

/* Running statistics into (mean, invstd) for evaluation. */
__global__ void s_bn_eval_stats_kernel(const float *rm, const float *rv, float *mean,
                                       float *invstd, int c)
{
    int k = blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= c)
        return;
    mean[k] = rm[k];
    invstd[k] = rsqrtf(rv[k] + NORM_EPS);
}

/*
 * Per-plane launches: blockIdx.x is the (sample, channel) plane, so the
 * channel comes from the block and no thread divides per element.
 */
static void s_plane_grid(int planes, int R, dim3 *grid, dim3 *block)
{
    int t = R >= CUDA_THREADS ? CUDA_THREADS : ((R + 31) / 32) * 32;
    *block = dim3((unsigned)t);
    *grid = dim3((unsigned)planes, (unsigned)((R + t - 1) / t));
}

/* y = x * a + b with a = gamma * invstd, b = beta - mean * a (the CPU's). */
__global__ void s_bn_apply_kernel(const float *x, float *y, int C, int R, const float *mean,
                                  const float *invstd, const float *gamma, const float *beta)
{
    int plane = blockIdx.x, c = plane % C;
    int r = blockIdx.y * blockDim.x + threadIdx.x;
    if (r >= R)
        return;
    size_t i = (size_t)plane * R + r;
    float a = gamma[c] * invstd[c], b = beta[c] - mean[c] * a;
    y[i] = x[i] * a + b;
}

/* The element count of dim 1's slices and the (C, R) of the NCHW layout. */
static void s_bn_geom(const graph_shape_t *xs, int *n, int *C, int *R)
{
    *n = (int)cuda_numel(xs);
    *C = (int)xs->d[1];
    *R = 1;
    for (int d = 2; d < xs->ndim; d++)
        *R *= (int)xs->d[d];
}

int cuda_bn_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    cudaStream_t st = cuda_impl(be)->stream;
    cuda_ws_t ws = cuda_ws_of(op);
    int n, C, R;
    float *mean = (float *)op->saved, *invstd;

    s_bn_geom(xs, &n, &C, &R);
    if (op->training && n / C < 2)
        return cuda_failf(be, node, -EINVAL, "training needs more than one value per channel");
    if (!mean && op->training)
        return cuda_failf(be, node, -EINVAL, "no saved state for the statistics");
    if (!mean)
        WS_TAKE(mean, ws, 2 * (size_t)C * sizeof(float));   /* evaluation: scratch */
    invstd = mean + C;

    if (op->training) {
        cuda_red_plan_t p;
        float *part = NULL;
        s_bn_plan(be, xs, &p);
        if (cuda_red_partials(&p, 2))
            WS_TAKE(part, ws, cuda_red_partials(&p, 2) * sizeof(float));
        s_bn_load_stats ld = {op->x[0], R};
        s_bn_epi_stats epi = {op->x[0], R, (float)(n / C), mean, invstd,
                              (float *)op->w[2], (float *)op->w[3]};
        RC_TRY((cuda_red_run<2, cuda_sum_op>(be, node, &p, ld, epi, part)));
    } else {
        s_bn_eval_stats_kernel<<<cuda_blocks(C), CUDA_THREADS, 0, st>>>(op->w[2], op->w[3],
                                                                       mean, invstd, C);
        LAUNCH_TRY("BN");
    }
    dim3 grid, block;
    s_plane_grid(n / R, R, &grid, &block);
    s_bn_apply_kernel<<<grid, block, 0, st>>>(op->x[0], op->y, C, R, mean, invstd, op->w[0],
                                              op->w[1]);
    LAUNCH_TRY("BN");
    return 0;
}

/* Sums of dy and dy * xhat per channel. */
struct s_bn_load_grad {
    const float *x, *dy, *mean, *invstd;
    __device__ __forceinline__ void operator()(int off, int k, float (&v)[2]) const
    {
        float g = dy[off];
        v[0] = g;
        v[1] = g * (x[off] - mean[k]) * invstd[k];
    }
};

struct s_bn_epi_grad {
    float *sums;               /* workspace: dbeta then dgamma */
    float *dgamma, *dbeta;     /* may be NULL */
    int C;
    __device__ __forceinline__ void operator()(int k, const float (&v)[2]) const
    {
        sums[k] = v[0];
        sums[C + k] = v[1];
        if (dbeta)
            dbeta[k] = v[0];
        if (dgamma)
            dgamma[k] = v[1];
    }
};

/* Training: dx = gamma*invstd/N * (N*dy - sum(dy) - xhat*sum(dy*xhat)).
 * Evaluation (the statistics are constants): dx = gamma*invstd*dy. */
__global__ void s_bn_dx_kernel(const float *x, const float *dy, float *dx, int C, int R,
                               float count, const float *mean, const float *invstd,
                               const float *gamma, const float *sums, bool training, bool acc)
{
    int plane = blockIdx.x, c = plane % C;
    int r = blockIdx.y * blockDim.x + threadIdx.x;
    if (r >= R)
        return;
    size_t i = (size_t)plane * R + r;
    float k1 = gamma[c] * invstd[c], g;
    if (training) {
        /* the CPU's form: k1 * dy - k2 - k3 * (x - mean) */
        float k2 = k1 * sums[c] / count, k3 = k1 * invstd[c] * sums[C + c] / count;
        g = k1 * dy[i] - k2 - k3 * (x[i] - mean[c]);
    } else {
        g = k1 * dy[i];
    }
    dx[i] = acc ? dx[i] + g : g;
}

int cuda_bn_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const graph_shape_t *xs = cuda_in_shape(op, 0);
    cudaStream_t st = cuda_impl(be)->stream;
    cuda_red_plan_t p;
    cuda_ws_t ws = cuda_ws_of(op);
    float *part = NULL, *sums;
    int n, C, R;
    const float *mean = (const float *)op->saved;

    s_bn_geom(xs, &n, &C, &R);
    if (!mean)
        return cuda_failf(be, node, -EINVAL, "no saved state for the statistics");
    s_bn_plan(be, xs, &p);
    if (cuda_red_partials(&p, 2))
        WS_TAKE(part, ws, cuda_red_partials(&p, 2) * sizeof(float));
    WS_TAKE(sums, ws, 2 * (size_t)C * sizeof(float));

    s_bn_load_grad ld = {op->x[0], op->dy, mean, mean + C};
    s_bn_epi_grad epi = {sums, op->dw ? op->dw[0] : NULL, op->dw ? op->dw[1] : NULL, C};
    RC_TRY((cuda_red_run<2, cuda_sum_op>(be, node, &p, ld, epi, part)));

    if (op->dx && op->dx[0]) {
        dim3 grid, block;
        s_plane_grid(n / R, R, &grid, &block);
        s_bn_dx_kernel<<<grid, block, 0, st>>>(op->x[0], op->dy, op->dx[0], C, R,
                                               (float)(n / C), mean, mean + C, op->w[0], sums,
                                               op->training,
                                               op->dx_accumulate && op->dx_accumulate[0]);
        LAUNCH_TRY("BN backward");
    }
    return 0;
}

/* ------------------------------------------------------------------- LN */

static void s_ln_geom(const graph_shape_t *s, int *rows, int *d)
{
    *d = (int)s->d[s->ndim - 1];
    *rows = (int)(cuda_numel(s) / *d);
}

size_t cuda_ln_saved(backend_t *be, const net_t *net, const net_node_t *node)
{
    int rows, d;
    (void)be;
    (void)net;
    s_ln_geom(&node->shape, &rows, &d);
    return 2 * (size_t)rows * sizeof(float);
}

static void s_ln_plan(backend_t *be, const graph_shape_t *s, cuda_red_plan_t *p)
{
    int rows, d;
    int64_t shape[2];
    s_ln_geom(s, &rows, &d);
    shape[0] = rows;
    shape[1] = d;
    cuda_red_plan_make(p, 2, shape, 1u, cuda_impl(be)->sm_count);
}

size_t cuda_ln_workspace(backend_t *be, const net_t *net, const net_node_t *node)
{
    cuda_red_plan_t p;
    (void)net;
    s_ln_plan(be, &node->shape, &p);
    return cuda_align(cuda_red_partials(&p, 2) * sizeof(float));
}

/* One warp per row: mean, then variance about it, then the output. */
__global__ void s_ln_fwd_kernel(const float *x, float *y, int rows, int d, const float *gamma,
                                const float *beta, float *mean, float *rstd)
{
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    const float *xr = x + (size_t)row * d;
    float *yr = y + (size_t)row * d;
    float s = 0.0f, q = 0.0f;

    for (int i = lane; i < d; i += 32)
        s += xr[i];
    for (int o = 16; o > 0; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    float mu = s / (float)d;
    for (int i = lane; i < d; i += 32) {
        float t = xr[i] - mu;
        q += t * t;
    }
    for (int o = 16; o > 0; o >>= 1)
        q += __shfl_xor_sync(0xffffffffu, q, o);
    float r = rsqrtf(q / (float)d + NORM_EPS);
    for (int i = lane; i < d; i += 32)
        yr[i] = (xr[i] - mu) * r * gamma[i] + beta[i];
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = r;
    }
}

int cuda_ln_forward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    int rows, d;
    float *mean = (float *)op->saved;

    if (!mean)
        return cuda_failf(be, node, -EINVAL, "no saved state for the statistics");
    s_ln_geom(&node->shape, &rows, &d);
    s_ln_fwd_kernel<<<(rows + 7) / 8, 256, 0, cuda_impl(be)->stream>>>(
        op->x[0], op->y, rows, d, op->w[0], op->w[1], mean, mean + rows);
    LAUNCH_TRY("LN");
    return 0;
}

/* dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * gamma. */
__global__ void s_ln_dx_kernel(const float *x, const float *dy, float *dx, int rows, int d,
                               const float *gamma, const float *mean, const float *rstd,
                               bool acc)
{
    int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (row >= rows)
        return;
    size_t base = (size_t)row * d;
    float mu = mean[row], r = rstd[row], s1 = 0.0f, s2 = 0.0f;

    for (int i = lane; i < d; i += 32) {
        float g = dy[base + i] * gamma[i];
        s1 += g;
        s2 += g * (x[base + i] - mu) * r;
    }
    for (int o = 16; o > 0; o >>= 1) {
        s1 += __shfl_xor_sync(0xffffffffu, s1, o);
        s2 += __shfl_xor_sync(0xffffffffu, s2, o);
    }
    s1 /= (float)d;
    s2 /= (float)d;
    for (int i = lane; i < d; i += 32) {
        float xhat = (x[base + i] - mu) * r;
        float v = r * (dy[base + i] * gamma[i] - s1 - xhat * s2);
        dx[base + i] = acc ? dx[base + i] + v : v;
    }
}

struct s_ln_load_grad {
    const float *x, *dy, *mean, *rstd;
    int d;
    __device__ __forceinline__ void operator()(int off, int, float (&v)[2]) const
    {
        int row = off / d;
        float g = dy[off];
        v[0] = g * (x[off] - mean[row]) * rstd[row];
        v[1] = g;
    }
};

struct s_ln_epi_grad {
    float *dgamma, *dbeta;
    __device__ __forceinline__ void operator()(int k, const float (&v)[2]) const
    {
        if (dgamma)
            dgamma[k] = v[0];
        if (dbeta)
            dbeta[k] = v[1];
    }
};

int cuda_ln_backward(backend_t *be, const backend_op_t *op)
{
    const net_node_t *node = op->node;
    const float *mean = (const float *)op->saved;
    cuda_red_plan_t p;
    cuda_ws_t ws = cuda_ws_of(op);
    float *part = NULL;
    int rows, d;

    if (!mean)
        return cuda_failf(be, node, -EINVAL, "no saved state for the statistics");
    s_ln_geom(&node->shape, &rows, &d);
    if (op->dw && (op->dw[0] || op->dw[1])) {
        s_ln_plan(be, &node->shape, &p);
        if (cuda_red_partials(&p, 2))
            WS_TAKE(part, ws, cuda_red_partials(&p, 2) * sizeof(float));
        s_ln_load_grad ld = {op->x[0], op->dy, mean, mean + rows, d};
        s_ln_epi_grad epi = {op->dw[0], op->dw[1]};
        RC_TRY((cuda_red_run<2, cuda_sum_op>(be, node, &p, ld, epi, part)));
    }
    if (op->dx && op->dx[0]) {
        s_ln_dx_kernel<<<(rows + 7) / 8, 256, 0, cuda_impl(be)->stream>>>(
            op->x[0], op->dy, op->dx[0], rows, d, op->w[0], mean, mean + rows,
            op->dx_accumulate && op->dx_accumulate[0]);
        LAUNCH_TRY("LN backward");
    }
    return 0;
}
