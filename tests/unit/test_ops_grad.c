/*
 * test_ops_grad.c - finite-difference checks of every operation's
 * backward pass on the CPU backend.
 *
 * For each case: random inputs x, parameters w and output gradient r;
 * the analytic dx and dw of backward() must match the central
 * differences (L(v + eps) - L(v - eps)) / (2 eps) of L = sum(r * y) for
 * every element (or 120 sampled ones in the larger cases).  The
 * operations compute in float32, so eps = 1e-2 and the tolerance is
 * |numeric - analytic| <= 3e-3 + 2e-2 * |analytic|; inputs of max-like
 * operations are distinct values 0.1 apart, and ReLU's are kept 0.1 away
 * from 0, so that no difference crosses a kink.  Each case also checks
 * that dx_accumulate adds to what is there, and that a NULL dx is
 * skipped.  Shapes include odd sizes, stride 2, dilation, groups, crop,
 * broadcasting and 5- and 6-D reshape, permute and repeat.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "backend.h"
#include "net.h"

#define EPS 1e-2
#define TOL_ABS 3e-3
#define TOL_REL 2e-2
#define MAX_CHECKED 120
#define MAX_IN 3

enum { X_NORMAL, X_DISTINCT, X_AWAY_FROM_ZERO };

/* Shapes as {ndim, d0, d1, ...}. */
#define SH(...)                                                                \
    {                                                                          \
        __VA_ARGS__                                                            \
    }

typedef struct gcase {
    const char *name;
    graph_op_t op;
    int n_in;
    int64_t in[MAX_IN][7];
    int64_t out[7];
    net_node_t args;
    int n_params; /* weight, bias, (running_mean, running_var) */
    int n_trainable;
    int64_t pn[4];
    bool training;
    int kind;
    uint64_t key;
} gcase_t;

static backend_t *s_be;
static uint64_t s_seed = 88172645463325252ULL;

static double s_rand(void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (double)(s_seed >> 11) / 9007199254740992.0;
}

static double s_normal(void)
{
    double u = s_rand() + 1e-12, v = s_rand();
    return sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v);
}

static void s_shape(const int64_t *src, graph_shape_t *s)
{
    memset(s, 0, sizeof(*s));
    s->ndim = (int)src[0];
    for (int i = 0; i < s->ndim; i++)
        s->d[i] = src[i + 1];
}

static int64_t s_numel(const graph_shape_t *s)
{
    int64_t n = 1;
    for (int i = 0; i < s->ndim; i++)
        n *= s->d[i];
    return n;
}

/* Everything one case runs on. */
typedef struct harness {
    net_t net;
    net_node_t nodes[MAX_IN + 1];
    int inputs[MAX_IN];
    int64_t nx[MAX_IN], ny;
    float *x[MAX_IN], *dx[MAX_IN], *w[4], *dw[4];
    float *y, *r, *saved, *ws;
    size_t ws_size;
    bool acc[MAX_IN];
    backend_op_t op;
} harness_t;

static void s_fill(float *p, int64_t n, int kind)
{
    if (kind == X_DISTINCT) {
        /* A shuffled ramp: distinct values 0.1 apart. */
        for (int64_t i = 0; i < n; i++)
            p[i] = (float)(0.1 * (double)i - 0.05 * (double)n);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)(s_rand() * (double)(i + 1));
            float t = p[i];
            p[i] = p[j];
            p[j] = t;
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        double v = s_normal();
        if (kind == X_AWAY_FROM_ZERO)
            v = v < 0 ? v - 0.1 : v + 0.1;
        p[i] = (float)v;
    }
}

