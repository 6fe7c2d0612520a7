/*
 * coordinator.c - the coordinator object: set-up, the poll loop, the
 * turn's transaction and its outbox (group commit), and shut-down.  See
 * coordinator.h for the design; the handlers of each socket are in
 * broker.c, status.c, link.c and zap.c.
 */
#include "coord_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "wire.h"

#define POLL_MAX_MS 100
#define WORKER_BUDGET 4096   /* worker messages per turn */

/* ------------------------------------------------------ turn and outbox */

store_txn_t *coord_txn(coord_t *c)
{
    char err[512];
    int rc;

    if (c->txn_failed)
        return NULL;
    if (c->txn)
        return c->txn;
    rc = store_begin(c->store, true, &c->txn, err, sizeof err);
    if (rc < 0) {
        c->txn_failed = true;
        snprintf(c->txn_err, sizeof c->txn_err, "%s", err);
        return NULL;
    }
    return c->txn;
}

void coord_txn_fail(coord_t *c, const char *what)
{
    if (c->txn_failed)
        return;
    c->txn_failed = true;
    snprintf(c->txn_err, sizeof c->txn_err, "%s",
             what && *what ? what
             : c->txn ? store_txn_error(c->txn) : "store failure");
}

int coord_out_add(coord_t *c, out_kind_t kind, bool durable, void *sock,
                  const void *rid, size_t rid_len, const void *buf,
                  size_t len)
{
    out_item_t *it;

    if (c->n_out == c->cap_out) {
        size_t cap = c->cap_out ? 2 * c->cap_out : 256;
        out_item_t *v = realloc(c->out, cap * sizeof *v);
        if (!v)
            return -1;
        c->out = v;
        c->cap_out = cap;
    }
    it = &c->out[c->n_out];
    memset(it, 0, sizeof *it);
    it->kind = kind;
    it->durable = durable;
    it->sock = sock;
    if (rid_len > sizeof it->rid)
        return -1;
    memcpy(it->rid, rid, rid_len);
    it->rid_len = rid_len;
    it->buf = malloc(len ? len : 1);
    if (!it->buf)
        return -1;
    memcpy(it->buf, buf, len);
    it->len = len;
    c->n_out++;
    return 0;
}

int coord_out_envelope(coord_t *c, sched_worker_t *w, Nader__Envelope *env,
                       bool durable)
{
    out_item_t *it;
    uint8_t *buf;
    size_t len, rid_len;
    const void *rid = sched_worker_rid(w, &rid_len);

    if (wire_encode(env, &buf, &len) != WIRE_OK)
        return -1;
    if (coord_out_add(c, OUT_WORKER, durable, c->workers, rid, rid_len,
                      "", 0) < 0) {
        free(buf);
        return -1;
    }
    it = &c->out[c->n_out - 1];
    free(it->buf);
    it->buf = buf;
    it->len = len;
    return 0;
}

static void s_free_buf(void *data, void *hint)
{
    (void)hint;
    free(data);
}

