/*
 * cpu_ops.h - what the CPU backend's files share (internal).
 *
 * backend_cpu.c owns the table of functions and dispatches each node to
 * the forward, backward, saved_bytes and workspace_bytes of its family,
 * declared below and defined one family per file: cpu_conv.c (Conv2d),
 * cpu_matmul.c (Linear, multiply), cpu_pool.c, cpu_norm.c (BN, LN),
 * cpu_elementwise.c (Add, Mul, activations, DropPath), cpu_reduce.c
 * (mean, max, sum, softmax, concat) and cpu_shape.c (permute, repeat,
 * reshape).  cpu_strided.c holds the strided copy and reduction loops
 * that broadcasting, reductions, permute and repeat are built from.
 *
 * Threads: every kernel parallelises with OpenMP over be->threads
 * threads (a num_threads clause, never the global setting), and calls
 * OpenBLAS single-threaded, from inside those regions or split by
 * cpu_sgemm(), so the two never oversubscribe the cores.
 */
#ifndef NADER_CPU_OPS_H
#define NADER_CPU_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <omp.h>

#include "backend.h"

/* Dimensions a strided loop handles: repeat views a 6-D tensor as 12. */
#define CPU_MAX_ND (2 * GRAPH_MAX_DIMS)

/* Work below this many elements runs on one thread. */
#define CPU_PAR_MIN 16384

/* ------------------------------------------------------------- helpers */

