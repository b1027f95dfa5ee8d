/* The Raft log API (entries in segment files, wal.c) and the hard state (LMDB meta). */
#include <stdlib.h>
#include <string.h>

#include "storage/internal.h"

int storage_log_term(storage_t *h, uint64_t index, uint64_t *term, char *errmsg, size_t errlen)
{
	if (h == NULL || term == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_log_term: NULL argument");
	}
	return sto_wal_term(h, index, term, errmsg, errlen);
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

static int read_applied(storage_t *h, uint64_t *applied, char *errmsg, size_t errlen)
{
	uint64_t applied_term;
	MDB_txn *txn;
	int rv = sto_read_begin(h, &txn, errmsg, errlen);

	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, applied, &applied_term, errmsg,
			       errlen);
	mdb_txn_abort(txn);
	return rv;
}

/* The LMDB parts of a batch: the hard state (durable before the entries that follow from it)
 * or the applies (after the entries, which may be in the same batch). */
static int persist_meta(storage_t *h, const struct storage_persist *batch, bool hard_state,
			char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	int rv = sto_write_begin(h, &txn, errmsg, errlen);

	if (rv != 0) {
		return rv;
	}
	if (hard_state) {
		rv = put_hard_state(h, txn, batch->hard_state, errmsg, errlen);
	} else {
		rv = sto_apply_txn(h, txn, batch->apply, batch->n_apply, batch->results, errmsg,
				   errlen);
	}
	if (rv != 0) {
		mdb_txn_abort(txn);
		return rv;
	}
	/* Applies need no more durability than storage_apply() gives them (the log redoes
	 * them); a hard state must be on disk before the messages that depend on it leave. */
	rv = sto_commit(h, txn, hard_state ? STO_DURABLE : STO_APPLY_DURABLE, errmsg, errlen);
	if (rv != 0 && !hard_state) {
		sto_results_free(batch->results, batch->n_apply);
	}
	return rv;
}

int storage_persist(storage_t *h, const struct storage_persist *batch, char *errmsg, size_t errlen)
{
	bool rewrites = false;
	bool log_part;
	int rv = 0;

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
	log_part = batch->truncate_from != 0 || batch->n_entries > 0;
	/* A batch that only applies does not touch the log files: it runs beside appends. */
	bool writer = log_part || batch->hard_state != NULL;
	if (writer) {
		pthread_mutex_lock(&h->wal.wmu);
	}
	if (log_part) {
		rv = sto_wal_check_append(h, batch->truncate_from, batch->entries,
					  batch->n_entries, 0, &rewrites, errmsg, errlen);
	}
	if (rv == 0 && rewrites) {
		/* Only a truncation or a replacement can touch applied entries (§3.6). */
		uint64_t applied = 0;
		rv = read_applied(h, &applied, errmsg, errlen);
		if (rv == 0) {
			rv = sto_wal_check_append(h, batch->truncate_from, batch->entries,
						  batch->n_entries, applied, &rewrites, errmsg,
						  errlen);
		}
	}
	if (rv == 0 && batch->n_apply > 0) {
		/* Checked before anything is written, so that a bad batch changes nothing; and
		 * an entry is never applied before it is in the log. */
		struct sto_log_bounds b;
		sto_wal_bounds(h, &b);
		uint64_t last = b.last;
		if (batch->truncate_from != 0 && batch->truncate_from <= last) {
			last = batch->truncate_from - 1;
		}
		if (batch->n_entries > 0) {
			last = batch->entries[batch->n_entries - 1].index;
		}
		rv = sto_apply_check(h, batch->apply, batch->n_apply, errmsg, errlen);
		if (rv == 0 && batch->apply[batch->n_apply - 1].index > last) {
			rv = sto_err(errmsg, errlen, STORAGE_EINVAL,
				     "persist: command %llu applied before it is in the log (last "
				     "index %llu)",
				     (unsigned long long)batch->apply[batch->n_apply - 1].index,
				     (unsigned long long)last);
		}
	}
	if (rv == 0 && atomic_load(&h->failed)) {
		rv = sto_err(errmsg, errlen, STORAGE_EFATAL,
			     "an earlier commit failed: the handle is unusable, exit");
	}
	/* Hard state first: a term or vote on disk before the entries that follow from it is
	 * always safe; the reverse is not (a vote forgotten after a crash could be cast twice).
	 * Applies last: their entries may be in this batch. Each step is durable on its own; a
	 * failure leaves the steps before it done, and all of them can be repeated. */
	if (rv == 0 && batch->hard_state != NULL) {
		rv = persist_meta(h, batch, true, errmsg, errlen);
	}
	if (rv == 0 && log_part) {
		rv = sto_wal_append(h, batch->truncate_from, batch->entries, batch->n_entries,
				    errmsg, errlen);
	}
	if (rv == 0 && batch->n_apply > 0) {
		rv = persist_meta(h, batch, false, errmsg, errlen);
	}
	if (rv == 0 && batch->hard_state == NULL && batch->n_apply == 0) {
		atomic_fetch_add(&h->commits, 1); /* sto_commit counts the others */
	}
	if (writer) {
		pthread_mutex_unlock(&h->wal.wmu);
	}
	return rv;
}

