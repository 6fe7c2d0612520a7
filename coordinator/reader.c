/*
 * reader.c - inspirations and the Reader agent (see reader.h).
 *
 * Importing is strict about shape and lenient about spelling: a JSON
 * entry must be an object with a text under "inspiration", "proposal" or
 * "text" (or a plain string), and anything else is an error naming the
 * entry, so a wrong file is never half-imported.
 */
#include "reader.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

void insp_list_init(insp_list_t *l)
{
    memset(l, 0, sizeof *l);
    l->next_id = 1;
}

static void s_insp_free(inspiration_t *x)
{
    free(x->text);
    free(x->source);
    free(x->paper_id);
    free(x->external_id);
    free(x->emb);
}

void insp_list_free(insp_list_t *l)
{
    for (int i = 0; i < l->n; i++)
        s_insp_free(&l->v[i]);
    free(l->v);
    insp_list_init(l);
}

const inspiration_t *insp_list_get(const insp_list_t *l, int64_t id)
{
    for (int i = 0; i < l->n; i++)
        if (l->v[i].id == id)
            return &l->v[i];
    return NULL;
}

static char *s_opt(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int64_t insp_list_add(insp_list_t *l, int64_t id, const char *text,
                      const char *source, const char *paper_id,
                      const char *external_id)
{
    char *t = text_squash(text ? text : "");

    if (!t)
        return -1;
    if (!*t) {
        free(t);
        return 0;
    }
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->v[i].text, t) == 0) {
            free(t);
            return l->v[i].id;
        }
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 64;
        inspiration_t *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) {
            free(t);
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    inspiration_t *x = &l->v[l->n];
    memset(x, 0, sizeof *x);
    x->id = id > 0 ? id : l->next_id;
    x->text = t;
    x->source = s_opt(source);
    x->paper_id = s_opt(paper_id);
    x->external_id = s_opt(external_id);
    if ((source && *source && !x->source) ||
        (paper_id && *paper_id && !x->paper_id) ||
        (external_id && *external_id && !x->external_id)) {
        s_insp_free(x);
        return -1;
    }
    if (x->id >= l->next_id)
        l->next_id = x->id + 1;
    l->n++;
    return x->id;
}

/* A JSON scalar as text ("12", "abc"); NULL for null or absent. */
static char *s_scalar(json_t *v)
{
    char buf[64];

    if (json_is_string(v))
        return strdup(json_string_value(v));
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
        return strdup(buf);
    }
    if (json_is_real(v)) {
        snprintf(buf, sizeof buf, "%g", json_real_value(v));
        return strdup(buf);
    }
    return NULL;
}

/* Check every entry of a JSON import before adding any. */
static int s_json_check(json_t *a, const char *path, char *err, size_t errlen)
{
    size_t i;
    json_t *e;

    if (!json_is_array(a)) {
        snprintf(err, errlen, "%s: expected a JSON list of inspirations", path);
        return -1;
    }
    json_array_foreach(a, i, e)
    {
        if (json_is_string(e))
            continue;
        json_t *t = json_object_get(e, "inspiration");
        if (!t)
            t = json_object_get(e, "proposal");
        if (!t)
            t = json_object_get(e, "text");
        if (!json_is_object(e) || !json_is_string(t)) {
            snprintf(err, errlen,
                     "%s: entry %zu has no text (\"inspiration\", "
                     "\"proposal\" or \"text\")",
                     path, i + 1);
            return -1;
        }
    }
    return 0;
}

