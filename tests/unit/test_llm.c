/*
 * test_llm.c - the language-model client against the scripted endpoint:
 * answers, retries (500, 429 with Retry-After, stalls, garbage, cut-off
 * JSON), fatal errors, usage and caps, the exchange log and replay,
 * embeddings, the in-flight limit, the API key, and cancel.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <pthread.h>
#include <sys/time.h>

#include "llm.h"
#include "llm_fixture.h"

static double s_now(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

/* A client for the server with quick retries. */
static llm_t *s_client(const fixture_server_t *srv,
                       void (*tweak)(llm_config_t *))
{
    llm_config_t c;
    char err[256];

    llm_config_default(&c);
    c.base_url = srv->url;
    c.model = "scripted-model";
    c.embed_model = "scripted-embed";
    c.timeout_s = 5;
    c.backoff_s = 0.01;
    c.backoff_max_s = 0.05;
    c.retries = 3;
    c.price_prompt = 1.0;
    c.price_completion = 2.0;
    if (tweak)
        tweak(&c);
    llm_t *l = llm_new(&c, err, sizeof err);
    assert_non_null(l);
    return l;
}

/* A client that answers only from the exchange log at path, which must
 * hold n exchanges; no endpoint, no embedding model configured. */
static llm_t *s_replayer(const char *path, int n)
{
    llm_config_t c;
    char err[512];

    llm_config_default(&c);
    c.replay_only = true;
    llm_t *l = llm_new(&c, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(llm_memo_load_jsonl(l, path, err, sizeof err), n);
    return l;
}

static int s_ask(llm_t *l, const char *prompt, char **answer, char *err,
                 size_t errlen)
{
    llm_message_t m = {"user", prompt};
    return llm_chat(l, "tester", 1, &m, 1, answer, err, errlen);
}

/* Sink that keeps copies. */
typedef struct kept {
    int n;
    llm_exchange_t x[16];
} kept_t;

static int s_keep(void *ctx, const llm_exchange_t *x)
{
    kept_t *k = ctx;
    if (k->n >= 16)
        return -1;
    return llm_exchange_copy(&k->x[k->n++], x);
}

static void s_kept_free(kept_t *k)
{
    for (int i = 0; i < k->n; i++)
        llm_exchange_free(&k->x[i]);
    k->n = 0;
}

static void test_answer_usage_and_sink(void **state)
{
    fixture_server_t srv;
    kept_t kept = {0};
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"rules\":[{\"match\":\"hello\",\"responses\":[{\"content\":"
            "\"hi there\",\"usage\":{\"prompt_tokens\":10,"
            "\"completion_tokens\":5}}]}]}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    llm_set_sink(l, s_keep, &kept);
    assert_int_equal(s_ask(l, "hello model", &ans, err, sizeof err), LLM_OK);
    assert_string_equal(ans, "hi there");
    free(ans);

    llm_usage_t u;
    llm_usage_get(l, &u);
    assert_int_equal(u.calls, 1);
    assert_int_equal(u.prompt_tokens, 10);
    assert_int_equal(u.completion_tokens, 5);
    assert_true(u.cost > 19e-6 && u.cost < 21e-6); /* 10*1 + 5*2 per M */

    assert_int_equal(kept.n, 1);
    assert_string_equal(kept.x[0].agent, "tester");
    assert_int_equal(kept.x[0].iteration, 1);
    assert_int_equal(kept.x[0].attempts, 1);
    assert_false(kept.x[0].estimated);
    assert_non_null(strstr(kept.x[0].request, "hello model"));

    /* JSON round trip of the exchange. */
    char *line = llm_exchange_to_json(&kept.x[0]);
    llm_exchange_t back;
    assert_int_equal(llm_exchange_from_json(line, &back, err, sizeof err), 0);
    assert_string_equal(back.key, kept.x[0].key);
    assert_string_equal(back.answer, "hi there");
    assert_string_equal(back.request, kept.x[0].request);
    assert_int_equal(back.prompt_tokens, 10);
    llm_exchange_free(&back);
    free(line);

    s_kept_free(&kept);
    llm_destroy(&l);
    assert_null(l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_retries_then_answer(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512];
    (void)state;

    /* 500, garbage, cut-off JSON, then an answer. */
    assert_int_equal(
        fixture_server_start(
            &srv, "{\"rules\":[{\"match\":\"x\",\"responses\":["
                  "{\"status\":500},{\"raw\":\"<html>oops\"},"
                  "{\"raw\":\"{\\\"choices\\\":[{\\\"message\\\":{\\\"con\"},"
                  "{\"content\":\"fine\"}]}]}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    assert_int_equal(s_ask(l, "x", &ans, err, sizeof err), LLM_OK);
    assert_string_equal(ans, "fine");
    free(ans);
    llm_usage_t u;
    llm_usage_get(l, &u);
    assert_int_equal(u.retries, 3);
    assert_int_equal(fixture_log_count(&srv, NULL), 4);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_retry_after_is_honoured(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"rules\":[{\"match\":\"x\",\"responses\":["
            "{\"status\":429,\"retry_after\":1},{\"content\":\"ok\"}]}]}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    double t0 = s_now();
    assert_int_equal(s_ask(l, "x", &ans, err, sizeof err), LLM_OK);
    double waited = s_now() - t0;
    assert_string_equal(ans, "ok");
    free(ans);
    /* Backoff alone is at most 0.05 s here; Retry-After asked for 1 s. */
    assert_true(waited >= 0.95);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void s_short_timeout(llm_config_t *c)
{
    c->timeout_s = 0.5;
}

static void test_stall_past_timeout_is_retried(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"rules\":[{\"match\":\"x\",\"responses\":["
            "{\"delay\":2,\"content\":\"late\"},{\"content\":\"prompt\"}]}]}"),
        0);
    llm_t *l = s_client(&srv, s_short_timeout);
    assert_int_equal(s_ask(l, "x", &ans, err, sizeof err), LLM_OK);
    assert_string_equal(ans, "prompt");
    free(ans);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_gives_up_and_fatal_4xx(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv, "{\"rules\":[{\"match\":\"always\",\"responses\":[{"
                  "\"status\":503}]},"
                  "{\"match\":\"bad\",\"responses\":[{\"status\":400}]}]}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    assert_int_equal(s_ask(l, "always", &ans, err, sizeof err), LLM_ERR_FAILED);
    assert_null(ans);
    assert_non_null(strstr(err, "HTTP 503"));
    assert_non_null(strstr(err, "4 attempts"));
    assert_int_equal(fixture_log_count(&srv, "always"), 4);

    assert_int_equal(s_ask(l, "bad", &ans, err, sizeof err), LLM_ERR_FAILED);
    assert_non_null(strstr(err, "HTTP 400"));
    assert_int_equal(fixture_log_count(&srv, "\"bad\""), 1);
    llm_usage_t u;
    llm_usage_get(l, &u);
    assert_int_equal(u.failures, 2);
    assert_int_equal(u.calls, 0);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_estimated_usage(void **state)
{
    fixture_server_t srv;
    kept_t kept = {0};
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv, "{\"default\":{\"content\":\"abcdefgh\",\"no_usage\":true}}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    llm_set_sink(l, s_keep, &kept);
    assert_int_equal(s_ask(l, "twelve chars", &ans, err, sizeof err), LLM_OK);
    free(ans);
    assert_int_equal(kept.n, 1);
    assert_true(kept.x[0].estimated);
    assert_int_equal(kept.x[0].completion_tokens, 2);
    assert_true(kept.x[0].prompt_tokens > 0);
    s_kept_free(&kept);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void s_token_cap(llm_config_t *c)
{
    c->max_total_tokens = 20;
}

static void s_cost_cap(llm_config_t *c)
{
    c->max_cost = 25e-6;
}

static void test_caps_stop_calls(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"default\":{\"content\":\"a\",\"usage\":{\"prompt_tokens\":10,"
            "\"completion_tokens\":5}}}"),
        0);
    llm_t *l = s_client(&srv, s_token_cap);
    assert_int_equal(s_ask(l, "one", &ans, err, sizeof err), LLM_OK);
    free(ans);
    assert_int_equal(s_ask(l, "two", &ans, err, sizeof err), LLM_OK);
    free(ans);
    /* 30 tokens used, cap 20: the third call is refused. */
    assert_int_equal(s_ask(l, "three", &ans, err, sizeof err), LLM_ERR_BUDGET);
    assert_non_null(strstr(err, "token budget reached: 30 of 20"));
    assert_true(llm_budget_reached(l, err, sizeof err));
    assert_int_equal(fixture_log_count(&srv, NULL), 2);
    llm_destroy(&l);

    l = s_client(&srv, s_cost_cap); /* 20e-6 per call */
    assert_int_equal(s_ask(l, "one", &ans, err, sizeof err), LLM_OK);
    free(ans);
    assert_int_equal(s_ask(l, "two", &ans, err, sizeof err), LLM_OK);
    free(ans);
    assert_int_equal(s_ask(l, "three", &ans, err, sizeof err), LLM_ERR_BUDGET);
    assert_non_null(strstr(err, "cost budget reached"));
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_log_and_replay(void **state)
{
    fixture_server_t srv;
    char *ans = NULL, err[512], path[400];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv, "{\"rules\":[{\"match\":\"same\",\"responses\":[{\"content\":"
                  "\"A\"},"
                  "{\"content\":\"B\"}]}],\"default\":{\"content\":\"D\"}}"),
        0);
    snprintf(path, sizeof path, "%s/exchanges.jsonl", srv.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    llm_t *l = s_client(&srv, NULL);
    llm_set_sink(l, llm_sink_jsonl, f);
    const char *prompts[] = {"same", "same", "other"};
    const char *expect[] = {"A", "B", "D"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_ask(l, prompts[i], &ans, err, sizeof err), LLM_OK);
        assert_string_equal(ans, expect[i]);
        free(ans);
    }
    llm_usage_t live;
    llm_usage_get(l, &live);
    llm_destroy(&l);
    fclose(f);
    int asked = fixture_log_count(&srv, NULL);
    assert_int_equal(asked, 3);

    /* Replay only: the same questions get the same answers, in order,
     * the totals match, and the endpoint hears nothing. */
    l = s_replayer(path, 3);
    /* The log holds no embeddings, so none are offered. */
    assert_false(llm_has_embeddings(l));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(s_ask(l, prompts[i], &ans, err, sizeof err), LLM_OK);
        assert_string_equal(ans, expect[i]);
        free(ans);
    }
    llm_usage_t rep;
    llm_usage_get(l, &rep);
    assert_int_equal(rep.prompt_tokens, live.prompt_tokens);
    assert_int_equal(rep.completion_tokens, live.completion_tokens);
    assert_int_equal(rep.memo_hits, 3);
    assert_int_equal(llm_memo_unused(l), 0);
    /* A fourth "same" was never answered. */
    assert_int_equal(s_ask(l, "same", &ans, err, sizeof err), LLM_ERR_REPLAY);
    assert_non_null(strstr(err, "replay log has no answer"));
    llm_destroy(&l);
    assert_int_equal(fixture_log_count(&srv, NULL), asked);

    /* A broken log names its line. */
    assert_int_equal(fixture_write(path, "{\"kind\":\"chat\"}\nnot json\n"), 0);
    llm_config_t c;
    llm_config_default(&c);
    c.replay_only = true;
    l = llm_new(&c, err, sizeof err);
    assert_non_null(l);
    assert_int_equal(llm_memo_load_jsonl(l, path, err, sizeof err), -1);
    assert_non_null(strstr(err, ":1:"));
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_embeddings(void **state)
{
    fixture_server_t srv;
    float *v = NULL;
    int dim = 0;
    char err[512];
    const char *texts[] = {"add a skip connection", "add a skip connection",
                           "use depthwise convolution"};
    (void)state;

    assert_int_equal(fixture_server_start(&srv, "{}"), 0);
    llm_t *l = s_client(&srv, NULL);
    assert_true(llm_has_embeddings(l));
    assert_int_equal(
        llm_embed(l, "reflector", 0, texts, 3, &v, &dim, err, sizeof err),
        LLM_OK);
    assert_int_equal(dim, 64);
    double n0 = 0, d01 = 0, d02 = 0;
    for (int k = 0; k < dim; k++) {
        n0 += v[k] * v[k];
        d01 += v[k] * v[dim + k];
        d02 += v[k] * v[2 * dim + k];
    }
    assert_true(n0 > 0.999 && n0 < 1.001);
    assert_true(d01 > 0.999);
    assert_true(d02 < d01);

    /* The same texts again, from another agent and iteration: answered
     * from memory, the endpoint asked once in all, spending counted once. */
    float *v2 = NULL;
    int dim2 = 0;
    llm_usage_t u0, u1;
    llm_usage_get(l, &u0);
    assert_int_equal(
        llm_embed(l, "proposer", 3, texts, 3, &v2, &dim2, err, sizeof err),
        LLM_OK);
    assert_int_equal(dim2, dim);
    assert_memory_equal(v, v2, (size_t)(3 * dim) * sizeof *v);
    assert_int_equal(fixture_log_count(&srv, NULL), 1);
    llm_usage_get(l, &u1);
    assert_int_equal(u1.calls, u0.calls);
    assert_true(u1.cost == u0.cost);
    free(v2);
    llm_destroy(&l);

    /* A replay configured without an embedding model answers from a
     * log whose embeddings name theirs. */
    char path[400];
    snprintf(path, sizeof path, "%s/embed.jsonl", srv.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    l = s_client(&srv, NULL);
    llm_set_sink(l, llm_sink_jsonl, f);
    assert_int_equal(
        llm_embed(l, "reflector", 0, texts, 3, &v2, &dim2, err, sizeof err),
        LLM_OK);
    free(v2);
    llm_destroy(&l);
    fclose(f);
    l = s_replayer(path, 1);
    assert_true(llm_has_embeddings(l));
    assert_int_equal(
        llm_embed(l, "modifier", 2, texts, 3, &v2, &dim2, err, sizeof err),
        LLM_OK);
    assert_int_equal(dim2, dim);
    assert_memory_equal(v, v2, (size_t)(3 * dim) * sizeof *v);
    free(v2);
    free(v);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);

    /* An endpoint without embeddings: refused once, never asked again. */
    assert_int_equal(fixture_server_start(&srv, "{\"embeddings\":false}"), 0);
    l = s_client(&srv, NULL);
    assert_int_equal(
        llm_embed(l, "reflector", 0, texts, 1, &v, &dim, err, sizeof err),
        LLM_ERR_NO_EMBED);
    assert_false(llm_has_embeddings(l));
    assert_int_equal(
        llm_embed(l, "reflector", 0, texts, 1, &v, &dim, err, sizeof err),
        LLM_ERR_NO_EMBED);
    assert_int_equal(fixture_log_count(&srv, NULL), 1);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void s_two_in_flight(llm_config_t *c)
{
    c->concurrency = 2;
    c->api_key_env = "NADER_TEST_LLM_KEY";
}

static void *s_ask_thread(void *arg)
{
    llm_t *l = arg;
    char *ans = NULL, err[256];
    int rc = s_ask(l, "slow", &ans, err, sizeof err);
    free(ans);
    return (void *)(intptr_t)rc;
}

static void test_in_flight_limit_and_key(void **state)
{
    fixture_server_t srv;
    kept_t kept = {0};
    pthread_t th[4];
    (void)state;

    setenv("NADER_TEST_LLM_KEY", "sk-test-secret-123", 1);
    assert_int_equal(
        fixture_server_start(
            &srv,
            "{\"rules\":[{\"match\":\"slow\",\"responses\":[{\"delay\":0.3,"
            "\"content\":\"done\"}]}]}"),
        0);
    llm_t *l = s_client(&srv, s_two_in_flight);
    llm_set_sink(l, s_keep, &kept);
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, s_ask_thread, l);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(th[i], &rc);
        assert_int_equal((int)(intptr_t)rc, LLM_OK);
    }
    assert_int_equal(fixture_log_count(&srv, NULL), 4);
    assert_true(fixture_log_count(&srv, "\"inflight\": 2") >= 1);
    assert_int_equal(fixture_log_count(&srv, "\"inflight\": 3"), 0);
    assert_int_equal(fixture_log_count(&srv, "\"inflight\": 4"), 0);
    /* The key went over the wire, and nowhere else. */
    assert_int_equal(fixture_log_count(&srv, "Bearer sk-test-secret-123"), 4);
    assert_int_equal(kept.n, 4);
    for (int i = 0; i < kept.n; i++) {
        char *j = llm_exchange_to_json(&kept.x[i]);
        assert_null(strstr(j, "sk-test"));
        free(j);
    }
    s_kept_free(&kept);
    llm_destroy(&l);
    unsetenv("NADER_TEST_LLM_KEY");
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void *s_cancel_later(void *arg)
{
    fixture_sleep_ms(200);
    llm_cancel(arg);
    return NULL;
}

static void test_cancel(void **state)
{
    fixture_server_t srv;
    pthread_t th;
    char *ans = NULL, err[256];
    (void)state;

    assert_int_equal(
        fixture_server_start(
            &srv, "{\"default\":{\"delay\":4,\"content\":\"slow\"}}"),
        0);
    llm_t *l = s_client(&srv, NULL);
    pthread_create(&th, NULL, s_cancel_later, l);
    double t0 = s_now();
    assert_int_equal(s_ask(l, "anything", &ans, err, sizeof err),
                     LLM_ERR_CANCELLED);
    assert_true(s_now() - t0 < 2.0);
    pthread_join(th, NULL);
    assert_int_equal(s_ask(l, "again", &ans, err, sizeof err),
                     LLM_ERR_CANCELLED);
    llm_destroy(&l);
    fixture_server_stop(&srv);
    fixture_rmdir(srv.dir);
}

static void test_config_errors(void **state)
{
    llm_config_t c;
    char err[256];
    (void)state;

    llm_config_default(&c);
    assert_null(llm_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "base URL"));
    c.base_url = "http://127.0.0.1:1/v1";
    assert_null(llm_new(&c, err, sizeof err));
    assert_non_null(strstr(err, "model"));
    c.model = "m";
    c.concurrency = 0;
    assert_null(llm_new(&c, err, sizeof err));

    /* Nothing listens on port 1: a connection error, retried, reported. */
    c.concurrency = 1;
    c.retries = 1;
    c.backoff_s = 0.01;
    llm_t *l = llm_new(&c, err, sizeof err);
    assert_non_null(l);
    char *ans = NULL;
    assert_int_equal(s_ask(l, "x", &ans, err, sizeof err), LLM_ERR_FAILED);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    assert_non_null(strstr(err, "2 attempts"));
    llm_destroy(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_usage_and_sink),
        cmocka_unit_test(test_retries_then_answer),
        cmocka_unit_test(test_retry_after_is_honoured),
        cmocka_unit_test(test_stall_past_timeout_is_retried),
        cmocka_unit_test(test_gives_up_and_fatal_4xx),
        cmocka_unit_test(test_estimated_usage),
        cmocka_unit_test(test_caps_stop_calls),
        cmocka_unit_test(test_log_and_replay),
        cmocka_unit_test(test_embeddings),
        cmocka_unit_test(test_in_flight_limit_and_key),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
