/*
 * proposer.c - the Proposer agent (see proposer.h).
 *
 * Failures of the model that leave the search able to go on (an answer
 * with no ranking, an endpoint that stays down after its retries) never
 * stop an iteration: the sampled order is as good a guess as any, and
 * the note says what happened.  Only a reached budget or a cancel is
 * passed up.
 */
#include "proposer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "text.h"

static const char *s_parents[] = {"dfs", "best", "llm"};
static const char *s_samples[] = {"random", "guided"};

int proposer_parent_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcasecmp(s, s_parents[i]) == 0)
            return i;
    return -1;
}

int proposer_sample_parse(const char *s)
{
    for (int i = 0; i < 2; i++)
        if (strcasecmp(s, s_samples[i]) == 0)
            return i;
    return -1;
}

const char *proposer_parent_name(proposer_parent_t p)
{
    return p >= 0 && p < 3 ? s_parents[p] : "?";
}

const char *proposer_sample_name(proposer_sample_t s)
{
    return s >= 0 && s < 2 ? s_samples[s] : "?";
}

void proposer_config_default(proposer_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->parent = PROPOSER_PARENT_DFS;
    c->sample = PROPOSER_SAMPLE_RANDOM;
    c->candidates = 10;
    c->rank = true;
    c->lessons = 3;
    c->pairs = 6;
}

void proposals_free(proposals_t *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->v[i].insp);
    free(p->v);
    memset(p, 0, sizeof *p);
}

static int s_push(proposals_t *p, int parent, const inspiration_t *x)
{
    proposal_t *v = realloc(p->v, (size_t)(p->n + 1) * sizeof *v);

    if (!v)
        return -1;
    p->v = v;
    v[p->n].parent = parent;
    v[p->n].insp_id = x->id;
    v[p->n].insp = strdup(x->text);
    if (!v[p->n].insp)
        return -1;
    p->n++;
    return 0;
}

/* Whether an LLM error must stop the search. */
static bool s_fatal(int rc)
{
    return rc == LLM_ERR_BUDGET || rc == LLM_ERR_CANCELLED ||
           rc == LLM_ERR_SINK || rc == LLM_ERR_REPLAY;
}

int proposer_parse_ranking(const char *answer, int n, int *order)
{
    char **tags;
    int nt = text_tag_all(answer, "ranking", &tags);
    const char *src = nt > 0 ? tags[nt - 1] : NULL;
    char *line = NULL;
    bool seen[n > 0 ? n : 1];
    int k = 0;

    memset(seen, 0, sizeof seen);
    if (!src) {
        /* No tags: the last line that is a list of numbers and nothing
         * else ("3, 1, 2" or "Ranking: 3 > 1 > 2"). */
        for (const char *p = answer; *p;) {
            const char *e = strchr(p, '\n');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            int digits = 0, letters = 0;
            const char *q = p;
            if (len > 8 && strncasecmp(q, "ranking:", 8) == 0)
                q += 8;
            for (; q < p + len; q++) {
                digits += isdigit((unsigned char)*q) != 0;
                letters += isalpha((unsigned char)*q) != 0;
            }
            if (digits > 0 && letters == 0) {
                free(line);
                line = strndup(p, len);
            }
            p += len + (e ? 1 : 0);
        }
        src = line;
    }
    for (const char *p = src; p && *p;) {
        if (!isdigit((unsigned char)*p)) {
            p++;
            continue;
        }
        char *end;
        long v = strtol(p, &end, 10);
        p = end;
        if (v >= 1 && v <= n && !seen[v - 1]) {
            seen[v - 1] = true;
            order[k++] = (int)v - 1;
        }
    }
    int ranked = k;
    for (int i = 0; i < n; i++)
        if (!seen[i])
            order[k++] = i;
    free(line);
    text_list_free(tags, nt);
    return ranked;
}

static bool s_excluded(const proposer_hint_t *h, int64_t id)
{
    for (int i = 0; h && i < h->n_exclude; i++)
        if (h->exclude[i] == id)
            return true;
    return false;
}

