/*
 * test_proposer.c - rankings read from any answer, parent modes, the
 * LLM-chosen mode, sampling, and the ablations (random proposer, no
 * Reader), against the scripted endpoint.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <math.h>

#include "llm_fixture.h"
#include "proposer.h"

static void test_parse_ranking(void **state)
{
    int o[4];
    (void)state;

    assert_int_equal(
        proposer_parse_ranking(
            "I think 3x3 is key.\n<ranking>3, 1, 4, 2</ranking>", 4, o),
        4);
    assert_int_equal(o[0], 2);
    assert_int_equal(o[3], 1);
    /* Repeats and numbers out of range are dropped; the rest follow. */
    assert_int_equal(
        proposer_parse_ranking("<ranking>2,2,9,0,4</ranking>", 4, o), 2);
    int want[] = {1, 3, 0, 2};
    assert_memory_equal(o, want, sizeof want);
    /* No tags: the last bare list of numbers. */
    assert_int_equal(
        proposer_parse_ranking("Candidate 1 uses 3 convs.\nRanking: 4 > 1 > 3\n"
                               "2, 3\nDone.",
                               4, o),
        2);
    assert_int_equal(o[0], 1);
    assert_int_equal(o[1], 2);
    /* Garbage: nothing ranked, the sampled order stays. */
    assert_int_equal(proposer_parse_ranking("\x01\x02 no idea", 3, o), 0);
    assert_int_equal(o[0], 0);
    assert_int_equal(o[2], 2);
    assert_int_equal(proposer_parse_ranking("<ranking>", 3, o), 0);
}

typedef struct fix {
    fixture_server_t srv;
    llm_t *llm;
    prompts_t *pr;
    tree_t *tree;
    insp_list_t l;
    agent_env_t env;
} fix_t;

static void s_setup(fix_t *f, const char *script)
{
    char err[256];

    assert_int_equal(fixture_server_start(&f->srv, script), 0);
    llm_config_t c;
    llm_config_default(&c);
    c.base_url = f->srv.url;
    c.model = "m";
    c.retries = 0;
    f->llm = llm_new(&c, err, sizeof err);
    f->pr = prompts_new(NULL, err, sizeof err);
    f->tree = tree_new();
    insp_list_init(&f->l);
    for (int i = 0; i < 6; i++) {
        char t[64];
        snprintf(t, sizeof t, "Idea number %d", i + 1);
        insp_list_add(&f->l, 0, t, "test", NULL, NULL);
    }
    f->env = (agent_env_t){.llm = f->llm,
                           .prompts = f->pr,
                           .dataset = "cifar10",
                           .iteration = 1,
                           .rng = 42};
    int r = tree_add(f->tree, -1, 0, "h0", "##root##", -1, NULL);
    tree_set_screen(f->tree, r, 80.0, 100, 16);
}

static void s_teardown(fix_t *f)
{
    insp_list_free(&f->l);
    tree_destroy(&f->tree);
    prompts_destroy(&f->pr);
    llm_destroy(&f->llm);
    fixture_server_stop(&f->srv);
    fixture_rmdir(f->srv.dir);
}

static void test_rank_and_fallbacks(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{\"rules\":[{\"match\":\"Rank all candidates\","
                "\"responses\":[{\"content\":\"Sure.\\n```\\n<ranking>4, 2"
                "</ranking>\\n```\"},{\"content\":\"I cannot decide.\"},"
                "{\"status\":500}]}]}");
    proposer_config_default(&cfg);
    cfg.candidates = 4;
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.n, 4);
    assert_int_equal(p.v[0].parent, 0);
    assert_string_equal(p.note, "");
    /* The prompt offered four candidates; ranked ones come first. */
    int64_t offered[4];
    for (int i = 0; i < 4; i++)
        offered[i] = p.v[i].insp_id;
    proposals_free(&p);

    /* Same stream again, an unreadable answer: the sampled order. */
    f.env.rng = 42;
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.n, 4);
    assert_non_null(strstr(p.note, "ranking unreadable"));
    /* The first answer put candidate 4 then 2 first. */
    assert_int_equal(offered[0], p.v[3].insp_id);
    assert_int_equal(offered[1], p.v[1].insp_id);
    proposals_free(&p);

    /* A failing endpoint is not fatal either. */
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.n, 4);
    assert_non_null(strstr(p.note, "ranking failed"));
    proposals_free(&p);

    /* Random proposer: no call at all. */
    int before = fixture_log_count(&f.srv, NULL);
    cfg.rank = false;
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.n, 4);
    assert_int_equal(fixture_log_count(&f.srv, NULL), before);
    proposals_free(&p);
    s_teardown(&f);
}

