/*
 * backend_cpu.c - the CPU backend: the reference implementation of the
 * device interface of backend.h, with OpenBLAS for matrix products and
 * OpenMP for everything else.
 *
 * This file holds the table itself: memory (host memory, 64-byte aligned,
 * with a small header that remembers each block's size so bytes_in_use
 * and the peak are exact), the dispatch of each node to its operation
 * family (cpu_*.c), the loss, the optimiser step and the batch builder.
 *
 * OpenBLAS is told to use one thread: the kernels parallelise themselves
 * over be->threads with OpenMP, calling OpenBLAS from inside their
 * parallel regions, so the two thread pools never compete for the cores.
 */
#include "backend.h"
#include "cpu_conv.h"
#include "cpu_ops.h"

#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPU_ALIGN 64

/* Each block starts with this header, CPU_ALIGN bytes long. */
typedef union cpu_block {
    size_t bytes;
    unsigned char pad[CPU_ALIGN];
} cpu_block_t;

int cpu_op_fail(backend_t *be, const backend_op_t *op, int rc, const char *fmt,
                ...)
{
    va_list ap;
    int n;
    const net_node_t *node = op->node;
    int id = op->net ? (int)(node - op->net->nodes) : -1;

    n = snprintf(be->err, sizeof(be->err),
                 "%s node %d (%s): ", graph_op_name(node->op), id, node->name);
    if (n < 0 || (size_t)n >= sizeof(be->err))
        return rc;
    va_start(ap, fmt);
    vsnprintf(be->err + n, sizeof(be->err) - (size_t)n, fmt, ap);
    va_end(ap);
    return rc;
}

