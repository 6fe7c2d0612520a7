/*
 * log.c - see log.h.  The line is built in a stack buffer and written
 * with a single fwrite so that lines from several threads never
 * interleave; overly long messages are cut, not split.
 */
#include "log.h"

#include <stdatomic.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LOG_LINE_MAX 2048

static char s_role[32] = "nader";
static _Atomic int s_level = LOG_INFO;
static FILE *_Atomic s_stream;

static const char s_letters[] = {'D', 'I', 'W', 'E'};

void log_init(const char *role, log_level_t level, FILE *stream)
{
    snprintf(s_role, sizeof s_role, "%s", role ? role : "nader");
    atomic_store(&s_level, (int)level);
    atomic_store(&s_stream, stream);
}

int log_level_parse(const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};

    for (int i = 0; i < 4; i++)
        if (strcasecmp(name, names[i]) == 0)
            return i;
    return -1;
}

void log_vwrite(log_level_t level, const char *fmt, va_list ap)
{
    char line[LOG_LINE_MAX];
    struct timeval tv;
    struct tm tm;
    size_t n;
    FILE *out;

    if ((int)level < atomic_load(&s_level))
        return;
    gettimeofday(&tv, NULL);
    localtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof line, "%Y-%m-%d %H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof line - n, ".%03d %d %s %c ",
                          (int)(tv.tv_usec / 1000), (int)getpid(), s_role,
                          s_letters[level & 3]);
    if (n < sizeof line - 1) {
        int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
        n = m < 0 ? n : n + (size_t)m;
    }
    if (n > sizeof line - 2)
        n = sizeof line - 2;
    line[n++] = '\n';
    out = atomic_load(&s_stream);
    if (!out)
        out = stderr;
    fwrite(line, 1, n, out);
    fflush(out);
}

void log_write(log_level_t level, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log_vwrite(level, fmt, ap);
    va_end(ap);
}
