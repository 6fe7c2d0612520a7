/*
 * status.c - the status and admin sockets: JSON requests in, JSON
 * replies out (docs/operations.md lists them).
 *
 * A request is one frame of JSON after an empty delimiter frame (what a
 * REQ or DEALER client sends), an object with "op".  Read-only ops
 * (status, results, jobs, job, design, ping) are answered for anyone who
 * can connect.  Changing ops (submit, cancel, set) are answered only on
 * the admin socket, or on the status socket for a client whose CURVE key
 * is in security.admin_keys (the ZAP handler marks it "admin"); their
 * replies wait for the turn's commit.
 */
#include "coord_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "log.h"
#include "records.h"
#include "wire.h"

#define RESULTS_LIMIT 10000

typedef struct s_req {
    coord_t *c;
    void *sock;
    const uint8_t *rid;
    size_t rid_len;
    bool admin;
} s_req_t;

static void s_reply(s_req_t *r, json_t *body, bool durable)
{
    char *text = json_dumps(body, JSON_COMPACT);

    json_decref(body);
    if (!text) {
        log_error("status: cannot encode a reply (out of memory)");
        return;
    }
    coord_out_add(r->c, OUT_JSON, durable, r->sock, r->rid, r->rid_len, text,
                  strlen(text));
    free(text);
}

static void s_error(s_req_t *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void s_error(s_req_t *r, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s_reply(r, json_pack("{s:b,s:s}", "ok", 0, "error", msg), false);
}

typedef struct s_workers_ctx {
    json_t *a;
    uint64_t now;
} s_workers_ctx_t;

static int s_worker_json(void *ctx, sched_worker_t *w)
{
    s_workers_ctx_t *wc = ctx;
    sched_worker_info_t info;
    json_t *o, *dev = json_array(), *ds = json_array();

    sched_worker_info(w, &info);
    for (int i = 0; i < info.n_slots; i++) {
        sched_slot_info_t sl;
        json_t *d;
        sched_worker_slot(w, i, &sl);
        d = json_pack("{s:s}", "device", sl.device);
        if (sl.job) {
            json_object_set_new(d, "job", json_integer((json_int_t)sl.job));
            json_object_set_new(d, "attempt", json_integer(sl.attempt));
            json_object_set_new(d, "epoch", json_integer(sl.epoch));
            json_object_set_new(d, "epochs", json_integer(sl.epochs));
            json_object_set_new(d, "images_per_s",
                                json_real(sl.images_per_s));
            json_object_set_new(d, "valid_acc", json_real(sl.valid_acc));
        }
        json_array_append_new(dev, d);
    }
    for (int i = 0; i < info.n_datasets; i++)
        json_array_append_new(ds, json_string(info.datasets[i]));
    o = json_pack("{s:i,s:s,s:s,s:s,s:b,s:f,s:I,s:o,s:o}", "no", info.no,
                  "name", info.name, "host", info.host, "peer", info.peer,
                  "load_test", info.load_test, "last_seen_s",
                  (double)(wc->now - info.last_seen_us) / 1e6, "results",
                  (json_int_t)info.results, "devices", dev, "datasets", ds);
    json_array_append_new(wc->a, o);
    return 0;
}

static json_t *s_status_json(coord_t *c)
{
    sched_counts_t k;
    s_workers_ctx_t wc = {json_array(), wire_mono_us()};
    const char *names[64];
    uint64_t counts[64], ids[10], now = wire_now_us();
    json_t *by = json_object(), *next = json_array();
    int n;

    sched_counts(c->sched, &k);
    sched_workers_each(c->sched, s_worker_json, &wc);
    n = sched_queue_by_dataset(c->sched, names, counts, 64);
    for (int i = 0; i < n; i++)
        json_object_set_new(by, names[i], json_integer((json_int_t)counts[i]));
    n = sched_queue_peek(c->sched, ids, 10);
    for (int i = 0; i < n; i++) {
        const Nader__JobRecord *j = sched_job_active(c->sched, ids[i]);
        if (j)
            json_array_append_new(next, records_job_json(j));
    }
    return json_pack(
        "{s:b,s:{s:s,s:i,s:f,s:s,s:b,s:i,s:b,s:I,s:I},s:o,"
        "s:{s:I,s:o,s:o},s:{s:I,s:I,s:I,s:I,s:I,s:I},"
        "s:{s:I,s:I,s:I,s:I}}",
        "ok", 1,
        "coordinator", "software", WIRE_SOFTWARE, "pid", (int)getpid(),
        "uptime_s", (double)(now - c->started_wall_us) / 1e6, "store",
        c->cfg.state_dir, "paused", sched_paused(c->sched), "max_running",
        sched_max_running(c->sched), "curve", c->cfg.security_curve,
        "turns", (json_int_t)c->turns, "commits", (json_int_t)c->commits,
        "workers", wc.a,
        "queue", "length", (json_int_t)k.queued, "by_dataset", by, "next",
        next,
        "jobs", "queued", (json_int_t)k.queued, "leased",
        (json_int_t)k.leased, "running", (json_int_t)k.running, "done",
        (json_int_t)k.done, "failed", (json_int_t)k.failed, "cancelled",
        (json_int_t)k.cancelled,
        "results", "total", (json_int_t)k.results, "load_test",
        (json_int_t)k.load_test_results, "last_60s",
        (json_int_t)sched_recent_results(c->sched, 60, now), "last_10s",
        (json_int_t)sched_recent_results(c->sched, 10, now));
}

/* --------------------------------------------------------------- reads */

typedef struct s_list_ctx {
    json_t *a;
    const char *tag;
    int state;               /* -1: any */
    bool epochs;
    int limit;
    uint64_t last;
} s_list_ctx_t;

static int s_result_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_list_ctx_t *l = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)m;

    l->last = id;
    if (l->tag && (!rr->tag || strcmp(rr->tag, l->tag) != 0))
        return 0;
    json_array_append_new(l->a, records_result_json(rr, l->epochs));
    return (int)json_array_size(l->a) >= l->limit;
}

