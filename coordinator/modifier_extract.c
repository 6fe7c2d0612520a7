/*
 * modifier_extract.c - finding blocks in a model's answer (modifier.h).
 *
 * A line is read as part of a block when, after Markdown decoration
 * (indentation, bullets, quotes, backticks) is taken off, it is a
 * header, a node ("12:Conv2d(...)", an operation name and optional
 * arguments), an edge ("3->5", "1,2->4", or a chain "0->2->3", which is
 * written out as single edges), a comment or blank.  Any other line ends
 * the block it interrupts, so prose before, between and after blocks is
 * left out, while numbered prose ("2: we then add...") is not mistaken
 * for a node.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "modifier.h"
#include "text.h"

typedef enum s_kind {
    S_HEADER,
    S_NODE,
    S_EDGE,
    S_SKIP, /* comment or blank: kept out, does not end a block */
    S_OTHER
} s_kind_t;

typedef struct s_block {
    char name[128];
    text_buf_t body;
} s_block_t;

/* Strip decoration in place; returns the start of the useful text. */
static char *s_clean(char *s)
{
    size_t n;

    for (;;) {
        while (*s == ' ' || *s == '\t' || *s == '`' || *s == '>')
            s++;
        if ((*s == '-' || *s == '*' || *s == '+') &&
            (s[1] == ' ' || s[1] == '\t'))
            s += 2;
        else
            break;
    }
    n = strlen(s);
    while (n > 0 && (isspace((unsigned char)s[n - 1]) || s[n - 1] == '`'))
        s[--n] = '\0';
    return s;
}

/* "##NAME##" with any number (>= 2) of #'s and inner spaces. */
static bool s_header(const char *s, char *name, size_t len)
{
    size_t n = strlen(s);
    const char *a = s, *b = s + n;

    if (n < 5 || s[0] != '#' || s[1] != '#' || s[n - 1] != '#' ||
        s[n - 2] != '#')
        return false;
    while (*a == '#')
        a++;
    while (b > a && b[-1] == '#')
        b--;
    while (a < b && isspace((unsigned char)*a))
        a++;
    while (b > a && isspace((unsigned char)b[-1]))
        b--;
    if (a == b)
        return false;
    for (const char *p = a; p < b; p++)
        if (!(isalnum((unsigned char)*p) || *p == '_' || *p == '-' ||
              *p == '.'))
            return false;
    snprintf(name, len, "%.*s", (int)(b - a), a);
    return true;
}

/* "12:Name" or "12: Name(args)" with an optional trailing comment. */
static bool s_node(const char *s)
{
    if (!isdigit((unsigned char)*s))
        return false;
    while (isdigit((unsigned char)*s))
        s++;
    while (*s == ' ')
        s++;
    if (*s++ != ':')
        return false;
    while (*s == ' ')
        s++;
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    while (isalnum((unsigned char)*s) || *s == '_')
        s++;
    while (*s == ' ')
        s++;
    if (*s == '(') {
        int depth = 0;
        for (; *s; s++) {
            depth += *s == '(';
            depth -= *s == ')';
            if (depth == 0)
                break;
        }
        if (*s != ')')
            return false;
        s++;
        while (*s == ' ')
            s++;
    }
    return *s == '\0' || *s == '#' || *s == ',' || *s == ';';
}

/* Numbers separated by commas, "->" between groups, at least one arrow. */
static bool s_edge(const char *s)
{
    int arrows = 0;
    bool need_num = true;

    while (*s && *s != '#') {
        if (isspace((unsigned char)*s)) {
            s++;
        } else if (isdigit((unsigned char)*s)) {
            while (isdigit((unsigned char)*s))
                s++;
            need_num = false;
        } else if (*s == ',' && !need_num) {
            need_num = true;
            s++;
        } else if (s[0] == '-' && s[1] == '>' && !need_num) {
            arrows++;
            need_num = true;
            s += 2;
        } else {
            return false;
        }
    }
    return arrows > 0 && !need_num;
}

static s_kind_t s_classify(const char *s, char *name, size_t len)
{
    if (s_header(s, name, len))
        return S_HEADER;
    if (*s == '\0' || *s == '#')
        return S_SKIP;
    if (s_node(s))
        return S_NODE;
    if (s_edge(s))
        return S_EDGE;
    return S_OTHER;
}

