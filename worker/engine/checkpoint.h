/*
 * checkpoint.h - the whole training state of a run in one file.
 *
 * A checkpoint is a safetensors file (safetensors.h) holding every
 * parameter and BN buffer under its net_param_list name, the SGD momentum
 * of each trainable parameter as "momentum.<name>", and in its metadata
 * the position of the run (epochs completed, steps taken), what it was
 * started with (design hash, data set and split, skeleton, width, batch,
 * epochs, seed and the recipe's numbers), and the per-epoch figures so
 * far.  The trainer's random stream is a pure function of (seed, epoch)
 * and DropPath's of (seed, step, node), so these positions are its whole
 * random state: a run resumed from a checkpoint taken after epoch k does
 * exactly what the uninterrupted run did from epoch k on.
 *
 * Ownership: checkpoint_read() fills a checkpoint_info_t whose history
 * the caller frees with checkpoint_info_free(), and optionally returns
 * the open file for network_weights_load().
 */
#ifndef NADER_CHECKPOINT_H
#define NADER_CHECKPOINT_H

#include <stdbool.h>
#include <stdint.h>

#include "network.h"
#include "safetensors.h"
#include "train.h"

typedef struct checkpoint_info {
    int epoch;                /* epochs completed: the next one to run */
    int64_t step;             /* training steps taken */
    uint64_t seed;
    char design[33];          /* graph_design_hash */
    char dataset[24];
    char split[256];          /* the split file, or "seeded" */
    char skeleton[8];
    int stem_scale;           /* 1 in checkpoints older than the field */
    int width, batch, epochs;
    double lr, momentum, weight_decay;
    bool nesterov;
    int n_history;
    train_epoch_t *history;   /* n_history entries, owned */
} checkpoint_info_t;

/* Write nw's weights and momenta with ci to path (atomically). */
int checkpoint_save(network_t *nw, const char *path,
                    const checkpoint_info_t *ci, char *err, size_t errlen);

/*
 * Read the metadata of the checkpoint at path into ci; when st is not
 * NULL, also hand over the open file (for network_weights_load with
 * momenta).  Returns 0, or a negative code with a message naming the
 * file and what is wrong with it.
 */
int checkpoint_read(const char *path, checkpoint_info_t *ci,
                    safetensors_t **st, char *err, size_t errlen);

/*
 * Compare a checkpoint with the run about to resume from it.  Returns 0
 * when they match, or -1 with a message naming the first field that
 * differs, e.g. "checkpoint c.st was taken with batch 128, this run has
 * batch 256".
 */
int checkpoint_match(const checkpoint_info_t *have,
                     const checkpoint_info_t *want, const char *path,
                     char *err, size_t errlen);

void checkpoint_info_free(checkpoint_info_t *ci);

#endif
