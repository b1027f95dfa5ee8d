/* hist.h: a log-linear latency histogram (HDR-like, fixed relative error) for cairn-bench. */
#ifndef CAIRN_BENCH_HIST_H
#define CAIRN_BENCH_HIST_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/*
 * Values are nanoseconds. Below 2^HIST_SUB_BITS every value has its own bucket; above, each
 * power-of-two range [2^k, 2^(k+1)) is cut into 2^(HIST_SUB_BITS-1) equal buckets, so a
 * bucket is never wider than 1/2^(HIST_SUB_BITS-1) of its values (0.8% with 8 bits), as in
 * HdrHistogram with two significant digits. Values of 2^HIST_MAX_LOG2 ns (~18 minutes) and
 * more land in the last bucket; `max` stays exact.
 */
#define HIST_SUB_BITS  8u
#define HIST_MAX_LOG2  40u
#define HIST_HALF      (1u << (HIST_SUB_BITS - 1u))
#define HIST_N_BUCKETS ((HIST_MAX_LOG2 - HIST_SUB_BITS + 2u) * HIST_HALF)

struct hist {
	uint64_t counts[HIST_N_BUCKETS];
	uint64_t total;
	uint64_t min, max;
	double sum;
};

static inline void hist_init(struct hist *h)
{
	memset(h, 0, sizeof(*h));
	h->min = UINT64_MAX;
}

static inline unsigned hist_msb(uint64_t v)
{
	return 63u - (unsigned)__builtin_clzll(v);
}

static inline size_t hist_index(uint64_t v)
{
	unsigned e;
	size_t i;

	if (v < (1u << HIST_SUB_BITS)) {
		return (size_t)v;
	}
	e = hist_msb(v) - (HIST_SUB_BITS - 1u); /* v >> e is in [HALF, 2 * HALF) */
	i = (size_t)e * HIST_HALF + (size_t)(v >> e);
	return i < HIST_N_BUCKETS ? i : HIST_N_BUCKETS - 1u;
}

/* The lowest value of bucket i and the bucket's width. */
static inline void hist_bucket(size_t i, uint64_t *low, uint64_t *width)
{
	unsigned e;

	if (i < (1u << HIST_SUB_BITS)) {
		*low = i;
		*width = 1;
		return;
	}
	e = (unsigned)(i / HIST_HALF) - 1u;
	*low = (uint64_t)(i - (size_t)e * HIST_HALF) << e;
	*width = (uint64_t)1 << e;
}

static inline void hist_record(struct hist *h, uint64_t v)
{
	h->counts[hist_index(v)]++;
	h->total++;
	h->sum += (double)v;
	if (v < h->min) {
		h->min = v;
	}
	if (v > h->max) {
		h->max = v;
	}
}

static inline void hist_merge(struct hist *dst, const struct hist *src)
{
	size_t i;

	for (i = 0; i < HIST_N_BUCKETS; i++) {
		dst->counts[i] += src->counts[i];
	}
	dst->total += src->total;
	dst->sum += src->sum;
	if (src->min < dst->min) {
		dst->min = src->min;
	}
	if (src->max > dst->max) {
		dst->max = src->max;
	}
}

/*
 * The value at quantile q (0..1): the middle of the bucket holding the ceil(q * total)-th
 * smallest value, clamped to [min, max]. 0 for an empty histogram.
 */
static inline uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0, low, width, v;
	size_t i;

	if (h->total == 0) {
		return 0;
	}
	rank = (uint64_t)(q * (double)h->total + 0.999999);
	if (rank < 1) {
		rank = 1;
	}
	if (rank > h->total) {
		rank = h->total;
	}
	for (i = 0; i < HIST_N_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank) {
			break;
		}
	}
	if (i == HIST_N_BUCKETS) {
		return h->max;
	}
	hist_bucket(i, &low, &width);
	v = low + width / 2;
	if (v < h->min) {
		v = h->min;
	}
	if (v > h->max) {
		v = h->max;
	}
	return v;
}

#endif /* CAIRN_BENCH_HIST_H */
