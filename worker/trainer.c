/*
 * trainer.c - the daemon's side of a trainer process: spawn, frame
 * reading, signals and reaping.  See trainer.h; the child's side is
 * trainer_child.c.
 *
 * posix_spawn is used rather than fork because the daemon is
 * multi-threaded (ZeroMQ's I/O threads): between fork and exec only
 * async-signal-safe calls are allowed, and posix_spawn does exactly the
 * one dup2 needed and the exec, nothing else.
 */
#include "trainer.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "wire.h"

extern char **environ;

struct trainer {
    pid_t pid;
    int fd;
    bool reaped;
    int status;
    uint8_t *buf;
    size_t len, cap;
    bool eof;
};

int trainer_frame_write(int fd, const void *buf, size_t len)
{
    uint8_t hdr[4] = {(uint8_t)len, (uint8_t)(len >> 8),
                      (uint8_t)(len >> 16), (uint8_t)(len >> 24)};
    const uint8_t *p = buf;
    size_t off = 0;

    if (len > TRAINER_FRAME_MAX)
        return -1;
    while (off < 4) {
        ssize_t n = write(fd, hdr + off, 4 - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    off = 0;
    while (off < len) {
        ssize_t n = write(fd, p + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        off += (size_t)n;
    }
    return 0;
}

int trainer_start(const char *exe, const Nader__TrainerTask *task,
                  trainer_t **out, char *err, size_t errlen)
{
    trainer_t *t = calloc(1, sizeof *t);
    posix_spawn_file_actions_t fa;
    char *argv[] = {(char *)"nader-worker", (char *)"--trainer-fd",
                    (char *)"3", NULL};
    int sv[2] = {-1, -1}, rc;
    size_t len = nader__trainer_task__get_packed_size(task);
    uint8_t *buf = malloc(len ? len : 1);

    *out = NULL;
    if (!t || !buf) {
        snprintf(err, errlen, "trainer: out of memory");
        goto fail;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        snprintf(err, errlen, "trainer: socketpair: %s", strerror(errno));
        goto fail;
    }
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, sv[1], 3);
    rc = posix_spawn(&t->pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(sv[1]);
    sv[1] = -1;
    if (rc != 0) {
        snprintf(err, errlen, "trainer: cannot start %s: %s", exe,
                 strerror(rc));
        goto fail;
    }
    t->fd = sv[0];
    nader__trainer_task__pack(task, buf);
    if (trainer_frame_write(t->fd, buf, len) < 0) {
        snprintf(err, errlen, "trainer: cannot hand over the job: %s",
                 strerror(errno));
        free(buf);
        buf = NULL;
        trainer_destroy(&t);
        return -1;
    }
    free(buf);
    fcntl(t->fd, F_SETFL, fcntl(t->fd, F_GETFL) | O_NONBLOCK);
    *out = t;
    return 0;
fail:
    if (sv[0] >= 0)
        close(sv[0]);
    if (sv[1] >= 0)
        close(sv[1]);
    free(buf);
    free(t);
    return -1;
}

int trainer_fd(const trainer_t *t)
{
    return t->fd;
}

pid_t trainer_pid(const trainer_t *t)
{
    return t->pid;
}

/* Read what is available into the buffer. */
static void s_fill(trainer_t *t)
{
    while (!t->eof) {
        ssize_t n;
        if (t->cap - t->len < 65536) {
            size_t cap = t->cap ? 2 * t->cap : 131072;
            uint8_t *b;
            if (cap > TRAINER_FRAME_MAX + (1u << 20)) {
                t->eof = true;
                return;
            }
            b = realloc(t->buf, cap);
            if (!b) {
                t->eof = true;
                return;
            }
            t->buf = b;
            t->cap = cap;
        }
        n = read(t->fd, t->buf + t->len, t->cap - t->len);
        if (n > 0) {
            t->len += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        t->eof = true;
    }
}

int trainer_read(trainer_t *t, Nader__Envelope **env)
{
    size_t flen;
    char err[256];

    *env = NULL;
    s_fill(t);
    if (t->len < 4)
        return t->eof ? -1 : 0;
    flen = (size_t)t->buf[0] | (size_t)t->buf[1] << 8 |
           (size_t)t->buf[2] << 16 | (size_t)t->buf[3] << 24;
    if (flen > TRAINER_FRAME_MAX)
        return -1;
    if (t->len < 4 + flen)
        return t->eof ? -1 : 0;
    if (wire_decode(t->buf + 4, flen, TRAINER_FRAME_MAX, env, err,
                    sizeof err) != WIRE_OK)
        return -1;
    memmove(t->buf, t->buf + 4 + flen, t->len - 4 - flen);
    t->len -= 4 + flen;
    return 1;
}

void trainer_signal(trainer_t *t, int sig)
{
    if (t && !t->reaped && t->pid > 0)
        kill(t->pid, sig);
}

int trainer_reap(trainer_t *t, bool block, char *how, size_t len)
{
    if (!t->reaped) {
        pid_t r;
        do
            r = waitpid(t->pid, &t->status, block ? 0 : WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            return 0;
        t->reaped = true;
        if (r < 0)
            t->status = 0x7f00;
    }
    if (WIFEXITED(t->status))
        snprintf(how, len, "exited with status %d", WEXITSTATUS(t->status));
    else if (WIFSIGNALED(t->status))
        snprintf(how, len, "killed by signal %d (%s%s)",
                 WTERMSIG(t->status), strsignal(WTERMSIG(t->status)),
                 WTERMSIG(t->status) == SIGKILL ? "; out of memory?" : "");
    else
        snprintf(how, len, "ended with wait status 0x%x", t->status);
    return 1;
}

bool trainer_exited_cleanly(const trainer_t *t)
{
    return t->reaped && WIFEXITED(t->status) && WEXITSTATUS(t->status) == 0;
}

void trainer_destroy(trainer_t **tp)
{
    trainer_t *t;
    char how[128];

    if (!tp || !*tp)
        return;
    t = *tp;
    if (!t->reaped && t->pid > 0) {
        kill(t->pid, SIGKILL);
        trainer_reap(t, true, how, sizeof how);
    }
    if (t->fd >= 0)
        close(t->fd);
    free(t->buf);
    free(t);
    *tp = NULL;
}
