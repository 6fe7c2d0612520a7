/*
 * scheduler.c - jobs, the queue, leases and live settings; see
 * scheduler.h.  The worker side of the protocol (hello, heartbeats,
 * progress, results) is in sched_workers.c.
 *
 * Only active jobs live in memory, each as its decoded JobRecord, so
 * memory follows the queue, not the history: 100,000 finished jobs cost
 * nothing here.  The queue is one binary heap of (priority, id) per data
 * set; entries are never removed early, a popped entry whose job is no
 * longer queued is simply skipped, which keeps cancel O(1).
 */
#include "sched_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wire.h"

#define SET(rec, field, value)                                             \
    do {                                                                   \
        (rec)->has_##field = 1;                                            \
        (rec)->field = (value);                                            \
    } while (0)

void sched_log(sched_t *s, int level, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (!s->opt.log)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    s->opt.log(s->opt.ctx, level, line);
}

void sched_str_set(char **field, const char *value)
{
    free(*field);
    *field = value ? strdup(value) : NULL;
}

void sched_send(sched_t *s, sched_worker_t *w, Nader__Envelope *env,
                bool durable)
{
    if (s->opt.send)
        s->opt.send(s->opt.ctx, w, env, durable);
}

void sched_send_cancel(sched_t *s, sched_worker_t *w, uint64_t job,
                       uint32_t attempt, const char *reason)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Cancel c = NADER__CANCEL__INIT;

    SET(&c, job, job);
    SET(&c, attempt, attempt);
    c.reason = (char *)reason;
    env.body_case = NADER__ENVELOPE__BODY_CANCEL;
    env.cancel = &c;
    sched_send(s, w, &env, false);
}

int sched_dataset_index(sched_t *s, const char *name)
{
    for (int i = 0; i < s->n_datasets; i++)
        if (strcmp(s->datasets[i], name) == 0)
            return i;
    if (s->n_datasets == SCHED_MAX_DATASETS)
        return -1;
    s->datasets[s->n_datasets] = strdup(name);
    if (!s->datasets[s->n_datasets])
        return -1;
    return s->n_datasets++;
}

/* ----------------------------------------------------------------- heap */

static bool s_before(const s_heap_item_t *a, const s_heap_item_t *b)
{
    return a->priority > b->priority ||
           (a->priority == b->priority && a->id < b->id);
}

static int s_heap_push(s_heap_t *h, int32_t priority, uint64_t id)
{
    size_t i;

    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        s_heap_item_t *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    i = h->n++;
    h->v[i] = (s_heap_item_t){priority, id};
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!s_before(&h->v[i], &h->v[p]))
            break;
        s_heap_item_t tmp = h->v[i];
        h->v[i] = h->v[p];
        h->v[p] = tmp;
        i = p;
    }
    return 0;
}

static void s_heap_pop(s_heap_t *h)
{
    size_t i = 0;

    h->v[0] = h->v[--h->n];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->n && s_before(&h->v[l], &h->v[m]))
            m = l;
        if (r < h->n && s_before(&h->v[r], &h->v[m]))
            m = r;
        if (m == i)
            break;
        s_heap_item_t tmp = h->v[i];
        h->v[i] = h->v[m];
        h->v[m] = tmp;
        i = m;
    }
}

/* The queued job at the top of queue q, dropping stale entries. */
static s_job_t *s_queue_top(sched_t *s, int q)
{
    s_heap_t *h = &s->queues[q];

    while (h->n) {
        s_job_t *j = idmap_get(s->jobs, h->v[0].id);
        if (j && j->rec->state == NADER__JOB_STATE__JOB_QUEUED &&
            j->rec->priority == h->v[0].priority)
            return j;
        s_heap_pop(h);
    }
    return NULL;
}

