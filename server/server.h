/* server.h — cairnd's shared structures: configuration, connections, the node and its storage
 * worker. */
#ifndef CAIRN_SERVER_H
#define CAIRN_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "proto/cairn.pb-c.h"
#include "proto/peer.pb-c.h"
#include "raft/raft.h"
#include "storage/storage.h"

#define CAIRN_VERSION		    "0.1.0"
#define CAIRN_MAX_MEMBERS	    9
#define CAIRN_ADDR_MAX		    256
#define CAIRN_NAME_MAX		    64
#define CAIRN_DEFAULT_CLIENT_ADDR   "127.0.0.1:7379"
#define CAIRN_DEFAULT_PEER_ADDR	    "127.0.0.1:7380"
#define CAIRN_DEFAULT_DATA_DIR	    "./cairn-data"
#define CAIRN_DEFAULT_CLUSTER_TOKEN "cairn"
#define CAIRN_DEFAULT_MAX_FRAME	    (4u << 20)
#define CAIRN_MIN_MAX_FRAME	    (64u << 10)
#define CAIRN_PEER_MAX_FRAME	    (64u << 20) /* AppendEntries batches are bounded below it */
#define CAIRN_PEER_MAX_BUFFERED	    (64u << 20) /* drop messages to a peer that is this far behind */
#define CAIRN_PEER_BACKOFF_MIN_MS   50u
#define CAIRN_PEER_BACKOFF_MAX_MS   2000u
#define CAIRN_PEER_PROTOCOL_VERSION 1u
#define CAIRN_MAX_PENDING_PER_CONN  4096u /* requests in flight on one client connection */
#define CAIRN_READ_BUF_MIN	    (64u << 10)
#define CAIRN_READ_TIMEOUT_MS	    10000u /* a linearizable read gives up after this */
#define CAIRN_SWEEP_MS		    500u
#define CAIRN_SPACE_REFRESH_MS	    100u
#define CAIRN_SPACE_WRITE_FACTOR    4u /* a write costs about this many times its size on disk */
/* Writes are refused while less than this would stay free on the data directory's disk. */
#define CAIRN_DISK_RESERVE_BYTES ((uint64_t)64 * 1024 * 1024)
/* Log compaction (§5): once this many entries were applied beyond the ones kept, the log
 * prefix is dropped (on disk and in memory); the state machine in LMDB is the snapshot. */
#define CAIRN_DEFAULT_SNAPSHOT_COUNT   2500u
#define CAIRN_DEFAULT_SNAPSHOT_CATCHUP 2500u /* entries kept for lagging followers */
#define CAIRN_TRIM_DELAY_MS	       1000u /* after a compaction, before malloc_trim */
/* The apply thread commits at least this often, and at once when readers wait (measured with
 * 3 members on one disk: 0 (every batch) / 2 / 5 ms gave put p50 at 1 client 0.65-0.71 /
 * 0.54-0.56 / 0.45 ms and 27-33k / 32-34k / 34-37k puts/s at 256 clients). */
#define CAIRN_APPLY_COMMIT_MS 5u
/* ... or sooner, once the entries applied since the last compaction hold this many bytes
 * (so large values do not pile up in memory). */
#define CAIRN_COMPACT_BYTES  (64u << 20)
#define CAIRN_SNAPSHOT_CHUNK (1u << 20) /* bytes per SnapshotChunk frame */
#define CAIRN_SNAPSHOT_QUEUE (1u << 20) /* queue the next chunk below this backlog */
/* A stream that queued nothing for this many election timeouts is stalled (a hung follower,
 * a blackholed link): it is dropped, releasing its LMDB read transaction. */
#define CAIRN_SNAPSHOT_STALL_TIMEOUTS 5u

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

struct member_addr {
	raft_id id;
	char peer_addr[CAIRN_ADDR_MAX];
};

struct config {
	raft_id id;
	char name[CAIRN_NAME_MAX];
	char data_dir[1024];
	char listen_client[CAIRN_ADDR_MAX];
	char advertise_client[CAIRN_ADDR_MAX];
	char listen_peer[CAIRN_ADDR_MAX];
	struct member_addr members[CAIRN_MAX_MEMBERS];
	size_t n_members;
	char initial_cluster[4096];
	char cluster_token[CAIRN_NAME_MAX];
	uint32_t heartbeat_ms;
	uint32_t election_timeout_ms;
	uint32_t max_frame_bytes;
	size_t map_size;
	uint64_t snapshot_count;   /* --snapshot-count */
	uint64_t snapshot_catchup; /* --snapshot-catchup-entries */
	int log_level;
	bool nosync; /* tests only */
};

