/*
 * metrics.c - Prometheus metrics over HTTP (see metrics.h).
 *
 * libmicrohttpd runs the server on its own thread with one connection at
 * a time, which is plenty for a scraper every few seconds.  All shared
 * state sits behind one mutex; the loop only ever holds it to copy a few
 * hundred bytes, and a scrape reads the store outside it, so neither can
 * stall the other.
 *
 * The text follows the exposition format: a # HELP and a # TYPE line per
 * family, then its samples; label values escaped (backslash, quote,
 * newline); counters named *_total; every family present even when it
 * has no figure yet (then with no samples), so dashboards see the names
 * from the first scrape.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "records.h"
#include "wire.h"

#define MAX_BEST 64
#define MAX_AGENTS 32
#define MAX_PENDING 256

typedef struct s_best {
    char dataset[32];
    int epochs;
    double acc;
} s_best_t;

typedef struct s_agent {
    char name[32];
    uint64_t requests, errors;
    int64_t prompt, completion;
    double cost;
} s_agent_t;

struct metrics {
    struct MHD_Daemon *httpd;
    store_t *store;
    char address[80];
    pthread_mutex_t lock;

    /* The loop's last figures. */
    metrics_figures_t fig;
    metrics_slot_t *slots;
    int slots_cap;

    s_best_t best[MAX_BEST];
    int n_best;
    s_best_t pending[MAX_PENDING];
    int n_pending;

    /* The scrape's own state, behind its own lock. */
    pthread_mutex_t scrape;
    s_agent_t agents[MAX_AGENTS];
    int n_agents;
    uint64_t llm_last; /* last llm record counted */
    uint64_t scrapes;
    uint64_t designs;
    bool store_ok;
};

/* ------------------------------------------------------------- figures */

/* Take one result into the best table (lock held). */
static void s_best_take(metrics_t *m, const char *dataset, int epochs,
                        double acc)
{
    int i;

    if (!isfinite(acc))
        return;
    for (i = 0; i < m->n_best; i++)
        if (m->best[i].epochs == epochs &&
            strcmp(m->best[i].dataset, dataset) == 0)
            break;
    if (i == m->n_best) {
        if (m->n_best == MAX_BEST)
            return;
        snprintf(m->best[i].dataset, sizeof m->best[i].dataset, "%s", dataset);
        m->best[i].epochs = epochs;
        m->best[i].acc = acc;
        m->n_best++;
        return;
    }
    if (acc > m->best[i].acc)
        m->best[i].acc = acc;
}

static int s_result_visit(void *ctx, uint64_t id, const ProtobufCMessage *msg)
{
    metrics_t *m = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)msg;
    const Nader__Result *r = rr->result;

    (void)id;
    if (r && r->status == NADER__RESULT_STATUS__RESULT_OK && !r->load_test &&
        r->has_final_valid_acc)
        s_best_take(m, rr->dataset ? rr->dataset : "", rr->epochs,
                    r->final_valid_acc);
    return 0;
}

void metrics_publish(metrics_t *m, const metrics_figures_t *f)
{
    pthread_mutex_lock(&m->lock);
    if (f->n_slots > m->slots_cap) {
        metrics_slot_t *v = realloc(m->slots, (size_t)f->n_slots * sizeof *v);
        if (v) {
            m->slots = v;
            m->slots_cap = f->n_slots;
        }
    }
    m->fig = *f;
    m->fig.n_slots = f->n_slots <= m->slots_cap ? f->n_slots : 0;
    if (m->fig.n_slots)
        memcpy(m->slots, f->slots, (size_t)m->fig.n_slots * sizeof *m->slots);
    m->fig.slots = m->slots;
    pthread_mutex_unlock(&m->lock);
}

void metrics_result_kept(metrics_t *m, const char *dataset, int epochs,
                         double valid_acc)
{
    s_best_t *p;

    if (m->n_pending == MAX_PENDING)
        return;
    p = &m->pending[m->n_pending++];
    snprintf(p->dataset, sizeof p->dataset, "%s", dataset ? dataset : "");
    p->epochs = epochs;
    p->acc = valid_acc;
}

void metrics_turn_end(metrics_t *m, bool committed)
{
    if (!m->n_pending)
        return;
    if (committed) {
        pthread_mutex_lock(&m->lock);
        for (int i = 0; i < m->n_pending; i++)
            s_best_take(m, m->pending[i].dataset, m->pending[i].epochs,
                        m->pending[i].acc);
        pthread_mutex_unlock(&m->lock);
    }
    m->n_pending = 0;
}

