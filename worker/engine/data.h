/*
 * data.h - the training data sets: files on disk, splits, augmentation.
 *
 * Loads CIFAR-10 and CIFAR-100 in their binary layouts and ImageNet16-120
 * from the original pickled batches (read by a small pickle reader in C,
 * data_pickle.c), and cuts them into the splits of
 * spec/training-protocol.md: a training split, the evaluation split
 * ("valid") and, where the data set has one, a test split.  Images are
 * kept as uint8 (N, 3, H, W) with int32 labels, the layout the backends'
 * batch() reads, so a whole split is uploaded to a device once.
 *
 * Every file is checked before it is used: a missing, truncated or
 * wrong-sized file, or a label out of range, is an error that names the
 * file and says what was expected.  Real CIFAR files hold exactly 10,000
 * (CIFAR-10) or 50,000/10,000 (CIFAR-100) records; a folder of smaller
 * files (test fixtures, a subset) must say so in a manifest, nader-data.json
 * beside them (docs/data.md), so that a real file cut short is never taken
 * for a small one.
 *
 * Augmentation is split in two: the host draws, per sample, the image
 * index, the crop shift and the flip from a counter-based stream keyed by
 * (seed, epoch) (data_epoch_plan), and the backend builds the tensor.
 * Because an epoch's choices depend on nothing but the seed and the epoch,
 * a run resumed at an epoch boundary sees the very batches it would have.
 *
 * Ownership: data_set_load() returns a data_set_t owned by the caller,
 * freed with data_set_destroy(&d).
 */
#ifndef NADER_DATA_H
#define NADER_DATA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One split: n images (n, 3, h, w) as bytes, and their classes. */
typedef struct data_split {
    char name[16];            /* "train", "valid", "x-valid", "test" ... */
    int n;
    int h, w;
    uint8_t *images;          /* n * 3 * h * w bytes, NULL when n == 0 */
    int32_t *labels;          /* n classes in [0, classes) */
} data_split_t;

typedef struct data_set {
    char name[24];            /* "cifar10", "cifar10-valid", "cifar100",
                                 "imagenet16-120" */
    int classes;
    int h, w;
    int pad;                  /* random-crop padding: 4 at 32x32, 2 at
                                 16x16 */
    float mean[3], std[3];    /* normalisation on the [0, 1] scale */
    data_split_t train;
    data_split_t valid;       /* the evaluation split */
    data_split_t test;        /* n == 0 when the data set has none */
    char source[1024];        /* the folder the files came from */
} data_set_t;

typedef struct data_options {
    const char *dataset;      /* a name as in data_set_t.name */
    const char *dir;          /* the folder holding the data set (or its
                                 usual sub-folder, e.g. cifar-10-batches-bin)
                               */
    const char *split_file;   /* optional NAS-Bench-201 index list */
    uint64_t split_seed;      /* seeds the split when no list is given */
    /* Optional: called after each file is read, so that a caller can
     * show signs of life while a large data set loads. */
    void (*on_file)(void *ctx, const char *path);
    void *on_file_ctx;
} data_options_t;

/* The seed of the default splits: fixed, so that every training seed of
 * every job is measured on the same split (as NAS-Bench-201 does). */
#define DATA_SPLIT_SEED 201

/*
 * Load the data set o->dataset from o->dir and cut its splits.  Returns 0
 * and sets *out, or a negative code with a message in err naming the file
 * (or split file) and what was wrong.  Nothing is kept on failure.
 */
int data_set_load(const data_options_t *o, data_set_t **out, char *err,
                  size_t errlen);

void data_set_destroy(data_set_t **d);

/*
 * Whether dir holds the files of dataset (names only, sizes are checked
 * at load).  Returns 1 when it does, 0 when not, -1 for an unknown data
 * set name.  For a worker announcing what it has.
 */
int data_set_probe(const char *dataset, const char *dir);

/* Number of classes, input size and normalisation of a data set without
 * loading it.  Returns 0, or -1 for an unknown name. */
int data_set_describe(const char *dataset, int *classes, int *h, int *w);

/*
 * The training order and augmentation of one epoch: a permutation of
 * [0, n) in index, and per position a crop shift in [-pad, pad] (x and y)
 * and a flip bit.  A pure function of (seed, epoch, n, pad).  Each array
 * holds n entries; shift and flip may be NULL when pad is 0.
 */
void data_epoch_plan(uint64_t seed, int epoch, int n, int pad,
                     int32_t *index, int8_t *shift_x, int8_t *shift_y,
                     uint8_t *flip);

/* ---------------------------------------------------------------- pickle */

/* One ImageNet16 batch file: n images of 768 bytes and labels 1..1000. */
typedef struct data_pickle_batch {
    int n;
    uint8_t *data;            /* n * 768 bytes, owned */
    int32_t *labels;          /* n, owned */
} data_pickle_batch_t;

/*
 * Read an ImageNet16 pickle (a dict whose 'data' is a numpy uint8 array
 * (n, 768) and 'labels' a list of n ints; other keys are skipped), as
 * written by Python 2 or 3 at protocols 2 to 5.  Returns 0, or a negative
 * code with a message naming path and the fault.  Free with
 * data_pickle_batch_free().
 */
int data_pickle_read(const char *path, data_pickle_batch_t *out, char *err,
                     size_t errlen);

/* The same from a buffer in memory; name is used in messages. */
int data_pickle_parse(const uint8_t *buf, size_t len, const char *name,
                      data_pickle_batch_t *out, char *err, size_t errlen);

void data_pickle_batch_free(data_pickle_batch_t *b);

#endif
