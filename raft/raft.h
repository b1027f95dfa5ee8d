/* raft.h — the Cairn consensus core: a pure, deterministic Raft state machine (no I/O). */
#ifndef CAIRN_RAFT_H
#define CAIRN_RAFT_H

/*
 * THE CONTRACT
 * ============
 * The core never reads a clock, draws a random number, touches a socket or a file. The host
 * (cairnd's libuv loop, or the simulator in test/sim/) feeds it events:
 *
 *   raft_step()          a message arrived from a peer
 *   raft_tick()          time passed (call when now >= the update's next_timeout; earlier is fine)
 *   raft_persisted()     a persist request handed out earlier has completed
 *   raft_propose()       a client wants an entry appended (leader only)
 *   raft_read_index()    a client wants a linearizable read (§6.4)
 *   raft_transfer_leadership()  hand leadership to another voter (§3.10)
 *   raft_compact()       the state machine durably holds a log prefix: forget it (§5.1)
 *   raft_snapshot_sent() the host finished (or failed) streaming a snapshot it was asked for
 *   raft_snapshot_offer()      a complete snapshot arrived: should the host install it?
 *   raft_snapshot_installed()  the install asked for by raft_snapshot_offer() is done
 *
 * Every call takes `now`, a monotonic time in milliseconds chosen by the host; the core only
 * compares these values with each other. Randomness (election timeouts) comes from the `rand`
 * callback in the configuration. Given the same sequence of calls and the same random numbers,
 * the core does exactly the same thing.
 *
 * Output accumulates inside the core and is collected with raft_take_update(). The host must
 * process an update IN THIS ORDER:
 *
 *   1. Persist: if `hard_state_changed`, the new term/vote; if `truncate_from` != 0, delete
 *      every log entry with index >= truncate_from; then append `entries` (ascending indexes).
 *      Persist requests are executed in the order they were handed out (they may be merged
 *      into one write + one fsync: group commit). When one completes the host calls
 *      raft_persisted() with the term and index of the last entry it wrote (or the current
 *      last index when it wrote only hard state; calling it then is optional).
 *   2. Send `messages` right away. Send `messages_after_persist` only after EVERY persist
 *      request handed out so far, including this update's, has completed (the vote grants and
 *      append acknowledgements in it promise things that must already be on disk). The
 *      leader's own AppendEntries are in `messages`: replication runs in parallel with the
 *      leader's own disk write (§10.2.1); the leader counts itself only after raft_persisted().
 *  2b. Start streaming a snapshot to each server in `send_snapshot` (see SNAPSHOTS below).
 *   3. Apply `committed` entries to the state machine, in order. These are always entries
 *      the host has already persisted. The host remembers its applied index.
 *   4. Answer `reads`: each says a read request may be served once the host's applied index
 *      is >= its `index` (or that it failed).
 *
 * Messages may be lost, duplicated, delayed and reordered by the network: the core copes.
 *
 * SNAPSHOTS (log compaction, Chapter 5 of the Raft dissertation; Figure 5.3 InstallSnapshot).
 * The host's state machine is the snapshot (§5.2, disk-based state machines): the core never
 * sees its bytes.
 *
 *   Compaction. Once the state machine durably holds every entry up to some index I (it
 *   applied them, and the result is on disk), the host may delete the log prefix <= I from its
 *   disk and then call raft_compact(I); the core forgets those entries and keeps I and its
 *   term as first_index - 1 / prev_term (§5.1). Each server compacts on its own.
 *
 *   Sending (leader). When a follower needs an entry the leader no longer has, the follower's
 *   replication state becomes SNAPSHOT and its id appears ONCE in an update's `send_snapshot`
 *   (step 2b). The host then streams its state machine as of its applied index A (with the
 *   term of entry A) to that follower, tagged with the update's `term` and this node's id, and
 *   reports the end with raft_snapshot_sent(). Since the host never compacts beyond its applied
 *   index, A >= first_index - 1: after the follower installs it the leader has every entry from
 *   A + 1 on. No AppendEntries go to that follower until it answers (heartbeats continue). A
 *   failed stream sends the follower back to probing; a new snapshot is asked for when still
 *   needed, at most once per election timeout. With neither a report nor an answer within
 *   snapshot_timeout_ms, the core gives up on it the same way.
 *
 *   Receiving (follower). The host receives the whole stream (tagged with the sender's term
 *   and id, and the snapshot's index and index term) and only then calls
 *   raft_snapshot_offer(). If it says install, the host replaces its state machine, drops its
 *   whole log (the log then starts at index + 1), makes that durable and calls
 *   raft_snapshot_installed(). While the install runs, the core hands out no log entries to
 *   persist, no truncation and no committed entries (those handed out before the offer are
 *   executed before the install, in the order handed out): it ignores AppendEntries and starts
 *   no elections. Hard state (term, vote) may still change: the host executes those persist
 *   requests after the install, in the order handed out, and messages_after_persist wait for
 *   them as usual. The acknowledgement of a finished install is in `messages` (the install is
 *   already durable).
 *
 * OWNERSHIP: everything an update points to (entries, their data, messages, send_snapshot) is
 * owned by the core and stays valid until the next raft_take_update() or raft_close() on that
 * instance, whatever other calls happen in between (raft_compact() and raft_snapshot_installed()
 * included: the entries they drop are freed only after that). The host copies what it must keep
 * longer (a message waiting in a queue, entries waiting for the storage thread). Buffers passed
 * INTO the core (proposal data, messages, the initial log) are copied before the call returns;
 * the caller keeps ownership of its own buffers.
 *
 * THREADS: a `struct raft` is not thread-safe; call it from one thread at a time.
 *
 * ERRORS: functions return 0 or one of the RAFT_E* codes below, listed per function.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint64_t raft_id;    /* a server id; 0 means "none" */
