/*
 * graph_block.c - the block and design objects: error lists, names,
 * cloning and freeing, and the skeletons' default blocks.
 *
 * The default stem and downsample blocks are kept as text and parsed on
 * demand, so the defaults are spelled exactly as a user would write them
 * and go through the same checks (docs/skeletons.md lists them).
 */
#include "graph_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* --------------------------------------------------------------- errors */

void graph_errors_init(graph_errors_t *e)
{
    memset(e, 0, sizeof *e);
}

void graph_errors_clear(graph_errors_t *e)
{
    e->n = 0;
}

void graph_errors_free(graph_errors_t *e)
{
    free(e->v);
    memset(e, 0, sizeof *e);
}

void graph_errors_add(graph_errors_t *e, graph_rule_t rule,
                      const char *block, int node, int line,
                      const char *fmt, ...)
{
    va_list ap;

    if (!e)
        return;
    if (e->n == e->cap) {
        int cap = e->cap ? 2 * e->cap : 8;
        graph_error_t *v = realloc(e->v, (size_t)cap * sizeof *v);
        if (!v)
            return;
        e->v = v;
        e->cap = cap;
    }
    graph_error_t *x = &e->v[e->n++];
    x->rule = rule;
    snprintf(x->block, sizeof x->block, "%s", block ? block : "");
    x->node = node;
    x->line = line;
    va_start(ap, fmt);
    vsnprintf(x->message, sizeof x->message, fmt, ap);
    va_end(ap);
}

const char *graph_rule_name(graph_rule_t rule)
{
    static const char *names[GRAPH_RULE_COUNT] = {
        [GRAPH_RULE_SYNTAX] = "syntax",   [GRAPH_RULE_EDGE] = "edge",
        [GRAPH_RULE_UNUSED] = "unused",   [GRAPH_RULE_DUPLICATE] = "duplicate",
        [GRAPH_RULE_OUTPUT] = "output",   [GRAPH_RULE_INPUT] = "input",
        [GRAPH_RULE_CYCLE] = "cycle",     [GRAPH_RULE_OP] = "op",
        [GRAPH_RULE_ARITY] = "arity",     [GRAPH_RULE_ARG] = "arg",
        [GRAPH_RULE_SHAPE] = "shape",     [GRAPH_RULE_GROUPS] = "groups",
        [GRAPH_RULE_ROLE] = "role",       [GRAPH_RULE_DESIGN] = "design",
        [GRAPH_RULE_BUDGET] = "budget",
    };

    if ((int)rule < 0 || rule >= GRAPH_RULE_COUNT)
        return "unknown";
    return names[rule];
}

const char *graph_role_name(graph_role_t role)
{
    switch (role) {
    case GRAPH_ROLE_STEM:
        return "stem";
    case GRAPH_ROLE_DOWNSAMPLE:
        return "downsample";
    default:
        return "cell";
    }
}

void graph_node_prefix(const graph_block_t *b, const graph_node_t *n,
                       char *buf, size_t len)
{
    const char *op = n->op < GRAPH_OP_COUNT ? graph_op_name(n->op)
                                            : n->op_text;

    snprintf(buf, len, "%s node %d (%s)", graph_role_name(b->role),
             n->index, op ? op : "?");
}

/* ---------------------------------------------------------------- nodes */

int graph_block_find(const graph_block_t *b, int index)
{
    for (int i = 0; i < b->n_nodes; i++)
        if (b->nodes[i].index == index)
            return i;
    return -1;
}

const graph_arg_t *graph_node_arg(const graph_node_t *n, int slot)
{
    const graph_op_info_t *info;

    if (n->op >= GRAPH_OP_COUNT)
        return NULL;
    info = graph_op_info(n->op);
    if (slot < 0 || slot >= info->n_args)
        return NULL;
    for (int i = 0; i < n->n_args; i++)
        if (n->args[i].key && strcmp(n->args[i].key,
                                     info->args[slot].name) == 0)
            return &n->args[i];
    return NULL;
}

static void s_arg_free(graph_arg_t *a)
{
    free(a->key);
    for (int i = 0; i < a->n_items; i++)
        graph_expr_destroy(&a->items[i]);
    free(a->items);
    memset(a, 0, sizeof *a);
}

static void s_node_free(graph_node_t *n)
{
    free(n->op_text);
    for (int i = 0; i < n->n_args; i++)
        s_arg_free(&n->args[i]);
    free(n->args);
    free(n->inputs);
}

void graph_block_destroy(graph_block_t **b)
{
    if (!b || !*b)
        return;
    for (int i = 0; i < (*b)->n_nodes; i++)
        s_node_free(&(*b)->nodes[i]);
    free((*b)->nodes);
    free((*b)->edges);
    free((*b)->name);
    free(*b);
    *b = NULL;
}

void graph_design_destroy(graph_design_t **d)
{
    if (!d || !*d)
        return;
    graph_block_destroy(&(*d)->cell);
    graph_block_destroy(&(*d)->stem);
    graph_block_destroy(&(*d)->downsample);
    free(*d);
    *d = NULL;
}

static int s_arg_copy(graph_arg_t *dst, const graph_arg_t *src)
{
    memset(dst, 0, sizeof *dst);
    dst->tuple = src->tuple;
    if (src->key && !(dst->key = strdup(src->key)))
        return -1;
    if (src->n_items == 0)
        return 0;
    dst->items = calloc((size_t)src->n_items, sizeof *dst->items);
    if (!dst->items)
        return -1;
    for (int i = 0; i < src->n_items; i++) {
        dst->items[i] = graph_expr_clone(src->items[i]);
        if (!dst->items[i])
            return -1;
        dst->n_items = i + 1;
    }
    return 0;
}

