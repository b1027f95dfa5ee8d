/* Public API of storage: Raft log, hard state, key-value state machine, snapshots (LMDB). */
#ifndef CAIRN_STORAGE_H
#define CAIRN_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Conventions (read this first)
 * -----------------------------
 * - Every fallible function returns an int: 0 on success, or a negative STORAGE_E* code.
 *   storage_strerror() turns a code into a fixed string.
 * - Most functions take `char *errmsg, size_t errlen`: an optional caller buffer (NULL/0 to
 *   skip) that receives a NUL-terminated message with context (path, index, sizes) when the
 *   function fails. It is left untouched on success. It is per call, so it is thread-safe.
 * - "Borrowed" inputs (keys, values, entry data) are only read during the call; storage keeps
 *   no pointer to them after it returns.
 * - Outputs that own memory (struct storage_result, struct storage_entries) are allocated by
 *   storage and released by the caller with the matching *_free() function; they do not
 *   reference the handle and may outlive it.
 * - STORAGE_EFATAL means a write transaction could not be committed (e.g. fsync failed). The
 *   outcome on disk is unknown and the page cache can no longer be trusted ("fsyncgate"):
 *   the caller must stop using the handle and exit the process. Storage never retries a
 *   failed commit; every later write on the handle also returns STORAGE_EFATAL.
 *
 * Threading: a handle may be shared by threads. Writes (storage_persist, storage_apply,
 * storage_log_compact, storage_snapshot_install_*) are serialized by LMDB's writer lock and
 * a lock of the log's files. Applies (storage_apply, or storage_persist with only an apply
 * part) do not take the second one, so one thread can append to the log while another
 * applies committed entries. Reads (storage_read,
 * storage_range, storage_get, storage_log_*, storage_state, storage_snapshot_open...) each run
 * in their own LMDB read transaction (the environment uses MDB_NOTLS), may be called from
 * any thread concurrently with writes, and see the last committed state.
 * Do not use a handle in a child process after fork(); open the directory again instead.
 */

/* ---- limits ------------------------------------------------------------------------------ */

/* Largest key. LMDB's compiled-in maximum key size is 511 bytes (mdb_env_get_maxkeysize);
 * etcd allows longer keys, Cairn does not. Keys must be at least 1 byte long. */
#define STORAGE_MAX_KEY_SIZE 511u
/* Largest value of a put. */
#define STORAGE_MAX_VALUE_SIZE (1024u * 1024u)
/* Most compares in one transaction, and most ops in each of its two branches. */
#define STORAGE_MAX_TXN_COMPARES 128u
#define STORAGE_MAX_TXN_OPS	 128u
/* Most key + range_end + value bytes in one transaction (all compares and both branches). */
#define STORAGE_MAX_TXN_BYTES (4u * 1024u * 1024u)
/* Largest data payload of one Raft log entry. */
#define STORAGE_MAX_ENTRY_SIZE (8u * 1024u * 1024u)
/* Largest membership (configuration) blob. */
#define STORAGE_MAX_CONF_SIZE (64u * 1024u)
/* Largest encoded reply kept in a client session; larger replies are not cached and a retry
 * gets STORAGE_ENOREPLY (the command was applied exactly once, its reply is lost). */
#define STORAGE_MAX_CACHED_REPLY (256u * 1024u)
/* Default and smallest LMDB map size (the most the data file may grow to). */
#define STORAGE_DEFAULT_MAP_SIZE ((size_t)1 << 30)
#define STORAGE_MIN_MAP_SIZE	 ((size_t)1 << 20)
/* Default size of a log segment file. */
#define STORAGE_DEFAULT_SEGMENT_SIZE (4u * 1024u * 1024u)
/* Default session expiry: a session not used by any of the last N log entries is dropped. */
#define STORAGE_DEFAULT_SESSION_TTL 1000000u
/* Default cap on live sessions; registering one more evicts the least recently used. */
#define STORAGE_DEFAULT_MAX_SESSIONS 65536u
/* On-disk format written by this version; other versions are refused (STORAGE_EFORMAT). */
#define STORAGE_FORMAT_VERSION 2u
/* A good size for errmsg buffers. */
#define STORAGE_ERRMSG_SIZE 256u

/* ---- errors ------------------------------------------------------------------------------ */

