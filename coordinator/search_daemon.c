/*
 * search_daemon.c - the search inside nader-coordinator (see
 * search_daemon.h).
 */
#include "search_daemon.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "fsutil.h"
#include "log.h"
#include "search.h"

static atomic_bool s_signalled;
static atomic_bool s_running;

struct search_daemon {
    search_t *search;
    coord_t *coord;
    pthread_t th, mon;
    char results[PATH_MAX];
};

static void *s_search_main(void *arg)
{
    search_daemon_t *d = arg;
    char err[512];

    search_run(d->search);
    if (fs_mkdirs(d->results, 0755) != 0)
        log_warn("results folder %s: %s", d->results, strerror(errno));
    else if (search_export(d->search, d->results, err, sizeof err) != 0)
        log_warn("results folder: %s", err);
    else
        log_info("search results written to %s", d->results);
    atomic_store(&s_running, false);
    return NULL;
}

static void *s_monitor(void *arg)
{
    search_daemon_t *d = arg;

    while (atomic_load(&s_running) && !atomic_load(&s_signalled)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
    }
    bool stop_loop = atomic_load(&s_signalled);
    search_stop(d->search);
    pthread_join(d->th, NULL);
    if (stop_loop)
        coord_stop(d->coord);
    return NULL;
}

bool search_daemon_signal(void)
{
    if (!atomic_load(&s_running))
        return false;
    atomic_store(&s_signalled, true);
    return true;
}

int search_daemon_start(const config_t *cfg, coord_t *c, search_daemon_t **out,
                        char *err, size_t errlen)
{
    search_config_t sc;
    search_daemon_t *d;

    *out = NULL;
    if (!cfg->search_base || !cfg->search_base[0])
        return 0;
    d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "search: out of memory");
        return -1;
    }
    if (search_config_from(cfg, &sc, err, errlen) != 0) {
        free(d);
        return -1;
    }
    int rc = search_new(&sc, c, &d->search, err, errlen);
    snprintf(d->results, sizeof d->results, "%s/%s", cfg->run_results, sc.name);
    search_config_free(&sc);
    if (rc != 0) {
        free(d);
        return -1;
    }
    d->coord = c;
    atomic_store(&s_running, true);
    atomic_store(&s_signalled, false);
    if (pthread_create(&d->th, NULL, s_search_main, d) != 0) {
        atomic_store(&s_running, false);
        search_destroy(&d->search);
        free(d);
        snprintf(err, errlen, "search: cannot start its thread");
        return -1;
    }
    if (pthread_create(&d->mon, NULL, s_monitor, d) != 0) {
        search_stop(d->search);
        pthread_join(d->th, NULL);
        search_destroy(&d->search);
        free(d);
        snprintf(err, errlen, "search: cannot start its monitor");
        return -1;
    }
    *out = d;
    return 0;
}

void search_daemon_stop(search_daemon_t **dp)
{
    search_daemon_t *d = *dp;

    if (!d)
        return;
    atomic_store(&s_signalled, true);
    pthread_join(d->mon, NULL);
    search_destroy(&d->search);
    free(d);
    *dp = NULL;
}
