/*
 * test_net_build.c - assembly into the nb201 and darts skeletons: the
 * instances, names, shapes, counts and the parameter list.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net.h"

static graph_design_t *s_load(const char *path)
{
    FILE *f = fopen(path, "rb");
    static char buf[1 << 16];
    graph_design_t *d = NULL;
    graph_errors_t e;

    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    graph_errors_init(&e);
    assert_int_equal(graph_design_parse(buf, n, path, &d, &e), 0);
    graph_errors_free(&e);
    return d;
}

static net_t *s_build(const graph_design_t *d, net_skeleton_t sk, int width,
                      int batch)
{
    net_config_t cfg;
    net_t *n = NULL;
    graph_errors_t e;

    assert_int_equal(net_config_default(&cfg, "cifar10"), 0);
    cfg.skeleton = sk;
    cfg.width = width;
    graph_errors_init(&e);
    int rc = net_build(d, &cfg, batch, &n, &e);
    for (int i = 0; i < e.n; i++)
        print_message("%s\n", e.v[i].message);
    assert_int_equal(rc, 0);
    graph_errors_free(&e);
    return n;
}

static const net_node_t *s_named(const net_t *n, const char *name)
{
    for (int i = 0; i < n->n_nodes; i++)
        if (strcmp(n->nodes[i].name, name) == 0)
            return &n->nodes[i];
    fail_msg("no node %s", name);
    return NULL;
}

static const net_param_t *s_param(const net_param_t *v, int n,
                                  const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return &v[i];
    fail_msg("no parameter %s", name);
    return NULL;
}

/* Topological order, instance ranges, and sums. */
static void s_invariants(const net_t *n)
{
    int64_t params = 0, macs = 0;

    assert_int_equal(n->nodes[0].op, GRAPH_OP_INPUT);
    for (int i = 0; i < n->n_nodes; i++) {
        for (int k = 0; k < n->nodes[i].n_inputs; k++) {
            assert_true(n->nodes[i].inputs[k] >= 0);
            assert_true(n->nodes[i].inputs[k] < i);
        }
        assert_int_equal(n->nodes[i].shape.d[0], n->batch);
        params += n->nodes[i].params;
        macs += n->nodes[i].macs;
    }
    assert_int_equal(params, n->params);
    assert_int_equal(macs, n->macs);
    for (int i = 0; i < n->n_instances; i++) {
        const net_instance_t *in = &n->instances[i];
        assert_true(in->first_node < in->end_node);
        for (int k = in->first_node; k < in->end_node; k++)
            assert_int_equal(n->nodes[k].instance, i);
    }
    assert_int_equal(n->output, n->n_nodes - 1);

    net_param_t *p;
    int np = net_param_list(n, &p);
    int64_t trainable = 0;
    assert_true(np > 0);
    for (int i = 0; i < np; i++)
        if (p[i].trainable)
            trainable += p[i].numel;
    assert_int_equal(trainable, n->params);
    free(p);
}

static void test_nb201_resnet(void **state)
{
    graph_design_t *d = s_load("examples/blocks/resnet_basic.txt");
    net_t *n = s_build(d, NET_SKELETON_NB201, 16, 4);

    (void)state;
    s_invariants(n);
    assert_int_equal(n->width, 16);
    assert_int_equal(n->n_instances, 1 + 15 + 2);
    assert_string_equal(n->instances[0].name, "stem");
    assert_string_equal(n->instances[1].name, "stage0.0");
    assert_string_equal(n->instances[6].name, "down0");
    assert_string_equal(n->instances[17].name, "stage2.4");
    assert_int_equal(n->instances[6].role, GRAPH_ROLE_DOWNSAMPLE);
    assert_int_equal(n->instances[6].bind.C, 16);
    assert_int_equal(n->instances[6].bind.dim, 32);

    /* Counted by hand: stem 3->16 conv+BN; cells 2 convs+2 BN; the
     * default downsample; the classifier. */
    int64_t want = 16 * 27 + 16 + 32;
    for (int s = 0; s < 3; s++) {
        int64_t c = 16 << s;
        want += 5 * (2 * (9 * c * c + c) + 4 * c);
        if (s < 2)
            want += 56 * c * c + 14 * c;
    }
    want += 64 * 10 + 10;
    assert_int_equal(n->params, want);

    const net_node_t *x = s_named(n, "stage1.3.n5");
    assert_int_equal(x->op, GRAPH_OP_CONV2D);
    assert_int_equal(x->in_ch, 32);
    assert_int_equal(x->kernel, 3);
    assert_int_equal(x->pad, 1);
    assert_true(x->bias);
    assert_int_equal(x->shape.d[2], 16);
    assert_int_equal(x->macs, 32LL * 32 * 9 * 16 * 16);
    x = s_named(n, "down1.n8");
    assert_int_equal(x->op, GRAPH_OP_AVGPOOL2D);
    assert_int_equal(x->pad, 0);
    assert_false(x->crop);
    assert_int_equal(x->shape.d[2], 8);
    x = s_named(n, "head.flatten");
    assert_int_equal(x->shape.ndim, 2);
    assert_int_equal(x->shape.d[1], 64);
    x = s_named(n, "classifier");
    assert_int_equal(x->shape.d[1], 10);

    /* The Add of a cell reads its residual from the previous cell. */
    x = s_named(n, "stage0.1.n8");
    const net_node_t *prev = &n->nodes[x->inputs[1]];
    assert_string_equal(prev->name, "stage0.0.n7");

    net_param_t *p;
    int np = net_param_list(n, &p);
    const net_param_t *w = s_param(p, np, "stage1.3.n5.weight");
    assert_int_equal(w->ndim, 4);
    assert_int_equal(w->shape[0], 32);
    assert_int_equal(w->shape[1], 32);
    assert_int_equal(w->shape[3], 3);
    assert_true(w->trainable);
    const net_param_t *rm = s_param(p, np, "stage1.3.n6.running_var");
    assert_false(rm->trainable);
    assert_int_equal(rm->numel, 32);
    w = s_param(p, np, "classifier.weight");
    assert_int_equal(w->shape[0], 10);
    assert_int_equal(w->shape[1], 64);
    s_param(p, np, "down0.n9.bias");
    free(p);
    net_destroy(&n);
    assert_null(n);
    graph_design_destroy(&d);
}

