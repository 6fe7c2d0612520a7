/*
 * trainer_child.c - the trainer process: read a TrainerTask, train it
 * with the engine (train_run), and report Progress, Checkpoint and
 * Result frames to the daemon.  See trainer.h.
 *
 * SIGTERM asks the run to stop: the hooks see the flag at the next step
 * and the engine returns "cancelled", which is reported like any result.
 * The daemon follows SIGTERM with SIGKILL if that takes too long.
 */
#include "trainer.h"

#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "log.h"
#include "net.h"
#include "train.h"
#include "wire.h"

#define SET(m, f, v)                                                       \
    do {                                                                   \
        (m)->has_##f = 1;                                                  \
        (m)->f = (v);                                                      \
    } while (0)

static volatile sig_atomic_t s_stop;

/* How often a trainer tells the daemon it is alive during an epoch. */
#define BEAT_EVERY_S 1.0

typedef struct s_child {
    int fd;
    const Nader__TrainerTask *task;
    int broken;               /* the daemon went away */
    int64_t steps;            /* steps done in this attempt */
    double last_beat;         /* monotonic seconds */
} s_child_t;

static double s_mono_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void s_on_term(int sig)
{
    (void)sig;
    s_stop = 1;
}

static int s_send(s_child_t *c, Nader__Envelope *env)
{
    uint8_t *buf;
    size_t len;
    int rc;

    if (c->broken)
        return -1;
    if (wire_encode(env, &buf, &len) != WIRE_OK)
        return -1;
    rc = trainer_frame_write(c->fd, buf, len);
    free(buf);
    if (rc < 0)
        c->broken = 1;
    return rc;
}

static void s_epoch_fill(Nader__Epoch *p, const train_epoch_t *e)
{
    SET(p, epoch, e->epoch);
    SET(p, epochs, e->epochs);
    SET(p, lr, e->lr);
    SET(p, train_loss, e->train_loss);
    SET(p, train_acc, e->train_acc);
    SET(p, valid_loss, e->valid_loss);
    SET(p, valid_acc, e->valid_acc);
    SET(p, test_acc, e->test_acc);
    SET(p, images_per_s, e->images_per_s);
    SET(p, seconds, e->seconds);
}

static int s_on_epoch(void *ctx, const train_epoch_t *e)
{
    s_child_t *c = ctx;
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Progress p = NADER__PROGRESS__INIT;
    Nader__Epoch ep = NADER__EPOCH__INIT;

    s_epoch_fill(&ep, e);
    SET(&p, job, c->task->job->id);
    SET(&p, attempt, c->task->job->attempt);
    p.epoch = &ep;
    env.body_case = NADER__ENVELOPE__BODY_PROGRESS;
    env.progress = &p;
    s_send(c, &env);
    return s_stop || c->broken;
}

/*
 * A sign of life every BEAT_EVERY_S, after training steps and evaluation
 * batches, so the daemon can tell a long epoch from a trainer stuck in a
 * kernel (see the worker's --stall-timeout).  Sent from the training
 * thread itself on purpose: a beat proves that batches are being
 * processed, not only that the process exists.
 */
static void s_beat(s_child_t *c)
{
    double now = s_mono_s();

    if (now - c->last_beat >= BEAT_EVERY_S) {
        Nader__Envelope env = NADER__ENVELOPE__INIT;
        Nader__Progress p = NADER__PROGRESS__INIT;
        SET(&p, job, c->task->job->id);
        SET(&p, attempt, c->task->job->attempt);
        SET(&p, steps, c->steps);
        env.body_case = NADER__ENVELOPE__BODY_PROGRESS;
        env.progress = &p;
        s_send(c, &env);
        c->last_beat = now;
    }
}

static void s_on_beat(void *ctx)
{
    s_beat(ctx);
}

static int s_on_step(void *ctx, const train_step_t *st)
{
    s_child_t *c = ctx;

    (void)st;
    c->steps++;
    s_beat(c);
    return s_stop || c->broken;
}

