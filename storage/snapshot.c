/* Snapshots: a checksummed stream of the state machine, read in chunks and installed atomically. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/internal.h"

/* Stream layout (docs/storage.md):
 *   header  : magic(8) version(4) index(8) term(8) revision(8) conf_index(8) conf_len(4) conf
 *   records : tag(1) key_len(4) key value_len(4) value     (tag KV or SESSION, raw records)
 *   trailer : tag END(1) record_count(8) crc32c(4)          (CRC of every byte before it) */
#define SNAP_MAGIC	   "CAIRNSNP"
#define SNAP_MAGIC_SIZE	   8u
#define SNAP_VERSION	   1u
#define SNAP_TAG_END	   0u
#define SNAP_TAG_KV	   1u
#define SNAP_TAG_SESSION   2u
#define SNAP_READ_BUF_SIZE (64u * 1024u)
#define SNAP_PATH_MAX	   4096u

enum snap_stage {
	STAGE_KV,
	STAGE_SESSIONS,
	STAGE_TRAILER,
	STAGE_DONE,
};

struct storage_snapshot {
	storage_t *h;
	MDB_txn *txn;
	MDB_cursor *cur; /* over the sub-database of the current stage */
	enum snap_stage stage;
	struct sto_buf pending; /* produced but not yet read */
	size_t pending_off;
	struct sto_crc32c crc;
	uint64_t n_records;
};

struct storage_snapshot_install {
	storage_t *h;
	int fd;
	char path[SNAP_PATH_MAX];
};

/* ---- reading (sender side) ---- */

static int snap_header(struct storage_snapshot *s, struct storage_snapshot_meta *meta, char *errmsg,
		       size_t errlen)
{
	storage_t *h = s->h;
	const uint8_t *conf = NULL;
	size_t conf_len = 0;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	memset(meta, 0, sizeof(*meta));
	rv = sto_meta_get_pair(h, s->txn, STO_META_APPLIED, 0, 0, &meta->index, &meta->term, errmsg,
			       errlen);
	if (rv == 0) {
		rv =
		    sto_meta_get_u64(h, s->txn, STO_META_REVISION, &meta->revision, errmsg, errlen);
	}
	if (rv != 0) {
		return rv;
	}
	k.mv_data = (void *)STO_META_CONF;
	k.mv_size = strlen(STO_META_CONF);
	rc = mdb_get(s->txn, h->dbi_meta, &k, &v);
	if (rc == 0) {
		if (v.mv_size < STO_CONF_HDR_SIZE ||
		    v.mv_size - STO_CONF_HDR_SIZE > STORAGE_MAX_CONF_SIZE) {
			return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				       "membership record is %zu bytes", v.mv_size);
		}
		meta->conf_index = sto_get_u64(v.mv_data);
		conf = (const uint8_t *)v.mv_data + STO_CONF_HDR_SIZE;
		conf_len = v.mv_size - STO_CONF_HDR_SIZE;
	} else if (rc != MDB_NOTFOUND) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read membership");
	}
	rv = sto_buf_add(&s->pending, SNAP_MAGIC, SNAP_MAGIC_SIZE);
	if (rv == 0) {
		rv = sto_buf_u32(&s->pending, SNAP_VERSION);
	}
	if (rv == 0) {
		rv = sto_buf_u64(&s->pending, meta->index);
	}
	if (rv == 0) {
		rv = sto_buf_u64(&s->pending, meta->term);
	}
	if (rv == 0) {
		rv = sto_buf_u64(&s->pending, meta->revision);
	}
	if (rv == 0) {
		rv = sto_buf_u64(&s->pending, meta->conf_index);
	}
	if (rv == 0) {
		rv = sto_buf_u32(&s->pending, (uint32_t)conf_len);
	}
	if (rv == 0) {
		rv = sto_buf_add(&s->pending, conf, conf_len);
	}
	if (rv != 0) {
		return sto_err(errmsg, errlen, rv, "out of memory");
	}
	sto_crc32c_update(&s->crc, s->pending.p, s->pending.len);
	return 0;
}

int storage_snapshot_open(storage_t *h, struct storage_snapshot **out,
			  struct storage_snapshot_meta *meta, char *errmsg, size_t errlen)
{
	struct storage_snapshot_meta m;
	struct storage_snapshot *s;
	int rv;

