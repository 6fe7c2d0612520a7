/*
 * test_idmap.c - the coordinator's hash map against a plain model: many
 * random puts, gets and deletes of u64 and byte-string keys (which share
 * slots), growth, and deletion that keeps later probes reachable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "idmap.h"

#define N 20000

static int s_count_cb(void *ctx, void *v)
{
    (void)v;
    (*(size_t *)ctx)++;
    return 0;
}

static void test_against_a_model(void **state)
{
    idmap_t *m = idmap_new();
    static void *model[N];       /* key i -> value or NULL */
    static void *bmodel[N];      /* byte key "k<i>" -> value or NULL */
    size_t live = 0, seen = 0;
    unsigned seed = 1;

    (void)state;
    assert_non_null(m);
    for (int step = 0; step < 200000; step++) {
        int k = rand_r(&seed) % N, op = rand_r(&seed) % 3;
        bool bytes = rand_r(&seed) & 1;
        void **slot = bytes ? &bmodel[k] : &model[k];
        char key[16];
        int klen = snprintf(key, sizeof key, "k%d", k);
        void *v = (void *)(uintptr_t)(step + 1);

        if (op == 0) {
            assert_int_equal(bytes ? idmap_put_bytes(m, key, (size_t)klen, v)
                                   : idmap_put(m, (uint64_t)k, v), 0);
            live += *slot == NULL;
            *slot = v;
        } else if (op == 1) {
            void *got = bytes ? idmap_get_bytes(m, key, (size_t)klen)
                              : idmap_get(m, (uint64_t)k);
            assert_ptr_equal(got, *slot);
        } else {
            void *got = bytes ? idmap_del_bytes(m, key, (size_t)klen)
                              : idmap_del(m, (uint64_t)k);
            assert_ptr_equal(got, *slot);
            live -= *slot != NULL;
            *slot = NULL;
        }
        assert_int_equal(idmap_count(m), live);
    }
    for (int k = 0; k < N; k++) {
        char key[16];
        int klen = snprintf(key, sizeof key, "k%d", k);
        assert_ptr_equal(idmap_get(m, (uint64_t)k), model[k]);
        assert_ptr_equal(idmap_get_bytes(m, key, (size_t)klen), bmodel[k]);
    }
    idmap_each(m, s_count_cb, &seen);
    assert_int_equal(seen, live);
    assert_null(idmap_get_bytes(m, "x", 300));
    idmap_destroy(&m);
    assert_null(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_a_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
