/*
 * reflector.c - experiences and retrieval (see reflector.h).
 *
 * Embeddings are asked for lazily and in batches (everything a retrieval
 * needs that has none yet, in one request), and kept with the experience
 * or inspiration, so each text is embedded once per search.  When the
 * endpoint has no embeddings, or an embedding request fails, retrieval
 * falls back to word counts for that call; nothing fails because of it.
 */
#include "reflector.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

#define EMBED_BATCH 64

struct reflector {
    int n, cap;
    experience_t *v;
    int64_t next_id;
};

const char *exp_kind_name(exp_kind_t k)
{
    switch (k) {
    case EXP_DEVELOPMENT:
        return "development";
    case EXP_RESEARCH:
        return "research";
    case EXP_SUCCESS:
        return "success";
    }
    return "unknown";
}

reflector_t *reflector_new(void)
{
    reflector_t *r = calloc(1, sizeof *r);

    if (r)
        r->next_id = 1;
    return r;
}

void experience_free(experience_t *x)
{
    free(x->inspiration);
    free(x->error);
    free(x->text);
    free(x->emb);
    x->inspiration = x->error = x->text = NULL;
    x->emb = NULL;
}

void reflector_destroy(reflector_t **rp)
{
    reflector_t *r = *rp;

    if (!r)
        return;
    for (int i = 0; i < r->n; i++)
        experience_free(&r->v[i]);
    free(r->v);
    free(r);
    *rp = NULL;
}

int reflector_count(const reflector_t *r)
{
    return r->n;
}

const experience_t *reflector_get(const reflector_t *r, int i)
{
    return i >= 0 && i < r->n ? &r->v[i] : NULL;
}

static char *s_dup(const char *s)
{
    return s ? strdup(s) : NULL;
}

int experience_copy(experience_t *dst, const experience_t *src)
{
    *dst = *src;
    dst->inspiration = s_dup(src->inspiration);
    dst->error = s_dup(src->error);
    dst->text = s_dup(src->text);
    dst->emb = NULL;
    if (src->emb && src->dim > 0) {
        dst->emb = malloc((size_t)src->dim * sizeof *dst->emb);
        if (dst->emb)
            memcpy(dst->emb, src->emb, (size_t)src->dim * sizeof *dst->emb);
    }
    if ((src->inspiration && !dst->inspiration) ||
        (src->error && !dst->error) || (src->text && !dst->text) ||
        (src->emb && src->dim > 0 && !dst->emb)) {
        experience_free(dst);
        return -1;
    }
    return 0;
}

int64_t reflector_add(reflector_t *r, const experience_t *x)
{
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 32;
        experience_t *v = realloc(r->v, (size_t)cap * sizeof *v);
        if (!v)
            return -1;
        r->v = v;
        r->cap = cap;
    }
    experience_t *e = &r->v[r->n];
    if (experience_copy(e, x) != 0)
        return -1;
    if (e->id <= 0)
        e->id = r->next_id;
    if (e->id >= r->next_id)
        r->next_id = e->id + 1;
    r->n++;
    return e->id;
}

char *experience_key_text(const experience_t *x)
{
    text_buf_t b;

    text_buf_init(&b);
    if (x->text)
        text_buf_puts(&b, x->text);
    if (x->inspiration) {
        text_buf_puts(&b, b.len ? " " : "");
        text_buf_puts(&b, x->inspiration);
    }
    if (x->error && b.len == 0)
        text_buf_puts(&b, x->error);
    return text_buf_take(&b);
}