enum storage_error {
	STORAGE_OK = 0,
	STORAGE_EINVAL = -1,	   /* invalid argument or call out of order */
	STORAGE_ENOMEM = -2,	   /* out of memory */
	STORAGE_EIO = -3,	   /* system error outside a commit (mkdir, open, read, write) */
	STORAGE_EBUSY = -4,	   /* data directory in use (by another process or handle) */
	STORAGE_EFORMAT = -5,	   /* unknown or newer on-disk format */
	STORAGE_ECORRUPT = -6,	   /* corrupt or truncated data file, bad record, bad checksum */
	STORAGE_ENOSPC = -7,	   /* map or disk full: the write was rolled back, reads go on */
	STORAGE_EFATAL = -8,	   /* commit/fsync failed: stop using the handle, exit */
	STORAGE_ECOMPACTED = -9,   /* log index below the first index (compacted away) */
	STORAGE_EUNAVAIL = -10,	   /* log index above the last index */
	STORAGE_EKEYSIZE = -11,	   /* key empty or longer than STORAGE_MAX_KEY_SIZE */
	STORAGE_EVALSIZE = -12,	   /* value longer than STORAGE_MAX_VALUE_SIZE */
	STORAGE_ETOOMANYOPS = -13, /* more compares or ops than the STORAGE_MAX_TXN_* limits */
	STORAGE_ETOOLARGE = -14,   /* transaction, entry or blob over its byte limit */
	STORAGE_ESESSION = -15,	   /* client session unknown or expired (§6.3) */
	STORAGE_ESTALE = -16,	/* sequence number older than the last applied one / old snapshot */
	STORAGE_ENOREPLY = -17, /* duplicate of an applied command whose reply was not cached */
	STORAGE_EAGAIN = -18,	/* too many concurrent read transactions; retry later */
};

/* A fixed, static description of `err` ("unknown error" for codes not in the list). */
const char *storage_strerror(int err);

/* ---- handle ------------------------------------------------------------------------------ */

typedef struct storage storage_t;

/* Options of storage_open(). All-zero (or a NULL pointer) selects every default. */
struct storage_options {
	/* LMDB map size in bytes: the most the data file may grow to. 0 = STORAGE_DEFAULT_MAP_SIZE
	 * (1 GiB); otherwise at least STORAGE_MIN_MAP_SIZE. Writes beyond it get STORAGE_ENOSPC. */
	size_t map_size;
	/* Tests only: commit without fsync (MDB_NOSYNC). A power loss may lose or corrupt data. */
	bool nosync;
	/* Session expiry and cap (0 = defaults). They are part of the state machine's semantics:
	 * every node of a cluster must use the same values. */
	uint64_t session_ttl;
	uint64_t max_sessions;
	/* Tests only: if > 0, the Nth write commit (LMDB commit or log append) from now fails as
	 * if fsync had failed (countdown fault injection). */
	unsigned fail_commit_after;
	/* Size at which the log moves on to a new segment file (0 = STORAGE_DEFAULT_SEGMENT_SIZE).
	 * Compaction frees disk space a whole segment at a time. */
	uint64_t segment_size;
};

/*
 * Open (creating if needed) the data directory `dir` and return a handle in `*out`.
 * `dir` is created (one level, mode 0700) if missing. It then holds data.mdb and lock.mdb
 * (LMDB: state machine, hard state, sessions, log start), wal/ (the log's segment files),
 * cairn.lock (our exclusive lock) and transiently snapshot.tmp. A format 1 directory (log
 * inside LMDB) is upgraded at open: its log is copied into wal/.
 * The log's files are checked at open: a last batch torn by a crash is cut off (it was never
 * acknowledged); any other damage is STORAGE_ECORRUPT.
 * The directory is locked with flock() on cairn.lock: a second open, from this process or
 * another, fails with STORAGE_EBUSY until storage_close().
 * `dir` and `opts` are borrowed. On error *out is set to NULL.
 * Errors: STORAGE_EINVAL (NULL dir/out, map_size too small), STORAGE_ENOMEM,
 *   STORAGE_EIO (cannot create/open the directory or files), STORAGE_EBUSY (in use),
 *   STORAGE_EFORMAT (format marker of another version, or LMDB version mismatch),
 *   STORAGE_ECORRUPT (data.mdb not a valid LMDB file, truncated, or bad meta records; a
 *   damaged log record or segment, a missing segment),
 *   STORAGE_ENOSPC (map too small to even initialize), STORAGE_EFATAL (initial commit failed).
 */
int storage_open(const char *dir, const struct storage_options *opts, storage_t **out, char *errmsg,
		 size_t errlen);

/* Flush (so that the last storage_apply() batches are durable too), close the handle and
 * release the directory lock. NULL is a no-op. No read, snapshot or install object of this
 * handle may still be open. Never fails. */
