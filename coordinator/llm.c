/*
 * llm.c - the HTTP side of the language-model client (see llm.h):
 * requests, retries, the in-flight limit, usage and caps, and the memo.
 * The JSON form of exchanges is in llm_json.c.
 *
 * Each attempt uses its own curl easy handle, so threads never share
 * one; the in-flight limit is taken for the attempt only, never while
 * waiting to retry, so a client backing off does not stall the others.
 * Waits are cut into short sleeps that watch the cancel flag, and a
 * transfer in progress is aborted from curl's progress callback.
 */
#include "llm.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include "text.h"

#define LLM_MAX_REPLY ((size_t)32 << 20)

typedef struct s_memo {
    llm_exchange_t x;
    bool used;
} s_memo_t;

typedef struct s_count {
    char base[33];
    int iteration;
    int n;
} s_count_t;

struct llm {
    llm_config_t cfg; /* strings below point into own copies */
    char *base_url, *model, *embed_model, *api_key_env;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t slot_free;
    int in_flight;
    uint64_t rng;
    llm_usage_t usage;
    int64_t seq;
    bool embed_absent;
    bool memo_has_embed;        /* a replay log holds embeddings */

    s_memo_t *memo;
    int n_memo, cap_memo;
    s_count_t *counts;
    int n_counts, cap_counts;

    llm_sink_fn sink;
    void *sink_ctx;
    llm_notice_fn notice;
    void *notice_ctx;

    atomic_bool cancelled;
    bool locks_made;
};

/* One HTTP attempt's outcome. */
typedef struct s_reply {
    long status; /* HTTP status, 0 when none */
    CURLcode code;
    text_buf_t body;
    double retry_after; /* seconds, < 0 when absent */
    char curl_err[CURL_ERROR_SIZE];
} s_reply_t;

static pthread_once_t s_global_once = PTHREAD_ONCE_INIT;
static int s_global_rc;

static void s_global_init(void)
{
    s_global_rc =
        curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK && sodium_init() >= 0
            ? 0
            : -1;
}

static double s_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    return (double)tv.tv_sec + tv.tv_usec / 1e6;
}

void llm_config_default(llm_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->temperature = 0.7;
    c->max_tokens = 2048;
    c->timeout_s = 120;
    c->connect_timeout_s = 10;
    c->retries = 5;
    c->backoff_s = 1;
    c->backoff_max_s = 60;
    c->retry_after_max_s = 300;
    c->concurrency = 4;
    c->seed = 1;
}

static char *s_dup(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

llm_t *llm_new(const llm_config_t *cfg, char *err, size_t errlen)
{
    llm_t *l = NULL;

    pthread_once(&s_global_once, s_global_init);
    if (s_global_rc != 0) {
        snprintf(err, errlen, "llm: libcurl or libsodium failed to start");
        return NULL;
    }
    if (!cfg->replay_only && (!cfg->base_url || !*cfg->base_url)) {
        snprintf(err, errlen, "llm: no base URL configured");
        return NULL;
    }
    if (!cfg->replay_only && (!cfg->model || !*cfg->model)) {
        snprintf(err, errlen, "llm: no model configured");
        return NULL;
    }
    if (cfg->concurrency < 1 || cfg->retries < 0 || cfg->timeout_s <= 0 ||
        cfg->max_tokens < 1 || cfg->backoff_s < 0 ||
        cfg->max_total_tokens < 0 || cfg->max_cost < 0) {
        snprintf(err, errlen,
                 "llm: concurrency, max_tokens and timeout must be "
                 "positive; retries, backoff and caps not negative");
        return NULL;
    }
    l = calloc(1, sizeof *l);
    if (!l)
        goto nomem;
    l->cfg = *cfg;
    l->base_url = s_dup(cfg->base_url);
    l->model = s_dup(cfg->model);
    l->embed_model = s_dup(cfg->embed_model);
    l->api_key_env = s_dup(cfg->api_key_env);
    if ((cfg->base_url && *cfg->base_url && !l->base_url) ||
        (cfg->model && *cfg->model && !l->model))
        goto nomem;
    /* A trailing slash would give "v1//chat/completions". */
    if (l->base_url) {
        size_t n = strlen(l->base_url);
        while (n > 0 && l->base_url[n - 1] == '/')
            l->base_url[--n] = '\0';
    }
    l->cfg.base_url = l->base_url;
    l->cfg.model = l->model;
    l->cfg.embed_model = l->embed_model;
    l->cfg.api_key_env = l->api_key_env;
    l->rng = cfg->seed ? cfg->seed : 0x9e3779b97f4a7c15ULL;
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->slot_free, NULL);
    l->locks_made = true;
    atomic_init(&l->cancelled, false);
    return l;
nomem:
    snprintf(err, errlen, "llm: out of memory");
    llm_destroy(&l);
    return NULL;
}

