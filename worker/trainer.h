/*
 * trainer.h - one training job in a process of its own.
 *
 * A worker daemon never trains in its own process: a crash, an
 * out-of-memory kill or a hung kernel in a job must not take the daemon
 * (and the heartbeats, the other devices' jobs and the results not yet
 * acknowledged) with it.  trainer_start() spawns the worker's own
 * executable in trainer mode (`nader-worker --trainer-fd 3`), hands it a
 * TrainerTask over a socket pair, and reads back Envelopes: Progress
 * after every epoch, Checkpoint when a checkpoint file is complete, and
 * finally Result.  When the child dies without a Result, the daemon
 * turns its exit status into a failed result with the reason.
 *
 * Frames on the socket pair are a 4-byte little-endian length and the
 * protobuf bytes; the parent reads without blocking.
 *
 * The child asks the kernel to kill it when the daemon dies
 * (PR_SET_PDEATHSIG), so a killed worker leaves no orphan training, and
 * raises its own OOM score so that under memory pressure the kernel
 * picks the job, not the daemon.
 *
 * Ownership: trainer_start returns a handle owned by the caller, freed
 * with trainer_destroy(&t), which kills and reaps a child still running.
 */
#ifndef NADER_TRAINER_H
#define NADER_TRAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "nader.pb-c.h"

typedef struct trainer trainer_t;

/* Largest frame accepted on the pair (a Result with many epochs). */
#define TRAINER_FRAME_MAX (16u << 20)

/*
 * Spawn exe in trainer mode and send it task.  Returns 0 and sets *out,
 * or -1 with err set.
 */
int trainer_start(const char *exe, const Nader__TrainerTask *task,
                  trainer_t **out, char *err, size_t errlen);

/* The descriptor to poll for input from the child. */
int trainer_fd(const trainer_t *t);
pid_t trainer_pid(const trainer_t *t);

/*
 * Read the next complete message from the child.  Returns 1 and sets *env
 * (free with wire_free), 0 when none is complete yet, or -1 at the end of
 * the stream (the child exited or broke the framing).
 */
int trainer_read(trainer_t *t, Nader__Envelope **env);

/* Send a signal to the child (no-op once it is reaped). */
void trainer_signal(trainer_t *t, int sig);

/*
 * Reap the child.  Returns 1 once it has exited, with a description of
 * how in `how` ("exited with status 0", "killed by signal 9 (Killed;
 * out of memory?)"); 0 when it is still running (block = false).
 */
int trainer_reap(trainer_t *t, bool block, char *how, size_t len);

/* Whether the child exited normally with status 0 (after a reap). */
bool trainer_exited_cleanly(const trainer_t *t);

void trainer_destroy(trainer_t **t);

/*
 * The child's side: read the TrainerTask from fd, train it with the
 * engine, report, and return the process exit status.  Called by
 * nader-worker's main() in trainer mode.
 */
int trainer_main(int fd);

/* Frame helpers, shared with tests: write one frame (blocking). */
int trainer_frame_write(int fd, const void *buf, size_t len);

#endif
