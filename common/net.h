/*
 * net.h - a design assembled into a whole network by a skeleton.
 *
 * A skeleton places block instances: for nb201, the stem, N cells, a
 * downsample, N cells, a downsample, N cells, then global average pooling
 * and a linear classifier; for darts, two-input cells fed by the previous
 * two cells (spec/graph-format.md, "Assembly into a network", and
 * docs/skeletons.md).  The stem keeps the input resolution, or reduces
 * it by the configured stem_scale (ImageNet-style stems).  Assembly
 * resolves every expression at the chosen base width, so the result is
 * a flat DAG of net_node_t with plain integers: it is what the engine
 * executes, what the PyTorch exporter prints, and what the parameter and
 * MAC counts are summed over.
 *
 * Block input and output nodes are not materialised: a block's input
 * refers to the producing node of the previous instance, and its output
 * to its single predecessor.  Node 0 is the image (B,3,H,W).
 *
 * Width search: the base width w is the one whose whole-network parameter
 * count is closest to the budget while the MACs per image stay under the
 * cap, among the widths at which every size expression is a positive
 * integer and every groups divides its channels.
 *
 * Ownership: net_build returns a net_t owned by the caller, freed with
 * net_destroy(&n).  Everything inside it belongs to it.
 */
#ifndef NADER_NET_H
#define NADER_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "graph.h"

typedef enum net_skeleton {
    NET_SKELETON_NB201,
    NET_SKELETON_DARTS
} net_skeleton_t;

/* Parse "nb201" or "darts"; returns -1 when unknown. */
int net_skeleton_parse(const char *name);
const char *net_skeleton_name(net_skeleton_t s);

typedef struct net_config {
    net_skeleton_t skeleton;
    int classes;              /* 10, 100, 120 */
    int in_c, in_h, in_w;     /* 3, 32, 32 (16, 16 for ImageNet16-120) */
    int cells_per_stage;      /* N, 5 by default */
    int stem_scale;           /* s: the stem returns (B, w, ceil(H/s),
                                 ceil(W/s)) and the stages run from
                                 there; 1 (CIFAR style) by default, 4 for
                                 ImageNet-style stems; 1, 2, 4 or 8 (0 is
                                 read as 1) */
    int width;                /* > 0: use this base width; 0: search */
    int64_t budget;           /* parameter budget, 1,500,000 by default */
    double tolerance;         /* relative, 0.03 by default */
    int64_t mac_cap;          /* per image; 0: 0.2 G at 32x32, 0.05 G at
                                 16x16, scaled by the input's area
                                 otherwise (whatever the stem_scale) */
    int min_width, max_width; /* search range, 1 .. 1024 by default */
} net_config_t;

/* Whether s is a stem scale the skeletons take: 1, 2, 4 or 8. */
bool net_stem_scale_ok(int s);

/*
 * Fill c with the defaults for a data set: "cifar10", "cifar10-valid",
 * "cifar100" or "imagenet16-120" (classes and input size), nb201
 * skeleton.  Returns 0, or -1 when the data set is unknown.
 */
int net_config_default(net_config_t *c, const char *dataset);

