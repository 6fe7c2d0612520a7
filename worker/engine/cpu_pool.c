/*
 * cpu_pool.c - AvgPool2d, MaxPool2d and their adaptive forms on the CPU.
 *
 * All four pool the last two dimensions, plane by plane (one plane per
 * sample and channel), with the planes split over the threads.  The
 * fixed pools use node->pad on both sides and the output size of the
 * node (which already drops the last row and column when node->crop);
 * average pooling divides by k*k, counting padded zeros as PyTorch's
 * count_include_pad does, and max pooling never picks padding.  The
 * adaptive pools take window i from floor(i*in/out) to
 * ceil((i+1)*in/out), as PyTorch does.
 *
 * Max pooling's backward finds the maximum again from the input (the
 * first one in window order wins, a NaN over numbers, as in PyTorch)
 * rather than keeping indices from the forward pass.
 */
#include "cpu_ops.h"

#include <errno.h>
#include <math.h>
#include <string.h>

typedef struct pool_geom {
    int64_t planes;
    int h, w, oh, ow;
    int k, s, p;
    bool adaptive, max;
} pool_geom_t;

static int s_pool_geom(backend_t *be, const backend_op_t *op, pool_geom_t *g)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0), *ys = &op->node->shape;
    const net_node_t *node = op->node;
    graph_op_t o = node->op;

    if (xs->ndim < 2 || ys->ndim != xs->ndim)
        return cpu_op_fail(be, op, -EINVAL, "needs a tensor of 2+ dims");
    g->h = (int)xs->d[xs->ndim - 2];
    g->w = (int)xs->d[xs->ndim - 1];
    g->oh = (int)ys->d[ys->ndim - 2];
    g->ow = (int)ys->d[ys->ndim - 1];
    g->planes = cpu_shape_numel(xs) / ((int64_t)g->h * g->w);
    g->adaptive =
        o == GRAPH_OP_ADAPTIVEAVGPOOL2D || o == GRAPH_OP_ADAPTIVEMAXPOOL2D;
    g->max = o == GRAPH_OP_MAXPOOL2D || o == GRAPH_OP_ADAPTIVEMAXPOOL2D;
    g->k = (int)node->kernel;
    g->s = (int)node->stride;
    g->p = (int)node->pad;
    if (g->planes * g->oh * g->ow != cpu_shape_numel(ys) || g->oh < 1 ||
        g->ow < 1)
        return cpu_op_fail(be, op, -EINVAL,
                           "output shape does not match the input's");
    if (g->adaptive)
        return 0;
    if (g->k < 1 || g->s < 1 || g->p < 0 || (g->oh - 1) * g->s - g->p >= g->h ||
        (g->ow - 1) * g->s - g->p >= g->w)
        return cpu_op_fail(be, op, -EINVAL,
                           "kernel %d stride %d pad %d do not give %dx%d "
                           "from %dx%d",
                           g->k, g->s, g->p, g->oh, g->ow, g->h, g->w);
    return 0;
}

/* Input window [*lo, *hi) of output index i along one dimension. */
static inline void s_window(const pool_geom_t *g, int i, int in, int out,
                            int *lo, int *hi)
{
    if (g->adaptive) {
        *lo = (int)((int64_t)i * in / out);
        *hi = (int)(((int64_t)(i + 1) * in + out - 1) / out);
        return;
    }
    *lo = i * g->s - g->p;
    *hi = *lo + g->k;
    if (*lo < 0)
        *lo = 0;
    if (*hi > in)
        *hi = in;
}

/* Index in the plane of the window's maximum, as PyTorch picks it: the
 * first, unless a NaN comes (the last NaN then); -1 for an empty window. */
static inline int64_t s_argmax(const pool_geom_t *g, const float *x, int h0,
                               int h1, int w0, int w1)
{
    int64_t arg = h0 < h1 && w0 < w1 ? (int64_t)h0 * g->w + w0 : -1;
    float m = -INFINITY;

    for (int ih = h0; ih < h1; ih++)
        for (int iw = w0; iw < w1; iw++) {
            float v = x[(int64_t)ih * g->w + iw];
            if (v > m || isnan(v)) {
                m = v;
                arg = (int64_t)ih * g->w + iw;
            }
        }
    return arg;
}

/* Average pooling without padding: every window is whole, so the rows
 * are summed tap by tap without bounds (the downsample's 2x2/2). */
