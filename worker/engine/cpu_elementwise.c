/*
 * cpu_elementwise.c - Add, Mul, ReLU, GELU, Sigmoid and DropPath on the
 * CPU.
 *
 * Add and Mul take any number of inputs with NumPy broadcasting.  When
 * every input already has the output's shape (the residual sum of a
 * ResNet cell) they are single fused loops; otherwise the output is
 * built one input at a time with cpu_strided_apply(), and the gradient
 * of a broadcast input is the output gradient summed over the dimensions
 * it was broadcast along.
 *
 * The activations and DropPath are pure elementwise loops that read and
 * write the same index only, so they work in place (y == x, dx == dy).
 * DropPath's mask is drawn per sample from engine_rng_uniform(rng_key,
 * sample), in both passes, so nothing is kept between them and every
 * backend drops the same samples.
 */
#include "cpu_ops.h"
#include "rng.h"

#include <errno.h>
#include <math.h>
#include <string.h>

static bool s_same_shape(const graph_shape_t *a, const graph_shape_t *b)
{
    if (a->ndim != b->ndim)
        return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->d[i] != b->d[i])
            return false;
    return true;
}

static bool s_all_same(const backend_op_t *op)
{
    for (int i = 0; i < op->n_inputs; i++)
        if (!s_same_shape(cpu_in_shape(op, i), &op->node->shape))
            return false;
    return true;
}

void cpu_copy_acc(const backend_t *be, float *dst, const float *src, int64_t n,
                  bool accumulate)
{
    if (!accumulate) {
        if (dst == src)
            return;
#pragma omp parallel for num_threads(cpu_threads_for(be, n))
        for (int64_t b = 0; b < n; b += 4096)
            memcpy(dst + b, src + b,
                   (size_t)(n - b < 4096 ? n - b : 4096) * sizeof(float));
        return;
    }
#pragma omp parallel num_threads(cpu_threads_for(be, n))
    {
        int64_t lo, hi;
        cpu_share(n, &lo, &hi);
        cpu_vec_acc(dst + lo, src + lo, hi - lo);
    }
}

/* ------------------------------------------------------------- Add, Mul */

size_t cpu_addmul_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node)
{
    (void)be;
    (void)net;
    if (node->op != GRAPH_OP_MUL)
        return 0;
    return (size_t)cpu_shape_numel(&node->shape) * sizeof(float);
}

static int s_check_broadcast(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *ys = &op->node->shape;

    for (int k = 0; k < op->n_inputs; k++) {
        const graph_shape_t *xs = cpu_in_shape(op, k);
        int off = ys->ndim - xs->ndim;
        bool ok = off >= 0;
        for (int i = 0; ok && i < xs->ndim; i++)
            ok = xs->d[i] == ys->d[i + off] || xs->d[i] == 1;
        if (!ok)
            return cpu_op_fail(be, op, -EINVAL,
                               "input %d does not broadcast to the output", k);
    }
    return 0;
}

int cpu_addmul_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *ys = &op->node->shape;
    const int64_t n = cpu_shape_numel(ys);
    const bool mul = op->node->op == GRAPH_OP_MUL;
    int rc = s_check_broadcast(be, op);

    if (rc)
        return rc;
    if (s_all_same(op)) {
#pragma omp parallel num_threads(cpu_threads_for(be, n))
        {
            int64_t lo, hi;
            cpu_share(n, &lo, &hi);
            for (int k = 1; k < op->n_inputs; k++) {
                const float *a = k == 1 ? op->x[0] : op->y;
                if (mul)
                    cpu_vec_mul(op->y + lo, a + lo, op->x[k] + lo, hi - lo);
                else
                    cpu_vec_add(op->y + lo, a + lo, op->x[k] + lo, hi - lo);
            }
        }
        return 0;
    }
    for (int k = 0; k < op->n_inputs; k++) {
        int64_t st[GRAPH_MAX_DIMS];
        cpu_apply_mode_t mode = k == 0 ? CPU_APPLY_SET
                                : mul  ? CPU_APPLY_MUL
                                       : CPU_APPLY_ADD;
        cpu_broadcast_strides(cpu_in_shape(op, k), ys, st);
        cpu_strided_apply(be, mode, ys->ndim, ys->d, op->y, op->x[k], st, 1.0f);
    }
    return 0;
}