void llm_destroy(llm_t **lp)
{
    llm_t *l = *lp;

    if (!l)
        return;
    for (int i = 0; i < l->n_memo; i++)
        llm_exchange_free(&l->memo[i].x);
    free(l->memo);
    if (l->locks_made) {
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->slot_free);
    }
    free(l->counts);
    free(l->base_url);
    free(l->model);
    free(l->embed_model);
    free(l->api_key_env);
    free(l);
    *lp = NULL;
}

void llm_set_sink(llm_t *l, llm_sink_fn fn, void *ctx)
{
    pthread_mutex_lock(&l->lock);
    l->sink = fn;
    l->sink_ctx = ctx;
    pthread_mutex_unlock(&l->lock);
}

void llm_set_notice(llm_t *l, llm_notice_fn fn, void *ctx)
{
    pthread_mutex_lock(&l->lock);
    l->notice = fn;
    l->notice_ctx = ctx;
    pthread_mutex_unlock(&l->lock);
}

void llm_cancel(llm_t *l)
{
    atomic_store(&l->cancelled, true);
    pthread_mutex_lock(&l->lock);
    pthread_cond_broadcast(&l->slot_free);
    pthread_mutex_unlock(&l->lock);
}

bool llm_has_embeddings(const llm_t *l)
{
    llm_t *m = (llm_t *)l;
    bool ok;

    pthread_mutex_lock(&m->lock);
    ok = !m->embed_absent &&
         (m->embed_model != NULL ||
          (m->cfg.replay_only && m->memo_has_embed));
    pthread_mutex_unlock(&m->lock);
    return ok;
}

void llm_usage_get(llm_t *l, llm_usage_t *u)
{
    pthread_mutex_lock(&l->lock);
    *u = l->usage;
    pthread_mutex_unlock(&l->lock);
}

void llm_usage_set(llm_t *l, const llm_usage_t *u)
{
    pthread_mutex_lock(&l->lock);
    l->usage = *u;
    pthread_mutex_unlock(&l->lock);
}

/* Caller holds the lock. */
static bool s_budget_locked(llm_t *l, char *buf, size_t len)
{
    int64_t used = l->usage.prompt_tokens + l->usage.completion_tokens;

    if (l->cfg.max_total_tokens > 0 && used >= l->cfg.max_total_tokens) {
        snprintf(buf, len, "token budget reached: %lld of %lld tokens",
                 (long long)used, (long long)l->cfg.max_total_tokens);
        return true;
    }
    if (l->cfg.max_cost > 0 && l->usage.cost >= l->cfg.max_cost) {
        snprintf(buf, len, "cost budget reached: $%.4f of $%.4f", l->usage.cost,
                 l->cfg.max_cost);
        return true;
    }
    return false;
}

bool llm_budget_reached(llm_t *l, char *buf, size_t len)
{
    pthread_mutex_lock(&l->lock);
    bool r = s_budget_locked(l, buf, len);
    pthread_mutex_unlock(&l->lock);
    return r;
}

/* ----------------------------------------------------------------- memo */

/*
 * Caller holds the lock.  used marks an entry whose usage has already
 * been counted (an embedding answered in this process); entries loaded
 * from a log or the store count their tokens and cost on first use.
 */
static int s_memo_add_locked(llm_t *l, const llm_exchange_t *x, bool used)
{
    if (l->n_memo == l->cap_memo) {
        int cap = l->cap_memo ? l->cap_memo * 2 : 64;
        s_memo_t *m = realloc(l->memo, (size_t)cap * sizeof *m);
        if (!m)
            return -1;
        l->memo = m;
        l->cap_memo = cap;
    }
    memset(&l->memo[l->n_memo], 0, sizeof l->memo[0]);
    if (llm_exchange_copy(&l->memo[l->n_memo].x, x) != 0)
        return -1;
    l->memo[l->n_memo].used = used;
    l->memo_has_embed = l->memo_has_embed || x->kind == LLM_KIND_EMBED;
    /*
     * An embedding's key names its model.  A replay configured without
     * one takes the model of the log's embeddings, or every embedding
     * would miss and retrieval would fall back to lexical similarity,
     * giving other prompts than the recorded search.
     */
    if (l->cfg.replay_only && !l->embed_model &&
        x->kind == LLM_KIND_EMBED && x->model[0]) {
        l->embed_model = strdup(x->model);
        l->cfg.embed_model = l->embed_model;
    }
    l->n_memo++;
    return 0;
}

