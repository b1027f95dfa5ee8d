/* The Raft log and hard state: group-committed appends, truncation, reads and compaction. */
#include <stdlib.h>
#include <string.h>

#include "storage/internal.h"

static void log_key(uint8_t *buf, MDB_val *k, uint64_t index)
{
	sto_put_u64(buf, index);
	k->mv_data = buf;
	k->mv_size = STO_LOG_KEY_SIZE;
}

int sto_log_bounds(storage_t *h, MDB_txn *txn, struct sto_log_bounds *b, char *errmsg,
		   size_t errlen)
{
	struct storage_entry e;
	MDB_cursor *cur;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = sto_meta_get_pair(h, txn, STO_META_LOG_START, 1, 0, &b->first, &b->prev_term, errmsg,
			       errlen);
	if (rv != 0) {
		return rv;
	}
	if (b->first == 0) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "log first index is 0");
	}
	rc = mdb_cursor_open(txn, h->dbi_log, &cur);
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot open log cursor");
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	if (rc == MDB_NOTFOUND) {
		b->last = b->first - 1;
		b->last_term = b->prev_term;
		rv = 0;
		goto out;
	}
	if (rc != 0) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot read the log");
		goto out;
	}
	if (sto_log_rec_decode(&k, &v, &e) != 0 || e.index != b->first) {
		rv =
		    sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			    "log starts with a bad record or at the wrong index (first index %llu)",
			    (unsigned long long)b->first);
		goto out;
	}
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc != 0) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot read the log");
		goto out;
	}
	if (sto_log_rec_decode(&k, &v, &e) != 0 || e.index < b->first) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "bad last log record");
		goto out;
	}
	b->last = e.index;
	b->last_term = e.term;
	rv = 0;
out:
	mdb_cursor_close(cur);
	return rv;
}

int sto_log_delete(storage_t *h, MDB_txn *txn, uint64_t from, uint64_t to_excl, char *errmsg,
		   size_t errlen)
{
	uint8_t kbuf[STO_LOG_KEY_SIZE];
	MDB_cursor *cur;
	MDB_val k;
	MDB_val v;
	int rv = 0;
	int rc;

	rc = mdb_cursor_open(txn, h->dbi_log, &cur);
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot open log cursor");
	}
	log_key(kbuf, &k, from);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (rc == 0) {
		if (k.mv_size != STO_LOG_KEY_SIZE) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "bad log key");
			goto out;
		}
		if (to_excl != 0 && sto_get_u64(k.mv_data) >= to_excl) {
			break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			break;
		}
		/* After a delete the cursor already sits on the next record; MDB_NEXT returns it.
		 */
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot delete log entries");
	}
out:
	mdb_cursor_close(cur);
	return rv;
}

int sto_log_term_txn(storage_t *h, MDB_txn *txn, uint64_t index, uint64_t *term, char *errmsg,
		     size_t errlen)
{
	uint8_t kbuf[STO_LOG_KEY_SIZE];
	struct sto_log_bounds b;
	struct storage_entry e;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	if (index == 0) {
		*term = 0;
		return 0;
	}
	rv = sto_log_bounds(h, txn, &b, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (index == b.first - 1) {
		*term = b.prev_term;
		return 0;
	}
	if (index < b.first) {
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "log index %llu compacted (first index %llu)",
			       (unsigned long long)index, (unsigned long long)b.first);
	}
	if (index > b.last) {
		return sto_err(errmsg, errlen, STORAGE_EUNAVAIL,
			       "log index %llu beyond last index %llu", (unsigned long long)index,
			       (unsigned long long)b.last);
	}
	log_key(kbuf, &k, index);
	rc = mdb_get(txn, h->dbi_log, &k, &v);
	if (rc == MDB_NOTFOUND) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "log entry %llu missing",
			       (unsigned long long)index);
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read the log");
	}
	if (sto_log_rec_decode(&k, &v, &e) != 0) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "log entry %llu is corrupt",
			       (unsigned long long)index);
	}
	*term = e.term;
	return 0;
}

int storage_log_term(storage_t *h, uint64_t index, uint64_t *term, char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	int rv;

	if (h == NULL || term == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_log_term: NULL argument");
	}
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_log_term_txn(h, txn, index, term, errmsg, errlen);
	mdb_txn_abort(txn);
	return rv;
}