/* Take the best queued job among the data sets in mask, or NULL. */
static s_job_t *s_queue_take(sched_t *s, uint64_t mask)
{
    s_job_t *best = NULL;
    int bq = -1;

    for (int q = 0; q < s->n_datasets; q++) {
        s_job_t *j;
        if (!(mask & (1ULL << q)) || !s->queued_in[q])
            continue;
        j = s_queue_top(s, q);
        if (!j)
            continue;
        if (!best || j->rec->priority > best->rec->priority ||
            (j->rec->priority == best->rec->priority &&
             j->rec->id < best->rec->id)) {
            best = j;
            bq = q;
        }
    }
    if (best) {
        s_heap_pop(&s->queues[bq]);
        s->queued_in[bq]--;
    }
    return best;
}

static int s_queue_put(sched_t *s, s_job_t *j)
{
    if (s_heap_push(&s->queues[j->dataset], j->rec->priority, j->rec->id) <
        0)
        return -1;
    s->queued_in[j->dataset]++;
    return 0;
}

/* ----------------------------------------------------------------- jobs */

static uint64_t *s_count_of(sched_counts_t *c, Nader__JobState st)
{
    switch (st) {
    case NADER__JOB_STATE__JOB_QUEUED: return &c->queued;
    case NADER__JOB_STATE__JOB_LEASED: return &c->leased;
    case NADER__JOB_STATE__JOB_RUNNING: return &c->running;
    case NADER__JOB_STATE__JOB_DONE: return &c->done;
    case NADER__JOB_STATE__JOB_FAILED: return &c->failed;
    default: return &c->cancelled;
    }
}

/* Move one job between state counts; from == -1: a new job. */
void sched_count_move(sched_t *s, Nader__JobState from, Nader__JobState to)
{
    if ((int)from >= 0) {
        uint64_t *f = s_count_of(&s->counts, from);
        if (*f)
            (*f)--;
    }
    (*s_count_of(&s->counts, to))++;
    s->counts_dirty = true;
}

int sched_job_put(sched_t *s, store_txn_t *t, s_job_t *j)
{
    (void)s;
    return store_job_put(t, j->rec);
}

static void s_job_free(s_job_t *j)
{
    if (!j)
        return;
    nader__job_record__free_unpacked(j->rec, NULL);
    free(j);
}

/* Make an s_job_t owning a decoded copy of rec. */
static s_job_t *s_job_new(sched_t *s, const Nader__JobRecord *rec)
{
    size_t n = nader__job_record__get_packed_size(rec);
    uint8_t *buf = malloc(n ? n : 1);
    s_job_t *j = calloc(1, sizeof *j);
    const char *ds;

    if (!buf || !j)
        goto fail;
    nader__job_record__pack(rec, buf);
    j->rec = nader__job_record__unpack(NULL, n, buf);
    if (!j->rec || !j->rec->spec)
        goto fail;
    free(buf);
    j->slot = -1;
    ds = j->rec->spec->dataset ? j->rec->spec->dataset : "cifar10";
    j->dataset = sched_dataset_index(s, ds);
    if (j->dataset < 0) {
        s_job_free(j);
        return NULL;
    }
    return j;
fail:
    free(buf);
    if (j && j->rec)
        nader__job_record__free_unpacked(j->rec, NULL);
    free(j);
    return NULL;
}

void sched_job_attach(sched_t *s, s_job_t *j, sched_worker_t *w, int slot)
{
    (void)s;
    j->holder = w;
    j->slot = slot;
    w->slots[slot].job = j;
    w->slots[slot].missing_since = 0;
    w->slots[slot].images_per_s = 0;
    w->slots[slot].epochs = j->rec->spec->epochs;
    if (j->orphan_deadline) {
        j->orphan_deadline = 0;
        s->n_orphans--;
    }
}

void sched_job_detach(s_job_t *j)
{
    if (j->holder && j->slot >= 0 && j->slot < j->holder->n_slots &&
        j->holder->slots[j->slot].job == j)
        j->holder->slots[j->slot].job = NULL;
    j->holder = NULL;
    j->slot = -1;
}