int llm_memo_add(llm_t *l, const llm_exchange_t *x, bool counted)
{
    pthread_mutex_lock(&l->lock);
    int rc = s_memo_add_locked(l, x, counted);
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int llm_memo_unused(llm_t *l)
{
    int n = 0;

    pthread_mutex_lock(&l->lock);
    for (int i = 0; i < l->n_memo; i++)
        n += !l->memo[i].used;
    pthread_mutex_unlock(&l->lock);
    return n;
}

int llm_memo_load_jsonl(llm_t *l, const char *path, char *err, size_t errlen)
{
    size_t len;
    char *text = text_file_read(path, 0, &len, err, errlen);
    int n = 0, line = 0;

    if (!text)
        return -1;
    for (char *p = text; *p;) {
        char *e = strchr(p, '\n');
        if (e)
            *e = '\0';
        line++;
        char *q = p;
        while (*q == ' ' || *q == '\t' || *q == '\r')
            q++;
        if (*q) {
            llm_exchange_t x;
            char why[256];
            if (llm_exchange_from_json(q, &x, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s:%d: %s", path, line, why);
                free(text);
                return -1;
            }
            int rc = llm_memo_add(l, &x, false);
            llm_exchange_free(&x);
            if (rc != 0) {
                snprintf(err, errlen, "%s:%d: out of memory", path, line);
                free(text);
                return -1;
            }
            n++;
        }
        if (!e)
            break;
        p = e + 1;
    }
    free(text);
    return n;
}

/*
 * The key of a request: a hash of what identifies it, then "#" and the
 * number of identical requests made before it in the same iteration.
 * An embedding is a pure function of its inputs and the model, so its
 * key is the hash of those alone ("#e"): the same text is embedded once
 * per search, whichever agent or iteration asks (s_call keeps every
 * answered embedding in the memo).  Caller holds the lock.
 */
static int s_key_locked(llm_t *l, llm_kind_t kind, const char *agent,
                        int iteration, const char *request, char *key,
                        size_t keylen)
{
    unsigned char h[16];
    crypto_generichash_state st;
    char head[160], base[33];
    int n;

    if (kind == LLM_KIND_EMBED)
        n = snprintf(head, sizeof head, "%d|%.120s|", (int)kind,
                     l->embed_model ? l->embed_model : "");
    else
        n = snprintf(head, sizeof head, "%d|%s|%d|", (int)kind, agent,
                     iteration);
    if (n < 0 || (size_t)n >= sizeof head)
        n = (int)strlen(head);
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const unsigned char *)head, (size_t)n);
    crypto_generichash_update(&st, (const unsigned char *)request,
                              strlen(request));
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(base, sizeof base, h, sizeof h);
    if (kind == LLM_KIND_EMBED) {
        snprintf(key, keylen, "%s#e", base);
        return 0;
    }

    s_count_t *c = NULL;
    for (int i = 0; i < l->n_counts; i++)
        if (l->counts[i].iteration == iteration &&
            strcmp(l->counts[i].base, base) == 0) {
            c = &l->counts[i];
            break;
        }
    if (!c) {
        if (l->n_counts == l->cap_counts) {
            int cap = l->cap_counts ? l->cap_counts * 2 : 64;
            s_count_t *v = realloc(l->counts, (size_t)cap * sizeof *v);
            if (!v)
                return -1;
            l->counts = v;
            l->cap_counts = cap;
        }
        c = &l->counts[l->n_counts++];
        memcpy(c->base, base, sizeof base);
        c->iteration = iteration;
        c->n = 0;
    }
    snprintf(key, keylen, "%s#%d", base, c->n++);
    return 0;
}

/*
 * Caller holds the lock.  The unused memo entry with this key, or NULL;
 * an embedding's entry serves any number of identical requests.
 */
static s_memo_t *s_memo_find_locked(llm_t *l, llm_kind_t kind,
                                    const char *key)
{
    for (int i = 0; i < l->n_memo; i++)
        if ((kind == LLM_KIND_EMBED || !l->memo[i].used) &&
            strcmp(l->memo[i].x.key, key) == 0)
            return &l->memo[i];
    return NULL;
}

/* ----------------------------------------------------------------- HTTP */

static size_t s_on_body(char *p, size_t size, size_t n, void *ctx)
{
    s_reply_t *r = ctx;
    size_t bytes = size * n;

    if (r->body.len + bytes > LLM_MAX_REPLY)
        return 0;
    text_buf_add(&r->body, p, bytes);
    return r->body.failed ? 0 : bytes;
}

