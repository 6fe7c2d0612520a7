/*
 * designer.h - the offline designer: programmatic edits of a cell.
 *
 * When no language-model endpoint is configured the search still runs:
 * instead of asking a model to apply an inspiration, the designer picks
 * one of a fixed set of edits at random and applies it to the parent's
 * cell (insert an operation on an edge, replace an operation, add a skip
 * connection or a parallel convolution branch, change a convolution's
 * kernel size, dilation or groups, add a squeeze-and-excitation gate,
 * swap the activation or the normalisation).  Each result is validated
 * exactly like a Modifier answer (net_check at real widths) and dropped
 * when invalid or already known; the next edit is tried until one
 * passes.  It is the baseline the agents are measured against, and it
 * says what it is: every edit is described as "offline edit: ...".
 *
 * Ownership: designer_result_t owns its design (designer_result_free).
 */
#ifndef NADER_DESIGNER_H
#define NADER_DESIGNER_H

#include "agent.h"
#include "graph.h"
#include "modifier.h"
#include "net.h"

typedef enum designer_edit {
    DESIGNER_INSERT,   /* an operation on an edge */
    DESIGNER_REPLACE,  /* an activation or pooling by another */
    DESIGNER_SKIP,     /* Add of an earlier node into a later one */
    DESIGNER_BRANCH,   /* a parallel convolution, added */
    DESIGNER_KERNEL,   /* a convolution's kernel size */
    DESIGNER_DILATION, /* a convolution's dilation */
    DESIGNER_GROUPS,   /* a convolution's groups */
    DESIGNER_GATE,     /* a squeeze-and-excitation gate */
    DESIGNER_NORM,     /* BN <-> LN (channels-last) */
    DESIGNER_EDIT_COUNT
} designer_edit_t;

const char *designer_edit_name(designer_edit_t e);

typedef struct designer_result {
    graph_design_t *design;
    char hash[33];
    net_choice_t choice;
    designer_edit_t edit;
    char what[256]; /* "offline edit: kernel size of node 5 3 -> 5" */
    int tries;      /* edits tried, valid or not */
} designer_result_t;

void designer_result_free(designer_result_t *r);

/*
 * Try random edits of parent's cell (drawn from env's stream) until one
 * gives a valid design not known (known may be NULL) or max_tries edits
 * were tried.  Returns 0 with out->design set, 1 when no edit worked, -1
 * with a message in err on out of memory.
 */
int designer_mutate(agent_env_t *env, const graph_design_t *parent,
                    int max_tries, modifier_known_fn known, void *ctx,
                    designer_result_t *out, char *err, size_t errlen);

/*
 * Apply one given edit (for tests): as designer_mutate with a single
 * edit kind, choosing where at random.  Returns 0, 1 or -1 likewise.
 */
int designer_apply(agent_env_t *env, const graph_design_t *parent,
                   designer_edit_t edit, int max_tries, modifier_known_fn known,
                   void *ctx, designer_result_t *out, char *err, size_t errlen);

#endif