/* Send one item; the buffer goes to ZeroMQ (or is freed). */
static void s_out_send(out_item_t *it)
{
    zmq_msg_t msg;
    int more = it->kind == OUT_EVENT ? 0 : ZMQ_SNDMORE;

    if (it->kind != OUT_EVENT &&
        zmq_send(it->sock, it->rid, it->rid_len, ZMQ_DONTWAIT | more) < 0) {
        if (errno != EHOSTUNREACH)
            log_debug("send to a peer failed: %s", zmq_strerror(errno));
        free(it->buf);
        return;
    }
    if ((it->kind == OUT_JSON || it->kind == OUT_LINK) &&
        zmq_send(it->sock, "", 0, ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0) {
        free(it->buf);
        return;
    }
    if (zmq_msg_init_data(&msg, it->buf, it->len, s_free_buf, NULL) != 0) {
        free(it->buf);
        return;
    }
    if (zmq_msg_send(&msg, it->sock, ZMQ_DONTWAIT) < 0) {
        log_debug("send failed: %s", zmq_strerror(errno));
        zmq_msg_close(&msg);
    }
}

/* Turn a durable reply into an error reply after a failed commit. */
static void s_out_to_error(coord_t *c, out_item_t *it)
{
    char *text = NULL;
    size_t len = 0;

    if (it->kind == OUT_JSON) {
        size_t n = strlen(c->txn_err) * 2 + 64;
        text = malloc(n);
        if (text) {
            size_t k = (size_t)snprintf(text, n, "{\"ok\":false,\"error\":\"");
            for (const char *p = c->txn_err; *p && k + 8 < n; p++) {
                if (*p == '"' || *p == '\\')
                    text[k++] = '\\';
                text[k++] = (unsigned char)*p < 32 ? ' ' : *p;
            }
            k += (size_t)snprintf(text + k, n - k, "\"}");
            len = k;
        }
    } else {
        Nader__LinkReply r = NADER__LINK_REPLY__INIT;
        r.has_ok = 1;
        r.ok = 0;
        r.error = c->txn_err;
        len = nader__link_reply__get_packed_size(&r);
        text = malloc(len ? len : 1);
        if (text)
            nader__link_reply__pack(&r, (uint8_t *)text);
    }
    free(it->buf);
    it->buf = (uint8_t *)text;
    it->len = text ? len : 0;
}

/* End the turn: commit, then send (or recover and send errors). */
static void s_turn_end(coord_t *c)
{
    char err[512];
    int rc = 0;

    if (c->txn && !c->txn_failed && sched_flush(c->sched, c->txn) < 0)
        coord_txn_fail(c, NULL);
    if (c->txn && !c->txn_failed) {
        rc = store_commit(&c->txn, err, sizeof err);
        c->commits++;
        if (rc < 0)
            coord_txn_fail(c, err);
    }
    store_abort(&c->txn);
    if (c->metrics)
        metrics_turn_end(c->metrics, !c->txn_failed);
    if (c->txn_failed) {
        store_txn_t *t = NULL;
        log_error("%s; this turn's changes were dropped (%zu messages "
                  "not sent, replies turned to errors)", c->txn_err,
                  c->n_out);
        if (store_begin(c->store, false, &t, err, sizeof err) < 0 ||
            sched_reload(c->sched, t, c->now, err, sizeof err) < 0)
            log_error("cannot reload the scheduler: %s", err);
        store_abort(&t);
    }
    for (size_t i = 0; i < c->n_out; i++) {
        out_item_t *it = &c->out[i];
        if (c->txn_failed && it->durable) {
            if (it->kind == OUT_JSON || it->kind == OUT_LINK) {
                s_out_to_error(c, it);
            } else {
                free(it->buf);
                continue;
            }
        }
        s_out_send(it);
    }
    c->n_out = 0;
    c->txn_failed = false;
    if (c->metrics)
        coord_metrics_publish(c, false);
}

/* --------------------------------------------------------- peer logging */

/* Length of the host part of "HOST:PORT" or "HOST#RID" (IPv4 or name). */
static size_t s_host_len(const char *peer)
{
    size_t n;

    if (!peer)
        return 1;
    n = strcspn(peer, "#");
    if (strchr(peer, ':') == strrchr(peer, ':') && strchr(peer, ':') &&
        (size_t)(strchr(peer, ':') - peer) < n)
        n = (size_t)(strchr(peer, ':') - peer);
    return n;
}

void coord_peer_log(coord_t *c, int level, const char *peer,
                    const char *kind, int burst, const char *fmt, ...)
{
    char key[96], line[768];
    peer_log_t *slot = NULL, *oldest = &c->peer_log[0];
    uint64_t now = wire_mono_us(), suppressed = 0;
    va_list ap;

    /* Rate-limit per host, not per connection: a peer that reconnects
     * to misbehave again gets a new port each time. */
    snprintf(key, sizeof key, "%.*s|%s", (int)s_host_len(peer), peer ? peer
             : "?", kind);
    for (int i = 0; i < COORD_PEER_LOG; i++) {
        if (strcmp(c->peer_log[i].key, key) == 0) {
            slot = &c->peer_log[i];
            break;
        }
        if (c->peer_log[i].last_us < oldest->last_us)
            oldest = &c->peer_log[i];
    }
    if (!slot) {
        slot = oldest;
        memset(slot, 0, sizeof *slot);
        snprintf(slot->key, sizeof slot->key, "%s", key);
        slot->window_us = now;
    } else if (now - slot->window_us >= 60000000u) {
        suppressed = slot->suppressed;
        slot->window_us = now;
        slot->count = 0;
        slot->suppressed = 0;
    }
    slot->last_us = now;
    if (slot->count >= (burst > 0 ? burst : 1)) {
        slot->suppressed++;
        return;
    }
    slot->count++;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (suppressed)
        log_write((log_level_t)level, "peer %s: %s (%llu more like it "
                  "suppressed in the last minute)", peer ? peer : "?", line,
                  (unsigned long long)suppressed);
    else
        log_write((log_level_t)level, "peer %s: %s", peer ? peer : "?",
                  line);
}

/* ------------------------------------------------ scheduler callbacks */

static void s_sched_send(void *ctx, sched_worker_t *w, Nader__Envelope *env,
                         bool durable)
{
    coord_t *c = ctx;

    if (coord_out_envelope(c, w, env, durable) < 0)
        log_error("out of memory queueing a %s for %s",
                  wire_body_name(env->body_case), sched_worker_name(w));
}

static void s_sched_kept(void *ctx, const Nader__ResultRecord *r)
{
    coord_t *c = ctx;
    size_t len = nader__result_record__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);

    if (c->metrics && r->result && !r->result->load_test &&
        r->result->status == NADER__RESULT_STATUS__RESULT_OK &&
        r->result->has_final_valid_acc)
        metrics_result_kept(c->metrics, r->dataset, r->epochs,
                            r->result->final_valid_acc);
    if (!buf)
        return;
    nader__result_record__pack(r, buf);
    coord_out_add(c, OUT_EVENT, true, c->events, "", 0, buf, len);
    free(buf);
}

