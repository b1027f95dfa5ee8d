/* libcairn: the C client library of the Cairn replicated key-value store (public API). */
#ifndef CAIRN_H
#define CAIRN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Conventions (read this first)
 * -----------------------------
 * - Every fallible function returns an int: 0 on success or a negative CAIRN_E* code;
 *   cairn_strerror() turns a code into a fixed string.
 * - Synchronous calls take `char *errmsg, size_t errlen`: an optional caller buffer (NULL/0 to
 *   skip) that receives a NUL-terminated message with context (endpoint, server message) when
 *   the call fails. It is left untouched on success. Asynchronous callbacks receive the same
 *   message as a `const char *` valid only during the callback ("" on success).
 * - Inputs (keys, values, ranges, transactions, option structs, endpoint strings) are
 *   borrowed: they are copied (encoded) before the call returns, so the caller may free or
 *   reuse them as soon as the call returns, even for asynchronous calls.
 * - Results (cairn_*_result) are allocated by the library and owned by the caller, who
 *   releases each with its matching cairn_*_result_free(). A result is one allocation that
 *   does not reference the client: it may outlive cairn_close(). Every pointer inside it
 *   (keys, values, arrays, strings) lives exactly as long as the result.
 * - Keys and values in results are byte strings with an explicit length; for convenience each
 *   is also followed by a NUL byte that is not counted in the length, so printable keys can be
 *   printed with "%s" (a key containing NUL bytes is then cut short: use the length).
 * - Every call has a deadline: its timeout_ms (0 = the client's default, itself 5000 ms by
 *   default) starts when the call is made. Within it the library finds the leader from any
 *   endpoint, follows NOT_LEADER redirects, reconnects and retries with exponential backoff.
 *
 * Threading
 * ---------
 * A cairn_client owns one background I/O thread running a private libuv loop. Every function
 * taking a cairn_client may be called from any thread concurrently, except cairn_close().
 * Asynchronous callbacks run on the I/O thread, one at a time, in no particular order across
 * calls: they must not block (no sleeping, no synchronous cairn_* call, which is refused with
 * CAIRN_EDEADLK); they may start new asynchronous calls. If an asynchronous function returns
 * an error, its callback is never called; if it returns 0, its callback is called exactly
 * once, at the latest during cairn_close().
 * The library has no global mutable state: clients are independent of each other.
 *
 * Exactly-once writes
 * -------------------
 * put, delete and txn are writes. Each runs in an exactly-once session (Raft dissertation
 * §6.3): the client keeps a pool of server sessions; a write takes an idle one (opening a new
 * one if none is idle), numbers itself with the session's next sequence number and keeps that
 * (session, number) across every retry, so the cluster applies it at most once. A session
 * carries one write at a time, so concurrent writes use distinct sessions.
 * A write that may have reached the cluster but whose reply was not received before its
 * deadline fails with CAIRN_EUNKNOWN: it may or may not have been applied (it will not be
 * applied later by this client). Any other error means the write was not applied.
 */

/* ---- errors ------------------------------------------------------------------------------ */

enum cairn_error {
	CAIRN_OK = 0,
	CAIRN_EINVAL = -1,	  /* invalid argument (client-side check, or the server's) */
	CAIRN_ENOMEM = -2,	  /* out of memory */
	CAIRN_ETIMEDOUT = -3,	  /* deadline passed; a write was NOT applied */
	CAIRN_EUNKNOWN = -4,	  /* deadline passed while a write was in flight: outcome unknown */
	CAIRN_EKEYSIZE = -5,	  /* key empty or too large */
	CAIRN_EVALSIZE = -6,	  /* value too large */
	CAIRN_ETOOMANYOPS = -7,	  /* too many compares or operations in a transaction */
	CAIRN_ETOOLARGE = -8,	  /* request larger than the maximum frame size */
	CAIRN_ENOSPACE = -9,	  /* the cluster's data store is full (reads still work) */
	CAIRN_EPROTO = -10,	  /* protocol error: a malformed or unexpected message */
	CAIRN_EINTERNAL = -11,	  /* the server reported an internal error */
	CAIRN_ECLOSED = -12,	  /* the client is closing; the call was cancelled */
	CAIRN_EDEADLK = -13,	  /* synchronous call from a callback (the I/O thread) */
	CAIRN_ESYS = -14,	  /* system error (thread, socket, event loop) */
	CAIRN_EBADENDPOINT = -15, /* endpoint is not "host:port" */
};

/* A good size for errmsg buffers. */
#define CAIRN_ERRMSG_SIZE 256u

