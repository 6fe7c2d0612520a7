/*
 * daemon.c - the worker daemon's loop; see daemon.h.
 *
 * State is small: the socket (or none while backing off), one slot per
 * device (the job's spec, its trainer, whether a cancel was asked), and
 * the list of results not yet acknowledged.  Everything the coordinator
 * needs to rebuild its view after a restart is in the Hello: the jobs
 * running and the results held.
 */
#include "daemon.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

#include "fsutil.h"
#include "inventory.h"
#include "keys.h"
#include "log.h"
#include "trainer.h"
#include "wire.h"

#define SET(m, f, v)                                                       \
    do {                                                                   \
        (m)->has_##f = 1;                                                  \
        (m)->f = (v);                                                      \
    } while (0)

#define KILL_GRACE_US 3000000u
#define POLL_MAX_MS 100

typedef struct s_slot {
    char *device;
    uint64_t job;                 /* 0: free */
    uint32_t attempt;
    int32_t epoch;
    trainer_t *trainer;
    bool cancel;                  /* cancel asked: report cancelled */
    uint64_t kill_at;             /* monotonic: SIGKILL if still alive */
    char dir[4200];               /* the job's scratch folder */
    int32_t resume_epoch;
    uint64_t due;                 /* load tests: when to answer */
    uint64_t alive_at;            /* monotonic: last frame from trainer */
    int64_t steps;                /* steps the trainer reported done */
    bool stalled;                 /* killed for the stall timeout */
} s_slot_t;

typedef struct s_pending {
    uint64_t job;
    uint32_t attempt;
    char device[32];
    uint8_t *buf;                 /* the encoded Result envelope */
    size_t len;
    uint64_t sent_at;
} s_pending_t;

struct worker {
    worker_options_t opt;
    char *endpoint, *data_dir, *scratch, *exe;
    char name[320];
    inventory_t inv;
    void *ctx;
    bool own_ctx;
    void *sock;
    char public_z85[41], secret_z85[41], server_z85[41];
    bool curve;

    s_slot_t *slots;
    int n_slots;
    s_pending_t *pending;
    size_t n_pending, cap_pending;

    bool welcomed;
    uint64_t last_heard, last_hb, hello_at, next_connect;
    uint64_t interval_us, timeout_us, backoff_us;
    unsigned rng;
    atomic_int stop;
    worker_stats_t stats;
};

static void s_slot_clear(struct s_slot *sl);

/* ---------------------------------------------------------------- setup */

void worker_options_default(worker_options_t *o)
{
    memset(o, 0, sizeof *o);
    o->endpoint = "tcp://127.0.0.1:5555";
    o->devices = "cpu";
    o->data_dir = "data";
    o->backoff_max_ms = 10000;
    o->timeout_ms = 5000;
    o->max_message_bytes = 256LL << 20;
    o->stall_timeout_ms = 30LL * 60 * 1000;
}

