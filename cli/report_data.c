/*
 * report_data.c - the figures of a search, as the JSON `nader report`
 * puts in its page (see report_data.h and cli/report_page.html).
 *
 * Two sources give the same shape.  A coordinator's store holds every
 * design (with its parent and the inspiration that made it) and every
 * result (with per-epoch figures); --tag keeps one search's results and
 * the designs they and their ancestors are.  A results folder written by
 * `nader run` holds the same in designs.jsonl, results.jsonl and
 * summary.json, with parents named by design name, which are mapped back
 * to hashes here.  Results are ordered by when they were stored (the
 * store) or by job id (the folder), which is the order "designs
 * evaluated" counts in.
 */
#include "report_data.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "records.h"
#include "store.h"

static json_t *s_str(const char *s)
{
    return s && s[0] ? json_string(s) : json_null();
}

/* The per-epoch figures the page draws. */
static json_t *s_curve_store(const Nader__Result *r)
{
    json_t *a = json_array();

    for (size_t i = 0; r && i < r->n_epochs; i++) {
        const Nader__Epoch *e = r->epochs[i];
        json_array_append_new(a, json_pack("{s:i,s:f,s:f,s:f,s:f}", "epoch",
                                           e->epoch, "train_loss",
                                           e->train_loss, "train_acc",
                                           e->train_acc, "valid_acc",
                                           e->valid_acc, "seconds",
                                           e->seconds));
    }
    return a;
}

/* ---------------------------------------------------------- the store */

typedef struct s_scan {
    json_t *designs, *results, *by_hash;
    const char *tag;
    int64_t calls, prompt, completion;
    double cost;
} s_scan_t;

static int s_design_visit(void *ctx, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    s_scan_t *s = ctx;
    Nader__DesignRecord *d =
        nader__design_record__unpack(NULL, vlen, val);
    json_t *o;

    (void)key;
    (void)klen;
    if (!d)
        return 0;
    o = json_pack("{s:s,s:o,s:o,s:o,s:o,s:i,s:o,s:I}", "hash",
                  d->hash ? d->hash : "", "name", s_str(d->name), "parent",
                  s_str(d->parent_hash), "inspiration", s_str(d->inspiration),
                  "source", s_str(d->source), "iteration", (int)d->iteration,
                  "skeleton", s_str(d->skeleton), "created_ms",
                  (json_int_t)d->created_ms);
    if (o && d->hash)
        json_object_set(s->by_hash, d->hash, o);
    json_decref(o);
    nader__design_record__free_unpacked(d, NULL);
    return 0;
}

/* Whether a result tagged tag belongs to want: the same tag, or one
 * below it ("search:s1" takes "search:s1:screen"). */
static bool s_tag_in(const char *tag, const char *want)
{
    size_t n = strlen(want);

    return tag && strncmp(tag, want, n) == 0 &&
           (tag[n] == '\0' || tag[n] == ':');
}

static int s_result_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_scan_t *s = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)m;
    const Nader__Result *r = rr->result;

    if (s->tag && !s_tag_in(rr->tag, s->tag))
        return 0;
    if (r && r->load_test)
        return 0;
    json_array_append_new(
        s->results,
        json_pack("{s:I,s:s,s:o,s:I,s:i,s:s,s:o,s:I,s:i,s:I,s:o,s:o,s:o}",
                  "job", (json_int_t)id, "design",
                  rr->design_hash ? rr->design_hash : "", "dataset",
                  s_str(rr->dataset), "seed", (json_int_t)rr->seed,
                  "epochs", rr->epochs, "status",
                  r ? records_status_name(r->status) : "failed",
                  "valid_acc",
                  r && r->has_final_valid_acc ? json_real(r->final_valid_acc)
                                              : json_null(),
                  "params", (json_int_t)(r ? r->params : 0), "width",
                  r ? r->width : 0, "order",
                  (json_int_t)(rr->stored_us ? rr->stored_us : id), "curve",
                  s_curve_store(r), "device", s_str(r ? r->device : NULL),
                  "tag", s_str(rr->tag)));
    return 0;
}

static int s_llm_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_scan_t *s = ctx;
    const Nader__LlmExchangeRecord *r = (const Nader__LlmExchangeRecord *)m;

    (void)id;
    s->calls++;
    s->prompt += r->prompt_tokens;
    s->completion += r->completion_tokens;
    s->cost += r->cost;
    return 0;
}

