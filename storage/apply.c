/* Applying committed commands together with applied_index; exactly-once sessions (§6.3). */
#include <stdlib.h>
#include <string.h>

#include "storage/internal.h"

struct apply_ctx {
	storage_t *h;
	MDB_txn *txn;
	uint64_t revision;
	struct sto_buf reply;	/* the current command's encoded reply */
	struct sto_buf scratch; /* a copy of a cached reply while its session is rewritten */
	char *errmsg;
	size_t errlen;
};

/* ---- sessions ----
 * `sessions`: client id -> last seq, last index (the entry that last used the session) and the
 * last reply. `session_lru`: (last index, client id) -> empty, the same sessions ordered by
 * last use, so that expiry and eviction find the oldest with one cursor step. Both depend only
 * on log indexes, so every replica expires the same sessions at the same entry. */

static void id_key(uint8_t *buf, MDB_val *k, uint64_t id)
{
	sto_put_u64(buf, id);
	k->mv_data = buf;
	k->mv_size = STO_SESSION_KEY_SIZE;
}

static void lru_key(uint8_t *buf, MDB_val *k, uint64_t last_index, uint64_t id)
{
	sto_put_u64(buf, last_index);
	sto_put_u64(buf + STO_U64_SIZE, id);
	k->mv_data = buf;
	k->mv_size = STO_LRU_KEY_SIZE;
}

static int session_get(struct apply_ctx *c, uint64_t id, struct sto_session_rec *rec, bool *found)
{
	uint8_t kbuf[STO_SESSION_KEY_SIZE];
	MDB_val k;
	MDB_val v;
	int rc;

	*found = false;
	id_key(kbuf, &k, id);
	rc = mdb_get(c->txn, c->h->dbi_sessions, &k, &v);
	if (rc == MDB_NOTFOUND) {
		return 0;
	}
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot read sessions");
	}
	if (sto_session_rec_decode(&v, rec) != 0) {
		return sto_err(c->errmsg, c->errlen, STORAGE_ECORRUPT,
			       "session %llu record is corrupt", (unsigned long long)id);
	}
	*found = true;
	return 0;
}

static int lru_del(struct apply_ctx *c, uint64_t last_index, uint64_t id)
{
	uint8_t kbuf[STO_LRU_KEY_SIZE];
	MDB_val k;
	int rc;

	lru_key(kbuf, &k, last_index, id);
	rc = mdb_del(c->txn, c->h->dbi_session_lru, &k, NULL);
	if (rc == MDB_NOTFOUND) {
		return sto_err(c->errmsg, c->errlen, STORAGE_ECORRUPT,
			       "session %llu missing from the session index",
			       (unsigned long long)id);
	}
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot update the session index");
	}
	return 0;
}

/* Write session `id`. old_index is the last index of the record being replaced, 0 if new. */
static int session_put(struct apply_ctx *c, uint64_t id, uint64_t old_index, uint64_t seq,
		       uint64_t index, bool cached, const uint8_t *reply, size_t reply_len)
{
	uint8_t kbuf[STO_LRU_KEY_SIZE];
	uint8_t *p;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	if (old_index != 0) {
		rv = lru_del(c, old_index, id);
		if (rv != 0) {
			return rv;
		}
	}
	lru_key(kbuf, &k, index, id);
	v.mv_data = NULL;
	v.mv_size = 0;
	rc = mdb_put(c->txn, c->h->dbi_session_lru, &k, &v, 0);
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot update the session index");
	}
	id_key(kbuf, &k, id);
	v.mv_size = STO_SESSION_HDR_SIZE + (cached ? reply_len : 0);
	rc = mdb_put(c->txn, c->h->dbi_sessions, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot write session");
	}
	p = v.mv_data;
	sto_put_u64(p, seq);
	sto_put_u64(p + STO_U64_SIZE, index);
	p[2 * STO_U64_SIZE] = cached ? STO_SESSION_CACHED : 0;
	if (cached && reply_len > 0) {
		memcpy(p + STO_SESSION_HDR_SIZE, reply, reply_len);
	}
	return 0;
}

