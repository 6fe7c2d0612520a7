/*
 * cuda_parity.c - run every operation of the block format, the loss, the
 * SGD step and the batch builder on the CPU backend (the reference) and on
 * a CUDA device with the same inputs, and compare.
 *
 *   cuda_parity [--device cuda:N|cpu] [--precision fp32|strict|bf16]
 *               [--filter TEXT] [--json FILE] [--seed N] [--verbose]
 *
 * Each case builds a one-operation network by hand (input nodes, then the
 * operation with its resolved arguments), runs forward, then backward
 * twice: once into input gradients filled with NaN (so an element the
 * backend forgets to write shows), once adding onto random values
 * (dx_accumulate).  Compared: the output, every input gradient of both
 * backwards, every parameter gradient, and BN's running statistics.
 *
 * The measure is ||gpu - cpu|| / ||cpu|| per tensor (L2), and a NaN where
 * the CPU has a number fails.  Tolerances: 2e-5 for every operation in
 * float32 arithmetic; for the tensor-core operations (Conv2d, Linear,
 * multiply) 3e-3 under TF32 (the default) and 3e-2 under bf16, and 2e-5
 * with --precision strict.
 *
 * Exit status: 0 all agree, 1 some case failed, 2 bad usage, 77 skipped
 * (no CUDA device, or a build without CUDA), with one line saying why.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "graph_ops.h"
#include "net.h"
#include "rng.h"

#define MAX_IN 4
#define MAX_W 4
#define TOL_FP32 2e-5
#define TOL_TF32 3e-3
#define TOL_BF16 3e-2

/* A shape literal: {ndim, d0, d1, ...}. */
typedef int64_t shape_lit_t[GRAPH_MAX_DIMS + 1];

typedef struct pcase {
    const char *name;
    graph_op_t op;
    int ni;
    shape_lit_t in[MAX_IN];
    shape_lit_t out;
    int k, s, d, g, pad;
    bool crop, bias;
    int out_size;
    int ndims;
    int dims[GRAPH_MAX_DIMS];
    int nsizes;
    int64_t sizes[GRAPH_MAX_DIMS];
    float prob;
    bool eval;  /* training false */
    bool ties;  /* small integers: ties for max */
    bool alias; /* reshape with y == x */
} pcase_t;

/* clang-format off */
#define S(...) {__VA_ARGS__}