static int s_job_visit(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_list_ctx_t *l = ctx;
    const Nader__JobRecord *j = (const Nader__JobRecord *)m;

    l->last = id;
    if (l->state >= 0 && (int)j->state != l->state)
        return 0;
    if (l->tag && (!j->tag || strcmp(j->tag, l->tag) != 0))
        return 0;
    json_array_append_new(l->a, records_job_json(j));
    return (int)json_array_size(l->a) >= l->limit;
}

static void s_op_list(s_req_t *r, json_t *req, bool results)
{
    s_list_ctx_t l = {json_array(), NULL, -1, false, 100, 0};
    json_int_t after = json_integer_value(json_object_get(req, "after"));
    json_int_t limit = json_integer_value(json_object_get(req, "limit"));
    const char *state = json_string_value(json_object_get(req, "state"));
    store_txn_t *t;
    char err[512];
    int rc;

    l.tag = json_string_value(json_object_get(req, "tag"));
    l.epochs = json_is_true(json_object_get(req, "epochs"));
    if (limit > 0)
        l.limit = limit > RESULTS_LIMIT ? RESULTS_LIMIT : (int)limit;
    if (state) {
        for (int i = 0; i < 6; i++)
            if (strcmp(state, records_state_name((Nader__JobState)i)) == 0)
                l.state = i;
        if (l.state < 0) {
            json_decref(l.a);
            s_error(r, "jobs: unknown state '%s' (queued, leased, running, "
                    "done, failed, cancelled)", state);
            return;
        }
    }
    if (store_begin(r->c->store, false, &t, err, sizeof err) < 0) {
        json_decref(l.a);
        s_error(r, "%s", err);
        return;
    }
    rc = store_scan_msg(t, results ? STORE_RESULTS : STORE_JOBS,
                        (uint64_t)(after < 0 ? 0 : after) + 1,
                        results ? &nader__result_record__descriptor
                                : &nader__job_record__descriptor,
                        results ? s_result_visit : s_job_visit, &l);
    if (rc < 0) {
        snprintf(err, sizeof err, "%s", store_txn_error(t));
        store_abort(&t);
        json_decref(l.a);
        s_error(r, "%s", err);
        return;
    }
    store_abort(&t);
    s_reply(r, json_pack("{s:b,s:o,s:I,s:b}", "ok", 1,
                         results ? "results" : "jobs", l.a, "last",
                         (json_int_t)l.last, "more",
                         rc > 0), false);
}