void storage_close(storage_t *h);

/* Counters since storage_open(), for benchmarks and metrics. */
struct storage_stats {
	uint64_t commits; /* write transactions committed (a log-only batch counts as one) */
	uint64_t syncs;	  /* flushes to disk (fdatasync/fsync): 1 per log batch (+1 or 2 for a
			   * cut, +2 for a new segment, +1 when segments are discarded), 2 per
			   * durable LMDB commit (data, then meta page), 1 per apply commit, 0
			   * with nosync */
};
/* Fill `*out`. Never fails; may be called from any thread. */
void storage_stats(storage_t *h, struct storage_stats *out);

/* How full the data file is, for admission control: a server refuses new writes before the
 * map fills up, so that the state machine rarely hits STORAGE_ENOSPC halfway (the log's files
 * are outside the map: a full disk is seen by the log append, which then waits). */
struct storage_space {
	uint64_t map_size;   /* the most the file may grow to (bytes) */
	uint64_t used_bytes; /* pages in use: high-water mark minus pages on LMDB's free list */
	uint64_t page_size;
	uint64_t disk_free_bytes; /* free space on the data directory's filesystem for us
				   * (statvfs f_bavail); UINT64_MAX when it cannot be read */
};
/* Fill `*out` (one read transaction; walks LMDB's free list, so call it now and then, not per
 * request). Any thread. Errors: STORAGE_EINVAL, STORAGE_EAGAIN, STORAGE_ECORRUPT, STORAGE_EIO. */
int storage_space(storage_t *h, struct storage_space *out, char *errmsg, size_t errlen);

/* ---- Raft log and hard state ------------------------------------------------------------- */

struct storage_hard_state {
	uint64_t term;
	uint64_t vote; /* node id voted for in `term`, 0 = none */
};

struct storage_cmd;    /* below: a committed command to apply */
struct storage_result; /* below: the outcome of a command */

/* One log entry. As an input all fields are borrowed; as an output see the function. */
struct storage_entry {
	uint64_t index;
	uint64_t term;
	uint8_t type; /* opaque to storage (command, config change, no-op...) */
	const void *data;
	size_t len; /* at most STORAGE_MAX_ENTRY_SIZE */
};

/* A summary of everything persistent; cheap (one read transaction, and the log's bounds under
 * a short lock: the two parts are not one atomic snapshot). */
struct storage_state {
	struct storage_hard_state hard_state;
	uint64_t first_index;	 /* first entry in the log (1 on a fresh log) */
	uint64_t last_index;	 /* last entry, first_index - 1 when the log is empty */
	uint64_t last_term;	 /* term of last_index (snapshot_term when empty) */
	uint64_t snapshot_index; /* first_index - 1: last entry compacted away / in a snapshot */
	uint64_t snapshot_term;	 /* its term */
	uint64_t applied_index;	 /* last entry applied to the state machine */
	uint64_t applied_term;
	uint64_t revision; /* key-value store revision */
};

/* Errors: STORAGE_EINVAL, STORAGE_ECORRUPT, STORAGE_EAGAIN, STORAGE_EIO. */
int storage_state(storage_t *h, struct storage_state *out, char *errmsg, size_t errlen);

/* A hash of the whole key-value state (every key with its stored record: value, revisions,
 * version, lease), with the applied index and revision it belongs to, taken in one read
 * transaction. Replicas at the same applied index must report the same hash: a convergence
 * check. It walks every key, so it is a maintenance call, not a per-request one.
 * Errors: STORAGE_EINVAL, STORAGE_ECORRUPT, STORAGE_EAGAIN, STORAGE_EIO. */
struct storage_kv_hash {
	uint64_t hash;
	uint64_t keys;
	uint64_t applied_index;
	uint64_t revision;
};
int storage_kv_hash(storage_t *h, struct storage_kv_hash *out, char *errmsg, size_t errlen);