typedef uint64_t raft_term;  /* a term; starts at 0 on a fresh node */
typedef uint64_t raft_index; /* a log index; the first entry ever is index 1 */

/* Error codes. */
enum {
	RAFT_OK = 0,
	RAFT_ENOMEM = 1,      /* allocation failed; the instance is unchanged */
	RAFT_EINVAL = 2,      /* an argument is invalid (said in the function's doc) */
	RAFT_ENOTLEADER = 3,  /* this node is not the leader (see raft_leader()) */
	RAFT_ENOLEADER = 4,   /* no leader is known right now */
	RAFT_ETRANSFER = 5,   /* a leadership transfer is in progress: proposals refused */
	RAFT_ETOOBIG = 6,     /* the proposal exceeds max_entry_bytes */
	RAFT_ELEADERLOST = 7, /* (read results) leadership was lost before the read confirmed */
	RAFT_EBADSTATE = 8,   /* the initial state given to raft_init is inconsistent */
	RAFT_ENOTVOTER = 9,   /* transfer target is not a voter, or is this node itself */
	RAFT_ERR_COUNT
};

/* A human-readable string for a RAFT_E* code; never NULL. */
const char *raft_strerror(int err);

/* Log entry types. */
enum raft_entry_type {
	RAFT_ENTRY_NORMAL = 1, /* a client command: `data` is opaque to the core */
	RAFT_ENTRY_NOOP = 2, /* appended by each new leader at the start of its term (§6.4, §8) */
	RAFT_ENTRY_CONFIG = 3, /* reserved: membership changes (a later issue) */
};

struct raft_entry {
	raft_term term;
	raft_index index;
	uint8_t type; /* enum raft_entry_type */
	const void *data;
	size_t len;
};

