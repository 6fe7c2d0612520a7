/*
 * idmap.c - see idmap.h.  Byte-string keys are hashed to 64 bits and the
 * string kept beside the slot, so both kinds share one probing scheme;
 * a slot's `bytes` pointer tells which kind it holds.
 */
#include "idmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct s_slot {
    uint64_t key;
    uint8_t *bytes;     /* NULL: a u64 key; else 1 length byte + key */
    void *value;        /* NULL: empty slot */
} s_slot_t;

struct idmap {
    s_slot_t *slots;
    size_t cap;         /* power of two */
    size_t n;
};

static uint64_t s_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t s_hash_bytes(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 1469598103934665603ULL;

    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

idmap_t *idmap_new(void)
{
    idmap_t *m = calloc(1, sizeof *m);

    if (!m)
        return NULL;
    m->cap = 64;
    m->slots = calloc(m->cap, sizeof *m->slots);
    if (!m->slots) {
        free(m);
        return NULL;
    }
    return m;
}

void idmap_destroy(idmap_t **mp)
{
    if (!mp || !*mp)
        return;
    for (size_t i = 0; i < (*mp)->cap; i++)
        free((*mp)->slots[i].bytes);
    free((*mp)->slots);
    free(*mp);
    *mp = NULL;
}

static bool s_match(const s_slot_t *s, uint64_t key, const uint8_t *bytes,
                    size_t len)
{
    if (!s->value || s->key != key)
        return false;
    if (!bytes)
        return s->bytes == NULL;
    return s->bytes && s->bytes[0] == len &&
           memcmp(s->bytes + 1, bytes, len) == 0;
}

static size_t s_find(const idmap_t *m, uint64_t key, const uint8_t *bytes,
                     size_t len)
{
    size_t mask = m->cap - 1, i = s_mix(key) & mask;

    while (m->slots[i].value && !s_match(&m->slots[i], key, bytes, len))
        i = (i + 1) & mask;
    return i;
}

static int s_grow(idmap_t *m)
{
    s_slot_t *old = m->slots;
    size_t oldcap = m->cap;

    m->slots = calloc(oldcap * 2, sizeof *m->slots);
    if (!m->slots) {
        m->slots = old;
        return -1;
    }
    m->cap = oldcap * 2;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].value)
            continue;
        size_t j = s_mix(old[i].key) & (m->cap - 1);
        while (m->slots[j].value)
            j = (j + 1) & (m->cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
    return 0;
}

static int s_put(idmap_t *m, uint64_t key, const uint8_t *bytes,
                 size_t len, void *value)
{
    size_t i;

    if (!value || len > 255)
        return -1;
    if ((m->n + 1) * 4 > m->cap * 3 && s_grow(m) < 0)
        return -1;
    i = s_find(m, key, bytes, len);
    if (!m->slots[i].value) {
        if (bytes) {
            m->slots[i].bytes = malloc(len + 1);
            if (!m->slots[i].bytes)
                return -1;
            m->slots[i].bytes[0] = (uint8_t)len;
            memcpy(m->slots[i].bytes + 1, bytes, len);
        }
        m->slots[i].key = key;
        m->n++;
    }
    m->slots[i].value = value;
    return 0;
}

static void *s_del(idmap_t *m, uint64_t key, const uint8_t *bytes,
                   size_t len)
{
    size_t mask = m->cap - 1, i = s_find(m, key, bytes, len), j;
    void *value = m->slots[i].value;

    if (!value)
        return NULL;
    free(m->slots[i].bytes);
    m->slots[i] = (s_slot_t){0};
    m->n--;
    /* Shift back the entries of the probe run that follows. */
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!m->slots[j].value)
            break;
        home = s_mix(m->slots[j].key) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            m->slots[j] = (s_slot_t){0};
            i = j;
        }
    }
    return value;
}

int idmap_put(idmap_t *m, uint64_t key, void *value)
{
    return s_put(m, key, NULL, 0, value);
}

void *idmap_get(const idmap_t *m, uint64_t key)
{
    return m->slots[s_find(m, key, NULL, 0)].value;
}

void *idmap_del(idmap_t *m, uint64_t key)
{
    return s_del(m, key, NULL, 0);
}

int idmap_put_bytes(idmap_t *m, const void *key, size_t len, void *value)
{
    return s_put(m, s_hash_bytes(key, len), key, len, value);
}

void *idmap_get_bytes(const idmap_t *m, const void *key, size_t len)
{
    if (len > 255)
        return NULL;
    return m->slots[s_find(m, s_hash_bytes(key, len), key, len)].value;
}

void *idmap_del_bytes(idmap_t *m, const void *key, size_t len)
{
    if (len > 255)
        return NULL;
    return s_del(m, s_hash_bytes(key, len), key, len);
}

size_t idmap_count(const idmap_t *m)
{
    return m->n;
}

int idmap_each(const idmap_t *m, int (*fn)(void *ctx, void *value),
               void *ctx)
{
    for (size_t i = 0; i < m->cap; i++) {
        int rc;
        if (m->slots[i].value && (rc = fn(ctx, m->slots[i].value)))
            return rc;
    }
    return 0;
}
