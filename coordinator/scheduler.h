/*
 * scheduler.h - jobs, the queue, workers and their leases.
 *
 * The scheduler is the coordinator's model of the cluster: every job not
 * yet finished (queued, leased, running), a priority queue per data set,
 * every connected worker with its devices (slots), and the lease each
 * slot holds.  It knows nothing of sockets: what it wants sent to a
 * worker goes through the send callback, and the caller (coordinator.c)
 * holds those messages until the transaction that explains them is
 * committed.  Every change is written into the store transaction given
 * to the call, so the store and this model move together; after a failed
 * commit the caller rebuilds the model with sched_reload().
 *
 * The life of a job (docs/protocol.md has the diagram):
 *
 *   queued --lease--> leased --progress--> running --result--> done
 *      ^                 |                    |                failed
 *      +--- lost lease or failed attempt -----+                cancelled
 *
 * A lease is lost when its worker is silent for heartbeat.timeout, says
 * goodbye, reconnects without it, or stops listing it in heartbeats.  A
 * failed attempt or a lost lease counts towards max_attempts (a
 * coordinator restart does not).  Results are kept exactly once per job:
 * the first successful result of any attempt finishes the job (the
 * current holder, if another, is told to cancel); repeats and late
 * losers are acknowledged and dropped.  Divergence is final: a retry
 * with the same seed would diverge again.
 *
 * Ownership: sched_new returns a scheduler owned by the caller, freed
 * with sched_destroy(&s).  Workers are owned by the scheduler; a
 * sched_worker_t pointer is valid until sched_worker_leave() or
 * sched_tick() drops it (the drop callback says when).
 */
#ifndef NADER_SCHEDULER_H
#define NADER_SCHEDULER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nader.pb-c.h"
#include "store.h"

typedef struct sched sched_t;
typedef struct sched_worker sched_worker_t;

typedef struct sched_options {
    uint32_t max_attempts;
    uint64_t heartbeat_interval_us;
    uint64_t heartbeat_timeout_us;
    uint64_t reattach_grace_us;
    int32_t checkpoint_every;
    bool paused;              /* config defaults; meta["settings"] wins */
    int32_t max_running;

    /* Send env to worker w.  The callee encodes it before returning. */
    void (*send)(void *ctx, sched_worker_t *w, Nader__Envelope *env,
                 bool durable);
    /* A result was kept (durable once the transaction commits). */
    void (*kept)(void *ctx, const Nader__ResultRecord *r);
    /* Worker w is about to be freed. */
    void (*dropped)(void *ctx, sched_worker_t *w);
    /* One line for the operator's log (the scheduler itself never
     * prints); level as in log.h. */
    void (*log)(void *ctx, int level, const char *line);
    void *ctx;
} sched_options_t;

/* One job to queue; the design must be stored already. */
typedef struct sched_job_new {
    const Nader__JobSpec *spec;   /* id/attempt ignored */
    int32_t priority;
    uint32_t max_attempts;        /* 0: the scheduler's */
    const char *tag;
    int64_t params, macs;
} sched_job_new_t;

/* Figures for status. */
typedef struct sched_counts {
    uint64_t queued, leased, running, done, failed, cancelled;
    uint64_t results, load_test_results;
} sched_counts_t;

/* What a slot is doing, for status. */
typedef struct sched_slot_info {
    const char *device;
    uint64_t job;                 /* 0: idle */
    uint32_t attempt;
    int32_t epoch, epochs;        /* last finished epoch, -1: none */
    double images_per_s, valid_acc;
    uint64_t leased_us;
} sched_slot_info_t;

typedef struct sched_worker_info {
    const char *name, *host, *peer;
    uint32_t no;
    bool load_test;
    int n_slots;
    uint64_t last_seen_us;        /* monotonic */
    uint64_t joined_us;           /* wall clock */
    uint64_t results;             /* kept from this worker */
    int n_datasets;
    const char *const *datasets;
} sched_worker_info_t;

int sched_new(store_t *store, const sched_options_t *opt, sched_t **out,
              char *err, size_t errlen);
void sched_destroy(sched_t **s);

/*
 * Load active jobs, settings and counts from the store (on start, and
 * after a failed commit).  Leased and running jobs become orphans that
 * wait reattach_grace for their worker; connected workers keep only the
 * leases the store agrees with.  now is monotonic microseconds.
 */
int sched_reload(sched_t *s, store_txn_t *t, uint64_t now,
                 char *err, size_t errlen);

/* Queue one job; sets *id.  Returns 0 or a store error (message in
 * store_txn_error(t)). */
