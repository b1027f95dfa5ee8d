/* torture_rand.h — the deterministic random numbers of the torture harness (splitmix64): the
 * same seed gives the same fault schedule and the same operation mix. */
#ifndef CAIRN_TORTURE_RAND_H
#define CAIRN_TORTURE_RAND_H

#include <stdint.h>

/* Next number of the sequence whose state is *s. */
static inline uint64_t t_rand_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A state for stream `stream` of `seed` (independent streams for independent uses). */
static inline uint64_t t_rand_seed(uint64_t seed, uint64_t stream)
{
	uint64_t s = seed ^ (stream * 0xd1342543de82ef95ull);
	return t_rand_next(&s);
}

/* Uniform in [0, n) (n > 0; the bias of the modulo is negligible for our small n). */
static inline uint64_t t_rand_below(uint64_t *s, uint64_t n)
{
	return t_rand_next(s) % n;
}

/* Uniform in [lo, hi]. */
static inline int t_rand_range(uint64_t *s, int lo, int hi)
{
	return hi <= lo ? lo : lo + (int)t_rand_below(s, (uint64_t)(hi - lo + 1));
}

#endif /* CAIRN_TORTURE_RAND_H */
