/*
 * zap.c - who may connect, and what happened to connections.
 *
 * The ZAP handler (ZeroMQ's authentication protocol, RFC 27) answers the
 * CURVE handshakes of both endpoints: on the worker endpoint (domain
 * "workers") a client key must be in security.worker_keys; on the status
 * endpoint (domain "status") any key may read, and a key listed in
 * security.admin_keys gets the user id "admin", which status.c requires
 * for changes.  Refusals are logged once per peer and key.
 *
 * The socket monitors report what ZeroMQ does below the messages: a peer
 * that fails the handshake (random bytes, a wrong key, a broken greeting)
 * is logged with its address, which the monitor's accepted event gives us
 * through getpeername() on the connection's descriptor.
 */
#include "coord_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "log.h"

#define FD_NAMES 512

static struct {
    int fd;
    char addr[96];
} s_fd_names[FD_NAMES];

static const char *s_fd_name(int fd)
{
    for (int i = 0; i < FD_NAMES; i++)
        if (s_fd_names[i].fd == fd && s_fd_names[i].addr[0])
            return s_fd_names[i].addr;
    return NULL;
}

static void s_fd_remember(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN + 16];
    int port = 0, slot = fd % FD_NAMES;

    if (fd < 0)
        return;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        snprintf(host, sizeof host, "unknown address");
    } else {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        } else {
            snprintf(host, sizeof host, "local");
        }
    }
    s_fd_names[slot].fd = fd;
    if (port)
        snprintf(s_fd_names[slot].addr, sizeof s_fd_names[slot].addr,
                 "%s:%d", host, port);
    else
        snprintf(s_fd_names[slot].addr, sizeof s_fd_names[slot].addr, "%s",
                 host);
}

/* ---------------------------------------------------------------- ZAP */

static void s_zap_reply(coord_t *c, zmq_msg_t *version, zmq_msg_t *id,
                        const char *code, const char *text,
                        const char *user)
{
    zmq_msg_send(version, c->zap, ZMQ_SNDMORE);
    zmq_msg_send(id, c->zap, ZMQ_SNDMORE);
    zmq_send(c->zap, code, strlen(code), ZMQ_SNDMORE);
    zmq_send(c->zap, text, strlen(text), ZMQ_SNDMORE);
    zmq_send(c->zap, user, strlen(user), ZMQ_SNDMORE);
    zmq_send(c->zap, "", 0, 0);
}

void coord_zap_drain(coord_t *c)
{
    for (int k = 0; k < 256; k++) {
        zmq_msg_t f[8];
        int n = 0, more = 1;
        char domain[64] = "", address[64] = "", mech[16] = "";
        const uint8_t *key = NULL;
        char z85[41] = "";

        while (more && n < 8) {
            zmq_msg_init(&f[n]);
            if (zmq_msg_recv(&f[n], c->zap, n ? 0 : ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&f[n]);
                if (n == 0)
                    return;
                break;
            }
            more = zmq_msg_more(&f[n]);
            n++;
        }
        while (more) {
            zmq_msg_t x;
            zmq_msg_init(&x);
            if (zmq_msg_recv(&x, c->zap, 0) < 0)
                more = 0;
            else
                more = zmq_msg_more(&x);
            zmq_msg_close(&x);
        }
        if (n < 6) {
            for (int i = 0; i < n; i++)
                zmq_msg_close(&f[i]);
            continue;
        }
        snprintf(domain, sizeof domain, "%.*s", (int)zmq_msg_size(&f[2]),
                 (const char *)zmq_msg_data(&f[2]));
        snprintf(address, sizeof address, "%.*s",
                 (int)zmq_msg_size(&f[3]), (const char *)zmq_msg_data(&f[3]));
        snprintf(mech, sizeof mech, "%.*s", (int)zmq_msg_size(&f[5]),
                 (const char *)zmq_msg_data(&f[5]));
        if (strcmp(mech, "CURVE") == 0 && n >= 7 &&
            zmq_msg_size(&f[6]) == 32) {
            key = zmq_msg_data(&f[6]);
            zmq_z85_encode(z85, key, 32);
        }
        if (!key) {
            coord_peer_log(c, LOG_WARN, address, "zap-mech", 1,
                           "refused: %s mechanism on %s (CURVE required)",
                           mech, domain);
            s_zap_reply(c, &f[0], &f[1], "400", "CURVE required", "");
        } else if (strcmp(domain, "workers") == 0) {
            if (keys_list_allows(c->worker_keys, key)) {
                s_zap_reply(c, &f[0], &f[1], "200", "OK", "worker");
            } else {
                char kind[64];
                snprintf(kind, sizeof kind, "zap-key-%.16s", z85);
                coord_peer_log(c, LOG_WARN, address, kind, 1,
                               "refused: worker key %s is not in %s", z85,
                               c->cfg.security_worker_keys);
                s_zap_reply(c, &f[0], &f[1], "400", "key not allowed", "");
            }
        } else if (strcmp(domain, "status") == 0) {
            bool admin = keys_list_allows(c->admin_keys, key);
            s_zap_reply(c, &f[0], &f[1], "200", "OK",
                        admin ? "admin" : "reader");
        } else {
            coord_peer_log(c, LOG_WARN, address, "zap-domain", 1,
                           "refused: unknown ZAP domain '%s'", domain);
            s_zap_reply(c, &f[0], &f[1], "400", "unknown domain", "");
        }
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
    }
}