/* dst (input k's shape) = or += the sum of src (output shape) over the
 * dimensions input k is broadcast along. */
static void s_unbroadcast(backend_t *be, const backend_op_t *op, int k,
                          const float *src, float *dst, bool acc)
{
    const graph_shape_t *ys = &op->node->shape, *xs = cpu_in_shape(op, k);
    bool red[GRAPH_MAX_DIMS];
    int off = ys->ndim - xs->ndim;

    if (s_same_shape(xs, ys)) {
        cpu_copy_acc(be, dst, src, cpu_shape_numel(ys), acc);
        return;
    }
    for (int i = 0; i < ys->ndim; i++)
        red[i] = i < off || (xs->d[i - off] == 1 && ys->d[i] != 1);
    cpu_strided_reduce(be, CPU_REDUCE_SUM, ys->ndim, ys->d, red, src, dst, 1.0f,
                       acc);
}

int cpu_addmul_backward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *ys = &op->node->shape;
    const int64_t n = cpu_shape_numel(ys);
    int rc = s_check_broadcast(be, op);

    if (rc)
        return rc;
    if (op->node->op == GRAPH_OP_ADD) {
        for (int k = 0; k < op->n_inputs; k++)
            if (op->dx[k])
                s_unbroadcast(be, op, k, op->dy, op->dx[k],
                              op->dx_accumulate[k]);
        return 0;
    }

    if (op->n_inputs == 2 && s_all_same(op)) {
        for (int k = 0; k < 2; k++) {
            const float *o = op->x[1 - k], *dy = op->dy;
            float *dx = op->dx[k];
            const int threads = cpu_threads_for(be, n);
            if (dx)
                CPU_STORE(op->dx_accumulate[k], n, dx, dy[i] * o[i]);
        }
        return 0;
    }
    if (op->workspace_size < (size_t)n * sizeof(float))
        return cpu_op_fail(be, op, -EINVAL,
                           "workspace of %zu bytes is too small",
                           op->workspace_size);
    for (int k = 0; k < op->n_inputs; k++) {
        float *t = op->workspace;
        if (!op->dx[k])
            continue;
        cpu_copy_acc(be, t, op->dy, n, false);
        for (int j = 0; j < op->n_inputs; j++) {
            int64_t st[GRAPH_MAX_DIMS];
            if (j == k)
                continue;
            cpu_broadcast_strides(cpu_in_shape(op, j), ys, st);
            cpu_strided_apply(be, CPU_APPLY_MUL, ys->ndim, ys->d, t, op->x[j],
                              st, 1.0f);
        }
        s_unbroadcast(be, op, k, t, op->dx[k], op->dx_accumulate[k]);
    }
    return 0;
}

/* ---------------------------------------------------------- activations */

static inline float s_sigmoid(float x)
{
    if (x >= 0.0f)
        return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

#define GELU_RSQRT2 0.70710678118654752f
#define GELU_RSQRT2PI 0.39894228040143268f

/* d/dx of x * Phi(x). */
static inline float s_gelu_grad(float v)
{
    return 0.5f * (1.0f + erff(v * GELU_RSQRT2)) +
           v * GELU_RSQRT2PI * expf(-0.5f * v * v);
}

int cpu_activation_forward(backend_t *be, const backend_op_t *op)
{
    const int64_t n = cpu_shape_numel(&op->node->shape);
    const float *x = op->x[0];
    float *y = op->y;
    const int threads = cpu_threads_for(be, n);

    if (n != cpu_shape_numel(cpu_in_shape(op, 0)))
        return cpu_op_fail(be, op, -EINVAL, "input and output sizes differ");
    switch (op->node->op) {
    case GRAPH_OP_RELU:
#pragma omp parallel num_threads(threads)
    {
        int64_t lo, hi;
        cpu_share(n, &lo, &hi);
        cpu_vec_relu(y + lo, x + lo, hi - lo);
    } break;
    case GRAPH_OP_GELU:
#pragma omp parallel for num_threads(threads)
        for (int64_t i = 0; i < n; i++)
            y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * GELU_RSQRT2));
        break;
    default:
#pragma omp parallel for num_threads(threads)
        for (int64_t i = 0; i < n; i++)
            y[i] = s_sigmoid(x[i]);
        break;
    }
    return 0;
}

