/*
 * backend.h - the engine's device interface.
 *
 * The network code (network.c, train.c) never touches memory or
 * arithmetic directly: it asks a backend, through the table of functions
 * below, to allocate, copy, run one operation of the assembled network
 * forward or backward, compute the loss, build a batch from the data set,
 * and update the weights.  The CPU backend (backend_cpu.c, OpenBLAS and
 * OpenMP) is the reference; the CUDA backend (worker/cuda/) implements
 * the same table and is tested against it.
 *
 * Conventions, which every backend keeps:
 *  - tensors are float32, contiguous, row-major, in the shapes of
 *    net_node_t.shape (NCHW for 4-D); pointers are device pointers;
 *  - forward writes y; backward writes dw (overwrite: each parameter
 *    belongs to one node) and dx[i] (overwrite, or add when
 *    dx_accumulate[i], because a tensor may feed several nodes);
 *  - random choices (DropPath masks) are drawn from rng_key with
 *    engine_rng_uniform() in rng.h, so every backend drops the same
 *    samples;
 *  - functions return 0 or a negative errno-style code, and leave a
 *    message naming the operation and node in be->err.
 *
 * Ownership: backend_new() returns a backend owned by the caller, freed
 * with backend_destroy(&be) after all its memory has been freed.
 */
#ifndef NADER_BACKEND_H
#define NADER_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

typedef struct backend backend_t;

/* Everything one operation needs, for forward and backward. */
typedef struct backend_op {
    const net_t *net;
    const net_node_t *node;
    int n_inputs;
    const float *const *x;    /* forward inputs; shapes are those of
                                 net->nodes[node->inputs[i]].shape */
    float *y;                 /* forward output, node->shape */
    const float *const *w;    /* the node's parameters in net_param_list
                                 order: weight, bias (Conv2d, Linear, BN,
                                 LN), then running_mean, running_var (BN) */
    float *const *dw;         /* gradients of the trainable ones */
    float *const *dx;         /* input gradients; NULL entries: not needed */
    const bool *dx_accumulate;
    const float *dy;          /* gradient of the output */
    void *saved;              /* saved_bytes() kept from forward to
                                 backward (BN statistics, masks, ...) */
    void *workspace;          /* scratch, workspace_bytes() at least */
    size_t workspace_size;
    bool training;            /* BN batch statistics, DropPath active */
    uint64_t rng_key;         /* DropPath: key for this node and step */
} backend_op_t;

/* SGD with momentum and weight decay, PyTorch semantics:
 *   g' = g + wd * w;  m = momentum * m + g';
 *   w -= lr * (nesterov ? g' + momentum * m : m). */
typedef struct backend_sgd {
    float lr, momentum, weight_decay;
    bool nesterov;
} backend_sgd_t;

/* The random choices for one batch, built by the trainer (host RNG) and
 * uploaded, so all backends see the same batch. */
typedef struct backend_batch_spec {
    const int32_t *index;     /* device: image index in the data set */
    const int8_t *shift_x;    /* device: crop offset in [-pad, pad] */
    const int8_t *shift_y;
    const uint8_t *flip;      /* device: 1 = mirror horizontally */
    int n;
    int pad;                  /* 0 for evaluation batches */
    float mean[3], std[3];    /* on the [0, 1] pixel scale */
} backend_batch_spec_t;

