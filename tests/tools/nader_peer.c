/*
 * nader_peer.c - a misbehaving peer for the runtime's integration tests.
 *
 *   nader_peer garbage HOST PORT N [SEED]
 *       raw TCP: N random bytes (from SEED, default the pid), close
 *   nader_peer frame EP KIND [--key F --server-key F]
 *       one ZeroMQ message of KIND, then print what comes back (or
 *       "no answer") within a second.  KIND is one of:
 *         random      a frame of random bytes
 *         oversized   a frame of 1.5 MiB (over a 1 MiB limit in the test)
 *         huge        a frame of 3 MiB (over twice that: the connection
 *                     is cut by ZeroMQ itself)
 *         lease       a well-formed Lease (only coordinators send those)
 *         result      a Result before any Hello
 *         version     a Hello of protocol version 99
 *         frames      a two-frame message
 *         badhello    a Hello without a worker name
 *         hello       a proper Hello (to check a key is accepted)
 *   nader_peer status EP JSON [--key F --server-key F]
 *       one request on a status socket; print the reply.
 *
 * Exit status 0 when it could do what was asked (an answer or none is
 * the caller's to judge from the output).  Part of the tests, never of
 * the product.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <zmq.h>

#include "keys.h"
#include "nader.pb-c.h"
#include "wire.h"

static int s_garbage(const char *host, int port, int n, unsigned seed0)
{
    struct sockaddr_in a = {0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned seed = seed0;

    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, host, &a.sin_addr);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        perror("connect");
        return 1;
    }
    /* The coordinator may hang up part-way (ZeroMQ gives up on a bad
     * greeting): that ends the garbage, it is not a failure, and with
     * MSG_NOSIGNAL it is EPIPE rather than a SIGPIPE that kills us. */
    int sent = 0;
    for (; sent < n; sent++) {
        uint8_t b = (uint8_t)rand_r(&seed);
        if (send(fd, &b, 1, MSG_NOSIGNAL) != 1)
            break;
    }
    usleep(200000);
    close(fd);
    printf("sent %d of %d random bytes (seed %u)%s\n", sent, n, seed0,
           sent < n ? "; the coordinator hung up" : "");
    return 0;
}

static void *s_socket(void *ctx, int type, const char *ep, const char *key,
                      const char *server_key)
{
    void *s = zmq_socket(ctx, type);
    int zero = 0;
    char pub[41], sec[41], srv[41], err[256];

    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (server_key) {
        if (keys_load_public(server_key, srv, err, sizeof err) < 0) {
            fprintf(stderr, "%s\n", err);
            exit(2);
        }
        if (key) {
            if (keys_load_pair(key, pub, sec, err, sizeof err) < 0) {
                fprintf(stderr, "%s\n", err);
                exit(2);
            }
        } else {
            zmq_curve_keypair(pub, sec);
        }
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv, 41);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 41);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 41);
    }
    if (zmq_connect(s, ep) != 0) {
        fprintf(stderr, "connect %s: %s\n", ep, zmq_strerror(errno));
        exit(2);
    }
    return s;
}

static void s_send_env(void *s, Nader__Envelope *env, uint32_t version)
{
    uint8_t *buf;
    size_t len;

    wire_encode(env, &buf, &len);
    if (version != WIRE_PROTOCOL_VERSION) {
        env->version = version;
        free(buf);
        len = nader__envelope__get_packed_size(env);
        buf = malloc(len);
        nader__envelope__pack(env, buf);
    }
    zmq_send(s, buf, len, 0);
    free(buf);
}

static void s_print_answer(void *s)
{
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};
    char err[256];

    if (zmq_poll(&it, 1, 1000) <= 0) {
        printf("no answer\n");
        return;
    }
    for (;;) {
        zmq_msg_t m;
        Nader__Envelope *env;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, s, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            return;
        }
        if (wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), 1 << 24, &env,
                        err, sizeof err) == WIRE_OK) {
            printf("answer %s", wire_body_name(env->body_case));
            if (env->body_case == NADER__ENVELOPE__BODY_REJECT)
                printf(" %d %s", env->reject->code,
                       env->reject->reason ? env->reject->reason : "");
            printf("\n");
            wire_free(&env);
        } else {
            printf("answer undecodable: %s\n", err);
        }
        zmq_msg_close(&m);
    }
}

