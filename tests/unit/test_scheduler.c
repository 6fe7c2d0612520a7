/*
 * test_scheduler.c - the scheduler's rules, driven without sockets: a
 * real store in a temporary folder, and a send callback that keeps every
 * message the scheduler wants sent.  Covers leasing order and data-set
 * matching, results kept exactly once (repeats, late attempts), retries
 * and the attempt limit, divergence, lost workers, lost leases, cancel,
 * pause and max_running, and re-attachment after a restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "scheduler.h"
#include "store.h"
#include "wire.h"

#define MAX_SENT 256
#define SEC 1000000u

typedef struct sent {
    char worker[64];
    Nader__Envelope *env;
    bool durable;
} sent_t;

static struct {
    char dir[64];
    store_t *store;
    sched_t *s;
    sent_t sent[MAX_SENT];
    int n_sent;
    int kept;
} T;

static void s_send(void *ctx, sched_worker_t *w, Nader__Envelope *env,
                   bool durable)
{
    uint8_t *buf;
    size_t len;
    char err[128];

    (void)ctx;
    assert_true(T.n_sent < MAX_SENT);
    assert_int_equal(wire_encode(env, &buf, &len), WIRE_OK);
    assert_int_equal(wire_decode(buf, len, 1 << 24, &T.sent[T.n_sent].env,
                                 err, sizeof err), WIRE_OK);
    free(buf);
    snprintf(T.sent[T.n_sent].worker, 64, "%s", sched_worker_name(w));
    T.sent[T.n_sent].durable = durable;
    T.n_sent++;
}

static void s_kept(void *ctx, const Nader__ResultRecord *r)
{
    (void)ctx;
    (void)r;
    T.kept++;
}

static void s_clear_sent(void)
{
    for (int i = 0; i < T.n_sent; i++)
        wire_free(&T.sent[i].env);
    T.n_sent = 0;
}

/* The i-th sent message of body kind `body` to worker, or NULL. */
static Nader__Envelope *s_find(const char *worker, int body, int nth)
{
    for (int i = 0; i < T.n_sent; i++)
        if (T.sent[i].env->body_case == (Nader__Envelope__BodyCase)body &&
            (!worker || strcmp(T.sent[i].worker, worker) == 0) &&
            nth-- == 0)
            return T.sent[i].env;
    return NULL;
}

static int s_count(const char *worker, int body)
{
    int n = 0;

    while (s_find(worker, body, n))
        n++;
    return n;
}

static sched_options_t s_options(void)
{
    sched_options_t o = {0};

    o.max_attempts = 3;
    o.heartbeat_interval_us = SEC;
    o.heartbeat_timeout_us = 5 * SEC;
    o.reattach_grace_us = 10 * SEC;
    o.checkpoint_every = 5;
    o.send = s_send;
    o.kept = s_kept;
    return o;
}

static int s_setup(void **state)
{
    sched_options_t o = s_options();
    store_txn_t *t;
    Nader__DesignRecord d = NADER__DESIGN_RECORD__INIT;
    char err[512];

    (void)state;
    memset(&T, 0, sizeof T);
    snprintf(T.dir, sizeof T.dir, "/tmp/nader-sched-XXXXXX");
    if (!mkdtemp(T.dir) ||
        store_open(T.dir, NULL, &T.store, err, sizeof err) < 0 ||
        sched_new(T.store, &o, &T.s, err, sizeof err) < 0 ||
        store_begin(T.store, true, &t, err, sizeof err) < 0)
        return -1;
    d.hash = (char *)"d1";
    d.text = (char *)"cell text";
    store_design_put(t, &d);
    if (sched_reload(T.s, t, 0, err, sizeof err) < 0)
        return -1;
    return store_commit(&t, err, sizeof err);
}

static int s_teardown(void **state)
{
    char cmd[128];

    (void)state;
    s_clear_sent();
    sched_destroy(&T.s);
    store_close(&T.store);
    snprintf(cmd, sizeof cmd, "rm -rf %s", T.dir);
    return system(cmd);
}

static store_txn_t *s_txn(void)
{
    store_txn_t *t;
    char err[512];

    assert_int_equal(store_begin(T.store, true, &t, err, sizeof err), 0);
    return t;
}

