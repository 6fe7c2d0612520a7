/*
 * log.h - one-line event logging for the daemons.
 *
 * Each line carries the wall-clock time to the millisecond, the process
 * id, the role ("coordinator", "worker", "trainer") and the level, then
 * the facts of the event:
 *
 *   2026-12-03 15:43:53.123 4711 coordinator I job 41 attempt 2 leased to w3
 *
 * Only daemons and command-line front ends log; the libraries (graph,
 * store, engine) return errors instead.  Logging is thread-safe: a line
 * is formatted into a local buffer and written with one call.
 */
#ifndef NADER_LOG_H
#define NADER_LOG_H

#include <stdarg.h>
#include <stdio.h>

typedef enum log_level {
    LOG_DEBUG,
    LOG_INFO,
    LOG_WARN,
    LOG_ERROR
} log_level_t;

/*
 * Set the role written on every line, the least level written, and the
 * stream (stderr when NULL).  role is copied.  May be called again, e.g.
 * in a forked child that takes another role.
 */
void log_init(const char *role, log_level_t level, FILE *stream);

/* Parse "debug", "info", "warn" or "error"; returns -1 if unknown. */
int log_level_parse(const char *name);

/* Write one line at level, printf-style.  A trailing newline is added. */
void log_write(log_level_t level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void log_vwrite(log_level_t level, const char *fmt, va_list ap);

#define log_debug(...) log_write(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_write(LOG_ERROR, __VA_ARGS__)

#endif
