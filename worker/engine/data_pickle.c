/*
 * data_pickle.c - read the ImageNet16 batch pickles without Python.
 *
 * The down-sampled ImageNet files are Python pickles of a dict holding
 * 'data', a numpy uint8 array (n, 768), and 'labels', a list of n ints
 * (the training batches also carry a 'mean' array, which is skipped).
 * This is a small pickle machine that runs the opcodes of protocols 0 to
 * 5 (Python 2 and 3 writers) over the whole file in memory and rebuilds
 * only what those files contain: numbers, strings and bytes, tuples,
 * lists, dicts, and numpy arrays through numpy's own reconstruction
 * functions (_reconstruct + BUILD, or _frombuffer).  Any other callable
 * becomes an opaque object, so unknown extra keys do no harm; nothing is
 * ever executed.  Every read is bounds-checked, so a truncated or corrupt
 * file is an error naming the file and the byte offset.
 *
 * Values live in an arena freed at once when the file is done; the array
 * data is referenced in the file buffer, and copied out only for 'data'.
 */
#include "data.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum pv_kind {
    PV_NONE,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_BYTES,                 /* bytes, Python 2 str, bytearray */
    PV_STR,                   /* unicode text, UTF-8 */
    PV_TUPLE,
    PV_LIST,
    PV_DICT,                  /* items: key, value, key, value ... */
    PV_GLOBAL,                /* a module attribute: s (module), s2 (name) */
    PV_ARRAY,                 /* a numpy array */
    PV_DTYPE,                 /* a numpy dtype: s (e.g. "u1"), order */
    PV_OBJECT                 /* anything else, opaque */
} pv_kind_t;

typedef struct pv {
    pv_kind_t kind;
    int64_t i;
    const uint8_t *s;         /* BYTES, STR, GLOBAL module, DTYPE name */
    size_t len;
    const uint8_t *s2;        /* GLOBAL name */
    size_t len2;
    struct pv **items;        /* TUPLE, LIST, DICT */
    int n, cap;
    /* ARRAY */
    int ndim;
    int64_t shape[4];
    struct pv *dtype;
    bool fortran;
    const uint8_t *data;
    size_t data_len;
    char order;               /* DTYPE byte order: '<', '>', '|', '=' */
} pv_t;

typedef struct pk {
    const uint8_t *buf;
    size_t len, at;
    const char *name;
    char *err;
    size_t errlen;
    void **arena;             /* everything allocated, freed at the end */
    size_t n_arena, cap_arena;
    pv_t **stack;
    int sp, cap_stack;
    int *marks;
    int n_marks, cap_marks;
    pv_t **memo;
    size_t cap_memo;
    size_t n_memo;            /* for MEMOIZE */
    bool failed;
} pk_t;

static pv_t s_none = {.kind = PV_NONE};