/* A fixed, static description of `err` ("unknown error" for codes not in the list). */
const char *cairn_strerror(int err);

/* ---- defaults and limits ----------------------------------------------------------------- */

#define CAIRN_DEFAULT_ENDPOINT		 "127.0.0.1:7379"
#define CAIRN_DEFAULT_TIMEOUT_MS	 5000u
#define CAIRN_DEFAULT_BACKOFF_MIN_MS	 10u
#define CAIRN_DEFAULT_BACKOFF_MAX_MS	 500u
#define CAIRN_DEFAULT_MAX_FRAME		 (4u * 1024u * 1024u)
#define CAIRN_DEFAULT_MAX_SESSIONS	 64u
#define CAIRN_DEFAULT_CONNECT_TIMEOUT_MS 1000u
/* Most endpoints in one cairn_connect() list. */
#define CAIRN_MAX_ENDPOINTS 64u

/* ---- client ------------------------------------------------------------------------------ */

typedef struct cairn_client cairn_client;

/* Options of cairn_connect(). All-zero (or a NULL pointer) selects every default. */
struct cairn_options {
	uint32_t timeout_ms;	 /* default deadline of a call; 0 = CAIRN_DEFAULT_TIMEOUT_MS */
	uint32_t backoff_min_ms; /* first retry delay; 0 = CAIRN_DEFAULT_BACKOFF_MIN_MS */
	uint32_t backoff_max_ms; /* retry delay cap; 0 = CAIRN_DEFAULT_BACKOFF_MAX_MS */
	uint32_t max_frame_size; /* largest frame sent or accepted; 0 = CAIRN_DEFAULT_MAX_FRAME */
	uint32_t max_sessions;	 /* most exactly-once sessions, i.e. concurrent writes in flight;
				  * more writes wait for a free one. 0 = CAIRN_DEFAULT_MAX_SESSIONS */
	uint32_t connect_timeout_ms; /* a TCP connect taking longer fails over to the next
				      * endpoint; 0 = CAIRN_DEFAULT_CONNECT_TIMEOUT_MS */
};

/*
 * Create a client for the cluster reachable at `endpoints`, a comma-separated list of
 * "host:port" (IPv4/IPv6 literal or host name; "[v6]:port" also accepted; spaces ignored).
 * NULL or "" means CAIRN_DEFAULT_ENDPOINT. Any member will do: the leader is found from it.
 * Starts the I/O thread and returns at once: connections are made lazily by the first calls,
 * so an unreachable cluster is reported by calls (CAIRN_ETIMEDOUT, with the reason),
 * not here. Host names are resolved on connection (blocking the I/O thread meanwhile).
 * `endpoints` and `opts` are borrowed. On error *out is set to NULL.
 * Errors: CAIRN_EINVAL (NULL out, bad option), CAIRN_EBADENDPOINT (an endpoint is not
 *   host:port, or more than CAIRN_MAX_ENDPOINTS), CAIRN_ENOMEM, CAIRN_ESYS (thread or loop).
 */
int cairn_connect(const char *endpoints, const struct cairn_options *opts, cairn_client **out,
		  char *errmsg, size_t errlen);

/*
 * Cancel every pending call, close all connections, stop the I/O thread and free the client.
 * Pending asynchronous calls get their callback (on the I/O thread, before cairn_close()
 * returns) with CAIRN_ECLOSED, or CAIRN_EUNKNOWN for writes that may have been applied.
 * No other thread may use `c` during or after this call. NULL is a no-op.
 * Errors: CAIRN_EDEADLK when called from a callback (nothing is done then); CAIRN_ESYS if the
 *   event loop still had handles at the end (a bug: the client is freed all the same).
 */
int cairn_close(cairn_client *c);

/* ---- results ----------------------------------------------------------------------------- */

/* Which member answered and at which state. */
struct cairn_header {
	uint64_t cluster_id;
	uint64_t member_id; /* the member that answered */
	int64_t revision;   /* the store's revision when the request was served */
	uint64_t raft_term;
};

struct cairn_kv {
	const char *key; /* key_len bytes, then a NUL not counted */
	size_t key_len;
	const char *value; /* value_len bytes, then a NUL (empty with keys_only) */
	size_t value_len;
	int64_t create_revision; /* revision of the key's last creation */
	int64_t mod_revision;	 /* revision of its last modification */
	int64_t version;	 /* writes since creation: 1 after creation */
	int64_t lease;		 /* 0: none */
};

