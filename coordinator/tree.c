/*
 * tree.c - the modification tree (see tree.h).
 *
 * Nodes live in one array indexed by id; a search has hundreds to a few
 * thousand designs, so linear scans (hash lookup, ranking) cost
 * microseconds and keep the structure trivially rebuildable.
 */
#include "tree.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct tree {
    int n, cap;
    tree_node_t *v;
};

const char *tree_state_name(tree_state_t s)
{
    switch (s) {
    case TREE_PENDING:
        return "pending";
    case TREE_DONE:
        return "done";
    case TREE_FAILED:
        return "failed";
    }
    return "?";
}

tree_t *tree_new(void)
{
    return calloc(1, sizeof(tree_t));
}

static void s_node_free(tree_node_t *n)
{
    free(n->design);
    free(n->inspiration);
    free(n->reason);
    free(n->children);
}

void tree_destroy(tree_t **tp)
{
    tree_t *t = *tp;

    if (!t)
        return;
    for (int i = 0; i < t->n; i++)
        s_node_free(&t->v[i]);
    free(t->v);
    free(t);
    *tp = NULL;
}

int tree_size(const tree_t *t)
{
    return t->n;
}

tree_node_t *tree_get(const tree_t *t, int id)
{
    return id >= 0 && id < t->n ? &t->v[id] : NULL;
}

int tree_add(tree_t *t, int parent, int iteration, const char *hash,
             const char *design, int64_t inspiration_id,
             const char *inspiration)
{
    if ((parent < 0 && t->n != 0) || (parent >= 0 && parent >= t->n))
        return -1;
    if (t->n == t->cap) {
        int cap = t->cap ? t->cap * 2 : 32;
        tree_node_t *v = realloc(t->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        t->v = v;
        t->cap = cap;
    }
    if (parent >= 0) {
        tree_node_t *p = &t->v[parent];
        int *c = realloc(p->children, (size_t)(p->n_children + 1) * sizeof *c);
        if (!c)
            return -1;
        p->children = c;
    }
    tree_node_t *n = &t->v[t->n];
    memset(n, 0, sizeof *n);
    n->id = t->n;
    n->parent = parent;
    n->iteration = iteration;
    snprintf(n->name, sizeof n->name, "d%d", n->id);
    snprintf(n->hash, sizeof n->hash, "%s", hash ? hash : "");
    n->design = strdup(design ? design : "");
    n->inspiration_id = inspiration_id;
    n->inspiration = inspiration ? strdup(inspiration) : NULL;
    n->screen_acc = NAN;
    n->full_acc = NAN;
    if (!n->design || (inspiration && !n->inspiration)) {
        s_node_free(n);
        return -1;
    }
    if (parent >= 0) {
        tree_node_t *p = &t->v[parent];
        p->children[p->n_children++] = n->id;
    }
    return t->n++;
}

int tree_find(const tree_t *t, const char *hash)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->v[i].hash, hash) == 0)
            return i;
    return -1;
}

void tree_set_screen(tree_t *t, int id, double acc, int64_t params, int width)
{
    tree_node_t *n = tree_get(t, id);

    if (!n)
        return;
    n->screen_acc = acc;
    n->params = params;
    n->width = width;
    n->state = TREE_DONE;
}

void tree_set_full(tree_t *t, int id, double acc)
{
    tree_node_t *n = tree_get(t, id);

    if (n)
        n->full_acc = acc;
}

void tree_add_seed(tree_t *t, int id, double acc)
{
    tree_node_t *n = tree_get(t, id);

    if (n && n->n_seeds < TREE_MAX_SEEDS)
        n->seed_acc[n->n_seeds++] = acc;
}

void tree_set_failed(tree_t *t, int id, const char *reason)
{
    tree_node_t *n = tree_get(t, id);

    if (!n)
        return;
    n->state = TREE_FAILED;
    free(n->reason);
    n->reason = reason ? strdup(reason) : NULL;
}