/* Keep the designs the results name, and their ancestors. */
static void s_keep_designs(s_scan_t *s, bool all)
{
    json_t *keep = json_object(), *r, *d;
    const char *hash;
    size_t i;

    json_array_foreach(s->results, i, r) {
        hash = json_string_value(json_object_get(r, "design"));
        for (int depth = 0; hash && depth < 10000; depth++) {
            if (json_object_get(keep, hash))
                break;
            d = json_object_get(s->by_hash, hash);
            if (!d)
                break;
            json_object_set(keep, hash, d);
            hash = json_string_value(json_object_get(d, "parent"));
        }
    }
    json_object_foreach(all ? s->by_hash : keep, hash, d)
        json_array_append(s->designs, d);
    json_decref(keep);
}

/* The most frequent value of field over array a, or NULL. */
static const char *s_mode(json_t *a, const char *field)
{
    const char *best = NULL;
    size_t i, j, n_best = 0;
    json_t *x, *y;

    json_array_foreach(a, i, x) {
        const char *v = json_string_value(json_object_get(x, field));
        size_t n = 0;
        if (!v)
            continue;
        json_array_foreach(a, j, y) {
            const char *w = json_string_value(json_object_get(y, field));
            n += w && strcmp(v, w) == 0;
        }
        if (n > n_best) {
            best = v;
            n_best = n;
        }
    }
    return best;
}

static json_t *s_from_store(const char *dir, const char *tag, char *err,
                            size_t errlen)
{
    store_options_t so = {.read_only = true};
    store_t *st = NULL;
    store_txn_t *t = NULL;
    s_scan_t s = {json_array(), json_array(), json_object(), tag, 0, 0, 0,
                  0};
    json_t *out = NULL;

    if (store_open(dir, &so, &st, err, errlen) != STORE_OK)
        goto out;
    if (store_begin(st, false, &t, err, errlen) != STORE_OK)
        goto out;
    if (store_scan(t, STORE_DESIGNS, NULL, 0, s_design_visit, &s) < 0 ||
        store_scan_msg(t, STORE_RESULTS, 0,
                       &nader__result_record__descriptor, s_result_visit,
                       &s) < 0 ||
        store_scan_msg(t, STORE_LLM, 0,
                       &nader__llm_exchange_record__descriptor, s_llm_visit,
                       &s) < 0) {
        snprintf(err, errlen, "store %s: %s", dir, store_txn_error(t));
        goto out;
    }
    s_keep_designs(&s, tag == NULL);
    out = json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:O,s:O}", "source", dir,
                    "name", s_str(tag), "dataset",
                    s_str(s_mode(s.results, "dataset")), "skeleton",
                    s_str(s_mode(s.designs, "skeleton")), "designer",
                    json_null(), "llm",
                    s.calls ? json_pack("{s:I,s:I,s:I,s:f}", "calls",
                                        (json_int_t)s.calls,
                                        "prompt_tokens",
                                        (json_int_t)s.prompt,
                                        "completion_tokens",
                                        (json_int_t)s.completion, "cost",
                                        s.cost)
                            : json_null(),
                    "designs", s.designs, "results", s.results);

out:
    store_abort(&t);
    store_close(&st);
    json_decref(s.designs);
    json_decref(s.results);
    json_decref(s.by_hash);
    return out;
}

/* ------------------------------------------------- the results folder */

/* Every line of a JSON-lines file as one array (a new reference). */
static json_t *s_jsonl(const char *dir, const char *name, char *err,
                       size_t errlen)
{
    char path[4400], *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0;
    json_t *a = json_array();
    FILE *f;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!(f = fopen(path, "r"))) {
        snprintf(err, errlen, "%s: cannot open", path);
        json_decref(a);
        return NULL;
    }
    while ((n = getline(&line, &cap, f)) >= 0) {
        json_error_t je;
        json_t *o;

        lineno++;
        if (n == 0 || line[0] == '\n')
            continue;
        if (!(o = json_loads(line, 0, &je)) || !json_is_object(o)) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno,
                     o ? "not an object" : je.text);
            json_decref(o);
            json_decref(a);
            a = NULL;
            break;
        }
        json_array_append_new(a, o);
    }
    free(line);
    fclose(f);
    return a;
}

