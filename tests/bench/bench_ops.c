/*
 * bench_ops.c - speed of the CPU backend's operations on the shapes of
 * the resnet_basic design at width 16 (32x32 inputs), the network the
 * engine's benchmark trains against PyTorch.
 *
 *   bench_ops [--threads N] [--batch B] [--reps R] [--json] [--only TEXT]
 *             [--cpu-time]
 *
 * For every convolution of that network (stem, cells of 16, 32 and 64
 * channels, the downsample's strided and 1x1 convolutions), for BN,
 * ReLU, Add and AvgPool on the largest activation, and for depthwise and
 * grouped convolutions of other designs, prints the best of R
 * runs of forward and of backward (dx and dW; the stem's input gets no
 * gradient, as in the network) in milliseconds and, for convolutions,
 * GFLOP/s.  tests/bench/bench_ops_torch.py runs this program and PyTorch
 * on the same shapes and prints the two side by side.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "backend.h"
#include "net.h"

typedef struct shape_case {
    const char *name;
    graph_op_t op;
    int ci, h, co, k, s; /* input (B,ci,h,h), conv out channels */
    int pad;
    bool dx;   /* the network needs the input gradient */
    int count; /* occurrences in the network */
    int groups;
} shape_case_t;

static const shape_case_t s_cases[] = {
    {"conv stem 3->16 32x32", GRAPH_OP_CONV2D, 3, 32, 16, 3, 1, 1, false, 1, 1},
    {"conv 16->16 32x32", GRAPH_OP_CONV2D, 16, 32, 16, 3, 1, 1, true, 10, 1},
    {"conv 16->32 s2 32x32", GRAPH_OP_CONV2D, 16, 32, 32, 3, 2, 1, true, 1, 1},
    {"conv 32->32 16x16", GRAPH_OP_CONV2D, 32, 16, 32, 3, 1, 1, true, 11, 1},
    {"conv 1x1 16->32 16x16", GRAPH_OP_CONV2D, 16, 16, 32, 1, 1, 0, true, 1, 1},
    {"conv 32->64 s2 16x16", GRAPH_OP_CONV2D, 32, 16, 64, 3, 2, 1, true, 1, 1},
    {"conv 64->64 8x8", GRAPH_OP_CONV2D, 64, 8, 64, 3, 1, 1, true, 11, 1},
    {"conv 1x1 32->64 8x8", GRAPH_OP_CONV2D, 32, 8, 64, 1, 1, 0, true, 1, 1},
    {"BN 16x32x32", GRAPH_OP_BN, 16, 32, 16, 0, 0, 0, true, 11, 1},
    {"ReLU 16x32x32", GRAPH_OP_RELU, 16, 32, 16, 0, 0, 0, true, 11, 1},
    {"Add 16x32x32", GRAPH_OP_ADD, 16, 32, 16, 0, 0, 0, true, 5, 1},
    {"AvgPool2d 2/2 16x32x32", GRAPH_OP_AVGPOOL2D, 16, 32, 16, 2, 2, 0, true, 1,
     1},
    /* Not in resnet_basic: the depthwise and grouped convolutions of
     * ConvNeXt- and ShuffleNet-style designs. */
    {"dwconv 7x7 64 16x16", GRAPH_OP_CONV2D, 64, 16, 64, 7, 1, 3, true, 0, 64},
    {"dwconv 3x3 128 8x8", GRAPH_OP_CONV2D, 128, 8, 128, 3, 1, 1, true, 0, 128},
    {"conv g4 64->64 16x16", GRAPH_OP_CONV2D, 64, 16, 64, 3, 1, 1, true, 0, 4},
};

/* Wall time, or the process's CPU time with --cpu-time: with one thread
 * that measures a kernel on a machine other work keeps busy. */
static clockid_t s_clock = CLOCK_MONOTONIC;