static void s_op_job(s_req_t *r, json_t *req)
{
    json_int_t id = json_integer_value(json_object_get(req, "id"));
    Nader__JobRecord *j = NULL;
    Nader__ResultRecord *rr = NULL;
    store_txn_t *t;
    char err[512];
    json_t *o;
    int rc;

    if (store_begin(r->c->store, false, &t, err, sizeof err) < 0) {
        s_error(r, "%s", err);
        return;
    }
    rc = store_job_get(t, (uint64_t)id, &j);
    if (rc != STORE_OK) {
        snprintf(err, sizeof err, "%s", rc < 0 ? store_txn_error(t) : "");
        store_abort(&t);
        if (rc < 0)
            s_error(r, "%s", err);
        else
            s_error(r, "job %lld: no such job", (long long)id);
        return;
    }
    o = json_pack("{s:b,s:o}", "ok", 1, "job", records_job_json(j));
    if (store_result_get(t, (uint64_t)id, &rr) == STORE_OK) {
        json_object_set_new(o, "result", records_result_json(rr, true));
        nader__result_record__free_unpacked(rr, NULL);
    }
    nader__job_record__free_unpacked(j, NULL);
    store_abort(&t);
    s_reply(r, o, false);
}

static void s_op_design(s_req_t *r, json_t *req)
{
    const char *hash = json_string_value(json_object_get(req, "hash"));
    Nader__DesignRecord *d = NULL;
    store_txn_t *t;
    char err[512];
    int rc;

    if (!hash) {
        s_error(r, "design: needs \"hash\"");
        return;
    }
    if (store_begin(r->c->store, false, &t, err, sizeof err) < 0) {
        s_error(r, "%s", err);
        return;
    }
    rc = store_design_get(t, hash, &d);
    store_abort(&t);
    if (rc != STORE_OK) {
        s_error(r, "design %s: %s", hash, rc < 0 ? "cannot be read"
                                                 : "no such design");
        return;
    }
    s_reply(r, json_pack("{s:b,s:{s:s,s:s,s:s?,s:s,s:s?,s:s?,s:I}}", "ok",
                         1, "design", "hash", d->hash, "text", d->text,
                         "name", d->name, "skeleton", d->skeleton, "source",
                         d->source, "parent", d->parent_hash, "created_ms",
                         (json_int_t)d->created_ms),
            false);
    nader__design_record__free_unpacked(d, NULL);
}

/* ------------------------------------------------------------- changes */

static int s_uint_array(json_t *a, uint64_t **out, size_t *n)
{
    size_t i;
    json_t *v;

    *n = json_array_size(a);
    *out = calloc(*n ? *n : 1, sizeof **out);
    if (!*out)
        return -1;
    json_array_foreach(a, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0)
            return -1;
        (*out)[i] = (uint64_t)json_integer_value(v);
    }
    return 0;
}

static void s_op_submit(s_req_t *r, json_t *req)
{
    Nader__SubmitRequest sr = NADER__SUBMIT_REQUEST__INIT;
    Nader__Recipe recipe = NADER__RECIPE__INIT;
    coord_submitted_t out;
    json_t *v, *o;
    uint64_t *seeds = NULL;
    size_t n_seeds = 0;

    sr.design = (char *)json_string_value(json_object_get(req, "design"));
    if ((v = json_object_get(req, "name")) && json_is_string(v))
        sr.name = (char *)json_string_value(v);
    if ((v = json_object_get(req, "dataset")) && json_is_string(v))
        sr.dataset = (char *)json_string_value(v);
    if ((v = json_object_get(req, "skeleton")) && json_is_string(v))
        sr.skeleton = (char *)json_string_value(v);
    if ((v = json_object_get(req, "tag")) && json_is_string(v))
        sr.tag = (char *)json_string_value(v);
    if ((v = json_object_get(req, "epochs")))
        sr.epochs = (int32_t)json_integer_value(v);
    if ((v = json_object_get(req, "width")))
        sr.width = (int32_t)json_integer_value(v);
    if ((v = json_object_get(req, "priority"))) {
        sr.has_priority = 1;
        sr.priority = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(req, "max_attempts")))
        sr.max_attempts = (uint32_t)json_integer_value(v);
    sr.validate_only = json_is_true(json_object_get(req, "validate_only"));
    if ((v = json_object_get(req, "seeds")) &&
        (!json_is_array(v) || s_uint_array(v, &seeds, &n_seeds) < 0)) {
        free(seeds);
        s_error(r, "submit: \"seeds\" must be a list of whole numbers");
        return;
    }
    sr.seeds = seeds;
    sr.n_seeds = n_seeds;
    if ((v = json_object_get(req, "batch"))) {
        recipe.has_batch = 1;
        recipe.batch = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(req, "max_steps"))) {
        recipe.has_max_steps = 1;
        recipe.max_steps = json_integer_value(v);
    }
    if ((v = json_object_get(req, "lr"))) {
        recipe.has_lr = 1;
        recipe.lr = json_number_value(v);
    }
    if ((v = json_object_get(req, "cells_per_stage"))) {
        recipe.has_cells_per_stage = 1;
        recipe.cells_per_stage = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(req, "stem_scale"))) {
        recipe.has_stem_scale = 1;
        recipe.stem_scale = (int32_t)json_integer_value(v);
    }
    if ((v = json_object_get(req, "budget"))) {
        recipe.has_budget = 1;
        recipe.budget = json_integer_value(v);
    }
    sr.recipe = &recipe;
    if (coord_submit(r->c, &sr, &out) < 0) {
        coord_txn_fail(r->c, NULL);
        coord_submitted_free(&out);
        free(seeds);
        s_reply(r, json_pack("{s:b,s:s}", "ok", 0, "error", "store"), true);
        return;
    }
    free(seeds);
    if (!out.ok) {
        json_t *e = json_array();
        for (size_t i = 0; i < out.n_errors; i++)
            json_array_append_new(e, json_string(out.errors[i]));
        coord_submitted_free(&out);
        s_reply(r, json_pack("{s:b,s:s,s:o}", "ok", 0, "error",
                             "the design is not valid", "errors", e),
                false);
        return;
    }
    o = json_array();
    for (size_t i = 0; i < out.n_jobs; i++)
        json_array_append_new(o, json_integer((json_int_t)out.jobs[i]));
    s_reply(r, json_pack("{s:b,s:s,s:i,s:I,s:I,s:b,s:o}", "ok", 1, "design",
                         out.hash, "width", out.width, "params",
                         (json_int_t)out.params, "macs",
                         (json_int_t)out.macs, "design_new", out.design_new,
                         "jobs", o),
            true);
    coord_submitted_free(&out);
}

