/*
 * records.c - JSON views of the store's records, shared by the status
 * socket (status.c) and `nader results --store` (which reads the store
 * directly), so both print a result the same way.
 */
#include "records.h"

#include <stdio.h>
#include <string.h>

const char *records_state_name(Nader__JobState s)
{
    static const char *names[] = {"queued", "leased", "running",
                                  "done",   "failed", "cancelled"};

    return (unsigned)s < 6 ? names[s] : "?";
}

const char *records_status_name(Nader__ResultStatus s)
{
    static const char *names[] = {"ok", "failed", "diverged", "cancelled"};

    return (unsigned)s < 4 ? names[s] : "?";
}

static json_t *s_epoch_json(const Nader__Epoch *e)
{
    return json_pack("{s:i,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}", "epoch",
                     e->epoch, "lr", e->lr, "train_loss", e->train_loss,
                     "train_acc", e->train_acc, "valid_loss", e->valid_loss,
                     "valid_acc", e->valid_acc, "test_acc", e->test_acc,
                     "images_per_s", e->images_per_s, "seconds",
                     e->seconds);
}

json_t *records_result_json(const Nader__ResultRecord *rr, bool epochs)
{
    const Nader__Result *r = rr->result;
    json_t *o = json_pack(
        "{s:I,s:s,s:s,s:I,s:i,s:s?}", "job", (json_int_t)rr->job,
        "design", rr->design_hash ? rr->design_hash : "", "dataset",
        rr->dataset ? rr->dataset : "", "seed", (json_int_t)rr->seed,
        "epochs", rr->epochs, "tag", rr->tag);

    if (!o || !r)
        return o;
    json_object_set_new(o, "status",
                        json_string(records_status_name(r->status)));
    json_object_set_new(o, "attempt", json_integer(r->attempt));
    json_object_set_new(o, "load_test", json_boolean(r->load_test));
    if (r->reason && r->reason[0])
        json_object_set_new(o, "reason", json_string(r->reason));
    json_object_set_new(o, "worker", json_string(r->worker ? r->worker
                                                           : ""));
    json_object_set_new(o, "host", json_string(r->host ? r->host : ""));
    json_object_set_new(o, "device", json_string(r->device ? r->device
                                                           : ""));
    if (!r->load_test) {
        json_object_set_new(o, "width", json_integer(r->width));
        json_object_set_new(o, "params", json_integer(r->params));
        json_object_set_new(o, "macs", json_integer(r->macs));
        json_object_set_new(o, "epochs_done", json_integer(
                                                  (json_int_t)r->n_epochs));
        json_object_set_new(o, "best_valid_acc",
                            json_real(r->best_valid_acc));
        json_object_set_new(o, "final_valid_acc",
                            json_real(r->final_valid_acc));
        json_object_set_new(o, "best_test_acc", json_real(r->best_test_acc));
        json_object_set_new(o, "final_test_acc",
                            json_real(r->final_test_acc));
        json_object_set_new(o, "images_per_s", json_real(r->images_per_s));
        json_object_set_new(o, "seconds", json_real(r->seconds));
        json_object_set_new(o, "peak_rss_bytes",
                            json_integer(r->peak_rss_bytes));
        if (r->resumed_from_epoch >= 0)
            json_object_set_new(o, "resumed_from_epoch",
                                json_integer(r->resumed_from_epoch));
    }
    json_object_set_new(o, "stored_ms",
                        json_integer((json_int_t)(rr->stored_us / 1000)));
    if (epochs) {
        json_t *a = json_array();
        for (size_t i = 0; i < r->n_epochs; i++)
            json_array_append_new(a, s_epoch_json(r->epochs[i]));
        json_object_set_new(o, "per_epoch", a);
    }
    return o;
}

json_t *records_job_json(const Nader__JobRecord *j)
{
    const Nader__JobSpec *sp = j->spec;
    json_t *o = json_pack(
        "{s:I,s:s,s:i,s:i,s:i,s:i}", "job", (json_int_t)j->id, "state",
        records_state_name(j->state), "priority", j->priority, "attempts",
        j->attempts, "failures", j->failures, "max_attempts",
        j->max_attempts);

    if (!o)
        return NULL;
    if (sp) {
        json_object_set_new(o, "design", json_string(sp->design_hash
                                                     ? sp->design_hash : ""));
        json_object_set_new(o, "dataset", json_string(sp->dataset));
        json_object_set_new(o, "skeleton", json_string(sp->skeleton));
        json_object_set_new(o, "seed", json_integer((json_int_t)sp->seed));
        json_object_set_new(o, "epochs", json_integer(sp->epochs));
        json_object_set_new(o, "width", json_integer(sp->width));
    }
    if (j->worker)
        json_object_set_new(o, "worker", json_string(j->worker));
    if (j->device)
        json_object_set_new(o, "device", json_string(j->device));
    if (j->epoch >= 0)
        json_object_set_new(o, "epoch", json_integer(j->epoch));
    if (j->reason)
        json_object_set_new(o, "reason", json_string(j->reason));
    if (j->tag && j->tag[0])
        json_object_set_new(o, "tag", json_string(j->tag));
    if (j->checkpoint_epoch >= 0)
        json_object_set_new(o, "checkpoint_epoch",
                            json_integer(j->checkpoint_epoch));
    json_object_set_new(o, "params", json_integer(j->params));
    json_object_set_new(o, "created_ms",
                        json_integer((json_int_t)(j->created_us / 1000)));
    return o;
}

