/*
 * config.h - the coordinator's configuration: one declarative table.
 *
 * Every key nader reads from a YAML file is one row of a table in
 * config.c: its dotted name ("heartbeat.interval"), its type, where it
 * lives in config_t, its default, its limits or checker, whether `nader
 * set` may change it while the daemon runs, and a doc string.  The file
 * parser, `--set KEY=VALUE` overrides, live changes and the generated
 * docs/configuration.md all read that one table, so a key added there is
 * parsed, checked and documented everywhere at once.
 *
 * The YAML file is a tree of mappings; nested mappings name the dotted
 * keys (`heartbeat: {interval: 1s}` is heartbeat.interval).  Unknown keys
 * are errors naming the file and line, so a misspelt key is never
 * silently ignored.  Relative paths in a file are taken relative to the
 * file's folder.
 *
 * Ownership: strings inside config_t belong to it; config_free() releases
 * them.  A config_t is filled by config_defaults() first.
 */
#ifndef NADER_CONFIG_H
#define NADER_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum config_type {
    CONFIG_STRING,   /* char * */
    CONFIG_PATH,     /* char *, relative to the config file's folder */
    CONFIG_INT,      /* int64_t */
    CONFIG_BOOL,     /* bool: true/false, yes/no, on/off */
    CONFIG_DOUBLE,   /* double */
    CONFIG_MS,       /* int64_t milliseconds: "250ms", "5s", "2m", "1h" */
    CONFIG_BYTES,    /* int64_t bytes: "512", "64KiB", "1GiB", "2G" */
    CONFIG_LIST      /* char ** NULL-terminated: a YAML sequence, or one
                        string with comma-separated items */
} config_type_t;

typedef struct config config_t;

/*
 * A checker for values beyond min/max: returns 0 when v (a pointer to the
 * field's type) is acceptable, else -1 with a reason written to err.
 */
typedef int (*config_check_fn)(const void *v, char *err, size_t errlen);

typedef struct config_key {
    const char *name;
    config_type_t type;
    size_t offset;          /* of the field in config_t */
    const char *def;        /* default, spelled as in a file */
    double min, max;        /* for numbers; ignored when min > max */
    config_check_fn check;  /* NULL: no further check */
    bool live;              /* `nader set` may change it at run time */
    const char *doc;
} config_key_t;

/* Everything the coordinator reads from its file. */
struct config {
    char *state_dir;
    char *workers_endpoint;
    char *status_endpoint;
    char *admin_endpoint;
    int64_t status_max_request;
    bool metrics_enabled;
    char *metrics_address;  /* HOST:PORT of the Prometheus endpoint */
    int64_t heartbeat_interval_ms;
    int64_t heartbeat_timeout_ms;
    int64_t reattach_grace_ms;
    int64_t jobs_max_attempts;
    int64_t jobs_max_running;
    bool jobs_paused;
    int64_t jobs_checkpoint_every;
    int64_t jobs_priority;
    int64_t store_map_size;
    int64_t store_map_size_max;
    bool security_curve;
    char *security_secret_key;
    char *security_worker_keys;
    char *security_admin_keys;
    int64_t max_message_bytes;
    char *log_level;
    char *log_file;

    /* The search (coordinator/search.c); keys search.*, train.*,
     * budget.*, llm.*, and `nader run`'s run.* and data.*. */
    char *search_name;
    char *search_base;      /* empty: no search, evaluation service only */
    char *search_dataset;
    char *search_skeleton;
    int64_t search_iterations;
    int64_t search_width;
    int64_t search_seed;
    char *search_parent;
    char *search_sample;
    int64_t search_candidates;
    bool search_rank;
    int64_t search_invent;
    bool search_experience;
    int64_t search_lessons;
    int64_t search_retries;
    bool search_stem_always;
    double search_research_threshold;
    char *search_inspirations;
    char **search_papers;
    int64_t search_reader_chunks;
    char *search_prompts;
    bool search_offline;
    int64_t search_designer_tries;
    int64_t search_rounds;
    int64_t search_pairs;
    int64_t train_screen_epochs;
    int64_t train_full_epochs;
    double train_full_fraction;
    char **train_final_seeds;
    int64_t train_max_steps;
    int64_t train_budget;
    int64_t train_cells_per_stage;
    int64_t train_stem_scale;
    int64_t train_batch;
    int64_t train_width;
    int64_t budget_designs;
    int64_t budget_tokens;
    double budget_cost;
    double budget_gpu_hours;
    int64_t budget_deadline_ms;
    char *llm_base_url;
    char *llm_model;
    char *llm_embed_model;
    char *llm_api_key_env;
    double llm_temperature;
    int64_t llm_max_tokens;
    int64_t llm_timeout_ms;
    int64_t llm_connect_timeout_ms;
    int64_t llm_retries;
    int64_t llm_backoff_ms;
    int64_t llm_backoff_max_ms;
    int64_t llm_concurrency;
    double llm_price_prompt;
    double llm_price_completion;
    double llm_price_embed;
    char *llm_replay;
    int64_t run_workers;
    char *run_device;
    int64_t run_threads;
    char *run_results;
    char *data_dir;
    char *data_generate;
    int64_t data_train_images;
    int64_t data_test_images;

    char *source;           /* the file read, "" for defaults only */
};

/* The table, and its length through *n. */
const config_key_t *config_keys(int *n);

/* Find a key by its dotted name; NULL when there is none. */
const config_key_t *config_key_find(const char *name);

/* Fill c with every default.  Returns 0, or -1 when out of memory. */
int config_defaults(config_t *c);

/*
 * Read a YAML file over c (which holds defaults or earlier values).
 * Returns 0, or -1 with "FILE:LINE: what" in err; on failure c may hold
 * some of the file's values but is still a valid config to free.
 */
int config_load_file(config_t *c, const char *path, char *err,
                     size_t errlen);

/* Parse the same from a string (for tests); name is used in messages. */
int config_load_string(config_t *c, const char *text, size_t len,
                       const char *name, char *err, size_t errlen);

/*
 * Set one key from its text spelling, as in a file.  Relative paths are
 * taken as they are (relative to the working directory).  Returns 0, or
 * -1 with a message in err naming the key and the problem; c is then
 * unchanged.
 */
int config_set(config_t *c, const char *key, const char *value, char *err,
               size_t errlen);

/*
 * config_set() for one "KEY=VALUE" argument (the --set of the daemons and
 * of nader run and tree).  Returns 0, or -1 with a message in err (not of
 * the form, or config_set's reason); c is then unchanged.
 */
int config_set_pair(config_t *c, const char *pair, char *err, size_t errlen);

/* Write the value of key in c as text into buf.  Returns 0, or -1 when
 * the key is unknown. */
int config_get(const config_t *c, const char *key, char *buf, size_t len);

/* Free what c owns and zero it. */
void config_free(config_t *c);

/* Parsers behind the typed keys, for command-line flags too.  Each
 * returns 0, or -1 when text is not of the form. */
int config_parse_ms(const char *text, int64_t *ms);
int config_parse_bytes(const char *text, int64_t *bytes);
int config_parse_bool(const char *text, bool *v);

#endif
