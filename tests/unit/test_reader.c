/*
 * test_reader.c - inspiration lists (the release's JSON layout, plain
 * lists, text files, errors) and the Reader against the scripted
 * endpoint (tags amid chatter, over-long ideas, duplicates, PDF).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>

#include "llm_fixture.h"
#include "reader.h"

static void test_import_layouts(void **state)
{
    char dir[256], path[300], err[256];
    insp_list_t l;
    (void)state;

    assert_int_equal(fixture_tmpdir(dir, sizeof dir), 0);
    insp_list_init(&l);

    /* The release's layout, with the older "proposal" key too. */
    snprintf(path, sizeof path, "%s/release.json", dir);
    fixture_write(path,
                  "[{\"id\": 1, \"paper_id\": 2, \"proposal\": \"Use a "
                  "depthwise   convolution.\"},\n"
                  " {\"id\": \"7\", \"paper_id\": \"x\", \"inspiration\": "
                  "\"Add a gate.\"},\n"
                  " {\"id\": 8, \"inspiration\": \"Add a gate.\"}]");
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), 2);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.v[0].text, "Use a depthwise convolution.");
    assert_string_equal(l.v[0].paper_id, "2");
    assert_string_equal(l.v[0].external_id, "1");
    assert_string_equal(l.v[0].source, "release.json");
    assert_int_equal(l.v[1].id, 2);

    /* A plain JSON list, and a text file. */
    snprintf(path, sizeof path, "%s/plain.json", dir);
    fixture_write(path, "[\"Widen the cell.\", \"Add a gate.\"]");
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), 1);
    snprintf(path, sizeof path, "%s/ideas.txt", dir);
    fixture_write(path, "# ideas\nUse GELU.\n\n  Use dilation 2.\n");
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), 2);
    assert_int_equal(l.n, 5);
    assert_string_equal(insp_list_get(&l, 5)->text, "Use dilation 2.");

    /* Bad files change nothing and say where. */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    fixture_write(path, "[{\"id\": 1, \"paper_id\": 2}]");
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "entry 1 has no text"));
    fixture_write(path, "[\"ok\", ");
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "bad.json:1: not valid JSON"));
    assert_int_equal(l.n, 5);
    snprintf(path, sizeof path, "%s/none.json", dir);
    assert_int_equal(insp_list_import(&l, path, err, sizeof err), -1);
    assert_non_null(strstr(err, "none.json"));

    /* Written back in the release's layout, and read again alike. */
    char *js = insp_list_to_json(&l);
    snprintf(path, sizeof path, "%s/out.json", dir);
    fixture_write(path, js);
    json_t *a = json_loads(js, 0, NULL);
    assert_int_equal(json_array_size(a), 5);
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(a, 0), "inspiration")),
        "Use a depthwise convolution.");
    json_decref(a);
    free(js);
    insp_list_t again;
    insp_list_init(&again);
    assert_int_equal(insp_list_import(&again, path, err, sizeof err), 5);
    assert_string_equal(again.v[4].text, l.v[4].text);
    insp_list_free(&again);
    insp_list_free(&l);
    fixture_rmdir(dir);
}

static void test_read_paper(void **state)
{
    fixture_server_t srv;
    char path[300], err[256];
    insp_list_t l;
    reader_report_t rep;
    (void)state;

    /* 60 words: too long. */
    char longidea[1024] = "";
    for (int i = 0; i < 60; i++)
        strcat(longidea, "word ");
    char script[4096];
    snprintf(script, sizeof script,
             "{\"rules\":[{\"match\":\"extract at most 3 ideas\","
             "\"responses\":[{\"content\":\"Here are ideas.\\n"
             "<inspiration>Replace the 3x3 convolution with a 5x5 "
             "depthwise one.</inspiration>\\nand\\n<Inspiration>%s"
             "</Inspiration><inspiration>Replace the 3x3 convolution "
             "with a 5x5  depthwise one.</inspiration>\"},"
             "{\"content\":\"<none/>\"}]}]}",
             longidea);
    assert_int_equal(fixture_server_start(&srv, script), 0);
    llm_config_t c;
    llm_config_default(&c);
    c.base_url = srv.url;
    c.model = "m";
    llm_t *llm = llm_new(&c, err, sizeof err);
    prompts_t *pr = prompts_new(NULL, err, sizeof err);
    agent_env_t env = {.llm = llm, .prompts = pr};

    /* Two pieces of text: the second answer finds nothing. */
    snprintf(path, sizeof path, "%s/paper.txt", srv.dir);
    char paper[3000];
    memset(paper, 'a', sizeof paper);
    memcpy(paper + 1500, "\n\n", 2);
    paper[sizeof paper - 1] = '\0';
    fixture_write(path, paper);
    insp_list_init(&l);
    assert_int_equal(
        reader_read(&env, path, 1600, 0, 3, &l, &rep, err, sizeof err), 0);
    assert_int_equal(rep.chunks, 2);
    assert_int_equal(rep.added, 1);
    assert_int_equal(rep.too_long, 1);
    assert_int_equal(rep.duplicates, 1);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].source, "paper.txt");
    assert_int_equal(fixture_log_count(&srv, "paper.txt (part 1 of 2)"), 1);
    assert_int_equal(fixture_log_count(&srv, "paper.txt (part 2 of 2)"), 1);

    snprintf(path, sizeof path, "%s/paper.pdf", srv.dir);
    fixture_write(path, "%PDF-1.5 binary");
    assert_int_equal(
        reader_read(&env, path, 1600, 0, 3, &l, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "pdftotext"));
    insp_list_free(&l);
    prompts_destroy(&pr);
    llm_destroy(&llm);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_layouts),
        cmocka_unit_test(test_read_paper),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