static int s_fail(pk_t *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int s_fail(pk_t *p, const char *fmt, ...)
{
    char msg[200];
    va_list ap;

    if (p->failed)
        return -EINVAL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (p->err && p->errlen)
        snprintf(p->err, p->errlen, "%s: byte %zu: %s", p->name, p->at,
                 msg);
    p->failed = true;
    return -EINVAL;
}

/* ---------------------------------------------------------------- arena */

static void *s_alloc(pk_t *p, size_t n)
{
    void *v;

    if (p->n_arena == p->cap_arena) {
        size_t nc = p->cap_arena ? p->cap_arena * 2 : 1024;
        void **na = realloc(p->arena, nc * sizeof(void *));
        if (!na)
            return NULL;
        p->arena = na;
        p->cap_arena = nc;
    }
    v = calloc(1, n ? n : 1);
    if (v)
        p->arena[p->n_arena++] = v;
    return v;
}

static pv_t *s_new(pk_t *p, pv_kind_t kind)
{
    pv_t *v = s_alloc(p, sizeof(pv_t));

    if (!v) {
        s_fail(p, "out of memory");
        return NULL;
    }
    v->kind = kind;
    return v;
}

static int s_add(pk_t *p, pv_t *c, pv_t *item)
{
    if (c->n == c->cap) {
        int nc = c->cap ? c->cap * 2 : 8;
        pv_t **ni = s_alloc(p, (size_t)nc * sizeof(pv_t *));
        if (!ni)
            return s_fail(p, "out of memory");
        if (c->n)
            memcpy(ni, c->items, (size_t)c->n * sizeof(pv_t *));
        c->items = ni;
        c->cap = nc;
    }
    c->items[c->n++] = item;
    return 0;
}

/* ---------------------------------------------------------------- stack */

static int s_push(pk_t *p, pv_t *v)
{
    if (!v)
        return -EINVAL;
    if (p->sp == p->cap_stack) {
        int nc = p->cap_stack ? p->cap_stack * 2 : 64;
        pv_t **ns = realloc(p->stack, (size_t)nc * sizeof(pv_t *));
        if (!ns)
            return s_fail(p, "out of memory");
        p->stack = ns;
        p->cap_stack = nc;
    }
    p->stack[p->sp++] = v;
    return 0;
}

static pv_t *s_pop(pk_t *p)
{
    int floor = p->n_marks ? p->marks[p->n_marks - 1] : 0;

    if (p->sp <= floor) {
        s_fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[--p->sp];
}

static pv_t *s_top(pk_t *p)
{
    int floor = p->n_marks ? p->marks[p->n_marks - 1] : 0;

    if (p->sp <= floor) {
        s_fail(p, "stack underflow");
        return NULL;
    }
    return p->stack[p->sp - 1];
}

static int s_mark(pk_t *p)
{
    if (p->n_marks == p->cap_marks) {
        int nc = p->cap_marks ? p->cap_marks * 2 : 16;
        int *nm = realloc(p->marks, (size_t)nc * sizeof(int));
        if (!nm)
            return s_fail(p, "out of memory");
        p->marks = nm;
        p->cap_marks = nc;
    }
    p->marks[p->n_marks++] = p->sp;
    return 0;
}

/* Pop everything above the last mark into a new container of kind. */
static pv_t *s_pop_mark(pk_t *p, pv_kind_t kind)
{
    pv_t *c;
    int from;

    if (p->n_marks == 0) {
        s_fail(p, "no mark on the stack");
        return NULL;
    }
    from = p->marks[--p->n_marks];
    c = s_new(p, kind);
    for (int i = from; c && i < p->sp; i++)
        if (s_add(p, c, p->stack[i]))
            return NULL;
    p->sp = from;
    return c;
}

/* ----------------------------------------------------------------- memo */

static int s_memo_put(pk_t *p, size_t idx)
{
    pv_t *v = s_top(p);

    if (!v)
        return -EINVAL;
    if (idx > p->len) /* each PUT takes bytes: no real file goes past */
        return s_fail(p, "memo index %zu out of range", idx);
    if (idx >= p->cap_memo) {
        size_t nc = p->cap_memo ? p->cap_memo : 256;
        while (nc <= idx)
            nc *= 2;
        pv_t **nm = realloc(p->memo, nc * sizeof(pv_t *));
        if (!nm)
            return s_fail(p, "out of memory");
        memset(nm + p->cap_memo, 0, (nc - p->cap_memo) * sizeof(pv_t *));
        p->memo = nm;
        p->cap_memo = nc;
    }
    p->memo[idx] = v;
    return 0;
}

static int s_memo_get(pk_t *p, size_t idx)
{
    if (idx >= p->cap_memo || !p->memo[idx])
        return s_fail(p, "memo entry %zu is not defined", idx);
    return s_push(p, p->memo[idx]);
}

/* --------------------------------------------------------------- reading */

static const uint8_t *s_take(pk_t *p, size_t n)
{
    const uint8_t *r;

    if (n > p->len - p->at) {
        s_fail(p, "truncated: %zu more bytes needed, %zu left", n,
               p->len - p->at);
        return NULL;
    }
    r = p->buf + p->at;
    p->at += n;
    return r;
}

static int s_uint(pk_t *p, int n, uint64_t *out)
{
    const uint8_t *b = s_take(p, (size_t)n);

    if (!b)
        return -EINVAL;
    *out = 0;
    for (int i = n - 1; i >= 0; i--)
        *out = (*out << 8) | b[i];
    return 0;
}

/* A text line (protocol 0 arguments), without its newline. */
static const uint8_t *s_line(pk_t *p, size_t *n)
{
    const uint8_t *s = p->buf + p->at;
    const uint8_t *e = memchr(s, '\n', p->len - p->at);

    if (!e) {
        s_fail(p, "truncated: line without an end");
        return NULL;
    }
    *n = (size_t)(e - s);
    p->at += *n + 1;
    return s;
}

static int s_push_bytes(pk_t *p, pv_kind_t kind, size_t n)
{
    const uint8_t *b = s_take(p, n);
    pv_t *v;

    if (!b)
        return -EINVAL;
    v = s_new(p, kind);
    if (!v)
        return -EINVAL;
    v->s = b;
    v->len = n;
    return s_push(p, v);
}

static int s_push_int(pk_t *p, int64_t x)
{
    pv_t *v = s_new(p, PV_INT);

    if (!v)
        return -EINVAL;
    v->i = x;
    return s_push(p, v);
}

/* LONG1/LONG4: little-endian two's complement of n bytes. */
static int s_long(pk_t *p, size_t n)
{
    const uint8_t *b = s_take(p, n);
    uint64_t u = 0;

    if (!b)
        return -EINVAL;
    if (n > 8)
        return s_fail(p, "integer of %zu bytes is too large", n);
    for (size_t i = n; i-- > 0;)
        u = (u << 8) | b[i];
    if (n > 0 && n < 8 && (b[n - 1] & 0x80))
        u |= ~0ULL << (8 * n);
    return s_push_int(p, (int64_t)u);
}

/* Protocol 0 INT / LONG: decimal text ("01"/"00" are True/False). */
static int s_text_int(pk_t *p)
{
    size_t n;
    const uint8_t *s = s_line(p, &n);
    char tmp[32];
    char *end;
    long long x;

    if (!s)
        return -EINVAL;
    if (n && s[n - 1] == 'L')
        n--;
    if (n == 0 || n >= sizeof(tmp))
        return s_fail(p, "bad integer text");
    memcpy(tmp, s, n);
    tmp[n] = 0;
    errno = 0;
    x = strtoll(tmp, &end, 10);
    if (*end || errno)
        return s_fail(p, "bad integer text '%s'", tmp);
    return s_push_int(p, x);
}

/*
 * Protocol 0 STRING: a quoted Python literal with backslash escapes.
 * Decoded into an arena copy.
 */
static int s_text_string(pk_t *p)
{
    size_t n, o = 0;
    const uint8_t *s = s_line(p, &n);
    uint8_t *out;
    pv_t *v;

    if (!s)
        return -EINVAL;
    if (n < 2 || (s[0] != '\'' && s[0] != '"') || s[n - 1] != s[0])
        return s_fail(p, "bad string literal");
    out = s_alloc(p, n);
    if (!out)
        return s_fail(p, "out of memory");
    for (size_t i = 1; i + 1 < n; i++) {
        uint8_t c = s[i];
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        if (++i + 1 >= n)
            return s_fail(p, "bad escape in string literal");
        c = s[i];
        switch (c) {
        case 'n': out[o++] = '\n'; break;
        case 't': out[o++] = '\t'; break;
        case 'r': out[o++] = '\r'; break;
        case '\\': case '\'': case '"': out[o++] = c; break;
        case 'x': {
            unsigned int h;
            char hex[3] = {0};
            if (i + 3 >= n + 1 || i + 2 >= n)
                return s_fail(p, "bad \\x escape");
            memcpy(hex, s + i + 1, 2);
            if (sscanf(hex, "%2x", &h) != 1)
                return s_fail(p, "bad \\x escape");
            out[o++] = (uint8_t)h;
            i += 2;
            break;
        }
        default:
            return s_fail(p, "unsupported escape \\%c", c);
        }
    }
    v = s_new(p, PV_BYTES);
    if (!v)
        return -EINVAL;
    v->s = out;
    v->len = o;
    return s_push(p, v);
}

/*
 * Protocol 0 UNICODE: raw-unicode-escape text (bytes are code points
 * below 256, \uXXXX and \UXXXXXXXX escape the rest), kept as UTF-8.
 */
static int s_text_unicode(pk_t *p)
{
    size_t n, o = 0;
    const uint8_t *s = s_line(p, &n);
    uint8_t *out;
    pv_t *v;

    if (!s)
        return -EINVAL;
    out = s_alloc(p, 4 * n + 1);
    if (!out)
        return s_fail(p, "out of memory");
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = s[i];
        int digits = 0;
        if (s[i] == '\\' && i + 1 < n &&
            (s[i + 1] == 'u' || s[i + 1] == 'U'))
            digits = s[i + 1] == 'u' ? 4 : 8;
        if (digits) {
            char hex[9] = {0};
            char *end;
            if (i + 2 + (size_t)digits > n)
                return s_fail(p, "bad \\u escape");
            memcpy(hex, s + i + 2, (size_t)digits);
            cp = (uint32_t)strtoul(hex, &end, 16);
            if (*end || cp > 0x10ffff)
                return s_fail(p, "bad \\u escape");
            i += 1 + (size_t)digits;
        }
        if (cp < 0x80) {
            out[o++] = (uint8_t)cp;
        } else if (cp < 0x800) {
            out[o++] = (uint8_t)(0xc0 | (cp >> 6));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            out[o++] = (uint8_t)(0xe0 | (cp >> 12));
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        } else {
            out[o++] = (uint8_t)(0xf0 | (cp >> 18));
            out[o++] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
            out[o++] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
            out[o++] = (uint8_t)(0x80 | (cp & 0x3f));
        }
    }
    v = s_new(p, PV_STR);
    if (!v)
        return -EINVAL;
    v->s = out;
    v->len = o;
    return s_push(p, v);
}

/* ------------------------------------------------------------- globals */

static bool s_eq(const uint8_t *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static bool s_is_global(const pv_t *g, const char *mod, const char *name)
{
    return g->kind == PV_GLOBAL && s_eq(g->s2, g->len2, name) &&
           (s_eq(g->s, g->len, mod) ||
            /* numpy 2 moved numpy.core to numpy._core */
            (strncmp(mod, "numpy.core.", 11) == 0 && g->len > 12 &&
             memcmp(g->s, "numpy._core.", 12) == 0 &&
             s_eq(g->s + 12, g->len - 12, mod + 11)));
}

static int s_global(pk_t *p, const uint8_t *m, size_t ml, const uint8_t *n,
                    size_t nl)
{
    pv_t *v = s_new(p, PV_GLOBAL);

    if (!v)
        return -EINVAL;
    v->s = m;
    v->len = ml;
    v->s2 = n;
    v->len2 = nl;
    return s_push(p, v);
}

/* UTF-8 text whose code points are all below 256 -> bytes (latin-1). */
static pv_t *s_latin1(pk_t *p, const pv_t *str)
{
    uint8_t *out = s_alloc(p, str->len);
    size_t o = 0;
    pv_t *v;

    if (!out) {
        s_fail(p, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < str->len; i++) {
        uint8_t c = str->s[i];
        if (c < 0x80) {
            out[o++] = c;
        } else if ((c & 0xe0) == 0xc0 && c <= 0xc3 && i + 1 < str->len) {
            out[o++] = (uint8_t)(((c & 0x1f) << 6) | (str->s[++i] & 0x3f));
        } else {
            s_fail(p, "text is not latin-1");
            return NULL;
        }
    }
    v = s_new(p, PV_BYTES);
    if (v) {
        v->s = out;
        v->len = o;
    }
    return v;
}

/* Fill array a from a shape tuple, a dtype and raw bytes. */
static int s_array_fill(pk_t *p, pv_t *a, const pv_t *shape,
                        pv_t *dtype, bool fortran, const pv_t *raw)
{
    if (shape->kind != PV_TUPLE || shape->n > 4)
        return s_fail(p, "numpy array: bad shape");
    if (dtype->kind != PV_DTYPE)
        return s_fail(p, "numpy array: bad dtype");
    if (raw->kind != PV_BYTES && raw->kind != PV_STR)
        return s_fail(p, "numpy array: data is not raw bytes (object "
                      "arrays are not supported)");
    a->ndim = shape->n;
    for (int i = 0; i < shape->n; i++) {
        if (shape->items[i]->kind != PV_INT || shape->items[i]->i < 0)
            return s_fail(p, "numpy array: bad shape");
        a->shape[i] = shape->items[i]->i;
    }
    a->dtype = dtype;
    a->fortran = fortran;
    if (raw->kind == PV_STR) {
        /* Python 3 reading a Python 2 str as text: latin-1 code points */
        raw = s_latin1(p, raw);
        if (!raw)
            return -EINVAL;
    }
    a->data = raw->s;
    a->data_len = raw->len;
    return 0;
}

/*
 * numpy.core.multiarray.scalar(dtype, raw): an integer scalar such as a
 * numpy.int64 label, as an INT.  Other scalars become opaque objects.
 */
static pv_t *s_scalar(pk_t *p, const pv_t *args)
{
    const pv_t *dt, *raw;
    const uint8_t *name;
    size_t n;
    pv_t *v;
    uint64_t u = 0;

    if (args->n != 2 || args->items[0]->kind != PV_DTYPE)
        return s_new(p, PV_OBJECT);
    dt = args->items[0];
    raw = args->items[1];
    if (raw->kind == PV_STR)
        raw = s_latin1(p, raw);
    if (!raw)
        return NULL;
    name = dt->s;
    n = dt->len;
    if (n && (name[0] == '<' || name[0] == '|' || name[0] == '='))
        name++, n--;
    if (raw->kind != PV_BYTES || n != 2 || (name[0] != 'i' &&
        name[0] != 'u') || name[1] < '1' || name[1] > '8' ||
        raw->len != (size_t)(name[1] - '0') || dt->order == '>')
        return s_new(p, PV_OBJECT);
    for (size_t i = raw->len; i-- > 0;)
        u = (u << 8) | raw->s[i];
    if (name[0] == 'i' && raw->len < 8 && (raw->s[raw->len - 1] & 0x80))
        u |= ~0ULL << (8 * raw->len);
    v = s_new(p, PV_INT);
    if (v)
        v->i = (int64_t)u;
    return v;
}

/* REDUCE: callable(args).  Only numpy's rebuilders mean anything. */
static int s_reduce(pk_t *p)
{
    pv_t *args = s_pop(p);
    pv_t *f = args ? s_pop(p) : NULL;
    pv_t *v;

    if (!f)
        return -EINVAL;
    if (args->kind != PV_TUPLE)
        return s_fail(p, "REDUCE arguments are not a tuple");
    if (s_is_global(f, "numpy.core.multiarray", "_reconstruct")) {
        v = s_new(p, PV_ARRAY);
    } else if (s_is_global(f, "numpy", "dtype")) {
        if (args->n < 1 || (args->items[0]->kind != PV_STR &&
                            args->items[0]->kind != PV_BYTES))
            return s_fail(p, "numpy dtype without a name");
        v = s_new(p, PV_DTYPE);
        if (v) {
            v->s = args->items[0]->s;
            v->len = args->items[0]->len;
            v->order = '|';
        }
    } else if ((s_is_global(f, "_codecs", "encode") ||
                s_is_global(f, "builtins", "bytearray") ||
                s_is_global(f, "__builtin__", "bytearray")) &&
               args->n >= 1 && args->items[0]->kind == PV_STR) {
        v = s_latin1(p, args->items[0]);
    } else if ((s_is_global(f, "builtins", "bytes") ||
                s_is_global(f, "builtins", "bytearray")) && args->n == 0) {
        v = s_new(p, PV_BYTES);
    } else if (s_is_global(f, "numpy.core.multiarray", "scalar")) {
        v = s_scalar(p, args);
    } else if (s_is_global(f, "numpy.core.numeric", "_frombuffer")) {
        if (args->n != 4 || args->items[3]->kind != PV_STR)
            return s_fail(p, "numpy _frombuffer: bad arguments");
        v = s_new(p, PV_ARRAY);
        if (v && s_array_fill(p, v, args->items[2], args->items[1],
                              s_eq(args->items[3]->s, args->items[3]->len,
                                   "F"),
                              args->items[0]))
            return -EINVAL;
    } else {
        v = s_new(p, PV_OBJECT);
    }
    return s_push(p, v);
}

/* BUILD: obj.__setstate__(state). */
static int s_build(pk_t *p)
{
    pv_t *state = s_pop(p);
    pv_t *obj = state ? s_top(p) : NULL;
    pv_t **it;

    if (!obj)
        return -EINVAL;
    if (obj->kind == PV_DTYPE) {
        if (state->kind == PV_TUPLE && state->n >= 2 &&
            (state->items[1]->kind == PV_STR ||
             state->items[1]->kind == PV_BYTES) &&
            state->items[1]->len == 1)
            obj->order = (char)state->items[1]->s[0];
        return 0;
    }
    if (obj->kind != PV_ARRAY)
        return 0;
    if (state->kind != PV_TUPLE || (state->n != 5 && state->n != 4))
        return s_fail(p, "numpy array state is not a 4- or 5-tuple");
    it = state->items + (state->n == 5);
    return s_array_fill(p, obj, it[0], it[1],
                        it[2]->kind == PV_BOOL ? it[2]->i != 0
                                               : it[2]->kind == PV_INT &&
                                                     it[2]->i != 0,
                        it[3]);
}

/* --------------------------------------------------------------- opcodes */

static int s_setitems(pk_t *p, pv_t *items)
{
    pv_t *d = items ? s_top(p) : NULL;

    if (!d)
        return -EINVAL;
    if (d->kind != PV_DICT)
        return s_fail(p, "SETITEM(S) on something that is not a dict");
    if (items->n % 2)
        return s_fail(p, "SETITEMS with an odd number of items");
    for (int i = 0; i < items->n; i++)
        if (s_add(p, d, items->items[i]))
            return -EINVAL;
    return 0;
}

static int s_appends(pk_t *p, pv_t *items)
{
    pv_t *l = items ? s_top(p) : NULL;

    if (!l)
        return -EINVAL;
    if (l->kind != PV_LIST)
        return s_fail(p, "APPEND(S) on something that is not a list");
    for (int i = 0; i < items->n; i++)
        if (s_add(p, l, items->items[i]))
            return -EINVAL;
    return 0;
}

static int s_tuple_n(pk_t *p, int n)
{
    pv_t *t = s_new(p, PV_TUPLE);

    if (!t || p->sp - (p->n_marks ? p->marks[p->n_marks - 1] : 0) < n)
        return s_fail(p, "stack underflow");
    for (int i = p->sp - n; i < p->sp; i++)
        if (s_add(p, t, p->stack[i]))
            return -EINVAL;
    p->sp -= n;
    return s_push(p, t);
}

/* One opcode; 1 at STOP, 0 to go on, negative on error. */
static int s_step(pk_t *p)
{
    const uint8_t *b = s_take(p, 1);
    uint64_t u;
    size_t n, n2;
    const uint8_t *s, *s2;
    pv_t *v, *k;

    if (!b)
        return -EINVAL;
    switch (*b) {
    case 0x80: /* PROTO */
        return s_take(p, 1) ? 0 : -EINVAL;
    case 0x95: /* FRAME */
        return s_uint(p, 8, &u);
    case '.': /* STOP */
        return 1;
    case '(':
        return s_mark(p);
    case '}':
        return s_push(p, s_new(p, PV_DICT));
    case ']':
        return s_push(p, s_new(p, PV_LIST));
    case ')':
        return s_push(p, s_new(p, PV_TUPLE));
    case 0x8f: /* EMPTY_SET */
        return s_push(p, s_new(p, PV_LIST));
    case 't':
        return s_push(p, s_pop_mark(p, PV_TUPLE));
    case 'l':
    case 0x91: /* FROZENSET */
        return s_push(p, s_pop_mark(p, PV_LIST));
    case 'd':
        v = s_pop_mark(p, PV_DICT);
        if (v && v->n % 2)
            return s_fail(p, "DICT with an odd number of items");
        return s_push(p, v);
    case 0x85:
        return s_tuple_n(p, 1);
    case 0x86:
        return s_tuple_n(p, 2);
    case 0x87:
        return s_tuple_n(p, 3);
    case 'a':
        v = s_pop(p);
        k = v ? s_new(p, PV_TUPLE) : NULL;
        if (!k || s_add(p, k, v))
            return -EINVAL;
        return s_appends(p, k);
    case 'e':
    case 0x90: /* ADDITEMS */
        return s_appends(p, s_pop_mark(p, PV_TUPLE));
    case 's':
        v = s_pop(p);
        k = v ? s_pop(p) : NULL;
        if (!k)
            return -EINVAL;
        {
            pv_t *t = s_new(p, PV_TUPLE);
            if (!t || s_add(p, t, k) || s_add(p, t, v))
                return -EINVAL;
            return s_setitems(p, t);
        }
    case 'u':
        return s_setitems(p, s_pop_mark(p, PV_TUPLE));
    case 'K':
        return s_uint(p, 1, &u) ? -EINVAL : s_push_int(p, (int64_t)u);
    case 'M':
        return s_uint(p, 2, &u) ? -EINVAL : s_push_int(p, (int64_t)u);
    case 'J':
        return s_uint(p, 4, &u) ? -EINVAL
                                : s_push_int(p, (int64_t)(int32_t)u);
    case 0x8a: /* LONG1 */
        return s_uint(p, 1, &u) ? -EINVAL : s_long(p, u);
    case 0x8b: /* LONG4 */
        return s_uint(p, 4, &u) ? -EINVAL : s_long(p, u);
    case 'I':
    case 'L':
        return s_text_int(p);
    case 'G':
        if (!s_take(p, 8))
            return -EINVAL;
        return s_push(p, s_new(p, PV_FLOAT));
    case 'F':
        if (!s_line(p, &n))
            return -EINVAL;
        return s_push(p, s_new(p, PV_FLOAT));
    case 'N':
        return s_push(p, &s_none);
    case 0x88:
    case 0x89:
        v = s_new(p, PV_BOOL);
        if (v)
            v->i = *b == 0x88;
        return s_push(p, v);
    case 'U': /* SHORT_BINSTRING */
    case 'C': /* SHORT_BINBYTES */
        return s_uint(p, 1, &u) ? -EINVAL : s_push_bytes(p, PV_BYTES, u);
    case 'T': /* BINSTRING */
    case 'B': /* BINBYTES */
        return s_uint(p, 4, &u) ? -EINVAL : s_push_bytes(p, PV_BYTES, u);
    case 0x8e: /* BINBYTES8 */
    case 0x96: /* BYTEARRAY8 */
        return s_uint(p, 8, &u) ? -EINVAL : s_push_bytes(p, PV_BYTES, u);
    case 0x8c: /* SHORT_BINUNICODE */
        return s_uint(p, 1, &u) ? -EINVAL : s_push_bytes(p, PV_STR, u);
    case 'X': /* BINUNICODE */
        return s_uint(p, 4, &u) ? -EINVAL : s_push_bytes(p, PV_STR, u);
    case 0x8d: /* BINUNICODE8 */
        return s_uint(p, 8, &u) ? -EINVAL : s_push_bytes(p, PV_STR, u);
    case 'S':
        return s_text_string(p);
    case 'V':
        return s_text_unicode(p);
    case 'c': /* GLOBAL */
        s = s_line(p, &n);
        s2 = s ? s_line(p, &n2) : NULL;
        return s2 ? s_global(p, s, n, s2, n2) : -EINVAL;
    case 0x93: /* STACK_GLOBAL */
        v = s_pop(p);
        k = v ? s_pop(p) : NULL;
        if (!k)
            return -EINVAL;
        if (k->kind != PV_STR || v->kind != PV_STR)
            return s_fail(p, "STACK_GLOBAL needs two strings");
        return s_global(p, k->s, k->len, v->s, v->len);
    case 'R':
        return s_reduce(p);
    case 'b':
        return s_build(p);
    case 0x81: /* NEWOBJ: cls, args -> object */
        if (!s_pop(p) || !s_pop(p))
            return -EINVAL;
        return s_push(p, s_new(p, PV_OBJECT));
    case 0x92: /* NEWOBJ_EX */
        if (!s_pop(p) || !s_pop(p) || !s_pop(p))
            return -EINVAL;
        return s_push(p, s_new(p, PV_OBJECT));
    case 'o': /* OBJ: mark, cls, args... */
        if (!s_pop_mark(p, PV_TUPLE))
            return -EINVAL;
        return s_push(p, s_new(p, PV_OBJECT));
    case 'i': /* INST module\nname\n, mark, args */
        if (!s_line(p, &n) || !s_line(p, &n) || !s_pop_mark(p, PV_TUPLE))
            return -EINVAL;
        return s_push(p, s_new(p, PV_OBJECT));
    case 'q':
        return s_uint(p, 1, &u) ? -EINVAL : s_memo_put(p, u);
    case 'r':
        return s_uint(p, 4, &u) ? -EINVAL : s_memo_put(p, u);
    case 0x94: /* MEMOIZE */
        return s_memo_put(p, p->n_memo++);
    case 'h':
        return s_uint(p, 1, &u) ? -EINVAL : s_memo_get(p, u);
    case 'j':
        return s_uint(p, 4, &u) ? -EINVAL : s_memo_get(p, u);
    case 'p':
    case 'g': {
        char tmp[24] = {0};
        s = s_line(p, &n);
        if (!s)
            return -EINVAL;
        if (n == 0 || n >= sizeof(tmp))
            return s_fail(p, "bad memo index");
        memcpy(tmp, s, n);
        u = strtoull(tmp, NULL, 10);
        return *b == 'p' ? s_memo_put(p, u) : s_memo_get(p, u);
    }
    case '0':
        return s_pop(p) ? 0 : -EINVAL;
    case '1':
        return s_pop_mark(p, PV_TUPLE) ? 0 : -EINVAL;
    case '2':
        v = s_top(p);
        return v ? s_push(p, v) : -EINVAL;
    default:
        p->at--;
        return s_fail(p, "unsupported pickle opcode 0x%02x", *b);
    }
}

/* ------------------------------------------------------------ the batch */

static const pv_t *s_dict_get(const pv_t *d, const char *key)
{
    for (int i = 0; i + 1 < d->n; i += 2) {
        const pv_t *k = d->items[i];
        if ((k->kind == PV_STR || k->kind == PV_BYTES) &&
            s_eq(k->s, k->len, key))
            return d->items[i + 1];
    }
    return NULL;
}

static int s_extract(pk_t *p, const pv_t *root, data_pickle_batch_t *out)
{
    const pv_t *data, *labels;
    const pv_t *dt;
    int64_t n;

    if (root->kind != PV_DICT)
        return s_fail(p, "the pickle is not a dict");
    data = s_dict_get(root, "data");
    labels = s_dict_get(root, "labels");
    if (!data || !labels)
        return s_fail(p, "the dict has no '%s'", data ? "labels" : "data");
    if (data->kind != PV_ARRAY || !data->dtype)
        return s_fail(p, "'data' is not a numpy array");
    dt = data->dtype;
    if (!(s_eq(dt->s, dt->len, "u1") || s_eq(dt->s, dt->len, "|u1") ||
          s_eq(dt->s, dt->len, "uint8")))
        return s_fail(p, "'data' has dtype %.*s, expected uint8",
                      (int)dt->len, (const char *)dt->s);
    if (data->ndim != 2 || data->shape[1] != 768)
        return s_fail(p, "'data' has %d dimensions (%lld columns), "
                      "expected (n, 768)", data->ndim,
                      data->ndim > 1 ? (long long)data->shape[1] : -1LL);
    if (data->fortran && data->shape[0] > 1)
        return s_fail(p, "'data' is in Fortran order");
    n = data->shape[0];
    if (n > 10000000 || (size_t)n * 768 != data->data_len)
        return s_fail(p, "'data' holds %zu bytes, expected %lld x 768",
                      data->data_len, (long long)n);
    if ((labels->kind != PV_LIST && labels->kind != PV_TUPLE) ||
        labels->n != n)
        return s_fail(p, "'labels' is not a list of %lld ints",
                      (long long)n);
    out->n = (int)n;
    out->data = malloc((size_t)(n ? n : 1) * 768);
    out->labels = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!out->data || !out->labels) {
        data_pickle_batch_free(out);
        return s_fail(p, "out of memory");
    }
    memcpy(out->data, data->data, (size_t)n * 768);
    for (int64_t i = 0; i < n; i++) {
        const pv_t *l = labels->items[i];
        if (l->kind != PV_INT || l->i < INT32_MIN || l->i > INT32_MAX) {
            data_pickle_batch_free(out);
            return s_fail(p, "labels[%lld] is not an int", (long long)i);
        }
        out->labels[i] = (int32_t)l->i;
    }
    return 0;
}

int data_pickle_parse(const uint8_t *buf, size_t len, const char *name,
                      data_pickle_batch_t *out, char *err, size_t errlen)
{
    pk_t p = {.buf = buf, .len = len, .name = name ? name : "pickle",
              .err = err, .errlen = errlen};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    while (rc == 0)
        rc = s_step(&p);
    if (rc == 1) {
        if (p.sp != 1 || p.n_marks)
            rc = s_fail(&p, "STOP with %d values on the stack", p.sp);
        else
            rc = s_extract(&p, p.stack[0], out);
    } else if (!p.failed) {
        rc = s_fail(&p, "malformed pickle");
    }
    for (size_t i = 0; i < p.n_arena; i++)
        free(p.arena[i]);
    free(p.arena);
    free(p.stack);
    free(p.marks);
    free(p.memo);
    return rc < 0 ? rc : 0;
}

int data_pickle_read(const char *path, data_pickle_batch_t *out, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    struct stat st;
    uint8_t *buf = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    if (!f) {
        snprintf(err, errlen, "%s: %s (expected an ImageNet16 pickle)",
                 path, strerror(errno));
        return -ENOENT;
    }
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) ||
        st.st_size == 0) {
        snprintf(err, errlen, "%s: empty or not a regular file (expected "
                 "an ImageNet16 pickle)", path);
        fclose(f);
        return -EINVAL;
    }
    buf = malloc((size_t)st.st_size);
    if (!buf) {
        snprintf(err, errlen, "%s: out of memory (%lld bytes)", path,
                 (long long)st.st_size);
        fclose(f);
        return -ENOMEM;
    }
    if (fread(buf, 1, (size_t)st.st_size, f) != (size_t)st.st_size) {
        snprintf(err, errlen, "%s: read failed: %s", path, strerror(errno));
        free(buf);
        fclose(f);
        return -EIO;
    }
    fclose(f);
    rc = data_pickle_parse(buf, (size_t)st.st_size, path, out, err, errlen);
    free(buf);
    return rc;
}

void data_pickle_batch_free(data_pickle_batch_t *b)
{
    free(b->data);
    free(b->labels);
    b->data = NULL;
    b->labels = NULL;
    b->n = 0;
}