/* Checks that need no transaction: contiguity, term order, sizes. */
static int check_entries(const struct storage_persist *batch, char *errmsg, size_t errlen)
{
	const struct storage_entry *e = batch->entries;
	size_t i;

	if (batch->n_entries > 0 && e == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "persist: NULL entries");
	}
	for (i = 0; i < batch->n_entries; i++) {
		if (e[i].index == 0) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL, "persist: entry index 0");
		}
		if (i > 0 && e[i].index != e[i - 1].index + 1) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "persist: entry %llu follows %llu (not contiguous)",
				       (unsigned long long)e[i].index,
				       (unsigned long long)e[i - 1].index);
		}
		if (i > 0 && e[i].term < e[i - 1].term) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "persist: entry %llu has term %llu below previous %llu",
				       (unsigned long long)e[i].index,
				       (unsigned long long)e[i].term,
				       (unsigned long long)e[i - 1].term);
		}
		if (e[i].len > STORAGE_MAX_ENTRY_SIZE) {
			return sto_err(errmsg, errlen, STORAGE_ETOOLARGE,
				       "persist: entry %llu is %zu bytes (max %u)",
				       (unsigned long long)e[i].index, e[i].len,
				       STORAGE_MAX_ENTRY_SIZE);
		}
		if (e[i].len > 0 && e[i].data == NULL) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "persist: entry %llu has NULL data",
				       (unsigned long long)e[i].index);
		}
	}
	return 0;
}

static int truncate_suffix(storage_t *h, MDB_txn *txn, uint64_t from, uint64_t applied,
			   char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	int rv;

	rv = sto_log_bounds(h, txn, &b, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	/* §3.6: an applied entry is committed and a committed entry never changes. */
	if (from <= applied) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: cannot truncate from %llu, entries up to %llu are applied",
			       (unsigned long long)from, (unsigned long long)applied);
	}
	if (from < b.first) {
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "persist: cannot truncate from %llu, first index is %llu",
			       (unsigned long long)from, (unsigned long long)b.first);
	}
	if (from > b.last) {
		return 0;
	}
	return sto_log_delete(h, txn, from, 0, errmsg, errlen);
}

static int append_entries(storage_t *h, MDB_txn *txn, const struct storage_entry *e, size_t n,
			  uint64_t applied, char *errmsg, size_t errlen)
{
	uint8_t kbuf[STO_LOG_KEY_SIZE];
	struct sto_log_bounds b;
	uint64_t prev_term;
	MDB_cursor *cur;
	uint8_t *p;
	MDB_val k;
	MDB_val v;
	size_t i;
	int rv;
	int rc;

	rv = sto_log_bounds(h, txn, &b, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (e[0].index < b.first) {
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "persist: entry %llu is below first index %llu",
			       (unsigned long long)e[0].index, (unsigned long long)b.first);
	}
	if (e[0].index > b.last + 1) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu leaves a gap after last index %llu",
			       (unsigned long long)e[0].index, (unsigned long long)b.last);
	}
	if (e[0].index <= applied) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu would replace an applied entry (applied %llu)",
			       (unsigned long long)e[0].index, (unsigned long long)applied);
	}
	if (e[0].index <= b.last) {
		/* §3.5: a conflicting suffix is replaced by the leader's entries. */
		rv = sto_log_delete(h, txn, e[0].index, 0, errmsg, errlen);
		if (rv == 0) {
			rv = sto_log_term_txn(h, txn, e[0].index - 1, &prev_term, errmsg, errlen);
		}
		if (rv != 0) {
			return rv;
		}
	} else {
		prev_term = b.last_term;
	}
	if (e[0].term < prev_term) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu has term %llu below the previous entry's %llu",
			       (unsigned long long)e[0].index, (unsigned long long)e[0].term,
			       (unsigned long long)prev_term);
	}
	rc = mdb_cursor_open(txn, h->dbi_log, &cur);
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot open log cursor");
	}
	for (i = 0; i < n; i++) {
		log_key(kbuf, &k, e[i].index);
		v.mv_size = STO_LOG_HDR_SIZE + e[i].len;
		v.mv_data = NULL;
		rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND | MDB_RESERVE);
		if (rc != 0) {
			rv = sto_err(errmsg, errlen, sto_from_mdb(rc),
				     "cannot append log entry %llu: %s",
				     (unsigned long long)e[i].index, mdb_strerror(rc));
			goto out;
		}
		p = v.mv_data;
		sto_put_u64(p, e[i].term);
		p[STO_U64_SIZE] = e[i].type;
		if (e[i].len > 0) {
			memcpy(p + STO_LOG_HDR_SIZE, e[i].data, e[i].len);
		}
	}
	rv = 0;
out:
	mdb_cursor_close(cur);
	return rv;
}

