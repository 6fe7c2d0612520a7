/*
 * search.c - the NADER loop (see search.h): iterations, the agents'
 * turns, the fidelity ladder and the budgets.  Storage and the link are
 * in search_state.c, results folders in search_export.c.
 *
 * Determinism is what makes resume and replay work, so everything an
 * iteration decides is a function of the state at its start and of its
 * own random stream: Modifier conversations run in parallel but their
 * outcomes are taken in proposal order, and batches are sized by what
 * is still needed, never by which thread finished first.
 */
#include "search_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "log.h"
#include "text.h"

uint64_t search_now_ms(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

void search_config_default(search_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "search");
    snprintf(c->dataset, sizeof c->dataset, "cifar10");
    snprintf(c->skeleton, sizeof c->skeleton, "nb201");
    c->iterations = 10;
    c->width = 3;
    c->seed = 777;
    proposer_config_default(&c->proposer);
    modifier_config_default(&c->modifier);
    c->experience = true;
    c->research_threshold = 0.5;
    c->reader_chunks = 4;
    c->designer_tries = 50;
    c->rounds = 3;
    c->screen_epochs = 12;
    c->full_epochs = 200;
    c->full_fraction = 0.2;
    c->n_final_seeds = 2;
    c->final_seeds[0] = 888;
    c->final_seeds[1] = 999;
    llm_config_default(&c->llm);
    snprintf(c->llm_key_env, sizeof c->llm_key_env, "OPENAI_API_KEY");
}

void search_config_free(search_config_t *c)
{
    for (int i = 0; i < c->n_papers; i++)
        free(c->papers[i]);
    free(c->papers);
    c->papers = NULL;
    c->n_papers = 0;
}

/* ----------------------------------------------------------- status */

void search_event(search_t *s, const char *fmt, ...)
{
    va_list ap;
    char line[256];

    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_info("search %s: %s", s->cfg.name, line);
    pthread_mutex_lock(&s->st_lock);
    snprintf(s->st.last_event, sizeof s->st.last_event, "%s", line);
    pthread_mutex_unlock(&s->st_lock);
}

void search_set_stop(search_t *s, bool hard, const char *fmt, ...)
{
    va_list ap;

    if (atomic_load(&s->stop) && !(hard && !s->stop_hard))
        return;
    va_start(ap, fmt);
    vsnprintf(s->stop_reason, sizeof s->stop_reason, fmt, ap);
    va_end(ap);
    s->stop_hard = s->stop_hard || hard;
    atomic_store(&s->stop, true);
    search_event(s, "stopping: %s", s->stop_reason);
}

bool search_stopping(search_t *s)
{
    return atomic_load(&s->stop) || atomic_load(&s->quit);
}

bool search_hard_budget(search_t *s)
{
    if (s->cfg.deadline_ms > 0 && s->started_ms > 0 &&
        search_now_ms() - s->started_ms >= (uint64_t)s->cfg.deadline_ms) {
        search_set_stop(s, true, "deadline reached: %.0f s after the start",
                        s->cfg.deadline_ms / 1000.0);
        return true;
    }
    if (s->cfg.max_gpu_hours > 0 &&
        s->gpu_seconds / 3600.0 >= s->cfg.max_gpu_hours) {
        search_set_stop(s, true, "GPU-hour budget reached: %.3f of %.3f h",
                        s->gpu_seconds / 3600.0, s->cfg.max_gpu_hours);
        return true;
    }
    return false;
}

void search_status_refresh(search_t *s, const char *phase)
{
    search_status_t st;
    int n = tree_size(s->tree);

    pthread_mutex_lock(&s->st_lock);
    st = s->st;
    pthread_mutex_unlock(&s->st_lock);
    if (phase)
        snprintf(st.phase, sizeof st.phase, "%s", phase);
    st.iteration = s->iteration;
    st.iterations = s->cfg.iterations;
    st.designs = n;
    st.screened = st.failed = st.pending = 0;
    st.full_done = st.full_pending = 0;
    for (int i = 0; i < n; i++) {
        const tree_node_t *t = tree_get(s->tree, i);
        st.screened += t->state == TREE_DONE;
        st.failed += t->state == TREE_FAILED;
        st.pending += t->state == TREE_PENDING;
        if (i < s->jobs_cap && s->jobs[i].full) {
            st.full_done += s->jobs[i].full_in;
            st.full_pending += !s->jobs[i].full_in;
        }
    }
    st.best = tree_best(s->tree);
    st.best_name[0] = '\0';
    st.best_acc = NAN;
    if (st.best >= 0) {
        const tree_node_t *b = tree_get(s->tree, st.best);
        snprintf(st.best_name, sizeof st.best_name, "%s", b->name);
        st.best_acc = tree_node_score(b);
    }
    if (s->llm)
        llm_usage_get(s->llm, &st.usage);
    st.gpu_hours = s->gpu_seconds / 3600.0;
    st.elapsed_s =
        s->started_ms ? (double)(search_now_ms() - s->started_ms) / 1000.0 : 0;
    st.offline = s->llm == NULL;
    snprintf(st.stop_reason, sizeof st.stop_reason, "%s", s->stop_reason);
    pthread_mutex_lock(&s->st_lock);
    snprintf(st.last_event, sizeof st.last_event, "%s", s->st.last_event);
    s->st = st;
    pthread_mutex_unlock(&s->st_lock);
}