	if (out != NULL) {
		*out = NULL;
	}
	if (h == NULL || out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_snapshot_open: NULL argument");
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	s->h = h;
	s->stage = STAGE_KV;
	sto_crc32c_init(&s->crc);
	rv = sto_read_begin(h, &s->txn, errmsg, errlen);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = snap_header(s, &m, errmsg, errlen);
	if (rv != 0) {
		goto err_after_begin;
	}
	if (meta != NULL) {
		*meta = m;
	}
	*out = s;
	return 0;

err_after_begin:
	mdb_txn_abort(s->txn);
err_after_alloc:
	sto_buf_free(&s->pending);
	free(s);
	return rv;
}

static int emit_record(struct storage_snapshot *s, uint8_t tag, const MDB_val *k, const MDB_val *v)
{
	int rv;

	rv = sto_buf_u8(&s->pending, tag);
	if (rv == 0) {
		rv = sto_buf_u32(&s->pending, (uint32_t)k->mv_size);
	}
	if (rv == 0) {
		rv = sto_buf_add(&s->pending, k->mv_data, k->mv_size);
	}
	if (rv == 0) {
		rv = sto_buf_u32(&s->pending, (uint32_t)v->mv_size);
	}
	if (rv == 0) {
		rv = sto_buf_add(&s->pending, v->mv_data, v->mv_size);
	}
	s->n_records++;
	return rv;
}

/* Refill `pending` with the next record (or the trailer). */
static int produce(struct storage_snapshot *s, char *errmsg, size_t errlen)
{
	bool kv = s->stage == STAGE_KV;
	struct sto_session_rec srec;
	struct sto_kv_rec krec;
	uint8_t crc[STO_U32_SIZE];
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	s->pending.len = 0;
	s->pending_off = 0;
	if (s->stage == STAGE_TRAILER) {
		rv = sto_buf_u8(&s->pending, SNAP_TAG_END);
		if (rv == 0) {
			rv = sto_buf_u64(&s->pending, s->n_records);
		}
		if (rv != 0) {
			return sto_err(errmsg, errlen, rv, "out of memory");
		}
		sto_crc32c_update(&s->crc, s->pending.p, s->pending.len);
		sto_put_u32(crc, sto_crc32c_value(&s->crc));
		s->stage = STAGE_DONE;
		rv = sto_buf_add(&s->pending, crc, sizeof(crc));
		return rv != 0 ? sto_err(errmsg, errlen, rv, "out of memory") : 0;
	}
	if (s->cur == NULL) {
		rc = mdb_cursor_open(s->txn, kv ? s->h->dbi_kv : s->h->dbi_sessions, &s->cur);
		if (rc != 0) {
			return sto_mdb_err(errmsg, errlen, rc, "cannot open snapshot cursor");
		}
		rc = mdb_cursor_get(s->cur, &k, &v, MDB_FIRST);
	} else {
		rc = mdb_cursor_get(s->cur, &k, &v, MDB_NEXT);
	}
	if (rc == MDB_NOTFOUND) {
		mdb_cursor_close(s->cur);
		s->cur = NULL;
		s->stage = kv ? STAGE_SESSIONS : STAGE_TRAILER;
		return 0;
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read snapshot data");
	}
	/* Never ship a corrupt record to another node. */
	if (kv ? sto_kv_rec_decode(&v, &krec) != 0 || k.mv_size > STORAGE_MAX_KEY_SIZE
	       : k.mv_size != STO_SESSION_KEY_SIZE || sto_session_rec_decode(&v, &srec) != 0) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "corrupt %s record in snapshot",
			       kv ? "kv" : "session");
	}
	rv = emit_record(s, kv ? SNAP_TAG_KV : SNAP_TAG_SESSION, &k, &v);
	if (rv != 0) {
		return sto_err(errmsg, errlen, rv, "out of memory");
	}
	sto_crc32c_update(&s->crc, s->pending.p, s->pending.len);
	return 0;
}