static void s_recent_add(sched_t *s, uint64_t now_wall_us)
{
    uint64_t sec = now_wall_us / 1000000u;
    int b = (int)(sec % SCHED_RECENT_S);

    if (s->recent_sec[b] != sec) {
        s->recent_sec[b] = sec;
        s->recent[b] = 0;
    }
    s->recent[b]++;
}

int sched_job_finish(sched_t *s, store_txn_t *t, s_job_t *j,
                     Nader__JobState state, const Nader__Result *r,
                     const char *reason)
{
    Nader__JobRecord *rec = j->rec;
    Nader__JobState from = rec->state;
    uint64_t now = wire_now_us();
    int rc;

    SET(rec, state, state);
    SET(rec, finished_us, now);
    if (reason)
        sched_str_set(&rec->reason, reason);
    if (r) {
        Nader__ResultRecord rr = NADER__RESULT_RECORD__INIT;
        SET(&rr, job, rec->id);
        rr.result = (Nader__Result *)r;
        rr.design_hash = rec->spec->design_hash;
        rr.dataset = rec->spec->dataset;
        SET(&rr, seed, rec->spec->seed);
        SET(&rr, epochs, rec->spec->epochs);
        SET(&rr, stored_us, now);
        rr.tag = rec->tag;
        if ((rc = store_result_put(t, &rr)) < 0)
            return rc;
        s->counts.results++;
        if (r->load_test)
            s->counts.load_test_results++;
        s_recent_add(s, now);
        if (s->opt.kept)
            s->opt.kept(s->opt.ctx, &rr);
    }
    if ((rc = store_job_put(t, rec)) < 0)
        return rc;
    if (rec->checkpoint_epoch >= 0 &&
        (rc = store_checkpoint_del(t, rec->id)) < 0)
        return rc;
    sched_count_move(s, from, state);
    sched_job_detach(j);
    if (j->orphan_deadline) {
        j->orphan_deadline = 0;
        s->n_orphans--;
    }
    idmap_del(s->jobs, rec->id);
    s_job_free(j);
    return 0;
}

int sched_job_requeue(sched_t *s, store_txn_t *t, s_job_t *j,
                      const char *reason, bool failed)
{
    Nader__JobRecord *rec = j->rec;
    Nader__JobState from = rec->state;
    int rc;

    if (failed) {
        SET(rec, failures, rec->failures + 1);
        if (rec->failures >= rec->max_attempts) {
            Nader__Result r = NADER__RESULT__INIT;
            char why[384];
            snprintf(why, sizeof why, "gave up after %u failed attempts; "
                     "last: %s", rec->failures, reason);
            SET(&r, job, rec->id);
            SET(&r, attempt, rec->attempts);
            SET(&r, status, NADER__RESULT_STATUS__RESULT_FAILED);
            r.reason = why;
            r.worker = rec->worker;
            r.device = rec->device;
            sched_log(s, LOG_WARN, "job %llu failed: %s",
                      (unsigned long long)rec->id, why);
            return sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_FAILED,
                                    &r, why);
        }
    }
    sched_job_detach(j);
    if (j->orphan_deadline) {
        j->orphan_deadline = 0;
        s->n_orphans--;
    }
    SET(rec, state, NADER__JOB_STATE__JOB_QUEUED);
    sched_str_set(&rec->reason, reason);
    sched_str_set(&rec->worker, NULL);
    sched_str_set(&rec->device, NULL);
    if ((rc = store_job_put(t, rec)) < 0)
        return rc;
    if (s_queue_put(s, j) < 0)
        return STORE_ENOMEM;
    sched_count_move(s, from, NADER__JOB_STATE__JOB_QUEUED);
    return 0;
}

