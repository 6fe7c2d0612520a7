/*
 * train.c - train one design on one data set (see train.h).
 *
 * The run: load the data set and upload its splits to the device once as
 * bytes; build the network at the batch size (and, lazily, at the sizes
 * of last partial batches, sharing the parameters); initialise, or load
 * weights, or resume from a checkpoint; then per epoch set the cosine
 * rate, train over the feed's batches, evaluate, report, and checkpoint.
 *
 * Decisions a reader would otherwise miss:
 *  - The last partial batch of an epoch is trained on, as PyTorch's
 *    DataLoader does by default, by a second network of that batch size
 *    sharing the parameters; only a lone last sample is dropped (BN
 *    statistics of one sample are degenerate).
 *  - Loss and correct counts accumulate on the device (backend xent) and
 *    are read back every few steps (every step on the CPU, where reading
 *    costs nothing), so a GPU never waits for the host; NaN or infinite
 *    loss ends the run as diverged at the next read.
 *  - On a backend that can capture a step (CUDA Graphs), the steady-state
 *    step is captured once per epoch (the learning rate is part of it)
 *    and replayed; the batch spec is uploaded into fixed buffers first.
 *    Not done when a DropPath is active (its key changes every step) or
 *    when NADER_NO_CAPTURE is set.
 *  - The reported test accuracy at the best epoch is the test accuracy
 *    of the epoch with the best validation accuracy, not the maximum over
 *    epochs, so the test split never selects anything.
 */
#include "train.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "checkpoint.h"
#include "data.h"
#include "log.h"
#include "network.h"
#include "train_feed.h"

#define TRAIN_MAX_NETS 6
#define TRAIN_CHECK_EVERY_GPU 16

typedef struct dev_split {
    uint8_t *images;
    int32_t *labels;
    int n;
} dev_split_t;

typedef struct trainer {
    const graph_design_t *design;
    net_config_t ncfg;
    const train_config_t *cfg;
    const train_hooks_t *hooks;
    train_result_t *r;
    char err[640];

    data_set_t *data;
    char split_name[256];
    int classes, h, w, pad;
    float mean[3], std[3];
    dev_split_t train, valid, test;
    bool valid_is_test;

    backend_t *be;
    bool host_backend;
    bool capture, captured;
    bool warm;                /* a full-size step has run uncaptured */
    int captured_epoch;
    struct {
        int batch;
        net_t *net;
        network_t *nw;
    } nets[TRAIN_MAX_NETS];
    int n_nets;
    feed_t *feed;
    float *acc;               /* device: train [loss, correct], eval [..] */

    int epoch0;
    int64_t step, step0;      /* steps taken; at the start of this run */
    double run_start, train_seconds, eval_seconds;
    int64_t trained, evals;
} trainer_t;

