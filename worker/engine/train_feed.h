/*
 * train_feed.h - batches prepared ahead of the training step (internal to
 * the engine).
 *
 * A feed walks one sequence at a time, an epoch of training batches or a
 * pass over an evaluation split, on its own thread: it draws the epoch's
 * order, crops and flips (data_epoch_plan), cuts them into batch specs
 * and, when the backend runs on the host (build_here), uploads each spec
 * and has the backend build the batch tensor too, while the main thread
 * computes the previous step.  Two slots alternate, so a batch is ready
 * whenever the step before it ends.
 *
 * On a GPU the batch must be built inside the step (so a captured step
 * replays it), from device buffers at fixed addresses: there the feed
 * only prepares host specs, and the trainer calls feed_upload() before
 * the step and feed_build() inside it.  For build_here feeds both are
 * no-ops.
 *
 * Ownership: feed_new() returns a feed owned by the caller, freed with
 * feed_destroy(&f) (which stops its thread) before the backend.
 */
#ifndef NADER_TRAIN_FEED_H
#define NADER_TRAIN_FEED_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

typedef struct feed feed_t;

/* One pass over a split. */
typedef struct feed_seq {
    const uint8_t *images;    /* device (n_items, 3, h, w) */
    const int32_t *labels;    /* device (n_items) */
    int n_items;
    int n_use;                /* items taken, in plan order (<= n_items) */
    bool shuffle;             /* training: epoch plan; else in order */
    uint64_t seed;
    int epoch;
    int pad;                  /* crop padding, 0 for evaluation */
    float mean[3], std[3];
} feed_seq_t;

/* A prepared batch: step within the sequence, its n samples, and where
 * the built tensor is (or will be, after feed_build). */
typedef struct feed_batch {
    int step;
    int n;
    float *x;                 /* device (n, 3, h, w) */
    int32_t *labels;          /* device (n) */
    void *slot;               /* the feed's own */
} feed_batch_t;

/*
 * A feed for batches of at most `batch` images of (3, h, w) on be.
 * Returns 0, or a negative code with a message in err.
 */
int feed_new(backend_t *be, int batch, int h, int w, bool build_here,
             feed_t **out, char *err, size_t errlen);

void feed_destroy(feed_t **f);

/* Begin a sequence (abandoning any unfinished one). */
int feed_start(feed_t *f, const feed_seq_t *seq);

/*
 * The next batch of the sequence, waiting for it if needed.  Returns 0
 * and sets *b, 1 when the sequence is over, or a negative code with a
 * message in err when preparing it failed.  Give each batch back with
 * feed_release() before asking for the next one.
 */
int feed_next(feed_t *f, feed_batch_t **b, char *err, size_t errlen);

void feed_release(feed_t *f, feed_batch_t *b);

/* GPU feeds: copy b's spec into the fixed device buffers (outside a
 * captured step), and build the batch tensor from them (inside it). */
int feed_upload(feed_t *f, const feed_batch_t *b, char *err, size_t errlen);
int feed_build(feed_t *f, const feed_batch_t *b, char *err, size_t errlen);

/* Steps in a sequence of n items at this feed's batch size. */
int feed_steps(const feed_t *f, int n);

#endif