static int session_del(struct apply_ctx *c, uint64_t id, uint64_t last_index)
{
	uint8_t kbuf[STO_SESSION_KEY_SIZE];
	MDB_val k;
	int rv;
	int rc;

	rv = lru_del(c, last_index, id);
	if (rv != 0) {
		return rv;
	}
	id_key(kbuf, &k, id);
	rc = mdb_del(c->txn, c->h->dbi_sessions, &k, NULL);
	if (rc != 0) {
		return sto_err(
		    c->errmsg, c->errlen, rc == MDB_NOTFOUND ? STORAGE_ECORRUPT : sto_from_mdb(rc),
		    "cannot delete session %llu: %s", (unsigned long long)id, mdb_strerror(rc));
	}
	return 0;
}

/* Drop, oldest first, up to max_drop sessions last used at or before upto_index: expiry
 * passes a limit index and no count, eviction a count and no limit. */
static int sessions_drop_oldest(struct apply_ctx *c, uint64_t upto_index, uint64_t max_drop)
{
	MDB_cursor *cur;
	uint64_t dropped = 0;
	uint8_t kbuf[STO_SESSION_KEY_SIZE];
	MDB_val idk;
	MDB_val k;
	MDB_val v;
	int rv = 0;
	int rc;

	rc = mdb_cursor_open(c->txn, c->h->dbi_session_lru, &cur);
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot open session index");
	}
	while (dropped < max_drop) {
		rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		if (rc == MDB_NOTFOUND) {
			break;
		}
		if (rc != 0) {
			rv = sto_mdb_err(c->errmsg, c->errlen, rc, "cannot read session index");
			break;
		}
		if (k.mv_size != STO_LRU_KEY_SIZE) {
			rv = sto_err(c->errmsg, c->errlen, STORAGE_ECORRUPT,
				     "bad session index key");
			break;
		}
		if (sto_get_u64(k.mv_data) > upto_index) {
			break;
		}
		id_key(kbuf, &idk, sto_get_u64((const uint8_t *)k.mv_data + STO_U64_SIZE));
		rc = mdb_cursor_del(cur, 0);
		if (rc == 0) {
			rc = mdb_del(c->txn, c->h->dbi_sessions, &idk, NULL);
		}
		if (rc != 0) {
			rv = sto_err(c->errmsg, c->errlen,
				     rc == MDB_NOTFOUND ? STORAGE_ECORRUPT : sto_from_mdb(rc),
				     "cannot expire session: %s", mdb_strerror(rc));
			break;
		}
		dropped++;
	}
	mdb_cursor_close(cur);
	return rv;
}

/* Before entry `index`: a session not used by any of the last session_ttl entries expires. */
static int sessions_expire(struct apply_ctx *c, uint64_t index)
{
	if (index <= c->h->session_ttl) {
		return 0;
	}
	return sessions_drop_oldest(c, index - c->h->session_ttl, UINT64_MAX);
}

/* Make room for one more session under max_sessions by evicting the least recently used. */
static int sessions_make_room(struct apply_ctx *c)
{
	MDB_stat st;
	int rc;

	rc = mdb_stat(c->txn, c->h->dbi_sessions, &st);
	if (rc != 0) {
		return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot stat sessions");
	}
	if (st.ms_entries < c->h->max_sessions) {
		return 0;
	}
	return sessions_drop_oldest(c, UINT64_MAX, st.ms_entries - c->h->max_sessions + 1);
}

/* ---- commands ---- */