int worker_new(const worker_options_t *o, worker_t **out, char *err,
               size_t errlen)
{
    worker_t *w = calloc(1, sizeof *w);
    const char *tmp = getenv("TMPDIR");
    char path[4096];

    *out = NULL;
    if (!w) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    w->opt = *o;
    w->rng = (unsigned)(wire_now_us() ^ ((uint64_t)getpid() << 16) ^
                        (uintptr_t)w);
    if (inventory_take(&w->inv, o->devices, o->data_dir, o->instant, err,
                       errlen) < 0) {
        free(w);
        return -1;
    }
    if (o->name && o->name[0])
        snprintf(w->name, sizeof w->name, "%s", o->name);
    else
        snprintf(w->name, sizeof w->name, "%s-%d-%04x", w->inv.host,
                 (int)getpid(), rand_r(&w->rng) & 0xffff);
    if (o->scratch_dir && o->scratch_dir[0])
        snprintf(path, sizeof path, "%s", o->scratch_dir);
    else
        snprintf(path, sizeof path, "%s/nader-worker-%s",
                 tmp && tmp[0] ? tmp : "/tmp", w->name);
    w->endpoint = strdup(o->endpoint);
    w->data_dir = strdup(o->data_dir ? o->data_dir : "");
    w->scratch = strdup(path);
    w->exe = strdup(o->exe ? o->exe : "/proc/self/exe");
    w->n_slots = w->inv.n_devices;
    w->slots = calloc((size_t)w->n_slots, sizeof *w->slots);
    if (!w->endpoint || !w->data_dir || !w->scratch || !w->exe ||
        !w->slots) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < w->n_slots; i++)
        w->slots[i].device = w->inv.devices[i];
    if (!o->instant && fs_mkdirs(w->scratch, 0700) < 0) {
        snprintf(err, errlen, "scratch folder %s: cannot create: %s",
                 w->scratch, strerror(errno));
        goto fail;
    }
    if (o->key_file || o->server_key_file) {
        if (!o->key_file || !o->server_key_file) {
            snprintf(err, errlen, "CURVE needs both --key and "
                     "--server-key");
            goto fail;
        }
        if (keys_load_pair(o->key_file, w->public_z85, w->secret_z85, err,
                           errlen) < 0 ||
            keys_load_public(o->server_key_file, w->server_z85, err,
                             errlen) < 0)
            goto fail;
        w->curve = true;
    }
    w->ctx = o->zmq_context;
    if (!w->ctx) {
        w->ctx = zmq_ctx_new();
        w->own_ctx = true;
        if (!w->ctx) {
            snprintf(err, errlen, "cannot start ZeroMQ: %s",
                     zmq_strerror(errno));
            goto fail;
        }
        zmq_ctx_set(w->ctx, ZMQ_BLOCKY, 0);
    }
    w->interval_us = 1000000u;
    w->timeout_us = (uint64_t)(o->timeout_ms > 0 ? o->timeout_ms : 5000) *
                    1000u;
    w->backoff_us = 250000u;
    *out = w;
    return 0;
fail:
    worker_destroy(&w);
    return -1;
}

void worker_destroy(worker_t **wp)
{
    worker_t *w;

    if (!wp || !*wp)
        return;
    w = *wp;
    for (int i = 0; w->slots && i < w->n_slots; i++) {
        trainer_destroy(&w->slots[i].trainer);
        if (w->slots[i].dir[0])
            s_slot_clear(&w->slots[i]);
    }
    if (w->scratch && !w->opt.instant &&
        !(w->opt.scratch_dir && w->opt.scratch_dir[0]))
        rmdir(w->scratch);       /* the default one, and only if empty */
    for (size_t i = 0; i < w->n_pending; i++)
        free(w->pending[i].buf);
    free(w->pending);
    if (w->sock)
        zmq_close(w->sock);
    if (w->own_ctx && w->ctx)
        zmq_ctx_term(w->ctx);
    inventory_free(&w->inv);
    free(w->slots);
    free(w->endpoint);
    free(w->data_dir);
    free(w->scratch);
    free(w->exe);
    memset(w->secret_z85, 0, sizeof w->secret_z85);
    free(w);
    *wp = NULL;
}

void worker_stop(worker_t *w)
{
    atomic_store(&w->stop, 1);
}

void worker_stats(const worker_t *w, worker_stats_t *s)
{
    *s = w->stats;
}

/* ---------------------------------------------------------- connection */

static void s_send(worker_t *w, Nader__Envelope *env)
{
    if (!w->sock)
        return;
    if (wire_send(w->sock, NULL, 0, env, ZMQ_DONTWAIT) != WIRE_OK &&
        errno != EAGAIN)
        log_debug("send %s failed: %s", wire_body_name(env->body_case),
                  zmq_strerror(errno));
}

/* The jobs in hand: running ones and results not yet acknowledged. */
static Nader__Running **s_running(worker_t *w, Nader__Running *store,
                                  size_t cap, size_t *n)
{
    Nader__Running **v = calloc(cap + 1, sizeof *v);

    *n = 0;
    if (!v)
        return NULL;
    for (int i = 0; i < w->n_slots && *n < cap; i++) {
        if (!w->slots[i].job)
            continue;
        nader__running__init(&store[*n]);
        SET(&store[*n], job, w->slots[i].job);
        SET(&store[*n], attempt, w->slots[i].attempt);
        store[*n].device = w->slots[i].device;
        SET(&store[*n], epoch, w->slots[i].epoch);
        v[*n] = &store[*n];
        (*n)++;
    }
    for (size_t i = 0; i < w->n_pending && *n < cap; i++) {
        nader__running__init(&store[*n]);
        SET(&store[*n], job, w->pending[i].job);
        SET(&store[*n], attempt, w->pending[i].attempt);
        SET(&store[*n], finished, 1);
        store[*n].device = w->pending[i].device;
        v[*n] = &store[*n];
        (*n)++;
    }
    return v;
}

