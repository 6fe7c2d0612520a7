/*
 * link.c - the in-process link between agent threads and the poll loop:
 * the loop's side (requests applied to the turn's transaction, replies
 * after commit) and the agents' side (coord_link_* in coordinator.h).
 *
 * Requests and replies are nader.LinkRequest / LinkReply, so agents deal
 * in the same records the store keeps.  Results are published on an
 * inproc PUB socket after each commit; a link subscribes when made.
 */
#include "coord_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct coord_link {
    void *req;
    void *sub;
};

/* ---------------------------------------------------------- loop side */

static void s_reply(coord_t *c, const void *rid, size_t rid_len,
                    Nader__LinkReply *r, bool durable)
{
    size_t len = nader__link_reply__get_packed_size(r);
    uint8_t *buf = malloc(len ? len : 1);

    if (!buf)
        return;
    nader__link_reply__pack(r, buf);
    coord_out_add(c, OUT_LINK, durable, c->link, rid, rid_len, buf, len);
    free(buf);
}

/* Submit; the reply borrows from out, which the caller frees after
 * the reply is encoded. */
static void s_submit(coord_t *c, const Nader__SubmitRequest *req,
                     Nader__LinkReply *r, Nader__SubmitReply *sr,
                     coord_submitted_t *outp)
{
    coord_submitted_t out;

    if (coord_submit(c, req, outp) < 0) {
        coord_txn_fail(c, NULL);
        r->has_ok = 1;
        r->ok = 0;
        r->error = (char *)"store failure";
        return;
    }
    out = *outp;
    sr->has_ok = 1;
    sr->ok = out.ok;
    sr->n_errors = out.n_errors;
    sr->errors = out.errors;
    sr->design_hash = out.ok ? outp->hash : NULL;
    sr->has_width = sr->has_params = sr->has_macs = 1;
    sr->width = out.width;
    sr->params = out.params;
    sr->macs = out.macs;
    sr->n_jobs = out.n_jobs;
    sr->jobs = out.jobs;
    sr->has_design_new = 1;
    sr->design_new = out.design_new;
    r->submit = sr;
    r->has_ok = 1;
    r->ok = out.ok;
    if (!out.ok)
        r->error = (char *)"the design is not valid";
}

static int s_settings(coord_t *c, store_txn_t *t,
                      const Nader__SettingsRecord *s)
{
    int rc = 0;

    if (s->has_paused)
        rc = sched_set_paused(c->sched, t, s->paused);
    if (rc == 0 && s->has_max_running)
        rc = sched_set_max_running(c->sched, t, s->max_running);
    return rc;
}

static void s_handle(coord_t *c, const void *rid, size_t rid_len,
                     Nader__LinkRequest *req)
{
    Nader__LinkReply r = NADER__LINK_REPLY__INIT;
    Nader__SubmitReply sr = NADER__SUBMIT_REPLY__INIT;
    coord_submitted_t sub = {0};
    store_txn_t *t = coord_txn(c);
    uint64_t *done = NULL;
    char errs[1024] = "";
    int rc = 0;

    r.has_ok = 1;
    r.ok = 1;
    if (!t) {
        r.ok = 0;
        r.error = c->txn_err;
        s_reply(c, rid, rid_len, &r, false);
        return;
    }
    switch (req->body_case) {
    case NADER__LINK_REQUEST__BODY_SUBMIT:
        s_submit(c, req->submit, &r, &sr, &sub);
        break;
    case NADER__LINK_REQUEST__BODY_CANCEL: {
        size_t n_done = 0;
        done = calloc(req->cancel->n_jobs + 1, sizeof *done);
        if (!done) {
            rc = STORE_ENOMEM;
            break;
        }
        rc = coord_cancel(c, req->cancel->jobs, req->cancel->n_jobs,
                          req->cancel->reason ? req->cancel->reason
                                              : "cancelled by an agent",
                          done, &n_done, errs, sizeof errs);
        r.ids = done;
        r.n_ids = n_done;
        if (errs[0])
            r.error = errs;
        break;
    }
    case NADER__LINK_REQUEST__BODY_EXPERIENCE:
        rc = store_experience_add(t, req->experience);
        r.id = req->experience->id;
        break;
    case NADER__LINK_REQUEST__BODY_INSPIRATION:
        rc = store_inspiration_add(t, req->inspiration);
        r.id = req->inspiration->id;
        break;
    case NADER__LINK_REQUEST__BODY_LLM:
        rc = store_llm_add(t, req->llm);
        r.id = req->llm->id;
        break;
    case NADER__LINK_REQUEST__BODY_DESIGN:
        if (!req->design->hash || !req->design->hash[0]) {
            r.ok = 0;
            r.error = (char *)"design record without a hash";
            break;
        }
        rc = store_design_put(t, req->design);
        break;
    case NADER__LINK_REQUEST__BODY_SETTINGS:
        rc = s_settings(c, t, req->settings);
        break;
    case NADER__LINK_REQUEST__BODY_SEARCH: {
        char key[160];
        if (!req->search->name || !req->search->name[0] ||
            strlen(req->search->name) > 120) {
            r.ok = 0;
            r.error = (char *)"search record without a usable name";
            break;
        }
        snprintf(key, sizeof key, "search.%s", req->search->name);
        rc = store_put_msg(t, STORE_META, key, strlen(key),
                           &req->search->base);
        break;
    }
    default:
        r.ok = 0;
        r.error = (char *)"link request without a body";
        break;
    }
    r.has_id = r.id != 0;
    if (rc < 0)
        coord_txn_fail(c, NULL);
    s_reply(c, rid, rid_len, &r, true);
    coord_submitted_free(&sub);
    free(done);
}

