/* lincheck.h — linearizability checker for histories of per-key registers (read, write, cas,
 * delete). */
#ifndef CAIRN_TORTURE_LINCHECK_H
#define CAIRN_TORTURE_LINCHECK_H

/*
 * Model: every key is an independent register holding a string or null (initially null).
 * read returns the current value; write sets it; delete sets null; cas(from, to) sets `to` if
 * the current value equals `from` (and is `ok`), else changes nothing (and is `fail`).
 *
 * The checker partitions the history by key and searches, for each key, for a linearization:
 * a total order of the operations that respects real time (an operation that completed before
 * another was invoked comes first) and in which every operation returns what the model says.
 *   - ok operations must be linearized between their invocation and their completion;
 *   - a `fail` write / delete, and a `fail` cas that carries an "error" text, did not take
 *     effect: they are ignored; so are reads that did not end `ok`;
 *   - a `fail` cas without an error is a definite no-op whose compare did not hold: it is
 *     linearized like a read that saw "anything but `from`";
 *   - `info` and pending writes / deletes / cas may be linearized anywhere after their
 *     invocation, even after the end of the history, or never.
 * The search is Wing & Gong's, with Lowe's just-in-time linearization and a cache of visited
 * configurations, plus reductions that keep `info` operations and concurrency affordable
 * (docs/checker.md gives the details and the arguments). It is bounded: when a key's search
 * exceeds its step or memory budget the key's outcome is LINCHECK_UNKNOWN, reported apart from
 * pass and fail.
 *
 * Ownership: a report is filled by lincheck_check() and released by lincheck_report_free().
 * It refers to the history by op index and borrows the history's strings: it must not outlive
 * the history it was computed from.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "test/torture/history.h"

/* Outcomes; their values are the exit codes of cairn-lincheck (2 is bad input / usage). */
enum lincheck_outcome {
	LINCHECK_LINEARIZABLE = 0,
	LINCHECK_NOT_LINEARIZABLE = 1,
	LINCHECK_UNKNOWN = 3, /* the search budget was exhausted before an answer */
};
#define LINCHECK_EXIT_USAGE 2

/* Default budgets of one search: configurations entered, and bytes of search state. A key
 * takes one search, or a few (without its failed cas first; narrowing a violation down to the
 * shortest prefix): each has this budget. */
#define LINCHECK_DEFAULT_MAX_STEPS  (20u * 1000u * 1000u)
#define LINCHECK_DEFAULT_MAX_MEMORY ((size_t)1024u * 1024u * 1024u)
/* Budget of the last search that finds what the register could hold at a violation (only
 * for the report; the verdict does not depend on it). */
#define LINCHECK_DETAIL_STEPS (2u * 1000u * 1000u)
/* Default for the most operations shown around a violation. */
#define LINCHECK_DEFAULT_WINDOW 24u
/* Most completed state-changing operations shown before the stuck one. */
#define LINCHECK_WINDOW_BEFORE 4u
/* Most distinct register values remembered at the stuck point. */
#define LINCHECK_MAX_POSSIBLE 8u
/* Ops of the longest partial linearization kept for the report (its last ones). */
#define LINCHECK_PATH_TAIL 8u
/* Most lost writes listed by the final-reads check (all are counted). */
#define LINCHECK_MAX_LOST 64u

struct lincheck_options {
	uint64_t max_steps; /* per search; 0: LINCHECK_DEFAULT_MAX_STEPS */
	size_t max_memory;  /* per search; 0: LINCHECK_DEFAULT_MAX_MEMORY */
	size_t window_max;  /* 0: LINCHECK_DEFAULT_WINDOW */
	/* Also check durability against final reads (see lincheck_final_reads()). */
	bool final_reads;
};

/* Why an operation is in a violation's window. */
enum lincheck_role {
	LINCHECK_ROLE_STUCK,	  /* the operation no linearization could complete */
	LINCHECK_ROLE_CONCURRENT, /* overlaps it in real time (info: invoked before it completed) */
	LINCHECK_ROLE_BEFORE,	  /* a write / cas that completed shortly before it was invoked */
};

struct lincheck_window_op {
	size_t op; /* index in history.ops */
	enum lincheck_role role;
};

/* One step of the longest partial linearization found: the op and the value after it. */
struct lincheck_step {
	size_t op;
	const char *value_after; /* NULL: null */
};

/* Why a search stopped without an answer. */
enum lincheck_limit {
	LINCHECK_LIMIT_NONE = 0,
	LINCHECK_LIMIT_STEPS,
	LINCHECK_LIMIT_MEMORY,
};

struct lincheck_key {
	const char *key;
	enum lincheck_outcome outcome;
	size_t n_ops;	      /* operations on the key */
	size_t n_constraints; /* of which take part in the search (the others impose nothing) */
	size_t n_info;	      /* of which info / pending writes, deletes and cas */
	uint64_t steps;	      /* search nodes visited */
	size_t cache_entries; /* configurations remembered */
	size_t memory;	      /* bytes of search state at the end */
	enum lincheck_limit limit;