double tree_node_score(const tree_node_t *n)
{
    if (!isnan(n->full_acc)) {
        double s = n->full_acc;
        for (int i = 0; i < n->n_seeds; i++)
            s += n->seed_acc[i];
        return s / (1 + n->n_seeds);
    }
    return n->screen_acc;
}

bool tree_node_improved(const tree_t *t, const tree_node_t *c)
{
    const tree_node_t *p = tree_get(t, c->parent);

    return p && c->state == TREE_DONE && p->state == TREE_DONE &&
           c->screen_acc > p->screen_acc;
}

/* Whether a is ranked before b by screening accuracy. */
static bool s_before(const tree_node_t *a, const tree_node_t *b)
{
    if (a->screen_acc != b->screen_acc)
        return a->screen_acc > b->screen_acc;
    return a->id < b->id;
}

static bool s_screened(const tree_node_t *n)
{
    return n->state == TREE_DONE && !isnan(n->screen_acc);
}

int tree_best_screened(const tree_t *t)
{
    int best = -1;

    for (int i = 0; i < t->n; i++)
        if (s_screened(&t->v[i]) &&
            (best < 0 || s_before(&t->v[i], &t->v[best])))
            best = i;
    return best;
}

int tree_best(const tree_t *t)
{
    int best = -1;
    double bs = 0;

    for (int i = 0; i < t->n; i++) {
        if (!s_screened(&t->v[i]))
            continue;
        bool full = !isnan(t->v[i].full_acc);
        double s = tree_node_score(&t->v[i]);
        bool bfull = best >= 0 && !isnan(t->v[best].full_acc);
        if (best < 0 || (full && !bfull) || (full == bfull && s > bs)) {
            best = i;
            bs = s;
        }
    }
    return best;
}

static int s_dfs(const tree_t *t, int id)
{
    const tree_node_t *n = &t->v[id];
    int order[n->n_children > 0 ? n->n_children : 1];
    int k = 0;

    if (!n->expanded)
        return id;
    for (int i = 0; i < n->n_children; i++) {
        const tree_node_t *c = &t->v[n->children[i]];
        if (!s_screened(c) || !(c->screen_acc > n->screen_acc))
            continue;
        int j = k++;
        while (j > 0 && s_before(c, &t->v[order[j - 1]])) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = c->id;
    }
    for (int i = 0; i < k; i++) {
        int r = s_dfs(t, order[i]);
        if (r >= 0)
            return r;
    }
    return -1;
}

int tree_select_best(const tree_t *t)
{
    int best = -1;

    for (int i = 0; i < t->n; i++) {
        const tree_node_t *n = &t->v[i];
        if (!s_screened(n) || n->expanded)
            continue;
        if (best < 0 || s_before(n, &t->v[best]))
            best = i;
    }
    return best >= 0 ? best : tree_best_screened(t);
}

int tree_select_dfs(const tree_t *t)
{
    if (t->n == 0 || !s_screened(&t->v[0]))
        return -1;
    int r = s_dfs(t, 0);
    return r >= 0 ? r : tree_select_best(t);
}

