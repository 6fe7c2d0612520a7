/*
 * test_graph_expr.c - expressions over B, C, dim, H, W: reading the
 * spellings blocks use, exact evaluation, and printing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "graph_impl.h"

static const graph_bindings_t s_bind = {.B = 2, .C = 18, .dim = 36,
                                        .H = 16, .W = 8};

/* Parse and evaluate text; returns 0 and num/den, or -1. */
static int s_eval(const char *text, int64_t *num, int64_t *den)
{
    char err[160];
    graph_expr_t *e = graph_expr_parse(text, strlen(text), err, sizeof err);
    int rc;

    if (!e)
        return -1;
    rc = graph_expr_eval(e, &s_bind, num, den);
    graph_expr_destroy(&e);
    return rc;
}

static void s_expect(const char *text, int64_t num, int64_t den)
{
    int64_t n = 0, d = 0;

    assert_int_equal(s_eval(text, &n, &d), 0);
    assert_int_equal(n, num);
    assert_int_equal(d, den);
}

static void test_values(void **state)
{
    (void)state;
    s_expect("C", 18, 1);
    s_expect("dim", 36, 1);
    s_expect("C/4", 9, 2);          /* exact: 4.5 */
    s_expect("C/4/4", 9, 8);
    s_expect("C*4", 72, 1);
    s_expect("Cx4", 72, 1);         /* x is multiplication */
    s_expect("4xC", 72, 1);
    s_expect("dimx2", 72, 1);
    s_expect("dim-C", 18, 1);
    s_expect("(C+2)/4", 5, 1);
    s_expect("-1", -1, 1);
    s_expect("H*W", 128, 1);
    s_expect("B", 2, 1);
    s_expect("0.3", 3, 10);
    s_expect("c/2", 9, 1);          /* variable names ignore case */
    s_expect("DIM / 4", 9, 1);      /* spaces are ignored */
    s_expect("2*-C", -36, 1);
    s_expect("1-2-3", -4, 1);       /* left associative */
    s_expect("12/4/3", 1, 1);
}

static void s_reject(const char *text, const char *why)
{
    char err[160] = "";
    graph_expr_t *e = graph_expr_parse(text, strlen(text), err, sizeof err);

    assert_null(e);
    assert_non_null(strstr(err, why));
}

static void test_errors(void **state)
{
    (void)state;
    s_reject("", "empty");
    s_reject("C//4", "'//'");
    s_reject("C**2", "'**'");
    s_reject("Cin", "unknown name 'Cin'");
    s_reject("max", "unknown name 'max'");
    s_reject("(C", "missing ')'");
    s_reject("C)", "unbalanced ')'");
    s_reject("C 4", "no operator");
    s_reject("C+", "ends where");
    s_reject("C$", "unexpected '$'");
    s_reject("1234567890123456789012", "too long");
    s_reject("((((((((((((((((((((((((((((((((((((C))))))))))))))))))))))))"
             "))))))))))))", "nested");
}

static void test_division_by_zero_and_overflow(void **state)
{
    int64_t n, d;

    (void)state;
    assert_int_equal(s_eval("C/(C-C)", &n, &d), -1);
    assert_int_equal(s_eval("999999999999999999*999999999999999999", &n, &d),
                     -1);
    s_expect("999999999999999999*2/2", 999999999999999999LL, 1);
}

static void s_print(const char *text, bool fold, const char *want)
{
    char err[160], buf[256];
    graph_expr_t *e = graph_expr_parse(text, strlen(text), err, sizeof err);

    assert_non_null(e);
    graph_expr_format(e, fold, buf, sizeof buf);
    assert_string_equal(buf, want);

    /* What is printed reads back to the same text. */
    graph_expr_t *again = graph_expr_parse(buf, strlen(buf), err, sizeof err);
    char buf2[256];
    assert_non_null(again);
    graph_expr_format(again, fold, buf2, sizeof buf2);
    assert_string_equal(buf2, buf);
    graph_expr_destroy(&again);
    graph_expr_destroy(&e);
}

static void test_print(void **state)
{
    (void)state;
    s_print("Cx4", false, "C*4");
    s_print(" C / 4 / 4 ", false, "C/4/4");
    s_print("C/(4/4)", false, "C/(4/4)");
    s_print("C-(dim-C)", false, "C-(dim-C)");
    s_print("(C+1)*2", false, "(C+1)*2");
    s_print("-(C+1)", false, "-(C+1)");
    s_print("0.30", false, "0.3");
    s_print("dim", false, "dim");
    s_print("c*DIM", false, "C*dim");
    s_print("2*2*C", true, "4*C");
    s_print("C/(2*2)", true, "C/4");
    s_print("1/3", true, "1/3");
    s_print("-1", true, "-1");
    s_print("0.1+0.2", true, "0.3");
}

static void test_helpers(void **state)
{
    char err[160], buf[64];
    graph_expr_t *e;

    (void)state;
    e = graph_expr_parse("B", 1, err, sizeof err);
    assert_true(graph_expr_is_var(e, GRAPH_VAR_B));
    assert_int_equal(graph_expr_vars(e), 1u << GRAPH_VAR_B);
    graph_expr_destroy(&e);
    assert_null(e);

    e = graph_expr_parse("-1", 2, err, sizeof err);
    assert_true(graph_expr_is_int(e, -1));
    graph_expr_t *c = graph_expr_clone(e);
    assert_true(graph_expr_is_int(c, -1));
    graph_expr_destroy(&c);
    graph_expr_destroy(&e);

    e = graph_expr_parse("C*H/dim", 7, err, sizeof err);
    assert_int_equal(graph_expr_vars(e), (1u << GRAPH_VAR_C) |
                                             (1u << GRAPH_VAR_H) |
                                             (1u << GRAPH_VAR_DIM));
    char *s = graph_expr_print(e);
    assert_string_equal(s, "C*H/dim");
    free(s);
    graph_expr_destroy(&e);

    graph_rational_format(9, 2, buf, sizeof buf);
    assert_string_equal(buf, "4.5");
    graph_rational_format(-1, 8, buf, sizeof buf);
    assert_string_equal(buf, "-0.125");
    graph_rational_format(7, 3, buf, sizeof buf);
    assert_string_equal(buf, "7/3");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_division_by_zero_and_overflow),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
