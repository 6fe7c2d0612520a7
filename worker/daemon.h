/*
 * daemon.h - the worker daemon: connect out to a coordinator, take one
 * job per device, train each in a trainer process, report, and keep
 * going whatever happens to the coordinator or to a job.
 *
 * The daemon is a small poll loop over one DEALER socket and the socket
 * pairs of its trainers.  It says Hello (devices, memory, backends, data
 * sets, and the jobs it has in hand), answers leases, forwards progress
 * and checkpoints, and keeps every result until the coordinator
 * acknowledges it, resending after a reconnect, so a result is never
 * lost to a coordinator restart.  Silence from the coordinator for the
 * heartbeat timeout closes the socket and reconnects with exponential
 * backoff and jitter.  Cancel kills the job's trainer (SIGTERM, then
 * SIGKILL).  A trainer that finishes no training step for the stall
 * timeout (stuck in a kernel, a driver, a dead file system) is killed
 * the same way and its attempt reported failed, so the device is free
 * again and the coordinator can retry the job elsewhere.
 *
 * The load-test mode (instant) answers every lease at once with a result
 * marked load_test and trains nothing; it exists to measure and torture
 * the coordinator and is never the default.
 *
 * Several daemons may run in one process (the benchmarks run 100 as
 * threads): nothing here is global.
 *
 * Ownership: worker_new returns a daemon owned by the caller, freed with
 * worker_destroy(&w) after worker_run returned.
 */
#ifndef NADER_DAEMON_H
#define NADER_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct worker worker_t;

typedef struct worker_options {
    const char *endpoint;         /* tcp://head:5555 */
    const char *devices;          /* "cpu", "cuda:0", "all", or a list */
    const char *data_dir;         /* folder of the data sets */
    const char *name;             /* NULL: HOST-PID-RANDOM */
    const char *scratch_dir;      /* NULL: $TMPDIR/nader-worker-NAME */
    int threads;                  /* CPU threads per trainer, 0: all */
    bool instant;                 /* load tests only: no training */
    int64_t instant_ms;           /* load tests: how long each job seems
                                     to take (0: answered at once) */
    const char *key_file;         /* CURVE key pair of this worker */
    const char *server_key_file;  /* the coordinator's public key */
    int64_t backoff_max_ms;       /* cap of the reconnect backoff */
    int64_t timeout_ms;           /* silence before reconnecting, until
                                     the coordinator says otherwise */
    int64_t max_message_bytes;    /* largest message accepted */
    int64_t stall_timeout_ms;     /* a trainer silent this long (no step
                                     done) is killed and its attempt
                                     failed; 0: never */
    const char *exe;              /* executable for trainers (NULL:
                                     /proc/self/exe) */
    void *zmq_context;            /* NULL: a context of its own */
} worker_options_t;

/* Fill o with the defaults. */
void worker_options_default(worker_options_t *o);

/* Make a daemon (no connection yet).  Returns 0, or -1 with err. */
int worker_new(const worker_options_t *o, worker_t **out, char *err,
               size_t errlen);

/* Run until worker_stop(); returns 0, or -1 on a fatal error (logged). */
int worker_run(worker_t *w);

/* Ask worker_run to stop: kill trainers, say goodbye, return.  Safe from
 * any thread and from a signal handler. */
void worker_stop(worker_t *w);

void worker_destroy(worker_t **w);

/* Counters, for tests and benchmarks. */
typedef struct worker_stats {
    uint64_t leases, results, acks, reconnects;
} worker_stats_t;
void worker_stats(const worker_t *w, worker_stats_t *s);

#endif