static double s_now(void)
{
    struct timespec t;
    clock_gettime(s_clock, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void s_fill(float *p, size_t n, unsigned *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (float)rand_r(seed) / (float)RAND_MAX - 0.5f;
}

static int s_bench(backend_t *be, const shape_case_t *c, int batch, int reps,
                   bool json)
{
    net_node_t nodes[3];
    int inputs[2] = {0, 1};
    net_t net;
    int oh = c->s ? (c->h + c->s - 1) / c->s : c->h;
    int64_t nx, ny, nw = 0, nb = 0;
    float *x, *x2, *y, *dy, *dx, *dx2, *w[4] = {0}, *dw[4] = {0};
    void *ws, *saved;
    size_t wsz;
    bool acc[2] = {false, false};
    backend_op_t op;
    double tf = 1e30, tb = 1e30, flops = 0.0;
    unsigned seed = 7;

    memset(nodes, 0, sizeof(nodes));
    memset(&net, 0, sizeof(net));
    for (int i = 0; i < 2; i++) {
        nodes[i].op = GRAPH_OP_INPUT;
        nodes[i].shape.ndim = 4;
        nodes[i].shape.d[0] = batch;
        nodes[i].shape.d[1] = c->ci;
        nodes[i].shape.d[2] = c->h;
        nodes[i].shape.d[3] = c->h;
    }
    net_node_t *node = &nodes[2];
    node->op = c->op;
    snprintf(node->name, sizeof(node->name), "%s", c->name);
    node->n_inputs = c->op == GRAPH_OP_ADD ? 2 : 1;
    node->inputs = inputs;
    node->shape = nodes[0].shape;
    node->shape.d[1] = c->co;
    node->shape.d[2] = node->shape.d[3] = oh;
    node->in_ch = c->ci;
    node->out_ch = c->co;
    node->kernel = c->k;
    node->stride = c->s;
    node->dilation = 1;
    node->groups = c->groups;
    node->pad = c->pad;
    node->bias = true;
    net.nodes = nodes;
    net.n_nodes = 3;
    net.batch = batch;

    nx = (int64_t)batch * c->ci * c->h * c->h;
    ny = (int64_t)batch * c->co * oh * oh;
    if (c->op == GRAPH_OP_CONV2D) {
        nw = (int64_t)c->co * (c->ci / node->groups) * c->k * c->k;
        nb = c->co;
        flops = 2.0 * (double)ny * (double)(c->ci / node->groups) * c->k * c->k;
    } else if (c->op == GRAPH_OP_BN) {
        nw = nb = c->ci;
    }
    x = be->vt->alloc(be, (size_t)nx * 4);
    x2 = be->vt->alloc(be, (size_t)nx * 4);
    dx = be->vt->alloc(be, (size_t)nx * 4);
    dx2 = be->vt->alloc(be, (size_t)nx * 4);
    y = be->vt->alloc(be, (size_t)ny * 4);
    dy = be->vt->alloc(be, (size_t)ny * 4);
    for (int i = 0; i < 4; i++) {
        int64_t n = i == 0 ? nw : nb;
        w[i] = be->vt->alloc(be, (size_t)(n + 1) * 4);
        dw[i] = be->vt->alloc(be, (size_t)(n + 1) * 4);
        s_fill(w[i], (size_t)n, &seed);
        if (i == 3)
            for (int64_t j = 0; j < n; j++)
                w[i][j] = 1.0f;
    }
    wsz = be->vt->workspace_bytes(be, &net, node);
    ws = be->vt->alloc(be, wsz + 1);
    saved = be->vt->alloc(be, be->vt->saved_bytes(be, &net, node) + 1);
    s_fill(x, (size_t)nx, &seed);
    s_fill(x2, (size_t)nx, &seed);
    s_fill(dy, (size_t)ny, &seed);

    const float *xs[2] = {x, x2};
    float *dxs[2] = {c->dx ? dx : NULL, dx2};
    memset(&op, 0, sizeof(op));
    op.net = &net;
    op.node = node;
    op.n_inputs = node->n_inputs;
    op.x = xs;
    op.y = y;
    op.w = (const float *const *)w;
    op.dw = dw;
    op.dx = dxs;
    op.dx_accumulate = acc;
    op.dy = dy;
    op.saved = saved;
    op.workspace = ws;
    op.workspace_size = wsz;
    op.training = true;

    for (int r = 0; r < reps + 2; r++) {
        double t0 = s_now(), t1, t2;
        if (be->vt->forward(be, &op)) {
            fprintf(stderr, "bench_ops: %s\n", be->err);
            return -1;
        }
        t1 = s_now();
        if (be->vt->backward(be, &op)) {
            fprintf(stderr, "bench_ops: %s\n", be->err);
            return -1;
        }
        t2 = s_now();
        if (r >= 2) {
            tf = t1 - t0 < tf ? t1 - t0 : tf;
            tb = t2 - t1 < tb ? t2 - t1 : tb;
        }
    }
    double bflops = flops * (c->dx ? 2.0 : 1.0);
    if (json)
        printf("{\"name\": \"%s\", \"fwd_ms\": %.4f, \"bwd_ms\": %.4f, "
               "\"flops\": %.0f, \"bwd_flops\": %.0f, \"count\": %d, "
               "\"workspace\": %zu}\n",
               c->name, tf * 1e3, tb * 1e3, flops, bflops, c->count, wsz);
    else if (flops > 0)
        printf("%-24s fwd %7.3f ms %6.1f GF/s   bwd %7.3f ms %6.1f GF/s\n",
               c->name, tf * 1e3, flops / tf * 1e-9, tb * 1e3,
               bflops / tb * 1e-9);
    else
        printf("%-24s fwd %7.3f ms               bwd %7.3f ms\n", c->name,
               tf * 1e3, tb * 1e3);

    be->vt->free(be, x);
    be->vt->free(be, x2);
    be->vt->free(be, dx);
    be->vt->free(be, dx2);
    be->vt->free(be, y);
    be->vt->free(be, dy);
    for (int i = 0; i < 4; i++) {
        be->vt->free(be, w[i]);
        be->vt->free(be, dw[i]);
    }
    be->vt->free(be, ws);
    be->vt->free(be, saved);
    return 0;
}

int main(int argc, char **argv)
{
    backend_options_t opt = {.threads = 2};
    int batch = 64, reps = 10;
    bool json = false;
    const char *only = NULL;
    char err[256];
    backend_t *be;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            opt.threads = atoi(argv[++i]);
        else if (strcmp(argv[i], "--batch") == 0 && i + 1 < argc)
            batch = atoi(argv[++i]);
        else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (strcmp(argv[i], "--cpu-time") == 0)
            s_clock = CLOCK_PROCESS_CPUTIME_ID;
        else {
            fprintf(stderr, "usage: bench_ops [--threads N] [--batch B] "
                            "[--reps R] [--json] [--only TEXT] "
                            "[--cpu-time]\n");
            return 2;
        }
    }
    be = backend_new("cpu", &opt, err, sizeof(err));
    if (!be) {
        fprintf(stderr, "bench_ops: %s\n", err);
        return 1;
    }
    if (!json)
        printf("nader cpu backend (%s), batch %d, best of %d\n",
               be->description, batch, reps);
    for (size_t i = 0; i < sizeof(s_cases) / sizeof(s_cases[0]); i++)
        if ((!only || strstr(s_cases[i].name, only)) &&
            s_bench(be, &s_cases[i], batch, reps, json)) {
            backend_destroy(&be);
            return 1;
        }
    backend_destroy(&be);
    return 0;
}
