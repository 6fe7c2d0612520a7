/*
 * test_data.c - data sets: CIFAR files, manifests, splits, epoch plans and
 * the ImageNet16 pickle reader, on files generated in a temporary folder.
 *
 * The ImageNet16 pickles are written by /usr/bin/python3 with numpy
 * (tests/py/fixtures/make_imagenet16.py) at every pickle protocol, plus
 * the byte layout of Python 2's cPickle; those cases are skipped when
 * Python or numpy is missing.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "data.h"

static char s_root[256];

static int s_setup(void **state)
{
    (void)state;
    snprintf(s_root, sizeof(s_root), "/tmp/nader-test-data-XXXXXX");
    return mkdtemp(s_root) ? 0 : -1;
}

static int s_teardown(void **state)
{
    char cmd[300];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s_root);
    return system(cmd) == 0 ? 0 : -1;
}

/* A fresh sub-folder of the temporary root. */
static const char *s_dir(const char *name)
{
    static char path[512];
    char cmd[1200];

    snprintf(path, sizeof(path), "%s/%s", s_root, name);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s' && mkdir -p '%s'", path, path);
    assert_int_equal(system(cmd), 0);
    return path;
}

/* Pixel j of record k of file f: the first two say (f, k). */
static uint8_t s_pixel(int f, int k, int j)
{
    return j == 0 ? (uint8_t)f : j == 1 ? (uint8_t)k
                                        : (uint8_t)(f * 71 + k * 5 + j * 3);
}

static int s_label(int f, int k, int classes)
{
    return (f * 3 + k) % classes;
}

/* Write n CIFAR records; file id f; cifar100 adds a coarse byte. */
static void s_write_cifar(const char *dir, const char *name, int f, int n,
                          bool c100, int extra_bytes)
{
    char path[600];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "wb");
    assert_non_null(fp);
    for (int k = 0; k < n; k++) {
        uint8_t rec[3074];
        int at = 0;
        if (c100)
            rec[at++] = (uint8_t)(k % 20);
        rec[at++] = (uint8_t)s_label(f, k, c100 ? 100 : 10);
        for (int j = 0; j < 3072; j++)
            rec[at + j] = s_pixel(f, k, j);
        assert_int_equal(fwrite(rec, 1, (size_t)at + 3072, fp),
                         (size_t)at + 3072);
    }
    for (int i = 0; i < extra_bytes; i++)
        fputc(7, fp);
    fclose(fp);
}