static void s_op_cancel(s_req_t *r, json_t *req)
{
    uint64_t *ids = NULL, *done = NULL;
    size_t n = 0, n_done = 0;
    const char *reason = json_string_value(json_object_get(req, "reason"));
    char errs[2048];
    json_t *a;

    if (s_uint_array(json_object_get(req, "jobs"), &ids, &n) < 0 || !n ||
        !(done = calloc(n, sizeof *done))) {
        free(ids);
        s_error(r, "cancel: \"jobs\" must be a non-empty list of job ids");
        return;
    }
    if (coord_cancel(r->c, ids, n, reason ? reason : "cancelled by an "
                     "operator", done, &n_done, errs, sizeof errs) < 0)
        coord_txn_fail(r->c, NULL);
    a = json_array();
    for (size_t i = 0; i < n_done; i++)
        json_array_append_new(a, json_integer((json_int_t)done[i]));
    s_reply(r, json_pack("{s:b,s:o,s:s}", "ok", 1, "cancelled", a,
                         "errors", errs), true);
    free(ids);
    free(done);
}

static void s_op_set(s_req_t *r, json_t *req)
{
    const char *key = json_string_value(json_object_get(req, "key"));
    json_t *jv = json_object_get(req, "value");
    const config_key_t *k = key ? config_key_find(key) : NULL;
    char value[256], err[384];
    store_txn_t *t;
    config_t tmp;
    int rc = 0;

    if (!k || !k->live) {
        s_error(r, "set: '%s' is not a key that can change while running "
                "(jobs.paused, jobs.max_running, log.level)",
                key ? key : "");
        return;
    }
    if (json_is_string(jv))
        snprintf(value, sizeof value, "%s", json_string_value(jv));
    else if (json_is_boolean(jv))
        snprintf(value, sizeof value, "%s", json_is_true(jv) ? "true"
                                                             : "false");
    else if (json_is_integer(jv))
        snprintf(value, sizeof value, "%lld",
                 (long long)json_integer_value(jv));
    else {
        s_error(r, "set %s: needs a \"value\"", key);
        return;
    }
    if (config_defaults(&tmp) < 0 ||
        config_set(&tmp, key, value, err, sizeof err) < 0) {
        config_free(&tmp);
        s_error(r, "set: %s", err);
        return;
    }
    if (strcmp(key, "log.level") == 0) {
        log_init("coordinator", (log_level_t)log_level_parse(tmp.log_level),
                 NULL);
    } else if (!(t = coord_txn(r->c))) {
        rc = -1;
    } else if (strcmp(key, "jobs.paused") == 0) {
        rc = sched_set_paused(r->c->sched, t, tmp.jobs_paused);
    } else if (strcmp(key, "jobs.max_running") == 0) {
        rc = sched_set_max_running(r->c->sched, t,
                                   (int32_t)tmp.jobs_max_running);
    }
    config_free(&tmp);
    if (rc < 0)
        coord_txn_fail(r->c, NULL);
    log_info("set %s = %s", key, value);
    s_reply(r, json_pack("{s:b,s:s,s:s}", "ok", 1, "key", key, "value",
                         value), true);
}