int tree_ranked(const tree_t *t, int *ids, int max)
{
    int k = 0;

    for (int i = 0; i < t->n; i++) {
        const tree_node_t *n = &t->v[i];
        if (!s_screened(n))
            continue;
        int j = k < max ? k++ : max;
        if (j == max && (max == 0 || !s_before(n, &t->v[ids[max - 1]])))
            continue;
        if (j == max)
            j = max - 1;
        while (j > 0 && s_before(n, &t->v[ids[j - 1]])) {
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    return k;
}

bool tree_inspiration_used(const tree_t *t, int node, int64_t insp)
{
    const tree_node_t *n = tree_get(t, node);

    if (!n)
        return false;
    for (int i = 0; i < n->n_children; i++)
        if (t->v[n->children[i]].inspiration_id == insp)
            return true;
    for (; n; n = tree_get(t, n->parent))
        if (n->inspiration_id == insp)
            return true;
    return false;
}

static void s_acc(text_buf_t *b, const tree_node_t *n)
{
    if (n->state == TREE_FAILED)
        text_buf_puts(b, " failed");
    else if (isnan(n->screen_acc))
        text_buf_puts(b, " pending");
    else
        text_buf_printf(b, " %.2f%%", n->screen_acc);
    if (!isnan(n->full_acc)) {
        text_buf_printf(b, " (full %.2f%%", n->full_acc);
        for (int i = 0; i < n->n_seeds; i++)
            text_buf_printf(b, "%s%.2f", i ? ", " : "; seeds ", n->seed_acc[i]);
        text_buf_puts(b, ")");
    }
}

static void s_render(const tree_t *t, int id, int depth, text_buf_t *b,
                     bool with_text, int width)
{
    const tree_node_t *n = &t->v[id];
    const tree_node_t *p = tree_get(t, n->parent);

    for (int i = 0; i < depth; i++)
        text_buf_puts(b, "  ");
    text_buf_puts(b, n->name);
    s_acc(b, n);
    if (p && s_screened(n) && s_screened(p))
        text_buf_printf(b, " %+.2f", n->screen_acc - p->screen_acc);
    if (n->inspiration) {
        size_t len = strlen(n->inspiration);
        text_buf_puts(b, "  ");
        if (n->inspiration_id >= 0)
            text_buf_printf(b, "[%lld] ", (long long)n->inspiration_id);
        if (width > 0 && (int)len > width)
            text_buf_printf(b, "%.*s...", width - 3, n->inspiration);
        else
            text_buf_puts(b, n->inspiration);
    } else if (n->parent < 0) {
        text_buf_puts(b, "  (base design)");
    }
    if (n->state == TREE_FAILED && n->reason)
        text_buf_printf(b, "  (%s)", n->reason);
    text_buf_puts(b, "\n");
    if (with_text) {
        const char *s = n->design;
        while (*s) {
            const char *e = strchr(s, '\n');
            size_t len = e ? (size_t)(e - s) : strlen(s);
            for (int i = 0; i <= depth + 1; i++)
                text_buf_puts(b, "  ");
            text_buf_add(b, s, len);
            text_buf_puts(b, "\n");
            s += len + (e ? 1 : 0);
        }
    }
    for (int i = 0; i < n->n_children; i++)
        s_render(t, n->children[i], depth + 1, b, with_text, width);
}

void tree_render(const tree_t *t, text_buf_t *b, bool with_text, int width)
{
    if (t->n > 0)
        s_render(t, 0, 0, b, with_text, width);
}

static json_t *s_num(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

char *tree_to_json(const tree_t *t)
{
    json_t *a = json_array();
    char *s;

    for (int i = 0; i < t->n && a; i++) {
        const tree_node_t *n = &t->v[i];
        json_t *seeds = json_array(), *kids = json_array();
        for (int k = 0; k < n->n_seeds; k++)
            json_array_append_new(seeds, json_real(n->seed_acc[k]));
        for (int k = 0; k < n->n_children; k++)
            json_array_append_new(kids, json_integer(n->children[k]));
        json_t *o = json_pack(
            "{s:s, s:i, s:i, s:i, s:s, s:s, s:o, s:o, s:s, s:o, s:o, "
            "s:o, s:I, s:i, s:b, s:o}",
            "name", n->name, "id", n->id, "parent", n->parent, "iteration",
            n->iteration, "hash", n->hash, "design", n->design,
            "inspiration_id",
            n->inspiration_id >= 0 ? json_integer(n->inspiration_id)
                                   : json_null(),
            "inspiration",
            n->inspiration ? json_string(n->inspiration) : json_null(), "state",
            tree_state_name(n->state), "screen_acc", s_num(n->screen_acc),
            "full_acc", s_num(n->full_acc), "seed_acc", seeds, "params",
            (json_int_t)n->params, "width", n->width, "expanded", n->expanded,
            "children", kids);
        if (o && n->reason)
            json_object_set_new(o, "reason", json_string(n->reason));
        json_array_append_new(a, o);
    }
    s = a ? json_dumps(a, JSON_INDENT(1)) : NULL;
    json_decref(a);
    return s;
}
