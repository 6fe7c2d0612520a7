/*
 * coord_metrics.c - the poll loop's side of the metrics server: copy
 * the scheduler's figures (jobs by state, workers and what each device
 * is doing) into a metrics_figures_t and publish it (metrics.h).
 *
 * Called at the end of every turn but publishing at most every
 * PUBLISH_US, so a busy loop spends nothing noticeable on it and a
 * scrape sees figures at most that old.
 */
#include "coord_int.h"

#include <stdlib.h>
#include <string.h>

#include "wire.h"

#define PUBLISH_US 250000

typedef struct s_collect {
    metrics_slot_t *slots;
    int n, cap, workers;
} s_collect_t;

static int s_worker(void *ctx, sched_worker_t *w)
{
    s_collect_t *k = ctx;
    sched_worker_info_t info;

    sched_worker_info(w, &info);
    k->workers++;
    for (int i = 0; i < info.n_slots; i++) {
        sched_slot_info_t sl;
        metrics_slot_t *m;

        if (k->n == k->cap) {
            int cap = k->cap ? 2 * k->cap : 16;
            metrics_slot_t *v = realloc(k->slots, (size_t)cap * sizeof *v);
            if (!v)
                return 1;
            k->slots = v;
            k->cap = cap;
        }
        sched_worker_slot(w, i, &sl);
        m = &k->slots[k->n++];
        memset(m, 0, sizeof *m);
        snprintf(m->worker, sizeof m->worker, "%s", info.name);
        snprintf(m->device, sizeof m->device, "%s", sl.device);
        m->busy = sl.job != 0;
        m->images_per_s = sl.job ? sl.images_per_s : 0;
    }
    return 0;
}

void coord_metrics_publish(coord_t *c, bool now)
{
    s_collect_t k = {0};
    sched_counts_t n;
    metrics_figures_t f = {0};
    uint64_t t = wire_mono_us();

    if (!now && t - c->metrics_us < PUBLISH_US)
        return;
    c->metrics_us = t;
    sched_counts(c->sched, &n);
    sched_workers_each(c->sched, s_worker, &k);
    f.jobs[0] = n.queued;
    f.jobs[1] = n.leased;
    f.jobs[2] = n.running;
    f.jobs[3] = n.done;
    f.jobs[4] = n.failed;
    f.jobs[5] = n.cancelled;
    f.results = n.results;
    f.load_test_results = n.load_test_results;
    f.workers = k.workers;
    f.n_slots = k.n;
    f.slots = k.slots;
    f.paused = sched_paused(c->sched);
    f.turns = c->turns;
    f.commits = c->commits;
    f.uptime_s = (double)(wire_now_us() - c->started_wall_us) / 1e6;
    metrics_publish(c->metrics, &f);
    free(k.slots);
}
