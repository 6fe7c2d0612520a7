/*
 * store.h - the coordinator's state in one LMDB environment.
 *
 * Everything the coordinator knows lives here, as protobuf-encoded
 * records (proto/nader.proto) in named tables:
 *
 *   table         key                   record
 *   meta          "schema", "settings", StoreMeta, SettingsRecord,
 *                 "counts", "seq.TABLE"  CountsRecord, uint64 sequences
 *   designs       design hash (text)    DesignRecord
 *   jobs          job id                JobRecord
 *   active        job id                (empty): jobs not yet finished
 *   results       job id                ResultRecord, one per job
 *   checkpoints   job id                CheckpointRecord, the latest
 *   experiences   id                    ExperienceRecord
 *   inspirations  id                    InspirationRecord
 *   llm           id                    LlmExchangeRecord
 *
 * Numeric keys are 8-byte big-endian, so tables iterate in id order.
 *
 * Writers and readers.  One thread (the coordinator's poll loop) writes;
 * any thread may read, each with its own read transaction (the
 * environment is opened with MDB_NOTLS).  A write transaction is made
 * durable by store_commit() (fsync) before anything it holds is
 * acknowledged.  The map grows by doubling when it is 80% full or after
 * a write ran out of room (MDB_MAP_FULL), up to the configured maximum;
 * growing waits for open read transactions to end.
 *
 * Errors.  Every function returns STORE_OK (0), STORE_NOTFOUND (1) for a
 * missing key, or a negative STORE_E* code; the message (what, which
 * table and key, and LMDB's reason) is in store_txn_error(t), or in err
 * for store_open/store_begin/store_commit.  A failed write leaves the
 * transaction unusable: abort it; nothing of it reaches the file.
 *
 * Versioning.  meta["schema"] holds the schema that wrote the file.  A
 * store of an older schema is migrated when opened for writing; a newer
 * one is refused with a message saying so.  Records only ever gain
 * optional fields (see proto/nader.proto), so older records decode.
 *
 * Ownership: store_open returns a store owned by the caller (store_close
 * frees it); store_begin returns a transaction owned by the caller, ended
 * by store_commit or store_abort (which set the pointer to NULL).
 * Records returned by *_get are owned by the caller and freed with their
 * protobuf-c free_unpacked function (e.g. nader__job_record__free_unpacked
 * (r, NULL)); pointers from store_get_raw are valid until the transaction
 * ends.
 */
#ifndef NADER_STORE_H
#define NADER_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nader.pb-c.h"

/* The schema this build writes and reads (see Versioning above). */
#define STORE_SCHEMA 1

enum {
    STORE_OK = 0,
    STORE_NOTFOUND = 1,
    STORE_EIO = -1,        /* LMDB or the file system failed */
    STORE_EFULL = -2,      /* the map is at its maximum, or the disk is */
    STORE_ECORRUPT = -3,   /* a record does not decode */
    STORE_ENOMEM = -4,
    STORE_ESCHEMA = -5,    /* written by a newer nader, or not a store */
    STORE_EREADONLY = -6   /* a write in a read-only store */
};

typedef enum store_table {
    STORE_META,
    STORE_DESIGNS,
    STORE_JOBS,
    STORE_ACTIVE,
    STORE_RESULTS,
    STORE_CHECKPOINTS,
    STORE_EXPERIENCES,
    STORE_INSPIRATIONS,
    STORE_LLM,
    STORE_TABLE_COUNT
} store_table_t;

typedef struct store store_t;
typedef struct store_txn store_txn_t;

typedef struct store_options {
    int64_t map_size;        /* initial map size, bytes (0: 256 MiB) */
    int64_t map_size_max;    /* growth limit (0: 64 GiB) */
    bool read_only;          /* open for reading only (tools) */
} store_options_t;

/* The table's name ("jobs"). */
const char *store_table_name(store_table_t t);

/*
 * Open (creating when needed, unless read_only) the store in folder dir.
 * Checks the schema, migrating an older one.  Returns STORE_OK and sets
 * *out, or an error with err set (e.g. "store nader-state: written by a
 * newer nader (schema 3; this one reads up to 1)").
 */
int store_open(const char *dir, const store_options_t *opt, store_t **out,
               char *err, size_t errlen);
void store_close(store_t **s);

const char *store_path(const store_t *s);
int64_t store_map_size(store_t *s);   /* current map size in bytes */
int64_t store_used_bytes(store_t *s); /* pages in use times page size */

