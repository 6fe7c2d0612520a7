/*
 * broker.c - the worker endpoint: read frames from the ROUTER, check
 * them, and hand each message to the scheduler.
 *
 * This is the coordinator's front door for untrusted bytes, so every
 * frame is checked before anything acts on it: one frame per message, a
 * size limit, a protobuf Envelope of our protocol version with a body,
 * a body that a worker may send, fields in range, and a Hello before
 * anything else.  A message that fails is dropped with one log line
 * naming the peer (rate-limited per peer and kind) and changes nothing.
 */
#include "coord_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "wire.h"

#define NAME_MAX_LEN 200

static void s_reject(coord_t *c, const void *rid, size_t rid_len,
                     Nader__Reject__Code code, const char *reason)
{
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Reject rj = NADER__REJECT__INIT;
    uint8_t *buf;
    size_t len;

    rj.has_code = 1;
    rj.code = code;
    rj.reason = (char *)reason;
    env.body_case = NADER__ENVELOPE__BODY_REJECT;
    env.reject = &rj;
    if (wire_encode(&env, &buf, &len) != WIRE_OK)
        return;
    coord_out_add(c, OUT_WORKER, false, c->workers, rid, rid_len, buf, len);
    free(buf);
}

static bool s_text_ok(const char *s, size_t max)
{
    size_t n = 0;

    if (!s)
        return true;
    for (; s[n]; n++)
        if ((unsigned char)s[n] < 32 || n >= max)
            return false;
    return true;
}

/* Check a Hello's fields; returns NULL when fine, else why not. */
static const char *s_hello_problem(const Nader__Hello *h)
{
    if (!h->worker || !h->worker[0])
        return "hello without a worker name";
    if (!s_text_ok(h->worker, NAME_MAX_LEN) ||
        !s_text_ok(h->host, NAME_MAX_LEN))
        return "hello with an unprintable or overlong name";
    if (h->n_devices > 64 || h->n_datasets > 32 || h->n_running > 1024)
        return "hello with too many devices, data sets or jobs";
    for (size_t i = 0; i < h->n_devices; i++)
        if (!h->devices[i]->name || !h->devices[i]->name[0] ||
            !s_text_ok(h->devices[i]->name, 64))
            return "hello with a device without a proper name";
    for (size_t i = 0; i < h->n_datasets; i++)
        if (!h->datasets[i][0] || !s_text_ok(h->datasets[i], 64))
            return "hello with a bad data set name";
    return NULL;
}

static const char *s_result_problem(const Nader__Result *r)
{
    if (!r->job || !r->attempt)
        return "result without a job id and attempt";
    if (r->status > NADER__RESULT_STATUS__RESULT_CANCELLED)
        return "result with an unknown status";
    if (r->n_epochs > 100000)
        return "result with too many epochs";
    return NULL;
}

