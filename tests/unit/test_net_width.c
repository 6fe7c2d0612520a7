/*
 * test_net_width.c - the width search finds what an exhaustive scan of
 * every width finds, skips widths where sizes are not whole or groups do
 * not divide, respects the MAC cap, and reports what goes wrong.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net_impl.h"

static graph_design_t *s_text(const char *text)
{
    graph_design_t *d = NULL;
    graph_errors_t e;

    graph_errors_init(&e);
    int rc = graph_design_parse(text, strlen(text), "t.txt", &d, &e);
    for (int i = 0; i < e.n; i++)
        print_message("%s\n", e.v[i].message);
    assert_int_equal(rc, 0);
    graph_errors_free(&e);
    return d;
}

static char s_buf[1 << 16];

static graph_design_t *s_load(const char *path)
{
    FILE *f = fopen(path, "rb");

    assert_non_null(f);
    size_t n = fread(s_buf, 1, sizeof s_buf - 1, f);
    fclose(f);
    s_buf[n] = '\0';
    return s_text(s_buf);
}

/* The "# stem_scale: S" a corpus file asks for, or 1. */
static int s_file_stem_scale(void)
{
    const char *p = strstr(s_buf, "# stem_scale:");
    return p ? atoi(p + 13) : 1;
}

static int64_t s_abs(int64_t v)
{
    return v < 0 ? -v : v;
}

/* The spec's objective by brute force over [min, max]. */
static bool s_exhaustive(const graph_design_t *d, const net_config_t *cfg,
                         net_choice_t *best)
{
    bool found = false;

    for (int w = cfg->min_width; w <= cfg->max_width; w++) {
        int64_t p, m;
        if (net_measure(d, cfg, w, &p, &m, NULL, false) != 0)
            continue;
        if (m > net_mac_cap(cfg))
            continue;
        if (!found || s_abs(p - cfg->budget) < s_abs(best->params -
                                                     cfg->budget)) {
            best->width = w;
            best->params = p;
            best->macs = m;
            found = true;
        }
    }
    return found;
}

static void s_agree(const graph_design_t *d, net_config_t *cfg,
                    const char *what)
{
    net_choice_t fast = {0}, slow = {0};
    graph_errors_t e;

    graph_errors_init(&e);
    bool ok = net_choose_width(d, cfg, &fast, &e) == 0;
    bool found = s_exhaustive(d, cfg, &slow);
    if (ok != found || (ok && fast.width != slow.width)) {
        print_message("%s: search %d (%lld), exhaustive %d (%lld)\n", what,
                      ok ? fast.width : -1, (long long)fast.params,
                      found ? slow.width : -1, (long long)slow.params);
        fail();
    }
    if (ok) {
        assert_int_equal(fast.params, slow.params);
        assert_int_equal(fast.macs, slow.macs);
    }
    graph_errors_free(&e);
}

/* Every good block, several budgets, both data set sizes. */
static void test_matches_exhaustive_scan(void **state)
{
    static const char *dirs[] = {"tests/blocks/good", "examples/blocks"};
    static const int64_t budgets[] = {1500000, 300000, 4000000};
    int checked = 0;

    (void)state;
    for (int k = 0; k < 2; k++) {
        DIR *dir = opendir(dirs[k]);
        struct dirent *ent;
        assert_non_null(dir);
        while ((ent = readdir(dir))) {
            char path[512];
            if (!strstr(ent->d_name, ".txt"))
                continue;
            snprintf(path, sizeof path, "%s/%s", dirs[k], ent->d_name);
            graph_design_t *d = s_load(path);
            for (int b = 0; b < 3; b++) {
                net_config_t cfg;
                net_config_default(&cfg, b == 2 ? "imagenet16-120"
                                                 : "cifar10");
                cfg.skeleton = d->two_input ? NET_SKELETON_DARTS
                                            : NET_SKELETON_NB201;
                cfg.budget = budgets[b];
                cfg.max_width = 256;
                cfg.stem_scale = s_file_stem_scale();
                s_agree(d, &cfg, path);
                checked++;
            }
            graph_design_destroy(&d);
        }
        closedir(dir);
    }
    assert_true(checked >= 30);
}

static const char s_bottleneck[] =
    "##Bn##\n0:input\n1:output\n2:Conv2d(out_channels=C/4,kernel_size=1)\n"
    "3:Conv2d(out_channels=C/4,kernel_size=3,groups=3)\n"
    "4:Conv2d(out_channels=C,kernel_size=1)\n5:Add\n"
    "0->2\n2->3\n3->4\n4->5\n0->5\n5->1\n";

