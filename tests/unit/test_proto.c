/*
 * test_proto.c - the wire schema: every message and record survives an
 * encode/decode round trip, the envelope checks (size, version, body)
 * hold, and the versioning promise is kept: bytes written by schema 1
 * (pinned below) still decode to the same values, a record without the
 * fields added later decodes with their defaults, and a record with
 * fields this build does not know still decodes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "nader.pb-c.h"
#include "wire.h"

static uint8_t *s_pack_env(Nader__Envelope *env, size_t *len)
{
    uint8_t *buf;
    assert_int_equal(wire_encode(env, &buf, len), WIRE_OK);
    return buf;
}

static void test_every_body_round_trips(void **state)
{
    Nader__Hello h = NADER__HELLO__INIT;
    Nader__Device dev = NADER__DEVICE__INIT, *devs[1] = {&dev};
    Nader__Running run = NADER__RUNNING__INIT, *runs[1] = {&run};
    char *ds[2] = {(char *)"cifar10", (char *)"cifar100"};
    Nader__Lease lease = NADER__LEASE__INIT;
    Nader__JobSpec spec = NADER__JOB_SPEC__INIT;
    Nader__Recipe rec = NADER__RECIPE__INIT;
    Nader__Result res = NADER__RESULT__INIT;
    Nader__Epoch ep = NADER__EPOCH__INIT, *eps[1] = {&ep};
    Nader__Envelope env = NADER__ENVELOPE__INIT, *out;
    uint8_t *buf;
    size_t len;
    char err[256];

    (void)state;
    h.worker = (char *)"w-1";
    h.host = (char *)"host";
    dev.name = (char *)"cuda:0";
    dev.has_memory_bytes = 1;
    dev.memory_bytes = 150ULL << 30;
    h.n_devices = 1;
    h.devices = devs;
    h.n_datasets = 2;
    h.datasets = ds;
    run.has_job = run.has_attempt = 1;
    run.job = 41;
    run.attempt = 2;
    h.n_running = 1;
    h.running = runs;
    env.body_case = NADER__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    buf = s_pack_env(&env, &len);
    assert_int_equal(wire_decode(buf, len, 1 << 20, &out, err, sizeof err),
                     WIRE_OK);
    assert_int_equal(out->body_case, NADER__ENVELOPE__BODY_HELLO);
    assert_string_equal(out->hello->worker, "w-1");
    assert_int_equal(out->hello->n_devices, 1);
    assert_string_equal(out->hello->devices[0]->name, "cuda:0");
    assert_true(out->hello->devices[0]->memory_bytes == 150ULL << 30);
    assert_string_equal(out->hello->datasets[1], "cifar100");
    assert_int_equal(out->hello->running[0]->job, 41);
    assert_int_equal(out->hello->running[0]->epoch, -1);
    wire_free(&out);
    free(buf);

    rec.has_batch = 1;
    rec.batch = 64;
    spec.has_id = spec.has_attempt = spec.has_epochs = spec.has_seed = 1;
    spec.id = 7;
    spec.attempt = 3;
    spec.epochs = 12;
    spec.seed = 999;
    spec.design = (char *)"cell\n1 input\n2 output\n1->2\n";
    spec.recipe = &rec;
    lease.job = &spec;
    lease.device = (char *)"cpu";
    lease.has_checkpoint = 1;
    lease.checkpoint.data = (uint8_t *)"\0\1\2state";
    lease.checkpoint.len = 8;
    env.body_case = NADER__ENVELOPE__BODY_LEASE;
    env.lease = &lease;
    buf = s_pack_env(&env, &len);
    assert_int_equal(wire_decode(buf, len, 1 << 20, &out, err, sizeof err),
                     WIRE_OK);
    assert_int_equal(out->lease->job->id, 7);
    assert_int_equal(out->lease->job->attempt, 3);
    assert_int_equal(out->lease->job->recipe->batch, 64);
    assert_true(out->lease->job->recipe->nesterov);      /* default */
    assert_string_equal(out->lease->job->dataset, "cifar10");
    assert_string_equal(out->lease->job->skeleton, "nb201");
    assert_int_equal(out->lease->checkpoint.len, 8);
    assert_memory_equal(out->lease->checkpoint.data, "\0\1\2state", 8);
    wire_free(&out);
    free(buf);

    ep.has_epoch = ep.has_valid_acc = 1;
    ep.epoch = 11;
    ep.valid_acc = 91.25;
    res.has_job = res.has_attempt = res.has_status = 1;
    res.job = 7;
    res.attempt = 3;
    res.status = NADER__RESULT_STATUS__RESULT_DIVERGED;
    res.reason = (char *)"loss is NaN at epoch 3";
    res.n_epochs = 1;
    res.epochs = eps;
    env.body_case = NADER__ENVELOPE__BODY_RESULT;
    env.result = &res;
    buf = s_pack_env(&env, &len);
    assert_int_equal(wire_decode(buf, len, 1 << 20, &out, err, sizeof err),
                     WIRE_OK);
    assert_int_equal(out->result->status,
                     NADER__RESULT_STATUS__RESULT_DIVERGED);
    assert_string_equal(out->result->reason, "loss is NaN at epoch 3");
    assert_true(out->result->epochs[0]->valid_acc == 91.25);
    assert_true(out->result->epochs[0]->test_acc == -1);  /* default */
    assert_true(out->result->best_test_acc == -1);
    assert_false(out->result->load_test);
    wire_free(&out);
    free(buf);
}

