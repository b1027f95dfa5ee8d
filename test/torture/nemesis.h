/* nemesis.h — the torture fault injector: a seeded schedule of crashes, pauses, partitions,
 * one-way loss and delays, applied to a harness cluster and logged with their times. */
#ifndef CAIRN_TORTURE_NEMESIS_H
#define CAIRN_TORTURE_NEMESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "test/integration/harness.h"

/*
 * Kinds of fault. Each belongs to a family, the unit of --faults (a family name selects all
 * its kinds; a kind's own name selects just it). "leader" and "follower" are resolved when
 * the fault starts (Status of every reachable member: the one claiming leadership in the
 * highest term), so a seed fixes the schedule, and the members hit depend on the run.
 */
enum nem_kind {
	NEM_KILL_FOLLOWER = 0, /* kill -9 a follower; restarted at the end of the fault */
	NEM_KILL_LEADER,       /* kill -9 the leader; restarted */
	NEM_KILL_MAJORITY,     /* kill -9 a majority, the leader first; restarted */
	NEM_PAUSE_LEADER,      /* SIGSTOP the leader (longer than an election timeout); SIGCONT */
	NEM_PAUSE_FOLLOWER,    /* SIGSTOP a follower; SIGCONT */
	NEM_PARTITION_LEADER,  /* isolate the leader from every peer (both directions) */
	NEM_PARTITION_SPLIT,   /* random majority / minority split */
	NEM_PARTITION_BRIDGE,  /* 5 members: {a,b} | c | {d,e}, c sees everyone */
	NEM_PARTITION_RING,    /* 5 members: each sees its two ring neighbours only */
	NEM_ONEWAY_LEADER_OUT, /* the leader's messages to every peer are lost; it hears them */
	NEM_ONEWAY_LEADER_IN,  /* every message to the leader is lost; its own still arrive */
	NEM_DELAY_ALL,	       /* every peer link delayed (20..800 ms) */
	NEM_DELAY_LEADER,      /* the leader's links (both directions) delayed */
	NEM__COUNT
};

enum nem_family {
	NEM_FAM_KILL = 0,
	NEM_FAM_PAUSE,
	NEM_FAM_PARTITION,
	NEM_FAM_ONEWAY,
	NEM_FAM_DELAY,
	NEM_FAM__COUNT
};

const char *nem_kind_name(int kind);
const char *nem_family_name(int family);
int nem_kind_family(int kind);
/* Fewest members a kind needs (bridge and ring: 5). */
int nem_kind_min_nodes(int kind);

/*
 * Parses a comma-separated list of family or kind names ("all" = every family, "none" or "" =
 * no fault) into a bit set of kinds (bit = 1 << kind), keeping only the kinds `nodes` members
 * allow. Returns 0, or -1 with a message in err.
 */
int nem_parse_faults(const char *list, int nodes, unsigned *mask, char *err, size_t errlen);
/* The mask as a list of kind names into buf. */
void nem_mask_describe(unsigned mask, char *buf, size_t len);

/* ---- the schedule: fixed by the seed --------------------------------------------------------- */

struct nem_event {
	int kind;
	int start_ms;  /* since the start of the workload */
	int dur_ms;    /* how long the fault stays */
	uint64_t pick; /* chooses the members / groups when the fault starts */
	int link_mode; /* partitions and one-way: H_LINK_DROP or H_LINK_BLACKHOLE */
	int delay_ms;  /* delays */
};

struct nem_plan {
	struct nem_event *ev;
	size_t n;
};

/*
 * The schedule of a run of `duration_ms` with `nodes` members and the kinds of `mask`: faults
 * one after another with quiet gaps, the first few covering every selected family once (in a
 * seeded order), every fault over at least 500 ms before the end. With `overlap`, some faults
 * (about 2 in 5) start while the previous one is still active (never more than two at once),
 * e.g. a kill during a partition. Deterministic in its arguments. Events are sorted by start.
 * Returns 0 or -1 (out of memory).
 */
int nem_plan_make(uint64_t seed, int duration_ms, int nodes, unsigned mask, bool overlap,
		  struct nem_plan *out);
void nem_plan_free(struct nem_plan *p);
/* "kill-leader for 2300 ms" ... */
void nem_event_describe(const struct nem_event *e, char *buf, size_t len);

/* ---- applying it ------------------------------------------------------------------------------
 */

/* What happened to one fault of the plan (times in ns since wl_history.t0_ns). */
struct nem_fault {
	int kind;
	int64_t start_ns, end_ns; /* end: when healing it completed; -1 while active */
	unsigned targets;	  /* members hit (bit id) */
	int leader_before;	  /* leader when it started (0: none found) */
	char desc[224];
	int64_t recovered_ns; /* filled by the report: first ok write invoked after end_ns
			       * completed at this time; -1 if none before the next fault */
};

#define NEM_MAX_ACTIVE 4

/* A fault in progress: what it did, to undo it. */
struct nem_active {
	size_t fault;		 /* index in nemesis.faults */
	unsigned killed, paused; /* members it took down */
	bool links;		 /* it changed links: mode / delay below */
	int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
};

struct nemesis {
	struct h_cluster *c;
	int64_t t0_ns;
	FILE *log; /* faults.log (NULL: none) */
	bool echo; /* also print fault lines on stdout */
	struct nem_fault *faults;
	size_t n_faults, cap_faults;
	/* the faults in progress, oldest first */
	struct nem_active active[NEM_MAX_ACTIVE];
	int n_active;
	/* members that exited although nobody killed them (crashes), as text, for the verdict */
	int crashes;
	char crash_report[1024];
	/* members that could not be restarted */
	int restart_failures;
};

/* Prepares a nemesis for cluster c; `t0_ns` is the history's time origin. */
void nem_init(struct nemesis *nm, struct h_cluster *c, int64_t t0_ns, FILE *log, bool echo);
void nem_free(struct nemesis *nm);
/* Logs a line "+12.345s text" (faults.log and, with echo, stdout). */
void nem_logf(struct nemesis *nm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The leader: the member that claims it in the highest term among the running, unpaused
 * ones, polled until `timeout_ms`; 0 if none. */
int nem_find_leader(struct nemesis *nm, int timeout_ms);
/* Starts fault `e` (with NEM_MAX_ACTIVE faults already active, the oldest is healed first);
 * returns its index in nm->faults. Links of concurrent network faults combine: a cut wins over
 * a delay, the longer delay over the shorter. */
size_t nem_inject(struct nemesis *nm, const struct nem_event *e);
/* Ends fault `fault` if it is still active: restarts the members it killed, resumes those it
 * paused, and sets every link to what the faults still active want. */
void nem_heal_fault(struct nemesis *nm, size_t fault);
/* Ends every active fault. */
void nem_heal(struct nemesis *nm);
/* Heals everything the harness knows about: every member running and resumed, every link
 * passing; notes members that died on their own. */
void nem_heal_all(struct nemesis *nm);
/* Notices members that exited without being killed (recorded as crashes; restarted when
 * `restart`). Returns how many were found. */
int nem_check_crashes(struct nemesis *nm, bool restart);

#endif /* CAIRN_TORTURE_NEMESIS_H */