static void s_fail(trainer_t *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_fail(trainer_t *t, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(t->r->reason, sizeof(t->r->reason), fmt, ap);
    va_end(ap);
    t->r->status = TRAIN_FAILED;
}

static double s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void train_config_default(train_config_t *c)
{
    memset(c, 0, sizeof(*c));
    c->dataset = "cifar10";
    c->device = "cpu";
    c->precision = BACKEND_FP32;
    c->epochs = 200;
    c->batch = 256;
    c->seed = 777;
    c->lr = 0.1;
    c->momentum = 0.9;
    c->weight_decay = 5e-4;
    c->nesterov = true;
}

const char *train_status_name(train_status_t s)
{
    switch (s) {
    case TRAIN_OK:
        return "ok";
    case TRAIN_DIVERGED:
        return "diverged";
    case TRAIN_CANCELLED:
        return "cancelled";
    default:
        return "failed";
    }
}

void train_result_free(train_result_t *r)
{
    free(r->epochs);
    r->epochs = NULL;
    r->n_epochs = 0;
}

/* ---------------------------------------------------------------- setup */

static int s_check_config(trainer_t *t)
{
    const train_config_t *c = t->cfg;

    if (c->epochs < 1 || c->epochs > 100000)
        s_fail(t, "epochs must be 1..100000, not %d", c->epochs);
    else if (c->batch < 1 || c->batch > 65536)
        s_fail(t, "batch must be 1..65536, not %d", c->batch);
    else if (!(c->lr > 0) || !isfinite(c->lr))
        s_fail(t, "learning rate must be positive, not %g", c->lr);
    else if (!(c->momentum >= 0) || !(c->weight_decay >= 0))
        s_fail(t, "momentum and weight decay must be >= 0");
    else if (c->checkpoint_every > 0 && !c->checkpoint)
        s_fail(t, "checkpoint_every is set but no checkpoint file");
    else
        return 0;
    return -1;
}

static int s_upload_split(trainer_t *t, const data_split_t *s,
                          dev_split_t *d)
{
    backend_t *be = t->be;
    size_t bytes = (size_t)s->n * 3 * (size_t)s->h * (size_t)s->w;

    d->n = s->n;
    if (s->n == 0)
        return 0;
    d->images = be->vt->alloc(be, bytes);
    d->labels = be->vt->alloc(be, (size_t)s->n * sizeof(int32_t));
    if (!d->images || !d->labels) {
        s_fail(t, "%s: out of memory for the %s split (%d images)",
               be->device, s->name, s->n);
        return -1;
    }
    if (be->vt->upload(be, d->images, s->images, bytes) ||
        be->vt->upload(be, d->labels, s->labels,
                       (size_t)s->n * sizeof(int32_t))) {
        s_fail(t, "%s: uploading the %s split: %s", be->device, s->name,
               be->err);
        return -1;
    }
    return 0;
}

static void s_free_split(trainer_t *t, dev_split_t *d)
{
    if (d->images)
        t->be->vt->free(t->be, d->images);
    if (d->labels)
        t->be->vt->free(t->be, d->labels);
    memset(d, 0, sizeof(*d));
}

/* A data file read: a sign of life before the first step. */
static void s_data_file(void *ctx, const char *path)
{
    trainer_t *t = ctx;

    (void)path;
    if (t->hooks && t->hooks->on_beat)
        t->hooks->on_beat(t->hooks->ctx);
}

/* Load the data set, keep its facts, upload it, drop the host copy. */
static int s_data(trainer_t *t)
{
    const train_config_t *c = t->cfg;
    data_options_t o = {c->dataset, c->data_dir, c->split_file,
                        DATA_SPLIT_SEED, s_data_file, t};
    data_set_t *d;
    int rc;

    if (data_set_load(&o, &t->data, t->err, sizeof(t->err)) != 0) {
        s_fail(t, "%s", t->err);
        return -1;
    }
    d = t->data;
    t->classes = d->classes;
    t->h = d->h;
    t->w = d->w;
    t->pad = d->pad;
    memcpy(t->mean, d->mean, sizeof(t->mean));
    memcpy(t->std, d->std, sizeof(t->std));
    t->valid_is_test = d->test.n == 0 && strcmp(d->valid.name, "test") == 0;
    snprintf(t->split_name, sizeof(t->split_name), "%s",
             c->split_file ? c->split_file : "seeded");
    rc = s_upload_split(t, &d->train, &t->train);
    if (rc == 0)
        rc = s_upload_split(t, &d->valid, &t->valid);
    if (rc == 0)
        rc = s_upload_split(t, &d->test, &t->test);
    data_set_destroy(&t->data);
    return rc;
}

/* The network for batches of n, built on first use. */
static network_t *s_net_for(trainer_t *t, int n)
{
    graph_errors_t errs;
    net_t *net = NULL;
    network_t *nw = NULL;
    int i;

    for (i = 0; i < t->n_nets; i++)
        if (t->nets[i].batch == n)
            return t->nets[i].nw;
    if (t->n_nets == TRAIN_MAX_NETS) {
        s_fail(t, "too many batch sizes");
        return NULL;
    }
    graph_errors_init(&errs);
    if (net_build(t->design, &t->ncfg, n, &net, &errs) != 0) {
        s_fail(t, "the design does not assemble: %s",
               errs.n ? errs.v[0].message : "unknown error");
        graph_errors_free(&errs);
        return NULL;
    }
    graph_errors_free(&errs);
    if (network_new(t->be, net, t->n_nets ? t->nets[0].nw : NULL, &nw,
                    t->err, sizeof(t->err)) != 0) {
        s_fail(t, "%s", t->err);
        net_destroy(&net);
        return NULL;
    }
    t->nets[t->n_nets].batch = n;
    t->nets[t->n_nets].net = net;
    t->nets[t->n_nets].nw = nw;
    t->n_nets++;
    return nw;
}

static bool s_has_droppath(const net_t *net)
{
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].op == GRAPH_OP_DROPPATH && net->nodes[i].prob > 0)
            return true;
    return false;
}

