/*
 * llm_fixture.h - start and stop the scripted endpoint
 * (tests/py/llm_server.py) from a C test.  Header-only because each test
 * is built from one source file.
 *
 * fixture_server_start() writes the script to a fresh temporary folder,
 * starts the server there and waits until it listens; the base URL
 * (http://127.0.0.1:PORT/v1) and the request log path are in the
 * returned struct.  Tests run from the repository root (tests/run.sh).
 */
#ifndef NADER_LLM_FIXTURE_H
#define NADER_LLM_FIXTURE_H

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct fixture_server {
    pid_t pid;
    char dir[256];
    char url[128];
    char log[300];
    char script[300];
} fixture_server_t;

static inline void fixture_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Make a temporary folder for a test; path written to out. */
static inline int fixture_tmpdir(char *out, size_t len)
{
    const char *base = getenv("TMPDIR");
    snprintf(out, len, "%s/nader-test-XXXXXX", base ? base : "/tmp");
    return mkdtemp(out) ? 0 : -1;
}

static inline int fixture_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static inline int fixture_server_start(fixture_server_t *s, const char *script)
{
    char portfile[320];

    memset(s, 0, sizeof *s);
    if (fixture_tmpdir(s->dir, sizeof s->dir) != 0)
        return -1;
    snprintf(s->script, sizeof s->script, "%s/script.json", s->dir);
    snprintf(s->log, sizeof s->log, "%s/requests.jsonl", s->dir);
    snprintf(portfile, sizeof portfile, "%s/port", s->dir);
    if (fixture_write(s->script, script) != 0)
        return -1;
    s->pid = fork();
    if (s->pid < 0)
        return -1;
    if (s->pid == 0) {
        /* A test that dies (a failed assertion) takes its server along. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        const char *py = getenv("PYTHON");
        execl(py ? py : "/usr/bin/python3", "python3", "tests/py/llm_server.py",
              "--script", s->script, "--port-file", portfile, "--log", s->log,
              (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(portfile, "r");
        int port = 0;
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port > 0) {
            snprintf(s->url, sizeof s->url, "http://127.0.0.1:%d/v1", port);
            return 0;
        }
        int st;
        if (waitpid(s->pid, &st, WNOHANG) == s->pid) {
            s->pid = 0;
            return -1;
        }
        fixture_sleep_ms(25);
    }
    return -1;
}

static inline void fixture_server_stop(fixture_server_t *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
        s->pid = 0;
    }
}

/* Lines of the request log that contain needle (all when NULL). */
static inline int fixture_log_count(const fixture_server_t *s,
                                    const char *needle)
{
    FILE *f = fopen(s->log, "r");
    char *line = NULL;
    size_t cap = 0;
    int n = 0;

    if (!f)
        return 0;
    while (getline(&line, &cap, f) > 0)
        if (!needle || strstr(line, needle))
            n++;
    free(line);
    fclose(f);
    return n;
}

/* Remove a temporary folder made by the fixture (best effort). */
static inline void fixture_rmdir(const char *dir)
{
    char cmd[400];
    if (strncmp(dir, "/tmp/", 5) != 0 && !getenv("TMPDIR"))
        return;
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return;
}

#endif
