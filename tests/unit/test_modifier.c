/*
 * test_modifier.c - blocks found in any answer, and whole modifications
 * against the scripted endpoint: chatter and fences, an invalid block
 * fixed after feedback, one never fixed, duplicates, garbage, an
 * endpoint that fails, and new stem and downsample blocks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "llm_fixture.h"
#include "modifier.h"
#include "text.h"

static void test_extract(void **state)
{
    char *s, *st, *dn;
    (void)state;

    s = modifier_extract("Sure! Here it is:\n```text\n##New##\n0:input\n"
                         "1:output\n2:ReLU\n0->2\n2->1\n```\nHope it helps.",
                         NULL, NULL);
    assert_string_equal(s, "##New##\n0:input\n1:output\n2:ReLU\n0->2\n2->1\n");
    free(s);

    /* The original quoted first, the changed one last; decoration. */
    s = modifier_extract("Original:\n##A##\n0:input\n1:output\n0->1\n\n"
                         "Changed:\n- `##B##`\n- `0:input`\n  * 1:output\n"
                         "> 2: GELU  # new\n0 -> 2 -> 1\n",
                         NULL, NULL);
    assert_string_equal(s, "##B##\n0:input\n1:output\n2: GELU  # new\n"
                           "0->2\n2->1\n");
    free(s);

    /* No header; numbered prose is not a node. */
    s = modifier_extract("1: We add a gate.\n\n0:input\n1:output\n"
                         "2:Conv2d(out_channels=C,kernel_size=3)\n"
                         "0,2->1\n0->2\nThat is all.\n2: Then we train.",
                         NULL, NULL);
    assert_string_equal(s, "##cell##\n0:input\n1:output\n"
                           "2:Conv2d(out_channels=C,kernel_size=3)\n"
                           "0,2->1\n0->2\n");
    free(s);

    /* All three roles. */
    s = modifier_extract("##X##\n0:input\n1:output\n0->1\n"
                         "## X_stem ##\n0:input\n1:output\n0->1\n"
                         "##X_downsample##\n0:input\n1:output\n0->1\n",
                         &st, &dn);
    assert_string_equal(s, "##X##\n0:input\n1:output\n0->1\n");
    assert_string_equal(st, "##X_stem##\n0:input\n1:output\n0->1\n");
    assert_string_equal(dn, "##X_downsample##\n0:input\n1:output\n0->1\n");
    free(s);
    free(st);
    free(dn);

    assert_null(modifier_extract("I cannot help with that.", &st, &dn));
    assert_null(st);
    assert_null(modifier_extract("", NULL, NULL));
    assert_null(modifier_extract("##Empty##\n\nno block here", NULL, NULL));

    s = modifier_rename("##Old##\n0:input\n", "d7");
    assert_string_equal(s, "##d7##\n0:input\n");
    free(s);
    s = modifier_rename("0:input\n", "d7");
    assert_string_equal(s, "##d7##\n0:input\n");
    free(s);
}

typedef struct fix {
    fixture_server_t srv;
    llm_t *llm;
    prompts_t *pr;
    net_config_t net;
    agent_env_t env;
    graph_design_t *parent;
    modifier_config_t cfg;
} fix_t;

static bool s_known_yes(void *ctx, const char *hash)
{
    (void)ctx;
    (void)hash;
    return true;
}

static void s_setup(fix_t *f, const char *script)
{
    char err[256];
    size_t len;
    graph_errors_t errs;

    assert_int_equal(fixture_server_start(&f->srv, script), 0);
    llm_config_t c;
    llm_config_default(&c);
    c.base_url = f->srv.url;
    c.model = "m";
    c.retries = 0;
    f->llm = llm_new(&c, err, sizeof err);
    f->pr = prompts_new(NULL, err, sizeof err);
    assert_int_equal(net_config_default(&f->net, "cifar10"), 0);
    f->env = (agent_env_t){.llm = f->llm,
                           .prompts = f->pr,
                           .net = &f->net,
                           .dataset = "cifar10",
                           .iteration = 2};
    char *text = text_file_read("examples/blocks/resnet_basic.txt", 0, &len,
                                err, sizeof err);
    assert_non_null(text);
    graph_errors_init(&errs);
    assert_int_equal(
        graph_design_parse(text, len, "resnet_basic.txt", &f->parent, &errs),
        0);
    graph_errors_free(&errs);
    free(text);
    modifier_config_default(&f->cfg);
    f->cfg.retries = 2;
}

