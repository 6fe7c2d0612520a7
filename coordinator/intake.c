/*
 * intake.c - how a design becomes jobs: check the request, parse and
 * validate the design with the graph library, assemble it with the
 * skeleton to choose its width (net_check), store it under its canonical
 * hash, and queue one job per seed.
 *
 * Validation happens here, once, so that an invalid design never reaches
 * a worker: a worker receives the canonical text and the width chosen
 * here, and trains exactly that.  The error lines returned are the graph
 * library's, unchanged, because agents show them to the language model.
 */
#include "coord_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"
#include "log.h"
#include "net.h"
#include "wire.h"

#define DESIGN_MAX_BYTES (1 << 20)
#define SEEDS_MAX 10000

static int s_error(coord_submitted_t *out, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int s_error(coord_submitted_t *out, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    char **grown;

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    grown = realloc(out->errors, (out->n_errors + 1) * sizeof *grown);
    if (!grown)
        return -1;
    out->errors = grown;
    out->errors[out->n_errors] = strdup(line);
    if (out->errors[out->n_errors])
        out->n_errors++;
    out->ok = false;
    return 0;
}

void coord_submitted_free(coord_submitted_t *s)
{
    for (size_t i = 0; i < s->n_errors; i++)
        free(s->errors[i]);
    free(s->errors);
    free(s->jobs);
    memset(s, 0, sizeof *s);
}

/* Check the request's own fields; adds errors to out. */
static void s_check_request(const Nader__SubmitRequest *req,
                            coord_submitted_t *out)
{
    if (!req->design || !req->design[0])
        s_error(out, "submit: no design text");
    else if (strlen(req->design) > DESIGN_MAX_BYTES)
        s_error(out, "submit: design text of %zu bytes is over the limit "
                "of %d", strlen(req->design), DESIGN_MAX_BYTES);
    if (req->epochs < 1 || req->epochs > 100000)
        s_error(out, "submit: epochs %d is out of range [1, 100000]",
                req->epochs);
    if (req->n_seeds > SEEDS_MAX)
        s_error(out, "submit: %zu seeds, at most %d per request",
                req->n_seeds, SEEDS_MAX);
    if (req->width < 0 || req->width > 4096)
        s_error(out, "submit: width %d is out of range [0, 4096]",
                req->width);
    if (req->recipe && req->recipe->has_batch &&
        (req->recipe->batch < 1 || req->recipe->batch > 65536))
        s_error(out, "submit: batch %d is out of range [1, 65536]",
                req->recipe->batch);
    if (req->recipe && !net_stem_scale_ok(req->recipe->stem_scale))
        s_error(out, "submit: stem_scale %d is not 1, 2, 4 or 8",
                req->recipe->stem_scale);
    if (req->tag && strlen(req->tag) > 200)
        s_error(out, "submit: tag longer than 200 characters");
}

/* Store the design if it is new. */
static int s_store_design(coord_t *c, store_txn_t *t,
                          const Nader__SubmitRequest *req,
                          const graph_design_t *d, const char *text,
                          coord_submitted_t *out)
{
    Nader__DesignRecord *old = NULL, rec = NADER__DESIGN_RECORD__INIT;
    int rc = store_design_get(t, out->hash, &old);

    (void)c;
    if (rc < 0)
        return rc;
    if (rc == STORE_OK) {
        nader__design_record__free_unpacked(old, NULL);
        return 0;
    }
    out->design_new = true;
    rec.hash = out->hash;
    rec.text = (char *)text;
    rec.name = d->cell && d->cell->name ? d->cell->name : req->name;
    rec.skeleton = req->skeleton;
    rec.has_created_ms = 1;
    rec.created_ms = wire_now_ms();
    rec.source = req->source;
    rec.parent_hash = req->parent_hash;
    rec.inspiration = req->inspiration;
    rec.has_inspiration_id = req->has_inspiration_id;
    rec.inspiration_id = req->inspiration_id;
    rec.has_iteration = req->has_iteration;
    rec.iteration = req->iteration;
    rec.has_two_input = 1;
    rec.two_input = d->two_input;
    return store_design_put(t, &rec);
}

/* Queue one job per seed. */
static int s_queue_jobs(coord_t *c, store_txn_t *t,
                        const Nader__SubmitRequest *req,
                        coord_submitted_t *out)
{
    static const uint64_t default_seed = 777;
    const uint64_t *seeds = req->n_seeds ? req->seeds : &default_seed;
    size_t n = req->n_seeds ? req->n_seeds : 1;
    Nader__JobSpec spec = NADER__JOB_SPEC__INIT;
    sched_job_new_t j = {0};
    int rc;

    out->jobs = calloc(n, sizeof *out->jobs);
    if (!out->jobs)
        return STORE_ENOMEM;
    spec.design_hash = out->hash;
    spec.skeleton = req->skeleton;
    spec.dataset = req->dataset;
    spec.recipe = req->recipe;
    spec.has_epochs = 1;
    spec.epochs = req->epochs;
    spec.has_width = 1;
    spec.width = out->width;
    spec.has_seed = 1;
    j.spec = &spec;
    j.priority = req->has_priority ? req->priority
                                   : (int32_t)c->cfg.jobs_priority;
    j.max_attempts = req->max_attempts;
    j.tag = req->tag ? req->tag : "";
    j.params = out->params;
    j.macs = out->macs;
    for (size_t i = 0; i < n; i++) {
        spec.seed = seeds[i];
        rc = sched_job_submit(c->sched, t, &j, &out->jobs[i]);
        if (rc < 0)
            return rc;
        out->n_jobs++;
    }
    return 0;
}

int coord_submit(coord_t *c, const Nader__SubmitRequest *req,
                 coord_submitted_t *out)
{
    graph_errors_t errs;
    graph_design_t *d = NULL;
    net_config_t ncfg;
    net_choice_t choice = {0};
    store_txn_t *t;
    char *text = NULL;
    int skeleton, rc = 0;

    memset(out, 0, sizeof *out);
    out->ok = true;
    graph_errors_init(&errs);
    s_check_request(req, out);
    if (net_config_default(&ncfg, req->dataset) < 0)
        s_error(out, "submit: unknown data set '%s' (cifar10, "
                "cifar10-valid, cifar100, imagenet16-120)", req->dataset);
    skeleton = net_skeleton_parse(req->skeleton);
    if (skeleton < 0)
        s_error(out, "submit: unknown skeleton '%s' (nb201, darts)",
                req->skeleton);
    if (!out->ok)
        goto done;
    ncfg.skeleton = (net_skeleton_t)skeleton;
    ncfg.width = req->width;
    if (req->recipe && req->recipe->cells_per_stage > 0)
        ncfg.cells_per_stage = req->recipe->cells_per_stage;
    if (req->recipe)
        ncfg.stem_scale = req->recipe->stem_scale;
    if (req->recipe && req->recipe->budget > 0)
        ncfg.budget = req->recipe->budget;

    if (graph_design_parse(req->design, strlen(req->design),
                           req->name ? req->name : "design", &d,
                           &errs) < 0 ||
        net_check(d, &ncfg, &choice, &errs) > 0 ||
        graph_design_hash(d, out->hash) < 0) {
        for (int i = 0; i < errs.n; i++)
            s_error(out, "%s", errs.v[i].message);
        if (out->ok)
            s_error(out, "design: cannot be hashed (not valid)");
        goto done;
    }
    out->width = choice.width;
    out->params = choice.params;
    out->macs = choice.macs;
    text = graph_design_print(d);
    if (!text) {
        rc = STORE_ENOMEM;
        goto done;
    }
    t = coord_txn(c);
    if (!t) {
        rc = STORE_EIO;
        goto done;
    }
    if ((rc = s_store_design(c, t, req, d, text, out)) < 0)
        goto done;
    if (!req->validate_only && (rc = s_queue_jobs(c, t, req, out)) < 0)
        goto done;
    log_info("design %.12s%s (%s, width %d, %lld params) queued as %zu "
             "job%s%s%s", out->hash, out->design_new ? " (new)" : "",
             req->dataset, out->width, (long long)out->params, out->n_jobs,
             out->n_jobs == 1 ? "" : "s", req->tag && req->tag[0] ?
             ", tag " : "", req->tag ? req->tag : "");
done:
    free(text);
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    return rc;
}

int coord_cancel(coord_t *c, const uint64_t *ids, size_t n,
                 const char *reason, uint64_t *cancelled, size_t *n_done,
                 char *errs, size_t errlen)
{
    store_txn_t *t = coord_txn(c);
    size_t used = 0;

    *n_done = 0;
    if (errlen)
        errs[0] = 0;
    if (!t)
        return STORE_EIO;
    for (size_t i = 0; i < n; i++) {
        char why[160];
        int rc = sched_job_cancel(c->sched, t, ids[i], reason, why,
                                  sizeof why);
        if (rc < 0)
            return rc;
        if (rc == 0)
            cancelled[(*n_done)++] = ids[i];
        else if (used + 2 < errlen)
            used += (size_t)snprintf(errs + used, errlen - used, "%s%s",
                                     used ? "; " : "", why);
    }
    return 0;
}