int storage_log_read(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes, storage_entry_cb cb,
		     void *arg, char *errmsg, size_t errlen)
{
	if (h == NULL || cb == NULL || lo == 0 || lo > hi) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_log_read: bad arguments (lo %llu, hi %llu)",
			       (unsigned long long)lo, (unsigned long long)hi);
	}
	return sto_wal_read(h, lo, hi, max_bytes, cb, arg, errmsg, errlen);
}

/* storage_log_entries() collects in one pass (the log may change between two reads): entry
 * headers in one buffer, data in another, joined into one block at the end. */
struct collect {
	struct sto_buf ents;
	struct sto_buf data;
};

static int collect_cb(const struct storage_entry *e, void *arg)
{
	struct collect *c = arg;
	struct storage_entry copy = *e;

	copy.data = (const void *)(uintptr_t)c->data.len; /* an offset until the end */
	if (sto_buf_add(&c->ents, &copy, sizeof(copy)) != 0 ||
	    (e->len > 0 && sto_buf_add(&c->data, e->data, e->len) != 0)) {
		return STORAGE_ENOMEM;
	}
	return 0;
}

int storage_log_entries(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes,
			struct storage_entries *out, char *errmsg, size_t errlen)
{
	struct collect c = {0};
	size_t n;
	uint8_t *block;
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
	rv = sto_wal_read(h, lo, hi, max_bytes, collect_cb, &c, errmsg, errlen);
	if (rv == STORAGE_ENOMEM) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	n = c.ents.len / sizeof(struct storage_entry);
	if (rv != 0 || n == 0) {
		goto out;
	}
	block = malloc(c.ents.len + c.data.len);
	if (block == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(block, c.ents.p, c.ents.len);
	if (c.data.len > 0) {
		memcpy(block + c.ents.len, c.data.p, c.data.len);
	}
	out->entries = (struct storage_entry *)block;
	for (size_t i = 0; i < n; i++) {
		out->entries[i].data = block + c.ents.len + (uintptr_t)out->entries[i].data;
	}
	out->n = n;
	out->priv = block;
out:
	sto_buf_free(&c.ents);
	sto_buf_free(&c.data);
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
	pthread_mutex_lock(&h->wal.wmu);
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		goto out;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	if (rv != 0) {
		goto err_after_begin;
	}
	sto_wal_bounds(h, &b);
	if (upto < b.first) {
		mdb_txn_abort(txn);
		goto out;
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
	rv = sto_wal_term(h, upto, &term, errmsg, errlen);
	if (rv == 0) {
		rv = sto_meta_put_pair(h, txn, STO_META_LOG_START, upto + 1, term, errmsg, errlen);
	}
	if (rv != 0) {
		goto err_after_begin;
	}
	/* Durable before any segment goes: it also makes every apply before it durable, so the
	 * state machine never needs an entry this compaction drops. */
	rv = sto_commit(h, txn, STO_DURABLE, errmsg, errlen);
	if (rv == 0) {
		rv = sto_wal_start_at(h, upto + 1, term, errmsg, errlen);
	}
	goto out;

err_after_begin:
	mdb_txn_abort(txn);
out:
	pthread_mutex_unlock(&h->wal.wmu);
	return rv;
}