static json_t *s_from_results(const char *dir, char *err, size_t errlen)
{
    char path[4400];
    json_error_t je;
    json_t *sum = NULL, *ds = NULL, *rs = NULL, *names, *designs, *results;
    json_t *x, *out = NULL, *llm;
    size_t i;

    snprintf(path, sizeof path, "%s/summary.json", dir);
    if (!(sum = json_load_file(path, 0, &je))) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    if (!(ds = s_jsonl(dir, "designs.jsonl", err, errlen)) ||
        !(rs = s_jsonl(dir, "results.jsonl", err, errlen)))
        goto out;
    names = json_object();
    json_array_foreach(ds, i, x) {
        const char *n = json_string_value(json_object_get(x, "name"));
        const char *h = json_string_value(json_object_get(x, "hash"));
        if (n && h)
            json_object_set_new(names, n, json_string(h));
    }
    designs = json_array();
    json_array_foreach(ds, i, x) {
        const char *p = json_string_value(json_object_get(x, "parent"));
        json_t *ph = p ? json_object_get(names, p) : NULL;
        json_array_append_new(
            designs,
            json_pack("{s:O,s:O,s:O,s:O,s:O,s:O,s:O}", "hash",
                      json_object_get(x, "hash"), "name",
                      json_object_get(x, "name"), "parent",
                      ph ? ph : json_null(), "inspiration",
                      json_object_get(x, "inspiration")
                          ? json_object_get(x, "inspiration")
                          : json_null(),
                      "iteration",
                      json_object_get(x, "iteration")
                          ? json_object_get(x, "iteration")
                          : json_null(),
                      "params",
                      json_object_get(x, "params")
                          ? json_object_get(x, "params")
                          : json_null(),
                      "width",
                      json_object_get(x, "width")
                          ? json_object_get(x, "width")
                          : json_null()));
    }
    results = json_array();
    json_array_foreach(rs, i, x) {
        json_t *curve = json_array(), *e;
        size_t k;
        json_array_foreach(json_object_get(x, "epochs_log"), k, e)
            json_array_append_new(
                curve, json_pack("{s:O,s:O,s:O,s:O}", "epoch",
                                 json_object_get(e, "epoch"), "train_loss",
                                 json_object_get(e, "train_loss"),
                                 "train_acc", json_object_get(e, "train_acc"),
                                 "valid_acc",
                                 json_object_get(e, "valid_acc")));
        json_t *r = json_pack(
            "{s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:O,s:o,s:O}", "job",
            json_object_get(x, "job"), "design",
            json_object_get(x, "design_hash"), "dataset",
            json_object_get(x, "dataset"), "seed", json_object_get(x, "seed"),
            "epochs", json_object_get(x, "epochs"), "status",
            json_object_get(x, "status"), "valid_acc",
            json_object_get(x, "final_valid_acc"), "params",
            json_object_get(x, "params"), "width",
            json_object_get(x, "width"), "order", json_object_get(x, "job"),
            "curve", curve, "fidelity",
            json_object_get(x, "fidelity") ? json_object_get(x, "fidelity")
                                           : json_null());
        if (!r) {
            snprintf(err, errlen, "%s/results.jsonl: result %zu lacks a "
                     "field (job, design_hash, dataset, seed, epochs, "
                     "status, final_valid_acc, params, width)", dir, i + 1);
            json_decref(names);
            json_decref(designs);
            json_decref(results);
            goto out;
        }
        json_array_append_new(results, r);
    }
    llm = json_object_get(sum, "llm");
    out = json_pack("{s:s,s:O?,s:O?,s:O?,s:O?,s:O?,s:o,s:o}", "source", dir,
                    "name", json_object_get(sum, "name"), "dataset",
                    json_object_get(sum, "dataset"), "skeleton",
                    json_object_get(sum, "skeleton"), "designer",
                    json_object_get(sum, "designer"), "llm", llm,
                    "designs", designs, "results", results);
    json_decref(names);

out:
    json_decref(sum);
    json_decref(ds);
    json_decref(rs);
    return out;
}

/* ---------------------------------------------------------------- entry */

static bool s_has(const char *dir, const char *name)
{
    char path[4400];
    struct stat sb;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
        sizeof path)
        return false;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

json_t *report_data_load(const char *dir, const char *tag, char *err,
                         size_t errlen)
{
    json_t *o;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;

    err[0] = '\0';
    if (s_has(dir, "summary.json"))
        o = s_from_results(dir, err, errlen);
    else if (s_has(dir, "data.mdb"))
        o = s_from_store(dir, tag, err, errlen);
    else {
        snprintf(err, errlen, "%s is neither a results folder "
                 "(summary.json) nor a coordinator's state folder "
                 "(data.mdb)", dir);
        return NULL;
    }
    if (!o) {
        if (!err[0])
            snprintf(err, errlen, "%s: out of memory", dir);
        return NULL;
    }
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M UTC", &tm);
    json_object_set_new(o, "generated", json_string(when));
    return o;
}
