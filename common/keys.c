/*
 * keys.c - see keys.h.  The files are a few lines of `name = "value"`;
 * anything else on a line (comments, blank lines) is ignored, and a key
 * that does not decode from Z85 to 32 bytes is an error naming the file.
 */
#include "keys.h"

#include "fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <zmq.h>

struct keys_list {
    char *dir;
    uint8_t (*keys)[32];
    int n;
    struct timespec mtime;
    bool loaded;
    uint64_t checked_ms;
};

/* Find `field = "VALUE"` in text; copy the 40-char value. */
static int s_field(const char *text, const char *field, char out[41])
{
    size_t flen = strlen(field);

    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1
                                                                  : NULL) {
        const char *q = p, *e;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncmp(q, field, flen) != 0)
            continue;
        q += flen;
        while (*q == ' ' || *q == '\t' || *q == '=')
            q++;
        if (*q == '"')
            q++;
        e = q;
        while (*e && *e != '"' && *e != '\n' && *e != ' ')
            e++;
        if (e - q != KEYS_Z85_LEN)
            return -1;
        memcpy(out, q, KEYS_Z85_LEN);
        out[KEYS_Z85_LEN] = 0;
        return 0;
    }
    return -1;
}

static int s_read_small(const char *path, char *buf, size_t cap, char *err,
                        size_t errlen)
{
    FILE *f = fopen(path, "r");
    size_t n;

    if (!f) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return 0;
}

static int s_check_z85(const char *path, const char *what,
                       const char z85[41], char *err, size_t errlen)
{
    uint8_t raw[32];

    if (!zmq_z85_decode(raw, z85)) {
        snprintf(err, errlen, "%s: %s is not a Z85 key", path, what);
        return -1;
    }
    return 0;
}

int keys_load_pair(const char *path, char public_z85[41],
                   char secret_z85[41], char *err, size_t errlen)
{
    char text[1024];

    if (s_read_small(path, text, sizeof text, err, errlen) < 0)
        return -1;
    if (s_field(text, "public-key", public_z85) < 0 ||
        s_field(text, "secret-key", secret_z85) < 0) {
        snprintf(err, errlen, "%s: not a nader key pair file (needs "
                 "public-key and secret-key lines; make one with `nader "
                 "keygen`)", path);
        return -1;
    }
    if (s_check_z85(path, "public-key", public_z85, err, errlen) < 0 ||
        s_check_z85(path, "secret-key", secret_z85, err, errlen) < 0)
        return -1;
    return 0;
}

int keys_load_public(const char *path, char public_z85[41], char *err,
                     size_t errlen)
{
    char text[1024];

    if (s_read_small(path, text, sizeof text, err, errlen) < 0)
        return -1;
    if (s_field(text, "public-key", public_z85) < 0) {
        snprintf(err, errlen, "%s: no public-key line (make keys with "
                 "`nader keygen`)", path);
        return -1;
    }
    return s_check_z85(path, "public-key", public_z85, err, errlen);
}

static int s_write_file(const char *path, mode_t mode, const char *text,
                        char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    size_t n = strlen(text);

    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot create: %s", path,
                 strerror(errno));
        return -1;
    }
    if (write(fd, text, n) != (ssize_t)n || fsync(fd) < 0) {
        snprintf(err, errlen, "%s: cannot write: %s", path,
                 strerror(errno));
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    return 0;
}

int keys_generate(const char *dir, const char *name, char *err,
                  size_t errlen)
{
    char pub[41], sec[41], path[4096], text[512];

    if (!name[0] || strchr(name, '/')) {
        snprintf(err, errlen, "key name '%s' must be a plain file name",
                 name);
        return -1;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "cannot make a CURVE key pair: %s (is "
                 "libzmq built with libsodium?)", zmq_strerror(errno));
        return -1;
    }
    if (fs_mkdirs(dir, 0700) != 0) {
        snprintf(err, errlen, "%s: cannot make the folder: %s", dir,
                 strerror(errno));
        return -1;
    }
    snprintf(path, sizeof path, "%s/%s.key", dir, name);
    snprintf(text, sizeof text,
             "# nader CURVE key pair '%s': SECRET, keep it private.\n"
             "# Give the matching %s.pub to the other side.\n"
             "public-key = \"%s\"\nsecret-key = \"%s\"\n",
             name, name, pub, sec);
    if (s_write_file(path, 0600, text, err, errlen) < 0)
        return -1;
    snprintf(path, sizeof path, "%s/%s.pub", dir, name);
    snprintf(text, sizeof text,
             "# nader CURVE public key '%s'.\npublic-key = \"%s\"\n", name,
             pub);
    if (s_write_file(path, 0644, text, err, errlen) < 0) {
        snprintf(path, sizeof path, "%s/%s.key", dir, name);
        unlink(path);
        return -1;
    }
    memset(sec, 0, sizeof sec);
    return 0;
}

/* ------------------------------------------------------------ allow-list */

keys_list_t *keys_list_new(const char *dir)
{
    keys_list_t *l = calloc(1, sizeof *l);

    if (!l)
        return NULL;
    l->dir = strdup(dir ? dir : "");
    if (!l->dir) {
        free(l);
        return NULL;
    }
    return l;
}

void keys_list_destroy(keys_list_t **l)
{
    if (!l || !*l)
        return;
    free((*l)->dir);
    free((*l)->keys);
    free(*l);
    *l = NULL;
}

static bool s_has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);

    return n > m && strcmp(s + n - m, suffix) == 0;
}

static void s_reload(keys_list_t *l)
{
    DIR *d = opendir(l->dir);
    struct dirent *e;
    int cap = 0;

    l->n = 0;
    if (!d)
        return;
    while ((e = readdir(d))) {
        char path[4096], pub[41], err[256];
        if (!s_has_suffix(e->d_name, ".pub") &&
            !s_has_suffix(e->d_name, ".key"))
            continue;
        snprintf(path, sizeof path, "%s/%s", l->dir, e->d_name);
        if (keys_load_public(path, pub, err, sizeof err) < 0)
            continue;
        if (l->n == cap) {
            int ncap = cap ? 2 * cap : 16;
            void *grown = realloc(l->keys, (size_t)ncap * sizeof *l->keys);
            if (!grown)
                break;
            l->keys = grown;
            cap = ncap;
        }
        zmq_z85_decode(l->keys[l->n++], pub);
    }
    closedir(d);
}

bool keys_list_allows(keys_list_t *l, const uint8_t key[32])
{
    struct timespec ts;
    uint64_t now_ms;
    struct stat st;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now_ms = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    if (!l->loaded || now_ms - l->checked_ms >= 500) {
        l->checked_ms = now_ms;
        if (stat(l->dir, &st) < 0) {
            l->n = 0;
            l->loaded = true;
        } else if (!l->loaded || st.st_mtim.tv_sec != l->mtime.tv_sec ||
                   st.st_mtim.tv_nsec != l->mtime.tv_nsec) {
            l->mtime = st.st_mtim;
            l->loaded = true;
            s_reload(l);
        }
    }
    for (int i = 0; i < l->n; i++)
        if (memcmp(l->keys[i], key, 32) == 0)
            return true;
    return false;
}

int keys_list_count(keys_list_t *l)
{
    return l->n;
}