/* Message types. One flat struct carries all of them; the doc says which fields are used. */
enum raft_msg_type {
	RAFT_MSG_APPEND = 1,	     /* prev_index, prev_term, entries, commit, read_seq */
	RAFT_MSG_APPEND_RESP = 2,    /* reject, index (match or rejected prev), hint_*, read_seq */
	RAFT_MSG_VOTE = 3,	     /* last_log_index, last_log_term, transfer */
	RAFT_MSG_VOTE_RESP = 4,	     /* reject */
	RAFT_MSG_PREVOTE = 5,	     /* term = the term the sender would campaign in; like VOTE */
	RAFT_MSG_PREVOTE_RESP = 6,   /* reject; term = the term of the pre-vote when granted */
	RAFT_MSG_HEARTBEAT = 7,	     /* commit (min(match, commit)), read_seq */
	RAFT_MSG_HEARTBEAT_RESP = 8, /* read_seq */
	RAFT_MSG_TIMEOUT_NOW = 9,    /* start an election at once (leadership transfer, §3.10) */
	RAFT_MSG_READ_INDEX = 10,    /* follower -> leader: read_ctx; asks for a read index */
	RAFT_MSG_READ_INDEX_RESP = 11, /* leader -> follower: read_ctx, index, reject */
	/* 12..15 reserved. InstallSnapshot needs no message of its own: its data travels outside
	 * the core (see SNAPSHOTS) and its answer is an APPEND_RESP. */
	RAFT_MSG_TYPE_MAX = 16
};

struct raft_message {
	uint8_t type; /* enum raft_msg_type */
	raft_id from;
	raft_id to;
	raft_term term;
	raft_index prev_index; /* APPEND */
	raft_term prev_term;   /* APPEND */
	raft_index commit;     /* APPEND, HEARTBEAT */
	raft_index index;      /* APPEND_RESP: match (ok) or rejected prev_index; READ_INDEX_RESP */
	raft_index last_log_index; /* VOTE, PREVOTE */
	raft_term last_log_term;   /* VOTE, PREVOTE */
	raft_index hint_index; /* APPEND_RESP reject: follower's guess of the last matching index */
	raft_term hint_term;   /* APPEND_RESP reject: term of the follower's entry at hint_index */
	uint64_t read_seq;     /* APPEND, HEARTBEAT and their responses: ReadIndex round */
	uint64_t read_ctx;     /* READ_INDEX, READ_INDEX_RESP: the requester's context */
	bool reject;	       /* *_RESP */
	bool transfer;	       /* VOTE, PREVOTE: caused by a leadership transfer */
	struct raft_entry *entries; /* APPEND */
	size_t n_entries;
};

/* Deep copy of a message (entries and their data) into `dst`, for a host that queues messages.
 * Release with raft_message_free(). Returns 0 or RAFT_ENOMEM (then dst holds nothing). */
int raft_message_copy(struct raft_message *dst, const struct raft_message *src);
/* Frees the entries and data of a message made by raft_message_copy(). */
void raft_message_free(struct raft_message *m);

/* Roles. */
enum raft_role {
	RAFT_FOLLOWER = 1,
	RAFT_PRE_CANDIDATE = 2,
	RAFT_CANDIDATE = 3,
	RAFT_LEADER = 4,
};
const char *raft_role_name(int role);

/* A member of the configuration. Addresses are the host's business. */
struct raft_server {
	raft_id id;
	bool voter; /* false: a learner (reserved; replicated to, never counted) */
};

struct raft_configuration {
	struct raft_server *servers;
	size_t n;
};

/* Tunables and dependencies. Zero fields take the defaults named below. */
struct raft_config {
	raft_id id;				 /* this node's id (required, != 0) */
	struct raft_configuration configuration; /* the voters (copied; required, must hold id) */
	uint32_t election_timeout_ms; /* base; actual is random in [t, 2t). Default 1000 */
	uint32_t heartbeat_ms;	      /* default 100; must be < election_timeout_ms */
	uint32_t max_entries_per_msg; /* batching: default 256 */
	size_t max_bytes_per_msg;     /* batching: default 1 MiB (at least one entry) */
	uint32_t max_inflight_msgs;   /* pipelining: default 64 per follower */
	size_t max_entry_bytes;	      /* proposals larger are refused: default 2 MiB */
	bool disable_pre_vote;	      /* pre-vote (§9.6) is on unless this is set */
	bool disable_check_quorum;    /* check-quorum (§6.2) is on unless this is set */
	/* A leader gives up on a snapshot it asked for when neither raft_snapshot_sent() nor the
	 * follower's answer came within this long (counted again from an ok report). It bounds
	 * how long a stream may take: raise it for big state machines on slow links. Default
	 * 5 x election_timeout_ms. */
	uint32_t snapshot_timeout_ms;
	/* Uniform random 64-bit numbers; required. Called only for election timeouts. */
	uint64_t (*rand)(void *rand_ctx);
	void *rand_ctx;
};

