/*
 * cmd_results.c - `nader results [--json] [--tag T] [--epochs]`: the
 * results a coordinator has kept, one line each (or JSON).  With
 * --store DIR it reads a store directly, read-only, with no daemon (a
 * running coordinator may keep writing meanwhile); --audit then checks
 * the store's bookkeeping: one result per finished job, none for the
 * others, and the counts record agreeing with the records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"
#include "records.h"
#include "store.h"

typedef struct s_opts {
    int json, epochs, audit;
    const char *tag, *store;
    long long limit;
} s_opts_t;

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: nader results [--json] [--tag T] [--limit N] "
            "[--epochs] [options]\n"
            "       nader results --store DIR [--json] [--audit]\n\n"
            "  --json          one JSON object (results, and more: false)\n"
            "  --tag T         only results of jobs submitted with tag T\n"
            "  --limit N       at most N results (default: all)\n"
            "  --epochs        include per-epoch figures (JSON)\n"
            "  --store DIR     read the store in DIR directly, read-only\n"
            "  --audit         with --store: check one result per finished "
            "job\n%s", cli_client_usage());
}

static void s_line(json_t *r)
{
    const char *st = json_string_value(json_object_get(r, "status"));
    char acc[64] = "", test[32] = "-";

    if (json_is_true(json_object_get(r, "load_test")))
        snprintf(acc, sizeof acc, "LOAD TEST (no training)");
    else if (st && strcmp(st, "ok") == 0) {
        double t = json_number_value(json_object_get(r, "final_test_acc"));
        snprintf(acc, sizeof acc, "%.2f", json_number_value(
                                              json_object_get(r,
                                              "final_valid_acc")));
        if (t >= 0)
            snprintf(test, sizeof test, "%.2f", t);
    }
    printf("%-7lld %-12.12s %-14s %-6lld %-6lld %-9s %-8s %-6s %-8.1f %s "
           "(%s)%s%s\n",
           (long long)json_integer_value(json_object_get(r, "job")),
           json_string_value(json_object_get(r, "design")),
           json_string_value(json_object_get(r, "dataset")),
           (long long)json_integer_value(json_object_get(r, "seed")),
           (long long)json_integer_value(json_object_get(r, "epochs")),
           st ? st : "?", acc, test,
           json_number_value(json_object_get(r, "seconds")),
           json_string_value(json_object_get(r, "worker")),
           json_string_value(json_object_get(r, "device")),
           json_object_get(r, "reason") && strcmp(st, "ok") ? ": " : "",
           json_object_get(r, "reason") && strcmp(st, "ok")
               ? json_string_value(json_object_get(r, "reason")) : "");
}

/* Print a JSON value and release it. */
static void s_print(json_t *v)
{
    json_dumpf(v, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(v);
}

static void s_header(void)
{
    printf("%-7s %-12s %-14s %-6s %-6s %-9s %-8s %-6s %-8s %s\n", "JOB",
           "DESIGN", "DATASET", "SEED", "EPOCHS", "STATUS", "VALID%",
           "TEST%", "SECONDS", "WORKER (DEVICE)");
}

/* ------------------------------------------------------- from a store */

typedef struct s_scan {
    const s_opts_t *o;
    json_t *all;
    long long n;
    uint64_t by_state[6], results, load_test, orphans, missing;
    store_txn_t *t;
} s_scan_t;

static int s_visit_result(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_scan_t *s = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)m;
    json_t *j;

    (void)id;
    if (s->o->tag && (!rr->tag || strcmp(rr->tag, s->o->tag)))
        return 0;
    if (s->o->limit && s->n >= s->o->limit)
        return 1;
    j = records_result_json(rr, s->o->epochs);
    if (s->o->json)
        json_array_append(s->all, j);
    else
        s_line(j);
    json_decref(j);
    s->n++;
    return 0;
}

static int s_audit_job(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_scan_t *s = ctx;
    const Nader__JobRecord *j = (const Nader__JobRecord *)m;
    Nader__ResultRecord *rr = NULL;
    int rc;
    bool finished = j->state == NADER__JOB_STATE__JOB_DONE ||
                    j->state == NADER__JOB_STATE__JOB_FAILED;

    if ((unsigned)j->state < 6)
        s->by_state[j->state]++;
    rc = store_result_get(s->t, id, &rr);
    if (rc < 0)
        return rc;
    if (finished && rc == STORE_NOTFOUND)
        s->missing++;
    if (!finished && rc == STORE_OK)
        s->orphans++;
    if (rr)
        nader__result_record__free_unpacked(rr, NULL);
    return 0;
}

static int s_audit_result(void *ctx, uint64_t id, const ProtobufCMessage *m)
{
    s_scan_t *s = ctx;
    const Nader__ResultRecord *rr = (const Nader__ResultRecord *)m;
    Nader__JobRecord *j = NULL;

    s->results++;
    if (rr->result && rr->result->load_test)
        s->load_test++;
    if (store_job_get(s->t, id, &j) == STORE_NOTFOUND)
        s->orphans++;
    if (j)
        nader__job_record__free_unpacked(j, NULL);
    return 0;
}