int sched_job_submit(sched_t *s, store_txn_t *t, const sched_job_new_t *n,
                     uint64_t *id)
{
    Nader__JobRecord rec = NADER__JOB_RECORD__INIT;
    Nader__JobSpec spec = *n->spec;
    s_job_t *j;
    int rc;

    rc = store_next_id(t, STORE_JOBS, id);
    if (rc < 0)
        return rc;
    spec.design = NULL;
    SET(&spec, id, *id);
    SET(&spec, attempt, 0);
    if (!spec.has_checkpoint_every) {
        SET(&spec, checkpoint_every, s->opt.checkpoint_every);
    }
    SET(&rec, id, *id);
    SET(&rec, state, NADER__JOB_STATE__JOB_QUEUED);
    SET(&rec, priority, n->priority);
    rec.spec = &spec;
    SET(&rec, attempts, 0);
    SET(&rec, failures, 0);
    SET(&rec, max_attempts, n->max_attempts ? n->max_attempts
                                            : s->opt.max_attempts);
    SET(&rec, created_us, wire_now_us());
    rec.tag = (char *)n->tag;
    SET(&rec, params, n->params);
    SET(&rec, macs, n->macs);
    j = s_job_new(s, &rec);
    if (!j)
        return STORE_ENOMEM;
    if ((rc = store_job_put(t, j->rec)) < 0 ||
        idmap_put(s->jobs, *id, j) < 0 || s_queue_put(s, j) < 0) {
        idmap_del(s->jobs, *id);
        s_job_free(j);
        return rc < 0 ? rc : STORE_ENOMEM;
    }
    sched_count_move(s, (Nader__JobState)-1, NADER__JOB_STATE__JOB_QUEUED);
    return 0;
}

int sched_job_cancel(sched_t *s, store_txn_t *t, uint64_t id,
                     const char *reason, char *err, size_t errlen)
{
    s_job_t *j = idmap_get(s->jobs, id);
    Nader__JobRecord *rec = NULL;
    int rc;

    if (!j) {
        rc = store_job_get(t, id, &rec);
        if (rc < 0)
            return rc;
        if (rc == STORE_NOTFOUND)
            snprintf(err, errlen, "job %llu: no such job",
                     (unsigned long long)id);
        else
            snprintf(err, errlen, "job %llu: already finished",
                     (unsigned long long)id);
        if (rec)
            nader__job_record__free_unpacked(rec, NULL);
        return 1;
    }
    if (j->holder)
        sched_send_cancel(s, j->holder, id, j->rec->attempts,
                          reason ? reason : "cancelled");
    sched_log(s, LOG_INFO, "job %llu cancelled%s%s: %s",
              (unsigned long long)id, j->holder ? " on " : "",
              j->holder ? j->holder->name : "",
              reason ? reason : "no reason given");
    return sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_CANCELLED,
                            NULL, reason ? reason : "cancelled");
}

/* ------------------------------------------------------------- leasing */

static int s_lease(sched_t *s, store_txn_t *t, s_job_t *j, sched_worker_t *w,
                   int slot, uint64_t now)
{
    Nader__JobRecord *rec = j->rec;
    Nader__DesignRecord *design = NULL;
    Nader__CheckpointRecord *ck = NULL;
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Lease lease = NADER__LEASE__INIT;
    Nader__JobSpec spec;
    int rc;

    (void)now;
    rc = store_design_get(t, rec->spec->design_hash, &design);
    if (rc != STORE_OK) {
        char why[384];
        if (rc < 0)
            return rc;
        snprintf(why, sizeof why, "design %s is not in the store",
                 rec->spec->design_hash);
        return sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_FAILED, NULL,
                                why);
    }
    if (rec->checkpoint_epoch >= 0 &&
        (rc = store_checkpoint_get(t, rec->id, &ck)) < 0) {
        nader__design_record__free_unpacked(design, NULL);
        return rc;
    }
    SET(rec, state, NADER__JOB_STATE__JOB_LEASED);
    SET(rec, attempts, rec->attempts + 1);
    SET(rec->spec, attempt, rec->attempts);
    sched_str_set(&rec->worker, w->name);
    sched_str_set(&rec->device, w->slots[slot].device);
    SET(rec, leased_us, wire_now_us());
    SET(rec, epoch, -1);
    rc = store_job_put(t, rec);
    if (rc < 0)
        goto out;
    sched_count_move(s, NADER__JOB_STATE__JOB_QUEUED,
                     NADER__JOB_STATE__JOB_LEASED);
    sched_job_attach(s, j, w, slot);

    spec = *rec->spec;
    spec.design = design->text;
    lease.job = &spec;
    lease.device = w->slots[slot].device;
    if (ck && ck->has_data) {
        lease.has_checkpoint = 1;
        lease.checkpoint = ck->data;
        SET(&lease, checkpoint_epoch, ck->epoch);
    }
    env.body_case = NADER__ENVELOPE__BODY_LEASE;
    env.lease = &lease;
    sched_send(s, w, &env, true);
    sched_log(s, LOG_DEBUG, "job %llu attempt %u leased to %s (%s)%s",
              (unsigned long long)rec->id, rec->attempts, w->name,
              w->slots[slot].device, ck ? " with a checkpoint" : "");
