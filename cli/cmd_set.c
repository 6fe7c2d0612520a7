/*
 * cmd_set.c - `nader set KEY VALUE`: change a live limit of a running
 * coordinator (jobs.paused, jobs.max_running, log.level).  The change is
 * stored, so it outlives a restart until set again.  Needs the admin
 * socket or an admin CURVE key.
 */
#include <stdio.h>
#include <string.h>

#include "client.h"
#include "commands.h"

int cmd_set(int argc, char **argv)
{
    cli_client_opts_t o;
    cli_client_t *c = NULL;
    json_t *req, *reply = NULL;
    const char *kv[2] = {NULL, NULL};
    char err[1024];
    int n = 0, rc;

    cli_client_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        int k = cli_client_opt(&o, argc, argv, &i);
        if (k < 0)
            goto usage;
        if (k)
            continue;
        if (strcmp(argv[i], "--help") == 0) {
            printf("usage: nader set KEY VALUE [options]\n\n"
                   "  jobs.paused true|false   stop or resume leasing\n"
                   "  jobs.max_running N       most jobs leased at once "
                   "(0: no limit)\n"
                   "  log.level LEVEL          debug, info, warn, error\n\n"
                   "%s", cli_client_usage());
            return 0;
        }
        if (n == 2)
            goto usage;
        kv[n++] = argv[i];
    }
    if (n != 2)
        goto usage;
    if (cli_client_open(&o, &c, err, sizeof err) < 0) {
        fprintf(stderr, "nader set: %s\n", err);
        return 2;
    }
    req = json_pack("{s:s,s:s,s:s}", "op", "set", "key", kv[0], "value",
                    kv[1]);
    rc = cli_client_call(c, req, &reply, err, sizeof err);
    json_decref(req);
    if (rc < 0) {
        fprintf(stderr, "nader set: %s\n", err);
        rc = 1;
    } else if (!json_is_true(json_object_get(reply, "ok"))) {
        fprintf(stderr, "nader set: %s\n",
                json_string_value(json_object_get(reply, "error")));
        rc = 1;
    } else {
        printf("%s = %s\n", kv[0], kv[1]);
        rc = 0;
    }
    json_decref(reply);
    cli_client_close(&c);
    return rc;
usage:
    fprintf(stderr, "usage: nader set KEY VALUE (nader set --help)\n");
    return 2;
}