static void s_setup(harness_t *h, const gcase_t *c)
{
    net_node_t *node = &h->nodes[c->n_in];
    backend_t *be = s_be;

    memset(h, 0, sizeof(*h));
    for (int i = 0; i < c->n_in; i++) {
        h->nodes[i].op = GRAPH_OP_INPUT;
        s_shape(c->in[i], &h->nodes[i].shape);
        h->inputs[i] = i;
        h->nx[i] = s_numel(&h->nodes[i].shape);
        h->x[i] = be->vt->alloc(be, (size_t)h->nx[i] * sizeof(float));
        h->dx[i] = be->vt->alloc(be, (size_t)h->nx[i] * sizeof(float));
        assert_non_null(h->x[i]);
        assert_non_null(h->dx[i]);
        s_fill(h->x[i], h->nx[i], c->kind);
    }
    *node = c->args;
    node->op = c->op;
    snprintf(node->name, sizeof(node->name), "%s", c->name);
    node->n_inputs = c->n_in;
    node->inputs = h->inputs;
    s_shape(c->out, &node->shape);
    h->net.nodes = h->nodes;
    h->net.n_nodes = c->n_in + 1;
    h->net.batch = (int)h->nodes[0].shape.d[0];
    h->ny = s_numel(&node->shape);

    for (int i = 0; i < c->n_params; i++) {
        h->w[i] = be->vt->alloc(be, (size_t)c->pn[i] * sizeof(float));
        h->dw[i] = be->vt->alloc(be, (size_t)c->pn[i] * sizeof(float));
        assert_non_null(h->w[i]);
        for (int64_t j = 0; j < c->pn[i]; j++)
            h->w[i][j] = (float)(i == 3 ? 0.5 + s_rand()
                                 : i == 0 && c->op != GRAPH_OP_CONV2D &&
                                         c->op != GRAPH_OP_LINEAR
                                     ? 1.0 + 0.5 * s_normal()
                                     : 0.5 * s_normal());
    }
    h->y = be->vt->alloc(be, (size_t)h->ny * sizeof(float));
    h->r = be->vt->alloc(be, (size_t)h->ny * sizeof(float));
    s_fill(h->r, h->ny, X_NORMAL);
    h->saved = be->vt->alloc(be, be->vt->saved_bytes(be, &h->net, node) + 4);
    h->ws_size = be->vt->workspace_bytes(be, &h->net, node);
    h->ws = be->vt->alloc(be, h->ws_size + 4);

    h->op.net = &h->net;
    h->op.node = node;
    h->op.n_inputs = c->n_in;
    h->op.x = (const float *const *)h->x;
    h->op.y = h->y;
    h->op.w = (const float *const *)h->w;
    h->op.dw = h->dw;
    h->op.dx = h->dx;
    h->op.dx_accumulate = h->acc;
    h->op.dy = h->r;
    h->op.saved = h->saved;
    h->op.workspace = h->ws;
    h->op.workspace_size = h->ws_size;
    h->op.training = c->training;
    h->op.rng_key = c->key;
}

static void s_teardown(harness_t *h, const gcase_t *c)
{
    for (int i = 0; i < c->n_in; i++) {
        s_be->vt->free(s_be, h->x[i]);
        s_be->vt->free(s_be, h->dx[i]);
    }
    for (int i = 0; i < c->n_params; i++) {
        s_be->vt->free(s_be, h->w[i]);
        s_be->vt->free(s_be, h->dw[i]);
    }
    s_be->vt->free(s_be, h->y);
    s_be->vt->free(s_be, h->r);
    s_be->vt->free(s_be, h->saved);
    s_be->vt->free(s_be, h->ws);
}

/* L = sum(r * y) after a forward pass. */
static double s_loss(harness_t *h)
{
    double l = 0.0;
    int rc = s_be->vt->forward(s_be, &h->op);

    if (rc)
        fail_msg("forward: %s", s_be->err);
    for (int64_t i = 0; i < h->ny; i++)
        l += (double)h->r[i] * h->y[i];
    return l;
}

/* Compare the analytic gradient g of the n values at v with central
 * differences; returns the number of mismatches (printed). */
static int s_compare(harness_t *h, const char *name, const char *what, float *v,
                     const float *g, int64_t n)
{
    int bad = 0;
    int64_t step = n > MAX_CHECKED ? n / MAX_CHECKED : 1;

    for (int64_t i = 0; i < n; i += step) {
        float keep = v[i];
        double lp, lm, num;
        v[i] = keep + (float)EPS;
        lp = s_loss(h);
        v[i] = keep - (float)EPS;
        lm = s_loss(h);
        v[i] = keep;
        num = (lp - lm) / (2.0 * EPS);
        if (!(fabs(num - g[i]) <= TOL_ABS + TOL_REL * fabs(g[i]))) {
            if (bad++ < 5)
                print_error("%s: %s[%lld] analytic %.6f numeric %.6f\n", name,
                            what, (long long)i, (double)g[i], num);
        }
    }
    return bad;
}