static size_t s_on_header(char *p, size_t size, size_t n, void *ctx)
{
    s_reply_t *r = ctx;
    size_t bytes = size * n;
    static const char name[] = "retry-after:";

    if (bytes > sizeof name && strncasecmp(p, name, sizeof name - 1) == 0) {
        char v[128];
        size_t k = bytes - (sizeof name - 1);
        if (k >= sizeof v)
            k = sizeof v - 1;
        memcpy(v, p + sizeof name - 1, k);
        v[k] = '\0';
        char *s = v;
        while (*s == ' ' || *s == '\t')
            s++;
        s[strcspn(s, "\r\n")] = '\0';
        char *end;
        double secs = strtod(s, &end);
        if (end != s && *end == '\0' && secs >= 0) {
            r->retry_after = secs;
        } else {
            time_t t = curl_getdate(s, NULL);
            if (t != -1)
                r->retry_after = fmax(0, difftime(t, time(NULL)));
        }
    }
    return bytes;
}

static int s_on_progress(void *ctx, curl_off_t a, curl_off_t b, curl_off_t c,
                         curl_off_t d)
{
    llm_t *l = ctx;

    (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&l->cancelled) ? 1 : 0;
}

/* Take a slot of the in-flight limit; false when cancelled. */
static bool s_slot_take(llm_t *l)
{
    pthread_mutex_lock(&l->lock);
    while (l->in_flight >= l->cfg.concurrency && !atomic_load(&l->cancelled))
        pthread_cond_wait(&l->slot_free, &l->lock);
    bool ok = !atomic_load(&l->cancelled);
    if (ok)
        l->in_flight++;
    pthread_mutex_unlock(&l->lock);
    return ok;
}

static void s_slot_give(llm_t *l)
{
    pthread_mutex_lock(&l->lock);
    l->in_flight--;
    pthread_cond_signal(&l->slot_free);
    pthread_mutex_unlock(&l->lock);
}

/* POST body to url once.  Returns 0 when an HTTP answer came back (any
 * status), -1 when the transfer failed (r->code says why). */
static int s_post(llm_t *l, const char *url, const char *body, s_reply_t *r)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    int rc = -1;

    r->retry_after = -1;
    r->status = 0;
    r->curl_err[0] = '\0';
    if (!c) {
        r->code = CURLE_FAILED_INIT;
        return -1;
    }
    h = curl_slist_append(h, "Content-Type: application/json");
    if (l->api_key_env) {
        const char *key = getenv(l->api_key_env);
        if (key && *key) {
            size_t n = strlen(key) + 32;
            char *auth = malloc(n);
            if (auth) {
                snprintf(auth, n, "Authorization: Bearer %s", key);
                struct curl_slist *h2 = curl_slist_append(h, auth);
                sodium_memzero(auth, n);
                free(auth);
                if (h2)
                    h = h2;
            }
        }
    }
    if (!h) {
        r->code = CURLE_OUT_OF_MEMORY;
        goto out;
    }
    CURLcode e = CURLE_OK;
#define SETOPT(o, v)                                                           \
    do {                                                                       \
        if (e == CURLE_OK)                                                     \
            e = curl_easy_setopt(c, o, v);                                     \
    } while (0)
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_HTTPHEADER, h);
    SETOPT(CURLOPT_POSTFIELDS, body);
    SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)(l->cfg.timeout_s * 1000));
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS,
           (long)(fmax(0.1, l->cfg.connect_timeout_s) * 1000));
    SETOPT(CURLOPT_WRITEFUNCTION, s_on_body);
    SETOPT(CURLOPT_WRITEDATA, r);
    SETOPT(CURLOPT_HEADERFUNCTION, s_on_header);
    SETOPT(CURLOPT_HEADERDATA, r);
    SETOPT(CURLOPT_XFERINFOFUNCTION, s_on_progress);
    SETOPT(CURLOPT_XFERINFODATA, l);
    SETOPT(CURLOPT_NOPROGRESS, 0L);
    SETOPT(CURLOPT_ERRORBUFFER, r->curl_err);
    SETOPT(CURLOPT_USERAGENT, "nader/0.1");
#undef SETOPT
    if (e != CURLE_OK) {
        r->code = e;
        goto out;
    }
    r->code = curl_easy_perform(c);
    if (r->code == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
        rc = 0;
    }
out:
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return rc;
}

/* Sleep for secs unless cancelled first; false when cancelled. */
static bool s_wait(llm_t *l, double secs)
{
    double end = s_now() + secs;

    while (!atomic_load(&l->cancelled)) {
        double left = end - s_now();
        if (left <= 0)
            return true;
        struct timespec ts = {0, (long)(fmin(left, 0.05) * 1e9)};
        nanosleep(&ts, NULL);
    }
    return false;
}

