/*
 * export_source.c - where `nader export` finds its design: a block file,
 * a coordinator's store, or a search's results folder (see export_cli.h).
 *
 * A design taken from a job is configured as the job's spec says - the
 * worker assembles it from exactly these fields (skeleton, data set,
 * width, cells per stage, stem scale, budget) - so the exported network
 * is the trained one.  "Best" means the highest final validation accuracy among
 * the successful results of the highest fidelity (most epochs), so a
 * full-protocol result outranks any screening run.  A results folder
 * (written by `nader run`) names its best design itself; when the
 * store it came from is not at hand, the design is rebuilt from the
 * folder's width and checked against the parameter count the search
 * recorded.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "export_cli.h"
#include "records.h"
#include "store.h"

#define DEFAULT_STATE "nader-state"

static bool s_is_file(const char *dir, const char *name)
{
    char path[4400];
    struct stat sb;

    if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >=
        sizeof path)
        return false;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static char *s_slurp(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0, cap = 0, got;

    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (n + 4096 + 1 > cap) {
            char *b = realloc(buf, cap = cap ? 2 * cap : 16384);
            if (!b) {
                free(buf);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            buf = b;
        }
        got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(buf);
        buf = NULL;
    } else {
        buf[n] = '\0';
    }
    fclose(f);
    return buf;
}

/* Parse text into x->design; 1 with errors when it is not a design. */
static int s_parse(export_design_t *x, const char *text, const char *name,
                   graph_errors_t *errs)
{
    if (graph_design_parse(text, strlen(text), name, &x->design, errs) < 0)
        return 1;
    return 0;
}

/* Set the configuration: the source's values, then the flags. */
static int s_config(export_design_t *x, const export_opts_t *o,
                    const char *dataset, const char *skeleton, int width,
                    int cells, int stem_scale, int64_t budget, char *err,
                    size_t errlen)
{
    const char *ds = o->dataset ? o->dataset : dataset ? dataset : "cifar10";
    const char *sk = o->skeleton ? o->skeleton : skeleton;
    int k;

    if (net_config_default(&x->cfg, ds) < 0) {
        snprintf(err, errlen, "unknown data set '%s' (cifar10, "
                 "cifar10-valid, cifar100, imagenet16-120)", ds);
        return 2;
    }
    snprintf(x->dataset, sizeof x->dataset, "%s", ds);
    if (sk && sk[0]) {
        if ((k = net_skeleton_parse(sk)) < 0) {
            snprintf(err, errlen, "unknown skeleton '%s' (nb201, darts)",
                     sk);
            return 2;
        }
        x->cfg.skeleton = (net_skeleton_t)k;
    } else {
        x->cfg.skeleton = x->design->two_input ? NET_SKELETON_DARTS
                                               : NET_SKELETON_NB201;
    }
    x->cfg.width = o->width ? o->width : width;
    if (o->cells || cells > 0)
        x->cfg.cells_per_stage = o->cells ? o->cells : cells;
    if (o->stem_scale || stem_scale > 0)
        x->cfg.stem_scale = o->stem_scale ? o->stem_scale : stem_scale;
    if (o->budget || budget > 0)
        x->cfg.budget = o->budget ? o->budget : budget;
    return 0;
}

/* --------------------------------------------------------- from a file */

static int s_from_file(const export_opts_t *o, export_design_t *x,
                       graph_errors_t *errs, char *err, size_t errlen)
{
    char *text = s_slurp(o->path, err, errlen);
    int rc;

    if (!text)
        return 2;
    rc = s_parse(x, text, o->path, errs);
    free(text);
    if (rc)
        return rc;
    snprintf(x->label, sizeof x->label, "%s", o->path);
    return s_config(x, o, NULL, NULL, 0, 0, 0, 0, err, errlen);
}

/* --------------------------------------------------------- from a store */

/* Whether a result tagged tag belongs to want: the same tag, or one
 * below it ("search:s1" takes "search:s1:screen"). */
static bool s_tag_in(const char *tag, const char *want)
{
    size_t n = strlen(want);

    return tag && strncmp(tag, want, n) == 0 &&
           (tag[n] == '\0' || tag[n] == ':');
}

