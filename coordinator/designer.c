/*
 * designer.c - the offline designer (see designer.h).
 *
 * Edits work on a small editable copy of the cell made from its printed
 * form (one "INDEX:Op(key=value,...)" line per node, one "A->B" per
 * edge, as graph_block_print writes them), and the result is printed
 * back and parsed by the graph library, so the designer never builds
 * graph structures by hand and every rule is checked by the one
 * validator.  Rewiring keeps each consumer's edge in its place in the
 * edge list, because the order of inputs matters for ordered operations.
 */
#include "designer.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

#define ED_MAX 256

typedef struct ed_node {
    int idx;
    char op[32];    /* "Conv2d" */
    char args[192]; /* "out_channels=C,kernel_size=3" or "" */
} ed_node_t;

typedef struct ed_block {
    char name[128];
    int n, ne;
    ed_node_t v[ED_MAX];
    int from[ED_MAX * 2], to[ED_MAX * 2];
    int next; /* a free node index */
} ed_block_t;

static const char *s_names[DESIGNER_EDIT_COUNT] = {
    "insert",   "replace", "skip", "branch", "kernel",
    "dilation", "groups",  "gate", "norm"};

const char *designer_edit_name(designer_edit_t e)
{
    return e >= 0 && e < DESIGNER_EDIT_COUNT ? s_names[e] : "?";
}

void designer_result_free(designer_result_t *r)
{
    graph_design_destroy(&r->design);
    memset(r, 0, sizeof *r);
}

/* Read the printed block.  Returns 0, or -1 when it is too big. */
static int s_ed_read(ed_block_t *b, const char *text)
{
    memset(b, 0, sizeof *b);
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char line[256];
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        int a, c;
        char rest[240];
        if (sscanf(line, "##%127[^#]##", b->name) == 1) {
            /* header */
        } else if (sscanf(line, "%d->%d", &a, &c) == 2) {
            if (b->ne >= ED_MAX * 2)
                return -1;
            b->from[b->ne] = a;
            b->to[b->ne] = c;
            b->ne++;
        } else if (sscanf(line, "%d:%239[^\n]", &a, rest) == 2) {
            if (b->n >= ED_MAX)
                return -1;
            ed_node_t *n = &b->v[b->n++];
            n->idx = a;
            char *paren = strchr(rest, '(');
            size_t oplen = paren ? (size_t)(paren - rest) : strlen(rest);
            snprintf(n->op, sizeof n->op, "%.*s", (int)oplen, rest);
            if (paren) {
                size_t alen = strlen(paren + 1);
                if (alen > 0 && paren[alen] == ')')
                    alen--;
                snprintf(n->args, sizeof n->args, "%.*s", (int)alen, paren + 1);
            }
            if (a >= b->next)
                b->next = a + 1;
        }
        p += len + (e ? 1 : 0);
    }
    return 0;
}

static char *s_ed_print(const ed_block_t *b)
{
    text_buf_t t;

    text_buf_init(&t);
    text_buf_printf(&t, "##%s##\n", b->name);
    for (int i = 0; i < b->n; i++) {
        const ed_node_t *n = &b->v[i];
        if (n->args[0])
            text_buf_printf(&t, "%d:%s(%s)\n", n->idx, n->op, n->args);
        else
            text_buf_printf(&t, "%d:%s\n", n->idx, n->op);
    }
    for (int i = 0; i < b->ne; i++)
        text_buf_printf(&t, "%d->%d\n", b->from[i], b->to[i]);
    return text_buf_take(&t);
}

static ed_node_t *s_node(ed_block_t *b, int idx)
{
    for (int i = 0; i < b->n; i++)
        if (b->v[i].idx == idx)
            return &b->v[i];
    return NULL;
}

static bool s_is(const ed_node_t *n, const char *op)
{
    return strcasecmp(n->op, op) == 0;
}

