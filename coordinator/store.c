/*
 * store.c - see store.h.
 *
 * Records are packed straight into LMDB's pages with MDB_RESERVE, so a
 * put costs one encode and no copy.  The map is grown only between write
 * transactions, under a writer-preferring rwlock that every transaction
 * holds for reading; that is LMDB's rule for mdb_env_set_mapsize (no
 * transaction of this process may be open) made safe for agent threads
 * that read while the poll loop writes.
 */
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <lmdb.h>

#define MIB (1024LL * 1024LL)

static const char *const s_names[STORE_TABLE_COUNT] = {
    "meta",   "designs",     "jobs",         "active", "results",
    "checkpoints", "experiences", "inspirations", "llm"};

struct store {
    MDB_env *env;
    MDB_dbi dbi[STORE_TABLE_COUNT];
    char *path;
    bool read_only;
    int64_t map_size, map_size_max;
    bool grow_pending;       /* a write hit MDB_MAP_FULL */
    pthread_rwlock_t lock;   /* held shared by transactions */
};

struct store_txn {
    store_t *s;
    MDB_txn *txn;
    bool write;
    bool failed;
    char err[384];
};

const char *store_table_name(store_table_t t)
{
    return (unsigned)t < STORE_TABLE_COUNT ? s_names[t] : "?";
}

void store_key_u64(uint64_t id, uint8_t key[8])
{
    for (int i = 7; i >= 0; i--) {
        key[i] = (uint8_t)(id & 0xff);
        id >>= 8;
    }
}

uint64_t store_key_to_u64(const void *key)
{
    const uint8_t *k = key;
    uint64_t id = 0;

    for (int i = 0; i < 8; i++)
        id = (id << 8) | k[i];
    return id;
}

static uint64_t s_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Map an LMDB code to a store code. */
static int s_code(int rc)
{
    switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT:
        return STORE_EFULL;
    case ENOMEM:
        return STORE_ENOMEM;
    case EACCES:
    case EROFS:
        return STORE_EREADONLY;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
        return STORE_ECORRUPT;
    default:
        return STORE_EIO;
    }
}

/* Record a failure in t; returns the store code. */
static int s_fail(store_txn_t *t, int rc, const char *what,
                  store_table_t tab, const void *key, size_t klen)
{
    char keytext[64] = "";

    if (key && klen == 8 && tab != STORE_META && tab != STORE_DESIGNS)
        snprintf(keytext, sizeof keytext, " %llu",
                 (unsigned long long)store_key_to_u64(key));
    else if (key)
        snprintf(keytext, sizeof keytext, " '%.*s'",
                 (int)(klen < 40 ? klen : 40), (const char *)key);
    if (rc == MDB_MAP_FULL) {
        t->s->grow_pending = true;
        snprintf(t->err, sizeof t->err,
                 "store %s: %s %s%s: the map is full at %lld MiB%s",
                 t->s->path, what, s_names[tab], keytext,
                 (long long)(t->s->map_size / MIB),
                 t->s->map_size >= t->s->map_size_max
                     ? " (store.map_size_max reached)"
                     : "; it grows before the next write");
    } else {
        snprintf(t->err, sizeof t->err, "store %s: %s %s%s: %s",
                 t->s->path, what, s_names[tab], keytext,
                 rc == ENOSPC ? "the disk is full" : mdb_strerror(rc));
    }
    t->failed = true;
    return s_code(rc);
}

/* ------------------------------------------------------------ open/close */

static int s_mkdir_private(const char *dir, char *err, size_t errlen)
{
    struct stat st;

    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "store %s: not a folder", dir);
            return STORE_EIO;
        }
        return STORE_OK;
    }
    if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
        snprintf(err, errlen, "store %s: cannot create the folder: %s", dir,
                 strerror(errno));
        return STORE_EIO;
    }
    return STORE_OK;
}

static int s_check_schema(store_t *s, char *err, size_t errlen);