/* Ids of the inspirations not yet used for parent. */
static int s_unused(const tree_t *t, int parent, const insp_list_t *l,
                    const proposer_hint_t *h, int64_t *out)
{
    int n = 0;

    for (int i = 0; i < l->n; i++)
        if (!tree_inspiration_used(t, parent, l->v[i].id) &&
            !s_excluded(h, l->v[i].id))
            out[n++] = l->v[i].id;
    return n;
}

/* Choose k of the n candidates (in place, first k), randomly. */
static void s_shuffle_pick(agent_env_t *env, int64_t *v, int n, int k)
{
    for (int i = 0; i < k && i < n; i++) {
        int j = i + agent_rand_below(env, n - i);
        int64_t t = v[i];
        v[i] = v[j];
        v[j] = t;
    }
}

/* The no-Reader ablation: the model invents ideas for this parent. */
static int s_invent(const proposer_config_t *cfg, agent_env_t *env,
                    const tree_node_t *parent, insp_list_t *l,
                    const char *lessons, int64_t *ids, int *n, char *err,
                    size_t errlen)
{
    char count[16];
    char *answer = NULL;

    *n = 0;
    snprintf(count, sizeof count, "%d", cfg->invent);
    prompt_var_t vars[] = {{"count", count},
                           {"dataset", env->dataset ? env->dataset : ""},
                           {"experience", lessons},
                           {"block", parent->design}};
    char *prompt = prompts_render(env->prompts, "invent", vars, 4, err, errlen);
    if (!prompt)
        return -1;
    llm_message_t m = {"user", prompt};
    int rc = llm_chat(env->llm, "proposer", env->iteration, &m, 1, &answer, err,
                      errlen);
    free(prompt);
    if (rc != LLM_OK)
        return rc;
    char **ideas;
    int k = reader_parse(answer, &ideas);
    free(answer);
    for (int i = 0; i < k && *n < cfg->invent; i++) {
        if (text_word_count(ideas[i]) > INSPIRATION_MAX_WORDS)
            continue;
        int64_t id = insp_list_add(l, 0, ideas[i], "proposer", NULL, NULL);
        if (id > 0)
            ids[(*n)++] = id;
    }
    text_list_free(ideas, k);
    return 0;
}

static char *s_candidates_text(const insp_list_t *l, const int64_t *ids, int n)
{
    text_buf_t b;

    text_buf_init(&b);
    for (int i = 0; i < n; i++)
        text_buf_printf(&b, "%d: %s\n", i + 1, insp_list_get(l, ids[i])->text);
    return text_buf_take(&b);
}

/* Lessons for a proposer prompt: losses and gains like the candidates. */
static char *s_lessons(const proposer_config_t *cfg, agent_env_t *env,
                       reflector_t *refl, const char *query)
{
    text_buf_t b;

    text_buf_init(&b);
    if (refl && cfg->lessons > 0) {
        char *res =
            reflector_lessons(refl, env, EXP_RESEARCH, query, cfg->lessons);
        char *ok =
            reflector_lessons(refl, env, EXP_SUCCESS, query, cfg->lessons);
        char err[128];
        if (res && *res) {
            prompt_var_t v[] = {{"lessons", res}};
            char *s = prompts_render(env->prompts, "experience_res", v, 1, err,
                                     sizeof err);
            if (s)
                text_buf_puts(&b, s);
            free(s);
        }
        if (ok && *ok) {
            prompt_var_t v[] = {{"lessons", ok}};
            char *s = prompts_render(env->prompts, "experience_ok", v, 1, err,
                                     sizeof err);
            if (s)
                text_buf_puts(&b, s);
            free(s);
        }
        free(res);
        free(ok);
    }
    char *s = text_buf_take(&b);
    return s ? s : strdup("");
}