static void s_run_case(const gcase_t *c)
{
    harness_t h;
    int bad = 0;
    float *grad[MAX_IN], *gw[4];

    s_setup(&h, c);
    s_loss(&h);
    for (int i = 0; i < c->n_in; i++)
        for (int64_t j = 0; j < h.nx[i]; j++)
            h.dx[i][j] = NAN;
    for (int i = 0; i < c->n_trainable; i++)
        for (int64_t j = 0; j < c->pn[i]; j++)
            h.dw[i][j] = NAN;
    if (s_be->vt->backward(s_be, &h.op))
        fail_msg("%s backward: %s", c->name, s_be->err);

    /* Keep the analytic gradients: the differences rerun forward only. */
    for (int i = 0; i < c->n_in; i++) {
        grad[i] = malloc((size_t)h.nx[i] * sizeof(float));
        memcpy(grad[i], h.dx[i], (size_t)h.nx[i] * sizeof(float));
    }
    for (int i = 0; i < c->n_trainable; i++) {
        gw[i] = malloc((size_t)c->pn[i] * sizeof(float));
        memcpy(gw[i], h.dw[i], (size_t)c->pn[i] * sizeof(float));
    }
    for (int i = 0; i < c->n_in; i++)
        bad += s_compare(&h, c->name, "dx", h.x[i], grad[i], h.nx[i]);
    for (int i = 0; i < c->n_trainable; i++)
        bad += s_compare(&h, c->name, "dw", h.w[i], gw[i], c->pn[i]);

    /* Accumulation adds; a NULL dx is left alone. */
    s_loss(&h);
    for (int i = 0; i < c->n_in; i++) {
        h.acc[i] = true;
        for (int64_t j = 0; j < h.nx[i]; j++)
            h.dx[i][j] = 1.0f;
    }
    float *first = h.dx[0];
    if (c->n_in > 1)
        h.dx[0] = NULL;
    if (s_be->vt->backward(s_be, &h.op))
        fail_msg("%s backward (accumulate): %s", c->name, s_be->err);
    h.dx[0] = first;
    for (int i = c->n_in > 1 ? 1 : 0; i < c->n_in; i++)
        for (int64_t j = 0; j < h.nx[i]; j++)
            if (fabsf(h.dx[i][j] - (grad[i][j] + 1.0f)) >
                1e-5f * (1.0f + fabsf(grad[i][j]))) {
                print_error("%s: accumulated dx%d[%lld] %f, want %f\n", c->name,
                            i, (long long)j, (double)h.dx[i][j],
                            (double)(grad[i][j] + 1.0f));
                bad++;
                break;
            }

    for (int i = 0; i < c->n_in; i++)
        free(grad[i]);
    for (int i = 0; i < c->n_trainable; i++)
        free(gw[i]);
    s_teardown(&h, c);
    if (bad)
        fail_msg("%s: %d gradient values off", c->name, bad);
}

static void s_run_all(const gcase_t *cases, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s_run_case(&cases[i]);
}

#define RUN(cases) s_run_all(cases, sizeof(cases) / sizeof(cases[0]))

/* --------------------------------------------------------------- cases */

#define CONV(ci_, co_, k_, s_, d_, g_, p_, crop_)                              \
    {                                                                          \
        .in_ch = ci_, .out_ch = co_, .kernel = k_, .stride = s_,               \
        .dilation = d_, .groups = g_, .pad = p_, .crop = crop_, .bias = true   \
    }