int cpu_activation_backward(backend_t *be, const backend_op_t *op)
{
    const int64_t n = cpu_shape_numel(&op->node->shape);
    const float *x = op->x ? op->x[0] : NULL, *y = op->y, *dy = op->dy;
    float *dx = op->dx[0];
    const bool acc = op->dx_accumulate[0];
    const int threads = cpu_threads_for(be, n);

    if (!dx)
        return 0;
    switch (op->node->op) {
    case GRAPH_OP_RELU:
#pragma omp parallel num_threads(threads)
    {
        int64_t lo, hi;
        cpu_share(n, &lo, &hi);
        cpu_vec_relu_grad(dx + lo, y + lo, dy + lo, hi - lo, acc);
    } break;
    case GRAPH_OP_GELU:
        CPU_STORE(acc, n, dx, dy[i] * s_gelu_grad(x[i]));
        break;
    default:
        CPU_STORE(acc, n, dx, dy[i] * y[i] * (1.0f - y[i]));
        break;
    }
    return 0;
}

/* -------------------------------------------------------------- DropPath */

/* Scale of sample i: 1/(1-prob) when kept, 0 when dropped. */
static float s_droppath_scale(const backend_op_t *op, int64_t i)
{
    float p = op->node->prob;

    if (p >= 1.0f)
        return 0.0f;
    return engine_rng_uniform(op->rng_key, (uint64_t)i) >= p ? 1.0f / (1.0f - p)
                                                             : 0.0f;
}

int cpu_droppath_forward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    const int64_t n = cpu_shape_numel(xs);
    const int64_t per = xs->ndim ? n / xs->d[0] : n;

    if (!op->training || op->node->prob <= 0.0f) {
        cpu_copy_acc(be, op->y, op->x[0], n, false);
        return 0;
    }
#pragma omp parallel for num_threads(cpu_threads_for(be, n))
    for (int64_t s = 0; s < n / per; s++) {
        float k = s_droppath_scale(op, s);
        const float *x = op->x[0] + s * per;
        float *y = op->y + s * per;
#pragma omp simd
        for (int64_t i = 0; i < per; i++)
            y[i] = x[i] * k;
    }
    return 0;
}

int cpu_droppath_backward(backend_t *be, const backend_op_t *op)
{
    const graph_shape_t *xs = cpu_in_shape(op, 0);
    const int64_t n = cpu_shape_numel(xs);
    const int64_t per = xs->ndim ? n / xs->d[0] : n;
    const bool acc = op->dx_accumulate[0];

    if (!op->dx[0])
        return 0;
    if (!op->training || op->node->prob <= 0.0f) {
        cpu_copy_acc(be, op->dx[0], op->dy, n, acc);
        return 0;
    }
#pragma omp parallel for num_threads(cpu_threads_for(be, n))
    for (int64_t s = 0; s < n / per; s++) {
        float k = s_droppath_scale(op, s);
        const float *dy = op->dy + s * per;
        float *dx = op->dx[0] + s * per;
        if (acc) {
#pragma omp simd
            for (int64_t i = 0; i < per; i++)
                dx[i] += dy[i] * k;
        } else {
#pragma omp simd
            for (int64_t i = 0; i < per; i++)
                dx[i] = dy[i] * k;
        }
    }
    return 0;
}