/* This run's identity, as a checkpoint records it. */
static void s_identity(const trainer_t *t, checkpoint_info_t *ci)
{
    const train_config_t *c = t->cfg;

    memset(ci, 0, sizeof(*ci));
    if (graph_design_hash(t->design, ci->design) != 0)
        snprintf(ci->design, sizeof(ci->design), "unhashable");
    snprintf(ci->dataset, sizeof(ci->dataset), "%s", c->dataset);
    snprintf(ci->split, sizeof(ci->split), "%s", t->split_name);
    snprintf(ci->skeleton, sizeof(ci->skeleton), "%s",
             net_skeleton_name(t->ncfg.skeleton));
    ci->stem_scale = t->nets[0].net->config.stem_scale;
    ci->width = t->nets[0].net->width;
    ci->batch = c->batch;
    ci->epochs = c->epochs;
    ci->seed = c->seed;
    ci->lr = c->lr;
    ci->momentum = c->momentum;
    ci->weight_decay = c->weight_decay;
    ci->nesterov = c->nesterov;
}

static int s_resume(trainer_t *t, network_t *nw)
{
    const char *path = t->cfg->resume;
    checkpoint_info_t have, want;
    safetensors_t *st = NULL;
    train_result_t *r = t->r;
    int rc;

    if (checkpoint_read(path, &have, &st, t->err, sizeof(t->err)) != 0) {
        s_fail(t, "%s", t->err);
        return -1;
    }
    s_identity(t, &want);
    rc = checkpoint_match(&have, &want, path, t->err, sizeof(t->err));
    if (rc == 0)
        rc = network_weights_load(nw, st, true, t->err, sizeof(t->err));
    if (rc == 0 && have.epoch > t->cfg->epochs) {
        snprintf(t->err, sizeof(t->err), "checkpoint %s is at epoch %d of "
                 "%d", path, have.epoch, t->cfg->epochs);
        rc = -1;
    }
    if (rc == 0) {
        t->epoch0 = have.epoch;
        t->step = have.step;
        r->epochs = have.history;
        r->n_epochs = have.n_history;
        have.history = NULL;
    } else {
        s_fail(t, "%s", t->err);
    }
    checkpoint_info_free(&have);
    safetensors_destroy(&st);
    return rc ? -1 : 0;
}

static int s_params(trainer_t *t, network_t *nw)
{
    safetensors_t *st = NULL;
    int rc;

    if (network_init(nw, t->cfg->seed) != 0) {
        s_fail(t, "initialising the parameters: %s", t->be->err);
        return -1;
    }
    if (t->cfg->resume)
        return s_resume(t, nw);
    if (!t->cfg->init_weights)
        return 0;
    rc = safetensors_load(t->cfg->init_weights, &st, t->err,
                          sizeof(t->err));
    if (rc == 0)
        rc = network_weights_load(nw, st, false, t->err, sizeof(t->err));
    safetensors_destroy(&st);
    if (rc)
        s_fail(t, "%s", t->err);
    return rc ? -1 : 0;
}

static int s_setup(trainer_t *t)
{
    const train_config_t *c = t->cfg;
    backend_options_t bo = {c->threads, c->precision};
    network_t *nw;
    char err[320];

    if (s_check_config(t))
        return -1;
    t->be = backend_new(c->device ? c->device : "cpu", &bo, err,
                        sizeof(err));
    if (!t->be) {
        s_fail(t, "%s", err);
        return -1;
    }
    snprintf(t->r->device, sizeof(t->r->device), "%s",
             t->be->description);
    t->host_backend = strcmp(t->be->vt->name, "cpu") == 0;
    if (s_data(t))
        return -1;
    t->ncfg.classes = t->classes;
    t->ncfg.in_c = 3;
    t->ncfg.in_h = t->h;
    t->ncfg.in_w = t->w;
    nw = s_net_for(t, c->batch);
    if (!nw)
        return -1;
    t->ncfg.width = t->nets[0].net->width;
    t->r->width = t->nets[0].net->width;
    t->r->params = t->nets[0].net->params;
    t->r->macs = t->nets[0].net->macs;
    if (s_params(t, nw))
        return -1;
    t->step0 = t->step;
    t->capture = t->be->vt->capture_begin && t->be->vt->capture_end &&
                 t->be->vt->replay && !s_has_droppath(t->nets[0].net) &&
                 !getenv("NADER_NO_CAPTURE");
    if (feed_new(t->be, c->batch, t->h, t->w, t->host_backend, &t->feed,
                 t->err, sizeof(t->err)) != 0) {
        s_fail(t, "%s", t->err);
        return -1;
    }
    t->acc = t->be->vt->alloc(t->be, 4 * sizeof(float));
    if (!t->acc) {
        s_fail(t, "%s: out of memory", t->be->device);
        return -1;
    }
    return 0;
}

