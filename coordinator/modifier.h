/*
 * modifier.h - the Modifier agent: apply one inspiration to a design.
 *
 * The model is asked to change the parent's cell so that it carries out
 * the inspiration, keeping everything else and the channel contract.
 * Its answer is searched for the block whatever surrounds it (prose,
 * Markdown fences, bullets, the original block quoted before the new
 * one), parsed and checked at real widths with net_check; a failure goes
 * back to the model as the validator's lines, in the same conversation,
 * up to a retry limit.  A valid cell keeps the parent's stem and
 * downsample blocks when they still fit; when they do not (or when asked
 * to always), the model writes matching ones, checked the same way.
 * Finally the design's canonical hash is compared with every design
 * known, and a duplicate is dropped.
 *
 * Ownership: modify_result_t owns its design and strings
 * (modify_result_free).  Extracted texts are malloc'd for the caller.
 */
#ifndef NADER_MODIFIER_H
#define NADER_MODIFIER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "graph.h"
#include "net.h"
#include "reflector.h"

typedef struct modifier_config {
    int retries;      /* answers asked for after the first, 3 */
    int lessons;      /* experiences shown in the prompt, 3; 0 none */
    bool stem_always; /* ask for a stem and downsample every time */
    int max_errors;   /* validator lines sent back at once, 3 */
} modifier_config_t;

void modifier_config_default(modifier_config_t *c);

typedef enum modify_status {
    MODIFY_OK,        /* a new valid design */
    MODIFY_INVALID,   /* no valid block within the retries */
    MODIFY_DUPLICATE, /* valid, but the design is already known */
    MODIFY_NO_ANSWER  /* the model could not be reached */
} modify_status_t;

const char *modify_status_name(modify_status_t s);

typedef struct modify_result {
    modify_status_t status;
    graph_design_t *design; /* MODIFY_OK and DUPLICATE */
    char hash[33];          /* MODIFY_OK and DUPLICATE */
    net_choice_t choice;    /* width, parameters and MACs found */
    int answers;            /* model answers read */
    bool stem_new;          /* the model wrote stem and downsample */
    char *last_block;       /* MODIFY_INVALID: the last text tried */
    char *last_error;       /* MODIFY_INVALID, NO_ANSWER: why */
} modify_result_t;

void modify_result_free(modify_result_t *r);

/* Whether a design hash is already known (tree, store, this batch). */
typedef bool (*modifier_known_fn)(void *ctx, const char *hash);

/*
 * The experience sections of a Modifier prompt for insp: development
 * tips and research lessons most like it (malloc'd; "" when refl is NULL
 * or cfg->lessons is 0).  Not thread-safe with respect to refl: callers
 * running several modifications at once make these one at a time.
 */
char *modifier_lessons(const modifier_config_t *cfg, agent_env_t *env,
                       reflector_t *refl, const char *insp);

/*
 * Apply insp to parent.  lessons (from modifier_lessons, may be NULL) go
 * into the prompt; known may be NULL.  Safe to call from several threads
 * at once with their own env and out.  Returns 0 with the outcome in
 * *out, or an LLM_ERR_* code that must stop the search (budget, cancel,
 * a refused record, a replay miss) with a message in err.
 */
int modifier_apply(const modifier_config_t *cfg, agent_env_t *env,
                   const graph_design_t *parent, const char *insp,
                   const char *lessons, modifier_known_fn known, void *ctx,
                   modify_result_t *out, char *err, size_t errlen);

/*
 * Find the blocks in an answer.  Returns the text of the last cell block
 * (a block not named *_stem or *_downsample; lines that look like nodes
 * and edges without a header get one named "cell"), or NULL when there
 * is none.  *stem and *down, when not NULL, get the last stem and
 * downsample blocks found (or NULL).
 */
char *modifier_extract(const char *answer, char **stem, char **down);

/*
 * Rename a block text's header line to ##name##; malloc'd.  Text
 * without a header gets one.
 */
char *modifier_rename(const char *block, const char *name);

/*
 * Parse cell, stem and downsample texts (stem and down may be NULL: the
 * skeleton's defaults) as one design and check it with net_check.
 * Returns 0 with the design in *out (owned by the caller) and the width
 * found in *choice; 1 when the cell or the text is wrong; 2 when only the
 * stem or downsample blocks fail.  On 1 and 2, *lines gets up to
 * max_errors validator lines (malloc'd).
 */
int modifier_check(const net_config_t *net, int max_errors, const char *cell,
                   const char *stem, const char *down, graph_design_t **out,
                   net_choice_t *choice, char **lines);

/* The design's text with its cell named name (stem and downsample
 * follow: name_stem, name_downsample); malloc'd. */
char *modifier_design_text(const graph_design_t *d, const char *name);

#endif