static double s_jitter(llm_t *l)
{
    pthread_mutex_lock(&l->lock);
    l->rng ^= l->rng << 13;
    l->rng ^= l->rng >> 7;
    l->rng ^= l->rng << 17;
    double u = (double)(l->rng >> 11) / 9007199254740992.0;
    pthread_mutex_unlock(&l->lock);
    return u;
}

/* What to do after one attempt. */
typedef enum s_verdict {
    S_DONE, /* parsed answer in hand */
    S_RETRY,
    S_FATAL,
    S_NOT_FOUND /* 404: the endpoint has no such route */
} s_verdict_t;

/* A short, single-line excerpt of an error body for messages. */
static void s_excerpt(const char *body, char *out, size_t len)
{
    json_t *j = body ? json_loads(body, 0, NULL) : NULL;
    const char *msg = NULL;

    if (j) {
        json_t *e = json_object_get(j, "error");
        msg = json_string_value(
            json_is_object(e) ? json_object_get(e, "message") : e);
    }
    snprintf(out, len, "%s", msg ? msg : body ? body : "");
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r' || *p == '\t')
            *p = ' ';
    if (strlen(out) > 160)
        strcpy(out + 157, "...");
    json_decref(j);
}

/* Parse a chat answer.  Returns 0 and fills the answer and usage. */
static int s_parse_chat(const char *body, char **answer, int64_t *pt,
                        int64_t *ct, bool *estimated, char *why, size_t whylen)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je);

    if (!j) {
        snprintf(why, whylen, "answer is not JSON (%s at byte %d)", je.text,
                 je.position);
        return -1;
    }
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *msg = json_object_get(ch, "message");
    const char *content = json_string_value(json_object_get(msg, "content"));
    if (!content) {
        char ex[200];
        s_excerpt(body, ex, sizeof ex);
        snprintf(why, whylen, "answer has no choices[0].message.content: %s",
                 ex);
        json_decref(j);
        return -1;
    }
    *answer = strdup(content);
    json_t *u = json_object_get(j, "usage");
    json_t *jp = json_object_get(u, "prompt_tokens");
    json_t *jc = json_object_get(u, "completion_tokens");
    if (json_is_integer(jp) && json_is_integer(jc)) {
        *pt = json_integer_value(jp);
        *ct = json_integer_value(jc);
        *estimated = false;
    } else {
        *pt = -1;
        *ct = (int64_t)(strlen(content) + 3) / 4;
        *estimated = true;
    }
    json_decref(j);
    if (!*answer) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }
    return 0;
}

/* Parse an embeddings answer into the normalised JSON array form. */
static int s_parse_embed(const char *body, int n, char **answer, int64_t *pt,
                         bool *estimated, char *why, size_t whylen)
{
    json_error_t je;
    json_t *j = json_loads(body, 0, &je), *out = NULL;
    int rc = -1, dim = -1;

    if (!j) {
        snprintf(why, whylen, "answer is not JSON (%s at byte %d)", je.text,
                 je.position);
        return -1;
    }
    json_t *data = json_object_get(j, "data");
    if (!json_is_array(data) || (int)json_array_size(data) != n) {
        snprintf(why, whylen, "answer has no data array of %d embeddings", n);
        goto out;
    }
    out = json_array();
    for (int i = 0; i < n && out; i++)
        json_array_append_new(out, json_null());
    for (int i = 0; i < n; i++) {
        json_t *d = json_array_get(data, (size_t)i);
        json_t *jx = json_object_get(d, "index");
        int idx = json_is_integer(jx) ? (int)json_integer_value(jx) : i;
        json_t *v = json_object_get(d, "embedding");
        if (idx < 0 || idx >= n || !json_is_array(v) ||
            json_array_size(v) == 0 ||
            (dim >= 0 && (int)json_array_size(v) != dim) ||
            !json_is_null(json_array_get(out, (size_t)idx))) {
            snprintf(why, whylen, "embedding %d is missing or malformed", i);
            goto out;
        }
        dim = (int)json_array_size(v);
        double norm = 0;
        for (int k = 0; k < dim; k++) {
            double x = json_number_value(json_array_get(v, (size_t)k));
            norm += x * x;
        }
        norm = norm > 0 ? sqrt(norm) : 1;
        json_t *row = json_array();
        for (int k = 0; k < dim && row; k++) {
            float x =
                (float)(json_number_value(json_array_get(v, (size_t)k)) / norm);
            json_array_append_new(row, json_real(x));
        }
        json_array_set_new(out, (size_t)idx, row);
    }
    *answer = json_dumps(out, JSON_COMPACT | JSON_REAL_PRECISION(9));
    json_t *u = json_object_get(j, "usage");
    json_t *jp = json_object_get(u, "prompt_tokens");
    if (!json_is_integer(jp))
        jp = json_object_get(u, "total_tokens");
    *estimated = !json_is_integer(jp);
    *pt = json_is_integer(jp) ? json_integer_value(jp) : -1;
    rc = *answer ? 0 : -1;
    if (rc != 0)
        snprintf(why, whylen, "out of memory");
out:
    json_decref(out);
    json_decref(j);
    return rc;
}

