/*
 * search_daemon.h - the search inside `nader-coordinator`: when the
 * configuration sets search.base, the daemon runs that search on an
 * agent thread beside its poll loop, resuming it after a restart, and
 * writes its results folder (run.results/NAME) when it ends.
 *
 * Shutdown order matters: the search talks to the loop over the link,
 * so on SIGTERM the search is stopped first and the loop after it.
 * search_daemon_signal() is what the daemon's signal handler calls; it
 * only sets a flag, and a small monitor thread does the rest.
 *
 * Ownership: search_daemon_start returns an object owned by the caller
 * (search_daemon_stop(&d) ends and frees it); it borrows the
 * coordinator, which must outlive it.
 */
#ifndef NADER_SEARCH_DAEMON_H
#define NADER_SEARCH_DAEMON_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "coordinator.h"

typedef struct search_daemon search_daemon_t;

/*
 * Start the configured search (nothing, with *out NULL, when search.base
 * is empty).  cfg may be freed afterwards.  Returns 0, or -1 with err.
 */
int search_daemon_start(const config_t *cfg, coord_t *c, search_daemon_t **out,
                        char *err, size_t errlen);

/*
 * For the signal handler (async-signal-safe): returns true when a search
 * is running, which will then be stopped and the coordinator after it;
 * false when the caller should stop the coordinator itself.
 */
bool search_daemon_signal(void);

/* Stop the search if it runs, wait for it, free d. */
void search_daemon_stop(search_daemon_t **d);

#endif