static int s_import_json(insp_list_t *l, json_t *a, const char *path,
                         const char *base, char *err, size_t errlen)
{
    size_t i;
    json_t *e;
    int added = 0;

    if (s_json_check(a, path, err, errlen) != 0)
        return -1;
    json_array_foreach(a, i, e)
    {
        const char *text;
        char *pid = NULL, *xid = NULL, *src = NULL;
        if (json_is_string(e)) {
            text = json_string_value(e);
        } else {
            json_t *t = json_object_get(e, "inspiration");
            if (!t)
                t = json_object_get(e, "proposal");
            if (!t)
                t = json_object_get(e, "text");
            text = json_string_value(t);
            pid = s_scalar(json_object_get(e, "paper_id"));
            xid = s_scalar(json_object_get(e, "id"));
            src = s_scalar(json_object_get(e, "source"));
        }
        int64_t before = l->next_id;
        int64_t id = insp_list_add(l, 0, text, src ? src : base, pid, xid);
        free(pid);
        free(xid);
        free(src);
        if (id < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            return -1;
        }
        added += l->next_id != before;
    }
    return added;
}

static int s_import_lines(insp_list_t *l, char *text, const char *path,
                          const char *base, char *err, size_t errlen)
{
    int added = 0;

    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        char *s = p;
        while (*s == ' ' || *s == '\t')
            s++;
        if (*s && *s != '#') {
            int64_t before = l->next_id;
            if (insp_list_add(l, 0, s, base, NULL, NULL) < 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                return -1;
            }
            added += l->next_id != before;
        }
        if (!e)
            break;
        p = e + 1;
    }
    return added;
}

int insp_list_import(insp_list_t *l, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = text_file_read(path, 0, &len, err, errlen);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    int rc;

    if (!text)
        return -1;
    const char *p = text;
    while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
        p++;
    insp_list_t copy;
    insp_list_init(&copy);
    /* Work on a copy so that a failure leaves l as it was. */
    for (int i = 0; i < l->n; i++)
        if (insp_list_add(&copy, l->v[i].id, l->v[i].text, l->v[i].source,
                          l->v[i].paper_id, l->v[i].external_id) < 0) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = -1;
            goto out;
        }
    copy.next_id = l->next_id;
    if (*p == '[') {
        json_error_t je;
        json_t *a = json_loads(text, 0, &je);
        if (!a) {
            snprintf(err, errlen, "%s:%d: not valid JSON: %s", path, je.line,
                     je.text);
            rc = -1;
            goto out;
        }
        rc = s_import_json(&copy, a, path, base, err, errlen);
        json_decref(a);
    } else {
        rc = s_import_lines(&copy, text, path, base, err, errlen);
    }
    if (rc >= 0) {
        insp_list_free(l);
        *l = copy;
        insp_list_init(&copy);
    }
out:
    insp_list_free(&copy);
    free(text);
    return rc;
}

char *insp_list_to_json(const insp_list_t *l)
{
    json_t *a = json_array();
    char *s;

    for (int i = 0; i < l->n && a; i++) {
        const inspiration_t *x = &l->v[i];
        json_t *o = json_pack(
            "{s:I, s:o, s:s, s:o}", "id", (json_int_t)x->id, "paper_id",
            x->paper_id ? json_string(x->paper_id) : json_null(), "inspiration",
            x->text, "source",
            x->source ? json_string(x->source) : json_null());
        if (o && x->external_id)
            json_object_set_new(o, "external_id", json_string(x->external_id));
        json_array_append_new(a, o);
    }
    s = a ? json_dumps(a, JSON_INDENT(2)) : NULL;
    json_decref(a);
    return s;
}

int reader_parse(const char *answer, char ***out)
{
    char **v;
    int n = text_tag_all(answer, "inspiration", &v);

    for (int i = 0; i < n; i++) {
        char *s = text_squash(v[i]);
        if (s) {
            free(v[i]);
            v[i] = s;
        }
    }
    *out = v;
    return n;
}

