/*
 * rng.h - counter-based random numbers shared by every backend.
 *
 * A DropPath mask must be the same on the CPU and on a GPU for the same
 * step, so that the two backends can be compared and a job resumed on
 * another device trains identically.  Values are a pure function of a
 * 64-bit key and an index (SplitMix64 finaliser), usable from C and from
 * CUDA device code alike.  The trainer's own stream (shuffling, crops,
 * flips) uses engine_rng_next() on a state it saves in checkpoints.
 */
#ifndef NADER_RNG_H
#define NADER_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define ENGINE_RNG_FN static __host__ __device__ __forceinline__
#else
#define ENGINE_RNG_FN static inline
#endif

ENGINE_RNG_FN uint64_t engine_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1) from (key, i). */
ENGINE_RNG_FN float engine_rng_uniform(uint64_t key, uint64_t i)
{
    uint64_t z = engine_rng_mix(key + (i + 1) * 0x9e3779b97f4a7c15ULL);
    return (float)(z >> 40) * (1.0f / 16777216.0f);
}

/* A key for (seed, step, node): distinct streams per use. */
ENGINE_RNG_FN uint64_t engine_rng_key(uint64_t seed, uint64_t step,
                                      uint64_t node)
{
    return engine_rng_mix(engine_rng_mix(seed ^ 0x6e61646572ULL) + step) ^
           engine_rng_mix(node + 0x9e3779b97f4a7c15ULL);
}

/* Sequential stream: *state advances by one per call. */
ENGINE_RNG_FN uint64_t engine_rng_next(uint64_t *state)
{
    *state += 0x9e3779b97f4a7c15ULL;
    return engine_rng_mix(*state);
}

#endif