static bool s_io(const ed_node_t *n)
{
    return s_is(n, "input") || s_is(n, "input1") || s_is(n, "input2") ||
           s_is(n, "output");
}

/* Add a node; returns its index or -1 when full. */
static int s_add(ed_block_t *b, const char *op, const char *args)
{
    if (b->n >= ED_MAX)
        return -1;
    ed_node_t *n = &b->v[b->n++];
    n->idx = b->next++;
    snprintf(n->op, sizeof n->op, "%s", op);
    snprintf(n->args, sizeof n->args, "%s", args ? args : "");
    return n->idx;
}

static int s_edge(ed_block_t *b, int from, int to)
{
    if (b->ne >= ED_MAX * 2)
        return -1;
    b->from[b->ne] = from;
    b->to[b->ne] = to;
    b->ne++;
    return 0;
}

/* Consumers of x now read y instead, in place (x -> y stays out). */
static void s_redirect(ed_block_t *b, int x, int y, int n_edges_before)
{
    for (int i = 0; i < n_edges_before; i++)
        if (b->from[i] == x)
            b->from[i] = y;
}

/* A random node that is not input or output (or -1). */
static int s_pick_inner(agent_env_t *env, ed_block_t *b, const char *op)
{
    int ids[ED_MAX], n = 0;

    for (int i = 0; i < b->n; i++)
        if (!s_io(&b->v[i]) && (!op || s_is(&b->v[i], op)))
            ids[n++] = b->v[i].idx;
    return n ? ids[agent_rand_below(env, n)] : -1;
}

/* The value of key in an argument list ("" when absent). */
static void s_arg_get(const char *args, const char *key, char *out, size_t len)
{
    size_t k = strlen(key);

    out[0] = '\0';
    for (const char *p = args; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n > k && strncmp(p, key, k) == 0 && p[k] == '=') {
            snprintf(out, len, "%.*s", (int)(n - k - 1), p + k + 1);
            return;
        }
        p += n + (e ? 1 : 0);
    }
}

/* Set key=value in an argument list (appended when absent). */
static void s_arg_set(char *args, size_t cap, const char *key,
                      const char *value)
{
    char out[256] = "";
    size_t k = strlen(key);
    bool done = false;

    for (const char *p = args; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char item[160];
        if (n > k && strncmp(p, key, k) == 0 && p[k] == '=') {
            snprintf(item, sizeof item, "%s=%s", key, value);
            done = true;
        } else {
            snprintf(item, sizeof item, "%.*s", (int)n, p);
        }
        if (out[0])
            strncat(out, ",", sizeof out - strlen(out) - 1);
        strncat(out, item, sizeof out - strlen(out) - 1);
        p += n + (e ? 1 : 0);
    }
    if (!done) {
        if (out[0])
            strncat(out, ",", sizeof out - strlen(out) - 1);
        size_t at = strlen(out);
        snprintf(out + at, sizeof out - at, "%s=%s", key, value);
    }
    snprintf(args, cap, "%s", out);
}

/* ------------------------------------------------------------ the edits */

static int s_insert(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    static const char *ops[][2] = {
        {"BN", ""},
        {"ReLU", ""},
        {"GELU", ""},
        {"Conv2d", "out_channels=C,kernel_size=3,stride=1"},
        {"Conv2d", "out_channels=C,kernel_size=1,stride=1"},
        {"Conv2d", "out_channels=C,kernel_size=3,stride=1,groups=C"},
    };
    if (b->ne == 0)
        return -1;
    int e = agent_rand_below(env, b->ne);
    int k = agent_rand_below(env, 6);
    int a = b->from[e], c = b->to[e];
    int x = s_add(b, ops[k][0], ops[k][1]);
    if (x < 0 || s_edge(b, a, x) != 0)
        return -1;
    b->from[e] = x;
    snprintf(what, len, "insert %s%s%s%s between nodes %d and %d", ops[k][0],
             ops[k][1][0] ? "(" : "", ops[k][1], ops[k][1][0] ? ")" : "", a, c);
    return 0;
}