/* ------------------------------------------------------------ dispatch */

static void s_handle(s_req_t *r, const char *text, size_t len)
{
    json_error_t jerr;
    json_t *req = json_loadb(text, len, 0, &jerr);
    const char *op;

    if (!req || !json_is_object(req)) {
        s_error(r, "request is not a JSON object (%s at column %d)",
                req ? "not an object" : jerr.text, jerr.column);
        json_decref(req);
        return;
    }
    op = json_string_value(json_object_get(req, "op"));
    if (!op)
        s_error(r, "request without \"op\"");
    else if (strcmp(op, "status") == 0)
        s_reply(r, s_status_json(r->c), false);
    else if (strcmp(op, "ping") == 0)
        s_reply(r, json_pack("{s:b,s:b}", "ok", 1, "admin", r->admin),
                false);
    else if (strcmp(op, "results") == 0)
        s_op_list(r, req, true);
    else if (strcmp(op, "jobs") == 0)
        s_op_list(r, req, false);
    else if (strcmp(op, "job") == 0)
        s_op_job(r, req);
    else if (strcmp(op, "design") == 0)
        s_op_design(r, req);
    else if (strcmp(op, "submit") != 0 && strcmp(op, "cancel") != 0 &&
             strcmp(op, "set") != 0)
        s_error(r, "unknown op '%s' (status, results, jobs, job, design, "
                "ping, submit, cancel, set)", op);
    else if (!r->admin)
        s_error(r, "'%s' changes the coordinator: use the admin socket, or "
                "a CURVE key listed in security.admin_keys", op);
    else if (strcmp(op, "submit") == 0)
        s_op_submit(r, req);
    else if (strcmp(op, "cancel") == 0)
        s_op_cancel(r, req);
    else
        s_op_set(r, req);
    json_decref(req);
}

void coord_status_drain(coord_t *c, void *sock, bool admin_socket)
{
    for (int k = 0; k < 256; k++) {
        zmq_msg_t part[3];
        int n = 0, extra = 0;
        s_req_t r = {c, sock, NULL, 0, admin_socket};

        for (;;) {
            zmq_msg_t m;
            int more;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            more = zmq_msg_more(&m);
            if (n < 3) {
                zmq_msg_init(&part[n]);
                zmq_msg_move(&part[n++], &m);
            } else {
                extra++;
            }
            zmq_msg_close(&m);
            if (!more)
                break;
        }
        if (n == 0)
            return;
        if (n == 3 && !extra &&
            zmq_msg_size(&part[2]) > (size_t)c->cfg.status_max_request) {
            const char *addr = zmq_msg_gets(&part[2], "Peer-Address");
            coord_peer_log(c, LOG_WARN, addr ? addr : "?", "status-size",
                           1,
                           "status request of %zu bytes is over "
                           "status.max_request (%lld); dropped",
                           zmq_msg_size(&part[2]),
                           (long long)c->cfg.status_max_request);
            r.rid = zmq_msg_data(&part[0]);
            r.rid_len = zmq_msg_size(&part[0]);
            s_error(&r, "request over status.max_request");
        } else if (n == 3 && !extra && zmq_msg_size(&part[1]) == 0) {
            const char *uid = zmq_msg_gets(&part[2], "User-Id");
            r.rid = zmq_msg_data(&part[0]);
            r.rid_len = zmq_msg_size(&part[0]);
            if (uid && strcmp(uid, "admin") == 0)
                r.admin = true;
            s_handle(&r, zmq_msg_data(&part[2]), zmq_msg_size(&part[2]));
        } else {
            const char *addr = n > 1 ? zmq_msg_gets(&part[1],
                                                    "Peer-Address") : NULL;
            coord_peer_log(c, LOG_WARN, addr ? addr : "?",
                           "status-frames", 1,
                           "status request of %d frames (expected an empty "
                           "delimiter and one JSON frame); dropped",
                           n + extra - 1);
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}
