/*
 * search_export.c - a search's results folder and leaderboard (see
 * search.h).  Everything is read back from the store, so a folder can be
 * written for a search that another process ran, or that was killed.
 */
#include "search_int.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "records.h"
#include "text.h"

static const char *s_fids[] = {"screen", "full", "seed"};

static json_t *s_num(double x)
{
    return isnan(x) ? json_null() : json_real(x);
}

char *search_leaderboard(search_t *s, int n)
{
    int total = tree_size(s->tree);
    int *ids = malloc((size_t)(total ? total : 1) * sizeof *ids);
    text_buf_t b;

    text_buf_init(&b);
    if (!ids)
        return NULL;
    /* Rank by score: full-protocol designs first, then screening. */
    int k = 0;
    for (int i = 0; i < total; i++) {
        const tree_node_t *a = tree_get(s->tree, i);
        if (a->state != TREE_DONE)
            continue;
        int j = k++;
        while (j > 0) {
            const tree_node_t *p = tree_get(s->tree, ids[j - 1]);
            bool af = !isnan(a->full_acc), pf = !isnan(p->full_acc);
            bool before =
                af != pf ? af : tree_node_score(a) > tree_node_score(p);
            if (!before)
                break;
            ids[j] = ids[j - 1];
            j--;
        }
        ids[j] = i;
    }
    text_buf_printf(&b, "%4s  %-6s %8s %8s  %-14s %8s %5s  %s\n", "rank",
                    "design", "screen", "full", "seeds", "params", "width",
                    "inspiration");
    for (int r = 0; r < k && r < n; r++) {
        const tree_node_t *a = tree_get(s->tree, ids[r]);
        char full[16] = "-", seeds[64] = "-";
        if (!isnan(a->full_acc))
            snprintf(full, sizeof full, "%.2f%%", a->full_acc);
        if (a->n_seeds > 0) {
            seeds[0] = '\0';
            for (int q = 0; q < a->n_seeds; q++) {
                size_t at = strlen(seeds);
                snprintf(seeds + at, sizeof seeds - at, "%s%.2f", q ? "," : "",
                         a->seed_acc[q]);
            }
        }
        const char *insp = a->inspiration ? a->inspiration : "(base design)";
        text_buf_printf(&b, "%4d  %-6s %7.2f%% %8s  %-14s %8lld %5d  %.60s%s\n",
                        r + 1, a->name, a->screen_acc, full, seeds,
                        (long long)a->params, a->width, insp,
                        strlen(insp) > 60 ? "..." : "");
    }
    if (k == 0)
        text_buf_puts(&b, "  (no design has a result yet)\n");
    free(ids);
    return text_buf_take(&b);
}

static int s_write(const char *dir, const char *name, const char *text,
                   char *err, size_t errlen)
{
    char path[4400];

    snprintf(path, sizeof path, "%s/%s", dir, name);
    return text_file_write(path, text ? text : "", text ? strlen(text) : 0, err,
                           errlen);
}

static void s_line(text_buf_t *b, json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

    if (s) {
        text_buf_puts(b, s);
        text_buf_puts(b, "\n");
    }
    free(s);
    json_decref(o);
}

static char *s_designs_jsonl(search_t *s)
{
    text_buf_t b;

    text_buf_init(&b);
    for (int i = 0; i < tree_size(s->tree); i++) {
        const tree_node_t *n = tree_get(s->tree, i);
        const tree_node_t *p = tree_get(s->tree, n->parent);
        json_t *seeds = json_array();
        for (int k = 0; k < n->n_seeds; k++)
            json_array_append_new(seeds, json_real(n->seed_acc[k]));
        json_t *o = json_pack(
            "{s:s, s:s, s:o, s:i, s:o, s:o, s:s, s:o, s:o, s:o, s:I, s:i, "
            "s:s}",
            "name", n->name, "hash", n->hash, "parent",
            p ? json_string(p->name) : json_null(), "iteration", n->iteration,
            "inspiration_id",
            n->inspiration_id >= 0 ? json_integer(n->inspiration_id)
                                   : json_null(),
            "inspiration",
            n->inspiration ? json_string(n->inspiration) : json_null(), "state",
            tree_state_name(n->state), "screen_acc", s_num(n->screen_acc),
            "full_acc", s_num(n->full_acc), "seed_acc", seeds, "params",
            (json_int_t)n->params, "width", n->width, "design", n->design);
        if (o && n->reason)
            json_object_set_new(o, "reason", json_string(n->reason));
        s_line(&b, o);
    }
    return text_buf_take(&b);
}

