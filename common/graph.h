/*
 * graph.h - designs in the block format: parse, print, check, measure,
 * and identify them.
 *
 * A design is three blocks (cell, stem, downsample), each a small DAG of
 * operations from graph_ops.h whose numeric arguments are expressions
 * over the variables B, C, dim, H and W.  This module is the one place
 * that knows the text format (spec/graph-format.md); everything else in
 * nader passes designs around as parsed graph_design_t values or as the
 * canonical text printed here.
 *
 * Workload: blocks of tens of nodes, parsed and checked thousands of
 * times per search (every LLM answer, every width tried), so parsing,
 * checking and shape inference allocate little and never log.  Errors
 * are collected into a graph_errors_t, one line each, written to be
 * shown to a language model as feedback.
 *
 * Ownership: every *_new/parse function returns an object owned by the
 * caller, freed with the matching *_destroy(&p), which sets p to NULL.
 * Strings returned by the *_print and *_canonical functions are
 * malloc'd; free() them.
 */
#ifndef NADER_GRAPH_H
#define NADER_GRAPH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "graph_ops.h"

/* ---------------------------------------------------------------- errors */

/* Which rule of spec/graph-format.md a failure breaks. */
typedef enum graph_rule {
    GRAPH_RULE_SYNTAX,    /* a line that is not a header, node or edge */
    GRAPH_RULE_EDGE,      /* rule 1: edge end not a defined node */
    GRAPH_RULE_UNUSED,    /* rule 1: a defined node in no edge */
    GRAPH_RULE_DUPLICATE, /* two definitions of one node index */
    GRAPH_RULE_OUTPUT,    /* rule 2: output count or its in-degree */
    GRAPH_RULE_INPUT,     /* rule 2: missing input, or edge into input */
    GRAPH_RULE_CYCLE,     /* rule 3 */
    GRAPH_RULE_OP,        /* rule 4: unknown operation */
    GRAPH_RULE_ARITY,     /* wrong number of inputs for the operation */
    GRAPH_RULE_ARG,       /* rule 4: missing, unknown or bad argument */
    GRAPH_RULE_SHAPE,     /* rule 5: shapes do not fit */
    GRAPH_RULE_GROUPS,    /* rule 5: groups does not divide channels */
    GRAPH_RULE_ROLE,      /* rule 6: block output is not what role needs */
    GRAPH_RULE_DESIGN,    /* blocks missing or ambiguous in a file */
    GRAPH_RULE_BUDGET,    /* no width meets the budget and MAC cap */
    GRAPH_RULE_COUNT
} graph_rule_t;

typedef struct graph_error {
    graph_rule_t rule;
    char block[64];     /* "cell", "stem", "downsample" or block name */
    int node;           /* node index as written, -1 for none */
    int line;           /* line in the source text, 0 if unknown */
    char message[320];  /* the whole line, e.g. "cell node 11 (Add):
                           shapes (B,32,16,16) and (B,64,16,16) do not
                           broadcast" */
} graph_error_t;

typedef struct graph_errors {
    int n;
    int cap;
    graph_error_t *v;
} graph_errors_t;

void graph_errors_init(graph_errors_t *e);
void graph_errors_clear(graph_errors_t *e);   /* n = 0, keeps memory */
void graph_errors_free(graph_errors_t *e);
/* Short name of a rule ("edge", "cycle", "shape", ...). */
const char *graph_rule_name(graph_rule_t rule);

/* ----------------------------------------------------------- expressions */

/* An arithmetic expression over B, C, dim, H, W: + - * x / ( ). */
typedef struct graph_expr graph_expr_t;

/* Values bound to the variables while evaluating. */
typedef struct graph_bindings {
    int64_t B, C, dim, H, W;
} graph_bindings_t;

/*
 * Evaluate e exactly (as a rational number).  Returns 0 and sets *num and
 * *den (den > 0, reduced) on success, or -1 on division by zero or
 * overflow.
 */
int graph_expr_eval(const graph_expr_t *e, const graph_bindings_t *b,
                    int64_t *num, int64_t *den);

/*
 * Parse one expression from text[0..len).  Returns it (owned by the
 * caller, graph_expr_destroy) or NULL with a short reason in err (such
 * as "unknown name 'Cin' (the variables are B, C, dim, H and W)").
 */
graph_expr_t *graph_expr_parse(const char *text, size_t len, char *err,
                               size_t errlen);
void graph_expr_destroy(graph_expr_t **e);
graph_expr_t *graph_expr_clone(const graph_expr_t *e);
/* The expression in canonical spelling ("C/4", "dim*2"); malloc'd. */
char *graph_expr_print(const graph_expr_t *e);

/* ---------------------------------------------------------------- blocks */

typedef enum graph_role {
    GRAPH_ROLE_CELL,
    GRAPH_ROLE_STEM,
    GRAPH_ROLE_DOWNSAMPLE
} graph_role_t;

const char *graph_role_name(graph_role_t role);

/* One argument as written: key (NULL when positional) and a value that is
 * an expression or a parenthesised tuple of expressions. */
typedef struct graph_arg {
    char *key;
    int n_items;            /* 1 for a scalar */
    bool tuple;             /* written in parentheses */
    graph_expr_t **items;
} graph_arg_t;

typedef struct graph_node {
    int index;              /* as written, unique in the block */
    graph_op_t op;          /* GRAPH_OP_COUNT when unknown */
    char *op_text;          /* the operation name as written */
    int n_args;
    graph_arg_t *args;
    int line;
    /* Filled by graph_block_link(): inputs in edge order (positions in
     * block->nodes, not indices), and the number of consumers. */
    int n_inputs;
    int *inputs;
    int n_users;
} graph_node_t;