/*
 * Group commit. The log lives in append-only segment files (wal/), the rest in LMDB. A batch is
 * written in this order, each step durable before the next:
 *   1. if hard_state != NULL, store it (its term must not be lower than the stored one): one
 *      durable LMDB commit. A term or vote is on disk before the entries that follow from it;
 *   2. the log part, as ONE write and ONE flush of the active segment:
 *      a. if truncate_from != 0, drop every entry with index >= truncate_from;
 *      b. append `entries` (contiguous, increasing indexes, non-decreasing terms). If the first
 *         one's index is <= the last index, entries from that index on are replaced (a
 *         conflicting suffix is dropped, §3.5). Its index must be >= first_index and <=
 *         last_index + 1 (no gap), and its term >= the term of the entry before it;
 *      (a truncation or replacement first cuts the file and flushes the cut);
 *   3. if n_apply != 0, apply committed commands exactly as storage_apply() does (same rules,
 *      same results), in one LMDB commit. Their entries must be in the log by then (in an
 *      earlier batch or in this one).
 * Neither a truncation nor a replacement may touch an applied entry (index <= applied_index):
 * committed entries never change (§3.6). Every rule is checked before anything is written, so
 * an invalid batch changes nothing. A batch with only an apply part does not touch the log
 * files and may run on another thread beside log appends.
 */
struct storage_persist {
	uint64_t truncate_from;		     /* 0 = no truncation */
	const struct storage_entry *entries; /* borrowed; may be NULL if n_entries 0 */
	size_t n_entries;
	const struct storage_hard_state *hard_state; /* borrowed; NULL = unchanged */
	const struct storage_cmd *apply;	     /* borrowed; may be NULL if n_apply 0 */
	size_t n_apply;
	struct storage_result *results; /* room for n_apply results, as for storage_apply() */
};

/* Persist `batch`: on success it is on disk (unless opened with nosync), and if it applied
 * commands, `results` are filled (free each with storage_result_free()). An apply part is
 * committed like storage_apply() (one flush; a power loss may undo it, the log re-applies it).
 * On an error from a check nothing was written and no result needs freeing; on an error of a
 * later step (no space, a failed write) the steps before it stay done, and the same batch may
 * be retried (a retried apply reports already-applied commands as skipped). An empty batch is
 * a no-op.
 * Errors: STORAGE_EINVAL (rules above broken, or those of storage_apply()),
 *   STORAGE_ECOMPACTED (entry or truncation below first_index), STORAGE_ETOOLARGE (entry
 *   data > STORAGE_MAX_ENTRY_SIZE), STORAGE_ENOSPC (LMDB map full, or no disk space for the
 *   log: that step wrote nothing, the handle stays usable), STORAGE_ECORRUPT, STORAGE_EIO,
 *   STORAGE_ENOMEM, STORAGE_EFATAL (a commit, write or flush failed: exit). */
int storage_persist(storage_t *h, const struct storage_persist *batch, char *errmsg, size_t errlen);

/* Term of entry `index` into *term: 0 for index 0, snapshot_term for first_index - 1.
 * Errors: STORAGE_EINVAL, STORAGE_ECOMPACTED (index < first_index - 1), STORAGE_EUNAVAIL
 *   (index > last_index), STORAGE_ECORRUPT, STORAGE_EAGAIN, STORAGE_EIO. */
int storage_log_term(storage_t *h, uint64_t index, uint64_t *term, char *errmsg, size_t errlen);

/* Called once per entry by storage_log_read(). `e` and e->data point into a buffer that is
 * valid only until the callback returns: copy what you keep. Return 0 to go on; any other
 * value stops the iteration and is returned by storage_log_read() (use positive values to
 * tell them apart from STORAGE_E* codes). Every record read is checked against its CRC. */
typedef int (*storage_entry_cb)(const struct storage_entry *e, void *arg);

/* Call `cb` for entries [lo, hi) in order. If max_bytes != 0, stop before the entry that
 * would bring the sum of data lengths over max_bytes, but always deliver at least one entry.
 * lo == hi delivers nothing.
 * Errors: STORAGE_EINVAL (lo > hi, lo == 0, NULL cb), STORAGE_ECOMPACTED (lo < first_index),
 *   STORAGE_EUNAVAIL (hi > last_index + 1), STORAGE_ECORRUPT (bad record or missing entry),
 *   STORAGE_EAGAIN, STORAGE_EIO, or the callback's non-zero value. */
int storage_log_read(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes, storage_entry_cb cb,
		     void *arg, char *errmsg, size_t errlen);

/* Entries copied out of the log by storage_log_entries(); owned by the caller. */
struct storage_entries {
	struct storage_entry *entries; /* entries[i].data points into memory owned by this */
	size_t n;
	void *priv; /* private */
};
/* Like storage_log_read() but copies the entries into `*out` (set to empty on error).
 * Release with storage_entries_free(). Errors: as storage_log_read(), plus STORAGE_ENOMEM. */
int storage_log_entries(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes,
			struct storage_entries *out, char *errmsg, size_t errlen);
/* Release what storage_log_entries() allocated and zero `*e`. NULL is a no-op. */
void storage_entries_free(struct storage_entries *e);

