/*
 * safetensors.h - read and write tensors in the safetensors format.
 *
 * The format is an 8-byte little-endian header length, a JSON header
 * mapping each tensor name to {dtype, shape, data_offsets} (plus an
 * optional "__metadata__" object of string values), then the raw data.
 * nader writes float32 ("F32") tensors named as the PyTorch modules'
 * state_dict entries (net_param_list names, e.g. "stage1.3.n5.weight"),
 * so weights move between nader and PyTorch unchanged; checkpoints use
 * the same files with extra tensors and metadata.
 *
 * Files are written whole to a temporary name, flushed to disk, then
 * renamed over the target, so a reader never sees half a file and a
 * crash never destroys the previous one.
 *
 * Ownership: safetensors_load() returns a safetensors_t owned by the
 * caller, freed with safetensors_destroy(&st); tensor data and names
 * point into it.
 */
#ifndef NADER_SAFETENSORS_H
#define NADER_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define SAFETENSORS_MAX_DIMS 8

typedef struct safetensors_tensor {
    const char *name;
    char dtype[8];            /* "F32", "F16", "I64", ... */
    int ndim;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    int64_t numel;
    const void *data;         /* in the file image; not necessarily
                                 aligned: copy it out (memcpy) */
    size_t bytes;
} safetensors_tensor_t;

typedef struct safetensors safetensors_t;

/*
 * Read and check the file at path: header well formed, every tensor's
 * byte range inside the file and of the size its dtype and shape say.
 * Returns 0 and sets *out, or a negative code with a message naming the
 * file (and tensor) in err.
 */
int safetensors_load(const char *path, safetensors_t **out, char *err,
                     size_t errlen);

void safetensors_destroy(safetensors_t **st);

/* Number of tensors, and the i-th in file header order. */
int safetensors_count(const safetensors_t *st);
const safetensors_tensor_t *safetensors_at(const safetensors_t *st, int i);

/* The tensor called name, or NULL. */
const safetensors_tensor_t *safetensors_find(const safetensors_t *st,
                                             const char *name);

/* A value of "__metadata__", or NULL. */
const char *safetensors_meta(const safetensors_t *st, const char *key);

/* The path the file was read from. */
const char *safetensors_path(const safetensors_t *st);

/*
 * Copy tensor name into dst (numel floats), checking that it exists, is
 * F32, and has the given shape.  Returns 0, or a negative code with a
 * message such as "w.st: stage1.3.n5.weight has shape (16,16,3,3),
 * expected (32,32,3,3)" or "w.st: no tensor stage1.3.n5.weight".
 */
int safetensors_read_f32(const safetensors_t *st, const char *name,
                         int ndim, const int64_t *shape, float *dst,
                         char *err, size_t errlen);

/* One tensor to write: float32 data in host memory. */
typedef struct safetensors_entry {
    const char *name;
    int ndim;
    const int64_t *shape;
    const float *data;
} safetensors_entry_t;

/*
 * Write n tensors, and metadata given as NULL-terminated key, value pairs
 * (meta may be NULL), to path atomically (see above).  Names must be
 * unique and not "__metadata__".  Returns 0, or a negative code with a
 * message in err; on failure the previous file at path is untouched.
 */
int safetensors_save(const char *path, const safetensors_entry_t *t, int n,
                     const char *const *meta, char *err, size_t errlen);

#endif
