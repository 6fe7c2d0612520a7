/*
 * search_state.c - a search's side of the store and the link (see
 * search_int.h).
 *
 * Writes go through the coordinator's loop (coord_link_call) and are
 * durable when the call returns; reads use read transactions on the
 * store directly.  What a search keeps:
 *
 *   meta["search.NAME"]  SearchRecord: iteration in progress, parents
 *                        chosen, phase, start time, why it stopped
 *   designs              DesignRecord with source "search:NAME": name
 *                        dN (the tree id), parent, inspiration, iteration
 *   jobs                 tag "search:NAME:screen|full|seed"
 *   experiences, inspirations   with the ids the agents gave them
 *   llm                  every exchange, with its request key
 *
 * Resuming rebuilds the state at the start of the iteration in
 * progress from records of earlier iterations, and keeps the later ones
 * for the iteration's re-run to find: exchanges in the LLM memo, jobs in
 * a list consulted before any submission, experiences by id.
 */
#include "search_int.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "text.h"

#define LINK_TIMEOUT_MS 60000

static const char *s_fid_name[] = {"screen", "full", "seed"};

int ss_link_call(search_t *s, const Nader__LinkRequest *req,
                 Nader__LinkReply **reply, char *err, size_t errlen)
{
    pthread_mutex_lock(&s->link_lock);
    int rc = coord_link_call(s->link, req, reply, LINK_TIMEOUT_MS, err, errlen);
    pthread_mutex_unlock(&s->link_lock);
    if (rc != 0)
        return -1;
    if (!(*reply)->ok && !(*reply)->submit) {
        snprintf(err, errlen, "store refused a record: %s",
                 (*reply)->error ? (*reply)->error : "?");
        nader__link_reply__free_unpacked(*reply, NULL);
        *reply = NULL;
        return -1;
    }
    return 0;
}

/* Send a request whose reply carries nothing but ok and an id. */
static int s_put(search_t *s, Nader__LinkRequest *req, uint64_t *id, char *err,
                 size_t errlen)
{
    Nader__LinkReply *r = NULL;

    if (ss_link_call(s, req, &r, err, errlen) != 0)
        return -1;
    if (id)
        *id = r->id;
    nader__link_reply__free_unpacked(r, NULL);
    return 0;
}

int ss_exchange_sink(void *ctx, const llm_exchange_t *x)
{
    search_t *s = ctx;
    Nader__LlmExchangeRecord rec = NADER__LLM_EXCHANGE_RECORD__INIT;
    Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;
    char err[256];

    rec.agent = (char *)x->agent;
    rec.has_iteration = 1;
    rec.iteration = (uint32_t)x->iteration;
    rec.model = (char *)x->model;
    rec.request = x->request;
    rec.answer = x->answer;
    rec.has_prompt_tokens = rec.has_completion_tokens = 1;
    rec.prompt_tokens = x->prompt_tokens;
    rec.completion_tokens = x->completion_tokens;
    rec.has_latency_s = 1;
    rec.latency_s = x->latency_s;
    rec.has_created_ms = 1;
    rec.created_ms = (uint64_t)(x->time * 1000);
    rec.request_key = (char *)x->key;
    rec.has_cost = 1;
    rec.cost = x->cost;
    rec.kind = x->kind == LLM_KIND_CHAT ? (char *)"chat" : (char *)"embed";
    rec.has_attempts = 1;
    rec.attempts = (uint32_t)x->attempts;
    rec.has_estimated = 1;
    rec.estimated = x->estimated;
    req.body_case = NADER__LINK_REQUEST__BODY_LLM;
    req.llm = &rec;
    if (s_put(s, &req, NULL, err, sizeof err) != 0) {
        log_error("search %s: llm exchange not stored: %s", s->cfg.name, err);
        return -1;
    }
    return 0;
}