static void s_commit(store_txn_t *t)
{
    char err[512];

    assert_int_equal(sched_flush(T.s, t), 0);
    assert_int_equal(store_commit(&t, err, sizeof err), 0);
}

static uint64_t s_submit(const char *dataset, int priority)
{
    Nader__JobSpec spec = NADER__JOB_SPEC__INIT;
    sched_job_new_t j = {0};
    store_txn_t *t = s_txn();
    uint64_t id;

    spec.design_hash = (char *)"d1";
    spec.dataset = (char *)dataset;
    spec.has_epochs = 1;
    spec.epochs = 3;
    j.spec = &spec;
    j.priority = priority;
    j.tag = "test";
    assert_int_equal(sched_job_submit(T.s, t, &j, &id), 0);
    s_commit(t);
    return id;
}

static sched_worker_t *s_hello(const char *name, const char *dataset,
                               const Nader__Running *run, int n_run,
                               uint64_t now)
{
    Nader__Hello h = NADER__HELLO__INIT;
    Nader__Device dev = NADER__DEVICE__INIT, *devs[1] = {&dev};
    Nader__Running *runs[8];
    char *ds[1] = {(char *)dataset};
    store_txn_t *t = s_txn();

    h.worker = (char *)name;
    h.host = (char *)"host";
    dev.name = (char *)"cpu";
    h.n_devices = 1;
    h.devices = devs;
    h.n_datasets = 1;
    h.datasets = ds;
    for (int i = 0; i < n_run; i++)
        runs[i] = (Nader__Running *)&run[i];
    h.n_running = (size_t)n_run;
    h.running = runs;
    assert_int_equal(sched_worker_hello(T.s, t, name, strlen(name), NULL,
                                        &h, now), 0);
    s_commit(t);
    return sched_worker_find(T.s, name, strlen(name));
}

static int s_dispatch(uint64_t now)
{
    store_txn_t *t = s_txn();
    int n = sched_dispatch(T.s, t, now);

    s_commit(t);
    return n;
}

static bool s_result(sched_worker_t *w, uint64_t job, uint32_t attempt,
                     Nader__ResultStatus st)
{
    Nader__Result r = NADER__RESULT__INIT;
    store_txn_t *t = s_txn();
    bool kept;

    r.has_job = r.has_attempt = r.has_status = 1;
    r.job = job;
    r.attempt = attempt;
    r.status = st;
    r.reason = (char *)"test";
    assert_int_equal(sched_worker_result(T.s, t, w, &r, &kept), 0);
    s_commit(t);
    return kept;
}

static Nader__JobRecord *s_job(uint64_t id)
{
    Nader__JobRecord *j = NULL;
    store_txn_t *t;
    char err[512];

    store_begin(T.store, false, &t, err, sizeof err);
    assert_int_equal(store_job_get(t, id, &j), STORE_OK);
    store_abort(&t);
    return j;
}

static bool s_has_result(uint64_t id)
{
    Nader__ResultRecord *r = NULL;
    store_txn_t *t;
    char err[512];
    int rc;

    store_begin(T.store, false, &t, err, sizeof err);
    rc = store_result_get(t, id, &r);
    store_abort(&t);
    if (r)
        nader__result_record__free_unpacked(r, NULL);
    return rc == STORE_OK;
}

/* ----------------------------------------------------------------- tests */