int store_open(const char *dir, const store_options_t *opt, store_t **out,
               char *err, size_t errlen)
{
    store_t *s;
    MDB_txn *txn = NULL;
    pthread_rwlockattr_t attr;
    int rc;
    unsigned flags = MDB_NOTLS;

    *out = NULL;
    s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(dir))) {
        free(s);
        snprintf(err, errlen, "store %s: out of memory", dir);
        return STORE_ENOMEM;
    }
    s->read_only = opt && opt->read_only;
    s->map_size = opt && opt->map_size ? opt->map_size : 256 * MIB;
    s->map_size_max = opt && opt->map_size_max ? opt->map_size_max
                                               : 64 * 1024 * MIB;
    if (s->map_size_max < s->map_size)
        s->map_size_max = s->map_size;
    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(
        &attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&s->lock, &attr);
    pthread_rwlockattr_destroy(&attr);

    if (!s->read_only && (rc = s_mkdir_private(dir, err, errlen)) < 0)
        goto fail;
    if ((rc = mdb_env_create(&s->env)) != 0 ||
        (rc = mdb_env_set_maxdbs(s->env, STORE_TABLE_COUNT + 2)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, 126)) != 0 ||
        (rc = mdb_env_set_mapsize(s->env, (size_t)s->map_size)) != 0) {
        snprintf(err, errlen, "store %s: cannot set up LMDB: %s", dir,
                 mdb_strerror(rc));
        rc = s_code(rc);
        goto fail;
    }
    if (s->read_only)
        flags |= MDB_RDONLY;
    if ((rc = mdb_env_open(s->env, dir, flags, 0600)) != 0) {
        snprintf(err, errlen, "store %s: cannot open: %s", dir,
                 rc == ENOENT ? "no store there (data.mdb missing)"
                              : mdb_strerror(rc));
        rc = rc == ENOENT ? STORE_ESCHEMA : s_code(rc);
        goto fail;
    }
    /* The file may be bigger than asked for: adopt its size. */
    {
        MDB_envinfo info;
        mdb_env_info(s->env, &info);
        if ((int64_t)info.me_mapsize > s->map_size)
            s->map_size = (int64_t)info.me_mapsize;
        if (s->map_size_max < s->map_size)
            s->map_size_max = s->map_size;
    }
    if ((rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0,
                            &txn)) != 0) {
        snprintf(err, errlen, "store %s: cannot begin: %s", dir,
                 mdb_strerror(rc));
        rc = s_code(rc);
        goto fail;
    }
    for (int i = 0; i < STORE_TABLE_COUNT; i++) {
        rc = mdb_dbi_open(txn, s_names[i], s->read_only ? 0 : MDB_CREATE,
                          &s->dbi[i]);
        if (rc != 0) {
            snprintf(err, errlen, "store %s: table %s: %s", dir, s_names[i],
                     rc == MDB_NOTFOUND ? "missing (not a nader store?)"
                                        : mdb_strerror(rc));
            mdb_txn_abort(txn);
            rc = rc == MDB_NOTFOUND ? STORE_ESCHEMA : s_code(rc);
            goto fail;
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        snprintf(err, errlen, "store %s: cannot open tables: %s", dir,
                 mdb_strerror(rc));
        rc = s_code(rc);
        goto fail;
    }
    if ((rc = s_check_schema(s, err, errlen)) < 0)
        goto fail;
    *out = s;
    return STORE_OK;
fail:
    store_close(&s);
    return rc;
}

void store_close(store_t **sp)
{
    store_t *s;

    if (!sp || !*sp)
        return;
    s = *sp;
    if (s->env)
        mdb_env_close(s->env);
    pthread_rwlock_destroy(&s->lock);
    free(s->path);
    free(s);
    *sp = NULL;
}

const char *store_path(const store_t *s)
{
    return s->path;
}

int64_t store_map_size(store_t *s)
{
    return s->map_size;
}

