/*
 * reflector.h - the Reflector agent: experiences and their retrieval.
 *
 * Three kinds of experience are kept (the values match ExperienceKind in
 * proto/nader.proto):
 *
 *  - development: an edit whose block never passed validation, the
 *    validator's line, and a general tip the model draws from it;
 *  - research: an edit that lowered screening accuracy by more than a
 *    threshold, and the model's suggestion for avoiding such losses;
 *  - success: an edit that raised accuracy (no model call: the
 *    inspiration and the gain are the lesson).
 *
 * Retrieval picks the k experiences of a kind most similar to a query
 * (an inspiration, or the candidates being ranked): by cosine of
 * embeddings when the endpoint offers them, otherwise by cosine of word
 * counts.  The same similarity guides the choice of inspirations to
 * offer the Proposer when sampling is experience-guided.
 *
 * Ownership: the reflector owns its experiences; pointers it returns
 * stay valid until the next experience is added.
 */
#ifndef NADER_REFLECTOR_H
#define NADER_REFLECTOR_H

#include <stdbool.h>
#include <stdint.h>

#include "agent.h"
#include "reader.h"

typedef enum exp_kind {
    EXP_DEVELOPMENT = 0,
    EXP_RESEARCH = 1,
    EXP_SUCCESS = 2
} exp_kind_t;

const char *exp_kind_name(exp_kind_t k);

typedef struct experience {
    int64_t id; /* 1.. in order of creation */
    exp_kind_t kind;
    int iteration;
    char hash[33]; /* the child design; "" when none */
    char parent_hash[33];
    int64_t inspiration_id; /* -1: none */
    char *inspiration;
    char *error;  /* development: the validator's line */
    char *text;   /* the tip, suggestion or success note */
    double delta; /* child minus parent, points */
    float *emb;   /* unit embedding of the lesson; NULL */
    int dim;
} experience_t;

typedef struct reflector reflector_t;

reflector_t *reflector_new(void);
void reflector_destroy(reflector_t **r);

int reflector_count(const reflector_t *r);
const experience_t *reflector_get(const reflector_t *r, int i);

/* Add a copy of x as it is (restoring from the store).  x->id 0 gets
 * the next id.  Returns the id, or -1 when out of memory. */
int64_t reflector_add(reflector_t *r, const experience_t *x);

/* Deep copy and release of what an experience owns. */
int experience_copy(experience_t *dst, const experience_t *src);
void experience_free(experience_t *x);

/* The text retrieval compares with a query: the lesson and its idea. */
char *experience_key_text(const experience_t *x);

/*
 * Development experience for a failed edit: asks the model for a tip
 * (reflect_dev prompt), stores and returns the experience.  When the
 * model fails, the experience is kept with the error alone and
 * *llm_rc says why.  Returns NULL only when out of memory.
 */
const experience_t *reflector_development(reflector_t *r, agent_env_t *env,
                                          const char *block, const char *error,
                                          int64_t insp_id, const char *insp,
                                          int *llm_rc, char *err,
                                          size_t errlen);

/* Research experience for an edit that lost accuracy (reflect_res). */
const experience_t *reflector_research(reflector_t *r, agent_env_t *env,
                                       const char *parent, const char *child,
                                       const char *parent_hash,
                                       const char *child_hash,
                                       double parent_acc, double child_acc,
                                       int64_t insp_id, const char *insp,
                                       int *llm_rc, char *err, size_t errlen);

/* Success experience: no model call. */
const experience_t *reflector_success(reflector_t *r, agent_env_t *env,
                                      const char *parent_hash,
                                      const char *child_hash, double delta,
                                      int64_t insp_id, const char *insp);

/*
 * The k experiences of kind most similar to query, as prompt lines
 * ("- tip\n"), or "" when there are none (malloc'd).  Embeddings are
 * used when env->llm offers them (experiences without one are embedded
 * first), word counts otherwise.
 */
char *reflector_lessons(reflector_t *r, agent_env_t *env, exp_kind_t kind,
                        const char *query, int k);

/*
 * Experience-guided choice of n among the candidate inspirations cand[]
 * (ids into l): each is scored by how much it resembles ideas that
 * raised accuracy minus how much it resembles ones that lowered it, plus
 * a little noise from env's stream; the n best are written to out in
 * score order.  Returns how many were written.
 */
int reflector_guided_sample(reflector_t *r, agent_env_t *env, insp_list_t *l,
                            const int64_t *cand, int n_cand, int n,
                            int64_t *out);

/* Cosine of the word counts of two texts, in [0, 1]. */
double reflector_lexical_similarity(const char *a, const char *b);

/* Take the lesson from a reflection answer: the text in <tag>, else the
 * last non-empty line; squashed, cut to 80 words (malloc'd). */
char *reflector_parse_lesson(const char *answer, const char *tag);

#endif
