/*
 * client.h - talking to a coordinator's status or admin socket, for the
 * `nader status|submit|results|set|cancel` subcommands.
 *
 * Where to connect, in order: --connect ENDPOINT; $NADER_CONNECT; the
 * admin socket ipc://STATE/admin.sock when it exists (STATE from --state,
 * default nader-state, the coordinator's default state_dir); else the
 * default status endpoint tcp://127.0.0.1:5556.  With --server-key (or
 * $NADER_SERVER_KEY) the connection uses CURVE, with --key (or
 * $NADER_KEY) as the client's key pair; without --key a throwaway pair
 * is made, which is enough for read-only requests.
 *
 * Ownership: cli_client_open returns a client freed by cli_client_close.
 * Replies are jansson objects owned by the caller (json_decref).
 */
#ifndef NADER_CLI_CLIENT_H
#define NADER_CLI_CLIENT_H

#include <stddef.h>

#include <jansson.h>

typedef struct cli_client_opts {
    const char *connect;
    const char *state_dir;
    const char *key;
    const char *server_key;
    int timeout_ms;
} cli_client_opts_t;

typedef struct cli_client cli_client_t;

void cli_client_opts_default(cli_client_opts_t *o);

/* If argv[*i] is one of the connection flags, consume it (and its value)
 * and return 1; return 0 when it is not; -1 when its value is missing. */
int cli_client_opt(cli_client_opts_t *o, int argc, char **argv, int *i);

/* The help lines of the connection flags. */
const char *cli_client_usage(void);

int cli_client_open(const cli_client_opts_t *o, cli_client_t **out,
                    char *err, size_t errlen);
void cli_client_close(cli_client_t **c);

/* The endpoint in use. */
const char *cli_client_endpoint(const cli_client_t *c);

/*
 * Send req and wait for the reply.  Returns 0 with *reply set (check its
 * "ok"), or -1 with err (no answer in time, bad reply).  req is not
 * consumed.
 */
int cli_client_call(cli_client_t *c, json_t *req, json_t **reply,
                    char *err, size_t errlen);

#endif