char *reflector_parse_lesson(const char *answer, const char *tag)
{
    char **v;
    int n = text_tag_all(answer, tag, &v);
    char *s = NULL;

    if (n > 0 && v[n - 1][0]) {
        s = text_squash(v[n - 1]);
    } else {
        /* The last line with words on it. */
        const char *best = NULL;
        size_t blen = 0;
        for (const char *p = answer; *p;) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            for (size_t i = 0; i < len; i++)
                if (isalnum((unsigned char)p[i])) {
                    best = p;
                    blen = len;
                    break;
                }
            p += len + (e ? 1 : 0);
        }
        char *line = best ? strndup(best, blen) : strdup("");
        s = line ? text_squash(line) : NULL;
        free(line);
    }
    text_list_free(v, n);
    if (!s)
        return NULL;
    /* Cut to 80 words. */
    int words = 0;
    bool in = false;
    for (char *p = s; *p; p++) {
        bool sp = *p == ' ';
        if (!sp && !in && ++words > 80) {
            p[-1] = '\0';
            break;
        }
        in = !sp;
    }
    return s;
}

static const experience_t *s_store(reflector_t *r, experience_t *x)
{
    int64_t id = reflector_add(r, x);

    experience_free(x);
    return id > 0 ? &r->v[r->n - 1] : NULL;
}

static void s_hash(char dst[33], const char *src)
{
    snprintf(dst, 33, "%s", src ? src : "");
}

const experience_t *reflector_development(reflector_t *r, agent_env_t *env,
                                          const char *block, const char *error,
                                          int64_t insp_id, const char *insp,
                                          int *llm_rc, char *err, size_t errlen)
{
    experience_t x;
    char *answer = NULL;

    memset(&x, 0, sizeof x);
    x.kind = EXP_DEVELOPMENT;
    x.iteration = env->iteration;
    x.inspiration_id = insp_id;
    x.inspiration = s_dup(insp);
    x.error = s_dup(error);
    *llm_rc = LLM_ERR_USAGE;

    char *format = prompts_format(env->prompts, agent_two_input(env));
    prompt_var_t vars[] = {
        {"format", format}, {"error", error}, {"block", block}};
    char *prompt = format ? prompts_render(env->prompts, "reflect_dev", vars, 3,
                                           err, errlen)
                          : NULL;
    free(format);
    if (prompt && env->llm) {
        llm_message_t m = {"user", prompt};
        *llm_rc = llm_chat(env->llm, "reflector", env->iteration, &m, 1,
                           &answer, err, errlen);
        if (*llm_rc == LLM_OK)
            x.text = reflector_parse_lesson(answer, "tip");
    }
    free(prompt);
    free(answer);
    return s_store(r, &x);
}

static void s_pct(char *buf, size_t len, double acc)
{
    snprintf(buf, len, "%.2f%%", acc);
}

const experience_t *reflector_research(reflector_t *r, agent_env_t *env,
                                       const char *parent, const char *child,
                                       const char *parent_hash,
                                       const char *child_hash,
                                       double parent_acc, double child_acc,
                                       int64_t insp_id, const char *insp,
                                       int *llm_rc, char *err, size_t errlen)
{
    experience_t x;
    char *answer = NULL, pa[32], ca[32];

    memset(&x, 0, sizeof x);
    x.kind = EXP_RESEARCH;
    x.iteration = env->iteration;
    s_hash(x.hash, child_hash);
    s_hash(x.parent_hash, parent_hash);
    x.inspiration_id = insp_id;
    x.inspiration = s_dup(insp);
    x.delta = child_acc - parent_acc;
    *llm_rc = LLM_ERR_USAGE;

    s_pct(pa, sizeof pa, parent_acc);
    s_pct(ca, sizeof ca, child_acc);
    prompt_var_t vars[] = {{"dataset", env->dataset ? env->dataset : ""},
                           {"parent_acc", pa},
                           {"child_acc", ca},
                           {"parent", parent},
                           {"inspiration", insp ? insp : ""},
                           {"child", child}};
    char *prompt =
        prompts_render(env->prompts, "reflect_res", vars, 6, err, errlen);
    if (prompt && env->llm) {
        llm_message_t m = {"user", prompt};
        *llm_rc = llm_chat(env->llm, "reflector", env->iteration, &m, 1,
                           &answer, err, errlen);
        if (*llm_rc == LLM_OK)
            x.text = reflector_parse_lesson(answer, "suggestion");
    }
    free(prompt);
    free(answer);
    return s_store(r, &x);
}