typedef struct backend_vtable {
    const char *name;                      /* "cpu", "cuda" */

    void *(*alloc)(backend_t *be, size_t bytes);  /* NULL on failure */
    void (*free)(backend_t *be, void *p);
    int (*upload)(backend_t *be, void *dst, const void *src, size_t n);
    int (*download)(backend_t *be, void *dst, const void *src, size_t n);
    int (*copy)(backend_t *be, void *dst, const void *src, size_t n);
    int (*zero)(backend_t *be, void *dst, size_t n);
    int (*sync)(backend_t *be);

    bool (*supports)(backend_t *be, const net_node_t *node);
    size_t (*saved_bytes)(backend_t *be, const net_t *net,
                          const net_node_t *node);
    size_t (*workspace_bytes)(backend_t *be, const net_t *net,
                              const net_node_t *node);
    int (*forward)(backend_t *be, const backend_op_t *op);
    int (*backward)(backend_t *be, const backend_op_t *op);

    /*
     * Softmax cross-entropy over logits (n, classes) with int32 labels.
     * Adds the summed loss and the number of correct top-1 predictions
     * to the device scalars acc[0] and acc[1] (so no host round trip is
     * needed per step).  When dlogits is not NULL, writes the gradient of
     * the mean loss over the n samples.
     */
    int (*xent)(backend_t *be, const float *logits, const int32_t *labels,
                int n, int classes, float *dlogits, float *acc);

    /* One SGD step over n parameters (w, its gradient g, momentum m). */
    int (*sgd)(backend_t *be, float *w, const float *g, float *m, size_t n,
               const backend_sgd_t *p);

    /*
     * Build a batch from a uint8 data set in device memory (N, 3, H, W)
     * with int32 labels: crop with zero padding, flip, scale to [0, 1],
     * normalise.  Writes out (n, 3, H, W) and labels_out (n).
     */
    int (*batch)(backend_t *be, const uint8_t *images,
                 const int32_t *labels, int h, int w,
                 const backend_batch_spec_t *spec, float *out,
                 int32_t *labels_out);

    /*
     * Optional (NULL on the CPU): record the calls of one training step
     * and replay them (CUDA Graphs).  Between begin and end the caller
     * makes exactly the calls of a step, with the same pointers every
     * time, no allocation and no download.  Those calls are recorded,
     * not run, and capture_end() runs nothing either: each replay() runs
     * the recorded step, the first time included.  Values passed by
     * value (the SGD learning rate) are frozen: capture again to change
     * them.
     */
    int (*capture_begin)(backend_t *be);
    int (*capture_end)(backend_t *be);
    int (*replay)(backend_t *be);

    void (*destroy)(backend_t *be);
} backend_vtable_t;

struct backend {
    const backend_vtable_t *vt;
    char device[32];          /* "cpu", "cuda:0" */
    char description[128];    /* "NVIDIA H200, 139 GiB" / "cpu, 2 threads" */
    int threads;
    int64_t bytes_in_use;     /* kept by alloc/free */
    int64_t peak_bytes;
    char err[320];
    void *impl;
};

typedef enum backend_precision {
    BACKEND_FP32,             /* TF32 tensor cores allowed on GPUs */
    BACKEND_STRICT_FP32,      /* no TF32 */
    BACKEND_BF16              /* mixed precision, fp32 master weights */
} backend_precision_t;

typedef struct backend_options {
    int threads;              /* CPU: 0 = all cores */
    backend_precision_t precision;
} backend_options_t;

/*
 * Open the backend for device "cpu" or "cuda:N".  Returns NULL and writes
 * a message to err when the device is unknown, absent, or the build has
 * no CUDA support.
 */
backend_t *backend_new(const char *device, const backend_options_t *opt,
                       char *err, size_t errlen);
void backend_destroy(backend_t **be);

/* The number of CUDA devices usable by this build (0 without CUDA). */
int backend_cuda_count(void);

/* Why CUDA cannot be used at all (no CUDA in the build, or its library
 * cannot be loaded), or NULL when it can (devices may still be 0). */
const char *backend_cuda_why(void);

/* The constructors behind backend_new(): the CPU backend (backend_cpu.c)
 * and, in builds with NADER_HAVE_CUDA, the CUDA one (worker/cuda/, built
 * as the library nader-cuda.so, which backend.c opens when needed). */
backend_t *backend_cpu_new(const backend_options_t *opt, char *err,
                           size_t errlen);
#ifdef NADER_HAVE_CUDA
backend_t *backend_cuda_new(int ordinal, const backend_options_t *opt,
                            char *err, size_t errlen);
int backend_cuda_device_count(void);
#endif

#endif