void search_status_get(search_t *s, search_status_t *st)
{
    pthread_mutex_lock(&s->st_lock);
    *st = s->st;
    pthread_mutex_unlock(&s->st_lock);
}

void search_stop(search_t *s)
{
    atomic_store(&s->quit, true);
    if (s->llm)
        llm_cancel(s->llm);
}

/* -------------------------------------------------------- new/destroy */

static void s_notice(void *ctx, const char *line)
{
    search_t *s = ctx;
    log_warn("search %s: llm: %s", s->cfg.name, line);
}

int search_new(const search_config_t *cfg, coord_t *c, search_t **out,
               char *err, size_t errlen)
{
    search_t *s = calloc(1, sizeof *s);
    graph_errors_t errs;
    graph_design_t *base = NULL;
    size_t len;

    *out = NULL;
    if (!s) {
        snprintf(err, errlen, "search: out of memory");
        return -1;
    }
    graph_errors_init(&errs);
    s->cfg = *cfg;
    s->cfg.papers = NULL;
    s->cfg.n_papers = 0;
    pthread_mutex_init(&s->link_lock, NULL);
    pthread_mutex_init(&s->st_lock, NULL);
    atomic_init(&s->stop, false);
    atomic_init(&s->quit, false);
    s->coord = c;
    s->store = c ? coord_store(c) : NULL;
    insp_list_init(&s->insps);
    s->tree = tree_new();
    s->refl = reflector_new();
    if (!s->tree || !s->refl)
        goto nomem;
    if (cfg->n_papers > 0) {
        s->cfg.papers = calloc((size_t)cfg->n_papers, sizeof(char *));
        if (!s->cfg.papers)
            goto nomem;
        for (int i = 0; i < cfg->n_papers; i++)
            if (!(s->cfg.papers[i] = strdup(cfg->papers[i])))
                goto nomem;
        s->cfg.n_papers = cfg->n_papers;
    }
    if (cfg->width < 1 || cfg->iterations < 0 || cfg->screen_epochs < 1 ||
        cfg->full_epochs < 1 || cfg->full_fraction < 0 ||
        cfg->full_fraction > 1) {
        snprintf(err, errlen,
                 "search: width must be at least 1, epochs positive, "
                 "full_fraction within [0, 1]");
        goto fail;
    }
    if (net_config_default(&s->net, cfg->dataset) != 0) {
        snprintf(err, errlen, "search.dataset: unknown data set '%s'",
                 cfg->dataset);
        goto fail;
    }
    int sk = net_skeleton_parse(cfg->skeleton);
    if (sk < 0) {
        snprintf(err, errlen, "search.skeleton: unknown skeleton '%s'",
                 cfg->skeleton);
        goto fail;
    }
    s->net.skeleton = (net_skeleton_t)sk;
    if (cfg->param_budget > 0)
        s->net.budget = cfg->param_budget;
    if (cfg->cells_per_stage > 0)
        s->net.cells_per_stage = cfg->cells_per_stage;
    if (cfg->stem_scale > 0)
        s->net.stem_scale = cfg->stem_scale;
    s->net.width = cfg->force_width;

    s->base_text = text_file_read(cfg->base, 1 << 20, &len, err, errlen);
    if (!s->base_text) {
        char why[512];
        snprintf(why, sizeof why, "%s", err);
        snprintf(err, errlen, "search.base: %s", why);
        goto fail;
    }
    if (graph_design_parse(s->base_text, len, cfg->base, &base, &errs) != 0 ||
        net_check(base, &s->net, NULL, &errs) != 0) {
        snprintf(err, errlen, "search.base: %s is not a valid design: %s",
                 cfg->base, errs.n ? errs.v[0].message : "?");
        goto fail;
    }
    graph_design_destroy(&base);

    s->prompts =
        prompts_new(cfg->prompts_dir[0] ? cfg->prompts_dir : NULL, err, errlen);
    if (!s->prompts)
        goto fail;
    if (cfg->use_llm && !cfg->offline) {
        llm_config_t lc = cfg->llm;
        lc.base_url = s->cfg.llm_base_url;
        lc.model = s->cfg.llm_model;
        lc.embed_model = s->cfg.llm_embed_model;
        lc.api_key_env = s->cfg.llm_key_env;
        lc.replay_only = s->cfg.llm_replay[0] != '\0';
        lc.seed = cfg->seed;
        s->llm = llm_new(&lc, err, errlen);
        if (!s->llm)
            goto fail;
        if (lc.replay_only &&
            llm_memo_load_jsonl(s->llm, s->cfg.llm_replay, err, errlen) < 0)
            goto fail;
        llm_set_sink(s->llm, ss_exchange_sink, s);
        llm_set_notice(s->llm, s_notice, s);
    }
    graph_errors_free(&errs);
    snprintf(s->st.phase, sizeof s->st.phase, "start");
    s->st.best = -1;
    s->st.offline = s->llm == NULL;
    *out = s;
    return 0;
nomem:
    snprintf(err, errlen, "search: out of memory");
fail:
    graph_design_destroy(&base);
    graph_errors_free(&errs);
    search_destroy(&s);
    return -1;
}

