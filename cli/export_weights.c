/*
 * export_weights.c - `nader export --weights`: a design's trained weights
 * as a safetensors file named as the exported module's state_dict().
 *
 * nader already names parameters as the module paths of the exported
 * network (net_param_list), so the work here is checking: every
 * parameter and BN buffer of the assembled network must be in the source
 * with its shape and as float32, a file made for another design is
 * refused (its metadata's design hash, or a tensor this network does not
 * have), and a checkpoint's SGD momenta are left behind.  The source is a
 * file (`nader train --save-weights`, a checkpoint, or a PyTorch
 * save_safetensors of the exported module), or the latest checkpoint a
 * running job left in the coordinator's store.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "export_cli.h"
#include "safetensors.h"
#include "store.h"

/* Copy job's checkpoint from the store into a file at path. */
static int s_checkpoint_file(const export_design_t *x, const char *path,
                             char *err, size_t errlen)
{
    store_options_t so = {.read_only = true};
    Nader__CheckpointRecord *c = NULL;
    store_t *s = NULL;
    store_txn_t *t = NULL;
    FILE *f = NULL;
    int rc = -1, got;
    bool ok;

    if (store_open(x->store, &so, &s, err, errlen) != STORE_OK)
        return -1;
    if (store_begin(s, false, &t, err, errlen) != STORE_OK)
        goto out;
    got = store_checkpoint_get(t, x->job, &c);
    if (got < 0) {
        snprintf(err, errlen, "%s", store_txn_error(t));
        goto out;
    }
    if (got == STORE_NOTFOUND || !c->has_data || c->data.len == 0) {
        snprintf(err, errlen, "store %s has no weights of job %llu: it "
                 "keeps a job's latest checkpoint only while the job runs; "
                 "train the design with `nader train --save-weights FILE` "
                 "and give --weights-from FILE", x->store,
                 (unsigned long long)x->job);
        goto out;
    }
    f = fopen(path, "wb");
    ok = f && fwrite(c->data.data, 1, c->data.len, f) == c->data.len;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        unlink(path);
        goto out;
    }
    rc = 0;

out:
    if (c)
        nader__checkpoint_record__free_unpacked(c, NULL);
    store_abort(&t);
    store_close(&s);
    return rc;
}

/* Is name one of the n parameters? */
static bool s_known(const net_param_t *p, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(p[i].name, name) == 0)
            return true;
    return false;
}

/* Tensors a source may hold beyond the parameters. */
static bool s_ignorable(const char *name)
{
    size_t n = strlen(name), k = strlen(".num_batches_tracked");

    return strncmp(name, "momentum.", 9) == 0 ||
           (n > k && strcmp(name + n - k, ".num_batches_tracked") == 0);
}

/* Check that st is for this design and network. */
static int s_check_source(const safetensors_t *st, const char *hash,
                          const net_param_t *p, int np, char *err,
                          size_t errlen)
{
    const char *their = safetensors_meta(st, "design");

    if (their && hash[0] && strcmp(their, hash) != 0) {
        snprintf(err, errlen, "%s: weights of design %s, not of %s",
                 safetensors_path(st), their, hash);
        return -1;
    }
    for (int i = 0; i < safetensors_count(st); i++) {
        const char *name = safetensors_at(st, i)->name;
        if (!s_ignorable(name) && !s_known(p, np, name)) {
            snprintf(err, errlen, "%s: tensor %s is not a parameter of "
                     "this network (weights of another design or width?)",
                     safetensors_path(st), name);
            return -1;
        }
    }
    return 0;
}

int export_weights_write(const export_opts_t *o, const export_design_t *x,
                         char *err, size_t errlen)
{
    char tmp[4200] = "", hash[33] = "", width[16], cells[16], scale[16];
    const char *src = o->weights_from;
    safetensors_entry_t *e = NULL;
    safetensors_t *st = NULL;
    graph_errors_t errs;
    net_param_t *p = NULL;
    float **data = NULL;
    net_t *net = NULL;
    int np = 0, rc = -1;

    graph_errors_init(&errs);
    if (!src && !(x->job && x->store[0])) {
        snprintf(err, errlen, "--weights: where are the trained weights? "
                 "give --weights-from FILE (`nader train --save-weights "
                 "FILE` writes one)");
        return -1;
    }
    if (!src) {
        snprintf(tmp, sizeof tmp, "%s.checkpoint.%ld", o->weights,
                 (long)getpid());
        if (s_checkpoint_file(x, tmp, err, errlen) < 0)
            return -1;
        src = tmp;
    }
    if (safetensors_load(src, &st, err, errlen) != 0)
        goto out;
    if (net_build(x->design, &x->cfg, 1, &net, &errs) < 0) {
        snprintf(err, errlen, "%s", errs.n ? errs.v[0].message
                                           : "the design does not assemble");
        goto out;
    }
    graph_design_hash(x->design, hash);
    if ((np = net_param_list(net, &p)) < 0 ||
        !(e = calloc((size_t)np + 1, sizeof *e)) ||
        !(data = calloc((size_t)np + 1, sizeof *data))) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (s_check_source(st, hash, p, np, err, errlen) < 0)
        goto out;
    for (int i = 0; i < np; i++) {
        if (!(data[i] = malloc((size_t)p[i].numel * sizeof(float)))) {
            snprintf(err, errlen, "out of memory");
            goto out;
        }
        if (safetensors_read_f32(st, p[i].name, p[i].ndim, p[i].shape,
                                 data[i], err, errlen) != 0)
            goto out;
        e[i] = (safetensors_entry_t){p[i].name, p[i].ndim, p[i].shape,
                                     data[i]};
    }
    snprintf(width, sizeof width, "%d", net->width);
    snprintf(cells, sizeof cells, "%d", x->cfg.cells_per_stage);
    snprintf(scale, sizeof scale, "%d", net->config.stem_scale);
    const char *meta[] = {"format", "nader-weights", "design", hash,
                          "skeleton", net_skeleton_name(x->cfg.skeleton),
                          "dataset", x->dataset, "width", width,
                          "cells_per_stage", cells, "stem_scale", scale,
                          NULL};
    if (safetensors_save(o->weights, e, np, meta, err, errlen) != 0)
        goto out;
    rc = 0;

out:
    for (int i = 0; data && i < np; i++)
        free(data[i]);
    free(data);
    free(e);
    free(p);
    net_destroy(&net);
    safetensors_destroy(&st);
    graph_errors_free(&errs);
    if (tmp[0])
        unlink(tmp);
    return rc;
}