static void s_teardown(trainer_t *t)
{
    feed_destroy(&t->feed);
    for (int i = t->n_nets - 1; i >= 0; i--) {
        network_destroy(&t->nets[i].nw);
        net_destroy(&t->nets[i].net);
    }
    if (t->be) {
        if (t->acc)
            t->be->vt->free(t->be, t->acc);
        s_free_split(t, &t->train);
        s_free_split(t, &t->valid);
        s_free_split(t, &t->test);
        t->r->peak_bytes = t->be->peak_bytes;
        backend_destroy(&t->be);
    }
    data_set_destroy(&t->data);
}

/* ----------------------------------------------------------------- steps */

/* The calls of one training step, as captured for replay. */
static int s_step_calls(trainer_t *t, const feed_batch_t *b, network_t *nw,
                        const backend_sgd_t *sgd)
{
    backend_t *be = t->be;

    if (feed_build(t->feed, b, t->err, sizeof(t->err)) ||
        network_forward(nw, b->x, true, t->cfg->seed, (uint64_t)t->step,
                        t->err, sizeof(t->err)))
        return -1;
    if (be->vt->xent(be, network_logits(nw), b->labels, b->n, t->classes,
                     network_dlogits(nw), t->acc) != 0) {
        snprintf(t->err, sizeof(t->err), "loss: %s", be->err);
        return -1;
    }
    if (network_backward(nw, t->err, sizeof(t->err)) ||
        network_sgd(nw, sgd, t->err, sizeof(t->err)))
        return -1;
    return 0;
}

static int s_train_step(trainer_t *t, const feed_batch_t *b, int epoch,
                        const backend_sgd_t *sgd)
{
    backend_t *be = t->be;
    network_t *nw = s_net_for(t, b->n);

    if (!nw)
        return -2;
    if (feed_upload(t->feed, b, t->err, sizeof(t->err)))
        return -1;
    /* The first full step runs as it is: libraries initialise, kernels
     * load and plans are made outside any capture. */
    if (!t->capture || b->n != t->cfg->batch || !t->warm) {
        int rc = s_step_calls(t, b, nw, sgd);
        t->warm = t->warm || (rc == 0 && b->n == t->cfg->batch);
        return rc;
    }
    if (!t->captured || t->captured_epoch != epoch) {
        /* A step that cannot be captured is still a step: say so once
         * and go on without capture.  Nothing ran while capturing. */
        int rc = be->vt->capture_begin(be);
        if (rc == 0) {
            rc = s_step_calls(t, b, nw, sgd);
            /* ends the capture even when a call failed */
            rc = be->vt->capture_end(be) != 0 ? -1 : rc;
        }
        if (rc != 0) {
            log_warn("%s: a training step could not be captured (%s%s%s); "
                     "going on without CUDA Graphs",
                     be->device, be->err, t->err[0] ? "; " : "", t->err);
            t->err[0] = '\0';
            be->err[0] = '\0';
            t->capture = false;
            t->captured = false;
            return s_step_calls(t, b, nw, sgd);
        }
        t->captured = true;
        t->captured_epoch = epoch;
    }
    if (be->vt->replay(be) != 0) {
        snprintf(t->err, sizeof(t->err), "replay: %s", be->err);
        return -1;
    }
    return 0;
}

/* Read the device sums at acc (2 floats). */
static int s_read_acc(trainer_t *t, const float *acc, double *loss,
                      double *correct)
{
    float h[2];

    if (t->be->vt->download(t->be, h, acc, sizeof(h)) != 0) {
        s_fail(t, "reading the loss back: %s", t->be->err);
        return -1;
    }
    *loss = h[0];
    *correct = h[1];
    return 0;
}

