/*
 * graph_print.c - blocks and designs back to text, in the spellings of
 * spec/graph-format.md: operation names as in the table, keyword
 * arguments in the table's order, expressions without spaces and with
 * '*' for 'x'.  Node indices and edge order are kept as they are, so a
 * printed block reads back into the same graph.
 */
#include "graph_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growing string; on allocation failure `failed` is set and the
 * result is NULL. */
typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool failed;
} sbuf_t;

static void s_put(sbuf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_put(sbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    int k;

    if (b->failed)
        return;
    for (;;) {
        va_start(ap, fmt);
        k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0,
                      fmt, ap);
        va_end(ap);
        if (k < 0) {
            b->failed = true;
            return;
        }
        if (b->s && b->n + (size_t)k < b->cap) {
            b->n += (size_t)k;
            return;
        }
        size_t cap = b->cap ? b->cap : 256;
        while (cap <= b->n + (size_t)k)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
}

static char *s_done(sbuf_t *b)
{
    if (b->failed) {
        free(b->s);
        return NULL;
    }
    if (!b->s)
        return strdup("");
    return b->s;
}

/* One argument's value: "C/4" or "(2,3)". */
static size_t s_value(const graph_arg_t *a, bool fold, char *buf,
                      size_t len)
{
    size_t n = 0;

    if (!a->tuple && a->n_items == 1)
        return graph_expr_format(a->items[0], fold, buf, len);
    n += (size_t)snprintf(buf, len, "(");
    for (int i = 0; i < a->n_items && n < len; i++) {
        if (i)
            n += (size_t)snprintf(buf + n, len - n, ",");
        if (n < len)
            n += graph_expr_format(a->items[i], fold, buf + n, len - n);
    }
    if (a->n_items == 1 && n < len)
        n += (size_t)snprintf(buf + n, len - n, ",");
    if (n < len)
        n += (size_t)snprintf(buf + n, len - n, ")");
    return n < len ? n : len - 1;
}

size_t graph_node_args_format(const graph_node_t *n, bool canonical,
                              char *buf, size_t len)
{
    size_t k = 0;
    bool known = n->op < GRAPH_OP_COUNT;
    const graph_op_info_t *info = known ? graph_op_info(n->op) : NULL;

    buf[0] = '\0';
    if (canonical && known && !info->variadic) {
        for (int s = 0; s < info->n_args && k < len; s++) {
            const graph_arg_t *a = graph_node_arg(n, s);
            k += (size_t)snprintf(buf + k, len - k, "%s%s=", s ? "," : "",
                                  info->args[s].name);
            if (k >= len)
                break;
            if (a)
                k += s_value(a, true, buf + k, len - k);
            else
                k += (size_t)snprintf(buf + k, len - k, "%s",
                                      info->args[s].dflt ? info->args[s].dflt
                                                         : "?");
        }
        return k < len ? k : len - 1;
    }
    for (int i = 0; i < n->n_args && k < len; i++) {
        const graph_arg_t *a = &n->args[i];
        if (i)
            k += (size_t)snprintf(buf + k, len - k, ",");
        if (a->key && k < len)
            k += (size_t)snprintf(buf + k, len - k, "%s=", a->key);
        if (k < len)
            k += s_value(a, canonical, buf + k, len - k);
    }
    return k < len ? k : len - 1;
}

char *graph_node_print(const graph_node_t *n)
{
    char args[1024];
    sbuf_t out = {0};
    const char *op = n->op < GRAPH_OP_COUNT ? graph_op_name(n->op)
                                            : n->op_text;

    graph_node_args_format(n, false, args, sizeof args);
    if (n->n_args)
        s_put(&out, "%s(%s)", op ? op : "?", args);
    else
        s_put(&out, "%s", op ? op : "?");
    return s_done(&out);
}

static void s_block(sbuf_t *out, const graph_block_t *b, const char *name)
{
    char args[1024];

    s_put(out, "##%s##\n", name);
    for (int i = 0; i < b->n_nodes; i++) {
        const graph_node_t *n = &b->nodes[i];
        const char *op = n->op < GRAPH_OP_COUNT ? graph_op_name(n->op)
                                                : n->op_text;
        graph_node_args_format(n, false, args, sizeof args);
        if (n->n_args)
            s_put(out, "%d:%s(%s)\n", n->index, op, args);
        else
            s_put(out, "%d:%s\n", n->index, op);
    }
    for (int i = 0; i < b->n_edges; i++)
        s_put(out, "%d->%d\n", b->edges[i].from, b->edges[i].to);
}

char *graph_block_print(const graph_block_t *b)
{
    sbuf_t out = {0};

    s_block(&out, b, b->name ? b->name : graph_role_name(b->role));
    return s_done(&out);
}

char *graph_design_print(const graph_design_t *d)
{
    sbuf_t out = {0};
    const char *base = d->cell->name ? d->cell->name : "Design";
    char name[512];

    s_block(&out, d->cell, base);
    snprintf(name, sizeof name, "%s_stem", base);
    s_block(&out, d->stem, name);
    snprintf(name, sizeof name, "%s_downsample", base);
    s_block(&out, d->downsample, name);
    return s_done(&out);
}