out:
    nader__design_record__free_unpacked(design, NULL);
    if (ck)
        nader__checkpoint_record__free_unpacked(ck, NULL);
    return rc;
}

bool sched_dispatch_wanted(const sched_t *s)
{
    uint64_t busy = s->counts.leased + s->counts.running;

    return !s->paused && s->counts.queued > 0 && s->n_workers > 0 &&
           (s->max_running <= 0 || busy < (uint64_t)s->max_running);
}

int sched_dispatch(sched_t *s, store_txn_t *t, uint64_t now)
{
    sched_worker_t *start, *w;
    int n = 0, rc;

    if (!sched_dispatch_wanted(s))
        return 0;
    start = s->cursor ? s->cursor : s->first;
    w = start;
    do {
        sched_worker_t *next = w->next ? w->next : s->first;
        for (int i = 0; i < w->n_slots; i++) {
            s_job_t *j;
            if (w->slots[i].job)
                continue;
            if (!sched_dispatch_wanted(s))
                goto done;
            j = s_queue_take(s, w->dataset_mask);
            if (!j)
                break;
            rc = s_lease(s, t, j, w, i, now);
            if (rc < 0)
                return rc;
            n++;
        }
        w = next;
    } while (w != start);
done:
    s->cursor = w;
    return n;
}

/* ------------------------------------------------------------ lifecycle */

int sched_new(store_t *store, const sched_options_t *opt, sched_t **out,
              char *err, size_t errlen)
{
    sched_t *s = calloc(1, sizeof *s);

    *out = NULL;
    if (!s || !(s->jobs = idmap_new()) || !(s->workers = idmap_new())) {
        if (s) {
            idmap_destroy(&s->jobs);
            free(s);
        }
        snprintf(err, errlen, "scheduler: out of memory");
        return -1;
    }
    s->store = store;
    s->opt = *opt;
    if (!s->opt.max_attempts)
        s->opt.max_attempts = 3;
    s->paused = opt->paused;
    s->max_running = opt->max_running;
    s->next_worker_no = 1;
    for (const char *const *d = (const char *const[]){
             "cifar10", "cifar10-valid", "cifar100", "imagenet16-120", NULL};
         *d; d++)
        sched_dataset_index(s, *d);
    *out = s;
    return 0;
}

static int s_free_job_cb(void *ctx, void *value)
{
    (void)ctx;
    s_job_free(value);
    return 0;
}

/* Drop every job from memory (workers keep no pointers to them). */
static void s_jobs_clear(sched_t *s)
{
    for (sched_worker_t *w = s->first; w; w = w->next)
        for (int i = 0; i < w->n_slots; i++)
            w->slots[i].job = NULL;
    idmap_each(s->jobs, s_free_job_cb, NULL);
    idmap_destroy(&s->jobs);
    s->jobs = idmap_new();
    for (int q = 0; q < s->n_datasets; q++) {
        s->queues[q].n = 0;
        s->queued_in[q] = 0;
    }
    s->n_orphans = 0;
}

