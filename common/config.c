/*
 * config.c - see config.h.  The table s_keys below is the whole list of
 * configuration keys; everything else in this file is generic over it.
 *
 * The YAML reader walks libyaml's event stream with a small recursive
 * descent over mappings, joining the keys of nested mappings with dots,
 * so the file's shape is free (`a: {b: 1}` and `a.b: 1` are the same)
 * and every error can name the line it came from.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <yaml.h>

#include "log.h"

#define OFF(f) offsetof(config_t, f)
#define NO_LIMIT 1, 0

static int s_check_endpoint(const void *v, char *err, size_t errlen);
static int s_check_endpoint_or_empty(const void *v, char *err,
                                     size_t errlen);
static int s_check_log_level(const void *v, char *err, size_t errlen);
static int s_check_host_port(const void *v, char *err, size_t errlen);
static int s_check_dataset(const void *v, char *err, size_t errlen);
static int s_check_skeleton(const void *v, char *err, size_t errlen);
static int s_check_parent(const void *v, char *err, size_t errlen);
static int s_check_sample(const void *v, char *err, size_t errlen);
static int s_check_seeds(const void *v, char *err, size_t errlen);
static int s_check_stem_scale(const void *v, char *err, size_t errlen);
static int s_check_device(const void *v, char *err, size_t errlen);
static int s_check_generate(const void *v, char *err, size_t errlen);

static const config_key_t s_keys[] = {
    {"state_dir", CONFIG_PATH, OFF(state_dir), "nader-state", NO_LIMIT,
     NULL, false,
     "Folder of the coordinator's state: the LMDB store (data.mdb, "
     "lock.mdb) and the local admin socket. Created (mode 0700) when "
     "missing."},
    {"workers.endpoint", CONFIG_STRING, OFF(workers_endpoint),
     "tcp://127.0.0.1:5555", NO_LIMIT, s_check_endpoint, false,
     "ZeroMQ endpoint the coordinator binds for workers (ROUTER). Use "
     "tcp://0.0.0.0:5555 to accept workers from other machines, with "
     "security.curve on. A port of * takes a free one (logged)."},
    {"status.endpoint", CONFIG_STRING, OFF(status_endpoint),
     "tcp://127.0.0.1:5556", NO_LIMIT, s_check_endpoint_or_empty, false,
     "Endpoint of the status socket (JSON requests). Read-only queries "
     "are answered for anyone who can connect; changes only for clients "
     "authenticated with a key in security.admin_keys. Empty: no status "
     "socket."},
    {"status.admin_endpoint", CONFIG_STRING, OFF(admin_endpoint), "",
     NO_LIMIT, s_check_endpoint_or_empty, false,
     "Local endpoint that accepts changes (submit, cancel, set) from "
     "anyone who can open it; empty means ipc://STATE_DIR/admin.sock, "
     "protected by the state folder's permissions."},
    {"status.max_request", CONFIG_BYTES, OFF(status_max_request), "4MiB",
     1024, 1073741824.0, NULL, false,
     "Largest request accepted on the status sockets; a bigger one "
     "closes the connection."},
    {"metrics.enabled", CONFIG_BOOL, OFF(metrics_enabled), "false",
     NO_LIMIT, NULL, false,
     "Serve Prometheus metrics over HTTP at http://METRICS.ADDRESS/metrics: "
     "workers and devices, jobs by state, queue length, training images "
     "per second, LLM requests, tokens and cost, best validation accuracy "
     "so far. Off by default."},
    {"metrics.address", CONFIG_STRING, OFF(metrics_address),
     "127.0.0.1:9467", NO_LIMIT, s_check_host_port, false,
     "HOST:PORT the metrics server listens on; 0.0.0.0:9467 lets a "
     "Prometheus on another machine scrape it (the figures need no key, "
     "so expose them only where they may be read). Port 0 takes a free "
     "one, which is logged."},
    {"heartbeat.interval", CONFIG_MS, OFF(heartbeat_interval_ms), "1s", 10,
     3600000, NULL, false,
     "How often the coordinator and each worker send each other a "
     "heartbeat."},
    {"heartbeat.timeout", CONFIG_MS, OFF(heartbeat_timeout_ms), "5s", 50,
     86400000, NULL, false,
     "Silence after which a worker is considered gone: its leases go "
     "back to the queue. Workers reconnect after the same silence from "
     "the coordinator. Must exceed heartbeat.interval."},
    {"jobs.reattach_grace", CONFIG_MS, OFF(reattach_grace_ms), "10s", 0,
     86400000, NULL, false,
     "After a restart, how long jobs that were leased wait for their "
     "worker to report them before they are queued again."},
    {"jobs.max_attempts", CONFIG_INT, OFF(jobs_max_attempts), "3", 1, 1000,
     NULL, false,
     "Failed attempts (a failed result or a lost lease) after which a "
     "job is given up as failed. A restart of the coordinator does not "
     "count."},
    {"jobs.max_running", CONFIG_INT, OFF(jobs_max_running), "0", 0, 1e9,
     NULL, true,
     "Most jobs leased at once across all workers; 0 means no limit. "
     "Live: `nader set jobs.max_running N`."},
    {"jobs.paused", CONFIG_BOOL, OFF(jobs_paused), "false", NO_LIMIT, NULL,
     true,
     "When true, no new job is leased; running jobs finish. Live: "
     "`nader set jobs.paused true`."},
    {"jobs.checkpoint_every", CONFIG_INT, OFF(jobs_checkpoint_every), "5",
     0, 1000000, NULL, false,
     "Epochs between the checkpoints a worker sends, so that a job "
     "retried elsewhere resumes from the last one; 0 means never."},
    {"jobs.priority", CONFIG_INT, OFF(jobs_priority), "0", -1e6, 1e6, NULL,
     false,
     "Priority of a submitted job that names none; higher runs first, "
     "then older first."},
    {"store.map_size", CONFIG_BYTES, OFF(store_map_size), "256MiB", 1048576,
     1099511627776.0, NULL, false,
     "Initial size of the LMDB map (address space, not disk). It grows "
     "by doubling when 80% full, up to store.map_size_max."},
    {"store.map_size_max", CONFIG_BYTES, OFF(store_map_size_max), "64GiB",
     1048576, 17592186044416.0, NULL, false,
     "Largest size the LMDB map may grow to; past it, writes fail with a "
     "clear error and change nothing."},
    {"security.curve", CONFIG_BOOL, OFF(security_curve), "false", NO_LIMIT,
     NULL, false,
     "Encrypt and authenticate the worker and status endpoints with "
     "CURVE. Needs security.secret_key and security.worker_keys."},
    {"security.secret_key", CONFIG_PATH, OFF(security_secret_key), "",
     NO_LIMIT, NULL, false,
     "The coordinator's key pair file, made by `nader keygen` (keep it "
     "private). Workers and clients need its public half (the .pub "
     "file)."},
    {"security.worker_keys", CONFIG_PATH, OFF(security_worker_keys), "",
     NO_LIMIT, NULL, false,
     "Allow-list folder: public key files (*.pub) of the workers "
     "allowed to connect. Re-read when it changes."},
    {"security.admin_keys", CONFIG_PATH, OFF(security_admin_keys), "",
     NO_LIMIT, NULL, false,
     "Folder of public key files (*.pub) of clients allowed to make "
     "changes over the status endpoint."},
    {"limits.max_message", CONFIG_BYTES, OFF(max_message_bytes), "256MiB",
     4096, 4294967295.0, NULL, false,
     "Largest message accepted from a worker (checkpoints are the big "
     "ones); a bigger one closes that connection."},
    {"log.level", CONFIG_STRING, OFF(log_level), "info", NO_LIMIT,
     s_check_log_level, true, "debug, info, warn or error."},
    {"log.file", CONFIG_PATH, OFF(log_file), "", NO_LIMIT, NULL, false,
     "File the daemon appends its log to; empty means standard error."},

    /* --- the search (coordinator/search.c, docs/experiments.md) --- */
    {"search.name", CONFIG_STRING, OFF(search_name), "search", NO_LIMIT,
     NULL, false,
     "Name of the search: tags its jobs and records, so a restarted "
     "coordinator resumes the search of this name."},
    {"search.base", CONFIG_PATH, OFF(search_base), "", NO_LIMIT, NULL,
     false,
     "Block file of the base design the search starts from. Empty: no "
     "search; the coordinator only evaluates what is submitted."},
    {"search.dataset", CONFIG_STRING, OFF(search_dataset), "cifar10",
     NO_LIMIT, s_check_dataset, false,
     "Data set designs are trained on: cifar10, cifar10-valid, cifar100 "
     "or imagenet16-120."},
    {"search.skeleton", CONFIG_STRING, OFF(search_skeleton), "nb201",
     NO_LIMIT, s_check_skeleton, false,
     "Skeleton assembling a design into a network: nb201 or darts."},
    {"search.iterations", CONFIG_INT, OFF(search_iterations), "10", 0,
     1e6, NULL, false,
     "Budget: iterations of the search after the base design."},
    {"search.width", CONFIG_INT, OFF(search_width), "3", 1, 1000, NULL,
     false, "New valid designs each iteration aims for."},
    {"search.seed", CONFIG_INT, OFF(search_seed), "777", 0, 9.2e18, NULL,
     false,
     "Seed of the agents' random choices and of every screening and "
     "full-protocol training run."},
    {"search.parent", CONFIG_STRING, OFF(search_parent), "dfs", NO_LIMIT,
     s_check_parent, false,
     "How the Proposer picks the design to change: dfs (depth first along "
     "children that beat their parents, best first, first not yet "
     "expanded), best, or llm (the model picks from the whole tree)."},
    {"search.sample", CONFIG_STRING, OFF(search_sample), "random",
     NO_LIMIT, s_check_sample, false,
     "How inspirations are sampled for ranking: random, or guided by "
     "experience (like past gains, unlike past losses)."},
    {"search.candidates", CONFIG_INT, OFF(search_candidates), "10", 1, 200,
     NULL, false, "Inspirations offered to the Proposer per ranking."},
    {"search.rank", CONFIG_BOOL, OFF(search_rank), "true", NO_LIMIT, NULL,
     false,
     "Let the model rank the inspirations; false is the random-proposer "
     "ablation."},
    {"search.invent", CONFIG_INT, OFF(search_invent), "0", 0, 50, NULL,
     false,
     "Above 0: the no-Reader ablation; the model invents this many "
     "inspirations for each parent instead of using read ones."},
    {"search.experience", CONFIG_BOOL, OFF(search_experience), "true",
     NO_LIMIT, NULL, false,
     "Run the Reflector and put experience into prompts; false is the "
     "no-experience ablation."},
    {"search.lessons", CONFIG_INT, OFF(search_lessons), "3", 0, 20, NULL,
     false, "Experiences of each kind retrieved into a prompt."},
    {"search.retries", CONFIG_INT, OFF(search_retries), "3", 0, 20, NULL,
     false,
     "Corrected answers the Modifier asks for after an invalid block."},
    {"search.stem_always", CONFIG_BOOL, OFF(search_stem_always), "false",
     NO_LIMIT, NULL, false,
     "Ask the model for a new stem and downsample block with every design "
     "(otherwise only when the parent's no longer fit)."},
    {"search.research_threshold", CONFIG_DOUBLE,
     OFF(search_research_threshold), "0.5", 0, 100, NULL, false,
     "Accuracy points a child must lose against its parent to become "
     "research experience."},
    {"search.inspirations", CONFIG_PATH, OFF(search_inspirations), "",
     NO_LIMIT, NULL, false,
     "Inspiration list to import: the NADER release's JSON layout, a JSON "
     "list of strings, or a text file with one idea per line."},
    {"search.papers", CONFIG_LIST, OFF(search_papers), "", NO_LIMIT, NULL,
     false,
     "Paper text files the Reader turns into inspirations when the search "
     "starts (relative to the configuration file)."},
    {"search.reader_chunks", CONFIG_INT, OFF(search_reader_chunks), "4", 0,
     1000, NULL, false,
     "Pieces of about 12,000 characters read from each paper; 0: all."},
    {"search.prompts", CONFIG_PATH, OFF(search_prompts), "", NO_LIMIT, NULL,
     false,
     "Folder of NAME.txt prompt templates overriding the built-in ones."},
    {"search.offline", CONFIG_BOOL, OFF(search_offline), "false", NO_LIMIT,
     NULL, false,
     "Use the offline designer (random programmatic edits, no LLM) even "
     "when an endpoint is configured. Without llm.base_url it is always "
     "used."},
    {"search.designer_tries", CONFIG_INT, OFF(search_designer_tries), "50",
     1, 100000, NULL, false,
     "Edits the offline designer tries for each new design."},
    {"search.rounds", CONFIG_INT, OFF(search_rounds), "3", 1, 100, NULL,
     false,
     "Proposal rounds per iteration while it has fewer than search.width "
     "new designs."},
    {"search.pairs", CONFIG_INT, OFF(search_pairs), "6", 1, 100, NULL,
     false,
     "With search.parent llm: (design, inspiration) pairs asked for."},
    {"train.screen_epochs", CONFIG_INT, OFF(train_screen_epochs), "12", 1,
     100000, NULL, false, "Epochs of the screening run every design gets."},
    {"train.full_epochs", CONFIG_INT, OFF(train_full_epochs), "200", 1,
     100000, NULL, false,
     "Epochs of the full protocol the best designs get."},
    {"train.full_fraction", CONFIG_DOUBLE, OFF(train_full_fraction), "0.2",
     0, 1, NULL, false,
     "Fraction of screened designs, the best, promoted to the full "
     "protocol; 0: none."},
    {"train.final_seeds", CONFIG_LIST, OFF(train_final_seeds), "888,999",
     NO_LIMIT, s_check_seeds, false,
     "Extra seeds the final best design is trained with."},
    {"train.max_steps", CONFIG_INT, OFF(train_max_steps), "0", 0, 1e12,
     NULL, false,
     "Above 0: stop every run after this many steps (quick runs)."},
    {"train.budget", CONFIG_INT, OFF(train_budget), "0", 0, 1e12, NULL,
     false,
     "Parameter budget the width is chosen for; 0: 1,500,000."},
    {"train.cells_per_stage", CONFIG_INT, OFF(train_cells_per_stage), "0",
     0, 100, NULL, false, "Cells per stage; 0: the skeleton's (5)."},
    {"train.stem_scale", CONFIG_INT, OFF(train_stem_scale), "1", 1, 8,
     s_check_stem_scale, false,
     "How many times the stem block reduces the input resolution: 1, 2, "
     "4 or 8. 1 (CIFAR style) keeps it; 4 takes ImageNet-style stems "
     "(a 4x4 stride-4 patchify convolution, or a stride-2 convolution "
     "and a stride-2 pool). The stages then run at that resolution; the "
     "MAC cap stays the input size's. Every design of the search, the "
     "base included, must have a stem that fits."},
    {"train.batch", CONFIG_INT, OFF(train_batch), "0", 0, 65536, NULL,
     false, "Batch size; 0: the recipe's (256)."},
    {"train.width", CONFIG_INT, OFF(train_width), "0", 0, 4096, NULL, false,
     "Above 0: this base width for every design instead of the budget's."},
    {"budget.designs", CONFIG_INT, OFF(budget_designs), "0", 0, 1e9, NULL,
     false, "Stop proposing after this many new designs; 0: no cap."},
    {"budget.tokens", CONFIG_INT, OFF(budget_tokens), "0", 0, 1e15, NULL,
     false, "Stop once the LLM calls used this many tokens; 0: no cap."},
    {"budget.cost", CONFIG_DOUBLE, OFF(budget_cost), "0", 0, 1e9, NULL,
     false,
     "Stop once the LLM calls cost this much (USD, from the llm.price_* "
     "keys); 0: no cap."},
    {"budget.gpu_hours", CONFIG_DOUBLE, OFF(budget_gpu_hours), "0", 0, 1e9,
     NULL, false,
     "Stop, cancelling queued runs, once the training time of the "
     "search's runs adds up to this; 0: no cap."},
    {"budget.deadline", CONFIG_MS, OFF(budget_deadline_ms), "0", 0, 1e15,
     NULL, false,
     "Stop, cancelling queued runs, this long after the search began "
     "(e.g. 12h); 0: no deadline."},
    {"llm.base_url", CONFIG_STRING, OFF(llm_base_url), "", NO_LIMIT, NULL,
     false,
     "OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 or "
     "http://localhost:8000/v1. Empty: the offline designer."},
    {"llm.model", CONFIG_STRING, OFF(llm_model), "", NO_LIMIT, NULL, false,
     "Chat model name."},
    {"llm.embed_model", CONFIG_STRING, OFF(llm_embed_model), "", NO_LIMIT,
     NULL, false,
     "Embedding model for experience retrieval; empty: word counts."},
    {"llm.api_key_env", CONFIG_STRING, OFF(llm_api_key_env),
     "OPENAI_API_KEY", NO_LIMIT, NULL, false,
     "Name of the environment variable holding the API key (the key "
     "itself is never written to a file or a log)."},
    {"llm.temperature", CONFIG_DOUBLE, OFF(llm_temperature), "0.7", 0, 2,
     NULL, false, "Sampling temperature."},
    {"llm.max_tokens", CONFIG_INT, OFF(llm_max_tokens), "2048", 1, 1e7,
     NULL, false, "Longest answer asked for, in tokens."},
    {"llm.timeout", CONFIG_MS, OFF(llm_timeout_ms), "120s", 100, 3.6e6,
     NULL, false, "Time limit of one request; a stalled one is retried."},
    {"llm.connect_timeout", CONFIG_MS, OFF(llm_connect_timeout_ms), "10s",
     100, 3.6e6, NULL, false, "Time limit for connecting."},
    {"llm.retries", CONFIG_INT, OFF(llm_retries), "5", 0, 100, NULL, false,
     "Further attempts after a timeout, a 429 or a 5xx, with exponential "
     "backoff and jitter."},
    {"llm.backoff", CONFIG_MS, OFF(llm_backoff_ms), "1s", 0, 3.6e6, NULL,
     false, "First wait before a retry; doubles each time."},
    {"llm.backoff_max", CONFIG_MS, OFF(llm_backoff_max_ms), "60s", 0, 3.6e6,
     NULL, false,
     "Longest wait between retries (a longer Retry-After is honoured)."},
    {"llm.concurrency", CONFIG_INT, OFF(llm_concurrency), "4", 1, 256, NULL,
     false,
     "Requests in flight at most; also how many Modifier conversations run "
     "at once."},
    {"llm.price_prompt", CONFIG_DOUBLE, OFF(llm_price_prompt), "0", 0, 1e6,
     NULL, false, "USD per million prompt tokens, for budget.cost."},
    {"llm.price_completion", CONFIG_DOUBLE, OFF(llm_price_completion), "0",
     0, 1e6, NULL, false, "USD per million completion tokens."},
    {"llm.price_embed", CONFIG_DOUBLE, OFF(llm_price_embed), "0", 0, 1e6,
     NULL, false, "USD per million embedding tokens."},
    {"llm.replay", CONFIG_PATH, OFF(llm_replay), "", NO_LIMIT, NULL, false,
     "Exchange log (llm.jsonl of a results folder) to answer every LLM "
     "call from, without an endpoint: the recorded search is re-run."},
    {"run.workers", CONFIG_INT, OFF(run_workers), "0", 0, 1024, NULL, false,
     "`nader run`: local workers to start; 0: one per GPU, or one on the "
     "CPU."},
    {"run.device", CONFIG_STRING, OFF(run_device), "auto", NO_LIMIT,
     s_check_device, false,
     "`nader run`: auto (GPUs when there are any), cpu or cuda."},
    {"run.threads", CONFIG_INT, OFF(run_threads), "0", 0, 4096, NULL, false,
     "`nader run`: CPU threads of a CPU worker; 0: all cores."},
    {"run.results", CONFIG_PATH, OFF(run_results), "results", NO_LIMIT,
     NULL, false,
     "`nader run`: folder the results folder SEARCH_NAME is written in."},
    {"data.dir", CONFIG_PATH, OFF(data_dir), "data", NO_LIMIT, NULL, false,
     "`nader run`: folder holding the data set, given to the local "
     "workers (docs/data.md)."},
    {"data.generate", CONFIG_STRING, OFF(data_generate), "", NO_LIMIT,
     s_check_generate, false,
     "`nader run`: synthetic writes a small generated data set in the "
     "CIFAR-10 layout into data.dir when none is there (not CIFAR-10; "
     "labelled so in its manifest and in the results)."},
    {"data.train_images", CONFIG_INT, OFF(data_train_images), "2500", 10,
     50000, NULL, false, "Synthetic training images (data.generate)."},
    {"data.test_images", CONFIG_INT, OFF(data_test_images), "500", 10,
     10000, NULL, false, "Synthetic test images (data.generate)."},
};

