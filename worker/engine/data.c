/*
 * data.c - load CIFAR-10, CIFAR-100 and ImageNet16-120 and cut the splits
 * of spec/training-protocol.md (see data.h).
 *
 * Files are read straight into the (N, 3, H, W) byte layout that the
 * backends consume: a CIFAR record already stores its three colour planes
 * in that order, so loading is a copy per record.  The sizes of CIFAR
 * files are checked against their record counts before anything is read;
 * the counts are the real ones (10,000 per CIFAR-10 batch) unless a
 * manifest, nader-data.json in the same folder, declares others.
 *
 * Splits come from a NAS-Bench-201 index list when one is given, and
 * otherwise from a class-stratified shuffle seeded by split_seed, so that
 * each half keeps the class balance of the original (as the published
 * lists do) and the same seed always gives the same halves.
 */
#include "data.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "rng.h"

#define DATA_MANIFEST "nader-data.json"

typedef enum data_kind {
    DATA_CIFAR10,
    DATA_CIFAR10_VALID,
    DATA_CIFAR100,
    DATA_IMAGENET16_120
} data_kind_t;

typedef struct data_info {
    const char *name;
    data_kind_t kind;
    int classes, h, w, pad;
    float mean[3], std[3];    /* x255, as the spec writes them */
} data_info_t;

static const data_info_t s_sets[] = {
    {"cifar10", DATA_CIFAR10, 10, 32, 32, 4,
     {125.3f, 123.0f, 113.9f}, {63.0f, 62.1f, 66.7f}},
    {"cifar10-valid", DATA_CIFAR10_VALID, 10, 32, 32, 4,
     {125.3f, 123.0f, 113.9f}, {63.0f, 62.1f, 66.7f}},
    {"cifar100", DATA_CIFAR100, 100, 32, 32, 4,
     {129.3f, 124.1f, 112.4f}, {68.2f, 65.4f, 70.4f}},
    {"imagenet16-120", DATA_IMAGENET16_120, 120, 16, 16, 2,
     {122.68f, 116.66f, 104.01f}, {63.22f, 61.26f, 65.09f}},
};

static void s_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (!err || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static const data_info_t *s_info(const char *name)
{
    for (size_t i = 0; i < sizeof(s_sets) / sizeof(s_sets[0]); i++)
        if (name && strcmp(s_sets[i].name, name) == 0)
            return &s_sets[i];
    return NULL;
}

int data_set_describe(const char *dataset, int *classes, int *h, int *w)
{
    const data_info_t *info = s_info(dataset);

    if (!info)
        return -1;
    if (classes)
        *classes = info->classes;
    if (h)
        *h = info->h;
    if (w)
        *w = info->w;
    return 0;
}

/* ------------------------------------------------------------ utilities */

static bool s_is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* out = a/b; a path too long for out is cut (and then not found). */
static void s_join(char *out, size_t len, const char *a, const char *b)
{
    if (snprintf(out, len, "%s/%s", a, b) >= (int)len)
        out[len - 1] = 0;
}

/* Uniform integer in [0, k) from the stream. */
static uint32_t s_below(uint64_t *state, uint32_t k)
{
    unsigned __int128 r = (unsigned __int128)engine_rng_next(state) * k;
    return (uint32_t)(r >> 64);
}

static void s_split_free(data_split_t *s)
{
    free(s->images);
    free(s->labels);
    s->images = NULL;
    s->labels = NULL;
    s->n = 0;
}

static int s_split_alloc(data_split_t *s, const char *name, int n, int h,
                         int w, char *err, size_t errlen)
{
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->n = n;
    s->h = h;
    s->w = w;
    s->images = malloc((size_t)(n > 0 ? n : 1) * 3 * h * w);
    s->labels = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (!s->images || !s->labels) {
        s_split_free(s);
        s_err(err, errlen, "out of memory for the %s split (%d images)",
              name, n);
        return -ENOMEM;
    }
    return 0;
}

/* dst = the images of src at the given indices (in that order). */
static int s_split_gather(data_split_t *dst, const char *name,
                          const data_split_t *src, const int32_t *idx, int n,
                          char *err, size_t errlen)
{
    size_t img = (size_t)3 * src->h * src->w;
    int rc = s_split_alloc(dst, name, n, src->h, src->w, err, errlen);

    if (rc)
        return rc;
    for (int i = 0; i < n; i++) {
        memcpy(dst->images + (size_t)i * img,
               src->images + (size_t)idx[i] * img, img);
        dst->labels[i] = src->labels[idx[i]];
    }
    return 0;
}

/* ------------------------------------------------------------- manifest */

/*
 * Read DIR/nader-data.json when it exists.  *records gets the "records"
 * object (a new reference) or NULL when there is no manifest.
 */
static int s_manifest_load(const char *dir, json_t **records, char *err,
                           size_t errlen)
{
    char path[1024];
    json_error_t je;
    json_t *root, *rec;
    const char *key;
    json_t *val;

    *records = NULL;
    s_join(path, sizeof(path), dir, DATA_MANIFEST);
    if (!s_is_file(path))
        return 0;
    root = json_load_file(path, 0, &je);
    if (!root) {
        s_err(err, errlen, "%s: line %d: %s", path, je.line, je.text);
        return -EINVAL;
    }
    rec = json_object_get(root, "records");
    if (!json_is_object(rec)) {
        s_err(err, errlen, "%s: expected an object \"records\" mapping "
              "file names to record counts", path);
        json_decref(root);
        return -EINVAL;
    }
    json_object_foreach(rec, key, val)
    {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) > 100000000) {
            s_err(err, errlen, "%s: records.%s must be a non-negative "
                  "integer", path, key);
            json_decref(root);
            return -EINVAL;
        }
    }
    *records = json_incref(rec);
    json_decref(root);
    return 0;
}