/* Drop the log prefix up to and including `upto` (log compaction, §5): afterwards
 * first_index = upto + 1 and snapshot_term = term(upto). `upto` must be <= applied_index,
 * because the state machine is the snapshot. upto < first_index is a no-op. The new start is
 * committed durably first (with every apply before it); segment files holding only dropped
 * entries are deleted after, so disk space comes back a segment at a time.
 * Errors: STORAGE_EINVAL (upto > applied_index), STORAGE_EUNAVAIL (upto > last_index),
 *   STORAGE_ENOSPC, STORAGE_ECORRUPT, STORAGE_EIO, STORAGE_EFATAL. */
int storage_log_compact(storage_t *h, uint64_t upto, char *errmsg, size_t errlen);

/* ---- key-value state machine: requests ----------------------------------------------------
 * etcd v3 semantics. A key range is [key, range_end): an empty range_end means the single
 * key `key`; range_end == "\0" (one zero byte) means every key >= key; keys compare as
 * unsigned bytes (memcmp, shorter first). Every key holds a value, create_revision (revision
 * of the put that created it), mod_revision (of its last put), version (puts since creation,
 * 1 after creation) and a lease id (0 = none; reserved for leases). The store revision grows by
 * one per applied command that changes something; all changes of one txn share a revision.
 */

enum storage_op_type {
	STORAGE_OP_RANGE = 1,
	STORAGE_OP_PUT = 2,
	STORAGE_OP_DELETE = 3,
};

/* storage_op.flags */
#define STORAGE_OP_PREV_KV    0x1u /* PUT, DELETE: return the previous key-value(s) */
#define STORAGE_OP_KEYS_ONLY  0x2u /* RANGE: return keys and metadata, no values */
#define STORAGE_OP_COUNT_ONLY 0x4u /* RANGE: return only the count */

/* One operation. All buffers are borrowed. */
struct storage_op {
	enum storage_op_type type;
	const void *key; /* 1..STORAGE_MAX_KEY_SIZE bytes */
	size_t key_len;
	const void *range_end; /* RANGE, DELETE; see above (at most STORAGE_MAX_KEY_SIZE) */
	size_t range_end_len;
	const void *value; /* PUT: 0..STORAGE_MAX_VALUE_SIZE bytes */
	size_t value_len;
	uint64_t lease; /* PUT: lease id stored with the key */
	uint64_t limit; /* RANGE: most kvs returned, 0 = no limit */
	unsigned flags; /* STORAGE_OP_* */
};

enum storage_cmp_target {
	STORAGE_CMP_VALUE = 1,
	STORAGE_CMP_VERSION = 2,
	STORAGE_CMP_CREATE = 3, /* create_revision */
	STORAGE_CMP_MOD = 4,	/* mod_revision */
	STORAGE_CMP_LEASE = 5,
};

enum storage_cmp_result {
	STORAGE_CMP_EQUAL = 1,
	STORAGE_CMP_NOT_EQUAL = 2,
	STORAGE_CMP_LESS = 3,	 /* the key's field < the given one */
	STORAGE_CMP_GREATER = 4, /* the key's field > the given one */
};

/* One compare: "field of key (target) <result> operand". Like etcd, a missing key has
 * version, create, mod and lease 0, and every VALUE compare on it is false (even NOT_EQUAL).
 * With a range_end, every key in the range must pass; an empty range behaves like a missing
 * key. Values compare as unsigned bytes. All buffers borrowed. */
struct storage_compare {
	enum storage_cmp_target target;
	enum storage_cmp_result result;
	const void *key;
	size_t key_len;
	const void *range_end;
	size_t range_end_len;
	const void *value; /* VALUE operand */
	size_t value_len;
	uint64_t number; /* VERSION / CREATE / MOD / LEASE operand */
};

/* A transaction: if all compares hold (no compares = true), the success ops run, else the
 * failure ops, in order, atomically. Later ops see the effects of earlier ones. A single put,
 * get or delete is a txn with no compare and one success op. */
struct storage_txn {
	const struct storage_compare *compares;
	size_t n_compares;
	const struct storage_op *success;
	size_t n_success;
	const struct storage_op *failure;
	size_t n_failure;
};

/* Check `txn` against every limit without touching the store, so that a leader can refuse a
 * request before proposing it. storage_apply() does the same checks and reports a failure as
 * the command's status. Never touches a handle; thread-safe.
 * Errors: STORAGE_EKEYSIZE, STORAGE_EVALSIZE, STORAGE_ETOOMANYOPS, STORAGE_ETOOLARGE,
 *   STORAGE_EINVAL (bad enum or flag, NULL buffer with a non-zero length, range_end on a put). */
