/* sim.h — a deterministic in-memory cluster running the real raft/ core under seeded faults. */
#ifndef CAIRN_SIM_H
#define CAIRN_SIM_H

/*
 * The simulator owns N nodes (ids 1..N), each with a raft core, a simulated disk, a queue of
 * persist requests and a state machine, plus a network, a virtual clock and a seeded PRNG.
 * With snapshots on (sim_options.snap), hosts compact their logs, leaders' hosts stream their
 * state machine to followers that need compacted entries, and followers install it.
 * Everything happens as events in one priority queue ordered by (time, sequence number), so a
 * seed reproduces a run exactly. After every event (and every action taken through this API)
 * the invariant checker (checker.h) runs over all nodes; the first violation stops the
 * simulation: every later call returns SIM_EFAILED and sim_failure() says what broke.
 *
 * Time is virtual and in milliseconds. Nothing here reads a clock or touches a file.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "raft/raft.h"

/* Error codes of sim_* functions; functions that call into the core may also return the
 * core's RAFT_E* code (which are all below SIM_EFAILED). */
enum {
	SIM_OK = 0,
	SIM_EFAILED = 100, /* an invariant was violated (now or earlier): see sim_failure() */
	SIM_EDOWN,	   /* the node is crashed */
	SIM_EUP,	   /* the node is already running */
	SIM_EINVAL,	   /* bad argument (unknown node id, ...) */
	SIM_ETIMEDOUT,	   /* sim_run_until_pred(): the predicate did not become true in time */
	SIM_ENOMEM,
};

#define SIM_MAX_NODES 9

/* ---- PRNG: xoshiro256** seeded through splitmix64 (own implementation: libc's rand() is
 * neither seedable per instance nor the same everywhere). */
struct sim_rng {
	uint64_t s[4];
};
void sim_rng_seed(struct sim_rng *r, uint64_t seed);
uint64_t sim_rng_next(struct sim_rng *r);
/* Uniform in [lo, hi] (inclusive); lo when hi <= lo. */
uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi);
/* True with probability p (0 <= p <= 1). */
bool sim_rng_chance(struct sim_rng *r, double p);

/* Snapshot transfers as filters (and traces) see them: never handed to a core. `term` is the
 * tag (the sender's term when asked), prev_index / prev_term the snapshot's last entry. A
 * filter may PASS or DROP one (HOLD counts as DROP). */
#define SIM_MSG_SNAPSHOT 15

/* ---- options */
struct sim_net_options {
	double drop_rate; /* each message is lost with this probability */
	double dup_rate;  /* ... delivered twice (the copy out of order) */
	/* ... delayed by up to reorder_extra_ms more, and overtaken by later messages */
	double reorder_rate;
	/* One-way delay, uniform in [min, max]. Otherwise links are FIFO (like TCP): jitter alone
	 * never reorders two messages between the same pair of nodes. */
	uint32_t latency_min_ms;
	uint32_t latency_max_ms;
	uint32_t reorder_extra_ms;
};

struct sim_snapshot_options {
	bool enabled; /* hosts compact, leaders send snapshots, followers install them */
	/* A host compacts once applied - (first_index - 1) exceeds a threshold drawn in
	 * [compact_min, compact_max] (drawn again after each compaction), up to applied minus a
	 * trail drawn in [0, trail_max]. The compaction completes after a disk delay. */
	uint32_t compact_min, compact_max, trail_max;
	/* A transfer takes a network latency, 1 ms per SIM_SNAP_ENTRIES_PER_MS applied entries,
	 * and up to this much more. It is lost like a message (loss, cuts at its start, its end
	 * and on delivery, either end crashing meanwhile). */
	uint32_t transfer_extra_ms;
	/* A broken transfer is reported failed (raft_snapshot_sent !ok) except with this
	 * probability, when the sender's host never reports it at all. */
	double no_report_rate;
	double install_fail_rate; /* an install fails (raft_snapshot_installed !ok) */
};

#define SIM_SNAP_ENTRIES_PER_MS 50 /* transfer and install speed, in entries per ms */