/* Rank the candidates of one parent and append them to p. */
static int s_rank(const proposer_config_t *cfg, agent_env_t *env, tree_t *tree,
                  int parent, insp_list_t *l, reflector_t *refl,
                  const int64_t *cand, int n, proposals_t *p, char *err,
                  size_t errlen)
{
    int order[n > 0 ? n : 1];
    const tree_node_t *pn = tree_get(tree, parent);
    int rc = 0;

    for (int i = 0; i < n; i++)
        order[i] = i;
    if (cfg->rank && env->llm && n > 1) {
        char *cands = s_candidates_text(l, cand, n);
        char *lessons = cands ? s_lessons(cfg, env, refl, cands) : NULL;
        char acc[32], *answer = NULL;
        snprintf(acc, sizeof acc, "%.2f%%", pn->screen_acc);
        prompt_var_t vars[] = {{"dataset", env->dataset ? env->dataset : ""},
                               {"accuracy", acc},
                               {"experience", lessons},
                               {"block", pn->design},
                               {"candidates", cands}};
        char *prompt =
            lessons ? prompts_render(env->prompts, "rank", vars, 5, err, errlen)
                    : NULL;
        free(cands);
        free(lessons);
        if (!prompt)
            return -1;
        llm_message_t m = {"user", prompt};
        rc = llm_chat(env->llm, "proposer", env->iteration, &m, 1, &answer, err,
                      errlen);
        free(prompt);
        if (rc == LLM_OK) {
            if (proposer_parse_ranking(answer, n, order) == 0)
                snprintf(p->note, sizeof p->note,
                         "ranking unreadable; sampled order kept");
        } else if (s_fatal(rc)) {
            free(answer);
            return rc;
        } else {
            snprintf(p->note, sizeof p->note,
                     "ranking failed (%.200s); sampled order kept", err);
            rc = 0;
        }
        free(answer);
    }
    for (int i = 0; i < n; i++)
        if (s_push(p, parent, insp_list_get(l, cand[order[i]])) != 0) {
            snprintf(err, errlen, "proposer: out of memory");
            return -1;
        }
    return 0;
}

/* Parse <pick>dN, K</pick> pairs of the LLM parent mode. */
static void s_parse_picks(const char *answer, tree_t *tree,
                          const insp_list_t *l, const int64_t *cand, int n,
                          proposals_t *p)
{
    char **v;
    int k = text_tag_all(answer, "pick", &v);

    for (int i = 0; i < k; i++) {
        const char *s = v[i];
        while (*s && !(tolower((unsigned char)*s) == 'd' &&
                       isdigit((unsigned char)s[1])))
            s++;
        if (!*s)
            continue;
        char *end;
        long node = strtol(s + 1, &end, 10);
        while (*end && !isdigit((unsigned char)*end))
            end++;
        long num = strtol(end, NULL, 10);
        const tree_node_t *tn = tree_get(tree, (int)node);
        if (!tn || tn->state != TREE_DONE || num < 1 || num > n)
            continue;
        int64_t id = cand[num - 1];
        bool dup = tree_inspiration_used(tree, (int)node, id);
        for (int j = 0; j < p->n && !dup; j++)
            dup = p->v[j].parent == (int)node && p->v[j].insp_id == id;
        if (!dup)
            s_push(p, (int)node, insp_list_get(l, id));
    }
    text_list_free(v, k);
}