int ss_save(search_t *s, const char *phase, bool done, char *err, size_t errlen)
{
    Nader__SearchRecord rec = NADER__SEARCH_RECORD__INIT;
    Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;

    rec.name = s->cfg.name;
    rec.has_iteration = 1;
    rec.iteration = (uint32_t)s->iteration;
    rec.n_expanded = (size_t)s->n_expanded;
    rec.expanded = s->expanded;
    rec.has_done = 1;
    rec.done = done;
    rec.stop_reason = s->stop_reason;
    rec.has_started_ms = 1;
    rec.started_ms = s->started_ms;
    rec.phase = (char *)phase;
    rec.has_updated_ms = 1;
    rec.updated_ms = search_now_ms();
    req.body_case = NADER__LINK_REQUEST__BODY_SEARCH;
    req.search = &rec;
    return s_put(s, &req, NULL, err, errlen);
}

int ss_store_inspirations(search_t *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->insps.n; i++) {
        const inspiration_t *x = &s->insps.v[i];
        if (x->id <= s->insp_stored)
            continue;
        Nader__InspirationRecord rec = NADER__INSPIRATION_RECORD__INIT;
        Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;
        rec.has_id = 1;
        rec.id = (uint64_t)x->id;
        rec.text = x->text;
        rec.source = x->source;
        rec.paper_id = x->paper_id;
        rec.external_id = x->external_id;
        rec.has_created_ms = 1;
        rec.created_ms = search_now_ms();
        req.body_case = NADER__LINK_REQUEST__BODY_INSPIRATION;
        req.inspiration = &rec;
        if (s_put(s, &req, NULL, err, errlen) != 0)
            return -1;
        s->insp_stored = x->id;
    }
    return 0;
}

int ss_store_experience(search_t *s, const experience_t *x, char *err,
                        size_t errlen)
{
    Nader__ExperienceRecord rec = NADER__EXPERIENCE_RECORD__INIT;
    Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;

    if (x->id <= s->exp_stored)
        return 0; /* stored by the run this one resumes */
    rec.has_id = 1;
    rec.id = (uint64_t)x->id;
    rec.has_kind = 1;
    rec.kind = (Nader__ExperienceKind)x->kind;
    rec.has_created_ms = 1;
    rec.created_ms = search_now_ms();
    rec.has_iteration = 1;
    rec.iteration = (uint32_t)x->iteration;
    rec.design_hash = x->hash[0] ? (char *)x->hash : NULL;
    rec.parent_hash = x->parent_hash[0] ? (char *)x->parent_hash : NULL;
    rec.inspiration = x->inspiration;
    rec.error = x->error;
    rec.text = x->text;
    rec.has_delta_acc = 1;
    rec.delta_acc = x->delta;
    req.body_case = NADER__LINK_REQUEST__BODY_EXPERIENCE;
    req.experience = &rec;
    if (s_put(s, &req, NULL, err, errlen) != 0)
        return -1;
    s->exp_stored = x->id;
    return 0;
}

int ss_jobs_reserve(search_t *s, int id)
{
    if (id < s->jobs_cap)
        return 0;
    int cap = s->jobs_cap ? s->jobs_cap : 32;
    while (cap <= id)
        cap *= 2;
    s_jobs_t *v = realloc(s->jobs, (size_t)cap * sizeof *v);
    if (!v)
        return -1;
    memset(v + s->jobs_cap, 0, (size_t)(cap - s->jobs_cap) * sizeof *v);
    s->jobs = v;
    s->jobs_cap = cap;
    return 0;
}

static uint64_t s_known_find(search_t *s, const char *hash, s_fid_t fid,
                             uint64_t seed)
{
    for (int i = 0; i < s->n_known; i++)
        if (s->known[i].fid == fid && s->known[i].seed == seed &&
            strcmp(s->known[i].hash, hash) == 0)
            return s->known[i].id;
    return 0;
}

/* Remember a job of a node. */
static void s_job_set(search_t *s, int node, s_fid_t fid, uint64_t seed,
                      uint64_t id)
{
    s_jobs_t *j = &s->jobs[node];

    if (fid == FID_SCREEN)
        j->screen = id;
    else if (fid == FID_FULL)
        j->full = id;
    else if (j->n_seeds < SEARCH_MAX_SEEDS) {
        j->seed_val[j->n_seeds] = seed;
        j->seeds[j->n_seeds++] = id;
    }
}