static const pcase_t s_cases[] = {
    /* Conv2d: "same" padding pad/crop as net_build resolves them */
    {.name = "conv3x3", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 4, 8, 9, 9)}, .out = S(4, 4, 16, 9, 9), .k = 3, .s = 1, .d = 1,
     .g = 1, .pad = 1, .bias = true},
    {.name = "conv3x3_s2", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 4, 8, 9, 9)}, .out = S(4, 4, 16, 5, 5), .k = 3, .s = 2, .d = 1,
     .g = 1, .pad = 1, .bias = true},
    {.name = "conv2x2_s2", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 4, 8, 8, 8)}, .out = S(4, 4, 12, 4, 4), .k = 2, .s = 2, .d = 1,
     .g = 1, .pad = 0, .bias = true},
    {.name = "conv2x2_crop", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 6, 7, 7)}, .out = S(4, 2, 6, 7, 7), .k = 2, .s = 1, .d = 1,
     .g = 1, .pad = 1, .crop = true, .bias = true},
    {.name = "conv4x4_crop", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 3, 6, 6)}, .out = S(4, 2, 5, 6, 6), .k = 4, .s = 1, .d = 1,
     .g = 1, .pad = 2, .crop = true, .bias = true},
    {.name = "conv3x3_dil2", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 4, 9, 9)}, .out = S(4, 2, 6, 9, 9), .k = 3, .s = 1, .d = 2,
     .g = 1, .pad = 2, .bias = true},
    {.name = "conv5x5_dil2_s2", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 4, 11, 11)}, S(4, 2, 4, 6, 6), .k = 5, .s = 2, .d = 2,
     .g = 1, .pad = 4, .bias = true},
    {.name = "conv_groups4", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 8, 6, 6)}, .out = S(4, 2, 8, 6, 6), .k = 3, .s = 1, .d = 1,
     .g = 4, .pad = 1, .bias = true},
    {.name = "conv_depthwise_s2", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 2, 8, 7, 7)}, .out = S(4, 2, 8, 4, 4), .k = 3, .s = 2, .d = 1,
     .g = 8, .pad = 1, .bias = true},
    {.name = "conv1x1", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 4, 16, 5, 5)}, .out = S(4, 4, 32, 5, 5), .k = 1, .s = 1,
     .d = 1, .g = 1, .pad = 0, .bias = true},
    {.name = "conv3x3_nobias", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 3, 5, 6, 6)}, .out = S(4, 3, 7, 6, 6), .k = 3, .s = 1, .d = 1,
     .g = 1, .pad = 1},
    {.name = "conv3x3_wide", .op = GRAPH_OP_CONV2D, .ni = 1,
     .in = {S(4, 32, 32, 16, 16)}, .out = S(4, 32, 32, 16, 16), .k = 3, .s = 1,
     .d = 1, .g = 1, .pad = 1, .bias = true},
    {.name = "linear", .op = GRAPH_OP_LINEAR, .ni = 1, .in = {S(2, 6, 10)},
     .out = S(2, 6, 7), .bias = true},
    {.name = "linear_4d", .op = GRAPH_OP_LINEAR, .ni = 1,
     .in = {S(4, 2, 3, 5, 12)}, .out = S(4, 2, 3, 5, 4), .bias = true},
    {.name = "linear_tall", .op = GRAPH_OP_LINEAR, .ni = 1,
     .in = {S(2, 300, 33)}, .out = S(2, 300, 7), .bias = true},
    {.name = "multiply_2d", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(2, 3, 4), S(2, 4, 5)}, .out = S(2, 3, 5)},
    {.name = "multiply_batched", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(4, 2, 3, 4, 5), S(4, 2, 3, 5, 6)}, .out = S(4, 2, 3, 4, 6)},
    {"multiply_bcast", GRAPH_OP_MULTIPLY, 2,
     {S(4, 2, 1, 4, 5), S(4, 1, 3, 5, 6)}, .out = S(4, 2, 3, 4, 6)},
    {.name = "multiply_2d_by_3d", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(2, 4, 5), S(3, 2, 5, 3)}, S(3, 2, 4, 3)},
    {.name = "multiply_vec_mat", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(1, 5), S(3, 2, 5, 3)}, .out = S(2, 2, 3)},
    {.name = "multiply_mat_vec", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(3, 2, 4, 5), S(1, 5)}, .out = S(2, 2, 4)},
    {.name = "multiply_5d", .op = GRAPH_OP_MULTIPLY, .ni = 2,
     .in = {S(5, 2, 2, 2, 3, 4), S(5, 2, 2, 2, 4, 3)},
     .out = S(5, 2, 2, 2, 3, 3)},
    {.name = "avgpool3_s2", .op = GRAPH_OP_AVGPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 9, 9)}, .out = S(4, 2, 3, 5, 5), .k = 3, .s = 2,
     .pad = 1},
    {.name = "maxpool3_s2", .op = GRAPH_OP_MAXPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 9, 9)}, .out = S(4, 2, 3, 5, 5), .k = 3, .s = 2,
     .pad = 1},
    {.name = "avgpool2_s2", .op = GRAPH_OP_AVGPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 8, 8)}, .out = S(4, 2, 3, 4, 4), .k = 2, .s = 2,
     .pad = 0},
    {.name = "maxpool2_crop", .op = GRAPH_OP_MAXPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 7, 7)}, .out = S(4, 2, 3, 7, 7), .k = 2, .s = 1,
     .pad = 1, .crop = true},
    {.name = "avgpool2_crop", .op = GRAPH_OP_AVGPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 7, 7)}, .out = S(4, 2, 3, 7, 7), .k = 2, .s = 1,
     .pad = 1, .crop = true},
    {.name = "maxpool3_ties", .op = GRAPH_OP_MAXPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 6, 6)}, .out = S(4, 2, 3, 6, 6), .k = 3, .s = 1,
     .pad = 1, .ties = true},
    {.name = "adaptive_avg1", .op = GRAPH_OP_ADAPTIVEAVGPOOL2D, .ni = 1,
     .in = {S(4, 4, 8, 5, 5)}, .out = S(4, 4, 8, 1, 1), .out_size = 1},
    {.name = "adaptive_avg3", .op = GRAPH_OP_ADAPTIVEAVGPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 7, 5)}, .out = S(4, 2, 3, 3, 3), .out_size = 3},
    {.name = "adaptive_max2", .op = GRAPH_OP_ADAPTIVEMAXPOOL2D, .ni = 1,
     .in = {S(4, 2, 3, 5, 7)}, .out = S(4, 2, 3, 2, 2), .out_size = 2},
    {.name = "adaptive_max4_3d", .op = GRAPH_OP_ADAPTIVEMAXPOOL2D, .ni = 1,
     .in = {S(3, 3, 9, 6)}, .out = S(3, 3, 4, 4), .out_size = 4},
    {.name = "add_same", .op = GRAPH_OP_ADD, .ni = 2,
     .in = {S(4, 4, 8, 6, 6), S(4, 4, 8, 6, 6)}, .out = S(4, 4, 8, 6, 6)},
    {.name = "add_bcast3", .op = GRAPH_OP_ADD, .ni = 3,
     .in = {S(4, 2, 3, 4, 5), S(3, 3, 1, 1), S(2, 4, 5)},
     .out = S(4, 2, 3, 4, 5)},
    {.name = "add_bcast_both", .op = GRAPH_OP_ADD, .ni = 2,
     .in = {S(3, 2, 1, 5), S(2, 3, 1)}, .out = S(3, 2, 3, 5)},
    {.name = "mul_gate", .op = GRAPH_OP_MUL, .ni = 2,
     .in = {S(4, 4, 8, 5, 5), S(4, 4, 8, 1, 1)}, .out = S(4, 4, 8, 5, 5)},
    {.name = "mul_bcast3", .op = GRAPH_OP_MUL, .ni = 3,
     .in = {S(4, 2, 3, 4, 5), S(4, 2, 1, 4, 1), S(1, 5)},
     .out = S(4, 2, 3, 4, 5)},
    {.name = "mul_same", .op = GRAPH_OP_MUL, .ni = 2,
     .in = {S(3, 3, 4, 5), S(3, 3, 4, 5)}, .out = S(3, 3, 4, 5)},
    {.name = "concat_dim1", .op = GRAPH_OP_CONCAT, .ni = 3,
     .in = {S(4, 2, 3, 4, 4), S(4, 2, 5, 4, 4), S(4, 2, 1, 4, 4)},
     .out = S(4, 2, 9, 4, 4), .ndims = 1, .dims = {1}},
    {.name = "concat_dim3", .op = GRAPH_OP_CONCAT, .ni = 2,
     .in = {S(4, 2, 3, 4, 2), S(4, 2, 3, 4, 5)}, .out = S(4, 2, 3, 4, 7),
     .ndims = 1, .dims = {3}},
    {.name = "concat_dim0", .op = GRAPH_OP_CONCAT, .ni = 2,
     .in = {S(3, 2, 3, 4), S(3, 1, 3, 4)}, .out = S(3, 3, 3, 4), .ndims = 1,
     .dims = {0}},
    {.name = "mean_hw", .op = GRAPH_OP_MEAN, .ni = 1, .in = {S(4, 4, 8, 5, 5)},
     .out = S(4, 4, 8, 1, 1), .ndims = 2, .dims = {2, 3}},
    {.name = "sum_dim1", .op = GRAPH_OP_SUM, .ni = 1, .in = {S(3, 3, 4, 5)},
     .out = S(3, 3, 1, 5), .ndims = 1, .dims = {1}},
    {.name = "max_dims02", .op = GRAPH_OP_MAX, .ni = 1,
     .in = {S(4, 3, 4, 5, 6)}, .out = S(4, 1, 4, 1, 6), .ndims = 2,
     .dims = {0, 2}},
    {.name = "mean_all", .op = GRAPH_OP_MEAN, .ni = 1, .in = {S(3, 4, 5, 6)},
     .out = S(3, 1, 1, 1), .ndims = 3, .dims = {0, 1, 2}},
    {.name = "max_last_ties", .op = GRAPH_OP_MAX, .ni = 1,
     .in = {S(3, 4, 5, 8)}, .out = S(3, 4, 5, 1), .ndims = 1, .dims = {2},
     .ties = true},
    {.name = "sum_big_rows", .op = GRAPH_OP_SUM, .ni = 1, .in = {S(2, 3, 5000)},
     .out = S(2, 3, 1), .ndims = 1, .dims = {1}},
    {.name = "softmax_last", .op = GRAPH_OP_SOFTMAX, .ni = 1,
     .in = {S(4, 2, 3, 4, 10)}, .out = S(4, 2, 3, 4, 10), .ndims = 1,
     .dims = {3}},
    {.name = "softmax_dim1", .op = GRAPH_OP_SOFTMAX, .ni = 1,
     .in = {S(4, 2, 5, 3, 3)}, .out = S(4, 2, 5, 3, 3), .ndims = 1,
     .dims = {1}},
    {.name = "relu", .op = GRAPH_OP_RELU, .ni = 1, .in = {S(4, 2, 3, 4, 5)},
     .out = S(4, 2, 3, 4, 5)},
    {.name = "gelu", .op = GRAPH_OP_GELU, .ni = 1, .in = {S(4, 2, 3, 4, 5)},
     .out = S(4, 2, 3, 4, 5)},
    {.name = "sigmoid", .op = GRAPH_OP_SIGMOID, .ni = 1,
     .in = {S(4, 2, 3, 4, 5)}, .out = S(4, 2, 3, 4, 5)},
    {.name = "bn_train", .op = GRAPH_OP_BN, .ni = 1, .in = {S(4, 8, 6, 5, 5)},
     .out = S(4, 8, 6, 5, 5)},
    {.name = "bn_train_split", .op = GRAPH_OP_BN, .ni = 1,
     .in = {S(4, 32, 16, 16, 16)}, .out = S(4, 32, 16, 16, 16)},
    {.name = "bn_eval", .op = GRAPH_OP_BN, .ni = 1, .in = {S(4, 8, 6, 5, 5)},
     .out = S(4, 8, 6, 5, 5), .eval = true},
    {.name = "ln_short", .op = GRAPH_OP_LN, .ni = 1, .in = {S(4, 2, 5, 5, 8)},
     .out = S(4, 2, 5, 5, 8)},
    {.name = "ln_long", .op = GRAPH_OP_LN, .ni = 1, .in = {S(2, 3, 100)},
     .out = S(2, 3, 100)},
    {.name = "permute_nhwc", .op = GRAPH_OP_PERMUTE, .ni = 1,
     .in = {S(4, 2, 3, 4, 5)}, .out = S(4, 2, 4, 5, 3), .ndims = 4,
     .dims = {0, 2, 3, 1}},
    {.name = "permute_6d", .op = GRAPH_OP_PERMUTE, .ni = 1,
     .in = {S(6, 2, 1, 3, 2, 2, 3)}, .out = S(6, 3, 2, 2, 1, 2, 3), .ndims = 6,
     .dims = {5, 0, 3, 1, 4, 2}},
    {.name = "repeat", .op = GRAPH_OP_REPEAT, .ni = 1, .in = {S(3, 2, 3, 4)},
     .out = S(3, 4, 3, 12), .nsizes = 3, .sizes = {2, 1, 3}},
    {.name = "repeat_more_dims", .op = GRAPH_OP_REPEAT, .ni = 1,
     .in = {S(2, 3, 4)}, .out = S(3, 2, 3, 8), .nsizes = 3, .sizes = {2, 1, 2}},
    {"reshape_5d", GRAPH_OP_RESHAPE, 1, {S(4, 2, 3, 4, 5)},
     .out = S(5, 2, 3, 2, 2, 5), .nsizes = 5, .sizes = {2, 3, 2, 2, 5}},
    {.name = "reshape_alias", .op = GRAPH_OP_RESHAPE, .ni = 1,
     .in = {S(4, 2, 3, 4, 5)}, .out = S(2, 6, 20), .nsizes = 2,
     .sizes = {6, 20}, .alias = true},
    {.name = "droppath_train", .op = GRAPH_OP_DROPPATH, .ni = 1,
     .in = {S(4, 16, 3, 4, 4)}, .out = S(4, 16, 3, 4, 4), .prob = 0.3f},
    {.name = "droppath_eval", .op = GRAPH_OP_DROPPATH, .ni = 1,
     .in = {S(4, 16, 3, 4, 4)}, .out = S(4, 16, 3, 4, 4), .prob = 0.3f,
     .eval = true},
};
/* clang-format on */