const experience_t *reflector_success(reflector_t *r, agent_env_t *env,
                                      const char *parent_hash,
                                      const char *child_hash, double delta,
                                      int64_t insp_id, const char *insp)
{
    experience_t x;

    memset(&x, 0, sizeof x);
    x.kind = EXP_SUCCESS;
    x.iteration = env->iteration;
    s_hash(x.hash, child_hash);
    s_hash(x.parent_hash, parent_hash);
    x.inspiration_id = insp_id;
    x.inspiration = s_dup(insp);
    x.delta = delta;
    return s_store(r, &x);
}

/* ---------------------------------------------------------- similarity */

static const char *s_stop[] = {
    "a",    "an",    "and",  "the",  "of",   "to",    "in",   "on",
    "for",  "with",  "by",   "is",   "are",  "be",    "it",   "its",
    "that", "this",  "as",   "or",   "at",   "from",  "can",  "may",
    "use",  "using", "into", "than", "more", "which", "each", NULL};

static bool s_stopword(const char *w, size_t n)
{
    for (int i = 0; s_stop[i]; i++)
        if (strlen(s_stop[i]) == n && strncmp(s_stop[i], w, n) == 0)
            return true;
    return false;
}

static int s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Lower-case words of s, sorted (malloc'd array of malloc'd words). */
static int s_words(const char *s, char ***out)
{
    int n = 0, cap = 0;
    char **v = NULL;

    while (*s) {
        while (*s && !isalnum((unsigned char)*s))
            s++;
        const char *w = s;
        while (*s && isalnum((unsigned char)*s))
            s++;
        size_t len = (size_t)(s - w);
        if (len < 2)
            continue;
        char *word = strndup(w, len);
        if (!word)
            break;
        for (char *p = word; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        if (s_stopword(word, len)) {
            free(word);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            char **nv = realloc(v, (size_t)cap * sizeof *v);
            if (!nv) {
                free(word);
                break;
            }
            v = nv;
        }
        v[n++] = word;
    }
    if (n > 1)
        qsort(v, (size_t)n, sizeof *v, s_cmp_str);
    *out = v;
    return n;
}

double reflector_lexical_similarity(const char *a, const char *b)
{
    char **wa, **wb;
    int na = s_words(a, &wa), nb = s_words(b, &wb);
    double dot = 0, qa = 0, qb = 0;

    /* Walk both sorted lists, counting runs of equal words. */
    int i = 0, j = 0;
    while (i < na || j < nb) {
        const char *w =
            i < na && (j >= nb || strcmp(wa[i], wb[j]) <= 0) ? wa[i] : wb[j];
        int ca = 0, cb = 0;
        while (i < na && strcmp(wa[i], w) == 0)
            i++, ca++;
        while (j < nb && strcmp(wb[j], w) == 0)
            j++, cb++;
        dot += (double)ca * cb;
        qa += (double)ca * ca;
        qb += (double)cb * cb;
    }
    text_list_free(wa, na);
    text_list_free(wb, nb);
    return qa > 0 && qb > 0 ? dot / sqrt(qa * qb) : 0;
}

static double s_dot(const float *a, const float *b, int d)
{
    double s = 0;

    for (int i = 0; i < d; i++)
        s += (double)a[i] * b[i];
    return s;
}

/*
 * Embed the given texts into the slots (float **, int *) in one or more
 * batched requests.  Returns 0 when every slot is filled.
 */
static int s_embed(agent_env_t *env, const char **texts, float ***slots,
                   int **dims, int n)
{
    char err[512];

    for (int at = 0; at < n; at += EMBED_BATCH) {
        int k = n - at < EMBED_BATCH ? n - at : EMBED_BATCH;
        float *v = NULL;
        int dim = 0;
        if (llm_embed(env->llm, "reflector", env->iteration, texts + at, k, &v,
                      &dim, err, sizeof err) != LLM_OK)
            return -1;
        for (int i = 0; i < k; i++) {
            float *row = malloc((size_t)dim * sizeof *row);
            if (!row) {
                free(v);
                return -1;
            }
            memcpy(row, v + (size_t)i * dim, (size_t)dim * sizeof *row);
            free(*slots[at + i]);
            *slots[at + i] = row;
            *dims[at + i] = dim;
        }
        free(v);
    }
    return 0;
}

/* Make sure experiences of kind (all kinds when kind < 0) have
 * embeddings; false when embeddings cannot be used now. */
static bool s_embed_experiences(reflector_t *r, agent_env_t *env, int kind)
{
    const char *texts[r->n > 0 ? r->n : 1];
    char *owned[r->n > 0 ? r->n : 1];
    float **slots[r->n > 0 ? r->n : 1];
    int *dims[r->n > 0 ? r->n : 1];
    int n = 0;

    if (!env->llm || !llm_has_embeddings(env->llm))
        return false;
    for (int i = 0; i < r->n; i++) {
        experience_t *x = &r->v[i];
        if ((kind >= 0 && (int)x->kind != kind) || x->emb)
            continue;
        owned[n] = experience_key_text(x);
        if (!owned[n])
            break;
        texts[n] = owned[n];
        slots[n] = &x->emb;
        dims[n] = &x->dim;
        n++;
    }
    int rc = n > 0 ? s_embed(env, texts, slots, dims, n) : 0;
    for (int i = 0; i < n; i++)
        free(owned[i]);
    return rc == 0;
}

static bool s_embed_query(agent_env_t *env, const char *query, float **q,
                          int *dim)
{
    float **slot = q;
    int *d = dim;

    *q = NULL;
    return s_embed(env, &query, &slot, &d, 1) == 0;
}

static double s_similarity(const experience_t *x, const char *query,
                           const float *q, int qdim)
{
    if (q && x->emb && x->dim == qdim)
        return s_dot(q, x->emb, qdim);
    char *key = experience_key_text(x);
    double s = key ? reflector_lexical_similarity(query, key) : 0;
    free(key);
    return s;
}

static bool s_has_lesson(const experience_t *x)
{
    return x->text || x->error || x->inspiration;
}

static int s_strcmp0(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "");
}

