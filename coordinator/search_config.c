/*
 * search_config.c - a search's settings from the coordinator's
 * configuration table (see search.h and common/config.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "search.h"

static int s_copy(char *dst, size_t len, const char *src, const char *key,
                  char *err, size_t errlen)
{
    if (!src)
        src = "";
    if (strlen(src) >= len) {
        snprintf(err, errlen, "%s: longer than %zu characters", key, len - 1);
        return -1;
    }
    memcpy(dst, src, strlen(src) + 1);
    return 0;
}

/* path relative to the folder of the configuration file source. */
static char *s_rel(const char *source, const char *path)
{
    const char *slash = source ? strrchr(source, '/') : NULL;

    if (!slash || path[0] == '/')
        return strdup(path);
    size_t n = (size_t)(slash - source) + strlen(path) + 2;
    char *out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s/%s", (int)(slash - source), source, path);
    return out;
}

int search_config_from(const config_t *cfg, search_config_t *c, char *err,
                       size_t errlen)
{
    search_config_default(c);
    if (s_copy(c->name, sizeof c->name, cfg->search_name, "search.name", err,
               errlen) ||
        s_copy(c->base, sizeof c->base, cfg->search_base, "search.base", err,
               errlen) ||
        s_copy(c->dataset, sizeof c->dataset, cfg->search_dataset,
               "search.dataset", err, errlen) ||
        s_copy(c->skeleton, sizeof c->skeleton, cfg->search_skeleton,
               "search.skeleton", err, errlen) ||
        s_copy(c->inspirations, sizeof c->inspirations,
               cfg->search_inspirations, "search.inspirations", err, errlen) ||
        s_copy(c->prompts_dir, sizeof c->prompts_dir, cfg->search_prompts,
               "search.prompts", err, errlen) ||
        s_copy(c->llm_base_url, sizeof c->llm_base_url, cfg->llm_base_url,
               "llm.base_url", err, errlen) ||
        s_copy(c->llm_model, sizeof c->llm_model, cfg->llm_model, "llm.model",
               err, errlen) ||
        s_copy(c->llm_embed_model, sizeof c->llm_embed_model,
               cfg->llm_embed_model, "llm.embed_model", err, errlen) ||
        s_copy(c->llm_key_env, sizeof c->llm_key_env, cfg->llm_api_key_env,
               "llm.api_key_env", err, errlen) ||
        s_copy(c->llm_replay, sizeof c->llm_replay, cfg->llm_replay,
               "llm.replay", err, errlen))
        goto fail;
    for (const char *p = c->name; *p; p++)
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
            snprintf(err, errlen,
                     "search.name: '%s' may hold only letters, digits, "
                     "'-', '_' and '.'",
                     c->name);
            goto fail;
        }
    if (!c->name[0]) {
        snprintf(err, errlen, "search.name: empty");
        goto fail;
    }
    c->iterations = (int)cfg->search_iterations;
    c->width = (int)cfg->search_width;
    c->seed = (uint64_t)cfg->search_seed;
    c->proposer.parent = proposer_parent_parse(cfg->search_parent);
    c->proposer.sample = proposer_sample_parse(cfg->search_sample);
    c->proposer.candidates = (int)cfg->search_candidates;
    c->proposer.rank = cfg->search_rank;
    c->proposer.invent = (int)cfg->search_invent;
    c->proposer.lessons = cfg->search_experience ? (int)cfg->search_lessons : 0;
    c->proposer.pairs = (int)cfg->search_pairs;
    c->modifier.retries = (int)cfg->search_retries;
    c->modifier.lessons = c->proposer.lessons;
    c->modifier.stem_always = cfg->search_stem_always;
    c->experience = cfg->search_experience;
    c->research_threshold = cfg->search_research_threshold;
    c->reader_chunks = (int)cfg->search_reader_chunks;
    c->offline = cfg->search_offline;
    c->designer_tries = (int)cfg->search_designer_tries;
    c->rounds = (int)cfg->search_rounds;
    c->screen_epochs = (int)cfg->train_screen_epochs;
    c->full_epochs = (int)cfg->train_full_epochs;
    c->full_fraction = cfg->train_full_fraction;
    c->n_final_seeds = 0;
    for (int i = 0; cfg->train_final_seeds && cfg->train_final_seeds[i] &&
                    i < SEARCH_MAX_SEEDS;
         i++)
        c->final_seeds[c->n_final_seeds++] =
            strtoull(cfg->train_final_seeds[i], NULL, 10);
    c->max_steps = cfg->train_max_steps;
    c->param_budget = cfg->train_budget;
    c->cells_per_stage = (int)cfg->train_cells_per_stage;
    c->stem_scale = (int)cfg->train_stem_scale;
    c->batch = (int)cfg->train_batch;
    c->force_width = (int)cfg->train_width;
    c->max_designs = (int)cfg->budget_designs;
    c->max_gpu_hours = cfg->budget_gpu_hours;
    c->deadline_ms = cfg->budget_deadline_ms;

    c->use_llm = c->llm_base_url[0] != '\0' || c->llm_replay[0] != '\0';
    if (c->use_llm && !c->llm_replay[0] && !c->llm_model[0]) {
        snprintf(err, errlen, "llm.model: needed with llm.base_url");
        goto fail;
    }
    llm_config_default(&c->llm);
    c->llm.temperature = cfg->llm_temperature;
    c->llm.max_tokens = (int)cfg->llm_max_tokens;
    c->llm.timeout_s = cfg->llm_timeout_ms / 1000.0;
    c->llm.connect_timeout_s = cfg->llm_connect_timeout_ms / 1000.0;
    c->llm.retries = (int)cfg->llm_retries;
    c->llm.backoff_s = cfg->llm_backoff_ms / 1000.0;
    c->llm.backoff_max_s = cfg->llm_backoff_max_ms / 1000.0;
    c->llm.concurrency = (int)cfg->llm_concurrency;
    c->llm.price_prompt = cfg->llm_price_prompt;
    c->llm.price_completion = cfg->llm_price_completion;
    c->llm.price_embed = cfg->llm_price_embed;
    c->llm.max_total_tokens = cfg->budget_tokens;
    c->llm.max_cost = cfg->budget_cost;

    for (int i = 0; cfg->search_papers && cfg->search_papers[i]; i++) {
        char **v = realloc(c->papers, (size_t)(c->n_papers + 1) * sizeof *v);
        if (!v)
            goto nomem;
        c->papers = v;
        if (!(v[c->n_papers] = s_rel(cfg->source, cfg->search_papers[i])))
            goto nomem;
        c->n_papers++;
    }
    return 0;
nomem:
    snprintf(err, errlen, "search: out of memory");
fail:
    search_config_free(c);
    return -1;
}
