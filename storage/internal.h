/* Declarations shared by the storage/ source files; not part of the public API. */
#ifndef CAIRN_STORAGE_INTERNAL_H
#define CAIRN_STORAGE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/storage.h"

/* Names of the sub-databases and of the files in the data directory. */
#define STO_DB_LOG	   "log"
#define STO_DB_META	   "meta"
#define STO_DB_KV	   "kv"
#define STO_DB_SESSIONS	   "sessions"
#define STO_DB_SESSION_LRU "session_lru"
#define STO_MAX_DBS	   8u
#define STO_LOCK_FILE	   "cairn.lock"
#define STO_DATA_FILE	   "data.mdb"
#define STO_SNAP_TMP_FILE  "snapshot.tmp"
#define STO_FILE_MODE	   0600 /* data, lock and snapshot files */

/* Keys of the `meta` sub-database (see docs/storage.md for the value layouts). */
#define STO_META_FORMAT	    "format"
#define STO_META_HARD_STATE "hard_state"
#define STO_META_APPLIED    "applied"
#define STO_META_REVISION   "revision"
#define STO_META_LOG_START  "log_start"
#define STO_META_CONF	    "conf"

/* Record layouts (all integers big-endian). */
#define STO_U32_SIZE	     4u
#define STO_U64_SIZE	     8u
#define STO_LOG_KEY_SIZE     8u /* index */
#define STO_LOG_HDR_SIZE     9u /* term(8) type(1), then data */
#define STO_KV_REC_VERSION   1u
#define STO_KV_HDR_SIZE	     33u /* rec version(1) create(8) mod(8) version(8) lease(8), value */
#define STO_SESSION_KEY_SIZE 8u	 /* client id */
#define STO_SESSION_HDR_SIZE 17u /* last_seq(8) last_index(8) flags(1), then cached reply */
#define STO_SESSION_CACHED   0x1u
#define STO_LRU_KEY_SIZE     16u /* last_index(8) client_id(8), empty value */
#define STO_PAIR_SIZE	     16u /* two u64: hard state, applied, log_start */
#define STO_CONF_HDR_SIZE    8u	 /* index(8), then the blob */

/* A growable byte buffer. */
struct sto_buf {
	uint8_t *p;
	size_t len;
	size_t cap;
};

#define STO_CRC_TABLE_SIZE 256u /* one entry per byte value */

/* One segment file of the log (wal.c). off/term are indexed by index - first. */
struct sto_wal_seg {
	uint64_t seq;	/* file name */
	uint64_t first; /* index of its first record */
	uint64_t n;	/* records */
	uint64_t cap;
	uint64_t *off;	/* file offset of each record */
	uint64_t *term; /* term of each record */
	uint64_t size;	/* bytes of valid data (the header and n records) */
	uint32_t seed;	/* CRC32C state after the segment's nonce: record CRCs start from it */
	int fd;
};

/* The log's files. Mutated only by writers (persist, compaction, install), which `wmu`
 * serializes whatever thread they run on; `mu` guards the index against readers. */
struct sto_wal {
	pthread_mutex_t mu;
	pthread_mutex_t wmu; /* held by a writer (persist, compact, install) for its whole run */
	char *dir;
	int dir_fd;
	struct sto_wal_seg *segs; /* in index order; the last one is appended to */
	size_t n_segs;
	size_t cap_segs;
	uint64_t next_seq;
	uint64_t first;	    /* the log's first index (LMDB log_start) */
	uint64_t prev_term; /* the term of first - 1 */
	uint64_t segment_size;
	struct sto_buf buf; /* the writer's encoding buffer */
	uint32_t crc_table[STO_CRC_TABLE_SIZE];
};

struct storage {
	MDB_env *env;
	MDB_dbi dbi_log;
	MDB_dbi dbi_meta;
	MDB_dbi dbi_kv;
	MDB_dbi dbi_sessions;
	MDB_dbi dbi_session_lru;
	int lock_fd;
	char *dir;
	bool nosync;
	uint64_t session_ttl;
	uint64_t max_sessions;
	atomic_uint fail_commit_after;
	atomic_bool failed;	/* a commit failed: every write now returns STORAGE_EFATAL */
	atomic_bool installing; /* a snapshot install is in progress */
	atomic_uint_fast64_t commits;
	atomic_uint_fast64_t syncs;
	bool migrate_log; /* format 1 directory: its log moves to segment files at open */
	struct sto_wal wal;
};

/* ---- errors (error.c) ---- */