/* State restored from disk at start-up. Zero it for a brand new node. */
struct raft_initial_state {
	raft_term term;
	raft_id vote;
	raft_index first_index;	    /* index of entries[0]; 1 for a log never compacted */
	raft_term prev_term;	    /* term of the entry at first_index - 1 (0 if none) */
	struct raft_entry *entries; /* the persisted log, ascending, contiguous (copied) */
	size_t n_entries;
	raft_index applied; /* the state machine's applied index (entries <= it are not
			       handed out again as committed); after a compaction or an installed
			       snapshot, >= first_index - 1 */
};

/* A read request's outcome (§6.4). */
struct raft_read {
	uint64_t ctx;	  /* as passed to raft_read_index() */
	raft_index index; /* serve the read once applied >= index (when err == 0) */
	int err;	  /* 0, RAFT_ELEADERLOST, RAFT_ENOLEADER or RAFT_ENOTLEADER */
};

struct raft_update {
	/* 1. persist */
	bool hard_state_changed;
	raft_term term;
	raft_id vote;
	raft_index truncate_from; /* 0: nothing to delete */
	struct raft_entry *entries;
	size_t n_entries;
	/* 2. send */
	struct raft_message *messages;
	size_t n_messages;
	struct raft_message *messages_after_persist;
	size_t n_messages_after_persist;
	/* 2b. snapshots to send: for each id, stream the state machine (at the host's applied
	 * index A, with the term of entry A) to that follower, tagged with this update's `term`
	 * and this node's id. Report the end with raft_snapshot_sent(). */
	raft_id *send_snapshot;
	size_t n_send_snapshot;
	/* 3. apply (never entries <= a compaction or installed snapshot index) */
	struct raft_entry *committed;
	size_t n_committed;
	/* 4. reads */
	struct raft_read *reads;
	size_t n_reads;
	/* soft state, for logs and clients */
	bool soft_state_changed; /* role or leader changed since the previous update */
	int role;
	raft_id leader;
	raft_index commit;
	/* when to call raft_tick() next (absolute, same clock as `now`) */
	uint64_t next_timeout;
};

struct raft; /* opaque */

/* Creates a core. `now` starts its clocks. Errors: RAFT_EINVAL (config: id 0, id not a
 * voter in the configuration, duplicate ids, no rand, heartbeat >= election timeout),
 * RAFT_EBADSTATE (initial log not contiguous, applied beyond the log), RAFT_ENOMEM. */
int raft_init(struct raft **out, const struct raft_config *config,
	      const struct raft_initial_state *state, uint64_t now);
/* Frees the core and everything its last update pointed to. NULL is fine. */
void raft_close(struct raft *r);

/* A message from a peer. Messages not addressed to this node, with unknown types or from
 * servers outside the configuration are ignored. Errors: RAFT_ENOMEM (the message was not
 * processed; treat it as lost). */
int raft_step(struct raft *r, uint64_t now, const struct raft_message *m);

/* Time passed. Fires election timeouts, heartbeats, check-quorum. Errors: RAFT_ENOMEM. */
int raft_tick(struct raft *r, uint64_t now);

/* Entries up to `index` with term `term` are durable. A stale report (the entry at `index`
 * no longer has `term`) is ignored. Errors: none (always 0). */
int raft_persisted(struct raft *r, uint64_t now, raft_term term, raft_index index);