/* The record count of file name: the manifest's, else the real one. */
static int s_manifest_count(json_t *records, const char *name, int real,
                            bool *declared)
{
    json_t *v = records ? json_object_get(records, name) : NULL;

    *declared = v != NULL;
    return v ? (int)json_integer_value(v) : real;
}

/* ---------------------------------------------------------------- CIFAR */

typedef struct cifar_file {
    const char *name;
    int records;              /* real count */
} cifar_file_t;

/*
 * Read one CIFAR binary file of `records` records into img/lab.  A record
 * is `skip` label bytes before the class byte at offset label_at, then
 * 3072 pixel bytes.
 */
static int s_cifar_read(const char *path, int records, bool declared,
                        int rec_bytes, int label_at, int classes,
                        uint8_t *img, int32_t *lab, char *err, size_t errlen)
{
    struct stat st;
    FILE *f;
    long long expect = (long long)records * rec_bytes;
    uint8_t *buf = NULL;
    int rc = 0, chunk = 1000;

    f = fopen(path, "rb");
    if (!f) {
        s_err(err, errlen, "%s: %s (expected %d records of %d bytes)", path,
              strerror(errno), records, rec_bytes);
        return -ENOENT;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        s_err(err, errlen, "%s: not a regular file", path);
        rc = -EINVAL;
        goto out;
    }
    if ((long long)st.st_size != expect) {
        const char *how = (long long)st.st_size < expect ? "truncated: "
                                                         : "";
        s_err(err, errlen, "%s: %s%lld bytes, expected %lld (%d records "
              "of %d bytes%s)", path, how, (long long)st.st_size, expect,
              records, rec_bytes,
              declared ? ", as its " DATA_MANIFEST " says"
                       : "; a smaller file must be declared in "
                         DATA_MANIFEST);
        rc = -EINVAL;
        goto out;
    }
    buf = malloc((size_t)chunk * rec_bytes);
    if (!buf) {
        s_err(err, errlen, "%s: out of memory", path);
        rc = -ENOMEM;
        goto out;
    }
    for (int at = 0; at < records; at += chunk) {
        int m = records - at < chunk ? records - at : chunk;
        if (fread(buf, (size_t)rec_bytes, (size_t)m, f) != (size_t)m) {
            s_err(err, errlen, "%s: read failed at record %d: %s", path, at,
                  ferror(f) ? strerror(errno) : "unexpected end of file");
            rc = -EIO;
            goto out;
        }
        for (int i = 0; i < m; i++) {
            const uint8_t *r = buf + (size_t)i * rec_bytes;
            if (r[label_at] >= classes) {
                s_err(err, errlen, "%s: record %d has label %d, expected "
                      "0..%d", path, at + i, r[label_at], classes - 1);
                rc = -EINVAL;
                goto out;
            }
            lab[at + i] = r[label_at];
            memcpy(img + (size_t)(at + i) * 3072, r + rec_bytes - 3072,
                   3072);
        }
    }
out:
    free(buf);
    fclose(f);
    return rc;
}

