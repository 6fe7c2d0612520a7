/*
 * sched_int.h - the scheduler's insides, shared by scheduler.c (jobs,
 * queue, leases, settings) and sched_workers.c (the worker protocol).
 * Nothing outside those two files includes it.
 */
#ifndef NADER_SCHED_INT_H
#define NADER_SCHED_INT_H

#include "idmap.h"
#include "scheduler.h"

#define SCHED_MAX_DATASETS 64
#define SCHED_RECENT_S 300

typedef struct s_job s_job_t;

typedef struct s_slot {
    char *device;
    s_job_t *job;              /* NULL: free */
    uint64_t missing_since;    /* monotonic; 0: listed by the worker */
    double images_per_s;
    int32_t epochs;
} s_slot_t;

struct s_job {
    Nader__JobRecord *rec;     /* owned, decoded form of jobs[id] */
    sched_worker_t *holder;    /* holder of the current lease, or NULL */
    int slot;                  /* in holder->slots */
    uint64_t orphan_deadline;  /* monotonic; 0: not an orphan */
    int dataset;               /* index into sched.datasets */
};

struct sched_worker {
    uint8_t rid[256];
    size_t rid_len;
    char *name, *host, *peer;
    uint32_t no, pid;
    bool load_test;
    char **datasets;
    int n_datasets;
    uint64_t dataset_mask;
    s_slot_t *slots;
    int n_slots;
    uint64_t last_seen, last_sent;  /* monotonic */
    uint64_t joined_wall;
    uint64_t results;
    sched_worker_t *prev, *next;    /* joining order */
};

typedef struct s_heap_item {
    int32_t priority;
    uint64_t id;
} s_heap_item_t;

typedef struct s_heap {
    s_heap_item_t *v;
    size_t n, cap;
} s_heap_t;

struct sched {
    store_t *store;
    sched_options_t opt;
    idmap_t *jobs;             /* id -> s_job_t, active jobs only */
    idmap_t *workers;          /* routing id -> sched_worker_t */
    sched_worker_t *first, *last, *cursor;
    uint32_t next_worker_no;
    int n_workers;
    char *datasets[SCHED_MAX_DATASETS];
    int n_datasets;
    s_heap_t queues[SCHED_MAX_DATASETS];
    uint64_t queued_in[SCHED_MAX_DATASETS];
    sched_counts_t counts;
    bool counts_dirty;
    bool paused;
    int32_t max_running;
    uint64_t n_orphans, orphan_next;
    uint64_t recent[SCHED_RECENT_S], recent_sec[SCHED_RECENT_S];
};

/* scheduler.c, for sched_workers.c */
void sched_log(sched_t *s, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int sched_dataset_index(sched_t *s, const char *name);
void sched_send(sched_t *s, sched_worker_t *w, Nader__Envelope *env,
                bool durable);
void sched_send_cancel(sched_t *s, sched_worker_t *w, uint64_t job,
                       uint32_t attempt, const char *reason);
int sched_job_put(sched_t *s, store_txn_t *t, s_job_t *j);
void sched_job_attach(sched_t *s, s_job_t *j, sched_worker_t *w, int slot);
void sched_job_detach(s_job_t *j);
int sched_job_requeue(sched_t *s, store_txn_t *t, s_job_t *j,
                      const char *reason, bool failed);
int sched_job_finish(sched_t *s, store_txn_t *t, s_job_t *j,
                     Nader__JobState state, const Nader__Result *r,
                     const char *reason);
void sched_count_move(sched_t *s, Nader__JobState from,
                      Nader__JobState to);
void sched_str_set(char **field, const char *value);

/* sched_workers.c, for scheduler.c */
void sched_worker_free(sched_t *s, sched_worker_t *w);

#endif