#define N_CASES ((int)(sizeof(s_cases) / sizeof(s_cases[0])))

typedef struct parity {
    backend_t *cpu, *gpu;
    backend_precision_t precision;
    uint64_t seed;
    bool verbose;
    FILE *json;
    int n_json;
    int failed, passed;
} parity_t;

/* --------------------------------------------------------------- helpers */

static int64_t s_numel(const graph_shape_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

static void s_shape(const int64_t *lit, graph_shape_t *s)
{
    memset(s, 0, sizeof(*s));
    s->ndim = (int)lit[0];
    for (int i = 0; i < s->ndim; i++)
        s->d[i] = lit[i + 1];
}

/* Uniform values in [lo, hi) from (key, i); integers 0..4 for ties. */
static void s_fill(float *p, int64_t n, uint64_t key, float lo, float hi,
                   bool ties)
{
    for (int64_t i = 0; i < n; i++) {
        float u = engine_rng_uniform(key, (uint64_t)i);
        p[i] = ties ? floorf(5.0f * u) : lo + (hi - lo) * u;
    }
}

static double s_rel(const float *gpu, const float *cpu, int64_t n,
                    double *max_abs, bool *nan_bad)
{
    double num = 0, den = 0;
    *max_abs = 0;
    *nan_bad = false;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(gpu[i]) && isfinite(cpu[i])) {
            *nan_bad = true;
            continue;
        }
        double d = (double)gpu[i] - cpu[i];
        if (!isfinite(d))
            continue;
        num += d * d;
        den += (double)cpu[i] * cpu[i];
        if (fabs(d) > *max_abs)
            *max_abs = fabs(d);
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* Device copies of host arrays on one backend. */
typedef struct dev {
    backend_t *be;
    void *p[64];
    int n;
    char err[400];
} pdev_t;

static void *s_dev_alloc(pdev_t *d, size_t bytes)
{
    void *p = d->be->vt->alloc(d->be, bytes ? bytes : 4);
    if (!p) {
        snprintf(d->err, sizeof(d->err), "alloc: %s", d->be->err);
        return NULL;
    }
    d->p[d->n++] = p;
    return p;
}

static void *s_dev_put(pdev_t *d, const void *host, size_t bytes)
{
    void *p = s_dev_alloc(d, bytes);
    if (p && bytes && d->be->vt->upload(d->be, p, host, bytes)) {
        snprintf(d->err, sizeof(d->err), "upload: %s", d->be->err);
        return NULL;
    }
    return p;
}

static int s_dev_get(pdev_t *d, void *host, const void *p, size_t bytes)
{
    if (bytes && d->be->vt->download(d->be, host, p, bytes)) {
        snprintf(d->err, sizeof(d->err), "download: %s", d->be->err);
        return -1;
    }
    return 0;
}

static void s_dev_free(pdev_t *d)
{
    for (int i = 0; i < d->n; i++)
        d->be->vt->free(d->be, d->p[i]);
    d->n = 0;
}

/* ----------------------------------------------------------- op cases */

/* Host inputs and outputs of one case on one backend. */
typedef struct run_io {
    int ni, nw, ntrain;
    int64_t nx[MAX_IN], ny, nw_el[MAX_W];
    float *x[MAX_IN], *w[MAX_W], *dy, *dx0[MAX_IN]; /* inputs */
    float *y, *dx[MAX_IN], *dxa[MAX_IN], *dw[MAX_W], *wafter[MAX_W];
} run_io_t;

static int s_param_layout(const pcase_t *c, const net_node_t *node,
                          const net_t *net, int64_t *nel, int *ntrain)
{
    const graph_shape_t *xs = &net->nodes[0].shape;
    switch (c->op) {
    case GRAPH_OP_CONV2D:
        nel[0] = node->out_ch * (node->in_ch / node->groups) * node->kernel *
                 node->kernel;
        nel[1] = node->out_ch;
        *ntrain = c->bias ? 2 : 1;
        return *ntrain;
    case GRAPH_OP_LINEAR:
        nel[0] = node->out_ch * node->in_ch;
        nel[1] = node->out_ch;
        *ntrain = c->bias ? 2 : 1;
        return *ntrain;
    case GRAPH_OP_BN:
        for (int i = 0; i < 4; i++)
            nel[i] = xs->d[1];
        *ntrain = 2;
        return 4;
    case GRAPH_OP_LN:
        nel[0] = nel[1] = xs->d[xs->ndim - 1];
        *ntrain = 2;
        return 2;
    default:
        *ntrain = 0;
        return 0;
    }
}

/* Forward, backward into NaN, backward adding onto dx0, on one backend. */
static int s_run_case(pdev_t *d, const net_t *net, const pcase_t *c,
                      run_io_t *io, uint64_t key)
{
    backend_t *be = d->be;
    const net_node_t *node = &net->nodes[c->ni];
    float *x[MAX_IN], *w[MAX_W], *dw[MAX_W], *dx[MAX_IN];
    bool acc[MAX_IN];
    size_t ssz = be->vt->saved_bytes(be, net, node);
    size_t wsz = be->vt->workspace_bytes(be, net, node);
    float *y, *dy;
    void *saved, *ws;
    backend_op_t op;
    float *nan_y = malloc((size_t)io->ny * sizeof(float));

    if (!nan_y)
        return -1;
    for (int64_t i = 0; i < io->ny; i++)
        nan_y[i] = NAN;
    for (int i = 0; i < io->ni; i++)
        if (!(x[i] = s_dev_put(d, io->x[i], (size_t)io->nx[i] * 4)))
            goto fail;
    for (int i = 0; i < io->nw; i++)
        if (!(w[i] = s_dev_put(d, io->w[i], (size_t)io->nw_el[i] * 4)))
            goto fail;
    y = c->alias ? x[0] : s_dev_put(d, nan_y, (size_t)io->ny * 4);
    dy = s_dev_put(d, io->dy, (size_t)io->ny * 4);
    saved = s_dev_alloc(d, ssz);
    ws = s_dev_alloc(d, wsz);
    if (!y || !dy || !saved || !ws)
        goto fail;

    memset(&op, 0, sizeof(op));
    op.net = net;
    op.node = node;
    op.n_inputs = io->ni;
    op.x = (const float *const *)x;
    op.y = y;
    op.w = (const float *const *)w;
    op.saved = ssz ? saved : NULL;
    op.workspace = ws;
    op.workspace_size = wsz;
    op.training = !c->eval;
    op.rng_key = key;
    if (be->vt->forward(be, &op)) {
        snprintf(d->err, sizeof(d->err), "forward: %s", be->err);
        goto fail;
    }
    if (s_dev_get(d, io->y, y, (size_t)io->ny * 4))
        goto fail;
    for (int i = 0; i < io->nw; i++)
        if (s_dev_get(d, io->wafter[i], w[i], (size_t)io->nw_el[i] * 4))
            goto fail;

    /* Backward twice: overwrite into NaN, then add onto dx0. */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < io->ni; i++) {
            float *fill = malloc((size_t)io->nx[i] * sizeof(float));
            if (!fill)
                goto fail;
            for (int64_t j = 0; j < io->nx[i]; j++)
                fill[j] = pass ? io->dx0[i][j] : NAN;
            dx[i] = s_dev_put(d, fill, (size_t)io->nx[i] * 4);
            free(fill);
            if (!dx[i])
                goto fail;
            acc[i] = pass == 1;
        }
        for (int i = 0; i < io->ntrain; i++) {
            float *fill = malloc((size_t)io->nw_el[i] * sizeof(float));
            if (!fill)
                goto fail;
            for (int64_t j = 0; j < io->nw_el[i]; j++)
                fill[j] = NAN;
            dw[i] = s_dev_put(d, fill, (size_t)io->nw_el[i] * 4);
            free(fill);
            if (!dw[i])
                goto fail;
        }
        op.dx = dx;
        op.dx_accumulate = acc;
        op.dy = dy;
        op.dw = dw;
        if (be->vt->backward(be, &op)) {
            snprintf(d->err, sizeof(d->err), "backward: %s", be->err);
            goto fail;
        }
        for (int i = 0; i < io->ni; i++)
            if (s_dev_get(d, pass ? io->dxa[i] : io->dx[i], dx[i],
                          (size_t)io->nx[i] * 4))
                goto fail;
        if (pass == 0)
            for (int i = 0; i < io->ntrain; i++)
                if (s_dev_get(d, io->dw[i], dw[i], (size_t)io->nw_el[i] * 4))
                    goto fail;
    }
    if (be->vt->sync(be)) {
        snprintf(d->err, sizeof(d->err), "sync: %s", be->err);
        goto fail;
    }
    free(nan_y);
    s_dev_free(d);
    return 0;