static inline int64_t cpu_shape_numel(const graph_shape_t *s)
{
    int64_t n = 1;

    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

/* Shape of the op's i-th input. */
static inline const graph_shape_t *cpu_in_shape(const backend_op_t *op, int i)
{
    return &op->net->nodes[op->node->inputs[i]].shape;
}

/* Threads for a loop of `work` elements: 1 when it is too small. */
static inline int cpu_threads_for(const backend_t *be, int64_t work)
{
    return work < CPU_PAR_MIN ? 1 : be->threads;
}

/*
 * Write "OP node N (NAME): MESSAGE" to be->err and return rc (a negative
 * errno value), so a kernel can `return cpu_op_fail(...)`.
 */
int cpu_op_fail(backend_t *be, const backend_op_t *op, int rc, const char *fmt,
                ...) __attribute__((format(printf, 4, 5)));

/*
 * Row-major single-precision C = alpha * op(A) op(B) + beta * C, split
 * over be->threads threads along M or N when large enough.  Must be
 * called outside parallel regions; inside them call cblas_sgemm
 * directly (OpenBLAS runs single-threaded in this backend).
 */
void cpu_sgemm(const backend_t *be, bool trans_a, bool trans_b, int m, int n,
               int k, float alpha, const float *a, int lda, const float *b,
               int ldb, float beta, float *c, int ldc);

/* dst = src (or dst += src when accumulate), n floats, in parallel.
 * dst == src without accumulate does nothing. */
void cpu_copy_acc(const backend_t *be, float *dst, const float *src, int64_t n,
                  bool accumulate);

/*
 * dst[i] = EXPR, or dst[i] += EXPR when acc, for i in [0, n), split over
 * the `threads` (a variable in scope) threads.  Two loops keep the test
 * out of the body, so it vectorises; EXPR must read its operands
 * unconditionally for the same reason.
 */
#define CPU_STORE(acc, n, dst, EXPR)                                           \
    do {                                                                       \
        if (acc) {                                                             \
            _Pragma(                                                           \
                "omp parallel for simd num_threads(threads)") for (int64_t i = \
                                                                       0;      \
                                                                   i < (n);    \
                                                                   i++)(       \
                dst)[i] += (EXPR);                                             \
        } else {                                                               \
            _Pragma(                                                           \
                "omp parallel for simd num_threads(threads)") for (int64_t i = \
                                                                       0;      \
                                                                   i < (n);    \
                                                                   i++)(       \
                dst)[i] = (EXPR);                                              \
        }                                                                      \
    } while (0)

/* The share [*lo, *hi) of n items of the calling thread of a team. */
static inline void cpu_share(int64_t n, int64_t *lo, int64_t *hi)
{
    int nt = omp_get_num_threads(), t = omp_get_thread_num();

    *lo = n * t / nt;
    *hi = n * (t + 1) / nt;
}

/* ------------------------------------------ row loops (cpu_vec.c) */

/* y = max(x, 0). */
void cpu_vec_relu(float *y, const float *x, int64_t n);
/* dx (+)= dy where y > 0, else 0. */
void cpu_vec_relu_grad(float *dx, const float *y, const float *dy, int64_t n,
                       bool acc);
/* y = a + b; y = a * b (y may be a or b). */
void cpu_vec_add(float *y, const float *a, const float *b, int64_t n);
void cpu_vec_mul(float *y, const float *a, const float *b, int64_t n);
/* y += x. */
void cpu_vec_acc(float *y, const float *x, int64_t n);
/* y = a * x + b. */
void cpu_vec_axpb(float *y, const float *x, float a, float b, int64_t n);
/* *sum += sum(x - shift), *sq += sum((x - shift)^2). */
void cpu_vec_sums(const float *x, float shift, int64_t n, double *sum,
                  double *sq);
/* *sdy += sum(dy), *sdyx += sum(dy * (x - m)). */
void cpu_vec_dot2(const float *dy, const float *x, float m, int64_t n,
                  double *sdy, double *sdyx);
/* dx (+)= k1 * dy - k2 - k3 * (x - m): BN's input gradient. */
void cpu_vec_bn_grad(float *dx, const float *dy, const float *x, float m,
                     float k1, float k2, float k3, int64_t n, bool acc);

/* ------------------------------------------------------ strided loops */

/* How cpu_strided_apply() combines the source with the destination. */
typedef enum cpu_apply_mode {
    CPU_APPLY_SET, /* dst = scale * src */
    CPU_APPLY_ADD, /* dst += scale * src */
    CPU_APPLY_MUL  /* dst *= src */
} cpu_apply_mode_t;

/*
 * Walk the contiguous row-major destination of shape dims[nd] and combine
 * each element with src at the given element strides (0 broadcasts a
 * dimension, a permuted stride list transposes).  nd <= CPU_MAX_ND.
 */
void cpu_strided_apply(const backend_t *be, cpu_apply_mode_t mode, int nd,
                       const int64_t *dims, float *dst, const float *src,
                       const int64_t *src_strides, float scale);

typedef enum cpu_reduce_kind {
    CPU_REDUCE_SUM,
    CPU_REDUCE_MAX
} cpu_reduce_kind_t;

/*
 * Reduce the contiguous x of shape dims[nd] over the dimensions with
 * reduce[i] set; y is contiguous in the shape with those dimensions set
 * to 1.  SUM: y = scale * sum (or y += sum when accumulate, scale must
 * then be 1).  MAX: y = max (accumulate must be false).
 */
void cpu_strided_reduce(const backend_t *be, cpu_reduce_kind_t kind, int nd,
                        const int64_t *dims, const bool *reduce, const float *x,
                        float *y, float scale, bool accumulate);

/*
 * Strides of `in` broadcast against `out` (NumPy rules, right-aligned):
 * out->ndim entries, 0 where `in` has size 1 or no dimension.
 */
void cpu_broadcast_strides(const graph_shape_t *in, const graph_shape_t *out,
                           int64_t *strides);

/* ------------------------------------------------------ op families */

#define CPU_OP_DECLARE(fam)                                                    \
    int cpu_##fam##_forward(backend_t *be, const backend_op_t *op);            \
    int cpu_##fam##_backward(backend_t *be, const backend_op_t *op)

CPU_OP_DECLARE(conv2d);
CPU_OP_DECLARE(linear);
CPU_OP_DECLARE(multiply);
CPU_OP_DECLARE(pool); /* Avg/MaxPool2d, adaptive Avg/Max */
CPU_OP_DECLARE(bn);
CPU_OP_DECLARE(ln);
CPU_OP_DECLARE(addmul);     /* Add, Mul */
CPU_OP_DECLARE(activation); /* ReLU, GELU, Sigmoid */
CPU_OP_DECLARE(droppath);
CPU_OP_DECLARE(reduce); /* mean, max, sum */
CPU_OP_DECLARE(softmax);
CPU_OP_DECLARE(concat);
CPU_OP_DECLARE(permute);
CPU_OP_DECLARE(repeat);
CPU_OP_DECLARE(reshape); /* also the block output (identity) */

size_t cpu_conv2d_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node);
size_t cpu_linear_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node);
size_t cpu_multiply_workspace(const backend_t *be, const net_t *net,
                              const net_node_t *node);
size_t cpu_ln_workspace(const backend_t *be, const net_t *net,
                        const net_node_t *node);
size_t cpu_addmul_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node);
size_t cpu_reduce_workspace(const backend_t *be, const net_t *net,
                            const net_node_t *node);

size_t cpu_bn_saved(const net_t *net, const net_node_t *node);
size_t cpu_ln_saved(const net_t *net, const net_node_t *node);

#endif
