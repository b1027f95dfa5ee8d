/* torture.h — Cairn's Jepsen-style fault-injection harness: one run = a real cluster, a
 * concurrent register workload, a seeded nemesis, final reads, and the checkers' verdict. */
#ifndef CAIRN_TORTURE_H
#define CAIRN_TORTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "test/integration/harness.h" /* enum h_net */

/*
 * A run (torture_run) does, for one seed:
 *   1. start `nodes` cairnd members (real fsync, --heartbeat-ms 50 --election-timeout-ms 500)
 *      behind the harness's fault-injecting proxy, or each in its own network namespace with
 *      nftables cutting links (`net`; test/integration/harness.h);
 *   2. run `clients` workers (libcairn, one operation in flight each) doing get / put / cas on
 *      `keys` keys for `duration_ms`, recording the history; a monitor polls Status to count
 *      leader changes;
 *   3. meanwhile apply the nemesis schedule fixed by the seed (nemesis.h);
 *   4. stop the workers, heal everything, wait for a leader, write once (liveness: a write
 *      must succeed within recover_timeout_ms), read every key linearizably (final reads,
 *      recorded in the history);
 *   5. wait until every member reports the same applied index and revision, then compare a
 *      serializable read of all keys on every member (convergence);
 *   6. SIGTERM every member: each must exit 0 (a sanitizer report makes it non-zero);
 *   7. check the history (lincheck.h: per-key linearizability + lost writes vs final reads)
 *      and write the report directory <out_dir>/<seed>/ (docs/torture.md).
 */

/* Kinds of anomaly (bits of torture_result.anomalies). */
enum torture_anomaly {
	TA_NOT_LINEARIZABLE = 1u << 0, /* the checker found a key with no linearization */
	TA_LOST_WRITE = 1u << 1,       /* an acknowledged write missing from the final reads */
	TA_DIVERGENCE = 1u << 2,       /* members differ after healing (index, revision, content) */
	TA_LIVENESS = 1u << 3,	       /* no leader / write / final read within the bound */
	TA_CRASH = 1u << 4,	       /* a member exited on its own, or could not restart */
	TA_UNCLEAN_EXIT = 1u << 5,     /* a member did not exit 0 after SIGTERM (e.g. ASan) */
	TA_BAD_HISTORY = 1u << 6,      /* the recorded history did not load (a harness bug) */
	TA_CHECK_UNKNOWN = 1u << 7,    /* the checker ran out of budget (not a proof of a bug) */
};

#define TORTURE_SNAPSHOT_COUNT 100

struct torture_config {
	uint64_t seed;
	int duration_ms;	/* of the workload + nemesis phase */
	int nodes;		/* 3 or 5 (1..5 accepted) */
	enum h_net net;		/* H_NET_PROXY (default) or H_NET_NETNS (root only) */
	int clients;		/* concurrent workers */
	int keys;		/* registers k0..k<keys-1> */
	unsigned faults;	/* bit set of nemesis kinds (nem_parse_faults) */
	bool overlap;		/* some faults start while the previous one is active */
	const char *out_dir;	/* reports go to <out_dir>/<seed>/ */
	uint32_t op_timeout_ms; /* deadline of one client operation */
	int rate;		/* operations started per second, all workers together; 0: no cap */
	int read_pct, cas_pct;	/* operation mix (writes: the rest) */
	bool nosync;		/* --unsafe-no-fsync (default off: durability is under test) */
	/* cairnd --snapshot-count (catch-up entries: a fifth of it). Small by default, so that
	 * members compact often and a member back from a kill or a partition is usually sent a
	 * snapshot: log compaction and snapshot transfer are under test too. */
	int snapshot_count;
	bool inject_anomaly;	/* rewrite one read into a stale one before checking (self-test) */
	bool plot;		/* run scripts/torture-plot.sh on the report */
	bool verbose;		/* print fault lines and progress on stdout */
	int recover_timeout_ms; /* liveness bound after healing */
	uint64_t check_max_steps; /* checker budget per key (0: its default) */
};

/* Fills defaults: 20 s, 3 nodes, 5 clients, 3 keys, every fault family, torture-out, ... */
void torture_config_defaults(struct torture_config *cfg);

struct torture_result {
	unsigned anomalies; /* TA_* bits */
	char dir[512];	    /* the report directory */
	char verdict[1024]; /* one paragraph: what was found */
	/* history */
	size_t ops, ok, fail, info;
	size_t reads, writes, cas;
	/* nemesis */
	size_t faults;	    /* faults injected */
	unsigned families;  /* nemesis families injected (bit = 1 << family) */
	int leader_changes; /* leaders observed (term, member) minus the first */
	/* from the members' logs, over every process of the run */
	int compactions;	 /* "log compacted" */
	int snapshots_installed; /* "installed a snapshot" */
	/* checker */
	const char *check_outcome; /* "linearizable", "not linearizable", "unknown", "not run" */
	size_t keys_checked;
	double check_seconds;
	bool injected;	      /* --inject-anomaly rewrote a read */
	bool injected_caught; /* ... and the checker flagged its key */
};

/* Runs one seed. Returns 0 when no anomaly was found, 1 otherwise (details in *res and in the
 * report directory), -1 when the run could not be set up (message in res->verdict). */
int torture_run(const struct torture_config *cfg, struct torture_result *res);

/* The nemesis kinds that need H_LINK_DELAY (the delay family), as a mask of kinds. */
unsigned torture_delay_kinds(void);

/* A short name per anomaly bit ("not-linearizable", "lost-write", ...), comma-separated. */
void torture_anomalies_describe(unsigned anomalies, char *buf, size_t len);

#endif /* CAIRN_TORTURE_H */