void sched_destroy(sched_t **sp)
{
    sched_t *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    while (s->first)
        sched_worker_free(s, s->first);
    if (s->jobs)
        idmap_each(s->jobs, s_free_job_cb, NULL);
    idmap_destroy(&s->jobs);
    idmap_destroy(&s->workers);
    for (int q = 0; q < s->n_datasets; q++) {
        free(s->queues[q].v);
        free(s->datasets[q]);
    }
    free(s);
    *sp = NULL;
}

typedef struct s_load {
    sched_t *s;
    store_txn_t *t;
    uint64_t now;
    int rc;
} s_load_t;

/* Find the slot of w that can hold a lease on device, or -1. */
static int s_slot_for(sched_worker_t *w, const char *device)
{
    for (int i = 0; i < w->n_slots; i++)
        if (!w->slots[i].job && device &&
            strcmp(w->slots[i].device, device) == 0)
            return i;
    return -1;
}

static int s_load_job(void *ctx, const void *key, size_t klen,
                      const void *val, size_t vlen)
{
    s_load_t *l = ctx;
    sched_t *s = l->s;
    Nader__JobRecord *rec;
    s_job_t *j;
    int rc;

    (void)val;
    (void)vlen;
    if (klen != 8)
        return 0;
    rc = store_job_get(l->t, store_key_to_u64(key), &rec);
    if (rc != STORE_OK) {
        l->rc = rc < 0 ? rc : STORE_ECORRUPT;
        return 1;
    }
    j = s_job_new(s, rec);
    nader__job_record__free_unpacked(rec, NULL);
    if (!j || idmap_put(s->jobs, j->rec->id, j) < 0) {
        s_job_free(j);
        l->rc = STORE_ENOMEM;
        return 1;
    }
    if (j->rec->state == NADER__JOB_STATE__JOB_QUEUED) {
        if (s_queue_put(s, j) < 0) {
            l->rc = STORE_ENOMEM;
            return 1;
        }
        return 0;
    }
    /* Leased or running: keep it with its worker if that worker is
     * connected (a reload after a failed commit), else wait for it. */
    for (sched_worker_t *w = s->first; w; w = w->next) {
        int slot;
        if (!j->rec->worker || strcmp(w->name, j->rec->worker) != 0)
            continue;
        slot = s_slot_for(w, j->rec->device);
        if (slot >= 0) {
            sched_job_attach(s, j, w, slot);
            return 0;
        }
    }
    j->orphan_deadline = l->now + s->opt.reattach_grace_us;
    if (!s->n_orphans || j->orphan_deadline < s->orphan_next)
        s->orphan_next = j->orphan_deadline;
    s->n_orphans++;
    return 0;
}

int sched_reload(sched_t *s, store_txn_t *t, uint64_t now, char *err,
                 size_t errlen)
{
    Nader__SettingsRecord *set = NULL;
    Nader__CountsRecord *c = NULL;
    s_load_t l = {s, t, now, 0};
    int rc;

    s_jobs_clear(s);
    rc = store_scan(t, STORE_ACTIVE, NULL, 0, s_load_job, &l);
    if (rc < 0 || l.rc < 0) {
        snprintf(err, errlen, "loading jobs: %s", store_txn_error(t));
        return rc < 0 ? rc : l.rc;
    }
    if ((rc = store_settings_get(t, &set)) < 0 ||
        (rc = store_counts_get(t, &c)) < 0) {
        snprintf(err, errlen, "loading settings: %s", store_txn_error(t));
        if (set)
            nader__settings_record__free_unpacked(set, NULL);
        return rc;
    }
    s->paused = set->has_paused ? set->paused : s->opt.paused;
    s->max_running = set->has_max_running ? set->max_running
                                          : s->opt.max_running;
    s->counts = (sched_counts_t){c->queued, c->leased,  c->running,
                                 c->done,   c->failed,  c->cancelled,
                                 c->results, c->load_test_results};
    s->counts_dirty = false;
    nader__settings_record__free_unpacked(set, NULL);
    nader__counts_record__free_unpacked(c, NULL);
    return 0;
}

