/* raft_int.h — internal structures and helpers shared by the files of the Raft core. */
#ifndef CAIRN_RAFT_INT_H
#define CAIRN_RAFT_INT_H

#include "raft/raft.h"

#define RAFT_DEFAULT_ELECTION_TIMEOUT_MS 1000u
#define RAFT_DEFAULT_HEARTBEAT_MS	 100u
#define RAFT_DEFAULT_MAX_ENTRIES_PER_MSG 256u
#define RAFT_DEFAULT_MAX_BYTES_PER_MSG	 ((size_t)1 << 20)
#define RAFT_DEFAULT_MAX_INFLIGHT	 64u
#define RAFT_MAX_FORWARDED_READS	 65536u
#define RAFT_DEFAULT_MAX_ENTRY_BYTES	 ((size_t)2 << 20)
#define RAFT_DEFAULT_SNAPSHOT_TIMEOUTS	 5u /* snapshot_timeout_ms, in election timeouts */

/* The in-memory log: entries [first, first + n). Each entry's data is a private copy. */
struct raft_log {
	struct raft_entry *entries;
	size_t n;
	size_t cap;
	raft_index first;    /* index of entries[0] */
	raft_term prev_term; /* term of the entry at first - 1 */
};

/* A growable array of pointers, for buffers that must outlive the log that dropped them. */
struct raft_ptrs {
	void **v;
	size_t n;
	size_t cap;
};

/* Replication state of one follower as seen by the leader (§3.5, flow control as in
 * etcd-io/raft's Progress: probe one message at a time until a match is found, then
 * pipeline up to max_inflight messages; SNAPSHOT while the host streams the state machine to
 * a follower that needs entries this leader compacted, §5.1, Figure 5.3). */
enum { PROGRESS_PROBE = 1, PROGRESS_REPLICATE = 2, PROGRESS_SNAPSHOT = 3 };

struct raft_progress {
	raft_id id;
	bool voter;
	raft_index match;
	raft_index next;
	int state;
	bool probe_sent;      /* PROBE: a message is out, wait for an answer or a heartbeat */
	raft_index *inflight; /* REPLICATE: ring of the last index of each message in flight */
	uint32_t in_head;
	uint32_t in_count;
	bool recent_active;	/* heard from within the current check-quorum period */
	uint64_t read_ack;	/* highest ReadIndex round it acknowledged in this term */
	int8_t vote;		/* election: -1 unknown, 0 rejected, 1 granted */
	uint64_t snap_deadline; /* SNAPSHOT: give up unless a report or an answer comes by then */
	uint64_t snap_retry_at; /* no new snapshot asked for before then (after a failed one) */
};

/* A read a follower forwarded to its leader: failed if no answer comes by `deadline`. */
struct raft_fwd_read {
	uint64_t ctx;
	uint64_t deadline;
};

/* A ReadIndex request waiting for its heartbeat round (§6.4). */
struct raft_pending_read {
	uint64_t ctx;
	raft_id from; /* 0: local; otherwise the follower that forwarded it */
	uint64_t seq; /* round; 0 until a round is started for it */
	raft_index index;
};

struct raft_msgvec {
	struct raft_message *v;
	size_t n;
	size_t cap;
};

struct raft {
	raft_id id;
	struct raft_config cfg;	     /* tunables with defaults filled in */
	struct raft_progress *peers; /* every server of the configuration, self included */
	size_t n_peers;
	size_t n_voters;

	/* persistent state (§3.2, Figure 3.1) */
	raft_term term;
	raft_id vote;
	struct raft_log log;

	/* volatile state */
	int role;
	raft_id leader;
	raft_index commit;
	raft_index persisted;	/* entries up to here are durable on this node */
	raft_index emitted;	/* committed entries handed out for applying up to here */
	bool committed_in_term; /* leader: an entry of its own term is committed */

	/* timers (absolute ms) */
	uint64_t now;
	uint64_t election_deadline;
	uint64_t heartbeat_deadline;
	uint64_t quorum_deadline;
	uint64_t last_leader_contact;
	bool heard_leader;

	/* ReadIndex */
	uint64_t read_seq; /* last round started in this term */
	struct raft_pending_read *reads;
	size_t n_reads;
	size_t cap_reads;

	/* reads this follower forwarded to the leader, awaiting its answer */
	struct raft_fwd_read *fwd_reads; /* oldest first */
	size_t n_fwd_reads;
	size_t cap_fwd_reads;

	/* leadership transfer */
	raft_id transfer_target;
	uint64_t transfer_deadline;

	/* snapshot being installed by the host (follower side, §5.1, Figure 5.3) */
	bool installing;
	raft_index install_index;
	raft_term install_term;