static void s_hello(worker_t *w)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Hello h = NADER__HELLO__INIT;
    Nader__Device dev[INVENTORY_MAX], *devp[INVENTORY_MAX];
    size_t cap = (size_t)w->n_slots + w->n_pending, n = 0;
    Nader__Running *run = calloc(cap + 1, sizeof *run);
    char desc[INVENTORY_MAX][64];

    h.worker = w->name;
    h.host = w->inv.host;
    SET(&h, pid, (uint32_t)getpid());
    for (int i = 0; i < w->n_slots; i++) {
        nader__device__init(&dev[i]);
        dev[i].name = w->slots[i].device;
        if (strcmp(w->slots[i].device, "cpu") == 0) {
            snprintf(desc[i], sizeof desc[i], "cpu, %d threads",
                     w->opt.threads ? w->opt.threads : w->inv.threads);
            SET(&dev[i], threads, (uint32_t)(w->opt.threads
                                             ? w->opt.threads
                                             : w->inv.threads));
            SET(&dev[i], memory_bytes, w->inv.memory_bytes);
        } else {
            snprintf(desc[i], sizeof desc[i], "%s", w->slots[i].device);
        }
        dev[i].description = desc[i];
        devp[i] = &dev[i];
    }
    h.n_devices = (size_t)w->n_slots;
    h.devices = devp;
    SET(&h, memory_bytes, w->inv.memory_bytes);
    h.n_backends = (size_t)w->inv.n_backends;
    h.backends = w->inv.backends;
    h.n_datasets = (size_t)w->inv.n_datasets;
    h.datasets = w->inv.datasets;
    h.running = run ? s_running(w, run, cap, &n) : NULL;
    h.n_running = h.running ? n : 0;
    SET(&h, load_test, w->opt.instant);
    h.software = (char *)WIRE_SOFTWARE;
    env.body_case = NADER__ENVELOPE__BODY_HELLO;
    env.hello = &h;
    s_send(w, &env);
    w->hello_at = wire_mono_us();
    free(h.running);
    free(run);
}

static int s_connect(worker_t *w)
{
    int zero = 0, hwm = 10000;
    int64_t maxmsg = w->opt.max_message_bytes;
    void *s = zmq_socket(w->ctx, ZMQ_DEALER);

    if (!s) {
        log_error("cannot make a socket: %s", zmq_strerror(errno));
        return -1;
    }
    if (zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg) != 0 ||
        (w->curve &&
         (zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, w->server_z85, 41) != 0 ||
          zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, w->public_z85, 41) != 0 ||
          zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, w->secret_z85, 41) != 0)) ||
        zmq_connect(s, w->endpoint) != 0) {
        log_error("cannot connect to %s: %s", w->endpoint,
                  zmq_strerror(errno));
        zmq_close(s);
        return -1;
    }
    w->sock = s;
    w->welcomed = false;
    w->last_heard = wire_mono_us();
    s_hello(w);
    return 0;
}

/* Close and schedule the next attempt after a jittered backoff. */
static void s_disconnect(worker_t *w, const char *why)
{
    uint64_t jitter, wait;

    if (w->sock) {
        zmq_close(w->sock);
        w->sock = NULL;
    }
    w->welcomed = false;
    w->stats.reconnects++;
    jitter = (uint64_t)(rand_r(&w->rng) % 1000) * w->backoff_us / 2000;
    wait = w->backoff_us * 3 / 4 + jitter;
    w->next_connect = wire_mono_us() + wait;
    log_warn("coordinator %s: %s; reconnecting in %.2f s", w->endpoint, why,
             (double)wait / 1e6);
    w->backoff_us *= 2;
    if (w->backoff_us > (uint64_t)w->opt.backoff_max_ms * 1000u)
        w->backoff_us = (uint64_t)w->opt.backoff_max_ms * 1000u;
}

