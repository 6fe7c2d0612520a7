/*
 * search.h - the NADER search: iterations of agents over the tree of
 * designs, with every design trained by the coordinator's workers.
 *
 * One iteration: the Proposer picks a parent and ranks inspirations for
 * it; the Modifier turns them, one per conversation and several
 * conversations at once, into new valid designs until the iteration's
 * width is reached (failed edits become development experience); each
 * new design is submitted for a screening run; when the screening
 * results are in, the Reflector compares every child with its parent
 * (research experience for losses beyond a threshold, success for
 * gains), and the best fraction of all screened designs is promoted to
 * the full protocol.  After the last iteration the full runs are waited
 * for and the best design is trained again with extra seeds.  Without an
 * endpoint the offline designer replaces the Proposer and Modifier.
 *
 * The search runs on a thread of its own (an agent thread) and talks to
 * the coordinator's poll loop over the in-process link: designs, jobs,
 * experiences, inspirations, LLM exchanges and the search's own progress
 * are written by the loop and are durable before the search acts on
 * them, so a slow model never delays a heartbeat, and a search killed at
 * any moment resumes where it was.  On resume the iteration in progress
 * is run again from its start with the same random stream; its LLM
 * calls are answered from the stored exchanges, its designs and jobs are
 * found in the store instead of being submitted twice, and its
 * experiences are not recorded twice.  The same mechanism replays a
 * whole search from an exchange log (llm.replay).
 *
 * Budgets stop the search cleanly and say why: iterations and designs
 * (no new designs; those accepted are still trained and the ladder
 * runs), tokens and cost (likewise, reached by the LLM client), GPU
 * hours and the wall-clock deadline (nothing new is started and jobs
 * still queued are cancelled).
 *
 * Ownership: search_new returns a search owned by the caller
 * (search_destroy(&s)); it borrows the coordinator.
 */
#ifndef NADER_SEARCH_H
#define NADER_SEARCH_H

#include <stdbool.h>
#include <stdint.h>

#include "coordinator.h"
#include "llm.h"
#include "modifier.h"
#include "proposer.h"

#define SEARCH_MAX_SEEDS 8

typedef struct search_config {
    char name[64];     /* tag of the search's jobs and records */
    char base[4096];   /* block file of the base design */
    char dataset[32];  /* cifar10, cifar10-valid, cifar100, ... */
    char skeleton[16]; /* nb201, darts */
    int iterations;    /* budget: iterations, 10 */
    int width;         /* new designs per iteration, 3 */
    uint64_t seed;     /* agents' stream and first training seed */

    proposer_config_t proposer;
    modifier_config_t modifier;
    bool experience;           /* false: the no-experience ablation */
    double research_threshold; /* points of screening accuracy, 0.5 */
    char inspirations[4096];   /* inspiration list to import, or "" */
    char **papers;             /* paper text files for the Reader */
    int n_papers;
    int reader_chunks;      /* pieces read per paper (0: all), 4 */
    char prompts_dir[4096]; /* templates overriding the built-in */
    bool offline;           /* use the offline designer */
    int designer_tries;     /* edits tried per offline design, 50 */
    int rounds;             /* proposal rounds per iteration, 3 */

    int screen_epochs;    /* 12 */
    int full_epochs;      /* 200 */
    double full_fraction; /* promoted to the full protocol, 0.2 */
    int n_final_seeds;
    uint64_t final_seeds[SEARCH_MAX_SEEDS]; /* 888, 999 */
    int64_t max_steps;                      /* > 0: cap each run (quick runs) */
    int64_t param_budget;                   /* 0: the skeleton's default */
    int cells_per_stage;                    /* 0: the skeleton's default */
    int stem_scale;                         /* 1, 2, 4 or 8; 0: 1 */
    int batch;                              /* 0: the recipe's */
    int force_width;                        /* > 0: this base width */

    int max_designs;      /* budget: designs (0: none) */
    double max_gpu_hours; /* budget: sum of training time (0: none) */
    int64_t deadline_ms;  /* budget: since the search began (0) */

    bool use_llm;     /* an endpoint (or a replay log) is set */
    llm_config_t llm; /* strings point into the fields below */
    char llm_base_url[512], llm_model[128], llm_embed_model[128];
    char llm_key_env[64];
    char llm_replay[4096]; /* exchange log to replay, or "" */
} search_config_t;

/* Fill c with defaults (offline, no papers, the fidelities above). */
void search_config_default(search_config_t *c);
void search_config_free(search_config_t *c);

/*
 * Fill c from the coordinator's configuration (the search.*, train.*,
 * budget.* and llm.* keys of common/config.c).  Paper paths are taken
 * relative to the configuration file.  Returns 0, or -1 with a message
 * naming the key in err.  c owns its paper list (search_config_free).
 */
int search_config_from(const config_t *cfg, search_config_t *c, char *err,
                       size_t errlen);

/* A snapshot for a live table. */
typedef struct search_status {
    char phase[16]; /* "start", "search", "ladder", "done" */
    int iteration, iterations;
    int designs; /* in the tree, the base included */
    int screened, failed, pending;
    int full_done, full_pending;
    int best; /* tree id, -1 */
    char best_name[48];
    double best_acc; /* its score */
    llm_usage_t usage;
    double gpu_hours;
    double elapsed_s;
    bool offline;
    bool done;
    char stop_reason[256];
    char last_event[256];
} search_status_t;

typedef struct search search_t;

/*
 * Make a search over coordinator c (NULL for search_load only).  Checks
 * the configuration, reads the base design, opens the LLM client.
 * Nothing is stored yet.  Returns 0, or -1 with err.
 */
int search_new(const search_config_t *cfg, coord_t *c, search_t **out,
               char *err, size_t errlen);
void search_destroy(search_t **s);

/*
 * Run the search to its end (or until search_stop) in the calling
 * thread, resuming a stored one of the same name.  Returns 0 when it
 * finished or was stopped cleanly (see the status for why), -1 on a
 * failure it could not go on from (a store or link failure), logged.
 */
int search_run(search_t *s);

/*
 * For tools: load the stored search of cfg's name from store (opened
 * read-only by the caller) without a coordinator, so that its tree,
 * leaderboard and results folder can be shown.  s must have been made
 * with search_new(cfg, NULL, ...).  Returns 0, or -1 with err (no such
 * search in the store).
 */
int search_load(search_t *s, store_t *store, char *err, size_t errlen);

/* Ask a running search to stop soon; safe from any thread. */
void search_stop(search_t *s);

/* A consistent snapshot; safe from any thread. */
void search_status_get(search_t *s, search_status_t *st);

/*
 * Write the results folder: best.txt (the best design's blocks),
 * designs.jsonl, results.jsonl, llm.jsonl, experiences.jsonl,
 * inspirations.json, tree.txt, tree.json, leaderboard.txt and
 * summary.json.  Reads the store; safe after search_run returned.
 * Returns 0, or -1 with err.
 */
int search_export(search_t *s, const char *dir, char *err, size_t errlen);

/* The leaderboard (top n designs by score) as text lines (malloc'd). */
char *search_leaderboard(search_t *s, int n);

/* The tree rendered as in tree.txt, or as tree.json (malloc'd). */
char *search_tree_text(search_t *s, bool with_designs);
char *search_tree_json(search_t *s);

#endif
