/*
 * cmd_read.c - `nader read FILES...`: the Reader on its own.
 *
 * Paper texts become inspirations (at most 50 words each, with their
 * source) through the language model; inspiration lists (the NADER
 * release's JSON layout, a JSON list of strings, a text file with one
 * idea per line) are imported with --import.  The result is written in
 * the release's layout, ready for search.inspirations.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "config.h"
#include "reader.h"
#include "search.h"
#include "text.h"

static void s_usage(FILE *f)
{
    fprintf(f,
            "usage: nader read [PAPER.txt]... [--import LIST]... [--out FILE]"
            "\n                  [--config EXPERIMENT.yaml | --base-url URL "
            "--model M]\n                  [--chunks N] [--per-chunk N] "
            "[--log FILE]\n\n"
            "  PAPER.txt         paper text (plain text or Markdown; convert "
            "PDF first)\n"
            "  --import LIST     add a list: NADER JSON layout, JSON strings,"
            " or lines\n"
            "  --out FILE        write the list there (default: standard "
            "output)\n"
            "  --config FILE     take the llm.* keys from an experiment\n"
            "  --base-url URL    OpenAI-compatible endpoint (with --model)\n"
            "  --model M         chat model\n"
            "  --api-key-env V   variable holding the key "
            "(OPENAI_API_KEY)\n"
            "  --chunks N        pieces of ~12,000 characters read per paper "
            "(4; 0: all)\n"
            "  --per-chunk N     ideas asked for per piece (5)\n"
            "  --log FILE        append the LLM exchanges as JSON lines\n");
}

int cmd_read(int argc, char **argv)
{
    config_t cfg;
    insp_list_t list;
    const char *papers[256], *imports[256], *out = NULL, *logp = NULL;
    const char *url = NULL, *model = NULL, *keyenv = NULL;
    int n_papers = 0, n_imports = 0, chunks = 4, per = 5, rc = 2;
    char err[1024];
    llm_t *llm = NULL;
    prompts_t *pr = NULL;
    FILE *logf = NULL;

    if (config_defaults(&cfg) < 0)
        return 1;
    insp_list_init(&list);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            s_usage(stdout);
            rc = 0;
            goto out;
        }
        if (a[0] != '-') {
            if (n_papers == 256)
                goto usage;
            papers[n_papers++] = a;
            continue;
        }
        if (!v)
            goto usage;
        i++;
        if (strcmp(a, "--import") == 0 && n_imports < 256)
            imports[n_imports++] = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--log") == 0)
            logp = v;
        else if (strcmp(a, "--base-url") == 0)
            url = v;
        else if (strcmp(a, "--model") == 0)
            model = v;
        else if (strcmp(a, "--api-key-env") == 0)
            keyenv = v;
        else if (strcmp(a, "--chunks") == 0)
            chunks = atoi(v);
        else if (strcmp(a, "--per-chunk") == 0)
            per = atoi(v);
        else if (strcmp(a, "--config") == 0) {
            if (config_load_file(&cfg, v, err, sizeof err) < 0) {
                fprintf(stderr, "nader read: %s\n", err);
                goto out;
            }
        } else
            goto usage;
    }
    if (n_papers == 0 && n_imports == 0)
        goto usage;
    for (int i = 0; i < n_imports; i++) {
        int n = insp_list_import(&list, imports[i], err, sizeof err);
        if (n < 0) {
            fprintf(stderr, "nader read: %s\n", err);
            goto out;
        }
        fprintf(stderr, "%s: %d inspirations imported\n", imports[i], n);
    }
    if (n_papers > 0) {
        llm_config_t lc;
        llm_config_default(&lc);
        lc.base_url = url ? url : cfg.llm_base_url;
        lc.model = model ? model : cfg.llm_model;
        lc.api_key_env = keyenv ? keyenv : cfg.llm_api_key_env;
        lc.temperature = cfg.llm_temperature;
        lc.max_tokens = (int)cfg.llm_max_tokens;
        lc.timeout_s = cfg.llm_timeout_ms / 1000.0;
        lc.retries = (int)cfg.llm_retries;
        lc.backoff_s = cfg.llm_backoff_ms / 1000.0;
        lc.price_prompt = cfg.llm_price_prompt;
        lc.price_completion = cfg.llm_price_completion;
        if (!lc.base_url || !*lc.base_url) {
            fprintf(stderr, "nader read: reading papers needs an LLM "
                            "endpoint: --base-url and --model, or a "
                            "--config with llm.base_url\n");
            goto out;
        }
        llm = llm_new(&lc, err, sizeof err);
        pr =
            llm ? prompts_new(cfg.search_prompts[0] ? cfg.search_prompts : NULL,
                              err, sizeof err)
                : NULL;
        if (!llm || !pr) {
            fprintf(stderr, "nader read: %s\n", err);
            goto out;
        }
        if (logp) {
            logf = fopen(logp, "a");
            if (!logf) {
                fprintf(stderr, "nader read: %s: cannot open\n", logp);
                goto out;
            }
            llm_set_sink(llm, llm_sink_jsonl, logf);
        }
        agent_env_t env = {.llm = llm, .prompts = pr};
        for (int i = 0; i < n_papers; i++) {
            reader_report_t rep;
            int r = reader_read(&env, papers[i], 12000, chunks, per, &list,
                                &rep, err, sizeof err);
            if (r != 0) {
                fprintf(stderr, "nader read: %s\n", err);
                rc = 1;
                goto out;
            }
            fprintf(stderr,
                    "%s: %d pieces read, %d inspirations (%d already "
                    "there, %d over 50 words dropped)\n",
                    papers[i], rep.chunks, rep.added, rep.duplicates,
                    rep.too_long);
        }
    }
    char *json = insp_list_to_json(&list);
    if (!json) {
        rc = 1;
        goto out;
    }
    if (out) {
        rc = text_file_write(out, json, strlen(json), err, sizeof err) == 0 ? 0
                                                                            : 1;
        if (rc)
            fprintf(stderr, "nader read: %s\n", err);
        else
            fprintf(stderr, "%d inspirations written to %s\n", list.n, out);
    } else {
        puts(json);
        rc = 0;
    }
    free(json);
    goto out;
usage:
    s_usage(stderr);
    rc = 2;
out:
    if (logf)
        fclose(logf);
    prompts_destroy(&pr);
    llm_destroy(&llm);
    insp_list_free(&list);
    config_free(&cfg);
    return rc;
}
