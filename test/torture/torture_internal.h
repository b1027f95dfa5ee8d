/* torture_internal.h — state shared by the torture runner (torture.c) and its report writer
 * (torture_report.c); not an API. */
#ifndef CAIRN_TORTURE_INTERNAL_H
#define CAIRN_TORTURE_INTERNAL_H

#include <stdio.h>

#include "test/torture/nemesis.h"
#include "test/torture/torture.h"
#include "test/torture/torture_check.h"
#include "test/torture/torture_monitor.h"
#include "test/torture/workload.h"

#define TRUN_NOTES_MAX 4096

/* What each member reported at the end (convergence). */
struct trun_member_end {
	bool answered;
	uint64_t applied, commit, term, leader;
	int64_t revision;
	uint64_t kv_hash;
	size_t n_keys;	 /* keys in its serializable full read */
	int exit_status; /* wait status after SIGTERM; -1: not stopped */
};

struct trun {
	const struct torture_config *cfg;
	struct torture_result *res;
	char dir[512];
	struct wl_history hist;
	struct nem_plan plan;
	struct nemesis nm;
	const struct tmon_leader *leaders;
	size_t n_leaders;
	struct tc_verdict check;
	bool check_ok; /* tc_check_history returned 0 */
	/* final phase */
	int64_t heal_ns;	   /* every fault healed (ns since t0) */
	int64_t recovered_ns;	   /* first ok write after the heal; -1: none */
	int64_t final_done_ns;	   /* end of the final reads */
	bool final_reads_complete; /* an ok final read for every key */
	int64_t workload_end_ns;
	bool converged;
	uint64_t applied;
	int64_t revision;
	struct trun_member_end member[H_MAX_MEMBERS + 1];
	int nodes;
	/* injection */
	long injected_event;
	char injected_desc[256];
	/* free text for the verdict and the summary (anomaly details) */
	char notes[TRUN_NOTES_MAX];
};

/* Appends a line to run->notes (and stdout when verbose). */
void trun_note(struct trun *run, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Fills each fault's recovered_ns from the history. */
void trun_recovery_times(struct trun *run);
/* Writes timeline.tsv, latency.tsv, faults.tsv, leaders.tsv, the plot (cfg->plot),
 * summary.txt, summary.json and, when anomalies were found, anomaly.txt into run->dir. */
void trun_write_report(struct trun *run);
/* Runs the plot script on run->dir (notes why when it cannot). */
void trun_plot(struct trun *run);

#endif /* CAIRN_TORTURE_INTERNAL_H */