static int s_replace(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    static const char *pairs[][2] = {{"ReLU", "GELU"},
                                     {"GELU", "ReLU"},
                                     {"AvgPool2d", "MaxPool2d"},
                                     {"MaxPool2d", "AvgPool2d"},
                                     {"Sigmoid", "ReLU"}};
    int cand[ED_MAX], which[ED_MAX], n = 0;

    for (int i = 0; i < b->n; i++)
        for (int j = 0; j < 5; j++)
            if (s_is(&b->v[i], pairs[j][0])) {
                cand[n] = i;
                which[n++] = j;
            }
    if (n == 0)
        return -1;
    int k = agent_rand_below(env, n);
    ed_node_t *node = &b->v[cand[k]];
    snprintf(what, len, "replace %s of node %d by %s", node->op, node->idx,
             pairs[which[k]][1]);
    snprintf(node->op, sizeof node->op, "%s", pairs[which[k]][1]);
    return 0;
}

/* Node indices in an order where every edge goes forward. */
static int s_topo(const ed_block_t *b, int *order)
{
    int indeg[ED_MAX] = {0}, n = 0;

    for (int i = 0; i < b->n; i++)
        for (int e = 0; e < b->ne; e++)
            if (b->to[e] == b->v[i].idx)
                indeg[i]++;
    for (int round = 0; round < b->n; round++) {
        int pick = -1;
        for (int i = 0; i < b->n && pick < 0; i++)
            if (indeg[i] == 0)
                pick = i;
        if (pick < 0)
            return -1;
        indeg[pick] = -1;
        order[n++] = b->v[pick].idx;
        for (int e = 0; e < b->ne; e++)
            if (b->from[e] == b->v[pick].idx)
                for (int i = 0; i < b->n; i++)
                    if (b->v[i].idx == b->to[e])
                        indeg[i]--;
    }
    return n;
}

static int s_skip(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    int order[ED_MAX];
    int n = s_topo(b, order);

    if (n < 3)
        return -1;
    /* An earlier source (an input counts) and a later inner node. */
    int i = agent_rand_below(env, n - 1);
    int j = i + 1 + agent_rand_below(env, n - i - 1);
    ed_node_t *src = s_node(b, order[i]), *dst = s_node(b, order[j]);
    if (s_is(src, "output") || s_io(dst))
        return -1;
    int ne = b->ne;
    int add = s_add(b, "Add", "");
    if (add < 0)
        return -1;
    s_redirect(b, dst->idx, add, ne);
    if (s_edge(b, dst->idx, add) || s_edge(b, src->idx, add))
        return -1;
    snprintf(what, len, "add a skip connection from node %d to node %d",
             src->idx, dst->idx);
    return 0;
}

static int s_branch(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    int x = s_pick_inner(env, b, NULL);
    int p = -1;

    if (x < 0)
        return -1;
    for (int e = 0; e < b->ne; e++)
        if (b->to[e] == x) {
            p = b->from[e];
            break;
        }
    if (p < 0)
        return -1;
    static const int ks[] = {1, 3, 5};
    int k = ks[agent_rand_below(env, 3)];
    char args[96];
    snprintf(args, sizeof args, "out_channels=C,kernel_size=%d,stride=1", k);
    int ne = b->ne;
    int conv = s_add(b, "Conv2d", args);
    int bn = s_add(b, "BN", "");
    int add = s_add(b, "Add", "");
    if (conv < 0 || bn < 0 || add < 0)
        return -1;
    s_redirect(b, x, add, ne);
    if (s_edge(b, p, conv) || s_edge(b, conv, bn) || s_edge(b, x, add) ||
        s_edge(b, bn, add))
        return -1;
    snprintf(what, len,
             "add a parallel %dx%d convolution branch from node %d, summed "
             "with node %d",
             k, k, p, x);
    return 0;
}

