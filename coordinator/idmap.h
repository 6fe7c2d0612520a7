/*
 * idmap.h - a hash map from 64-bit ids (job ids) or short byte strings
 * (ZeroMQ routing ids) to pointers.
 *
 * Open addressing with linear probing and backward-shift deletion, so
 * lookups stay a few cache lines even with 100,000 queued jobs.  Keys of
 * the byte-string kind are copied into the map; values are borrowed.
 *
 * Ownership: idmap_new returns a map owned by the caller, freed with
 * idmap_destroy(&m) (values are not freed).
 */
#ifndef NADER_IDMAP_H
#define NADER_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap idmap_t;

idmap_t *idmap_new(void);
void idmap_destroy(idmap_t **m);

/* u64 keys (0 is a valid key).  put replaces; returns 0 or -1 (memory). */
int idmap_put(idmap_t *m, uint64_t key, void *value);
void *idmap_get(const idmap_t *m, uint64_t key);
void *idmap_del(idmap_t *m, uint64_t key);   /* returns the old value */

/* Byte-string keys of at most 255 bytes, in their own key space. */
int idmap_put_bytes(idmap_t *m, const void *key, size_t len, void *value);
void *idmap_get_bytes(const idmap_t *m, const void *key, size_t len);
void *idmap_del_bytes(idmap_t *m, const void *key, size_t len);

size_t idmap_count(const idmap_t *m);

/* Visit every value; fn returns 0 to go on.  The map must not change
 * during the visit. */
int idmap_each(const idmap_t *m, int (*fn)(void *ctx, void *value),
               void *ctx);

#endif