struct sim_options {
	uint64_t seed;
	unsigned n_nodes; /* 1..SIM_MAX_NODES */
	/* Template of every node's raft_config: the sim fills id, configuration and rand. */
	struct raft_config raft;
	struct sim_net_options net;
	uint32_t disk_min_ms; /* a persist batch completes after a delay uniform in [min, max] */
	uint32_t disk_max_ms;
	/* Chaos crashes: each persist request handed out makes its node crash before the request
	 * is durable with this probability (ten times it for term/vote writes). The node restarts
	 * by itself: half the time within two network latencies, otherwise after a delay uniform
	 * in [restart_min_ms, restart_max_ms]. */
	double crash_rate;
	uint32_t restart_min_ms, restart_max_ms;
	FILE *trace; /* when set, every event is printed here as it happens (--verbose) */
	/* A run that processes more events than this fails ("Liveness": a message storm is a
	 * bug too, and it would stall a sweep). 0: no limit. */
	uint64_t max_steps;
	/* sim_check_liveness() also requires every read asked of a node that is still up to have
	 * been answered (served or failed): off while the core may leave a forwarded read whose
	 * request or answer was lost unanswered forever. */
	bool liveness_all_reads;
	struct sim_snapshot_options snap; /* off by default */
};

/* Defaults: a reliable network with 1-5 ms latency, 0-2 ms disks, the core's default timeouts;
 * snapshots off (snap.enabled) with thresholds 2..50, trail 0..10, no extra transfer time, a
 * quarter of broken transfers unreported, no failed installs. */
void sim_options_default(struct sim_options *o, unsigned n_nodes, uint64_t seed);

struct sim;

/* Creates and starts the cluster at virtual time 0 (fresh nodes, empty disks). Returns 0,
 * SIM_EINVAL (n_nodes out of range), SIM_ENOMEM, or the RAFT_E* error of raft_init. */
int sim_create(struct sim **out, const struct sim_options *o);
void sim_destroy(struct sim *s);

/* ---- running */

/* Processes the next event. Returns 0, SIM_EFAILED, or SIM_ETIMEDOUT when nothing at all is
 * scheduled (every node down and the network empty). */
int sim_step(struct sim *s);
/* Processes every event due at or before `t`, then sets the clock to `t`. 0 or SIM_EFAILED. */
int sim_run_until(struct sim *s, uint64_t t);
int sim_run_for(struct sim *s, uint64_t ms);
/* Steps until pred() is true (checked first, and after every event) or max_ms elapse.
 * Returns 0, SIM_ETIMEDOUT or SIM_EFAILED. */
typedef bool (*sim_pred_fn)(struct sim *s, void *ctx);
int sim_run_until_pred(struct sim *s, sim_pred_fn pred, void *ctx, uint64_t max_ms);
/* Runs until some node is a leader (sim_leader() != 0) or max_ms elapse. */
int sim_wait_leader(struct sim *s, uint64_t max_ms);
uint64_t sim_now(const struct sim *s);

/* ---- faults */
int sim_crash(struct sim *s, raft_id id);   /* loses everything not yet persisted */
int sim_restart(struct sim *s, raft_id id); /* raft_init from the simulated disk */
bool sim_is_up(const struct sim *s, raft_id id);
void sim_set_crash_rate(struct sim *s, double rate); /* see sim_options.crash_rate */
/* One-way cut: the messages of `from` to `to` are lost (the other direction still works). */
void sim_cut(struct sim *s, raft_id from, raft_id to);
void sim_isolate(struct sim *s, raft_id id); /* cut both ways from every other node */
/* Symmetric partition: cuts every link between the `n` ids in `side` and all other nodes. */
void sim_partition(struct sim *s, const raft_id *side, size_t n);
void sim_heal(struct sim *s); /* restores every link (does not change loss rates) */
bool sim_link_ok(const struct sim *s, raft_id from, raft_id to);
void sim_set_net(struct sim *s, const struct sim_net_options *net);
void sim_get_net(const struct sim *s, struct sim_net_options *net);
/* Disk speed of one node from now on (requests already being written keep their delay). */
int sim_set_disk(struct sim *s, raft_id id, uint32_t min_ms, uint32_t max_ms);