static int s_conv_arg(agent_env_t *env, ed_block_t *b, designer_edit_t ed,
                      char *what, size_t len)
{
    int x = s_pick_inner(env, b, "Conv2d");
    char cur[64], val[64];

    if (x < 0)
        return -1;
    ed_node_t *n = s_node(b, x);
    if (ed == DESIGNER_KERNEL) {
        static const char *ks[] = {"1", "3", "5", "7"};
        s_arg_get(n->args, "kernel_size", cur, sizeof cur);
        do
            snprintf(val, sizeof val, "%s", ks[agent_rand_below(env, 4)]);
        while (strcmp(val, cur) == 0);
        s_arg_set(n->args, sizeof n->args, "kernel_size", val);
        snprintf(what, len, "change the kernel size of node %d from %s to %s",
                 x, cur, val);
    } else if (ed == DESIGNER_DILATION) {
        s_arg_get(n->args, "kernel_size", cur, sizeof cur);
        if (strcmp(cur, "1") == 0)
            return -1;
        s_arg_get(n->args, "dilation", cur, sizeof cur);
        snprintf(val, sizeof val, "%s",
                 cur[0] && strcmp(cur, "1") != 0 ? "1" : "2");
        s_arg_set(n->args, sizeof n->args, "dilation", val);
        snprintf(what, len, "change the dilation of node %d to %s", x, val);
    } else {
        static const char *gs[] = {"C", "2", "4", "1"};
        s_arg_get(n->args, "groups", cur, sizeof cur);
        do
            snprintf(val, sizeof val, "%s", gs[agent_rand_below(env, 4)]);
        while (strcmp(val, cur[0] ? cur : "1") == 0);
        s_arg_set(n->args, sizeof n->args, "groups", val);
        snprintf(what, len, "change the groups of node %d to %s", x, val);
    }
    return 0;
}

static int s_gate(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    int x = s_pick_inner(env, b, NULL);

    if (x < 0)
        return -1;
    int ne = b->ne;
    int pool = s_add(b, "AdaptiveAvgPool2d", "output_size=1");
    int c1 = s_add(b, "Conv2d", "out_channels=C/4,kernel_size=1,stride=1");
    int act = s_add(b, "ReLU", "");
    int c2 = s_add(b, "Conv2d", "out_channels=C,kernel_size=1,stride=1");
    int sig = s_add(b, "Sigmoid", "");
    int mul = s_add(b, "Mul", "");
    if (pool < 0 || c1 < 0 || act < 0 || c2 < 0 || sig < 0 || mul < 0)
        return -1;
    s_redirect(b, x, mul, ne);
    if (s_edge(b, x, pool) || s_edge(b, pool, c1) || s_edge(b, c1, act) ||
        s_edge(b, act, c2) || s_edge(b, c2, sig) || s_edge(b, x, mul) ||
        s_edge(b, sig, mul))
        return -1;
    snprintf(what, len, "add a squeeze-and-excitation gate after node %d", x);
    return 0;
}

static int s_norm(agent_env_t *env, ed_block_t *b, char *what, size_t len)
{
    int x = s_pick_inner(env, b, "BN");
    int p = -1, pe = -1;

    if (x < 0)
        return -1;
    for (int e = 0; e < b->ne; e++)
        if (b->to[e] == x) {
            p = b->from[e];
            pe = e;
            break;
        }
    if (p < 0)
        return -1;
    /* BN x becomes permute -> LN -> permute back, in x's place. */
    ed_node_t *n = s_node(b, x);
    snprintf(n->op, sizeof n->op, "permute");
    snprintf(n->args, sizeof n->args, "0,3,1,2");
    int pin = s_add(b, "permute", "0,2,3,1");
    int ln = s_add(b, "LN", "");
    if (pin < 0 || ln < 0)
        return -1;
    b->to[pe] = pin;
    if (s_edge(b, pin, ln) || s_edge(b, ln, x))
        return -1;
    snprintf(what, len,
             "replace BN of node %d by LN over channels (channels-last)", x);
    return 0;
}

