/*
 * cmd_status.c - `nader status [--watch [SECS]] [--json]`: what a
 * coordinator is doing: workers (host, device, job, epoch, images/s,
 * last seen), the queue, jobs by state, results and throughput.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client.h"
#include "commands.h"

static double s_num(json_t *o, const char *k)
{
    return json_number_value(json_object_get(o, k));
}

static long long s_int(json_t *o, const char *k)
{
    return (long long)json_integer_value(json_object_get(o, k));
}

static const char *s_str(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static void s_duration(double s, char *buf, size_t len)
{
    if (s < 120)
        snprintf(buf, len, "%.0fs", s);
    else if (s < 7200)
        snprintf(buf, len, "%.0fm%02.0fs", s / 60, s - 60 * (int)(s / 60));
    else
        snprintf(buf, len, "%.0fh%02.0fm", s / 3600,
                 (s - 3600 * (int)(s / 3600)) / 60);
}

static void s_print(json_t *st)
{
    json_t *co = json_object_get(st, "coordinator");
    json_t *jobs = json_object_get(st, "jobs");
    json_t *res = json_object_get(st, "results");
    json_t *q = json_object_get(st, "queue");
    json_t *ws = json_object_get(st, "workers");
    json_t *by = json_object_get(q, "by_dataset"), *v, *w;
    const char *key;
    char up[32];
    size_t i;

    s_duration(s_num(co, "uptime_s"), up, sizeof up);
    printf("coordinator  pid %lld, up %s, store %s, %s%s, CURVE %s\n",
           s_int(co, "pid"), up, s_str(co, "store"),
           json_is_true(json_object_get(co, "paused")) ? "PAUSED"
                                                       : "dispatching",
           s_int(co, "max_running") ? ", max running set" : "",
           json_is_true(json_object_get(co, "curve")) ? "on" : "off");
    printf("jobs         queued %lld, leased %lld, running %lld, done %lld, "
           "failed %lld, cancelled %lld\n", s_int(jobs, "queued"),
           s_int(jobs, "leased"), s_int(jobs, "running"),
           s_int(jobs, "done"), s_int(jobs, "failed"),
           s_int(jobs, "cancelled"));
    printf("results      %lld (%lld from load tests); last 60 s: %lld "
           "(%.2f/s), last 10 s: %lld\n", s_int(res, "total"),
           s_int(res, "load_test"), s_int(res, "last_60s"),
           s_int(res, "last_60s") / 60.0, s_int(res, "last_10s"));
    printf("queue        %lld", s_int(q, "length"));
    json_object_foreach(by, key, v)
        printf("%s %s %lld", key == json_object_iter_key(
                                 json_object_iter(by)) ? ":" : ",",
               key, (long long)json_integer_value(v));
    printf("\nworkers      %zu\n", json_array_size(ws));
    if (!json_array_size(ws))
        return;
    printf("  %-4s %-22s %-14s %-8s %-8s %-7s %-9s %-7s %s\n", "NO", "NAME",
           "HOST", "DEVICE", "JOB", "EPOCH", "IMG/S", "VALID%", "SEEN");
    json_array_foreach(ws, i, w) {
        json_t *devs = json_object_get(w, "devices"), *d;
        size_t k;
        json_array_foreach(devs, k, d) {
            char job[24] = "-", ep[24] = "-", ips[24] = "-", acc[24] = "-";
            if (json_object_get(d, "job")) {
                snprintf(job, sizeof job, "%lld", s_int(d, "job"));
                if (s_int(d, "epoch") >= 0) {
                    snprintf(ep, sizeof ep, "%lld/%lld",
                             s_int(d, "epoch") + 1, s_int(d, "epochs"));
                    snprintf(ips, sizeof ips, "%.1f",
                             s_num(d, "images_per_s"));
                    snprintf(acc, sizeof acc, "%.2f", s_num(d, "valid_acc"));
                }
            }
            printf("  %-4s %-22.22s %-14.14s %-8s %-8s %-7s %-9s %-7s "
                   "%.1fs%s\n", k ? "" : (snprintf(up, sizeof up, "w%lld",
                                                   s_int(w, "no")), up),
                   k ? "" : s_str(w, "name"), k ? "" : s_str(w, "host"),
                   s_str(d, "device"), job, ep, ips, acc,
                   s_num(w, "last_seen_s"),
                   json_is_true(json_object_get(w, "load_test"))
                       ? "  LOAD TEST" : "");
        }
    }
}

int cmd_status(int argc, char **argv)
{
    cli_client_opts_t o;
    cli_client_t *c = NULL;
    json_t *req, *reply = NULL;
    char err[1024];
    double watch = 0;
    int json = 0, rc = 1;

    cli_client_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int k = cli_client_opt(&o, argc, argv, &i);
        if (k < 0) {
            fprintf(stderr, "nader status: %s needs a value\n", argv[i]);
            return 2;
        }
        if (k)
            continue;
        if (strcmp(argv[i], "--json") == 0) {
            json = 1;
        } else if (strcmp(argv[i], "--watch") == 0) {
            watch = 2;
            if (i + 1 < argc && argv[i + 1][0] != '-')
                watch = atof(argv[++i]);
            if (watch <= 0)
                watch = 2;
        } else if (strcmp(argv[i], "--help") == 0) {
            printf("usage: nader status [--watch [SECS]] [--json] "
                   "[options]\n\n%s", cli_client_usage());
            return 0;
        } else {
            fprintf(stderr, "nader status: unknown argument '%s'\n",
                    argv[i]);
            return 2;
        }
    }
    if (cli_client_open(&o, &c, err, sizeof err) < 0) {
        fprintf(stderr, "nader status: %s\n", err);
        return 2;
    }
    req = json_pack("{s:s}", "op", "status");
    for (;;) {
        if (cli_client_call(c, req, &reply, err, sizeof err) < 0) {
            fprintf(stderr, "nader status: %s\n", err);
            rc = 1;
            break;
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
            fprintf(stderr, "nader status: %s\n",
                    s_str(reply, "error"));
            rc = 1;
        } else if (json) {
            json_dumpf(reply, stdout, JSON_INDENT(2));
            printf("\n");
            rc = 0;
        } else {
            if (watch)
                printf("\033[H\033[2J%s\n", cli_client_endpoint(c));
            s_print(reply);
            rc = 0;
        }
        fflush(stdout);
        json_decref(reply);
        reply = NULL;
        if (!watch)
            break;
        usleep((useconds_t)(watch * 1e6));
    }
    json_decref(req);
    cli_client_close(&c);
    return rc;
}
