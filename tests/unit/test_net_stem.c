/*
 * test_net_stem.c - skeletons whose stem reduces the resolution
 * (net_config_t.stem_scale): the ImageNet-style designs of
 * tests/blocks/good/imagenet_*.txt validate and assemble at stem_scale 4
 * on 32x32 and 16x16 inputs with every stage at the stem's resolution,
 * fail at stem_scale 1 with the exact rule-6 line, keep the input's MAC
 * cap, and the darts skeleton follows a halving stem the same way.
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

static const char *const s_imagenet[] = {
    "tests/blocks/good/imagenet_patchnext.txt",
    "tests/blocks/good/imagenet_bottleneck.txt",
    "tests/blocks/good/imagenet_basic.txt",
};

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

static const net_instance_t *s_instance(const net_t *n, const char *name)
{
    for (int i = 0; i < n->n_instances; i++)
        if (strcmp(n->instances[i].name, name) == 0)
            return &n->instances[i];
    fail_msg("no instance %s", name);
    return NULL;
}

/* The output shape of an instance: its last node's. */
static const graph_shape_t *s_out(const net_t *n, const char *name)
{
    return &n->nodes[s_instance(n, name)->end_node - 1].shape;
}

static void s_shape_is(const graph_shape_t *s, int64_t c, int64_t h,
                       int64_t w)
{
    assert_int_equal(s->ndim, 4);
    assert_int_equal(s->d[1], c);
    assert_int_equal(s->d[2], h);
    assert_int_equal(s->d[3], w);
}

static void s_dump(const graph_errors_t *e)
{
    for (int i = 0; i < e->n; i++)
        print_message("  %s\n", e->v[i].message);
}

/* At stem_scale 4 every ImageNet-style design assembles, and each stage
 * runs at a quarter, an eighth, a sixteenth of the input. */
static void test_imagenet_designs_assemble(void **state)
{
    static const char *const sets[] = {"cifar10", "imagenet16-120"};

    (void)state;
    for (size_t f = 0; f < sizeof s_imagenet / sizeof *s_imagenet; f++) {
        graph_design_t *d = s_load(s_imagenet[f]);
        for (int k = 0; k < 2; k++) {
            net_config_t cfg;
            net_choice_t c;
            net_t *n = NULL;
            graph_errors_t e;

            graph_errors_init(&e);
            net_config_default(&cfg, sets[k]);
            cfg.stem_scale = 4;
            if (net_check(d, &cfg, &c, &e) != 0) {
                print_message("%s at %s:\n", s_imagenet[f], sets[k]);
                s_dump(&e);
                fail();
            }
            assert_true(c.width > 0);
            assert_int_equal(net_build(d, &cfg, 3, &n, &e), 0);
            assert_int_equal(n->params, c.params);
            assert_int_equal(n->macs, c.macs);
            assert_int_equal(n->config.stem_scale, 4);

            int64_t w = n->width, side = cfg.in_h;
            const net_instance_t *st = s_instance(n, "stem");
            assert_int_equal(st->bind.H, side);
            s_shape_is(s_out(n, "stem"), w, side / 4, side / 4);
            assert_int_equal(s_instance(n, "stage0.0")->bind.H, side / 4);
            s_shape_is(s_out(n, "stage0.4"), w, side / 4, side / 4);
            assert_int_equal(s_instance(n, "down0")->bind.H, side / 4);
            s_shape_is(s_out(n, "down0"), 2 * w, side / 8, side / 8);
            s_shape_is(s_out(n, "stage1.2"), 2 * w, side / 8, side / 8);
            s_shape_is(s_out(n, "down1"), 4 * w, side / 16, side / 16);
            assert_int_equal(s_instance(n, "stage2.4")->bind.H, side / 16);
            assert_int_equal(n->nodes[n->output].shape.d[0], 3);
            assert_int_equal(n->nodes[n->output].shape.d[1], cfg.classes);
            net_destroy(&n);
            graph_errors_free(&e);
        }
        graph_design_destroy(&d);
    }
}

/* At stem_scale 1 (and 2) they fail at the stem's output, with the line
 * that says which resolution is wanted. */
static void test_wrong_scale_is_rule_6(void **state)
{
    static const struct {
        const char *set;
        int scale;
        const char *line;
    } cases[] = {
        {"cifar10", 1,
         "stem node 1 (output): gets (B,16,8,8), but a stem must return "
         "dim channels at the input resolution 32x32 (stem_scale 1), "
         "(B,16,32,32)"},
        {"imagenet16-120", 1,
         "stem node 1 (output): gets (B,16,4,4), but a stem must return "
         "dim channels at the input resolution 16x16 (stem_scale 1), "
         "(B,16,16,16)"},
        {"cifar10", 2,
         "stem node 1 (output): gets (B,16,8,8), but a stem must return "
         "dim channels at 16x16, the 32x32 input reduced 2x (stem_scale "
         "2), (B,16,16,16)"},
        {"imagenet16-120", 8,
         "stem node 1 (output): gets (B,16,4,4), but a stem must return "
         "dim channels at 2x2, the 16x16 input reduced 8x (stem_scale 8), "
         "(B,16,2,2)"},
    };

    (void)state;
    for (size_t f = 0; f < sizeof s_imagenet / sizeof *s_imagenet; f++) {
        graph_design_t *d = s_load(s_imagenet[f]);
        for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
            net_config_t cfg;
            net_t *n = NULL;
            graph_errors_t e;

            graph_errors_init(&e);
            net_config_default(&cfg, cases[k].set);
            cfg.stem_scale = cases[k].scale;
            assert_true(net_check(d, &cfg, NULL, &e) > 0);
            if (strcmp(e.v[0].message, cases[k].line) != 0) {
                print_message("%s:\n", s_imagenet[f]);
                s_dump(&e);
                fail();
            }
            assert_string_equal(e.v[0].block, "stem");
            assert_int_equal(e.v[0].node, 1);
            assert_int_equal(e.v[0].rule, GRAPH_RULE_ROLE);
            graph_errors_clear(&e);
            cfg.width = 16;
            assert_int_equal(net_build(d, &cfg, 2, &n, &e), -1);
            assert_null(n);
            assert_string_equal(e.v[0].message, cases[k].line);
            graph_errors_free(&e);
        }
        graph_design_destroy(&d);
    }
}

