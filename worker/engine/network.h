/*
 * network.h - run an assembled network forward and backward on a backend.
 *
 * A network_t binds a net_t (common/net.h) to a backend: it owns the
 * parameters (all of them in one device allocation, trainable ones first,
 * then the BN running statistics, each group in net_param_list() order),
 * their gradients and SGD momenta (one allocation each, same layout), and
 * an arena for activations, gradients and per-node saved state.
 *
 * Memory plan.  Execution is a timeline: forward of node i at time i, the
 * loss at time N, backward of node i at time 2N - i.  From the op table's
 * bwd_needs_input / bwd_needs_output flags each activation gets the
 * interval in which something still reads it (a forward consumer, the
 * loss, or a backward that needs it), each output gradient the interval
 * from its first writer to its node's backward, each node's saved state
 * the interval from its forward to its backward.  Buffers are then placed
 * in one arena by size, largest first, at the lowest offset not used by
 * an overlapping interval, so memory is reused as soon as nothing needs
 * it; all addresses are fixed at build time (a requirement for CUDA graph
 * replay).  A reshape's output aliases its input.  A tensor read by several
 * nodes gets its gradient summed: the first backward to write it (the
 * consumer latest in topological order) overwrites, the others add.
 *
 * Networks of the same design at another batch size (the last, partial
 * batch of an epoch) share the parameters, gradients and momenta of a
 * first one, and its arena when they fit.
 *
 * Ownership: network_new() returns a network_t owned by the caller, freed
 * with network_destroy(&nw) before its backend and net; a sharing
 * network must be destroyed before the one it shares with.
 */
#ifndef NADER_NETWORK_H
#define NADER_NETWORK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "net.h"
#include "safetensors.h"

typedef struct network network_t;

/* Sizes, for reports and for the memory-plan tests. */
typedef struct network_stats {
    size_t param_bytes;       /* parameters and BN buffers */
    size_t train_bytes;       /* trainable parameters (= gradients =
                                 momenta) */
    size_t arena_bytes;       /* activations, gradients, saved state */
    size_t activation_sum;    /* every activation, gradient and saved
                                 buffer laid end to end (no reuse) */
    size_t workspace_bytes;
    int n_buffers;            /* planned buffers */
} network_stats_t;

/*
 * Build a network for net on be.  When share is not NULL, use its
 * parameters, gradients and momenta (net must have the same parameter
 * list) and its arena when large enough.  Parameters are not initialised
 * (see network_init).  Returns 0, or a negative code with a message in
 * err (an operation the backend does not support, out of device memory).
 */
int network_new(backend_t *be, const net_t *net, network_t *share,
                network_t **out, char *err, size_t errlen);

/* Flags of network_new_ex(). */
enum {
    NETWORK_NO_REUSE = 1      /* every buffer its own memory: the plan's
                                 reference, for tests */
};

/* network_new() with flags. */
int network_new_ex(backend_t *be, const net_t *net, network_t *share,
                   int flags, network_t **out, char *err, size_t errlen);

void network_destroy(network_t **nw);

/* The net this network runs (the caller's, not owned by the network). */
const net_t *network_net(const network_t *nw);

/*
 * PyTorch's default initialisation, drawn from a stream seeded by seed:
 * Conv2d and Linear weight and bias uniform in +-1/sqrt(fan_in) (what
 * kaiming_uniform_(a=sqrt(5)) gives), BN and LN weight 1 and bias 0,
 * running mean 0 and variance 1; momenta zero.  Returns 0 or negative.
 */
int network_init(network_t *nw, uint64_t seed);

/*
 * Forward pass on the device batch x (B, C, H, W).  training selects BN
 * batch statistics (and updates the running ones) and active DropPath,
 * whose masks use engine_rng_key(seed, step, node).  The logits are then
 * at network_logits() until the next call.  Returns 0, or a negative
 * code with the backend's message (naming node and operation) in err.
 */
int network_forward(network_t *nw, const float *x, bool training,
                    uint64_t seed, uint64_t step, char *err, size_t errlen);

/* The logits (B, classes) of the last forward. */
const float *network_logits(const network_t *nw);

/* Where the loss writes the gradient of the logits before backward. */
float *network_dlogits(network_t *nw);

/*
 * Backward pass after a training forward and the loss: writes the
 * gradient of every trainable parameter (overwriting).  Returns 0 or
 * negative with a message in err.
 */
int network_backward(network_t *nw, char *err, size_t errlen);

/* One SGD step over all trainable parameters. */
int network_sgd(network_t *nw, const backend_sgd_t *p, char *err,
                size_t errlen);

/* Parameters in net_param_list() order, with their device storage. */
int network_param_count(const network_t *nw);
const net_param_t *network_param(const network_t *nw, int i);
float *network_param_data(network_t *nw, int i);
float *network_param_grad(network_t *nw, int i);     /* NULL: buffer */
float *network_param_momentum(network_t *nw, int i); /* NULL: buffer */

void network_stats(const network_t *nw, network_stats_t *s);

/* ------------------------------------------------------ weights on disk */

/*
 * Write every parameter and BN buffer under its net_param_list name
 * (and, with momenta, "momentum.<name>" for the trainable ones) to a
 * safetensors file, with metadata pairs meta (NULL-terminated, may be
 * NULL).  Returns 0 or negative with a message in err.
 */
int network_weights_save(network_t *nw, const char *path,
                         const char *const *meta, bool momenta, char *err,
                         size_t errlen);

/*
 * Load every parameter and BN buffer (and momenta when asked) from st.
 * All or nothing: a missing name, a shape or dtype mismatch, or a tensor
 * the network does not have (other than "momentum.*" when momenta are not
 * asked for, and PyTorch's "*.num_batches_tracked") fails with a message
 * naming the file and tensor, and changes nothing.
 */
int network_weights_load(network_t *nw, const safetensors_t *st,
                         bool momenta, char *err, size_t errlen);

#endif