/* Format a message into errmsg (if any) and return rv. */
int sto_err(char *errmsg, size_t errlen, int rv, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Map an LMDB or errno code to a STORAGE_E* code. */
int sto_from_mdb(int rc);
/* sto_err() for a failed LMDB call: "<what>: <mdb_strerror(rc)>". */
int sto_mdb_err(char *errmsg, size_t errlen, int rc, const char *what);

/* ---- transactions (env.c) ---- */

int sto_read_begin(storage_t *h, MDB_txn **txn, char *errmsg, size_t errlen);
int sto_write_begin(storage_t *h, MDB_txn **txn, char *errmsg, size_t errlen);
/* How much a commit must reach the disk before it returns. */
enum sto_durability {
	/* Data pages flushed, the meta page left to the next flush: atomic and consistent, but a
	 * power loss may undo it (LMDB's MDB_NOMETASYNC). For storage_apply(), whose effects the
	 * log can redo. One flush. */
	STO_APPLY_DURABLE,
	/* Fully on disk when the commit returns: data flush, then meta flush. */
	STO_DURABLE,
};
/* Commit a write txn (consumed even on failure). MDB_MAP_FULL is STORAGE_ENOSPC; any other
 * failure, including a failed flush, poisons the handle and is STORAGE_EFATAL. */
int sto_commit(storage_t *h, MDB_txn *txn, enum sto_durability d, char *errmsg, size_t errlen);

/* ---- codec (codec.c) ---- */

void sto_put_u32(uint8_t *p, uint32_t v);
void sto_put_u64(uint8_t *p, uint64_t v);
uint32_t sto_get_u32(const uint8_t *p);
uint64_t sto_get_u64(const uint8_t *p);

int sto_buf_reserve(struct sto_buf *b, size_t extra);
int sto_buf_add(struct sto_buf *b, const void *data, size_t n);
int sto_buf_u8(struct sto_buf *b, uint8_t v);
int sto_buf_u32(struct sto_buf *b, uint32_t v);
int sto_buf_u64(struct sto_buf *b, uint64_t v);
int sto_buf_varint(struct sto_buf *b, uint64_t v);
void sto_buf_free(struct sto_buf *b);

/* A length-checked reader: every get fails (returns false) instead of reading past the end. */
struct sto_rd {
	const uint8_t *p;
	size_t left;
};
bool sto_rd_u8(struct sto_rd *r, uint8_t *v);
bool sto_rd_u32(struct sto_rd *r, uint32_t *v);
bool sto_rd_u64(struct sto_rd *r, uint64_t *v);
bool sto_rd_varint(struct sto_rd *r, uint64_t *v);
bool sto_rd_bytes(struct sto_rd *r, size_t n, const uint8_t **out);

/* A decoded `kv` record; value points into the source. */
struct sto_kv_rec {
	uint64_t create_revision;
	uint64_t mod_revision;
	uint64_t version;
	uint64_t lease;
	const uint8_t *value;
	size_t value_len;
};
int sto_kv_rec_decode(const MDB_val *v, struct sto_kv_rec *rec);
void sto_kv_rec_encode_hdr(uint8_t *p, const struct sto_kv_rec *rec);

/* A decoded `sessions` record; reply points into the source. */
struct sto_session_rec {
	uint64_t last_seq;
	uint64_t last_index;
	bool cached;
	const uint8_t *reply;
	size_t reply_len;
};
int sto_session_rec_decode(const MDB_val *v, struct sto_session_rec *rec);

/* Decode a log record (key + value) into *e; e->data points into the source. */
int sto_log_rec_decode(const MDB_val *k, const MDB_val *v, struct storage_entry *e);

/* ---- meta records (env.c) ---- */

/* Read a pair of u64 stored under `key`; both default to `def0`/`def1` when missing. */
int sto_meta_get_pair(storage_t *h, MDB_txn *txn, const char *key, uint64_t def0, uint64_t def1,
		      uint64_t *a, uint64_t *b, char *errmsg, size_t errlen);
int sto_meta_put_pair(storage_t *h, MDB_txn *txn, const char *key, uint64_t a, uint64_t b,
		      char *errmsg, size_t errlen);
int sto_meta_get_u64(storage_t *h, MDB_txn *txn, const char *key, uint64_t *v, char *errmsg,
		     size_t errlen);
int sto_meta_put_u64(storage_t *h, MDB_txn *txn, const char *key, uint64_t v, char *errmsg,
		     size_t errlen);

/* ---- log (log.c) ---- */

/* The log's first/last index and the terms around them. */
struct sto_log_bounds {
	uint64_t first;
	uint64_t last;
	uint64_t prev_term; /* term of first - 1 */
	uint64_t last_term;
};

/* ---- log files (wal.c) ---- */

/* Load the segment files and apply sto_wal_start_at(first, prev_term) (LMDB's log_start). */
int sto_wal_open(storage_t *h, uint64_t first, uint64_t prev_term, char *errmsg, size_t errlen);
void sto_wal_close(storage_t *h);
/* Whether <dir>/wal holds segment files (before anything is opened). */
bool sto_wal_has_segments(const char *dir);
void sto_wal_bounds(storage_t *h, struct sto_log_bounds *b);
/* Writer only: the checks of storage_persist's log part against the current log (nothing
 * written). *rewrites says whether it truncates or replaces entries. */
int sto_wal_check_append(storage_t *h, uint64_t truncate_from, const struct storage_entry *e,
			 size_t n, uint64_t applied, bool *rewrites, char *errmsg, size_t errlen);
/* Writer only: truncate, then append (checked before), one write and one flush. */
int sto_wal_append(storage_t *h, uint64_t truncate_from, const struct storage_entry *e, size_t n,
		   char *errmsg, size_t errlen);
/* Writer only: the log now starts at `first` (after a durable log_start): keep or drop. */
int sto_wal_start_at(storage_t *h, uint64_t first, uint64_t prev_term, char *errmsg, size_t errlen);
int sto_wal_term(storage_t *h, uint64_t index, uint64_t *term, char *errmsg, size_t errlen);
int sto_wal_read(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes, storage_entry_cb cb,
		 void *arg, char *errmsg, size_t errlen);

/* ---- txn execution (kv.c) ---- */

/* Replies are storage's compact binary encoding of a struct storage_result (docs/storage.md):
 * what the apply path caches in sessions and what every result is decoded from. */
#define STO_REPLY_VERSION 1u

struct sto_exec {
	storage_t *h;
	MDB_txn *txn;
	bool writable;
	uint64_t revision; /* in: current revision; out: after the txn */
	struct sto_buf *out;
	char *errmsg;
	size_t errlen;
};

/* Reply encoding (reply.c). A reply is a header, then per op a header and its kvs; the
 * fields known only at the end (revision, op counts) are fixed-width and patched in place. */
int sto_reply_header(struct sto_buf *out, enum storage_cmd_type type, int status, uint64_t revision,
		     uint64_t client_id, bool succeeded, size_t n_ops, size_t *rev_off);
void sto_reply_patch_revision(struct sto_buf *out, size_t rev_off, uint64_t revision);
int sto_reply_op_begin(struct sto_buf *out, enum storage_op_type type, size_t *op_off);
void sto_reply_op_end(struct sto_buf *out, size_t op_off, bool more, uint64_t count,
		      uint32_t n_kvs);
int sto_reply_kv(struct sto_buf *out, const void *key, size_t key_len, const struct sto_kv_rec *rec,
		 bool with_value);
/* Encode a reply with no ops: header only. */
int sto_reply_simple(struct sto_buf *out, enum storage_cmd_type type, int status, uint64_t revision,
		     uint64_t client_id);
/* Validate then run `t`, appending the encoded reply to x->out. Returns 0 when the reply was
 * produced (even with a non-zero status inside), or a STORAGE_E* error that must abort the
 * whole LMDB transaction. */
int sto_exec_txn(struct sto_exec *x, const struct storage_txn *t);
/* Decode an encoded reply into a freshly allocated result. */
int sto_reply_decode(const uint8_t *p, size_t len, struct storage_result *r, char *errmsg,
		     size_t errlen);

/* ---- apply (apply.c) ---- */

/* Apply `cmds` inside an open write txn (see storage_apply). On error the results are freed
 * and the caller aborts the txn. */
int sto_apply_txn(storage_t *h, MDB_txn *txn, const struct storage_cmd *cmds, size_t n,
		  struct storage_result *results, char *errmsg, size_t errlen);
void sto_results_free(struct storage_result *results, size_t n);
/* The checks of sto_apply_txn that need no write transaction (order, no gap after applied). */
int sto_apply_check(storage_t *h, const struct storage_cmd *cmds, size_t n, char *errmsg,
		    size_t errlen);

/* ---- checksum (crc32c.c) ---- */

struct sto_crc32c {
	uint32_t table[STO_CRC_TABLE_SIZE];
	uint32_t crc;
};
/* The table the software path needs (also kept when the CPU computes CRC32C itself). */
void sto_crc32c_table(uint32_t *table);
/* CRC32C of data: the whole computation (initial value and final inversion included). */
uint32_t sto_crc32c(const uint32_t *table, const void *data, size_t len);
/* The running state: extend `crc` (not inverted) over data, by hardware when available. */
uint32_t sto_crc32c_extend(const uint32_t *table, uint32_t crc, const void *data, size_t len);
/* The same with the table only (tests compare both). */
uint32_t sto_crc32c_sw(const uint32_t *table, uint32_t crc, const void *data, size_t len);
void sto_crc32c_init(struct sto_crc32c *c);
void sto_crc32c_update(struct sto_crc32c *c, const void *data, size_t len);
uint32_t sto_crc32c_value(const struct sto_crc32c *c);

#endif /* CAIRN_STORAGE_INTERNAL_H */
