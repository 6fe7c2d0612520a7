/*
 * backend.c - open a backend by device name.
 *
 * "cpu" is always there; "cuda:N" only in builds with NADER_HAVE_CUDA
 * (nvcc found at build time), and then only when device N exists.  The
 * network and the trainer never know which one they hold.
 */
#include "backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return backend_cuda_new(ordinal, opt, err, errlen);
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
    int n = backend_cuda_device_count();
    return n < 0 ? 0 : n;
#else
    return 0;
#endif
}