static double s_lr(const train_config_t *c, int epoch)
{
    return c->lr * 0.5 * (1.0 + cos(M_PI * epoch / c->epochs));
}

/*
 * Seconds left for the run, from the pace so far: k of steps done in
 * this epoch, el seconds spent on them.
 */
static double s_eta(const trainer_t *t, int epoch, int64_t k, int steps,
                    double el)
{
    int64_t done = t->step - t->step0;
    double step_s = done > 0 ? (t->train_seconds + el) / (double)done : 0;
    double eval_s = t->evals ? t->eval_seconds / (double)t->evals
                             : step_s * steps / 3.0;
    int64_t left = (int64_t)steps * (t->cfg->epochs - epoch) - k;

    if (t->cfg->max_steps > 0 && t->cfg->max_steps - t->step < left)
        left = t->cfg->max_steps - t->step;
    return step_s * (double)(left > 0 ? left : 0) +
           eval_s * (t->cfg->epochs - epoch);
}

/*
 * One epoch of training.  Returns 0, 1 when max_steps was reached, or a
 * negative code when the run must end (status set).
 */
static int s_train_epoch(trainer_t *t, int epoch, train_epoch_t *e)
{
    const train_config_t *c = t->cfg;
    backend_sgd_t sgd = {(float)e->lr, (float)c->momentum,
                         (float)c->weight_decay, c->nesterov};
    feed_seq_t seq = {t->train.images, t->train.labels, t->train.n,
                      t->train.n, true, c->seed, epoch, t->pad,
                      {t->mean[0], t->mean[1], t->mean[2]},
                      {t->std[0], t->std[1], t->std[2]}};
    int check = t->host_backend ? 1 : TRAIN_CHECK_EVERY_GPU;
    int64_t seen = 0, k = 0;
    double t0 = s_now(), loss = 0, correct = 0;
    int steps, rc = 0;
    feed_batch_t *b;

    if (seq.n_use % c->batch == 1 && seq.n_use > 1)
        seq.n_use--;
    steps = feed_steps(t->feed, seq.n_use);
    if (t->be->vt->zero(t->be, t->acc, 2 * sizeof(float)) != 0) {
        s_fail(t, "%s", t->be->err);
        return -1;
    }
    feed_start(t->feed, &seq);
    while ((rc = feed_next(t->feed, &b, t->err, sizeof(t->err))) == 0) {
        int n = b->n;
        rc = s_train_step(t, b, epoch, &sgd);
        feed_release(t->feed, b);
        if (rc) {
            if (rc == -1)
                s_fail(t, "epoch %d step %lld: %s", epoch, (long long)k,
                       t->err);
            return -1;
        }
        t->step++;
        k++;
        seen += n;
        bool stop = c->max_steps > 0 && t->step >= c->max_steps;
        if (k % check && k != steps && !stop)
            continue;
        if (s_read_acc(t, t->acc, &loss, &correct))
            return -1;
        if (!isfinite(loss)) {
            t->r->status = TRAIN_DIVERGED;
            snprintf(t->r->reason, sizeof(t->r->reason), "loss is %s at "
                     "epoch %d step %lld (lr %g)", isnan(loss) ? "NaN"
                     : "infinite", epoch, (long long)t->step, e->lr);
            return -1;
        }
        if (t->hooks && t->hooks->on_step) {
            double el = s_now() - t0;
            train_step_t s = {epoch, c->epochs, k, steps, loss / seen,
                              seen / (el > 0 ? el : 1e-9),
                              s_eta(t, epoch, k, steps, el),
                              100.0 * correct / seen};
            if (t->hooks->on_step(t->hooks->ctx, &s) != 0) {
                t->r->status = TRAIN_CANCELLED;
                snprintf(t->r->reason, sizeof(t->r->reason),
                         "cancelled at epoch %d step %lld", epoch,
                         (long long)t->step);
                return -1;
            }
        }
        if (stop)
            break;
    }
    if (rc < 0) {
        s_fail(t, "epoch %d: %s", epoch, t->err);
        return -1;
    }
    e->seconds = s_now() - t0;
    e->train_loss = seen ? loss / seen : NAN;
    e->train_acc = seen ? 100.0 * correct / seen : NAN;
    e->images_per_s = seen / (e->seconds > 0 ? e->seconds : 1e-9);
    t->train_seconds += e->seconds;
    t->trained += seen;
    return rc == 0 && c->max_steps > 0 && t->step >= c->max_steps ? 1 : 0;
}