static int apply_register(struct apply_ctx *c, const struct storage_cmd *cmd)
{
	struct sto_session_rec rec;
	bool found;
	int rv;

	rv = sessions_make_room(c);
	if (rv == 0) {
		rv = session_get(c, cmd->index, &rec, &found);
	}
	if (rv == 0) {
		rv = session_put(c, cmd->index, found ? rec.last_index : 0, 0, cmd->index, false,
				 NULL, 0);
	}
	if (rv == 0) {
		rv = sto_reply_simple(&c->reply, STORAGE_CMD_REGISTER_SESSION, 0, c->revision,
				      cmd->index);
	}
	return rv;
}

static int apply_close(struct apply_ctx *c, const struct storage_cmd *cmd)
{
	struct sto_session_rec rec;
	bool found = false;
	int rv = 0;

	if (cmd->client_id != 0) {
		rv = session_get(c, cmd->client_id, &rec, &found);
	}
	if (rv == 0 && found) {
		rv = session_del(c, cmd->client_id, rec.last_index);
	}
	if (rv == 0) {
		rv = sto_reply_simple(&c->reply, STORAGE_CMD_CLOSE_SESSION,
				      found ? 0 : STORAGE_ESESSION, c->revision, cmd->client_id);
	}
	return rv;
}

static int apply_conf(struct apply_ctx *c, const struct storage_cmd *cmd)
{
	int status = 0;
	uint8_t *p;
	MDB_val k;
	MDB_val v;
	int rc;

	if (cmd->conf_len > STORAGE_MAX_CONF_SIZE) {
		status = STORAGE_ETOOLARGE;
	} else if (cmd->conf_len > 0 && cmd->conf == NULL) {
		status = STORAGE_EINVAL;
	}
	if (status == 0) {
		k.mv_data = (void *)STO_META_CONF;
		k.mv_size = strlen(STO_META_CONF);
		v.mv_data = NULL;
		v.mv_size = STO_CONF_HDR_SIZE + cmd->conf_len;
		rc = mdb_put(c->txn, c->h->dbi_meta, &k, &v, MDB_RESERVE);
		if (rc != 0) {
			return sto_mdb_err(c->errmsg, c->errlen, rc, "cannot write membership");
		}
		p = v.mv_data;
		sto_put_u64(p, cmd->index);
		if (cmd->conf_len > 0) {
			memcpy(p + STO_CONF_HDR_SIZE, cmd->conf, cmd->conf_len);
		}
	}
	return sto_reply_simple(&c->reply, STORAGE_CMD_CONF, status, c->revision, 0);
}

static int exec(struct apply_ctx *c, const struct storage_txn *t)
{
	struct sto_exec x;
	int rv;

	x.h = c->h;
	x.txn = c->txn;
	x.writable = true;
	x.revision = c->revision;
	x.out = &c->reply;
	x.errmsg = c->errmsg;
	x.errlen = c->errlen;
	rv = sto_exec_txn(&x, t);
	if (rv == 0) {
		c->revision = x.revision;
	}
	return rv;
}

/* §6.3: filter duplicates through the client's session, run new commands, cache the reply. */
static int apply_txn(struct apply_ctx *c, const struct storage_cmd *cmd, bool *cached)
{
	struct sto_session_rec rec;
	bool found;
	int rv;

	if (cmd->client_id == 0) {
		return exec(c, &cmd->txn);
	}
	if (cmd->seq == 0) {
		return sto_reply_simple(&c->reply, STORAGE_CMD_TXN, STORAGE_EINVAL, c->revision, 0);
	}
	rv = session_get(c, cmd->client_id, &rec, &found);
	if (rv != 0) {
		return rv;
	}
	if (!found) {
		return sto_reply_simple(&c->reply, STORAGE_CMD_TXN, STORAGE_ESESSION, c->revision,
					0);
	}
	if (cmd->seq <= rec.last_seq) {
		/* A retry: answer without executing, and count it as a use of the session. */
		c->scratch.len = 0;
		rv = sto_buf_add(&c->scratch, rec.reply, rec.reply_len);
		if (rv == 0) {
			rv = session_put(c, cmd->client_id, rec.last_index, rec.last_seq,
					 cmd->index, rec.cached, c->scratch.p, c->scratch.len);
		}
		if (rv != 0) {
			return rv;
		}
		if (cmd->seq < rec.last_seq) {
			return sto_reply_simple(&c->reply, STORAGE_CMD_TXN, STORAGE_ESTALE,
						c->revision, 0);
		}
		if (!rec.cached) {
			return sto_reply_simple(&c->reply, STORAGE_CMD_TXN, STORAGE_ENOREPLY,
						c->revision, 0);
		}
		*cached = true;
		return sto_buf_add(&c->reply, c->scratch.p, c->scratch.len);
	}
	rv = exec(c, &cmd->txn);
	if (rv != 0) {
		return rv;
	}
	return session_put(c, cmd->client_id, rec.last_index, cmd->seq, cmd->index,
			   c->reply.len <= STORAGE_MAX_CACHED_REPLY, c->reply.p, c->reply.len);
}

