/*
 * test_backend_cpu.c - the CPU backend's table apart from the operations'
 * arithmetic: opening devices, memory accounting, in-place reshape, the
 * block output, supports(), and clear errors for bad input.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "backend.h"
#include "net.h"

static backend_t *s_open(int threads)
{
    backend_options_t opt = {.threads = threads};
    char err[256];
    backend_t *be = backend_new("cpu", &opt, err, sizeof(err));

    if (!be)
        fail_msg("backend_new: %s", err);
    return be;
}

static void test_devices(void **state)
{
    char err[256];
    backend_options_t opt = {0};
    backend_t *be;

    (void)state;
    be = backend_new("cpu", &opt, err, sizeof(err));
    assert_non_null(be);
    assert_string_equal(be->device, "cpu");
    assert_string_equal(be->vt->name, "cpu");
    assert_true(be->threads >= 1);
    assert_non_null(strstr(be->description, "thread"));
    assert_null(be->vt->capture_begin);
    backend_destroy(&be);
    assert_null(be);
    backend_destroy(&be);

    err[0] = '\0';
    assert_null(backend_new("tpu:0", &opt, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown device 'tpu:0'"));
    assert_null(backend_new("cuda:x", &opt, err, sizeof(err)));
    assert_non_null(strstr(err, "unknown device"));
    if (backend_cuda_count() == 0) {
        assert_null(backend_new("cuda:0", &opt, err, sizeof(err)));
#ifndef NADER_HAVE_CUDA
        assert_non_null(strstr(err, "this build has no CUDA support"));
#endif
    }
#ifdef NADER_HAVE_CUDA
    /* The build folder's lib/nader-cuda.so is found next to build/tests/
     * and loads here, GPU or not (the CUDA libraries are installed). */
    assert_null(backend_cuda_why());
#else
    assert_non_null(backend_cuda_why());
#endif
    opt.threads = -1;
    assert_null(backend_new("cpu", &opt, err, sizeof(err)));
    assert_non_null(strstr(err, "-1 threads"));
}

static void test_memory_accounting(void **state)
{
    backend_t *be = s_open(1);
    void *a, *b;
    float host[5] = {1, 2, 3, 4, 5}, back[5] = {0};

    (void)state;
    assert_int_equal(be->bytes_in_use, 0);
    a = be->vt->alloc(be, 1000);
    b = be->vt->alloc(be, 24);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal((uintptr_t)a % 64, 0);
    assert_int_equal((uintptr_t)b % 64, 0);
    assert_int_equal(be->bytes_in_use, 1024);
    assert_int_equal(be->peak_bytes, 1024);
    be->vt->free(be, a);
    assert_int_equal(be->bytes_in_use, 24);
    assert_int_equal(be->peak_bytes, 1024);
    a = be->vt->alloc(be, 100);
    assert_int_equal(be->peak_bytes, 1024);

    assert_int_equal(be->vt->upload(be, a, host, sizeof(host)), 0);
    assert_int_equal(be->vt->copy(be, b, a, 20), 0);
    assert_int_equal(be->vt->download(be, back, b, 20), 0);
    assert_memory_equal(back, host, 20);
    assert_int_equal(be->vt->zero(be, b, 20), 0);
    assert_int_equal(be->vt->download(be, back, b, 20), 0);
    assert_true(back[0] == 0.0f && back[4] == 0.0f);
    assert_int_equal(be->vt->sync(be), 0);

    be->vt->free(be, a);
    be->vt->free(be, b);
    be->vt->free(be, NULL);
    assert_int_equal(be->bytes_in_use, 0);
    assert_null(be->vt->alloc(be, SIZE_MAX - 8));
    assert_non_null(strstr(be->err, "too large"));
    assert_int_equal(be->bytes_in_use, 0);
    backend_destroy(&be);
}

/* A two-node net: an input of shape xs feeding one node. */
typedef struct tiny {
    net_t net;
    net_node_t nodes[2];
    int inputs[1];
} tiny_t;

static net_node_t *s_tiny(tiny_t *t, graph_op_t op, graph_shape_t xs,
                          graph_shape_t ys)
{
    memset(t, 0, sizeof(*t));
    t->nodes[0].op = GRAPH_OP_INPUT;
    t->nodes[0].shape = xs;
    t->nodes[1].op = op;
    snprintf(t->nodes[1].name, sizeof(t->nodes[1].name), "cells.3.n7");
    t->nodes[1].n_inputs = 1;
    t->nodes[1].inputs = t->inputs;
    t->nodes[1].shape = ys;
    t->net.nodes = t->nodes;
    t->net.n_nodes = 2;
    return &t->nodes[1];
}

