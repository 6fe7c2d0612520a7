/*
 * export_cli.h - the parts of `nader export` behind cmd_export.c: where a
 * design comes from (export_source.c) and its weights
 * (export_weights.c).
 *
 * Ownership: export_design_load fills an export_design_t whose contents
 * belong to it, freed with export_design_free.
 */
#ifndef NADER_EXPORT_CLI_H
#define NADER_EXPORT_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "net.h"

/* The command line, as given. */
typedef struct export_opts {
    const char *path;         /* block file, or with --best a folder */
    const char *store, *design, *tag;
    const char *format, *output;
    const char *skeleton, *dataset;
    const char *weights, *weights_from;
    bool best;
    uint64_t job;
    int width, cells;         /* 0: not given */
    int stem_scale;           /* 0: not given */
    long long budget;         /* 0: not given */
} export_opts_t;

/* A design ready to export, with the configuration to assemble it by. */
typedef struct export_design {
    graph_design_t *design;
    net_config_t cfg;
    char dataset[32];
    char label[600];          /* where it came from, for headers */
    char note[300];           /* what is known of it ("91.20% valid ...") */
    uint64_t job;             /* the job it was taken from, or 0 */
    char store[4096];         /* that job's store, or "" */
    int64_t trained_params;   /* parameters when it was trained, or -1 */
} export_design_t;

/*
 * Find the design o asks for and its configuration (flags override what
 * the source says).  Returns 0; 1 when the design is invalid or not
 * found (errors in errs or err); 2 for unreadable input (err).
 */
int export_design_load(const export_opts_t *o, export_design_t *x,
                       graph_errors_t *errs, char *err, size_t errlen);
void export_design_free(export_design_t *x);

/*
 * Write x's trained weights to o->weights as float32 safetensors named as
 * the exported module's state_dict(): read from o->weights_from, or from
 * the checkpoint of x's job in its store.  Every parameter and BN buffer
 * of the network must be there with its shape; momenta are dropped; any
 * other tensor is an error (weights of another design).  Returns 0 or -1
 * with err naming the file and tensor.
 */
int export_weights_write(const export_opts_t *o, const export_design_t *x,
                         char *err, size_t errlen);

#endif