static void s_avg_plain_forward(const pool_geom_t *g, const float *x, float *y)
{
    const float scale = 1.0f / (float)(g->k * g->k);

    for (int oh = 0; oh < g->oh; oh++) {
        float *yr = y + (int64_t)oh * g->ow;
        for (int ow = 0; ow < g->ow; ow++)
            yr[ow] = 0.0f;
        for (int kh = 0; kh < g->k; kh++) {
            const float *xr = x + (int64_t)(oh * g->s + kh) * g->w;
            for (int kw = 0; kw < g->k; kw++)
#pragma omp simd
                for (int ow = 0; ow < g->ow; ow++)
                    yr[ow] += xr[ow * g->s + kw];
        }
        for (int ow = 0; ow < g->ow; ow++)
            yr[ow] *= scale;
    }
}

static void s_avg_plain_backward(const pool_geom_t *g, const float *dy,
                                 float *dx)
{
    const float scale = 1.0f / (float)(g->k * g->k);

    for (int oh = 0; oh < g->oh; oh++) {
        const float *dr = dy + (int64_t)oh * g->ow;
        for (int kh = 0; kh < g->k; kh++) {
            float *xr = dx + (int64_t)(oh * g->s + kh) * g->w;
            for (int kw = 0; kw < g->k; kw++)
#pragma omp simd
                for (int ow = 0; ow < g->ow; ow++)
                    xr[ow * g->s + kw] += dr[ow] * scale;
        }
    }
}

int cpu_pool_forward(backend_t *be, const backend_op_t *op)
{
    pool_geom_t g;
    int rc = s_pool_geom(be, op, &g);
    const int64_t ihw = (int64_t)g.h * g.w, ohw = (int64_t)g.oh * g.ow;

    if (rc)
        return rc;
#pragma omp parallel for num_threads(cpu_threads_for(be, g.planes *ihw))
    for (int64_t pl = 0; pl < g.planes; pl++) {
        const float *x = op->x[0] + pl * ihw;
        float *y = op->y + pl * ohw;
        if (!g.adaptive && !g.max && g.p == 0) {
            s_avg_plain_forward(&g, x, y);
            continue;
        }
        for (int oh = 0; oh < g.oh; oh++) {
            int h0, h1;
            s_window(&g, oh, g.h, g.oh, &h0, &h1);
            for (int ow = 0; ow < g.ow; ow++) {
                int w0, w1;
                float acc = 0.0f;
                s_window(&g, ow, g.w, g.ow, &w0, &w1);
                if (g.max) {
                    int64_t a = s_argmax(&g, x, h0, h1, w0, w1);
                    y[oh * g.ow + ow] = a < 0 ? -INFINITY : x[a];
                    continue;
                }
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        acc += x[(int64_t)ih * g.w + iw];
                y[oh * g.ow + ow] =
                    acc / (g.adaptive ? (float)((h1 - h0) * (w1 - w0))
                                      : (float)(g.k * g.k));
            }
        }
    }
    return 0;
}

int cpu_pool_backward(backend_t *be, const backend_op_t *op)
{
    pool_geom_t g;
    int rc = s_pool_geom(be, op, &g);
    const int64_t ihw = (int64_t)g.h * g.w, ohw = (int64_t)g.oh * g.ow;
    const bool acc = op->dx_accumulate[0];

    if (rc)
        return rc;
    if (!op->dx[0])
        return 0;
#pragma omp parallel for num_threads(cpu_threads_for(be, g.planes *ihw))
    for (int64_t pl = 0; pl < g.planes; pl++) {
        const float *x = g.max ? op->x[0] + pl * ihw : NULL;
        const float *dy = op->dy + pl * ohw;
        float *dx = op->dx[0] + pl * ihw;
        if (!acc)
            memset(dx, 0, (size_t)ihw * sizeof(float));
        if (!g.adaptive && !g.max && g.p == 0) {
            s_avg_plain_backward(&g, dy, dx);
            continue;
        }
        for (int oh = 0; oh < g.oh; oh++) {
            int h0, h1;
            s_window(&g, oh, g.h, g.oh, &h0, &h1);
            for (int ow = 0; ow < g.ow; ow++) {
                int w0, w1;
                float d = dy[oh * g.ow + ow];
                s_window(&g, ow, g.w, g.ow, &w0, &w1);
                if (g.max) {
                    int64_t a = s_argmax(&g, x, h0, h1, w0, w1);
                    if (a >= 0)
                        dx[a] += d;
                    continue;
                }
                d /= g.adaptive ? (float)((h1 - h0) * (w1 - w0))
                                : (float)(g.k * g.k);
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[(int64_t)ih * g.w + iw] += d;
            }
        }
    }
    return 0;
}