/* Loss and accuracy (percent) over a split, in evaluation mode. */
static int s_evaluate(trainer_t *t, const dev_split_t *s, const char *what,
                      double *loss, double *acc)
{
    feed_seq_t seq = {s->images, s->labels, s->n, s->n, false, 0, 0, 0,
                      {t->mean[0], t->mean[1], t->mean[2]},
                      {t->std[0], t->std[1], t->std[2]}};
    backend_t *be = t->be;
    float *a = t->acc + 2;
    double sum, correct;
    feed_batch_t *b;
    int rc;

    if (be->vt->zero(be, a, 2 * sizeof(float)) != 0) {
        s_fail(t, "%s", be->err);
        return -1;
    }
    feed_start(t->feed, &seq);
    while ((rc = feed_next(t->feed, &b, t->err, sizeof(t->err))) == 0) {
        network_t *nw = s_net_for(t, b->n);
        int bad = !nw;
        if (!bad && (feed_upload(t->feed, b, t->err, sizeof(t->err)) ||
                     feed_build(t->feed, b, t->err, sizeof(t->err)) ||
                     network_forward(nw, b->x, false, t->cfg->seed,
                                     (uint64_t)t->step, t->err,
                                     sizeof(t->err))))
            bad = 2;
        if (!bad && be->vt->xent(be, network_logits(nw), b->labels, b->n,
                                 t->classes, NULL, a) != 0) {
            snprintf(t->err, sizeof(t->err), "loss: %s", be->err);
            bad = 2;
        }
        feed_release(t->feed, b);
        if (bad == 2)
            s_fail(t, "evaluating %s: %s", what, t->err);
        if (bad)
            return -1;
        if (t->hooks && t->hooks->on_beat)
            t->hooks->on_beat(t->hooks->ctx);
    }
    if (rc < 0) {
        s_fail(t, "evaluating %s: %s", what, t->err);
        return -1;
    }
    if (s_read_acc(t, a, &sum, &correct))
        return -1;
    *loss = sum / s->n;
    *acc = 100.0 * correct / s->n;
    return 0;
}

static int s_record(trainer_t *t, const train_epoch_t *e)
{
    train_result_t *r = t->r;
    train_epoch_t *v = realloc(r->epochs, (size_t)(r->n_epochs + 1) *
                                              sizeof(*v));

    if (!v) {
        s_fail(t, "out of memory");
        return -1;
    }
    r->epochs = v;
    r->epochs[r->n_epochs++] = *e;
    return 0;
}

static int s_checkpoint(trainer_t *t, int epoch)
{
    const train_config_t *c = t->cfg;
    checkpoint_info_t ci;

    if (!c->checkpoint || c->checkpoint_every <= 0 ||
        ((epoch + 1) % c->checkpoint_every != 0 && epoch + 1 != c->epochs))
        return 0;
    s_identity(t, &ci);
    ci.epoch = epoch + 1;
    ci.step = t->step;
    ci.history = t->r->epochs;
    ci.n_history = t->r->n_epochs;
    if (checkpoint_save(t->nets[0].nw, c->checkpoint, &ci, t->err,
                        sizeof(t->err)) != 0) {
        if (c->checkpoint_optional) {
            /* The checkpoint only spares a retry some work: losing one
             * must not lose the run. */
            log_warn("checkpoint after epoch %d not written (%s); training "
                     "goes on", epoch, t->err);
            t->r->checkpoints_lost++;
            return 0;
        }
        s_fail(t, "checkpoint after epoch %d: %s", epoch, t->err);
        return -1;
    }
    if (t->hooks && t->hooks->on_checkpoint &&
        t->hooks->on_checkpoint(t->hooks->ctx, c->checkpoint, epoch) != 0) {
        t->r->status = TRAIN_CANCELLED;
        snprintf(t->r->reason, sizeof(t->r->reason), "cancelled after the "
                 "checkpoint of epoch %d", epoch);
        return -1;
    }
    return 0;
}