static int s_fail(backend_t *be, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int s_fail(backend_t *be, int rc, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(be->err, sizeof(be->err), fmt, ap);
    va_end(ap);
    return rc;
}

/* ---------------------------------------------------------------- memory */

static void *s_alloc(backend_t *be, size_t bytes)
{
    cpu_block_t *b;
    size_t total;
    int64_t now;

    if (bytes > SIZE_MAX - 2 * CPU_ALIGN) {
        s_fail(be, -ENOMEM, "cpu alloc: %zu bytes is too large", bytes);
        return NULL;
    }
    total =
        (bytes + sizeof(cpu_block_t) + CPU_ALIGN - 1) / CPU_ALIGN * CPU_ALIGN;
    b = aligned_alloc(CPU_ALIGN, total);
    if (!b) {
        s_fail(be, -ENOMEM, "cpu alloc: out of memory for %zu bytes", bytes);
        return NULL;
    }
    b->bytes = bytes;
    now =
        __atomic_add_fetch(&be->bytes_in_use, (int64_t)bytes, __ATOMIC_RELAXED);
    for (int64_t peak = __atomic_load_n(&be->peak_bytes, __ATOMIC_RELAXED);
         now > peak;)
        if (__atomic_compare_exchange_n(&be->peak_bytes, &peak, now, true,
                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED))
            break;
    return b + 1;
}

static void s_free(backend_t *be, void *p)
{
    cpu_block_t *b;

    if (!p)
        return;
    b = (cpu_block_t *)p - 1;
    __atomic_sub_fetch(&be->bytes_in_use, (int64_t)b->bytes, __ATOMIC_RELAXED);
    free(b);
}

static int s_move(backend_t *be, void *dst, const void *src, size_t n)
{
    (void)be;
    if (n && dst != src)
        memmove(dst, src, n);
    return 0;
}

static int s_zero(backend_t *be, void *dst, size_t n)
{
    (void)be;
    memset(dst, 0, n);
    return 0;
}

static int s_sync(backend_t *be)
{
    (void)be;
    return 0;
}

/* -------------------------------------------------------------- dispatch */

static bool s_supports(backend_t *be, const net_node_t *node)
{
    (void)be;
    switch (node->op) {
    case GRAPH_OP_INPUT:
    case GRAPH_OP_INPUT1:
    case GRAPH_OP_INPUT2:
    case GRAPH_OP_COUNT:
        return false;
    default:
        return true;
    }
}

static size_t s_saved_bytes(backend_t *be, const net_t *net,
                            const net_node_t *node)
{
    (void)be;
    switch (node->op) {
    case GRAPH_OP_BN:
        return cpu_bn_saved(net, node);
    case GRAPH_OP_LN:
        return cpu_ln_saved(net, node);
    default:
        return 0;
    }
}

static size_t s_workspace_bytes(backend_t *be, const net_t *net,
                                const net_node_t *node)
{
    switch (node->op) {
    case GRAPH_OP_CONV2D:
        return cpu_conv2d_workspace(be, net, node);
    case GRAPH_OP_LINEAR:
        return cpu_linear_workspace(be, net, node);
    case GRAPH_OP_MULTIPLY:
        return cpu_multiply_workspace(be, net, node);
    case GRAPH_OP_LN:
        return cpu_ln_workspace(be, net, node);
    case GRAPH_OP_ADD:
    case GRAPH_OP_MUL:
        return cpu_addmul_workspace(be, net, node);
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
        return cpu_reduce_workspace(be, net, node);
    default:
        return 0;
    }
}

typedef int (*cpu_op_fn)(backend_t *be, const backend_op_t *op);

/* Forward (dir 0) or backward (dir 1) of each operation. */
static cpu_op_fn s_op_fn(graph_op_t op, int dir)
{
#define FAM(f) return dir ? cpu_##f##_backward : cpu_##f##_forward
    switch (op) {
    case GRAPH_OP_OUTPUT:
    case GRAPH_OP_RESHAPE:
        FAM(reshape);
    case GRAPH_OP_CONV2D:
        FAM(conv2d);
    case GRAPH_OP_LINEAR:
        FAM(linear);
    case GRAPH_OP_MULTIPLY:
        FAM(multiply);
    case GRAPH_OP_AVGPOOL2D:
    case GRAPH_OP_MAXPOOL2D:
    case GRAPH_OP_ADAPTIVEAVGPOOL2D:
    case GRAPH_OP_ADAPTIVEMAXPOOL2D:
        FAM(pool);
    case GRAPH_OP_ADD:
    case GRAPH_OP_MUL:
        FAM(addmul);
    case GRAPH_OP_CONCAT:
        FAM(concat);
    case GRAPH_OP_MEAN:
    case GRAPH_OP_MAX:
    case GRAPH_OP_SUM:
        FAM(reduce);
    case GRAPH_OP_SOFTMAX:
        FAM(softmax);
    case GRAPH_OP_RELU:
    case GRAPH_OP_GELU:
    case GRAPH_OP_SIGMOID:
        FAM(activation);
    case GRAPH_OP_BN:
        FAM(bn);
    case GRAPH_OP_LN:
        FAM(ln);
    case GRAPH_OP_PERMUTE:
        FAM(permute);
    case GRAPH_OP_REPEAT:
        FAM(repeat);
    case GRAPH_OP_DROPPATH:
        FAM(droppath);
    default:
        return NULL;
    }
#undef FAM
}

static int s_run(backend_t *be, const backend_op_t *op, int dir)
{
    cpu_op_fn fn = s_op_fn(op->node->op, dir);
    int n = op->node->n_inputs;

    if (!fn)
        return cpu_op_fail(be, op, -ENOTSUP,
                           "not an operation the cpu backend runs");
    if (op->n_inputs != n)
        return cpu_op_fail(be, op, -EINVAL, "%d inputs given, node has %d",
                           op->n_inputs, n);
    return fn(be, op);
}

static int s_forward(backend_t *be, const backend_op_t *op)
{
    return s_run(be, op, 0);
}

static int s_backward(backend_t *be, const backend_op_t *op)
{
    return s_run(be, op, 1);
}

/* ------------------------------------------------------------------ loss */

static int s_xent(backend_t *be, const float *logits, const int32_t *labels,
                  int n, int classes, float *dlogits, float *acc)
{
    double loss = 0.0;
    int64_t correct = 0;
    int bad = -1;

    if (n <= 0 || classes <= 0)
        return s_fail(be, -EINVAL, "xent: %d samples of %d classes", n,
                      classes);
    for (int i = 0; i < n; i++)
        if (labels[i] < 0 || labels[i] >= classes) {
            bad = i;
            break;
        }
    if (bad >= 0)
        return s_fail(be, -EINVAL,
                      "xent: label %d of sample %d outside [0, %d)",
                      labels[bad], bad, classes);

#pragma omp parallel for num_threads(cpu_threads_for(be, (int64_t)n * \
    classes * 8)) reduction(+ : loss, correct)
    for (int i = 0; i < n; i++) {
        const float *z = logits + (int64_t)i * classes;
        float m = z[0];
        int arg = 0;
        double sum = 0.0, lse;

        for (int c = 1; c < classes; c++)
            if (z[c] > m) {
                m = z[c];
                arg = c;
            }
        for (int c = 0; c < classes; c++)
            sum += exp((double)z[c] - m);
        lse = m + log(sum);
        loss += lse - z[labels[i]];
        correct += arg == labels[i];
        if (dlogits) {
            float *g = dlogits + (int64_t)i * classes;
            for (int c = 0; c < classes; c++)
                g[c] = (float)(exp((double)z[c] - lse) / n);
            g[labels[i]] -= 1.0f / (float)n;
        }
    }
    acc[0] += (float)loss;
    acc[1] += (float)correct;
    return 0;
}

/* ------------------------------------------------------------- optimiser */