static void s_write_text(const char *dir, const char *name, const char *text)
{
    char path[600];
    FILE *fp;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static const int s_counts[6] = {3, 4, 5, 6, 7, 9};

/* A CIFAR-10 folder with the record counts above and their manifest. */
static void s_make_cifar10(const char *dir, const int *counts)
{
    char manifest[400];

    for (int f = 0; f < 5; f++) {
        char name[32];
        snprintf(name, sizeof(name), "data_batch_%d.bin", f + 1);
        s_write_cifar(dir, name, f, counts[f], false, 0);
    }
    s_write_cifar(dir, "test_batch.bin", 5, counts[5], false, 0);
    snprintf(manifest, sizeof(manifest),
             "{\"records\": {\"data_batch_1.bin\": %d, "
             "\"data_batch_2.bin\": %d, \"data_batch_3.bin\": %d, "
             "\"data_batch_4.bin\": %d, \"data_batch_5.bin\": %d, "
             "\"test_batch.bin\": %d}}",
             counts[0], counts[1], counts[2], counts[3], counts[4],
             counts[5]);
    s_write_text(dir, "nader-data.json", manifest);
}

/* The files the last s_load() reported read, and the last one's path. */
static int s_files_read;
static char s_last_file[1024];

static void s_on_file(void *ctx, const char *path)
{
    (*(int *)ctx)++;
    snprintf(s_last_file, sizeof(s_last_file), "%s", path);
}

static int s_load(const char *dataset, const char *dir, const char *split,
                  data_set_t **d, char *err)
{
    data_options_t o = {dataset, dir, split, DATA_SPLIT_SEED, s_on_file,
                        &s_files_read};
    s_files_read = 0;
    s_last_file[0] = '\0';
    return data_set_load(&o, d, err, 512);
}

static bool s_ends_with(const char *s, const char *tail)
{
    size_t n = strlen(s), m = strlen(tail);
    return n >= m && strcmp(s + n - m, tail) == 0;
}

/* The (file, record) an image came from, by its first two pixels. */
static void s_which(const uint8_t *img, int *f, int *k)
{
    for (*f = 0; *f < 6; (*f)++)
        for (*k = 0; *k < 200; (*k)++)
            if (img[0] == s_pixel(*f, *k, 0) &&
                img[1] == s_pixel(*f, *k, 1) &&
                img[3071] == s_pixel(*f, *k, 3071))
                return;
    fail_msg("image matches no record");
}

/* ---------------------------------------------------------------- CIFAR */

static void test_cifar10_loads_in_order(void **state)
{
    const char *dir = s_dir("c10");
    data_set_t *d = NULL;
    char err[512] = "";
    int at = 0;

    (void)state;
    s_make_cifar10(dir, s_counts);
    assert_int_equal(s_load("cifar10", dir, NULL, &d, err), 0);
    /* each of the six files reported as it was read, the test file last */
    assert_int_equal(s_files_read, 6);
    assert_true(s_ends_with(s_last_file, "/test_batch.bin"));
    assert_int_equal(d->classes, 10);
    assert_int_equal(d->pad, 4);
    assert_int_equal(d->train.n, 25);
    assert_int_equal(d->valid.n, 9);
    assert_string_equal(d->valid.name, "test");
    assert_int_equal(d->test.n, 0);
    assert_true(d->mean[0] > 0.491f && d->mean[0] < 0.492f);
    assert_true(d->std[2] > 0.261f && d->std[2] < 0.262f);
    for (int f = 0; f < 5; f++)
        for (int k = 0; k < s_counts[f]; k++, at++) {
            const uint8_t *img = d->train.images + (size_t)at * 3072;
            assert_int_equal(d->train.labels[at], s_label(f, k, 10));
            for (int j = 0; j < 3072; j += 511)
                assert_int_equal(img[j], s_pixel(f, k, j));
        }
    for (int k = 0; k < 9; k++)
        assert_int_equal(d->valid.labels[k], s_label(5, k, 10));
    data_set_destroy(&d);
    assert_null(d);
}

static void test_cifar10_found_in_subfolder(void **state)
{
    char sub[600];
    data_set_t *d = NULL;
    char err[512] = "";
    const char *dir = s_dir("c10sub");

    (void)state;
    snprintf(sub, sizeof(sub), "%s/cifar-10-batches-bin", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    s_make_cifar10(sub, s_counts);
    assert_int_equal(data_set_probe("cifar10", dir), 1);
    assert_int_equal(data_set_probe("cifar100", dir), 0);
    assert_int_equal(data_set_probe("mnist", dir), -1);
    assert_int_equal(s_load("cifar10", dir, NULL, &d, err), 0);
    assert_int_equal(d->train.n, 25);
    assert_non_null(strstr(d->source, "cifar-10-batches-bin"));
    data_set_destroy(&d);
}

static void test_cifar10_valid_split_is_stratified(void **state)
{
    static const int counts[6] = {40, 40, 40, 40, 40, 10};
    const char *dir = s_dir("c10v");
    data_set_t *d = NULL, *d2 = NULL, *d3 = NULL;
    data_options_t o = {.dataset = "cifar10-valid", .dir = dir,
                        .split_seed = 5};
    char err[512] = "";
    int per_class[2][10] = {{0}};
    char seen[6][200] = {{0}};

    (void)state;
    s_make_cifar10(dir, counts);
    assert_int_equal(s_load("cifar10-valid", dir, NULL, &d, err), 0);
    assert_int_equal(d->train.n, 100);
    assert_int_equal(d->valid.n, 100);
    assert_int_equal(d->test.n, 10);
    for (int s = 0; s < 2; s++) {
        const data_split_t *sp = s ? &d->valid : &d->train;
        for (int i = 0; i < sp->n; i++) {
            int f, k;
            s_which(sp->images + (size_t)i * 3072, &f, &k);
            assert_true(f < 5);
            assert_int_equal(sp->labels[i], s_label(f, k, 10));
            assert_int_equal(seen[f][k], 0);
            seen[f][k] = 1;
            per_class[s][sp->labels[i]]++;
        }
    }
    for (int c = 0; c < 10; c++) {
        assert_int_equal(per_class[0][c], 10);
        assert_int_equal(per_class[1][c], 10);
    }
    assert_int_equal(s_load("cifar10-valid", dir, NULL, &d2, err), 0);
    assert_memory_equal(d->train.images, d2->train.images, 100 * 3072);
    assert_int_equal(data_set_load(&o, &d3, err, sizeof(err)), 0);
    assert_memory_not_equal(d->train.images, d3->train.images, 100 * 3072);
    data_set_destroy(&d);
    data_set_destroy(&d2);
    data_set_destroy(&d3);
}

static void s_expect_error(const char *dataset, const char *dir,
                           const char *split, const char *what1,
                           const char *what2)
{
    data_set_t *d = NULL;
    char err[512] = "";

    assert_true(s_load(dataset, dir, split, &d, err) < 0);
    assert_null(d);
    if (!strstr(err, what1) || (what2 && !strstr(err, what2)))
        fail_msg("error '%s' lacks '%s' / '%s'", err, what1,
                 what2 ? what2 : "");
}

static void test_cifar_missing_file(void **state)
{
    const char *dir = s_dir("missing");
    char path[600];

    (void)state;
    s_make_cifar10(dir, s_counts);
    snprintf(path, sizeof(path), "%s/data_batch_3.bin", dir);
    assert_int_equal(unlink(path), 0);
    s_expect_error("cifar10", dir, NULL, "data_batch_3.bin",
                   "No such file");
    s_expect_error("cifar10", "/nonexistent/nader", NULL, "/nonexistent",
                   "data_batch_1.bin");
}

static void test_cifar_truncated_file(void **state)
{
    const char *dir = s_dir("trunc");

    (void)state;
    s_make_cifar10(dir, s_counts);
    /* file 2 declared as 4 records but 3 records and a part written */
    s_write_cifar(dir, "data_batch_2.bin", 1, 3, false, 1000);
    s_expect_error("cifar10", dir, NULL, "data_batch_2.bin", "truncated");
}

static void test_cifar_too_large_file(void **state)
{
    const char *dir = s_dir("large");

    (void)state;
    s_make_cifar10(dir, s_counts);
    s_write_cifar(dir, "test_batch.bin", 5, 9, false, 17);
    s_expect_error("cifar10", dir, NULL, "test_batch.bin",
                   "expected 27657");
}

static void test_cifar_small_file_needs_manifest(void **state)
{
    const char *dir = s_dir("nomanifest");
    char path[600];

    (void)state;
    s_make_cifar10(dir, s_counts);
    snprintf(path, sizeof(path), "%s/nader-data.json", dir);
    assert_int_equal(unlink(path), 0);
    s_expect_error("cifar10", dir, NULL, "10000 records",
                   "nader-data.json");
}

static void test_cifar_bad_manifest(void **state)
{
    const char *dir = s_dir("badmanifest");

    (void)state;
    s_make_cifar10(dir, s_counts);
    s_write_text(dir, "nader-data.json", "{\"records\": {\"x\": -4}}");
    s_expect_error("cifar10", dir, NULL, "nader-data.json", "records.x");
    s_write_text(dir, "nader-data.json", "{\"records\": ");
    s_expect_error("cifar10", dir, NULL, "nader-data.json", "line");
}

static void test_cifar_label_out_of_range(void **state)
{
    const char *dir = s_dir("badlabel");
    char path[600];
    FILE *fp;

    (void)state;
    s_make_cifar10(dir, s_counts);
    snprintf(path, sizeof(path), "%s/data_batch_4.bin", dir);
    fp = fopen(path, "r+b");
    assert_non_null(fp);
    fseek(fp, 2 * 3073, SEEK_SET);
    fputc(10, fp);
    fclose(fp);
    s_expect_error("cifar10", dir, NULL, "data_batch_4.bin",
                   "record 2 has label 10");
}

static void test_cifar100_fine_labels_and_halves(void **state)
{
    const char *dir = s_dir("c100");
    data_set_t *d = NULL;
    char err[512] = "";

    (void)state;
    s_write_cifar(dir, "train.bin", 0, 30, true, 0);
    s_write_cifar(dir, "test.bin", 5, 200, true, 0);
    s_write_text(dir, "nader-data.json",
                 "{\"records\": {\"train.bin\": 30, \"test.bin\": 200}}");
    assert_int_equal(s_load("cifar100", dir, NULL, &d, err), 0);
    assert_int_equal(d->classes, 100);
    assert_int_equal(d->train.n, 30);
    for (int k = 0; k < 30; k++)
        assert_int_equal(d->train.labels[k], s_label(0, k, 100));
    assert_string_equal(d->valid.name, "x-valid");
    assert_string_equal(d->test.name, "x-test");
    assert_int_equal(d->valid.n, 100);
    assert_int_equal(d->test.n, 100);
    assert_true(d->mean[0] > 0.507f && d->mean[0] < 0.508f);
    data_set_destroy(&d);
}

static void test_split_file(void **state)
{
    static const int counts[6] = {4, 4, 4, 4, 4, 5};
    const char *dir = s_dir("splitfile");
    char split[600];
    data_set_t *d = NULL;
    char err[512] = "";

    (void)state;
    s_make_cifar10(dir, counts);
    snprintf(split, sizeof(split), "%s/cifar-split.txt", dir);
    s_write_text(dir, "cifar-split.txt",
                 "{\"train\": [\"int\", [19, 0, 5]], "
                 "\"valid\": [\"int\", [1, 2, 3, 4]]}");
    assert_int_equal(s_load("cifar10-valid", dir, split, &d, err), 0);
    assert_int_equal(d->train.n, 3);
    assert_int_equal(d->valid.n, 4);
    /* index 19 is record 3 of file 4 (0-based), 5 is record 1 of 1 */
    assert_int_equal(d->train.labels[0], s_label(4, 3, 10));
    assert_int_equal(d->train.images[0], s_pixel(4, 3, 0));
    assert_int_equal(d->train.labels[2], s_label(1, 1, 10));
    data_set_destroy(&d);

    s_write_text(dir, "cifar-split.txt",
                 "{\"train\": [0, 20], \"valid\": [1]}");
    s_expect_error("cifar10-valid", dir, split, "cifar-split.txt",
                   "train[1] is not an index in 0..19");
    s_write_text(dir, "cifar-split.txt",
                 "{\"train\": [0, 3], \"valid\": [3]}");
    s_expect_error("cifar10-valid", dir, split, "index 3 appears twice",
                   NULL);
    s_write_text(dir, "cifar-split.txt", "{\"train\": [0, 3]}");
    s_expect_error("cifar10-valid", dir, split, "no list \"valid\"", NULL);
}

static void test_unknown_dataset(void **state)
{
    (void)state;
    s_expect_error("mnist", "/tmp", NULL, "unknown data set 'mnist'", NULL);
    assert_int_equal(data_set_describe("mnist", NULL, NULL, NULL), -1);
}

/* ----------------------------------------------------------- epoch plan */

static void test_epoch_plan(void **state)
{
    enum { N = 1000 };
    static int32_t a[N], b[N];
    static int8_t sx[N], sy[N], sx2[N], sy2[N];
    static uint8_t fl[N], fl2[N];
    char seen[N] = {0};
    int flips = 0, moved = 0, hist[9] = {0};

    (void)state;
    data_epoch_plan(777, 3, N, 4, a, sx, sy, fl);
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        assert_int_equal(seen[a[i]], 0);
        seen[a[i]] = 1;
        assert_true(sx[i] >= -4 && sx[i] <= 4);
        assert_true(sy[i] >= -4 && sy[i] <= 4);
        hist[sx[i] + 4]++;
        flips += fl[i];
        moved += a[i] != i;
    }
    for (int v = 0; v < 9; v++)
        assert_true(hist[v] > 60);
    assert_true(flips > 400 && flips < 600);
    assert_true(moved > 900);
    data_epoch_plan(777, 3, N, 4, b, sx2, sy2, fl2);
    assert_memory_equal(a, b, sizeof(a));
    assert_memory_equal(sx, sx2, sizeof(sx));
    assert_memory_equal(fl, fl2, sizeof(fl));
    data_epoch_plan(777, 4, N, 4, b, sx2, sy2, fl2);
    assert_memory_not_equal(a, b, sizeof(a));
    data_epoch_plan(888, 3, N, 4, b, sx2, sy2, fl2);
    assert_memory_not_equal(a, b, sizeof(a));
    data_epoch_plan(888, 3, N, 0, b, sx2, sy2, fl2);
    for (int i = 0; i < N; i++)
        assert_true(sx2[i] == 0 && sy2[i] == 0 && fl2[i] == 0);
}

/* ----------------------------------------------------------- ImageNet16 */

static bool s_have_numpy(void)
{
    return access("/usr/bin/python3", X_OK) == 0 &&
           system("/usr/bin/python3 -c 'import numpy' 2>/dev/null") == 0;
}

static int s_in16_label(int b, int k)
{
    return k % 10 == 9 ? 700 : (b * 7 + k * 5) % 240 + 1;
}

static void s_check_imagenet16(const char *dir, int per_batch, int val)
{
    data_set_t *d = NULL;
    char err[512] = "";
    int at = 0, n_val = 0;

    assert_int_equal(data_set_probe("imagenet16-120", dir), 1);
    if (s_load("imagenet16-120", dir, NULL, &d, err) != 0)
        fail_msg("%s", err);
    assert_int_equal(s_files_read, 11);
    assert_true(s_ends_with(s_last_file, "val_data"));
    assert_int_equal(d->classes, 120);
    assert_int_equal(d->h, 16);
    assert_int_equal(d->pad, 2);
    for (int b = 0; b < 10; b++)
        for (int k = 0; k < per_batch; k++) {
            int label = s_in16_label(b, k);
            if (label > 120)
                continue;
            const uint8_t *img = d->train.images + (size_t)at * 768;
            assert_true(at < d->train.n);
            assert_int_equal(d->train.labels[at], label - 1);
            for (int j = 0; j < 768; j += 97)
                assert_int_equal(img[j], (b * 97 + k * 13 + j) & 255);
            at++;
        }
    assert_int_equal(d->train.n, at);
    for (int k = 0; k < val; k++)
        n_val += s_in16_label(10, k) <= 120;
    assert_int_equal(d->valid.n + d->test.n, n_val);
    assert_true(d->valid.n - d->test.n <= 120 && d->valid.n > 0);
    data_set_destroy(&d);
}

static void test_imagenet16_pickles(void **state)
{
    static const char *const protocols[] = {"0", "2", "4", "5", "py2"};

    (void)state;
    if (!s_have_numpy()) {
        skip();
        return;
    }
    for (size_t i = 0; i < 5; i++) {
        char cmd[1024], name[32];
        const char *dir;
        snprintf(name, sizeof(name), "in16-%s", protocols[i]);
        dir = s_dir(name);
        snprintf(cmd, sizeof(cmd), "/usr/bin/python3 "
                 "tests/py/fixtures/make_imagenet16.py '%s' --protocol %s "
                 "--per-batch 40 --val 300 %s", dir, protocols[i],
                 i == 2 ? "--flat" : "");
        assert_int_equal(system(cmd), 0);
        s_check_imagenet16(dir, 40, 300);
    }
}

static uint8_t *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(*len);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}