int64_t store_used_bytes(store_t *s)
{
    MDB_envinfo info;
    MDB_stat st;

    mdb_env_info(s->env, &info);
    mdb_env_stat(s->env, &st);
    return (int64_t)(info.me_last_pgno + 1) * st.ms_psize;
}

/* ---------------------------------------------------------- transactions */

/* Grow the map when asked to or when 80% full.  Called by the writer
 * with no transaction of its own open. */
static int s_maybe_grow(store_t *s, char *err, size_t errlen)
{
    int64_t used = store_used_bytes(s), size = s->map_size;
    int rc;

    if (!s->grow_pending && used < size / 10 * 8)
        return STORE_OK;
    if (size >= s->map_size_max) {
        /* Nothing to grow: let the write try; it fails with MDB_MAP_FULL
         * if it really does not fit (a smaller one may). */
        s->grow_pending = false;
        return STORE_OK;
    }
    while (size < s->map_size_max && used >= size / 10 * 8)
        size *= 2;
    if (s->grow_pending && size == s->map_size)
        size *= 2;
    if (size > s->map_size_max)
        size = s->map_size_max;
    pthread_rwlock_wrlock(&s->lock);
    rc = mdb_env_set_mapsize(s->env, (size_t)size);
    pthread_rwlock_unlock(&s->lock);
    if (rc != 0) {
        snprintf(err, errlen, "store %s: cannot grow the map to %lld MiB: "
                 "%s", s->path, (long long)(size / MIB), mdb_strerror(rc));
        return s_code(rc);
    }
    s->map_size = size;
    s->grow_pending = false;
    return STORE_OK;
}

int store_begin(store_t *s, bool write, store_txn_t **out, char *err,
                size_t errlen)
{
    store_txn_t *t;
    int rc;

    *out = NULL;
    if (write && s->read_only) {
        snprintf(err, errlen, "store %s: opened read-only", s->path);
        return STORE_EREADONLY;
    }
    if (write && (rc = s_maybe_grow(s, err, errlen)) < 0)
        return rc;
    t = calloc(1, sizeof *t);
    if (!t) {
        snprintf(err, errlen, "store %s: out of memory", s->path);
        return STORE_ENOMEM;
    }
    t->s = s;
    t->write = write;
    pthread_rwlock_rdlock(&s->lock);
    rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    if (rc == MDB_MAP_RESIZED) {
        /* Another process grew the file: adopt its size and retry. */
        mdb_env_set_mapsize(s->env, 0);
        rc = mdb_txn_begin(s->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&s->lock);
        snprintf(err, errlen, "store %s: cannot begin a %s transaction: %s",
                 s->path, write ? "write" : "read", mdb_strerror(rc));
        free(t);
        return s_code(rc);
    }
    *out = t;
    return STORE_OK;
}

int store_commit(store_txn_t **tp, char *err, size_t errlen)
{
    store_txn_t *t = *tp;
    int rc;

    *tp = NULL;
    if (t->failed) {
        snprintf(err, errlen, "%s", t->err);
        mdb_txn_abort(t->txn);
        pthread_rwlock_unlock(&t->s->lock);
        free(t);
        return STORE_EIO;
    }
    rc = mdb_txn_commit(t->txn);
    pthread_rwlock_unlock(&t->s->lock);
    if (rc != 0) {
        if (rc == MDB_MAP_FULL)
            t->s->grow_pending = true;
        snprintf(err, errlen, "store %s: commit failed: %s; nothing of "
                 "it was written", t->s->path,
                 rc == ENOSPC ? "the disk is full" : mdb_strerror(rc));
        free(t);
        return s_code(rc);
    }
    free(t);
    return STORE_OK;
}

void store_abort(store_txn_t **tp)
{
    if (!tp || !*tp)
        return;
    mdb_txn_abort((*tp)->txn);
    pthread_rwlock_unlock(&(*tp)->s->lock);
    free(*tp);
    *tp = NULL;
}

