/*
 * net_impl.h - private to common/net_*.c: the skeleton as a list of
 * block slots, and the measurement of a design at one width.
 *
 * A skeleton is walked once per width into an array of slots (one per
 * block instance) that says which block goes there, with which bindings,
 * at which input shape, fed by which earlier slots and through which
 * DARTS-style preprocessing.  Measuring, checking and building all read
 * the same list, so they cannot disagree about the network.
 */
#ifndef NADER_NET_IMPL_H
#define NADER_NET_IMPL_H

#include "net.h"
#include "graph_impl.h"

/* The batch size checks and measurements run at (see graph_infer.c). */
#define NET_CHECK_BATCH 2
#define NET_MAX_SLOTS 256

typedef enum net_pre {
    NET_PRE_NONE,     /* identity */
    NET_PRE_CONV,     /* ReLU, Conv2d 1x1, BN */
    NET_PRE_STRIDED   /* ReLU, Conv2d 1x1 stride 2, BN */
} net_pre_t;

typedef struct net_slot {
    graph_role_t role;
    const graph_block_t *block;
    char name[24];
    graph_bindings_t bind;
    graph_shape_t in_shape;   /* what the block's input node(s) see */
    graph_shape_t out_shape;  /* what the role makes it return */
    int n_src;                /* 1, or 2 for two-input blocks */
    int src[2];               /* earlier slot ids, -1: the image */
    net_pre_t pre[2];
    int64_t pre_in[2];        /* channels into each preprocessing conv */
} net_slot_t;

/*
 * The slots of design d in skeleton cfg->skeleton at base width w and
 * batch B.  Returns the number of slots, or -1 (with an error appended)
 * when the skeleton cannot take this design or configuration.
 */
int net_slots_make(const graph_design_t *d, const net_config_t *cfg,
                   int width, int batch, net_slot_t *slots,
                   graph_errors_t *errs);

/* Parameters and MACs of a slot's preprocessing. */
void net_pre_counts(const net_slot_t *s, int64_t *params, int64_t *macs);

/* The effective MAC cap of cfg (per image). */
int64_t net_mac_cap(const net_config_t *cfg);

/*
 * Measure d at width w: whole-network parameters and MACs per image.
 * errs may be NULL (quiet); when stop_first, the pass ends at the first
 * error.  Returns the number of errors (0: valid at w).
 */
int net_measure(const graph_design_t *d, const net_config_t *cfg, int width,
                int64_t *params, int64_t *macs, graph_errors_t *errs,
                bool stop_first);

#endif