/* Handle one decoded message from the peer at rid. */
static void s_handle(coord_t *c, const void *rid, size_t rid_len,
                     const char *peer, const Nader__Envelope *env)
{
    sched_worker_t *w = sched_worker_find(c->sched, rid, rid_len);
    const char *why = NULL, *name = wire_body_name(env->body_case);
    store_txn_t *t;
    bool kept;
    int rc = 0;

    switch (env->body_case) {
    case NADER__ENVELOPE__BODY_WELCOME:
    case NADER__ENVELOPE__BODY_LEASE:
    case NADER__ENVELOPE__BODY_RESULT_ACK:
    case NADER__ENVELOPE__BODY_CANCEL:
    case NADER__ENVELOPE__BODY_REJECT:
        coord_peer_log(c, LOG_WARN, peer, "out-of-protocol", 1,
                       "sent a %s, which only the coordinator sends; "
                       "dropped", name);
        s_reject(c, rid, rid_len, NADER__REJECT__CODE__BAD_MESSAGE,
                 "a worker may not send that message");
        return;
    case NADER__ENVELOPE__BODY_HELLO:
        why = s_hello_problem(env->hello);
        break;
    case NADER__ENVELOPE__BODY_RESULT:
        why = s_result_problem(env->result);
        break;
    case NADER__ENVELOPE__BODY_PROGRESS:
        if (!env->progress->job || !env->progress->attempt)
            why = "progress without a job id and attempt";
        break;
    case NADER__ENVELOPE__BODY_CHECKPOINT:
        if (!env->checkpoint->job || !env->checkpoint->attempt ||
            !env->checkpoint->has_data)
            why = "checkpoint without a job, attempt or data";
        break;
    default:
        break;
    }
    if (why) {
        coord_peer_log(c, LOG_WARN, peer, "invalid", 1, "%s; dropped",
                       why);
        s_reject(c, rid, rid_len, NADER__REJECT__CODE__BAD_MESSAGE, why);
        return;
    }
    if (env->body_case == NADER__ENVELOPE__BODY_HELLO) {
        if ((t = coord_txn(c)) &&
            sched_worker_hello(c->sched, t, rid, rid_len, peer, env->hello,
                               c->now) < 0)
            coord_txn_fail(c, NULL);
        return;
    }
    if (!w) {
        coord_peer_log(c, LOG_INFO, peer, "no-hello", 1,
                       "sent a %s before saying hello; asked to say hello",
                       name);
        s_reject(c, rid, rid_len, NADER__REJECT__CODE__HELLO_FIRST,
                 "unknown worker: say hello first");
        return;
    }
    sched_worker_seen(w, c->now);
    t = coord_txn(c);
    if (!t)
        return;
    switch (env->body_case) {
    case NADER__ENVELOPE__BODY_HEARTBEAT:
        rc = sched_worker_heartbeat(c->sched, t, w, env->heartbeat, c->now);
        break;
    case NADER__ENVELOPE__BODY_PROGRESS:
        rc = sched_worker_progress(c->sched, t, w, env->progress);
        break;
    case NADER__ENVELOPE__BODY_CHECKPOINT:
        rc = sched_worker_checkpoint(c->sched, t, w, env->checkpoint);
        break;
    case NADER__ENVELOPE__BODY_RESULT:
        rc = sched_worker_result(c->sched, t, w, env->result, &kept);
        break;
    case NADER__ENVELOPE__BODY_GOODBYE:
        rc = sched_worker_leave(c->sched, t, w,
                                env->goodbye->reason ? env->goodbye->reason
                                                     : "said goodbye",
                                false);
        break;
    default:
        break;
    }
    if (rc < 0)
        coord_txn_fail(c, NULL);
}

/* "ADDRESS#ROUTINGID" for logs. */
static void s_peer_name(zmq_msg_t *body, const uint8_t *rid, size_t rid_len,
                        char *out, size_t len)
{
    const char *addr = zmq_msg_gets(body, "Peer-Address");
    size_t n = (size_t)snprintf(out, len, "%s#", addr ? addr : "?");

    for (size_t i = rid_len > 8 ? rid_len - 4 : 0; i < rid_len && n + 3 <
         len; i++)
        n += (size_t)snprintf(out + n, len - n, "%02x", rid[i]);
}

void coord_workers_drain(coord_t *c, int budget)
{
    while (budget-- > 0) {
        zmq_msg_t rid, body;
        Nader__Envelope *env = NULL;
        char err[256], peer[96];
        int frames = 1, rc;

        zmq_msg_init(&rid);
        if (zmq_msg_recv(&rid, c->workers, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            return;
        }
        zmq_msg_init(&body);
        if (!zmq_msg_more(&rid) ||
            zmq_msg_recv(&body, c->workers, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&rid);
            zmq_msg_close(&body);
            continue;
        }
        c->messages++;
        s_peer_name(&body, zmq_msg_data(&rid), zmq_msg_size(&rid), peer,
                    sizeof peer);
        while (zmq_msg_more(&body)) {
            zmq_msg_t extra;
            zmq_msg_init(&extra);
            rc = zmq_msg_recv(&extra, c->workers, ZMQ_DONTWAIT);
            zmq_msg_close(&extra);
            if (rc < 0)
                break;
            frames++;
            if (frames > 1000000)
                break;
        }
        if (frames > 1) {
            coord_peer_log(c, LOG_WARN, peer, "frames", 1,
                           "sent a message of %d frames (one expected); "
                           "dropped", frames);
            goto next;
        }
        rc = wire_decode(zmq_msg_data(&body), zmq_msg_size(&body),
                         (size_t)c->cfg.max_message_bytes, &env, err,
                         sizeof err);
        if (rc != WIRE_OK) {
            coord_peer_log(c, LOG_WARN, peer,
                           rc == WIRE_EVERSION ? "version"
                           : rc == WIRE_ETOOBIG ? "oversized" : "malformed",
                           1,
                           "%s%s; dropped", err, rc == WIRE_ETOOBIG
                           ? " (limits.max_message)" : "");
            if (rc == WIRE_EVERSION)
                s_reject(c, zmq_msg_data(&rid), zmq_msg_size(&rid),
                         NADER__REJECT__CODE__BAD_VERSION, err);
            goto next;
        }
        s_handle(c, zmq_msg_data(&rid), zmq_msg_size(&rid), peer, env);
        wire_free(&env);
next:
        zmq_msg_close(&rid);
        zmq_msg_close(&body);
    }
}
