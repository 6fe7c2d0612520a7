/*
 * export.h - a design's assembled network written for other tools: as a
 * self-contained PyTorch module, as a Graphviz digraph, or as JSON.
 *
 * Every generator works from what net_build() resolved (common/net.h):
 * the same nodes, arguments, "same" padding and crop, and the same names
 * the engine trains and net_param_list() lists, so the PyTorch module's
 * state_dict() keys are exactly nader's parameter names and a weights
 * file written by nader loads into it unchanged.  Nothing is re-derived
 * from the block text, so the exported network cannot drift from the one
 * nader trains.
 *
 * Sizes that depend on the batch (a reshape to (B, C*H*W), a repeat over
 * B) are found by assembling the network at two batch sizes and comparing
 * them; the module then computes them from its input at run time.
 *
 * Generators write to a FILE the caller owns and never log: they return 0,
 * or -1 with the reason appended to errs (a design that does not assemble,
 * a write that failed, an argument the module cannot express).
 */
#ifndef NADER_EXPORT_H
#define NADER_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "graph.h"
#include "net.h"

/* What the generated text says about where the design came from. */
typedef struct export_meta {
    const char *dataset;      /* "cifar10", ...: for the header only */
    const char *source;       /* "examples/blocks/x.txt", "job 17", ... */
    const char *note;         /* one more line for the header, or NULL */
} export_meta_t;

/*
 * A whole Python module defining Network (an nn.Module building exactly
 * the network of d assembled by cfg), the helper modules it needs, and
 * load_safetensors()/save_safetensors() for weights named as its
 * state_dict().  Needs only torch (>= 1.10).
 */
int export_pytorch(FILE *out, const graph_design_t *d,
                   const net_config_t *cfg, const export_meta_t *meta,
                   graph_errors_t *errs);

/* A Graphviz digraph of the assembled network, one cluster per block
 * instance, each node labelled with its operation and output shape. */
int export_dot(FILE *out, const graph_design_t *d, const net_config_t *cfg,
               const export_meta_t *meta, graph_errors_t *errs);

/*
 * The assembled network as one JSON object: the design (hash, name, block
 * text), skeleton, data set, width, parameter and MAC counts, the block
 * instances, every node (name, operation, inputs by name, resolved
 * arguments, per-image output shape) and every parameter (state_dict
 * name, shape, trainable).  Batch dimensions are written as "B".
 */
int export_json(FILE *out, const graph_design_t *d, const net_config_t *cfg,
                const export_meta_t *meta, graph_errors_t *errs);

#endif