/* Appends `n` entries of type RAFT_ENTRY_NORMAL. On success *term_out and *index_out (either
 * may be NULL) identify the first; the others follow it. A proposal is committed when an
 * entry with that index AND term comes out in `committed`; if one with that index and another
 * term comes out, the proposal was lost. Errors: RAFT_ENOTLEADER, RAFT_ETRANSFER,
 * RAFT_ETOOBIG (an entry is over max_entry_bytes; nothing was appended), RAFT_EINVAL (n == 0),
 * RAFT_ENOMEM. */
int raft_propose(struct raft *r, uint64_t now, const struct raft_entry *entries, size_t n,
		 raft_term *term_out, raft_index *index_out);

/* Asks for a linearizable read (§6.4). On the leader, reads that arrive together share one
 * heartbeat round; on a follower the request is forwarded to the leader. The answer comes
 * later in an update's `reads` with the same ctx (never from this call), exactly once: a
 * forwarded read fails with RAFT_ELEADERLOST when the leader changes or when no answer came
 * within an election timeout; a read on the leader fails when it steps down. Errors:
 * RAFT_ENOLEADER (a follower that knows no leader), RAFT_ENOMEM. */
int raft_read_index(struct raft *r, uint64_t now, uint64_t ctx);

/* Transfers leadership to `target` (§3.10): proposals are refused while it runs; the target
 * is brought up to date and told to campaign at once; the transfer is abandoned after an
 * election timeout. Errors: RAFT_ENOTLEADER, RAFT_ENOTVOTER, RAFT_ETRANSFER (one already
 * running). */
int raft_transfer_leadership(struct raft *r, uint64_t now, raft_id target);

/* The host saw its connection from server `id` close (the process died, or the network
 * broke). If `id` is our leader, stop honouring its lease (§4.2.3) and campaign within about
 * a heartbeat interval unless it is heard from again: a crashed leader is replaced in a
 * fraction of an election timeout. A false alarm costs at most an election. Errors: none. */
int raft_peer_lost(struct raft *r, uint64_t now, raft_id id);

/* ---- snapshots (see SNAPSHOTS in THE CONTRACT) */

/* The host's state machine durably holds every entry up to `index` (it applied them and the
 * result is on disk): the core may forget entries <= index (log compaction, §5.1). The core
 * keeps index and its term as first_index - 1 / prev_term. Followers that later need a
 * forgotten entry are sent a snapshot (see send_snapshot in struct raft_update). Entries of
 * updates already handed out stay valid (OWNERSHIP). The whole log may be compacted: the last
 * index is then first_index - 1 and the last term prev_term. Errors: RAFT_EINVAL (index >
 * commit index or > persisted index), RAFT_ENOMEM (nothing changed). index < first_index:
 * no-op, returns 0. */
int raft_compact(struct raft *r, raft_index index);

/* The host finished streaming the snapshot asked for to `to` (ok: every byte was handed to
 * the transport; !ok: it failed, e.g. the connection closed). After !ok the follower goes back
 * to probing and a new snapshot is asked for when still needed, not more often than once per
 * election timeout. If neither a report nor an answer comes within snapshot_timeout_ms, the
 * core gives up on that snapshot the same way. A report for a snapshot the core no longer
 * waits for (it gave up, or is not the leader any more) is ignored. Errors: none. */
int raft_snapshot_sent(struct raft *r, uint64_t now, raft_id to, bool ok);