int storage_txn_validate(const struct storage_txn *txn, char *errmsg, size_t errlen);

/* Write into `out` (room for prefix_len bytes) the range_end selecting every key that starts
 * with `prefix`, and its length into *out_len: the prefix with its last non-0xff byte
 * incremented and what follows dropped, or "\0" (all keys >= prefix) when the prefix is all
 * 0xff bytes. Errors: STORAGE_EINVAL (NULL pointer, empty prefix). */
int storage_prefix_end(const void *prefix, size_t prefix_len, uint8_t *out, size_t *out_len);

/* ---- key-value state machine: results ---------------------------------------------------- */

/* A key-value pair inside a result. Pointers point into memory owned by the result; values
 * are not NUL-terminated. */
struct storage_kv {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value; /* NULL/0 for keys-only ranges */
	size_t value_len;
	uint64_t create_revision;
	uint64_t mod_revision;
	uint64_t version;
	uint64_t lease;
};

struct storage_op_result {
	enum storage_op_type type;
	/* RANGE: the kvs found (at most `limit`, none with COUNT_ONLY);
	 * PUT: the previous kv if PREV_KV and the key existed; DELETE: the deleted kvs if PREV_KV
	 */
	struct storage_kv *kvs;
	size_t n_kvs;
	uint64_t count; /* RANGE: keys in the range (ignores limit); DELETE: keys deleted */
	bool more;	/* RANGE: more keys in the range than returned */
};

enum storage_cmd_type {
	STORAGE_CMD_NOOP = 1,		  /* advances applied_index only (e.g. a leader's no-op) */
	STORAGE_CMD_TXN = 2,		  /* a key-value transaction */
	STORAGE_CMD_REGISTER_SESSION = 3, /* opens a client session whose id is the entry index */
	STORAGE_CMD_CLOSE_SESSION = 4,	  /* drops session `client_id` */
	STORAGE_CMD_CONF = 5,		  /* records the membership blob (opaque to storage) */
};

/* The outcome of one command or read. Owned by the caller: release with storage_result_free().
 * Everything it points to lives in one allocation referenced by `priv`. */
struct storage_result {
	/* 0, or the command's own deterministic error (the same on every replica):
	 * STORAGE_EKEYSIZE, STORAGE_EVALSIZE, STORAGE_ETOOMANYOPS, STORAGE_ETOOLARGE,
	 * STORAGE_EINVAL (malformed command), STORAGE_ESESSION, STORAGE_ESTALE, STORAGE_ENOREPLY.
	 * When non-zero the command changed nothing (except refreshing its session). */
	int status;
	enum storage_cmd_type type;
	uint64_t revision;	       /* store revision after the command */
	bool succeeded;		       /* TXN: the compares held and the success branch ran */
	uint64_t client_id;	       /* REGISTER_SESSION: the new session's id */
	struct storage_op_result *ops; /* TXN: one result per op of the branch that ran */
	size_t n_ops;
	bool skipped; /* storage_apply(): index <= applied_index, nothing done, nothing else set */
	bool cached;  /* storage_apply(): a retry answered from the session's cached reply */
	void *priv;   /* private */
};

/* Release what a result owns and zero it. NULL or an already-freed/zeroed result is fine. */
void storage_result_free(struct storage_result *r);

/* ---- key-value state machine: reads (any thread) ----------------------------------------- */

/* Run a read-only txn (compares + RANGE ops only) against the last committed state, in a read
 * transaction. Nothing is logged or changed. On success fill *res (caller frees it). A txn
 * breaking a limit is reported as an error here, not as res->status.
 * Errors: STORAGE_EINVAL (NULL argument, or an op that is not RANGE), the limit errors of
 *   storage_txn_validate(), STORAGE_ECORRUPT, STORAGE_ENOMEM, STORAGE_EAGAIN, STORAGE_EIO. */
int storage_read(storage_t *h, const struct storage_txn *txn, struct storage_result *res,
		 char *errmsg, size_t errlen);

/* storage_read() of one RANGE op: the answer is res->ops[0]. Errors: as storage_read(). */
int storage_range(storage_t *h, const struct storage_op *range, struct storage_result *res,
		  char *errmsg, size_t errlen);

/* Point lookup. On success *found says whether the key exists and, if so, `*kv` is filled;
 * kv's pointers live in *res, which the caller frees (also when !*found).
 * Errors: as storage_read(). */
