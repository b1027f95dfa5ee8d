/* torture_check.h — the torture run's checking step: loads the recorded history, runs the
 * linearizability checker (lincheck.h) with the final-reads durability check, and the
 * --inject-anomaly self-test that plants a stale read. */
#ifndef CAIRN_TORTURE_CHECK_H
#define CAIRN_TORTURE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "test/torture/workload.h"

#define TC_MAX_WINDOWS 16

/* The time span of one finding (a violation's window, or a lost write up to its final read). */
struct tc_window {
	char key[32];
	bool lost_write; /* else: not linearizable */
	int64_t from_ns, to_ns;
};

struct tc_verdict {
	bool loaded;	      /* the history file parsed */
	char load_error[320]; /* when it did not */
	bool ran;	      /* the checker ran */
	int outcome;	      /* enum lincheck_outcome */
	const char *outcome_name;
	size_t ops, keys, violations, unknown, lost;
	bool final_reads_checked;
	uint64_t steps;
	double seconds;
	struct tc_window win[TC_MAX_WINDOWS];
	size_t n_win;
};

/*
 * Loads `history_path`, checks it (final reads too when `final_reads`: every key written must
 * then have one), writes the checker's human report to `text_path` and its JSON to `json_path`
 * (either may be NULL) and fills *v. `max_steps` 0: the checker's default budget.
 * Returns 0 when the check ran, -1 otherwise (v->load_error says why).
 */
int tc_check_history(const char *history_path, bool final_reads, uint64_t max_steps,
		     const char *text_path, const char *json_path, struct tc_verdict *v);

/*
 * --inject-anomaly: rewrites the value of one ok read of `h` (the one nearest the middle of
 * the history that allows it) to the value of an acknowledged write W1 that an acknowledged
 * write W2 overwrote, where W1 completed before W2 was invoked and W2 completed before the
 * read was invoked: a stale read no linearization allows. Returns the index of the rewritten
 * event (its key and values described in desc) or -1 if the history has no such read.
 */
long tc_inject_stale_read(struct wl_history *h, char *desc, size_t desclen);

#endif /* CAIRN_TORTURE_CHECK_H */