/* Count LLM exchanges stored since the last scrape (scrape lock held). */
static int s_llm_visit(void *ctx, uint64_t id, const ProtobufCMessage *msg)
{
    metrics_t *m = ctx;
    const Nader__LlmExchangeRecord *r = (const Nader__LlmExchangeRecord *)msg;
    const char *name = r->agent && r->agent[0] ? r->agent : "unknown";
    int i;

    m->llm_last = id;
    for (i = 0; i < m->n_agents; i++)
        if (strcmp(m->agents[i].name, name) == 0)
            break;
    if (i == m->n_agents) {
        if (m->n_agents == MAX_AGENTS)
            i = MAX_AGENTS - 1; /* fold the rest into the last */
        else
            snprintf(m->agents[m->n_agents++].name, sizeof m->agents[0].name,
                     "%s", name);
    }
    m->agents[i].requests++;
    if ((r->error && r->error[0]) ||
        (r->has_http_status && r->http_status >= 400))
        m->agents[i].errors++;
    m->agents[i].prompt += r->prompt_tokens;
    m->agents[i].completion += r->completion_tokens;
    m->agents[i].cost += r->cost;
    return 0;
}

/* ----------------------------------------------------------- rendering */

static void s_family(FILE *f, const char *name, const char *type,
                     const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value, escaped as the format asks. */
static void s_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void s_value(FILE *f, double v)
{
    if (isnan(v))
        fputs("NaN", f);
    else if (isinf(v))
        fputs(v > 0 ? "+Inf" : "-Inf", f);
    else
        fprintf(f, "%.17g", v);
    fputc('\n', f);
}

/* Read what the store says now (scrape lock held, not the other). */
static void s_store_read(metrics_t *m)
{
    store_txn_t *t = NULL;
    char err[256];

    m->store_ok = false;
    if (store_begin(m->store, false, &t, err, sizeof err) != STORE_OK)
        return;
    m->store_ok = store_count(t, STORE_DESIGNS, &m->designs) == STORE_OK &&
                  store_scan_msg(t, STORE_LLM, m->llm_last + 1,
                                 &nader__llm_exchange_record__descriptor,
                                 s_llm_visit, m) >= 0;
    store_abort(&t);
}

static void s_store_figures(metrics_t *m, FILE *f)
{
    s_family(f, "nader_store_readable", "gauge",
             "1 when this scrape could read the store, else 0.");
    fprintf(f, "nader_store_readable %d\n", m->store_ok ? 1 : 0);
    s_family(f, "nader_designs", "gauge", "Designs in the store.");
    fprintf(f, "nader_designs %llu\n", (unsigned long long)m->designs);
    s_family(f, "nader_store_used_bytes", "gauge",
             "Bytes of the LMDB map in use.");
    fprintf(f, "nader_store_used_bytes %lld\n",
            (long long)store_used_bytes(m->store));
    s_family(f, "nader_store_map_bytes", "gauge",
             "Current size of the LMDB map.");
    fprintf(f, "nader_store_map_bytes %lld\n",
            (long long)store_map_size(m->store));
}

static void s_llm_figures(metrics_t *m, FILE *f)
{
    static const struct {
        const char *name, *type, *help;
    } fam[] = {
        {"nader_llm_requests_total", "counter",
         "Exchanges with the language model, by agent."},
        {"nader_llm_errors_total", "counter",
         "Exchanges that failed (transport error or HTTP status >= 400)."},
        {"nader_llm_tokens_total", "counter",
         "Tokens exchanged with the language model, by agent and kind "
         "(prompt or completion)."},
        {"nader_llm_cost_total", "counter",
         "Cost of the exchanges, in the unit of the llm.price_* keys."},
    };

    for (int k = 0; k < 4; k++) {
        s_family(f, fam[k].name, fam[k].type, fam[k].help);
        for (int i = 0; i < m->n_agents; i++) {
            const s_agent_t *a = &m->agents[i];
            if (k == 2) {
                fputs("nader_llm_tokens_total{agent=\"", f);
                s_label(f, a->name);
                fprintf(f, "\",kind=\"prompt\"} %lld\n", (long long)a->prompt);
                fputs("nader_llm_tokens_total{agent=\"", f);
                s_label(f, a->name);
                fprintf(f, "\",kind=\"completion\"} %lld\n",
                        (long long)a->completion);
                continue;
            }
            fprintf(f, "%s{agent=\"", fam[k].name);
            s_label(f, a->name);
            fputs("\"} ", f);
            if (k == 0)
                fprintf(f, "%llu\n", (unsigned long long)a->requests);
            else if (k == 1)
                fprintf(f, "%llu\n", (unsigned long long)a->errors);
            else
                s_value(f, a->cost);
        }
    }
}

static void s_loop_figures(metrics_t *m, FILE *f)
{
    const metrics_figures_t *g = &m->fig;
    int busy = 0;
    double ips = 0;

    s_family(f, "nader_workers", "gauge", "Workers connected now.");
    fprintf(f, "nader_workers %d\n", g->workers);
    for (int i = 0; i < g->n_slots; i++) {
        busy += g->slots[i].busy;
        ips += g->slots[i].busy ? g->slots[i].images_per_s : 0;
    }
    s_family(f, "nader_devices", "gauge",
             "Devices of the connected workers, busy (training a job) or "
             "idle.");
    fprintf(f, "nader_devices{state=\"busy\"} %d\n", busy);
    fprintf(f, "nader_devices{state=\"idle\"} %d\n", g->n_slots - busy);
    s_family(f, "nader_jobs", "gauge", "Jobs in the store, by state.");
    for (int s = 0; s < 6; s++)
        fprintf(f, "nader_jobs{state=\"%s\"} %llu\n", records_state_name(s),
                (unsigned long long)g->jobs[s]);
    s_family(f, "nader_queue_length", "gauge", "Jobs waiting for a device.");
    fprintf(f, "nader_queue_length %llu\n", (unsigned long long)g->jobs[0]);
    s_family(f, "nader_paused", "gauge",
             "1 while no new job is leased (jobs.paused).");
    fprintf(f, "nader_paused %d\n", g->paused ? 1 : 0);
    s_family(f, "nader_results_total", "counter",
             "Results kept, one per finished job (load tests included).");
    fprintf(f, "nader_results_total %llu\n", (unsigned long long)g->results);
    s_family(f, "nader_load_test_results_total", "counter",
             "Results of load-test workers, which train nothing.");
    fprintf(f, "nader_load_test_results_total %llu\n",
            (unsigned long long)g->load_test_results);
    s_family(f, "nader_training_images_per_second", "gauge",
             "Training throughput of all busy devices, each at its job's "
             "last epoch.");
    fputs("nader_training_images_per_second ", f);
    s_value(f, ips);
    s_family(f, "nader_device_images_per_second", "gauge",
             "Training throughput of one busy device at its job's last "
             "epoch.");
    for (int i = 0; i < g->n_slots; i++) {
        if (!g->slots[i].busy)
            continue;
        fputs("nader_device_images_per_second{worker=\"", f);
        s_label(f, g->slots[i].worker);
        fputs("\",device=\"", f);
        s_label(f, g->slots[i].device);
        fputs("\"} ", f);
        s_value(f, g->slots[i].images_per_s);
    }
    s_family(f, "nader_best_valid_accuracy_percent", "gauge",
             "Best final validation accuracy of any successful result, by "
             "data set and epochs trained.");
    for (int i = 0; i < m->n_best; i++) {
        fputs("nader_best_valid_accuracy_percent{dataset=\"", f);
        s_label(f, m->best[i].dataset);
        fprintf(f, "\",epochs=\"%d\"} ", m->best[i].epochs);
        s_value(f, m->best[i].acc);
    }
    s_family(f, "nader_coordinator_turns_total", "counter",
             "Turns of the coordinator's poll loop.");
    fprintf(f, "nader_coordinator_turns_total %llu\n",
            (unsigned long long)g->turns);
    s_family(f, "nader_coordinator_commits_total", "counter",
             "Store transactions committed by the coordinator.");
    fprintf(f, "nader_coordinator_commits_total %llu\n",
            (unsigned long long)g->commits);
    s_family(f, "nader_coordinator_uptime_seconds", "gauge",
             "Seconds since the coordinator started.");
    fputs("nader_coordinator_uptime_seconds ", f);
    s_value(f, g->uptime_s);
}

char *metrics_render(metrics_t *m)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f;

    pthread_mutex_lock(&m->scrape);
    if (!(f = open_memstream(&text, &len))) {
        pthread_mutex_unlock(&m->scrape);
        return NULL;
    }
    m->scrapes++;
    s_store_read(m);
    s_family(f, "nader_build_info", "gauge",
             "The coordinator's software; always 1.");
    fprintf(f, "nader_build_info{version=\"%s\"} 1\n", WIRE_SOFTWARE + 6);
    pthread_mutex_lock(&m->lock);
    s_loop_figures(m, f);
    pthread_mutex_unlock(&m->lock);
    s_store_figures(m, f);
    s_llm_figures(m, f);
    s_family(f, "nader_metrics_scrapes_total", "counter",
             "Requests for these metrics, this one included.");
    fprintf(f, "nader_metrics_scrapes_total %llu\n",
            (unsigned long long)m->scrapes);
    pthread_mutex_unlock(&m->scrape);
    if (fclose(f) != 0) {
        free(text);
        return NULL;
    }
    return text;
}

