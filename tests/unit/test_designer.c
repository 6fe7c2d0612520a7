/*
 * test_designer.c - every offline edit yields a valid new design of the
 * resnet_basic cell, deterministically from the random stream, and the
 * designer gives up cleanly when nothing new can be made.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "designer.h"
#include "text.h"

static graph_design_t *s_load(const char *path)
{
    char err[256];
    size_t len;
    graph_errors_t errs;
    graph_design_t *d = NULL;

    char *text = text_file_read(path, 0, &len, err, sizeof err);
    assert_non_null(text);
    graph_errors_init(&errs);
    assert_int_equal(graph_design_parse(text, len, path, &d, &errs), 0);
    graph_errors_free(&errs);
    free(text);
    return d;
}

static bool s_all_known(void *ctx, const char *hash)
{
    (void)ctx;
    (void)hash;
    return true;
}

static void test_every_edit(void **state)
{
    net_config_t net;
    char err[256];
    (void)state;

    assert_int_equal(net_config_default(&net, "cifar10"), 0);
    graph_design_t *p = s_load("examples/blocks/resnet_basic.txt");
    char ph[33];
    assert_int_equal(graph_design_hash(p, ph), 0);
    for (int e = 0; e < DESIGNER_EDIT_COUNT; e++) {
        agent_env_t env = {.net = &net, .rng = 1234 + (uint64_t)e};
        designer_result_t r;
        int rc = designer_apply(&env, p, (designer_edit_t)e, 40, NULL, NULL, &r,
                                err, sizeof err);
        if (rc != 0)
            fail_msg("edit %s found no valid design", designer_edit_name(e));
        assert_int_equal(r.edit, e);
        assert_non_null(strstr(r.what, "offline edit: "));
        assert_string_not_equal(r.hash, ph);
        graph_errors_t errs;
        graph_errors_init(&errs);
        assert_int_equal(net_check(r.design, &net, NULL, &errs), 0);
        graph_errors_free(&errs);

        /* The same stream gives the same design. */
        agent_env_t env2 = {.net = &net, .rng = 1234 + (uint64_t)e};
        designer_result_t r2;
        assert_int_equal(designer_apply(&env2, p, (designer_edit_t)e, 40, NULL,
                                        NULL, &r2, err, sizeof err),
                         0);
        assert_string_equal(r.hash, r2.hash);
        designer_result_free(&r2);
        designer_result_free(&r);
    }
    graph_design_destroy(&p);
}

static void test_random_and_give_up(void **state)
{
    net_config_t net;
    char err[256];
    (void)state;

    assert_int_equal(net_config_default(&net, "cifar10"), 0);
    graph_design_t *p = s_load("examples/blocks/resnet_basic.txt");
    agent_env_t env = {.net = &net, .rng = 99};
    designer_result_t r;
    int kinds[DESIGNER_EDIT_COUNT] = {0};
    for (int i = 0; i < 12; i++) {
        assert_int_equal(
            designer_mutate(&env, p, 40, NULL, NULL, &r, err, sizeof err), 0);
        kinds[r.edit]++;
        designer_result_free(&r);
    }
    int distinct = 0;
    for (int e = 0; e < DESIGNER_EDIT_COUNT; e++)
        distinct += kinds[e] > 0;
    assert_true(distinct >= 3);

    assert_int_equal(
        designer_mutate(&env, p, 10, s_all_known, NULL, &r, err, sizeof err),
        1);
    assert_null(r.design);
    assert_int_equal(r.tries, 10);
    graph_design_destroy(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_edit),
        cmocka_unit_test(test_random_and_give_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