int storage_snapshot_read(struct storage_snapshot *s, void *buf, size_t cap, size_t *n,
			  char *errmsg, size_t errlen)
{
	size_t done = 0;
	size_t chunk;
	int rv;

	if (n != NULL) {
		*n = 0;
	}
	if (s == NULL || n == NULL || (buf == NULL && cap > 0)) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_snapshot_read: NULL argument");
	}
	while (done < cap) {
		if (s->pending_off < s->pending.len) {
			chunk = s->pending.len - s->pending_off;
			if (chunk > cap - done) {
				chunk = cap - done;
			}
			memcpy((uint8_t *)buf + done, s->pending.p + s->pending_off, chunk);
			s->pending_off += chunk;
			done += chunk;
			continue;
		}
		if (s->stage == STAGE_DONE) {
			break;
		}
		rv = produce(s, errmsg, errlen);
		if (rv != 0) {
			return rv;
		}
	}
	*n = done;
	return 0;
}

void storage_snapshot_close(struct storage_snapshot *s)
{
	if (s == NULL) {
		return;
	}
	if (s->cur != NULL) {
		mdb_cursor_close(s->cur);
	}
	mdb_txn_abort(s->txn);
	sto_buf_free(&s->pending);
	free(s);
}

/* ---- installing (receiver side) ---- */

int storage_snapshot_install_begin(storage_t *h, struct storage_snapshot_install **out,
				   char *errmsg, size_t errlen)
{
	struct storage_snapshot_install *in;
	int rv;
	int n;

	if (out != NULL) {
		*out = NULL;
	}
	if (h == NULL || out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "install_begin: NULL argument");
	}
	if (atomic_exchange(&h->installing, true)) {
		return sto_err(errmsg, errlen, STORAGE_EBUSY, "a snapshot install is in progress");
	}
	in = calloc(1, sizeof(*in));
	if (in == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto err_after_flag;
	}
	in->h = h;
	n = snprintf(in->path, sizeof(in->path), "%s/%s", h->dir, STO_SNAP_TMP_FILE);
	if (n < 0 || (size_t)n >= sizeof(in->path)) {
		rv = sto_err(errmsg, errlen, STORAGE_EINVAL, "data directory path too long");
		goto err_after_alloc;
	}
	in->fd = open(in->path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, STO_FILE_MODE);
	if (in->fd < 0) {
		rv = sto_err(errmsg, errlen, STORAGE_EIO, "cannot create %s: %s", in->path,
			     strerror(errno));
		goto err_after_alloc;
	}
	*out = in;
	return 0;

err_after_alloc:
	free(in);
err_after_flag:
	atomic_store(&h->installing, false);
	return rv;
}

int storage_snapshot_install_write(struct storage_snapshot_install *in, const void *data,
				   size_t len, char *errmsg, size_t errlen)
{
	const uint8_t *p = data;
	ssize_t n;

	if (in == NULL || (data == NULL && len > 0)) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "install_write: NULL argument");
	}
	while (len > 0) {
		n = write(in->fd, p, len);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n <= 0) {
			return sto_err(errmsg, errlen, STORAGE_EIO, "cannot write %s: %s", in->path,
				       n < 0 ? strerror(errno) : "short write");
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

void storage_snapshot_install_abort(struct storage_snapshot_install *in)
{
	if (in == NULL) {
		return;
	}
	close(in->fd);
	unlink(in->path);
	atomic_store(&in->h->installing, false);
	free(in);
}

/* Buffered, checksummed reading of the spooled stream. */
struct snap_reader {
	int fd;
	uint8_t *buf;
	size_t pos;
	size_t len;
	struct sto_crc32c crc;
	char *errmsg;
	size_t errlen;
};

/* Read exactly n bytes into dst (NULL: skip them). A short stream is STORAGE_ECORRUPT. */
static int rd_exact(struct snap_reader *r, void *dst, size_t n, bool checksum)
{
	uint8_t *out = dst;
	ssize_t got;
	size_t chunk;

	while (n > 0) {
		if (r->pos == r->len) {
			got = read(r->fd, r->buf, SNAP_READ_BUF_SIZE);
			if (got < 0 && errno == EINTR) {
				continue;
			}
			if (got < 0) {
				return sto_err(r->errmsg, r->errlen, STORAGE_EIO,
					       "cannot read snapshot: %s", strerror(errno));
			}
			if (got == 0) {
				return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
					       "snapshot stream truncated");
			}
			r->pos = 0;
			r->len = (size_t)got;
		}
		chunk = r->len - r->pos < n ? r->len - r->pos : n;
		if (checksum) {
			sto_crc32c_update(&r->crc, r->buf + r->pos, chunk);
		}
		if (out != NULL) {
			memcpy(out, r->buf + r->pos, chunk);
			out += chunk;
		}
		r->pos += chunk;
		n -= chunk;
	}
	return 0;
}