/* ------------------------------------------------------------- results */

static void s_pending_send(worker_t *w, s_pending_t *p)
{
    zmq_msg_t m;

    if (!w->sock || !w->welcomed)
        return;
    if (zmq_msg_init_size(&m, p->len) != 0)
        return;
    memcpy(zmq_msg_data(&m), p->buf, p->len);
    if (zmq_msg_send(&m, w->sock, ZMQ_DONTWAIT) < 0)
        zmq_msg_close(&m);
    p->sent_at = wire_mono_us();
}

/* Keep a result until acknowledged, and send it. */
static void s_result(worker_t *w, const Nader__Result *r,
                     const char *device)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Result copy;
    s_pending_t *p;

    if (w->n_pending == w->cap_pending) {
        size_t cap = w->cap_pending ? 2 * w->cap_pending : 8;
        s_pending_t *v = realloc(w->pending, cap * sizeof *v);
        if (!v) {
            log_error("out of memory keeping the result of job %llu",
                      (unsigned long long)r->job);
            return;
        }
        w->pending = v;
        w->cap_pending = cap;
    }
    /* A copy, so that the strings set here never mix with those of a
     * decoded message (which the caller frees). */
    copy = *r;
    copy.worker = w->name;
    copy.host = w->inv.host;
    env.body_case = NADER__ENVELOPE__BODY_RESULT;
    env.result = &copy;
    p = &w->pending[w->n_pending];
    memset(p, 0, sizeof *p);
    if (wire_encode(&env, &p->buf, &p->len) != WIRE_OK)
        return;
    p->job = r->job;
    p->attempt = r->attempt;
    snprintf(p->device, sizeof p->device, "%s", device);
    w->n_pending++;
    w->stats.results++;
    s_pending_send(w, p);
}

static void s_ack(worker_t *w, const Nader__ResultAck *a)
{
    for (size_t i = 0; i < w->n_pending; i++) {
        if (w->pending[i].job != a->job ||
            w->pending[i].attempt != a->attempt)
            continue;
        free(w->pending[i].buf);
        w->pending[i] = w->pending[--w->n_pending];
        w->stats.acks++;
        return;
    }
}

/* ---------------------------------------------------------------- jobs */

static void s_slot_clear(s_slot_t *sl)
{
    if (sl->dir[0]) {
        char path[4300];
        snprintf(path, sizeof path, "%s/resume.ckpt", sl->dir);
        unlink(path);
        snprintf(path, sizeof path, "%s/checkpoint.ckpt", sl->dir);
        unlink(path);
        rmdir(sl->dir);
    }
    trainer_destroy(&sl->trainer);
    sl->job = 0;
    sl->attempt = 0;
    sl->cancel = false;
    sl->kill_at = 0;
    sl->dir[0] = 0;
    sl->alive_at = 0;
    sl->steps = 0;
    sl->stalled = false;
}

static void s_progress_started(worker_t *w, s_slot_t *sl)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Progress p = NADER__PROGRESS__INIT;

    SET(&p, job, sl->job);
    SET(&p, attempt, sl->attempt);
    env.body_case = NADER__ENVELOPE__BODY_PROGRESS;
    env.progress = &p;
    s_send(w, &env);
}

/* A failed result for a job that could not even start. */
static void s_fail_now(worker_t *w, s_slot_t *sl, const char *reason)
{
    Nader__Result r = NADER__RESULT__INIT;

    SET(&r, job, sl->job);
    SET(&r, attempt, sl->attempt);
    SET(&r, status, NADER__RESULT_STATUS__RESULT_FAILED);
    r.reason = (char *)reason;
    r.device = sl->device;
    s_result(w, &r, sl->device);
    s_slot_clear(sl);
}

static int s_write_file(const char *path, const uint8_t *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    int ok;

    if (!f)
        return -1;
    ok = fwrite(data, 1, len, f) == len;
    ok = fclose(f) == 0 && ok;
    return ok ? 0 : -1;
}

