/*
 * sched_workers.c - the scheduler's side of the worker protocol: hello
 * and re-attachment, heartbeats and their reconciliation, progress,
 * checkpoints, results (kept exactly once), and leaving.  See
 * scheduler.h for the rules and docs/protocol.md for the messages.
 *
 * Reconciliation is what makes faults boring.  Every heartbeat and hello
 * lists the jobs a worker has in hand; a job listed that is not the
 * worker's to run is cancelled there, and a lease the worker stops
 * listing for longer than heartbeat.timeout is taken back, so a lease
 * lost in transit (a reconnect, a restart) never hangs a job.
 */
#include "sched_int.h"

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

#define ULL(x) ((unsigned long long)(x))

static bool s_active_state(Nader__JobState st)
{
    return st == NADER__JOB_STATE__JOB_LEASED ||
           st == NADER__JOB_STATE__JOB_RUNNING;
}

void sched_worker_free(sched_t *s, sched_worker_t *w)
{
    if (s->opt.dropped)
        s->opt.dropped(s->opt.ctx, w);
    for (int i = 0; i < w->n_slots; i++) {
        if (w->slots[i].job)
            sched_job_detach(w->slots[i].job);
        free(w->slots[i].device);
    }
    idmap_del_bytes(s->workers, w->rid, w->rid_len);
    if (s->cursor == w)
        s->cursor = w->next;
    if (w->prev)
        w->prev->next = w->next;
    else
        s->first = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        s->last = w->prev;
    s->n_workers--;
    for (int i = 0; i < w->n_datasets; i++)
        free(w->datasets[i]);
    free(w->datasets);
    free(w->slots);
    free(w->name);
    free(w->host);
    free(w->peer);
    free(w);
}

sched_worker_t *sched_worker_find(sched_t *s, const void *rid,
                                  size_t rid_len)
{
    return idmap_get_bytes(s->workers, rid, rid_len);
}

void sched_worker_seen(sched_worker_t *w, uint64_t now)
{
    w->last_seen = now;
}

