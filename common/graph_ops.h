/*
 * graph_ops.h - the table of operations of the block format.
 *
 * One source of truth for every operation that a block may use: its
 * spelling, its arguments, how many inputs it takes, whether the order of
 * those inputs matters, what the engine must keep for the backward pass,
 * and one sentence describing it.  The parser, the validator, the engine's
 * memory planner, the exporters and the prompts shown to the language
 * model all read this table, so an operation added here (and implemented
 * in the engine) appears everywhere at once.
 *
 * See spec/graph-format.md for the semantics.
 */
#ifndef NADER_GRAPH_OPS_H
#define NADER_GRAPH_OPS_H

#include <stdbool.h>

typedef enum graph_op {
    GRAPH_OP_INPUT,     /* the block input (B,C,H,W) */
    GRAPH_OP_INPUT1,    /* two-input cells: output of the cell before last */
    GRAPH_OP_INPUT2,    /* two-input cells: output of the previous cell */
    GRAPH_OP_OUTPUT,    /* the block output; exactly one incoming edge */
    GRAPH_OP_CONV2D,
    GRAPH_OP_LINEAR,
    GRAPH_OP_AVGPOOL2D,
    GRAPH_OP_MAXPOOL2D,
    GRAPH_OP_ADAPTIVEAVGPOOL2D,
    GRAPH_OP_ADAPTIVEMAXPOOL2D,
    GRAPH_OP_ADD,
    GRAPH_OP_MUL,
    GRAPH_OP_MULTIPLY,
    GRAPH_OP_CONCAT,
    GRAPH_OP_MEAN,
    GRAPH_OP_MAX,
    GRAPH_OP_SUM,
    GRAPH_OP_SOFTMAX,
    GRAPH_OP_RELU,
    GRAPH_OP_GELU,
    GRAPH_OP_SIGMOID,
    GRAPH_OP_BN,
    GRAPH_OP_LN,
    GRAPH_OP_PERMUTE,
    GRAPH_OP_REPEAT,
    GRAPH_OP_RESHAPE,
    GRAPH_OP_DROPPATH,
    GRAPH_OP_COUNT
} graph_op_t;

/* How an argument's value is read. */
typedef enum graph_arg_kind {
    GRAPH_ARG_SIZE,  /* expression that must be a positive integer */
    GRAPH_ARG_INT,   /* integer expression, may be 0 or negative (a dim) */
    GRAPH_ARG_DIMS,  /* one integer or a tuple of integers (dims) */
    GRAPH_ARG_FLOAT  /* a real number, such as a probability */
} graph_arg_kind_t;

typedef struct graph_arg_info {
    const char *name;        /* keyword spelling, e.g. "kernel_size" */
    graph_arg_kind_t kind;
    bool required;
    const char *dflt;        /* default as block text, NULL if required */
} graph_arg_info_t;

#define GRAPH_OP_MAX_ARGS 5

/*
 * Operations whose arguments are a free-length positional list
 * (permute, repeat, reshape) have n_args == 0 and variadic == true.
 */
typedef struct graph_op_info {
    graph_op_t op;
    const char *name;        /* canonical spelling used by the printer */
    int min_inputs;          /* 0 for input nodes */
    int max_inputs;          /* -1: any number */
    bool ordered;            /* input order is significant */
    bool variadic;           /* positional list of expressions */
    bool has_params;         /* owns trainable parameters */
    bool bwd_needs_input;    /* backward reads the forward inputs */
    bool bwd_needs_output;   /* backward reads the forward output */
    int n_args;
    graph_arg_info_t args[GRAPH_OP_MAX_ARGS];
    const char *summary;     /* one sentence, for docs and prompts */
} graph_op_info_t;

/* The entry for op; op must be below GRAPH_OP_COUNT. Never NULL. */
const graph_op_info_t *graph_op_info(graph_op_t op);

/*
 * Look an operation up by name, ignoring case.  Returns the op, or
 * GRAPH_OP_COUNT when the name is unknown.  len may be -1 for a
 * NUL-terminated name.
 */
graph_op_t graph_op_lookup(const char *name, int len);

/* Canonical spelling of op ("Conv2d", "concat", ...). */
const char *graph_op_name(graph_op_t op);

#endif