/* The load-test answer: a result marked load_test, no training. */
static void s_instant_answer(worker_t *w, s_slot_t *sl)
{
    Nader__Result r = NADER__RESULT__INIT;

    SET(&r, job, sl->job);
    SET(&r, attempt, sl->attempt);
    SET(&r, status, sl->cancel ? NADER__RESULT_STATUS__RESULT_CANCELLED
                               : NADER__RESULT_STATUS__RESULT_OK);
    SET(&r, load_test, 1);
    r.device = sl->device;
    r.reason = (char *)"load test: answered without training";
    s_result(w, &r, sl->device);
    sl->job = 0;
    sl->due = 0;
    sl->cancel = false;
}

static void s_lease(worker_t *w, const Nader__Lease *l)
{
    const Nader__JobSpec *job = l->job;
    Nader__TrainerTask task = NADER__TRAINER_TASK__INIT;
    char err[4800], resume[4300], ckpt[4300];
    s_slot_t *sl = NULL;

    if (!job || !job->id) {
        log_warn("lease without a job; ignored");
        return;
    }
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].job == job->id &&
            w->slots[i].attempt == job->attempt)
            return;
        if (!sl && !w->slots[i].job && !w->slots[i].trainer && l->device &&
            strcmp(w->slots[i].device, l->device) == 0)
            sl = &w->slots[i];
    }
    if (!sl) {
        log_warn("job %llu attempt %u: leased for %s, which is busy or "
                 "not here; ignored", (unsigned long long)job->id,
                 job->attempt, l->device ? l->device : "?");
        return;
    }
    w->stats.leases++;
    sl->job = job->id;
    sl->attempt = job->attempt;
    sl->epoch = -1;
    sl->resume_epoch = -1;
    if (w->opt.instant) {
        sl->due = wire_mono_us() + (uint64_t)w->opt.instant_ms * 1000u;
        if (!w->opt.instant_ms)
            s_instant_answer(w, sl);
        return;
    }
    snprintf(sl->dir, sizeof sl->dir, "%s/job-%llu-%u", w->scratch,
             (unsigned long long)job->id, job->attempt);
    if (mkdir(sl->dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, sizeof err, "worker %s: cannot create %s: %s",
                 w->name, sl->dir, strerror(errno));
        s_fail_now(w, sl, err);
        return;
    }
    snprintf(resume, sizeof resume, "%s/resume.ckpt", sl->dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.ckpt", sl->dir);
    if (l->has_checkpoint && l->checkpoint.len) {
        if (s_write_file(resume, l->checkpoint.data, l->checkpoint.len) <
            0) {
            snprintf(err, sizeof err, "worker %s: cannot write %s: %s",
                     w->name, resume, strerror(errno));
            s_fail_now(w, sl, err);
            return;
        }
        task.resume = resume;
        SET(&task, resume_epoch, l->checkpoint_epoch);
        sl->resume_epoch = l->checkpoint_epoch;
    }
    task.job = (Nader__JobSpec *)job;
    task.device = sl->device;
    task.data_dir = w->data_dir;
    SET(&task, threads, w->opt.threads);
    task.checkpoint = ckpt;
    task.worker = w->name;
    task.host = w->inv.host;
    if (trainer_start(w->exe, &task, &sl->trainer, err, sizeof err) < 0) {
        s_fail_now(w, sl, err);
        return;
    }
    log_info("job %llu attempt %u: training on %s (trainer pid %d)%s",
             (unsigned long long)job->id, job->attempt, sl->device,
             (int)trainer_pid(sl->trainer),
             task.resume ? ", resuming from a checkpoint" : "");
    sl->alive_at = wire_mono_us();
    s_progress_started(w, sl);
}

static void s_cancel(worker_t *w, const Nader__Cancel *c)
{
    for (int i = 0; i < w->n_slots; i++) {
        s_slot_t *sl = &w->slots[i];
        if (sl->job != c->job || (c->attempt && sl->attempt != c->attempt))
            continue;
        if (sl->due) {
            sl->cancel = true;
            s_instant_answer(w, sl);
            return;
        }
        if (!sl->trainer || sl->cancel)
            return;
        log_info("job %llu attempt %u: cancel (%s)",
                 (unsigned long long)c->job, sl->attempt,
                 c->reason ? c->reason : "asked");
        sl->cancel = true;
        sl->kill_at = wire_mono_us() + KILL_GRACE_US;
        trainer_signal(sl->trainer, SIGTERM);
        return;
    }
}