static void test_unused_only_and_modes(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{}");
    proposer_config_default(&cfg);
    cfg.rank = false;
    cfg.candidates = 10;
    /* Root expanded with ideas 1 and 2; child d1 (idea 1) beats it. */
    tree_get(f.tree, 0)->expanded = true;
    int a = tree_add(f.tree, 0, 1, "h1", "##a##", 1, "Idea number 1");
    int b = tree_add(f.tree, 0, 1, "h2", "##b##", 2, "Idea number 2");
    tree_set_screen(f.tree, a, 85.0, 100, 16);
    tree_set_screen(f.tree, b, 90.0, 100, 16);
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    /* dfs: best improving child d2; idea 2 is on its path. */
    assert_int_equal(p.v[0].parent, b);
    assert_int_equal(p.n, 5);
    for (int i = 0; i < p.n; i++)
        assert_true(p.v[i].insp_id != 2);
    proposals_free(&p);

    cfg.parent = PROPOSER_PARENT_BEST;
    tree_get(f.tree, b)->expanded = true;
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.v[0].parent, a);
    proposals_free(&p);
    s_teardown(&f);
}

static void test_hint_keeps_parent_and_skips_tried(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{}");
    proposer_config_default(&cfg);
    cfg.rank = false;
    tree_get(f.tree, 0)->expanded = true;
    int a = tree_add(f.tree, 0, 1, "h1", "##a##", 1, "Idea number 1");
    tree_set_screen(f.tree, a, 85.0, 100, 16);
    /* The tree would pick d1; the hint keeps d0 and skips ideas 2, 3. */
    int64_t tried[] = {2, 3};
    proposer_hint_t hint = {0, tried, 2};
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, &hint,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.n, 3); /* 6 ideas: 1 used by d1, 2 and 3 tried */
    for (int i = 0; i < p.n; i++) {
        assert_int_equal(p.v[i].parent, 0);
        assert_true(p.v[i].insp_id >= 4);
    }
    proposals_free(&p);
    s_teardown(&f);
}

static void test_llm_chooses_pairs(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{\"rules\":[{\"match\":\"Choose 3 pairs\",\"responses\":["
                "{\"content\":\"<pick>d1, 2</pick> <pick>d9, 1</pick> "
                "<pick>d0, 7</pick> <pick>d1, 2</pick> <pick>D0,1</pick>"
                "\"},{\"content\":\"nothing useful\"}]}]}");
    proposer_config_default(&cfg);
    cfg.parent = PROPOSER_PARENT_LLM;
    cfg.pairs = 3;
    cfg.candidates = 3;
    tree_get(f.tree, 0)->expanded = true;
    int a = tree_add(f.tree, 0, 1, "h1", "##a##", 1, "Idea number 1");
    tree_set_screen(f.tree, a, 85.0, 100, 16);
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    /* d9 does not exist, 7 is out of range, one pick is repeated. */
    assert_int_equal(p.n, 2);
    assert_int_equal(p.v[0].parent, a);
    assert_int_equal(p.v[1].parent, 0);
    assert_true(p.v[0].insp_id != 1);
    assert_int_equal(fixture_log_count(&f.srv, "Cells of the best designs"), 1);
    proposals_free(&p);

    /* No usable pick: depth-first parent, and a ranking call. */
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    assert_int_equal(p.v[0].parent, a);
    assert_true(p.n > 0);
    proposals_free(&p);
    s_teardown(&f);
}

static void test_no_reader_invents(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{\"rules\":[{\"match\":\"Propose 2 different\","
                "\"responses\":[{\"content\":\"<inspiration>Add a gate."
                "</inspiration><inspiration>Idea number 1</inspiration>"
                "<inspiration>Use GELU.</inspiration>\"}]},"
                "{\"match\":\"Rank all\",\"responses\":[{\"content\":"
                "\"<ranking>2,1</ranking>\"}]}]}");
    proposer_config_default(&cfg);
    cfg.invent = 2;
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     0);
    /* "Idea number 1" already exists (id 1); it is reused. */
    assert_int_equal(p.n, 2);
    assert_int_equal(f.l.n, 7);
    assert_int_equal(p.v[0].insp_id, 1);
    assert_string_equal(p.v[1].insp, "Add a gate.");
    proposals_free(&p);
    s_teardown(&f);
}

static void test_budget_is_fatal(void **state)
{
    fix_t f;
    proposals_t p;
    char err[256];
    proposer_config_t cfg;
    (void)state;

    s_setup(&f, "{}");
    llm_usage_t u = {0};
    u.prompt_tokens = 100;
    llm_usage_set(f.llm, &u);
    llm_destroy(&f.llm);
    llm_config_t c;
    llm_config_default(&c);
    c.base_url = f.srv.url;
    c.model = "m";
    c.max_total_tokens = 10;
    f.llm = llm_new(&c, err, sizeof err);
    llm_usage_set(f.llm, &u);
    f.env.llm = f.llm;
    proposer_config_default(&cfg);
    assert_int_equal(proposer_propose(&cfg, &f.env, f.tree, &f.l, NULL, NULL,
                                      &p, err, sizeof err),
                     LLM_ERR_BUDGET);
    assert_non_null(strstr(err, "token budget"));
    proposals_free(&p);
    s_teardown(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ranking),
        cmocka_unit_test(test_rank_and_fallbacks),
        cmocka_unit_test(test_unused_only_and_modes),
        cmocka_unit_test(test_hint_keeps_parent_and_skips_tried),
        cmocka_unit_test(test_llm_chooses_pairs),
        cmocka_unit_test(test_no_reader_invents),
        cmocka_unit_test(test_budget_is_fatal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
