/*
 * test_store.c - the LMDB store: typed records in and out, the active
 * index kept in step with job states, sequences, ordered scans, readers
 * beside the writer, read-only opening, the schema check, growing the
 * map, and a full map that fails cleanly and changes nothing.
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

#include "store.h"

static char s_dir[64];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof s_dir, "/tmp/nader-store-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[128];

    (void)state;
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    return system(cmd);
}

static store_t *s_open(int64_t map, int64_t max)
{
    store_options_t o = {map, max, false};
    store_t *s = NULL;
    char err[512];

    assert_int_equal(store_open(s_dir, &o, &s, err, sizeof err), STORE_OK);
    return s;
}

static void s_job(store_txn_t *t, uint64_t id, Nader__JobState st)
{
    Nader__JobRecord j = NADER__JOB_RECORD__INIT;
    Nader__JobSpec sp = NADER__JOB_SPEC__INIT;

    j.has_id = j.has_state = 1;
    j.id = id;
    j.state = st;
    sp.design_hash = (char *)"feed";
    j.spec = &sp;
    assert_int_equal(store_job_put(t, &j), STORE_OK);
}

static int s_count_visit(void *ctx, const void *k, size_t kl, const void *v,
                         size_t vl)
{
    (void)k;
    (void)kl;
    (void)v;
    (void)vl;
    (*(int *)ctx)++;
    return 0;
}

static uint64_t s_last;
static int s_order_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    const Nader__JobRecord *j = (const Nader__JobRecord *)m;

    (void)ctx;
    assert_true(id > s_last);
    assert_int_equal(j->id, id);
    s_last = id;
    return 0;
}

static void test_records_and_active_index(void **state)
{
    store_t *s = s_open(0, 0);
    store_txn_t *t;
    Nader__JobRecord *j = NULL;
    Nader__ResultRecord rr = NADER__RESULT_RECORD__INIT, *rr2 = NULL;
    Nader__Result res = NADER__RESULT__INIT;
    Nader__ExperienceRecord e = NADER__EXPERIENCE_RECORD__INIT;
    char err[512];
    int n = 0;
    uint64_t id, count;

    (void)state;
    assert_int_equal(store_begin(s, true, &t, err, sizeof err), STORE_OK);
    for (uint64_t i = 1; i <= 300; i++)
        s_job(t, i * 7, i % 3 ? NADER__JOB_STATE__JOB_QUEUED
                              : NADER__JOB_STATE__JOB_DONE);
    res.has_job = 1;
    res.job = 21;
    rr.has_job = 1;
    rr.job = 21;
    rr.result = &res;
    rr.design_hash = (char *)"feed";
    assert_int_equal(store_result_put(t, &rr), STORE_OK);
    e.text = (char *)"a lesson";
    assert_int_equal(store_experience_add(t, &e), STORE_OK);
    assert_int_equal(e.id, 1);
    e.id = 0;
    assert_int_equal(store_experience_add(t, &e), STORE_OK);
    assert_int_equal(e.id, 2);
    assert_int_equal(store_next_id(t, STORE_JOBS, &id), STORE_OK);
    assert_int_equal(id, 1);
    assert_int_equal(store_next_id(t, STORE_JOBS, &id), STORE_OK);
    assert_int_equal(id, 2);
    assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);
    assert_null(t);

    assert_int_equal(store_begin(s, false, &t, err, sizeof err), STORE_OK);
    assert_int_equal(store_count(t, STORE_ACTIVE, &count), STORE_OK);
    assert_int_equal(count, 200);
    assert_int_equal(store_scan(t, STORE_ACTIVE, NULL, 0, s_count_visit, &n),
                     0);
    assert_int_equal(n, 200);
    s_last = 0;
    assert_int_equal(store_scan_msg(t, STORE_JOBS, 0,
                                    &nader__job_record__descriptor,
                                    s_order_visit, NULL), 0);
    assert_int_equal(s_last, 2100);
    assert_int_equal(store_job_get(t, 14, &j), STORE_OK);
    assert_int_equal(j->state, NADER__JOB_STATE__JOB_QUEUED);
    assert_string_equal(j->spec->design_hash, "feed");
    nader__job_record__free_unpacked(j, NULL);
    assert_int_equal(store_job_get(t, 15, &j), STORE_NOTFOUND);
    assert_null(j);
    assert_int_equal(store_result_get(t, 21, &rr2), STORE_OK);
    assert_int_equal(rr2->result->job, 21);
    nader__result_record__free_unpacked(rr2, NULL);
    store_abort(&t);

    /* A job finishing leaves the active index. */
    assert_int_equal(store_begin(s, true, &t, err, sizeof err), STORE_OK);
    s_job(t, 14, NADER__JOB_STATE__JOB_FAILED);
    assert_int_equal(store_count(t, STORE_ACTIVE, &count), STORE_OK);
    assert_int_equal(count, 199);
    store_abort(&t);   /* ...and an abort leaves nothing behind */
    assert_int_equal(store_begin(s, false, &t, err, sizeof err), STORE_OK);
    assert_int_equal(store_count(t, STORE_ACTIVE, &count), STORE_OK);
    assert_int_equal(count, 200);
    store_abort(&t);
    store_close(&s);
    assert_null(s);
}