/* Forward a checkpoint the trainer finished writing. */
static void s_checkpoint(worker_t *w, s_slot_t *sl, Nader__Checkpoint *ck)
{
    char path[4300];
    FILE *f;
    long n;
    uint8_t *data = NULL;

    snprintf(path, sizeof path, "%s/checkpoint.ckpt", sl->dir);
    f = fopen(path, "rb");
    if (!f || fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) < 0) {
        log_warn("job %llu: checkpoint %s unreadable; not sent",
                 (unsigned long long)sl->job, path);
        if (f)
            fclose(f);
        return;
    }
    if ((int64_t)n + 1024 > w->opt.max_message_bytes) {
        log_warn("job %llu: checkpoint of %ld bytes is over the message "
                 "limit; not sent", (unsigned long long)sl->job, n);
        fclose(f);
        return;
    }
    data = malloc((size_t)n + 1);
    if (data && fread(data, 1, (size_t)n, f) == (size_t)n) {
        Nader__Envelope env = NADER__ENVELOPE__INIT;
        SET(ck, job, sl->job);
        SET(ck, attempt, sl->attempt);
        ck->has_data = 1;
        ck->data.data = data;
        ck->data.len = (size_t)n;
        env.body_case = NADER__ENVELOPE__BODY_CHECKPOINT;
        env.checkpoint = ck;
        s_send(w, &env);
        ck->data.data = NULL;
        ck->has_data = 0;
    }
    free(data);
    fclose(f);
}

/* Messages from a trainer. */
static void s_trainer_input(worker_t *w, s_slot_t *sl)
{
    Nader__Envelope *env;
    int rc;

    while ((rc = trainer_read(sl->trainer, &env)) == 1) {
        sl->alive_at = wire_mono_us();
        switch (env->body_case) {
        case NADER__ENVELOPE__BODY_PROGRESS:
            if (!env->progress->epoch) {  /* a sign of life; kept here */
                sl->steps = env->progress->steps;
                break;
            }
            sl->epoch = env->progress->epoch->epoch;
            SET(env->progress, job, sl->job);
            SET(env->progress, attempt, sl->attempt);
            s_send(w, env);
            break;
        case NADER__ENVELOPE__BODY_CHECKPOINT:
            s_checkpoint(w, sl, env->checkpoint);
            break;
        case NADER__ENVELOPE__BODY_RESULT:
            SET(env->result, job, sl->job);
            SET(env->result, attempt, sl->attempt);
            if (sl->cancel) {
                SET(env->result, status,
                    NADER__RESULT_STATUS__RESULT_CANCELLED);
            }
            if (env->result->status == NADER__RESULT_STATUS__RESULT_OK)
                log_info("job %llu attempt %u: done, %zu epochs in %.1f s, "
                         "final validation accuracy %.2f%%",
                         (unsigned long long)sl->job, sl->attempt,
                         env->result->n_epochs, env->result->seconds,
                         env->result->final_valid_acc);
            else
                log_info("job %llu attempt %u: ended: %s",
                         (unsigned long long)sl->job, sl->attempt,
                         env->result->reason ? env->result->reason : "?");
            s_result(w, env->result, sl->device);
            sl->job = 0;
            rc = -1;
            break;
        default:
            break;
        }
        wire_free(&env);
        if (rc < 0)
            break;
    }
    if (rc < 0) {
        char how[160], why[384];
        trainer_reap(sl->trainer, true, how, sizeof how);
        if (sl->job) {
            Nader__Result r = NADER__RESULT__INIT;
            if (sl->stalled)
                snprintf(why, sizeof why, "trainer stalled: no training "
                         "step for %.0f s (%lld steps done); killed",
                         (double)w->opt.stall_timeout_ms / 1e3,
                         (long long)sl->steps);
            else
                snprintf(why, sizeof why, "trainer %s before reporting a "
                         "result", how);
            SET(&r, job, sl->job);
            SET(&r, attempt, sl->attempt);
            SET(&r, status, sl->cancel ? NADER__RESULT_STATUS__RESULT_CANCELLED
                                       : NADER__RESULT_STATUS__RESULT_FAILED);
            r.reason = sl->cancel ? (char *)"cancelled" : why;
            r.device = sl->device;
            if (!sl->cancel)
                log_warn("job %llu attempt %u: %s",
                         (unsigned long long)sl->job, sl->attempt, why);
            s_result(w, &r, sl->device);
        }
        s_slot_clear(sl);
    }
}