static void s_sched_log(void *ctx, int level, const char *line)
{
    (void)ctx;
    log_write((log_level_t)level, "%s", line);
}

/* ---------------------------------------------------------------- setup */

static int s_config_copy(config_t *dst, const config_t *src)
{
    const config_key_t *keys;
    int n;
    char buf[8192], err[256];

    if (config_defaults(dst) < 0)
        return -1;
    keys = config_keys(&n);
    for (int i = 0; i < n; i++) {
        if (config_get(src, keys[i].name, buf, sizeof buf) < 0 ||
            config_set(dst, keys[i].name, buf, err, sizeof err) < 0)
            return -1;
    }
    return 0;
}

static int s_setopt(void *sock, int opt, const void *v, size_t n,
                    const char *what, char *err, size_t errlen)
{
    if (zmq_setsockopt(sock, opt, v, n) == 0)
        return 0;
    snprintf(err, errlen, "%s: setting socket option %d: %s", what, opt,
             zmq_strerror(errno));
    return -1;
}

static int s_setint(void *sock, int opt, int v, const char *what, char *err,
                    size_t errlen)
{
    return s_setopt(sock, opt, &v, sizeof v, what, err, errlen);
}

/* A ROUTER bound to endpoint, with CURVE when asked; monitored when mon
 * is not NULL. */
static void *s_router(coord_t *c, const char *endpoint, const char *what,
                      int64_t max_msg, const char *zap_domain,
                      const char *mon_ep, void **mon, char *err,
                      size_t errlen)
{
    void *s = zmq_socket(c->ctx, ZMQ_ROUTER);
    /* ZeroMQ cuts a connection over this without telling us which peer
     * it was; up to it, messages arrive and are refused with a log line
     * that names the peer (broker.c, status.c).  It bounds memory. */
    int64_t maxmsg = 2 * max_msg + 65536;

    if (!s) {
        snprintf(err, errlen, "%s: cannot make a socket: %s", what,
                 zmq_strerror(errno));
        return NULL;
    }
    if (s_setint(s, ZMQ_LINGER, 200, what, err, errlen) < 0 ||
        s_setint(s, ZMQ_ROUTER_MANDATORY, 1, what, err, errlen) < 0 ||
        s_setint(s, ZMQ_SNDHWM, 100000, what, err, errlen) < 0 ||
        s_setint(s, ZMQ_RCVHWM, 100000, what, err, errlen) < 0 ||
        s_setopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg, what, err,
                 errlen) < 0)
        goto fail;
    if (zap_domain && c->cfg.security_curve &&
        (s_setint(s, ZMQ_CURVE_SERVER, 1, what, err, errlen) < 0 ||
         s_setopt(s, ZMQ_CURVE_SECRETKEY, c->secret_z85, 41, what, err,
                  errlen) < 0 ||
         s_setopt(s, ZMQ_ZAP_DOMAIN, zap_domain, strlen(zap_domain), what,
                  err, errlen) < 0))
        goto fail;
    if (mon) {
        int events = ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED |
                     ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                     ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
        if (zmq_socket_monitor(s, mon_ep, events) != 0 ||
            !(*mon = zmq_socket(c->ctx, ZMQ_PAIR)) ||
            zmq_connect(*mon, mon_ep) != 0) {
            snprintf(err, errlen, "%s: cannot monitor: %s", what,
                     zmq_strerror(errno));
            goto fail;
        }
    }
    if (zmq_bind(s, endpoint) != 0) {
        snprintf(err, errlen, "%s %s: cannot bind: %s", what, endpoint,
                 zmq_strerror(errno));
        goto fail;
    }
    return s;