int storage_get(storage_t *h, const void *key, size_t key_len, bool *found, struct storage_kv *kv,
		struct storage_result *res, char *errmsg, size_t errlen);

/* ---- key-value state machine: apply (storage thread) ------------------------------------- */

/*
 * A committed log entry decoded by the server. All buffers borrowed.
 * Sessions (§6.3): a TXN with client_id != 0 is executed at most once per (client_id, seq).
 * The session must have been opened by a REGISTER_SESSION command (its id is that entry's
 * index). seq must start at 1 and grow; a retry with the last seq gets the cached reply
 * (result.cached), an older seq gets STORAGE_ESTALE, an unknown or expired session
 * STORAGE_ESESSION; none of these executes the txn. Only the latest reply is kept per
 * session, so a client must not have two commands of one session in flight at once.
 * A session expires when none of the last `session_ttl` log entries used it, or when it is
 * the least recently used one and `max_sessions` would be exceeded. Both are evaluated from
 * log indexes at apply time, never from a clock, so every replica agrees.
 */
struct storage_cmd {
	uint64_t index; /* log index of the entry */
	uint64_t term;	/* its term */
	enum storage_cmd_type type;
	uint64_t client_id; /* TXN (0 = no session), CLOSE_SESSION */
	uint64_t seq;	    /* TXN with a session: >= 1 */
	struct storage_txn txn;
	const void *conf; /* CONF: membership blob, at most STORAGE_MAX_CONF_SIZE bytes */
	size_t conf_len;
};

/*
 * Apply committed commands in order, atomically with applied_index (and applied_term): one
 * write transaction, one flush. A crash either keeps all of the batch or none of it. The
 * commit flushes the data but not LMDB's meta page (MDB_NOMETASYNC): a process crash loses
 * nothing, a power loss may undo the last applied batch, which is then re-applied from the
 * log with the same results (application is deterministic). The next apply commit, or any
 * durable LMDB commit (hard state, compaction, install, storage_close), makes it durable.
 * cmds[i].index must be contiguous; cmds[0].index may be <= applied_index + 1. Commands with
 * index <= applied_index are skipped (results[i].skipped), which makes re-applying after a
 * crash idempotent. `results` is caller-provided room for n results; on success each one is
 * filled and must be released with storage_result_free(); on error none needs freeing.
 * A command's own failure (limits, sessions) is results[i].status, not an error of the call.
 * Errors: STORAGE_EINVAL (NULL arguments, gap after applied_index, non-contiguous indexes,
 *   decreasing term), STORAGE_ENOSPC (map full: nothing applied, reads go on; the server must
 *   stop accepting writes until space is made), STORAGE_ECORRUPT, STORAGE_ENOMEM,
 *   STORAGE_EIO, STORAGE_EFATAL (commit failed: exit).
 */
int storage_apply(storage_t *h, const struct storage_cmd *cmds, size_t n,
		  struct storage_result *results, char *errmsg, size_t errlen);

/*
 * Applying in a long transaction. storage_apply() commits (one flush) every batch. A server
 * that answers clients from the results (they are final: the log decides them) can instead
 * keep one write transaction open across batches and commit when readers need to see the
 * state, or every few milliseconds: one flush per commit instead of one per batch. Until
 * the commit, readers see the state before storage_applier_begin(), and a crash (or
 * storage_applier_abort) undoes every batch since then: the log re-applies them with the
 * same results. While it is open the transaction holds LMDB's writer lock: every other write
 * (a hard state, a compaction, an install, storage_apply) waits for it, so keep it short.
 * One applier per handle, used by one thread.
 *
 * storage_applier_begin: open the transaction. Errors: STORAGE_EINVAL, STORAGE_ENOMEM,
 *   STORAGE_EFATAL (an earlier commit failed), and LMDB's (STORAGE_EIO...).
 * storage_applier_apply: exactly storage_apply()'s rules and results, inside the open
 *   transaction; every command must be in the log already. Returns as storage_apply(). After
 *   any error the transaction is gone: nothing since begin can be committed; abort and start
 *   again (a retry with the same commands gives the same results). On error no result needs
 *   freeing.
 * storage_applier_commit: commit (one flush, as storage_apply()) and release `a`, whatever
 *   the outcome. Errors: STORAGE_EINVAL (an apply failed since begin: nothing committed),
 *   STORAGE_ENOSPC, STORAGE_EFATAL (exit).
 * storage_applier_abort: give up every batch since begin and release `a`; NULL is a no-op.
 */