/* ------------------------------------------------------------- the loop */

static void s_heartbeat(worker_t *w)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Heartbeat hb = NADER__HEARTBEAT__INIT;
    size_t cap = (size_t)w->n_slots + w->n_pending, n = 0;
    Nader__Running *run = calloc(cap + 1, sizeof *run);

    SET(&hb, sent_ms, wire_now_ms());
    hb.running = run ? s_running(w, run, cap, &n) : NULL;
    hb.n_running = hb.running ? n : 0;
    env.body_case = NADER__ENVELOPE__BODY_HEARTBEAT;
    env.heartbeat = &hb;
    s_send(w, &env);
    free(hb.running);
    free(run);
    w->last_hb = wire_mono_us();
}

static void s_welcome(worker_t *w, const Nader__Welcome *wl)
{
    w->welcomed = true;
    w->backoff_us = 250000u;
    if (wl->heartbeat_ms)
        w->interval_us = (uint64_t)wl->heartbeat_ms * 1000u;
    if (wl->timeout_ms)
        w->timeout_us = (uint64_t)wl->timeout_ms * 1000u;
    log_info("joined %s as w%u (%s); %zu result%s to resend", w->endpoint,
             wl->worker_no, w->opt.instant ? "LOAD TEST mode, no training"
                                            : "training",
             w->n_pending, w->n_pending == 1 ? "" : "s");
    for (size_t i = 0; i < w->n_pending; i++)
        s_pending_send(w, &w->pending[i]);
}

static void s_socket_input(worker_t *w)
{
    for (int k = 0; k < 1024 && w->sock; k++) {
        zmq_msg_t m;
        Nader__Envelope *env;
        char err[256];

        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, w->sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (wire_decode(zmq_msg_data(&m), zmq_msg_size(&m),
                        (size_t)w->opt.max_message_bytes, &env, err,
                        sizeof err) != WIRE_OK) {
            log_warn("from the coordinator: %s; dropped", err);
            zmq_msg_close(&m);
            continue;
        }
        zmq_msg_close(&m);
        w->last_heard = wire_mono_us();
        switch (env->body_case) {
        case NADER__ENVELOPE__BODY_WELCOME:
            s_welcome(w, env->welcome);
            break;
        case NADER__ENVELOPE__BODY_LEASE:
            if (w->welcomed)
                s_lease(w, env->lease);
            break;
        case NADER__ENVELOPE__BODY_CANCEL:
            s_cancel(w, env->cancel);
            break;
        case NADER__ENVELOPE__BODY_RESULT_ACK:
            s_ack(w, env->result_ack);
            break;
        case NADER__ENVELOPE__BODY_REJECT:
            if (env->reject->code == NADER__REJECT__CODE__HELLO_FIRST) {
                if (wire_mono_us() - w->hello_at > 200000u) {
                    w->welcomed = false;
                    s_hello(w);
                }
            } else {
                log_warn("the coordinator refused a message: %s",
                         env->reject->reason ? env->reject->reason : "?");
            }
            break;
        default:
            break;
        }
        wire_free(&env);
    }
}