fail:
    zmq_close(s);
    return NULL;
}

static void s_last_endpoint(void *sock, char *out, size_t len)
{
    size_t n = len;

    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, out, &n) != 0)
        out[0] = 0;
}

/* Keep a second coordinator off the same state folder. */
static int s_lock_state(coord_t *c, char *err, size_t errlen)
{
    char path[4200], pid[32];
    int fd;

    snprintf(path, sizeof path, "%s/coordinator.lock", c->cfg.state_dir);
    fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        ssize_t n = read(fd, pid, sizeof pid - 1);
        pid[n > 0 ? n : 0] = 0;
        snprintf(err, errlen, "state folder %s is in use by another "
                 "coordinator (pid %s)", c->cfg.state_dir,
                 n > 0 ? pid : "?");
        close(fd);
        return -1;
    }
    if (ftruncate(fd, 0) == 0) {
        int n = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (write(fd, pid, (size_t)n) < 0)
            log_debug("cannot write %s", path);
    }
    /* The descriptor stays open (and locked) for the process's life. */
    return 0;
}

static int s_security(coord_t *c, char *err, size_t errlen)
{
    if (!c->cfg.security_curve)
        return 0;
    if (!c->cfg.security_secret_key[0] || !c->cfg.security_worker_keys[0]) {
        snprintf(err, errlen, "security.curve is on but "
                 "security.secret_key or security.worker_keys is not set");
        return -1;
    }
    if (keys_load_pair(c->cfg.security_secret_key, c->public_z85,
                       c->secret_z85, err, errlen) < 0)
        return -1;
    c->worker_keys = keys_list_new(c->cfg.security_worker_keys);
    c->admin_keys = keys_list_new(c->cfg.security_admin_keys);
    if (!c->worker_keys || !c->admin_keys) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->zap = zmq_socket(c->ctx, ZMQ_REP);
    if (!c->zap || zmq_bind(c->zap, "inproc://zeromq.zap.01") != 0) {
        snprintf(err, errlen, "cannot start the ZAP handler: %s",
                 zmq_strerror(errno));
        return -1;
    }
    return 0;
}