int sched_flush(sched_t *s, store_txn_t *t)
{
    Nader__CountsRecord c = NADER__COUNTS_RECORD__INIT;
    int rc;

    if (!s->counts_dirty)
        return 0;
    SET(&c, queued, s->counts.queued);
    SET(&c, leased, s->counts.leased);
    SET(&c, running, s->counts.running);
    SET(&c, done, s->counts.done);
    SET(&c, failed, s->counts.failed);
    SET(&c, cancelled, s->counts.cancelled);
    SET(&c, results, s->counts.results);
    SET(&c, load_test_results, s->counts.load_test_results);
    rc = store_counts_put(t, &c);
    if (rc == 0)
        s->counts_dirty = false;
    return rc;
}

/* --------------------------------------------------------------- timers */

typedef struct s_orphans {
    sched_t *s;
    uint64_t now;
    s_job_t **due;
    size_t n, cap;
} s_orphans_t;

static int s_collect_orphan(void *ctx, void *value)
{
    s_orphans_t *o = ctx;
    s_job_t *j = value;

    if (!j->orphan_deadline)
        return 0;
    if (j->holder || (j->rec->state != NADER__JOB_STATE__JOB_LEASED &&
                      j->rec->state != NADER__JOB_STATE__JOB_RUNNING)) {
        j->orphan_deadline = 0;     /* settled meanwhile */
        o->s->n_orphans--;
        return 0;
    }
    if (j->orphan_deadline > o->now) {
        if (j->orphan_deadline < o->s->orphan_next)
            o->s->orphan_next = j->orphan_deadline;
        return 0;
    }
    if (o->n == o->cap) {
        size_t cap = o->cap ? 2 * o->cap : 64;
        s_job_t **due = realloc(o->due, cap * sizeof *due);
        if (!due)
            return 1;
        o->due = due;
        o->cap = cap;
    }
    o->due[o->n++] = j;
    return 0;
}

static int s_requeue_orphans(sched_t *s, store_txn_t *t, uint64_t now)
{
    s_orphans_t o = {s, now, NULL, 0, 0};
    int rc = 0;

    if (!s->n_orphans || now < s->orphan_next)
        return 0;
    s->orphan_next = UINT64_MAX;
    if (idmap_each(s->jobs, s_collect_orphan, &o)) {
        free(o.due);
        return STORE_ENOMEM;
    }
    for (size_t i = 0; i < o.n && rc == 0; i++) {
        s_job_t *j = o.due[i];
        j->orphan_deadline = 0;
        s->n_orphans--;
        sched_log(s, LOG_INFO, "job %llu attempt %u: %s did not report it "
                  "after the restart; queued again",
                  (unsigned long long)j->rec->id, j->rec->attempts,
                  j->rec->worker ? j->rec->worker : "its worker");
        rc = sched_job_requeue(s, t, j, "worker did not report it after a "
                               "coordinator restart", false);
    }
    free(o.due);
    return rc;
}

int sched_tick(sched_t *s, store_txn_t *t, uint64_t now, uint64_t *next_us)
{
    uint64_t next = now + s->opt.heartbeat_interval_us;
    sched_worker_t *w, *nw;
    int rc;

    for (w = s->first; w; w = nw) {
        nw = w->next;
        if (now - w->last_seen > s->opt.heartbeat_timeout_us) {
            char why[128];
            snprintf(why, sizeof why, "silent for %.1f s",
                     (double)(now - w->last_seen) / 1e6);
            if ((rc = sched_worker_leave(s, t, w, why, true)) < 0)
                return rc;
            continue;
        }
        if (now - w->last_sent >= s->opt.heartbeat_interval_us) {
            Nader__Envelope env = NADER__ENVELOPE__INIT;
            Nader__Heartbeat hb = NADER__HEARTBEAT__INIT;
            SET(&hb, sent_ms, wire_now_ms());
            env.body_case = NADER__ENVELOPE__BODY_HEARTBEAT;
            env.heartbeat = &hb;
            sched_send(s, w, &env, false);
            w->last_sent = now;
        }
        if (w->last_sent + s->opt.heartbeat_interval_us < next)
            next = w->last_sent + s->opt.heartbeat_interval_us;
        if (w->last_seen + s->opt.heartbeat_timeout_us + 1 < next)
            next = w->last_seen + s->opt.heartbeat_timeout_us + 1;
    }
    if ((rc = s_requeue_orphans(s, t, now)) < 0)
        return rc;
    if (s->n_orphans && s->orphan_next < next)
        next = s->orphan_next;
    if (next_us)
        *next_us = next;
    return 0;
}