int sched_job_submit(sched_t *s, store_txn_t *t, const sched_job_new_t *j,
                     uint64_t *id);

/*
 * Cancel a job that is not finished.  Returns 0; 1 when the job is
 * already finished or unknown (why is in err); or a store error.
 */
int sched_job_cancel(sched_t *s, store_txn_t *t, uint64_t id,
                     const char *reason, char *err, size_t errlen);

/* ------------------------------------------------------------ workers */

/* The worker that owns routing id rid, or NULL. */
sched_worker_t *sched_worker_find(sched_t *s, const void *rid,
                                  size_t rid_len);

/*
 * A worker said Hello on routing id rid (peer: its address, for logs):
 * register it (replacing an earlier session of the same name), re-attach
 * the jobs it lists that are still its own to run, cancel the others,
 * and answer Welcome.  Returns 0 or a store error.
 */
int sched_worker_hello(sched_t *s, store_txn_t *t, const void *rid,
                       size_t rid_len, const char *peer,
                       const Nader__Hello *h, uint64_t now);

/* A message from w arrived at monotonic time now. */
void sched_worker_seen(sched_worker_t *w, uint64_t now);

int sched_worker_heartbeat(sched_t *s, store_txn_t *t, sched_worker_t *w,
                           const Nader__Heartbeat *hb, uint64_t now);
int sched_worker_progress(sched_t *s, store_txn_t *t, sched_worker_t *w,
                          const Nader__Progress *p);
int sched_worker_checkpoint(sched_t *s, store_txn_t *t, sched_worker_t *w,
                            const Nader__Checkpoint *c);
/* *kept: whether this result became the job's one result. */
int sched_worker_result(sched_t *s, store_txn_t *t, sched_worker_t *w,
                        const Nader__Result *r, bool *kept);

/* The worker leaves (Goodbye, or the caller decided): its leases go back
 * to the queue, counted as failures when `failed`.  w is freed. */
int sched_worker_leave(sched_t *s, store_txn_t *t, sched_worker_t *w,
                       const char *reason, bool failed);

/* ------------------------------------------------------------ the clock */

/*
 * Hand queued jobs to free slots (respecting pause, max_running and the
 * data sets each worker has).  Returns the number of leases made, or a
 * store error.
 */
int sched_dispatch(sched_t *s, store_txn_t *t, uint64_t now);

/*
 * Timers: drop silent workers (their leases lost), requeue orphans whose
 * grace ran out, and send heartbeats that are due.  Returns 0 or a store
 * error.  *next_us gets the monotonic time of the next timer.
 */
int sched_tick(sched_t *s, store_txn_t *t, uint64_t now, uint64_t *next_us);

/* Whether sched_dispatch could lease anything now (cheap). */
bool sched_dispatch_wanted(const sched_t *s);

/* Write counts to the store if they changed since the last flush. */
int sched_flush(sched_t *s, store_txn_t *t);

/* ------------------------------------------------------ live settings */

int sched_set_paused(sched_t *s, store_txn_t *t, bool paused);
int sched_set_max_running(sched_t *s, store_txn_t *t, int32_t max);
bool sched_paused(const sched_t *s);
int32_t sched_max_running(const sched_t *s);

/* --------------------------------------------------------- inspection */

void sched_counts(const sched_t *s, sched_counts_t *c);

/* Queued jobs per data set: fills names/counts up to cap; returns n. */
int sched_queue_by_dataset(const sched_t *s, const char **names,
                           uint64_t *counts, int cap);

/* The next up to n queued jobs in lease order; returns how many. */
int sched_queue_peek(const sched_t *s, uint64_t *ids, int n);

/* The active record of job id (borrowed), or NULL when not active. */
const Nader__JobRecord *sched_job_active(const sched_t *s, uint64_t id);

/* Visit workers in joining order; fn returns 0 to go on. */
int sched_workers_each(sched_t *s,
                       int (*fn)(void *ctx, sched_worker_t *w), void *ctx);
void sched_worker_info(const sched_worker_t *w, sched_worker_info_t *info);
void sched_worker_slot(const sched_worker_t *w, int i,
                       sched_slot_info_t *slot);
int sched_worker_count(const sched_t *s);
/* The routing id of w (borrowed). */
const void *sched_worker_rid(const sched_worker_t *w, size_t *len);
const char *sched_worker_name(const sched_worker_t *w);

/* Results kept in the last `seconds` (<= 300) seconds. */
uint64_t sched_recent_results(const sched_t *s, int seconds,
                              uint64_t now_wall_us);

#endif