struct cairn_range_result {
	struct cairn_header header;
	struct cairn_kv *kvs; /* n_kvs entries in key order */
	size_t n_kvs;
	int64_t count; /* keys in the range (may exceed n_kvs with a limit) */
	bool more;     /* more keys than returned */
};

struct cairn_put_result {
	struct cairn_header header;
	struct cairn_kv *prev_kv; /* with opts.prev_kv, when the key existed; else NULL */
};

struct cairn_delete_result {
	struct cairn_header header;
	int64_t deleted;
	struct cairn_kv *prev_kvs; /* with opts.prev_kv: the deleted pairs */
	size_t n_prev_kvs;
};

enum cairn_op_type { CAIRN_OP_RANGE = 1, CAIRN_OP_PUT = 2, CAIRN_OP_DELETE = 3 };

/* The result of one operation of a transaction; `header` of each is the transaction's. */
struct cairn_op_result {
	enum cairn_op_type type;
	union {
		struct cairn_range_result range; /* CAIRN_OP_RANGE */
		struct cairn_put_result put;	 /* CAIRN_OP_PUT */
		struct cairn_delete_result del;	 /* CAIRN_OP_DELETE */
	} u;
};

struct cairn_txn_result {
	struct cairn_header header;
	bool succeeded;			   /* all compares held: the success branch ran */
	struct cairn_op_result *responses; /* one per op of the branch that ran, in order */
	size_t n_responses;
};

struct cairn_member {
	uint64_t id;
	const char *name;
	const char *peer_addr;
	const char *client_addr;
};

struct cairn_status_result {
	struct cairn_header header;
	const char *endpoint; /* the endpoint that answered, as "host:port" */
	uint64_t member_id;
	uint64_t leader_id; /* 0: none known */
	uint64_t raft_term;
	uint64_t commit_index;
	uint64_t applied_index;
	int64_t revision;
	int64_t db_size;     /* bytes used by the data file */
	const char *version; /* server version */
	const char *role;    /* "follower", "candidate", "leader" */
	uint64_t kv_hash;    /* cairn_status_hash() only: hash of the key-value state at
			      * applied_index; 0 otherwise */
	uint64_t fsyncs;
	uint64_t entries_committed;
	uint64_t log_first_index;     /* first log entry held; earlier ones were compacted */
	uint64_t compactions;	      /* log compactions since the member started */
	uint64_t snapshots_sent;      /* snapshots streamed to lagging followers since start */
	uint64_t snapshots_installed; /* snapshots received and installed since start */
	struct cairn_member *members;
	size_t n_members;
};

/* Free a result and everything it points to. NULL is a no-op. */
void cairn_range_result_free(struct cairn_range_result *res);
void cairn_put_result_free(struct cairn_put_result *res);
void cairn_delete_result_free(struct cairn_delete_result *res);
void cairn_txn_result_free(struct cairn_txn_result *res);
void cairn_status_result_free(struct cairn_status_result *res);

/* ---- key ranges -------------------------------------------------------------------------- */

/*
 * etcd range semantics, used by get/range, delete and transaction ops:
 *   range_end empty (len 0)     the single key `key`;
 *   range_end "\0" (len 1)      every key >= key;
 *   otherwise                   every key in [key, range_end).
 */

/*
 * Compute the range end that selects every key starting with `prefix`: the prefix with
 * trailing 0xff bytes dropped and its last byte incremented; "\0" (len 1) when the prefix is
 * empty or all 0xff (every key >= prefix). `out` must hold at least max(prefix_len, 1)
 * bytes; *out_len receives the length. Never fails.
 */
void cairn_prefix_end(const void *prefix, size_t prefix_len, void *out, size_t *out_len);

/* ---- key-value calls --------------------------------------------------------------------- */

/* Options of cairn_range()/cairn_get(); NULL = all defaults (single key, linearizable). */
struct cairn_range_opts {
	uint32_t timeout_ms;   /* 0: the client's default */
	bool prefix;	       /* every key starting with `key` (range_end is then ignored) */
	const void *range_end; /* cairn_get() only: see "key ranges"; borrowed */
	size_t range_end_len;
	int64_t limit;	   /* most keys returned; 0 = no limit */
	bool keys_only;	   /* omit values */
	bool count_only;   /* only `count` */
	bool serializable; /* any member's local state, possibly stale; default linearizable */
};

struct cairn_put_opts {
	uint32_t timeout_ms;
	bool prev_kv; /* return the previous pair in result->prev_kv */
};

struct cairn_delete_opts {
	uint32_t timeout_ms;
	bool prefix;
	const void *range_end;
	size_t range_end_len;
	bool prev_kv;
};

