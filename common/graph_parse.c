/*
 * graph_parse.c - read block files (spec/graph-format.md) into blocks
 * and designs.
 *
 * The reader is line-based and forgiving in what it can be sure of
 * (case of names, white space, comments, "A,B->C" and chains "A->B->C")
 * and strict everywhere else: a line it cannot read is reported with the
 * file and line, and reading goes on so that one pass lists every
 * problem.  Arguments are only split and parsed here; matching them to
 * the operation's table entry is graph_block_link's job, so that blocks
 * built in memory get the same checks as blocks read from text.
 */
#include "graph_impl.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_EDGES (4 * GRAPH_MAX_NODES)
#define MAX_BLOCKS 16

typedef struct reader {
    const char *file;
    graph_errors_t *errs;
    graph_block_t *b;       /* block being read, NULL before a header */
    int cap_nodes, cap_edges;
    bool warned_headerless;
    bool warned_size;
    int line;
} reader_t;

static const char *s_file(const reader_t *r)
{
    return r->file ? r->file : "<text>";
}

static const char *s_role(const reader_t *r)
{
    return r->b ? graph_role_name(r->b->role) : "";
}

static void s_syntax(reader_t *r, int node, const char *text, size_t len,
                     const char *why)
{
    graph_errors_add(r->errs, GRAPH_RULE_SYNTAX, s_role(r), node, r->line,
                     "%s:%d: cannot read '%.*s': %s", s_file(r), r->line,
                     (int)(len > 80 ? 80 : len), text, why);
}

static void s_trim(const char **s, size_t *len)
{
    while (*len && isspace((unsigned char)**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len && isspace((unsigned char)(*s)[*len - 1]))
        (*len)--;
}

static graph_role_t s_role_of(const char *name)
{
    size_t n = strlen(name);

    if (n >= 5 && strcasecmp(name + n - 5, "_stem") == 0)
        return GRAPH_ROLE_STEM;
    if (n >= 11 && strcasecmp(name + n - 11, "_downsample") == 0)
        return GRAPH_ROLE_DOWNSAMPLE;
    return GRAPH_ROLE_CELL;
}

/* ------------------------------------------------------------ arguments */

/* End of the bracketed group starting at s[i] ('(' or '['), or len. */
static size_t s_close(const char *s, size_t len, size_t i)
{
    int depth = 0;

    for (; i < len; i++) {
        if (s[i] == '(' || s[i] == '[')
            depth++;
        else if ((s[i] == ')' || s[i] == ']') && --depth == 0)
            return i;
    }
    return len;
}

/* Split s at top-level commas; calls fn for each piece.  Returns the
 * number of pieces, or -1 when fn fails. */
typedef int (*piece_fn)(void *ctx, const char *s, size_t len, bool last);

static int s_split(const char *s, size_t len, piece_fn fn, void *ctx)
{
    int depth = 0, n = 0;
    size_t start = 0;

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? s[i] : ',';
        if (c == '(' || c == '[')
            depth++;
        else if (c == ')' || c == ']')
            depth--;
        else if (c == ',' && depth == 0) {
            if (fn(ctx, s + start, i - start, i == len) < 0)
                return -1;
            n++;
            start = i + 1;
        }
    }
    return n;
}

typedef struct arg_ctx {
    graph_arg_t *arg;
    char err[160];
    bool failed;
} arg_ctx_t;

static int s_add_item(void *vctx, const char *s, size_t len, bool last)
{
    arg_ctx_t *ctx = vctx;
    graph_arg_t *a = ctx->arg;
    graph_expr_t *e, **items;

    s_trim(&s, &len);
    if (len == 0 && last && a->n_items > 0)
        return 0; /* a trailing comma: (2,) */
    e = graph_expr_parse(s, len, ctx->err, sizeof ctx->err);
    if (!e) {
        ctx->failed = true;
        return -1;
    }
    items = realloc(a->items, (size_t)(a->n_items + 1) * sizeof *items);
    if (!items) {
        graph_expr_destroy(&e);
        snprintf(ctx->err, sizeof ctx->err, "out of memory");
        ctx->failed = true;
        return -1;
    }
    a->items = items;
    a->items[a->n_items++] = e;
    return 0;
}