/* Return every lease of w to the queue (or fail jobs out of attempts). */
static int s_release_all(sched_t *s, store_txn_t *t, sched_worker_t *w,
                         const char *reason, bool failed, int *n)
{
    int rc;

    *n = 0;
    for (int i = 0; i < w->n_slots; i++) {
        s_job_t *j = w->slots[i].job;
        if (!j)
            continue;
        (*n)++;
        rc = sched_job_requeue(s, t, j, reason, failed);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int sched_worker_leave(sched_t *s, store_txn_t *t, sched_worker_t *w,
                       const char *reason, bool failed)
{
    char why[256];
    int n, rc;

    snprintf(why, sizeof why, "worker %s left: %s", w->name, reason);
    rc = s_release_all(s, t, w, why, failed, &n);
    sched_log(s, failed ? LOG_WARN : LOG_INFO,
              "worker w%u %s (%s) gone: %s; %d lease%s back to the queue",
              w->no, w->name, w->host, reason, n, n == 1 ? "" : "s");
    sched_worker_free(s, w);
    return rc;
}

/* Make a worker from a hello (not yet linked in). */
static sched_worker_t *s_worker_new(sched_t *s, const void *rid,
                                    size_t rid_len, const char *peer,
                                    const Nader__Hello *h, uint64_t now)
{
    sched_worker_t *w = calloc(1, sizeof *w);
    size_t n_dev = h->n_devices ? h->n_devices : 1;

    if (!w || rid_len > sizeof w->rid)
        goto fail;
    memcpy(w->rid, rid, rid_len);
    w->rid_len = rid_len;
    w->name = strdup(h->worker);
    w->host = strdup(h->host ? h->host : "?");
    w->peer = strdup(peer ? peer : "");
    w->slots = calloc(n_dev, sizeof *w->slots);
    w->datasets = calloc(h->n_datasets + 1, sizeof *w->datasets);
    if (!w->name || !w->host || !w->peer || !w->slots || !w->datasets)
        goto fail;
    for (size_t i = 0; i < n_dev; i++) {
        const char *dev = h->n_devices && h->devices[i]->name
                              ? h->devices[i]->name : "cpu";
        w->slots[i].device = strdup(dev);
        if (!w->slots[i].device)
            goto fail;
        w->n_slots++;
    }
    for (size_t i = 0; i < h->n_datasets; i++) {
        int q = sched_dataset_index(s, h->datasets[i]);
        if (q >= 0)
            w->dataset_mask |= 1ULL << q;
        w->datasets[w->n_datasets] = strdup(h->datasets[i]);
        if (!w->datasets[w->n_datasets])
            goto fail;
        w->n_datasets++;
    }
    w->load_test = h->has_load_test && h->load_test;
    w->pid = h->pid;
    w->last_seen = now;
    w->last_sent = now;
    w->joined_wall = wire_now_us();
    return w;
fail:
    if (w) {
        for (int i = 0; i < w->n_slots; i++)
            free(w->slots[i].device);
        for (int i = 0; i < w->n_datasets; i++)
            free(w->datasets[i]);
        free(w->datasets);
        free(w->slots);
        free(w->name);
        free(w->host);
        free(w->peer);
        free(w);
    }
    return NULL;
}

/* Whether name is w's (a lease of an earlier session of w). */
static bool s_same_worker(const char *name, const sched_worker_t *w)
{
    return name && strcmp(name, w->name) == 0;
}

/* The slot of w for a job listed on device (free, or already it). */
static int s_slot_of(sched_worker_t *w, const char *device, s_job_t *j)
{
    for (int i = 0; i < w->n_slots; i++)
        if (w->slots[i].job == j ||
            (!w->slots[i].job && device &&
             strcmp(w->slots[i].device, device) == 0))
            return i;
    return -1;
}

/*
 * A job w says it has in hand.  Keep it with w when it is w's to run
 * (its lease, an orphan's after a restart, or its earlier session's);
 * otherwise tell w to drop it.  *ours is set when w holds it now.
 */
static int s_claim(sched_t *s, store_txn_t *t, sched_worker_t *w,
                   const Nader__Running *r, bool *ours)
{
    s_job_t *j = idmap_get(s->jobs, r->job);
    int slot;

    *ours = false;
    if (j && j->holder == w && j->rec->attempts == r->attempt) {
        *ours = true;
        return 0;
    }
    /* A held result: it is resent after Welcome and settles the job; it
     * must not take the device from a job really running there. */
    if (r->has_finished && r->finished)
        return 0;
    if (!j || j->rec->attempts != r->attempt ||
        !s_active_state(j->rec->state) ||
        !s_same_worker(j->holder ? j->holder->name : j->rec->worker, w)) {
        /* Finished, retried elsewhere, or someone else's: drop it.  A
         * finished job's result, if w holds it, is acked when resent. */
        sched_send_cancel(s, w, r->job, r->attempt, "not yours to run");
        return 0;
    }
    slot = s_slot_of(w, r->device, j);
    if (slot < 0) {
        sched_send_cancel(s, w, r->job, r->attempt, "no such device");
        return 0;
    }
    sched_job_detach(j);
    sched_job_attach(s, j, w, slot);
    *ours = true;
    if (!j->rec->worker || strcmp(j->rec->worker, w->name) != 0 ||
        !j->rec->device || strcmp(j->rec->device, w->slots[slot].device)) {
        sched_str_set(&j->rec->worker, w->name);
        sched_str_set(&j->rec->device, w->slots[slot].device);
        return sched_job_put(s, t, j);
    }
    return 0;
}

int sched_worker_hello(sched_t *s, store_txn_t *t, const void *rid,
                       size_t rid_len, const char *peer,
                       const Nader__Hello *h, uint64_t now)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Welcome wel = NADER__WELCOME__INIT;
    sched_worker_t *w, *old;
    int rc = 0, n = 0, reattached = 0;

    w = s_worker_new(s, rid, rid_len, peer, h, now);
    if (!w)
        return STORE_ENOMEM;
    /* Earlier sessions: the same routing id, or the same worker name. */
    old = sched_worker_find(s, rid, rid_len);
    if (old) {
        idmap_del_bytes(s->workers, rid, rid_len);
        old->rid_len = 0;
    }
    w->no = s->next_worker_no++;
    w->prev = s->last;
    if (s->last)
        s->last->next = w;
    else
        s->first = w;
    s->last = w;
    s->n_workers++;
    if (idmap_put_bytes(s->workers, rid, rid_len, w) < 0) {
        sched_worker_free(s, w);
        return STORE_ENOMEM;
    }
    for (size_t i = 0; i < h->n_running; i++) {
        bool ours;
        if ((rc = s_claim(s, t, w, h->running[i], &ours)) < 0)
            return rc;
        reattached += ours;
    }
    for (sched_worker_t *o = s->first, *next; o; o = next) {
        next = o->next;
        if (o == w || (o != old && strcmp(o->name, w->name) != 0))
            continue;
        if (o != old && now - o->last_seen < s->opt.heartbeat_interval_us &&
            (o->pid != w->pid || strcmp(o->host, w->host) != 0))
            sched_log(s, LOG_WARN, "worker name %s is now used by %s pid %u "
                      "while %s pid %u was heard from %.1f s ago; two "
                      "workers with one name take each other's jobs: give "
                      "them different --name", w->name, w->host, w->pid,
                      o->host, o->pid, (double)(now - o->last_seen) / 1e6);
        if ((rc = s_release_all(s, t, o, "its worker reconnected without "
                                "it", false, &n)) < 0)
            return rc;
        sched_worker_free(s, o);
    }
    sched_log(s, LOG_INFO, "worker w%u %s joined from %s (%s): %d device%s,"
              " data sets [%s%s%s%s]%s%s", w->no, w->name, w->host,
              w->peer[0] ? w->peer : "?", w->n_slots,
              w->n_slots == 1 ? "" : "s",
              w->n_datasets > 0 ? w->datasets[0] : "",
              w->n_datasets > 1 ? ", " : "",
              w->n_datasets > 1 ? w->datasets[1] : "",
              w->n_datasets > 2 ? ", ..." : "",
              w->load_test ? "; LOAD TEST mode (no training)" : "",
              reattached ? "; re-attached its running jobs" : "");
    SET(&wel, worker_no, w->no);
    SET(&wel, heartbeat_ms, (uint32_t)(s->opt.heartbeat_interval_us / 1000));
    SET(&wel, timeout_ms, (uint32_t)(s->opt.heartbeat_timeout_us / 1000));
    wel.coordinator = (char *)WIRE_SOFTWARE;
    env.body_case = NADER__ENVELOPE__BODY_WELCOME;
    env.welcome = &wel;
    sched_send(s, w, &env, false);
    return 0;
}

int sched_worker_heartbeat(sched_t *s, store_txn_t *t, sched_worker_t *w,
                           const Nader__Heartbeat *hb, uint64_t now)
{
    int rc;

    for (size_t i = 0; i < hb->n_running; i++) {
        bool ours;
        if ((rc = s_claim(s, t, w, hb->running[i], &ours)) < 0)
            return rc;
        if (ours) {
            s_job_t *j = idmap_get(s->jobs, hb->running[i]->job);
            if (j && j->holder == w)
                w->slots[j->slot].missing_since = 0;
        }
    }
    for (int i = 0; i < w->n_slots; i++) {
        s_slot_t *sl = &w->slots[i];
        bool listed = false;
        if (!sl->job)
            continue;
        for (size_t k = 0; k < hb->n_running && !listed; k++)
            listed = hb->running[k]->job == sl->job->rec->id &&
                     hb->running[k]->attempt == sl->job->rec->attempts;
        if (listed) {
            sl->missing_since = 0;
        } else if (!sl->missing_since) {
            sl->missing_since = now;
        } else if (now - sl->missing_since > s->opt.heartbeat_timeout_us) {
            s_job_t *j = sl->job;
            sched_log(s, LOG_WARN, "job %llu attempt %u: %s no longer "
                      "lists it; queued again", ULL(j->rec->id),
                      j->rec->attempts, w->name);
            rc = sched_job_requeue(s, t, j, "the worker lost the lease",
                                   false);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

/* The job of a message from w, if w holds its current attempt; else
 * NULL (and w is told to drop that work when `cancel`). */
static s_job_t *s_current(sched_t *s, sched_worker_t *w, uint64_t job,
                          uint32_t attempt, bool cancel)
{
    s_job_t *j = idmap_get(s->jobs, job);

    if (j && j->holder == w && j->rec->attempts == attempt)
        return j;
    if (cancel)
        sched_send_cancel(s, w, job, attempt, "not yours to run");
    return NULL;
}

int sched_worker_progress(sched_t *s, store_txn_t *t, sched_worker_t *w,
                          const Nader__Progress *p)
{
    s_job_t *j = s_current(s, w, p->job, p->attempt, true);
    Nader__JobRecord *rec;

    if (!j)
        return 0;
    rec = j->rec;
    if (rec->state == NADER__JOB_STATE__JOB_LEASED) {
        SET(rec, state, NADER__JOB_STATE__JOB_RUNNING);
        sched_count_move(s, NADER__JOB_STATE__JOB_LEASED,
                         NADER__JOB_STATE__JOB_RUNNING);
    }
    if (p->epoch) {
        SET(rec, epoch, p->epoch->epoch);
        SET(rec, valid_acc, p->epoch->valid_acc);
        w->slots[j->slot].images_per_s = p->epoch->images_per_s;
        if (p->epoch->epochs)
            w->slots[j->slot].epochs = p->epoch->epochs;
    }
    return sched_job_put(s, t, j);
}

int sched_worker_checkpoint(sched_t *s, store_txn_t *t, sched_worker_t *w,
                            const Nader__Checkpoint *c)
{
    Nader__CheckpointRecord ck = NADER__CHECKPOINT_RECORD__INIT;
    s_job_t *j = s_current(s, w, c->job, c->attempt, false);
    int rc;

    if (!j || !c->has_data)
        return 0;
    SET(&ck, job, c->job);
    SET(&ck, attempt, c->attempt);
    SET(&ck, epoch, c->epoch);
    ck.has_data = 1;
    ck.data = c->data;
    SET(&ck, stored_us, wire_now_us());
    if ((rc = store_checkpoint_put(t, &ck)) < 0)
        return rc;
    SET(j->rec, checkpoint_epoch, c->epoch);
    sched_log(s, LOG_DEBUG, "job %llu attempt %u: checkpoint after epoch "
              "%d (%zu bytes) from %s", ULL(c->job), c->attempt, c->epoch,
              c->data.len, w->name);
    return sched_job_put(s, t, j);
}

/* Send the acknowledgement of a result. */
static void s_ack(sched_t *s, sched_worker_t *w, const Nader__Result *r,
                  bool kept)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__ResultAck ack = NADER__RESULT_ACK__INIT;

    SET(&ack, job, r->job);
    SET(&ack, attempt, r->attempt);
    SET(&ack, kept, kept);
    env.body_case = NADER__ENVELOPE__BODY_RESULT_ACK;
    env.result_ack = &ack;
    sched_send(s, w, &env, true);
}

int sched_worker_result(sched_t *s, store_txn_t *t, sched_worker_t *w,
                        const Nader__Result *r, bool *kept)
{
    s_job_t *j = idmap_get(s->jobs, r->job);
    Nader__JobRecord *rec;
    Nader__ResultStatus st = r->status;
    bool current;
    int rc = 0;

    *kept = false;
    if (!j || r->attempt == 0 || r->attempt > j->rec->attempts) {
        /* Finished already (a repeat, or a late loser), or unknown. */
        sched_log(s, LOG_DEBUG, "job %llu attempt %u: result from %s "
                  "dropped (job not active)", ULL(r->job), r->attempt,
                  w->name);
        s_ack(s, w, r, false);
        return 0;
    }
    rec = j->rec;
    /* The current attempt: held by w, or by nobody yet after a restart
     * when w is the worker it was leased to. */
    current = rec->attempts == r->attempt &&
              (j->holder == w ||
               (!j->holder && s_same_worker(rec->worker, w)));
    if (st == NADER__RESULT_STATUS__RESULT_OK) {
        if (j->holder && !current)
            sched_send_cancel(s, j->holder, rec->id, rec->attempts,
                              "an earlier attempt finished");
        w->results++;
        rc = sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_DONE, r, NULL);
        *kept = rc == 0;
        sched_log(s, LOG_DEBUG, "job %llu attempt %u done on %s",
                  ULL(r->job), r->attempt, w->name);
    } else if (!current) {
        /* A failure of an attempt that is no longer the job's. */
    } else if (st == NADER__RESULT_STATUS__RESULT_CANCELLED) {
        rc = sched_job_requeue(s, t, j, r->reason ? r->reason
                               : "cancelled by the worker", false);
    } else if (st == NADER__RESULT_STATUS__RESULT_DIVERGED) {
        sched_log(s, LOG_INFO, "job %llu diverged on %s: %s", ULL(r->job),
                  w->name, r->reason ? r->reason : "");
        w->results++;
        rc = sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_FAILED, r,
                              r->reason ? r->reason : "diverged");
        *kept = rc == 0;
    } else {
        char why[384];
        snprintf(why, sizeof why, "attempt %u on %s (%s): %s", r->attempt,
                 w->name, r->device ? r->device : "?",
                 r->reason ? r->reason : "failed");
        sched_log(s, LOG_WARN, "job %llu %s", ULL(r->job), why);
        if (rec->failures + 1 >= rec->max_attempts) {
            SET(rec, failures, rec->failures + 1);
            w->results++;
            rc = sched_job_finish(s, t, j, NADER__JOB_STATE__JOB_FAILED, r,
                                  why);
            *kept = rc == 0;
        } else {
            rc = sched_job_requeue(s, t, j, why, true);
        }
    }
    if (rc == 0)
        s_ack(s, w, r, *kept);
    return rc;
}

/* ----------------------------------------------------------- inspection */

int sched_workers_each(sched_t *s, int (*fn)(void *ctx, sched_worker_t *w),
                       void *ctx)
{
    for (sched_worker_t *w = s->first; w; w = w->next) {
        int rc = fn(ctx, w);
        if (rc)
            return rc;
    }
    return 0;
}

void sched_worker_info(const sched_worker_t *w, sched_worker_info_t *info)
{
    info->name = w->name;
    info->host = w->host;
    info->peer = w->peer;
    info->no = w->no;
    info->load_test = w->load_test;
    info->n_slots = w->n_slots;
    info->last_seen_us = w->last_seen;
    info->joined_us = w->joined_wall;
    info->results = w->results;
    info->n_datasets = w->n_datasets;
    info->datasets = (const char *const *)w->datasets;
}

void sched_worker_slot(const sched_worker_t *w, int i,
                       sched_slot_info_t *slot)
{
    const s_slot_t *sl = &w->slots[i];

    memset(slot, 0, sizeof *slot);
    slot->device = sl->device;
    slot->epoch = -1;
    if (!sl->job)
        return;
    slot->job = sl->job->rec->id;
    slot->attempt = sl->job->rec->attempts;
    slot->epoch = sl->job->rec->epoch;
    slot->epochs = sl->epochs;
    slot->images_per_s = sl->images_per_s;
    slot->valid_acc = sl->job->rec->valid_acc;
    slot->leased_us = sl->job->rec->leased_us;
}

int sched_worker_count(const sched_t *s)
{
    return s->n_workers;
}

const void *sched_worker_rid(const sched_worker_t *w, size_t *len)
{
    *len = w->rid_len;
    return w->rid;
}

const char *sched_worker_name(const sched_worker_t *w)
{
    return w->name;
}