static void s_notice(llm_t *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_notice(llm_t *l, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    pthread_mutex_lock(&l->lock);
    llm_notice_fn fn = l->notice;
    void *ctx = l->notice_ctx;
    pthread_mutex_unlock(&l->lock);
    if (!fn)
        return;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fn(ctx, line);
}

/*
 * The request/answer cycle with retries.  kind chooses the route and
 * the parser; on success *answer and the usage are set.
 */
static int s_exchange_http(llm_t *l, llm_kind_t kind, const char *body,
                           int n_inputs, char **answer, int64_t *pt,
                           int64_t *ct, bool *estimated, int *attempts,
                           char *err, size_t errlen)
{
    const char *route =
        kind == LLM_KIND_CHAT ? "chat/completions" : "embeddings";
    size_t ulen = strlen(l->base_url) + strlen(route) + 2;
    char *url = malloc(ulen);
    char why[400] = "";
    int rc = LLM_ERR_FAILED;

    if (!url) {
        snprintf(err, errlen, "llm: out of memory");
        return LLM_ERR_USAGE;
    }
    snprintf(url, ulen, "%s/%s", l->base_url, route);
    *ct = 0;
    for (int a = 0; a <= l->cfg.retries; a++) {
        s_reply_t r;
        s_verdict_t v;

        memset(&r, 0, sizeof r);
        text_buf_init(&r.body);
        *attempts = a + 1;
        if (!s_slot_take(l)) {
            text_buf_free(&r.body);
            rc = LLM_ERR_CANCELLED;
            snprintf(why, sizeof why, "cancelled");
            break;
        }
        int sent = s_post(l, url, body, &r);
        s_slot_give(l);

        if (atomic_load(&l->cancelled)) {
            text_buf_free(&r.body);
            rc = LLM_ERR_CANCELLED;
            snprintf(why, sizeof why, "cancelled");
            break;
        }
        if (sent != 0) {
            v = r.code == CURLE_OUT_OF_MEMORY ? S_FATAL : S_RETRY;
            snprintf(why, sizeof why, "%s",
                     r.code == CURLE_OPERATION_TIMEDOUT ? "timed out"
                     : r.curl_err[0]                    ? r.curl_err
                                     : curl_easy_strerror(r.code));
        } else if (r.status == 200) {
            int prc =
                kind == LLM_KIND_CHAT
                    ? s_parse_chat(r.body.s ? r.body.s : "", answer, pt, ct,
                                   estimated, why, sizeof why)
                    : s_parse_embed(r.body.s ? r.body.s : "", n_inputs, answer,
                                    pt, estimated, why, sizeof why);
            v = prc == 0 ? S_DONE : S_RETRY;
        } else {
            char ex[200];
            s_excerpt(r.body.s, ex, sizeof ex);
            snprintf(why, sizeof why, "HTTP %ld%s%s", r.status,
                     ex[0] ? ": " : "", ex);
            if (r.status == 429 || r.status == 408 || r.status >= 500)
                v = S_RETRY;
            else if (r.status == 404)
                v = S_NOT_FOUND;
            else
                v = S_FATAL;
        }
        double retry_after = r.retry_after;
        text_buf_free(&r.body);

        if (v == S_DONE) {
            free(url);
            return LLM_OK;
        }
        if (v == S_NOT_FOUND) {
            rc = kind == LLM_KIND_EMBED ? LLM_ERR_NO_EMBED : LLM_ERR_FAILED;
            break;
        }
        if (v == S_FATAL || a == l->cfg.retries)
            break;

        double wait =
            fmin(l->cfg.backoff_max_s, l->cfg.backoff_s * pow(2.0, a));
        wait *= 0.5 + 0.5 * s_jitter(l);
        if (retry_after >= 0)
            wait = fmax(wait, fmin(retry_after, l->cfg.retry_after_max_s));
        pthread_mutex_lock(&l->lock);
        l->usage.retries++;
        pthread_mutex_unlock(&l->lock);
        s_notice(l, "POST %s: %s; retry %d of %d in %.1f s", url, why, a + 1,
                 l->cfg.retries, wait);
        if (!s_wait(l, wait)) {
            rc = LLM_ERR_CANCELLED;
            snprintf(why, sizeof why, "cancelled");
            break;
        }
    }
    snprintf(err, errlen, "llm: POST %s: %s (after %d attempt%s)", url, why,
             *attempts, *attempts == 1 ? "" : "s");
    free(url);
    return rc;
}

static void s_fail_count(llm_t *l)
{
    pthread_mutex_lock(&l->lock);
    l->usage.failures++;
    pthread_mutex_unlock(&l->lock);
}

/*
 * The common path of chat and embed: budget, key, memo, network, usage,
 * sink.  request is the JSON identity of the call (messages or inputs);
 * body is what goes over the wire.  On success *answer is the answer.
 */
static int s_call(llm_t *l, llm_kind_t kind, const char *agent, int iteration,
                  const char *request, const char *body, int n_inputs,
                  char **answer, char *err, size_t errlen)
{
    llm_exchange_t x;
    double t0 = s_now();
    int rc;

    memset(&x, 0, sizeof x);
    *answer = NULL;
    if (atomic_load(&l->cancelled)) {
        snprintf(err, errlen, "llm: cancelled");
        return LLM_ERR_CANCELLED;
    }

    pthread_mutex_lock(&l->lock);
    if (s_budget_locked(l, err, errlen)) {
        pthread_mutex_unlock(&l->lock);
        return LLM_ERR_BUDGET;
    }
    if (s_key_locked(l, kind, agent, iteration, request, x.key, sizeof x.key) !=
        0) {
        pthread_mutex_unlock(&l->lock);
        snprintf(err, errlen, "llm: out of memory");
        return LLM_ERR_USAGE;
    }
    s_memo_t *m = s_memo_find_locked(l, kind, x.key);
    if (m) {
        *answer = strdup(m->x.answer ? m->x.answer : "");
        if (!m->used) {
            /* An exchange of an earlier run: its spending counts once. */
            l->usage.calls++;
            l->usage.memo_hits++;
            l->usage.prompt_tokens += m->x.prompt_tokens;
            l->usage.completion_tokens += m->x.completion_tokens;
            l->usage.cost += m->x.cost;
        }
        m->used = true;
        pthread_mutex_unlock(&l->lock);
        if (!*answer) {
            snprintf(err, errlen, "llm: out of memory");
            return LLM_ERR_USAGE;
        }
        return LLM_OK;
    }
    bool replay_only = l->cfg.replay_only;
    pthread_mutex_unlock(&l->lock);

    if (replay_only) {
        snprintf(err, errlen,
                 "llm: replay log has no answer for %s call %s of "
                 "iteration %d",
                 agent, x.key, iteration);
        s_fail_count(l);
        return LLM_ERR_REPLAY;
    }

    int64_t pt = 0, ct = 0;
    bool est = false;
    rc = s_exchange_http(l, kind, body, n_inputs, &x.answer, &pt, &ct, &est,
                         &x.attempts, err, errlen);
    if (rc != LLM_OK) {
        if (rc == LLM_ERR_NO_EMBED) {
            pthread_mutex_lock(&l->lock);
            l->embed_absent = true;
            pthread_mutex_unlock(&l->lock);
        }
        s_fail_count(l);
        return rc;
    }
    if (pt < 0)
        pt = (int64_t)(strlen(request) + 3) / 4;

    x.kind = kind;
    snprintf(x.agent, sizeof x.agent, "%s", agent);
    x.iteration = iteration;
    snprintf(x.model, sizeof x.model, "%s",
             kind == LLM_KIND_CHAT ? l->model
             : l->embed_model      ? l->embed_model
                                   : "");
    x.request = strdup(request);
    x.prompt_tokens = pt;
    x.completion_tokens = ct;
    x.estimated = est;
    x.cost =
        kind == LLM_KIND_CHAT
            ? (pt * l->cfg.price_prompt + ct * l->cfg.price_completion) / 1e6
            : pt * l->cfg.price_embed / 1e6;
    x.time = s_now();
    x.latency_s = x.time - t0;
    if (!x.request) {
        llm_exchange_free(&x);
        snprintf(err, errlen, "llm: out of memory");
        return LLM_ERR_USAGE;
    }

    pthread_mutex_lock(&l->lock);
    x.seq = l->seq++;
    int src = l->sink ? l->sink(l->sink_ctx, &x) : 0;
    if (src == 0) {
        l->usage.calls++;
        l->usage.prompt_tokens += pt;
        l->usage.completion_tokens += ct;
        l->usage.cost += x.cost;
        if (kind == LLM_KIND_EMBED && s_memo_add_locked(l, &x, true) != 0)
            src = -1;
    } else {
        l->usage.failures++;
    }
    pthread_mutex_unlock(&l->lock);
    if (src != 0) {
        snprintf(err, errlen,
                 "llm: the %s exchange %s could not be recorded; its "
                 "answer is not used",
                 agent, x.key);
        llm_exchange_free(&x);
        return LLM_ERR_SINK;
    }
    *answer = x.answer;
    x.answer = NULL;
    llm_exchange_free(&x);
    return LLM_OK;
}

int llm_chat(llm_t *l, const char *agent, int iteration,
             const llm_message_t *msgs, int n_msgs, char **answer, char *err,
             size_t errlen)
{
    json_t *arr = json_array(), *body = NULL;
    char *request = NULL, *wire = NULL;
    int rc = LLM_ERR_USAGE;

    *answer = NULL;
    if (!arr || n_msgs < 1) {
        snprintf(err, errlen, "llm: a chat needs at least one message");
        goto out;
    }
    for (int i = 0; i < n_msgs; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s}", "role", msgs[i].role,
                                             "content", msgs[i].content));
    request = json_dumps(arr, JSON_COMPACT);
    body = json_pack("{s:s, s:O, s:f, s:i}", "model", l->model ? l->model : "",
                     "messages", arr, "temperature", l->cfg.temperature,
                     "max_tokens", l->cfg.max_tokens);
    wire = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!request || !wire) {
        snprintf(err, errlen, "llm: out of memory");
        goto out;
    }
    rc = s_call(l, LLM_KIND_CHAT, agent, iteration, request, wire, 0, answer,
                err, errlen);
