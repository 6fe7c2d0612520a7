/*
 * llm.h - the client for OpenAI-compatible language-model endpoints.
 *
 * The agents talk to a language model only through this module: chat
 * completions (POST {base_url}/chat/completions) and embeddings (POST
 * {base_url}/embeddings), over libcurl.  It owns everything about the
 * conversation that is not the agents' business:
 *
 *  - retries with exponential backoff and jitter on timeouts, dropped
 *    connections, unreadable answers, 429 (waiting at least what
 *    Retry-After asks) and 5xx; other 4xx answers fail at once;
 *  - a limit on requests in flight, shared by all threads;
 *  - token counts from each answer's usage (estimated from the text, and
 *    marked so, when the endpoint sends none), priced from the
 *    configuration, and caps on tokens and cost: once a cap is reached
 *    every further call fails with LLM_ERR_BUDGET and a reason;
 *  - the exchange log: every answered call (agent, iteration, request,
 *    answer, tokens, cost, latency, attempts) is handed to a sink before
 *    the answer is returned, so a caller that stores it can act on the
 *    answer knowing it is kept;
 *  - memoised answers: exchanges loaded from a log (--llm-replay) or from
 *    the store after a restart answer the same request again without the
 *    network.  A request is identified by a key made of the iteration,
 *    the agent, the kind and the exact request text, plus how many times
 *    that same request was already made in that iteration, so a search
 *    that makes the same requests in the same order gets the same
 *    answers, and one resumed mid-iteration asks nothing twice.
 *
 * The API key is read from the environment variable named in the
 * configuration when a request is made; it is never copied into the
 * client, a log line, an error message or an exchange.
 *
 * Thread safety: one llm_t may be used by several threads at once.
 * Ownership: llm_new returns a client owned by the caller, freed with
 * llm_destroy(&l).  Answers returned by llm_chat/llm_embed are owned by
 * the caller.  Exchanges passed to the sink are borrowed for the call.
 */
#ifndef NADER_LLM_H
#define NADER_LLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef struct llm_config {
    const char *base_url;     /* "https://api.openai.com/v1"; NULL or ""
                                 only in replay mode */
    const char *model;        /* chat model name */
    const char *embed_model;  /* NULL or "": no embeddings */
    const char *api_key_env;  /* name of the variable holding the key;
                                 NULL or "": send no key */
    double temperature;       /* 0.7 */
    int max_tokens;           /* per answer, 2048 */
    double timeout_s;         /* per attempt, whole request, 120 */
    double connect_timeout_s; /* 10 */
    int retries;              /* further attempts after the first, 5 */
    double backoff_s;         /* first wait, 1; doubles each retry */
    double backoff_max_s;     /* 60 */
    double retry_after_max_s; /* longest Retry-After honoured, 300 */
    int concurrency;          /* requests in flight at most, 4 */
    double price_prompt;      /* USD per million prompt tokens */
    double price_completion;  /* USD per million completion tokens */
    double price_embed;       /* USD per million embedding tokens */
    int64_t max_total_tokens; /* cap over the search, 0: none */
    double max_cost;          /* USD cap over the search, 0: none */
    bool replay_only;         /* answer only from memoised exchanges */
    uint64_t seed;            /* for the jitter */
} llm_config_t;

/* Fill c with the defaults above (no endpoint, no prices, no caps). */
void llm_config_default(llm_config_t *c);

typedef enum llm_kind { LLM_KIND_CHAT, LLM_KIND_EMBED } llm_kind_t;

/* Return codes of llm_chat and llm_embed. */
enum {
    LLM_OK = 0,
    LLM_ERR_USAGE = -1,     /* bad arguments or out of memory */
    LLM_ERR_BUDGET = -2,    /* a token or cost cap is reached */
    LLM_ERR_FAILED = -3,    /* no answer after every retry, or a 4xx */
    LLM_ERR_REPLAY = -4,    /* replay only, and no recorded answer */
    LLM_ERR_CANCELLED = -5, /* llm_cancel was called */
    LLM_ERR_NO_EMBED = -6,  /* the endpoint offers no embeddings */
    LLM_ERR_SINK = -7       /* the sink refused to keep the exchange */
};

typedef struct llm_message {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} llm_message_t;

/* One answered call. */
typedef struct llm_exchange {
    int64_t seq; /* order of answering in this client */
    llm_kind_t kind;
    char agent[24]; /* "proposer", "modifier", ... */
    int iteration;
    char key[48]; /* request identity, see above */
    char model[96];
    char *request; /* JSON: messages (chat) or inputs */
    char *answer;  /* text (chat) or JSON array of vectors */
    int64_t prompt_tokens;
    int64_t completion_tokens;
    bool estimated;   /* token counts estimated, not reported */
    double cost;      /* USD */
    double latency_s; /* from the first attempt to the answer */
    int attempts;
    double time; /* Unix time of the answer */
    bool memo;   /* answered from a memoised exchange */
} llm_exchange_t;