static int s_edit(agent_env_t *env, ed_block_t *b, designer_edit_t ed,
                  char *what, size_t len)
{
    switch (ed) {
    case DESIGNER_INSERT:
        return s_insert(env, b, what, len);
    case DESIGNER_REPLACE:
        return s_replace(env, b, what, len);
    case DESIGNER_SKIP:
        return s_skip(env, b, what, len);
    case DESIGNER_BRANCH:
        return s_branch(env, b, what, len);
    case DESIGNER_KERNEL:
    case DESIGNER_DILATION:
    case DESIGNER_GROUPS:
        return s_conv_arg(env, b, ed, what, len);
    case DESIGNER_GATE:
        return s_gate(env, b, what, len);
    case DESIGNER_NORM:
        return s_norm(env, b, what, len);
    default:
        return -1;
    }
}

static int s_run(agent_env_t *env, const graph_design_t *parent, int edit,
                 int max_tries, modifier_known_fn known, void *ctx,
                 designer_result_t *out, char *err, size_t errlen)
{
    ed_block_t *base = malloc(sizeof *base), *b = malloc(sizeof *b);
    char *cell = graph_block_print(parent->cell);
    char *stem = graph_block_print(parent->stem);
    char *down = graph_block_print(parent->downsample);
    char ph[33] = "";
    int rc = 1;

    memset(out, 0, sizeof *out);
    if (!base || !b || !cell || !stem || !down) {
        snprintf(err, errlen, "designer: out of memory");
        rc = -1;
        goto done;
    }
    if (s_ed_read(base, cell) != 0) {
        snprintf(err, errlen, "designer: the cell has over %d nodes", ED_MAX);
        rc = -1;
        goto done;
    }
    graph_design_hash(parent, ph);
    for (int t = 0; t < max_tries; t++) {
        designer_edit_t ed =
            edit >= 0
                ? (designer_edit_t)edit
                : (designer_edit_t)agent_rand_below(env, DESIGNER_EDIT_COUNT);
        char what[200];
        *b = *base;
        out->tries++;
        if (s_edit(env, b, ed, what, sizeof what) != 0)
            continue;
        char *text = s_ed_print(b);
        graph_design_t *d = NULL;
        char *lines = NULL;
        net_choice_t choice;
        int ok = text ? modifier_check(env->net, 1, text,
                                       parent->stem_default ? NULL : stem,
                                       parent->downsample_default ? NULL : down,
                                       &d, &choice, &lines)
                      : 1;
        free(text);
        free(lines);
        if (ok != 0)
            continue;
        char h[33];
        if (graph_design_hash(d, h) != 0 || strcmp(h, ph) == 0 ||
            (known && known(ctx, h))) {
            graph_design_destroy(&d);
            continue;
        }
        out->design = d;
        memcpy(out->hash, h, sizeof h);
        out->choice = choice;
        out->edit = ed;
        snprintf(out->what, sizeof out->what, "offline edit: %s", what);
        rc = 0;
        break;
    }
done:
    free(base);
    free(b);
    free(cell);
    free(stem);
    free(down);
    return rc;
}

int designer_mutate(agent_env_t *env, const graph_design_t *parent,
                    int max_tries, modifier_known_fn known, void *ctx,
                    designer_result_t *out, char *err, size_t errlen)
{
    return s_run(env, parent, -1, max_tries, known, ctx, out, err, errlen);
}

int designer_apply(agent_env_t *env, const graph_design_t *parent,
                   designer_edit_t edit, int max_tries, modifier_known_fn known,
                   void *ctx, designer_result_t *out, char *err, size_t errlen)
{
    return s_run(env, parent, (int)edit, max_tries, known, ctx, out, err,
                 errlen);
}