void search_destroy(search_t **sp)
{
    search_t *s = *sp;

    if (!s)
        return;
    coord_link_destroy(&s->link);
    llm_destroy(&s->llm);
    prompts_destroy(&s->prompts);
    free(s->base_text);
    tree_destroy(&s->tree);
    free(s->jobs);
    insp_list_free(&s->insps);
    reflector_destroy(&s->refl);
    for (int i = 0; i < s->n_expanded; i++)
        free(s->expanded[i]);
    free(s->expanded);
    free(s->known);
    search_config_free(&s->cfg);
    pthread_mutex_destroy(&s->link_lock);
    pthread_mutex_destroy(&s->st_lock);
    free(s);
    *sp = NULL;
}

/* ------------------------------------------------------------ helpers */

static bool s_fatal_llm(int rc)
{
    return rc == LLM_ERR_BUDGET || rc == LLM_ERR_CANCELLED ||
           rc == LLM_ERR_SINK || rc == LLM_ERR_REPLAY;
}

/* Stop for an LLM error that must end the search. */
static void s_llm_stop(search_t *s, int rc, const char *err)
{
    char why[256];

    if (rc == LLM_ERR_BUDGET && llm_budget_reached(s->llm, why, sizeof why))
        search_set_stop(s, false, "%s", why);
    else if (rc == LLM_ERR_CANCELLED)
        atomic_store(&s->quit, true);
    else
        search_set_stop(s, false, "%s", err);
}

static agent_env_t s_env(search_t *s)
{
    agent_env_t e = {.llm = s->llm,
                     .prompts = s->prompts,
                     .net = &s->net,
                     .dataset = s->cfg.dataset,
                     .iteration = s->iteration,
                     .rng = agent_rng_seed(s->cfg.seed, s->iteration)};
    return e;
}

static bool s_expanded(search_t *s, const char *hash)
{
    for (int i = 0; i < s->n_expanded; i++)
        if (strcmp(s->expanded[i], hash) == 0)
            return true;
    return false;
}

static int s_mark_expanded(search_t *s, int node)
{
    tree_node_t *n = tree_get(s->tree, node);

    if (!n || n->expanded)
        return 0;
    n->expanded = true;
    if (s_expanded(s, n->hash))
        return 0;
    char **v = realloc(s->expanded, (size_t)(s->n_expanded + 1) * sizeof *v);
    if (!v)
        return -1;
    s->expanded = v;
    v[s->n_expanded] = strdup(n->hash);
    if (!v[s->n_expanded])
        return -1;
    s->n_expanded++;
    return 0;
}

static graph_design_t *s_parse_node(search_t *s, int id)
{
    const tree_node_t *n = tree_get(s->tree, id);
    graph_errors_t errs;
    graph_design_t *d = NULL;

    graph_errors_init(&errs);
    if (n && graph_design_parse(n->design, strlen(n->design), n->name, &d,
                                &errs) != 0)
        graph_design_destroy(&d);
    graph_errors_free(&errs);
    return d;
}

static bool s_known_hash(void *ctx, const char *hash)
{
    search_t *s = ctx;
    return tree_find(s->tree, hash) >= 0;
}

/* Designs made in the tree so far (the base excluded). */
static int s_made(search_t *s)
{
    return tree_size(s->tree) - 1;
}

/*
 * Take a new valid design into the tree and submit its screening run.
 * Returns the node id, or -1 (error in err).
 */
