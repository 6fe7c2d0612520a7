/*
 * test_coord_link.c - the coordinator as the agents see it: a real
 * coordinator (own thread, real store, loopback TCP) and a worker in
 * load-test mode, driven through the in-process link.  Submitting a
 * valid and an invalid design, adding experience, inspiration and LLM
 * records (ids assigned, readable from the store on this thread),
 * changing settings, cancelling, and the result events that follow each
 * kept result.  About 2 s.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "coordinator.h"
#include "daemon.h"
#include "log.h"
#include "store.h"

static const char *s_good =
    "##cell##\n0:input\n1:output\n2:Conv2d(out_channels=C,kernel_size=3,"
    "stride=1)\n3:BN\n4:ReLU\n0->2\n2->3\n3->4\n4->1\n";
static const char *s_bad =
    "##cell##\n0:input\n1:output\n2:Conv2d(out_channels=C,kernel_size=3)\n"
    "3:NoSuchOp\n0->2\n2->3\n3->1\n";

static struct {
    char dir[64];
    coord_t *c;
    pthread_t ct, wt;
    worker_t *w;
    coord_link_t *link;
} T;

static void *s_run_coord(void *arg)
{
    coord_run(arg);
    return NULL;
}

static void *s_run_worker(void *arg)
{
    worker_run(arg);
    return NULL;
}

static int s_setup(void **state)
{
    config_t cfg;
    char err[512], path[128];

    (void)state;
    log_init("test", LOG_WARN, NULL);
    snprintf(T.dir, sizeof T.dir, "/tmp/nader-link-XXXXXX");
    if (!mkdtemp(T.dir))
        return -1;
    snprintf(path, sizeof path, "%s/state", T.dir);
    config_defaults(&cfg);
    config_set(&cfg, "state_dir", path, err, sizeof err);
    config_set(&cfg, "workers.endpoint", "tcp://127.0.0.1:*", err,
               sizeof err);
    config_set(&cfg, "status.endpoint", "", err, sizeof err);
    config_set(&cfg, "jobs.paused", "true", err, sizeof err);
    if (coord_new(&cfg, &T.c, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        config_free(&cfg);
        return -1;
    }
    config_free(&cfg);
    pthread_create(&T.ct, NULL, s_run_coord, T.c);
    return coord_link_new(T.c, &T.link, err, sizeof err);
}

static int s_teardown(void **state)
{
    char cmd[128];

    (void)state;
    if (T.w) {
        worker_stop(T.w);
        pthread_join(T.wt, NULL);
        worker_destroy(&T.w);
    }
    coord_link_destroy(&T.link);
    coord_stop(T.c);
    pthread_join(T.ct, NULL);
    coord_destroy(&T.c);
    snprintf(cmd, sizeof cmd, "rm -rf %s", T.dir);
    return system(cmd);
}

static Nader__LinkReply *s_submit(const char *design, uint64_t *seeds,
                                  size_t n)
{
    Nader__SubmitRequest sr = NADER__SUBMIT_REQUEST__INIT;
    Nader__LinkReply *r = NULL;
    char err[256];

    sr.design = (char *)design;
    sr.has_epochs = sr.has_width = 1;     /* proto2: say what is set */
    sr.epochs = 12;
    sr.width = 8;
    sr.seeds = seeds;
    sr.n_seeds = n;
    sr.source = (char *)"agent";
    sr.parent_hash = (char *)"0123";
    sr.tag = (char *)"search:1";
    assert_int_equal(coord_link_submit(T.link, &sr, &r, 5000, err,
                                       sizeof err), 0);
    return r;
}

static void s_paused(bool paused)
{
    Nader__LinkRequest q = NADER__LINK_REQUEST__INIT;
    Nader__SettingsRecord s = NADER__SETTINGS_RECORD__INIT;
    Nader__LinkReply *r = NULL;
    char err[256];

    s.has_paused = 1;
    s.paused = paused;
    q.body_case = NADER__LINK_REQUEST__BODY_SETTINGS;
    q.settings = &s;
    assert_int_equal(coord_link_call(T.link, &q, &r, 5000, err, sizeof err),
                     0);
    assert_true(r->ok);
    nader__link_reply__free_unpacked(r, NULL);
}

