/*
 * cpu_reduce.c - mean, max, sum, softmax and concat on the CPU.
 *
 * mean, max and sum reduce any set of dimensions and keep them with
 * size 1 (keepdim).  Their backward passes broadcast the output gradient
 * back; max shares it equally among the elements that equal the maximum,
 * as torch.amax does (ties are rare with real data but common after a
 * ReLU, so the rule matters).  softmax works along one dimension, with
 * the maximum subtracted first; concat copies each input's slab of every
 * outer row.
 */
#include "cpu_ops.h"

#include <errno.h>
#include <math.h>
#include <string.h>

/* ----------------------------------------------------- mean, max, sum */

/* The reduced dimensions as a mask over x's dims; returns the number of
 * elements each output element covers, or -1 if a dim is out of range. */
static int64_t s_reduce_mask(const net_node_t *node, const graph_shape_t *xs,
                             bool *red)
{
    int64_t count = 1;

    for (int i = 0; i < xs->ndim; i++)
        red[i] = false;
    for (int i = 0; i < node->n_dims; i++) {
        int d = node->dims[i];
        if (d < 0 || d >= xs->ndim)
            return -1;
        if (!red[d])
            count *= xs->d[d];
        red[d] = true;
    }
    return count;
}

size_t cpu_reduce_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node)
{
    const graph_shape_t *xs = &net->nodes[node->inputs[0]].shape;

    (void)be;
    if (node->op != GRAPH_OP_MAX)
        return 0;
    return (size_t)(cpu_shape_numel(xs) + cpu_shape_numel(&node->shape)) *
           sizeof(float);
}

static int s_reduce_setup(backend_t *be, const backend_op_t *op, bool *red,
                          int64_t *count, int64_t *ystr)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    int64_t s = 1;

    *count = s_reduce_mask(op->node, xs, red);
    if (*count < 0)
        return cpu_op_fail(be, op, -EINVAL, "dim out of range for %d dims",
                           xs->ndim);
    if (cpu_shape_numel(xs) / (*count ? *count : 1) !=
        cpu_shape_numel(&op->node->shape))
        return cpu_op_fail(be, op, -EINVAL,
                           "output shape does not match the reduction");
    for (int i = xs->ndim - 1; i >= 0; i--) {
        ystr[i] = red[i] ? 0 : s;
        if (!red[i])
            s *= xs->d[i];
    }
    return 0;
}

int cpu_reduce_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    bool red[GRAPH_MAX_DIMS];
    int64_t count, ystr[GRAPH_MAX_DIMS];
    int rc = s_reduce_setup(be, op, red, &count, ystr);
    graph_op_t o = op->node->op;

    if (rc)
        return rc;
    cpu_strided_reduce(be, o == GRAPH_OP_MAX ? CPU_REDUCE_MAX : CPU_REDUCE_SUM,
                       xs->ndim, xs->d, red, op->x[0], op->y,
                       o == GRAPH_OP_MEAN ? 1.0f / (float)count : 1.0f, false);
    return 0;
}

/* max: dx = dy / (number of maxima) at every maximum, 0 elsewhere. */
static int s_max_backward(backend_t *be, const backend_op_t *op,
                          const bool *red, const int64_t *ystr)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    const int64_t nx = cpu_shape_numel(xs);
    const int64_t ny = cpu_shape_numel(&op->node->shape);
    float *t = op->workspace, *cnt = t + nx;
    const float *x = op->x[0];

    if (op->workspace_size < (size_t)(nx + ny) * sizeof(float))
        return cpu_op_fail(be, op, -EINVAL,
                           "workspace of %zu bytes is too small",
                           op->workspace_size);
    cpu_strided_apply(be, CPU_APPLY_SET, xs->ndim, xs->d, t, op->y, ystr, 1.0f);
#pragma omp parallel for simd num_threads(cpu_threads_for(be, nx))
    for (int64_t i = 0; i < nx; i++)
        t[i] = x[i] == t[i] ? 1.0f : 0.0f;
    cpu_strided_reduce(be, CPU_REDUCE_SUM, xs->ndim, xs->d, red, t, cnt, 1.0f,
                       false);
    for (int64_t j = 0; j < ny; j++)
        cnt[j] = cnt[j] > 0.0f ? op->dy[j] / cnt[j] : 0.0f;
    cpu_strided_apply(be, CPU_APPLY_MUL, xs->ndim, xs->d, t, cnt, ystr, 1.0f);
    cpu_copy_acc(be, op->dx[0], t, nx, op->dx_accumulate[0]);
    return 0;
}

int cpu_reduce_backward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    bool red[GRAPH_MAX_DIMS];
    int64_t count, ystr[GRAPH_MAX_DIMS];
    int rc = s_reduce_setup(be, op, red, &count, ystr);
    graph_op_t o = op->node->op;

    if (rc)
        return rc;
    if (!op->dx[0])
        return 0;
    if (o == GRAPH_OP_MAX)
        return s_max_backward(be, op, red, ystr);
    cpu_strided_apply(be, op->dx_accumulate[0] ? CPU_APPLY_ADD : CPU_APPLY_SET,
                      xs->ndim, xs->d, op->dx[0], op->dy, ystr,
                      o == GRAPH_OP_MEAN ? 1.0f / (float)count : 1.0f);
    return 0;
}

/* --------------------------------------------------------------- softmax */

