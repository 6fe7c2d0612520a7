/*
 * test_reflector.c - experiences: reflection answers (tags, chatter,
 * failures), retrieval by word counts and by embeddings, and the
 * experience-guided choice of inspirations.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "llm_fixture.h"
#include "reflector.h"

static void test_parse_lesson(void **state)
{
    (void)state;
    char *s = reflector_parse_lesson(
        "The Add got shapes (B,C,H,W) and (B,2C,H,W).\n"
        "<tip>  Check that   both inputs of Add have the same channels.</tip>",
        "tip");
    assert_string_equal(
        s, "Check that both inputs of Add have the same channels.");
    free(s);
    s = reflector_parse_lesson("Reasoning...\n\nKeep the residual path.\n\n",
                               "suggestion");
    assert_string_equal(s, "Keep the residual path.");
    free(s);
    s = reflector_parse_lesson("", "tip");
    assert_string_equal(s, "");
    free(s);
}

static void test_lexical(void **state)
{
    (void)state;
    double same = reflector_lexical_similarity("Add a skip connection",
                                               "add a SKIP connection!");
    double near = reflector_lexical_similarity("Add a skip connection",
                                               "a skip connection helps");
    double far = reflector_lexical_similarity("Add a skip connection",
                                              "use depthwise convolution");
    assert_true(same > 0.999);
    assert_true(near > 0.3 && near < same);
    assert_true(far < 1e-9);
    assert_true(reflector_lexical_similarity("", "x y") == 0);
}

static reflector_t *s_filled(agent_env_t *env)
{
    reflector_t *r = reflector_new();
    reflector_success(r, env, "p", "c1", 1.5, 1,
                      "Add a squeeze and excitation gate");
    reflector_success(r, env, "p", "c2", 0.5, 2, "Widen the bottleneck");
    experience_t x = {0};
    x.kind = EXP_RESEARCH;
    x.inspiration_id = 3;
    x.inspiration = "Replace batch normalisation with layer normalisation";
    x.text = "Layer normalisation in convolutional cells hurt accuracy";
    x.delta = -4.0;
    assert_true(reflector_add(r, &x) > 0);
    x.kind = EXP_DEVELOPMENT;
    x.text = "Make both inputs of Add have the same channels";
    x.inspiration = NULL;
    x.error = "cell node 8 (Add): shapes do not broadcast";
    assert_true(reflector_add(r, &x) > 0);
    return r;
}

static void test_lessons_by_words(void **state)
{
    (void)state;
    agent_env_t env = {0};
    reflector_t *r = s_filled(&env);
    assert_int_equal(reflector_count(r), 4);
    assert_int_equal(reflector_get(r, 3)->id, 4);

    char *s = reflector_lessons(r, &env, EXP_SUCCESS,
                                "an excitation gate on channels", 1);
    assert_string_equal(s, "- \"Add a squeeze and excitation gate\" gained "
                           "1.50 points\n");
    free(s);
    s = reflector_lessons(r, &env, EXP_RESEARCH, "normalisation", 5);
    assert_non_null(strstr(s, "cost 4.00 points"));
    free(s);
    s = reflector_lessons(r, &env, EXP_DEVELOPMENT, "anything", 5);
    assert_string_equal(s, "- Make both inputs of Add have the same "
                           "channels\n");
    free(s);
    s = reflector_lessons(r, &env, EXP_DEVELOPMENT, "anything", 0);
    assert_string_equal(s, "");
    free(s);

    /* Guided sampling prefers what resembles successes and avoids what
     * resembles losses. */
    insp_list_t l;
    insp_list_init(&l);
    int64_t a = insp_list_add(&l, 0,
                              "Use layer normalisation after the "
                              "convolution",
                              NULL, NULL, NULL);
    int64_t b = insp_list_add(&l, 0,
                              "Put an excitation gate on the "
                              "residual branch",
                              NULL, NULL, NULL);
    int64_t c = insp_list_add(&l, 0, "Try dilated kernels", NULL, NULL, NULL);
    int64_t cand[] = {a, b, c}, out[3];
    env.rng = 7;
    assert_int_equal(reflector_guided_sample(r, &env, &l, cand, 3, 2, out), 2);
    assert_int_equal(out[0], b);
    assert_int_equal(out[1], c);
    insp_list_free(&l);
    reflector_destroy(&r);
    assert_null(r);
}

static void test_reflection_calls(void **state)
{
    fixture_server_t srv;
    char err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"rules\":["
            "{\"match\":\"validator said\",\"responses\":["
            "{\"content\":\"Because.\\n<tip>Give Add inputs of equal shape."
            "</tip>\"},{\"status\":400}]},"
            "{\"match\":\"accuracy of the\",\"responses\":["
            "{\"content\":\"Hmm.\\nAvoid normalising twice.\"}]}]}"),
        0);
    llm_config_t c;
    llm_config_default(&c);
    c.base_url = srv.url;
    c.model = "m";
    c.embed_model = "e";
    c.retries = 0;
    llm_t *llm = llm_new(&c, err, sizeof err);
    prompts_t *pr = prompts_new(NULL, err, sizeof err);
    agent_env_t env = {
        .llm = llm, .prompts = pr, .dataset = "cifar10", .iteration = 3};
    reflector_t *r = reflector_new();
    int rc;

    const experience_t *x = reflector_development(
        r, &env, "##b##\n0:input\n", "cell: no output node", 5, "an idea", &rc,
        err, sizeof err);
    assert_int_equal(rc, LLM_OK);
    assert_string_equal(x->text, "Give Add inputs of equal shape.");
    assert_string_equal(x->error, "cell: no output node");
    assert_int_equal(x->iteration, 3);
    assert_int_equal(fixture_log_count(&srv, "cell: no output node"), 1);

    /* The model fails: the experience is kept with its error alone. */
    x = reflector_development(r, &env, "##b##\n", "cell node 2: cycle", 6,
                              "other", &rc, err, sizeof err);
    assert_int_equal(rc, LLM_ERR_FAILED);
    assert_null(x->text);
    assert_string_equal(x->error, "cell node 2: cycle");

    x = reflector_research(r, &env, "parent text", "child text", "ph", "ch",
                           91.0, 88.5, 7, "use LN", &rc, err, sizeof err);
    assert_int_equal(rc, LLM_OK);
    assert_string_equal(x->text, "Avoid normalising twice.");
    assert_true(x->delta < -2.49 && x->delta > -2.51);
    assert_string_equal(x->hash, "ch");
    assert_int_equal(fixture_log_count(&srv, "fell from 91.00% to 88.50%"), 1);

    /* Retrieval with embeddings: one batched request for the
     * experiences, one for the query. */
    char *s = reflector_lessons(r, &env, EXP_DEVELOPMENT,
                                "no output node in the cell", 1);
    assert_non_null(strstr(s, "Give Add inputs"));
    free(s);
    assert_int_equal(fixture_log_count(&srv, "\"route\": \"embed\""), 2);
    assert_non_null(reflector_get(r, 0)->emb);
    assert_int_equal(reflector_get(r, 0)->dim, 64);
    s = reflector_lessons(r, &env, EXP_DEVELOPMENT, "a cycle", 1);
    free(s);
    assert_int_equal(fixture_log_count(&srv, "\"route\": \"embed\""), 3);

    reflector_destroy(&r);
    prompts_destroy(&pr);
    llm_destroy(&llm);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lesson),
        cmocka_unit_test(test_lexical),
        cmocka_unit_test(test_lessons_by_words),
        cmocka_unit_test(test_reflection_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