/* One operation of the assembled network, arguments resolved. */
typedef struct net_node {
    graph_op_t op;
    char name[48];            /* module path: "stem.n2", "stage1.3.n5",
                                 "down0.n9", "cells.7.pre0.conv",
                                 "classifier" */
    int instance;             /* index into net_t.instances, -1: head */
    int block_node;           /* node index as written in the block;
                                 -1 for the skeleton's own nodes */
    int n_inputs;
    int *inputs;              /* net node ids, in edge order */
    graph_shape_t shape;      /* output shape at the net's batch */

    /* Conv2d, pools: resolved arguments and the "same" padding. */
    int64_t in_ch, out_ch;    /* Conv2d, Linear (features), BN, LN */
    int64_t kernel, stride, dilation, groups;
    int64_t pad;              /* both sides */
    bool crop;                /* drop the last output row and column */
    bool bias;                /* Conv2d and Linear of blocks: true */
    int64_t out_size;         /* adaptive pools: output height */
    int64_t out_size_w;       /* adaptive pools: output width (equal to
                                 out_size unless a pair was given) */

    /* concat, softmax: dims[0]; mean, max, sum: n_dims sorted dims;
     * permute: the order.  All made non-negative. */
    int n_dims;
    int dims[GRAPH_MAX_DIMS];

    /* repeat: counts; reshape: the resolved shape (no -1). */
    int n_sizes;
    int64_t sizes[GRAPH_MAX_DIMS];

    float prob;               /* DropPath */

    int64_t params;           /* trainable parameters */
    int64_t macs;             /* multiply-accumulates per image */
} net_node_t;

/* One block placed by the skeleton. */
typedef struct net_instance {
    graph_role_t role;
    char name[24];            /* "stem", "stage0.3", "down1", "cells.7" */
    graph_bindings_t bind;    /* C, dim, H, W (B = the net's batch) */
    int first_node, end_node; /* its nodes are [first_node, end_node) */
} net_instance_t;

typedef struct net {
    net_config_t config;
    int width;
    int batch;
    int64_t params;           /* whole network, classifier included */
    int64_t macs;             /* per image */
    int n_nodes;
    net_node_t *nodes;        /* topological order; nodes[0] is the image */
    int output;               /* the logits node (B, classes) */
    int n_instances;
    net_instance_t *instances;
} net_t;

/* The outcome of choosing a width. */
typedef struct net_choice {
    int width;
    int64_t params;
    int64_t macs;             /* per image */
    bool within_tolerance;    /* |params - budget| <= tolerance * budget */
} net_choice_t;

/*
 * Check a parsed design completely: structure (already linked by the
 * parser), then shapes, argument values and roles at every block instance
 * of the skeleton, at cfg->width when forced or else at the searched
 * width.  When no width at all is valid, the errors found at a reference
 * width (16, or the nearest valid-looking one) are reported.  Fills
 * *choice when not NULL.  Returns the number of errors appended (0: valid).
 */
int net_check(const graph_design_t *d, const net_config_t *cfg,
              net_choice_t *choice, graph_errors_t *errs);

/*
 * Choose the base width as above without building the network.  Returns
 * 0, or -1 with errors appended when no width is valid (a forced width
 * that is invalid is reported as such).
 */
int net_choose_width(const graph_design_t *d, const net_config_t *cfg,
                     net_choice_t *out, graph_errors_t *errs);

/*
 * Assemble the network at cfg->width (or the searched width) for the given
 * batch size.  Returns 0 and sets *out, or -1 with errors appended.
 */
int net_build(const graph_design_t *d, const net_config_t *cfg, int batch,
              net_t **out, graph_errors_t *errs);

void net_destroy(net_t **n);

/* ------------------------------------------------------------ parameters */

typedef enum net_param_kind {
    NET_PARAM_WEIGHT,
    NET_PARAM_BIAS,
    NET_PARAM_RUNNING_MEAN,   /* BN buffers: saved, not trained */
    NET_PARAM_RUNNING_VAR
} net_param_kind_t;

typedef struct net_param {
    int node;                 /* net node id */
    net_param_kind_t kind;
    char name[64];            /* "stage1.3.n5.weight": the state_dict name
                                 of the exported PyTorch module */
    int ndim;
    int64_t shape[4];         /* Conv2d weight (out, in/groups, k, k) */
    int64_t numel;
    bool trainable;
} net_param_t;

/*
 * List every parameter and buffer of n in a fixed order (node order, then
 * weight, bias, running_mean, running_var).  Returns the count and sets
 * *out to a malloc'd array owned by the caller (free()), or -1 on
 * allocation failure.
 */
int net_param_list(const net_t *n, net_param_t **out);

#endif