/* Append an edge line, writing a chain a->b->c as a->b and b->c. */
static void s_add_edge(text_buf_t *b, const char *s)
{
    char *copy = strdup(s), *hash;

    if (!copy)
        return;
    if ((hash = strchr(copy, '#')) != NULL)
        *hash = '\0';
    char *parts[64];
    int n = 0;
    for (char *p = copy; n < 64;) {
        parts[n++] = p;
        char *a = strstr(p, "->");
        if (!a)
            break;
        *a = '\0';
        p = a + 2;
    }
    for (int i = 0; i + 1 < n; i++) {
        char *from = text_trim(parts[i], strlen(parts[i]));
        char *to = text_trim(parts[i + 1], strlen(parts[i + 1]));
        /* In a chain, a middle group feeds on as a whole. */
        if (from && to)
            text_buf_printf(b, "%s->%s\n", from, to);
        free(from);
        free(to);
    }
    free(copy);
}

static bool s_role_suffix(const char *name, const char *suffix)
{
    size_t n = strlen(name), k = strlen(suffix);
    return n >= k && strcasecmp(name + n - k, suffix) == 0;
}

char *modifier_extract(const char *answer, char **stem, char **down)
{
    char *text = text_unfence(answer ? answer : "");
    s_block_t *blocks = NULL;
    int n = 0;
    bool open = false;
    char *result = NULL;

    if (stem)
        *stem = NULL;
    if (down)
        *down = NULL;
    if (!text)
        return NULL;
    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        char name[128];
        char *line = s_clean(p);
        s_kind_t k = s_classify(line, name, sizeof name);
        if (k == S_HEADER || ((k == S_NODE || k == S_EDGE) && !open)) {
            s_block_t *v = realloc(blocks, (size_t)(n + 1) * sizeof *v);
            if (!v)
                break;
            blocks = v;
            snprintf(blocks[n].name, sizeof blocks[n].name, "%s",
                     k == S_HEADER ? name : "cell");
            text_buf_init(&blocks[n].body);
            n++;
            open = true;
        }
        if (k == S_NODE) {
            text_buf_puts(&blocks[n - 1].body, line);
            text_buf_puts(&blocks[n - 1].body, "\n");
        } else if (k == S_EDGE) {
            s_add_edge(&blocks[n - 1].body, line);
        } else if (k == S_OTHER) {
            open = false;
        }
        if (!e)
            break;
        p = e + 1;
    }
    int cell = -1, st = -1, dn = -1;
    for (int i = 0; i < n; i++) {
        if (blocks[i].body.len == 0)
            continue;
        if (s_role_suffix(blocks[i].name, "_stem"))
            st = i;
        else if (s_role_suffix(blocks[i].name, "_downsample"))
            dn = i;
        else
            cell = i;
    }
    int want[3] = {cell, st, dn};
    char **dst[3] = {&result, stem, down};
    for (int j = 0; j < 3; j++) {
        if (want[j] < 0 || !dst[j])
            continue;
        text_buf_t b;
        text_buf_init(&b);
        text_buf_printf(&b, "##%s##\n", blocks[want[j]].name);
        text_buf_puts(&b, blocks[want[j]].body.s);
        *dst[j] = text_buf_take(&b);
    }
    for (int i = 0; i < n; i++)
        text_buf_free(&blocks[i].body);
    free(blocks);
    free(text);
    return result;
}

char *modifier_rename(const char *block, const char *name)
{
    text_buf_t b;
    const char *s = block;

    while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
        s++;
    text_buf_init(&b);
    text_buf_printf(&b, "##%s##\n", name);
    if (s[0] == '#' && s[1] == '#') {
        const char *e = strchr(s, '\n');
        s = e ? e + 1 : s + strlen(s);
    }
    text_buf_puts(&b, s);
    return text_buf_take(&b);
}

char *modifier_design_text(const graph_design_t *d, const char *name)
{
    graph_design_t *c = graph_design_clone(d);
    char *s = NULL;

    if (!c)
        return NULL;
    char *nm = strdup(name);
    if (nm) {
        free(c->cell->name);
        c->cell->name = nm;
        s = graph_design_print(c);
    }
    graph_design_destroy(&c);
    return s;
}