static void test_conv2d(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "conv odd",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 3, 5, 7)},
         .out = SH(4, 2, 4, 5, 7),
         .args = CONV(3, 4, 3, 1, 1, 1, 1, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {4 * 3 * 9, 4}},
        {.name = "conv stride 2",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 7, 6)},
         .out = SH(4, 2, 3, 4, 3),
         .args = CONV(2, 3, 3, 2, 1, 1, 1, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {3 * 2 * 9, 3}},
        {.name = "conv dilation 2",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 1, 2, 7, 7)},
         .out = SH(4, 1, 2, 7, 7),
         .args = CONV(2, 2, 3, 1, 2, 1, 2, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {2 * 2 * 9, 2}},
        {.name = "conv groups 2",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 4, 5, 5)},
         .out = SH(4, 2, 6, 5, 5),
         .args = CONV(4, 6, 3, 1, 1, 2, 1, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {6 * 2 * 9, 6}},
        {.name = "conv depthwise s2",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 3, 7, 7)},
         .out = SH(4, 2, 6, 4, 4),
         .args = CONV(3, 6, 3, 2, 1, 3, 1, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {6 * 9, 6}},
        {.name = "conv pointwise",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 3, 4, 5)},
         .out = SH(4, 2, 4, 4, 5),
         .args = CONV(3, 4, 1, 1, 1, 1, 0, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {12, 4}},
        {.name = "conv 2x2 crop",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 5, 5)},
         .out = SH(4, 2, 3, 5, 5),
         .args = CONV(2, 3, 2, 1, 1, 1, 1, true),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {3 * 2 * 4, 3}},
        {.name = "conv 2x2 s2",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 6, 6)},
         .out = SH(4, 2, 3, 3, 3),
         .args = CONV(2, 3, 2, 2, 1, 1, 0, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {3 * 2 * 4, 3}},
        {.name = "conv batched",
         .op = GRAPH_OP_CONV2D,
         .n_in = 1,
         .in = {SH(4, 9, 3, 8, 8)},
         .out = SH(4, 9, 4, 8, 8),
         .args = CONV(3, 4, 3, 1, 1, 1, 1, false),
         .n_params = 2,
         .n_trainable = 2,
         .pn = {4 * 3 * 9, 4}},
    };
    RUN(cases);
}

static void test_linear_multiply(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "linear 3-D",
         .op = GRAPH_OP_LINEAR,
         .n_in = 1,
         .in = {SH(3, 2, 3, 5)},
         .out = SH(3, 2, 3, 4),
         .args = {.in_ch = 5, .out_ch = 4, .bias = true},
         .n_params = 2,
         .n_trainable = 2,
         .pn = {20, 4}},
        {.name = "multiply batch",
         .op = GRAPH_OP_MULTIPLY,
         .n_in = 2,
         .in = {SH(4, 2, 3, 4, 5), SH(4, 2, 3, 5, 2)},
         .out = SH(4, 2, 3, 4, 2)},
        {.name = "multiply broadcast",
         .op = GRAPH_OP_MULTIPLY,
         .n_in = 2,
         .in = {SH(2, 4, 5), SH(3, 3, 5, 2)},
         .out = SH(3, 3, 4, 2)},
        {.name = "multiply vector",
         .op = GRAPH_OP_MULTIPLY,
         .n_in = 2,
         .in = {SH(3, 2, 4, 5), SH(1, 5)},
         .out = SH(2, 2, 4)},
    };
    RUN(cases);
}

static void test_pools(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "avgpool k3 s2 p1",
         .op = GRAPH_OP_AVGPOOL2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 7, 6)},
         .out = SH(4, 2, 2, 4, 3),
         .args = {.kernel = 3, .stride = 2, .pad = 1}},
        {.name = "avgpool k2 s1 crop",
         .op = GRAPH_OP_AVGPOOL2D,
         .n_in = 1,
         .in = {SH(4, 1, 2, 5, 5)},
         .out = SH(4, 1, 2, 5, 5),
         .args = {.kernel = 2, .stride = 1, .pad = 1, .crop = true}},
        {.name = "maxpool k3 s2 p1",
         .op = GRAPH_OP_MAXPOOL2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 7, 6)},
         .out = SH(4, 2, 2, 4, 3),
         .args = {.kernel = 3, .stride = 2, .pad = 1},
         .kind = X_DISTINCT},
        {.name = "maxpool k2 s2",
         .op = GRAPH_OP_MAXPOOL2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 6, 6)},
         .out = SH(4, 2, 2, 3, 3),
         .args = {.kernel = 2, .stride = 2},
         .kind = X_DISTINCT},
        {.name = "adaptive avg 3",
         .op = GRAPH_OP_ADAPTIVEAVGPOOL2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 7, 5)},
         .out = SH(4, 2, 2, 3, 3),
         .args = {.out_size = 3}},
        {.name = "adaptive max 2",
         .op = GRAPH_OP_ADAPTIVEMAXPOOL2D,
         .n_in = 1,
         .in = {SH(4, 2, 2, 5, 7)},
         .out = SH(4, 2, 2, 2, 2),
         .args = {.out_size = 2},
         .kind = X_DISTINCT},
    };
    RUN(cases);
}

