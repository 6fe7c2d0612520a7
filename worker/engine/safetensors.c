/*
 * safetensors.c - the safetensors file format (see safetensors.h).
 *
 * The whole file is read into memory (weights of the networks nader
 * trains are megabytes) and its header parsed with jansson.  Every
 * tensor's offsets are checked against the data section and against its
 * dtype and shape before any caller sees it, so a corrupt or truncated
 * file is an error here rather than a wild read later.  Little-endian
 * hosts only, as the format's data is little-endian.
 */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host"
#endif

#define ST_MAX_HEADER (100u << 20)

struct safetensors {
    char *path;
    uint8_t *file;
    size_t size;
    json_t *header;
    json_t *meta;             /* borrowed from header, may be NULL */
    int n;
    safetensors_tensor_t *t;
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

static int s_dtype_size(const char *dt)
{
    static const struct {
        const char *name;
        int size;
    } types[] = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2},
                 {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
                 {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1},
                 {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (strcmp(types[i].name, dt) == 0)
            return types[i].size;
    return 0;
}

static int s_read_file(const char *path, uint8_t **buf, size_t *size,
                       char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;

    if (!f) {
        s_err(err, errlen, "%s: %s", path, strerror(errno));
        return -ENOENT;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        s_err(err, errlen, "%s: not a regular file", path);
        fclose(f);
        return -EINVAL;
    }
    *size = (size_t)st.st_size;
    *buf = malloc(*size ? *size : 1);
    if (!*buf) {
        s_err(err, errlen, "%s: out of memory (%zu bytes)", path, *size);
        fclose(f);
        return -ENOMEM;
    }
    if (fread(*buf, 1, *size, f) != *size) {
        s_err(err, errlen, "%s: read failed", path);
        free(*buf);
        *buf = NULL;
        fclose(f);
        return -EIO;
    }
    fclose(f);
    return 0;
}

/* Check and record one header entry. */
static int s_entry(safetensors_t *st, const char *name, json_t *v,
                   size_t data_size, char *err, size_t errlen)
{
    safetensors_tensor_t *t = &st->t[st->n];
    json_t *dt = json_object_get(v, "dtype");
    json_t *shape = json_object_get(v, "shape");
    json_t *off = json_object_get(v, "data_offsets");
    json_int_t begin, end;
    int esize;
    size_t i;
    json_t *d;

    if (!json_is_string(dt) || !json_is_array(shape) ||
        !json_is_array(off) || json_array_size(off) != 2 ||
        !json_is_integer(json_array_get(off, 0)) ||
        !json_is_integer(json_array_get(off, 1))) {
        s_err(err, errlen, "%s: header entry %s lacks dtype, shape or "
              "data_offsets", st->path, name);
        return -EINVAL;
    }
    esize = s_dtype_size(json_string_value(dt));
    if (!esize || json_array_size(shape) > SAFETENSORS_MAX_DIMS) {
        s_err(err, errlen, "%s: %s has dtype %s and %zu dimensions",
              st->path, name, json_string_value(dt),
              json_array_size(shape));
        return -EINVAL;
    }
    t->name = name;
    snprintf(t->dtype, sizeof(t->dtype), "%s", json_string_value(dt));
    t->ndim = (int)json_array_size(shape);
    t->numel = 1;
    json_array_foreach(shape, i, d)
    {
        json_int_t x = json_is_integer(d) ? json_integer_value(d) : -1;
        if (x < 0 || x > ((json_int_t)1 << 40) ||
            (x && t->numel > ((int64_t)1 << 40) / x)) {
            s_err(err, errlen, "%s: %s has a bad shape", st->path, name);
            return -EINVAL;
        }
        t->shape[i] = x;
        t->numel *= x;
    }
    begin = json_integer_value(json_array_get(off, 0));
    end = json_integer_value(json_array_get(off, 1));
    if (begin < 0 || end < begin || (size_t)end > data_size ||
        (end - begin) != t->numel * esize) {
        s_err(err, errlen, "%s: %s has data_offsets [%lld, %lld] for %lld "
              "values of %d bytes in %zu bytes of data%s", st->path, name,
              (long long)begin, (long long)end, (long long)t->numel, esize,
              data_size,
              (size_t)end > data_size ? " (file truncated?)" : "");
        return -EINVAL;
    }
    t->bytes = (size_t)(end - begin);
    t->data = st->file + st->size - data_size + begin;
    st->n++;
    return 0;
}

int safetensors_load(const char *path, safetensors_t **out, char *err,
                     size_t errlen)
{
    safetensors_t *st = calloc(1, sizeof(*st));
    uint64_t hlen = 0;
    json_error_t je;
    const char *key;
    json_t *v;
    int rc;

    *out = NULL;
    if (!st || !(st->path = strdup(path))) {
        free(st);
        s_err(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    rc = s_read_file(path, &st->file, &st->size, err, errlen);
    if (rc)
        goto fail;
    rc = -EINVAL;
    if (st->size >= 8)
        memcpy(&hlen, st->file, 8);
    if (st->size < 8 || hlen > ST_MAX_HEADER || hlen > st->size - 8) {
        s_err(err, errlen, "%s: not a safetensors file (%zu bytes, header "
              "length %llu)", path, st->size, (unsigned long long)hlen);
        goto fail;
    }
    st->header = json_loadb((const char *)st->file + 8, (size_t)hlen, 0,
                            &je);
    if (!json_is_object(st->header)) {
        s_err(err, errlen, "%s: bad header: %s", path,
              st->header ? "not a JSON object" : je.text);
        goto fail;
    }
    st->t = calloc(json_object_size(st->header) + 1, sizeof(*st->t));
    if (!st->t) {
        s_err(err, errlen, "%s: out of memory", path);
        rc = -ENOMEM;
        goto fail;
    }
    json_object_foreach(st->header, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            st->meta = json_is_object(v) ? v : NULL;
            continue;
        }
        if (!json_is_object(v)) {
            s_err(err, errlen, "%s: header entry %s is not an object", path,
                  key);
            goto fail;
        }
        if (s_entry(st, key, v, st->size - 8 - (size_t)hlen, err, errlen))
            goto fail;
    }
    *out = st;
    return 0;
fail:
    safetensors_destroy(&st);
    return rc;
}

void safetensors_destroy(safetensors_t **st)
{
    if (!st || !*st)
        return;
    json_decref((*st)->header);
    free((*st)->t);
    free((*st)->file);
    free((*st)->path);
    free(*st);
    *st = NULL;
}

int safetensors_count(const safetensors_t *st)
{
    return st->n;
}

const safetensors_tensor_t *safetensors_at(const safetensors_t *st, int i)
{
    return i >= 0 && i < st->n ? &st->t[i] : NULL;
}

const safetensors_tensor_t *safetensors_find(const safetensors_t *st,
                                             const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0)
            return &st->t[i];
    return NULL;
}

const char *safetensors_meta(const safetensors_t *st, const char *key)
{
    json_t *v = st->meta ? json_object_get(st->meta, key) : NULL;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

const char *safetensors_path(const safetensors_t *st)
{
    return st->path;
}

static void s_shape_str(char *buf, size_t len, int ndim,
                        const int64_t *shape)
{
    size_t at = 0;

    at += (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < ndim && at < len; i++)
        at += (size_t)snprintf(buf + at, len - at, "%s%lld", i ? "," : "",
                               (long long)shape[i]);
    if (at < len)
        snprintf(buf + at, len - at, ")");
}

int safetensors_read_f32(const safetensors_t *st, const char *name,
                         int ndim, const int64_t *shape, float *dst,
                         char *err, size_t errlen)
{
    const safetensors_tensor_t *t = safetensors_find(st, name);
    char have[128], want[128];
    bool same;

    if (!t) {
        s_err(err, errlen, "%s: no tensor %s", st->path, name);
        return -ENOENT;
    }
    if (strcmp(t->dtype, "F32") != 0) {
        s_err(err, errlen, "%s: %s has dtype %s, expected F32", st->path,
              name, t->dtype);
        return -EINVAL;
    }
    same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++)
        same = t->shape[i] == shape[i];
    if (!same) {
        s_shape_str(have, sizeof(have), t->ndim, t->shape);
        s_shape_str(want, sizeof(want), ndim, shape);
        s_err(err, errlen, "%s: %s has shape %s, expected %s", st->path,
              name, have, want);
        return -EINVAL;
    }
    memcpy(dst, t->data, t->bytes);
    return 0;
}

/* ---------------------------------------------------------------- write */

static json_t *s_header(const safetensors_entry_t *t, int n,
                        const char *const *meta, char *err, size_t errlen)
{
    json_t *h = json_object();
    size_t at = 0;

    if (!h)
        return NULL;
    if (meta && meta[0]) {
        json_t *m = json_object();
        for (int i = 0; m && meta[i] && meta[i + 1]; i += 2)
            json_object_set_new(m, meta[i], json_string(meta[i + 1]));
        json_object_set_new(h, "__metadata__", m);
    }
    for (int i = 0; i < n; i++) {
        json_t *e = json_object(), *shape = json_array();
        size_t bytes = sizeof(float);
        if (!e || !shape || strcmp(t[i].name, "__metadata__") == 0 ||
            json_object_get(h, t[i].name)) {
            s_err(err, errlen, "tensor name %s is reserved or repeated",
                  t[i].name);
            json_decref(e);
            json_decref(shape);
            json_decref(h);
            return NULL;
        }
        for (int d = 0; d < t[i].ndim; d++) {
            json_array_append_new(shape, json_integer(t[i].shape[d]));
            bytes *= (size_t)t[i].shape[d];
        }
        json_object_set_new(e, "dtype", json_string("F32"));
        json_object_set_new(e, "shape", shape);
        json_object_set_new(e, "data_offsets",
                            json_pack("[II]", (json_int_t)at,
                                      (json_int_t)(at + bytes)));
        json_object_set_new(h, t[i].name, e);
        at += bytes;
    }
    return h;
}

/* fsync the folder holding path, so the rename itself is durable. */
static void s_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd;

    if (!copy)
        return;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

int safetensors_save(const char *path, const safetensors_entry_t *t, int n,
                     const char *const *meta, char *err, size_t errlen)
{
    json_t *h = s_header(t, n, meta, err, errlen);
    char *text = NULL, tmp[4096];
    size_t tlen, padded;
    uint64_t hlen;
    FILE *f = NULL;
    int rc = -EIO;

    if (!h)
        return -EINVAL;
    text = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    if (!text) {
        s_err(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >=
        (int)sizeof(tmp)) {
        s_err(err, errlen, "%s: path too long", path);
        free(text);
        return -ENAMETOOLONG;
    }
    tlen = strlen(text);
    padded = (tlen + 7) & ~(size_t)7;
    hlen = padded;
    f = fopen(tmp, "wb");
    if (!f) {
        s_err(err, errlen, "%s: %s", tmp, strerror(errno));
        free(text);
        return -errno;
    }
    if (fwrite(&hlen, 8, 1, f) != 1 || fwrite(text, 1, tlen, f) != tlen)
        goto fail;
    for (size_t i = tlen; i < padded; i++)
        if (fputc(' ', f) == EOF)
            goto fail;
    for (int i = 0; i < n; i++) {
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (size_t)t[i].shape[d];
        if (numel && fwrite(t[i].data, sizeof(float), numel, f) != numel)
            goto fail;
    }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
        goto fail;
    if (fclose(f) != 0) {
        f = NULL;
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0)
        goto fail;
    s_sync_dir(path);
    free(text);
    return 0;
fail:
    s_err(err, errlen, "%s: write failed: %s", path, strerror(errno));
    if (f)
        fclose(f);
    unlink(tmp);
    free(text);
    return rc;
}