/* A complete snapshot arrived from `from`, sent as leader in term `term`, of the state
 * machine at entry (index, index_term). Sets *install:
 *  - false: nothing to install; the core handles it like an AppendEntries with
 *    prev = (index, index_term) and no entries: a stale term is answered with our term (so the
 *    sender steps down); otherwise, if our commit index >= index, or our log holds (index,
 *    index_term), the core answers success with match = index (or our commit index when that
 *    is higher; the follower applies from its own log). An offer while an install is already
 *    in progress, or from a server outside the configuration, is ignored.
 *  - true: the host must install it: replace the state machine, drop the whole log (the log
 *    then starts at index + 1, prev term index_term), make that durable, then call
 *    raft_snapshot_installed(). Until then the core is "installing": it ignores APPEND
 *    messages (treated as lost) and does not start elections (its election timer is reset
 *    instead), so no persist request for log entries is handed out while the install runs.
 *    Votes/pre-votes for others are still answered (hard-state persists are ordered with the
 *    install by the host).
 * A term > ours makes us a follower of `from` in that term (hard state change), as any
 * message from a leader would, and resets the election timer. Errors: RAFT_ENOMEM (the offer
 * was not processed; *install is false). */
int raft_snapshot_offer(struct raft *r, uint64_t now, raft_id from, raft_term term,
			raft_index index, raft_term index_term, bool *install);

/* The install asked for by the last raft_snapshot_offer() completed (ok) or failed (!ok: the
 * state machine and log are unchanged; the core just stops "installing"). On ok: the in-memory
 * log is emptied, first_index = index + 1, prev_term = index_term, persisted index = index,
 * commit = max(commit, index), and entries <= index are never handed out as committed; the
 * core answers the current leader (if any) with APPEND_RESP success, match = index (in
 * `messages`, as the install is already durable). Errors: RAFT_EINVAL (no install pending, or
 * index/index_term differ from the offer). */
int raft_snapshot_installed(struct raft *r, uint64_t now, raft_index index, raft_term index_term,
			    bool ok);

/* True when raft_take_update() would return something worth processing. */
bool raft_has_update(const struct raft *r);
/* Hands out everything accumulated since the previous call (see THE CONTRACT). Always fills
 * *u, possibly with nothing to do but next_timeout. Errors: RAFT_ENOMEM (nothing was handed
 * out; call again later). */
int raft_take_update(struct raft *r, struct raft_update *u);

/* Read-only accessors. */
raft_id raft_self(const struct raft *r);
int raft_role(const struct raft *r);
raft_id raft_leader(const struct raft *r);
raft_term raft_current_term(const struct raft *r);
raft_index raft_commit_index(const struct raft *r);
raft_index raft_last_index(const struct raft *r);
raft_index raft_persisted_index(const struct raft *r);
raft_index raft_first_index(const struct raft *r);
/* True between a raft_snapshot_offer() that said install and its raft_snapshot_installed(). */
bool raft_installing(const struct raft *r);
/* When raft_tick() should be called next (absolute, the clock of `now`). */
uint64_t raft_next_timeout(const struct raft *r);
/* The in-memory log entry at `index` (pointers valid until the next call that changes the
 * log). Returns 0, or RAFT_EINVAL when index is outside [first_index, last_index]. For
 * checkers and tests. */
int raft_log_entry(const struct raft *r, raft_index index, struct raft_entry *out);
/* Term of the entry at `index` (prev_term for first_index - 1); 0 if unknown. */
raft_term raft_term_at(const struct raft *r, raft_index index);

/* Counters for logs, metrics and the simulator's report. */
struct raft_stats {
	uint64_t elections_started; /* real elections (after pre-vote) */
	uint64_t pre_votes_started;
	uint64_t became_leader;
	uint64_t stepped_down; /* leader -> follower */
	uint64_t check_quorum_step_downs;
	uint64_t entries_committed;
	uint64_t append_msgs_sent;
	uint64_t heartbeats_sent;
	uint64_t read_rounds;
	uint64_t transfers;
	uint64_t snapshots_sent;      /* leader: snapshots asked for in send_snapshot */
	uint64_t snapshots_aborted;   /* leader: ... reported failed, or given up on */
	uint64_t snapshots_installed; /* follower: raft_snapshot_installed(ok) */
	uint64_t compactions;	      /* raft_compact() calls that dropped entries */
};
void raft_get_stats(const struct raft *r, struct raft_stats *out);

#endif /* CAIRN_RAFT_H */
