/*
 * test_datagen.c - the generated data set: the CIFAR-10 file layout
 * with a manifest that says what it is, every class present, the same
 * bytes from the same seed, and clear errors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "datagen.h"
#include "llm_fixture.h"
#include "text.h"

static void test_layout_and_manifest(void **state)
{
    char dir[256], path[320], err[256];
    size_t len;
    (void)state;

    assert_int_equal(fixture_tmpdir(dir, sizeof dir), 0);
    assert_false(datagen_present(dir));
    assert_int_equal(datagen_cifar10(dir, 103, 20, 7, err, sizeof err), 0);
    assert_true(datagen_present(dir));
    int total = 0, counts[10] = {0};
    for (int i = 1; i <= 5; i++) {
        snprintf(path, sizeof path, "%s/data_batch_%d.bin", dir, i);
        char *b = text_file_read(path, 0, &len, err, sizeof err);
        assert_non_null(b);
        assert_int_equal(len % 3073, 0);
        for (size_t r = 0; r < len / 3073; r++) {
            unsigned char label = (unsigned char)b[r * 3073];
            assert_true(label < 10);
            counts[label]++;
        }
        total += (int)(len / 3073);
        free(b);
    }
    assert_int_equal(total, 103);
    for (int c = 0; c < 10; c++)
        assert_true(counts[c] >= 10);

    snprintf(path, sizeof path, "%s/nader-data.json", dir);
    json_t *m = json_load_file(path, 0, NULL);
    assert_non_null(m);
    assert_non_null(
        strstr(json_string_value(json_object_get(m, "note")), "not CIFAR-10"));
    json_t *rec = json_object_get(m, "records");
    assert_int_equal(json_integer_value(json_object_get(rec, "test_batch.bin")),
                     20);
    assert_int_equal(
        json_integer_value(json_object_get(rec, "data_batch_1.bin")), 21);
    json_decref(m);

    /* The same seed, the same bytes; another seed, others. */
    char dir2[256];
    assert_int_equal(fixture_tmpdir(dir2, sizeof dir2), 0);
    assert_int_equal(datagen_cifar10(dir2, 103, 20, 7, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir);
    char *a = text_file_read(path, 0, &len, err, sizeof err);
    snprintf(path, sizeof path, "%s/test_batch.bin", dir2);
    size_t len2;
    char *b = text_file_read(path, 0, &len2, err, sizeof err);
    assert_int_equal(len, len2);
    assert_memory_equal(a, b, len);
    free(b);
    assert_int_equal(datagen_cifar10(dir2, 103, 20, 8, err, sizeof err), 0);
    b = text_file_read(path, 0, &len2, err, sizeof err);
    assert_true(memcmp(a, b, len) != 0);
    free(a);
    free(b);
    fixture_rmdir(dir);
    fixture_rmdir(dir2);
}

static void test_errors(void **state)
{
    char err[256];
    (void)state;

    assert_int_equal(datagen_cifar10("/tmp", 3, 1, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "at least 5"));
    assert_int_equal(
        datagen_cifar10("/nonexistent/x/y", 10, 2, 1, err, sizeof err), -1);
    assert_non_null(strstr(err, "/nonexistent/x/y"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_and_manifest),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