static void s_teardown(fix_t *f)
{
    graph_design_destroy(&f->parent);
    prompts_destroy(&f->pr);
    llm_destroy(&f->llm);
    fixture_server_stop(&f->srv);
    fixture_rmdir(f->srv.dir);
}

static void test_chatter_and_fences(void **state)
{
    fix_t f;
    modify_result_t r;
    char err[256];
    (void)state;

    s_setup(&f, "{\"rules\":[{\"match\":\"carries out the inspiration\","
                "\"responses\":[{\"echo_block\":{\"replace\":[[\"7:ReLU\","
                "\"7:GELU\"]],\"before\":\"Let me think step by step.\\n\","
                "\"after\":\"\\nThis keeps the channels.\"}}]}]}");
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "Use GELU.", "",
                                    NULL, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_OK);
    assert_int_equal(r.answers, 1);
    assert_false(r.stem_new);
    assert_non_null(r.design);
    assert_true(r.choice.width > 0);
    char *cell = graph_block_print(r.design->cell);
    assert_non_null(strstr(cell, "GELU"));
    free(cell);
    char ph[33];
    assert_int_equal(graph_design_hash(f.parent, ph), 0);
    assert_string_not_equal(ph, r.hash);
    assert_int_equal(fixture_log_count(&f.srv, "Use GELU."), 1);
    /* The design keeps the parent's stem: same hash as its own print. */
    char *text = modifier_design_text(r.design, "d1");
    assert_non_null(strstr(text, "##d1##"));
    assert_non_null(strstr(text, "##d1_stem##"));
    free(text);
    modify_result_free(&r);
    s_teardown(&f);
}

static void test_fixed_after_feedback(void **state)
{
    fix_t f;
    modify_result_t r;
    char err[256];
    (void)state;

    /* First an edge into an undefined node, then garbage, then right. */
    s_setup(&f, "{\"rules\":["
                "{\"match\":\"That block is not valid\",\"responses\":["
                "{\"content\":\"Oops, sorry!\"},"
                "{\"echo_block\":{\"replace\":[[\"2:Conv2d(out_channels=C,"
                "kernel_size=3,stride=1)\",\"2:Conv2d(out_channels=C,"
                "kernel_size=5,stride=1)\"]]}}]},"
                "{\"match\":\"carries out the inspiration\",\"responses\":["
                "{\"echo_block\":{\"replace\":[[\"8->7\",\"8->99\"]]}}]}]}");
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "Bigger kernel",
                                    "", NULL, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_OK);
    assert_int_equal(r.answers, 3);
    /* The validator's line about node 99 went back; then "no block". */
    assert_int_equal(fixture_log_count(&f.srv, "uses node 99"), 2);
    assert_int_equal(fixture_log_count(&f.srv, "no block found"), 1);
    char *cell = graph_block_print(r.design->cell);
    assert_non_null(strstr(cell, "kernel_size=5"));
    free(cell);
    modify_result_free(&r);
    s_teardown(&f);
}

static void test_never_fixed_duplicate_and_down(void **state)
{
    fix_t f;
    modify_result_t r;
    char err[256];
    (void)state;

    s_setup(&f, "{\"rules\":["
                "{\"match\":\"idea-never\",\"scope\":\"all\","
                "\"responses\":[{\"echo_block\":"
                "{\"replace\":[[\"0->8\",\"0->8\\n8->2\"]]}}]},"
                "{\"match\":\"idea-same\",\"responses\":[{\"echo_block\":{}}]},"
                "{\"match\":\"idea-other\",\"responses\":[{\"echo_block\":"
                "{\"replace\":[[\"4:ReLU\",\"4:Sigmoid\"]]}}]},"
                "{\"match\":\"idea-down\",\"responses\":[{\"status\":503}]}]}");
    /* A cycle, three times: invalid, with the last block and line. */
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "idea-never", "",
                                    NULL, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_INVALID);
    assert_int_equal(r.answers, 3);
    assert_non_null(r.last_block);
    assert_non_null(r.last_error);
    assert_non_null(strstr(r.last_block, "8->2"));
    modify_result_free(&r);

    /* The parent unchanged: a duplicate. */
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "idea-same", "",
                                    NULL, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_DUPLICATE);
    modify_result_free(&r);
    /* A new design the caller already knows: a duplicate. */
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "idea-other", "",
                                    s_known_yes, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_DUPLICATE);
    modify_result_free(&r);
    /* The endpoint fails: no answer, not fatal. */
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "idea-down", "",
                                    NULL, NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_NO_ANSWER);
    assert_non_null(strstr(r.last_error, "HTTP 503"));
    modify_result_free(&r);
    s_teardown(&f);
}