fail:
    free(nan_y);
    s_dev_free(d);
    return -1;
}

static bool s_matmul_op(graph_op_t op)
{
    return op == GRAPH_OP_CONV2D || op == GRAPH_OP_LINEAR ||
           op == GRAPH_OP_MULTIPLY;
}

static double s_tol(const parity_t *p, graph_op_t op)
{
    if (!s_matmul_op(op) || p->precision == BACKEND_STRICT_FP32)
        return TOL_FP32;
    return p->precision == BACKEND_BF16 ? TOL_BF16 : TOL_TF32;
}

/* Compare one tensor; keeps the worst relative error. */
static void s_cmp(const char *what, const float *g, const float *c, int64_t n,
                  double *worst, char *worst_what, bool *bad, bool verbose)
{
    double max_abs, rel;
    bool nan_bad;

    rel = s_rel(g, c, n, &max_abs, &nan_bad);
    if (nan_bad)
        *bad = true;
    if (verbose)
        printf("      %-10s rel %.3e  max|d| %.3e%s\n", what, rel, max_abs,
               nan_bad ? "  (NaN where the CPU has a number)" : "");
    if (rel > *worst || nan_bad) {
        *worst = nan_bad ? INFINITY : rel;
        snprintf(worst_what, 32, "%s", what);
    }
}

