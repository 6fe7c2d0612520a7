/*
 * client.c - see client.h.  A DEALER socket sends an empty delimiter and
 * the JSON frame, as the coordinator's ROUTER expects, and waits with a
 * timeout, so a coordinator that is down gives a clear error instead of
 * a hang.
 */
#include "client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <zmq.h>

#include "keys.h"

struct cli_client {
    void *ctx, *sock;
    char endpoint[4200];
    int timeout_ms;
};

void cli_client_opts_default(cli_client_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->state_dir = "nader-state";
    o->timeout_ms = 10000;
    o->key = getenv("NADER_KEY");
    o->server_key = getenv("NADER_SERVER_KEY");
    o->connect = getenv("NADER_CONNECT");
}

int cli_client_opt(cli_client_opts_t *o, int argc, char **argv, int *i)
{
    const char *a = argv[*i];
    const char **dst = NULL;

    if (strcmp(a, "--connect") == 0)
        dst = &o->connect;
    else if (strcmp(a, "--state") == 0)
        dst = &o->state_dir;
    else if (strcmp(a, "--key") == 0)
        dst = &o->key;
    else if (strcmp(a, "--server-key") == 0)
        dst = &o->server_key;
    else if (strcmp(a, "--timeout") == 0) {
        if (*i + 1 >= argc)
            return -1;
        o->timeout_ms = (int)(atof(argv[++*i]) * 1000);
        return 1;
    } else
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *dst = argv[++*i];
    return 1;
}

const char *cli_client_usage(void)
{
    return "  --connect EP        coordinator status/admin endpoint\n"
           "  --state DIR         use the admin socket DIR/admin.sock "
           "(default nader-state)\n"
           "  --key FILE          CURVE key pair of this client "
           "(nader keygen)\n"
           "  --server-key FILE   the coordinator's public key (CURVE)\n"
           "  --timeout SECS      how long to wait for an answer "
           "(default 10)\n";
}

static void s_endpoint(const cli_client_opts_t *o, char *out, size_t len)
{
    char path[4096];
    struct stat st;

    if (o->connect && o->connect[0]) {
        snprintf(out, len, "%s", o->connect);
        return;
    }
    snprintf(path, sizeof path, "%s/admin.sock", o->state_dir);
    if (stat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        snprintf(out, len, "ipc://%s", path);
        return;
    }
    snprintf(out, len, "tcp://127.0.0.1:5556");
}

int cli_client_open(const cli_client_opts_t *o, cli_client_t **out,
                    char *err, size_t errlen)
{
    cli_client_t *c = calloc(1, sizeof *c);
    char pub[41], sec[41], srv[41];
    int zero = 0;

    *out = NULL;
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s_endpoint(o, c->endpoint, sizeof c->endpoint);
    c->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 10000;
    c->ctx = zmq_ctx_new();
    c->sock = c->ctx ? zmq_socket(c->ctx, ZMQ_DEALER) : NULL;
    if (!c->sock) {
        snprintf(err, errlen, "cannot start ZeroMQ: %s",
                 zmq_strerror(errno));
        goto fail;
    }
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    if (o->server_key && o->server_key[0]) {
        if (keys_load_public(o->server_key, srv, err, errlen) < 0)
            goto fail;
        if (o->key && o->key[0]) {
            if (keys_load_pair(o->key, pub, sec, err, errlen) < 0)
                goto fail;
        } else if (zmq_curve_keypair(pub, sec) != 0) {
            snprintf(err, errlen, "cannot make a CURVE key pair: %s",
                     zmq_strerror(errno));
            goto fail;
        }
        if (zmq_setsockopt(c->sock, ZMQ_CURVE_SERVERKEY, srv, 41) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_PUBLICKEY, pub, 41) != 0 ||
            zmq_setsockopt(c->sock, ZMQ_CURVE_SECRETKEY, sec, 41) != 0) {
            snprintf(err, errlen, "cannot set CURVE keys: %s",
                     zmq_strerror(errno));
            goto fail;
        }
        memset(sec, 0, sizeof sec);
    }
    if (zmq_connect(c->sock, c->endpoint) != 0) {
        snprintf(err, errlen, "%s: cannot connect: %s", c->endpoint,
                 zmq_strerror(errno));
        goto fail;
    }
    *out = c;
    return 0;
fail:
    cli_client_close(&c);
    return -1;
}

void cli_client_close(cli_client_t **cp)
{
    if (!cp || !*cp)
        return;
    if ((*cp)->sock)
        zmq_close((*cp)->sock);
    if ((*cp)->ctx)
        zmq_ctx_term((*cp)->ctx);
    free(*cp);
    *cp = NULL;
}

const char *cli_client_endpoint(const cli_client_t *c)
{
    return c->endpoint;
}

int cli_client_call(cli_client_t *c, json_t *req, json_t **reply,
                    char *err, size_t errlen)
{
    char *text = json_dumps(req, JSON_COMPACT);
    zmq_pollitem_t it = {c->sock, 0, ZMQ_POLLIN, 0};
    zmq_msg_t m;
    json_error_t jerr;
    int rc;

    *reply = NULL;
    if (!text) {
        snprintf(err, errlen, "cannot encode the request");
        return -1;
    }
    rc = zmq_send(c->sock, "", 0, ZMQ_SNDMORE) < 0 ||
         zmq_send(c->sock, text, strlen(text), 0) < 0;
    free(text);
    if (rc) {
        snprintf(err, errlen, "%s: cannot send: %s", c->endpoint,
                 zmq_strerror(errno));
        return -1;
    }
    for (;;) {
        int more;
        rc = zmq_poll(&it, 1, c->timeout_ms);
        if (rc <= 0) {
            snprintf(err, errlen, "%s: no answer within %.1f s (is the "
                     "coordinator running, and is this its endpoint?)",
                     c->endpoint, c->timeout_ms / 1000.0);
            return -1;
        }
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, 0) < 0) {
            zmq_msg_close(&m);
            snprintf(err, errlen, "%s: %s", c->endpoint,
                     zmq_strerror(errno));
            return -1;
        }
        more = zmq_msg_more(&m);
        if (more || zmq_msg_size(&m) == 0) {
            zmq_msg_close(&m);
            continue;
        }
        *reply = json_loadb(zmq_msg_data(&m), zmq_msg_size(&m), 0, &jerr);
        zmq_msg_close(&m);
        if (!*reply) {
            snprintf(err, errlen, "%s: answer is not JSON: %s", c->endpoint,
                     jerr.text);
            return -1;
        }
        return 0;
    }
}