static void test_darts(void **state)
{
    graph_design_t *d = s_load("examples/blocks/darts_sep.txt");
    net_t *n = s_build(d, NET_SKELETON_DARTS, 8, 2);

    (void)state;
    s_invariants(n);
    assert_int_equal(n->n_instances, 1 + 17);
    assert_string_equal(n->instances[6].name, "cells.5");
    assert_int_equal(n->instances[6].role, GRAPH_ROLE_DOWNSAMPLE);
    assert_int_equal(n->instances[12].role, GRAPH_ROLE_DOWNSAMPLE);
    assert_int_equal(n->instances[13].bind.dim, 32);

    /* Reduction cells change width through 1x1 preprocessing. */
    const net_node_t *x = s_named(n, "cells.5.pre0.conv");
    assert_int_equal(x->stride, 1);
    assert_int_equal(x->in_ch, 8);
    assert_int_equal(x->out_ch, 16);
    assert_false(x->bias);
    x = s_named(n, "cells.6.pre0.conv"); /* after a reduction: strided */
    assert_int_equal(x->stride, 2);
    assert_int_equal(x->shape.d[2], 16);
    assert_int_equal(x->params, 8 * 16);
    s_named(n, "cells.6.pre0.relu");
    s_named(n, "cells.6.pre0.bn");
    for (int i = 0; i < n->n_nodes; i++) {
        assert_null(strstr(n->nodes[i].name, "cells.0.pre"));
        assert_null(strstr(n->nodes[i].name, "cells.6.pre1"));
        assert_null(strstr(n->nodes[i].name, "cells.7.pre0"));
    }

    /* Cell 7 reads input1 from cell 5 and input2 from cell 6. */
    x = s_named(n, "cells.7.n3");   /* ReLU on input1 */
    assert_string_equal(n->nodes[x->inputs[0]].name, "cells.5.n17");
    x = s_named(n, "cells.7.n8");   /* ReLU on input2 */
    assert_string_equal(n->nodes[x->inputs[0]].name, "cells.6.n29");
    x = s_named(n, "cells.3.n7");
    assert_int_equal(x->op, GRAPH_OP_DROPPATH);
    assert_true(x->prob > 0.299f && x->prob < 0.301f);
    x = s_named(n, "cells.16.n29");
    assert_int_equal(x->shape.d[1], 32);
    assert_int_equal(x->shape.d[2], 8);
    x = s_named(n, "stem.n3");
    assert_int_equal(x->op, GRAPH_OP_BN);
    assert_int_equal(s_named(n, "classifier")->in_ch, 32);
    net_destroy(&n);
    graph_design_destroy(&d);
}