static void test_elementwise(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "add same",
         .op = GRAPH_OP_ADD,
         .n_in = 2,
         .in = {SH(4, 2, 3, 2, 2), SH(4, 2, 3, 2, 2)},
         .out = SH(4, 2, 3, 2, 2)},
        {.name = "add broadcast 3",
         .op = GRAPH_OP_ADD,
         .n_in = 3,
         .in = {SH(4, 2, 1, 3, 1), SH(3, 2, 1, 4), SH(1, 4)},
         .out = SH(4, 2, 2, 3, 4)},
        {.name = "mul gate",
         .op = GRAPH_OP_MUL,
         .n_in = 2,
         .in = {SH(4, 2, 3, 1, 1), SH(4, 2, 3, 3, 2)},
         .out = SH(4, 2, 3, 3, 2)},
        {.name = "mul broadcast 3",
         .op = GRAPH_OP_MUL,
         .n_in = 3,
         .in = {SH(3, 2, 1, 3), SH(2, 4, 1), SH(3, 1, 4, 3)},
         .out = SH(3, 2, 4, 3)},
        {.name = "relu",
         .op = GRAPH_OP_RELU,
         .n_in = 1,
         .in = {SH(3, 2, 3, 5)},
         .out = SH(3, 2, 3, 5),
         .kind = X_AWAY_FROM_ZERO},
        {.name = "gelu",
         .op = GRAPH_OP_GELU,
         .n_in = 1,
         .in = {SH(3, 2, 3, 5)},
         .out = SH(3, 2, 3, 5)},
        {.name = "sigmoid",
         .op = GRAPH_OP_SIGMOID,
         .n_in = 1,
         .in = {SH(3, 2, 3, 5)},
         .out = SH(3, 2, 3, 5)},
        {.name = "droppath",
         .op = GRAPH_OP_DROPPATH,
         .n_in = 1,
         .in = {SH(4, 8, 2, 2, 2)},
         .out = SH(4, 8, 2, 2, 2),
         .args = {.prob = 0.4f},
         .training = true,
         .key = 0xfeedULL},
    };
    RUN(cases);
}

static void test_reductions(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "mean 2,3",
         .op = GRAPH_OP_MEAN,
         .n_in = 1,
         .in = {SH(4, 2, 3, 4, 3)},
         .out = SH(4, 2, 3, 1, 1),
         .args = {.n_dims = 2, .dims = {2, 3}}},
        {.name = "sum 0,2",
         .op = GRAPH_OP_SUM,
         .n_in = 1,
         .in = {SH(4, 2, 3, 4, 3)},
         .out = SH(4, 1, 3, 1, 3),
         .args = {.n_dims = 2, .dims = {0, 2}}},
        {.name = "max 1",
         .op = GRAPH_OP_MAX,
         .n_in = 1,
         .in = {SH(4, 2, 3, 4, 3)},
         .out = SH(4, 2, 1, 4, 3),
         .args = {.n_dims = 1, .dims = {1}},
         .kind = X_DISTINCT},
        {.name = "max 5-D 1,3",
         .op = GRAPH_OP_MAX,
         .n_in = 1,
         .in = {SH(5, 2, 3, 2, 2, 3)},
         .out = SH(5, 2, 1, 2, 1, 3),
         .args = {.n_dims = 2, .dims = {1, 3}},
         .kind = X_DISTINCT},
        {.name = "softmax 1",
         .op = GRAPH_OP_SOFTMAX,
         .n_in = 1,
         .in = {SH(4, 2, 4, 3, 2)},
         .out = SH(4, 2, 4, 3, 2),
         .args = {.n_dims = 1, .dims = {1}}},
        {.name = "softmax last",
         .op = GRAPH_OP_SOFTMAX,
         .n_in = 1,
         .in = {SH(2, 3, 5)},
         .out = SH(2, 3, 5),
         .args = {.n_dims = 1, .dims = {1}}},
        {.name = "concat 1",
         .op = GRAPH_OP_CONCAT,
         .n_in = 2,
         .in = {SH(4, 2, 3, 2, 2), SH(4, 2, 1, 2, 2)},
         .out = SH(4, 2, 4, 2, 2),
         .args = {.n_dims = 1, .dims = {1}}},
        {.name = "concat last 3",
         .op = GRAPH_OP_CONCAT,
         .n_in = 3,
         .in = {SH(3, 2, 2, 1), SH(3, 2, 2, 3), SH(3, 2, 2, 2)},
         .out = SH(3, 2, 2, 6),
         .args = {.n_dims = 1, .dims = {2}}},
    };
    RUN(cases);
}