const char *store_txn_error(const store_txn_t *t)
{
    return t->err;
}

/* ------------------------------------------------------------ raw access */

int store_put_raw(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const void *val, size_t vlen)
{
    MDB_val k = {klen, (void *)key}, v = {vlen, (void *)val};
    int rc;

    if (!t->write)
        return s_fail(t, EACCES, "put into", tab, key, klen);
    rc = mdb_put(t->txn, t->s->dbi[tab], &k, &v, 0);
    return rc ? s_fail(t, rc, "put into", tab, key, klen) : STORE_OK;
}

int store_get_raw(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const void **val, size_t *vlen)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc = mdb_get(t->txn, t->s->dbi[tab], &k, &v);

    if (rc == MDB_NOTFOUND)
        return STORE_NOTFOUND;
    if (rc)
        return s_fail(t, rc, "get from", tab, key, klen);
    *val = v.mv_data;
    *vlen = v.mv_size;
    return STORE_OK;
}

int store_del(store_txn_t *t, store_table_t tab, const void *key,
              size_t klen)
{
    MDB_val k = {klen, (void *)key};
    int rc;

    if (!t->write)
        return s_fail(t, EACCES, "delete from", tab, key, klen);
    rc = mdb_del(t->txn, t->s->dbi[tab], &k, NULL);
    if (rc == MDB_NOTFOUND)
        return STORE_OK;
    return rc ? s_fail(t, rc, "delete from", tab, key, klen) : STORE_OK;
}

int store_put_msg(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const ProtobufCMessage *m)
{
    MDB_val k = {klen, (void *)key}, v;
    int rc;

    if (!t->write)
        return s_fail(t, EACCES, "put into", tab, key, klen);
    v.mv_size = protobuf_c_message_get_packed_size(m);
    v.mv_data = NULL;
    rc = mdb_put(t->txn, t->s->dbi[tab], &k, &v, MDB_RESERVE);
    if (rc)
        return s_fail(t, rc, "put into", tab, key, klen);
    protobuf_c_message_pack(m, v.mv_data);
    return STORE_OK;
}

int store_get_msg(store_txn_t *t, store_table_t tab, const void *key,
                  size_t klen, const ProtobufCMessageDescriptor *desc,
                  ProtobufCMessage **out)
{
    const void *val = NULL;
    size_t vlen = 0;
    int rc;

    *out = NULL;
    rc = store_get_raw(t, tab, key, klen, &val, &vlen);
    if (rc != STORE_OK)
        return rc;
    *out = protobuf_c_message_unpack(desc, NULL, vlen, val);
    if (!*out) {
        s_fail(t, MDB_CORRUPTED, "decode", tab, key, klen);
        snprintf(t->err + strlen(t->err), sizeof t->err - strlen(t->err),
                 " (not a %s)", desc->name);
        return STORE_ECORRUPT;
    }
    return STORE_OK;
}

int store_next_id(store_txn_t *t, store_table_t tab, uint64_t *id)
{
    char key[32];
    const void *val;
    size_t vlen, klen;
    uint8_t buf[8];
    uint64_t next = 1;
    int rc;

    klen = (size_t)snprintf(key, sizeof key, "seq.%s", s_names[tab]);
    rc = store_get_raw(t, STORE_META, key, klen, &val, &vlen);
    if (rc < 0)
        return rc;
    if (rc == STORE_OK && vlen == 8)
        next = store_key_to_u64(val) + 1;
    store_key_u64(next, buf);
    rc = store_put_raw(t, STORE_META, key, klen, buf, 8);
    if (rc < 0)
        return rc;
    *id = next;
    return STORE_OK;
}

int store_count(store_txn_t *t, store_table_t tab, uint64_t *n)
{
    MDB_stat st;
    int rc = mdb_stat(t->txn, t->s->dbi[tab], &st);

    if (rc)
        return s_fail(t, rc, "count", tab, NULL, 0);
    *n = st.ms_entries;
    return STORE_OK;
}

