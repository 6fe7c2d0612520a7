/*
 * test_network.c - the network executor on the CPU backend: memory plan,
 * gradients of whole networks against finite differences, parameter
 * sharing between batch sizes, initialisation, and weights on disk.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend.h"
#include "graph.h"
#include "net.h"
#include "network.h"
#include "rng.h"
#include "safetensors.h"

/* A squeeze-and-excitation cell: reshape aliases, a broadcasting Mul,
 * a residual Add (so the input has two consumers). */
static const char s_se[] =
    "##SE##\n0:input\n1:output\n"
    "2:Conv2d(out_channels=C,kernel_size=3)\n3:BN\n4:ReLU\n"
    "5:AdaptiveAvgPool2d(output_size=1)\n6:reshape(B,C)\n"
    "7:Linear(out_channels=C/2)\n8:ReLU\n9:Linear(out_channels=C)\n"
    "10:Sigmoid\n11:reshape(B,C,1,1)\n12:Mul\n13:Add\n"
    "0->2\n2->3\n3->4\n4->5\n5->6\n6->7\n7->8\n8->9\n9->10\n10->11\n"
    "4->12\n11->12\n12->13\n0->13\n13->1\n";

static const char s_resnet[] =
    "##R##\n0:input\n1:output\n"
    "2:Conv2d(out_channels=C,kernel_size=3,stride=1)\n3:BN\n4:ReLU\n"
    "5:Conv2d(out_channels=C,kernel_size=3,stride=1)\n6:BN\n7:ReLU\n"
    "8:Add\n0->2\n2->3\n3->4\n4->5\n5->6\n6->8\n0->8\n8->7\n7->1\n";

typedef struct fixture {
    graph_design_t *d;
    net_t *net;
    backend_t *be;
    network_t *nw;
    float *x, *acc;
    int32_t *labels;
    int batch, size;
} fixture_t;

static void s_build(fixture_t *f, const char *text, int width, int cells,
                    int batch, int size)
{
    graph_errors_t errs;
    net_config_t cfg;
    backend_options_t bo = {2, BACKEND_STRICT_FP32};
    char err[512];

    memset(f, 0, sizeof(*f));
    graph_errors_init(&errs);
    if (graph_design_parse(text, strlen(text), "test", &f->d, &errs) != 0)
        fail_msg("parse: %s", errs.v[0].message);
    assert_int_equal(net_config_default(&cfg, "cifar10"), 0);
    cfg.width = width;
    cfg.cells_per_stage = cells;
    cfg.in_h = cfg.in_w = size;
    if (net_build(f->d, &cfg, batch, &f->net, &errs) != 0)
        fail_msg("net_build: %s", errs.v[0].message);
    graph_errors_free(&errs);
    f->be = backend_new("cpu", &bo, err, sizeof(err));
    assert_non_null(f->be);
    if (network_new(f->be, f->net, NULL, &f->nw, err, sizeof(err)) != 0)
        fail_msg("network_new: %s", err);
    assert_int_equal(network_init(f->nw, 777), 0);
    f->batch = batch;
    f->size = size;
    f->x = f->be->vt->alloc(f->be, (size_t)batch * 3 * size * size * 4);
    f->labels = f->be->vt->alloc(f->be, (size_t)batch * 4);
    f->acc = f->be->vt->alloc(f->be, 8);
    uint64_t st = 99;
    for (int i = 0; i < batch * 3 * size * size; i++)
        f->x[i] = (float)(engine_rng_next(&st) >> 40) / 16777216.0f * 2 - 1;
    for (int i = 0; i < batch; i++)
        f->labels[i] = i % 10;
}

static void s_free(fixture_t *f)
{
    f->be->vt->free(f->be, f->x);
    f->be->vt->free(f->be, f->labels);
    f->be->vt->free(f->be, f->acc);
    network_destroy(&f->nw);
    backend_destroy(&f->be);
    net_destroy(&f->net);
    graph_design_destroy(&f->d);
}

/* Mean loss of a training-mode forward (in double, from the device
 * sum); with backward when grads. */
