/*
 * wire.h - framing, limits and versions of nader's messages.
 *
 * Every message between the coordinator and a worker is one ZeroMQ frame
 * holding a protobuf-encoded nader.Envelope (proto/nader.proto): the
 * sender's protocol version, then exactly one body.  On the coordinator's
 * ROUTER the frame is preceded by the peer's routing id.  These helpers
 * are the one place that encodes and decodes envelopes, so the size limit
 * and the version check cannot be forgotten by a caller.
 *
 * Ownership: wire_decode returns an envelope owned by the caller, freed
 * with wire_free().  Encoded buffers handed to ZeroMQ are freed by it.
 */
#ifndef NADER_WIRE_H
#define NADER_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "nader.pb-c.h"

/* The protocol spoken; a peer with another version is refused. */
#define WIRE_PROTOCOL_VERSION 1

/* The software version sent in Hello and shown by `nader version`. */
#define WIRE_SOFTWARE "nader 0.1.0"

enum {
    WIRE_OK = 0,
    WIRE_ETOOBIG = -1,      /* over the size limit */
    WIRE_EMALFORMED = -2,   /* not a protobuf Envelope */
    WIRE_EVERSION = -3,     /* another protocol version */
    WIRE_EEMPTY = -4,       /* no body */
    WIRE_ESEND = -5,        /* ZeroMQ refused the send (errno kept) */
    WIRE_ENOMEM = -6
};

/*
 * Decode one frame.  Returns WIRE_OK and sets *out (free with
 * wire_free), or a negative WIRE_E* code with a message in err saying
 * what was wrong (size, decoding, version or body); *out is then NULL.
 */
int wire_decode(const void *data, size_t len, size_t max_bytes,
                Nader__Envelope **out, char *err, size_t errlen);

void wire_free(Nader__Envelope **env);

/*
 * Encode env (its version is set here) and send it on sock.  When
 * routing_id is not NULL it is sent first as its own frame (ROUTER).
 * flags are ZeroMQ send flags (ZMQ_DONTWAIT).  Returns WIRE_OK, or
 * WIRE_ESEND with errno from ZeroMQ (EAGAIN, EHOSTUNREACH...), or
 * WIRE_ENOMEM.
 */
int wire_send(void *sock, const void *routing_id, size_t id_len,
              Nader__Envelope *env, int flags);

/*
 * Encode env (its version is set here) into a malloc'd buffer owned by
 * the caller.  Returns WIRE_OK, or WIRE_ENOMEM.
 */
int wire_encode(Nader__Envelope *env, uint8_t **buf, size_t *len);

/* The encoded size of env, for checking it against a limit. */
size_t wire_size(const Nader__Envelope *env);

/* The body's name ("hello", "result", ...), "none" for none. */
const char *wire_body_name(int body_case);

/* Wall-clock time in milliseconds and microseconds since the epoch, and
 * a monotonic clock in microseconds for deadlines. */
uint64_t wire_now_ms(void);
uint64_t wire_now_us(void);
uint64_t wire_mono_us(void);

#endif