static void s_report(parity_t *p, const char *name, double worst,
                     const char *what, double tol, const char *error)
{
    bool ok = !error && worst <= tol;

    if (error)
        printf("  FAIL  %-22s %s\n", name, error);
    else
        printf("  %s  %-22s rel %.2e (%s)  tol %.0e\n", ok ? "ok  " : "FAIL",
               name, worst, what, tol);
    if (ok)
        p->passed++;
    else
        p->failed++;
    if (p->json) {
        fprintf(p->json,
                "%s\n    {\"case\": \"%s\", \"ok\": %s, \"rel\": %.6e, "
                "\"worst\": \"%s\", \"tol\": %.1e%s%s%s}",
                p->n_json++ ? "," : "", name, ok ? "true" : "false",
                isfinite(worst) ? worst : -1.0, what, tol,
                error ? ", \"error\": \"" : "", error ? error : "",
                error ? "\"" : "");
    }
}

static void s_io_free(run_io_t *io)
{
    for (int i = 0; i < MAX_IN; i++) {
        free(io->x[i]);
        free(io->dx0[i]);
        free(io->dx[i]);
        free(io->dxa[i]);
    }
    for (int i = 0; i < MAX_W; i++) {
        free(io->w[i]);
        free(io->dw[i]);
        free(io->wafter[i]);
    }
    free(io->dy);
    free(io->y);
    memset(io, 0, sizeof(*io));
}

/* Allocate the host arrays of io for the case; inputs from key. */
static int s_io_make(run_io_t *io, const run_io_t *shape_of, bool fill,
                     const pcase_t *c, uint64_t key)
{
    *io = *shape_of;
    for (int i = 0; i < MAX_IN; i++)
        io->x[i] = io->dx0[i] = io->dx[i] = io->dxa[i] = NULL;
    for (int i = 0; i < MAX_W; i++)
        io->w[i] = io->dw[i] = io->wafter[i] = NULL;
    io->dy = io->y = NULL;
    for (int i = 0; i < io->ni; i++) {
        size_t b = (size_t)io->nx[i] * sizeof(float);
        io->x[i] = malloc(b);
        io->dx0[i] = malloc(b);
        io->dx[i] = malloc(b);
        io->dxa[i] = malloc(b);
        if (!io->x[i] || !io->dx0[i] || !io->dx[i] || !io->dxa[i])
            return -1;
        if (fill) {
            s_fill(io->x[i], io->nx[i], key + 11 * (uint64_t)i, -1, 1, c->ties);
            s_fill(io->dx0[i], io->nx[i], key + 100 + (uint64_t)i, -1, 1,
                   false);
        }
    }
    for (int i = 0; i < io->nw; i++) {
        size_t b = (size_t)io->nw_el[i] * sizeof(float);
        io->w[i] = malloc(b);
        io->dw[i] = malloc(b);
        io->wafter[i] = malloc(b);
        if (!io->w[i] || !io->dw[i] || !io->wafter[i])
            return -1;
        if (fill) {
            bool norm = c->op == GRAPH_OP_BN || c->op == GRAPH_OP_LN;
            /* BN/LN scale near 1, running variance positive */
            float lo = norm && (i == 0 || i == 3) ? 0.5f : -0.5f;
            float hi = norm && (i == 0 || i == 3) ? 1.5f : 0.5f;
            s_fill(io->w[i], io->nw_el[i], key + 200 + (uint64_t)i, lo, hi,
                   false);
        }
    }
    io->dy = malloc((size_t)io->ny * sizeof(float));
    io->y = malloc((size_t)io->ny * sizeof(float));
    if (!io->dy || !io->y)
        return -1;
    if (fill)
        s_fill(io->dy, io->ny, key + 300, -1, 1, false);
    return 0;
}

