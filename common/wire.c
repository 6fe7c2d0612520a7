/*
 * wire.c - see wire.h.  Encoding allocates one buffer per message and
 * hands it to ZeroMQ with a free callback, so no copy is made between
 * protobuf-c and the socket.
 */
#include "wire.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zmq.h>

int wire_decode(const void *data, size_t len, size_t max_bytes,
                Nader__Envelope **out, char *err, size_t errlen)
{
    Nader__Envelope *env;

    *out = NULL;
    if (len > max_bytes) {
        snprintf(err, errlen, "message of %zu bytes is over the limit of "
                 "%zu", len, max_bytes);
        return WIRE_ETOOBIG;
    }
    env = nader__envelope__unpack(NULL, len, data);
    if (!env) {
        snprintf(err, errlen, "malformed message (%zu bytes): not a "
                 "nader envelope", len);
        return WIRE_EMALFORMED;
    }
    if (!env->has_version || env->version != WIRE_PROTOCOL_VERSION) {
        snprintf(err, errlen, "protocol version %u, this side speaks %d",
                 env->has_version ? env->version : 0,
                 WIRE_PROTOCOL_VERSION);
        nader__envelope__free_unpacked(env, NULL);
        return WIRE_EVERSION;
    }
    if (env->body_case == NADER__ENVELOPE__BODY__NOT_SET) {
        snprintf(err, errlen, "message without a body (%zu bytes)", len);
        nader__envelope__free_unpacked(env, NULL);
        return WIRE_EEMPTY;
    }
    *out = env;
    return WIRE_OK;
}

void wire_free(Nader__Envelope **env)
{
    if (env && *env) {
        nader__envelope__free_unpacked(*env, NULL);
        *env = NULL;
    }
}

static void s_free_buffer(void *data, void *hint)
{
    (void)hint;
    free(data);
}

int wire_encode(Nader__Envelope *env, uint8_t **buf, size_t *len)
{
    env->has_version = 1;
    env->version = WIRE_PROTOCOL_VERSION;
    *len = nader__envelope__get_packed_size(env);
    *buf = malloc(*len ? *len : 1);
    if (!*buf)
        return WIRE_ENOMEM;
    nader__envelope__pack(env, *buf);
    return WIRE_OK;
}

size_t wire_size(const Nader__Envelope *env)
{
    return nader__envelope__get_packed_size(env);
}

int wire_send(void *sock, const void *routing_id, size_t id_len,
              Nader__Envelope *env, int flags)
{
    zmq_msg_t msg;
    size_t n;
    uint8_t *buf;

    env->has_version = 1;
    env->version = WIRE_PROTOCOL_VERSION;
    n = nader__envelope__get_packed_size(env);
    buf = malloc(n ? n : 1);
    if (!buf)
        return WIRE_ENOMEM;
    nader__envelope__pack(env, buf);
    if (zmq_msg_init_data(&msg, buf, n, s_free_buffer, NULL) != 0) {
        free(buf);
        return WIRE_ENOMEM;
    }
    if (routing_id &&
        zmq_send(sock, routing_id, id_len, flags | ZMQ_SNDMORE) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        errno = e;
        return WIRE_ESEND;
    }
    if (zmq_msg_send(&msg, sock, flags) < 0) {
        int e = errno;
        zmq_msg_close(&msg);
        errno = e;
        return WIRE_ESEND;
    }
    return WIRE_OK;
}

const char *wire_body_name(int body_case)
{
    switch (body_case) {
    case NADER__ENVELOPE__BODY_HELLO: return "hello";
    case NADER__ENVELOPE__BODY_WELCOME: return "welcome";
    case NADER__ENVELOPE__BODY_HEARTBEAT: return "heartbeat";
    case NADER__ENVELOPE__BODY_LEASE: return "lease";
    case NADER__ENVELOPE__BODY_PROGRESS: return "progress";
    case NADER__ENVELOPE__BODY_CHECKPOINT: return "checkpoint";
    case NADER__ENVELOPE__BODY_RESULT: return "result";
    case NADER__ENVELOPE__BODY_RESULT_ACK: return "result_ack";
    case NADER__ENVELOPE__BODY_CANCEL: return "cancel";
    case NADER__ENVELOPE__BODY_REJECT: return "reject";
    case NADER__ENVELOPE__BODY_GOODBYE: return "goodbye";
    default: return "none";
    }
}

uint64_t wire_now_ms(void)
{
    return wire_now_us() / 1000;
}

uint64_t wire_now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t wire_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}
