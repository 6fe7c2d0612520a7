/*
 * test_safetensors.c - write, read back, and reject bad safetensors files.
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

#include "safetensors.h"

static char s_dir[128];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_dir, sizeof(s_dir), "/tmp/nader-test-st-XXXXXX");
    return mkdtemp(s_dir) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[200];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *s_path(const char *name)
{
    static char p[2][256];
    static int which;
    which ^= 1;
    snprintf(p[which], sizeof(p[which]), "%s/%s", s_dir, name);
    return p[which];
}

static float s_w[2 * 3 * 3 * 3], s_b[2], s_scalar[1];
static const int64_t s_wshape[4] = {2, 3, 3, 3}, s_bshape[1] = {2};

static void s_write_good(const char *path)
{
    const safetensors_entry_t t[3] = {
        {"stage0.1.n2.weight", 4, s_wshape, s_w},
        {"stage0.1.n2.bias", 1, s_bshape, s_b},
        {"step", 0, NULL, s_scalar},
    };
    const char *meta[] = {"format", "nader", "epoch", "3", NULL};
    char err[256];

    for (int i = 0; i < 54; i++)
        s_w[i] = (float)i * 0.25f - 3.0f;
    s_b[0] = 1.5f;
    s_b[1] = -2.0f;
    s_scalar[0] = 42.0f;
    assert_int_equal(safetensors_save(path, t, 3, meta, err, sizeof(err)),
                     0);
}

static void test_round_trip(void **state)
{
    const char *path = s_path("w.safetensors");
    safetensors_t *st = NULL;
    float w[54], b[2];
    char err[256];
    FILE *f;
    uint64_t hlen;

    (void)state;
    s_write_good(path);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(&hlen, 8, 1, f), 1);
    fclose(f);
    assert_int_equal(hlen % 8, 0);

    assert_int_equal(safetensors_load(path, &st, err, sizeof(err)), 0);
    assert_int_equal(safetensors_count(st), 3);
    assert_string_equal(safetensors_at(st, 0)->name, "stage0.1.n2.weight");
    assert_string_equal(safetensors_at(st, 2)->name, "step");
    assert_int_equal(safetensors_at(st, 2)->ndim, 0);
    assert_int_equal(safetensors_at(st, 2)->numel, 1);
    assert_string_equal(safetensors_meta(st, "epoch"), "3");
    assert_null(safetensors_meta(st, "nothing"));
    assert_int_equal(safetensors_read_f32(st, "stage0.1.n2.weight", 4,
                                          s_wshape, w, err, sizeof(err)),
                     0);
    assert_memory_equal(w, s_w, sizeof(w));
    assert_int_equal(safetensors_read_f32(st, "stage0.1.n2.bias", 1,
                                          s_bshape, b, err, sizeof(err)),
                     0);
    assert_memory_equal(b, s_b, sizeof(b));
    safetensors_destroy(&st);
    assert_null(st);
}

static void test_shape_and_name_errors(void **state)
{
    const char *path = s_path("w2.safetensors");
    const int64_t other[4] = {4, 3, 3, 3};
    safetensors_t *st = NULL;
    float w[108];
    char err[256];

    (void)state;
    s_write_good(path);
    assert_int_equal(safetensors_load(path, &st, err, sizeof(err)), 0);
    assert_true(safetensors_read_f32(st, "stage0.1.n2.weight", 4, other, w,
                                     err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "stage0.1.n2.weight has shape (2,3,3,3), "
                                "expected (4,3,3,3)"));
    assert_true(safetensors_read_f32(st, "stage9.n1.weight", 4, other, w,
                                     err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "no tensor stage9.n1.weight"));
    assert_non_null(strstr(err, "w2.safetensors"));
    safetensors_destroy(&st);
}

static void s_write_raw(const char *path, const char *header,
                        size_t data_bytes)
{
    FILE *f = fopen(path, "wb");
    uint64_t n = strlen(header);

    assert_non_null(f);
    fwrite(&n, 8, 1, f);
    fwrite(header, 1, n, f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc(0, f);
    fclose(f);
}

static void s_expect_load_error(const char *path, const char *what)
{
    safetensors_t *st = NULL;
    char err[256] = "";

    assert_true(safetensors_load(path, &st, err, sizeof(err)) < 0);
    assert_null(st);
    if (!strstr(err, what))
        fail_msg("error '%s' lacks '%s'", err, what);
}

static void test_bad_files(void **state)
{
    const char *path = s_path("bad.safetensors");
    safetensors_t *st = NULL;
    char err[256];
    float x[4];
    const int64_t shape[1] = {4};

    (void)state;
    s_expect_load_error(s_path("missing.safetensors"), "No such file");
    s_write_raw(path, "{", 0);
    s_expect_load_error(path, "bad header");
    s_write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],"
                      "\"data_offsets\":[0,16]}}", 12);
    s_expect_load_error(path, "truncated");
    s_write_raw(path, "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],"
                      "\"data_offsets\":[0,16]}}", 16);
    s_expect_load_error(path, "a has data_offsets");
    s_write_raw(path, "{\"a\":{\"dtype\":\"Q7\",\"shape\":[4],"
                      "\"data_offsets\":[0,16]}}", 16);
    s_expect_load_error(path, "dtype Q7");
    s_write_raw(path, "{\"a\":{\"shape\":[4]}}", 0);
    s_expect_load_error(path, "lacks dtype");

    /* a valid F16 tensor loads, but is not read as float32 */
    s_write_raw(path, "{\"a\":{\"dtype\":\"F16\",\"shape\":[4],"
                      "\"data_offsets\":[0,8]}}", 8);
    assert_int_equal(safetensors_load(path, &st, err, sizeof(err)), 0);
    assert_true(safetensors_read_f32(st, "a", 1, shape, x, err,
                                     sizeof(err)) < 0);
    assert_non_null(strstr(err, "a has dtype F16, expected F32"));
    safetensors_destroy(&st);

    /* tiny and absurd files */
    s_write_raw(path, "", 0);
    truncate(path, 4);
    s_expect_load_error(path, "not a safetensors file");
}

static void test_failed_write_keeps_old_file(void **state)
{
    const char *path = s_path("keep.safetensors");
    const int64_t shape[1] = {2};
    const float v[2] = {1, 2};
    const safetensors_entry_t dup[2] = {{"a", 1, shape, v},
                                        {"a", 1, shape, v}};
    safetensors_t *st = NULL;
    char err[256];

    (void)state;
    s_write_good(path);
    assert_true(safetensors_save(path, dup, 2, NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "repeated"));
    assert_true(safetensors_save("/nonexistent/dir/x.safetensors", dup, 1,
                                 NULL, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/dir/x.safetensors"));
    assert_int_equal(safetensors_load(path, &st, err, sizeof(err)), 0);
    assert_int_equal(safetensors_count(st), 3);
    safetensors_destroy(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_shape_and_name_errors),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_failed_write_keeps_old_file),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