static void s_op_case(parity_t *p, const pcase_t *c)
{
    net_node_t nodes[MAX_IN + 1];
    int inputs[MAX_IN];
    net_t net;
    run_io_t shp, a, b;
    pdev_t dc = {.be = p->cpu}, dg = {.be = p->gpu};
    uint64_t key = engine_rng_mix(p->seed ^ (uint64_t)(c - s_cases));
    double worst = 0, tol = s_tol(p, c->op);
    char what[32] = "-", err[480];
    bool bad = false;
    net_node_t *node = &nodes[c->ni];

    memset(nodes, 0, sizeof(nodes));
    memset(&net, 0, sizeof(net));
    memset(&shp, 0, sizeof(shp));
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    for (int i = 0; i < c->ni; i++) {
        nodes[i].op = GRAPH_OP_INPUT;
        nodes[i].instance = -1;
        nodes[i].block_node = -1;
        s_shape(c->in[i], &nodes[i].shape);
        snprintf(nodes[i].name, sizeof(nodes[i].name), "in%d", i);
        inputs[i] = i;
        shp.nx[i] = s_numel(&nodes[i].shape);
    }
    node->op = c->op;
    snprintf(node->name, sizeof(node->name), "%s", c->name);
    node->instance = -1;
    node->block_node = -1;
    node->n_inputs = c->ni;
    node->inputs = inputs;
    s_shape(c->out, &node->shape);
    node->kernel = c->k ? c->k : 1;
    node->stride = c->s ? c->s : 1;
    node->dilation = c->d ? c->d : 1;
    node->groups = c->g ? c->g : 1;
    node->pad = c->pad;
    node->crop = c->crop;
    node->bias = c->bias;
    node->out_size = c->out_size;
    node->n_dims = c->ndims;
    memcpy(node->dims, c->dims, sizeof(node->dims));
    node->n_sizes = c->nsizes;
    memcpy(node->sizes, c->sizes, sizeof(node->sizes));
    node->prob = c->prob;
    {
        const graph_shape_t *xs = &nodes[0].shape;
        node->in_ch = c->op == GRAPH_OP_LINEAR || c->op == GRAPH_OP_LN
                          ? xs->d[xs->ndim - 1]
                          : (xs->ndim > 1 ? xs->d[1] : 0);
        node->out_ch = c->op == GRAPH_OP_LINEAR
                           ? node->shape.d[node->shape.ndim - 1]
                           : (node->shape.ndim > 1 ? node->shape.d[1] : 0);
    }
    net.nodes = nodes;
    net.n_nodes = c->ni + 1;
    net.batch = (int)nodes[0].shape.d[0];
    net.output = c->ni;

    shp.ni = c->ni;
    shp.ny = s_numel(&node->shape);
    shp.nw = s_param_layout(c, node, &net, shp.nw_el, &shp.ntrain);

    if (!p->gpu->vt->supports(p->gpu, node)) {
        s_report(p, c->name, 0, "-", tol,
                 "the CUDA backend does not "
                 "support it");
        return;
    }
    if (s_io_make(&a, &shp, true, c, key) ||
        s_io_make(&b, &shp, false, c, key)) {
        s_report(p, c->name, 0, "-", tol, "out of host memory");
        goto done;
    }
    /* b shares a's inputs */
    for (int i = 0; i < a.ni; i++) {
        memcpy(b.x[i], a.x[i], (size_t)a.nx[i] * 4);
        memcpy(b.dx0[i], a.dx0[i], (size_t)a.nx[i] * 4);
    }
    for (int i = 0; i < a.nw; i++)
        memcpy(b.w[i], a.w[i], (size_t)a.nw_el[i] * 4);
    memcpy(b.dy, a.dy, (size_t)a.ny * 4);

    if (s_run_case(&dc, &net, c, &a, key)) {
        snprintf(err, sizeof(err), "cpu %s", dc.err);
        s_report(p, c->name, 0, "-", tol, err);
        goto done;
    }
    if (s_run_case(&dg, &net, c, &b, key)) {
        snprintf(err, sizeof(err), "gpu %s", dg.err);
        s_report(p, c->name, 0, "-", tol, err);
        goto done;
    }
    if (p->verbose)
        printf("    %s\n", c->name);
    s_cmp("y", b.y, a.y, a.ny, &worst, what, &bad, p->verbose);
    for (int i = 0; i < a.ni; i++) {
        char t[24];
        snprintf(t, sizeof(t), "dx%d", i);
        s_cmp(t, b.dx[i], a.dx[i], a.nx[i], &worst, what, &bad, p->verbose);
        snprintf(t, sizeof(t), "dx%d+=", i);
        s_cmp(t, b.dxa[i], a.dxa[i], a.nx[i], &worst, what, &bad, p->verbose);
    }
    for (int i = 0; i < a.ntrain; i++) {
        char t[24];
        snprintf(t, sizeof(t), "dw%d", i);
        s_cmp(t, b.dw[i], a.dw[i], a.nw_el[i], &worst, what, &bad, p->verbose);
    }
    for (int i = a.ntrain; i < a.nw; i++) {
        char t[24];
        snprintf(t, sizeof(t), "w%d after", i);
        s_cmp(t, b.wafter[i], a.wafter[i], a.nw_el[i], &worst, what, &bad,
              p->verbose);
    }
    s_report(p, c->name, worst, what, tol,
             bad ? "NaN on the GPU where the CPU has a number" : NULL);
done:
    s_io_free(&a);
    s_io_free(&b);
}