int store_scan(store_txn_t *t, store_table_t tab, const void *from,
               size_t flen, store_visit_fn fn, void *ctx)
{
    MDB_cursor *cur;
    MDB_val k = {flen, (void *)from}, v;
    int rc, out = 0;

    rc = mdb_cursor_open(t->txn, t->s->dbi[tab], &cur);
    if (rc)
        return s_fail(t, rc, "scan", tab, NULL, 0);
    rc = mdb_cursor_get(cur, &k, &v, from ? MDB_SET_RANGE : MDB_FIRST);
    while (rc == 0) {
        out = fn(ctx, k.mv_data, k.mv_size, v.mv_data, v.mv_size);
        if (out)
            break;
        rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cur);
    if (rc && rc != MDB_NOTFOUND)
        return s_fail(t, rc, "scan", tab, NULL, 0);
    return out;
}

typedef struct s_msg_scan {
    store_txn_t *t;
    store_table_t tab;
    const ProtobufCMessageDescriptor *desc;
    store_visit_msg_fn fn;
    void *ctx;
} s_msg_scan_t;

static int s_visit_msg(void *ctx, const void *key, size_t klen,
                       const void *val, size_t vlen)
{
    s_msg_scan_t *sc = ctx;
    ProtobufCMessage *m;
    int rc;

    if (klen != 8)
        return 0;
    m = protobuf_c_message_unpack(sc->desc, NULL, vlen, val);
    if (!m) {
        s_fail(sc->t, MDB_CORRUPTED, "decode", sc->tab, key, klen);
        return STORE_ECORRUPT;
    }
    rc = sc->fn(sc->ctx, store_key_to_u64(key), m);
    protobuf_c_message_free_unpacked(m, NULL);
    return rc;
}

int store_scan_msg(store_txn_t *t, store_table_t tab, uint64_t from,
                   const ProtobufCMessageDescriptor *desc,
                   store_visit_msg_fn fn, void *ctx)
{
    s_msg_scan_t sc = {t, tab, desc, fn, ctx};
    uint8_t key[8];

    store_key_u64(from, key);
    return store_scan(t, tab, key, 8, s_visit_msg, &sc);
}

/* ---------------------------------------------------------------- typed */

#define GET_U64(tab, id, type, desc, out)                                  \
    do {                                                                   \
        uint8_t k_[8];                                                     \
        store_key_u64(id, k_);                                             \
        return store_get_msg(t, tab, k_, 8, &desc,                         \
                             (ProtobufCMessage **)(out));                  \
    } while (0)

static int s_put_u64(store_txn_t *t, store_table_t tab, uint64_t id,
                     const ProtobufCMessage *m)
{
    uint8_t k[8];

    store_key_u64(id, k);
    return store_put_msg(t, tab, k, 8, m);
}

int store_design_put(store_txn_t *t, const Nader__DesignRecord *d)
{
    if (!d->hash || !d->hash[0])
        return s_fail(t, EINVAL, "put (design without a hash) into",
                      STORE_DESIGNS, NULL, 0);
    return store_put_msg(t, STORE_DESIGNS, d->hash, strlen(d->hash),
                         &d->base);
}

int store_design_get(store_txn_t *t, const char *hash,
                     Nader__DesignRecord **out)
{
    return store_get_msg(t, STORE_DESIGNS, hash, strlen(hash),
                         &nader__design_record__descriptor,
                         (ProtobufCMessage **)out);
}

static bool s_state_active(Nader__JobState s)
{
    return s == NADER__JOB_STATE__JOB_QUEUED ||
           s == NADER__JOB_STATE__JOB_LEASED ||
           s == NADER__JOB_STATE__JOB_RUNNING;
}

int store_job_put(store_txn_t *t, const Nader__JobRecord *j)
{
    uint8_t k[8];
    int rc;

    store_key_u64(j->id, k);
    rc = store_put_msg(t, STORE_JOBS, k, 8, &j->base);
    if (rc < 0)
        return rc;
    if (s_state_active(j->state))
        return store_put_raw(t, STORE_ACTIVE, k, 8, "", 0);
    return store_del(t, STORE_ACTIVE, k, 8);
}

