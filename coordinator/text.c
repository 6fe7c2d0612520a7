/*
 * text.c - see text.h.  Nothing here knows about blocks or agents; the
 * block extraction that sits on top of this lives in modifier.c.
 */
#include "text.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void text_buf_init(text_buf_t *b)
{
    memset(b, 0, sizeof *b);
}

void text_buf_free(text_buf_t *b)
{
    free(b->s);
    memset(b, 0, sizeof *b);
}

static bool s_reserve(text_buf_t *b, size_t extra)
{
    if (b->failed)
        return false;
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *s = realloc(b->s, cap);
    if (!s) {
        b->failed = true;
        return false;
    }
    b->s = s;
    b->cap = cap;
    return true;
}

void text_buf_add(text_buf_t *b, const char *s, size_t n)
{
    if (!s_reserve(b, n))
        return;
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

void text_buf_puts(text_buf_t *b, const char *s)
{
    text_buf_add(b, s, strlen(s));
}

void text_buf_printf(text_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    char small[256];

    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n < sizeof small) {
        text_buf_add(b, small, (size_t)n);
        return;
    }
    if (!s_reserve(b, (size_t)n))
        return;
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *text_buf_take(text_buf_t *b)
{
    if (b->failed) {
        text_buf_free(b);
        return NULL;
    }
    char *s = b->s ? b->s : strdup("");
    memset(b, 0, sizeof *b);
    return s;
}

char *text_file_read(const char *path, size_t max, size_t *len, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    text_buf_t b;
    char chunk[65536];

    if (max == 0)
        max = (size_t)64 << 20;
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    text_buf_init(&b);
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > max) {
            snprintf(err, errlen, "%s: larger than %zu bytes", path, max);
            goto fail;
        }
        text_buf_add(&b, chunk, n);
    }
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    if (len)
        *len = b.len;
    char *s = text_buf_take(&b);
    if (!s)
        snprintf(err, errlen, "%s: out of memory", path);
    return s;
fail:
    fclose(f);
    text_buf_free(&b);
    return NULL;
}

int text_file_write(const char *path, const char *s, size_t len, char *err,
                    size_t errlen)
{
    size_t n = strlen(path) + 16;
    char *tmp = malloc(n);
    FILE *f = NULL;

    if (!tmp) {
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    snprintf(tmp, n, "%s.tmp%d", path, (int)getpid());
    f = fopen(tmp, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fwrite(s, 1, len, f) != len || fflush(f) != 0 ||
        fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "%s: write error: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fclose(f) != 0) {
        f = NULL;
        snprintf(err, errlen, "%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    f = NULL;
    if (rename(tmp, path) != 0) {
        snprintf(err, errlen, "%s: rename: %s", path, strerror(errno));
        goto fail;
    }
    free(tmp);
    return 0;
fail:
    if (f)
        fclose(f);
    unlink(tmp);
    free(tmp);
    return -1;
}

int text_word_count(const char *s)
{
    int n = 0;
    bool in = false;

    for (; *s; s++) {
        bool sp = isspace((unsigned char)*s);
        if (!sp && !in)
            n++;
        in = !sp;
    }
    return n;
}

char *text_trim(const char *s, size_t len)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    return strndup(s, len);
}

char *text_squash(const char *s)
{
    char *out = malloc(strlen(s) + 1);
    size_t k = 0;
    bool space = false;

    if (!out)
        return NULL;
    for (; *s; s++) {
        if (isspace((unsigned char)*s)) {
            space = k > 0;
            continue;
        }
        if (space)
            out[k++] = ' ';
        space = false;
        out[k++] = *s;
    }
    out[k] = '\0';
    return out;
}

/* Position of "<tag>" or "</tag>" (close) at or after s, or NULL. */
static const char *s_find_tag(const char *s, const char *tag, bool close,
                              size_t *taglen)
{
    size_t n = strlen(tag);

    for (const char *p = strchr(s, '<'); p; p = strchr(p + 1, '<')) {
        const char *q = p + 1;
        if (close) {
            if (*q != '/')
                continue;
            q++;
        }
        if (strncasecmp(q, tag, n) == 0 && q[n] == '>') {
            *taglen = (size_t)(q + n + 1 - p);
            return p;
        }
    }
    return NULL;
}

int text_tag_all(const char *s, const char *tag, char ***out)
{
    char **v = NULL;
    int n = 0;
    size_t open_len, close_len;

    *out = NULL;
    for (;;) {
        const char *a = s_find_tag(s, tag, false, &open_len);
        if (!a)
            break;
        const char *body = a + open_len;
        const char *b = s_find_tag(body, tag, true, &close_len);
        if (!b)
            break;
        char **nv = realloc(v, (size_t)(n + 1) * sizeof *v);
        if (!nv)
            break;
        v = nv;
        v[n] = text_trim(body, (size_t)(b - body));
        if (!v[n])
            break;
        n++;
        s = b + close_len;
    }
    *out = v;
    return n;
}

void text_list_free(char **v, int n)
{
    for (int i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

char *text_unfence(const char *s)
{
    text_buf_t b;

    text_buf_init(&b);
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        const char *p = s;
        while (p < s + n && (*p == ' ' || *p == '\t'))
            p++;
        if (!(s + n - p >= 3 && strncmp(p, "```", 3) == 0)) {
            text_buf_add(&b, s, n);
            text_buf_add(&b, "\n", 1);
        }
        s += n + (e ? 1 : 0);
    }
    return text_buf_take(&b);
}

unsigned long long text_hash64(const char *s, size_t n)
{
    unsigned long long h = 1469598103934665603ULL;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}
