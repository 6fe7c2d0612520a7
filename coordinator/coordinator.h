/*
 * coordinator.h - the coordinator as an object: store, scheduler,
 * sockets and the poll loop that drives them.
 *
 * `nader-coordinator` is a thin main() around this; `nader run` may embed
 * it and run its agents beside it in the same process.  One thread runs
 * coord_run(): it polls the worker endpoint (ROUTER), the status and
 * admin sockets (JSON), the in-process link of the agents, the ZAP
 * handler and the timers, and it is the only writer of the store.
 *
 * Group commit.  Each turn of the loop reads everything that is waiting,
 * applies it to one LMDB write transaction, commits it (fsync), and only
 * then sends what the turn produced: leases, result acknowledgements,
 * replies to changes, result events.  So nothing is acknowledged before
 * it is durable, and one fsync covers a whole burst of messages.  When a
 * commit fails (disk full, map at its limit), the turn's replies become
 * errors, its leases and acks are not sent, and the scheduler is rebuilt
 * from the store: the failure changes nothing.
 *
 * Agents (other threads of the same process) use a coord_link_t: writes
 * go to the loop as LinkRequests and are answered after commit; reads go
 * straight to the store (store_begin(store, false, ...)); kept results
 * are published as events after commit.
 *
 * Ownership: coord_new returns a coordinator owned by the caller, freed
 * by coord_destroy(&c) after coord_run has returned.  A coord_link_t is
 * owned by the thread that made it and freed with coord_link_destroy.
 */
#ifndef NADER_COORDINATOR_H
#define NADER_COORDINATOR_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "nader.pb-c.h"
#include "store.h"

typedef struct coord coord_t;

/*
 * Open the store, rebuild the scheduler, bind every endpoint.  cfg is
 * copied where needed and may be freed afterwards.  Returns 0, or -1
 * with err naming what failed (e.g. "workers.endpoint tcp://0.0.0.0:5555:
 * Address already in use").
 */
int coord_new(const config_t *cfg, coord_t **out, char *err, size_t errlen);

/* Run the poll loop until coord_stop().  Returns 0 after a clean stop,
 * -1 on a fatal error (logged). */
int coord_run(coord_t *c);

/* Ask the loop to stop; safe from any thread and from a signal handler. */
void coord_stop(coord_t *c);

void coord_destroy(coord_t **c);

/* The store, for readers on other threads (borrowed). */
store_t *coord_store(coord_t *c);

/* The endpoints actually bound (a port given as * resolved), for
 * workers, the status socket ("" when none) and the admin socket. */
const char *coord_workers_endpoint(const coord_t *c);
const char *coord_status_endpoint(const coord_t *c);
const char *coord_admin_endpoint(const coord_t *c);

/* The ZeroMQ context the coordinator's sockets live in (borrowed). */
void *coord_zmq_context(coord_t *c);

/* ------------------------------------------------------------ the link */

typedef struct coord_link coord_link_t;

/* Connect a link for the calling thread.  Returns 0 or -1 with err. */
int coord_link_new(coord_t *c, coord_link_t **out, char *err,
                   size_t errlen);
void coord_link_destroy(coord_link_t **l);

/*
 * Send one request and wait up to timeout_ms (-1: forever) for its reply,
 * which is sent after the request's changes are committed.  Returns 0 and
 * sets *reply (free with nader__link_reply__free_unpacked(r, NULL)); the
 * request itself may still have failed: see (*reply)->ok and ->error.
 * Returns -1 with err on a timeout or a broken link.
 */
int coord_link_call(coord_link_t *l, const Nader__LinkRequest *req,
                    Nader__LinkReply **reply, int timeout_ms, char *err,
                    size_t errlen);

/* Convenience: submit a design (see SubmitRequest in nader.proto).  The
 * messages are proto2: a scalar field is sent only when its has_ flag
 * is set (req.has_epochs = 1; req.epochs = 12), else its default is
 * used. */
int coord_link_submit(coord_link_t *l, const Nader__SubmitRequest *req,
                      Nader__LinkReply **reply, int timeout_ms, char *err,
                      size_t errlen);

/*
 * Wait up to timeout_ms for the next kept result (published after its
 * commit).  Returns 0 and sets *out (free with
 * nader__result_record__free_unpacked), 1 on timeout, -1 on error.
 * Events are not queued without bound: a consumer that falls far behind
 * can miss some, and should read the results table to catch up.
 */
int coord_link_next_result(coord_link_t *l, int timeout_ms,
                           Nader__ResultRecord **out);

#endif