static void test_small_bodies_round_trip(void **state)
{
    int cases[] = {NADER__ENVELOPE__BODY_WELCOME,
                   NADER__ENVELOPE__BODY_HEARTBEAT,
                   NADER__ENVELOPE__BODY_PROGRESS,
                   NADER__ENVELOPE__BODY_CHECKPOINT,
                   NADER__ENVELOPE__BODY_RESULT_ACK,
                   NADER__ENVELOPE__BODY_CANCEL,
                   NADER__ENVELOPE__BODY_REJECT,
                   NADER__ENVELOPE__BODY_GOODBYE};
    Nader__Welcome wl = NADER__WELCOME__INIT;
    Nader__Heartbeat hb = NADER__HEARTBEAT__INIT;
    Nader__Progress pr = NADER__PROGRESS__INIT;
    Nader__Checkpoint ck = NADER__CHECKPOINT__INIT;
    Nader__ResultAck ack = NADER__RESULT_ACK__INIT;
    Nader__Cancel cn = NADER__CANCEL__INIT;
    Nader__Reject rj = NADER__REJECT__INIT;
    Nader__Goodbye gb = NADER__GOODBYE__INIT;
    char err[256];

    (void)state;
    wl.has_heartbeat_ms = 1;
    wl.heartbeat_ms = 250;
    pr.has_job = 1;
    pr.job = 5;
    ck.has_epoch = 1;
    ck.epoch = 4;
    ack.has_kept = 1;
    ack.kept = 1;
    cn.reason = (char *)"cancelled";
    rj.has_code = 1;
    rj.code = NADER__REJECT__CODE__BAD_VERSION;
    gb.reason = (char *)"bye";
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        Nader__Envelope env = NADER__ENVELOPE__INIT, *out;
        uint8_t *buf;
        size_t len;
        env.body_case = cases[i];
        switch (cases[i]) {
        case NADER__ENVELOPE__BODY_WELCOME: env.welcome = &wl; break;
        case NADER__ENVELOPE__BODY_HEARTBEAT: env.heartbeat = &hb; break;
        case NADER__ENVELOPE__BODY_PROGRESS: env.progress = &pr; break;
        case NADER__ENVELOPE__BODY_CHECKPOINT: env.checkpoint = &ck; break;
        case NADER__ENVELOPE__BODY_RESULT_ACK: env.result_ack = &ack; break;
        case NADER__ENVELOPE__BODY_CANCEL: env.cancel = &cn; break;
        case NADER__ENVELOPE__BODY_REJECT: env.reject = &rj; break;
        default: env.goodbye = &gb; break;
        }
        buf = s_pack_env(&env, &len);
        assert_int_equal(wire_decode(buf, len, 1024, &out, err, sizeof err),
                         WIRE_OK);
        assert_int_equal(out->body_case, cases[i]);
        assert_string_not_equal(wire_body_name(out->body_case), "none");
        wire_free(&out);
        free(buf);
    }
    assert_int_equal(wl.heartbeat_ms, 250);
}