#define N_KEYS ((int)(sizeof s_keys / sizeof s_keys[0]))

const config_key_t *config_keys(int *n)
{
    *n = N_KEYS;
    return s_keys;
}

const config_key_t *config_key_find(const char *name)
{
    for (int i = 0; i < N_KEYS; i++)
        if (strcmp(s_keys[i].name, name) == 0)
            return &s_keys[i];
    return NULL;
}

/* ------------------------------------------------------------- checkers */

static int s_check_endpoint(const void *v, char *err, size_t errlen)
{
    const char *s = *(char *const *)v;

    if (s && (strncmp(s, "tcp://", 6) == 0 || strncmp(s, "ipc://", 6) == 0 ||
              strncmp(s, "inproc://", 9) == 0) &&
        strlen(s) > 7)
        return 0;
    snprintf(err, errlen,
             "'%s' is not a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH)",
             s ? s : "");
    return -1;
}

static int s_check_endpoint_or_empty(const void *v, char *err,
                                     size_t errlen)
{
    const char *s = *(char *const *)v;

    if (!s || !*s)
        return 0;
    return s_check_endpoint(v, err, errlen);
}

static int s_check_host_port(const void *v, char *err, size_t errlen)
{
    const char *s = *(char *const *)v, *colon;
    char *end;
    long port;

    colon = s ? strrchr(s, ':') : NULL;
    if (colon && colon > s) {
        port = strtol(colon + 1, &end, 10);
        if (colon[1] && !*end && port >= 0 && port <= 65535)
            return 0;
    }
    snprintf(err, errlen, "'%s' is not HOST:PORT (such as 127.0.0.1:9467, "
             "0.0.0.0:9467 or [::]:9467)", s ? s : "");
    return -1;
}