static void test_norms(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "bn train",
         .op = GRAPH_OP_BN,
         .n_in = 1,
         .in = {SH(4, 4, 3, 3, 2)},
         .out = SH(4, 4, 3, 3, 2),
         .args = {.in_ch = 3},
         .n_params = 4,
         .n_trainable = 2,
         .pn = {3, 3, 3, 3},
         .training = true},
        {.name = "bn eval",
         .op = GRAPH_OP_BN,
         .n_in = 1,
         .in = {SH(4, 4, 3, 3, 2)},
         .out = SH(4, 4, 3, 3, 2),
         .args = {.in_ch = 3},
         .n_params = 4,
         .n_trainable = 2,
         .pn = {3, 3, 3, 3}},
        {.name = "ln",
         .op = GRAPH_OP_LN,
         .n_in = 1,
         .in = {SH(3, 2, 3, 6)},
         .out = SH(3, 2, 3, 6),
         .args = {.in_ch = 6},
         .n_params = 2,
         .n_trainable = 2,
         .pn = {6, 6}},
    };
    RUN(cases);
}

static void test_shapes(void **state)
{
    (void)state;
    static const gcase_t cases[] = {
        {.name = "permute 5-D",
         .op = GRAPH_OP_PERMUTE,
         .n_in = 1,
         .in = {SH(5, 2, 3, 1, 2, 3)},
         .out = SH(5, 3, 2, 2, 1, 3),
         .args = {.n_dims = 5, .dims = {4, 0, 3, 2, 1}}},
        {.name = "permute 6-D",
         .op = GRAPH_OP_PERMUTE,
         .n_in = 1,
         .in = {SH(6, 2, 1, 3, 2, 1, 2)},
         .out = SH(6, 2, 2, 1, 2, 3, 1),
         .args = {.n_dims = 6, .dims = {5, 3, 1, 0, 2, 4}}},
        {.name = "repeat prepend",
         .op = GRAPH_OP_REPEAT,
         .n_in = 1,
         .in = {SH(2, 2, 3)},
         .out = SH(3, 2, 2, 6),
         .args = {.n_sizes = 3, .sizes = {2, 1, 2}}},
        {.name = "repeat 5-D",
         .op = GRAPH_OP_REPEAT,
         .n_in = 1,
         .in = {SH(5, 2, 1, 2, 1, 2)},
         .out = SH(5, 2, 3, 2, 2, 2),
         .args = {.n_sizes = 5, .sizes = {1, 3, 1, 2, 1}}},
        {.name = "reshape to 5-D",
         .op = GRAPH_OP_RESHAPE,
         .n_in = 1,
         .in = {SH(3, 2, 6, 2)},
         .out = SH(5, 2, 3, 2, 2, 1),
         .args = {.n_sizes = 5, .sizes = {2, 3, 2, 2, 1}}},
    };
    RUN(cases);
}

static int s_group_setup(void **state)
{
    backend_options_t opt = {.threads = 2};
    char err[256];

    (void)state;
    s_be = backend_new("cpu", &opt, err, sizeof(err));
    return s_be ? 0 : -1;
}

static int s_group_teardown(void **state)
{
    (void)state;
    assert_int_equal(s_be->bytes_in_use, 0);
    backend_destroy(&s_be);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv2d),
        cmocka_unit_test(test_linear_multiply),
        cmocka_unit_test(test_pools),
        cmocka_unit_test(test_elementwise),
        cmocka_unit_test(test_reductions),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_shapes),
    };
    return cmocka_run_group_tests(tests, s_group_setup, s_group_teardown);
}
