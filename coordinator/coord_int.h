/*
 * coord_int.h - the coordinator's insides, shared by coordinator.c (the
 * loop, the batch and the outbox), broker.c (workers), status.c (the
 * JSON sockets), intake.c (validating and queueing designs), link.c
 * (agents) and zap.c (authentication and connection events).
 */
#ifndef NADER_COORD_INT_H
#define NADER_COORD_INT_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>

#include <zmq.h>

#include "config.h"
#include "coordinator.h"
#include "keys.h"
#include "metrics.h"
#include "scheduler.h"
#include "store.h"

/* What an outbox entry is, which decides its fate when a commit fails. */
typedef enum out_kind {
    OUT_WORKER,      /* to a worker; dropped on failure when durable */
    OUT_JSON,        /* reply on a status socket; becomes an error */
    OUT_LINK,        /* reply on the link; becomes an error */
    OUT_EVENT        /* result event; dropped on failure */
} out_kind_t;

typedef struct out_item {
    out_kind_t kind;
    bool durable;
    void *sock;
    uint8_t rid[256];
    size_t rid_len;
    uint8_t *buf;
    size_t len;
} out_item_t;

/* Rate limiter for log lines about misbehaving peers. */
#define COORD_PEER_LOG 256
typedef struct peer_log {
    char key[96];
    uint64_t last_us;
    uint64_t window_us;      /* start of the current minute */
    int count;               /* lines logged in it */
    uint64_t suppressed;
} peer_log_t;

struct coord {
    config_t cfg;
    void *ctx;
    void *workers, *status, *admin, *zap, *link, *events;
    void *mon_workers, *mon_status;
    char link_ep[96], events_ep[96], admin_ep[4200];
    char workers_ep[256], status_ep[256];
    char mon_workers_ep[96], mon_status_ep[96];
    store_t *store;
    sched_t *sched;
    keys_list_t *worker_keys, *admin_keys;
    char secret_z85[41], public_z85[41];
    atomic_int stop;

    /* The current turn. */
    store_txn_t *txn;
    bool txn_failed;
    char txn_err[512];
    out_item_t *out;
    size_t n_out, cap_out;
    uint64_t now;               /* monotonic us at the turn's start */

    peer_log_t peer_log[COORD_PEER_LOG];
    char last_handshake_fail[160];
    uint64_t started_wall_us;
    uint64_t turns, commits, messages;

    metrics_t *metrics;         /* NULL unless metrics.enabled */
    uint64_t metrics_us;        /* when figures were last published */
};

/* coordinator.c */
store_txn_t *coord_txn(coord_t *c);             /* NULL when it failed */
void coord_txn_fail(coord_t *c, const char *what);
int coord_out_add(coord_t *c, out_kind_t kind, bool durable, void *sock,
                  const void *rid, size_t rid_len, const void *buf,
                  size_t len);
int coord_out_envelope(coord_t *c, sched_worker_t *w, Nader__Envelope *env,
                       bool durable);
/* Log a line about a peer, at most `burst` lines a minute per host and
 * kind (then a count of what was left out). */
void coord_peer_log(coord_t *c, int level, const char *peer,
                    const char *kind, int burst, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* broker.c */
void coord_workers_drain(coord_t *c, int budget);

/* status.c */
void coord_status_drain(coord_t *c, void *sock, bool admin_socket);

/* intake.c: what a submission came to. */
typedef struct coord_submitted {
    bool ok;
    char **errors;              /* n_errors lines when !ok */
    size_t n_errors;
    char hash[33];
    int32_t width;
    int64_t params, macs;
    uint64_t *jobs;
    size_t n_jobs;
    bool design_new;
} coord_submitted_t;

/* Validate a design, store it, queue one job per seed.  Returns 0 (see
 * out->ok for whether the design was accepted), or a store error: the
 * turn has failed.  Free out with coord_submitted_free. */
int coord_submit(coord_t *c, const Nader__SubmitRequest *req,
                 coord_submitted_t *out);
void coord_submitted_free(coord_submitted_t *s);

/* Cancel jobs; fills cancelled ids, and one error line per job that
 * could not be cancelled.  Returns 0 or a store error. */
int coord_cancel(coord_t *c, const uint64_t *ids, size_t n,
                 const char *reason, uint64_t *cancelled, size_t *n_done,
                 char *errs, size_t errlen);

/* link.c */
void coord_link_drain(coord_t *c);

/* coord_metrics.c: hand the scheduler's figures to the metrics server
 * (at most every few hundred milliseconds). */
void coord_metrics_publish(coord_t *c, bool now);

/* zap.c */
void coord_zap_drain(coord_t *c);
void coord_monitor_drain(coord_t *c, void *mon, const char *what);

#endif