static int s_loop(trainer_t *t)
{
    const train_config_t *c = t->cfg;

    for (int epoch = t->epoch0; epoch < c->epochs; epoch++) {
        train_epoch_t e = {epoch, c->epochs, s_lr(c, epoch), 0, 0, 0, 0,
                           -1, 0, 0};
        double t0;
        int stopped = s_train_epoch(t, epoch, &e);

        if (stopped < 0)
            return -1;
        t0 = s_now();
        if (s_evaluate(t, &t->valid, "valid", &e.valid_loss, &e.valid_acc))
            return -1;
        if (t->test.n > 0) {
            double tl;
            if (s_evaluate(t, &t->test, "test", &tl, &e.test_acc))
                return -1;
        } else if (t->valid_is_test) {
            e.test_acc = e.valid_acc;
        }
        t->eval_seconds += s_now() - t0;
        t->evals++;
        if (s_record(t, &e))
            return -1;
        if (t->hooks && t->hooks->on_epoch &&
            t->hooks->on_epoch(t->hooks->ctx, &e) != 0) {
            t->r->status = TRAIN_CANCELLED;
            snprintf(t->r->reason, sizeof(t->r->reason),
                     "cancelled after epoch %d", epoch);
            return -1;
        }
        if (stopped)
            break;
        if (s_checkpoint(t, epoch))
            return -1;
    }
    t->r->status = TRAIN_OK;
    return 0;
}

/*
 * Peak resident memory of this process image, VmHWM of
 * /proc/self/status: unlike getrusage's ru_maxrss it does not carry over
 * the parent's size through fork and exec.  0 when unavailable.
 */
static int64_t s_peak_rss(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long kb = 0;

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %lld kB", &kb) == 1)
            break;
    fclose(f);
    return (int64_t)kb * 1024;
}

/* Best and final figures, throughput and memory into the result. */
static void s_summarise(trainer_t *t)
{
    train_result_t *r = t->r;
    struct rusage ru;
    int best = -1;

    for (int i = 0; i < r->n_epochs; i++)
        if (best < 0 || r->epochs[i].valid_acc > r->epochs[best].valid_acc)
            best = i;
    r->best_valid_acc = best >= 0 ? r->epochs[best].valid_acc : -1;
    r->best_test_acc = best >= 0 ? r->epochs[best].test_acc : -1;
    r->final_valid_acc = r->n_epochs ? r->epochs[r->n_epochs - 1].valid_acc
                                     : -1;
    r->final_test_acc = r->n_epochs ? r->epochs[r->n_epochs - 1].test_acc
                                    : -1;
    r->images_per_s = t->train_seconds > 0
                          ? (double)t->trained / t->train_seconds
                          : 0;
    r->steps = t->step;
    r->seconds = s_now() - t->run_start;
    r->peak_rss_bytes = s_peak_rss();
    if (r->peak_rss_bytes <= 0 && getrusage(RUSAGE_SELF, &ru) == 0)
        r->peak_rss_bytes = (int64_t)ru.ru_maxrss * 1024;
}

static void s_save_weights(trainer_t *t)
{
    const char *meta[] = {"format", "nader-weights", NULL};

    if (!t->cfg->save_weights || t->n_nets == 0 ||
        (t->r->status != TRAIN_OK && t->r->status != TRAIN_CANCELLED))
        return;
    if (network_weights_save(t->nets[0].nw, t->cfg->save_weights, meta,
                             false, t->err, sizeof(t->err)) != 0)
        s_fail(t, "training ended but saving the weights failed: %s",
               t->err);
}

int train_run(const graph_design_t *d, const net_config_t *ncfg,
              const train_config_t *cfg, const train_hooks_t *hooks,
              train_result_t *r)
{
    trainer_t t;
    int rc;

    memset(r, 0, sizeof(*r));
    memset(&t, 0, sizeof(t));
    r->status = TRAIN_FAILED;
    r->best_valid_acc = r->final_valid_acc = -1;
    r->best_test_acc = r->final_test_acc = -1;
    t.design = d;
    t.ncfg = *ncfg;
    t.cfg = cfg;
    t.hooks = hooks;
    t.r = r;
    t.run_start = s_now();
    rc = s_setup(&t);
    if (rc == 0)
        s_loop(&t);
    s_save_weights(&t);
    s_teardown(&t);
    s_summarise(&t);
    return rc == 0 ? 0 : -1;
}