static int put_hard_state(storage_t *h, MDB_txn *txn, const struct storage_hard_state *hs,
			  char *errmsg, size_t errlen)
{
	uint64_t term;
	uint64_t vote;
	int rv;

	rv = sto_meta_get_pair(h, txn, STO_META_HARD_STATE, 0, 0, &term, &vote, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (hs->term < term) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: term would go back from %llu to %llu",
			       (unsigned long long)term, (unsigned long long)hs->term);
	}
	return sto_meta_put_pair(h, txn, STO_META_HARD_STATE, hs->term, hs->vote, errmsg, errlen);
}

int storage_persist(storage_t *h, const struct storage_persist *batch, char *errmsg, size_t errlen)
{
	uint64_t applied;
	uint64_t applied_term;
	MDB_txn *txn;
	int rv;

	if (h == NULL || batch == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_persist: NULL argument");
	}
	if (batch->truncate_from == 0 && batch->n_entries == 0 && batch->hard_state == NULL &&
	    batch->n_apply == 0) {
		return 0;
	}
	if (batch->n_apply > 0 && (batch->apply == NULL || batch->results == NULL)) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "persist: NULL apply or results");
	}
	rv = check_entries(batch, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	if (rv == 0 && batch->truncate_from != 0) {
		rv = truncate_suffix(h, txn, batch->truncate_from, applied, errmsg, errlen);
	}
	if (rv == 0 && batch->n_entries > 0) {
		rv = append_entries(h, txn, batch->entries, batch->n_entries, applied, errmsg,
				    errlen);
	}
	if (rv == 0 && batch->hard_state != NULL) {
		rv = put_hard_state(h, txn, batch->hard_state, errmsg, errlen);
	}
	if (rv == 0 && batch->n_apply > 0) {
		rv = sto_apply_txn(h, txn, batch->apply, batch->n_apply, batch->results, errmsg,
				   errlen);
	}
	if (rv != 0) {
		goto err_after_begin;
	}
	bool handed_out = false;
	if (batch->n_apply > 0 && batch->applied_cb != NULL) {
		batch->applied_cb(batch->applied_arg, batch->results, batch->n_apply);
		handed_out = true;
	}
	/* A batch that only applies needs no more durability than storage_apply(): the log
	 * holds those entries, and a power loss that undoes the batch re-applies it. */
	bool log_change =
	    batch->truncate_from != 0 || batch->n_entries > 0 || batch->hard_state != NULL;
	rv = sto_commit(h, txn, log_change ? STO_DURABLE : STO_APPLY_DURABLE, errmsg, errlen);
	if (rv != 0 && batch->n_apply > 0 && !handed_out) {
		sto_results_free(batch->results, batch->n_apply);
	}
	return rv;

err_after_begin:
	mdb_txn_abort(txn);
	return rv;
}

static int log_read_txn(storage_t *h, MDB_txn *txn, uint64_t lo, uint64_t hi, size_t max_bytes,
			storage_entry_cb cb, void *arg, char *errmsg, size_t errlen)
{
	uint8_t kbuf[STO_LOG_KEY_SIZE];
	struct sto_log_bounds b;
	struct storage_entry e;
	MDB_cursor *cur;
	uint64_t expect = lo;
	size_t bytes = 0;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = sto_log_bounds(h, txn, &b, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (lo < b.first) {
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "log index %llu compacted (first index %llu)",
			       (unsigned long long)lo, (unsigned long long)b.first);
	}
	if (hi > b.last + 1) {
		return sto_err(errmsg, errlen, STORAGE_EUNAVAIL,
			       "log range ends at %llu, beyond last index %llu",
			       (unsigned long long)hi - 1, (unsigned long long)b.last);
	}
	if (lo == hi) {
		return 0;
	}
	rc = mdb_cursor_open(txn, h->dbi_log, &cur);
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot open log cursor");
	}
	log_key(kbuf, &k, lo);
	rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	while (expect < hi) {
		if (rc != 0) {
			rv = rc == MDB_NOTFOUND
				 ? sto_err(errmsg, errlen, STORAGE_ECORRUPT,
					   "log entry %llu missing", (unsigned long long)expect)
				 : sto_mdb_err(errmsg, errlen, rc, "cannot read the log");
			goto out;
		}
		if (sto_log_rec_decode(&k, &v, &e) != 0 || e.index != expect) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				     "log entry %llu missing or corrupt",
				     (unsigned long long)expect);
			goto out;
		}
		if (max_bytes != 0 && expect > lo &&
		    (e.len > max_bytes || bytes > max_bytes - e.len)) {
			break;
		}
		bytes += e.len;
		rv = cb(&e, arg);
		if (rv != 0) {
			goto out;
		}
		expect++;
		if (expect < hi) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		}
	}
	rv = 0;
