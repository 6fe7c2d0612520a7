/*
 * cmd_health.c - `nader health [--worker NAME] [--timeout SECS]`: a
 * health check for containers, Kubernetes probes and systemd watchdogs.
 *
 * Asks the coordinator's status socket for its status, with a short
 * timeout (3 s unless --timeout says otherwise).  With --worker, also
 * wants the named worker connected: a worker's container is healthy when
 * the coordinator sees it, which catches a worker that runs but cannot
 * reach (or is not allowed into) its coordinator.  Prints one line.
 * Exit 0 healthy; 1 the coordinator answered but the worker is not
 * there; 2 no answer (or bad usage).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.h"
#include "commands.h"

static void s_usage(FILE *f)
{
    fprintf(f, "usage: nader health [--worker NAME] [options]\n\n"
            "Exit 0 when the coordinator answers on its status socket "
            "(and, with\n--worker, NAME is connected to it); 1 when the "
            "worker is not connected;\n2 when the coordinator does not "
            "answer.\n\n"
            "  --worker NAME       also want this worker connected\n%s"
            "                      (nader health waits 3 s by default)\n",
            cli_client_usage());
}

int cmd_health(int argc, char **argv)
{
    cli_client_opts_t o;
    cli_client_t *c = NULL;
    const char *worker = NULL;
    json_t *req, *reply = NULL, *w;
    char err[1024];
    int rc = 2;
    size_t i;

    cli_client_opts_default(&o);
    o.timeout_ms = 3000;
    for (int k = 1; k < argc; k++) {
        int got = cli_client_opt(&o, argc, argv, &k);
        if (got < 0) {
            fprintf(stderr, "nader health: %s needs a value\n", argv[k]);
            return 2;
        }
        if (got)
            continue;
        if (strcmp(argv[k], "--worker") == 0 && k + 1 < argc) {
            worker = argv[++k];
        } else if (strcmp(argv[k], "--help") == 0 ||
                   strcmp(argv[k], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "nader health: unknown argument '%s'\n",
                    argv[k]);
            return 2;
        }
    }
    if (cli_client_open(&o, &c, err, sizeof err) < 0) {
        printf("unhealthy: %s\n", err);
        return 2;
    }
    req = json_pack("{s:s}", "op", "status");
    if (cli_client_call(c, req, &reply, err, sizeof err) < 0 ||
        !json_is_true(json_object_get(reply, "ok"))) {
        printf("unhealthy: coordinator at %s: %s\n", cli_client_endpoint(c),
               reply ? json_string_value(json_object_get(reply, "error"))
                     : err);
        goto out;
    }
    if (!worker) {
        printf("healthy: coordinator at %s answers\n",
               cli_client_endpoint(c));
        rc = 0;
        goto out;
    }
    rc = 1;
    json_array_foreach(json_object_get(reply, "workers"), i, w) {
        const char *name = json_string_value(json_object_get(w, "name"));
        if (name && strcmp(name, worker) == 0)
            rc = 0;
    }
    printf("%s: worker %s is %sconnected to %s\n",
           rc ? "unhealthy" : "healthy", worker, rc ? "not " : "",
           cli_client_endpoint(c));

out:
    json_decref(req);
    json_decref(reply);
    cli_client_close(&c);
    return rc;
}