/* A filter sees every message the moment a core hands it out (after persistence for
 * messages_after_persist) and decides its fate before the network's random faults apply. */
enum { SIM_PASS = 0, SIM_DROP = 1, SIM_HOLD = 2 };
typedef int (*sim_filter_fn)(void *ctx, struct sim *s, const struct raft_message *m);
void sim_set_filter(struct sim *s, sim_filter_fn fn, void *ctx);
size_t sim_held_count(const struct sim *s);
/* Sends every held message now (normal latency, links and loss still apply) / drops them. */
void sim_release_held(struct sim *s);
void sim_drop_held(struct sim *s);

/* ---- snapshots */
/* The host of `id` compacts its log up to `index` now (disk, then raft_compact). Returns 0,
 * SIM_EDOWN, SIM_EINVAL (index beyond its applied index), SIM_EFAILED. */
int sim_compact(struct sim *s, raft_id id, raft_index index);
/* The host of `from` streams its state machine to `to` as if its core had asked, tagged with
 * its current term, without reporting the end to its core. Returns 0, SIM_EDOWN, SIM_EINVAL
 * (nothing applied yet), SIM_EFAILED. */
int sim_send_snapshot(struct sim *s, raft_id from, raft_id to);

/* ---- clients */
enum { SIM_PROP_PENDING = 0, SIM_PROP_COMMITTED = 1, SIM_PROP_LOST = 2 };
struct sim_proposal {
	uint64_t id; /* 1, 2, ... in submission order */
	raft_id node;
	raft_term term; /* as returned by raft_propose */
	raft_index index;
	uint64_t hash; /* of the unique payload "n<node>-c<counter>" */
	uint64_t submitted_at;
	uint64_t committed_at; /* when first applied by any node (state COMMITTED) */
	int state;
};
/* Proposes `n` entries with unique payloads on `node`. Returns 0 (and the id of the first in
 * *first_id; the others follow), SIM_EDOWN, SIM_EFAILED, or raft_propose()'s error. */
int sim_propose(struct sim *s, raft_id node, size_t n, uint64_t *first_id);
/* Proposes one entry on the node sim_leader() names; RAFT_ENOLEADER when there is none. */
int sim_propose_to_leader(struct sim *s, uint64_t *id);
const struct sim_proposal *sim_proposal(const struct sim *s, uint64_t id);
size_t sim_proposal_count(const struct sim *s);

enum { SIM_READ_PENDING = 0, SIM_READ_WAITING = 1, SIM_READ_SERVED = 2, SIM_READ_FAILED = 3 };
struct sim_read {
	uint64_t id; /* the ctx given to raft_read_index; 1, 2, ... */
	raft_id node;
	uint64_t requested_at;
	raft_index min_index; /* highest index known committed anywhere when requested */
	int state;	      /* WAITING: index known, waiting for applied >= index */
	int err;	      /* FAILED: the core's RAFT_E*, or SIM_EDOWN (node crashed) */
	raft_index index;     /* from the core */
	uint64_t answered_at;
	raft_index served_applied; /* SERVED: applied index of the node when served */
};
/* Asks `node` for a linearizable read. Returns 0 (*id set), SIM_EDOWN, SIM_EFAILED or
 * raft_read_index()'s error. Every successful answer is checked: its index must be >= the
 * committed index known when the read was requested (ReadIndex linearizability, §6.4). */
int sim_read(struct sim *s, raft_id node, uint64_t *id);
const struct sim_read *sim_read_get(const struct sim *s, uint64_t id);

/* raft_transfer_leadership on `from`. Returns 0, SIM_EDOWN, SIM_EFAILED or the core's error. */
int sim_transfer(struct sim *s, raft_id from, raft_id to);