out:
	mdb_cursor_close(cur);
	return rv;
}

int storage_log_read(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes, storage_entry_cb cb,
		     void *arg, char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	int rv;

	if (h == NULL || cb == NULL || lo == 0 || lo > hi) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_log_read: bad arguments (lo %llu, hi %llu)",
			       (unsigned long long)lo, (unsigned long long)hi);
	}
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = log_read_txn(h, txn, lo, hi, max_bytes, cb, arg, errmsg, errlen);
	mdb_txn_abort(txn);
	return rv;
}

/* storage_log_entries() reads twice in one read transaction: count, then copy into one block. */
struct collect {
	size_t n;
	size_t bytes;
	struct storage_entry *entries;
	uint8_t *data;
};

static int count_cb(const struct storage_entry *e, void *arg)
{
	struct collect *c = arg;

	c->n++;
	c->bytes += e->len;
	return 0;
}

static int copy_cb(const struct storage_entry *e, void *arg)
{
	struct collect *c = arg;
	struct storage_entry *out = &c->entries[c->n++];

	*out = *e;
	out->data = c->data;
	if (e->len > 0) {
		memcpy(c->data, e->data, e->len);
	}
	c->data += e->len;
	return 0;
}

int storage_log_entries(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes,
			struct storage_entries *out, char *errmsg, size_t errlen)
{
	struct collect c = {0};
	MDB_txn *txn;
	void *block;
	int rv;

	if (out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_log_entries: NULL out");
	}
	memset(out, 0, sizeof(*out));
	if (h == NULL || lo == 0 || lo > hi) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_log_entries: bad arguments (lo %llu, hi %llu)",
			       (unsigned long long)lo, (unsigned long long)hi);
	}
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = log_read_txn(h, txn, lo, hi, max_bytes, count_cb, &c, errmsg, errlen);
	if (rv != 0 || c.n == 0) {
		goto out;
	}
	block = malloc(c.n * sizeof(struct storage_entry) + c.bytes);
	if (block == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto out;
	}
	c.entries = block;
	c.data = (uint8_t *)block + c.n * sizeof(struct storage_entry);
	c.n = 0;
	rv = log_read_txn(h, txn, lo, hi, max_bytes, copy_cb, &c, errmsg, errlen);
	if (rv != 0) {
		free(block);
		goto out;
	}
	out->entries = c.entries;
	out->n = c.n;
	out->priv = block;
out:
	mdb_txn_abort(txn);
	return rv;
}

void storage_entries_free(struct storage_entries *e)
{
	if (e == NULL) {
		return;
	}
	free(e->priv);
	memset(e, 0, sizeof(*e));
}

int storage_log_compact(storage_t *h, uint64_t upto, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	uint64_t applied;
	uint64_t applied_term;
	uint64_t term;
	MDB_txn *txn;
	int rv;

	if (h == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_log_compact: NULL handle");
	}
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	if (rv == 0) {
		rv = sto_log_bounds(h, txn, &b, errmsg, errlen);
	}
	if (rv != 0) {
		goto err_after_begin;
	}
	if (upto < b.first) {
		mdb_txn_abort(txn);
		return 0;
	}
	if (upto > applied) {
		rv = sto_err(errmsg, errlen, STORAGE_EINVAL,
			     "cannot compact up to %llu: only %llu applied",
			     (unsigned long long)upto, (unsigned long long)applied);
		goto err_after_begin;
	}
	if (upto > b.last) {
		rv = sto_err(errmsg, errlen, STORAGE_EUNAVAIL,
			     "cannot compact up to %llu: last index %llu", (unsigned long long)upto,
			     (unsigned long long)b.last);
		goto err_after_begin;
	}
	rv = sto_log_term_txn(h, txn, upto, &term, errmsg, errlen);
	if (rv == 0) {
		rv = sto_log_delete(h, txn, b.first, upto + 1, errmsg, errlen);
	}
	if (rv == 0) {
		rv = sto_meta_put_pair(h, txn, STO_META_LOG_START, upto + 1, term, errmsg, errlen);
	}
	if (rv != 0) {
		goto err_after_begin;
	}
	return sto_commit(h, txn, STO_DURABLE, errmsg, errlen);

err_after_begin:
	mdb_txn_abort(txn);
	return rv;
}
