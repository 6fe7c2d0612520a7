/*
 * cpu_norm.c - BN and LN on the CPU.
 *
 * BN normalises each channel (dim 1) over the batch and every dimension
 * after the channel, as PyTorch's BatchNorm: in training with the batch
 * mean and biased variance, updating running_mean and running_var
 * (unbiased, momentum 0.1) in w[2] and w[3]; in evaluation with those
 * running statistics.  The batch mean and 1/sqrt(var + eps) are kept in
 * the node's saved area for the backward pass.
 *
 * LN normalises over the last dimension.  Its backward recomputes each
 * row's statistics from the input, which it reads anyway, so it keeps
 * nothing between the passes.
 *
 * Sums run in float over one contiguous row (vectorised, cpu_vec.c) and
 * in double across rows, so the statistics of a 64x32x32 channel are
 * exact to float precision.
 */
#include "cpu_ops.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#define NORM_EPS 1e-5
#define BN_MOMENTUM 0.1

/* ------------------------------------------------------------------- BN */

typedef struct bn_geom {
    int64_t n, c, inner, count;
} bn_geom_t;

static int s_bn_geom(backend_t *be, const backend_op_t *op, bn_geom_t *g)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);

    if (xs->ndim < 2 || xs->d[1] != op->node->in_ch)
        return cpu_op_fail(be, op, -EINVAL,
                           "input has no channel dimension of %lld",
                           (long long)op->node->in_ch);
    g->n = xs->d[0];
    g->c = xs->d[1];
    g->inner = cpu_shape_numel(xs) / (g->n * g->c);
    g->count = g->n * g->inner;
    return 0;
}

size_t cpu_bn_saved(const net_t *net, const net_node_t *node)
{
    (void)net;
    return (size_t)(2 * node->in_ch) * sizeof(float);
}

/*
 * Batch mean and biased variance of channel c in one pass: sums of
 * x - shift and its square, with the shift the mean of the channel's
 * first row, close enough to the batch mean that nothing cancels.
 */
static void s_bn_stats(const bn_geom_t *g, const float *x, int64_t c,
                       double *mean, double *var)
{
    double s = 0.0, q = 0.0, m;
    float shift;

    cpu_vec_sums(x + c * g->inner, 0.0f, g->inner, &s, &q);
    shift = (float)(s / (double)g->inner);
    s = q = 0.0;
    for (int64_t n = 0; n < g->n; n++)
        cpu_vec_sums(x + (n * g->c + c) * g->inner, shift, g->inner, &s, &q);
    m = s / (double)g->count;
    *mean = shift + m;
    *var = q / (double)g->count - m * m;
    if (*var < 0.0)
        *var = 0.0;
}

int cpu_bn_forward(backend_t *be, const backend_op_t *op)
{
    bn_geom_t g;
    int rc = s_bn_geom(be, op, &g);
    const float *gamma = op->w[0], *beta = op->w[1];
    float *rmean = (float *)op->w[2], *rvar = (float *)op->w[3];
    float *saved = op->saved;

    if (rc)
        return rc;
    if (op->training && g.count < 2)
        return cpu_op_fail(be, op, -EINVAL,
                           "training needs more than one value per channel");

#pragma omp parallel for num_threads(cpu_threads_for(be, g.n *g.c *g.inner))   \
    schedule(dynamic)
    for (int64_t c = 0; c < g.c; c++) {
        double mean, var, invstd;
        float a, b;
        if (op->training) {
            s_bn_stats(&g, op->x[0], c, &mean, &var);
            rmean[c] =
                (float)((1.0 - BN_MOMENTUM) * rmean[c] + BN_MOMENTUM * mean);
            rvar[c] = (float)((1.0 - BN_MOMENTUM) * rvar[c] +
                              BN_MOMENTUM * var * (double)g.count /
                                  (double)(g.count - 1));
        } else {
            mean = rmean[c];
            var = rvar[c];
        }
        invstd = 1.0 / sqrt(var + NORM_EPS);
        if (saved) {
            saved[c] = (float)mean;
            saved[g.c + c] = (float)invstd;
        }
        a = (float)(gamma[c] * invstd);
        b = (float)(beta[c] - mean * gamma[c] * invstd);
        for (int64_t n = 0; n < g.n; n++)
            cpu_vec_axpb(op->y + (n * g.c + c) * g.inner,
                         op->x[0] + (n * g.c + c) * g.inner, a, b, g.inner);
    }
    return 0;
}

int cpu_bn_backward(backend_t *be, const backend_op_t *op)
{
    bn_geom_t g;
    int rc = s_bn_geom(be, op, &g);
    const float *gamma = op->w[0];
    const float *saved = op->saved;
    float *dx = op->dx[0];
    float *dgamma = op->dw ? op->dw[0] : NULL;
    float *dbeta = op->dw ? op->dw[1] : NULL;
    const bool acc = op->dx_accumulate[0];

    if (rc)
        return rc;

#pragma omp parallel for num_threads(cpu_threads_for(be, g.n *g.c *g.inner))   \
    schedule(dynamic)
    for (int64_t c = 0; c < g.c; c++) {
        double mean, var, invstd, sdy = 0.0, sdyx = 0.0;
        float m, k1, k2, k3;

        if (!op->training) {
            mean = op->w[2][c];
            invstd = 1.0 / sqrt(op->w[3][c] + NORM_EPS);
        } else if (saved) {
            mean = saved[c];
            invstd = saved[g.c + c];
        } else {
            s_bn_stats(&g, op->x[0], c, &mean, &var);
            invstd = 1.0 / sqrt(var + NORM_EPS);
        }
        m = (float)mean;
        for (int64_t n = 0; n < g.n; n++)
            cpu_vec_dot2(op->dy + (n * g.c + c) * g.inner,
                         op->x[0] + (n * g.c + c) * g.inner, m, g.inner, &sdy,
                         &sdyx);
        sdyx *= invstd;
        if (dgamma)
            dgamma[c] = (float)sdyx;
        if (dbeta)
            dbeta[c] = (float)sdy;
        if (!dx)
            continue;

        /* dx = k1 * dy - k2 - k3 * (x - mean); in evaluation the
         * statistics are constants, so only the first term remains. */
        k1 = (float)(gamma[c] * invstd);
        k2 = op->training ? (float)(gamma[c] * invstd * sdy / g.count) : 0.0f;
        k3 = op->training ? (float)(gamma[c] * invstd * invstd * sdyx / g.count)
                          : 0.0f;
        for (int64_t n = 0; n < g.n; n++)
            cpu_vec_bn_grad(dx + (n * g.c + c) * g.inner,
                            op->dy + (n * g.c + c) * g.inner,
                            op->x[0] + (n * g.c + c) * g.inner, m, k1, k2, k3,
                            g.inner, acc);
    }
    return 0;
}