/* ------------------------------------------------------------ monitors */

static const char *s_protocol_error(uint32_t code)
{
    if (code == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH)
        return "security mechanism mismatch (CURVE on one side only)";
    if (code == ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC)
        return "CURVE handshake failed (wrong server key?)";
    if (code >= 0x10000000 && code < 0x11000000)
        return "not ZeroMQ, or a broken greeting or command";
    if (code >= 0x20000000 && code < 0x30000000)
        return "authentication failed";
    return "protocol error";
}

void coord_monitor_drain(coord_t *c, void *mon, const char *what)
{
    for (int k = 0; k < 256; k++) {
        zmq_msg_t ev, ep;
        uint16_t event;
        uint32_t value;
        const char *peer;

        zmq_msg_init(&ev);
        zmq_msg_init(&ep);
        if (zmq_msg_recv(&ev, mon, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            zmq_msg_close(&ep);
            return;
        }
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&ep, mon, 0);
        if (zmq_msg_size(&ev) < 6) {
            zmq_msg_close(&ev);
            zmq_msg_close(&ep);
            continue;
        }
        memcpy(&event, zmq_msg_data(&ev), 2);
        memcpy(&value, (const uint8_t *)zmq_msg_data(&ev) + 2, 4);
        switch (event) {
        case ZMQ_EVENT_ACCEPTED:
            s_fd_remember((int)value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            snprintf(c->last_handshake_fail, sizeof c->last_handshake_fail,
                     "%s (ZeroMQ code 0x%x)", s_protocol_error(value),
                     value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            snprintf(c->last_handshake_fail, sizeof c->last_handshake_fail,
                     "authentication failed (status %u)", value);
            break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
            snprintf(c->last_handshake_fail, sizeof c->last_handshake_fail,
                     "handshake failed (%s)", zmq_strerror((int)value));
            break;
        case ZMQ_EVENT_DISCONNECTED:
            peer = s_fd_name((int)value);
            if (c->last_handshake_fail[0]) {
                coord_peer_log(c, LOG_WARN, peer ? peer : "?",
                               "handshake", 1,
                               "connection to %s dropped: %s", what,
                               c->last_handshake_fail);
                c->last_handshake_fail[0] = 0;
            } else if (strcmp(what, "workers.endpoint") == 0) {
                coord_peer_log(c, LOG_INFO, peer ? peer : "?", "closed",
                               30,
                               "connection to %s closed", what);
            } else {
                log_debug("connection from %s to %s closed",
                          peer ? peer : "?", what);
            }
            break;
        default:
            break;
        }
        zmq_msg_close(&ev);
        zmq_msg_close(&ep);
    }
}