static bool s_job_has(search_t *s, int node, s_fid_t fid, uint64_t seed)
{
    const s_jobs_t *j = &s->jobs[node];

    if (fid == FID_SCREEN)
        return j->screen != 0;
    if (fid == FID_FULL)
        return j->full != 0;
    for (int i = 0; i < j->n_seeds; i++)
        if (j->seed_val[i] == seed)
            return true;
    return false;
}

int ss_submit(search_t *s, int node, s_fid_t fid, uint64_t seed, char *err,
              size_t errlen)
{
    const tree_node_t *n = tree_get(s->tree, node);
    Nader__SubmitRequest sr = NADER__SUBMIT_REQUEST__INIT;
    Nader__Recipe recipe = NADER__RECIPE__INIT;
    Nader__LinkReply *r = NULL;
    char tag[128], source[96];
    const tree_node_t *p;

    if (!n || ss_jobs_reserve(s, node) != 0) {
        snprintf(err, errlen, "search: no node %d", node);
        return -1;
    }
    if (s_job_has(s, node, fid, seed))
        return 0;
    uint64_t known = s_known_find(s, n->hash, fid, seed);
    if (known) {
        s_job_set(s, node, fid, seed, known);
        return 0;
    }
    snprintf(tag, sizeof tag, "search:%s:%s", s->cfg.name, s_fid_name[fid]);
    snprintf(source, sizeof source, "search:%s", s->cfg.name);
    p = tree_get(s->tree, n->parent);
    sr.design = n->design;
    sr.name = (char *)n->name;
    sr.skeleton = s->cfg.skeleton;
    sr.dataset = s->cfg.dataset;
    sr.has_epochs = 1;
    bool full_stage =
        s->cfg.full_fraction > 0 && s->cfg.full_epochs > s->cfg.screen_epochs;
    sr.epochs = fid == FID_SCREEN || !full_stage ? s->cfg.screen_epochs
                                                 : s->cfg.full_epochs;
    sr.n_seeds = 1;
    sr.seeds = &seed;
    sr.has_priority = 1;
    sr.priority = fid == FID_SCREEN ? 10 : 5;
    sr.has_width = 1;
    sr.width = s->cfg.force_width;
    if (s->cfg.max_steps > 0) {
        recipe.has_max_steps = 1;
        recipe.max_steps = s->cfg.max_steps;
    }
    if (s->cfg.cells_per_stage > 0) {
        recipe.has_cells_per_stage = 1;
        recipe.cells_per_stage = s->cfg.cells_per_stage;
    }
    if (s->cfg.stem_scale > 1) {
        recipe.has_stem_scale = 1;
        recipe.stem_scale = s->cfg.stem_scale;
    }
    if (s->cfg.param_budget > 0) {
        recipe.has_budget = 1;
        recipe.budget = s->cfg.param_budget;
    }
    if (s->cfg.batch > 0) {
        recipe.has_batch = 1;
        recipe.batch = s->cfg.batch;
    }
    sr.recipe = &recipe;
    sr.tag = tag;
    sr.source = source;
    sr.parent_hash = p ? (char *)p->hash : NULL;
    sr.inspiration = n->inspiration;
    if (n->inspiration_id >= 0) {
        sr.has_inspiration_id = 1;
        sr.inspiration_id = (uint64_t)n->inspiration_id;
    }
    sr.has_iteration = 1;
    sr.iteration = (uint32_t)n->iteration;

    Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;
    req.body_case = NADER__LINK_REQUEST__BODY_SUBMIT;
    req.submit = &sr;
    if (ss_link_call(s, &req, &r, err, errlen) != 0)
        return -1;
    Nader__SubmitReply *rep = r->submit;
    if (!rep || !rep->ok || rep->n_jobs < 1) {
        char why[320];
        snprintf(why, sizeof why, "refused by the coordinator: %s",
                 rep && rep->n_errors ? rep->errors[0]
                 : r->error           ? r->error
                                      : "?");
        if (fid == FID_SCREEN)
            tree_set_failed(s->tree, node, why);
        log_warn("search %s: %s %s: %s", s->cfg.name, n->name, s_fid_name[fid],
                 why);
        nader__link_reply__free_unpacked(r, NULL);
        return 1;
    }
    if (rep->design_hash && strcmp(rep->design_hash, n->hash) != 0)
        log_warn("search %s: %s: the coordinator hashes it %s, the search "
                 "%s",
                 s->cfg.name, n->name, rep->design_hash, n->hash);
    s_job_set(s, node, fid, seed, rep->jobs[0]);
    nader__link_reply__free_unpacked(r, NULL);
    return 0;
}

