/*
 * graph_canon.c - the canonical form of a block and the identity (hash)
 * of a design.
 *
 * Two blocks are the same design element when they are isomorphic as
 * labelled DAGs: node labels are the operation with all its arguments
 * (defaults written out, constant arithmetic folded), the inputs of an
 * ordered operation (concat, multiply) keep their order, and those of
 * Add and Mul are a multiset.  The canonical form is found the way
 * graph-isomorphism tools do it: colour refinement splits the nodes by
 * label and by the colours of their inputs and users until stable; when
 * ties remain (symmetric branches), one tied node is individualised and
 * refinement repeats, over every choice, keeping the smallest text.
 * Automorphisms found on the way (two choices giving the same text)
 * prune choices that are images of one already tried, which keeps
 * blocks of many identical branches cheap.  The text numbers inputs
 * first, the output next, then the rest in topological order by colour.
 */
#define _GNU_SOURCE /* qsort_r, asprintf */
#include "graph_impl.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CANON_MAX_LEAVES 2048
#define CANON_MAX_GENS 64

typedef struct canon {
    const graph_block_t *b;
    int n;
    char **label;
    int *uoff, *user, *uport;   /* users of each node, CSR */
    int *sig, *sigoff, *order;  /* refinement scratch */
    int siglen;
    char *best;                 /* smallest text so far */
    int *best_idx;              /* its canonical index per node */
    int *idx;                   /* scratch: canonical index per node */
    int leaves;
    int n_gens;
    int *gens[CANON_MAX_GENS];  /* automorphisms found */
    bool failed;
} canon_t;

/* ------------------------------------------------------------- labels */

static char *s_label(const graph_node_t *n)
{
    char args[1024], *s;
    const char *op = graph_op_name(n->op);

    graph_node_args_format(n, true, args, sizeof args);
    if (asprintf(&s, args[0] ? "%s(%s)" : "%s", op, args) < 0)
        return NULL;
    return s;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ----------------------------------------------------------- refinement */

static int s_cmp_sig(const void *pa, const void *pb, void *ctx)
{
    const canon_t *c = ctx;
    int a = *(const int *)pa, b = *(const int *)pb;
    int la = c->sigoff[a + 1] - c->sigoff[a];
    int lb = c->sigoff[b + 1] - c->sigoff[b];
    const int *sa = c->sig + c->sigoff[a], *sb = c->sig + c->sigoff[b];

    for (int i = 0; i < la && i < lb; i++)
        if (sa[i] != sb[i])
            return sa[i] < sb[i] ? -1 : 1;
    if (la != lb)
        return la < lb ? -1 : 1;
    return a < b ? -1 : a > b;
}

static int s_cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return x < y ? -1 : x > y;
}

static int s_count_distinct(const int *color, int n, int *scratch)
{
    int k = 0;

    memcpy(scratch, color, (size_t)n * sizeof *color);
    qsort(scratch, (size_t)n, sizeof *scratch, s_cmp_int);
    for (int i = 0; i < n; i++)
        if (i == 0 || scratch[i] != scratch[i - 1])
            k++;
    return k;
}

/* Refine colours (cell start positions) until stable. */
static void s_refine(canon_t *c, int *color)
{
    const graph_block_t *b = c->b;
    int n = c->n;
    int cells = s_count_distinct(color, n, c->order);

    for (;;) {
        int k = 0;
        for (int v = 0; v < n; v++) {
            const graph_node_t *nd = &b->nodes[v];
            bool ordered = graph_op_info(nd->op)->ordered;
            c->sigoff[v] = k;
            c->sig[k++] = color[v];
            c->sig[k++] = nd->n_inputs;
            int start = k;
            for (int j = 0; j < nd->n_inputs; j++)
                c->sig[k++] = color[nd->inputs[j]];
            if (!ordered)
                qsort(c->sig + start, (size_t)nd->n_inputs, sizeof(int),
                      s_cmp_int);
            c->sig[k++] = c->uoff[v + 1] - c->uoff[v];
            start = k;
            for (int j = c->uoff[v]; j < c->uoff[v + 1]; j++)
                c->sig[k++] = color[c->user[j]] * (n + 1) + c->uport[j];
            qsort(c->sig + start, (size_t)(k - start), sizeof(int),
                  s_cmp_int);
        }
        c->sigoff[n] = k;
        for (int v = 0; v < n; v++)
            c->order[v] = v;
        qsort_r(c->order, (size_t)n, sizeof *c->order, s_cmp_sig, c);

        int *fresh = c->idx; /* borrowed scratch */
        int run = 0, nc = 0;
        for (int i = 0; i < n; i++) {
            int v = c->order[i];
            if (i > 0) {
                int u = c->order[i - 1];
                int la = c->sigoff[u + 1] - c->sigoff[u];
                int lb = c->sigoff[v + 1] - c->sigoff[v];
                if (la != lb || memcmp(c->sig + c->sigoff[u],
                                       c->sig + c->sigoff[v],
                                       (size_t)la * sizeof(int)) != 0)
                    run = i;
            }
            fresh[v] = run;
        }
        memcpy(color, fresh, (size_t)n * sizeof *color);
        nc = s_count_distinct(color, n, c->order);
        if (nc == cells)
            return;
        cells = nc;
    }
}