/* Cut text into pieces near chunk characters, at blank lines if any. */
static int s_chunks(const char *text, int chunk, const char ***starts,
                    size_t **lens)
{
    size_t total = strlen(text);
    int n = 0, cap = 0;
    const char **s = NULL;
    size_t *l = NULL;

    for (size_t at = 0; at < total;) {
        size_t end = at + (size_t)chunk;
        if (end >= total) {
            end = total;
        } else {
            /* Prefer a paragraph break in the last third of the piece. */
            const char *p = text + at + (size_t)chunk * 2 / 3;
            const char *brk = NULL;
            for (; p < text + end - 1; p++)
                if (p[0] == '\n' && p[1] == '\n')
                    brk = p;
            if (brk)
                end = (size_t)(brk - text) + 2;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            const char **ns = realloc(s, (size_t)cap * sizeof *s);
            size_t *nl = realloc(l, (size_t)cap * sizeof *l);
            if (ns)
                s = ns;
            if (nl)
                l = nl;
            if (!ns || !nl) {
                free(s);
                free(l);
                return -1;
            }
        }
        s[n] = text + at;
        l[n] = end - at;
        n++;
        at = end;
    }
    *starts = s;
    *lens = l;
    return n;
}

int reader_read(agent_env_t *env, const char *path, int chunk_chars,
                int max_chunks, int per_chunk, insp_list_t *l,
                reader_report_t *rep, char *err, size_t errlen)
{
    size_t len;
    char *text = text_file_read(path, 0, &len, err, errlen);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    const char **starts = NULL;
    size_t *lens = NULL;
    int rc = 0;

    memset(rep, 0, sizeof *rep);
    if (!text)
        return -1;
    if (len >= 5 && memcmp(text, "%PDF-", 5) == 0) {
        snprintf(err, errlen,
                 "%s: a PDF file; convert it to text first (for example "
                 "pdftotext %s)",
                 path, path);
        free(text);
        return -1;
    }
    if (strlen(text) != len) {
        snprintf(err, errlen, "%s: not a text file (holds NUL bytes)", path);
        free(text);
        return -1;
    }
    if (!env->llm) {
        snprintf(err, errlen, "%s: reading papers needs an LLM endpoint", path);
        free(text);
        return -1;
    }
    int n =
        s_chunks(text, chunk_chars > 1000 ? chunk_chars : 1000, &starts, &lens);
    if (n < 0) {
        snprintf(err, errlen, "%s: out of memory", path);
        free(text);
        return -1;
    }
    if (max_chunks > 0 && n > max_chunks)
        n = max_chunks;
    for (int i = 0; i < n && rc == 0; i++) {
        char count[16], source[300];
        char *piece = strndup(starts[i], lens[i]);
        snprintf(count, sizeof count, "%d", per_chunk > 0 ? per_chunk : 5);
        snprintf(source, sizeof source, "%s (part %d of %d)", base, i + 1, n);
        prompt_var_t vars[] = {
            {"source", source}, {"count", count}, {"text", piece}};
        char *prompt =
            piece ? prompts_render(env->prompts, "read", vars, 3, err, errlen)
                  : NULL;
        free(piece);
        if (!prompt) {
            rc = -1;
            break;
        }
        llm_message_t m = {"user", prompt};
        char *answer = NULL;
        rc = llm_chat(env->llm, "reader", env->iteration, &m, 1, &answer, err,
                      errlen);
        free(prompt);
        if (rc != LLM_OK)
            break;
        rep->chunks++;
        char **ideas;
        int k = reader_parse(answer, &ideas);
        free(answer);
        for (int j = 0; j < k; j++) {
            if (text_word_count(ideas[j]) > INSPIRATION_MAX_WORDS) {
                rep->too_long++;
                continue;
            }
            int64_t before = l->next_id;
            int64_t id = insp_list_add(l, 0, ideas[j], base, base, NULL);
            if (id < 0) {
                snprintf(err, errlen, "%s: out of memory", path);
                rc = -1;
                break;
            }
            if (id == 0)
                continue;
            if (l->next_id != before)
                rep->added++;
            else
                rep->duplicates++;
        }
        text_list_free(ideas, k);
    }
    free(starts);
    free(lens);
    free(text);
    return rc;
}