/* ------------------------------------------------------------ results */

static double s_acc(const Nader__Result *r)
{
    return r->has_final_valid_acc ? r->final_valid_acc : NAN;
}

/* Apply one job outcome; returns true when the job is finished. */
static bool s_apply(search_t *s, store_txn_t *t, int node, s_fid_t fid, int k,
                    uint64_t job)
{
    Nader__ResultRecord *rr = NULL;
    Nader__JobRecord *jr = NULL;
    const char *reason = NULL;
    bool ok = false, fin = false;
    double acc = NAN;
    int64_t params = 0;
    int width = 0;

    if (store_result_get(t, job, &rr) == STORE_OK && rr->result) {
        const Nader__Result *r = rr->result;
        fin = true;
        ok = r->status == NADER__RESULT_STATUS__RESULT_OK && !isnan(s_acc(r));
        acc = s_acc(r);
        params = r->params;
        width = r->width;
        reason = r->reason;
        s->gpu_seconds += r->seconds;
    } else if (store_job_get(t, job, &jr) == STORE_OK &&
               (jr->state == NADER__JOB_STATE__JOB_FAILED ||
                jr->state == NADER__JOB_STATE__JOB_CANCELLED)) {
        fin = true;
        reason = jr->reason                                     ? jr->reason
                 : jr->state == NADER__JOB_STATE__JOB_CANCELLED ? "cancelled"
                                                                : "failed";
    }
    if (fin) {
        s_jobs_t *j = &s->jobs[node];
        if (fid == FID_SCREEN) {
            j->screen_in = true;
            if (ok)
                tree_set_screen(s->tree, node, acc, params, width);
            else
                tree_set_failed(s->tree, node, reason ? reason : "failed");
        } else if (fid == FID_FULL) {
            j->full_in = true;
            if (ok)
                tree_set_full(s->tree, node, acc);
        } else {
            j->seed_in[k] = true;
            if (ok)
                tree_add_seed(s->tree, node, acc);
        }
    }
    if (rr)
        nader__result_record__free_unpacked(rr, NULL);
    if (jr)
        nader__job_record__free_unpacked(jr, NULL);
    return fin;
}

int ss_poll(search_t *s, const int *ids, int n, int fid)
{
    store_txn_t *t = NULL;
    char err[256];
    int pending = 0;

    if (store_begin(s->store, false, &t, err, sizeof err) != STORE_OK) {
        log_error("search %s: %s", s->cfg.name, err);
        return -1;
    }
    int total = ids ? n : tree_size(s->tree);
    for (int i = 0; i < total; i++) {
        int node = ids ? ids[i] : i;
        if (node >= s->jobs_cap)
            continue;
        s_jobs_t *j = &s->jobs[node];
        if (j->screen && !j->screen_in &&
            !s_apply(s, t, node, FID_SCREEN, 0, j->screen))
            pending += fid < 0 || fid == FID_SCREEN;
        if (j->full && !j->full_in &&
            !s_apply(s, t, node, FID_FULL, 0, j->full))
            pending += fid < 0 || fid == FID_FULL;
        for (int k = 0; k < j->n_seeds; k++)
            if (!j->seed_in[k] &&
                !s_apply(s, t, node, FID_SEED, k, j->seeds[k]))
                pending += fid < 0 || fid == FID_SEED;
    }
    store_abort(&t);
    return pending;
}