static void test_skips_invalid_widths(void **state)
{
    graph_design_t *d = s_text(s_bottleneck);
    net_config_t cfg;
    net_choice_t c;
    graph_errors_t e;

    (void)state;
    net_config_default(&cfg, "cifar10");
    graph_errors_init(&e);
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    /* C/4 whole and groups=3 dividing C/4 at every stage: width % 12. */
    assert_int_equal(c.width % 12, 0);
    assert_true(c.width > 0);
    s_agree(d, &cfg, "bottleneck");

    /* A forced width that does not divide is reported as such. */
    cfg.width = 20;
    assert_true(net_check(d, &cfg, &c, &e) > 0);
    assert_string_equal(e.v[0].message,
                        "cell node 3 (Conv2d): groups = 3 does not divide "
                        "the input channels 5");
    assert_int_equal(c.width, 0);

    /* A forced valid width is measured, not searched. */
    graph_errors_clear(&e);
    cfg.width = 24;
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    assert_int_equal(c.width, 24);
    int64_t p, m;
    assert_int_equal(net_measure(d, &cfg, 24, &p, &m, NULL, false), 0);
    assert_int_equal(c.params, p);
    assert_int_equal(c.macs, m);
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

static void test_tolerance_and_cap(void **state)
{
    graph_design_t *d = s_load("examples/blocks/resnet_basic.txt");
    net_config_t cfg;
    net_choice_t c;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    cfg.mac_cap = 1000000000000LL; /* no cap: the budget decides */
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    assert_true(c.within_tolerance);
    assert_true(s_abs(c.params - cfg.budget) <= 45000);

    /* The default cap binds for this cell at 32x32. */
    cfg.mac_cap = 0;
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    assert_true(c.macs <= 200000000);
    assert_false(c.within_tolerance);

    /* A budget below the smallest network: the smallest width. */
    cfg.budget = 1000;
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    assert_int_equal(c.width, 1);
    assert_false(c.within_tolerance);

    /* A cap no width meets. */
    cfg.budget = 1500000;
    cfg.mac_cap = 10;
    assert_true(net_check(d, &cfg, &c, &e) > 0);
    assert_int_equal(e.v[0].rule, GRAPH_RULE_BUDGET);
    assert_non_null(strstr(e.v[0].message, "keeps the MACs under"));
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

static void test_no_valid_width(void **state)
{
    graph_design_t *d = s_text(
        "##Never##\n0:input\n1:output\n"
        "2:Conv2d(out_channels=C/2+0.5,kernel_size=1)\n"
        "3:Conv2d(out_channels=C,kernel_size=1)\n0->2\n2->3\n3->1\n");
    net_config_t cfg;
    net_choice_t c;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar10");
    assert_int_equal(net_check(d, &cfg, &c, &e), 1);
    assert_string_equal(e.v[0].message,
                        "cell node 2 (Conv2d): out_channels = C/2+0.5 = 8.5 "
                        "is not a whole number at C=16");
    assert_int_equal(c.width, 0);
    graph_errors_free(&e);
    graph_design_destroy(&d);

    /* A shape error at every width is reported once, not per stage. */
    d = s_text("##Bad##\n0:input\n1:output\n"
               "2:Conv2d(out_channels=2*C,kernel_size=1)\n3:Add\n"
               "0->2\n2->3\n0->3\n3->1\n");
    graph_errors_init(&e);
    assert_int_equal(net_check(d, &cfg, &c, &e), 1);
    assert_string_equal(e.v[0].message,
                        "cell node 3 (Add): shapes (B,32,32,32) and "
                        "(B,16,32,32) do not broadcast");
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

static void test_darts_search(void **state)
{
    graph_design_t *d = s_load("examples/blocks/darts_sep.txt");
    net_config_t cfg;
    net_choice_t c;
    graph_errors_t e;

    (void)state;
    graph_errors_init(&e);
    net_config_default(&cfg, "cifar100");
    cfg.skeleton = NET_SKELETON_DARTS;
    assert_int_equal(net_check(d, &cfg, &c, &e), 0);
    assert_true(c.macs <= net_mac_cap(&cfg));
    cfg.max_width = 200;
    s_agree(d, &cfg, "darts_sep");
    graph_errors_free(&e);
    graph_design_destroy(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_exhaustive_scan),
        cmocka_unit_test(test_skips_invalid_widths),
        cmocka_unit_test(test_tolerance_and_cap),
        cmocka_unit_test(test_no_valid_width),
        cmocka_unit_test(test_darts_search),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