static int s_accept(search_t *s, int parent, const graph_design_t *d,
                    int64_t insp_id, const char *insp, char *err, size_t errlen)
{
    char name[48], hash[33];
    int id = tree_size(s->tree);

    snprintf(name, sizeof name, "d%d", id);
    char *text = modifier_design_text(d, name);
    if (!text || graph_design_hash(d, hash) != 0) {
        free(text);
        snprintf(err, errlen, "search: a design could not be printed");
        return -1;
    }
    int got =
        tree_add(s->tree, parent, s->iteration, hash, text, insp_id, insp);
    free(text);
    if (got != id || ss_jobs_reserve(s, id) != 0) {
        snprintf(err, errlen, "search: out of memory");
        return -1;
    }
    int rc = ss_submit(s, id, FID_SCREEN, s->cfg.seed, err, errlen);
    if (rc < 0)
        return -1;
    search_event(s, "iteration %d: %s from %s%s%s", s->iteration, name,
                 tree_get(s->tree, parent)->name, insp ? ": " : "",
                 insp ? insp : "");
    return id;
}

/* ----------------------------------------------------- one iteration */

typedef struct s_task {
    search_t *s;
    agent_env_t env;
    const graph_design_t *parent;
    const proposal_t *p;
    char *lessons;
    modify_result_t res;
    int rc;
    char err[512];
} s_task_t;

static void *s_task_run(void *arg)
{
    s_task_t *t = arg;

    t->rc = modifier_apply(&t->s->cfg.modifier, &t->env, t->parent, t->p->insp,
                           t->lessons, s_known_hash, t->s, &t->res, t->err,
                           sizeof t->err);
    return NULL;
}

