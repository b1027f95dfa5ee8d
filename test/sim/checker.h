/* checker.h — Raft's safety invariants, checked over cluster states fed one step at a time. */
#ifndef CAIRN_SIM_CHECKER_H
#define CAIRN_SIM_CHECKER_H

/*
 * The checker knows nothing about raft instances: the host describes every node at every
 * step (role, term, commit index, log, state machine) and the checker remembers the history
 * it needs. The simulator feeds it real cores; test_checker.c feeds it forged states.
 *
 * Invariants (Raft dissertation, Figure 3.2 and §3.6.3):
 *   Election Safety      at most one leader per term, over the whole run.
 *   Leader Append-Only   a leader never overwrites or deletes entries of its own log while it
 *                        stays leader of one term.
 *   Log Matching         two entries with the same index and term have identical logs up to
 *                        them. Checked over the whole run: every (index, term) ever seen in any
 *                        log is mapped to a hash of the log prefix it ends.
 *   Leader Completeness  an entry committed in term T (by the leader of T) is in the log of
 *                        every leader of a term > T.
 *   State Machine Safety every node's state machine, and every node's log up to its commit
 *                        index, is a prefix of one sequence of committed entries.
 *   Commit Durability    a node never loses, from its in-memory log, an entry at or below its
 *                        commit index, and its commit index never exceeds its log.
 *   Current-Term Commitment  a leader advances its commit index only onto an entry of its
 *                        own term (§3.6.2): the rule that makes Figure 3.7 safe, checked
 *                        directly because the unsafe outcome needs a rare schedule to show.
 *   Snapshot Safety      (Chapter 5) a log's compacted prefix is committed: it ends at or
 *                        below the node's commit index, on the committed entry's term; a
 *                        state machine replaced by an installed snapshot equals the committed
 *                        sequence up to the snapshot's index, never anything not yet known
 *                        committed, and never goes back.
 *
 * With compaction a log starts at log_first: the invariants above compare only the indexes a
 * node still has; the compacted prefix is checked once, through Snapshot Safety, against the
 * committed sequence (which is what makes Log Matching hold across the boundary).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "raft/raft.h"

/* An entry as far as the checker cares: its term and a hash of its type and payload. */
struct checker_entry {
	raft_term term;
	uint64_t hash;
};

/* One node at one step. Pass the nodes in the same order at every step. */
struct checker_node {
	raft_id id;
	bool up; /* false: crashed (only its state machine, which is durable, is read) */
	uint32_t incarnation; /* changes at each restart: the node's log is then checked afresh */
	int role;	      /* enum raft_role */
	raft_term term;
	raft_index commit;
	raft_index log_first;		 /* index of log[0]; 0 or 1: never compacted */
	raft_term prev_term;		 /* term of the entry at log_first - 1 (compacted) */
	const struct checker_entry *log; /* log[i] is the entry at index log_first + i */
	size_t n_log;
	/* The host promises that entries with index <= log_unchanged are the same as at the
	 * previous step of this incarnation (0: no promise). Entries below it are not compared
	 * again: a shortcut that keeps each step proportional to what changed. */
	raft_index log_unchanged;
	const struct checker_entry *applied; /* state machine: applied[i] is index i + 1 */
	size_t n_applied;
	/* Changes whenever an installed snapshot replaced the state machine: its whole history is
	 * then checked again. */
	uint32_t sm_generation;
};

enum checker_violation {
	CHECKER_OK = 0,
	CHECKER_ELECTION_SAFETY,
	CHECKER_LEADER_APPEND_ONLY,
	CHECKER_LOG_MATCHING,
	CHECKER_LEADER_COMPLETENESS,
	CHECKER_STATE_MACHINE_SAFETY,
	CHECKER_COMMIT_DURABILITY,
	CHECKER_CURRENT_TERM_COMMIT,
	CHECKER_SNAPSHOT_SAFETY,
	CHECKER_ENOMEM,
	CHECKER_EINVAL, /* more nodes than CHECKER_MAX_NODES, or their number changed */
};

#define CHECKER_MAX_NODES 16

struct checker;

/* Returns 0 or CHECKER_ENOMEM. */
int checker_create(struct checker **out);
void checker_destroy(struct checker *c);

/* Checks one step. Returns CHECKER_OK or the first violation found (then checker_message()
 * describes it; the checker's memory of the history is then partly updated). */
int checker_step(struct checker *c, const struct checker_node *nodes, size_t n);

const char *checker_message(const struct checker *c);
const char *checker_name(int violation); /* "Election Safety", ... */

/* The highest index known to be committed (by a commit index or a state machine). */
raft_index checker_committed(const struct checker *c);
/* The committed entry at `index` (1 <= index <= checker_committed()). */
int checker_committed_entry(const struct checker *c, raft_index index, struct checker_entry *out);
/* The leader recorded for `term`, 0 if none was seen. */
raft_id checker_leader_of(const struct checker *c, raft_term term);

/* The hash the simulator uses for entries (FNV-1a of the payload, mixed with the type). */
uint64_t checker_entry_hash(uint8_t type, const void *data, size_t len);

#endif /* CAIRN_SIM_CHECKER_H */