/*
 * Order among lessons that score alike (the same lesson learnt twice
 * scores the same against any query): by what they are about, not by
 * when they were learnt.  Results arrive in whatever order the workers
 * finish, so creation order would make the prompt, and with it a
 * replayed search, depend on timing.
 */
static int s_tie(const experience_t *a, const experience_t *b)
{
    int c;

    if (a->iteration != b->iteration)
        return a->iteration < b->iteration ? -1 : 1;
    if ((c = strcmp(a->hash, b->hash)) != 0 ||
        (c = s_strcmp0(a->inspiration, b->inspiration)) != 0 ||
        (c = s_strcmp0(a->error, b->error)) != 0 ||
        (c = s_strcmp0(a->text, b->text)) != 0)
        return c;
    return a->id < b->id ? -1 : a->id > b->id;
}

char *reflector_lessons(reflector_t *r, agent_env_t *env, exp_kind_t kind,
                        const char *query, int k)
{
    int idx[r->n > 0 ? r->n : 1];
    double score[r->n > 0 ? r->n : 1];
    int n = 0;
    float *q = NULL;
    int qdim = 0;
    text_buf_t b;

    for (int i = 0; i < r->n; i++)
        if (r->v[i].kind == kind && s_has_lesson(&r->v[i]))
            n++;
    if (n == 0 || k <= 0)
        return strdup("");
    if (s_embed_experiences(r, env, (int)kind))
        s_embed_query(env, query, &q, &qdim);

    n = 0;
    for (int i = 0; i < r->n; i++) {
        const experience_t *x = &r->v[i];
        if (x->kind != kind || !s_has_lesson(x))
            continue;
        double s = s_similarity(x, query, q, qdim);
        int j = n++;
        while (j > 0 && (score[j - 1] < s ||
                         (score[j - 1] == s &&
                          s_tie(x, &r->v[idx[j - 1]]) < 0))) {
            idx[j] = idx[j - 1];
            score[j] = score[j - 1];
            j--;
        }
        idx[j] = i;
        score[j] = s;
    }
    free(q);
    text_buf_init(&b);
    for (int i = 0; i < n && i < k; i++) {
        const experience_t *x = &r->v[idx[i]];
        switch (kind) {
        case EXP_DEVELOPMENT:
            text_buf_printf(&b, "- %s", x->text ? x->text : "");
            if (!x->text)
                text_buf_printf(&b, "A block failed with: %s", x->error);
            break;
        case EXP_RESEARCH:
            if (x->text)
                text_buf_printf(&b,
                                "- %s (learnt when \"%s\" cost %.2f "
                                "points)",
                                x->text,
                                x->inspiration ? x->inspiration : "an edit",
                                -x->delta);
            else
                text_buf_printf(&b, "- \"%s\" cost %.2f points",
                                x->inspiration ? x->inspiration : "an edit",
                                -x->delta);
            break;
        case EXP_SUCCESS:
            text_buf_printf(&b, "- \"%s\" gained %.2f points",
                            x->inspiration ? x->inspiration : "an edit",
                            x->delta);
            break;
        }
        text_buf_puts(&b, "\n");
    }
    char *s = text_buf_take(&b);
    return s ? s : strdup("");
}

