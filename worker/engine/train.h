/*
 * train.h - train one design on one data set with one recipe.
 *
 * This is the whole contract between the engine and its two users, the
 * `nader train` command and the worker daemon's trainer process: give it
 * a design, a network configuration and a training configuration, and
 * get back a result with per-epoch figures, or a failure with its
 * reason.  Hooks let the caller watch progress, stop the run, and take
 * checkpoints; a checkpoint file holds the whole training state (weights,
 * momenta, BN statistics, random state, epoch), and a run resumed from it
 * ends with the same weights as one that never stopped.
 *
 * The default recipe is spec/training-protocol.md's nb201: SGD with
 * Nesterov momentum 0.9, weight decay 5e-4, learning rate 0.1 with a
 * per-epoch cosine, batch 256, cross-entropy.
 */
#ifndef NADER_TRAIN_H
#define NADER_TRAIN_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"
#include "graph.h"
#include "net.h"

typedef struct train_config {
    const char *dataset;      /* "cifar10", "cifar10-valid", "cifar100",
                                 "imagenet16-120" */
    const char *data_dir;     /* folder holding the data set's files */
    const char *split_file;   /* optional NAS-Bench-201 index list */
    const char *device;       /* "cpu", "cuda:0" */
    backend_precision_t precision;
    int threads;              /* CPU threads, 0 = all */
    int epochs;               /* E, 200 by default */
    int batch;                /* 256 */
    uint64_t seed;            /* 777 */
    int64_t max_steps;        /* > 0: stop after this many steps */
    double lr;                /* 0.1 */
    double momentum;          /* 0.9 */
    double weight_decay;      /* 5e-4 */
    bool nesterov;            /* true */
    const char *init_weights; /* safetensors file to start from */
    const char *resume;       /* checkpoint file to resume from */
    const char *checkpoint;   /* where to write checkpoints */
    int checkpoint_every;     /* epochs between checkpoints, 0 = never */
    bool checkpoint_optional; /* a checkpoint that cannot be written (a
                                 full disk) is logged and training goes
                                 on; otherwise the run fails */
    const char *save_weights; /* safetensors file for the final weights
                                 (written when the run ends ok or
                                 cancelled) */
} train_config_t;

/* Fill c with the nb201 recipe's defaults. */
void train_config_default(train_config_t *c);

/* Figures for one finished epoch. */
typedef struct train_epoch {
    int epoch;                /* 0-based */
    int epochs;
    double lr;
    double train_loss, train_acc;   /* accuracy in percent */
    double valid_loss, valid_acc;   /* the evaluation split */
    double test_acc;                /* -1 when the data set has none */
    double images_per_s;      /* training throughput this epoch */
    double seconds;           /* wall time of the epoch */
} train_epoch_t;

/* Progress within an epoch, for a terminal line. */
typedef struct train_step {
    int epoch, epochs;
    int64_t step, steps_per_epoch;
    double loss;              /* running mean over the epoch so far */
    double images_per_s;
    double seconds_left;      /* estimate for the whole run */
    double acc;               /* running training accuracy, percent */
} train_step_t;

typedef struct train_hooks {
    void *ctx;
    /* Each returns 0 to go on; anything else stops the run (cancelled). */
    int (*on_epoch)(void *ctx, const train_epoch_t *e);
    int (*on_step)(void *ctx, const train_step_t *s);
    /* Called after a checkpoint file has been written completely. */
    int (*on_checkpoint)(void *ctx, const char *path, int epoch);
    /* Optional: called after each evaluation batch, to show that a run
     * outside its training steps is still making progress. */
    void (*on_beat)(void *ctx);
} train_hooks_t;

typedef enum train_status {
    TRAIN_OK,
    TRAIN_DIVERGED,           /* NaN or infinite loss */
    TRAIN_CANCELLED,          /* a hook asked to stop */
    TRAIN_FAILED              /* anything else; reason says what */
} train_status_t;

const char *train_status_name(train_status_t s);

typedef struct train_result {
    train_status_t status;
    char reason[320];
    int checkpoints_lost;     /* optional checkpoints not written */
    char device[128];
    int width;
    int64_t params, macs;     /* macs per image */
    int n_epochs;             /* epochs completed */
    train_epoch_t *epochs;    /* n_epochs entries, owned by the result */
    double best_valid_acc, final_valid_acc;
    double best_test_acc, final_test_acc;
    double images_per_s;      /* mean training throughput */
    int64_t peak_bytes;       /* peak engine memory on the device */
    int64_t peak_rss_bytes;   /* peak resident memory of the process */
    double seconds;
    int64_t steps;
} train_result_t;

/* Free what a result owns (not the struct itself). */
void train_result_free(train_result_t *r);

/*
 * Train design d assembled by ncfg under cfg.  Returns 0 when the run
 * finished, diverged or was cancelled (see r->status), or -1 when it
 * could not run at all (bad data files, unknown device, invalid design,
 * out of memory), with r->status = TRAIN_FAILED and r->reason set.  r is
 * always filled; free it with train_result_free().  hooks may be NULL.
 */
int train_run(const graph_design_t *d, const net_config_t *ncfg,
              const train_config_t *cfg, const train_hooks_t *hooks,
              train_result_t *r);

#endif
