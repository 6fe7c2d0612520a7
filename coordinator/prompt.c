/*
 * prompt.c - templates and their rendering (see prompt.h).
 *
 * Rendering is a single pass: values are copied in verbatim and never
 * scanned for placeholders again, so a block or an answer that happens
 * to contain "{{" cannot change the prompt around it.
 */
#include "prompt.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph_ops.h"
#include "text.h"

typedef struct s_entry {
    char *name;
    char *text; /* owned when loaded from a folder */
    bool owned;
} s_entry_t;

struct prompts {
    int n;
    s_entry_t *v;
};

static s_entry_t *s_find(const prompts_t *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (strcmp(p->v[i].name, name) == 0)
            return &p->v[i];
    return NULL;
}

/* Load DIR/NAME.txt over the built-in NAME (or as a new template). */
static int s_load_dir(prompts_t *p, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;

    if (!d) {
        snprintf(err, errlen, "prompts folder %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n <= 4 || strcmp(e->d_name + n - 4, ".txt") != 0)
            continue;
        char path[4096], name[256];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        snprintf(name, sizeof name, "%.*s", (int)(n - 4), e->d_name);
        char *text = text_file_read(path, 1 << 20, NULL, err, errlen);
        if (!text) {
            closedir(d);
            return -1;
        }
        s_entry_t *s = s_find(p, name);
        if (!s) {
            s_entry_t *v = realloc(p->v, (size_t)(p->n + 1) * sizeof *v);
            if (!v) {
                free(text);
                closedir(d);
                snprintf(err, errlen, "prompts: out of memory");
                return -1;
            }
            p->v = v;
            s = &p->v[p->n++];
            s->name = strdup(name);
            s->owned = false;
            s->text = NULL;
        }
        if (s->owned)
            free(s->text);
        s->text = text;
        s->owned = true;
    }
    closedir(d);
    return 0;
}

prompts_t *prompts_new(const char *dir, char *err, size_t errlen)
{
    prompts_t *p = calloc(1, sizeof *p);
    int n = 0;

    if (!p)
        goto nomem;
    while (prompt_files[n].name)
        n++;
    p->v = calloc((size_t)n + 1, sizeof *p->v);
    if (!p->v)
        goto nomem;
    for (int i = 0; i < n; i++) {
        p->v[i].name = strdup(prompt_files[i].name);
        p->v[i].text = (char *)prompt_files[i].text;
        if (!p->v[i].name)
            goto nomem;
        p->n++;
    }
    if (dir && *dir && s_load_dir(p, dir, err, errlen) != 0) {
        prompts_destroy(&p);
        return NULL;
    }
    return p;
nomem:
    snprintf(err, errlen, "prompts: out of memory");
    prompts_destroy(&p);
    return NULL;
}

void prompts_destroy(prompts_t **pp)
{
    prompts_t *p = *pp;

    if (!p)
        return;
    for (int i = 0; i < p->n; i++) {
        free(p->v[i].name);
        if (p->v[i].owned)
            free(p->v[i].text);
    }
    free(p->v);
    free(p);
    *pp = NULL;
}

const char *prompts_text(const prompts_t *p, const char *name)
{
    s_entry_t *e = s_find(p, name);
    return e ? e->text : NULL;
}

char *prompts_render(const prompts_t *p, const char *name,
                     const prompt_var_t *vars, int n_vars, char *err,
                     size_t errlen)
{
    const char *t = prompts_text(p, name);
    text_buf_t b;

    if (!t) {
        snprintf(err, errlen, "prompt %s: no such template", name);
        return NULL;
    }
    text_buf_init(&b);
    while (*t) {
        const char *open = strstr(t, "{{");
        if (!open) {
            text_buf_puts(&b, t);
            break;
        }
        const char *close = strstr(open + 2, "}}");
        if (!close) {
            text_buf_puts(&b, t);
            break;
        }
        text_buf_add(&b, t, (size_t)(open - t));
        size_t klen = (size_t)(close - open - 2);
        const char *value = NULL;
        for (int i = 0; i < n_vars; i++)
            if (strlen(vars[i].name) == klen &&
                strncmp(vars[i].name, open + 2, klen) == 0) {
                value = vars[i].value ? vars[i].value : "";
                break;
            }
        if (!value) {
            snprintf(err, errlen, "prompt %s: no value for {{%.*s}}", name,
                     (int)klen, open + 2);
            text_buf_free(&b);
            return NULL;
        }
        text_buf_puts(&b, value);
        t = close + 2;
    }
    char *s = text_buf_take(&b);
    if (!s)
        snprintf(err, errlen, "prompt %s: out of memory", name);
    return s;
}

/* "Conv2d(out_channels, kernel_size, stride=1, ...)" for one op. */
static void s_signature(text_buf_t *b, const graph_op_info_t *op)
{
    text_buf_puts(b, op->name);
    if (op->variadic) {
        text_buf_puts(b, "(...)");
        return;
    }
    if (op->n_args == 0)
        return;
    text_buf_puts(b, "(");
    for (int i = 0; i < op->n_args; i++) {
        const graph_arg_info_t *a = &op->args[i];
        text_buf_printf(b, "%s%s", i ? ", " : "", a->name);
        if (!a->required && a->dflt)
            text_buf_printf(b, "=%s", a->dflt);
    }
    text_buf_puts(b, ")");
}

char *prompt_operations(void)
{
    text_buf_t b;

    text_buf_init(&b);
    for (int i = 0; i < GRAPH_OP_COUNT; i++) {
        const graph_op_info_t *op = graph_op_info((graph_op_t)i);
        if (op->min_inputs == 0 || op->op == GRAPH_OP_OUTPUT)
            continue;
        text_buf_puts(&b, "- ");
        s_signature(&b, op);
        text_buf_printf(&b, ": %s", op->summary);
        if (op->max_inputs != 1) {
            if (op->max_inputs < 0)
                text_buf_printf(&b, " Takes %d or more inputs", op->min_inputs);
            else if (op->max_inputs == op->min_inputs)
                text_buf_printf(&b, " Takes exactly %d inputs", op->min_inputs);
            else
                text_buf_printf(&b, " Takes %d to %d inputs", op->min_inputs,
                                op->max_inputs);
            text_buf_puts(&b, op->ordered ? ", inputs in order." : ".");
        }
        text_buf_puts(&b, "\n");
    }
    return text_buf_take(&b);
}

char *prompts_format(const prompts_t *p, bool two_input)
{
    char *ops = prompt_operations();
    char err[256];
    text_buf_t in;

    if (!ops)
        return NULL;
    text_buf_init(&in);
    if (two_input) {
        text_buf_printf(&in,
                        "A cell has the nodes `input1` and `input2`, which "
                        "no edge enters (input1: %s input2: %s). Stem and "
                        "downsample blocks have `input` instead.",
                        graph_op_info(GRAPH_OP_INPUT1)->summary,
                        graph_op_info(GRAPH_OP_INPUT2)->summary);
    } else {
        text_buf_printf(&in,
                        "Every block has the node `input`, which no edge "
                        "enters (%s)",
                        graph_op_info(GRAPH_OP_INPUT)->summary);
    }
    char *inputs = text_buf_take(&in);
    prompt_var_t vars[] = {{"operations", ops}, {"inputs", inputs}};
    char *s =
        inputs ? prompts_render(p, "format", vars, 2, err, sizeof err) : NULL;
    free(inputs);
    free(ops);
    return s;
}