int store_job_get(store_txn_t *t, uint64_t id, Nader__JobRecord **out)
{
    GET_U64(STORE_JOBS, id, Nader__JobRecord,
            nader__job_record__descriptor, out);
}

int store_result_put(store_txn_t *t, const Nader__ResultRecord *r)
{
    return s_put_u64(t, STORE_RESULTS, r->job, &r->base);
}

int store_result_get(store_txn_t *t, uint64_t job,
                     Nader__ResultRecord **out)
{
    GET_U64(STORE_RESULTS, job, Nader__ResultRecord,
            nader__result_record__descriptor, out);
}

int store_checkpoint_put(store_txn_t *t, const Nader__CheckpointRecord *c)
{
    return s_put_u64(t, STORE_CHECKPOINTS, c->job, &c->base);
}

int store_checkpoint_get(store_txn_t *t, uint64_t job,
                         Nader__CheckpointRecord **out)
{
    GET_U64(STORE_CHECKPOINTS, job, Nader__CheckpointRecord,
            nader__checkpoint_record__descriptor, out);
}

int store_checkpoint_del(store_txn_t *t, uint64_t job)
{
    uint8_t k[8];

    store_key_u64(job, k);
    return store_del(t, STORE_CHECKPOINTS, k, 8);
}

/* Assign an id when *id is 0, then store m under it. */
static int s_add(store_txn_t *t, store_table_t tab, uint64_t *id,
                 protobuf_c_boolean *has_id, const ProtobufCMessage *m)
{
    int rc;

    if (*id == 0) {
        rc = store_next_id(t, tab, id);
        if (rc < 0)
            return rc;
        *has_id = 1;
    }
    return s_put_u64(t, tab, *id, m);
}

int store_experience_add(store_txn_t *t, Nader__ExperienceRecord *e)
{
    return s_add(t, STORE_EXPERIENCES, &e->id, &e->has_id, &e->base);
}

int store_experience_get(store_txn_t *t, uint64_t id,
                         Nader__ExperienceRecord **out)
{
    GET_U64(STORE_EXPERIENCES, id, Nader__ExperienceRecord,
            nader__experience_record__descriptor, out);
}

int store_inspiration_add(store_txn_t *t, Nader__InspirationRecord *r)
{
    return s_add(t, STORE_INSPIRATIONS, &r->id, &r->has_id, &r->base);
}

int store_inspiration_get(store_txn_t *t, uint64_t id,
                          Nader__InspirationRecord **out)
{
    GET_U64(STORE_INSPIRATIONS, id, Nader__InspirationRecord,
            nader__inspiration_record__descriptor, out);
}

int store_llm_add(store_txn_t *t, Nader__LlmExchangeRecord *r)
{
    return s_add(t, STORE_LLM, &r->id, &r->has_id, &r->base);
}

int store_llm_get(store_txn_t *t, uint64_t id,
                  Nader__LlmExchangeRecord **out)
{
    GET_U64(STORE_LLM, id, Nader__LlmExchangeRecord,
            nader__llm_exchange_record__descriptor, out);
}

/* A meta record that is all defaults when absent. */
static int s_meta_get(store_txn_t *t, const char *key,
                      const ProtobufCMessageDescriptor *desc,
                      ProtobufCMessage **out)
{
    int rc = store_get_msg(t, STORE_META, key, strlen(key), desc, out);

    if (rc != STORE_NOTFOUND)
        return rc;
    *out = protobuf_c_message_unpack(desc, NULL, 0, (const uint8_t *)"");
    if (!*out) {
        snprintf(t->err, sizeof t->err, "store %s: out of memory",
                 t->s->path);
        return STORE_ENOMEM;
    }
    return STORE_OK;
}