static int s_check_log_level(const void *v, char *err, size_t errlen)
{
    const char *s = *(char *const *)v;

    if (s && log_level_parse(s) >= 0)
        return 0;
    snprintf(err, errlen, "'%s' is not a log level (debug, info, warn, "
             "error)", s ? s : "");
    return -1;
}

/* One of a fixed list of words. */
static int s_check_word(const void *v, const char *const *words,
                        const char *what, char *err, size_t errlen)
{
    const char *s = *(char *const *)v;
    char list[256] = "";

    for (int i = 0; words[i]; i++) {
        if (s && strcmp(s, words[i]) == 0)
            return 0;
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                 i ? ", " : "", words[i][0] ? words[i] : "\"\"");
    }
    snprintf(err, errlen, "'%s' is not %s (%s)", s ? s : "", what, list);
    return -1;
}

static int s_check_dataset(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"cifar10", "cifar10-valid", "cifar100",
                                    "imagenet16-120", NULL};
    return s_check_word(v, w, "a data set", err, errlen);
}

static int s_check_skeleton(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"nb201", "darts", NULL};
    return s_check_word(v, w, "a skeleton", err, errlen);
}

static int s_check_parent(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"dfs", "best", "llm", NULL};
    return s_check_word(v, w, "a parent choice", err, errlen);
}

