/* rng: the project's one seeded random number generator.
 *
 * Algorithm: xoshiro256** (Blackman and Vigna, 2018), 256 bits of state,
 * seeded by running splitmix64 over (seed, stream). Streams give independent
 * sequences from one seed, so study i of a synthetic corpus draws from
 * stream i and does not depend on how many numbers study i-1 drew. The state
 * is four uint64 words: save it in a checkpoint and a run resumes exactly.
 * Doubles take the top 53 bits, floats the top 24; rng_below is unbiased
 * (Lemire's multiply-and-reject); normals use Box-Muller without a cached
 * spare, so each call consumes exactly two uniforms. */
#ifndef FVLM_RNG_H
#define FVLM_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];
} Rng;

void rng_seed(Rng *r, uint64_t seed, uint64_t stream);
uint64_t rng_u64(Rng *r);
uint32_t rng_u32(Rng *r);
double rng_uniform(Rng *r);                  /* [0, 1) */
float rng_uniformf(Rng *r);                  /* [0, 1) */
double rng_range(Rng *r, double lo, double hi); /* [lo, hi) */
uint64_t rng_below(Rng *r, uint64_t n);      /* [0, n), n > 0 */
double rng_normal(Rng *r);                   /* mean 0, sd 1 */
int rng_bernoulli(Rng *r, double p);
void rng_shuffle_int(Rng *r, int *a, size_t n);  /* Fisher-Yates */

/* splitmix64 step, exposed for hashing small keys into seeds. */
uint64_t rng_splitmix64(uint64_t *x);

#endif