int store_settings_get(store_txn_t *t, Nader__SettingsRecord **out)
{
    return s_meta_get(t, "settings", &nader__settings_record__descriptor,
                      (ProtobufCMessage **)out);
}

int store_settings_put(store_txn_t *t, const Nader__SettingsRecord *s)
{
    return store_put_msg(t, STORE_META, "settings", 8, &s->base);
}

int store_counts_get(store_txn_t *t, Nader__CountsRecord **out)
{
    return s_meta_get(t, "counts", &nader__counts_record__descriptor,
                      (ProtobufCMessage **)out);
}

int store_counts_put(store_txn_t *t, const Nader__CountsRecord *c)
{
    return store_put_msg(t, STORE_META, "counts", 6, &c->base);
}

int store_meta_get(store_txn_t *t, Nader__StoreMeta **out)
{
    return store_get_msg(t, STORE_META, "schema", 6,
                         &nader__store_meta__descriptor,
                         (ProtobufCMessage **)out);
}

/* ------------------------------------------------------------- schema */

/*
 * Migrations from schema i to i + 1, applied in order inside one write
 * transaction.  Schema 1 is the first; none exist yet.  A migration
 * rewrites records whose meaning changed in a way optional fields cannot
 * express.
 */
typedef int (*s_migration_fn)(store_txn_t *t);
static const s_migration_fn s_migrations[STORE_SCHEMA] = {NULL};

static int s_write_meta(store_txn_t *t, uint32_t schema, uint64_t created)
{
    Nader__StoreMeta m = NADER__STORE_META__INIT;

    m.has_schema = 1;
    m.schema = schema;
    m.created_by = (char *)"nader";
    m.has_created_ms = 1;
    m.created_ms = created;
    m.has_oldest_reader = 1;
    m.oldest_reader = 1;
    return store_put_msg(t, STORE_META, "schema", 6, &m.base);
}

static int s_check_schema(store_t *s, char *err, size_t errlen)
{
    store_txn_t *t;
    Nader__StoreMeta *m = NULL;
    int rc;
    uint32_t schema;
    uint64_t created;

    rc = store_begin(s, !s->read_only, &t, err, errlen);
    if (rc < 0)
        return rc;
    rc = store_meta_get(t, &m);
    if (rc < 0)
        goto fail;
    if (rc == STORE_NOTFOUND) {
        uint64_t n = 0;
        if (store_count(t, STORE_JOBS, &n) < 0 || n > 0) {
            snprintf(t->err, sizeof t->err, "store %s: has jobs but no "
                     "schema record: not a nader store", s->path);
            rc = STORE_ESCHEMA;
            goto fail;
        }
        if (s->read_only) {
            store_abort(&t);
            return STORE_OK;
        }
        if ((rc = s_write_meta(t, STORE_SCHEMA, s_now_ms())) < 0)
            goto fail;
        return store_commit(&t, err, errlen);
    }
    schema = m->schema;
    created = m->created_ms;
    nader__store_meta__free_unpacked(m, NULL);
    if (schema > STORE_SCHEMA || schema == 0) {
        snprintf(t->err, sizeof t->err, "store %s: written by a %s nader "
                 "(schema %u; this one reads schemas 1 to %d)", s->path,
                 schema ? "newer" : "broken", schema, STORE_SCHEMA);
        rc = STORE_ESCHEMA;
        goto fail;
    }
    if (schema == STORE_SCHEMA || s->read_only) {
        store_abort(&t);
        return STORE_OK;
    }
    for (uint32_t v = schema; v < STORE_SCHEMA; v++)
        if (s_migrations[v] && (rc = s_migrations[v](t)) < 0)
            goto fail;
    if ((rc = s_write_meta(t, STORE_SCHEMA, created)) < 0)
        goto fail;
    return store_commit(&t, err, errlen);
fail:
    snprintf(err, errlen, "%s", t->err);
    store_abort(&t);
    return rc;
}