static int s_sgd(backend_t *be, float *w, const float *g, float *m, size_t n,
                 const backend_sgd_t *p)
{
    const float lr = p->lr, mom = p->momentum, wd = p->weight_decay;
    const int64_t cnt = (int64_t)n;

    if (!m && mom != 0.0f)
        return s_fail(be, -EINVAL, "sgd: momentum %g without a buffer",
                      (double)mom);
    if (mom == 0.0f) {
#pragma omp parallel for simd num_threads(cpu_threads_for(be, cnt))
        for (int64_t i = 0; i < cnt; i++)
            w[i] -= lr * (g[i] + wd * w[i]);
        return 0;
    }
    if (p->nesterov) {
#pragma omp parallel for simd num_threads(cpu_threads_for(be, cnt))
        for (int64_t i = 0; i < cnt; i++) {
            float gi = g[i] + wd * w[i];
            float mi = mom * m[i] + gi;
            m[i] = mi;
            w[i] -= lr * (gi + mom * mi);
        }
    } else {
#pragma omp parallel for simd num_threads(cpu_threads_for(be, cnt))
        for (int64_t i = 0; i < cnt; i++) {
            float mi = mom * m[i] + g[i] + wd * w[i];
            m[i] = mi;
            w[i] -= lr * mi;
        }
    }
    return 0;
}

/* ----------------------------------------------------------------- batch */

/*
 * out[i,c,y,x] = normalised pixel (y + shift_y, x' + shift_x) of image
 * index[i], x' = W-1-x when flipped, 0 (before normalising) outside the
 * image: torchvision's RandomCrop(padding) then RandomHorizontalFlip.
 */
static int s_batch(backend_t *be, const uint8_t *images, const int32_t *labels,
                   int h, int w, const backend_batch_spec_t *spec, float *out,
                   int32_t *labels_out)
{
    float scale[3], shift[3];
    const int64_t plane = (int64_t)h * w;

    if (h <= 0 || w <= 0 || spec->n < 0 || spec->pad < 0)
        return s_fail(be, -EINVAL, "batch: %d images of %dx%d, pad %d", spec->n,
                      h, w, spec->pad);
    for (int c = 0; c < 3; c++) {
        if (!(spec->std[c] > 0.0f))
            return s_fail(be, -EINVAL, "batch: std[%d] = %g is not positive", c,
                          (double)spec->std[c]);
        scale[c] = 1.0f / (255.0f * spec->std[c]);
        shift[c] = -spec->mean[c] / spec->std[c];
    }

#pragma omp parallel for num_threads(cpu_threads_for(be, spec->n *plane))
    for (int i = 0; i < spec->n; i++) {
        const uint8_t *img = images + (int64_t)spec->index[i] * 3 * plane;
        int sx = spec->pad ? spec->shift_x[i] : 0;
        int sy = spec->pad ? spec->shift_y[i] : 0;
        bool flip = spec->flip && spec->flip[i];

        for (int c = 0; c < 3; c++) {
            const uint8_t *src = img + c * plane;
            float *dst = out + ((int64_t)i * 3 + c) * plane;
            for (int y = 0; y < h; y++) {
                int iy = y + sy;
                float *row = dst + (int64_t)y * w;
                if (iy < 0 || iy >= h) {
                    for (int x = 0; x < w; x++)
                        row[x] = shift[c];
                    continue;
                }
                for (int x = 0; x < w; x++) {
                    int ix = (flip ? w - 1 - x : x) + sx;
                    float v = ix >= 0 && ix < w
                                  ? (float)src[(int64_t)iy * w + ix]
                                  : 0.0f;
                    row[x] = v * scale[c] + shift[c];
                }
            }
        }
        if (labels_out)
            labels_out[i] = labels[spec->index[i]];
    }
    return 0;
}

/* ----------------------------------------------------------------- table */

static void s_destroy(backend_t *be)
{
    free(be);
}

static const backend_vtable_t s_cpu_vtable = {
    .name = "cpu",
    .alloc = s_alloc,
    .free = s_free,
    .upload = s_move,
    .download = s_move,
    .copy = s_move,
    .zero = s_zero,
    .sync = s_sync,
    .supports = s_supports,
    .saved_bytes = s_saved_bytes,
    .workspace_bytes = s_workspace_bytes,
    .forward = s_forward,
    .backward = s_backward,
    .xent = s_xent,
    .sgd = s_sgd,
    .batch = s_batch,
    .capture_begin = NULL,
    .capture_end = NULL,
    .replay = NULL,
    .destroy = s_destroy,
};

backend_t *backend_cpu_new(const backend_options_t *opt, char *err,
                           size_t errlen)
{
    backend_t *be;
    int threads = opt ? opt->threads : 0;

    if (threads < 0) {
        snprintf(err, errlen, "cpu backend: %d threads", threads);
        return NULL;
    }
    if (threads == 0)
        threads = omp_get_num_procs();
    be = calloc(1, sizeof(*be));
    if (!be) {
        snprintf(err, errlen, "cpu backend: out of memory");
        return NULL;
    }
    be->vt = &s_cpu_vtable;
    be->threads = threads;
    snprintf(be->device, sizeof(be->device), "cpu");
    snprintf(be->description, sizeof(be->description),
             "cpu, %d thread%s, %s kernels, OpenBLAS %s", threads,
             threads == 1 ? "" : "s", cpu_conv_isa_init(),
             openblas_get_corename());
    openblas_set_num_threads(1);
    return be;
}