typedef void (*cairn_range_cb)(int rv, const char *errmsg, struct cairn_range_result *res,
			       void *arg);
typedef void (*cairn_put_cb)(int rv, const char *errmsg, struct cairn_put_result *res, void *arg);
typedef void (*cairn_delete_cb)(int rv, const char *errmsg, struct cairn_delete_result *res,
				void *arg);
typedef void (*cairn_txn_cb)(int rv, const char *errmsg, struct cairn_txn_result *res, void *arg);
typedef void (*cairn_status_cb)(int rv, const char *errmsg, struct cairn_status_result *res,
				void *arg);
/*
 * Callbacks: `rv` is 0 or a CAIRN_E* code; `res` is non-NULL exactly when rv == 0 and then
 * belongs to the callback, which must free it (now or later) with its *_result_free().
 * `errmsg` is valid during the callback only. `arg` is the caller's, passed through.
 */

/*
 * Read the key `key` (key_len >= 1), or the range selected by `opts` (prefix / range_end).
 * Linearizable unless opts->serializable. Served by any member. *res receives the result
 * (res may be NULL to discard it).
 * Errors: CAIRN_EINVAL (NULL client, empty key, bad opts), CAIRN_EKEYSIZE, CAIRN_ETOOLARGE,
 *   CAIRN_ETIMEDOUT (no member answered in time; the message gives the last reason),
 *   CAIRN_EPROTO (server reported a bad frame), CAIRN_EINTERNAL, CAIRN_ENOMEM,
 *   CAIRN_ECLOSED, CAIRN_EDEADLK (sync call on the I/O thread).
 */
int cairn_get(cairn_client *c, const void *key, size_t key_len, const struct cairn_range_opts *opts,
	      struct cairn_range_result **res, char *errmsg, size_t errlen);
int cairn_get_async(cairn_client *c, const void *key, size_t key_len,
		    const struct cairn_range_opts *opts, cairn_range_cb cb, void *arg);

/* Read every key in [key, range_end) (see "key ranges"); opts->range_end is ignored.
 * Same errors as cairn_get(). */
int cairn_range(cairn_client *c, const void *key, size_t key_len, const void *range_end,
		size_t range_end_len, const struct cairn_range_opts *opts,
		struct cairn_range_result **res, char *errmsg, size_t errlen);
int cairn_range_async(cairn_client *c, const void *key, size_t key_len, const void *range_end,
		      size_t range_end_len, const struct cairn_range_opts *opts, cairn_range_cb cb,
		      void *arg);

/*
 * Set `key` to `value` (value_len may be 0). A write: exactly-once, sent to the leader.
 * Errors: CAIRN_EINVAL, CAIRN_EKEYSIZE, CAIRN_EVALSIZE, CAIRN_ETOOLARGE, CAIRN_ENOSPACE,
 *   CAIRN_ETIMEDOUT (not applied), CAIRN_EUNKNOWN (may have been applied), CAIRN_EPROTO,
 *   CAIRN_EINTERNAL, CAIRN_ENOMEM, CAIRN_ECLOSED, CAIRN_EDEADLK.
 */
int cairn_put(cairn_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
	      const struct cairn_put_opts *opts, struct cairn_put_result **res, char *errmsg,
	      size_t errlen);
int cairn_put_async(cairn_client *c, const void *key, size_t key_len, const void *value,
		    size_t value_len, const struct cairn_put_opts *opts, cairn_put_cb cb,
		    void *arg);

/* Delete `key`, or the range selected by `opts`. A write. Errors: as cairn_put(). */
int cairn_delete(cairn_client *c, const void *key, size_t key_len,
		 const struct cairn_delete_opts *opts, struct cairn_delete_result **res,
		 char *errmsg, size_t errlen);
int cairn_delete_async(cairn_client *c, const void *key, size_t key_len,
		       const struct cairn_delete_opts *opts, cairn_delete_cb cb, void *arg);

/* ---- transactions ------------------------------------------------------------------------ */

/*
 * A transaction: if every compare holds (AND; no compares = true) the success ops run,
 * otherwise the failure ops; atomically, at one revision. Build it with the functions below
 * (each copies its buffers), commit it with cairn_txn_commit*(), free it with
 * cairn_txn_free(). A builder is not thread-safe but may be committed many times and freed
 * right after a commit call returns.
 */
typedef struct cairn_txn cairn_txn;