/* Does s (trimmed) hold a bracketed tuple rather than an expression? */
static bool s_is_tuple(const char *s, size_t len)
{
    int depth = 0;

    if (len < 2 || (s[0] != '(' && s[0] != '['))
        return false;
    if (s_close(s, len, 0) != len - 1)
        return false;
    if (s[0] == '[')
        return true;
    for (size_t i = 1; i + 1 < len; i++) {
        if (s[i] == '(' || s[i] == '[')
            depth++;
        else if (s[i] == ')' || s[i] == ']')
            depth--;
        else if (s[i] == ',' && depth == 0)
            return true;
    }
    return len == 2; /* "()" */
}

typedef struct args_ctx {
    reader_t *r;
    graph_node_t *node;
} args_ctx_t;

static int s_add_arg(void *vctx, const char *s, size_t len, bool last)
{
    args_ctx_t *ctx = vctx;
    graph_node_t *n = ctx->node;
    graph_arg_t *args, *a;
    arg_ctx_t ac = {0};
    const char *whole;
    size_t whole_len;
    char prefix[128];

    s_trim(&s, &len);
    if (len == 0 && last && n->n_args > 0)
        return 0; /* a trailing comma, as Python allows */
    whole = s;
    whole_len = len;
    args = realloc(n->args, (size_t)(n->n_args + 1) * sizeof *args);
    if (!args)
        return -1;
    n->args = args;
    a = &n->args[n->n_args++];
    memset(a, 0, sizeof *a);

    /* key=value, where key is a name and '=' is not '=='. */
    size_t k = 0;
    while (k < len && (isalnum((unsigned char)s[k]) || s[k] == '_'))
        k++;
    size_t eq = k;
    while (eq < len && isspace((unsigned char)s[eq]))
        eq++;
    if (k > 0 && !isdigit((unsigned char)s[0]) && eq < len &&
        s[eq] == '=' && (eq + 1 >= len || s[eq + 1] != '=')) {
        a->key = strndup(s, k);
        if (!a->key)
            return -1;
        s += eq + 1;
        len -= eq + 1;
        s_trim(&s, &len);
    }

    ac.arg = a;
    if (len == 0) {
        snprintf(ac.err, sizeof ac.err, "no value");
        ac.failed = true;
    } else if (s_is_tuple(s, len)) {
        a->tuple = true;
        if (len > 2)
            s_split(s + 1, len - 2, s_add_item, &ac);
    } else {
        s_add_item(&ac, s, len, false);
    }
    if (ac.failed) {
        /* Keep the argument with no items: "could not be read", so that
         * linking does not report it missing as well. */
        for (int i = 0; i < a->n_items; i++)
            graph_expr_destroy(&a->items[i]);
        free(a->items);
        a->items = NULL;
        a->n_items = 0;
        graph_node_prefix(ctx->r->b, n, prefix, sizeof prefix);
        graph_errors_add(ctx->r->errs, GRAPH_RULE_ARG, s_role(ctx->r),
                         n->index, n->line,
                         "%s: cannot read argument '%.*s': %s", prefix,
                         (int)(whole_len > 60 ? 60 : whole_len), whole,
                         ac.err);
    }
    return 0;
}

/* ---------------------------------------------------------------- lines */