/* Totals over the calls answered (memoised ones included). */
typedef struct llm_usage {
    int64_t calls;
    int64_t prompt_tokens;
    int64_t completion_tokens;
    double cost;
    int64_t memo_hits; /* answered without the network */
    int64_t failures;  /* calls that returned an error */
    int64_t retries;   /* extra attempts made */
} llm_usage_t;

typedef struct llm llm_t;

/*
 * Make a client.  Copies everything it keeps from cfg.  Returns NULL
 * with a message in err when the configuration is unusable (no base URL
 * outside replay mode, no model, a negative limit).
 */
llm_t *llm_new(const llm_config_t *cfg, char *err, size_t errlen);
void llm_destroy(llm_t **l);

/*
 * Called with every exchange answered from the network, in answer order,
 * before the answer goes back to the caller; a non-zero return makes the
 * call fail with LLM_ERR_SINK (the answer is not used).  Exchanges
 * answered from the memo are not passed again.
 */
typedef int (*llm_sink_fn)(void *ctx, const llm_exchange_t *x);
void llm_set_sink(llm_t *l, llm_sink_fn fn, void *ctx);

/*
 * Ask for a chat completion.  agent and iteration label the exchange.
 * On success returns LLM_OK and sets *answer (malloc'd, the message
 * content).  On failure returns an LLM_ERR_* code, leaves *answer NULL
 * and writes one line naming the endpoint and the cause in err.
 */
int llm_chat(llm_t *l, const char *agent, int iteration,
             const llm_message_t *msgs, int n_msgs, char **answer, char *err,
             size_t errlen);

/*
 * Embed n texts.  On success sets *vecs to a malloc'd n x *dim array of
 * floats, each row scaled to unit length.  LLM_ERR_NO_EMBED when no
 * embedding model is configured or the endpoint answered 404 once (it
 * is not asked again).
 */
int llm_embed(llm_t *l, const char *agent, int iteration,
              const char *const *texts, int n, float **vecs, int *dim,
              char *err, size_t errlen);

/* True when embeddings may be asked for: configured and not known to be
 * absent, or (replay only) present in the memo. */
bool llm_has_embeddings(const llm_t *l);

/* Make every waiting and future call return LLM_ERR_CANCELLED soon. */
void llm_cancel(llm_t *l);

/* Totals so far; llm_usage_set restores them (after a restart). */
void llm_usage_get(llm_t *l, llm_usage_t *u);
void llm_usage_set(llm_t *l, const llm_usage_t *u);

/*
 * When a cap is reached, write the reason ("token budget reached:
 * 10234 of 10000 tokens") to buf and return true.
 */
bool llm_budget_reached(llm_t *l, char *buf, size_t len);

/*
 * Add an exchange to the memo (copied): a request with its key is then
 * answered from it instead of the endpoint.  counted says that its
 * tokens and cost are already in the usage totals (llm_usage_set);
 * otherwise they are added when it is first used.  Returns 0 or -1
 * (memory).
 */
int llm_memo_add(llm_t *l, const llm_exchange_t *x, bool counted);

/*
 * Load every exchange of a JSON-lines log into the memo.  Returns the
 * number loaded, or -1 with a message naming the file and line in err.
 */
int llm_memo_load_jsonl(llm_t *l, const char *path, char *err, size_t errlen);

/* Number of memoised exchanges not used yet. */
int llm_memo_unused(llm_t *l);

/* ------------------------------------------------ exchanges as JSON */

/* One exchange as a JSON object on one line (malloc'd), no newline. */
char *llm_exchange_to_json(const llm_exchange_t *x);

/* Parse one line made by llm_exchange_to_json into x (fields owned by
 * x, freed with llm_exchange_free).  Returns 0, or -1 with err. */
int llm_exchange_from_json(const char *line, llm_exchange_t *x, char *err,
                           size_t errlen);

/* Deep copy, and freeing of what an exchange owns. */
int llm_exchange_copy(llm_exchange_t *dst, const llm_exchange_t *src);
void llm_exchange_free(llm_exchange_t *x);

/* A ready-made sink: append x to the FILE * given as ctx as one JSON
 * line and flush.  Returns 0 or -1 (write error). */
int llm_sink_jsonl(void *ctx, const llm_exchange_t *x);

/*
 * Optional notices for a daemon's log: called (from the calling thread)
 * before each retry with one line such as "POST .../chat/completions:
 * HTTP 429; retry 2 of 5 in 3.0 s".
 */
typedef void (*llm_notice_fn)(void *ctx, const char *line);
void llm_set_notice(llm_t *l, llm_notice_fn fn, void *ctx);

#endif
