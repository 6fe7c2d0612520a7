/*
 * search_int.h - the inside of a search, shared by search.c (the loop),
 * search_state.c (the store and the link) and search_export.c (results
 * folders).  Not for other modules.
 */
#ifndef NADER_SEARCH_INT_H
#define NADER_SEARCH_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "agent.h"
#include "designer.h"
#include "reader.h"
#include "reflector.h"
#include "search.h"
#include "tree.h"

/* What a job is for; part of its tag "search:NAME:KIND". */
typedef enum s_fid { FID_SCREEN, FID_FULL, FID_SEED } s_fid_t;

/* The jobs of one tree node (0: none). */
typedef struct s_jobs {
    uint64_t screen, full;
    int n_seeds;
    uint64_t seeds[SEARCH_MAX_SEEDS];
    uint64_t seed_val[SEARCH_MAX_SEEDS];
    bool screen_in, full_in; /* result applied */
    bool seed_in[SEARCH_MAX_SEEDS];
} s_jobs_t;

/* A job of this search found in the store (resume). */
typedef struct s_known_job {
    char hash[33];
    s_fid_t fid;
    uint64_t seed;
    uint64_t id;
} s_known_job_t;

struct search {
    search_config_t cfg;
    coord_t *coord;
    store_t *store;
    coord_link_t *link;
    pthread_mutex_t link_lock;

    llm_t *llm; /* NULL: offline */
    prompts_t *prompts;
    net_config_t net;
    char *base_text; /* the base design as read */

    tree_t *tree;
    s_jobs_t *jobs; /* indexed by tree id */
    int jobs_cap;
    insp_list_t insps;
    int64_t insp_stored; /* highest inspiration id in the store */
    reflector_t *refl;
    int64_t exp_stored; /* highest experience id in the store */

    int iteration;   /* in progress */
    bool in_ladder;  /* resumed after the iterations ended */
    int answered;    /* Modifier conversations answered this iteration */
    int no_answer;   /* ... and those the endpoint never answered */
    char no_answer_why[256];
    char **expanded; /* hashes of designs chosen as parents */
    int n_expanded;
    uint64_t started_ms;
    double gpu_seconds;

    s_known_job_t *known; /* jobs found in the store */
    int n_known;

    atomic_bool stop; /* a budget: finish cleanly */
    atomic_bool quit; /* interrupted: leave to be resumed */
    bool stop_hard;   /* cancel what is queued */
    char stop_reason[256];

    pthread_mutex_t st_lock;
    search_status_t st;
};

/* ------------------------------------------------------ search_state.c */

/* Link calls (made from any thread; serialised). */
int ss_link_call(search_t *s, const Nader__LinkRequest *req,
                 Nader__LinkReply **reply, char *err, size_t errlen);

/* The LLM sink: store the exchange before its answer is used. */
int ss_exchange_sink(void *ctx, const llm_exchange_t *x);

/* Load everything of a stored search; 0 fresh, 1 resumed, -1 error. */
int ss_resume(search_t *s, char *err, size_t errlen);

/* Write the search record (iteration, expanded, phase). */
int ss_save(search_t *s, const char *phase, bool done, char *err,
            size_t errlen);

/* Store inspirations added to s->insps since the last call. */
int ss_store_inspirations(search_t *s, char *err, size_t errlen);

/* Store an experience unless it is stored already (same id). */
int ss_store_experience(search_t *s, const experience_t *x, char *err,
                        size_t errlen);

/*
 * Submit node's job of fidelity fid (seed for FID_SEED), unless the
 * store has it already.  Returns 0 (the job id is kept in s->jobs), 1
 * when the coordinator refused the design (node marked failed), -1 on
 * a link or store failure.
 */
int ss_submit(search_t *s, int node, s_fid_t fid, uint64_t seed, char *err,
              size_t errlen);

/*
 * Apply every result of this search's jobs that is in the store.
 * Returns the number of jobs still waiting among those of the nodes in
 * ids[] (all nodes when ids is NULL) at fidelity fid (-1: any).
 */
int ss_poll(search_t *s, const int *ids, int n, int fid);

/* Wait until the jobs of nodes ids[] at fid are done, the search is
 * stopped, or a hard budget is reached.  Returns 0, or -1 on error. */
int ss_wait(search_t *s, const int *ids, int n, int fid);

/* Cancel every job of this search that has no result yet. */
void ss_cancel_pending(search_t *s, const char *why);

/* Make room in s->jobs for node ids up to id. */
int ss_jobs_reserve(search_t *s, int id);

/* ------------------------------------------------------------ search.c */

void search_event(search_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void search_set_stop(search_t *s, bool hard, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool search_stopping(search_t *s);
/* Check the GPU-hour and deadline budgets; true when one is reached. */
bool search_hard_budget(search_t *s);
void search_status_refresh(search_t *s, const char *phase);
uint64_t search_now_ms(void);

#endif