static void test_lease_order_and_datasets(void **state)
{
    uint64_t a, b, c, d;
    sched_worker_t *w;
    Nader__Envelope *e;

    (void)state;
    a = s_submit("cifar10", 0);
    b = s_submit("cifar10", 5);
    c = s_submit("cifar100", 9);
    d = s_submit("cifar10", 5);
    w = s_hello("w1", "cifar10", NULL, 0, 0);
    assert_non_null(s_find("w1", NADER__ENVELOPE__BODY_WELCOME, 0));
    assert_int_equal(s_dispatch(0), 1);
    e = s_find("w1", NADER__ENVELOPE__BODY_LEASE, 0);
    assert_non_null(e);
    /* Highest priority the worker can run (c needs cifar100), oldest
     * first among equals; the design text rides along. */
    assert_int_equal(e->lease->job->id, b);
    assert_int_equal(e->lease->job->attempt, 1);
    assert_string_equal(e->lease->job->design, "cell text");
    assert_int_equal(s_dispatch(0), 0);          /* its one slot is busy */
    assert_true(s_result(w, b, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_int_equal(s_dispatch(0), 1);
    assert_int_equal(s_find("w1", NADER__ENVELOPE__BODY_LEASE, 1)
                         ->lease->job->id, d);
    assert_true(s_result(w, d, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_int_equal(s_dispatch(0), 1);
    assert_int_equal(s_find("w1", NADER__ENVELOPE__BODY_LEASE, 2)
                         ->lease->job->id, a);
    assert_true(s_result(w, a, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_int_equal(s_dispatch(0), 0);          /* only c is left */
    assert_non_null(sched_job_active(T.s, c));
    assert_int_equal(T.kept, 3);
}

static void test_results_kept_exactly_once(void **state)
{
    uint64_t a = s_submit("cifar10", 0);
    sched_worker_t *w1, *w2;
    Nader__JobRecord *j;
    sched_counts_t k;
    store_txn_t *t;

    (void)state;
    w1 = s_hello("w1", "cifar10", NULL, 0, 0);
    s_dispatch(0);
    /* w1 goes silent: its lease is lost (a failure) and the job is
     * leased again, to w2, as attempt 2. */
    w2 = s_hello("w2", "cifar10", NULL, 0, 4 * SEC);
    sched_worker_seen(w2, 6 * SEC);
    t = s_txn();
    assert_int_equal(sched_tick(T.s, t, 6 * SEC, NULL), 0);
    s_commit(t);
    assert_null(sched_worker_find(T.s, "w1", 2));
    w1 = NULL;
    assert_int_equal(s_dispatch(6 * SEC), 1);
    assert_int_equal(s_find("w2", NADER__ENVELOPE__BODY_LEASE, 0)
                         ->lease->job->attempt, 2);
    /* w1 comes back holding a finished attempt 1: its result wins, and
     * w2 is told to stop attempt 2. */
    {
        Nader__Running r = NADER__RUNNING__INIT;
        r.has_job = r.has_attempt = 1;
        r.job = a;
        r.attempt = 1;
        w1 = s_hello("w1", "cifar10", &r, 1, 7 * SEC);
    }
    s_clear_sent();
    assert_true(s_result(w1, a, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_non_null(s_find("w2", NADER__ENVELOPE__BODY_CANCEL, 0));
    assert_true(s_find("w1", NADER__ENVELOPE__BODY_RESULT_ACK, 0)
                    ->result_ack->kept);
    /* w2's attempt 2 and a repeat of attempt 1 are acked, not kept. */
    assert_false(s_result(w2, a, 2, NADER__RESULT_STATUS__RESULT_OK));
    assert_false(s_result(w1, a, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_false(s_find("w2", NADER__ENVELOPE__BODY_RESULT_ACK, 0)
                     ->result_ack->kept);
    assert_int_equal(T.kept, 1);
    j = s_job(a);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_DONE);
    assert_int_equal(j->failures, 1);
    nader__job_record__free_unpacked(j, NULL);
    sched_counts(T.s, &k);
    assert_int_equal(k.done, 1);
    assert_int_equal(k.results, 1);
    assert_int_equal(k.leased + k.running + k.queued, 0);
}

static void test_retries_then_failure(void **state)
{
    uint64_t a = s_submit("cifar10", 0), b;
    sched_worker_t *w = s_hello("w1", "cifar10", NULL, 0, 0);
    Nader__JobRecord *j;

    (void)state;
    for (uint32_t attempt = 1; attempt <= 3; attempt++) {
        assert_int_equal(s_dispatch(0), 1);
        assert_false(s_has_result(a));
        assert_int_equal(s_result(w, a, attempt,
                                  NADER__RESULT_STATUS__RESULT_FAILED),
                         attempt == 3);
    }
    j = s_job(a);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_FAILED);
    assert_int_equal(j->attempts, 3);
    assert_int_equal(j->failures, 3);
    nader__job_record__free_unpacked(j, NULL);
    assert_true(s_has_result(a));                  /* the last failure */
    assert_int_equal(s_dispatch(0), 0);

    /* Divergence is final at once. */
    b = s_submit("cifar10", 0);
    assert_int_equal(s_dispatch(0), 1);
    assert_true(s_result(w, b, 1, NADER__RESULT_STATUS__RESULT_DIVERGED));
    j = s_job(b);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_FAILED);
    assert_int_equal(j->attempts, 1);
    nader__job_record__free_unpacked(j, NULL);
}

static void test_cancel_pause_and_limits(void **state)
{
    uint64_t a = s_submit("cifar10", 0), b = s_submit("cifar10", 0);
    uint64_t c = s_submit("cifar10", 0);
    sched_worker_t *w1, *w2, *holder = NULL;
    store_txn_t *t;
    char err[128];
    Nader__JobRecord *j;

    (void)state;
    t = s_txn();
    assert_int_equal(sched_set_paused(T.s, t, true), 0);
    s_commit(t);
    w1 = s_hello("w1", "cifar10", NULL, 0, 0);
    w2 = s_hello("w2", "cifar10", NULL, 0, 0);
    assert_int_equal(s_dispatch(0), 0);
    t = s_txn();
    assert_int_equal(sched_set_paused(T.s, t, false), 0);
    assert_int_equal(sched_set_max_running(T.s, t, 1), 0);
    s_commit(t);
    assert_int_equal(s_dispatch(0), 1);
    t = s_txn();
    assert_int_equal(sched_set_max_running(T.s, t, 0), 0);
    s_commit(t);
    assert_int_equal(s_dispatch(0), 1);
    /* Cancel a running job (its holder is told) and a queued one. */
    for (int i = 0; i < T.n_sent; i++)
        if (T.sent[i].env->body_case == NADER__ENVELOPE__BODY_LEASE &&
            T.sent[i].env->lease->job->id == a)
            holder = sched_worker_find(T.s, T.sent[i].worker,
                                       strlen(T.sent[i].worker));
    assert_non_null(holder);
    assert_true(holder == w1 || holder == w2);
    s_clear_sent();
    t = s_txn();
    assert_int_equal(sched_job_cancel(T.s, t, a, "no longer wanted", err,
                                      sizeof err), 0);
    assert_int_equal(sched_job_cancel(T.s, t, c, NULL, err, sizeof err), 0);
    assert_int_equal(sched_job_cancel(T.s, t, c, NULL, err, sizeof err), 1);
    assert_non_null(strstr(err, "already finished"));
    assert_int_equal(sched_job_cancel(T.s, t, 999, NULL, err, sizeof err),
                     1);
    assert_non_null(strstr(err, "no such job"));
    s_commit(t);
    assert_int_equal(s_count(NULL, NADER__ENVELOPE__BODY_CANCEL), 1);
    j = s_job(c);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_CANCELLED);
    nader__job_record__free_unpacked(j, NULL);
    assert_false(s_has_result(c));
    /* The holder's late "cancelled" result is acked and dropped. */
    assert_false(s_result(holder, a, 1,
                          NADER__RESULT_STATUS__RESULT_CANCELLED));
    assert_non_null(sched_job_active(T.s, b));
    assert_int_equal(T.kept, 0);
}

static void test_lost_lease_and_restart(void **state)
{
    uint64_t a = s_submit("cifar10", 0), b = s_submit("cifar10", 0);
    sched_worker_t *w1 = s_hello("w1", "cifar10", NULL, 0, 0);
    Nader__Heartbeat hb = NADER__HEARTBEAT__INIT;
    Nader__Running r = NADER__RUNNING__INIT, *rp[1] = {&r};
    sched_options_t o = s_options();
    store_txn_t *t;
    Nader__JobRecord *j;
    char err[256];

    (void)state;
    assert_int_equal(s_dispatch(0), 1);
    /* Heartbeats that stop listing the lease: it is lost after the
     * timeout, without counting as a failure. */
    for (uint64_t now = SEC; now <= 7 * SEC; now += SEC) {
        sched_worker_seen(w1, now);
        t = s_txn();
        assert_int_equal(sched_worker_heartbeat(T.s, t, w1, &hb, now), 0);
        s_commit(t);
    }
    j = s_job(a);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_QUEUED);
    assert_int_equal(j->failures, 0);
    nader__job_record__free_unpacked(j, NULL);

    /* Lease both jobs, then "restart": a new scheduler over the store. */
    s_hello("w2", "cifar10", NULL, 0, 7 * SEC);
    assert_int_equal(s_dispatch(7 * SEC), 2);
    sched_destroy(&T.s);
    s_clear_sent();
    assert_int_equal(sched_new(T.store, &o, &T.s, err, sizeof err), 0);
    t = s_txn();
    assert_int_equal(sched_reload(T.s, t, 100 * SEC, err, sizeof err), 0);
    s_commit(t);
    assert_non_null(sched_job_active(T.s, a));
    /* w1 reports the job it holds and gets it back; nobody reports the
     * other, which is queued again once the grace runs out. */
    j = s_job(a);
    r.has_job = r.has_attempt = 1;
    r.job = a;
    r.attempt = j->attempts;
    r.device = (char *)"cpu";
    nader__job_record__free_unpacked(j, NULL);
    w1 = s_hello(strcmp(sched_job_active(T.s, a)->worker, "w1") == 0
                     ? "w1" : "w2", "cifar10", &r, 1, 101 * SEC);
    assert_int_equal(s_count(NULL, NADER__ENVELOPE__BODY_CANCEL), 0);
    hb.n_running = 1;
    hb.running = rp;
    sched_worker_seen(w1, 109 * SEC);
    t = s_txn();
    assert_int_equal(sched_worker_heartbeat(T.s, t, w1, &hb, 109 * SEC), 0);
    assert_int_equal(sched_tick(T.s, t, 111 * SEC, NULL), 0);
    s_commit(t);
    j = s_job(b);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_QUEUED);
    assert_int_equal(j->failures, 0);
    nader__job_record__free_unpacked(j, NULL);
    j = s_job(a);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_LEASED);
    nader__job_record__free_unpacked(j, NULL);
    assert_true(s_result(w1, a, r.attempt, NADER__RESULT_STATUS__RESULT_OK));
    assert_true(s_has_result(a));
}

static void test_restart_with_a_held_result(void **state)
{
    uint64_t a = s_submit("cifar10", 1), b = s_submit("cifar10", 0);
    sched_worker_t *w = s_hello("w1", "cifar10", NULL, 0, 0);
    Nader__Running r[2] = {NADER__RUNNING__INIT, NADER__RUNNING__INIT};
    sched_options_t o = s_options();
    store_txn_t *t;
    char err[256];
    Nader__JobRecord *j;

    (void)state;
    /* a is leased to w1; the coordinator restarts (a is an orphan);
     * w1's new session takes b on its one device; another restart.
     * Now w1 holds a's result (finished) and runs b. */
    assert_int_equal(s_dispatch(0), 1);
    sched_destroy(&T.s);
    assert_int_equal(sched_new(T.store, &o, &T.s, err, sizeof err), 0);
    t = s_txn();
    assert_int_equal(sched_reload(T.s, t, 0, err, sizeof err), 0);
    s_commit(t);
    w = s_hello("w1", "cifar10", NULL, 0, 0);
    assert_int_equal(s_dispatch(0), 1);
    sched_destroy(&T.s);
    s_clear_sent();
    assert_int_equal(sched_new(T.store, &o, &T.s, err, sizeof err), 0);
    t = s_txn();
    assert_int_equal(sched_reload(T.s, t, 0, err, sizeof err), 0);
    s_commit(t);
    r[0].has_job = r[0].has_attempt = r[0].has_finished = 1;
    r[0].job = a;
    r[0].attempt = 1;
    r[0].finished = 1;
    r[0].device = (char *)"cpu";
    r[1].has_job = r[1].has_attempt = 1;
    r[1].job = b;
    r[1].attempt = 1;
    r[1].device = (char *)"cpu";
    w = s_hello("w1", "cifar10", r, 2, SEC);
    /* b keeps its device; nothing is cancelled; a's result settles a. */
    assert_int_equal(s_count(NULL, NADER__ENVELOPE__BODY_CANCEL), 0);
    j = s_job(b);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_LEASED);
    nader__job_record__free_unpacked(j, NULL);
    assert_true(s_result(w, a, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_true(s_result(w, b, 1, NADER__RESULT_STATUS__RESULT_OK));
    assert_true(s_has_result(a) && s_has_result(b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lease_order_and_datasets,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_results_kept_exactly_once,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_retries_then_failure,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel_pause_and_limits,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lost_lease_and_restart,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_with_a_held_result,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