/* ------------------------------------------------- xent, sgd and batch */

static void s_xent_case(parity_t *p)
{
    enum { N = 37, C = 10 };
    float logits[N * C], dl[2][N * C], acc[2][2] = {{0.5f, 1}, {0.5f, 1}};
    int32_t labels[N];
    pdev_t d[2] = {{.be = p->cpu}, {.be = p->gpu}};
    double worst = 0;
    char what[32] = "-";
    bool bad = false;

    s_fill(logits, N * C, p->seed + 7, -4, 4, false);
    for (int i = 0; i < N; i++)
        labels[i] = (int32_t)((uint32_t)engine_rng_mix(p->seed + 8 + i) % C);
    for (int k = 0; k < 2; k++) {
        backend_t *be = d[k].be;
        float *z = s_dev_put(&d[k], logits, sizeof(logits));
        int32_t *l = s_dev_put(&d[k], labels, sizeof(labels));
        float *g = s_dev_alloc(&d[k], sizeof(logits));
        float *a = s_dev_put(&d[k], acc[k], sizeof(acc[k]));
        if (!z || !l || !g || !a || be->vt->xent(be, z, l, N, C, g, a) ||
            s_dev_get(&d[k], dl[k], g, sizeof(logits)) ||
            s_dev_get(&d[k], acc[k], a, sizeof(acc[k]))) {
            char err[480];
            snprintf(err, sizeof(err), "%s %s", k ? "gpu" : "cpu",
                     d[k].err[0] ? d[k].err : be->err);
            s_report(p, "xent", 0, "-", TOL_FP32, err);
            s_dev_free(&d[0]);
            s_dev_free(&d[1]);
            return;
        }
        s_dev_free(&d[k]);
    }
    s_cmp("loss,ok", acc[1], acc[0], 2, &worst, what, &bad, p->verbose);
    s_cmp("dlogits", dl[1], dl[0], N * C, &worst, what, &bad, p->verbose);
    s_report(p, "xent", worst, what, TOL_FP32, NULL);
}

static void s_sgd_case(parity_t *p, bool nesterov, float momentum)
{
    enum { N = 1000 };
    float w0[N], m0[N], g[N], w[2][N], m[2][N];
    backend_sgd_t sp = {0.05f, momentum, 5e-4f, nesterov};
    pdev_t d[2] = {{.be = p->cpu}, {.be = p->gpu}};
    double worst = 0;
    char what[32] = "-", name[32];
    bool bad = false;

    snprintf(name, sizeof(name), "sgd%s_m%.1f", nesterov ? "_nesterov" : "",
             (double)momentum);
    s_fill(w0, N, p->seed + 20, -1, 1, false);
    s_fill(m0, N, p->seed + 21, -1, 1, false);
    s_fill(g, N, p->seed + 22, -1, 1, false);
    for (int k = 0; k < 2; k++) {
        backend_t *be = d[k].be;
        float *dw = s_dev_put(&d[k], w0, sizeof(w0));
        float *dm = s_dev_put(&d[k], m0, sizeof(m0));
        float *dg = s_dev_put(&d[k], g, sizeof(g));
        int rc = !dw || !dm || !dg;
        for (int step = 0; !rc && step < 3; step++)
            rc = be->vt->sgd(be, dw, dg, dm, N, &sp);
        if (rc || s_dev_get(&d[k], w[k], dw, sizeof(w0)) ||
            s_dev_get(&d[k], m[k], dm, sizeof(m0))) {
            char err[480];
            snprintf(err, sizeof(err), "%s %s", k ? "gpu" : "cpu",
                     d[k].err[0] ? d[k].err : be->err);
            s_report(p, name, 0, "-", TOL_FP32, err);
            s_dev_free(&d[0]);
            s_dev_free(&d[1]);
            return;
        }
        s_dev_free(&d[k]);
    }
    s_cmp("w", w[1], w[0], N, &worst, what, &bad, p->verbose);
    if (momentum != 0.0f)
        s_cmp("m", m[1], m[0], N, &worst, what, &bad, p->verbose);
    s_report(p, name, worst, what, TOL_FP32, NULL);
}