int ss_wait(search_t *s, const int *ids, int n, int fid)
{
    uint64_t last = 0;

    for (;;) {
        int pending = ss_poll(s, ids, n, fid);
        if (pending < 0)
            return -1;
        if (search_now_ms() - last > 1000) {
            search_status_refresh(s, NULL);
            last = search_now_ms();
        }
        if (pending == 0 || atomic_load(&s->quit) || s->stop_hard)
            return 0;
        if (search_hard_budget(s))
            return 0;
        Nader__ResultRecord *r = NULL;
        pthread_mutex_lock(&s->link_lock);
        int rc = coord_link_next_result(s->link, 500, &r);
        pthread_mutex_unlock(&s->link_lock);
        if (r)
            nader__result_record__free_unpacked(r, NULL);
        if (rc < 0) {
            log_error("search %s: the link to the coordinator broke",
                      s->cfg.name);
            return -1;
        }
    }
}

void ss_cancel_pending(search_t *s, const char *why)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    char err[256];

    ss_poll(s, NULL, 0, -1);
    for (int i = 0; i < tree_size(s->tree) && i < s->jobs_cap; i++) {
        s_jobs_t *j = &s->jobs[i];
        uint64_t cand[2 + SEARCH_MAX_SEEDS];
        int k = 0;
        if (j->screen && !j->screen_in)
            cand[k++] = j->screen;
        if (j->full && !j->full_in)
            cand[k++] = j->full;
        for (int q = 0; q < j->n_seeds; q++)
            if (!j->seed_in[q])
                cand[k++] = j->seeds[q];
        uint64_t *v = realloc(ids, (n + (size_t)k + 1) * sizeof *v);
        if (!v)
            break;
        ids = v;
        for (int q = 0; q < k; q++)
            ids[n++] = cand[q];
    }
    if (n > 0) {
        Nader__CancelRequest cr = NADER__CANCEL_REQUEST__INIT;
        Nader__LinkRequest req = NADER__LINK_REQUEST__INIT;
        Nader__LinkReply *r = NULL;
        cr.n_jobs = n;
        cr.jobs = ids;
        cr.reason = (char *)why;
        req.body_case = NADER__LINK_REQUEST__BODY_CANCEL;
        req.cancel = &cr;
        if (ss_link_call(s, &req, &r, err, sizeof err) == 0) {
            search_event(s, "%zu jobs cancelled", r->n_ids);
            nader__link_reply__free_unpacked(r, NULL);
        } else {
            log_warn("search %s: cancel: %s", s->cfg.name, err);
        }
    }
    free(ids);
}

/* ------------------------------------------------------------- resume */

typedef struct s_design {
    int num; /* N of the name dN */
    Nader__DesignRecord *rec;
} s_design_t;

typedef struct s_load {
    search_t *s;
    int upto; /* records of iterations < upto are state */
    char source[96];
    char tagp[96];
    s_design_t *designs;
    int n_designs;
    llm_usage_t usage;
    json_t *embeds; /* [[texts, vectors], ...] of iterations
                       before upto */
    char err[256];
} s_load_t;

static int s_visit_design(void *ctx, const void *key, size_t klen,
                          const void *val, size_t vlen)
{
    s_load_t *L = ctx;
    Nader__DesignRecord *d;

    (void)key;
    (void)klen;
    d = nader__design_record__unpack(NULL, vlen, val);
    if (!d)
        return 0;
    int num;
    if (!d->source || strcmp(d->source, L->source) != 0 || !d->name ||
        sscanf(d->name, "d%d", &num) != 1 || num < 0) {
        nader__design_record__free_unpacked(d, NULL);
        return 0;
    }
    s_design_t *v = realloc(L->designs, (size_t)(L->n_designs + 1) * sizeof *v);
    if (!v) {
        nader__design_record__free_unpacked(d, NULL);
        return -1;
    }
    L->designs = v;
    v[L->n_designs].num = num;
    v[L->n_designs].rec = d;
    L->n_designs++;
    return 0;
}