static void test_agents_api(void **state)
{
    uint64_t seeds[3] = {777, 888, 999}, cancel_id;
    Nader__LinkReply *r;
    Nader__LinkRequest q = NADER__LINK_REQUEST__INIT;
    Nader__ExperienceRecord e = NADER__EXPERIENCE_RECORD__INIT;
    Nader__CancelRequest cr = NADER__CANCEL_REQUEST__INIT;
    Nader__DesignRecord *d = NULL;
    Nader__ExperienceRecord *e2 = NULL;
    Nader__ResultRecord *ev = NULL;
    store_txn_t *t;
    worker_options_t o;
    char err[256], hash[33];
    int got = 0;

    (void)state;
    /* An invalid design: the validator's lines, nothing queued. */
    r = s_submit(s_bad, seeds, 1);
    assert_false(r->ok);
    assert_non_null(r->submit);
    assert_true(r->submit->n_errors >= 1);
    assert_non_null(strstr(r->submit->errors[0], "NoSuchOp"));
    assert_int_equal(r->submit->n_jobs, 0);
    nader__link_reply__free_unpacked(r, NULL);

    /* A valid one: one job per seed, the design stored with its origin. */
    r = s_submit(s_good, seeds, 3);
    assert_true(r->ok);
    assert_int_equal(r->submit->n_jobs, 3);
    assert_int_equal(r->submit->width, 8);
    assert_true(r->submit->design_new);
    snprintf(hash, sizeof hash, "%s", r->submit->design_hash);
    cancel_id = r->submit->jobs[2];
    nader__link_reply__free_unpacked(r, NULL);
    assert_int_equal(store_begin(coord_store(T.c), false, &t, err,
                                 sizeof err), 0);
    assert_int_equal(store_design_get(t, hash, &d), STORE_OK);
    assert_string_equal(d->source, "agent");
    assert_string_equal(d->parent_hash, "0123");
    nader__design_record__free_unpacked(d, NULL);
    store_abort(&t);

    /* Records get ids, and are there for readers on this thread. */
    e.has_kind = 1;
    e.kind = NADER__EXPERIENCE_KIND__EXPERIENCE_DEVELOPMENT;
    e.error = (char *)"cell node 3 (NoSuchOp): unknown operation";
    e.text = (char *)"use only operations of the block format";
    q.body_case = NADER__LINK_REQUEST__BODY_EXPERIENCE;
    q.experience = &e;
    assert_int_equal(coord_link_call(T.link, &q, &r, 5000, err, sizeof err),
                     0);
    assert_true(r->ok);
    assert_int_equal(r->id, 1);
    nader__link_reply__free_unpacked(r, NULL);
    assert_int_equal(store_begin(coord_store(T.c), false, &t, err,
                                 sizeof err), 0);
    assert_int_equal(store_experience_get(t, 1, &e2), STORE_OK);
    assert_string_equal(e2->text, "use only operations of the block format");
    nader__experience_record__free_unpacked(e2, NULL);
    store_abort(&t);

    /* Cancel one of the three; run the others; their results arrive as
     * events, after commit. */
    cr.n_jobs = 1;
    cr.jobs = &cancel_id;
    q.body_case = NADER__LINK_REQUEST__BODY_CANCEL;
    q.cancel = &cr;
    assert_int_equal(coord_link_call(T.link, &q, &r, 5000, err, sizeof err),
                     0);
    assert_int_equal(r->n_ids, 1);
    nader__link_reply__free_unpacked(r, NULL);
    worker_options_default(&o);
    o.endpoint = coord_workers_endpoint(T.c);
    o.instant = true;
    o.name = "link-test-worker";
    assert_int_equal(worker_new(&o, &T.w, err, sizeof err), 0);
    pthread_create(&T.wt, NULL, s_run_worker, T.w);
    s_paused(false);
    while (got < 2) {
        int rc = coord_link_next_result(T.link, 10000, &ev);
        assert_int_equal(rc, 0);
        assert_string_equal(ev->design_hash, hash);
        assert_true(ev->result->load_test);
        assert_true(ev->job != cancel_id);
        nader__result_record__free_unpacked(ev, NULL);
        got++;
    }
    assert_int_equal(coord_link_next_result(T.link, 300, &ev), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_agents_api, s_setup,
                                        s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