static void s_file_done(const data_options_t *o, const char *path)
{
    if (o->on_file)
        o->on_file(o->on_file_ctx, path);
}

/*
 * Read a list of CIFAR files of one folder, concatenated, into split s.
 */
static int s_cifar_load(const data_options_t *o, const char *dir,
                        const cifar_file_t *files, int n_files,
                        json_t *records, int rec_bytes, int label_at,
                        int classes, const char *split_name,
                        data_split_t *s, char *err, size_t errlen)
{
    int counts[8], total = 0, at = 0, rc;
    bool declared[8];
    char path[1024];

    for (int i = 0; i < n_files; i++) {
        counts[i] = s_manifest_count(records, files[i].name,
                                     files[i].records, &declared[i]);
        total += counts[i];
    }
    rc = s_split_alloc(s, split_name, total, 32, 32, err, errlen);
    if (rc)
        return rc;
    for (int i = 0; i < n_files; i++) {
        s_join(path, sizeof(path), dir, files[i].name);
        rc = s_cifar_read(path, counts[i], declared[i], rec_bytes, label_at,
                          classes, s->images + (size_t)at * 3072,
                          s->labels + at, err, errlen);
        if (rc) {
            s_split_free(s);
            return rc;
        }
        s_file_done(o, path);
        at += counts[i];
    }
    return 0;
}

/* Find the folder of a data set: dir itself or dir/sub. */
static int s_resolve(const char *dir, const char *sub, const char *probe,
                     char *out, size_t len, char *err, size_t errlen)
{
    char path[1024];

    s_join(path, sizeof(path), dir, probe);
    if (s_is_file(path)) {
        snprintf(out, len, "%s", dir);
        return 0;
    }
    snprintf(path, sizeof(path), "%s/%s/%s", dir, sub, probe);
    if (s_is_file(path)) {
        snprintf(out, len, "%s/%s", dir, sub);
        return 0;
    }
    s_err(err, errlen, "%s: no %s here or in %s/%s/", dir, probe, dir, sub);
    return -ENOENT;
}

/* ----------------------------------------------------------- ImageNet16 */

/* Where the pickles are: the archive layout or a flat folder. */
static int s_in16_resolve(const char *dir, char *train, char *val,
                          size_t len, char *err, size_t errlen)
{
    static const char *const layouts[][2] = {
        {"Imagenet16_train", "Imagenet16_val"},
        {".", "."},
        {"ImageNet16", "ImageNet16"},
    };
    char path[1024];

    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/%s/train_data_batch_1", dir,
                 layouts[i][0]);
        if (!s_is_file(path))
            continue;
        snprintf(train, len, "%s/%s", dir, layouts[i][0]);
        snprintf(val, len, "%s/%s", dir, layouts[i][1]);
        return 0;
    }
    s_err(err, errlen, "%s: no Imagenet16_train/train_data_batch_1 (nor "
          "train_data_batch_1 here or in ImageNet16/)", dir);
    return -ENOENT;
}