static void test_reopen_read_only_and_schema(void **state)
{
    store_t *s = s_open(0, 0), *ro = NULL;
    store_options_t o = {0, 0, true};
    store_txn_t *t;
    Nader__StoreMeta m = NADER__STORE_META__INIT, *m2 = NULL;
    char err[512];

    (void)state;
    assert_int_equal(store_begin(s, true, &t, err, sizeof err), STORE_OK);
    s_job(t, 1, NADER__JOB_STATE__JOB_QUEUED);
    assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);

    /* A reader process (here: a second read-only handle) sees it. */
    assert_int_equal(store_open(s_dir, &o, &ro, err, sizeof err), STORE_OK);
    assert_int_equal(store_begin(ro, false, &t, err, sizeof err), STORE_OK);
    assert_int_equal(store_meta_get(t, &m2), STORE_OK);
    assert_int_equal(m2->schema, STORE_SCHEMA);
    nader__store_meta__free_unpacked(m2, NULL);
    store_abort(&t);
    assert_int_equal(store_begin(ro, true, &t, err, sizeof err),
                     STORE_EREADONLY);
    store_close(&ro);

    /* A store written by a newer nader is refused, with a reason. */
    assert_int_equal(store_begin(s, true, &t, err, sizeof err), STORE_OK);
    m.has_schema = 1;
    m.schema = STORE_SCHEMA + 1;
    assert_int_equal(store_put_msg(t, STORE_META, "schema", 6, &m.base),
                     STORE_OK);
    assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);
    store_close(&s);
    assert_int_equal(store_open(s_dir, NULL, &s, err, sizeof err),
                     STORE_ESCHEMA);
    assert_null(s);
    assert_non_null(strstr(err, "newer nader"));

    /* Not a store at all. */
    assert_int_equal(store_open("/nonexistent/store", &o, &s, err,
                                sizeof err), STORE_ESCHEMA);
    assert_non_null(strstr(err, "/nonexistent/store"));
}

static void test_map_grows_then_fills_cleanly(void **state)
{
    store_t *s = s_open(1 << 20, 8 << 20);
    store_txn_t *t;
    static uint8_t blob[200000];
    char err[512];
    uint64_t count = 0;
    int rc = STORE_OK, written = 0;

    (void)state;
    memset(blob, 0xab, sizeof blob);
    /* One blob per transaction: the map doubles from 1 MiB up to 8. */
    for (int i = 0; i < 100 && rc == STORE_OK; i++) {
        uint8_t key[8];
        assert_int_equal(store_begin(s, true, &t, err, sizeof err),
                         STORE_OK);
        store_key_u64((uint64_t)i + 1, key);
        rc = store_put_raw(t, STORE_CHECKPOINTS, key, 8, blob, sizeof blob);
        if (rc == STORE_OK) {
            assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);
            written++;
        } else {
            assert_int_equal(rc, STORE_EFULL);
            assert_non_null(strstr(store_txn_error(t), "map is full"));
            store_abort(&t);
        }
    }
    assert_true(store_map_size(s) == 8 << 20);
    assert_true(written > 20);     /* 1 MiB alone would hold 4 */
    assert_int_equal(rc, STORE_EFULL);
    /* At the maximum, a write that does not fit fails and changes
     * nothing, and a small one still goes in. */
    assert_int_equal(store_begin(s, true, &t, err, sizeof err), STORE_OK);
    {
        uint8_t key[8];
        store_key_u64(999, key);
        assert_int_equal(store_put_raw(t, STORE_CHECKPOINTS, key, 8, blob,
                                       sizeof blob), STORE_EFULL);
        assert_non_null(strstr(store_txn_error(t), "map_size_max"));
        store_abort(&t);
        assert_int_equal(store_begin(s, true, &t, err, sizeof err), 0);
        assert_int_equal(store_put_raw(t, STORE_CHECKPOINTS, key, 8, blob,
                                       100), STORE_OK);
        assert_int_equal(store_commit(&t, err, sizeof err), STORE_OK);
        written++;
    }
    assert_int_equal(store_begin(s, false, &t, err, sizeof err), STORE_OK);
    assert_int_equal(store_count(t, STORE_CHECKPOINTS, &count), STORE_OK);
    assert_int_equal(count, (uint64_t)written);
    store_abort(&t);
    store_close(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_records_and_active_index,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_reopen_read_only_and_schema,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_map_grows_then_fills_cleanly,
                                        s_setup, s_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