typedef struct graph_edge {
    int from, to;           /* node indices as written */
    int line;
} graph_edge_t;

typedef struct graph_block {
    char *name;             /* header name without the #'s */
    graph_role_t role;
    int line;               /* line of the header */
    int n_nodes;
    graph_node_t *nodes;
    int n_edges;
    graph_edge_t *edges;    /* in the order written */
} graph_block_t;

/*
 * A design: the cell plus its stem and downsample blocks.  stem and
 * downsample are never NULL once a design is made: when the file has
 * none, the skeleton's defaults are filled in and *_default is true.
 * two_input is true when the cell uses input1/input2 (DARTS-style).
 */
typedef struct graph_design {
    graph_block_t *cell;
    graph_block_t *stem;
    graph_block_t *downsample;
    bool stem_default;
    bool downsample_default;
    bool two_input;
} graph_design_t;

/*
 * Parse a file of one or more blocks and form a design from it (spec:
 * "Files and blocks").  filename is used in messages only and may be
 * NULL.  Returns 0 and sets *out (owned by the caller) on success; on
 * failure returns -1, leaves *out NULL, and appends every problem found
 * to errs (syntax, undefined nodes, unknown operations, bad arguments,
 * roles), each naming the file line.  Every block is linked
 * (graph_block_link), so structural errors are reported here too; shapes
 * are not checked (see net.h, which checks a design at real widths).
 */
int graph_design_parse(const char *text, size_t len, const char *filename,
                       graph_design_t **out, graph_errors_t *errs);

/* Parse a single block (the first in text), for tools and tests. */
int graph_block_parse(const char *text, size_t len, const char *filename,
                      graph_block_t **out, graph_errors_t *errs);

void graph_design_destroy(graph_design_t **d);
void graph_block_destroy(graph_block_t **b);
graph_block_t *graph_block_clone(const graph_block_t *b);
graph_design_t *graph_design_clone(const graph_design_t *d);

/* The skeleton default stem and downsample blocks (spec), owned by the
 * caller.  two_input selects the DARTS-style defaults. */
graph_block_t *graph_default_stem(bool two_input);
graph_block_t *graph_default_downsample(bool two_input);

/*
 * Print a block or a whole design in the format, with canonical spellings
 * (operation names as in the spec, keyword arguments, no spaces) but the
 * node indices and edge order as they are.  The design prints its three
 * blocks, named NAME, NAME_stem and NAME_downsample after the cell.
 */
char *graph_block_print(const graph_block_t *b);
char *graph_design_print(const graph_design_t *d);
/* One node's operation and arguments, "Conv2d(out_channels=C,
 * kernel_size=3)", without the index; malloc'd. */
char *graph_node_print(const graph_node_t *n);

/* ------------------------------------------------------------- structure */

/*
 * Check rules 1-4 (edges, inputs and output, acyclic, known operations
 * with their required arguments and input counts) and fill each node's
 * inputs and n_users.  Appends one error per problem; returns the number
 * of errors added (0: structurally valid).
 */
int graph_block_link(graph_block_t *b, graph_errors_t *errs);

/* Positions of the nodes in a topological order (inputs first); returns
 * -1 on a cycle.  order must hold b->n_nodes entries. */
int graph_block_topo(const graph_block_t *b, int *order);

/* -------------------------------------------------------- shapes, counts */

#define GRAPH_MAX_DIMS 6

typedef struct graph_shape {
    int ndim;
    int64_t d[GRAPH_MAX_DIMS];
    uint8_t batch_mask;     /* bit i set: d[i] is the batch B (printed so) */
} graph_shape_t;

/* Per-node facts found by graph_block_infer(), for one set of bindings. */
typedef struct graph_node_info {
    graph_shape_t shape;    /* output shape */
    int64_t params;         /* trainable parameters */
    int64_t macs;           /* multiply-accumulates for the whole batch B */
} graph_node_info_t;

/*
 * Infer shapes, parameters and multiply-accumulates of every node of b
 * (which must be linked) at the given bindings; in_shape is the shape of
 * input (and of input1 and input2).  info, when not NULL, holds
 * b->n_nodes entries, indexed like b->nodes.  Checks rules 4 (argument
 * values) to 6 for the role (a stem at the input resolution: a skeleton's
 * stem_scale is applied by net_check); appends one error per failing node
 * (a node whose inputs failed is not reported again).  Returns the number of
 * errors added.  *out_shape, when not NULL, gets the block output shape.
 */
int graph_block_infer(const graph_block_t *b, const graph_bindings_t *bind,
                      const graph_shape_t *in_shape, graph_node_info_t *info,
                      graph_shape_t *out_shape, graph_errors_t *errs);

/* Format a shape as "(B,32,16,16)" into buf; returns buf. */
char *graph_shape_format(const graph_shape_t *s, char *buf, size_t len);

/* -------------------------------------------------------------- identity */

/*
 * The canonical form of a linked block: the same block with nodes
 * renumbered (input(s) first, output next, the rest in a canonical
 * topological order), canonical spellings, and edges sorted; the block
 * name is replaced by role.  Isomorphic blocks (same operations and
 * arguments, same edges, same input order for ordered operations) give
 * the same text; any other difference gives another.
 */
char *graph_block_canonical(const graph_block_t *b);

/*
 * The design's identity: a hash of the canonical forms of its three
 * blocks (defaults included) as 32 lowercase hex digits plus NUL.
 * Returns 0, or -1 when a block is not linked/valid.
 */
int graph_design_hash(const graph_design_t *d, char out[33]);

#endif