/* ---------------------------------------------------------------- text */

typedef struct sbuf {
    char *s;
    size_t n, cap;
    bool failed;
} sbuf_t;

static void s_put(sbuf_t *b, const char *text)
{
    size_t k = strlen(text);

    if (b->failed)
        return;
    if (b->n + k + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 512;
        while (cap < b->n + k + 1)
            cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->n, text, k + 1);
    b->n += k;
}

/* Canonical indices from a discrete colouring: inputs, output, then a
 * topological order taking the smallest colour first. */
static void s_number(canon_t *c, const int *color, int *idx)
{
    const graph_block_t *b = c->b;
    int n = c->n, next = 0;
    int *deg = c->order;
    static const graph_op_t firsts[] = {GRAPH_OP_INPUT, GRAPH_OP_INPUT1,
                                        GRAPH_OP_INPUT2, GRAPH_OP_OUTPUT};

    for (int v = 0; v < n; v++) {
        idx[v] = -1;
        deg[v] = b->nodes[v].n_inputs;
    }
    for (size_t f = 0; f < sizeof firsts / sizeof firsts[0]; f++)
        for (int v = 0; v < n; v++)
            if (b->nodes[v].op == firsts[f] && idx[v] < 0)
                idx[v] = next++;
    for (int v = 0; v < n; v++)
        if (b->nodes[v].n_inputs == 0)
            for (int j = c->uoff[v]; j < c->uoff[v + 1]; j++)
                deg[c->user[j]]--;
    for (;;) {
        int pick = -1;
        for (int v = 0; v < n; v++)
            if (deg[v] == 0 && idx[v] < 0 &&
                (pick < 0 || color[v] < color[pick]))
                pick = v;
        if (pick < 0)
            break;
        idx[pick] = next++;
        for (int j = c->uoff[pick]; j < c->uoff[pick + 1]; j++)
            deg[c->user[j]]--;
    }
    for (int v = 0; v < n; v++) /* unreachable on a valid block */
        if (idx[v] < 0)
            idx[v] = next++;
}

static char *s_text(canon_t *c, const int *idx)
{
    const graph_block_t *b = c->b;
    int n = c->n;
    int *by = malloc((size_t)n * sizeof *by);
    int *src = NULL;
    sbuf_t out = {0};
    char line[64];

    if (!by)
        return NULL;
    for (int v = 0; v < n; v++)
        by[idx[v]] = v;
    snprintf(line, sizeof line, "##%s##\n", graph_role_name(b->role));
    s_put(&out, line);
    for (int i = 0; i < n; i++) {
        snprintf(line, sizeof line, "%d:", i);
        s_put(&out, line);
        s_put(&out, c->label[by[i]]);
        s_put(&out, "\n");
    }
    /* Edges grouped by target in index order, the output's last; the
     * inputs of an ordered operation in their order. */
    for (int t = 0; t < 2 * n; t++) {
        int i = t % n;
        const graph_node_t *nd = &b->nodes[by[i]];
        if ((nd->op == GRAPH_OP_OUTPUT) != (t >= n))
            continue;
        free(src);
        src = malloc((size_t)(nd->n_inputs + 1) * sizeof *src);
        if (!src) {
            out.failed = true;
            break;
        }
        for (int j = 0; j < nd->n_inputs; j++)
            src[j] = idx[nd->inputs[j]];
        if (!graph_op_info(nd->op)->ordered)
            qsort(src, (size_t)nd->n_inputs, sizeof *src, s_cmp_int);
        for (int j = 0; j < nd->n_inputs; j++) {
            snprintf(line, sizeof line, "%d->%d\n", src[j], i);
            s_put(&out, line);
        }
    }
    free(src);
    free(by);
    if (out.failed) {
        free(out.s);
        return NULL;
    }
    return out.s;
}