enum cairn_cmp_target {
	CAIRN_CMP_VERSION = 0, /* the key's version (0: the key does not exist) */
	CAIRN_CMP_CREATE = 1,  /* its create_revision */
	CAIRN_CMP_MOD = 2,     /* its mod_revision */
	CAIRN_CMP_VALUE = 3,   /* its value (bytes, compared lexicographically) */
};
enum cairn_cmp_op {
	CAIRN_CMP_EQUAL = 0,
	CAIRN_CMP_GREATER = 1,
	CAIRN_CMP_LESS = 2,
	CAIRN_CMP_NOT_EQUAL = 3
};
enum cairn_txn_branch { CAIRN_TXN_SUCCESS = 0, CAIRN_TXN_FAILURE = 1 };

/* A new empty transaction, or NULL when out of memory. */
cairn_txn *cairn_txn_new(void);
/* NULL is a no-op. */
void cairn_txn_free(cairn_txn *txn);

/*
 * Add the compare `target(key) op number` for VERSION, CREATE and MOD.
 * Errors: CAIRN_EINVAL (NULL txn, empty key, target VALUE, unknown op), CAIRN_ENOMEM.
 */
int cairn_txn_compare_int(cairn_txn *txn, enum cairn_cmp_target target, enum cairn_cmp_op op,
			  const void *key, size_t key_len, int64_t number);
/* Add the compare `value(key) op value`. Errors: CAIRN_EINVAL, CAIRN_ENOMEM. */
int cairn_txn_compare_value(cairn_txn *txn, enum cairn_cmp_op op, const void *key, size_t key_len,
			    const void *value, size_t value_len);
/* Add a put to a branch. Errors: CAIRN_EINVAL, CAIRN_ENOMEM. */
int cairn_txn_put(cairn_txn *txn, enum cairn_txn_branch branch, const void *key, size_t key_len,
		  const void *value, size_t value_len, bool prev_kv);
/* Add a range read to a branch; `opts` (may be NULL) as for cairn_get() except timeout_ms and
 * serializable, which are ignored. Errors: CAIRN_EINVAL, CAIRN_ENOMEM. */
int cairn_txn_get(cairn_txn *txn, enum cairn_txn_branch branch, const void *key, size_t key_len,
		  const struct cairn_range_opts *opts);
/* Add a delete to a branch; `opts` (may be NULL) as for cairn_delete() except timeout_ms.
 * Errors: CAIRN_EINVAL, CAIRN_ENOMEM. */
int cairn_txn_delete(cairn_txn *txn, enum cairn_txn_branch branch, const void *key, size_t key_len,
		     const struct cairn_delete_opts *opts);
/* Number of compares, success ops and failure ops added so far. */
void cairn_txn_counts(const cairn_txn *txn, size_t *n_compares, size_t *n_success,
		      size_t *n_failure);

/*
 * Commit `txn`: a write (exactly-once, to the leader), even when all its ops are reads.
 * Failing compares are not an error: rv is 0 and res->succeeded is false.
 * timeout_ms: 0 = the client's default.
 * Errors: as cairn_put(), plus CAIRN_ETOOMANYOPS.
 */
int cairn_txn_commit(cairn_client *c, const cairn_txn *txn, uint32_t timeout_ms,
		     struct cairn_txn_result **res, char *errmsg, size_t errlen);
int cairn_txn_commit_async(cairn_client *c, const cairn_txn *txn, uint32_t timeout_ms,
			   cairn_txn_cb cb, void *arg);

/* ---- cluster ----------------------------------------------------------------------------- */

/*
 * Status of one member. `endpoint` NULL: whichever member the client is talking to;
 * otherwise exactly that "host:port" (need not be in the client's list), never redirected,
 * reconnected and retried within the deadline. StatusResponse.members gives the membership.
 * Errors: CAIRN_EINVAL, CAIRN_EBADENDPOINT, CAIRN_ETIMEDOUT, CAIRN_EPROTO, CAIRN_EINTERNAL,
 *   CAIRN_ENOMEM, CAIRN_ECLOSED, CAIRN_EDEADLK.
 */
int cairn_status(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		 struct cairn_status_result **res, char *errmsg, size_t errlen);
/* Like cairn_status(), and also asks for kv_hash: a hash of the member's whole key-value
 * state, with applied_index and revision taken at the same moment (members at the same
 * applied index must report the same hash). The member walks every key: use it for
 * convergence checks, not for monitoring. Errors: as cairn_status(). */
int cairn_status_hash(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		      struct cairn_status_result **res, char *errmsg, size_t errlen);
int cairn_status_async(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		       cairn_status_cb cb, void *arg);

#ifdef __cplusplus
}
#endif

#endif /* CAIRN_H */