/* A CIFAR stem under a reducing skeleton fails the other way round; 0
 * reads as 1; scales other than 1, 2, 4, 8 are refused by name. */
static void test_scale_values(void **state)
{
    graph_design_t *d = s_load("examples/blocks/resnet_basic.txt");
    net_config_t cfg;
    net_choice_t a, b;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    assert_int_equal(cfg.stem_scale, 1);
    cfg.stem_scale = 4;
    assert_true(net_check(d, &cfg, NULL, &e) > 0);
    assert_string_equal(e.v[0].message,
                        "stem node 1 (output): gets (B,16,32,32), but a stem "
                        "must return dim channels at 8x8, the 32x32 input "
                        "reduced 4x (stem_scale 4), (B,16,8,8)");

    cfg.stem_scale = 1;
    assert_int_equal(net_choose_width(d, &cfg, &a, NULL), 0);
    cfg.stem_scale = 0;
    assert_int_equal(net_choose_width(d, &cfg, &b, NULL), 0);
    assert_int_equal(a.width, b.width);
    assert_int_equal(a.params, b.params);
    assert_int_equal(a.macs, b.macs);

    for (int s = -1; s <= 16; s++)
        assert_int_equal(net_stem_scale_ok(s),
                         s == 1 || s == 2 || s == 4 || s == 8);
    graph_errors_clear(&e);
    cfg.stem_scale = 3;
    assert_int_equal(net_check(d, &cfg, NULL, &e), 1);
    assert_int_equal(e.v[0].rule, GRAPH_RULE_DESIGN);
    assert_string_equal(e.v[0].message,
                        "design: stem_scale = 3 is not one the skeletons "
                        "take (1, 2, 4 or 8)");
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

/* The MAC cap is the input size's (0.2 G at 32x32), not the stem's
 * output's: with a budget no width reaches, the widest width under the
 * cap is chosen, and the next valid one is over it. */
static void test_mac_cap_is_the_inputs(void **state)
{
    graph_design_t *d = s_load("tests/blocks/good/imagenet_basic.txt");
    net_config_t cfg;
    net_choice_t c, next;

    (void)state;
    net_config_default(&cfg, "cifar10");
    cfg.stem_scale = 4;
    cfg.budget = 1000000000;
    assert_int_equal(net_choose_width(d, &cfg, &c, NULL), 0);
    assert_true(c.macs <= 200000000);
    assert_true(c.macs > 150000000);
    cfg.width = c.width + 1;
    assert_int_equal(net_choose_width(d, &cfg, &next, NULL), 0);
    assert_true(next.macs > 200000000);
    graph_design_destroy(&d);
}

/* darts: the cells follow the stem's resolution, the reductions halve
 * it from there. */
static void test_darts_follows_the_stem(void **state)
{
    graph_design_t *d = s_load("tests/blocks/good/darts_strided_stem.txt");
    net_config_t cfg;
    net_t *n = NULL;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    cfg.skeleton = NET_SKELETON_DARTS;
    cfg.stem_scale = 2;
    cfg.cells_per_stage = 2;
    cfg.width = 8;
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), 0);
    s_shape_is(s_out(n, "stem"), 8, 16, 16);
    assert_int_equal(s_instance(n, "cells.0")->bind.H, 16);
    s_shape_is(s_out(n, "cells.1"), 8, 16, 16);
    assert_int_equal(s_instance(n, "cells.2")->role, GRAPH_ROLE_DOWNSAMPLE);
    s_shape_is(s_out(n, "cells.2"), 16, 8, 8);
    s_shape_is(s_out(n, "cells.4"), 16, 8, 8);
    assert_int_equal(s_instance(n, "cells.5")->role, GRAPH_ROLE_DOWNSAMPLE);
    s_shape_is(s_out(n, "cells.7"), 32, 4, 4);
    net_destroy(&n);

    cfg.stem_scale = 1;
    assert_int_equal(net_build(d, &cfg, 2, &n, &e), -1);
    assert_string_equal(e.v[0].message,
                        "stem node 1 (output): gets (B,8,16,16), but a stem "
                        "must return dim channels at the input resolution "
                        "32x32 (stem_scale 1), (B,8,32,32)");
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_imagenet_designs_assemble),
        cmocka_unit_test(test_wrong_scale_is_rule_6),
        cmocka_unit_test(test_scale_values),
        cmocka_unit_test(test_mac_cap_is_the_inputs),
        cmocka_unit_test(test_darts_follows_the_stem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