static int rd_u32(struct snap_reader *r, uint32_t *v)
{
	uint8_t b[STO_U32_SIZE];
	int rv = rd_exact(r, b, sizeof(b), true);

	*v = rv == 0 ? sto_get_u32(b) : 0;
	return rv;
}

static int rd_u64(struct snap_reader *r, uint64_t *v)
{
	uint8_t b[STO_U64_SIZE];
	int rv = rd_exact(r, b, sizeof(b), true);

	*v = rv == 0 ? sto_get_u64(b) : 0;
	return rv;
}

static bool rd_at_eof(struct snap_reader *r)
{
	uint8_t b;
	ssize_t got;

	if (r->pos < r->len) {
		return false;
	}
	do {
		got = read(r->fd, &b, 1);
	} while (got < 0 && errno == EINTR);
	return got == 0;
}

struct snap_header {
	struct storage_snapshot_meta meta;
	struct sto_buf conf;
};

static int read_header(struct snap_reader *r, struct snap_header *hd)
{
	uint8_t magic[SNAP_MAGIC_SIZE];
	uint32_t version;
	uint32_t conf_len;
	int rv;

	rv = rd_exact(r, magic, sizeof(magic), true);
	if (rv == 0 && memcmp(magic, SNAP_MAGIC, SNAP_MAGIC_SIZE) != 0) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "not a Cairn snapshot stream");
	}
	if (rv == 0) {
		rv = rd_u32(r, &version);
	}
	if (rv == 0 && version != SNAP_VERSION) {
		return sto_err(r->errmsg, r->errlen, STORAGE_EFORMAT,
			       "snapshot stream version %u (this build reads %u)", version,
			       SNAP_VERSION);
	}
	if (rv == 0) {
		rv = rd_u64(r, &hd->meta.index);
	}
	if (rv == 0) {
		rv = rd_u64(r, &hd->meta.term);
	}
	if (rv == 0) {
		rv = rd_u64(r, &hd->meta.revision);
	}
	if (rv == 0) {
		rv = rd_u64(r, &hd->meta.conf_index);
	}
	if (rv == 0) {
		rv = rd_u32(r, &conf_len);
	}
	if (rv == 0 && conf_len > STORAGE_MAX_CONF_SIZE) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "snapshot membership blob of %u bytes", conf_len);
	}
	if (rv == 0) {
		rv = sto_buf_reserve(&hd->conf, conf_len);
		if (rv != 0) {
			return sto_err(r->errmsg, r->errlen, rv, "out of memory");
		}
		hd->conf.len = conf_len;
		rv = rd_exact(r, hd->conf.p, conf_len, true);
	}
	return rv;
}