static int apply_one(struct apply_ctx *c, const struct storage_cmd *cmd, bool *cached)
{
	switch (cmd->type) {
	case STORAGE_CMD_NOOP:
		return sto_reply_simple(&c->reply, STORAGE_CMD_NOOP, 0, c->revision, 0);
	case STORAGE_CMD_TXN:
		return apply_txn(c, cmd, cached);
	case STORAGE_CMD_REGISTER_SESSION:
		return apply_register(c, cmd);
	case STORAGE_CMD_CLOSE_SESSION:
		return apply_close(c, cmd);
	case STORAGE_CMD_CONF:
		return apply_conf(c, cmd);
	}
	/* A malformed command is answered, not fatal: every replica answers it the same way. */
	return sto_reply_simple(&c->reply, STORAGE_CMD_NOOP, STORAGE_EINVAL, c->revision, 0);
}

static int check_cmds(const struct storage_cmd *cmds, size_t n, char *errmsg, size_t errlen)
{
	size_t i;

	if (cmds[0].index == 0) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "apply: command index 0");
	}
	for (i = 1; i < n; i++) {
		if (cmds[i].index != cmds[i - 1].index + 1) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "apply: command %llu follows %llu (not contiguous)",
				       (unsigned long long)cmds[i].index,
				       (unsigned long long)cmds[i - 1].index);
		}
		if (cmds[i].term < cmds[i - 1].term) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "apply: command %llu has a lower term than the previous one",
				       (unsigned long long)cmds[i].index);
		}
	}
	return 0;
}

void sto_results_free(struct storage_result *results, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		storage_result_free(&results[i]);
	}
}

/* The loop of storage_apply() over an open write txn; results are only complete on success. */
static int apply_cmds(struct apply_ctx *c, const struct storage_cmd *cmds, size_t n,
		      struct storage_result *results)
{
	uint64_t applied;
	uint64_t applied_term;
	uint64_t start_revision;
	bool cached;
	size_t i;
	int rv;

