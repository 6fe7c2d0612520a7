/*
 * graph_impl.h - private to the graph library (common/graph_*.c and
 * common/net_*.c): the expression representation, error helpers, and
 * the per-node resolved facts that shape inference hands to assembly.
 *
 * An expression is stored as a postfix (RPN) token array in one
 * allocation: evaluation is a short loop over a small stack, cloning is
 * one memcpy, and printing rebuilds infix text with the fewest
 * parentheses that keep the tree.  Numbers are exact rationals, so a
 * decimal such as 0.3 is kept as 3/10.
 */
#ifndef NADER_GRAPH_IMPL_H
#define NADER_GRAPH_IMPL_H

#include <stdarg.h>

#include "graph.h"

/* Limits that keep hostile input cheap. */
#define GRAPH_EXPR_MAX_TOKENS 128
#define GRAPH_MAX_NODES 4096
#define GRAPH_MAX_INDEX 999999
#define GRAPH_MAX_DIM ((int64_t)1 << 31)

typedef enum graph_var {
    GRAPH_VAR_B,
    GRAPH_VAR_C,
    GRAPH_VAR_DIM,
    GRAPH_VAR_H,
    GRAPH_VAR_W,
    GRAPH_VAR_COUNT
} graph_var_t;

typedef enum expr_kind {
    EXPR_NUM,
    EXPR_VAR,
    EXPR_ADD,
    EXPR_SUB,
    EXPR_MUL,
    EXPR_DIV,
    EXPR_NEG
} expr_kind_t;

typedef struct expr_tok {
    int kind;          /* expr_kind_t */
    int var;           /* graph_var_t for EXPR_VAR */
    int64_t num, den;  /* EXPR_NUM: num/den, den > 0, reduced */
} expr_tok_t;

struct graph_expr {
    int n;
    expr_tok_t t[];
};

/* Bit i set when the expression mentions variable i. */
unsigned graph_expr_vars(const graph_expr_t *e);
/* True when e is exactly the variable v (B, C, ...). */
bool graph_expr_is_var(const graph_expr_t *e, graph_var_t v);
/* True when e is the plain integer k. */
bool graph_expr_is_int(const graph_expr_t *e, int64_t k);
/* Format e into buf (canonical spelling); fold: constant subtrees are
 * replaced by their value.  Returns the length written (cut at len). */
size_t graph_expr_format(const graph_expr_t *e, bool fold, char *buf,
                         size_t len);
/* Format a rational as "4", "4.5" or "7/3". */
void graph_rational_format(int64_t num, int64_t den, char *buf, size_t len);
const char *graph_var_name(graph_var_t v);

/* Append an error; the message is formatted from fmt. */
void graph_errors_add(graph_errors_t *e, graph_rule_t rule,
                      const char *block, int node, int line,
                      const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* The "<role> node <idx> (<Op>): " prefix of node errors, into buf. */
void graph_node_prefix(const graph_block_t *b, const graph_node_t *n,
                       char *buf, size_t len);

/* Position in b->nodes of the node with this index, or -1. */
int graph_block_find(const graph_block_t *b, int index);

/* The argument of a linked node for table slot `slot`, or NULL when the
 * argument was not given (a default applies). */
const graph_arg_t *graph_node_arg(const graph_node_t *n, int slot);

/*
 * Everything shape inference learns about one node at one set of
 * bindings, including the resolved arguments assembly needs.
 */
typedef struct graph_resolved {
    bool ok;                 /* inferred without error */
    graph_shape_t shape;
    int64_t params, macs;    /* macs for the whole batch */
    int64_t in_ch, out_ch;
    int64_t kernel, stride, dilation, groups, pad;
    bool crop;
    int64_t out_h, out_w;    /* adaptive pools */
    int n_dims;
    int dims[GRAPH_MAX_DIMS];
    int n_sizes;
    int64_t sizes[GRAPH_MAX_DIMS];
    float prob;
} graph_resolved_t;

/*
 * graph_block_infer with the resolved facts of every node (res, indexed
 * like b->nodes, may be NULL) and a quiet mode: errs may be NULL, and
 * when stop_first is true the pass ends at the first failing node (the
 * width search only needs to know that a width is invalid).  A stem must
 * return (B, dim, ceil(H/stem_scale), ceil(W/stem_scale)) of its input;
 * stem_scale is the skeleton's (1: the input resolution) and is ignored
 * for other roles.
 */
int graph_block_infer_ex(const graph_block_t *b,
                         const graph_bindings_t *bind,
                         const graph_shape_t *in_shape, int stem_scale,
                         graph_resolved_t *res, graph_shape_t *out_shape,
                         graph_errors_t *errs, bool stop_first);

/* "Same" padding for one spatial dimension (docs/graph-format.md).
 * Returns the output size, or 0 when the window does not fit. */
int64_t graph_same_out(int64_t in, int64_t k, int64_t s, int64_t d,
                       int64_t *pad, bool *crop);

/* The canonical text of one argument list, all defaults included. */
size_t graph_node_args_format(const graph_node_t *n, bool canonical,
                              char *buf, size_t len);

#endif