static int s_check_sample(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"random", "guided", NULL};
    return s_check_word(v, w, "a sampling", err, errlen);
}

static int s_check_stem_scale(const void *v, char *err, size_t errlen)
{
    int64_t s = *(const int64_t *)v;

    if (s == 1 || s == 2 || s == 4 || s == 8)
        return 0;
    snprintf(err, errlen, "%lld is not a stem scale (1, 2, 4 or 8)",
             (long long)s);
    return -1;
}

static int s_check_device(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"auto", "cpu", "cuda", NULL};
    return s_check_word(v, w, "a device choice", err, errlen);
}

static int s_check_generate(const void *v, char *err, size_t errlen)
{
    static const char *const w[] = {"", "synthetic", NULL};
    return s_check_word(v, w, "a generator", err, errlen);
}

static int s_check_seeds(const void *v, char *err, size_t errlen)
{
    char *const *list = *(char **const *)v;
    int n = 0;

    for (; list && list[n]; n++) {
        char *end;
        errno = 0;
        unsigned long long x = strtoull(list[n], &end, 10);
        (void)x;
        if (errno || end == list[n] || *end) {
            snprintf(err, errlen, "'%s' is not a seed (a whole number)",
                     list[n]);
            return -1;
        }
    }
    if (n > 8) {
        snprintf(err, errlen, "at most 8 seeds, not %d", n);
        return -1;
    }
    return 0;
}