static int s_node_line(reader_t *r, const char *s, size_t len)
{
    graph_block_t *b = r->b;
    graph_node_t *n;
    size_t i = 0, name_start, name_end;
    long index = 0;

    while (i < len && isdigit((unsigned char)s[i])) {
        index = index * 10 + (s[i++] - '0');
        if (index > GRAPH_MAX_INDEX) {
            s_syntax(r, -1, s, len, "node index too large");
            return 0;
        }
    }
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    i++; /* the ':' */
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    name_start = i;
    while (i < len && (isalnum((unsigned char)s[i]) || s[i] == '_'))
        i++;
    name_end = i;
    while (i < len && isspace((unsigned char)s[i]))
        i++;
    if (name_end == name_start) {
        s_syntax(r, (int)index, s, len,
                 "no operation name after ':' (write e.g. 3:ReLU)");
        return 0;
    }
    size_t args_start = 0, args_end = 0;
    bool has_args = false;
    if (i < len) {
        if (s[i] != '(') {
            s_syntax(r, (int)index, s, len,
                     "unexpected text after the operation name");
            return 0;
        }
        size_t close = s_close(s, len, i);
        if (close >= len) {
            s_syntax(r, (int)index, s, len, "missing ')'");
            return 0;
        }
        if (close + 1 != len) {
            s_syntax(r, (int)index, s, len, "unexpected text after ')'");
            return 0;
        }
        has_args = true;
        args_start = i + 1;
        args_end = close;
    }

    int prev = graph_block_find(b, (int)index);
    if (prev >= 0) {
        graph_errors_add(r->errs, GRAPH_RULE_DUPLICATE, s_role(r),
                         (int)index, r->line,
                         "%s node %d: defined twice (lines %d and %d); "
                         "node indices must be unique in a block",
                         s_role(r), (int)index, b->nodes[prev].line,
                         r->line);
        return 0;
    }
    if (b->n_nodes >= GRAPH_MAX_NODES) {
        if (!r->warned_size)
            s_syntax(r, (int)index, s, len, "too many nodes in one block");
        r->warned_size = true;
        return 0;
    }
    if (b->n_nodes == r->cap_nodes) {
        int cap = r->cap_nodes ? 2 * r->cap_nodes : 16;
        graph_node_t *v = realloc(b->nodes, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        b->nodes = v;
        r->cap_nodes = cap;
    }
    n = &b->nodes[b->n_nodes++];
    memset(n, 0, sizeof *n);
    n->index = (int)index;
    n->line = r->line;
    n->op_text = strndup(s + name_start, name_end - name_start);
    if (!n->op_text)
        return -1;
    n->op = graph_op_lookup(n->op_text, -1);
    if (has_args) {
        const char *a = s + args_start;
        size_t alen = args_end - args_start;
        s_trim(&a, &alen);
        args_ctx_t ctx = {r, n};
        if (alen > 0 && s_split(a, alen, s_add_arg, &ctx) < 0)
            return -1;
    }
    return 0;
}

static int s_add_edge(reader_t *r, int from, int to)
{
    graph_block_t *b = r->b;

    if (b->n_edges >= MAX_EDGES) {
        if (!r->warned_size)
            graph_errors_add(r->errs, GRAPH_RULE_SYNTAX, s_role(r), -1,
                             r->line, "%s:%d: too many edges in one block",
                             s_file(r), r->line);
        r->warned_size = true;
        return 0;
    }
    if (b->n_edges == r->cap_edges) {
        int cap = r->cap_edges ? 2 * r->cap_edges : 16;
        graph_edge_t *v = realloc(b->edges, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        b->edges = v;
        r->cap_edges = cap;
    }
    b->edges[b->n_edges++] = (graph_edge_t){from, to, r->line};
    return 0;
}

/* Parse "a,b,c" into ids; returns the count or -1 (reason in *why). */
static int s_id_list(const char *s, size_t len, int *ids, int max,
                     const char **why)
{
    int n = 0;
    size_t i = 0;

    for (;;) {
        long v = 0;
        int digits = 0;
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        while (i < len && isdigit((unsigned char)s[i])) {
            v = v * 10 + (s[i++] - '0');
            if (++digits > 6) {
                *why = "node index too large";
                return -1;
            }
        }
        if (digits == 0) {
            *why = "expected a node index";
            return -1;
        }
        if (n == max) {
            *why = "too many nodes on one edge line";
            return -1;
        }
        ids[n++] = (int)v;
        while (i < len && isspace((unsigned char)s[i]))
            i++;
        if (i == len)
            return n;
        if (s[i] != ',') {
            *why = "expected ',' or '->' between node indices";
            return -1;
        }
        i++;
    }
}

/* "A->B", "A,B->C", "A->B->C": edges from every node of a part to every
 * node of the next part, in the order written. */
static int s_edge_line(reader_t *r, const char *s, size_t len)
{
    int left[32], right[32], nl = 0, nr;
    const char *why = NULL;
    size_t start = 0;
    bool first = true;

    for (;;) {
        const char *arrow = NULL;
        for (size_t i = start; i + 1 < len; i++)
            if (s[i] == '-' && s[i + 1] == '>') {
                arrow = s + i;
                break;
            }
        size_t end = arrow ? (size_t)(arrow - s) : len;
        nr = s_id_list(s + start, end - start, right, 32, &why);
        if (nr < 0)
            goto bad;
        if (!first) {
            for (int j = 0; j < nr; j++)
                for (int i = 0; i < nl; i++)
                    if (s_add_edge(r, left[i], right[j]) < 0)
                        return -1;
        } else if (!arrow) {
            why = "expected '->'";
            goto bad;
        }
        if (!arrow)
            return 0;
        memcpy(left, right, sizeof right);
        nl = nr;
        first = false;
        start = end + 2;
    }

bad:
    s_syntax(r, -1, s, len, why);
    return 0;
}

static int s_header(reader_t *r, const char *name, size_t len,
                    graph_block_t **blocks, int *n_blocks)
{
    graph_block_t *b;

    if (*n_blocks >= MAX_BLOCKS) {
        graph_errors_add(r->errs, GRAPH_RULE_DESIGN, "", -1, r->line,
                         "%s:%d: more than %d blocks in one file",
                         s_file(r), r->line, MAX_BLOCKS);
        r->b = NULL;
        return 1;
    }
    b = calloc(1, sizeof *b);
    if (!b || !(b->name = malloc(len + 1))) {
        free(b);
        return -1;
    }
    /* Names are printable text: a control byte would not print back. */
    bool bad = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        bad = bad || c < 0x20 || c == 0x7f;
        b->name[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    b->name[len] = '\0';
    b->role = s_role_of(b->name);
    b->line = r->line;
    blocks[(*n_blocks)++] = b;
    r->b = b;
    if (bad)
        graph_errors_add(r->errs, GRAPH_RULE_SYNTAX, s_role(r), -1, r->line,
                         "%s:%d: the block name '%s' holds control "
                         "characters", s_file(r), r->line, b->name);
    r->cap_nodes = r->cap_edges = 0;
    r->warned_size = false;
    return 0;
}

/* Is the trimmed line a ##NAME## header?  Sets the name span. */
static bool s_is_header(const char *s, size_t len, const char **name,
                        size_t *nlen)
{
    if (len < 5 || s[0] != '#' || s[1] != '#')
        return false;
    for (size_t i = 2; i + 1 < len; i++) {
        if (s[i] == '#' && s[i + 1] == '#') {
            const char *rest = s + i + 2;
            size_t rlen = len - i - 2;
            *name = s + 2;
            *nlen = i - 2;
            s_trim(name, nlen);
            s_trim(&rest, &rlen);
            return *nlen > 0 && (rlen == 0 || rest[0] == '#');
        }
    }
    return false;
}

/*
 * Read every block of text (at most `max`; more when max is 0 is an
 * error).  Returns the number of blocks, or -1 when out of memory.
 */
static int s_read(const char *text, size_t len, const char *file,
                  graph_block_t **blocks, int max, graph_errors_t *errs)
{
    reader_t r = {.file = file, .errs = errs};
    int n_blocks = 0;
    size_t pos = 0;

    while (pos < len) {
        size_t end = pos;
        while (end < len && text[end] != '\n')
            end++;
        const char *s = text + pos;
        size_t n = end - pos, hlen;
        const char *hname;
        int rc = 0;

        r.line++;
        pos = end + 1;
        s_trim(&s, &n);
        if (s_is_header(s, n, &hname, &hlen)) {
            if (max && n_blocks >= max)
                break;
            rc = s_header(&r, hname, hlen, blocks, &n_blocks);
            if (rc < 0)
                return -1;
            continue;
        }
        const char *hash = memchr(s, '#', n);
        if (hash)
            n = (size_t)(hash - s);
        s_trim(&s, &n);
        if (n == 0)
            continue;
        if (!r.b) {
            if (!r.warned_headerless && n_blocks == 0)
                graph_errors_add(errs, GRAPH_RULE_SYNTAX, "", -1, r.line,
                                 "%s:%d: '%.*s' comes before any ##NAME## "
                                 "header; start each block with one",
                                 s_file(&r), r.line, (int)(n > 60 ? 60 : n),
                                 s);
            r.warned_headerless = true;
            continue;
        }

        size_t i = 0;
        while (i < n && isdigit((unsigned char)s[i]))
            i++;
        size_t j = i;
        while (j < n && isspace((unsigned char)s[j]))
            j++;
        if (i > 0 && j < n && s[j] == ':')
            rc = s_node_line(&r, s, n);
        else if (i > 0 && j < n && (s[j] == ',' || s[j] == '-'))
            rc = s_edge_line(&r, s, n);
        else
            s_syntax(&r, -1, s, n,
                     "expected INDEX:OPERATION, A->B or ##NAME##");
        if (rc < 0)
            return -1;
    }
    if (n_blocks == 0 && !r.warned_headerless)
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "", -1, 0,
                         "%s: no block found (a block starts with a "
                         "##NAME## line)", s_file(&r));
    return n_blocks;
}

/* --------------------------------------------------------------- public */

int graph_block_parse(const char *text, size_t len, const char *filename,
                      graph_block_t **out, graph_errors_t *errs)
{
    graph_block_t *blocks[1] = {NULL};
    graph_errors_t local;
    graph_errors_t *e = errs;
    int before, n, rc = -1;

    *out = NULL;
    if (!e) {
        graph_errors_init(&local);
        e = &local;
    }
    before = e->n;
    n = s_read(text, len, filename, blocks, 1, e);
    if (n > 0 && graph_block_link(blocks[0], e) == 0 && e->n == before) {
        *out = blocks[0];
        blocks[0] = NULL;
        rc = 0;
    }
    if (n > 0)
        graph_block_destroy(&blocks[0]);
    if (e == &local)
        graph_errors_free(&local);
    return rc;
}

/* Does b take input1/input2?  *index: its first input node's index. */
static void s_input_kind(const graph_block_t *b, bool *two, int *index)
{
    *two = false;
    *index = -1;
    for (int i = 0; i < b->n_nodes; i++) {
        graph_op_t op = b->nodes[i].op;
        if (op == GRAPH_OP_INPUT1 || op == GRAPH_OP_INPUT2) {
            *two = true;
            *index = b->nodes[i].index;
            return;
        }
        if (op == GRAPH_OP_INPUT)
            *index = b->nodes[i].index;
    }
}

/* The design-level rules: one block per role, inputs that agree. */
static void s_form(graph_design_t *d, graph_block_t **blocks, int n,
                   const char *file, graph_errors_t *errs)
{
    graph_block_t **slot[3] = {&d->cell, &d->stem, &d->downsample};

    for (int i = 0; i < n; i++) {
        graph_block_t **s = slot[blocks[i]->role];
        if (*s) {
            graph_errors_add(errs, GRAPH_RULE_DESIGN,
                             graph_role_name(blocks[i]->role), -1,
                             blocks[i]->line,
                             "%s:%d: a second %s block '%s' (the first is "
                             "'%s' at line %d); a design has one cell, one "
                             "*_stem and one *_downsample block",
                             file ? file : "<text>", blocks[i]->line,
                             graph_role_name(blocks[i]->role),
                             blocks[i]->name, (*s)->name, (*s)->line);
            continue;
        }
        *s = blocks[i];
        blocks[i] = NULL;
    }
    if (!d->cell && n > 0) {
        graph_errors_add(errs, GRAPH_RULE_DESIGN, "cell", -1, 0,
                         "%s: no cell block (every block is named "
                         "*_stem or *_downsample)", file ? file : "<text>");
        return;
    }
    if (!d->cell)
        return;

    bool two, dtwo;
    int idx;
    s_input_kind(d->cell, &two, &idx);
    d->two_input = two;
    if (d->stem) {
        s_input_kind(d->stem, &dtwo, &idx);
        if (dtwo)
            graph_errors_add(errs, GRAPH_RULE_INPUT, "stem", idx,
                             d->stem->line,
                             "stem node %d: a stem reads the image through "
                             "one 'input' node, not input1/input2", idx);
    }
    if (d->downsample) {
        s_input_kind(d->downsample, &dtwo, &idx);
        if (dtwo != two)
            graph_errors_add(
                errs, GRAPH_RULE_INPUT, "downsample", idx,
                d->downsample->line,
                two ? "downsample node %d: the cell takes input1 and "
                      "input2, so the downsample (reduction) block must "
                      "take input1 and input2 too"
                    : "downsample node %d: the cell takes one 'input', so "
                      "the downsample block must too, not input1/input2",
                idx);
    }
}

int graph_design_parse(const char *text, size_t len, const char *filename,
                       graph_design_t **out, graph_errors_t *errs)
{
    graph_block_t *blocks[MAX_BLOCKS] = {NULL};
    graph_design_t *d = NULL;
    graph_errors_t local;
    graph_errors_t *e = errs;
    int n, before, rc = -1;

    *out = NULL;
    if (!e) {
        graph_errors_init(&local);
        e = &local;
    }
    before = e->n;
    n = s_read(text, len, filename, blocks, 0, e);
    if (n < 0)
        goto done;
    for (int i = 0; i < n; i++)
        graph_block_link(blocks[i], e);

    d = calloc(1, sizeof *d);
    if (!d)
        goto done;
    s_form(d, blocks, n, filename, e);
    if (d->cell && !d->stem) {
        d->stem = graph_default_stem(d->two_input);
        d->stem_default = true;
    }
    if (d->cell && !d->downsample) {
        d->downsample = graph_default_downsample(d->two_input);
        d->downsample_default = true;
    }
    if (!d->cell || !d->stem || !d->downsample || e->n > before)
        goto done;
    *out = d;
    d = NULL;
    rc = 0;

done:
    for (int i = 0; i < n; i++)
        graph_block_destroy(&blocks[i]);
    graph_design_destroy(&d);
    if (e == &local)
        graph_errors_free(&local);
    return rc;
}