static void test_new_stem_and_downsample(void **state)
{
    fix_t f;
    modify_result_t r;
    char err[256];
    (void)state;

    s_setup(&f, "{\"rules\":["
                "{\"match\":\"Write a stem block\",\"scope\":\"all\","
                "\"responses\":["
                "{\"content\":\"Only one: ##x_stem##\\n0:input\\n1:output\\n"
                "0->1\"},"
                "{\"content\":\"```\\n##x_stem##\\n0:input\\n1:output\\n"
                "2:Conv2d(out_channels=dim,kernel_size=5,stride=1)\\n"
                "0->2\\n2->1\\n##x_downsample##\\n0:input\\n1:output\\n"
                "2:Conv2d(out_channels=dim,kernel_size=2,stride=2)\\n"
                "0->2\\n2->1\\n```\"}]},"
                "{\"match\":\"carries out\",\"responses\":[{\"echo_block\":"
                "{\"replace\":[[\"7:ReLU\",\"7:GELU\"]]}}]}]}");
    f.cfg.stem_always = true;
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "GELU", "", NULL,
                                    NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_OK);
    assert_true(r.stem_new);
    assert_int_equal(r.answers, 3);
    char *stem = graph_block_print(r.design->stem);
    assert_non_null(strstr(stem, "kernel_size=5"));
    free(stem);
    assert_int_equal(fixture_log_count(&f.srv, "answer with both blocks"), 1);
    modify_result_free(&r);
    s_teardown(&f);
}

/* Under a skeleton whose stem reduces the input 4 times, the stem prompt
 * asks for that resolution, and the answer is checked at that scale. */
static void test_stem_for_a_reducing_skeleton(void **state)
{
    fix_t f;
    modify_result_t r;
    graph_errors_t errs;
    char err[256], *text;
    size_t len;
    (void)state;

    s_setup(&f, "{\"rules\":["
                "{\"match\":\"to\\\\s+\\\\(B,dim,H/4,W/4\\\\), reducing "
                "the resolution 4 times\",\"scope\":\"all\",\"responses\":["
                "{\"content\":\"##x_stem##\\n0:input\\n1:output\\n"
                "2:Conv2d(out_channels=dim,kernel_size=4,stride=4)\\n3:BN\\n"
                "0->2\\n2->3\\n3->1\\n##x_downsample##\\n0:input\\n"
                "1:output\\n2:Conv2d(out_channels=dim,kernel_size=2,"
                "stride=2)\\n0->2\\n2->1\\n\"}]},"
                "{\"match\":\"carries out\",\"responses\":[{\"echo_block\":"
                "{\"replace\":[[\"9:ReLU\",\"9:GELU\"]]}}]}]}");
    graph_design_destroy(&f.parent);
    text = text_file_read("tests/blocks/good/imagenet_basic.txt", 0, &len,
                          err, sizeof err);
    assert_non_null(text);
    graph_errors_init(&errs);
    assert_int_equal(graph_design_parse(text, len, "imagenet_basic.txt",
                                        &f.parent, &errs),
                     0);
    graph_errors_free(&errs);
    free(text);
    f.net.stem_scale = 4;
    f.cfg.stem_always = true;
    assert_int_equal(modifier_apply(&f.cfg, &f.env, f.parent, "GELU", "", NULL,
                                    NULL, &r, err, sizeof err),
                     0);
    assert_int_equal(r.status, MODIFY_OK);
    assert_true(r.stem_new);
    char *stem = graph_block_print(r.design->stem);
    assert_non_null(strstr(stem, "kernel_size=4,stride=4"));
    free(stem);
    assert_int_equal(fixture_log_count(&f.srv, "(B,dim,H/4,W/4)"), 1);
    assert_int_equal(fixture_log_count(&f.srv, "(B,dim,H,W)"), 0);
    modify_result_free(&r);
    s_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_extract),
        cmocka_unit_test(test_chatter_and_fences),
        cmocka_unit_test(test_fixed_after_feedback),
        cmocka_unit_test(test_never_fixed_duplicate_and_down),
        cmocka_unit_test(test_new_stem_and_downsample),
        cmocka_unit_test(test_stem_for_a_reducing_skeleton),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