/* outer x n x inner around dimension dim of s. */
static void s_split(const graph_shape_t *s, int dim, int64_t *outer, int64_t *n,
                    int64_t *inner)
{
    *outer = *inner = 1;
    for (int i = 0; i < dim; i++)
        *outer *= s->d[i];
    *n = s->d[dim];
    for (int i = dim + 1; i < s->ndim; i++)
        *inner *= s->d[i];
}

int cpu_softmax_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    int dim = op->node->n_dims ? op->node->dims[0] : -1;
    int64_t outer, n, inner;

    if (dim < 0 || dim >= xs->ndim)
        return cpu_op_fail(be, op, -EINVAL, "dim %d out of range", dim);
    s_split(xs, dim, &outer, &n, &inner);
#pragma omp parallel for num_threads(cpu_threads_for(be, outer *n *inner))
    for (int64_t oj = 0; oj < outer * inner; oj++) {
        int64_t base = oj / inner * n * inner + oj % inner;
        const float *x = op->x[0] + base;
        float *y = op->y + base, m = -INFINITY;
        double sum = 0.0;
        float r;
        for (int64_t i = 0; i < n; i++)
            m = fmaxf(m, x[i * inner]);
        for (int64_t i = 0; i < n; i++) {
            float e = expf(x[i * inner] - m);
            y[i * inner] = e;
            sum += e;
        }
        r = (float)(1.0 / sum);
        for (int64_t i = 0; i < n; i++)
            y[i * inner] *= r;
    }
    return 0;
}

int cpu_softmax_backward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    int dim = op->node->n_dims ? op->node->dims[0] : -1;
    int64_t outer, n, inner;
    const bool acc = op->dx_accumulate[0];

    if (dim < 0 || dim >= xs->ndim)
        return cpu_op_fail(be, op, -EINVAL, "dim %d out of range", dim);
    if (!op->dx[0])
        return 0;
    s_split(xs, dim, &outer, &n, &inner);
#pragma omp parallel for num_threads(cpu_threads_for(be, outer *n *inner))
    for (int64_t oj = 0; oj < outer * inner; oj++) {
        int64_t base = oj / inner * n * inner + oj % inner;
        const float *y = op->y + base, *dy = op->dy + base;
        float *dx = op->dx[0] + base, dot;
        double s = 0.0;
        for (int64_t i = 0; i < n; i++)
            s += (double)dy[i * inner] * y[i * inner];
        dot = (float)s;
        for (int64_t i = 0; i < n; i++) {
            float g = y[i * inner] * (dy[i * inner] - dot);
            dx[i * inner] = acc ? dx[i * inner] + g : g;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- concat */

/* Rows before dim, and each input's slab length per row. */
static int s_concat_setup(backend_t *be, const backend_op_t *op, int64_t *outer,
                          int64_t *slab, int64_t *row)
{
    const graph_shape_t *ys = &op->node->shape;
    int dim = op->node->n_dims ? op->node->dims[0] : -1;
    int64_t inner, n, total = 0;

    if (dim < 0 || dim >= ys->ndim)
        return cpu_op_fail(be, op, -EINVAL, "dim %d out of range", dim);
    s_split(ys, dim, outer, &n, &inner);
    for (int k = 0; k < op->n_inputs; k++) {
        const graph_shape_t *xs = cpu_in_shape(op, k);
        if (xs->ndim != ys->ndim)
            return cpu_op_fail(be, op, -EINVAL,
                               "input %d has %d dims, output %d", k, xs->ndim,
                               ys->ndim);
        slab[k] = xs->d[dim] * inner;
        total += xs->d[dim];
    }
    if (total != n)
        return cpu_op_fail(be, op, -EINVAL,
                           "inputs give %lld along dim %d, output %lld",
                           (long long)total, dim, (long long)n);
    *row = n * inner;
    return 0;
}

int cpu_concat_forward(backend_t *be, const backend_op_t *op)
{
    int64_t outer, row, slab[op->n_inputs];
    int rc = s_concat_setup(be, op, &outer, slab, &row);

    if (rc)
        return rc;
#pragma omp parallel for num_threads(cpu_threads_for(be, outer *row))
    for (int64_t o = 0; o < outer; o++) {
        float *y = op->y + o * row;
        for (int k = 0; k < op->n_inputs; k++) {
            memcpy(y, op->x[k] + o * slab[k], (size_t)slab[k] * sizeof(float));
            y += slab[k];
        }
    }
    return 0;
}

int cpu_concat_backward(backend_t *be, const backend_op_t *op)
{
    int64_t outer, row, slab[op->n_inputs];
    int rc = s_concat_setup(be, op, &outer, slab, &row);

    if (rc)
        return rc;
#pragma omp parallel for num_threads(cpu_threads_for(be, outer *row))
    for (int64_t o = 0; o < outer; o++) {
        const float *dy = op->dy + o * row;
        for (int k = 0; k < op->n_inputs; k++) {
            float *dx = op->dx[k];
            if (dx) {
                dx += o * slab[k];
                if (op->dx_accumulate[k])
                    for (int64_t i = 0; i < slab[k]; i++)
                        dx[i] += dy[i];
                else
                    memcpy(dx, dy, (size_t)slab[k] * sizeof(float));
            }
            dy += slab[k];
        }
    }
    return 0;
}