typedef struct s_best {
    const char *tag;
    const char *hash;         /* only this design, or NULL */
    uint64_t job;
    int epochs;
    double acc;
} s_best_t;

static int s_best_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_best_t *b = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)m;
    const Nader__Result *r = rr->result;

    if (!r || r->status != NADER__RESULT_STATUS__RESULT_OK ||
        r->load_test || !r->has_final_valid_acc)
        return 0;
    if (b->tag && !s_tag_in(rr->tag, b->tag))
        return 0;
    if (b->hash && (!rr->design_hash || strcmp(rr->design_hash, b->hash)))
        return 0;
    if (!b->job || rr->epochs > b->epochs ||
        (rr->epochs == b->epochs && r->final_valid_acc > b->acc)) {
        b->job = id;
        b->epochs = rr->epochs;
        b->acc = r->final_valid_acc;
    }
    return 0;
}

typedef struct s_prefix {
    const char *prefix;
    char hash[33];
    int n;
} s_prefix_t;

static int s_prefix_visit(void *ctx, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    s_prefix_t *p = ctx;
    size_t n = strlen(p->prefix);

    (void)val;
    (void)vlen;
    if (klen < n || memcmp(key, p->prefix, n) != 0)
        return 1;
    if (p->n++ == 0)
        snprintf(p->hash, sizeof p->hash, "%.*s", (int)klen,
                 (const char *)key);
    return 0;
}

/* The design and settings of job id. */
static int s_from_job(store_txn_t *t, const char *dir, uint64_t id,
                      const export_opts_t *o, export_design_t *x,
                      graph_errors_t *errs, char *err, size_t errlen)
{
    Nader__JobRecord *j = NULL;
    Nader__DesignRecord *d = NULL;
    Nader__ResultRecord *rr = NULL;
    const Nader__JobSpec *sp;
    int rc = 1, got;

    got = store_job_get(t, id, &j);
    if (got != STORE_OK || !j->spec || !j->spec->design_hash) {
        snprintf(err, errlen, "store %s: %s", dir,
                 got < 0 ? store_txn_error(t) : "no such job");
        rc = got < 0 ? 2 : 1;
        goto out;
    }
    sp = j->spec;
    got = store_design_get(t, sp->design_hash, &d);
    if (got != STORE_OK || !d->text) {
        snprintf(err, errlen, "store %s: job %llu: design %s: %s", dir,
                 (unsigned long long)id, sp->design_hash,
                 got < 0 ? store_txn_error(t) : "not in the store");
        rc = got < 0 ? 2 : 1;
        goto out;
    }
    if ((rc = s_parse(x, d->text, sp->design_hash, errs)) != 0)
        goto out;
    rc = s_config(x, o, sp->dataset, sp->skeleton, sp->width,
                  sp->recipe ? sp->recipe->cells_per_stage : 0,
                  sp->recipe ? sp->recipe->stem_scale : 0,
                  sp->recipe ? sp->recipe->budget : 0, err, errlen);
    if (rc)
        goto out;
    x->job = id;
    snprintf(x->store, sizeof x->store, "%s", dir);
    snprintf(x->label, sizeof x->label, "job %llu of %s",
             (unsigned long long)id, dir);
    x->trained_params = j->has_params ? j->params : -1;
    if (store_result_get(t, id, &rr) == STORE_OK && rr->result) {
        const Nader__Result *r = rr->result;
        snprintf(x->note, sizeof x->note,
                 "Job %llu (seed %llu) reached %.2f%% validation accuracy "
                 "after %d epochs (%s).", (unsigned long long)id,
                 (unsigned long long)rr->seed, r->final_valid_acc,
                 rr->epochs, records_status_name(r->status));
        if (r->params > 0)
            x->trained_params = r->params;
    }

out:
    if (j)
        nader__job_record__free_unpacked(j, NULL);
    if (d)
        nader__design_record__free_unpacked(d, NULL);
    if (rr)
        nader__result_record__free_unpacked(rr, NULL);
    return rc;
}

/* A design of the store by hash, configured by its best result's job
 * when it has one. */