static void s_batch_case(parity_t *p, int pad)
{
    enum { NI = 20, B = 12, H = 8, W = 8 };
    uint8_t images[NI * 3 * H * W], flip[B];
    int32_t labels[NI], index[B], lab[2][B];
    int8_t sx[B], sy[B];
    float out[2][B * 3 * H * W];
    pdev_t d[2] = {{.be = p->cpu}, {.be = p->gpu}};
    double worst = 0;
    char what[32] = "-", name[32];
    bool bad = false;

    snprintf(name, sizeof(name), "batch_pad%d", pad);
    for (int i = 0; i < NI * 3 * H * W; i++)
        images[i] = (uint8_t)(engine_rng_mix(p->seed + 30 + i) & 0xff);
    for (int i = 0; i < NI; i++)
        labels[i] = i % 10;
    for (int i = 0; i < B; i++) {
        uint64_t r = engine_rng_mix(p->seed + 40 + i);
        index[i] = (int32_t)(r % NI);
        sx[i] = (int8_t)((int)((r >> 8) % (2 * pad + 1)) - pad);
        sy[i] = (int8_t)((int)((r >> 16) % (2 * pad + 1)) - pad);
        flip[i] = (uint8_t)((r >> 24) & 1);
    }
    for (int k = 0; k < 2; k++) {
        backend_t *be = d[k].be;
        backend_batch_spec_t spec = {.n = B,
                                     .pad = pad,
                                     .mean = {0.49f, 0.48f, 0.45f},
                                     .std = {0.25f, 0.24f, 0.26f}};
        uint8_t *im = s_dev_put(&d[k], images, sizeof(images));
        int32_t *lb = s_dev_put(&d[k], labels, sizeof(labels));
        float *o = s_dev_alloc(&d[k], sizeof(out[k]));
        int32_t *lo = s_dev_alloc(&d[k], sizeof(lab[k]));
        spec.index = s_dev_put(&d[k], index, sizeof(index));
        spec.shift_x = s_dev_put(&d[k], sx, sizeof(sx));
        spec.shift_y = s_dev_put(&d[k], sy, sizeof(sy));
        spec.flip = s_dev_put(&d[k], flip, sizeof(flip));
        if (!im || !lb || !o || !lo || !spec.index || !spec.shift_x ||
            !spec.shift_y || !spec.flip ||
            be->vt->batch(be, im, lb, H, W, &spec, o, lo) ||
            s_dev_get(&d[k], out[k], o, sizeof(out[k])) ||
            s_dev_get(&d[k], lab[k], lo, sizeof(lab[k]))) {
            char err[480];
            snprintf(err, sizeof(err), "%s %s", k ? "gpu" : "cpu",
                     d[k].err[0] ? d[k].err : be->err);
            s_report(p, name, 0, "-", TOL_FP32, err);
            s_dev_free(&d[0]);
            s_dev_free(&d[1]);
            return;
        }
        s_dev_free(&d[k]);
    }
    s_cmp("out", out[1], out[0], B * 3 * H * W, &worst, what, &bad, p->verbose);
    if (memcmp(lab[0], lab[1], sizeof(lab[0])) != 0) {
        s_report(p, name, worst, what, TOL_FP32, "labels differ");
        return;
    }
    s_report(p, name, worst, what, TOL_FP32, NULL);
}

/* ------------------------------------------------------------------ main */

static int s_usage(void)
{
    fprintf(stderr, "usage: cuda_parity [--device cuda:N] [--precision "
                    "fp32|strict|bf16] [--filter TEXT] [--json FILE] "
                    "[--seed N] [--verbose]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *device = "cuda:0", *filter = NULL, *json = NULL;
    const char *prec = "fp32";
    backend_options_t go = {0}, co = {0};
    parity_t p;
    char err[320];

    memset(&p, 0, sizeof(p));
    p.seed = 777;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (strcmp(a, "--device") == 0 && has)
            device = argv[++i];
        else if (strcmp(a, "--precision") == 0 && has)
            prec = argv[++i];
        else if (strcmp(a, "--filter") == 0 && has)
            filter = argv[++i];
        else if (strcmp(a, "--json") == 0 && has)
            json = argv[++i];
        else if (strcmp(a, "--seed") == 0 && has)
            p.seed = strtoull(argv[++i], NULL, 10);
        else if (strcmp(a, "--verbose") == 0)
            p.verbose = true;
        else
            return s_usage();
    }
    if (strcmp(prec, "fp32") == 0 || strcmp(prec, "tf32") == 0)
        p.precision = BACKEND_FP32;
    else if (strcmp(prec, "strict") == 0)
        p.precision = BACKEND_STRICT_FP32;
    else if (strcmp(prec, "bf16") == 0)
        p.precision = BACKEND_BF16;
    else
        return s_usage();

    /* --device cpu compares the CPU backend with itself at one thread: a
     * check of this harness (every case runs, every output is written). */
    if (strncmp(device, "cuda", 4) == 0 && backend_cuda_count() == 0) {
        if (backend_cuda_why())
            printf("skip: %s\n", backend_cuda_why());
        else
            printf("skip: no CUDA device visible (the CUDA backend loads, "
                   "but cudaGetDeviceCount finds none)\n");
        return 77;
    }
    go.precision = p.precision;
    go.threads = strcmp(device, "cpu") == 0 ? 1 : 0;
    p.gpu = backend_new(device, &go, err, sizeof(err));
    if (!p.gpu) {
        fprintf(stderr, "cuda_parity: %s\n", err);
        return 1;
    }
    p.cpu = backend_new("cpu", &co, err, sizeof(err));
    if (!p.cpu) {
        fprintf(stderr, "cuda_parity: %s\n", err);
        backend_destroy(&p.gpu);
        return 1;
    }
    if (json && !(p.json = fopen(json, "w"))) {
        fprintf(stderr, "cuda_parity: cannot write %s: %s\n", json,
                strerror(errno));
        backend_destroy(&p.gpu);
        backend_destroy(&p.cpu);
        return 1;
    }
    printf("cuda_parity: %s (%s), precision %s, against %s\n", p.gpu->device,
           p.gpu->description, prec, p.cpu->description);
    if (p.json)
        fprintf(p.json,
                "{\"device\": \"%s\", \"precision\": \"%s\", "
                "\"cases\": [",
                p.gpu->description, prec);

    for (int i = 0; i < N_CASES; i++)
        if (!filter || strstr(s_cases[i].name, filter))
            s_op_case(&p, &s_cases[i]);
    if (!filter || strstr("xent", filter))
        s_xent_case(&p);
    if (!filter || strstr("sgd", filter)) {
        s_sgd_case(&p, true, 0.9f);
        s_sgd_case(&p, false, 0.9f);
        s_sgd_case(&p, false, 0.0f);
    }
    if (!filter || strstr("batch", filter)) {
        s_batch_case(&p, 0);
        s_batch_case(&p, 2);
    }

    printf("cuda_parity: %d passed, %d failed (precision %s)\n", p.passed,
           p.failed, prec);
    if (p.json) {
        fprintf(p.json, "\n  ], \"passed\": %d, \"failed\": %d}\n", p.passed,
                p.failed);
        fclose(p.json);
    }
    backend_destroy(&p.gpu);
    backend_destroy(&p.cpu);
    return p.failed ? 1 : 0;
}