static int s_node_copy(graph_node_t *dst, const graph_node_t *src)
{
    *dst = *src;
    dst->op_text = NULL;
    dst->args = NULL;
    dst->n_args = 0;
    dst->inputs = NULL;
    if (src->op_text && !(dst->op_text = strdup(src->op_text)))
        return -1;
    if (src->n_args) {
        dst->args = calloc((size_t)src->n_args, sizeof *dst->args);
        if (!dst->args)
            return -1;
        for (int i = 0; i < src->n_args; i++) {
            dst->n_args = i + 1;
            if (s_arg_copy(&dst->args[i], &src->args[i]) < 0)
                return -1;
        }
    }
    if (src->n_inputs) {
        size_t size = (size_t)src->n_inputs * sizeof(int);
        if (!(dst->inputs = malloc(size)))
            return -1;
        memcpy(dst->inputs, src->inputs, size);
    }
    return 0;
}

graph_block_t *graph_block_clone(const graph_block_t *b)
{
    graph_block_t *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    c->role = b->role;
    c->line = b->line;
    if (b->name && !(c->name = strdup(b->name)))
        goto fail;
    if (b->n_nodes) {
        c->nodes = calloc((size_t)b->n_nodes, sizeof *c->nodes);
        if (!c->nodes)
            goto fail;
        for (int i = 0; i < b->n_nodes; i++) {
            c->n_nodes = i + 1;
            if (s_node_copy(&c->nodes[i], &b->nodes[i]) < 0)
                goto fail;
        }
    }
    if (b->n_edges) {
        c->edges = malloc((size_t)b->n_edges * sizeof *c->edges);
        if (!c->edges)
            goto fail;
        memcpy(c->edges, b->edges, (size_t)b->n_edges * sizeof *c->edges);
        c->n_edges = b->n_edges;
    }
    return c;

fail:
    graph_block_destroy(&c);
    return NULL;
}

graph_design_t *graph_design_clone(const graph_design_t *d)
{
    graph_design_t *c = calloc(1, sizeof *c);

    if (!c)
        return NULL;
    *c = *d;
    c->cell = graph_block_clone(d->cell);
    c->stem = graph_block_clone(d->stem);
    c->downsample = graph_block_clone(d->downsample);
    if (!c->cell || !c->stem || !c->downsample)
        graph_design_destroy(&c);
    return c;
}

/* ------------------------------------------------------------- defaults */

static const char s_nb201_stem[] =
    "##Default_stem##\n"
    "0:input\n1:output\n"
    "2:Conv2d(out_channels=dim,kernel_size=3,stride=1)\n3:BN\n4:ReLU\n"
    "0->2\n2->3\n3->4\n4->1\n";

static const char s_nb201_downsample[] =
    "##Default_downsample##\n"
    "0:input\n1:output\n"
    "2:Conv2d(out_channels=dim,kernel_size=3,stride=2)\n3:BN\n4:ReLU\n"
    "5:Conv2d(out_channels=dim,kernel_size=3,stride=1)\n6:BN\n7:ReLU\n"
    "8:AvgPool2d(kernel_size=2,stride=2)\n"
    "9:Conv2d(out_channels=dim,kernel_size=1,stride=1)\n10:Add\n"
    "0->2\n2->3\n3->4\n4->5\n5->6\n0->8\n8->9\n9->10\n6->10\n10->7\n"
    "7->1\n";

/* DARTS-style stem: one 3x3 convolution and batch norm. */
static const char s_darts_stem[] =
    "##Default_stem##\n"
    "0:input\n1:output\n"
    "2:Conv2d(out_channels=dim,kernel_size=3,stride=1)\n3:BN\n"
    "0->2\n2->3\n3->1\n";

/*
 * DARTS-style reduction cell: max pooling of both inputs and a strided
 * separable convolution of the previous cell's output, summed in two
 * pairs, concatenated and mixed back to dim channels.
 */
static const char s_darts_downsample[] =
    "##Default_downsample##\n"
    "0:input1\n1:input2\n2:output\n"
    "3:MaxPool2d(kernel_size=3,stride=2)\n"
    "4:MaxPool2d(kernel_size=3,stride=2)\n"
    "5:ReLU\n"
    "6:Conv2d(out_channels=dim,kernel_size=3,stride=2,groups=dim)\n"
    "7:Conv2d(out_channels=dim,kernel_size=1,stride=1)\n"
    "8:BN\n9:DropPath\n10:Add\n"
    "11:AvgPool2d(kernel_size=3,stride=2)\n12:Add\n"
    "13:concat(dim=1)\n14:ReLU\n"
    "15:Conv2d(out_channels=dim,kernel_size=1,stride=1)\n16:BN\n"
    "0->3\n1->4\n1->5\n5->6\n6->7\n7->8\n8->9\n3->10\n9->10\n"
    "0->11\n4->12\n11->12\n10->13\n12->13\n13->14\n14->15\n15->16\n"
    "16->2\n";

static graph_block_t *s_default(const char *text, graph_role_t role)
{
    graph_block_t *b = NULL;
    graph_errors_t errs;

    graph_errors_init(&errs);
    if (graph_block_parse(text, strlen(text), "<default>", &b, &errs) == 0)
        b->role = role;
    graph_errors_free(&errs);
    return b;
}

graph_block_t *graph_default_stem(bool two_input)
{
    return s_default(two_input ? s_darts_stem : s_nb201_stem,
                     GRAPH_ROLE_STEM);
}

graph_block_t *graph_default_downsample(bool two_input)
{
    return s_default(two_input ? s_darts_downsample : s_nb201_downsample,
                     GRAPH_ROLE_DOWNSAMPLE);
}