static int s_cmp_design(const void *a, const void *b)
{
    return ((const s_design_t *)a)->num - ((const s_design_t *)b)->num;
}

static int s_visit_job(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_load_t *L = ctx;
    search_t *s = L->s;
    const Nader__JobRecord *j = (const Nader__JobRecord *)m;
    size_t plen = strlen(L->tagp);

    if (!j->tag || strncmp(j->tag, L->tagp, plen) != 0 || !j->spec ||
        !j->spec->design_hash)
        return 0;
    int fid = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(j->tag + plen, s_fid_name[i]) == 0)
            fid = i;
    if (fid < 0)
        return 0;
    s_known_job_t *v = realloc(s->known, (size_t)(s->n_known + 1) * sizeof *v);
    if (!v)
        return -1;
    s->known = v;
    snprintf(v[s->n_known].hash, sizeof v[s->n_known].hash, "%s",
             j->spec->design_hash);
    v[s->n_known].fid = (s_fid_t)fid;
    v[s->n_known].seed = j->spec->seed;
    v[s->n_known].id = id;
    s->n_known++;
    return 0;
}

static int s_visit_insp(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_load_t *L = ctx;
    const Nader__InspirationRecord *r = (const Nader__InspirationRecord *)m;

    if (insp_list_add(&L->s->insps, (int64_t)id, r->text, r->source,
                      r->paper_id, r->external_id) < 0)
        return -1;
    if ((int64_t)id > L->s->insp_stored)
        L->s->insp_stored = (int64_t)id;
    return 0;
}

static int s_visit_exp(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_load_t *L = ctx;
    const Nader__ExperienceRecord *r = (const Nader__ExperienceRecord *)m;
    experience_t x;

    if ((int64_t)id > L->s->exp_stored)
        L->s->exp_stored = (int64_t)id;
    if ((int)r->iteration >= L->upto)
        return 0;
    memset(&x, 0, sizeof x);
    x.id = (int64_t)id;
    x.kind = (exp_kind_t)r->kind;
    x.iteration = (int)r->iteration;
    snprintf(x.hash, sizeof x.hash, "%s", r->design_hash ? r->design_hash : "");
    snprintf(x.parent_hash, sizeof x.parent_hash, "%s",
             r->parent_hash ? r->parent_hash : "");
    x.inspiration_id = -1;
    x.inspiration = r->inspiration;
    x.error = r->error;
    x.text = r->text;
    x.delta = r->delta_acc;
    return reflector_add(L->s->refl, &x) > 0 ? 0 : -1;
}

static int s_visit_llm(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_load_t *L = ctx;
    const Nader__LlmExchangeRecord *r = (const Nader__LlmExchangeRecord *)m;
    llm_exchange_t x;

    (void)id;
    if (!r->request_key || !r->answer)
        return 0;
    bool embed = r->kind && strcmp(r->kind, "embed") == 0;
    if ((int)r->iteration < L->upto) {
        L->usage.calls++;
        L->usage.prompt_tokens += r->prompt_tokens;
        L->usage.completion_tokens += r->completion_tokens;
        L->usage.cost += r->cost;
        if (embed) {
            json_t *texts = json_loads(r->request ? r->request : "", 0, NULL);
            json_t *vecs = json_loads(r->answer, 0, NULL);
            if (texts && vecs)
                json_array_append_new(L->embeds,
                                      json_pack("[oo]", texts, vecs));
            else {
                json_decref(texts);
                json_decref(vecs);
            }
        }
    }
    if (!L->s->llm)
        return 0;
    memset(&x, 0, sizeof x);
    x.kind = embed ? LLM_KIND_EMBED : LLM_KIND_CHAT;
    snprintf(x.agent, sizeof x.agent, "%s", r->agent ? r->agent : "");
    x.iteration = (int)r->iteration;
    snprintf(x.key, sizeof x.key, "%s", r->request_key);
    snprintf(x.model, sizeof x.model, "%s", r->model ? r->model : "");
    x.request = r->request;
    x.answer = r->answer;
    x.prompt_tokens = r->prompt_tokens;
    x.completion_tokens = r->completion_tokens;
    x.cost = r->cost;
    return llm_memo_add(L->s->llm, &x, (int)r->iteration < L->upto);
}