	/* LINCHECK_NOT_LINEARIZABLE. The search found that no linearization of the key's history
	 * reaches the completion of `stuck_op`, and that every shorter prefix is linearizable: the
	 * events up to that completion (`prefix_ops` operations of this key invoked by then) are
	 * the shortest non-linearizable prefix. */
	size_t stuck_op;
	size_t prefix_ops;
	/* false: the search budget ran out while narrowing the prefix down: the prefix is
	 * non-linearizable but may not be the shortest. (`possible` and `path` come from a last
	 * search of that prefix; they are empty if it ran out of budget.) */
	bool prefix_exact;
	/* The violation was found on the key's history without its failed cas (which only removes
	 * constraints, so it is a violation of the whole history too; the prefix is then the
	 * shortest of that lighter history). The checker tries this first: it is much cheaper. */
	bool without_failed_cas;
	/* The operations around the stuck one, in invocation order. */
	struct lincheck_window_op *window;
	size_t n_window;
	size_t window_omitted;	    /* concurrent operations left out (window_max, relevance) */
	size_t window_omitted_info; /* of which info ops (only the latest few are listed) */
	/* Values the register could hold, in some linearization, when the stuck operation had to
	 * take effect (NULL: null). */
	const char *possible[LINCHECK_MAX_POSSIBLE];
	size_t n_possible;
	bool possible_truncated;
	/* The end of the longest partial linearization found (oldest first). */
	struct lincheck_step path[LINCHECK_PATH_TAIL];
	size_t n_path;
};

/* An acknowledged write that the final read does not show and that nothing could overwrite. */
struct lincheck_lost_write {
	size_t write_op;
	size_t final_read_op;
};

struct lincheck_report {
	enum lincheck_outcome outcome; /* the worst key outcome: not linearizable > unknown > ok */
	size_t n_ops, n_ok, n_fail, n_info, n_pending;
	size_t n_reads, n_writes, n_cas, n_deletes;
	size_t n_keys;
	struct lincheck_key *keys; /* sorted by key */
	size_t n_violations;	   /* keys not linearizable */
	size_t n_unknown;	   /* keys whose search ran out of budget */
	uint64_t steps;
	double seconds; /* wall-clock time of lincheck_check() */

	/* Final-reads check (options.final_reads). */
	bool final_reads_checked;
	size_t n_final_reads; /* reads recognised as final reads */
	size_t n_lost;	      /* lost writes found (lost lists at most LINCHECK_MAX_LOST) */
	struct lincheck_lost_write *lost;
	size_t n_lost_listed;
};

/*
 * Checks `h`. `opts` may be NULL (defaults). Fills `r` (which the caller then releases with
 * lincheck_report_free(), also after an error). Returns 0 when the check ran (the verdict is in
 * r->outcome), HISTORY_ENOMEM, or HISTORY_EINVAL with a message when options.final_reads is set
 * and a key lacks a final read (see lincheck_final_reads()).
 */
int lincheck_check(const struct history *h, const struct lincheck_options *opts,
		   struct lincheck_report *r, char *errmsg, size_t errlen);

/*
 * The durability check behind options.final_reads (lincheck_check() calls it; it is public so
 * that it can be run alone). For every key with at least one acknowledged (ok) write, delete or
 * cas, a *final read* is an ok read invoked after every write, delete and cas of the key that
 * completed (ok or fail) had completed; the harness issues them after healing the cluster. The
 * check requires one (HISTORY_EINVAL naming the key otherwise), and for every final read F and
 * every acknowledged write W whose value F does not show, requires some other write, delete or
 * cas (ok, info or pending) that may have taken effect after W: one that did not complete before
 * W was invoked and that was invoked before F completed. A W without one is a lost write
 * (r->lost). This is implied by linearizability once final reads are in the history; it is kept
 * separate because it names the lost write directly. `r` must be zeroed, or come from
 * lincheck_check(); this fills final_reads_checked, n_final_reads, n_lost, lost and
 * n_lost_listed (release with lincheck_report_free()).
 */
int lincheck_final_reads(const struct history *h, struct lincheck_report *r, char *errmsg,
			 size_t errlen);

/* Releases what lincheck_check() allocated in `r`. NULL-safe; idempotent. */
void lincheck_report_free(struct lincheck_report *r);

/* "linearizable", "not linearizable", "unknown". */
const char *lincheck_outcome_name(enum lincheck_outcome o);

/* Human-readable report: counts, then every violation with its window, unknown keys, lost
 * writes, and the verdict. */
void lincheck_print(FILE *out, const struct history *h, const struct lincheck_report *r);

/* The same as one JSON object (and a newline), for scripts. */
void lincheck_print_json(FILE *out, const struct history *h, const struct lincheck_report *r);

/* Prints one op as a readable line: "p3 write k1 \"v17\" -> ok  [invoke 123, ok 456] line 7". */
void lincheck_print_op(FILE *out, const struct history *h, size_t op);

#endif