out:
    free(request);
    free(wire);
    json_decref(body);
    json_decref(arr);
    return rc;
}

/* Turn the stored JSON array of vectors into floats. */
static int s_vectors(const char *answer, int n, float **vecs, int *dim,
                     char *err, size_t errlen)
{
    json_t *j = json_loads(answer, 0, NULL);
    int d = -1, rc = LLM_ERR_FAILED;

    *vecs = NULL;
    if (!json_is_array(j) || (int)json_array_size(j) != n)
        goto bad;
    for (int i = 0; i < n; i++) {
        json_t *row = json_array_get(j, (size_t)i);
        if (!json_is_array(row) || json_array_size(row) == 0 ||
            (d >= 0 && (int)json_array_size(row) != d))
            goto bad;
        if (d < 0) {
            d = (int)json_array_size(row);
            *vecs = malloc((size_t)n * (size_t)d * sizeof **vecs);
            if (!*vecs)
                goto bad;
        }
        for (int k = 0; k < d; k++)
            (*vecs)[(size_t)i * d + k] =
                (float)json_number_value(json_array_get(row, (size_t)k));
    }
    *dim = d;
    json_decref(j);
    return LLM_OK;
bad:
    snprintf(err, errlen, "llm: recorded embeddings are malformed");
    free(*vecs);
    *vecs = NULL;
    json_decref(j);
    return rc;
}

