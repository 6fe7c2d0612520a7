/*
 * export_impl.h - private to common/export_*.c: the network assembled at
 * two batch sizes, and small helpers the generators share.
 */
#ifndef NADER_EXPORT_IMPL_H
#define NADER_EXPORT_IMPL_H

#include <stddef.h>

#include "export.h"
#include "graph_impl.h"

/* The batch sizes the network is assembled at; sizes that differ
 * between the two follow the batch. */
#define EXPORT_BATCH 2
#define EXPORT_BATCH_ALT 3

typedef struct export_nets {
    net_t *net;               /* at EXPORT_BATCH */
    net_t *alt;               /* at EXPORT_BATCH_ALT, or NULL when the
                                 design only assembles at the first */
} export_nets_t;

/* Assemble d by cfg at both batch sizes (the second at the width the
 * first chose).  Returns 0, or -1 with errors appended. */
int export_nets_build(const graph_design_t *d, const net_config_t *cfg,
                      export_nets_t *out, graph_errors_t *errs);
void export_nets_free(export_nets_t *n);

/*
 * Entry i of the sizes (reshape, repeat) of node id as text: "12", or
 * "B" / "B * 4" when it follows the batch.  Returns 0 for a constant, 1
 * for a multiple of the batch, -1 when it follows the batch otherwise
 * (buf then holds its value at EXPORT_BATCH).
 */
int export_size(const export_nets_t *n, int id, int i, char *buf,
                size_t len);

/* The block of d that plays role. */
const graph_block_t *export_block_of(const graph_design_t *d,
                                     graph_role_t role);

/* The shortest decimal spelling of v that reads back as the same float. */
char *export_float(float v, char *buf, size_t len);

#endif