static int s_on_checkpoint(void *ctx, const char *path, int epoch)
{
    s_child_t *c = ctx;
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Checkpoint ck = NADER__CHECKPOINT__INIT;

    (void)path;
    SET(&ck, job, c->task->job->id);
    SET(&ck, attempt, c->task->job->attempt);
    SET(&ck, epoch, epoch);
    env.body_case = NADER__ENVELOPE__BODY_CHECKPOINT;
    env.checkpoint = &ck;
    s_send(c, &env);
    return s_stop || c->broken;
}

/* Read the one task frame (blocking). */
static Nader__TrainerTask *s_read_task(int fd)
{
    uint8_t hdr[4], *buf;
    size_t len, off = 0;
    Nader__TrainerTask *t;

    while (off < 4) {
        ssize_t n = read(fd, hdr + off, 4 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        off += (size_t)n;
    }
    len = (size_t)hdr[0] | (size_t)hdr[1] << 8 | (size_t)hdr[2] << 16 |
          (size_t)hdr[3] << 24;
    if (len > TRAINER_FRAME_MAX || !(buf = malloc(len ? len : 1)))
        return NULL;
    for (off = 0; off < len;) {
        ssize_t n = read(fd, buf + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            free(buf);
            return NULL;
        }
        off += (size_t)n;
    }
    t = nader__trainer_task__unpack(NULL, len, buf);
    free(buf);
    return t;
}

static train_status_t s_status(Nader__ResultStatus *st,
                               train_status_t status)
{
    switch (status) {
    case TRAIN_OK: *st = NADER__RESULT_STATUS__RESULT_OK; break;
    case TRAIN_DIVERGED: *st = NADER__RESULT_STATUS__RESULT_DIVERGED; break;
    case TRAIN_CANCELLED:
        *st = NADER__RESULT_STATUS__RESULT_CANCELLED;
        break;
    default: *st = NADER__RESULT_STATUS__RESULT_FAILED; break;
    }
    return status;
}

/* Send the result of a run (r may hold no epochs). */
static void s_report(s_child_t *c, const train_result_t *r)
{
    const Nader__TrainerTask *task = c->task;
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Result res = NADER__RESULT__INIT;
    Nader__Epoch *eps = calloc((size_t)r->n_epochs + 1, sizeof *eps);
    Nader__Epoch **epp = calloc((size_t)r->n_epochs + 1, sizeof *epp);

    SET(&res, job, task->job->id);
    SET(&res, attempt, task->job->attempt);
    res.has_status = 1;
    s_status(&res.status, r->status);
    res.reason = (char *)r->reason;
    res.worker = task->worker;
    res.host = task->host;
    res.device = r->device[0] ? (char *)r->device : task->device;
    SET(&res, width, r->width);
    SET(&res, params, r->params);
    SET(&res, macs, r->macs);
    if (eps && epp) {
        for (int i = 0; i < r->n_epochs; i++) {
            nader__epoch__init(&eps[i]);
            s_epoch_fill(&eps[i], &r->epochs[i]);
            epp[i] = &eps[i];
        }
        res.n_epochs = (size_t)r->n_epochs;
        res.epochs = epp;
    }
    SET(&res, best_valid_acc, r->best_valid_acc);
    SET(&res, final_valid_acc, r->final_valid_acc);
    SET(&res, best_test_acc, r->best_test_acc);
    SET(&res, final_test_acc, r->final_test_acc);
    SET(&res, images_per_s, r->images_per_s);
    SET(&res, peak_bytes, r->peak_bytes);
    SET(&res, peak_rss_bytes, r->peak_rss_bytes);
    SET(&res, seconds, r->seconds);
    SET(&res, steps, r->steps);
    SET(&res, resumed_from_epoch, task->resume_epoch);
    env.body_case = NADER__ENVELOPE__BODY_RESULT;
    env.result = &res;
    s_send(c, &env);
    free(eps);
    free(epp);
}

/* A result that is only a failure with a reason. */
static void s_report_failure(s_child_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_report_failure(s_child_t *c, const char *fmt, ...)
{
    train_result_t r;
    va_list ap;

    memset(&r, 0, sizeof r);
    r.status = TRAIN_FAILED;
    va_start(ap, fmt);
    vsnprintf(r.reason, sizeof r.reason, fmt, ap);
    va_end(ap);
    r.best_test_acc = r.final_test_acc = -1;
    s_report(c, &r);
}

/* Build the engine's configurations from the task. */
static int s_configure(s_child_t *c, net_config_t *ncfg,
                       train_config_t *tcfg)
{
    const Nader__TrainerTask *task = c->task;
    const Nader__JobSpec *job = task->job;
    const Nader__Recipe *rp = job->recipe;
    int sk;

    if (net_config_default(ncfg, job->dataset) < 0) {
        s_report_failure(c, "unknown data set '%s'", job->dataset);
        return -1;
    }
    sk = net_skeleton_parse(job->skeleton);
    if (sk < 0) {
        s_report_failure(c, "unknown skeleton '%s'", job->skeleton);
        return -1;
    }
    ncfg->skeleton = (net_skeleton_t)sk;
    ncfg->width = job->width;
    if (rp && rp->cells_per_stage > 0)
        ncfg->cells_per_stage = rp->cells_per_stage;
    if (rp)
        ncfg->stem_scale = rp->stem_scale;
    if (rp && rp->budget > 0)
        ncfg->budget = rp->budget;

    train_config_default(tcfg);
    tcfg->dataset = job->dataset;
    tcfg->data_dir = task->data_dir;
    tcfg->device = task->device;
    tcfg->threads = task->threads;
    if (job->epochs > 0)
        tcfg->epochs = job->epochs;
    tcfg->seed = job->seed;
    if (rp) {
        if (rp->batch > 0)
            tcfg->batch = rp->batch;
        if (rp->lr > 0)
            tcfg->lr = rp->lr;
        if (rp->momentum > 0)
            tcfg->momentum = rp->momentum;
        if (rp->weight_decay > 0)
            tcfg->weight_decay = rp->weight_decay;
        tcfg->nesterov = rp->nesterov;
        if (rp->max_steps > 0)
            tcfg->max_steps = rp->max_steps;
    }
    if (task->resume && task->resume[0])
        tcfg->resume = task->resume;
    if (task->checkpoint && task->checkpoint[0] &&
        job->checkpoint_every > 0) {
        tcfg->checkpoint = task->checkpoint;
        tcfg->checkpoint_every = job->checkpoint_every;
        tcfg->checkpoint_optional = true;
    }
    return 0;
}

int trainer_main(int fd)
{
    s_child_t c = {fd, NULL, 0, 0, 0.0};
    Nader__TrainerTask *task;
    graph_errors_t errs;
    graph_design_t *d = NULL;
    net_config_t ncfg;
    train_config_t tcfg;
    train_hooks_t hooks = {&c, s_on_epoch, s_on_step, s_on_checkpoint,
                           s_on_beat};
    train_result_t r;
    struct sigaction sa;
    FILE *oom;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() == 1)
        return 1;
    log_init("trainer", LOG_INFO, NULL);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = s_on_term;
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    oom = fopen("/proc/self/oom_score_adj", "w");
    if (oom) {
        fputs("1000\n", oom);
        fclose(oom);
    }
    task = s_read_task(fd);
    if (!task || !task->job) {
        log_error("no task from the daemon");
        if (task)
            nader__trainer_task__free_unpacked(task, NULL);
        return 3;
    }
    c.task = task;
    graph_errors_init(&errs);
    if (s_configure(&c, &ncfg, &tcfg) < 0)
        goto out;
    if (!task->job->design ||
        graph_design_parse(task->job->design, strlen(task->job->design),
                           task->job->design_hash, &d, &errs) < 0) {
        s_report_failure(&c, "design does not parse: %s",
                         errs.n ? errs.v[0].message : "no text");
        goto out;
    }
    log_info("job %llu attempt %u: training on %s, %d epochs%s",
             (unsigned long long)task->job->id, task->job->attempt,
             task->device, tcfg.epochs, tcfg.resume ? ", resuming" : "");
    memset(&r, 0, sizeof r);
    train_run(d, &ncfg, &tcfg, &hooks, &r);
    if (r.status == TRAIN_CANCELLED && !r.reason[0])
        snprintf(r.reason, sizeof r.reason, "cancelled");
    s_report(&c, &r);
    train_result_free(&r);
out:
    graph_design_destroy(&d);
    graph_errors_free(&errs);
    nader__trainer_task__free_unpacked(task, NULL);
    return c.broken ? 4 : 0;
}