	rv = sto_meta_get_pair(c->h, c->txn, STO_META_APPLIED, 0, 0, &applied, &applied_term,
			       c->errmsg, c->errlen);
	if (rv == 0) {
		rv = sto_meta_get_u64(c->h, c->txn, STO_META_REVISION, &c->revision, c->errmsg,
				      c->errlen);
	}
	if (rv != 0) {
		return rv;
	}
	start_revision = c->revision;
	if (cmds[0].index > applied + 1) {
		return sto_err(c->errmsg, c->errlen, STORAGE_EINVAL,
			       "apply: command %llu leaves a gap after applied index %llu",
			       (unsigned long long)cmds[0].index, (unsigned long long)applied);
	}
	for (i = 0; i < n; i++) {
		const struct storage_cmd *cmd = &cmds[i];

		if (cmd->index <= applied) {
			results[i].skipped = true; /* already applied before a crash or restart */
			continue;
		}
		if (cmd->term < applied_term) {
			return sto_err(c->errmsg, c->errlen, STORAGE_EINVAL,
				       "apply: command %llu has term %llu below applied term %llu",
				       (unsigned long long)cmd->index,
				       (unsigned long long)cmd->term,
				       (unsigned long long)applied_term);
		}
		rv = sessions_expire(c, cmd->index);
		if (rv != 0) {
			return rv;
		}
		c->reply.len = 0;
		cached = false;
		rv = apply_one(c, cmd, &cached);
		if (rv == 0) {
			rv = sto_reply_decode(c->reply.p, c->reply.len, &results[i], c->errmsg,
					      c->errlen);
		}
		if (rv == STORAGE_ENOMEM) {
			return sto_err(c->errmsg, c->errlen, rv, "out of memory");
		}
		if (rv != 0) {
			return rv;
		}
		results[i].cached = cached;
		applied = cmd->index;
		applied_term = cmd->term;
	}
	rv = sto_meta_put_pair(c->h, c->txn, STO_META_APPLIED, applied, applied_term, c->errmsg,
			       c->errlen);
	if (rv == 0 && c->revision != start_revision) {
		rv = sto_meta_put_u64(c->h, c->txn, STO_META_REVISION, c->revision, c->errmsg,
				      c->errlen);
	}
	return rv;
}

int sto_apply_check(storage_t *h, const struct storage_cmd *cmds, size_t n, char *errmsg,
		    size_t errlen)
{
	uint64_t applied;
	uint64_t applied_term;
	MDB_txn *txn;
	int rv = check_cmds(cmds, n, errmsg, errlen);

	if (rv == 0) {
		rv = sto_read_begin(h, &txn, errmsg, errlen);
	}
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	mdb_txn_abort(txn);
	if (rv == 0 && cmds[0].index > applied + 1) {
		rv = sto_err(errmsg, errlen, STORAGE_EINVAL,
			     "apply: command %llu leaves a gap after applied index %llu",
			     (unsigned long long)cmds[0].index, (unsigned long long)applied);
	}
	if (rv == 0 && cmds[n - 1].index > applied && cmds[n - 1].term < applied_term) {
		rv = sto_err(errmsg, errlen, STORAGE_EINVAL,
			     "apply: command %llu has term %llu below applied term %llu",
			     (unsigned long long)cmds[n - 1].index,
			     (unsigned long long)cmds[n - 1].term,
			     (unsigned long long)applied_term);
	}
	return rv;
}

int sto_apply_txn(storage_t *h, MDB_txn *txn, const struct storage_cmd *cmds, size_t n,
		  struct storage_result *results, char *errmsg, size_t errlen)
{
	struct apply_ctx c = {0};
	int rv;

	if (n > 0 && (cmds == NULL || results == NULL)) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "apply: NULL commands or results");
	}
	if (n == 0) {
		return 0;
	}
	memset(results, 0, n * sizeof(*results));
	rv = check_cmds(cmds, n, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	c.h = h;
	c.txn = txn;
	c.errmsg = errmsg;
	c.errlen = errlen;
	rv = apply_cmds(&c, cmds, n, results);
	if (rv != 0) {
		sto_results_free(results, n);
	}
	sto_buf_free(&c.reply);
	sto_buf_free(&c.scratch);
	return rv;
}

int storage_apply(storage_t *h, const struct storage_cmd *cmds, size_t n,
		  struct storage_result *results, char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	int rv;

	if (h == NULL || (n > 0 && (cmds == NULL || results == NULL))) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_apply: NULL argument");
	}
	if (n == 0) {
		return 0;
	}
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_apply_txn(h, txn, cmds, n, results, errmsg, errlen);
	if (rv != 0) {
		goto err_after_begin;
	}
	/* The log can redo an apply, so it need not be durable on return: one flush, not two. */
	rv = sto_commit(h, txn, STO_APPLY_DURABLE, errmsg, errlen);
	if (rv != 0) {
		sto_results_free(results, n);
	}
	return rv;

err_after_begin:
	mdb_txn_abort(txn);
	return rv;
}