/* -------------------------------------------------------- value parsers */

static int s_parse_scaled(const char *text, const char *const *units,
                          const double *scale, int n_units, int64_t *out)
{
    char *end;
    double v;

    errno = 0;
    while (isspace((unsigned char)*text))
        text++;
    if (!*text)
        return -1;
    v = strtod(text, &end);
    if (errno || end == text || !isfinite(v) || v < 0)
        return -1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end) {
        int i;
        for (i = 0; i < n_units; i++)
            if (strcasecmp(end, units[i]) == 0)
                break;
        if (i == n_units)
            return -1;
        v *= scale[i];
    }
    if (v > 9.2e18 || v != floor(v))
        return -1;
    *out = (int64_t)v;
    return 0;
}

int config_parse_ms(const char *text, int64_t *ms)
{
    static const char *const units[] = {"ms", "s", "m", "min", "h"};
    static const double scale[] = {1, 1e3, 6e4, 6e4, 3.6e6};

    return s_parse_scaled(text, units, scale, 5, ms);
}

int config_parse_bytes(const char *text, int64_t *bytes)
{
    static const char *const units[] = {"b", "k", "kb", "kib", "m", "mb",
                                        "mib", "g", "gb", "gib", "t", "tb",
                                        "tib"};
    static const double scale[] = {1,           1024.0,      1024.0,
                                   1024.0,      1048576.0,   1048576.0,
                                   1048576.0,   1073741824.0, 1073741824.0,
                                   1073741824.0, 1099511627776.0,
                                   1099511627776.0, 1099511627776.0};

    return s_parse_scaled(text, units, scale, 13, bytes);
}