static int s_propose_llm(const proposer_config_t *cfg, agent_env_t *env,
                         tree_t *tree, insp_list_t *l, reflector_t *refl,
                         proposals_t *p, char *err, size_t errlen)
{
    int64_t cand[l->n > 0 ? l->n : 1];
    int n = 0;

    /* Candidates: ideas not applied anywhere in the tree yet. */
    for (int i = 0; i < l->n; i++) {
        bool used = false;
        for (int j = 0; j < tree_size(tree) && !used; j++)
            used = tree_get(tree, j)->inspiration_id == l->v[i].id;
        if (!used)
            cand[n++] = l->v[i].id;
    }
    s_shuffle_pick(env, cand, n, cfg->candidates);
    if (n > cfg->candidates)
        n = cfg->candidates;
    if (n == 0)
        return 0;

    text_buf_t tb;
    text_buf_init(&tb);
    tree_render(tree, &tb, false, 0);
    int top[5];
    int nt = tree_ranked(tree, top, 5);
    text_buf_puts(&tb, "\nCells of the best designs:\n");
    for (int i = 0; i < nt; i++)
        text_buf_printf(&tb, "\n%s:\n%s\n", tree_get(tree, top[i])->name,
                        tree_get(tree, top[i])->design);
    char *tree_text = text_buf_take(&tb);
    char *cands = s_candidates_text(l, cand, n);
    char *lessons = cands ? s_lessons(cfg, env, refl, cands) : NULL;
    char count[16], *answer = NULL;
    snprintf(count, sizeof count, "%d", cfg->pairs);
    prompt_var_t vars[] = {{"dataset", env->dataset ? env->dataset : ""},
                           {"tree", tree_text},
                           {"candidates", cands},
                           {"count", count},
                           {"experience", lessons}};
    char *prompt = tree_text && lessons ? prompts_render(env->prompts, "choose",
                                                         vars, 5, err, errlen)
                                        : NULL;
    free(tree_text);
    free(cands);
    free(lessons);
    if (!prompt)
        return -1;
    llm_message_t m = {"user", prompt};
    int rc = llm_chat(env->llm, "proposer", env->iteration, &m, 1, &answer, err,
                      errlen);
    free(prompt);
    if (rc == LLM_OK)
        s_parse_picks(answer, tree, l, cand, n, p);
    free(answer);
    if (s_fatal(rc))
        return rc;
    if (p->n > 0)
        return 0;
    snprintf(p->note, sizeof p->note,
             "no usable pick from the model; depth-first parent used");
    return 1; /* fall back */
}

int proposer_propose(const proposer_config_t *cfg, agent_env_t *env,
                     tree_t *tree, insp_list_t *l, reflector_t *refl,
                     const proposer_hint_t *hint, proposals_t *p, char *err,
                     size_t errlen)
{
    memset(p, 0, sizeof *p);
    bool fixed = hint && hint->parent >= 0;
    if (cfg->parent == PROPOSER_PARENT_LLM && env->llm && cfg->invent == 0 &&
        !fixed) {
        int rc = s_propose_llm(cfg, env, tree, l, refl, p, err, errlen);
        if (rc <= 0)
            return rc;
    }
    int parent = fixed                                 ? hint->parent
                 : cfg->parent == PROPOSER_PARENT_BEST ? tree_select_best(tree)
                                                       : tree_select_dfs(tree);
    if (parent < 0)
        return 0;

    int cap = l->n + (cfg->invent > 0 ? cfg->invent : 0);
    int64_t *cand = malloc((size_t)(cap > 0 ? cap : 1) * sizeof *cand);
    int n = 0, rc = 0;
    if (!cand) {
        snprintf(err, errlen, "proposer: out of memory");
        return -1;
    }
    if (cfg->invent > 0 && env->llm) {
        char *lessons =
            s_lessons(cfg, env, refl, tree_get(tree, parent)->design);
        rc = s_invent(cfg, env, tree_get(tree, parent), l,
                      lessons ? lessons : "", cand, &n, err, errlen);
        free(lessons);
        if (rc != 0 && s_fatal(rc))
            goto out;
        if (rc != 0)
            snprintf(p->note, sizeof p->note,
                     "inventing inspirations failed (%.180s)", err);
        rc = 0;
    } else {
        n = s_unused(tree, parent, l, hint, cand);
        int k = cfg->candidates < n ? cfg->candidates : n;
        if (cfg->sample == PROPOSER_SAMPLE_GUIDED && refl &&
            reflector_count(refl) > 0) {
            int64_t *pick = malloc((size_t)(k > 0 ? k : 1) * sizeof *pick);
            if (!pick) {
                rc = -1;
                goto out;
            }
            k = reflector_guided_sample(refl, env, l, cand, n, k, pick);
            memcpy(cand, pick, (size_t)k * sizeof *cand);
            free(pick);
        } else {
            s_shuffle_pick(env, cand, n, k);
        }
        n = k;
    }
    rc = s_rank(cfg, env, tree, parent, l, refl, cand, n, p, err, errlen);
out:
    free(cand);
    return rc;
}