/* ---------------------------------------------------------------- search */

static void s_leaf(canon_t *c, const int *color)
{
    int *idx = malloc((size_t)c->n * sizeof *idx);
    char *text;

    c->leaves++;
    if (!idx) {
        c->failed = true;
        return;
    }
    s_number(c, color, idx);
    text = s_text(c, idx);
    if (!text) {
        c->failed = true;
        free(idx);
        return;
    }
    int cmp = c->best ? strcmp(text, c->best) : -1;
    if (cmp < 0) {
        free(c->best);
        c->best = text;
        memcpy(c->best_idx, idx, (size_t)c->n * sizeof *idx);
    } else {
        if (cmp == 0 && c->n_gens < CANON_MAX_GENS) {
            /* Same text: v here and the node at v's index there are
             * images of each other under an automorphism. */
            int *g = malloc((size_t)c->n * sizeof *g);
            int *inv = malloc((size_t)c->n * sizeof *inv);
            if (g && inv) {
                for (int v = 0; v < c->n; v++)
                    inv[c->best_idx[v]] = v;
                for (int v = 0; v < c->n; v++)
                    g[v] = inv[idx[v]];
                c->gens[c->n_gens++] = g;
                g = NULL;
            }
            free(g);
            free(inv);
        }
        free(text);
    }
    free(idx);
}

static int s_find(int *parent, int v)
{
    while (parent[v] != v) {
        parent[v] = parent[parent[v]];
        v = parent[v];
    }
    return v;
}

/* Orbits of the automorphisms found so far that fix every node in
 * fixed[0..nf) (the individualised prefix). */
static void s_orbits(canon_t *c, const int *fixed, int nf, int *parent)
{
    for (int v = 0; v < c->n; v++)
        parent[v] = v;
    for (int g = 0; g < c->n_gens; g++) {
        const int *p = c->gens[g];
        bool fixes = true;
        for (int i = 0; i < nf && fixes; i++)
            fixes = p[fixed[i]] == fixed[i];
        if (!fixes)
            continue;
        for (int v = 0; v < c->n; v++) {
            int a = s_find(parent, v), b = s_find(parent, p[v]);
            if (a != b)
                parent[a] = b;
        }
    }
}

static void s_search(canon_t *c, int *color, int *fixed, int nf)
{
    int n = c->n;

    if (c->failed || c->leaves >= CANON_MAX_LEAVES)
        return;
    s_refine(c, color);

    /* The first cell (smallest colour) with more than one node. */
    int target = -1, size = 0;
    for (int col = 0; col < n && target < 0; col++) {
        size = 0;
        for (int v = 0; v < n; v++)
            size += color[v] == col;
        if (size > 1)
            target = col;
    }
    if (target < 0) {
        s_leaf(c, color);
        return;
    }

    int *child = malloc((size_t)n * sizeof *child);
    int *parent = malloc((size_t)n * sizeof *parent);
    int *tried = malloc((size_t)n * sizeof *tried);
    int n_tried = 0;
    if (!child || !parent || !tried) {
        c->failed = true;
        goto out;
    }
    for (int v = 0; v < n; v++) {
        if (color[v] != target)
            continue;
        s_orbits(c, fixed, nf, parent);
        bool seen = false;
        for (int t = 0; t < n_tried && !seen; t++)
            seen = s_find(parent, tried[t]) == s_find(parent, v);
        if (seen)
            continue;
        tried[n_tried++] = v;
        memcpy(child, color, (size_t)n * sizeof *child);
        for (int u = 0; u < n; u++)
            if (child[u] == target && u != v)
                child[u] = target + 1;
        fixed[nf] = v;
        s_search(c, child, fixed, nf + 1);
        if (c->failed || c->leaves >= CANON_MAX_LEAVES)
            break;
    }
out:
    free(child);
    free(parent);
    free(tried);
}

static void s_canon_free(canon_t *c)
{
    for (int v = 0; c->label && v < c->n; v++)
        free(c->label[v]);
    free(c->label);
    free(c->uoff);
    free(c->user);
    free(c->uport);
    free(c->sig);
    free(c->sigoff);
    free(c->order);
    free(c->best_idx);
    free(c->idx);
    for (int g = 0; g < c->n_gens; g++)
        free(c->gens[g]);
}

