/*
 * test_tree.c - the modification tree: parent choice (depth first along
 * improvements, best first, first unexpanded), ranking, inspirations on
 * the path, rendering and JSON.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tree.h"

static int s_add(tree_t *t, int parent, double acc, int64_t insp)
{
    char hash[33], text[32];
    snprintf(hash, sizeof hash, "%032d", tree_size(t));
    snprintf(text, sizeof text, "design %d", tree_size(t));
    char ins[32];
    snprintf(ins, sizeof ins, "idea %lld", (long long)insp);
    int id = tree_add(t, parent, parent < 0 ? 0 : 1, hash, text, insp,
                      parent < 0 ? NULL : ins);
    assert_true(id >= 0);
    if (!isnan(acc))
        tree_set_screen(t, id, acc, 1000, 16);
    return id;
}

static void test_dfs_follows_improvements(void **state)
{
    (void)state;
    tree_t *t = tree_new();

    int r = s_add(t, -1, 90.0, -1);
    assert_int_equal(tree_select_dfs(t), r); /* root unexpanded */
    tree_get(t, r)->expanded = true;
    int a = s_add(t, r, 91.0, 1); /* beats root */
    int b = s_add(t, r, 89.0, 2); /* worse */
    int c = s_add(t, r, 92.0, 3); /* best child */
    (void)b;
    assert_int_equal(tree_select_dfs(t), c);
    tree_get(t, c)->expanded = true;
    int c1 = s_add(t, c, 91.5, 4); /* worse than c */
    (void)c1;
    /* c's only child is worse: back up to a, the next improving child. */
    assert_int_equal(tree_select_dfs(t), a);
    tree_get(t, a)->expanded = true;
    int a1 = s_add(t, a, 93.0, 5);
    assert_int_equal(tree_select_dfs(t), a1);
    tree_get(t, a1)->expanded = true;
    /* Every improving path is expanded: best unexpanded screened node. */
    assert_int_equal(tree_select_dfs(t), c1);
    tree_get(t, c1)->expanded = true;
    tree_get(t, b)->expanded = true;
    /* All expanded: the best-screened node. */
    assert_int_equal(tree_select_dfs(t), a1);
    assert_int_equal(tree_best_screened(t), a1);
    tree_destroy(&t);
    assert_null(t);
}

static void test_pending_and_failed_are_not_chosen(void **state)
{
    (void)state;
    tree_t *t = tree_new();
    int r = s_add(t, -1, NAN, -1);
    assert_int_equal(tree_select_dfs(t), -1); /* root not screened */
    tree_set_screen(t, r, 50.0, 10, 8);
    tree_get(t, r)->expanded = true;
    int p = s_add(t, r, NAN, 1);
    int f = s_add(t, r, NAN, 2);
    tree_set_failed(t, f, "diverged");
    (void)p;
    assert_int_equal(tree_select_dfs(t), r);
    assert_int_equal(tree_select_best(t), r);
    assert_string_equal(tree_get(t, f)->reason, "diverged");
    tree_destroy(&t);
}

static void test_ranking_and_best(void **state)
{
    (void)state;
    tree_t *t = tree_new();
    int r = s_add(t, -1, 80.0, -1);
    int a = s_add(t, r, 85.0, 1);
    int b = s_add(t, r, 83.0, 2);
    int c = s_add(t, r, 85.0, 3); /* tie with a */
    int ids[8];
    assert_int_equal(tree_ranked(t, ids, 8), 4);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], c);
    assert_int_equal(ids[2], b);
    assert_int_equal(ids[3], r);
    assert_int_equal(tree_ranked(t, ids, 2), 2);
    assert_int_equal(ids[0], a);
    assert_int_equal(ids[1], c);
    /* Full-protocol results outrank screening ones. */
    tree_set_full(t, b, 90.0);
    assert_int_equal(tree_best(t), b);
    tree_add_seed(t, b, 92.0);
    assert_true(fabs(tree_node_score(tree_get(t, b)) - 91.0) < 1e-9);
    assert_true(tree_node_improved(t, tree_get(t, a)));
    tree_destroy(&t);
}

static void test_inspirations_on_path(void **state)
{
    (void)state;
    tree_t *t = tree_new();
    int r = s_add(t, -1, 80.0, -1);
    int a = s_add(t, r, 85.0, 7);
    int a1 = s_add(t, a, 86.0, 9);
    (void)a1;
    assert_true(tree_inspiration_used(t, a, 7)); /* on the path */
    assert_true(tree_inspiration_used(t, a, 9)); /* a child has it */
    assert_true(tree_inspiration_used(t, r, 7)); /* a child has it */
    assert_false(tree_inspiration_used(t, r, 9));
    assert_false(tree_inspiration_used(t, a, 3));
    assert_int_equal(tree_find(t, tree_get(t, a)->hash), a);
    assert_int_equal(tree_find(t, "nope"), -1);
    assert_int_equal(tree_add(t, 99, 1, "x", "y", 1, "z"), -1);
    tree_destroy(&t);
}

static void test_render_and_json(void **state)
{
    (void)state;
    tree_t *t = tree_new();
    int r = s_add(t, -1, 80.0, -1);
    int a = s_add(t, r, 85.5, 7);
    int b = s_add(t, a, NAN, 8);
    tree_set_failed(t, b, "diverged at epoch 3");
    text_buf_t buf;
    text_buf_init(&buf);
    tree_render(t, &buf, false, 0);
    assert_string_equal(buf.s,
                        "d0 80.00%  (base design)\n"
                        "  d1 85.50% +5.50  [7] idea 7\n"
                        "    d2 failed  [8] idea 8  (diverged at epoch 3)\n");
    text_buf_free(&buf);
    text_buf_init(&buf);
    tree_render(t, &buf, true, 5);
    assert_non_null(strstr(buf.s, "[7] id...\n"));
    assert_non_null(strstr(buf.s, "    design 1\n"));
    text_buf_free(&buf);

    char *j = tree_to_json(t);
    json_t *o = json_loads(j, 0, NULL);
    assert_true(json_is_array(o));
    assert_int_equal(json_array_size(o), 3);
    json_t *n1 = json_array_get(o, 1);
    assert_int_equal(json_integer_value(json_object_get(n1, "parent")), 0);
    assert_true(
        fabs(json_real_value(json_object_get(n1, "screen_acc")) - 85.5) < 1e-9);
    assert_true(json_is_null(json_object_get(n1, "full_acc")));
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(o, 2), "state")),
        "failed");
    json_decref(o);
    free(j);
    tree_destroy(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dfs_follows_improvements),
        cmocka_unit_test(test_pending_and_failed_are_not_chosen),
        cmocka_unit_test(test_ranking_and_best),
        cmocka_unit_test(test_inspirations_on_path),
        cmocka_unit_test(test_render_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