/* Embed the candidates that have no embedding yet. */
static bool s_embed_inspirations(agent_env_t *env, insp_list_t *l,
                                 const int64_t *cand, int n)
{
    const char *texts[n > 0 ? n : 1];
    float **slots[n > 0 ? n : 1];
    int *dims[n > 0 ? n : 1];
    int k = 0;

    for (int i = 0; i < n; i++) {
        inspiration_t *x = (inspiration_t *)insp_list_get(l, cand[i]);
        if (!x || x->emb)
            continue;
        texts[k] = x->text;
        slots[k] = &x->emb;
        dims[k] = &x->dim;
        k++;
    }
    return k == 0 || s_embed(env, texts, slots, dims, k) == 0;
}

int reflector_guided_sample(reflector_t *r, agent_env_t *env, insp_list_t *l,
                            const int64_t *cand, int n_cand, int n,
                            int64_t *out)
{
    double score[n_cand > 0 ? n_cand : 1];
    int order[n_cand > 0 ? n_cand : 1];
    bool emb = s_embed_experiences(r, env, -1) &&
               s_embed_inspirations(env, l, cand, n_cand);

    for (int i = 0; i < n_cand; i++) {
        const inspiration_t *x = insp_list_get(l, cand[i]);
        double good = 0, bad = 0;
        for (int j = 0; x && j < r->n; j++) {
            const experience_t *e = &r->v[j];
            if (e->kind == EXP_DEVELOPMENT)
                continue;
            double s = emb && x->emb ? s_similarity(e, x->text, x->emb, x->dim)
                                     : s_similarity(e, x->text, NULL, 0);
            if (e->kind == EXP_SUCCESS && s > good)
                good = s;
            if (e->kind == EXP_RESEARCH && s > bad)
                bad = s;
        }
        score[i] = good - bad + 0.05 * agent_rand_unit(env);
        int j = i;
        while (j > 0 && score[order[j - 1]] < score[i]) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
    int k = n < n_cand ? n : n_cand;
    for (int i = 0; i < k; i++)
        out[i] = cand[order[i]];
    return k;
}
