/*
 * test_graph_ops.c - the operation table is complete and consistent.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "graph_ops.h"

static void test_every_op_has_an_entry(void **state)
{
    (void)state;
    for (int i = 0; i < GRAPH_OP_COUNT; i++) {
        const graph_op_info_t *info = graph_op_info((graph_op_t)i);
        assert_int_equal(info->op, i);
        assert_non_null(info->name);
        assert_non_null(info->summary);
        assert_true(info->max_inputs == -1 ||
                    info->max_inputs >= info->min_inputs);
        assert_int_equal(graph_op_lookup(info->name, -1), i);
    }
}

static void test_lookup_ignores_case(void **state)
{
    (void)state;
    assert_int_equal(graph_op_lookup("CONCAT", -1), GRAPH_OP_CONCAT);
    assert_int_equal(graph_op_lookup("conv2d", -1), GRAPH_OP_CONV2D);
    assert_int_equal(graph_op_lookup("bn", -1), GRAPH_OP_BN);
    assert_int_equal(graph_op_lookup("Conv2dx", 6), GRAPH_OP_CONV2D);
    assert_int_equal(graph_op_lookup("Conv3d", -1), GRAPH_OP_COUNT);
    assert_int_equal(graph_op_lookup("", -1), GRAPH_OP_COUNT);
}

static void test_ordered_ops(void **state)
{
    (void)state;
    assert_true(graph_op_info(GRAPH_OP_CONCAT)->ordered);
    assert_true(graph_op_info(GRAPH_OP_MULTIPLY)->ordered);
    assert_false(graph_op_info(GRAPH_OP_ADD)->ordered);
    assert_true(graph_op_info(GRAPH_OP_RESHAPE)->variadic);
    assert_int_equal(graph_op_info(GRAPH_OP_MULTIPLY)->max_inputs, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_op_has_an_entry),
        cmocka_unit_test(test_lookup_ignores_case),
        cmocka_unit_test(test_ordered_ops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