struct storage_applier;
int storage_applier_begin(storage_t *h, struct storage_applier **out, char *errmsg, size_t errlen);
int storage_applier_apply(struct storage_applier *a, const struct storage_cmd *cmds, size_t n,
			  struct storage_result *results, char *errmsg, size_t errlen);
int storage_applier_commit(struct storage_applier *a, char *errmsg, size_t errlen);
void storage_applier_abort(struct storage_applier *a);

/* Copy the last applied membership blob into a malloc'd buffer *conf (caller free()s; NULL if
 * none) of *conf_len bytes; *index is the entry that set it (0 if none).
 * Errors: STORAGE_EINVAL, STORAGE_ENOMEM, STORAGE_ECORRUPT, STORAGE_EAGAIN, STORAGE_EIO. */
int storage_conf_get(storage_t *h, uint64_t *index, void **conf, size_t *conf_len, char *errmsg,
		     size_t errlen);

/* ---- snapshots --------------------------------------------------------------------------- */

/* What a snapshot contains the state machine up to. */
struct storage_snapshot_meta {
	uint64_t index;	     /* applied_index at the snapshot */
	uint64_t term;	     /* applied_term */
	uint64_t revision;   /* store revision */
	uint64_t conf_index; /* entry that set the membership blob carried in the stream */
};

struct storage_snapshot;	 /* a snapshot being read (sender side) */
struct storage_snapshot_install; /* a snapshot being received */

/* Start reading a consistent point-in-time copy of the state machine (kv, sessions, revision,
 * applied index/term, membership) as a byte stream with a CRC32C trailer. It holds an LMDB
 * read transaction until closed: while it is open LMDB cannot reuse pages freed by later
 * writes, so do not keep it open longer than needed. Fills *meta if non-NULL.
 * Errors: STORAGE_EINVAL, STORAGE_ENOMEM, STORAGE_ECORRUPT, STORAGE_EAGAIN, STORAGE_EIO. */
int storage_snapshot_open(storage_t *h, struct storage_snapshot **out,
			  struct storage_snapshot_meta *meta, char *errmsg, size_t errlen);
/* Copy the next up-to-`cap` bytes of the stream into buf and their count into *n; *n == 0
 * (with cap > 0) means the end. Use the snapshot from one thread at a time.
 * Errors: STORAGE_EINVAL, STORAGE_ENOMEM, STORAGE_ECORRUPT, STORAGE_EIO. */
int storage_snapshot_read(struct storage_snapshot *s, void *buf, size_t cap, size_t *n,
			  char *errmsg, size_t errlen);
/* End reading; NULL is a no-op. Must be called before storage_close(). */
void storage_snapshot_close(struct storage_snapshot *s);

/* Start receiving a snapshot stream. Chunks are spooled to snapshot.tmp in the data directory;
 * nothing changes until storage_snapshot_install_finish(). One install at a time per handle.
 * Errors: STORAGE_EINVAL, STORAGE_EBUSY (an install is in progress), STORAGE_ENOMEM,
 *   STORAGE_EIO. */
int storage_snapshot_install_begin(storage_t *h, struct storage_snapshot_install **out,
				   char *errmsg, size_t errlen);
/* Append the next chunk (borrowed). Errors: STORAGE_EINVAL, STORAGE_EIO. */
int storage_snapshot_install_write(struct storage_snapshot_install *in, const void *data,
				   size_t len, char *errmsg, size_t errlen);
/* Verify the whole stream (structure, every record, checksum) and, in one write transaction,
 * replace the state machine with it. The log is fixed up as InstallSnapshot requires (§5.3,
 * Figure 5.3 steps 6-7): if it holds the snapshot's last entry with the same term, only the
 * prefix up to it is dropped; otherwise the whole log is discarded. Afterwards first_index =
 * meta.index + 1. Always releases `in`. Fills *meta if non-NULL.
 * Errors: STORAGE_ECORRUPT (bad stream or checksum: nothing changed), STORAGE_ESTALE
 *   (snapshot older than applied_index: nothing changed), STORAGE_EFORMAT (unknown stream
 *   version), STORAGE_ENOSPC, STORAGE_ENOMEM, STORAGE_EIO, STORAGE_EFATAL. */
int storage_snapshot_install_finish(struct storage_snapshot_install *in,
				    struct storage_snapshot_meta *meta, char *errmsg,
				    size_t errlen);
/* Give up an install and release `in`; NULL is a no-op. */
void storage_snapshot_install_abort(struct storage_snapshot_install *in);

#endif /* CAIRN_STORAGE_H */
