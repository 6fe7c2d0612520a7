/*
 * test_metrics.c - the coordinator's Prometheus metrics (metrics.c): the
 * figures come from the right places and are fetched over real HTTP.
 *
 * A store in a temporary folder gets results (two data sets, two
 * fidelities, a failed and a load-test one that must not count) and LLM
 * exchanges of two agents; the server is started on a free port and
 * scraped with libcurl.  Checked: best accuracy per data set and epochs,
 * LLM requests, errors, tokens and cost per agent (and only new records
 * counted on the next scrape), the loop's published figures, results
 * kept in a turn counted only once the turn commits, label escaping,
 * HELP and TYPE before every family, 404 and 405 answers, and a busy
 * address refused with a message.  Runs in well under a second.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "metrics.h"
#include "store.h"

static char s_dir[64];
static store_t *s_store;

typedef struct s_buf {
    char *p;
    size_t n;
} s_buf_t;

static size_t s_write(char *data, size_t size, size_t n, void *ctx)
{
    s_buf_t *b = ctx;
    char *q = realloc(b->p, b->n + size * n + 1);

    if (!q)
        return 0;
    memcpy(q + b->n, data, size * n);
    b->p = q;
    b->n += size * n;
    b->p[b->n] = '\0';
    return size * n;
}

/* GET url; returns the body (caller frees) and the status in *code. */
static char *s_get(const char *url, const char *method, long *code)
{
    CURL *c = curl_easy_init();
    s_buf_t b = {calloc(1, 1), 0};

    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, s_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    if (method)
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, code);
    curl_easy_cleanup(c);
    return b.p;
}

static void s_result(store_txn_t *t, uint64_t job, const char *dataset,
                     int epochs, double acc, Nader__ResultStatus st,
                     bool load_test)
{
    Nader__ResultRecord rr = NADER__RESULT_RECORD__INIT;
    Nader__Result r = NADER__RESULT__INIT;

    r.has_status = true;
    r.status = st;
    r.has_final_valid_acc = true;
    r.final_valid_acc = acc;
    r.has_load_test = true;
    r.load_test = load_test;
    rr.has_job = true;
    rr.job = job;
    rr.result = &r;
    rr.dataset = (char *)dataset;
    rr.has_epochs = true;
    rr.epochs = epochs;
    rr.design_hash = "0123456789abcdef0123456789abcdef";
    assert_int_equal(store_result_put(t, &rr), STORE_OK);
}

static void s_llm(store_txn_t *t, const char *agent, int64_t p, int64_t c,
                  double cost, const char *error)
{
    Nader__LlmExchangeRecord r = NADER__LLM_EXCHANGE_RECORD__INIT;

    r.agent = (char *)agent;
    r.has_prompt_tokens = r.has_completion_tokens = r.has_cost = true;
    r.prompt_tokens = p;
    r.completion_tokens = c;
    r.cost = cost;
    r.error = (char *)error;
    assert_int_equal(store_llm_add(t, &r), STORE_OK);
}

