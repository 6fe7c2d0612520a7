/*
 * graph_link.c - rules 1 to 4 of spec/graph-format.md: edges, inputs and
 * output, acyclicity, known operations with their arguments and input
 * counts; and each node's inputs in edge order.
 *
 * Linking also puts arguments into one spelling: positional arguments
 * get their table names, keywords are matched without regard to case,
 * and the list is sorted into the table's order.  Later stages (shape
 * inference, printing, the canonical form) can then look arguments up by
 * name only.  Every problem is reported, not just the first, in the
 * words a language model needs to fix it.
 */
#include "graph_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ------------------------------------------------------------ operations */

static int s_edit_distance(const char *a, const char *b)
{
    int la = (int)strlen(a), lb = (int)strlen(b);
    int row[40];

    if (la >= 39 || lb >= 39)
        return 99;
    for (int j = 0; j <= lb; j++)
        row[j] = j;
    for (int i = 1; i <= la; i++) {
        int diag = row[0];
        row[0] = i;
        for (int j = 1; j <= lb; j++) {
            int up = row[j];
            int cost = tolower((unsigned char)a[i - 1]) !=
                       tolower((unsigned char)b[j - 1]);
            int v = diag + cost;
            if (row[j] + 1 < v)
                v = row[j] + 1;
            if (row[j - 1] + 1 < v)
                v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    return row[lb];
}

/* A hint for an unknown operation name: a close spelling, or what the
 * format offers instead of a common PyTorch module. */
static void s_op_hint(const char *name, char *buf, size_t len)
{
    static const struct {
        const char *name, *hint;
    } known[] = {
        {"BatchNorm2d", "use BN"},
        {"BatchNorm", "use BN"},
        {"LayerNorm", "use LN"},
        {"Identity", "connect the edge straight through instead"},
        {"Dropout", "use DropPath in two-input cells, or leave it out"},
        {"Flatten", "use reshape(B,...)"},
        {"view", "use reshape"},
        {"cat", "use concat(dim=1)"},
        {"SiLU", "use Sigmoid and Mul"},
        {"Swish", "use Sigmoid and Mul"},
        {"Tanh", "use Sigmoid or GELU"},
        {"matmul", "use multiply"},
        {"transpose", "use permute"},
    };
    int best = 99;
    const char *best_name = NULL;

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcasecmp(name, known[i].name) == 0) {
            snprintf(buf, len, "; %s", known[i].hint);
            return;
        }
    for (int i = GRAPH_OP_CONV2D; i < GRAPH_OP_COUNT; i++) {
        int d = s_edit_distance(name, graph_op_name((graph_op_t)i));
        if (d < best) {
            best = d;
            best_name = graph_op_name((graph_op_t)i);
        }
    }
    if (best <= 2)
        snprintf(buf, len, "; did you mean %s?", best_name);
    else
        snprintf(buf, len, "; the operations are Conv2d, Linear, "
                           "AvgPool2d, MaxPool2d, AdaptiveAvgPool2d, "
                           "AdaptiveMaxPool2d, Add, Mul, multiply, "
                           "concat, mean, max, sum, softmax, ReLU, GELU, "
                           "Sigmoid, BN, LN, permute, repeat, reshape, "
                           "DropPath");
}

/* "out_channels, kernel_size, stride=1, ..." for messages. */
static void s_signature(const graph_op_info_t *info, char *buf, size_t len)
{
    size_t n = 0;

    buf[0] = '\0';
    for (int i = 0; i < info->n_args && n < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s%s%s",
                              i ? ", " : "", info->args[i].name,
                              info->args[i].dflt ? "=" : "",
                              info->args[i].dflt ? info->args[i].dflt
                                                 : "");
}

typedef struct linker {
    graph_block_t *b;
    graph_errors_t *errs;
    int added;
} linker_t;

static void s_err(linker_t *lk, graph_rule_t rule, int pos,
                  const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* An error about node b->nodes[pos] (pos < 0: the block as a whole). */
static void s_err(linker_t *lk, graph_rule_t rule, int pos,
                  const char *fmt, ...)
{
    char msg[256], prefix[128];
    va_list ap;
    const graph_node_t *n = pos >= 0 ? &lk->b->nodes[pos] : NULL;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        graph_node_prefix(lk->b, n, prefix, sizeof prefix);
    else
        snprintf(prefix, sizeof prefix, "%s", graph_role_name(lk->b->role));
    graph_errors_add(lk->errs, rule, graph_role_name(lk->b->role),
                     n ? n->index : -1, n ? n->line : lk->b->line, "%s: %s",
                     prefix, msg);
    lk->added++;
}

/* Keyword spelling of a table argument, tolerating case and a few
 * PyTorch names. */
static int s_slot_of(const graph_op_info_t *info, const char *key)
{
    for (int i = 0; i < info->n_args; i++)
        if (strcasecmp(key, info->args[i].name) == 0)
            return i;
    if (info->op == GRAPH_OP_LINEAR && strcasecmp(key, "out_features") == 0)
        return 0;
    return -1;
}

static const char *s_key_hint(const char *key)
{
    if (strcasecmp(key, "padding") == 0)
        return "; padding is always \"same\" in this format";
    if (strcasecmp(key, "bias") == 0)
        return "; every Conv2d and Linear has a bias";
    if (strcasecmp(key, "in_channels") == 0 ||
        strcasecmp(key, "in_features") == 0)
        return "; input channels come from the input's shape";
    return "";
}

static bool s_readable(const graph_arg_t *a)
{
    return a->n_items > 0 || a->tuple;
}

/* Check that the value's form suits its kind (scalar vs tuple). */
static void s_check_form(linker_t *lk, int pos, const graph_op_info_t *info,
                         int slot, const graph_arg_t *a)
{
    const graph_arg_info_t *ai = &info->args[slot];
    char text[96];

    if (!s_readable(a))
        return;
    bool adaptive = info->op == GRAPH_OP_ADAPTIVEAVGPOOL2D ||
                    info->op == GRAPH_OP_ADAPTIVEMAXPOOL2D;
    if (ai->kind == GRAPH_ARG_DIMS) {
        if (a->n_items == 0)
            s_err(lk, GRAPH_RULE_ARG, pos, "%s is an empty tuple", ai->name);
        return;
    }
    if (adaptive && a->tuple && (a->n_items == 1 || a->n_items == 2))
        return;
    if (!a->tuple)
        return;
    text[0] = '\0';
    if (a->n_items > 0)
        graph_expr_format(a->items[0], false, text, sizeof text);
    if (strcmp(ai->name, "kernel_size") == 0 ||
        strcmp(ai->name, "stride") == 0 || strcmp(ai->name, "dilation") == 0)
        s_err(lk, GRAPH_RULE_ARG, pos,
              "%s must be one integer, not a tuple (square windows only; "
              "write %s=%s)", ai->name, ai->name, text);
    else if (adaptive)
        s_err(lk, GRAPH_RULE_ARG, pos,
              "output_size must be an integer or a pair (h,w)");
    else
        s_err(lk, GRAPH_RULE_ARG, pos, "%s must be one value, not a tuple",
              ai->name);
}

/* Put a fixed-argument node's arguments into table order with keys. */
static int s_norm_fixed(linker_t *lk, int pos)
{
    graph_node_t *n = &lk->b->nodes[pos];
    const graph_op_info_t *info = graph_op_info(n->op);
    graph_arg_t slots[GRAPH_OP_MAX_ARGS];
    bool have[GRAPH_OP_MAX_ARGS] = {false};
    bool keyword_seen = false;
    char sig[160];
    int positional = 0, out = 0;

    memset(slots, 0, sizeof slots);
    s_signature(info, sig, sizeof sig);
    for (int i = 0; i < n->n_args; i++) {
        graph_arg_t *a = &n->args[i];
        int slot;
        if (!a->key) {
            if (keyword_seen) {
                s_err(lk, GRAPH_RULE_ARG, pos,
                      "positional argument after a keyword argument");
                continue;
            }
            slot = positional++;
            if (slot >= info->n_args) {
                if (info->n_args == 0)
                    s_err(lk, GRAPH_RULE_ARG, pos, "takes no arguments");
                else
                    s_err(lk, GRAPH_RULE_ARG, pos,
                          "too many arguments (%s takes %s)", info->name,
                          sig);
                continue;
            }
        } else {
            keyword_seen = true;
            slot = s_slot_of(info, a->key);
            if (slot < 0) {
                if (info->n_args == 0)
                    s_err(lk, GRAPH_RULE_ARG, pos,
                          "unknown argument '%s' (%s takes no arguments)",
                          a->key, info->name);
                else
                    s_err(lk, GRAPH_RULE_ARG, pos,
                          "unknown argument '%s' (%s takes %s)%s", a->key,
                          info->name, sig, s_key_hint(a->key));
                continue;
            }
        }
        if (have[slot]) {
            s_err(lk, GRAPH_RULE_ARG, pos, "argument %s given twice",
                  info->args[slot].name);
            continue;
        }
        have[slot] = true;
        s_check_form(lk, pos, info, slot, a);
        slots[slot] = *a;
        memset(a, 0, sizeof *a);
        free(slots[slot].key);
        slots[slot].key = strdup(info->args[slot].name);
        if (!slots[slot].key)
            goto oom;
    }
    for (int s = 0; s < info->n_args; s++)
        if (!have[s] && info->args[s].required)
            s_err(lk, GRAPH_RULE_ARG, pos,
                  "missing required argument %s (%s takes %s)",
                  info->args[s].name, info->name, sig);

    /* Free what was not kept, then store the slots in table order. */
    for (int i = 0; i < n->n_args; i++) {
        free(n->args[i].key);
        for (int j = 0; j < n->args[i].n_items; j++)
            graph_expr_destroy(&n->args[i].items[j]);
        free(n->args[i].items);
        memset(&n->args[i], 0, sizeof n->args[i]);
    }
    for (int s = 0; s < info->n_args; s++)
        if (have[s])
            out++;
    if (out > n->n_args) {
        graph_arg_t *v = realloc(n->args, (size_t)out * sizeof *v);
        if (!v)
            goto oom;
        n->args = v;
    }
    n->n_args = 0;
    for (int s = 0; s < info->n_args; s++)
        if (have[s])
            n->args[n->n_args++] = slots[s];
    return 0;

oom:
    for (int s = 0; s < info->n_args; s++) {
        free(slots[s].key);
        for (int j = 0; j < slots[s].n_items; j++)
            graph_expr_destroy(&slots[s].items[j]);
        free(slots[s].items);
    }
    return -1;
}

/* permute/repeat/reshape: one flat list of positional scalars. */
static int s_norm_variadic(linker_t *lk, int pos)
{
    graph_node_t *n = &lk->b->nodes[pos];
    const graph_op_info_t *info = graph_op_info(n->op);
    int total = 0;
    bool bad = false;

    for (int i = 0; i < n->n_args; i++) {
        graph_arg_t *a = &n->args[i];
        if (a->key && strcasecmp(a->key, "dims") != 0 &&
            strcasecmp(a->key, "shape") != 0 &&
            strcasecmp(a->key, "sizes") != 0) {
            s_err(lk, GRAPH_RULE_ARG, pos,
                  "unknown argument '%s' (%s takes a list of values, e.g. "
                  "%s)", a->key, info->name,
                  n->op == GRAPH_OP_PERMUTE   ? "permute(0,2,3,1)"
                  : n->op == GRAPH_OP_REPEAT ? "repeat(1,1,2,2)"
                                             : "reshape(B,C,H*W)");
            bad = true;
        }
        if (!s_readable(a))
            bad = true;
        if (a->tuple && n->n_args > 1) {
            s_err(lk, GRAPH_RULE_ARG, pos,
                  "write the values of %s as one flat list, without "
                  "nested parentheses", info->name);
            bad = true;
        }
        total += a->n_items;
    }
    if (bad)
        return 0;
    if (total == 0) {
        s_err(lk, GRAPH_RULE_ARG, pos, "needs its values, e.g. %s",
              n->op == GRAPH_OP_PERMUTE   ? "permute(0,2,3,1)"
              : n->op == GRAPH_OP_REPEAT ? "repeat(1,1,2,2)"
                                         : "reshape(B,C,H*W)");
        return 0;
    }
    if (total > GRAPH_MAX_DIMS) {
        s_err(lk, GRAPH_RULE_ARG, pos, "%d values; at most %d dimensions",
              total, GRAPH_MAX_DIMS);
        return 0;
    }

    graph_arg_t *flat = calloc((size_t)total, sizeof *flat);
    if (!flat)
        return -1;
    int k = 0;
    for (int i = 0; i < n->n_args; i++) {
        graph_arg_t *a = &n->args[i];
        for (int j = 0; j < a->n_items; j++) {
            flat[k].n_items = 1;
            flat[k].items = malloc(sizeof *flat[k].items);
            if (!flat[k].items) {
                for (int m = 0; m < k; m++)
                    free(flat[m].items);
                free(flat);
                return -1;
            }
            flat[k++].items[0] = a->items[j];
        }
        free(a->items);
        free(a->key);
    }
    free(n->args);
    n->args = flat;
    n->n_args = total;
    return 0;
}

static int s_check_op(linker_t *lk, int pos)
{
    graph_node_t *n = &lk->b->nodes[pos];
    char hint[400];

    if (n->op >= GRAPH_OP_COUNT) {
        s_op_hint(n->op_text ? n->op_text : "", hint, sizeof hint);
        s_err(lk, GRAPH_RULE_OP, pos, "unknown operation '%s'%s",
              n->op_text ? n->op_text : "", hint);
        return 0;
    }
    if (graph_op_info(n->op)->variadic)
        return s_norm_variadic(lk, pos);
    return s_norm_fixed(lk, pos);
}

/* ------------------------------------------------------------ structure */

static bool s_is_input(graph_op_t op)
{
    return op == GRAPH_OP_INPUT || op == GRAPH_OP_INPUT1 ||
           op == GRAPH_OP_INPUT2;
}

/* Report one error per cycle: at the node of smallest index in each
 * strongly connected part left over by the topological sort. */
static void s_report_cycles(linker_t *lk, const int *from, const int *to,
                            int n_edges, const bool *sorted)
{
    graph_block_t *b = lk->b;
    int n = b->n_nodes;
    bool *done = calloc((size_t)n, sizeof *done);
    int *prev = malloc((size_t)n * sizeof *prev);
    int *queue = malloc((size_t)n * sizeof *queue);

    if (!done || !prev || !queue)
        goto out;
    for (;;) {
        /* The unsorted node of smallest index not yet reported. */
        int start = -1;
        for (int i = 0; i < n; i++)
            if (!sorted[i] && !done[i] &&
                (start < 0 || b->nodes[i].index < b->nodes[start].index))
                start = i;
        if (start < 0)
            break;

        /* Breadth-first from start back to start: the shortest cycle. */
        for (int i = 0; i < n; i++)
            prev[i] = -1;
        int head = 0, tail = 0, found = -1;
        queue[tail++] = start;
        while (head < tail && found < 0) {
            int u = queue[head++];
            for (int e = 0; e < n_edges && found < 0; e++) {
                if (from[e] != u || to[e] < 0 || sorted[to[e]])
                    continue;
                if (to[e] == start) {
                    found = u;
                } else if (prev[to[e]] < 0 && to[e] != start) {
                    prev[to[e]] = u;
                    queue[tail++] = to[e];
                }
            }
        }
        done[start] = true;
        if (found < 0)
            continue; /* downstream of a cycle, not on one */

        int path[64], len = 0;
        for (int v = found; v != start && v >= 0 && len < 62; v = prev[v])
            path[len++] = v;
        char text[200];
        size_t t = (size_t)snprintf(text, sizeof text, "%d",
                                    b->nodes[start].index);
        for (int i = len - 1; i >= 0 && t < sizeof text; i--) {
            t += (size_t)snprintf(text + t, sizeof text - t, "->%d",
                                  b->nodes[path[i]].index);
            done[path[i]] = true;
        }
        if (t < sizeof text)
            snprintf(text + t, sizeof text - t, "->%d",
                     b->nodes[start].index);
        s_err(lk, GRAPH_RULE_CYCLE, start,
              "on a cycle %s; a block must be acyclic (remove one of these "
              "edges)", text);
    }
out:
    free(done);
    free(prev);
    free(queue);
}

static void s_inputs_and_output(linker_t *lk, const int *indeg,
                                const int *outdeg)
{
    graph_block_t *b = lk->b;
    int n_in = 0, n_in1 = 0, n_in2 = 0, n_out = 0;
    int first_out = -1;

    for (int i = 0; i < b->n_nodes; i++) {
        graph_op_t op = b->nodes[i].op;
        n_in += op == GRAPH_OP_INPUT;
        n_in1 += op == GRAPH_OP_INPUT1;
        n_in2 += op == GRAPH_OP_INPUT2;
        if (op == GRAPH_OP_OUTPUT) {
            if (n_out++ == 0)
                first_out = i;
            else
                s_err(lk, GRAPH_RULE_OUTPUT, i,
                      "a second output (the first is node %d); a block "
                      "has exactly one", b->nodes[first_out].index);
        }
    }
    if (n_out == 0)
        s_err(lk, GRAPH_RULE_OUTPUT, -1, "no output node (add e.g. "
                                         "1:output and an edge into it)");
    if (first_out >= 0 && indeg[first_out] == 0)
        s_err(lk, GRAPH_RULE_OUTPUT, first_out,
              "no incoming edge; the output takes exactly one");
    if (first_out >= 0 && indeg[first_out] > 1)
        s_err(lk, GRAPH_RULE_OUTPUT, first_out,
              "%d incoming edges; the output takes exactly one (join "
              "them first with Add or concat)", indeg[first_out]);
    for (int i = 0; i < b->n_nodes; i++)
        if (b->nodes[i].op == GRAPH_OP_OUTPUT && outdeg[i] > 0)
            s_err(lk, GRAPH_RULE_OUTPUT, i,
                  "an edge leaves the output; the output ends the block");

    bool two = n_in1 || n_in2;
    if (two && n_in) {
        for (int i = 0; i < b->n_nodes; i++)
            if (b->nodes[i].op == GRAPH_OP_INPUT)
                s_err(lk, GRAPH_RULE_INPUT, i,
                      "a block uses either 'input' or 'input1' and "
                      "'input2', not both");
    } else if (two && b->role == GRAPH_ROLE_STEM) {
        for (int i = 0; i < b->n_nodes; i++)
            if (s_is_input(b->nodes[i].op))
                s_err(lk, GRAPH_RULE_INPUT, i,
                      "a stem reads the image through one 'input' node");
    } else if (two) {
        if (n_in1 == 0)
            s_err(lk, GRAPH_RULE_INPUT, -1,
                  "no input1 node (a two-input cell has input1 and "
                  "input2)");
        if (n_in2 == 0)
            s_err(lk, GRAPH_RULE_INPUT, -1,
                  "no input2 node (a two-input cell has input1 and "
                  "input2)");
    } else if (n_in == 0) {
        s_err(lk, GRAPH_RULE_INPUT, -1,
              "no input node (add e.g. 0:input and an edge from it)");
    }
    for (int op = GRAPH_OP_INPUT; op <= GRAPH_OP_INPUT2; op++) {
        int seen = -1;
        for (int i = 0; i < b->n_nodes; i++) {
            if ((int)b->nodes[i].op != op)
                continue;
            if (seen >= 0)
                s_err(lk, GRAPH_RULE_INPUT, i,
                      "a second %s node (the first is node %d)",
                      graph_op_name((graph_op_t)op), b->nodes[seen].index);
            else
                seen = i;
        }
    }
    for (int i = 0; i < b->n_nodes; i++)
        if (s_is_input(b->nodes[i].op) && indeg[i] > 0)
            s_err(lk, GRAPH_RULE_INPUT, i,
                  "an edge leads into an input; nothing may feed it");
}

/* Per-node input counts, unused and dead-end nodes. */
static void s_degrees(linker_t *lk, const int *indeg, const int *outdeg)
{
    graph_block_t *b = lk->b;

    for (int i = 0; i < b->n_nodes; i++) {
        graph_node_t *n = &b->nodes[i];
        if (n->op == GRAPH_OP_OUTPUT)
            continue;
        if (indeg[i] == 0 && outdeg[i] == 0) {
            s_err(lk, GRAPH_RULE_UNUSED, i,
                  "defined but in no edge; connect it or delete it");
            continue;
        }
        if (outdeg[i] == 0)
            s_err(lk, GRAPH_RULE_UNUSED, i,
                  "its output goes nowhere; connect it toward the output "
                  "or delete it");
        if (n->op >= GRAPH_OP_COUNT || s_is_input(n->op))
            continue;
        const graph_op_info_t *info = graph_op_info(n->op);
        if (indeg[i] == 0)
            s_err(lk, GRAPH_RULE_ARITY, i,
                  "has no input; add an edge into it");
        else if (indeg[i] < info->min_inputs)
            s_err(lk, GRAPH_RULE_ARITY, i,
                  "has %d input; %s takes at least %d", indeg[i],
                  info->name, info->min_inputs);
        else if (info->max_inputs >= 0 && indeg[i] > info->max_inputs)
            s_err(lk, GRAPH_RULE_ARITY, i,
                  info->max_inputs == 1
                      ? "has %d inputs; %s takes exactly %d (join them "
                        "first with Add or concat)"
                      : "has %d inputs; %s takes exactly %d",
                  indeg[i], info->name, info->max_inputs);
    }
}

int graph_block_link(graph_block_t *b, graph_errors_t *errs)
{
    linker_t lk = {b, errs, 0};
    int n = b->n_nodes, m = b->n_edges;
    int *from = NULL, *to = NULL, *indeg = NULL, *outdeg = NULL;
    int *order = NULL;
    bool *sorted = NULL;

    for (int i = 0; i < n; i++) {
        free(b->nodes[i].inputs);
        b->nodes[i].inputs = NULL;
        b->nodes[i].n_inputs = 0;
        b->nodes[i].n_users = 0;
    }
    from = malloc((size_t)(m + 1) * sizeof *from);
    to = malloc((size_t)(m + 1) * sizeof *to);
    indeg = calloc((size_t)n + 1, sizeof *indeg);
    outdeg = calloc((size_t)n + 1, sizeof *outdeg);
    order = malloc((size_t)(n + 1) * sizeof *order);
    sorted = calloc((size_t)n + 1, sizeof *sorted);
    if (!from || !to || !indeg || !outdeg || !order || !sorted) {
        s_err(&lk, GRAPH_RULE_SYNTAX, -1, "out of memory while linking");
        goto out;
    }

    for (int i = 0; i < n; i++)
        if (s_check_op(&lk, i) < 0) {
            s_err(&lk, GRAPH_RULE_SYNTAX, -1, "out of memory while linking");
            goto out;
        }

    /* Resolve edge ends; count degrees. */
    for (int e = 0; e < m; e++) {
        const graph_edge_t *ed = &b->edges[e];
        from[e] = graph_block_find(b, ed->from);
        to[e] = graph_block_find(b, ed->to);
        if (from[e] < 0 || to[e] < 0) {
            int bad = from[e] < 0 ? ed->from : ed->to;
            graph_errors_add(errs, GRAPH_RULE_EDGE, graph_role_name(b->role),
                             bad, ed->line,
                             "%s node %d: edge %d->%d (line %d) uses node "
                             "%d, which is not defined",
                             graph_role_name(b->role), bad, ed->from, ed->to,
                             ed->line, bad);
            lk.added++;
            from[e] = to[e] = -1;
            continue;
        }
        if (from[e] == to[e]) {
            s_err(&lk, GRAPH_RULE_CYCLE, from[e],
                  "edge %d->%d joins the node to itself; a block must be "
                  "acyclic", ed->from, ed->to);
            from[e] = to[e] = -1;
            continue;
        }
        outdeg[from[e]]++;
        indeg[to[e]]++;
    }
    s_inputs_and_output(&lk, indeg, outdeg);
    s_degrees(&lk, indeg, outdeg);

    /* Inputs in edge order. */
    for (int i = 0; i < n; i++) {
        if (indeg[i] == 0)
            continue;
        b->nodes[i].inputs = malloc((size_t)indeg[i] * sizeof(int));
        if (!b->nodes[i].inputs) {
            s_err(&lk, GRAPH_RULE_SYNTAX, -1, "out of memory while linking");
            goto out;
        }
    }
    for (int e = 0; e < m; e++) {
        if (from[e] < 0)
            continue;
        graph_node_t *t = &b->nodes[to[e]];
        t->inputs[t->n_inputs++] = from[e];
        b->nodes[from[e]].n_users++;
    }

    if (graph_block_topo(b, order) < 0) {
        int k = 0;
        /* Mark what the sort reached, then report what it did not. */
        int *deg = indeg;
        int head = 0;
        for (int i = 0; i < n; i++)
            if (deg[i] == 0)
                order[k++] = i;
        while (head < k) {
            int u = order[head++];
            sorted[u] = true;
            for (int e = 0; e < m; e++)
                if (from[e] == u && --deg[to[e]] == 0)
                    order[k++] = to[e];
        }
        s_report_cycles(&lk, from, to, m, sorted);
    }

out:
    free(from);
    free(to);
    free(indeg);
    free(outdeg);
    free(order);
    free(sorted);
    return lk.added;
}

int graph_block_topo(const graph_block_t *b, int *order)
{
    enum { SMALL = 128 };
    int n = b->n_nodes, head = 0, k = 0, total = 0;
    int s_deg[SMALL], s_off[SMALL + 1], s_users[4 * SMALL];
    int *deg = s_deg, *off = s_off, *users = s_users;
    int rc = -1;

    for (int v = 0; v < n; v++)
        total += b->nodes[v].n_inputs;
    if (n > SMALL || total > 4 * SMALL) {
        deg = malloc((size_t)n * sizeof *deg);
        off = malloc((size_t)(n + 1) * sizeof *off);
        users = malloc((size_t)(total + 1) * sizeof *users);
        if (!deg || !off || !users)
            goto out;
    }

    /* Users of each node as one compressed array (CSR). */
    for (int v = 0; v <= n; v++)
        off[v] = 0;
    for (int v = 0; v < n; v++)
        for (int j = 0; j < b->nodes[v].n_inputs; j++)
            off[b->nodes[v].inputs[j] + 1]++;
    for (int v = 0; v < n; v++)
        off[v + 1] += off[v];
    for (int v = 0; v < n; v++)
        deg[v] = off[v];
    for (int v = 0; v < n; v++)
        for (int j = 0; j < b->nodes[v].n_inputs; j++)
            users[deg[b->nodes[v].inputs[j]]++] = v;

    for (int v = 0; v < n; v++) {
        deg[v] = b->nodes[v].n_inputs;
        if (deg[v] == 0)
            order[k++] = v;
    }
    while (head < k) {
        int u = order[head++];
        for (int j = off[u]; j < off[u + 1]; j++)
            if (--deg[users[j]] == 0)
                order[k++] = users[j];
    }
    rc = k == n ? 0 : -1;

out:
    if (deg != s_deg) {
        free(deg);
        free(off);
        free(users);
    }
    return rc;
}