static json_t *s_result_json(const Nader__ResultRecord *rr)
{
    const Nader__Result *r = rr->result;
    json_t *epochs = json_array();

    for (size_t i = 0; r && i < r->n_epochs; i++) {
        const Nader__Epoch *e = r->epochs[i];
        json_array_append_new(
            epochs,
            json_pack("{s:i, s:f, s:f, s:f, s:f, s:f}", "epoch", e->epoch,
                      "train_loss", e->train_loss, "train_acc", e->train_acc,
                      "valid_acc", e->valid_acc, "images_per_s",
                      e->images_per_s, "seconds", e->seconds));
    }
    return json_pack(
        "{s:I, s:s, s:s, s:I, s:i, s:s, s:o, s:o, s:o, s:i, s:I, s:I, s:f, "
        "s:f, s:s, s:b, s:o}",
        "job", (json_int_t)rr->job, "design_hash",
        rr->design_hash ? rr->design_hash : "", "dataset",
        rr->dataset ? rr->dataset : "", "seed", (json_int_t)rr->seed, "epochs",
        rr->epochs, "status",
        records_status_name(r ? r->status
                              : NADER__RESULT_STATUS__RESULT_FAILED),
        "final_valid_acc",
        r && r->has_final_valid_acc ? json_real(r->final_valid_acc)
                                    : json_null(),
        "best_valid_acc",
        r && r->has_best_valid_acc ? json_real(r->best_valid_acc) : json_null(),
        "final_test_acc",
        r && r->has_final_test_acc && r->final_test_acc >= 0
            ? json_real(r->final_test_acc)
            : json_null(),
        "width", r ? r->width : 0, "params", (json_int_t)(r ? r->params : 0),
        "macs", (json_int_t)(r ? r->macs : 0), "images_per_s",
        r ? r->images_per_s : 0.0, "seconds", r ? r->seconds : 0.0, "device",
        r && r->device ? r->device : "", "load_test", r && r->load_test,
        "epochs_log", epochs);
}

static char *s_results_jsonl(search_t *s, store_txn_t *t)
{
    text_buf_t b;

    text_buf_init(&b);
    for (int i = 0; i < tree_size(s->tree) && i < s->jobs_cap; i++) {
        const s_jobs_t *j = &s->jobs[i];
        uint64_t ids[2 + SEARCH_MAX_SEEDS];
        int fid[2 + SEARCH_MAX_SEEDS], k = 0;
        if (j->screen) {
            fid[k] = 0;
            ids[k++] = j->screen;
        }
        if (j->full) {
            fid[k] = 1;
            ids[k++] = j->full;
        }
        for (int q = 0; q < j->n_seeds; q++) {
            fid[k] = 2;
            ids[k++] = j->seeds[q];
        }
        for (int q = 0; q < k; q++) {
            Nader__ResultRecord *rr = NULL;
            if (store_result_get(t, ids[q], &rr) != STORE_OK || !rr)
                continue;
            json_t *o = s_result_json(rr);
            if (o) {
                json_object_set_new(o, "design",
                                    json_string(tree_get(s->tree, i)->name));
                json_object_set_new(o, "fidelity", json_string(s_fids[fid[q]]));
            }
            s_line(&b, o);
            nader__result_record__free_unpacked(rr, NULL);
        }
    }
    return text_buf_take(&b);
}

static int s_llm_line(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    text_buf_t *b = ctx;
    const Nader__LlmExchangeRecord *r = (const Nader__LlmExchangeRecord *)m;
    llm_exchange_t x;

    memset(&x, 0, sizeof x);
    x.seq = (int64_t)id;
    x.kind = r->kind && strcmp(r->kind, "embed") == 0 ? LLM_KIND_EMBED
                                                      : LLM_KIND_CHAT;
    snprintf(x.agent, sizeof x.agent, "%s", r->agent ? r->agent : "");
    x.iteration = (int)r->iteration;
    snprintf(x.key, sizeof x.key, "%s", r->request_key ? r->request_key : "");
    snprintf(x.model, sizeof x.model, "%s", r->model ? r->model : "");
    x.request = r->request;
    x.answer = r->answer;
    x.prompt_tokens = r->prompt_tokens;
    x.completion_tokens = r->completion_tokens;
    x.estimated = r->estimated;
    x.cost = r->cost;
    x.latency_s = r->latency_s;
    x.attempts = (int)r->attempts;
    x.time = r->created_ms / 1000.0;
    char *line = llm_exchange_to_json(&x);
    if (line) {
        text_buf_puts(b, line);
        text_buf_puts(b, "\n");
    }
    free(line);
    return 0;
}