int llm_embed(llm_t *l, const char *agent, int iteration,
              const char *const *texts, int n, float **vecs, int *dim,
              char *err, size_t errlen)
{
    json_t *arr = json_array(), *body = NULL;
    char *request = NULL, *wire = NULL, *answer = NULL;
    int rc = LLM_ERR_USAGE;

    *vecs = NULL;
    *dim = 0;
    if (!llm_has_embeddings(l)) {
        snprintf(err, errlen, "llm: the endpoint offers no embeddings");
        json_decref(arr);
        return LLM_ERR_NO_EMBED;
    }
    if (!arr || n < 1) {
        snprintf(err, errlen, "llm: nothing to embed");
        goto out;
    }
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, json_string(texts[i]));
    request = json_dumps(arr, JSON_COMPACT);
    body = json_pack("{s:s, s:O}", "model",
                     l->embed_model ? l->embed_model : "", "input", arr);
    wire = body ? json_dumps(body, JSON_COMPACT) : NULL;
    if (!request || !wire) {
        snprintf(err, errlen, "llm: out of memory");
        goto out;
    }
    rc = s_call(l, LLM_KIND_EMBED, agent, iteration, request, wire, n, &answer,
                err, errlen);
    if (rc == LLM_OK)
        rc = s_vectors(answer, n, vecs, dim, err, errlen);
out:
    free(answer);
    free(request);
    free(wire);
    json_decref(body);
    json_decref(arr);
    return rc;
}