/* A vector from a JSON array, or NULL. */
static float *s_vector(json_t *a, int *dim)
{
    size_t n = json_array_size(a);
    float *v = n ? malloc(n * sizeof *v) : NULL;

    for (size_t i = 0; v && i < n; i++)
        v[i] = (float)json_number_value(json_array_get(a, i));
    *dim = (int)n;
    return v;
}

/* Give texts embedded before the iteration in progress their vectors. */
static void s_prefill_embeddings(search_t *s, json_t *embeds)
{
    size_t i;
    json_t *pair;

    json_array_foreach(embeds, i, pair)
    {
        json_t *texts = json_array_get(pair, 0);
        json_t *vecs = json_array_get(pair, 1);
        for (size_t k = 0; k < json_array_size(texts); k++) {
            const char *t = json_string_value(json_array_get(texts, k));
            json_t *vec = json_array_get(vecs, k);
            if (!t || !vec)
                continue;
            for (int q = 0; q < s->insps.n; q++) {
                inspiration_t *x = &s->insps.v[q];
                if (!x->emb && strcmp(x->text, t) == 0)
                    x->emb = s_vector(vec, &x->dim);
            }
            for (int q = 0; q < reflector_count(s->refl); q++) {
                experience_t *x = (experience_t *)reflector_get(s->refl, q);
                char *key = x->emb ? NULL : experience_key_text(x);
                if (key && strcmp(key, t) == 0)
                    x->emb = s_vector(vec, &x->dim);
                free(key);
            }
        }
    }
}

/* Rebuild the tree from design records of iterations before upto. */
static int s_rebuild_tree(search_t *s, s_load_t *L, char *err, size_t errlen)
{
    qsort(L->designs, (size_t)L->n_designs, sizeof *L->designs, s_cmp_design);
    for (int i = 0; i < L->n_designs; i++) {
        const Nader__DesignRecord *d = L->designs[i].rec;
        if ((int)d->iteration >= L->upto)
            continue;
        int parent = -1;
        if (L->designs[i].num > 0) {
            parent = d->parent_hash ? tree_find(s->tree, d->parent_hash) : -1;
            if (parent < 0) {
                snprintf(err, errlen,
                         "search %s: stored design %s has no parent in the "
                         "search",
                         s->cfg.name, d->name);
                return -1;
            }
        }
        int id =
            tree_add(s->tree, parent, (int)d->iteration, d->hash, d->text,
                     d->has_inspiration_id ? (int64_t)d->inspiration_id : -1,
                     d->inspiration);
        if (id != L->designs[i].num || ss_jobs_reserve(s, id) != 0) {
            snprintf(err, errlen,
                     "search %s: stored designs are not numbered in order "
                     "(%s)",
                     s->cfg.name, d->name);
            return -1;
        }
        tree_node_t *n = tree_get(s->tree, id);
        for (int k = 0; k < s->n_expanded; k++)
            if (strcmp(s->expanded[k], n->hash) == 0)
                n->expanded = true;
        const s_fid_t fids[2] = {FID_SCREEN, FID_FULL};
        for (int k = 0; k < 2; k++) {
            uint64_t job = s_known_find(s, n->hash, fids[k], s->cfg.seed);
            if (job)
                s_job_set(s, id, fids[k], s->cfg.seed, job);
        }
        for (int k = 0; k < s->n_known; k++)
            if (s->known[k].fid == FID_SEED &&
                strcmp(s->known[k].hash, n->hash) == 0)
                s_job_set(s, id, FID_SEED, s->known[k].seed, s->known[k].id);
    }
    return 0;
}