static double s_loss(fixture_t *f, network_t *nw, int batch, bool grads)
{
    char err[512];

    f->acc[0] = f->acc[1] = 0;
    if (network_forward(nw, f->x, true, 1, 0, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(f->be->vt->xent(f->be, network_logits(nw), f->labels,
                                     batch, 10,
                                     grads ? network_dlogits(nw) : NULL,
                                     f->acc),
                     0);
    if (grads && network_backward(nw, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    return f->acc[0] / batch;
}

static void test_plan_reuses_memory(void **state)
{
    fixture_t f;
    network_stats_t s;

    (void)state;
    s_build(&f, s_resnet, 8, 3, 16, 32);
    network_stats(f.nw, &s);
    print_message("resnet width 8, 3 cells/stage, batch 16: arena %.2f MiB,"
                  " all buffers %.2f MiB (%d buffers), params %.1f KiB\n",
                  s.arena_bytes / 1048576.0, s.activation_sum / 1048576.0,
                  s.n_buffers, s.param_bytes / 1024.0);
    assert_true(s.arena_bytes < s.activation_sum);
    /* backward frees activations as it goes: well under two thirds */
    assert_true(s.arena_bytes * 3 < s.activation_sum * 2);
    assert_true(s.train_bytes <= s.param_bytes);
    /* the plan runs: a step with the arena this small is still right */
    assert_true(isfinite(s_loss(&f, f.nw, 16, true)));
    s_free(&f);
}

/*
 * The memory plan changes nothing: a training step (forward, loss,
 * backward) through the planned arena gives bit for bit the logits and
 * gradients of the same network with every buffer in its own memory.
 */
static void s_check_plan(const char *design, int width)
{
    fixture_t f;
    network_t *ref = NULL;
    network_stats_t a, b;
    char err[512];
    float logits[80];
    int n = 0;

    s_build(&f, design, width, 2, 8, 16);
    assert_int_equal(network_new_ex(f.be, f.net, NULL, NETWORK_NO_REUSE,
                                    &ref, err, sizeof(err)), 0);
    assert_int_equal(network_init(ref, 777), 0);
    network_stats(f.nw, &a);
    network_stats(ref, &b);
    assert_true(a.arena_bytes < b.arena_bytes);
    s_loss(&f, ref, 8, true);
    memcpy(logits, network_logits(ref), sizeof(logits));
    s_loss(&f, f.nw, 8, true);
    for (int i = 0; i < network_param_count(f.nw); i++) {
        const net_param_t *p = network_param(f.nw, i);
        if (!p->trainable)
            continue;
        if (memcmp(network_param_grad(f.nw, i), network_param_grad(ref, i),
                   (size_t)p->numel * sizeof(float)) != 0)
            fail_msg("%s: gradient differs from the unplanned network",
                     p->name);
        n++;
    }
    assert_true(n > 10);
    network_destroy(&ref);
    s_free(&f);
}

/*
 * Gradients against central differences, for the classifier and the
 * last cell (where a small step crosses few ReLU kinks), one tensor at a
 * time along a random +-1 direction v: (L(w + eps v) - L(w - eps v)) /
 * 2 eps against g . v.  (Every gradient is checked against PyTorch in
 * tests/py/test_network_parity.py; this needs no Python.)
 */
static void s_check_fd(const char *design, int width)
{
    fixture_t f;
    int checked = 0;
    uint64_t st = 5;

    s_build(&f, design, width, 1, 8, 16);
    double loss = s_loss(&f, f.nw, 8, true);
    for (int i = 0; i < network_param_count(f.nw); i++) {
        const net_param_t *p = network_param(f.nw, i);
        float *w, *g, *keep;
        double gv = 0, lp, lm;
        const float eps = 1e-4f;
        if (!p->trainable || (strncmp(p->name, "stage2.", 7) != 0 &&
                              strncmp(p->name, "classifier", 10) != 0))
            continue;
        w = network_param_data(f.nw, i);
        g = network_param_grad(f.nw, i);
        keep = malloc((size_t)p->numel * sizeof(float));
        memcpy(keep, w, (size_t)p->numel * sizeof(float));
        int8_t *v = malloc((size_t)p->numel);
        for (int64_t k = 0; k < p->numel; k++) {
            v[k] = engine_rng_next(&st) >> 63 ? 1 : -1;
            gv += (double)g[k] * v[k];
        }
        for (int64_t k = 0; k < p->numel; k++)
            w[k] = keep[k] + eps * v[k];
        lp = s_loss(&f, f.nw, 8, false);
        for (int64_t k = 0; k < p->numel; k++)
            w[k] = keep[k] - eps * v[k];
        lm = s_loss(&f, f.nw, 8, false);
        memcpy(w, keep, (size_t)p->numel * sizeof(float));
        double fd = (lp - lm) / (2.0 * eps);
        if (fabs(fd - gv) > 2e-2 * fabs(gv) + 3e-7 * loss / eps)
            fail_msg("%s: backward g.v = %.6g, differences %.6g", p->name,
                     gv, fd);
        checked++;
        free(keep);
        free(v);
    }
    assert_true(checked >= 4);
    s_free(&f);
}

static void test_plan_changes_nothing(void **state)
{
    (void)state;
    s_check_plan(s_resnet, 4);
    s_check_plan(s_se, 4);
}

static void test_gradients_resnet(void **state)
{
    (void)state;
    s_check_fd(s_resnet, 4);
}

static void test_gradients_se(void **state)
{
    (void)state;
    s_check_fd(s_se, 4);
}

static void test_shared_parameters(void **state)
{
    fixture_t f;
    graph_errors_t errs;
    net_config_t cfg;
    net_t *small = NULL;
    network_t *nw3 = NULL;
    char err[512];
    float big[10 * 8];

    (void)state;
    s_build(&f, s_se, 4, 1, 8, 8);
    cfg = f.net->config;
    cfg.width = f.net->width;
    graph_errors_init(&errs);
    assert_int_equal(net_build(f.d, &cfg, 3, &small, &errs), 0);
    graph_errors_free(&errs);
    assert_int_equal(network_new(f.be, small, f.nw, &nw3, err, sizeof(err)),
                     0);
    for (int i = 0; i < network_param_count(f.nw); i++)
        assert_ptr_equal(network_param_data(f.nw, i),
                         network_param_data(nw3, i));
    assert_int_equal(network_forward(f.nw, f.x, false, 1, 0, err,
                                     sizeof(err)), 0);
    memcpy(big, network_logits(f.nw), sizeof(big));
    assert_int_equal(network_forward(nw3, f.x, false, 1, 0, err,
                                     sizeof(err)), 0);
    for (int i = 0; i < 30; i++)
        assert_float_equal(network_logits(nw3)[i], big[i], 1e-5);
    /* a training step through the small network moves the shared
     * weights that the big one sees */
    s_loss(&f, nw3, 3, true);
    backend_sgd_t sgd = {0.1f, 0.9f, 5e-4f, true};
    assert_int_equal(network_sgd(nw3, &sgd, err, sizeof(err)), 0);
    assert_int_equal(network_forward(f.nw, f.x, false, 1, 0, err,
                                     sizeof(err)), 0);
    assert_memory_not_equal(network_logits(f.nw), big, sizeof(big));
    network_destroy(&nw3);
    net_destroy(&small);
    s_free(&f);
}

static void test_init_like_pytorch(void **state)
{
    fixture_t f, g;
    int convs = 0;

    (void)state;
    s_build(&f, s_resnet, 8, 1, 2, 8);
    s_build(&g, s_resnet, 8, 1, 2, 8);
    for (int i = 0; i < network_param_count(f.nw); i++) {
        const net_param_t *p = network_param(f.nw, i);
        const net_node_t *nd = &f.net->nodes[p->node];
        const float *w = network_param_data(f.nw, i);
        assert_memory_equal(w, network_param_data(g.nw, i),
                            (size_t)p->numel * 4);
        if (nd->op == GRAPH_OP_BN) {
            float want = p->kind == NET_PARAM_WEIGHT ||
                         p->kind == NET_PARAM_RUNNING_VAR ? 1.0f : 0.0f;
            for (int64_t k = 0; k < p->numel; k++)
                assert_true(w[k] == want);
        } else if (nd->op == GRAPH_OP_CONV2D &&
                   p->kind == NET_PARAM_WEIGHT && p->numel >= 500) {
            double bound = 1.0 / sqrt((double)(p->numel / p->shape[0]));
            double sq = 0, mx = 0;
            for (int64_t k = 0; k < p->numel; k++) {
                sq += (double)w[k] * w[k];
                mx = fmax(mx, fabs(w[k]));
            }
            assert_true(mx <= bound);
            /* uniform on [-b, b]: standard deviation b / sqrt(3) */
            double sd = sqrt(sq / (double)p->numel);
            assert_true(fabs(sd - bound / sqrt(3.0)) < 0.1 * bound);
            convs++;
        }
    }
    assert_true(convs > 3);
    assert_int_equal(network_init(g.nw, 888), 0);
    assert_memory_not_equal(network_param_data(f.nw, 0),
                            network_param_data(g.nw, 0), 16);
    s_free(&f);
    s_free(&g);
}

static void test_weights_round_trip(void **state)
{
    fixture_t f, g;
    char path[] = "/tmp/nader-test-nw-XXXXXX";
    char file[128], bad[128], err[512];
    safetensors_t *st = NULL;
    float logits[20];
    int fd = mkstemp(path);

    (void)state;
    assert_true(fd >= 0);
    close(fd);
    snprintf(file, sizeof(file), "%s.w", path);
    snprintf(bad, sizeof(bad), "%s.bad", path);
    s_build(&f, s_se, 4, 1, 2, 8);
    s_build(&g, s_se, 4, 1, 2, 8);
    assert_int_equal(network_init(g.nw, 12345), 0);
    s_loss(&f, f.nw, 2, false); /* move BN running statistics */
    assert_int_equal(network_weights_save(f.nw, file, NULL, false, err,
                                          sizeof(err)), 0);
    assert_int_equal(safetensors_load(file, &st, err, sizeof(err)), 0);
    assert_non_null(safetensors_find(st, "classifier.weight"));
    assert_int_equal(network_weights_load(g.nw, st, false, err,
                                          sizeof(err)), 0);
    safetensors_destroy(&st);
    network_forward(f.nw, f.x, false, 1, 0, err, sizeof(err));
    memcpy(logits, network_logits(f.nw), sizeof(logits));
    network_forward(g.nw, g.x, false, 1, 0, err, sizeof(err));
    assert_memory_equal(logits, network_logits(g.nw), sizeof(logits));

    /* a file missing one tensor fails whole and changes nothing */
    {
        const net_param_t *p = network_param(f.nw, 1);
        safetensors_entry_t e = {p->name, p->ndim, p->shape,
                                 network_param_data(f.nw, 1)};
        assert_int_equal(safetensors_save(bad, &e, 1, NULL, err,
                                          sizeof(err)), 0);
    }
    assert_int_equal(network_init(g.nw, 1), 0);
    network_forward(g.nw, g.x, false, 1, 0, err, sizeof(err));
    memcpy(logits, network_logits(g.nw), sizeof(logits));
    assert_int_equal(safetensors_load(bad, &st, err, sizeof(err)), 0);
    assert_true(network_weights_load(g.nw, st, false, err, sizeof(err)) <
                0);
    assert_non_null(strstr(err, "no tensor"));
    assert_non_null(strstr(err, network_param(g.nw, 0)->name));
    safetensors_destroy(&st);
    network_forward(g.nw, g.x, false, 1, 0, err, sizeof(err));
    assert_memory_equal(logits, network_logits(g.nw), sizeof(logits));

    /* a network of another width is told which tensor does not fit */
    {
        fixture_t h;
        s_build(&h, s_se, 8, 1, 2, 8);
        assert_int_equal(safetensors_load(file, &st, err, sizeof(err)), 0);
        assert_true(network_weights_load(h.nw, st, false, err,
                                         sizeof(err)) < 0);
        assert_non_null(strstr(err, "has shape"));
        safetensors_destroy(&st);
        s_free(&h);
    }
    unlink(file);
    unlink(bad);
    unlink(path);
    s_free(&f);
    s_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plan_reuses_memory),
        cmocka_unit_test(test_plan_changes_nothing),
        cmocka_unit_test(test_gradients_resnet),
        cmocka_unit_test(test_gradients_se),
        cmocka_unit_test(test_shared_parameters),
        cmocka_unit_test(test_init_like_pytorch),
        cmocka_unit_test(test_weights_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