/* Read one record into rec (key then value) after its tag; check and store it. */
static int install_record(storage_t *h, MDB_txn *txn, struct snap_reader *r, uint8_t tag,
			  struct sto_buf *rec)
{
	uint8_t lru[STO_LRU_KEY_SIZE];
	struct sto_session_rec srec;
	struct sto_kv_rec krec;
	bool kv = tag == SNAP_TAG_KV;
	uint32_t klen;
	uint32_t vlen;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = rd_u32(r, &klen);
	if (rv != 0) {
		return rv;
	}
	if (kv ? klen == 0 || klen > STORAGE_MAX_KEY_SIZE : klen != STO_SESSION_KEY_SIZE) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "snapshot record key of %u bytes", klen);
	}
	rec->len = 0;
	rv = sto_buf_reserve(rec, klen);
	if (rv == 0) {
		rv = rd_exact(r, rec->p, klen, true);
	}
	if (rv == 0) {
		rv = rd_u32(r, &vlen);
	}
	if (rv != 0) {
		return rv;
	}
	if (vlen > (kv ? STO_KV_HDR_SIZE + STORAGE_MAX_VALUE_SIZE
		       : STO_SESSION_HDR_SIZE + STORAGE_MAX_CACHED_REPLY)) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "snapshot record value of %u bytes", vlen);
	}
	rv = sto_buf_reserve(rec, (size_t)klen + vlen);
	if (rv != 0) {
		return sto_err(r->errmsg, r->errlen, rv, "out of memory");
	}
	rv = rd_exact(r, rec->p + klen, vlen, true);
	if (rv != 0) {
		return rv;
	}
	k.mv_data = rec->p;
	k.mv_size = klen;
	v.mv_data = rec->p + klen;
	v.mv_size = vlen;
	if (kv ? sto_kv_rec_decode(&v, &krec) != 0 : sto_session_rec_decode(&v, &srec) != 0) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "corrupt %s record in snapshot", kv ? "kv" : "session");
	}
	/* The stream is in key order; MDB_APPEND both loads fast and rejects disorder. */
	rc = mdb_put(txn, kv ? h->dbi_kv : h->dbi_sessions, &k, &v, MDB_APPEND);
	if (rc == MDB_KEYEXIST) {
		return sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			       "snapshot records out of order");
	}
	if (rc == 0 && !kv) {
		sto_put_u64(lru, srec.last_index);
		memcpy(lru + STO_U64_SIZE, rec->p, STO_SESSION_KEY_SIZE);
		k.mv_data = lru;
		k.mv_size = sizeof(lru);
		v.mv_data = NULL;
		v.mv_size = 0;
		rc = mdb_put(txn, h->dbi_session_lru, &k, &v, 0);
	}
	if (rc != 0) {
		return sto_mdb_err(r->errmsg, r->errlen, rc, "cannot install snapshot record");
	}
	return 0;
}

static int read_records(storage_t *h, MDB_txn *txn, struct snap_reader *r)
{
	struct sto_buf rec = {0};
	uint64_t n_records = 0;
	uint64_t count;
	uint8_t crc_buf[STO_U32_SIZE];
	uint32_t crc;
	uint8_t tag;
	int rv;

	for (;;) {
		rv = rd_exact(r, &tag, 1, true);
		if (rv != 0) {
			goto out;
		}
		if (tag == SNAP_TAG_END) {
			break;
		}
		if (tag != SNAP_TAG_KV && tag != SNAP_TAG_SESSION) {
			rv = sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
				     "bad snapshot record tag %u", tag);
			goto out;
		}
		rv = install_record(h, txn, r, tag, &rec);
		if (rv != 0) {
			goto out;
		}
		n_records++;
	}
	rv = rd_u64(r, &count);
	if (rv != 0) {
		goto out;
	}
	crc = sto_crc32c_value(&r->crc);
	rv = rd_exact(r, crc_buf, sizeof(crc_buf), false);
	if (rv != 0) {
		goto out;
	}
	if (sto_get_u32(crc_buf) != crc) {
		rv = sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			     "snapshot checksum mismatch (stream %08x, computed %08x)",
			     sto_get_u32(crc_buf), crc);
		goto out;
	}
	if (count != n_records || !rd_at_eof(r)) {
		rv = sto_err(r->errmsg, r->errlen, STORAGE_ECORRUPT,
			     "snapshot stream has %llu records, trailer says %llu, or trailing "
			     "bytes",
			     (unsigned long long)n_records, (unsigned long long)count);
		goto out;
	}
	rv = 0;
out:
	sto_buf_free(&rec);
	return rv;
}

/* Figure 5.3 steps 6-7: the log now starts after the snapshot. Which of its entries survive
 * (the suffix, if the log holds the snapshot's last entry with the same term; otherwise none)
 * is decided by sto_wal_start_at() once this commit is durable, and again at every open. */
static int fix_log(storage_t *h, MDB_txn *txn, const struct storage_snapshot_meta *m, char *errmsg,
		   size_t errlen)
{
	return sto_meta_put_pair(h, txn, STO_META_LOG_START, m->index + 1, m->term, errmsg, errlen);
}