/* Append the images of b with labels 1..120 to s (grown as needed). */
static int s_in16_append(data_split_t *s, int *cap,
                         const data_pickle_batch_t *b, const char *path,
                         char *err, size_t errlen)
{
    for (int i = 0; i < b->n; i++) {
        int label = b->labels[i];
        if (label < 1 || label > 1000) {
            s_err(err, errlen, "%s: image %d has label %d, expected "
                  "1..1000", path, i, label);
            return -EINVAL;
        }
        if (label > 120)
            continue;
        if (s->n == *cap) {
            int nc = *cap ? *cap * 2 : 16384;
            uint8_t *im = realloc(s->images, (size_t)nc * 768);
            if (im)
                s->images = im;
            int32_t *lb = realloc(s->labels, (size_t)nc * sizeof(int32_t));
            if (lb)
                s->labels = lb;
            if (!im || !lb) {
                s_err(err, errlen, "%s: out of memory", path);
                return -ENOMEM;
            }
            *cap = nc;
        }
        memcpy(s->images + (size_t)s->n * 768, b->data + (size_t)i * 768,
               768);
        s->labels[s->n++] = label - 1;
    }
    return 0;
}

static int s_in16_load_files(const data_options_t *o, const char *dir,
                             const char *const *names, int n,
                             const char *split_name, data_split_t *s,
                             char *err, size_t errlen)
{
    char path[1024];
    int cap = 0, rc = 0;

    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", split_name);
    s->h = s->w = 16;
    for (int i = 0; i < n && rc == 0; i++) {
        data_pickle_batch_t b;
        s_join(path, sizeof(path), dir, names[i]);
        rc = data_pickle_read(path, &b, err, errlen);
        if (rc)
            break;
        rc = s_in16_append(s, &cap, &b, path, err, errlen);
        data_pickle_batch_free(&b);
        if (rc == 0)
            s_file_done(o, path);
    }
    if (rc == 0 && s->n == 0) {
        s_err(err, errlen, "%s: no image with a label in 1..120", dir);
        rc = -EINVAL;
    }
    if (rc)
        s_split_free(s);
    return rc;
}

/* --------------------------------------------------------------- splits */

/*
 * Cut n items (with labels) into two halves, class by class: of each
 * class's k items (in a shuffled order), the first ceil(k/2) go to a and
 * the rest to b; both lists come back in ascending order.
 */