static int s_exp_line(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    text_buf_t *b = ctx;
    const Nader__ExperienceRecord *r = (const Nader__ExperienceRecord *)m;

    s_line(b,
           json_pack("{s:I, s:s, s:i, s:o, s:o, s:o, s:o, s:o, s:f}", "id",
                     (json_int_t)id, "kind", exp_kind_name((exp_kind_t)r->kind),
                     "iteration", (int)r->iteration, "design_hash",
                     r->design_hash ? json_string(r->design_hash) : json_null(),
                     "inspiration",
                     r->inspiration ? json_string(r->inspiration) : json_null(),
                     "error", r->error ? json_string(r->error) : json_null(),
                     "text", r->text ? json_string(r->text) : json_null(),
                     "parent_hash",
                     r->parent_hash ? json_string(r->parent_hash) : json_null(),
                     "delta_acc", r->delta_acc));
    return 0;
}

static char *s_summary(search_t *s)
{
    search_status_t st;
    search_status_refresh(s, NULL);
    search_status_get(s, &st);
    int best = tree_best(s->tree);
    const tree_node_t *b = tree_get(s->tree, best);
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:b, s:i, s:i, s:i, s:i, s:i, s:o, s:{s:I, s:I, "
        "s:I, s:f, s:I, s:I}, s:f, s:f, s:s, s:s, s:i, s:s}",
        "name", s->cfg.name, "phase", st.phase, "stop_reason", s->stop_reason,
        "offline", s->llm == NULL, "iterations_done", st.iteration, "designs",
        st.designs, "screened", st.screened, "failed", st.failed, "pending",
        st.pending, "best",
        b ? json_pack("{s:s, s:s, s:o, s:o, s:o}", "name", b->name, "hash",
                      b->hash, "score", s_num(tree_node_score(b)), "screen_acc",
                      s_num(b->screen_acc), "full_acc", s_num(b->full_acc))
          : json_null(),
        "llm", "calls", (json_int_t)st.usage.calls, "prompt_tokens",
        (json_int_t)st.usage.prompt_tokens, "completion_tokens",
        (json_int_t)st.usage.completion_tokens, "cost", st.usage.cost,
        "memo_hits", (json_int_t)st.usage.memo_hits, "retries",
        (json_int_t)st.usage.retries, "gpu_hours", st.gpu_hours, "elapsed_s",
        st.elapsed_s, "dataset", s->cfg.dataset, "skeleton", s->cfg.skeleton,
        "stem_scale", s->net.stem_scale, "designer",
        s->llm ? "LLM agents" : "offline designer (no LLM)");
    char *text = o ? json_dumps(o, JSON_INDENT(2)) : NULL;
    json_decref(o);
    return text;
}

int search_export(search_t *s, const char *dir, char *err, size_t errlen)
{
    store_txn_t *t = NULL;
    text_buf_t llm, exps;
    int rc = -1;
    char *files[10][2];
    int nf = 0;

    memset(files, 0, sizeof files);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    ss_poll(s, NULL, 0, -1);
    if (store_begin(s->store, false, &t, err, errlen) != STORE_OK)
        return -1;
    text_buf_init(&llm);
    text_buf_init(&exps);
    store_scan_msg(t, STORE_LLM, 0, &nader__llm_exchange_record__descriptor,
                   s_llm_line, &llm);
    store_scan_msg(t, STORE_EXPERIENCES, 0,
                   &nader__experience_record__descriptor, s_exp_line, &exps);
    int best = tree_best(s->tree);
    text_buf_t tt;
    text_buf_init(&tt);
    tree_render(s->tree, &tt, false, 100);
    files[nf][0] = "best.txt";
    files[nf++][1] =
        best >= 0 ? strdup(tree_get(s->tree, best)->design) : strdup("");
    files[nf][0] = "designs.jsonl";
    files[nf++][1] = s_designs_jsonl(s);
    files[nf][0] = "results.jsonl";
    files[nf++][1] = s_results_jsonl(s, t);
    files[nf][0] = "llm.jsonl";
    files[nf++][1] = text_buf_take(&llm);
    files[nf][0] = "experiences.jsonl";
    files[nf++][1] = text_buf_take(&exps);
    files[nf][0] = "inspirations.json";
    files[nf++][1] = insp_list_to_json(&s->insps);
    files[nf][0] = "tree.txt";
    files[nf++][1] = text_buf_take(&tt);
    files[nf][0] = "tree.json";
    files[nf++][1] = tree_to_json(s->tree);
    files[nf][0] = "leaderboard.txt";
    files[nf++][1] = search_leaderboard(s, 1 << 30);
    files[nf][0] = "summary.json";
    files[nf++][1] = s_summary(s);
    store_abort(&t);
    rc = 0;
    for (int i = 0; i < nf && rc == 0; i++) {
        if (!files[i][1]) {
            snprintf(err, errlen, "%s/%s: out of memory", dir, files[i][0]);
            rc = -1;
        } else {
            rc = s_write(dir, files[i][0], files[i][1], err, errlen);
        }
    }
    for (int i = 0; i < nf; i++)
        free(files[i][1]);
    return rc;
}