int config_parse_bool(const char *text, bool *v)
{
    static const char *yes[] = {"true", "yes", "on", "1"};
    static const char *no[] = {"false", "no", "off", "0"};

    for (int i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *v = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *v = false;
            return 0;
        }
    }
    return -1;
}

/* -------------------------------------------------------- typed values */

/* A parsed value of any type, before it is stored. */
typedef struct s_value {
    char *s;
    char **list;
    int64_t i;
    double d;
    bool b;
} s_value_t;

static void s_list_free(char **list)
{
    if (!list)
        return;
    for (char **p = list; *p; p++)
        free(*p);
    free(list);
}

static char **s_list_split(const char *text)
{
    size_t n = 1, k = 0;
    char **list;
    const char *p = text;

    for (const char *q = text; *q; q++)
        n += *q == ',';
    list = calloc(n + 1, sizeof *list);
    if (!list)
        return NULL;
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        while (len && isspace((unsigned char)*p)) {
            p++;
            len--;
        }
        while (len && isspace((unsigned char)p[len - 1]))
            len--;
        if (len) {
            list[k] = strndup(p, len);
            if (!list[k++]) {
                s_list_free(list);
                return NULL;
            }
        }
        if (!e)
            break;
        p = e + 1;
    }
    return list;
}

/* Join base's folder and a relative path; returns malloc'd text. */
static char *s_path_join(const char *base_file, const char *path)
{
    const char *slash;
    char *out;
    size_t n;

    if (!base_file || !*base_file || path[0] == '/' || !path[0] ||
        !(slash = strrchr(base_file, '/')))
        return strdup(path);
    n = (size_t)(slash - base_file) + 1 + strlen(path) + 1;
    out = malloc(n);
    if (out)
        snprintf(out, n, "%.*s/%s", (int)(slash - base_file), base_file,
                 path);
    return out;
}

/*
 * Parse text for key k into v.  base is the file the text came from (for
 * relative paths), or NULL.  Returns 0, or -1 with a message.
 */
static int s_value_parse(const config_key_t *k, const char *text,
                         const char *base, s_value_t *v, char *err,
                         size_t errlen)
{
    static const char *const kinds[] = {
        "a string", "a path", "an integer", "true or false", "a number",
        "a duration (e.g. 500ms, 5s, 2m)", "a size (e.g. 4096, 64MiB, 1GiB)",
        "a list"};
    char *end;
    double num = 0;
    int rc = 0;

    memset(v, 0, sizeof *v);
    switch (k->type) {
    case CONFIG_STRING:
        v->s = strdup(text);
        rc = v->s ? 0 : -2;
        break;
    case CONFIG_PATH:
        v->s = s_path_join(base, text);
        rc = v->s ? 0 : -2;
        break;
    case CONFIG_LIST:
        v->list = s_list_split(text);
        rc = v->list ? 0 : -2;
        break;
    case CONFIG_INT:
        errno = 0;
        v->i = strtoll(text, &end, 10);
        rc = (errno || end == text || *end) ? -1 : 0;
        num = (double)v->i;
        break;
    case CONFIG_DOUBLE:
        errno = 0;
        v->d = strtod(text, &end);
        rc = (errno || end == text || *end || !isfinite(v->d)) ? -1 : 0;
        num = v->d;
        break;
    case CONFIG_BOOL:
        rc = config_parse_bool(text, &v->b);
        break;
    case CONFIG_MS:
        rc = config_parse_ms(text, &v->i);
        num = (double)v->i;
        break;
    case CONFIG_BYTES:
        rc = config_parse_bytes(text, &v->i);
        num = (double)v->i;
        break;
    }
    if (rc == -2) {
        snprintf(err, errlen, "key '%s': out of memory", k->name);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "key '%s': '%s' is not %s", k->name, text,
                 kinds[k->type]);
        return -1;
    }
    if (k->min <= k->max && k->type != CONFIG_BOOL &&
        k->type != CONFIG_STRING && k->type != CONFIG_PATH &&
        k->type != CONFIG_LIST && (num < k->min || num > k->max)) {
        snprintf(err, errlen, "key '%s': %s is out of range [%.17g, %.17g]",
                 k->name, text, k->min, k->max);
        return -1;
    }
    if (k->check) {
        char why[256];
        const void *p = k->type == CONFIG_LIST ? (const void *)&v->list
                        : (k->type == CONFIG_STRING || k->type == CONFIG_PATH)
                            ? (const void *)&v->s
                        : k->type == CONFIG_BOOL   ? (const void *)&v->b
                        : k->type == CONFIG_DOUBLE ? (const void *)&v->d
                                                   : (const void *)&v->i;
        if (k->check(p, why, sizeof why) < 0) {
            snprintf(err, errlen, "key '%s': %s", k->name, why);
            free(v->s);
            s_list_free(v->list);
            return -1;
        }
    }
    return 0;
}