static int s_split_stratified(const int32_t *labels, int n, int classes,
                              uint64_t seed, int32_t *a, int *na,
                              int32_t *b, int *nb)
{
    int *count = calloc((size_t)classes, sizeof(int));
    int *start = calloc((size_t)classes + 1, sizeof(int));
    int32_t *bycls = malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    char *in_a = calloc((size_t)(n > 0 ? n : 1), 1);
    uint64_t state = engine_rng_key(seed, 0, 0x73706c6974ULL);
    int rc = -ENOMEM;

    if (!count || !start || !bycls || !in_a)
        goto out;
    for (int i = 0; i < n; i++)
        count[labels[i]]++;
    for (int c = 0; c < classes; c++)
        start[c + 1] = start[c] + count[c];
    memset(count, 0, (size_t)classes * sizeof(int));
    for (int i = 0; i < n; i++)
        bycls[start[labels[i]] + count[labels[i]]++] = i;
    for (int c = 0; c < classes; c++) {
        int32_t *v = bycls + start[c];
        int k = count[c];
        for (int i = k - 1; i > 0; i--) {
            int j = (int)s_below(&state, (uint32_t)i + 1);
            int32_t t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        for (int i = 0; i < (k + 1) / 2; i++)
            in_a[v[i]] = 1;
    }
    *na = *nb = 0;
    for (int i = 0; i < n; i++) {
        if (in_a[i])
            a[(*na)++] = i;
        else
            b[(*nb)++] = i;
    }
    rc = 0;
out:
    free(count);
    free(start);
    free(bycls);
    free(in_a);
    return rc;
}

/*
 * Read one list of a split file: either a plain array of integers or the
 * NAS-Bench-201 form ["int", [...]].
 */
static int s_split_list(json_t *root, const char *key, const char *path,
                        int n_src, int32_t **out, int *n, char *err,
                        size_t errlen)
{
    json_t *v = json_object_get(root, key);
    size_t i;
    json_t *item;

    if (json_is_array(v) && json_array_size(v) == 2 &&
        json_is_string(json_array_get(v, 0)))
        v = json_array_get(v, 1);
    if (!json_is_array(v)) {
        s_err(err, errlen, "%s: no list \"%s\" of image indices", path,
              key);
        return -EINVAL;
    }
    *n = (int)json_array_size(v);
    *out = malloc((size_t)(*n > 0 ? *n : 1) * sizeof(int32_t));
    if (!*out) {
        s_err(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    json_array_foreach(v, i, item)
    {
        json_int_t x = json_is_integer(item) ? json_integer_value(item) : -1;
        if (x < 0 || x >= n_src) {
            s_err(err, errlen, "%s: %s[%zu] is not an index in 0..%d", path,
                  key, i, n_src - 1);
            free(*out);
            *out = NULL;
            return -EINVAL;
        }
        (*out)[i] = (int32_t)x;
    }
    return 0;
}

/* Both lists of a split file, checked to be disjoint. */
static int s_split_file(const char *path, const char *key_a,
                        const char *key_b, int n_src, int32_t **a, int *na,
                        int32_t **b, int *nb, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    char *seen = NULL;
    int rc;

    *a = *b = NULL;
    if (!root) {
        s_err(err, errlen, "split file %s: line %d: %s", path, je.line,
              je.text);
        return -EINVAL;
    }
    rc = s_split_list(root, key_a, path, n_src, a, na, err, errlen);
    if (rc == 0)
        rc = s_split_list(root, key_b, path, n_src, b, nb, err, errlen);
    if (rc == 0 && !(seen = calloc((size_t)n_src, 1)))
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < *na + *nb; i++) {
        int32_t x = i < *na ? (*a)[i] : (*b)[i - *na];
        if (seen[x]) {
            s_err(err, errlen, "%s: index %d appears twice in \"%s\" and "
                  "\"%s\"", path, x, key_a, key_b);
            rc = -EINVAL;
        }
        seen[x] = 1;
    }
    free(seen);
    json_decref(root);
    if (rc) {
        free(*a);
        free(*b);
        *a = *b = NULL;
    }
    return rc;
}

/*
 * Replace src by two splits a and b, from the split file's lists key_a
 * and key_b, or stratified from the seed.  src is freed on success.
 */
static int s_split_halves(data_split_t *src, const data_options_t *o,
                          int classes, const char *key_a, const char *key_b,
                          const char *name_a, const char *name_b,
                          data_split_t *a, data_split_t *b, char *err,
                          size_t errlen)
{
    int32_t *ia = NULL, *ib = NULL;
    int na = 0, nb = 0, rc;

    if (o->split_file) {
        rc = s_split_file(o->split_file, key_a, key_b, src->n, &ia, &na, &ib,
                          &nb, err, errlen);
    } else {
        ia = malloc((size_t)(src->n + 1) * sizeof(int32_t));
        ib = malloc((size_t)(src->n + 1) * sizeof(int32_t));
        rc = ia && ib ? s_split_stratified(src->labels, src->n, classes,
                                           o->split_seed, ia, &na, ib, &nb)
                      : -ENOMEM;
        if (rc)
            s_err(err, errlen, "out of memory splitting %s", src->name);
    }
    if (rc == 0)
        rc = s_split_gather(a, name_a, src, ia, na, err, errlen);
    if (rc == 0) {
        rc = s_split_gather(b, name_b, src, ib, nb, err, errlen);
        if (rc)
            s_split_free(a);
    }
    free(ia);
    free(ib);
    if (rc == 0)
        s_split_free(src);
    return rc;
}

/* ------------------------------------------------------------- loaders */

static const cifar_file_t s_c10_train[] = {
    {"data_batch_1.bin", 10000}, {"data_batch_2.bin", 10000},
    {"data_batch_3.bin", 10000}, {"data_batch_4.bin", 10000},
    {"data_batch_5.bin", 10000},
};
static const cifar_file_t s_c10_test[] = {{"test_batch.bin", 10000}};
static const cifar_file_t s_c100_train[] = {{"train.bin", 50000}};
static const cifar_file_t s_c100_test[] = {{"test.bin", 10000}};

static int s_load_cifar10(data_set_t *d, const data_options_t *o, bool valid,
                          char *err, size_t errlen)
{
    char dir[1024];
    json_t *rec = NULL;
    data_split_t all = {0};
    int rc;

    rc = s_resolve(o->dir, "cifar-10-batches-bin", "data_batch_1.bin", dir,
                   sizeof(dir), err, errlen);
    if (rc == 0)
        rc = s_manifest_load(dir, &rec, err, errlen);
    if (rc)
        return rc;
    snprintf(d->source, sizeof(d->source), "%s", dir);
    rc = s_cifar_load(o, dir, s_c10_train, 5, rec, 3073, 0, 10, "train", &all,
                      err, errlen);
    if (rc == 0)
        rc = s_cifar_load(o, dir, s_c10_test, 1, rec, 3073, 0, 10, "test",
                          valid ? &d->test : &d->valid, err, errlen);
    if (rc == 0 && valid)
        rc = s_split_halves(&all, o, 10, "train", "valid", "train", "valid",
                            &d->train, &d->valid, err, errlen);
    else if (rc == 0)
        d->train = all, memset(&all, 0, sizeof(all));
    s_split_free(&all);
    json_decref(rec);
    return rc;
}

static int s_load_cifar100(data_set_t *d, const data_options_t *o,
                           char *err, size_t errlen)
{
    char dir[1024];
    json_t *rec = NULL;
    data_split_t test = {0};
    int rc;

    rc = s_resolve(o->dir, "cifar-100-binary", "train.bin", dir, sizeof(dir),
                   err, errlen);
    if (rc == 0)
        rc = s_manifest_load(dir, &rec, err, errlen);
    if (rc)
        return rc;
    snprintf(d->source, sizeof(d->source), "%s", dir);
    rc = s_cifar_load(o, dir, s_c100_train, 1, rec, 3074, 1, 100, "train",
                      &d->train, err, errlen);
    if (rc == 0)
        rc = s_cifar_load(o, dir, s_c100_test, 1, rec, 3074, 1, 100, "test",
                          &test, err, errlen);
    if (rc == 0)
        rc = s_split_halves(&test, o, 100, "xvalid", "xtest", "x-valid",
                            "x-test", &d->valid, &d->test, err, errlen);
    s_split_free(&test);
    json_decref(rec);
    return rc;
}

static int s_load_imagenet16(data_set_t *d, const data_options_t *o,
                             char *err, size_t errlen)
{
    static const char *const train[] = {
        "train_data_batch_1", "train_data_batch_2", "train_data_batch_3",
        "train_data_batch_4", "train_data_batch_5", "train_data_batch_6",
        "train_data_batch_7", "train_data_batch_8", "train_data_batch_9",
        "train_data_batch_10"};
    static const char *const val[] = {"val_data"};
    char tdir[1024], vdir[1024];
    data_split_t all = {0};
    int rc;

    rc = s_in16_resolve(o->dir, tdir, vdir, sizeof(tdir), err, errlen);
    if (rc)
        return rc;
    snprintf(d->source, sizeof(d->source), "%s", tdir);
    rc = s_in16_load_files(o, tdir, train, 10, "train", &d->train, err,
                           errlen);
    if (rc == 0)
        rc = s_in16_load_files(o, vdir, val, 1, "val", &all, err, errlen);
    if (rc == 0)
        rc = s_split_halves(&all, o, 120, "xvalid", "xtest", "x-valid",
                            "x-test", &d->valid, &d->test, err, errlen);
    s_split_free(&all);
    return rc;
}

int data_set_load(const data_options_t *o, data_set_t **out, char *err,
                  size_t errlen)
{
    const data_info_t *info = s_info(o->dataset);
    data_set_t *d;
    int rc;

    *out = NULL;
    if (!info) {
        s_err(err, errlen, "unknown data set '%s' (cifar10, cifar10-valid, "
              "cifar100, imagenet16-120)", o->dataset ? o->dataset : "");
        return -EINVAL;
    }
    if (!o->dir || !*o->dir) {
        s_err(err, errlen, "no data folder given for %s", info->name);
        return -EINVAL;
    }
    d = calloc(1, sizeof(*d));
    if (!d) {
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    snprintf(d->name, sizeof(d->name), "%s", info->name);
    d->classes = info->classes;
    d->h = info->h;
    d->w = info->w;
    d->pad = info->pad;
    for (int c = 0; c < 3; c++) {
        d->mean[c] = info->mean[c] / 255.0f;
        d->std[c] = info->std[c] / 255.0f;
    }
    switch (info->kind) {
    case DATA_CIFAR10:
    case DATA_CIFAR10_VALID:
        rc = s_load_cifar10(d, o, info->kind == DATA_CIFAR10_VALID, err,
                            errlen);
        break;
    case DATA_CIFAR100:
        rc = s_load_cifar100(d, o, err, errlen);
        break;
    default:
        rc = s_load_imagenet16(d, o, err, errlen);
        break;
    }
    if (rc == 0 && d->train.n == 0) {
        s_err(err, errlen, "%s: the training split of %s is empty",
              d->source, d->name);
        rc = -EINVAL;
    }
    if (rc == 0 && d->valid.n == 0) {
        s_err(err, errlen, "%s: the evaluation split of %s is empty",
              d->source, d->name);
        rc = -EINVAL;
    }
    if (rc) {
        data_set_destroy(&d);
        return rc;
    }
    *out = d;
    return 0;
}

void data_set_destroy(data_set_t **d)
{
    if (!d || !*d)
        return;
    s_split_free(&(*d)->train);
    s_split_free(&(*d)->valid);
    s_split_free(&(*d)->test);
    free(*d);
    *d = NULL;
}

int data_set_probe(const char *dataset, const char *dir)
{
    const data_info_t *info = s_info(dataset);
    char a[1024], b[1024];

    if (!info)
        return -1;
    switch (info->kind) {
    case DATA_CIFAR10:
    case DATA_CIFAR10_VALID:
        return s_resolve(dir, "cifar-10-batches-bin", "data_batch_1.bin", a,
                         sizeof(a), NULL, 0) == 0;
    case DATA_CIFAR100:
        return s_resolve(dir, "cifar-100-binary", "train.bin", a, sizeof(a),
                         NULL, 0) == 0;
    default:
        return s_in16_resolve(dir, a, b, sizeof(a), NULL, 0) == 0;
    }
}

/* ---------------------------------------------------------- epoch plan */

void data_epoch_plan(uint64_t seed, int epoch, int n, int pad,
                     int32_t *index, int8_t *shift_x, int8_t *shift_y,
                     uint8_t *flip)
{
    uint64_t state = engine_rng_key(seed, (uint64_t)epoch, 0x6570736dULL);

    for (int i = 0; i < n; i++)
        index[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)s_below(&state, (uint32_t)i + 1);
        int32_t t = index[i];
        index[i] = index[j];
        index[j] = t;
    }
    for (int i = 0; i < n && pad <= 0 && shift_x; i++)
        shift_x[i] = shift_y[i] = 0, flip[i] = 0;
    if (pad <= 0)
        return;
    for (int i = 0; i < n; i++) {
        shift_x[i] = (int8_t)((int)s_below(&state, 2 * pad + 1) - pad);
        shift_y[i] = (int8_t)((int)s_below(&state, 2 * pad + 1) - pad);
        flip[i] = (uint8_t)(engine_rng_next(&state) >> 63);
    }
}