static void test_envelope_checks(void **state)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT, *out = NULL;
    Nader__Goodbye gb = NADER__GOODBYE__INIT;
    uint8_t *buf, junk[64];
    size_t len;
    char err[256];

    (void)state;
    env.body_case = NADER__ENVELOPE__BODY_GOODBYE;
    env.goodbye = &gb;
    gb.reason = (char *)"a reason long enough to matter";
    buf = s_pack_env(&env, &len);
    assert_int_equal(wire_decode(buf, len, len - 1, &out, err, sizeof err),
                     WIRE_ETOOBIG);
    assert_null(out);
    assert_non_null(strstr(err, "over the limit"));
    free(buf);

    env.version = 2;     /* another protocol version */
    len = nader__envelope__get_packed_size(&env);
    buf = malloc(len);
    nader__envelope__pack(&env, buf);
    assert_int_equal(wire_decode(buf, len, 1024, &out, err, sizeof err),
                     WIRE_EVERSION);
    assert_non_null(strstr(err, "protocol version 2"));
    free(buf);

    env.version = WIRE_PROTOCOL_VERSION;
    env.body_case = NADER__ENVELOPE__BODY__NOT_SET;
    len = nader__envelope__get_packed_size(&env);
    buf = malloc(len);
    nader__envelope__pack(&env, buf);
    assert_int_equal(wire_decode(buf, len, 1024, &out, err, sizeof err),
                     WIRE_EEMPTY);
    free(buf);

    srand(7);
    for (int t = 0; t < 2000; t++) {
        size_t n = (size_t)(rand() % 64);
        int rc;
        for (size_t i = 0; i < n; i++)
            junk[i] = (uint8_t)rand();
        rc = wire_decode(junk, n, 1024, &out, err, sizeof err);
        assert_true(rc == WIRE_OK || rc == WIRE_EMALFORMED ||
                    rc == WIRE_EVERSION || rc == WIRE_EEMPTY);
        wire_free(&out);
    }
}

/* JobRecord {id 42, state DONE, priority 5, spec {id 42, design_hash
 * "abc", dataset "cifar100", seed 888, epochs 12, width 16}, attempts 2,
 * failures 1, worker "w"}, as schema 1 wrote it.  Never change these
 * bytes: they are what old store files hold. */
static const uint8_t s_job_v1[] = {
    0x08, 0x2a, 0x10, 0x03, 0x18, 0x05, 0x22, 0x18, 0x08, 0x2a, 0x1a,
    0x03, 0x61, 0x62, 0x63, 0x32, 0x08, 0x63, 0x69, 0x66, 0x61, 0x72,
    0x31, 0x30, 0x30, 0x40, 0xf8, 0x06, 0x48, 0x0c, 0x50, 0x10, 0x28,
    0x02, 0x30, 0x01, 0x42, 0x01, 0x77};

static void test_schema1_bytes_still_decode(void **state)
{
    Nader__JobRecord *j;

    (void)state;
    j = nader__job_record__unpack(NULL, sizeof s_job_v1, s_job_v1);
    assert_non_null(j);
    assert_int_equal(j->id, 42);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_DONE);
    assert_int_equal(j->priority, 5);
    assert_int_equal(j->attempts, 2);
    assert_int_equal(j->failures, 1);
    assert_string_equal(j->worker, "w");
    assert_string_equal(j->spec->design_hash, "abc");
    assert_string_equal(j->spec->dataset, "cifar100");
    assert_int_equal(j->spec->seed, 888);
    assert_int_equal(j->spec->epochs, 12);
    assert_int_equal(j->spec->width, 16);
    /* Fields the bytes do not hold take their defaults. */
    assert_string_equal(j->spec->skeleton, "nb201");
    assert_int_equal(j->epoch, -1);
    assert_int_equal(j->checkpoint_epoch, -1);
    assert_false(j->has_finished_us);
    nader__job_record__free_unpacked(j, NULL);
}

/* Recipe.stem_scale came after schema 1: a recipe written before it (here
 * {batch 64, cells_per_stage 1}) reads as stem_scale 1, what it was
 * trained at, and a set one travels as field 10. */
static void test_recipe_stem_scale(void **state)
{
    static const uint8_t old[] = {0x10, 0x40, 0x40, 0x01};
    Nader__Recipe *r, rec = NADER__RECIPE__INIT;
    uint8_t buf[64];
    size_t n;

    (void)state;
    r = nader__recipe__unpack(NULL, sizeof old, old);
    assert_non_null(r);
    assert_int_equal(r->batch, 64);
    assert_int_equal(r->cells_per_stage, 1);
    assert_false(r->has_stem_scale);
    assert_int_equal(r->stem_scale, 1);
    nader__recipe__free_unpacked(r, NULL);

    assert_int_equal(rec.stem_scale, 1);
    rec.has_stem_scale = 1;
    rec.stem_scale = 4;
    n = nader__recipe__pack(&rec, buf);
    assert_int_equal(n, 2);
    assert_int_equal(buf[0], (10 << 3) | 0);
    assert_int_equal(buf[1], 4);
    r = nader__recipe__unpack(NULL, n, buf);
    assert_non_null(r);
    assert_int_equal(r->stem_scale, 4);
    nader__recipe__free_unpacked(r, NULL);
}