/* Fills defaults, then applies the config file named by --config (if any), then the flags.
 * Returns 0, or -1 after printing what is wrong to stderr; 1 when --help/--version printed. */
int config_parse(struct config *c, int argc, char **argv);

/* ---- logging --------------------------------------------------------------- */

struct server;
void slog(struct server *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- byte buffers and framed connections ------------------------------------- */

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
int buf_reserve(struct buf *b, size_t extra);
void buf_free(struct buf *b);

enum conn_kind { CONN_CLIENT = 1, CONN_PEER_IN = 2, CONN_PEER_OUT = 3 };

struct conn {
	uv_tcp_t tcp;
	struct server *s;
	int kind;
	uint64_t id;
	int refs;     /* the handle + each pending request that will answer on it */
	bool closing; /* uv_close called or about to be */
	bool close_after_flush;
	bool writing;
	bool connected;
	struct buf in;
	struct buf out;	     /* queued, not yet handed to uv_write */
	struct buf inflight; /* handed to uv_write */
	uv_write_t wreq;
	uint32_t max_frame;
	size_t pending;	   /* client: requests not yet answered */
	struct peer *peer; /* CONN_PEER_OUT: owner; CONN_PEER_IN: set after Hello */
	raft_id remote_id;
	struct conn *next, *prev; /* in s->conns */
	bool flush_queued;
};

/* Appends a frame (4-byte big-endian length + packed message) to the connection's output;
 * it is written in the before-sleep flush. Returns 0 or -1 (no memory: the connection is
 * closed). */
int conn_send_msg(struct conn *c, const ProtobufCMessage *msg);
void conn_close(struct conn *c, const char *why);
void conn_unref(struct conn *c);
void conn_flush_all(struct server *s);
/* Starts reading with frame handling for the kind; for accepted and connected sockets. */
int conn_start(struct conn *c);
struct conn *conn_new(struct server *s, int kind);

/* ---- peers ----------------------------------------------------------------- */

struct peer {
	struct server *s;
	raft_id id;
	char peer_addr[CAIRN_ADDR_MAX];
	char client_addr[CAIRN_ADDR_MAX]; /* learned from its Hello */
	struct conn *out;		  /* outbound connection, NULL when down */
	uv_timer_t retry;
	uint32_t backoff_ms;
	bool up;
	bool ever_up;
	bool reported_down;
	uint64_t dropped;
	/* A snapshot being streamed to this peer (leader only); see snapshot.c. */
	struct storage_snapshot *snap;
	struct storage_snapshot_meta snap_meta;
	raft_term snap_term;	   /* our term when the stream started */
	uint64_t snap_conn;	   /* the outbound connection it is sent on (conn id) */
	uint64_t snap_offset;	   /* bytes queued so far */
	uint64_t snap_progress_at; /* loop ms when the stream last queued a chunk */
	/* After a stream was sent: the follower still has to receive and install it, so the
	 * log is not compacted past its index until this time (loop ms). */
	raft_index snap_hold_index;
	uint64_t snap_hold_until;
};

int peers_start(struct server *s);
void peers_stop(struct server *s);
void peer_send_raft(struct server *s, const struct raft_message *m);
void peer_on_frame(struct conn *c, const uint8_t *data, size_t len);
void peer_on_close(struct conn *c);
struct peer *peer_by_id(struct server *s, raft_id id);
/* Encodes a raft message into a PeerFrame (len-prefixed) appended to `b`. */
int peer_encode_raft(struct buf *b, const struct raft_message *m);

/* ---- storage worker --------------------------------------------------------- */

struct encoded_msg {
	raft_id to;
	struct buf frame;
};

enum job_kind {
	JOB_PERSIST = 1, /* log appends / truncation / hard state (one log write per batch) */
	JOB_APPLY = 2,	 /* committed entries to apply (into the apply thread's open txn) */
	JOB_INSTALL = 3, /* install a received snapshot (a txn of its own, log thread) */
	JOB_COMPACT = 4, /* drop the log prefix up to `compact_upto` (apply thread) */
};

struct job {
	int kind;
	struct job *next;
	struct job *early_next; /* JOB_APPLY: in worker.early, results ready before the commit */
	bool replied;		/* JOB_APPLY: the loop answered the writes from the early results */
	/* JOB_PERSIST */
	uint64_t truncate_from;
	struct storage_entry *entries; /* data copied into `arena` */
	size_t n_entries;
	bool has_hs;
	struct storage_hard_state hs;
	struct encoded_msg *after; /* sent when this job (and all before it) completed */
	size_t n_after;
	/* JOB_APPLY */
	struct storage_entry *apply; /* committed entries (data copied) */
	size_t n_apply;
	struct storage_result *results; /* filled by the worker, one per entry */
	uint8_t *arena;
	/* JOB_INSTALL */
	struct storage_snapshot_install *install; /* consumed by the worker */
	struct storage_snapshot_meta meta;	  /* what was installed (status == 0) */
	raft_index snap_index;
	raft_term snap_term;
	/* JOB_COMPACT */
	uint64_t compact_upto;
	/* JOB_INSTALL, JOB_COMPACT: 0 or a STORAGE_E* code, and its message */
	int status;
	char errmsg[STORAGE_ERRMSG_SIZE];
};

/* Two storage threads: `thread` appends to the log (JOB_PERSIST, and JOB_INSTALL in queue
 * order), `apply_thread` applies committed entries (JOB_APPLY) in a transaction it commits
 * now and then, and runs compactions (JOB_COMPACT) between its commits. */
struct worker {
	pthread_t thread;
	pthread_t apply_thread;
	pthread_mutex_t mu;
	pthread_cond_t cond;		     /* the log thread's queue */
	pthread_cond_t acond;		     /* the apply thread's queue */
	pthread_cond_t idle;		     /* the apply thread has nothing queued or running */
	struct job *head, *tail;	     /* to do: log thread */
	struct job *ahead, *atail;	     /* to do: apply thread */
	bool applying;			     /* a batch running or a transaction open */
	bool commit_req;		     /* the loop wants the applies committed now */
	/* apply thread only: the open transaction, since when, and the jobs applied in it */
	struct storage_applier *applier;
	uint64_t applier_since_ms;
	struct job *uncommitted;
	struct job *done_head, *done_tail;   /* done, for the loop */
	struct job *early_head, *early_tail; /* applies computed, commit still running */
	bool stop;
	bool started;
	bool nospace_log;   /* the log thread waits for disk space: the loop refuses writes */
	bool nospace_apply; /* the apply thread waits for map space: likewise */
	struct storage_space space; /* last reading, refreshed after commits (at most 10/s) */
	uint64_t space_seq;	    /* bumped at each reading */
	uint64_t space_at_ms;
	uv_async_t done_async;
	struct server *s;
};

int worker_start(struct server *s);
void worker_submit(struct server *s, struct job *j);
/* Asks the thread to finish what is queued and exit; joins it. */
void worker_stop(struct server *s);
void job_free(struct job *j);
bool worker_nospace(struct server *s);
/* Of those, whether it is the log thread waiting for disk space. */
bool worker_nospace_disk(struct server *s);
/* Asks the apply thread to commit what it applied (readers wait for it); loop thread. */
void worker_commit_applies(struct server *s);
/* Takes a new space reading now unless one is younger than CAIRN_SPACE_REFRESH_MS (loop
 * thread: admission control when its estimate is stale). True when it took one. */
bool worker_space_refresh(struct server *s);
/* The latest space reading and its sequence number. */
void worker_space(struct server *s, struct storage_space *out, uint64_t *seq);

/* ---- the node: pending client work ------------------------------------------ */

enum pending_kind { PENDING_WRITE = 1, PENDING_SESSION = 2, PENDING_READ = 3 };

struct pending {
	int kind;
	struct conn *conn;
	uint64_t req_id;
	int op; /* Cairn__Request__OpCase of the request */
	raft_term term;
	raft_index index;
	uint64_t read_ctx;
	uint64_t deadline;   /* PENDING_READ: answered TIMEOUT after this (loop ms) */
	Cairn__Request *req; /* PENDING_READ: the decoded request, served once applied */
	struct pending *next;
};

struct pending_list {
	struct pending *head, *tail;
	size_t n;
};

struct server {
	struct config cfg;
	uv_loop_t *loop;
	struct raft *raft;
	storage_t *store;
	uint64_t cluster_id;
	struct peer peers[CAIRN_MAX_MEMBERS];
	size_t n_peers;

	uv_tcp_t client_listener;
	uv_tcp_t peer_listener;
	bool listeners_open;
	uv_timer_t raft_timer;
	uv_timer_t sweep_timer; /* expires reads whose confirmation never came; trims memory */
	uint64_t trim_after_ms; /* 0, or when to give freed heap memory back (after compaction) */
	uv_prepare_t before_sleep;
	uv_signal_t sig_term, sig_int;

	struct worker worker;
	size_t log_jobs_in_flight; /* storage jobs queued for the log thread (persist, install) */

	struct conn *conns;
	uint64_t next_conn_id;

	struct pending_list writes;	 /* proposals by increasing index */
	struct pending_list reads;	 /* waiting for a read index */
	struct pending_list reads_ready; /* have a read index, waiting for apply */
	uint64_t next_read_ctx;

	raft_index applied;
	raft_index replied; /* writes up to this index were answered (results known) */
	raft_term applied_term;
	int role;
	raft_id leader;
	bool stopping;
	uint64_t entries_applied;
	uint64_t revision;	 /* store revision after the last apply (for error-reply headers) */
	uint64_t rng;		 /* state of the election-timeout random source */
	uint64_t admitted_bytes; /* write bytes admitted since the space reading below */
	uint64_t admitted_seq;

	/* Log compaction and snapshots (snapshot.c). */
	bool compacting;	      /* a JOB_COMPACT is queued */
	uint64_t bytes_since_compact; /* entry bytes applied since the last compaction */
	uint64_t compactions;
	uint64_t snapshots_sent, snapshots_installed;
	uint8_t *snap_buf; /* CAIRN_SNAPSHOT_CHUNK bytes, allocated by the first stream */
	struct {
		struct storage_snapshot_install *in; /* spooling; NULL when idle */
		bool installing;		     /* handed to the worker */
		uint64_t conn;			     /* the inbound connection it comes on */
		raft_id from;
		raft_term term;
		raft_index index;
		raft_term index_term;
		uint64_t offset; /* next expected byte */
	} snap_in;
};

/* node.c */
int node_start(struct server *s);
void node_stop(struct server *s);
void node_on_client_frame(struct conn *c, const uint8_t *data, size_t len);
void node_on_job_done(struct server *s, struct job *j);
/* The results of a JOB_APPLY are known (its commit may still be running): answer writes. */
void node_on_apply_results(struct server *s, struct job *j);
void node_process_updates(struct server *s);
const char *node_leader_client_addr(struct server *s, raft_id leader);

/* snapshot.c */
/* The core asked for a snapshot to be streamed to `to` (starts it, or restarts it). */
void snapshot_send_start(struct server *s, raft_id to);
/* Queues the next chunks of every stream whose connection has room; once per loop turn. */
void snapshot_pump(struct server *s);
/* A SnapshotChunk arrived on inbound peer connection `c`. */
void snapshot_on_chunk(struct server *s, struct conn *c, const Cairn__Peer__SnapshotChunk *ch);
/* An inbound peer connection closed: a stream arriving on it is abandoned. */
void snapshot_on_conn_closed(struct server *s, struct conn *c);
/* A JOB_INSTALL or JOB_COMPACT completed. */
void snapshot_on_job_done(struct server *s, struct job *j);
/* After applying: compact the log when enough was applied since the last time. */
void snapshot_maybe_compact(struct server *s, uint64_t applied_bytes);
/* Closes every stream (shutdown). */
void snapshot_stop(struct server *s);

/* A command type storage does not know: apply answers it STORAGE_EINVAL on every replica. */
#define STORAGE_CMD_MALFORMED ((enum storage_cmd_type)0)

/* peer.c: "host:port" (numeric IPv4, [IPv6] or localhost) to a socket address. */
int server_resolve(const char *addr, struct sockaddr_storage *out);

/* convert.c: protobuf <-> storage structures */
struct txn_build {
	struct storage_txn txn;
	struct storage_compare *compares;
	struct storage_op *success;
	struct storage_op *failure;
};
/* Builds a storage txn pointing into `t` (borrowed; keep `t` alive). 0 or a STORAGE_E*. */
int convert_txn(const Cairn__TxnRequest *t, struct txn_build *out);
void convert_txn_free(struct txn_build *b);
/* Wraps put/delete into a one-op txn request (pointing into `req`). */
int convert_request_txn(const Cairn__Request *req, Cairn__TxnRequest *txn, Cairn__RequestOp *op,
			Cairn__RequestOp **ops);
/* Converts a storage result into the response op for the request kind; allocations are
 * tracked in `arena` and freed with convert_arena_free. */
struct arena {
	void **v;
	size_t n, cap;
};
void *arena_alloc(struct arena *a, size_t size);
void arena_free(struct arena *a);
int convert_result(const struct storage_result *r, int op_case, Cairn__Response *resp,
		   struct arena *a);
int convert_range_result(const struct storage_op_result *r, Cairn__RangeResponse *out,
			 struct arena *a);
Cairn__ErrorCode convert_storage_error(int err);

#endif /* CAIRN_SERVER_H */
