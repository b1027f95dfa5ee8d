/* lincheck_search.h — internal to the checker: the search for a linearization of one key's ops. */
#ifndef CAIRN_TORTURE_LINCHECK_SEARCH_H
#define CAIRN_TORTURE_LINCHECK_SEARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "test/torture/lincheck.h"

/* What an operation does to the register, as far as the search is concerned. */
enum lincheck_lop_kind {
	LOP_READ,    /* an ok read of a */
	LOP_WRITE,   /* a write of a (a delete is a write of 0, null) */
	LOP_CAS,     /* if the value is a, it becomes b */
	LOP_FAILCAS, /* a failed cas: the value was not a (b is its `to`, unused) */
};

/* One operation that constrains the search ("lop"). Values are small ids, 0 being null. */
struct lincheck_lop {
	int64_t call, ret; /* ret: INT64_MAX for info */
	size_t hidx;	   /* index in history.ops */
	uint32_t a, b;
	uint8_t kind; /* enum lincheck_lop_kind */
	bool info;    /* may take effect at any time after call, or never (write and cas only) */
};

struct lincheck_search_params {
	uint64_t max_steps;
	size_t max_memory;
	/* Prune configurations that leave an ok read or cas without any way of getting the value it
	 * needs (much faster at high concurrency). The verdict is the same either way; but with it
	 * the search may stop before the completion that makes a prefix non-linearizable, so the
	 * stuck operation is then only a lower bound of the shortest non-linearizable prefix. */
	bool lookahead;
};

struct lincheck_search_result {
	enum lincheck_outcome outcome;
	enum lincheck_limit limit;
	uint64_t steps;
	size_t cache_entries;
	size_t memory;
	uint32_t n_lops, n_info; /* lops searched (after dropping info ops that cannot matter) */
	/* LINCHECK_NOT_LINEARIZABLE: the lop at whose completion the search stopped (every
	 * completion before it can be reached), the values the register could hold there, and the
	 * end of the longest partial linearization (history op indices, value ids after them). */
	size_t stuck_hidx;
	uint32_t possible[LINCHECK_MAX_POSSIBLE];
	size_t n_possible;
	bool possible_truncated;
	size_t path_hidx[LINCHECK_PATH_TAIL];
	uint32_t path_value[LINCHECK_PATH_TAIL];
	size_t n_path;
};

/*
 * Searches for a linearization of `ops` (n of them, any order, borrowed; value ids in
 * [0, n_values]). Returns 0 with the verdict in `r`, or HISTORY_ENOMEM.
 */
int lincheck_search_run(const struct lincheck_lop *ops, uint32_t n, uint32_t n_values,
			const struct lincheck_search_params *p, struct lincheck_search_result *r);

#endif
