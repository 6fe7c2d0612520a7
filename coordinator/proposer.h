/*
 * proposer.h - the Proposer agent: which design to change next, and with
 * which inspirations, in which order.
 *
 * Parent choice (see tree.h): depth first along improvements (the
 * default), the best design, or left to the model, which then sees the
 * whole tree and picks (design, inspiration) pairs itself.
 *
 * Candidates are inspirations not yet applied on the parent's path or to
 * its children, sampled at random or guided by experience (reflector.h),
 * and ranked by the model; the ranking is read from whatever the model
 * answers: numbers out of range or repeated are dropped, candidates left
 * unranked keep the sampled order after the ranked ones, and an answer
 * with no ranking at all leaves the sampled order.  The ablations of the
 * paper are switches: no ranking (a random proposer), no Reader (the
 * model invents the inspirations for each parent), no experience (no
 * lessons in the prompt, random sampling).
 *
 * Ownership: proposals and their strings are owned by the caller
 * (proposals_free).
 */
#ifndef NADER_PROPOSER_H
#define NADER_PROPOSER_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "reader.h"
#include "reflector.h"
#include "tree.h"

typedef enum proposer_parent {
    PROPOSER_PARENT_DFS,
    PROPOSER_PARENT_BEST,
    PROPOSER_PARENT_LLM
} proposer_parent_t;

typedef enum proposer_sample {
    PROPOSER_SAMPLE_RANDOM,
    PROPOSER_SAMPLE_GUIDED
} proposer_sample_t;

/* Parse "dfs", "best", "llm" / "random", "guided"; -1 when unknown. */
int proposer_parent_parse(const char *s);
int proposer_sample_parse(const char *s);
const char *proposer_parent_name(proposer_parent_t p);
const char *proposer_sample_name(proposer_sample_t s);

typedef struct proposer_config {
    proposer_parent_t parent;
    proposer_sample_t sample;
    int candidates; /* inspirations offered per ranking, 10 */
    bool rank;      /* false: random proposer (no model ranking) */
    int invent;     /* > 0: no Reader; the model invents this many
                       inspirations for each parent */
    int lessons;    /* experiences shown in prompts; 0: none */
    int pairs;      /* LLM parent mode: pairs asked for, 6 */
} proposer_config_t;

void proposer_config_default(proposer_config_t *c);

typedef struct proposal {
    int parent; /* tree node */
    int64_t insp_id;
    char *insp; /* its text */
} proposal_t;

typedef struct proposals {
    int n;
    proposal_t *v;
    char note[256]; /* what was unusual ("ranking unreadable") */
} proposals_t;

void proposals_free(proposals_t *p);

/* Constraints from the search for a further round of one iteration. */
typedef struct proposer_hint {
    int parent;             /* >= 0: use this parent */
    const int64_t *exclude; /* inspirations already tried */
    int n_exclude;
} proposer_hint_t;

/*
 * Propose, most promising first.  insps may grow (invented ideas).
 * refl may be NULL (no experience); hint may be NULL.  Returns 0 (p->n may be 0
 * when no inspiration is left), or an LLM_ERR_* code that the search must stop
 * on (budget, cancel), with a message in err.  Other model failures are
 * not fatal: the sampled order is used and p->note says so.
 */
int proposer_propose(const proposer_config_t *cfg, agent_env_t *env,
                     tree_t *tree, insp_list_t *insps, reflector_t *refl,
                     const proposer_hint_t *hint, proposals_t *p, char *err,
                     size_t errlen);

/*
 * Read a ranking of n candidates (numbered 1..n) from an answer.  Fills
 * order[0..n) with 0-based candidate indices: the ranked ones first,
 * the rest in their own order.  Returns how many were ranked.
 */
int proposer_parse_ranking(const char *answer, int n, int *order);

#endif