/* ------------------------------------------------------------------- LN */

size_t cpu_ln_saved(const net_t *net, const net_node_t *node)
{
    (void)net;
    (void)node;
    return 0;
}

/* Per-thread partial sums of dgamma and dbeta: 2 * D floats each. */
size_t cpu_ln_workspace(const backend_t *be, const net_t *net,
                        const net_node_t *node)
{
    const graph_shape_t *xs = &net->nodes[node->inputs[0]].shape;
    int64_t d = xs->ndim ? xs->d[xs->ndim - 1] : 0;

    return (size_t)(2 * d * be->threads) * sizeof(float);
}

static void s_ln_row_stats(const float *x, int64_t d, float *mean, float *rstd)
{
    double s = 0.0, q = 0.0, m;

    for (int64_t i = 0; i < d; i++)
        s += x[i];
    m = s / (double)d;
    for (int64_t i = 0; i < d; i++)
        q += (x[i] - m) * (x[i] - m);
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt(q / (double)d + NORM_EPS));
}

static int s_ln_dims(backend_t *be, const backend_op_t *op, int64_t *rows,
                     int64_t *d)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);

    if (xs->ndim < 1 || xs->d[xs->ndim - 1] != op->node->in_ch)
        return cpu_op_fail(be, op, -EINVAL, "last dimension is not %lld",
                           (long long)op->node->in_ch);
    *d = xs->d[xs->ndim - 1];
    *rows = cpu_shape_numel(xs) / *d;
    return 0;
}

int cpu_ln_forward(backend_t *be, const backend_op_t *op)
{
    int64_t rows, d;
    int rc = s_ln_dims(be, op, &rows, &d);
    const float *gamma = op->w[0], *beta = op->w[1];

    if (rc)
        return rc;
#pragma omp parallel for num_threads(cpu_threads_for(be, rows *d))
    for (int64_t r = 0; r < rows; r++) {
        const float *x = op->x[0] + r * d;
        float *y = op->y + r * d, mean, rstd;
        s_ln_row_stats(x, d, &mean, &rstd);
#pragma omp simd
        for (int64_t i = 0; i < d; i++)
            y[i] = (x[i] - mean) * rstd * gamma[i] + beta[i];
    }
    return 0;
}

int cpu_ln_backward(backend_t *be, const backend_op_t *op)
{
    int64_t rows, d;
    int rc = s_ln_dims(be, op, &rows, &d);
    const float *gamma = op->w[0];
    float *dx = op->dx[0], *ws = op->workspace;
    float *dgamma = op->dw ? op->dw[0] : NULL;
    float *dbeta = op->dw ? op->dw[1] : NULL;
    const bool acc = op->dx_accumulate[0];
    const int threads = cpu_threads_for(be, rows * d);

    if (rc)
        return rc;
    if (op->workspace_size < (size_t)(2 * d * threads) * sizeof(float))
        return cpu_op_fail(be, op, -EINVAL,
                           "workspace of %zu bytes is too small",
                           op->workspace_size);

    memset(ws, 0, (size_t)(2 * d * threads) * sizeof(float));
#pragma omp parallel num_threads(threads)
    {
        float *pg = ws + 2 * d * omp_get_thread_num(), *pb = pg + d;
#pragma omp for
        for (int64_t r = 0; r < rows; r++) {
            const float *x = op->x[0] + r * d, *dy = op->dy + r * d;
            float mean, rstd, m1 = 0.0f, m2 = 0.0f;
            s_ln_row_stats(x, d, &mean, &rstd);
            for (int64_t i = 0; i < d; i++) {
                float xh = (x[i] - mean) * rstd, g = dy[i] * gamma[i];
                pg[i] += dy[i] * xh;
                pb[i] += dy[i];
                m1 += g;
                m2 += g * xh;
            }
            if (!dx)
                continue;
            m1 /= (float)d;
            m2 /= (float)d;
            for (int64_t i = 0; i < d; i++) {
                float xh = (x[i] - mean) * rstd;
                float v = rstd * (dy[i] * gamma[i] - m1 - xh * m2);
                dx[r * d + i] = acc ? dx[r * d + i] + v : v;
            }
        }
    }

    for (int64_t i = 0; i < d; i++) {
        float sg = 0.0f, sb = 0.0f;
        for (int t = 0; t < threads; t++) {
            sg += ws[2 * d * t + i];
            sb += ws[2 * d * t + d + i];
        }
        if (dgamma)
            dgamma[i] = sg;
        if (dbeta)
            dbeta[i] = sb;
    }
    return 0;
}
