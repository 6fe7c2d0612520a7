/*
 * backend.c - open a backend by device name.
 *
 * "cpu" is always there.  "cuda:N" needs a build with NADER_HAVE_CUDA
 * (nvcc found at build time), the CUDA backend's library, and device N.
 *
 * The CUDA backend is a library of its own, nader-cuda.so, opened the
 * first time a CUDA device is asked for or counted: cuDNN, cuBLAS and the
 * CUDA runtime are over a gigabyte of shared objects, and loading them
 * cost every process (each CLI command, each CPU training job) a quarter
 * of a second and 150 MiB of resident memory.  Now only processes that
 * use a GPU pay, and a machine without the CUDA libraries runs the same
 * binaries on its CPU.  The library is looked for in
 * $NADER_CUDA_LIBRARY, then next to the executable: EXEDIR/lib/,
 * EXEDIR/../lib/ (the build folder's tools) and EXEDIR/../lib/nader/ (an
 * installation in PREFIX/bin).
 */
#include "backend.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef NADER_HAVE_CUDA
#include <dlfcn.h>
#include <pthread.h>
#include <unistd.h>
#endif

/* Parse the N of "cuda:N"; returns -1 when the text is not that. */
static int s_cuda_ordinal(const char *device)
{
    const char *p = device + 5;
    char *end;
    long v;

    if (strncmp(device, "cuda:", 5) != 0 || *p < '0' || *p > '9')
        return -1;
    errno = 0;
    v = strtol(p, &end, 10);
    if (errno || *end || v > 1024)
        return -1;
    return (int)v;
}

#ifdef NADER_HAVE_CUDA
#define CUDA_LIBRARY "nader-cuda.so"

static struct {
    pthread_once_t once;
    backend_t *(*make)(int, const backend_options_t *, char *, size_t);
    int (*count)(void);
    char why[PATH_MAX + 1024];    /* when make is NULL */
} s_cuda = {PTHREAD_ONCE_INIT, NULL, NULL, ""};

static void *s_cuda_open(const char *path, char *errs, size_t len)
{
    void *so = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    size_t used = strlen(errs);

    if (!so && used < len)
        snprintf(errs + used, len - used, "%s%s", used ? "; " : "",
                 dlerror());
    return so;
}

static void s_cuda_load(void)
{
    static const char *const where[] = {"lib/", "../lib/", "../lib/nader/"};
    const char *env = getenv("NADER_CUDA_LIBRARY");
    char exe[PATH_MAX], path[PATH_MAX + 64], tried[PATH_MAX + 512] = "";
    void *so = NULL;
    ssize_t n;

    if (env && *env) {
        so = s_cuda_open(env, tried, sizeof tried);
    } else if ((n = readlink("/proc/self/exe", exe, sizeof exe - 1)) > 0) {
        char *slash;
        exe[n] = 0;
        slash = strrchr(exe, '/');
        if (slash)
            slash[1] = 0;
        for (size_t i = 0; !so && i < sizeof where / sizeof *where; i++) {
            snprintf(path, sizeof path, "%s%s%s", exe, where[i],
                     CUDA_LIBRARY);
            if (access(path, F_OK) == 0)
                so = s_cuda_open(path, tried, sizeof tried);
        }
        if (!so && !tried[0])
            snprintf(tried, sizeof tried, "%s is not in lib/, ../lib/ nor "
                     "../lib/nader/ of %s (NADER_CUDA_LIBRARY names it "
                     "elsewhere)", CUDA_LIBRARY, exe);
    } else {
        snprintf(tried, sizeof tried, "cannot find the executable's "
                 "folder: %s", strerror(errno));
    }
    if (so) {
        *(void **)&s_cuda.make = dlsym(so, "backend_cuda_new");
        *(void **)&s_cuda.count = dlsym(so, "backend_cuda_device_count");
        if (!s_cuda.make || !s_cuda.count) {
            s_cuda.make = NULL;
            dlclose(so);
            snprintf(tried, sizeof tried, "%s lacks the backend's entry "
                     "points", CUDA_LIBRARY);
        }
    }
    if (!s_cuda.make)
        snprintf(s_cuda.why, sizeof s_cuda.why, "the CUDA backend cannot "
                 "be loaded: %s", tried);
}

static bool s_cuda_ready(void)
{
    pthread_once(&s_cuda.once, s_cuda_load);
    return s_cuda.make != NULL;
}
#endif

backend_t *backend_new(const char *device, const backend_options_t *opt,
                       char *err, size_t errlen)
{
    int ordinal;

    if (!device) {
        snprintf(err, errlen, "no device given");
        return NULL;
    }
    if (strcmp(device, "cpu") == 0)
        return backend_cpu_new(opt, err, errlen);

    ordinal = strcmp(device, "cuda") == 0 ? 0 : s_cuda_ordinal(device);
    if (ordinal < 0) {
        snprintf(err, errlen, "unknown device '%s' (expected cpu or cuda:N)",
                 device);
        return NULL;
    }
#ifdef NADER_HAVE_CUDA
    if (!s_cuda_ready()) {
        snprintf(err, errlen, "device '%s': %s", device, s_cuda.why);
        return NULL;
    }
    return s_cuda.make(ordinal, opt, err, errlen);
#else
    snprintf(err, errlen,
             "device '%s': this build has no CUDA support (built without "
             "nvcc)",
             device);
    return NULL;
#endif
}

void backend_destroy(backend_t **be)
{
    if (!be || !*be)
        return;
    (*be)->vt->destroy(*be);
    *be = NULL;
}

int backend_cuda_count(void)
{
#ifdef NADER_HAVE_CUDA
    int n = s_cuda_ready() ? s_cuda.count() : 0;
    return n < 0 ? 0 : n;
#else
    return 0;
#endif
}

const char *backend_cuda_why(void)
{
#ifdef NADER_HAVE_CUDA
    return s_cuda_ready() ? NULL : s_cuda.why;
#else
    return "this build has no CUDA support (built without nvcc)";
#endif
}