/* A block fit for canonisation: known operations, linked, acyclic. */
static bool s_linked(const graph_block_t *b)
{
    int *order;
    bool ok;

    for (int v = 0; v < b->n_nodes; v++) {
        const graph_node_t *nd = &b->nodes[v];
        if (nd->op >= GRAPH_OP_COUNT)
            return false;
        for (int j = 0; j < nd->n_inputs; j++)
            if (nd->inputs[j] < 0 || nd->inputs[j] >= b->n_nodes)
                return false;
    }
    order = malloc((size_t)(b->n_nodes + 1) * sizeof *order);
    if (!order)
        return false;
    ok = graph_block_topo(b, order) == 0;
    free(order);
    return ok;
}

char *graph_block_canonical(const graph_block_t *b)
{
    canon_t c = {.b = b, .n = b->n_nodes};
    int n = b->n_nodes, edges = 0;
    int *color = NULL, *fixed = NULL;
    char **sorted = NULL;
    char *result = NULL;

    if (!s_linked(b))
        return NULL;
    for (int v = 0; v < n; v++)
        edges += b->nodes[v].n_inputs;
    c.label = calloc((size_t)n + 1, sizeof *c.label);
    c.uoff = calloc((size_t)n + 2, sizeof *c.uoff);
    c.user = malloc((size_t)(edges + 1) * sizeof *c.user);
    c.uport = malloc((size_t)(edges + 1) * sizeof *c.uport);
    c.sig = malloc((size_t)(3 * n + 2 * edges + 4) * sizeof *c.sig);
    c.sigoff = malloc((size_t)(n + 2) * sizeof *c.sigoff);
    c.order = malloc((size_t)(n + 1) * sizeof *c.order);
    c.best_idx = malloc((size_t)(n + 1) * sizeof *c.best_idx);
    c.idx = malloc((size_t)(n + 1) * sizeof *c.idx);
    color = malloc((size_t)(n + 1) * sizeof *color);
    fixed = malloc((size_t)(n + 1) * sizeof *fixed);
    sorted = malloc((size_t)(n + 1) * sizeof *sorted);
    if (!c.label || !c.uoff || !c.user || !c.uport || !c.sig ||
        !c.sigoff || !c.order || !c.best_idx || !c.idx || !color ||
        !fixed || !sorted)
        goto out;

    /* Users with the port they feed (ordered users only). */
    for (int v = 0; v < n; v++)
        for (int j = 0; j < b->nodes[v].n_inputs; j++)
            c.uoff[b->nodes[v].inputs[j] + 1]++;
    for (int v = 0; v < n; v++)
        c.uoff[v + 1] += c.uoff[v];
    int *fill = c.order;
    for (int v = 0; v < n; v++)
        fill[v] = c.uoff[v];
    for (int v = 0; v < n; v++) {
        bool ordered = graph_op_info(b->nodes[v].op)->ordered;
        for (int j = 0; j < b->nodes[v].n_inputs; j++) {
            int u = b->nodes[v].inputs[j];
            c.user[fill[u]] = v;
            c.uport[fill[u]++] = ordered ? j + 1 : 0;
        }
    }

    /* Initial colours: the rank of each label among the sorted labels,
     * as cell start positions. */
    for (int v = 0; v < n; v++) {
        c.label[v] = s_label(&b->nodes[v]);
        if (!c.label[v])
            goto out;
        sorted[v] = c.label[v];
    }
    qsort(sorted, (size_t)n, sizeof *sorted, s_cmp_str);
    for (int v = 0; v < n; v++) {
        int lo = 0;
        while (strcmp(sorted[lo], c.label[v]) != 0)
            lo++;
        color[v] = lo;
    }

    s_search(&c, color, fixed, 0);
    if (!c.failed)
        result = c.best;
    else
        free(c.best);

out:
    s_canon_free(&c);
    free(color);
    free(fixed);
    free(sorted);
    return result;
}

int graph_design_hash(const graph_design_t *d, char out[33])
{
    const graph_block_t *blocks[3] = {d->cell, d->stem, d->downsample};
    unsigned char h[16];
    crypto_generichash_state st;
    int rc = -1;

    out[0] = '\0';
    if (sodium_init() < 0)
        return -1;
    if (crypto_generichash_init(&st, NULL, 0, sizeof h) != 0)
        return -1;
    for (int i = 0; i < 3; i++) {
        char *text = blocks[i] ? graph_block_canonical(blocks[i]) : NULL;
        if (!text)
            return -1;
        crypto_generichash_update(&st, (const unsigned char *)text,
                                  strlen(text));
        free(text);
    }
    if (crypto_generichash_final(&st, h, sizeof h) != 0)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
    rc = 0;
    return rc;
}