static int install_meta(storage_t *h, MDB_txn *txn, const struct snap_header *hd, char *errmsg,
			size_t errlen)
{
	uint8_t *p;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = sto_meta_put_pair(h, txn, STO_META_APPLIED, hd->meta.index, hd->meta.term, errmsg,
			       errlen);
	if (rv == 0) {
		rv = sto_meta_put_u64(h, txn, STO_META_REVISION, hd->meta.revision, errmsg, errlen);
	}
	if (rv != 0) {
		return rv;
	}
	k.mv_data = (void *)STO_META_CONF;
	k.mv_size = strlen(STO_META_CONF);
	if (hd->meta.conf_index == 0 && hd->conf.len == 0) {
		rc = mdb_del(txn, h->dbi_meta, &k, NULL);
		rc = rc == MDB_NOTFOUND ? 0 : rc;
	} else {
		v.mv_data = NULL;
		v.mv_size = STO_CONF_HDR_SIZE + hd->conf.len;
		rc = mdb_put(txn, h->dbi_meta, &k, &v, MDB_RESERVE);
		if (rc == 0) {
			p = v.mv_data;
			sto_put_u64(p, hd->meta.conf_index);
			if (hd->conf.len > 0) {
				memcpy(p + STO_CONF_HDR_SIZE, hd->conf.p, hd->conf.len);
			}
		}
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot write membership");
	}
	return 0;
}

static int drop_state(storage_t *h, MDB_txn *txn, char *errmsg, size_t errlen)
{
	int rc = mdb_drop(txn, h->dbi_kv, 0);

	if (rc == 0) {
		rc = mdb_drop(txn, h->dbi_sessions, 0);
	}
	if (rc == 0) {
		rc = mdb_drop(txn, h->dbi_session_lru, 0);
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot clear the state machine");
	}
	return 0;
}

int storage_snapshot_install_finish(struct storage_snapshot_install *in,
				    struct storage_snapshot_meta *meta, char *errmsg, size_t errlen)
{
	struct snap_header hd = {0};
	struct snap_reader r = {0};
	uint64_t applied;
	uint64_t applied_term;
	storage_t *h;
	MDB_txn *txn;
	int rv;

	if (in == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "install_finish: NULL argument");
	}
	h = in->h;
	r.fd = in->fd;
	r.errmsg = errmsg;
	r.errlen = errlen;
	sto_crc32c_init(&r.crc);
	r.buf = malloc(SNAP_READ_BUF_SIZE);
	if (r.buf == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto release_in;
	}
	if (lseek(in->fd, 0, SEEK_SET) != 0) {
		rv = sto_err(errmsg, errlen, STORAGE_EIO, "cannot rewind %s: %s", in->path,
			     strerror(errno));
		goto release_buf;
	}
	rv = read_header(&r, &hd);
	if (rv != 0) {
		goto release_buf;
	}
	pthread_mutex_lock(&h->wal.wmu);
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		goto release_wal;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	if (rv == 0 && hd.meta.index < applied) {
		rv = sto_err(errmsg, errlen, STORAGE_ESTALE,
			     "snapshot at index %llu is older than applied index %llu",
			     (unsigned long long)hd.meta.index, (unsigned long long)applied);
	}
	if (rv == 0) {
		rv = drop_state(h, txn, errmsg, errlen);
	}
	if (rv == 0) {
		rv = read_records(h, txn, &r);
	}
	if (rv == 0) {
		rv = install_meta(h, txn, &hd, errmsg, errlen);
	}
	if (rv == 0) {
		rv = fix_log(h, txn, &hd.meta, errmsg, errlen);
	}
	if (rv != 0) {
		mdb_txn_abort(txn);
		goto release_wal;
	}
	rv = sto_commit(h, txn, STO_DURABLE, errmsg, errlen);
	if (rv == 0) {
		rv = sto_wal_start_at(h, hd.meta.index + 1, hd.meta.term, errmsg, errlen);
	}
	if (rv == 0 && meta != NULL) {
		*meta = hd.meta;
	}
release_wal:
	pthread_mutex_unlock(&h->wal.wmu);
release_buf:
	free(r.buf);
	sto_buf_free(&hd.conf);
release_in:
	storage_snapshot_install_abort(in);
	return rv;
}