static int s_setup(void **state)
{
    store_options_t o = {0};
    store_txn_t *t = NULL;
    char err[256];

    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/nader-metrics-XXXXXX");
    if (!mkdtemp(s_dir) ||
        store_open(s_dir, &o, &s_store, err, sizeof err) != STORE_OK ||
        store_begin(s_store, true, &t, err, sizeof err) != STORE_OK)
        return -1;
    s_result(t, 1, "cifar10", 12, 61.5, NADER__RESULT_STATUS__RESULT_OK,
             false);
    s_result(t, 2, "cifar10", 12, 64.25, NADER__RESULT_STATUS__RESULT_OK,
             false);
    s_result(t, 3, "cifar10", 200, 93.5, NADER__RESULT_STATUS__RESULT_OK,
             false);
    s_result(t, 4, "cifar10", 12, 99.0,
             NADER__RESULT_STATUS__RESULT_FAILED, false);
    s_result(t, 5, "cifar10", 12, 98.0, NADER__RESULT_STATUS__RESULT_OK,
             true);
    s_result(t, 6, "cifar100", 12, 30.0, NADER__RESULT_STATUS__RESULT_OK,
             false);
    s_llm(t, "proposer", 1000, 200, 0.5, NULL);
    s_llm(t, "modifier", 3000, 900, 1.25, NULL);
    s_llm(t, "modifier", 10, 0, 0.0, "HTTP 500 from the endpoint");
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return store_commit(&t, err, sizeof err) == STORE_OK ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[128];

    (void)state;
    store_close(&s_store);
    curl_global_cleanup();
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* The value of the sample line starting with prefix ("name{...} "). */
static double s_sample(const char *text, const char *prefix)
{
    const char *p = text;
    size_t n = strlen(prefix);

    while (p && *p) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    fail_msg("no sample %s in:\n%s", prefix, text);
    return 0;
}

/* Every sample's family has HELP and TYPE lines before it. */
static void s_check_format(const char *text)
{
    char fam[128] = "";
    const char *p = text;

    while (*p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        assert_true(e != NULL);   /* every line ends in a newline */
        if (strncmp(p, "# HELP ", 7) == 0) {
            size_t k = strcspn(p + 7, " ");
            snprintf(fam, sizeof fam, "%.*s", (int)k, p + 7);
            assert_true(strncmp(e + 1, "# TYPE ", 7) == 0);
            assert_true(strncmp(e + 8, fam, k) == 0);
        } else if (p[0] != '#') {
            assert_true(fam[0] && strncmp(p, fam, strlen(fam)) == 0);
            assert_true(p[strlen(fam)] == ' ' || p[strlen(fam)] == '{');
        }
        p += len + 1;
    }
}

static void test_scrape(void **state)
{
    metrics_t *m = NULL;
    metrics_slot_t slots[3] = {
        {"w1", "cuda:0", true, 1500.5},
        {"w1", "cuda:1", false, 0},
        {"odd \"name\"\\x", "cpu", true, 99.5},
    };
    metrics_figures_t f = {{4, 1, 2, 10, 1, 3}, 14, 1, 2, 3, slots,
                           false, 100, 50, 12.5};
    char err[256], url[160];
    char *text;
    long code;

    (void)state;
    assert_int_equal(metrics_new("127.0.0.1:0", s_store, &m, err,
                                 sizeof err), 0);
    metrics_publish(m, &f);
    snprintf(url, sizeof url, "http://%s/metrics", metrics_address(m));
    text = s_get(url, NULL, &code);
    assert_int_equal(code, 200);
    s_check_format(text);

    assert_true(s_sample(text, "nader_best_valid_accuracy_percent"
                               "{dataset=\"cifar10\",epochs=\"12\"}") ==
                64.25);
    assert_true(s_sample(text, "nader_best_valid_accuracy_percent"
                               "{dataset=\"cifar10\",epochs=\"200\"}") ==
                93.5);
    assert_true(s_sample(text, "nader_best_valid_accuracy_percent"
                               "{dataset=\"cifar100\",epochs=\"12\"}") ==
                30.0);
    assert_true(s_sample(text, "nader_llm_requests_total"
                               "{agent=\"modifier\"}") == 2);
    assert_true(s_sample(text, "nader_llm_errors_total"
                               "{agent=\"modifier\"}") == 1);
    assert_true(s_sample(text, "nader_llm_tokens_total{agent=\"modifier\","
                               "kind=\"prompt\"}") == 3010);
    assert_true(s_sample(text, "nader_llm_tokens_total{agent=\"proposer\","
                               "kind=\"completion\"}") == 200);
    assert_true(s_sample(text, "nader_llm_cost_total"
                               "{agent=\"modifier\"}") == 1.25);
    assert_true(s_sample(text, "nader_jobs{state=\"queued\"}") == 4);
    assert_true(s_sample(text, "nader_jobs{state=\"cancelled\"}") == 3);
    assert_true(s_sample(text, "nader_queue_length") == 4);
    assert_true(s_sample(text, "nader_workers") == 2);
    assert_true(s_sample(text, "nader_devices{state=\"busy\"}") == 2);
    assert_true(s_sample(text, "nader_devices{state=\"idle\"}") == 1);
    assert_true(s_sample(text, "nader_training_images_per_second") ==
                1600.0);
    assert_true(s_sample(text, "nader_device_images_per_second{worker="
                               "\"odd \\\"name\\\"\\\\x\",device=\"cpu\"}")
                == 99.5);
    assert_true(s_sample(text, "nader_results_total") == 14);
    free(text);

    /* A result of a turn that failed to commit never counts; one whose
     * turn committed does.  New LLM records are added to the totals. */
    metrics_result_kept(m, "cifar10", 12, 70.0);
    metrics_turn_end(m, false);
    metrics_result_kept(m, "cifar10", 200, 94.0);
    metrics_turn_end(m, true);
    store_txn_t *t = NULL;
    assert_int_equal(store_begin(s_store, true, &t, err, sizeof err),
                     STORE_OK);
    s_llm(t, "proposer", 5, 5, 0.25, NULL);
    assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);
    text = s_get(url, NULL, &code);
    assert_true(s_sample(text, "nader_best_valid_accuracy_percent"
                               "{dataset=\"cifar10\",epochs=\"12\"}") ==
                64.25);
    assert_true(s_sample(text, "nader_best_valid_accuracy_percent"
                               "{dataset=\"cifar10\",epochs=\"200\"}") ==
                94.0);
    assert_true(s_sample(text, "nader_llm_requests_total"
                               "{agent=\"proposer\"}") == 2);
    assert_true(s_sample(text, "nader_llm_cost_total"
                               "{agent=\"proposer\"}") == 0.75);
    assert_true(s_sample(text, "nader_metrics_scrapes_total") == 2);
    free(text);

    snprintf(url, sizeof url, "http://%s/other", metrics_address(m));
    free(s_get(url, NULL, &code));
    assert_int_equal(code, 404);
    snprintf(url, sizeof url, "http://%s/metrics", metrics_address(m));
    free(s_get(url, "DELETE", &code));
    assert_int_equal(code, 405);

    /* The same address again is refused, naming it. */
    metrics_t *m2 = NULL;
    assert_int_equal(metrics_new(metrics_address(m), s_store, &m2, err,
                                 sizeof err), -1);
    assert_null(m2);
    assert_non_null(strstr(err, "cannot listen"));
    assert_int_equal(metrics_new("nohost", s_store, &m2, err, sizeof err),
                     -1);
    assert_non_null(strstr(err, "HOST:PORT"));
    metrics_destroy(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scrape),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