static void test_imagenet16_bad_pickles(void **state)
{
    const char *protocols[] = {"2", "py2"};
    data_pickle_batch_t b;
    char err[512];

    (void)state;
    assert_true(data_pickle_read("/nonexistent/val_data", &b, err,
                                 sizeof(err)) < 0);
    assert_non_null(strstr(err, "/nonexistent/val_data"));
    if (!s_have_numpy()) {
        skip();
        return;
    }
    for (int p = 0; p < 2; p++) {
        char cmd[1024], path[600], name[32];
        const char *dir;
        uint8_t *buf;
        size_t len;

        snprintf(name, sizeof(name), "in16bad-%s", protocols[p]);
        dir = s_dir(name);
        snprintf(cmd, sizeof(cmd), "/usr/bin/python3 "
                 "tests/py/fixtures/make_imagenet16.py '%s' --protocol %s "
                 "--per-batch 12 --val 12 --flat", dir, protocols[p]);
        assert_int_equal(system(cmd), 0);
        snprintf(path, sizeof(path), "%s/train_data_batch_1", dir);
        buf = s_slurp(path, &len);
        assert_int_equal(data_pickle_parse(buf, len, "x", &b, err,
                                           sizeof(err)), 0);
        assert_int_equal(b.n, 12);
        data_pickle_batch_free(&b);
        /* every truncation is an error, never a crash */
        for (size_t cut = 0; cut < len; cut += 1 + cut / 9) {
            assert_true(data_pickle_parse(buf, cut, "x", &b, err,
                                          sizeof(err)) < 0);
            assert_non_null(strstr(err, "x: byte"));
        }
        /* flipped bytes: an error or a consistent batch */
        for (size_t at = 0; at < len; at += 1 + at / 5) {
            buf[at] ^= 0x5a;
            if (data_pickle_parse(buf, len, "x", &b, err, sizeof(err)) ==
                0) {
                assert_true(b.n >= 0);
                data_pickle_batch_free(&b);
            }
            buf[at] ^= 0x5a;
        }
        free(buf);
        /* the data set names a truncated file */
        assert_int_equal(truncate(path, 300), 0);
        s_expect_error("imagenet16-120", dir, NULL, "train_data_batch_1",
                       "truncated");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cifar10_loads_in_order),
        cmocka_unit_test(test_cifar10_found_in_subfolder),
        cmocka_unit_test(test_cifar10_valid_split_is_stratified),
        cmocka_unit_test(test_cifar_missing_file),
        cmocka_unit_test(test_cifar_truncated_file),
        cmocka_unit_test(test_cifar_too_large_file),
        cmocka_unit_test(test_cifar_small_file_needs_manifest),
        cmocka_unit_test(test_cifar_bad_manifest),
        cmocka_unit_test(test_cifar_label_out_of_range),
        cmocka_unit_test(test_cifar100_fine_labels_and_halves),
        cmocka_unit_test(test_split_file),
        cmocka_unit_test(test_unknown_dataset),
        cmocka_unit_test(test_epoch_plan),
        cmocka_unit_test(test_imagenet16_pickles),
        cmocka_unit_test(test_imagenet16_bad_pickles),
    };
    return cmocka_run_group_tests(tests, s_setup, s_teardown);
}