/* Move a parsed value into its field, freeing what was there. */
static void s_value_store(config_t *c, const config_key_t *k, s_value_t *v)
{
    char *field = (char *)c + k->offset;

    switch (k->type) {
    case CONFIG_STRING:
    case CONFIG_PATH:
        free(*(char **)field);
        *(char **)field = v->s;
        break;
    case CONFIG_LIST:
        s_list_free(*(char ***)field);
        *(char ***)field = v->list;
        break;
    case CONFIG_INT:
    case CONFIG_MS:
    case CONFIG_BYTES:
        *(int64_t *)field = v->i;
        break;
    case CONFIG_DOUBLE:
        *(double *)field = v->d;
        break;
    case CONFIG_BOOL:
        *(bool *)field = v->b;
        break;
    }
}

int config_set_pair(config_t *c, const char *pair, char *err, size_t errlen)
{
    const char *eq = strchr(pair, '=');
    char key[128];

    if (!eq || eq == pair || (size_t)(eq - pair) >= sizeof key) {
        snprintf(err, errlen, "'%s' is not KEY=VALUE", pair);
        return -1;
    }
    memcpy(key, pair, (size_t)(eq - pair));
    key[eq - pair] = '\0';
    return config_set(c, key, eq + 1, err, errlen);
}

int config_set(config_t *c, const char *key, const char *value, char *err,
               size_t errlen)
{
    const config_key_t *k = config_key_find(key);
    s_value_t v;

    if (!k) {
        snprintf(err, errlen, "unknown configuration key '%s'", key);
        return -1;
    }
    if (s_value_parse(k, value, NULL, &v, err, errlen) < 0)
        return -1;
    s_value_store(c, k, &v);
    return 0;
}

int config_get(const config_t *c, const char *key, char *buf, size_t len)
{
    const config_key_t *k = config_key_find(key);
    const char *field;

    if (!k)
        return -1;
    field = (const char *)c + k->offset;
    switch (k->type) {
    case CONFIG_STRING:
    case CONFIG_PATH:
        snprintf(buf, len, "%s", *(char *const *)field ?
                 *(char *const *)field : "");
        break;
    case CONFIG_LIST: {
        char *const *l = *(char **const *)field;
        size_t n = 0;
        buf[0] = 0;
        for (; l && *l && n < len; l++)
            n += (size_t)snprintf(buf + n, len - n, "%s%s",
                                  n ? "," : "", *l);
        break;
    }
    case CONFIG_INT:
    case CONFIG_MS:
    case CONFIG_BYTES:
        snprintf(buf, len, "%lld", (long long)*(const int64_t *)field);
        break;
    case CONFIG_DOUBLE:
        snprintf(buf, len, "%.17g", *(const double *)field);
        break;
    case CONFIG_BOOL:
        snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false");
        break;
    }
    return 0;
}

int config_defaults(config_t *c)
{
    char err[256];

    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        s_value_t v;
        if (s_value_parse(&s_keys[i], s_keys[i].def, NULL, &v, err,
                          sizeof err) < 0) {
            config_free(c);
            return -1;
        }
        s_value_store(c, &s_keys[i], &v);
    }
    c->source = strdup("");
    return c->source ? 0 : -1;
}

void config_free(config_t *c)
{
    for (int i = 0; i < N_KEYS; i++) {
        char *field = (char *)c + s_keys[i].offset;
        if (s_keys[i].type == CONFIG_STRING || s_keys[i].type == CONFIG_PATH)
            free(*(char **)field);
        else if (s_keys[i].type == CONFIG_LIST)
            s_list_free(*(char ***)field);
    }
    free(c->source);
    memset(c, 0, sizeof *c);
}

/* ----------------------------------------------------------- YAML file */

typedef struct s_reader {
    yaml_parser_t parser;
    const char *name;
    config_t *c;
    char *err;
    size_t errlen;
} s_reader_t;

static int s_next(s_reader_t *r, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&r->parser, ev)) {
        snprintf(r->err, r->errlen, "%s:%zu: YAML: %s", r->name,
                 r->parser.problem_mark.line + 1,
                 r->parser.problem ? r->parser.problem : "parse error");
        return -1;
    }
    return 0;
}