int ss_resume(search_t *s, char *err, size_t errlen)
{
    store_txn_t *t = NULL;
    Nader__SearchRecord *rec = NULL;
    s_load_t L;
    char key[96];
    int rc = -1;

    memset(&L, 0, sizeof L);
    L.s = s;
    L.embeds = json_array();
    snprintf(L.source, sizeof L.source, "search:%s", s->cfg.name);
    snprintf(L.tagp, sizeof L.tagp, "search:%s:", s->cfg.name);
    snprintf(key, sizeof key, "search.%s", s->cfg.name);
    if (store_begin(s->store, false, &t, err, errlen) != STORE_OK)
        goto out;
    int grc = store_get_msg(t, STORE_META, key, strlen(key),
                            &nader__search_record__descriptor,
                            (ProtobufCMessage **)&rec);
    if (grc < 0) {
        snprintf(err, errlen, "%s", store_txn_error(t));
        goto out;
    }
    bool fresh = grc == STORE_NOTFOUND;
    bool done = !fresh && rec->done;
    if (fresh && !s->link) {
        snprintf(err, errlen, "no search named '%s' in the store %s",
                 s->cfg.name, store_path(s->store));
        goto out;
    }
    s->iteration = fresh ? 0 : (int)rec->iteration;
    /* Tools (no link) see everything, a resuming search the state at
     * the start of the iteration in progress. */
    s->in_ladder = !fresh && !done && rec->phase &&
                   strcmp(rec->phase, "ladder") == 0;
    L.upto = done || s->in_ladder || !s->link ? INT_MAX : s->iteration;
    s->started_ms =
        fresh || !rec->started_ms ? search_now_ms() : rec->started_ms;
    if (!fresh) {
        snprintf(s->stop_reason, sizeof s->stop_reason, "%s",
                 rec->stop_reason ? rec->stop_reason : "");
        for (size_t i = 0; i < rec->n_expanded; i++) {
            char **v =
                realloc(s->expanded, (size_t)(s->n_expanded + 1) * sizeof *v);
            if (!v || !(v[s->n_expanded] = strdup(rec->expanded[i]))) {
                if (v)
                    s->expanded = v;
                snprintf(err, errlen, "search: out of memory");
                goto out;
            }
            s->expanded = v;
            s->n_expanded++;
        }
    }
    if (store_scan_msg(t, STORE_INSPIRATIONS, 0,
                       &nader__inspiration_record__descriptor, s_visit_insp,
                       &L) < 0 ||
        store_scan_msg(t, STORE_JOBS, 0, &nader__job_record__descriptor,
                       s_visit_job, &L) < 0 ||
        store_scan(t, STORE_DESIGNS, NULL, 0, s_visit_design, &L) < 0 ||
        store_scan_msg(t, STORE_EXPERIENCES, 0,
                       &nader__experience_record__descriptor, s_visit_exp,
                       &L) < 0 ||
        store_scan_msg(t, STORE_LLM, 0, &nader__llm_exchange_record__descriptor,
                       s_visit_llm, &L) < 0) {
        snprintf(err, errlen, "search %s: reading the store: %s", s->cfg.name,
                 store_txn_error(t));
        goto out;
    }
    store_abort(&t);
    if (s_rebuild_tree(s, &L, err, errlen) != 0)
        goto out;
    s_prefill_embeddings(s, L.embeds);
    if (s->llm)
        llm_usage_set(s->llm, &L.usage);
    if (ss_poll(s, NULL, 0, -1) < 0) {
        snprintf(err, errlen, "search %s: reading results failed", s->cfg.name);
        goto out;
    }
    if (done) {
        rc = 2;
        goto out;
    }
    if (fresh && ss_save(s, "start", false, err, errlen) != 0)
        goto out;
    rc = fresh ? 0 : 1;
out:
    store_abort(&t);
    if (rec)
        nader__search_record__free_unpacked(rec, NULL);
    for (int i = 0; i < L.n_designs; i++)
        nader__design_record__free_unpacked(L.designs[i].rec, NULL);
    free(L.designs);
    json_decref(L.embeds);
    return rc;
}