void coord_link_drain(coord_t *c)
{
    for (int k = 0; k < 1024; k++) {
        zmq_msg_t rid, delim, body;
        Nader__LinkRequest *req;

        zmq_msg_init(&rid);
        zmq_msg_init(&delim);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&rid, c->link, ZMQ_DONTWAIT) < 0)
            goto out;
        if (!zmq_msg_more(&rid) ||
            zmq_msg_recv(&delim, c->link, ZMQ_DONTWAIT) < 0 ||
            !zmq_msg_more(&delim) ||
            zmq_msg_recv(&body, c->link, ZMQ_DONTWAIT) < 0) {
            log_error("link: a request without its frames; dropped");
            goto next;
        }
        req = nader__link_request__unpack(NULL, zmq_msg_size(&body),
                                          zmq_msg_data(&body));
        if (!req) {
            log_error("link: a request that does not decode; dropped");
            goto next;
        }
        s_handle(c, zmq_msg_data(&rid), zmq_msg_size(&rid), req);
        nader__link_request__free_unpacked(req, NULL);
next:
        zmq_msg_close(&rid);
        zmq_msg_close(&delim);
        zmq_msg_close(&body);
        continue;
out:
        zmq_msg_close(&rid);
        zmq_msg_close(&delim);
        zmq_msg_close(&body);
        return;
    }
}

/* -------------------------------------------------------- agents' side */

int coord_link_new(coord_t *c, coord_link_t **out, char *err, size_t errlen)
{
    coord_link_t *l = calloc(1, sizeof *l);
    int zero = 0;

    *out = NULL;
    if (!l) {
        snprintf(err, errlen, "link: out of memory");
        return -1;
    }
    l->req = zmq_socket(c->ctx, ZMQ_DEALER);
    l->sub = zmq_socket(c->ctx, ZMQ_SUB);
    if (!l->req || !l->sub ||
        zmq_setsockopt(l->req, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(l->sub, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(l->sub, ZMQ_SUBSCRIBE, "", 0) != 0 ||
        zmq_connect(l->req, c->link_ep) != 0 ||
        zmq_connect(l->sub, c->events_ep) != 0) {
        snprintf(err, errlen, "link: cannot connect: %s",
                 zmq_strerror(errno));
        coord_link_destroy(&l);
        return -1;
    }
    *out = l;
    return 0;
}

void coord_link_destroy(coord_link_t **lp)
{
    if (!lp || !*lp)
        return;
    if ((*lp)->req)
        zmq_close((*lp)->req);
    if ((*lp)->sub)
        zmq_close((*lp)->sub);
    free(*lp);
    *lp = NULL;
}

int coord_link_call(coord_link_t *l, const Nader__LinkRequest *req,
                    Nader__LinkReply **reply, int timeout_ms, char *err,
                    size_t errlen)
{
    size_t len = nader__link_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    zmq_pollitem_t it = {l->req, 0, ZMQ_POLLIN, 0};
    zmq_msg_t delim, body;
    int rc;

    *reply = NULL;
    if (!buf) {
        snprintf(err, errlen, "link: out of memory");
        return -1;
    }
    nader__link_request__pack(req, buf);
    rc = zmq_send(l->req, "", 0, ZMQ_SNDMORE) < 0 ||
         zmq_send(l->req, buf, len, 0) < 0;
    free(buf);
    if (rc) {
        snprintf(err, errlen, "link: cannot send: %s", zmq_strerror(errno));
        return -1;
    }
    rc = zmq_poll(&it, 1, timeout_ms);
    if (rc <= 0) {
        snprintf(err, errlen, "link: %s", rc == 0 ? "no reply in time"
                                                  : zmq_strerror(errno));
        return -1;
    }
    zmq_msg_init(&delim);
    zmq_msg_init(&body);
    if (zmq_msg_recv(&delim, l->req, 0) < 0 || !zmq_msg_more(&delim) ||
        zmq_msg_recv(&body, l->req, 0) < 0) {
        snprintf(err, errlen, "link: broken reply");
        rc = -1;
    } else {
        *reply = nader__link_reply__unpack(NULL, zmq_msg_size(&body),
                                           zmq_msg_data(&body));
        rc = *reply ? 0 : -1;
        if (rc)
            snprintf(err, errlen, "link: reply does not decode");
    }
    zmq_msg_close(&delim);
    zmq_msg_close(&body);
    return rc;
}

int coord_link_submit(coord_link_t *l, const Nader__SubmitRequest *req,
                      Nader__LinkReply **reply, int timeout_ms, char *err,
                      size_t errlen)
{
    Nader__LinkRequest lr = NADER__LINK_REQUEST__INIT;

    lr.body_case = NADER__LINK_REQUEST__BODY_SUBMIT;
    lr.submit = (Nader__SubmitRequest *)req;
    return coord_link_call(l, &lr, reply, timeout_ms, err, errlen);
}

int coord_link_next_result(coord_link_t *l, int timeout_ms,
                           Nader__ResultRecord **out)
{
    zmq_pollitem_t it = {l->sub, 0, ZMQ_POLLIN, 0};
    zmq_msg_t m;
    int rc = zmq_poll(&it, 1, timeout_ms);

    *out = NULL;
    if (rc < 0)
        return -1;
    if (rc == 0)
        return 1;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, l->sub, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }
    *out = nader__result_record__unpack(NULL, zmq_msg_size(&m),
                                        zmq_msg_data(&m));
    zmq_msg_close(&m);
    return *out ? 0 : -1;
}