/*
 * Begin a transaction: write (only one thread may write) or read.
 * Returns STORE_OK and sets *out, or an error with err set.
 */
int store_begin(store_t *s, bool write, store_txn_t **out, char *err,
                size_t errlen);

/* Commit and free *t (durable on return), or explain in err. */
int store_commit(store_txn_t **t, char *err, size_t errlen);

/* Abort and free *t; a NULL *t is fine. */
void store_abort(store_txn_t **t);

/* The message of the last failure in t. */
const char *store_txn_error(const store_txn_t *t);

/* ------------------------------------------------------------ raw access */

/* Big-endian 8-byte key for an id, and back. */
void store_key_u64(uint64_t id, uint8_t key[8]);
uint64_t store_key_to_u64(const void *key);

int store_put_raw(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const void *val, size_t vlen);
int store_get_raw(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const void **val, size_t *vlen);
int store_del(store_txn_t *t, store_table_t tab, const void *key,
              size_t klen);   /* deleting a missing key is STORE_OK */

/* Encode and store a protobuf record; decode one (owned by the caller). */
int store_put_msg(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const ProtobufCMessage *m);
int store_get_msg(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **out);

/* The next id of a table's sequence (1, 2, ...), kept in meta. */
int store_next_id(store_txn_t *t, store_table_t tab, uint64_t *id);

/* Number of entries in a table. */
int store_count(store_txn_t *t, store_table_t tab, uint64_t *n);

/*
 * Visit entries in key order from key `from` (NULL: the first).  fn
 * returns 0 to go on; any other value stops the scan and is returned.
 */
typedef int (*store_visit_fn)(void *ctx, const void *key, size_t klen,
                              const void *val, size_t vlen);
int store_scan(store_txn_t *t, store_table_t tab, const void *from,
               size_t flen, store_visit_fn fn, void *ctx);

/* As store_scan over a table of numeric keys from id `from`, decoding
 * each record with desc; fn gets a record it must not keep. */
typedef int (*store_visit_msg_fn)(void *ctx, uint64_t id,
                                  const ProtobufCMessage *m);
int store_scan_msg(store_txn_t *t, store_table_t tab, uint64_t from,
                   const ProtobufCMessageDescriptor *desc,
                   store_visit_msg_fn fn, void *ctx);

/* ---------------------------------------------------------------- typed */

/* designs[hash] */
int store_design_put(store_txn_t *t, const Nader__DesignRecord *d);
int store_design_get(store_txn_t *t, const char *hash,
                     Nader__DesignRecord **out);

/* jobs[id]; put also keeps the active table in step with j->state. */
int store_job_put(store_txn_t *t, const Nader__JobRecord *j);
int store_job_get(store_txn_t *t, uint64_t id, Nader__JobRecord **out);

/* results[job] */
int store_result_put(store_txn_t *t, const Nader__ResultRecord *r);
int store_result_get(store_txn_t *t, uint64_t job,
                     Nader__ResultRecord **out);

/* checkpoints[job] */
int store_checkpoint_put(store_txn_t *t, const Nader__CheckpointRecord *c);
int store_checkpoint_get(store_txn_t *t, uint64_t job,
                         Nader__CheckpointRecord **out);
int store_checkpoint_del(store_txn_t *t, uint64_t job);

/* experiences, inspirations, llm: *_add assigns the next id when the
 * record's id is 0 (writing it back into the record) and stores it. */
int store_experience_add(store_txn_t *t, Nader__ExperienceRecord *e);
int store_experience_get(store_txn_t *t, uint64_t id,
                         Nader__ExperienceRecord **out);
int store_inspiration_add(store_txn_t *t, Nader__InspirationRecord *r);
int store_inspiration_get(store_txn_t *t, uint64_t id,
                          Nader__InspirationRecord **out);
int store_llm_add(store_txn_t *t, Nader__LlmExchangeRecord *r);
int store_llm_get(store_txn_t *t, uint64_t id,
                  Nader__LlmExchangeRecord **out);

/* meta["settings"], meta["counts"] (all zero when absent), and
 * meta["schema"]. */
int store_settings_get(store_txn_t *t, Nader__SettingsRecord **out);
int store_settings_put(store_txn_t *t, const Nader__SettingsRecord *s);
int store_counts_get(store_txn_t *t, Nader__CountsRecord **out);
int store_counts_put(store_txn_t *t, const Nader__CountsRecord *c);
int store_meta_get(store_txn_t *t, Nader__StoreMeta **out);

#endif
