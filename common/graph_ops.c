/*
 * graph_ops.c - the operation table (see graph_ops.h).
 *
 * The summaries are written for a reader who knows PyTorch: they go into
 * the language model's prompts verbatim, so each one says exactly what
 * the engine does, including the "same" padding rule of this format.
 */
#include "graph_ops.h"

#include <assert.h>
#include <stddef.h>
#include <strings.h>
#include <string.h>

#define NO_ARGS 0, {{0}}
#define UNARY 1, 1, false, false
#define SIZE_REQ(n) {n, GRAPH_ARG_SIZE, true, NULL}
#define SIZE_OPT(n, d) {n, GRAPH_ARG_SIZE, false, d}

static const graph_op_info_t s_ops[GRAPH_OP_COUNT] = {
    [GRAPH_OP_INPUT] = {GRAPH_OP_INPUT, "input", 0, 0, false, false,
        false, false, false, NO_ARGS,
        "The block's input tensor (B,C,H,W)."},
    [GRAPH_OP_INPUT1] = {GRAPH_OP_INPUT1, "input1", 0, 0, false, false,
        false, false, false, NO_ARGS,
        "Two-input cells: the output of the cell before the previous "
        "one, brought to (B,C,H,W)."},
    [GRAPH_OP_INPUT2] = {GRAPH_OP_INPUT2, "input2", 0, 0, false, false,
        false, false, false, NO_ARGS,
        "Two-input cells: the output of the previous cell, brought to "
        "(B,C,H,W)."},
    [GRAPH_OP_OUTPUT] = {GRAPH_OP_OUTPUT, "output", 1, 1, false, false,
        false, false, false, NO_ARGS,
        "The block's output; exactly one incoming edge."},
    [GRAPH_OP_CONV2D] = {GRAPH_OP_CONV2D, "Conv2d", UNARY, true, true,
        false, 5,
        {SIZE_REQ("out_channels"), SIZE_REQ("kernel_size"),
         SIZE_OPT("stride", "1"), SIZE_OPT("dilation", "1"),
         SIZE_OPT("groups", "1")},
        "2-D convolution with bias over (B,C,H,W); 'same' padding: "
        "p = max(ceil((e-s)/2),0) with e = dilation*(kernel_size-1)+1, "
        "and the last row and column dropped when p == e/2, so the output "
        "is ceil(H/stride) x ceil(W/stride); groups must divide both "
        "channel counts."},
    [GRAPH_OP_LINEAR] = {GRAPH_OP_LINEAR, "Linear", UNARY, true, true,
        false, 1, {SIZE_REQ("out_channels")},
        "Affine map with bias over the last dimension."},
    [GRAPH_OP_AVGPOOL2D] = {GRAPH_OP_AVGPOOL2D, "AvgPool2d", UNARY, false,
        false, false, 2, {SIZE_REQ("kernel_size"), SIZE_REQ("stride")},
        "Average pooling over (H,W) with the 'same' padding of Conv2d; "
        "padded zeros count in the average."},
    [GRAPH_OP_MAXPOOL2D] = {GRAPH_OP_MAXPOOL2D, "MaxPool2d", UNARY, false,
        true, true, 2, {SIZE_REQ("kernel_size"), SIZE_REQ("stride")},
        "Max pooling over (H,W) with the 'same' padding of Conv2d; "
        "padding never wins."},
    [GRAPH_OP_ADAPTIVEAVGPOOL2D] = {GRAPH_OP_ADAPTIVEAVGPOOL2D,
        "AdaptiveAvgPool2d", UNARY, false, false, false, 1,
        {SIZE_REQ("output_size")},
        "Average-pools the last two dimensions to output_size x "
        "output_size."},
    [GRAPH_OP_ADAPTIVEMAXPOOL2D] = {GRAPH_OP_ADAPTIVEMAXPOOL2D,
        "AdaptiveMaxPool2d", UNARY, false, true, false, 1,
        {SIZE_REQ("output_size")},
        "Max-pools the last two dimensions to output_size x output_size."},
    [GRAPH_OP_ADD] = {GRAPH_OP_ADD, "Add", 2, -1, false, false, false,
        false, false, NO_ARGS,
        "Elementwise sum of all inputs with NumPy broadcasting."},
    [GRAPH_OP_MUL] = {GRAPH_OP_MUL, "Mul", 2, -1, false, false, false,
        true, false, NO_ARGS,
        "Elementwise product of all inputs with NumPy broadcasting, e.g. "
        "a (B,C,1,1) gate times (B,C,H,W)."},
    [GRAPH_OP_MULTIPLY] = {GRAPH_OP_MULTIPLY, "multiply", 2, 2, true,
        false, false, true, false, NO_ARGS,
        "Matrix product of its two inputs in edge order (torch.matmul "
        "rules, batch dimensions broadcast)."},
    [GRAPH_OP_CONCAT] = {GRAPH_OP_CONCAT, "concat", 2, -1, true, false,
        false, false, false, 1, {{"dim", GRAPH_ARG_INT, true, NULL}},
        "Concatenates all inputs, in edge order, along dim."},
    [GRAPH_OP_MEAN] = {GRAPH_OP_MEAN, "mean", UNARY, false, false, false,
        1, {{"dim", GRAPH_ARG_DIMS, true, NULL}},
        "Mean over dim (one or a tuple), keeping each reduced dimension "
        "with size 1."},
    [GRAPH_OP_MAX] = {GRAPH_OP_MAX, "max", UNARY, false, true, true,
        1, {{"dim", GRAPH_ARG_DIMS, true, NULL}},
        "Maximum over dim (one or a tuple), keeping each reduced dimension "
        "with size 1."},
    [GRAPH_OP_SUM] = {GRAPH_OP_SUM, "sum", UNARY, false, false, false, 1,
        {{"dim", GRAPH_ARG_DIMS, true, NULL}},
        "Sum over dim (one or a tuple), keeping each reduced dimension with "
        "size 1."},
    [GRAPH_OP_SOFTMAX] = {GRAPH_OP_SOFTMAX, "softmax", UNARY, false, false,
        true, 1, {{"dim", GRAPH_ARG_INT, true, NULL}},
        "Softmax along dim."},
    [GRAPH_OP_RELU] = {GRAPH_OP_RELU, "ReLU", UNARY, false, false, true,
        NO_ARGS, "max(x, 0)."},
    [GRAPH_OP_GELU] = {GRAPH_OP_GELU, "GELU", UNARY, false, true, false,
        NO_ARGS, "x * Phi(x), the exact erf form."},
    [GRAPH_OP_SIGMOID] = {GRAPH_OP_SIGMOID, "Sigmoid", UNARY, false, false,
        true, NO_ARGS, "1 / (1 + exp(-x))."},
    [GRAPH_OP_BN] = {GRAPH_OP_BN, "BN", UNARY, true, true, false, NO_ARGS,
        "Batch normalisation over dim 1 of a 4-D (B,C,H,W) tensor with "
        "affine scale and shift (momentum 0.1, eps 1e-5)."},
    [GRAPH_OP_LN] = {GRAPH_OP_LN, "LN", UNARY, true, true, false, NO_ARGS,
        "Layer normalisation over the last dimension with affine scale "
        "and shift (eps 1e-5); use it channels-last, after "
        "permute(0,2,3,1)."},
    [GRAPH_OP_PERMUTE] = {GRAPH_OP_PERMUTE, "permute", 1, 1, false, true,
        false, false, false, NO_ARGS,
        "Reorders dimensions, e.g. permute(0,2,3,1) makes (B,H,W,C)."},
    [GRAPH_OP_REPEAT] = {GRAPH_OP_REPEAT, "repeat", 1, 1, false, true,
        false, false, false, NO_ARGS,
        "Tiles the tensor, one repeat count per dimension, as "
        "torch.Tensor.repeat."},
    [GRAPH_OP_RESHAPE] = {GRAPH_OP_RESHAPE, "reshape", 1, 1, false, true,
        false, false, false, NO_ARGS,
        "New shape with the same number of elements, e.g. reshape(B,C); "
        "one entry may be -1."},
    [GRAPH_OP_DROPPATH] = {GRAPH_OP_DROPPATH, "DropPath", UNARY, false,
        false, false, 1, {{"prob", GRAPH_ARG_FLOAT, false, "0.2"}},
        "In training, zeroes a whole sample's path with probability prob "
        "and scales the kept ones by 1/(1-prob); identity in evaluation."},
};

const graph_op_info_t *graph_op_info(graph_op_t op)
{
    assert(op >= 0 && op < GRAPH_OP_COUNT);
    return &s_ops[op];
}

const char *graph_op_name(graph_op_t op)
{
    return graph_op_info(op)->name;
}

graph_op_t graph_op_lookup(const char *name, int len)
{
    size_t n = len < 0 ? strlen(name) : (size_t)len;

    for (int i = 0; i < GRAPH_OP_COUNT; i++) {
        const char *s = s_ops[i].name;
        if (strlen(s) == n && strncasecmp(s, name, n) == 0)
            return (graph_op_t)i;
    }
    return GRAPH_OP_COUNT;
}