/* ---- observation */
unsigned sim_n_nodes(const struct sim *s);
uint64_t sim_seed(const struct sim *s);
/* The core of a running node (NULL when down): for read-only accessors only. */
struct raft *sim_raft(struct sim *s, raft_id id);
/* An up node whose role is leader, with the highest term among such; 0 if none. */
raft_id sim_leader(const struct sim *s);
raft_index sim_applied(const struct sim *s, raft_id id);
/* The applied entry at `index` (1-based) of a node's state machine: term and payload hash. */
int sim_applied_entry(const struct sim *s, raft_id id, raft_index index, raft_term *term,
		      uint64_t *hash);
raft_index sim_committed(const struct sim *s); /* highest index known committed anywhere */
raft_index sim_disk_last_index(const struct sim *s, raft_id id);
raft_index sim_disk_first_index(const struct sim *s, raft_id id); /* > 1 once compacted */
/* Term of the entry at `index` on the node's disk, or in its state machine when compacted. */
raft_term sim_disk_term_at(const struct sim *s, raft_id id, raft_index index);
raft_term sim_disk_term(const struct sim *s, raft_id id);    /* persisted current term */
raft_id sim_disk_vote(const struct sim *s, raft_id id);	     /* persisted vote */
size_t sim_persist_pending(const struct sim *s, raft_id id); /* requests not yet completed */
uint64_t sim_payload_hash(const void *data, size_t len, uint8_t type);

struct sim_stats {
	uint64_t steps;
	uint64_t msgs_sent[RAFT_MSG_TYPE_MAX]; /* handed out by cores, per type */
	uint64_t msgs_delivered;
	uint64_t drops;		  /* random loss */
	uint64_t partition_drops; /* lost to a cut link or a crashed receiver */
	uint64_t filter_drops;
	uint64_t dups;
	uint64_t crashes, restarts, partitions; /* partitions: sim_cut/isolate/partition calls */
	uint64_t persist_batches, persist_requests;
	uint64_t proposals, proposals_committed, proposals_lost;
	uint64_t reads, reads_served, reads_failed;
	uint64_t max_append_entries;   /* most entries seen in one AppendEntries */
	uint64_t compactions;	       /* host compactions that dropped entries */
	uint64_t snapshots_asked;      /* transfers started (send_snapshot, sim_send_snapshot) */
	uint64_t snapshots_lost;       /* ... that broke or were dropped */
	uint64_t snapshots_unreported; /* ... broken ones the sender's host never reported */
	uint64_t snapshots_offered;    /* ... complete, handed to raft_snapshot_offer */
	uint64_t snapshots_declined;   /* ... which said not to install */
	uint64_t snapshots_installed;  /* installs completed */
	uint64_t installs_failed;      /* installs reported failed */
	uint64_t installs_crashed;     /* installs lost to a crash of their node */
	struct raft_stats raft;	       /* summed over every core instance, closed ones included */
};
void sim_get_stats(const struct sim *s, struct sim_stats *out);

/* ---- failures */
bool sim_failed(const struct sim *s);
const char *sim_failure_invariant(const struct sim *s); /* e.g. "Election Safety"; "" if none */
const char *sim_failure(const struct sim *s);		/* the detail message; "" if none */
/* Prints "seed=... step=... t=...ms: <invariant>: <detail>" and the last `n` trace events. */
void sim_print_failure(const struct sim *s, FILE *f, size_t n);
void sim_print_trace(const struct sim *s, FILE *f, size_t n);
/* One line per node: role, term, commit, log, disk, state machine. */
void sim_print_nodes(const struct sim *s, FILE *f);
/* Records a violation found by the caller (a scenario or the liveness check). */
void sim_fail(struct sim *s, const char *invariant, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Adds a free-form line to the trace (e.g. the fuzz driver saying what it does next). */
void sim_note(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- liveness */
/* Heals the network (no cuts, loss, duplication or reordering; latency at most 5 ms), stops
 * chaos crashes, gives every disk its normal speed and restarts every crashed node. Then
 * requires, within max_ms of virtual time: a leader; a fresh proposal committed; every node's
 * state machine caught up with the leader's commit index; every proposal submitted to that
 * leader in its current term committed; a read on the leader served. Returns 0, or
 * SIM_EFAILED with invariant "Liveness". */
int sim_check_liveness(struct sim *s, uint64_t max_ms);

#endif /* CAIRN_SIM_H */