static void test_padding_and_pools(void **state)
{
    graph_design_t *d = s_load("tests/blocks/good/pooling_mix.txt");
    net_t *n = s_build(d, NET_SKELETON_NB201, 8, 1);

    (void)state;
    s_invariants(n);
    const net_node_t *x = s_named(n, "stage0.0.n2");
    assert_int_equal(x->op, GRAPH_OP_MAXPOOL2D);
    assert_int_equal(x->pad, 1);
    assert_true(x->crop);
    assert_int_equal(x->shape.d[2], 32);
    x = s_named(n, "stage0.0.n6");
    assert_int_equal(x->out_size, 1);
    assert_int_equal(x->out_size_w, 1);
    net_destroy(&n);
    graph_design_destroy(&d);

    d = s_load("tests/blocks/good/spatial_gate.txt");
    n = s_build(d, NET_SKELETON_NB201, 8, 3);
    s_invariants(n);
    x = s_named(n, "stage2.0.n6"); /* max(dim=(1,)) */
    assert_int_equal(x->n_dims, 1);
    assert_int_equal(x->dims[0], 1);
    x = s_named(n, "stage2.0.n10"); /* repeat(1,C,1,1) at C=32 */
    assert_int_equal(x->n_sizes, 4);
    assert_int_equal(x->sizes[1], 32);
    x = s_named(n, "stage0.0.n12"); /* sum(dim=(2,3)) */
    assert_int_equal(x->n_dims, 2);
    assert_int_equal(x->dims[1], 3);
    net_destroy(&n);
    graph_design_destroy(&d);
}

static void test_reshape_uses_batch(void **state)
{
    graph_design_t *d = s_load("examples/blocks/se_residual.txt");
    net_t *n = s_build(d, NET_SKELETON_NB201, 16, 5);

    (void)state;
    const net_node_t *x = s_named(n, "stage0.0.n8"); /* reshape(B,C) */
    assert_int_equal(x->n_sizes, 2);
    assert_int_equal(x->sizes[0], 5);
    assert_int_equal(x->sizes[1], 16);
    assert_int_equal(x->shape.batch_mask, 1);
    x = s_named(n, "stage0.0.n9"); /* Linear per image */
    assert_int_equal(x->macs, 16 * 4);
    net_destroy(&n);
    graph_design_destroy(&d);
}

static void test_build_errors(void **state)
{
    graph_design_t *d = s_load("tests/blocks/good/bottleneck.txt");
    net_config_t cfg;
    net_t *n = NULL;
    graph_errors_t e;

    (void)state;
    net_config_default(&cfg, "cifar100");
    cfg.width = 18; /* C/4 is not whole */
    graph_errors_init(&e);
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), -1);
    assert_null(n);
    assert_true(e.n > 0);
    assert_string_equal(e.v[0].message,
                        "cell node 2 (Conv2d): out_channels = C/4 = 4.5 is "
                        "not a whole number at C=18");

    graph_errors_clear(&e);
    cfg.width = 16;
    cfg.skeleton = NET_SKELETON_DARTS;
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), -1);
    assert_int_equal(e.v[0].rule, GRAPH_RULE_DESIGN);

    graph_errors_clear(&e);
    cfg.skeleton = NET_SKELETON_NB201;
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), 0);
    assert_int_equal(n->nodes[n->output].shape.d[1], 100);
    net_destroy(&n);
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

/* More cells per stage than the measuring code keeps on its stack. */
static void test_deep_skeletons(void **state)
{
    graph_design_t *d = s_load("tests/blocks/good/darts_cell_only.txt");
    net_config_t cfg;
    net_choice_t c;
    net_t *n = NULL;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    cfg.skeleton = NET_SKELETON_DARTS;
    cfg.cells_per_stage = 12;
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    cfg.width = c.width;
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), 0);
    assert_int_equal(n->n_instances, 1 + 38);
    assert_int_equal(n->params, c.params);
    assert_int_equal(n->instances[13].role, GRAPH_ROLE_DOWNSAMPLE);
    net_destroy(&n);

    cfg.cells_per_stage = 0;
    assert_true(net_check(d, &cfg, &c, &e) > 0);
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

static void test_config(void **state)
{
    net_config_t c;

    (void)state;
    assert_int_equal(net_config_default(&c, "imagenet16-120"), 0);
    assert_int_equal(c.classes, 120);
    assert_int_equal(c.in_h, 16);
    assert_int_equal(net_config_default(&c, "cifar10-valid"), 0);
    assert_int_equal(c.classes, 10);
    assert_int_equal(c.budget, 1500000);
    assert_int_equal(c.max_width, 1024);
    assert_int_equal(net_config_default(&c, "mnist"), -1);
    assert_int_equal(net_skeleton_parse("DARTS"), NET_SKELETON_DARTS);
    assert_int_equal(net_skeleton_parse("resnet"), -1);
    assert_string_equal(net_skeleton_name(NET_SKELETON_NB201), "nb201");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nb201_resnet),
        cmocka_unit_test(test_darts),
        cmocka_unit_test(test_padding_and_pools),
        cmocka_unit_test(test_reshape_uses_batch),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_deep_skeletons),
        cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