/* Record a failed edit as development experience. */
static int s_develop(search_t *s, agent_env_t *env, const proposal_t *p,
                     const modify_result_t *r)
{
    char err[512];
    int rc;

    if (!s->cfg.experience)
        return 0;
    const experience_t *x = reflector_development(
        s->refl, env, r->last_block ? r->last_block : "(no block)",
        r->last_error ? r->last_error : "?", p->insp_id, p->insp, &rc, err,
        sizeof err);
    if (!x)
        return -1;
    if (rc != LLM_OK && s_fatal_llm(rc))
        s_llm_stop(s, rc, err);
    if (ss_store_experience(s, x, err, sizeof err) != 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    return 0;
}

/*
 * Run the proposals through the Modifier, a batch at a time, until the
 * iteration has its width.  *accepted counts designs taken.  Returns 0,
 * or -1 on a failure that ends the search.
 */
static int s_modify_all(search_t *s, const proposals_t *ps, bool *tried,
                        int *accepted)
{
    int conc = s->cfg.llm.concurrency > 0 ? s->cfg.llm.concurrency : 1;
    agent_env_t env = s_env(s);
    graph_design_t **parents =
        calloc((size_t)(ps->n ? ps->n : 1), sizeof *parents);
    int rc = 0;

    if (!parents)
        return -1;
    for (int at = 0;
         at < ps->n && *accepted < s->cfg.width && !search_stopping(s);) {
        int need = s->cfg.width - *accepted;
        int k = 0, idx[64];
        for (int i = at; i < ps->n && k < need && k < conc && k < 64; i++) {
            idx[k++] = i;
            at = i + 1;
        }
        if (k == 0)
            break;
        s_task_t *tasks = calloc((size_t)k, sizeof *tasks);
        pthread_t th[64];
        bool started[64] = {false};
        if (!tasks) {
            rc = -1;
            break;
        }
        /* Lessons are made one at a time: the reflector is not shared. */
        for (int j = 0; j < k; j++) {
            const proposal_t *p = &ps->v[idx[j]];
            tried[idx[j]] = true;
            if (!parents[idx[j]])
                parents[idx[j]] = s_parse_node(s, p->parent);
            tasks[j].s = s;
            tasks[j].env = env;
            tasks[j].parent = parents[idx[j]];
            tasks[j].p = p;
            tasks[j].lessons =
                modifier_lessons(&s->cfg.modifier, &env,
                                 s->cfg.experience ? s->refl : NULL, p->insp);
        }
        for (int j = 0; j < k; j++)
            if (tasks[j].parent)
                started[j] =
                    pthread_create(&th[j], NULL, s_task_run, &tasks[j]) == 0;
        for (int j = 0; j < k; j++)
            if (started[j])
                pthread_join(th[j], NULL);
        /* Outcomes in proposal order. */
        for (int j = 0; j < k && rc == 0; j++) {
            s_task_t *t = &tasks[j];
            char err[512];
            if (!started[j]) {
                log_error("search %s: could not start a modifier for %s",
                          s->cfg.name, t->p->insp);
                continue;
            }
            if (t->rc != 0) {
                if (s_fatal_llm(t->rc))
                    s_llm_stop(s, t->rc, t->err);
                else
                    log_warn("search %s: modifier: %s", s->cfg.name, t->err);
                continue;
            }
            switch (t->res.status) {
            case MODIFY_OK:
                if (s_known_hash(s, t->res.hash) || *accepted >= s->cfg.width ||
                    search_stopping(s)) {
                    search_event(s,
                                 "iteration %d: duplicate design from "
                                 "inspiration %lld dropped",
                                 s->iteration, (long long)t->p->insp_id);
                    break;
                }
                if (s_accept(s, t->p->parent, t->res.design, t->p->insp_id,
                             t->p->insp, err, sizeof err) < 0) {
                    log_error("search %s: %s", s->cfg.name, err);
                    rc = -1;
                    break;
                }
                (*accepted)++;
                if (s->cfg.max_designs > 0 && s_made(s) >= s->cfg.max_designs)
                    search_set_stop(s, false,
                                    "design budget reached: %d designs",
                                    s->cfg.max_designs);
                break;
            case MODIFY_DUPLICATE:
                search_event(s,
                             "iteration %d: duplicate design from "
                             "inspiration %lld dropped",
                             s->iteration, (long long)t->p->insp_id);
                break;
            case MODIFY_INVALID:
                search_event(s,
                             "iteration %d: no valid block for "
                             "inspiration %lld after %d answers",
                             s->iteration, (long long)t->p->insp_id,
                             t->res.answers);
                if (s_develop(s, &env, t->p, &t->res) != 0)
                    rc = -1;
                break;
            case MODIFY_NO_ANSWER:
                log_warn("search %s: iteration %d: no answer for "
                         "inspiration %lld: %s",
                         s->cfg.name, s->iteration, (long long)t->p->insp_id,
                         t->res.last_error ? t->res.last_error : "?");
                s->no_answer++;
                snprintf(s->no_answer_why, sizeof s->no_answer_why, "%s",
                         t->res.last_error ? t->res.last_error : "?");
                break;
            }
            if (t->res.status != MODIFY_NO_ANSWER)
                s->answered++;
        }
        for (int j = 0; j < k; j++) {
            modify_result_free(&tasks[j].res);
            free(tasks[j].lessons);
        }
        free(tasks);
        search_status_refresh(s, "search");
    }
    for (int i = 0; i < ps->n; i++)
        graph_design_destroy(&parents[i]);
    free(parents);
    return rc;
}

/* Agents' turn: proposals and modifications until the width is met. */
static int s_agents(search_t *s, int *first_parent)
{
    int accepted = 0, n_tried = 0;
    int64_t *tried_ids = NULL;
    int rc = 0;

    s->answered = s->no_answer = 0;

    for (int round = 0; round < s->cfg.rounds && accepted < s->cfg.width &&
                        !search_stopping(s) && rc == 0;
         round++) {
        agent_env_t env = s_env(s);
        proposals_t ps;
        char err[512];
        /* Later rounds keep the parent and skip what was tried. */
        proposer_hint_t hint = {*first_parent, tried_ids, n_tried};
        env.rng =
            agent_rng_seed(s->cfg.seed + (uint64_t)round * 7919u, s->iteration);
        rc = proposer_propose(&s->cfg.proposer, &env, s->tree, &s->insps,
                              s->cfg.experience ? s->refl : NULL,
                              round ? &hint : NULL, &ps, err, sizeof err);
        if (ss_store_inspirations(s, err, sizeof err) != 0) {
            log_error("search %s: %s", s->cfg.name, err);
            proposals_free(&ps);
            rc = -1;
            break;
        }
        if (rc != 0) {
            proposals_free(&ps);
            if (s_fatal_llm(rc)) {
                s_llm_stop(s, rc, err);
                rc = 0;
            } else {
                log_error("search %s: proposer: %s", s->cfg.name, err);
                rc = -1;
            }
            break;
        }
        if (ps.note[0])
            search_event(s, "iteration %d: proposer: %s", s->iteration,
                         ps.note);
        if (ps.n == 0) {
            proposals_free(&ps);
            if (round == 0)
                search_event(s, "iteration %d: no inspiration left to try",
                             s->iteration);
            break;
        }
        int64_t *grown =
            realloc(tried_ids, (size_t)(n_tried + ps.n) * sizeof *grown);
        bool *tried = calloc((size_t)ps.n, sizeof *tried);
        if (grown)
            tried_ids = grown;
        if (!grown || !tried) {
            free(tried);
            proposals_free(&ps);
            rc = -1;
            break;
        }
        for (int i = 0; i < ps.n && rc == 0; i++) {
            if (*first_parent < 0)
                *first_parent = ps.v[i].parent;
            if (s_mark_expanded(s, ps.v[i].parent) != 0)
                rc = -1;
        }
        if (rc == 0)
            rc = s_modify_all(s, &ps, tried, &accepted);
        for (int i = 0; i < ps.n; i++)
            if (tried[i])
                tried_ids[n_tried++] = ps.v[i].insp_id;
        free(tried);
        proposals_free(&ps);
    }
    free(tried_ids);
    /* An endpoint that answered nothing all iteration is not there. */
    if (rc == 0 && s->answered == 0 && s->no_answer > 0)
        search_set_stop(s, false, "the LLM endpoint did not answer: %s",
                        s->no_answer_why);
    return rc;
}

/* Offline designer's turn. */
static int s_offline(search_t *s, int *first_parent)
{
    agent_env_t env = s_env(s);
    int parent = tree_select_dfs(s->tree);
    char err[512];

    if (parent < 0)
        return 0;
    *first_parent = parent;
    if (s_mark_expanded(s, parent) != 0)
        return -1;
    graph_design_t *pd = s_parse_node(s, parent);
    if (!pd) {
        log_error("search %s: %s does not parse", s->cfg.name,
                  tree_get(s->tree, parent)->name);
        return -1;
    }
    for (int k = 0; k < s->cfg.width && !search_stopping(s); k++) {
        designer_result_t r;
        int rc = designer_mutate(&env, pd, s->cfg.designer_tries, s_known_hash,
                                 s, &r, err, sizeof err);
        if (rc < 0) {
            graph_design_destroy(&pd);
            log_error("search %s: %s", s->cfg.name, err);
            return -1;
        }
        if (rc > 0) {
            search_event(s,
                         "iteration %d: no new valid edit of %s in %d "
                         "tries",
                         s->iteration, tree_get(s->tree, parent)->name,
                         r.tries);
            break;
        }
        int id = s_accept(s, parent, r.design, -1, r.what, err, sizeof err);
        designer_result_free(&r);
        if (id < 0) {
            graph_design_destroy(&pd);
            log_error("search %s: %s", s->cfg.name, err);
            return -1;
        }
        if (s->cfg.max_designs > 0 && s_made(s) >= s->cfg.max_designs)
            search_set_stop(s, false, "design budget reached: %d designs",
                            s->cfg.max_designs);
    }
    graph_design_destroy(&pd);
    return 0;
}

/* Reflector's turn over the designs made in this iteration. */
static int s_reflect(search_t *s, int first)
{
    agent_env_t env = s_env(s);
    char err[512];

    for (int i = first; i < tree_size(s->tree); i++) {
        tree_node_t *c = tree_get(s->tree, i);
        tree_node_t *p = tree_get(s->tree, c->parent);
        if (!p || c->state != TREE_DONE || p->state != TREE_DONE)
            continue;
        double delta = c->screen_acc - p->screen_acc;
        const experience_t *x = NULL;
        if (!s->cfg.experience)
            continue;
        if (delta < -s->cfg.research_threshold) {
            int rc = LLM_OK;
            x = reflector_research(s->refl, &env, p->design, c->design, p->hash,
                                   c->hash, p->screen_acc, c->screen_acc,
                                   c->inspiration_id, c->inspiration, &rc, err,
                                   sizeof err);
            if (rc != LLM_OK && s_fatal_llm(rc) && s->llm)
                s_llm_stop(s, rc, err);
        } else if (delta > 0) {
            x = reflector_success(s->refl, &env, p->hash, c->hash, delta,
                                  c->inspiration_id, c->inspiration);
        }
        if (x && ss_store_experience(s, x, err, sizeof err) != 0) {
            log_error("search %s: %s", s->cfg.name, err);
            return -1;
        }
    }
    return 0;
}

/* Promote the best fraction of screened designs to the full protocol. */
static int s_promote(search_t *s)
{
    int n = tree_size(s->tree);
    int *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    char err[512];
    int rc = 0;

    if (!ids)
        return -1;
    if (s->cfg.full_fraction <= 0 ||
        s->cfg.full_epochs <= s->cfg.screen_epochs) {
        free(ids);
        return 0;
    }
    int k = tree_ranked(s->tree, ids, n);
    int top = (int)ceil(s->cfg.full_fraction * k);
    for (int i = 0; i < top && rc == 0 && !s->stop_hard; i++)
        if (s->jobs[ids[i]].full == 0) {
            rc =
                ss_submit(s, ids[i], FID_FULL, s->cfg.seed, err, sizeof err) < 0
                    ? -1
                    : 0;
            if (rc == 0)
                search_event(s,
                             "%s promoted to the full protocol (%d "
                             "epochs)",
                             tree_get(s->tree, ids[i])->name,
                             s->cfg.full_epochs);
        }
    if (rc != 0)
        log_error("search %s: %s", s->cfg.name, err);
    free(ids);
    return rc;
}

static int s_iteration(search_t *s)
{
    int first = tree_size(s->tree), parent = -1;
    char err[512];

    search_status_refresh(s, "search");
    if (ss_save(s, "search", false, err, sizeof err) != 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    int rc = s->llm ? s_agents(s, &parent) : s_offline(s, &parent);
    if (rc != 0)
        return -1;
    int made = tree_size(s->tree) - first;
    if (made == 0 && !search_stopping(s))
        search_event(s, "iteration %d made no new design", s->iteration);
    int ids[tree_size(s->tree) - first + 1];
    for (int i = 0; i < made; i++)
        ids[i] = first + i;
    if (ss_wait(s, ids, made, FID_SCREEN) != 0)
        return -1;
    if (s->stop_hard)
        return 0;
    if (s_reflect(s, first) != 0 || s_promote(s) != 0)
        return -1;
    for (int i = 0; i < made; i++) {
        const tree_node_t *n = tree_get(s->tree, ids[i]);
        if (n->state == TREE_DONE)
            search_event(s, "iteration %d: %s screened at %.2f%%", s->iteration,
                         n->name, n->screen_acc);
        else if (n->state == TREE_FAILED)
            search_event(s, "iteration %d: %s failed: %s", s->iteration,
                         n->name, n->reason ? n->reason : "?");
    }
    search_status_refresh(s, "search");
    return 0;
}

/* Iteration 0: the base design, the inspirations, the papers. */
static int s_begin(search_t *s)
{
    char err[512];
    agent_env_t env = s_env(s);

    if (s->insps.n == 0 && s->cfg.inspirations[0]) {
        int n =
            insp_list_import(&s->insps, s->cfg.inspirations, err, sizeof err);
        if (n < 0) {
            log_error("search %s: search.inspirations: %s", s->cfg.name, err);
            search_set_stop(s, true, "search.inspirations: %s", err);
            return -1;
        }
        search_event(s, "%d inspirations imported from %s", n,
                     s->cfg.inspirations);
    }
    for (int i = 0; i < s->cfg.n_papers && s->llm && !search_stopping(s); i++) {
        reader_report_t rep;
        int rc =
            reader_read(&env, s->cfg.papers[i], 12000, s->cfg.reader_chunks, 5,
                        &s->insps, &rep, err, sizeof err);
        if (rc != 0 && s_fatal_llm(rc)) {
            s_llm_stop(s, rc, err);
            break;
        }
        if (rc != 0)
            log_warn("search %s: reader: %s", s->cfg.name, err);
        else
            search_event(s,
                         "reader: %s: %d inspirations (%d duplicates, "
                         "%d too long)",
                         s->cfg.papers[i], rep.added, rep.duplicates,
                         rep.too_long);
    }
    if (ss_store_inspirations(s, err, sizeof err) != 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    if (s->llm && s->insps.n == 0 && s->cfg.proposer.invent == 0)
        search_event(s, "no inspirations: set search.inspirations or "
                        "search.papers, or search.invent for the no-Reader "
                        "mode");

    if (tree_size(s->tree) == 0) {
        graph_errors_t errs;
        graph_design_t *d = NULL;
        graph_errors_init(&errs);
        int prc = graph_design_parse(s->base_text, strlen(s->base_text),
                                     s->cfg.base, &d, &errs);
        graph_errors_free(&errs);
        if (prc != 0)
            return -1;
        char name[8] = "d0", hash[33];
        char *text = modifier_design_text(d, name);
        int hrc = graph_design_hash(d, hash);
        graph_design_destroy(&d);
        if (!text || hrc != 0 ||
            tree_add(s->tree, -1, 0, hash, text, -1, NULL) != 0 ||
            ss_jobs_reserve(s, 0) != 0) {
            free(text);
            return -1;
        }
        free(text);
    }
    if (ss_submit(s, 0, FID_SCREEN, s->cfg.seed, err, sizeof err) < 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    int root = 0;
    if (ss_wait(s, &root, 1, FID_SCREEN) != 0)
        return -1;
    const tree_node_t *r = tree_get(s->tree, 0);
    if (r->state == TREE_FAILED) {
        search_set_stop(s, true, "the base design failed to train: %s",
                        r->reason ? r->reason : "?");
        return 0;
    }
    if (r->state == TREE_DONE)
        search_event(s, "base design screened at %.2f%%", r->screen_acc);
    return s_promote(s);
}

/* After the iterations: full runs, then extra seeds for the best. */
static int s_ladder(search_t *s)
{
    int n = tree_size(s->tree);
    int *ids = malloc((size_t)(n ? n : 1) * sizeof *ids);
    char err[512];

    if (!ids)
        return -1;
    search_status_refresh(s, "ladder");
    if (ss_save(s, "ladder", false, err, sizeof err) != 0)
        goto fail;
    for (int i = 0; i < n; i++)
        ids[i] = i;
    if (ss_wait(s, ids, n, FID_FULL) != 0)
        goto fail;
    if (s->stop_hard)
        goto done;
    /*
     * Extra seeds for the best design.  Its score becomes the mean over
     * seeds, which can drop it below another design measured with one
     * seed; that one then gets the extra seeds too, so the design at the
     * top of the leaderboard has always been measured with every seed.
     * ids[] now marks the designs already given them.
     */
    memset(ids, 0, (size_t)(n ? n : 1) * sizeof *ids);
    while (s->cfg.n_final_seeds > 0 && !s->stop_hard) {
        int best = tree_best(s->tree);
        if (best < 0 || ids[best])
            break;
        ids[best] = 1;
        for (int i = 0; i < s->cfg.n_final_seeds; i++)
            if (ss_submit(s, best, FID_SEED, s->cfg.final_seeds[i], err,
                          sizeof err) < 0)
                goto fail;
        search_event(s, "%s trained again with %d more seeds",
                     tree_get(s->tree, best)->name, s->cfg.n_final_seeds);
        if (ss_wait(s, &best, 1, FID_SEED) != 0)
            goto fail;
    }
done:
    free(ids);
    return 0;
fail:
    log_error("search %s: %s", s->cfg.name, err);
    free(ids);
    return -1;
}

int search_load(search_t *s, store_t *store, char *err, size_t errlen)
{
    s->store = store;
    int rc = ss_resume(s, err, errlen);
    if (rc < 0)
        return -1;
    search_status_refresh(s, rc == 2 ? "done" : "stopped");
    return 0;
}

char *search_tree_text(search_t *s, bool with_designs)
{
    text_buf_t b;

    text_buf_init(&b);
    tree_render(s->tree, &b, with_designs, with_designs ? 0 : 100);
    return text_buf_take(&b);
}

char *search_tree_json(search_t *s)
{
    return tree_to_json(s->tree);
}

int search_run(search_t *s)
{
    char err[512];
    int rc;

    if (!s->link && coord_link_new(s->coord, &s->link, err, sizeof err)) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    rc = ss_resume(s, err, sizeof err);
    if (rc < 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    if (rc == 2) {
        search_event(s, "already finished (%s)", s->stop_reason);
        search_status_refresh(s, "done");
        pthread_mutex_lock(&s->st_lock);
        s->st.done = true;
        pthread_mutex_unlock(&s->st_lock);
        return 0;
    }
    search_event(
        s, "%s at iteration %d of %d (%s)", rc == 1 ? "resumed" : "started",
        s->iteration, s->cfg.iterations,
        s->llm ? (s->cfg.llm_replay[0] ? "replaying an LLM log" : "LLM agents")
               : "offline designer, no LLM");
    if (s->iteration == 0) {
        if (s_begin(s) != 0)
            return -1;
        if (!search_stopping(s))
            s->iteration = 1;
    }
    while (!s->in_ladder && !search_stopping(s) &&
           s->iteration <= s->cfg.iterations) {
        if (search_hard_budget(s))
            break;
        if (s_iteration(s) != 0)
            return -1;
        if (search_stopping(s))
            break;
        s->iteration++;
    }
    if (atomic_load(&s->quit)) {
        /* Interrupted: leave the record in progress, to be resumed. */
        search_event(s, "interrupted at iteration %d; run again to resume",
                     s->iteration);
        search_status_refresh(s, "stopped");
        return 0;
    }
    if (!search_stopping(s) && !s->in_ladder)
        snprintf(s->stop_reason, sizeof s->stop_reason,
                 "all %d iterations done", s->cfg.iterations);
    if (s->iteration > s->cfg.iterations)
        s->iteration = s->cfg.iterations;
    if (!s->stop_hard && s_ladder(s) != 0)
        return -1;
    if (atomic_load(&s->quit)) {
        search_event(s, "interrupted in the ladder; run again to resume");
        search_status_refresh(s, "stopped");
        return 0;
    }
    if (s->stop_hard)
        ss_cancel_pending(s, s->stop_reason);
    search_status_refresh(s, "done");
    pthread_mutex_lock(&s->st_lock);
    s->st.done = true;
    pthread_mutex_unlock(&s->st_lock);
    if (ss_save(s, "done", true, err, sizeof err) != 0) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    search_event(s, "finished: %s", s->stop_reason);
    return 0;
}