	/* output accumulated for the next update */
	bool hs_dirty;
	raft_index unstable_from; /* entries >= this have not been handed out for persisting */
	raft_index truncate_from; /* 0 or the pending truncation point */
	struct raft_msgvec out_now;
	struct raft_msgvec out_after;
	struct raft_read *out_reads;
	size_t n_out_reads;
	size_t cap_out_reads;
	raft_id *out_snap; /* followers the host must send a snapshot to */
	size_t n_out_snap;
	size_t cap_out_snap;
	int last_role;
	raft_id last_leader;

	/* what the last update handed out, freed at the next take */
	struct raft_update handed;
	struct raft_ptrs graveyard;	/* data dropped from the log since the last take */
	struct raft_ptrs old_graveyard; /* dropped before the last take, maybe referenced by it */

	struct raft_stats stats;
};

/* log.c */
void log_init(struct raft_log *l, raft_index first, raft_term prev_term);
void log_free(struct raft_log *l);
raft_index log_last_index(const struct raft_log *l);
raft_term log_last_term(const struct raft_log *l);
raft_term log_term_at(const struct raft_log *l, raft_index i); /* 0 when unknown */
const struct raft_entry *log_get(const struct raft_log *l, raft_index i);
int log_append(struct raft_log *l, raft_term term, uint8_t type, const void *data, size_t len);
int log_truncate(struct raft_log *l, raft_index from, struct raft_ptrs *graveyard);
/* Both need graveyard room for every entry they drop (ptrs_reserve): they cannot fail. */
void log_compact(struct raft_log *l, raft_index upto, struct raft_ptrs *graveyard);
void log_reset(struct raft_log *l, raft_index index, raft_term term, struct raft_ptrs *graveyard);

/* core.c */
int ptrs_push(struct raft_ptrs *p, void *x);
int ptrs_reserve(struct raft_ptrs *p, size_t n); /* room for n more without allocating */
void ptrs_free_all(struct raft_ptrs *p);
size_t raft_quorum(const struct raft *r);
struct raft_progress *raft_progress_of(struct raft *r, raft_id id);
int raft_send(struct raft *r, struct raft_message *m);	   /* takes ownership of m->entries */
int raft_send_now(struct raft *r, struct raft_message *m); /* in `messages` whatever its type */
uint64_t raft_random_timeout(struct raft *r);
int raft_push_read_result(struct raft *r, uint64_t ctx, raft_index index, int err);

/* election.c */
int election_become_follower(struct raft *r, raft_term term, raft_id leader);
int election_start(struct raft *r, bool pre_vote, bool transfer);
int election_recv_vote(struct raft *r, const struct raft_message *m);
int election_recv_vote_resp(struct raft *r, const struct raft_message *m);
int election_tick(struct raft *r);
bool election_in_lease(const struct raft *r);

/* replication.c */
void progress_reset(struct raft *r, struct raft_progress *p);
int replication_send_append(struct raft *r, struct raft_progress *p);
int replication_broadcast_append(struct raft *r);
int replication_broadcast_heartbeat(struct raft *r);
int replication_recv_append(struct raft *r, const struct raft_message *m);
int replication_recv_append_resp(struct raft *r, const struct raft_message *m);
int replication_recv_heartbeat(struct raft *r, const struct raft_message *m);
int replication_recv_heartbeat_resp(struct raft *r, const struct raft_message *m);
int replication_maybe_commit(struct raft *r);
int replication_heard_from_leader(struct raft *r, raft_id leader);
void progress_become_probe(struct raft_progress *p, raft_index next);
void progress_become_replicate(struct raft_progress *p);

/* read_index.c */
int readindex_start_round(struct raft *r);
int readindex_recv_request(struct raft *r, const struct raft_message *m);
int readindex_recv_response(struct raft *r, const struct raft_message *m);
int readindex_on_ack(struct raft *r);
int readindex_fail_all(struct raft *r);
bool readindex_round_wanted(const struct raft *r);
int readindex_forward(struct raft *r, uint64_t ctx);
int readindex_fail_forwarded(struct raft *r);
int readindex_expire_forwarded(struct raft *r);

/* snapshot.c */
int snapshot_need(struct raft *r, struct raft_progress *p);
int snapshot_tick(struct raft *r);
uint64_t snapshot_next_deadline(const struct raft *r, uint64_t t);
void snapshot_forget_asks(struct raft *r);

/* transfer.c */
int transfer_on_progress(struct raft *r, struct raft_progress *p);
int transfer_recv_timeout_now(struct raft *r, const struct raft_message *m);

#endif /* CAIRN_RAFT_INT_H */