/* Escalate cancels and resend unacknowledged results. */
static void s_timers(worker_t *w, uint64_t now)
{
    for (int i = 0; i < w->n_slots; i++) {
        s_slot_t *sl = &w->slots[i];
        if (sl->due && now >= sl->due)
            s_instant_answer(w, sl);
        if (sl->trainer && sl->kill_at && now >= sl->kill_at) {
            trainer_signal(sl->trainer, SIGKILL);
            sl->kill_at = 0;
        }
        if (sl->trainer && !sl->cancel && !sl->stalled &&
            w->opt.stall_timeout_ms > 0 && now > sl->alive_at &&
            now - sl->alive_at > (uint64_t)w->opt.stall_timeout_ms * 1000u) {
            log_warn("job %llu attempt %u: trainer pid %d finished no step "
                     "for %.0f s; killing it",
                     (unsigned long long)sl->job, sl->attempt,
                     (int)trainer_pid(sl->trainer),
                     (double)w->opt.stall_timeout_ms / 1e3);
            sl->stalled = true;
            trainer_signal(sl->trainer, SIGKILL);
        }
    }
    for (size_t i = 0; i < w->n_pending; i++)
        if (now - w->pending[i].sent_at > w->timeout_us)
            s_pending_send(w, &w->pending[i]);
    if (w->sock && w->welcomed && now - w->last_hb >= w->interval_us)
        s_heartbeat(w);
    if (w->sock && now - w->last_heard > w->timeout_us)
        s_disconnect(w, w->welcomed ? "silent for the heartbeat timeout"
                                    : "no answer to hello");
    if (!w->sock && now >= w->next_connect)
        s_connect(w);
}

/* Stop: end the trainers, wait briefly for acks, say goodbye. */
static void s_shutdown(worker_t *w)
{
    uint64_t until = wire_mono_us() + 2000000u;
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Goodbye bye = NADER__GOODBYE__INIT;

    for (int i = 0; i < w->n_slots; i++)
        if (w->slots[i].trainer) {
            trainer_signal(w->slots[i].trainer, SIGKILL);
            s_slot_clear(&w->slots[i]);
        }
    while (w->sock && w->welcomed && w->n_pending &&
           wire_mono_us() < until) {
        zmq_pollitem_t it = {w->sock, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0)
            s_socket_input(w);
    }
    bye.reason = (char *)"worker stopping";
    env.body_case = NADER__ENVELOPE__BODY_GOODBYE;
    env.goodbye = &bye;
    s_send(w, &env);
    if (w->sock) {
        int linger = 500;
        zmq_setsockopt(w->sock, ZMQ_LINGER, &linger, sizeof linger);
    }
    log_info("worker %s stopped (%llu leases, %llu results, %zu not "
             "acknowledged)", w->name, (unsigned long long)w->stats.leases,
             (unsigned long long)w->stats.results, w->n_pending);
}

int worker_run(worker_t *w)
{
    zmq_pollitem_t items[INVENTORY_MAX + 1];

    log_info("worker %s: %d device%s, data sets [%d found in %s], "
             "coordinator %s%s", w->name, w->n_slots,
             w->n_slots == 1 ? "" : "s", w->inv.n_datasets, w->data_dir,
             w->endpoint, w->opt.instant
                 ? "; LOAD TEST mode: answers without training" : "");
    if (s_connect(w) < 0)
        return -1;
    while (!atomic_load(&w->stop)) {
        int n = 0, map[INVENTORY_MAX + 1];
        uint64_t now;

        if (w->sock) {
            items[n] = (zmq_pollitem_t){w->sock, 0, ZMQ_POLLIN, 0};
            map[n++] = -1;
        }
        for (int i = 0; i < w->n_slots; i++)
            if (w->slots[i].trainer) {
                items[n] = (zmq_pollitem_t){NULL,
                                            trainer_fd(w->slots[i].trainer),
                                            ZMQ_POLLIN, 0};
                map[n++] = i;
            }
        if (zmq_poll(items, n, POLL_MAX_MS) < 0 && errno != EINTR) {
            log_error("poll failed: %s", zmq_strerror(errno));
            return -1;
        }
        for (int k = 0; k < n; k++) {
            if (!(items[k].revents & (ZMQ_POLLIN | ZMQ_POLLERR)))
                continue;
            if (map[k] < 0)
                s_socket_input(w);
            else if (w->slots[map[k]].trainer)
                s_trainer_input(w, &w->slots[map[k]]);
        }
        now = wire_mono_us();
        s_timers(w, now);
    }
    s_shutdown(w);
    return 0;
}