static int s_from_design(store_txn_t *t, const char *dir,
                         const export_opts_t *o, export_design_t *x,
                         graph_errors_t *errs, char *err, size_t errlen)
{
    s_prefix_t p = {.prefix = o->design};
    s_best_t b = {.tag = o->tag};
    Nader__DesignRecord *d = NULL;
    int rc, got;

    if (store_scan(t, STORE_DESIGNS, o->design, strlen(o->design),
                   s_prefix_visit, &p) < 0) {
        snprintf(err, errlen, "%s", store_txn_error(t));
        return 2;
    }
    if (p.n != 1) {
        snprintf(err, errlen, "store %s: %s design%s %s '%s'", dir,
                 p.n ? "several" : "no", p.n ? "s" : "",
                 p.n ? "start with" : "starts with", o->design);
        return 1;
    }
    b.hash = p.hash;
    if (store_scan_msg(t, STORE_RESULTS, 0,
                       &nader__result_record__descriptor, s_best_visit,
                       &b) < 0) {
        snprintf(err, errlen, "%s", store_txn_error(t));
        return 2;
    }
    if (b.job)
        return s_from_job(t, dir, b.job, o, x, errs, err, errlen);

    got = store_design_get(t, p.hash, &d);
    if (got != STORE_OK) {
        snprintf(err, errlen, "store %s: design %s: %s", dir, p.hash,
                 got < 0 ? store_txn_error(t) : "not found");
        return 2;
    }
    rc = s_parse(x, d->text, p.hash, errs);
    if (rc == 0)
        rc = s_config(x, o, NULL, d->skeleton, 0, 0, 0, 0, err, errlen);
    snprintf(x->label, sizeof x->label, "design %s of %s", p.hash, dir);
    nader__design_record__free_unpacked(d, NULL);
    return rc;
}

static int s_from_store(const char *dir, const export_opts_t *o,
                        export_design_t *x, graph_errors_t *errs, char *err,
                        size_t errlen)
{
    store_options_t so = {.read_only = true};
    store_t *s = NULL;
    store_txn_t *t = NULL;
    s_best_t b = {.tag = o->tag};
    int rc = 2;

    if (store_open(dir, &so, &s, err, errlen) != STORE_OK)
        return 2;
    if (store_begin(s, false, &t, err, errlen) != STORE_OK)
        goto out;
    if (o->job) {
        rc = s_from_job(t, dir, o->job, o, x, errs, err, errlen);
    } else if (o->design) {
        rc = s_from_design(t, dir, o, x, errs, err, errlen);
    } else if (store_scan_msg(t, STORE_RESULTS, 0,
                              &nader__result_record__descriptor,
                              s_best_visit, &b) < 0) {
        snprintf(err, errlen, "%s", store_txn_error(t));
    } else if (!b.job) {
        snprintf(err, errlen, "store %s has no successful result%s%s yet",
                 dir, o->tag ? " tagged " : "", o->tag ? o->tag : "");
        rc = 1;
    } else {
        rc = s_from_job(t, dir, b.job, o, x, errs, err, errlen);
    }

out:
    store_abort(&t);
    store_close(&s);
    return rc;
}

/* ------------------------------------------------ from a results folder */

/* The designs.jsonl entry of hash, or NULL (a new reference). */
static json_t *s_design_entry(const char *dir, const char *hash, char *err,
                              size_t errlen)
{
    char path[4400], *text, *line, *save = NULL;
    json_t *found = NULL;

    snprintf(path, sizeof path, "%s/designs.jsonl", dir);
    if (!(text = s_slurp(path, err, errlen)))
        return NULL;
    for (line = strtok_r(text, "\n", &save); line && !found;
         line = strtok_r(NULL, "\n", &save)) {
        json_t *o = json_loads(line, 0, NULL);
        const char *h = json_string_value(json_object_get(o, "hash"));
        if (h && strcmp(h, hash) == 0)
            found = json_incref(o);
        json_decref(o);
    }
    free(text);
    if (!found)
        snprintf(err, errlen, "%s: no design %s", path, hash);
    return found;
}

/* Parameters of x at its width with n cells per stage, or -1. */
static int64_t s_params_at(export_design_t *x, int cells)
{
    net_config_t c = x->cfg;
    net_choice_t ch;

    c.cells_per_stage = cells;
    if (net_choose_width(x->design, &c, &ch, NULL) < 0)
        return -1;
    return ch.params;
}