static void test_reshape_in_place_and_output(void **state)
{
    backend_t *be = s_open(2);
    tiny_t t;
    graph_shape_t xs = {.ndim = 2, .d = {3, 4}};
    graph_shape_t ys = {.ndim = 3, .d = {3, 2, 2}};
    net_node_t *node = s_tiny(&t, GRAPH_OP_RESHAPE, xs, ys);
    float buf[12], dbuf[12], other[12];
    const float *xin[1] = {buf};
    float *dx[1] = {dbuf};
    bool acc[1] = {false};
    backend_op_t op = {.net = &t.net,
                       .node = node,
                       .n_inputs = 1,
                       .x = xin,
                       .y = buf,
                       .dx = dx,
                       .dx_accumulate = acc,
                       .dy = dbuf};

    (void)state;
    node->n_sizes = 3;
    for (int i = 0; i < 12; i++) {
        buf[i] = (float)i;
        dbuf[i] = (float)(2 * i);
    }
    /* y == x and dx == dy: nothing to do, nothing changes. */
    assert_int_equal(be->vt->forward(be, &op), 0);
    assert_int_equal(be->vt->backward(be, &op), 0);
    for (int i = 0; i < 12; i++) {
        assert_true(buf[i] == (float)i);
        assert_true(dbuf[i] == (float)(2 * i));
    }
    /* The block output is an identity too. */
    node->op = GRAPH_OP_OUTPUT;
    op.y = other;
    assert_int_equal(be->vt->forward(be, &op), 0);
    assert_memory_equal(other, buf, sizeof(buf));
    acc[0] = true;
    op.dy = other;
    assert_int_equal(be->vt->backward(be, &op), 0);
    for (int i = 0; i < 12; i++)
        assert_true(dbuf[i] == (float)(3 * i));
    backend_destroy(&be);
}

static void test_supports(void **state)
{
    backend_t *be = s_open(1);
    net_node_t node = {0};

    (void)state;
    for (int op = 0; op < GRAPH_OP_COUNT; op++) {
        node.op = (graph_op_t)op;
        bool input = op == GRAPH_OP_INPUT || op == GRAPH_OP_INPUT1 ||
                     op == GRAPH_OP_INPUT2;
        assert_int_equal(be->vt->supports(be, &node), !input);
    }
    backend_destroy(&be);
}

static void test_errors_name_the_node(void **state)
{
    backend_t *be = s_open(1);
    tiny_t t;
    graph_shape_t xs = {.ndim = 4, .d = {2, 3, 8, 8}};
    graph_shape_t ys = {.ndim = 4, .d = {2, 4, 5, 8}};
    net_node_t *node = s_tiny(&t, GRAPH_OP_CONV2D, xs, ys);
    float x[1], y[1];
    const float *xin[1] = {x};
    backend_op_t op = {
        .net = &t.net, .node = node, .n_inputs = 1, .x = xin, .y = y};

    (void)state;
    node->in_ch = 3;
    node->out_ch = 4;
    node->kernel = 3;
    node->stride = 1;
    node->dilation = 1;
    node->groups = 1;
    node->pad = 1;
    assert_int_equal(be->vt->forward(be, &op), -EINVAL);
    assert_non_null(strstr(be->err, "Conv2d node 1 (cells.3.n7)"));
    assert_non_null(strstr(be->err, "shapes do not fit"));

    op.n_inputs = 2;
    assert_int_equal(be->vt->forward(be, &op), -EINVAL);
    assert_non_null(strstr(be->err, "2 inputs given, node has 1"));

    node->op = GRAPH_OP_INPUT;
    op.n_inputs = 1;
    assert_true(be->vt->forward(be, &op) < 0);
    assert_non_null(strstr(be->err, "input node 1"));
    backend_destroy(&be);
}

static void test_xent_and_sgd_errors(void **state)
{
    backend_t *be = s_open(1);
    float logits[6] = {0}, acc[2] = {0}, w[2] = {1, 1}, g[2] = {1, 1};
    int32_t labels[2] = {1, 3};
    backend_sgd_t p = {.lr = 0.1f, .momentum = 0.9f};

    (void)state;
    assert_int_equal(be->vt->xent(be, logits, labels, 2, 3, NULL, acc),
                     -EINVAL);
    assert_non_null(strstr(be->err, "label 3 of sample 1 outside [0, 3)"));
    assert_true(acc[0] == 0.0f && acc[1] == 0.0f);
    labels[1] = 2;
    assert_int_equal(be->vt->xent(be, logits, labels, 2, 3, NULL, acc), 0);
    assert_true(fabsf(acc[0] - 2.0f * logf(3.0f)) < 1e-5f);

    assert_int_equal(be->vt->sgd(be, w, g, NULL, 2, &p), -EINVAL);
    assert_non_null(strstr(be->err, "momentum"));
    assert_true(w[0] == 1.0f);
    p.momentum = 0.0f;
    assert_int_equal(be->vt->sgd(be, w, g, NULL, 2, &p), 0);
    assert_true(fabsf(w[0] - 0.9f) < 1e-6f);
    backend_destroy(&be);
}

static void test_batch_errors(void **state)
{
    backend_t *be = s_open(1);
    backend_batch_spec_t spec = {.n = 1, .std = {1, 0, 1}};
    uint8_t img[3] = {0};
    int32_t lab[1] = {0}, idx[1] = {0};
    float out[3];

    (void)state;
    spec.index = idx;
    assert_int_equal(be->vt->batch(be, img, lab, 1, 1, &spec, out, NULL),
                     -EINVAL);
    assert_non_null(strstr(be->err, "std[1]"));
    backend_destroy(&be);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices),
        cmocka_unit_test(test_memory_accounting),
        cmocka_unit_test(test_reshape_in_place_and_output),
        cmocka_unit_test(test_supports),
        cmocka_unit_test(test_errors_name_the_node),
        cmocka_unit_test(test_xent_and_sgd_errors),
        cmocka_unit_test(test_batch_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
