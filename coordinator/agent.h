/*
 * agent.h - what every agent works with: the language-model client, the
 * prompt templates, how designs are checked, and a random stream.
 *
 * The random stream of an iteration is derived from the search seed and
 * the iteration number alone, so an iteration run again (after a
 * restart, or from a replay log) makes the same choices, sends the same
 * prompts and therefore finds its earlier answers in the memo.
 *
 * Ownership: an agent_env_t borrows everything it points to.
 */
#ifndef NADER_AGENT_H
#define NADER_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include "llm.h"
#include "net.h"
#include "prompt.h"
#include "rng.h"

typedef struct agent_env {
    llm_t *llm; /* NULL: no endpoint */
    const prompts_t *prompts;
    const net_config_t *net; /* skeleton, data set, budget */
    const char *dataset;     /* for prompts: "cifar10" */
    int iteration;
    uint64_t rng; /* this iteration's stream */
} agent_env_t;

/* Whether designs are two-input cells (a DARTS-style skeleton). */
static inline bool agent_two_input(const agent_env_t *e)
{
    return e->net && e->net->skeleton == NET_SKELETON_DARTS;
}

/* The stream of iteration it of a search seeded with seed. */
static inline uint64_t agent_rng_seed(uint64_t seed, int it)
{
    return engine_rng_mix(engine_rng_mix(seed ^ 0x6167656e74ULL) +
                          (uint64_t)it);
}

static inline uint64_t agent_rand(agent_env_t *e)
{
    return engine_rng_next(&e->rng);
}

/* Uniform in [0, n); n > 0. */
static inline int agent_rand_below(agent_env_t *e, int n)
{
    return (int)(agent_rand(e) % (uint64_t)n);
}

/* Uniform in [0, 1). */
static inline double agent_rand_unit(agent_env_t *e)
{
    return (double)(agent_rand(e) >> 11) / 9007199254740992.0;
}

#endif