static int s_from_results(const char *dir, const export_opts_t *o,
                          export_design_t *x, graph_errors_t *errs,
                          char *err, size_t errlen)
{
    char path[4400];
    json_error_t je;
    json_t *sum, *entry = NULL;
    const char *hash;
    int rc = 2;

    snprintf(path, sizeof path, "%s/summary.json", dir);
    if (!(sum = json_load_file(path, 0, &je))) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return 2;
    }
    hash = json_string_value(json_object_get(json_object_get(sum, "best"),
                                             "hash"));
    if (!hash) {
        snprintf(err, errlen, "%s: the search has no best design yet",
                 path);
        rc = 1;
        goto out;
    }
    snprintf(path, sizeof path, "%s/state", dir);
    if (o->store || s_is_file(path, "data.mdb")) {
        export_opts_t o2 = *o;
        o2.design = hash;
        o2.tag = NULL;
        rc = s_from_store(o->store ? o->store : path, &o2, x, errs, err,
                          errlen);
        goto out;
    }
    if (!(entry = s_design_entry(dir, hash, err, errlen)))
        goto out;
    rc = s_parse(x, json_string_value(json_object_get(entry, "design"))
                        ? json_string_value(json_object_get(entry,
                                                            "design"))
                        : "",
                 hash, errs);
    if (rc)
        goto out;
    rc = s_config(x, o,
                  json_string_value(json_object_get(sum, "dataset")),
                  json_string_value(json_object_get(sum, "skeleton")),
                  (int)json_integer_value(json_object_get(entry, "width")),
                  0, (int)json_integer_value(json_object_get(sum,
                                                             "stem_scale")),
                  0, err, errlen);
    if (rc)
        goto out;
    snprintf(x->label, sizeof x->label, "%s (design %s)", dir, hash);
    x->trained_params = json_integer_value(json_object_get(entry, "params"));

    /* The folder does not say how many cells per stage the search used:
     * take the count whose network has the parameters it recorded. */
    if (!o->cells && x->trained_params > 0 &&
        s_params_at(x, x->cfg.cells_per_stage) != x->trained_params) {
        for (int n = 1; n <= 16; n++) {
            if (s_params_at(x, n) == x->trained_params) {
                x->cfg.cells_per_stage = n;
                break;
            }
        }
    }
    if (x->trained_params > 0 &&
        s_params_at(x, x->cfg.cells_per_stage) != x->trained_params) {
        snprintf(err, errlen, "%s: design %s was trained with %lld "
                 "parameters, but no configuration given matches; give "
                 "--cells N or --store DIR", dir, hash,
                 (long long)x->trained_params);
        rc = 1;
    }

out:
    json_decref(entry);
    json_decref(sum);
    return rc;
}

/* ---------------------------------------------------------------- entry */

int export_design_load(const export_opts_t *o, export_design_t *x,
                       graph_errors_t *errs, char *err, size_t errlen)
{
    const char *dir = o->path;
    struct stat sb;
    bool folder;

    memset(x, 0, sizeof *x);
    x->trained_params = -1;
    err[0] = '\0';
    if (o->path && stat(o->path, &sb) != 0) {
        snprintf(err, errlen, "%s: %s", o->path, strerror(errno));
        return 2;
    }
    folder = o->path && S_ISDIR(sb.st_mode);
    if (o->path && !folder)
        return s_from_file(o, x, errs, err, errlen);
    if (folder && !o->best) {
        snprintf(err, errlen, "%s is a folder: add --best for its best "
                 "design", o->path);
        return 2;
    }
    if (!dir)
        dir = o->store ? o->store : DEFAULT_STATE;
    if (s_is_file(dir, "summary.json") && !o->job && !o->design)
        return s_from_results(dir, o, x, errs, err, errlen);
    if (!s_is_file(dir, "data.mdb")) {
        snprintf(err, errlen, "%s is neither a results folder "
                 "(summary.json) nor a coordinator's state folder "
                 "(data.mdb)", dir);
        return 2;
    }
    return s_from_store(dir, o, x, errs, err, errlen);
}

void export_design_free(export_design_t *x)
{
    graph_design_destroy(&x->design);
}
