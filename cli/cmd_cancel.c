/*
 * cmd_cancel.c - `nader cancel JOB...`: cancel queued or running jobs on
 * a running coordinator (a running one's trainer is killed).  Needs the
 * admin socket or an admin CURVE key.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"

int cmd_cancel(int argc, char **argv)
{
    cli_client_opts_t o;
    cli_client_t *c = NULL;
    json_t *ids = json_array(), *req, *reply = NULL, *v;
    char err[1024];
    const char *reason = "cancelled with nader cancel";
    int rc;
    size_t i;

    cli_client_opts_default(&o);
    for (int k = 1; k < argc; k++) {
        int r = cli_client_opt(&o, argc, argv, &k);
        char *end;
        long long id;
        if (r < 0)
            goto usage;
        if (r)
            continue;
        if (strcmp(argv[k], "--help") == 0) {
            printf("usage: nader cancel JOB... [--reason TEXT] "
                   "[options]\n\n%s", cli_client_usage());
            json_decref(ids);
            return 0;
        }
        if (strcmp(argv[k], "--reason") == 0 && k + 1 < argc) {
            reason = argv[++k];
            continue;
        }
        id = strtoll(argv[k], &end, 10);
        if (*end || id <= 0)
            goto usage;
        json_array_append_new(ids, json_integer(id));
    }
    if (!json_array_size(ids))
        goto usage;
    if (cli_client_open(&o, &c, err, sizeof err) < 0) {
        fprintf(stderr, "nader cancel: %s\n", err);
        json_decref(ids);
        return 2;
    }
    req = json_pack("{s:s,s:o,s:s}", "op", "cancel", "jobs", ids, "reason",
                    reason);
    rc = cli_client_call(c, req, &reply, err, sizeof err);
    json_decref(req);
    if (rc < 0 || !json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "nader cancel: %s\n", rc < 0 ? err
                : json_string_value(json_object_get(reply, "error")));
        rc = 1;
    } else {
        const char *e = json_string_value(json_object_get(reply, "errors"));
        if (json_array_size(json_object_get(reply, "cancelled"))) {
            printf("cancelled:");
            json_array_foreach(json_object_get(reply, "cancelled"), i, v)
                printf(" %lld", (long long)json_integer_value(v));
            printf("\n");
        }
        if (e && e[0])
            fprintf(stderr, "nader cancel: %s\n", e);
        rc = e && e[0] ? 1 : 0;
    }
    json_decref(reply);
    cli_client_close(&c);
    return rc;
usage:
    json_decref(ids);
    fprintf(stderr, "usage: nader cancel JOB... (nader cancel --help)\n");
    return 2;
}