static int s_frame(void *ctx, const char *ep, const char *kind,
                   const char *key, const char *server_key)
{
    void *s = s_socket(ctx, ZMQ_DEALER, ep, key, server_key);
    Nader__Envelope env = NADER__ENVELOPE__INIT;
    Nader__Hello h = NADER__HELLO__INIT;
    Nader__Lease l = NADER__LEASE__INIT;
    Nader__JobSpec spec = NADER__JOB_SPEC__INIT;
    Nader__Result r = NADER__RESULT__INIT;
    uint8_t *big;
    size_t n;

    h.worker = (char *)"bad-peer";
    h.host = (char *)"nowhere";
    if (strcmp(kind, "random") == 0) {
        uint8_t b[300];
        unsigned seed = 12345;
        for (size_t i = 0; i < sizeof b; i++)
            b[i] = (uint8_t)rand_r(&seed);
        zmq_send(s, b, sizeof b, 0);
    } else if (strcmp(kind, "oversized") == 0 ||
               strcmp(kind, "huge") == 0) {
        n = kind[0] == 'h' ? 3u << 20 : 3u << 19;
        big = calloc(1, n);
        zmq_send(s, big, n, 0);
        free(big);
    } else if (strcmp(kind, "lease") == 0) {
        spec.has_id = 1;
        spec.id = 1;
        l.job = &spec;
        env.body_case = NADER__ENVELOPE__BODY_LEASE;
        env.lease = &l;
        s_send_env(s, &env, WIRE_PROTOCOL_VERSION);
    } else if (strcmp(kind, "result") == 0) {
        r.has_job = r.has_attempt = 1;
        r.job = 1;
        r.attempt = 1;
        env.body_case = NADER__ENVELOPE__BODY_RESULT;
        env.result = &r;
        s_send_env(s, &env, WIRE_PROTOCOL_VERSION);
    } else if (strcmp(kind, "version") == 0) {
        env.body_case = NADER__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        s_send_env(s, &env, 99);
    } else if (strcmp(kind, "frames") == 0) {
        zmq_send(s, "one", 3, ZMQ_SNDMORE);
        zmq_send(s, "two", 3, 0);
    } else if (strcmp(kind, "badhello") == 0) {
        h.worker = (char *)"";
        env.body_case = NADER__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        s_send_env(s, &env, WIRE_PROTOCOL_VERSION);
    } else if (strcmp(kind, "hello") == 0) {
        env.body_case = NADER__ENVELOPE__BODY_HELLO;
        env.hello = &h;
        s_send_env(s, &env, WIRE_PROTOCOL_VERSION);
    } else {
        fprintf(stderr, "unknown kind %s\n", kind);
        return 2;
    }
    s_print_answer(s);
    zmq_close(s);
    return 0;
}

static int s_status(void *ctx, const char *ep, const char *json,
                    const char *key, const char *server_key)
{
    void *s = s_socket(ctx, ZMQ_DEALER, ep, key, server_key);
    zmq_pollitem_t it = {s, 0, ZMQ_POLLIN, 0};

    zmq_send(s, "", 0, ZMQ_SNDMORE);
    zmq_send(s, json, strlen(json), 0);
    if (zmq_poll(&it, 1, 2000) <= 0) {
        printf("no answer\n");
    } else {
        char buf[65536];
        int n;
        zmq_recv(s, buf, sizeof buf, 0);
        n = zmq_recv(s, buf, sizeof buf - 1, 0);
        buf[n < 0 ? 0 : (n > (int)sizeof buf - 1 ? (int)sizeof buf - 1
                                                 : n)] = 0;
        printf("%s\n", buf);
    }
    zmq_close(s);
    return 0;
}

int main(int argc, char **argv)
{
    const char *key = NULL, *server_key = NULL;
    void *ctx;
    int rc;

    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--key") == 0)
            key = argv[i + 1];
        else if (strcmp(argv[i], "--server-key") == 0)
            server_key = argv[i + 1];
    }
    if (argc >= 5 && strcmp(argv[1], "garbage") == 0)
        return s_garbage(argv[2], atoi(argv[3]), atoi(argv[4]),
                         argc >= 6 ? (unsigned)strtoul(argv[5], NULL, 10)
                                   : (unsigned)getpid());
    ctx = zmq_ctx_new();
    if (argc >= 4 && strcmp(argv[1], "frame") == 0)
        rc = s_frame(ctx, argv[2], argv[3], key, server_key);
    else if (argc >= 4 && strcmp(argv[1], "status") == 0)
        rc = s_status(ctx, argv[2], argv[3], key, server_key);
    else {
        fprintf(stderr, "usage: nader_peer garbage HOST PORT N | frame EP "
                "KIND | status EP JSON [--key F --server-key F]\n");
        rc = 2;
    }
    zmq_ctx_term(ctx);
    return rc;
}