int coord_new(const config_t *cfg, coord_t **out, char *err, size_t errlen)
{
    coord_t *c = calloc(1, sizeof *c);
    store_options_t so = {0};
    sched_options_t sopt = {0};
    store_txn_t *t = NULL;

    *out = NULL;
    if (!c || s_config_copy(&c->cfg, cfg) < 0) {
        snprintf(err, errlen, "out of memory");
        free(c);
        return -1;
    }
    c->started_wall_us = wire_now_us();
    if (c->cfg.heartbeat_timeout_ms <= c->cfg.heartbeat_interval_ms) {
        snprintf(err, errlen, "heartbeat.timeout (%lld ms) must exceed "
                 "heartbeat.interval (%lld ms)",
                 (long long)c->cfg.heartbeat_timeout_ms,
                 (long long)c->cfg.heartbeat_interval_ms);
        goto fail;
    }
    so.map_size = c->cfg.store_map_size;
    so.map_size_max = c->cfg.store_map_size_max;
    if (store_open(c->cfg.state_dir, &so, &c->store, err, errlen) < 0)
        goto fail;
    if (s_lock_state(c, err, errlen) < 0)
        goto fail;

    sopt.max_attempts = (uint32_t)c->cfg.jobs_max_attempts;
    sopt.heartbeat_interval_us = (uint64_t)c->cfg.heartbeat_interval_ms *
                                 1000u;
    sopt.heartbeat_timeout_us = (uint64_t)c->cfg.heartbeat_timeout_ms *
                                1000u;
    sopt.reattach_grace_us = (uint64_t)c->cfg.reattach_grace_ms * 1000u;
    sopt.checkpoint_every = (int32_t)c->cfg.jobs_checkpoint_every;
    sopt.paused = c->cfg.jobs_paused;
    sopt.max_running = (int32_t)c->cfg.jobs_max_running;
    sopt.send = s_sched_send;
    sopt.kept = s_sched_kept;
    sopt.log = s_sched_log;
    sopt.ctx = c;
    if (sched_new(c->store, &sopt, &c->sched, err, errlen) < 0)
        goto fail;
    if (store_begin(c->store, false, &t, err, errlen) < 0)
        goto fail;
    if (sched_reload(c->sched, t, wire_mono_us(), err, errlen) < 0) {
        store_abort(&t);
        goto fail;
    }
    store_abort(&t);
    if (c->cfg.metrics_enabled) {
        if (metrics_new(c->cfg.metrics_address, c->store, &c->metrics, err,
                        errlen) < 0)
            goto fail;
        coord_metrics_publish(c, true);
        log_info("metrics on http://%s/metrics",
                 metrics_address(c->metrics));
    }

    c->ctx = zmq_ctx_new();
    if (!c->ctx) {
        snprintf(err, errlen, "cannot start ZeroMQ: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    zmq_ctx_set(c->ctx, ZMQ_BLOCKY, 0);
    if (s_security(c, err, errlen) < 0)
        goto fail;
    snprintf(c->mon_workers_ep, sizeof c->mon_workers_ep,
             "inproc://nader-mon-workers-%p", (void *)c);
    snprintf(c->mon_status_ep, sizeof c->mon_status_ep,
             "inproc://nader-mon-status-%p", (void *)c);
    c->workers = s_router(c, c->cfg.workers_endpoint, "workers.endpoint",
                          c->cfg.max_message_bytes, "workers",
                          c->mon_workers_ep, &c->mon_workers, err, errlen);
    if (!c->workers)
        goto fail;
    s_last_endpoint(c->workers, c->workers_ep, sizeof c->workers_ep);
    if (c->cfg.status_endpoint[0]) {
        c->status = s_router(c, c->cfg.status_endpoint, "status.endpoint",
                             c->cfg.status_max_request, "status",
                             c->mon_status_ep, &c->mon_status, err, errlen);
        if (!c->status)
            goto fail;
        s_last_endpoint(c->status, c->status_ep, sizeof c->status_ep);
    }
    if (c->cfg.admin_endpoint[0])
        snprintf(c->admin_ep, sizeof c->admin_ep, "%s",
                 c->cfg.admin_endpoint);
    else
        snprintf(c->admin_ep, sizeof c->admin_ep, "ipc://%s/admin.sock",
                 c->cfg.state_dir);
    c->admin = s_router(c, c->admin_ep, "status.admin_endpoint",
                        c->cfg.status_max_request, NULL, NULL, NULL, err,
                        errlen);
    if (!c->admin)
        goto fail;
    if (strncmp(c->admin_ep, "ipc://", 6) == 0)
        chmod(c->admin_ep + 6, 0600);
    snprintf(c->link_ep, sizeof c->link_ep, "inproc://nader-link-%p",
             (void *)c);
    snprintf(c->events_ep, sizeof c->events_ep, "inproc://nader-events-%p",
             (void *)c);
    c->link = s_router(c, c->link_ep, "link", 1LL << 30, NULL, NULL, NULL,
                       err, errlen);
    if (!c->link)
        goto fail;
    c->events = zmq_socket(c->ctx, ZMQ_PUB);
    if (!c->events || zmq_bind(c->events, c->events_ep) != 0) {
        snprintf(err, errlen, "cannot bind the event socket: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    coord_destroy(&c);
    return -1;
}

static void s_close(void **s)
{
    if (*s) {
        zmq_close(*s);
        *s = NULL;
    }
}

void coord_destroy(coord_t **cp)
{
    coord_t *c;

    if (!cp || !*cp)
        return;
    c = *cp;
    metrics_destroy(&c->metrics);
    store_abort(&c->txn);
    for (size_t i = 0; i < c->n_out; i++)
        free(c->out[i].buf);
    free(c->out);
    if (c->workers && c->mon_workers)
        zmq_socket_monitor(c->workers, NULL, 0);
    if (c->status && c->mon_status)
        zmq_socket_monitor(c->status, NULL, 0);
    s_close(&c->mon_workers);
    s_close(&c->mon_status);
    s_close(&c->workers);
    s_close(&c->status);
    s_close(&c->admin);
    s_close(&c->link);
    s_close(&c->events);
    s_close(&c->zap);
    if (c->ctx)
        zmq_ctx_term(c->ctx);
    sched_destroy(&c->sched);
    store_close(&c->store);
    keys_list_destroy(&c->worker_keys);
    keys_list_destroy(&c->admin_keys);
    memset(c->secret_z85, 0, sizeof c->secret_z85);
    config_free(&c->cfg);
    free(c);
    *cp = NULL;
}

void coord_stop(coord_t *c)
{
    atomic_store(&c->stop, 1);
}

const char *coord_workers_endpoint(const coord_t *c)
{
    return c->workers_ep;
}

const char *coord_status_endpoint(const coord_t *c)
{
    return c->status_ep;
}

const char *coord_admin_endpoint(const coord_t *c)
{
    return c->admin_ep;
}

store_t *coord_store(coord_t *c)
{
    return c->store;
}

void *coord_zmq_context(coord_t *c)
{
    return c->ctx;
}

/* ------------------------------------------------------------- the loop */

int coord_run(coord_t *c)
{
    zmq_pollitem_t items[8];
    enum { P_STATUS, P_ADMIN, P_LINK, P_ZAP, P_MONW, P_MONS, P_WORKERS };
    void *socks[7] = {c->status, c->admin, c->link, c->zap,
                      c->mon_workers, c->mon_status, c->workers};
    int idx[7], n = 0;
    uint64_t next_tick = 0;

    for (int i = 0; i < 7; i++) {
        idx[i] = -1;
        if (!socks[i])
            continue;
        idx[i] = n;
        items[n++] = (zmq_pollitem_t){socks[i], 0, ZMQ_POLLIN, 0};
    }
    log_info("coordinator ready: workers on %s, status on %s, admin on %s, "
             "store %s (%s)", c->workers_ep,
             c->status ? c->status_ep : "(none)", c->admin_ep,
             c->cfg.state_dir,
             c->cfg.security_curve ? "CURVE on" : "CURVE off");
    while (!atomic_load(&c->stop)) {
        uint64_t now = wire_mono_us();
        long timeout = POLL_MAX_MS;
        int rc;

        if (next_tick > now && (next_tick - now + 999) / 1000 < POLL_MAX_MS)
            timeout = (long)((next_tick - now + 999) / 1000);
        if (next_tick <= now)
            timeout = 0;
        rc = zmq_poll(items, n, timeout);
        if (rc < 0 && errno != EINTR) {
            log_error("poll failed: %s", zmq_strerror(errno));
            return -1;
        }
        c->now = wire_mono_us();
        c->turns++;
        if (rc > 0) {
            if (idx[P_STATUS] >= 0 && items[idx[P_STATUS]].revents)
                coord_status_drain(c, c->status, false);
            if (idx[P_ADMIN] >= 0 && items[idx[P_ADMIN]].revents)
                coord_status_drain(c, c->admin, true);
            if (idx[P_LINK] >= 0 && items[idx[P_LINK]].revents)
                coord_link_drain(c);
            if (idx[P_ZAP] >= 0 && items[idx[P_ZAP]].revents)
                coord_zap_drain(c);
            if (idx[P_MONW] >= 0 && items[idx[P_MONW]].revents)
                coord_monitor_drain(c, c->mon_workers, "workers.endpoint");
            if (idx[P_MONS] >= 0 && items[idx[P_MONS]].revents)
                coord_monitor_drain(c, c->mon_status, "status.endpoint");
            if (items[idx[P_WORKERS]].revents)
                coord_workers_drain(c, WORKER_BUDGET);
        }
        if (c->now >= next_tick) {
            store_txn_t *t = coord_txn(c);
            if (t && sched_tick(c->sched, t, c->now, &next_tick) < 0)
                coord_txn_fail(c, NULL);
            if (!t)
                next_tick = c->now + 100000;
        }
        if (sched_dispatch_wanted(c->sched)) {
            store_txn_t *t = coord_txn(c);
            if (t && sched_dispatch(c->sched, t, c->now) < 0)
                coord_txn_fail(c, NULL);
        }
        s_turn_end(c);
    }
    log_info("coordinator stopping: %llu turns, %llu commits",
             (unsigned long long)c->turns, (unsigned long long)c->commits);
    return 0;
}
