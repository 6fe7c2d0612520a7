/*
 * checkpoint.c - save and read the training state (see checkpoint.h).
 *
 * Numbers go into the metadata as decimal text: integers exactly, and
 * doubles with 17 significant digits so that they read back bit for bit;
 * the per-epoch history is one JSON array.  Every field is checked on
 * reading, so a checkpoint from another program or a damaged one is an
 * error naming the field, never a run that resumes wrong.
 */
#include "checkpoint.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CKPT_FORMAT "nader-checkpoint"
#define CKPT_VERSION "1"

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

/* JSON can hold no NaN: non-finite figures become null. */
static json_t *s_real(double x)
{
    return isfinite(x) ? json_real(x) : json_null();
}

static double s_get_real(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static char *s_history_json(const train_epoch_t *h, int n)
{
    json_t *a = json_array();
    char *text;

    for (int i = 0; a && i < n; i++) {
        json_t *e = json_object();
        json_object_set_new(e, "epoch", json_integer(h[i].epoch));
        json_object_set_new(e, "epochs", json_integer(h[i].epochs));
        json_object_set_new(e, "lr", s_real(h[i].lr));
        json_object_set_new(e, "train_loss", s_real(h[i].train_loss));
        json_object_set_new(e, "train_acc", s_real(h[i].train_acc));
        json_object_set_new(e, "valid_loss", s_real(h[i].valid_loss));
        json_object_set_new(e, "valid_acc", s_real(h[i].valid_acc));
        json_object_set_new(e, "test_acc", s_real(h[i].test_acc));
        json_object_set_new(e, "images_per_s", s_real(h[i].images_per_s));
        json_object_set_new(e, "seconds", s_real(h[i].seconds));
        json_array_append_new(a, e);
    }
    text = a ? json_dumps(a, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
    json_decref(a);
    return text;
}

int checkpoint_save(network_t *nw, const char *path,
                    const checkpoint_info_t *ci, char *err, size_t errlen)
{
    char epoch[16], step[24], seed[24], width[16], batch[16], epochs[16];
    char scale[16], lr[32], mom[32], wd[32];
    char *history = s_history_json(ci->history, ci->n_history);
    int rc;

    if (!history) {
        s_err(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    snprintf(epoch, sizeof(epoch), "%d", ci->epoch);
    snprintf(step, sizeof(step), "%" PRId64, ci->step);
    snprintf(seed, sizeof(seed), "%" PRIu64, ci->seed);
    snprintf(width, sizeof(width), "%d", ci->width);
    snprintf(scale, sizeof(scale), "%d", ci->stem_scale);
    snprintf(batch, sizeof(batch), "%d", ci->batch);
    snprintf(epochs, sizeof(epochs), "%d", ci->epochs);
    snprintf(lr, sizeof(lr), "%.17g", ci->lr);
    snprintf(mom, sizeof(mom), "%.17g", ci->momentum);
    snprintf(wd, sizeof(wd), "%.17g", ci->weight_decay);
    const char *meta[] = {
        "format", CKPT_FORMAT, "version", CKPT_VERSION,
        "epoch", epoch, "step", step, "seed", seed,
        "design", ci->design, "dataset", ci->dataset, "split", ci->split,
        "skeleton", ci->skeleton, "stem_scale", scale, "width", width,
        "batch", batch,
        "epochs", epochs, "lr", lr, "momentum", mom, "weight_decay", wd,
        "nesterov", ci->nesterov ? "true" : "false",
        "history", history, NULL};
    rc = network_weights_save(nw, path, meta, true, err, errlen);
    free(history);
    return rc;
}

/* An integer metadata field in [lo, hi]. */
static int s_meta_int(const safetensors_t *st, const char *key, int64_t lo,
                      int64_t hi, int64_t *out, char *err, size_t errlen)
{
    const char *v = safetensors_meta(st, key);
    char *end;
    long long x;

    errno = 0;
    x = v ? strtoll(v, &end, 10) : 0;
    if (!v || !*v || *end || errno || x < lo || x > hi) {
        s_err(err, errlen, "%s: checkpoint metadata '%s' is %s%s%s, "
              "expected an integer", safetensors_path(st), key,
              v ? "'" : "missing", v ? v : "", v ? "'" : "");
        return -EINVAL;
    }
    *out = x;
    return 0;
}

static int s_meta_real(const safetensors_t *st, const char *key,
                       double *out, char *err, size_t errlen)
{
    const char *v = safetensors_meta(st, key);
    char *end;

    *out = v ? strtod(v, &end) : NAN;
    if (!v || !*v || *end || !isfinite(*out)) {
        s_err(err, errlen, "%s: checkpoint metadata '%s' is missing or "
              "not a number", safetensors_path(st), key);
        return -EINVAL;
    }
    return 0;
}

static int s_meta_str(const safetensors_t *st, const char *key, char *out,
                      size_t len, char *err, size_t errlen)
{
    const char *v = safetensors_meta(st, key);

    if (!v || strlen(v) >= len) {
        s_err(err, errlen, "%s: checkpoint metadata '%s' is missing or "
              "too long", safetensors_path(st), key);
        return -EINVAL;
    }
    snprintf(out, len, "%s", v);
    return 0;
}

static int s_history_read(const safetensors_t *st, checkpoint_info_t *ci,
                          char *err, size_t errlen)
{
    const char *text = safetensors_meta(st, "history");
    json_error_t je;
    json_t *a = text ? json_loads(text, 0, &je) : NULL;
    size_t i;
    json_t *e;

    if (!json_is_array(a) || (int)json_array_size(a) != ci->epoch) {
        s_err(err, errlen, "%s: checkpoint metadata 'history' is not a "
              "list of %d epochs", safetensors_path(st), ci->epoch);
        json_decref(a);
        return -EINVAL;
    }
    ci->n_history = (int)json_array_size(a);
    ci->history = calloc((size_t)ci->n_history + 1, sizeof(train_epoch_t));
    if (!ci->history) {
        json_decref(a);
        s_err(err, errlen, "out of memory");
        return -ENOMEM;
    }
    json_array_foreach(a, i, e)
    {
        train_epoch_t *h = &ci->history[i];
        h->epoch = (int)json_integer_value(json_object_get(e, "epoch"));
        h->epochs = (int)json_integer_value(json_object_get(e, "epochs"));
        h->lr = s_get_real(e, "lr");
        h->train_loss = s_get_real(e, "train_loss");
        h->train_acc = s_get_real(e, "train_acc");
        h->valid_loss = s_get_real(e, "valid_loss");
        h->valid_acc = s_get_real(e, "valid_acc");
        h->test_acc = s_get_real(e, "test_acc");
        h->images_per_s = s_get_real(e, "images_per_s");
        h->seconds = s_get_real(e, "seconds");
    }
    json_decref(a);
    return 0;
}

int checkpoint_read(const char *path, checkpoint_info_t *ci,
                    safetensors_t **pst, char *err, size_t errlen)
{
    safetensors_t *st = NULL;
    const char *fmt;
    int64_t v[6];
    int rc;

    memset(ci, 0, sizeof(*ci));
    if (pst)
        *pst = NULL;
    rc = safetensors_load(path, &st, err, errlen);
    if (rc)
        return rc;
    fmt = safetensors_meta(st, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT) != 0 ||
        !safetensors_meta(st, "version") ||
        strcmp(safetensors_meta(st, "version"), CKPT_VERSION) != 0) {
        s_err(err, errlen, "%s: not a nader checkpoint (format %s, "
              "version %s; expected %s %s)", path, fmt ? fmt : "missing",
              safetensors_meta(st, "version") ?: "missing", CKPT_FORMAT,
              CKPT_VERSION);
        rc = -EINVAL;
        goto out;
    }
    rc = s_meta_int(st, "epoch", 0, 1000000, &v[0], err, errlen);
    if (!rc)
        rc = s_meta_int(st, "step", 0, INT64_MAX, &v[1], err, errlen);
    if (!rc)
        rc = s_meta_int(st, "width", 1, 1 << 20, &v[2], err, errlen);
    if (!rc)
        rc = s_meta_int(st, "batch", 1, 1 << 24, &v[3], err, errlen);
    if (!rc)
        rc = s_meta_int(st, "epochs", 1, 1000000, &v[4], err, errlen);
    if (!rc) {
        const char *s = safetensors_meta(st, "seed");
        char *end;
        errno = 0;
        ci->seed = s ? strtoull(s, &end, 10) : 0;
        if (!s || !*s || *end || errno) {
            s_err(err, errlen, "%s: checkpoint metadata 'seed' is missing "
                  "or not a number", path);
            rc = -EINVAL;
        }
    }
    if (!rc && safetensors_meta(st, "stem_scale"))
        rc = s_meta_int(st, "stem_scale", 1, 8, &v[5], err, errlen);
    else
        v[5] = 1;
    if (!rc)
        rc = s_meta_real(st, "lr", &ci->lr, err, errlen);
    if (!rc)
        rc = s_meta_real(st, "momentum", &ci->momentum, err, errlen);
    if (!rc)
        rc = s_meta_real(st, "weight_decay", &ci->weight_decay, err, errlen);
    if (!rc)
        rc = s_meta_str(st, "design", ci->design, sizeof(ci->design), err,
                        errlen);
    if (!rc)
        rc = s_meta_str(st, "dataset", ci->dataset, sizeof(ci->dataset),
                        err, errlen);
    if (!rc)
        rc = s_meta_str(st, "split", ci->split, sizeof(ci->split), err,
                        errlen);
    if (!rc)
        rc = s_meta_str(st, "skeleton", ci->skeleton, sizeof(ci->skeleton),
                        err, errlen);
    if (rc)
        goto out;
    ci->epoch = (int)v[0];
    ci->step = v[1];
    ci->width = (int)v[2];
    ci->batch = (int)v[3];
    ci->epochs = (int)v[4];
    ci->stem_scale = (int)v[5];
    ci->nesterov = safetensors_meta(st, "nesterov") &&
                   strcmp(safetensors_meta(st, "nesterov"), "true") == 0;
    rc = s_history_read(st, ci, err, errlen);
out:
    if (rc) {
        checkpoint_info_free(ci);
        safetensors_destroy(&st);
    } else if (pst) {
        *pst = st;
    } else {
        safetensors_destroy(&st);
    }
    return rc;
}

int checkpoint_match(const checkpoint_info_t *have,
                     const checkpoint_info_t *want, const char *path,
                     char *err, size_t errlen)
{
    char a[300], b[300];
    const char *field = NULL;

#define CK_STR(f)                                                            \
    if (!field && strcmp(have->f, want->f) != 0) {                           \
        field = #f;                                                          \
        snprintf(a, sizeof(a), "%s", have->f);                               \
        snprintf(b, sizeof(b), "%s", want->f);                               \
    }
#define CK_NUM(f, fmt, cast)                                                 \
    if (!field && have->f != want->f) {                                      \
        field = #f;                                                          \
        snprintf(a, sizeof(a), fmt, (cast)have->f);                          \
        snprintf(b, sizeof(b), fmt, (cast)want->f);                          \
    }
    CK_STR(design)
    CK_STR(dataset)
    CK_STR(split)
    CK_STR(skeleton)
    CK_NUM(stem_scale, "%d", int)
    CK_NUM(width, "%d", int)
    CK_NUM(batch, "%d", int)
    CK_NUM(epochs, "%d", int)
    CK_NUM(seed, "%llu", unsigned long long)
    CK_NUM(lr, "%.17g", double)
    CK_NUM(momentum, "%.17g", double)
    CK_NUM(weight_decay, "%.17g", double)
    CK_NUM(nesterov, "%d", int)
#undef CK_STR
#undef CK_NUM
    if (!field)
        return 0;
    s_err(err, errlen, "checkpoint %s was taken with %s %s, this run has "
          "%s %s", path, field, a, field, b);
    return -1;
}

void checkpoint_info_free(checkpoint_info_t *ci)
{
    free(ci->history);
    ci->history = NULL;
    ci->n_history = 0;
}
