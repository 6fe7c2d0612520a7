/*
 * cpu_shape.c - permute, repeat and reshape (and the block output, an
 * identity) on the CPU.
 *
 * Tensors are contiguous, so reshape is a copy, or nothing when the
 * network gives it the input's own memory as output.  permute is a
 * strided copy with the input's strides reordered.  repeat views the
 * output (r0*s0, r1*s1, ...) as (r0, s0, r1, s1, ...) and the input as
 * (1, s0, 1, s1, ...), so the forward pass is a broadcast and the
 * backward pass sums over the r dimensions; repeat counts beyond the
 * input's dimensions add leading dimensions, as torch.Tensor.repeat.
 */
#include "cpu_ops.h"

#include <errno.h>

/* ---------------------------------------------------------------- reshape */

int cpu_reshape_forward(backend_t *be, const backend_op_t *op)
{
    const int64_t n = cpu_shape_numel(&op->node->shape);

    if (n != cpu_shape_numel(cpu_in_shape(op, 0)))
        return cpu_op_fail(be, op, -EINVAL, "input and output sizes differ");
    cpu_copy_acc(be, op->y, op->x[0], n, false);
    return 0;
}

int cpu_reshape_backward(backend_t *be, const backend_op_t *op)
{
    const int64_t n = cpu_shape_numel(&op->node->shape);

    if (n != cpu_shape_numel(cpu_in_shape(op, 0)))
        return cpu_op_fail(be, op, -EINVAL, "input and output sizes differ");
    if (op->dx[0])
        cpu_copy_acc(be, op->dx[0], op->dy, n, op->dx_accumulate[0]);
    return 0;
}

/* ---------------------------------------------------------------- permute */

static void s_contiguous_strides(const graph_shape_t *s, int64_t *st)
{
    int64_t v = 1;

    for (int i = s->ndim - 1; i >= 0; i--) {
        st[i] = v;
        v *= s->d[i];
    }
}

static int s_permute_check(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0), *ys = &op->node->shape;
    bool seen[GRAPH_MAX_DIMS] = {false};

    if (op->node->n_dims != xs->ndim || ys->ndim != xs->ndim)
        return cpu_op_fail(be, op, -EINVAL,
                           "%d dims in the order for a %d-D input",
                           op->node->n_dims, xs->ndim);
    for (int j = 0; j < xs->ndim; j++) {
        int p = op->node->dims[j];
        if (p < 0 || p >= xs->ndim || seen[p] || ys->d[j] != xs->d[p])
            return cpu_op_fail(be, op, -EINVAL,
                               "order is not a permutation of the input's "
                               "dims");
        seen[p] = true;
    }
    return 0;
}

int cpu_permute_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0), *ys = &op->node->shape;
    int64_t xst[GRAPH_MAX_DIMS], src[GRAPH_MAX_DIMS];
    int rc = s_permute_check(be, op);

    if (rc)
        return rc;
    s_contiguous_strides(xs, xst);
    for (int j = 0; j < ys->ndim; j++)
        src[j] = xst[op->node->dims[j]];
    cpu_strided_apply(be, CPU_APPLY_SET, ys->ndim, ys->d, op->y, op->x[0], src,
                      1.0f);
    return 0;
}

int cpu_permute_backward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0), *ys = &op->node->shape;
    int64_t yst[GRAPH_MAX_DIMS], src[GRAPH_MAX_DIMS];
    int rc = s_permute_check(be, op);

    if (rc)
        return rc;
    if (!op->dx[0])
        return 0;
    s_contiguous_strides(ys, yst);
    for (int j = 0; j < ys->ndim; j++)
        src[op->node->dims[j]] = yst[j];
    cpu_strided_apply(be, op->dx_accumulate[0] ? CPU_APPLY_ADD : CPU_APPLY_SET,
                      xs->ndim, xs->d, op->dx[0], op->dy, src, 1.0f);
    return 0;
}

/* ----------------------------------------------------------------- repeat */

/* The interleaved view: dims (r0, s0, r1, s1, ...), the input's strides
 * in it, and which of its dims are repeat counts.  Returns 2 * nr. */
static int s_repeat_view(backend_t *be, const backend_op_t *op, int64_t *dims,
                         int64_t *xstr, bool *is_rep)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0), *ys = &op->node->shape;
    const int nr = op->node->n_sizes;
    const int off = nr - xs->ndim;
    int64_t st = 1;

    if (off < 0 || ys->ndim != nr)
        return cpu_op_fail(be, op, -EINVAL, "%d repeat counts for a %d-D input",
                           nr, xs->ndim);
    for (int i = nr - 1; i >= 0; i--) {
        int64_t s = i >= off ? xs->d[i - off] : 1;
        int64_t r = op->node->sizes[i];
        if (r < 1 || ys->d[i] != r * s)
            return cpu_op_fail(be, op, -EINVAL,
                               "output dim %d is not %lld x %lld", i,
                               (long long)r, (long long)s);
        dims[2 * i] = r;
        dims[2 * i + 1] = s;
        xstr[2 * i] = 0;
        xstr[2 * i + 1] = st;
        is_rep[2 * i] = true;
        is_rep[2 * i + 1] = false;
        st *= s;
    }
    return 2 * nr;
}

int cpu_repeat_forward(backend_t *be, const backend_op_t *op)
{
    int64_t dims[CPU_MAX_ND], xstr[CPU_MAX_ND];
    bool is_rep[CPU_MAX_ND];
    int nd = s_repeat_view(be, op, dims, xstr, is_rep);

    if (nd < 0)
        return nd;
    cpu_strided_apply(be, CPU_APPLY_SET, nd, dims, op->y, op->x[0], xstr, 1.0f);
    return 0;
}

int cpu_repeat_backward(backend_t *be, const backend_op_t *op)
{
    int64_t dims[CPU_MAX_ND], xstr[CPU_MAX_ND];
    bool is_rep[CPU_MAX_ND];
    int nd = s_repeat_view(be, op, dims, xstr, is_rep);

    if (nd < 0)
        return nd;
    if (op->dx[0])
        cpu_strided_reduce(be, CPU_REDUCE_SUM, nd, dims, is_rep, op->dy,
                           op->dx[0], 1.0f, op->dx_accumulate[0]);
    return 0;
}