/* ------------------------------------------------------------- settings */

static int s_settings_write(sched_t *s, store_txn_t *t, int which)
{
    Nader__SettingsRecord *cur = NULL;
    int rc = store_settings_get(t, &cur);

    if (rc < 0)
        return rc;
    if (which == 0) {
        SET(cur, paused, s->paused);
    } else {
        SET(cur, max_running, s->max_running);
    }
    rc = store_settings_put(t, cur);
    nader__settings_record__free_unpacked(cur, NULL);
    return rc;
}

int sched_set_paused(sched_t *s, store_txn_t *t, bool paused)
{
    s->paused = paused;
    return s_settings_write(s, t, 0);
}

int sched_set_max_running(sched_t *s, store_txn_t *t, int32_t max)
{
    s->max_running = max < 0 ? 0 : max;
    return s_settings_write(s, t, 1);
}

bool sched_paused(const sched_t *s)
{
    return s->paused;
}

int32_t sched_max_running(const sched_t *s)
{
    return s->max_running;
}

/* ----------------------------------------------------------- inspection */

void sched_counts(const sched_t *s, sched_counts_t *c)
{
    *c = s->counts;
}

int sched_queue_by_dataset(const sched_t *s, const char **names,
                           uint64_t *counts, int cap)
{
    int n = 0;

    for (int q = 0; q < s->n_datasets && n < cap; q++) {
        if (!s->queued_in[q])
            continue;
        names[n] = s->datasets[q];
        counts[n++] = s->queued_in[q];
    }
    return n;
}

int sched_queue_peek(const sched_t *s, uint64_t *ids, int n)
{
    s_heap_item_t *best = calloc((size_t)n, sizeof *best);
    int k = 0;

    if (!best)
        return 0;
    for (int q = 0; q < s->n_datasets; q++) {
        const s_heap_t *h = &s->queues[q];
        for (size_t i = 0; i < h->n; i++) {
            const s_job_t *j = idmap_get(s->jobs, h->v[i].id);
            int pos;
            if (!j || j->rec->state != NADER__JOB_STATE__JOB_QUEUED ||
                j->rec->priority != h->v[i].priority)
                continue;
            if (k == n && !s_before(&h->v[i], &best[k - 1]))
                continue;
            pos = k < n ? k++ : n - 1;
            while (pos > 0 && s_before(&h->v[i], &best[pos - 1])) {
                best[pos] = best[pos - 1];
                pos--;
            }
            best[pos] = h->v[i];
        }
    }
    for (int i = 0; i < k; i++)
        ids[i] = best[i].id;
    free(best);
    return k;
}

const Nader__JobRecord *sched_job_active(const sched_t *s, uint64_t id)
{
    const s_job_t *j = idmap_get(s->jobs, id);

    return j ? j->rec : NULL;
}

uint64_t sched_recent_results(const sched_t *s, int seconds,
                              uint64_t now_wall_us)
{
    uint64_t now = now_wall_us / 1000000u, n = 0;

    if (seconds > SCHED_RECENT_S)
        seconds = SCHED_RECENT_S;
    for (int b = 0; b < SCHED_RECENT_S; b++)
        if (s->recent_sec[b] + (uint64_t)seconds > now &&
            s->recent_sec[b] <= now)
            n += s->recent[b];
    return n;
}