/* ---------------------------------------------------------------- HTTP */

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned code,
                               const char *type, char *body, bool owned)
{
    struct MHD_Response *r;
    enum MHD_Result ret;

    r = MHD_create_response_from_buffer(strlen(body), body,
                                        owned ? MHD_RESPMEM_MUST_FREE
                                              : MHD_RESPMEM_PERSISTENT);
    if (!r) {
        if (owned)
            free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    ret = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result s_handle(void *cls, struct MHD_Connection *conn,
                                const char *url, const char *method,
                                const char *version, const char *upload,
                                size_t *upload_size, void **state)
{
    metrics_t *m = cls;
    char *text;

    (void)version;
    (void)upload;
    if (!*state) {
        /* First call of a request: headers only.  Answer on the next. */
        *state = m;
        return MHD_YES;
    }
    if (*upload_size) {
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return s_reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                       "only GET\n", false);
    if (strcmp(url, "/") == 0)
        return s_reply(conn, MHD_HTTP_OK, "text/plain; charset=utf-8",
                       "nader coordinator: Prometheus metrics at "
                       "/metrics\n",
                       false);
    if (strcmp(url, "/metrics") != 0)
        return s_reply(conn, MHD_HTTP_NOT_FOUND, "text/plain",
                       "not found: try /metrics\n", false);
    if (!(text = metrics_render(m)))
        return s_reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain",
                       "out of memory\n", false);
    return s_reply(conn, MHD_HTTP_OK,
                   "text/plain; version=0.0.4; charset=utf-8", text, true);
}

/* Split "HOST:PORT" / "[V6]:PORT" and resolve it. */
static int s_resolve(const char *address, struct sockaddr_storage *sa,
                     socklen_t *len, char *err, size_t errlen)
{
    char host[64];
    const char *colon = strrchr(address, ':');
    struct addrinfo hints = {0}, *res = NULL;
    size_t hl;
    int rc;

    if (!colon || colon == address) {
        snprintf(err, errlen, "metrics.address %s: not HOST:PORT", address);
        return -1;
    }
    hl = (size_t)(colon - address);
    if (address[0] == '[' && hl >= 2 && address[hl - 1] == ']') {
        address++;
        hl -= 2;
    }
    if (hl >= sizeof host) {
        snprintf(err, errlen, "metrics.address: host name too long");
        return -1;
    }
    memcpy(host, address, hl);
    host[hl] = '\0';
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    rc = getaddrinfo(host, colon + 1, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "metrics.address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(sa, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int metrics_new(const char *address, store_t *store, metrics_t **out, char *err,
                size_t errlen)
{
    metrics_t *m = calloc(1, sizeof *m);
    struct sockaddr_storage sa, bound;
    socklen_t sl = sizeof sa, bl = sizeof bound;
    store_txn_t *t = NULL;
    const union MHD_DaemonInfo *info;
    char host[64] = "?";
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD;

    *out = NULL;
    if (!m) {
        snprintf(err, errlen, "metrics: out of memory");
        return -1;
    }
    m->store = store;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->scrape, NULL);
    if (store_begin(store, false, &t, err, errlen) != STORE_OK)
        goto fail;
    if (store_scan_msg(t, STORE_RESULTS, 0, &nader__result_record__descriptor,
                       s_result_visit, m) < 0) {
        snprintf(err, errlen, "metrics: %s", store_txn_error(t));
        store_abort(&t);
        goto fail;
    }
    store_abort(&t);
    if (s_resolve(address, &sa, &sl, err, errlen) < 0)
        goto fail;
    if (sa.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, s_handle, m, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT, 64u,
        MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!m->httpd) {
        snprintf(err, errlen,
                 "metrics.address %s: cannot listen (in use, "
                 "or not an address of this machine)",
                 address);
        goto fail;
    }
    info = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_LISTEN_FD);
    if (info &&
        getsockname(info->listen_fd, (struct sockaddr *)&bound, &bl) == 0) {
        if (bound.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&bound;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            snprintf(m->address, sizeof m->address, "[%s]:%u", host,
                     ntohs(a->sin6_port));
        } else {
            struct sockaddr_in *a = (struct sockaddr_in *)&bound;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            snprintf(m->address, sizeof m->address, "%s:%u", host,
                     ntohs(a->sin_port));
        }
    } else {
        snprintf(m->address, sizeof m->address, "%s", address);
    }
    *out = m;
    return 0;

fail:
    metrics_destroy(&m);
    return -1;
}

void metrics_destroy(metrics_t **mp)
{
    metrics_t *m = mp ? *mp : NULL;

    if (!m)
        return;
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->scrape);
    free(m->slots);
    free(m);
    *mp = NULL;
}

const char *metrics_address(const metrics_t *m)
{
    return m->address;
}