/* ---- applying in a long transaction ---- */

struct storage_applier {
	storage_t *h;
	MDB_txn *txn;
};

int storage_applier_begin(storage_t *h, struct storage_applier **out, char *errmsg, size_t errlen)
{
	struct storage_applier *a;
	int rv;

	if (out != NULL) {
		*out = NULL;
	}
	if (h == NULL || out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_applier_begin: NULL argument");
	}
	a = calloc(1, sizeof(*a));
	if (a == NULL) {
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	a->h = h;
	rv = sto_write_begin(h, &a->txn, errmsg, errlen);
	if (rv != 0) {
		free(a);
		return rv;
	}
	*out = a;
	return 0;
}

int storage_applier_apply(struct storage_applier *a, const struct storage_cmd *cmds, size_t n,
			  struct storage_result *results, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;

	if (a == NULL || a->txn == NULL || (n > 0 && (cmds == NULL || results == NULL))) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "storage_applier_apply: bad argument, or an apply failed since begin");
	}
	if (n == 0) {
		return 0;
	}
	sto_wal_bounds(a->h, &b);
	if (cmds[n - 1].index > b.last) {
		mdb_txn_abort(a->txn);
		a->txn = NULL;
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "apply: command %llu is not in the log (last index %llu)",
			       (unsigned long long)cmds[n - 1].index, (unsigned long long)b.last);
	}
	int rv = sto_apply_txn(a->h, a->txn, cmds, n, results, errmsg, errlen);
	if (rv != 0) {
		/* LMDB's transaction is unusable after a failed write (a full map...), and a
		 * batch refused halfway may have written part of itself: nothing since
		 * storage_applier_begin() will be committed. */
		mdb_txn_abort(a->txn);
		a->txn = NULL;
	}
	return rv;
}

int storage_applier_commit(struct storage_applier *a, char *errmsg, size_t errlen)
{
	int rv;

	if (a == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_applier_commit: NULL");
	}
	if (a->txn == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_EINVAL,
			     "storage_applier_commit: an apply failed, nothing can be committed");
	} else {
		/* The log can redo applies: one flush (MDB_NOMETASYNC), as storage_apply(). */
		rv = sto_commit(a->h, a->txn, STO_APPLY_DURABLE, errmsg, errlen);
	}
	free(a);
	return rv;
}

void storage_applier_abort(struct storage_applier *a)
{
	if (a == NULL) {
		return;
	}
	if (a->txn != NULL) {
		mdb_txn_abort(a->txn);
	}
	free(a);
}

int storage_conf_get(storage_t *h, uint64_t *index, void **conf, size_t *conf_len, char *errmsg,
		     size_t errlen)
{
	MDB_txn *txn;
	MDB_val k;
	MDB_val v;
	int rv = 0;
	int rc;

	if (h == NULL || index == NULL || conf == NULL || conf_len == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_conf_get: NULL argument");
	}
	*index = 0;
	*conf = NULL;
	*conf_len = 0;
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	k.mv_data = (void *)STO_META_CONF;
	k.mv_size = strlen(STO_META_CONF);
	rc = mdb_get(txn, h->dbi_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		goto out;
	}
	if (rc != 0) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot read membership");
		goto out;
	}
	if (v.mv_size < STO_CONF_HDR_SIZE ||
	    v.mv_size - STO_CONF_HDR_SIZE > STORAGE_MAX_CONF_SIZE) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "membership record is %zu bytes",
			     v.mv_size);
		goto out;
	}
	*conf_len = v.mv_size - STO_CONF_HDR_SIZE;
	*conf = malloc(*conf_len > 0 ? *conf_len : 1);
	if (*conf == NULL) {
		*conf_len = 0;
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto out;
	}
	memcpy(*conf, (const uint8_t *)v.mv_data + STO_CONF_HDR_SIZE, *conf_len);
	*index = sto_get_u64(v.mv_data);
out:
	mdb_txn_abort(txn);
	return rv;
}