static int s_mapping(s_reader_t *r, const char *prefix);

/* Read the items of a sequence into a comma-free list for key k. */
static int s_sequence(s_reader_t *r, const config_key_t *k, size_t line)
{
    s_value_t v = {0};
    size_t n = 0;
    yaml_event_t ev;

    v.list = calloc(1, sizeof *v.list);
    for (;;) {
        char **grown;
        if (!v.list || s_next(r, &ev) < 0)
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            snprintf(r->err, r->errlen, "%s:%zu: key '%s': list items "
                     "must be plain values", r->name,
                     ev.start_mark.line + 1, k->name);
            yaml_event_delete(&ev);
            goto fail;
        }
        grown = realloc(v.list, (n + 2) * sizeof *v.list);
        if (!grown) {
            yaml_event_delete(&ev);
            goto fail;
        }
        v.list = grown;
        v.list[n] = strdup((const char *)ev.data.scalar.value);
        v.list[++n] = NULL;
        yaml_event_delete(&ev);
    }
    s_value_store(r->c, k, &v);
    return 0;
fail:
    if (!r->err[0])
        snprintf(r->err, r->errlen, "%s:%zu: key '%s': out of memory",
                 r->name, line, k->name);
    s_list_free(v.list);
    return -1;
}

/* Handle the value of key `full` whose first event is ev. */
static int s_value_event(s_reader_t *r, const char *full, yaml_event_t *ev)
{
    size_t line = ev->start_mark.line + 1;
    const config_key_t *k;
    char why[384];
    s_value_t v;

    if (ev->type == YAML_MAPPING_START_EVENT)
        return s_mapping(r, full);
    k = config_key_find(full);
    if (!k) {
        snprintf(r->err, r->errlen, "%s:%zu: unknown key '%s'", r->name,
                 line, full);
        return -1;
    }
    if (ev->type == YAML_SEQUENCE_START_EVENT) {
        if (k->type != CONFIG_LIST) {
            snprintf(r->err, r->errlen, "%s:%zu: key '%s' takes one value, "
                     "not a list", r->name, line, full);
            return -1;
        }
        return s_sequence(r, k, line);
    }
    if (ev->type != YAML_SCALAR_EVENT) {
        snprintf(r->err, r->errlen, "%s:%zu: key '%s': unexpected YAML "
                 "node", r->name, line, full);
        return -1;
    }
    if (s_value_parse(k, (const char *)ev->data.scalar.value, r->name, &v,
                      why, sizeof why) < 0) {
        snprintf(r->err, r->errlen, "%s:%zu: %s", r->name, line, why);
        return -1;
    }
    s_value_store(r->c, k, &v);
    return 0;
}

/* Read a mapping's pairs (its start event already consumed). */
static int s_mapping(s_reader_t *r, const char *prefix)
{
    for (;;) {
        yaml_event_t key, val;
        char full[256];
        int rc;

        if (s_next(r, &key) < 0)
            return -1;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return 0;
        }
        if (key.type != YAML_SCALAR_EVENT) {
            snprintf(r->err, r->errlen, "%s:%zu: keys must be plain names",
                     r->name, key.start_mark.line + 1);
            yaml_event_delete(&key);
            return -1;
        }
        snprintf(full, sizeof full, "%s%s%s", prefix, *prefix ? "." : "",
                 (const char *)key.data.scalar.value);
        yaml_event_delete(&key);
        if (s_next(r, &val) < 0)
            return -1;
        rc = s_value_event(r, full, &val);
        yaml_event_delete(&val);
        if (rc < 0)
            return -1;
    }
}

int config_load_string(config_t *c, const char *text, size_t len,
                       const char *name, char *err, size_t errlen)
{
    s_reader_t r = {.name = name ? name : "config", .c = c, .err = err,
                    .errlen = errlen};
    yaml_event_t ev;
    int rc = -1;
    bool done = false;

    err[0] = 0;
    if (!yaml_parser_initialize(&r.parser)) {
        snprintf(err, errlen, "%s: cannot start the YAML parser", r.name);
        return -1;
    }
    yaml_parser_set_input_string(&r.parser, (const unsigned char *)text,
                                 len);
    while (!done) {
        if (s_next(&r, &ev) < 0)
            goto out;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_MAPPING_START_EVENT:
            if (s_mapping(&r, "") < 0) {
                yaml_event_delete(&ev);
                goto out;
            }
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
            snprintf(err, errlen, "%s:%zu: the file must be a mapping of "
                     "keys to values", r.name, ev.start_mark.line + 1);
            yaml_event_delete(&ev);
            goto out;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    rc = 0;
out:
    yaml_parser_delete(&r.parser);
    return rc;
}

int config_load_file(config_t *c, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    long n;
    int rc = -1;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) < 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) < 0) {
        snprintf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
        goto out;
    }
    text = malloc((size_t)n + 1);
    if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
        snprintf(err, errlen, "%s: cannot read: %s", path,
                 text ? strerror(errno) : "out of memory");
        goto out;
    }
    text[n] = 0;
    rc = config_load_string(c, text, (size_t)n, path, err, errlen);
    if (rc == 0) {
        free(c->source);
        c->source = strdup(path);
    }
out:
    free(text);
    fclose(f);
    return rc;
}
