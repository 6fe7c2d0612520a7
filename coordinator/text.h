/*
 * text.h - small text tools shared by the agents: a growable buffer,
 * reading whole files, word counts, and pulling the useful part out of
 * a language model's answer (code fences, tags, chatter).
 *
 * Answers from a language model are untrusted text of any length and
 * shape: every function here takes a length or a NUL-terminated string,
 * never reads past it, and allocates what it returns.
 *
 * Ownership: text_buf_t owns its memory (text_buf_free); every char *
 * returned by a text_* function is malloc'd and owned by the caller.
 */
#ifndef NADER_TEXT_H
#define NADER_TEXT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct text_buf {
    char *s; /* always NUL-terminated once anything is added */
    size_t len;
    size_t cap;
    bool failed; /* an allocation failed; s holds what fitted */
} text_buf_t;

void text_buf_init(text_buf_t *b);
void text_buf_free(text_buf_t *b);
/* Append n bytes (or a string, or printf-style). Failures set b->failed. */
void text_buf_add(text_buf_t *b, const char *s, size_t n);
void text_buf_puts(text_buf_t *b, const char *s);
void text_buf_printf(text_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Hand the string over to the caller (never NULL unless failed); the
 * buffer is left empty.  Returns NULL when an allocation failed. */
char *text_buf_take(text_buf_t *b);

/*
 * Read a whole file (at most max bytes; 0 means 64 MiB).  Returns a
 * NUL-terminated copy and sets *len, or NULL with a message naming the
 * file in err.
 */
char *text_file_read(const char *path, size_t max, size_t *len, char *err,
                     size_t errlen);

/* Write len bytes to path atomically (temporary file, then rename).
 * Returns 0, or -1 with a message in err. */
int text_file_write(const char *path, const char *s, size_t len, char *err,
                    size_t errlen);

/* Number of white-space separated words in s. */
int text_word_count(const char *s);

/* A copy of s without leading and trailing white space. */
char *text_trim(const char *s, size_t len);

/* Collapse runs of white space into one space and trim. */
char *text_squash(const char *s);

/*
 * Every text between <tag> and </tag> (tag name matched without regard
 * to case, attributes not allowed), in order.  Returns the count and
 * sets *out to a malloc'd array of malloc'd trimmed strings (free with
 * text_list_free); an opening tag without its closing tag is ignored.
 */
int text_tag_all(const char *s, const char *tag, char ***out);
void text_list_free(char **v, int n);

/*
 * The answer with Markdown code fences removed: the lines ``` and
 * ```lang are dropped, everything else is kept in order.
 */
char *text_unfence(const char *s);

/* 64-bit FNV-1a of n bytes, for cheap keys (not for identity). */
unsigned long long text_hash64(const char *s, size_t n);

#endif