static void test_unknown_fields_are_tolerated(void **state)
{
    /* A record from a newer nader: field 99 (varint) and field 100
     * (bytes) that this build does not know. */
    uint8_t buf[sizeof s_job_v1 + 16];
    size_t n = sizeof s_job_v1;
    Nader__JobRecord *j;

    (void)state;
    memcpy(buf, s_job_v1, n);
    buf[n++] = 0x98; /* field 99, varint: (99 << 3) | 0 = 792 */
    buf[n++] = 0x06;
    buf[n++] = 0x07;
    buf[n++] = 0xa2; /* field 100, bytes: (100 << 3) | 2 = 802 */
    buf[n++] = 0x06;
    buf[n++] = 0x02;
    buf[n++] = 'h';
    buf[n++] = 'i';
    j = nader__job_record__unpack(NULL, n, buf);
    assert_non_null(j);
    assert_int_equal(j->id, 42);
    assert_string_equal(j->worker, "w");
    nader__job_record__free_unpacked(j, NULL);
}

static void test_store_records_round_trip(void **state)
{
    Nader__ExperienceRecord e = NADER__EXPERIENCE_RECORD__INIT, *e2;
    Nader__LlmExchangeRecord l = NADER__LLM_EXCHANGE_RECORD__INIT, *l2;
    Nader__InspirationRecord in = NADER__INSPIRATION_RECORD__INIT, *in2;
    Nader__DesignRecord d = NADER__DESIGN_RECORD__INIT, *d2;
    float emb[3] = {0.5f, -1.0f, 2.0f};
    uint8_t buf[4096];
    size_t n;

    (void)state;
    e.has_kind = 1;
    e.kind = NADER__EXPERIENCE_KIND__EXPERIENCE_RESEARCH;
    e.text = (char *)"wider kernels hurt at this budget";
    e.has_delta_acc = 1;
    e.delta_acc = -1.5;
    e.n_embedding = 3;
    e.embedding = emb;
    n = nader__experience_record__pack(&e, buf);
    e2 = nader__experience_record__unpack(NULL, n, buf);
    assert_non_null(e2);
    assert_int_equal(e2->kind, NADER__EXPERIENCE_KIND__EXPERIENCE_RESEARCH);
    assert_true(e2->delta_acc == -1.5);
    assert_int_equal(e2->n_embedding, 3);
    assert_true(e2->embedding[2] == 2.0f);
    nader__experience_record__free_unpacked(e2, NULL);

    l.agent = (char *)"modifier";
    l.has_prompt_tokens = 1;
    l.prompt_tokens = 1234;
    l.answer = (char *)"```\ncell\n```";
    n = nader__llm_exchange_record__pack(&l, buf);
    l2 = nader__llm_exchange_record__unpack(NULL, n, buf);
    assert_non_null(l2);
    assert_string_equal(l2->agent, "modifier");
    assert_int_equal(l2->prompt_tokens, 1234);
    nader__llm_exchange_record__free_unpacked(l2, NULL);

    in.text = (char *)"squeeze-and-excitation on the cell output";
    in.paper_id = (char *)"1709.01507";
    n = nader__inspiration_record__pack(&in, buf);
    in2 = nader__inspiration_record__unpack(NULL, n, buf);
    assert_non_null(in2);
    assert_string_equal(in2->paper_id, "1709.01507");
    nader__inspiration_record__free_unpacked(in2, NULL);

    d.hash = (char *)"0123456789abcdef0123456789abcdef";
    d.text = (char *)"cell";
    n = nader__design_record__pack(&d, buf);
    d2 = nader__design_record__unpack(NULL, n, buf);
    assert_non_null(d2);
    assert_string_equal(d2->skeleton, "nb201");
    nader__design_record__free_unpacked(d2, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_body_round_trips),
        cmocka_unit_test(test_small_bodies_round_trip),
        cmocka_unit_test(test_envelope_checks),
        cmocka_unit_test(test_schema1_bytes_still_decode),
        cmocka_unit_test(test_recipe_stem_scale),
        cmocka_unit_test(test_unknown_fields_are_tolerated),
        cmocka_unit_test(test_store_records_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