static int s_from_store(const s_opts_t *o)
{
    store_options_t so = {.read_only = true};
    store_t *st = NULL;
    s_scan_t s = {.o = o, .all = json_array()};
    Nader__CountsRecord *k = NULL;
    char err[1024];
    int rc = 1;

    if (store_open(o->store, &so, &st, err, sizeof err) < 0 ||
        store_begin(st, false, &s.t, err, sizeof err) < 0) {
        fprintf(stderr, "nader results: %s\n", err);
        goto out;
    }
    if (o->audit) {
        const char *names[6] = {"queued", "leased", "running", "done",
                                "failed", "cancelled"};
        json_t *by = json_object(), *counts;
        bool ok;
        if (store_scan_msg(s.t, STORE_JOBS, 0,
                           &nader__job_record__descriptor, s_audit_job,
                           &s) < 0 ||
            store_scan_msg(s.t, STORE_RESULTS, 0,
                           &nader__result_record__descriptor,
                           s_audit_result, &s) < 0 ||
            store_counts_get(s.t, &k) < 0) {
            fprintf(stderr, "nader results: %s\n", store_txn_error(s.t));
            json_decref(by);
            goto out;
        }
        for (int i = 0; i < 6; i++)
            json_object_set_new(by, names[i], json_integer(
                                                  (json_int_t)s.by_state[i]));
        counts = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "queued",
                           (json_int_t)k->queued, "leased",
                           (json_int_t)k->leased, "running",
                           (json_int_t)k->running, "done",
                           (json_int_t)k->done, "failed",
                           (json_int_t)k->failed, "cancelled",
                           (json_int_t)k->cancelled, "results",
                           (json_int_t)k->results);
        ok = !s.missing && !s.orphans && k->results == s.results &&
             k->done == s.by_state[3] && k->failed == s.by_state[4] &&
             k->queued == s.by_state[0] && k->cancelled == s.by_state[5] &&
             k->leased + k->running == s.by_state[1] + s.by_state[2];
        s_print(json_pack("{s:b,s:o,s:I,s:I,s:I,s:I,s:o}", "consistent", ok,
                          "jobs_by_state", by, "results",
                          (json_int_t)s.results, "load_test_results",
                          (json_int_t)s.load_test, "finished_without_result",
                          (json_int_t)s.missing, "results_without_job",
                          (json_int_t)s.orphans, "counts", counts));
        printf("\n");
        rc = ok ? 0 : 1;
        goto out;
    }
    if (!o->json)
        s_header();
    if (store_scan_msg(s.t, STORE_RESULTS, 0,
                       &nader__result_record__descriptor, s_visit_result,
                       &s) < 0) {
        fprintf(stderr, "nader results: %s\n", store_txn_error(s.t));
        goto out;
    }
    if (o->json) {
        s_print(json_pack("{s:b,s:O}", "ok", 1, "results", s.all));
        printf("\n");
    }
    rc = 0;
out:
    if (k)
        nader__counts_record__free_unpacked(k, NULL);
    json_decref(s.all);
    store_abort(&s.t);
    store_close(&st);
    return rc;
}

/* ------------------------------------------------- from a coordinator */

static int s_from_socket(const s_opts_t *o, const cli_client_opts_t *co)
{
    cli_client_t *c = NULL;
    json_t *all = json_array(), *reply = NULL, *v;
    long long after = 0, n = 0;
    char err[1024];
    int rc = 1;
    size_t i;

    if (cli_client_open(co, &c, err, sizeof err) < 0) {
        fprintf(stderr, "nader results: %s\n", err);
        json_decref(all);
        return 2;
    }
    if (!o->json)
        s_header();
    for (;;) {
        json_t *req = json_pack("{s:s,s:I,s:I,s:b}", "op", "results",
                                "after", (json_int_t)after, "limit",
                                (json_int_t)1000, "epochs", o->epochs);
        if (o->tag)
            json_object_set_new(req, "tag", json_string(o->tag));
        rc = cli_client_call(c, req, &reply, err, sizeof err);
        json_decref(req);
        if (rc < 0 || !json_is_true(json_object_get(reply, "ok"))) {
            fprintf(stderr, "nader results: %s\n", rc < 0 ? err
                    : json_string_value(json_object_get(reply, "error")));
            rc = 1;
            goto out;
        }
        json_array_foreach(json_object_get(reply, "results"), i, v) {
            if (o->limit && n >= o->limit)
                break;
            if (o->json)
                json_array_append(all, v);
            else
                s_line(v);
            n++;
        }
        after = json_integer_value(json_object_get(reply, "last"));
        if (!json_is_true(json_object_get(reply, "more")) ||
            (o->limit && n >= o->limit))
            break;
        json_decref(reply);
        reply = NULL;
    }
    if (o->json) {
        s_print(json_pack("{s:b,s:O}", "ok", 1, "results", all));
        printf("\n");
    }
    rc = 0;
out:
    json_decref(reply);
    json_decref(all);
    cli_client_close(&c);
    return rc;
}

int cmd_results(int argc, char **argv)
{
    cli_client_opts_t co;
    s_opts_t o = {0};

    cli_client_opts_default(&co);
    for (int i = 1; i < argc; i++) {
        int k = cli_client_opt(&co, argc, argv, &i);
        const char *a = argv[i];
        if (k < 0)
            goto usage;
        if (k)
            continue;
        if (strcmp(a, "--help") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(a, "--json") == 0) {
            o.json = 1;
        } else if (strcmp(a, "--epochs") == 0) {
            o.epochs = 1;
        } else if (strcmp(a, "--audit") == 0) {
            o.audit = 1;
        } else if (strcmp(a, "--tag") == 0 && i + 1 < argc) {
            o.tag = argv[++i];
        } else if (strcmp(a, "--store") == 0 && i + 1 < argc) {
            o.store = argv[++i];
        } else if (strcmp(a, "--limit") == 0 && i + 1 < argc) {
            o.limit = atoll(argv[++i]);
        } else {
            goto usage;
        }
    }
    if (o.audit && !o.store) {
        fprintf(stderr, "nader results: --audit needs --store DIR\n");
        return 2;
    }
    return o.store ? s_from_store(&o) : s_from_socket(&o, &co);
usage:
    s_usage(stderr);
    return 2;
}
