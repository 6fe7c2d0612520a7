/*
 * metrics.h - the coordinator's figures for Prometheus, over HTTP.
 *
 * When metrics.enabled is set, the coordinator serves GET /metrics in the
 * Prometheus text exposition format (version 0.0.4) from a small HTTP
 * server (libmicrohttpd, on a thread of its own).  Three kinds of figure
 * reach it, each from where it is true:
 *
 *  - the scheduler's (workers, devices, jobs by state, queue length,
 *    training images per second): owned by the poll loop, which publishes
 *    a copy a few times a second (metrics_publish), so a scrape never
 *    touches the loop's state and never delays it;
 *  - the best validation accuracy so far, per data set and fidelity: read
 *    from the store once at start, then kept up to date from the results
 *    the loop keeps, counted only when their turn has committed;
 *  - LLM requests, tokens and cost per agent: read from the store's llm
 *    table by the HTTP thread at scrape time, incrementally (records only
 *    ever get added, with increasing ids), so the agents need no hook.
 *
 * Ownership: metrics_new returns a metrics_t owned by the caller, stopped
 * and freed by metrics_destroy(&m).  It borrows the store, which must
 * outlive it.  metrics_publish, metrics_result_kept and metrics_turn_end
 * are for the one loop thread; everything else may be called from any.
 */
#ifndef NADER_METRICS_H
#define NADER_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

typedef struct metrics metrics_t;

/* One device of a worker, as the scheduler sees it. */
typedef struct metrics_slot {
    char worker[64];
    char device[32];
    bool busy;
    double images_per_s;      /* of its job's last epoch; 0 when idle */
} metrics_slot_t;

/* The loop's figures at one moment. */
typedef struct metrics_figures {
    uint64_t jobs[6];         /* queued, leased, running, done, failed,
                                 cancelled */
    uint64_t results, load_test_results;
    int workers;
    int n_slots;
    const metrics_slot_t *slots;
    bool paused;
    uint64_t turns, commits;
    double uptime_s;
} metrics_figures_t;

/*
 * Start serving on address ("HOST:PORT"; port 0 takes a free one).  Reads
 * the best accuracies from store.  Returns 0 and sets *out, or -1 with err
 * naming the address and the reason (e.g. address in use).
 */
int metrics_new(const char *address, store_t *store, metrics_t **out,
                char *err, size_t errlen);

/* Stop the server (waiting for a scrape in progress) and free m. */
void metrics_destroy(metrics_t **m);

/* The address actually bound, "127.0.0.1:40123". */
const char *metrics_address(const metrics_t *m);

/* Replace the loop's figures (copied). */
void metrics_publish(metrics_t *m, const metrics_figures_t *f);

/* A result was kept in the turn in progress; it counts once the turn's
 * commit succeeds (metrics_turn_end). */
void metrics_result_kept(metrics_t *m, const char *dataset, int epochs,
                         double valid_acc);
void metrics_turn_end(metrics_t *m, bool committed);

/*
 * The whole exposition text, as a scrape gets it (malloc'd, owned by the
 * caller), or NULL when out of memory.
 */
char *metrics_render(metrics_t *m);

#endif
