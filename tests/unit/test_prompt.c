/*
 * test_prompt.c - the templates are embedded, render completely, take
 * their operation list from the operation table, and may be overridden
 * from a folder.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "graph_ops.h"
#include "llm_fixture.h"
#include "prompt.h"

/* Every template the agents use, with every variable it needs. */
static const struct {
    const char *name;
    const char *vars[12];
} s_uses[] = {
    {"modify", {"format", "contract", "inspiration", "block", "experience"}},
    {"feedback", {"errors"}},
    {"stem", {"format", "errors", "name", "block", "current", "stem_shape"}},
    {"rank", {"dataset", "accuracy", "experience", "block", "candidates"}},
    {"choose", {"dataset", "tree", "candidates", "count", "experience"}},
    {"invent", {"count", "dataset", "experience", "block"}},
    {"read", {"source", "count", "text"}},
    {"reflect_dev", {"format", "error", "block"}},
    {"reflect_res",
     {"dataset", "parent_acc", "child_acc", "parent", "inspiration", "child"}},
    {"experience_dev", {"lessons"}},
    {"experience_res", {"lessons"}},
    {"experience_ok", {"lessons"}},
};

static void test_every_template_renders(void **state)
{
    char err[256];
    (void)state;

    prompts_t *p = prompts_new(NULL, err, sizeof err);
    assert_non_null(p);
    for (size_t i = 0; i < sizeof s_uses / sizeof s_uses[0]; i++) {
        prompt_var_t v[12];
        int n = 0;
        while (n < 12 && s_uses[i].vars[n]) {
            v[n].name = s_uses[i].vars[n];
            v[n].value = "VALUE";
            n++;
        }
        char *s = prompts_render(p, s_uses[i].name, v, n, err, sizeof err);
        if (!s)
            fail_msg("%s", err);
        assert_null(strstr(s, "{{"));
        free(s);
        /* Leaving any variable out is an error naming it. */
        if (n > 0) {
            s = prompts_render(p, s_uses[i].name, v + 1, n - 1, err,
                               sizeof err);
            assert_null(s);
            assert_non_null(strstr(err, s_uses[i].vars[0]));
        }
    }
    assert_null(prompts_render(p, "nonesuch", NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "no such template"));
    prompts_destroy(&p);
    assert_null(p);
}

static void test_values_are_not_rescanned(void **state)
{
    char err[256];
    (void)state;

    prompts_t *p = prompts_new(NULL, err, sizeof err);
    prompt_var_t v[] = {{"errors", "node 3 {{block}} broke"}};
    char *s = prompts_render(p, "feedback", v, 1, err, sizeof err);
    assert_non_null(s);
    assert_non_null(strstr(s, "node 3 {{block}} broke"));
    free(s);
    prompts_destroy(&p);
}

static void test_format_lists_the_op_table(void **state)
{
    char err[256];
    (void)state;

    prompts_t *p = prompts_new(NULL, err, sizeof err);
    char *f = prompts_format(p, false);
    assert_non_null(f);
    for (int i = 0; i < GRAPH_OP_COUNT; i++) {
        const graph_op_info_t *op = graph_op_info((graph_op_t)i);
        char line[128];
        if (op->min_inputs == 0 || op->op == GRAPH_OP_OUTPUT)
            continue;
        snprintf(line, sizeof line, "\n- %s", op->name);
        assert_non_null(strstr(f, line));
        assert_non_null(strstr(f, op->summary));
    }
    assert_non_null(strstr(f, "- Conv2d(out_channels, kernel_size, stride=1, "
                              "dilation=1, groups=1): "));
    assert_non_null(strstr(f, "inputs in order"));
    assert_non_null(strstr(f, "`input`"));
    assert_null(strstr(f, "{{"));
    free(f);
    f = prompts_format(p, true);
    assert_non_null(strstr(f, "`input1`"));
    free(f);
    prompts_destroy(&p);
}

static void test_folder_overrides(void **state)
{
    char dir[256], path[300], err[256];
    (void)state;

    assert_int_equal(fixture_tmpdir(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/feedback.txt", dir);
    assert_int_equal(fixture_write(path, "Wrong: {{errors}}\n"), 0);
    prompts_t *p = prompts_new(dir, err, sizeof err);
    assert_non_null(p);
    prompt_var_t v[] = {{"errors", "cycle"}};
    char *s = prompts_render(p, "feedback", v, 1, err, sizeof err);
    assert_string_equal(s, "Wrong: cycle\n");
    free(s);
    assert_non_null(prompts_text(p, "modify"));
    prompts_destroy(&p);
    fixture_rmdir(dir);

    assert_null(prompts_new("/nonexistent/prompts", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/prompts"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_template_renders),
        cmocka_unit_test(test_values_are_not_rescanned),
        cmocka_unit_test(test_format_lists_the_op_table),
        cmocka_unit_test(test_folder_overrides),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
