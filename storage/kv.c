/* The key-value state machine: limits, compares, range/put/delete and the one txn executor. */
#include <string.h>

#include "storage/internal.h"

#define OP_FLAGS_ALL (STORAGE_OP_PREV_KV | STORAGE_OP_KEYS_ONLY | STORAGE_OP_COUNT_ONLY)

/* ---- validation ---- */

static int check_key(const void *key, size_t len, const char *what, size_t i, char *errmsg,
		     size_t errlen)
{
	if (len == 0 || len > STORAGE_MAX_KEY_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_EKEYSIZE,
			       "%s %zu: key is %zu bytes (must be 1..%u)", what, i, len,
			       STORAGE_MAX_KEY_SIZE);
	}
	if (key == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "%s %zu: NULL key", what, i);
	}
	return 0;
}

static int check_range_end(const void *end, size_t len, const char *what, size_t i, char *errmsg,
			   size_t errlen)
{
	if (len > STORAGE_MAX_KEY_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_EKEYSIZE,
			       "%s %zu: range_end is %zu bytes (max %u)", what, i, len,
			       STORAGE_MAX_KEY_SIZE);
	}
	if (len > 0 && end == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "%s %zu: NULL range_end", what, i);
	}
	return 0;
}

static int check_value(const void *value, size_t len, const char *what, size_t i, char *errmsg,
		       size_t errlen)
{
	if (len > STORAGE_MAX_VALUE_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_EVALSIZE,
			       "%s %zu: value is %zu bytes (max %u)", what, i, len,
			       STORAGE_MAX_VALUE_SIZE);
	}
	if (len > 0 && value == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "%s %zu: NULL value", what, i);
	}
	return 0;
}

static int check_ops(const struct storage_op *ops, size_t n, const char *what, size_t *bytes,
		     char *errmsg, size_t errlen)
{
	size_t i;
	int rv;

	if (n > 0 && ops == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "NULL %s ops", what);
	}
	for (i = 0; i < n; i++) {
		const struct storage_op *op = &ops[i];

		if (op->type != STORAGE_OP_RANGE && op->type != STORAGE_OP_PUT &&
		    op->type != STORAGE_OP_DELETE) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL, "%s op %zu: bad type %d",
				       what, i, (int)op->type);
		}
		if ((op->flags & ~OP_FLAGS_ALL) != 0) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL, "%s op %zu: bad flags %#x",
				       what, i, op->flags);
		}
		rv = check_key(op->key, op->key_len, what, i, errmsg, errlen);
		if (rv == 0) {
			rv = check_range_end(op->range_end, op->range_end_len, what, i, errmsg,
					     errlen);
		}
		if (rv == 0 && op->type == STORAGE_OP_PUT) {
			if (op->range_end_len != 0) {
				return sto_err(errmsg, errlen, STORAGE_EINVAL,
					       "%s op %zu: a put takes no range_end", what, i);
			}
			rv = check_value(op->value, op->value_len, what, i, errmsg, errlen);
		}
		if (rv != 0) {
			return rv;
		}
		*bytes += op->key_len + op->range_end_len +
			  (op->type == STORAGE_OP_PUT ? op->value_len : 0);
	}
	return 0;
}

int storage_txn_validate(const struct storage_txn *t, char *errmsg, size_t errlen)
{
	size_t bytes = 0;
	size_t i;
	int rv;

	if (t == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "NULL txn");
	}
	if (t->n_compares > STORAGE_MAX_TXN_COMPARES || t->n_success > STORAGE_MAX_TXN_OPS ||
	    t->n_failure > STORAGE_MAX_TXN_OPS) {
		return sto_err(errmsg, errlen, STORAGE_ETOOMANYOPS,
			       "txn has %zu compares, %zu success and %zu failure ops "
			       "(max %u compares, %u ops per branch)",
			       t->n_compares, t->n_success, t->n_failure, STORAGE_MAX_TXN_COMPARES,
			       STORAGE_MAX_TXN_OPS);
	}
	if (t->n_compares > 0 && t->compares == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "NULL compares");
	}
	for (i = 0; i < t->n_compares; i++) {
		const struct storage_compare *c = &t->compares[i];

		if (c->target < STORAGE_CMP_VALUE || c->target > STORAGE_CMP_LEASE ||
		    c->result < STORAGE_CMP_EQUAL || c->result > STORAGE_CMP_GREATER) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "compare %zu: bad target %d or result %d", i, (int)c->target,
				       (int)c->result);
		}
		rv = check_key(c->key, c->key_len, "compare", i, errmsg, errlen);
		if (rv == 0) {
			rv = check_range_end(c->range_end, c->range_end_len, "compare", i, errmsg,
					     errlen);
		}
		if (rv == 0 && c->target == STORAGE_CMP_VALUE) {
			rv = check_value(c->value, c->value_len, "compare", i, errmsg, errlen);
		}
		if (rv != 0) {
			return rv;
		}
		bytes += c->key_len + c->range_end_len +
			 (c->target == STORAGE_CMP_VALUE ? c->value_len : 0);
	}
	rv = check_ops(t->success, t->n_success, "success", &bytes, errmsg, errlen);
	if (rv == 0) {
		rv = check_ops(t->failure, t->n_failure, "failure", &bytes, errmsg, errlen);
	}
	if (rv != 0) {
		return rv;
	}
	if (bytes > STORAGE_MAX_TXN_BYTES) {
		return sto_err(errmsg, errlen, STORAGE_ETOOLARGE, "txn carries %zu bytes (max %u)",
			       bytes, STORAGE_MAX_TXN_BYTES);
	}
	return 0;
}

int storage_prefix_end(const void *prefix, size_t prefix_len, uint8_t *out, size_t *out_len)
{
	const uint8_t *p = prefix;
	size_t i;

	if (prefix == NULL || prefix_len == 0 || out == NULL || out_len == NULL) {
		return STORAGE_EINVAL;
	}
	for (i = prefix_len; i > 0; i--) {
		if (p[i - 1] != 0xff) {
			memcpy(out, p, i);
			out[i - 1]++;
			*out_len = i;
			return 0;
		}
	}
	out[0] = 0;
	*out_len = 1;
	return 0;
}

/* ---- key ranges ---- */

struct key_range {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *end;
	size_t end_len;
};

/* LMDB's default key order: bytes as unsigned, a prefix before its extensions. */
static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0) {
		return c;
	}
	return alen < blen ? -1 : alen > blen ? 1 : 0;
}

static bool in_range(const struct key_range *r, const MDB_val *k)
{
	if (r->end_len == 0) {
		return key_cmp(k->mv_data, k->mv_size, r->key, r->key_len) == 0;
	}
	if (r->end_len == 1 && r->end[0] == 0) {
		return true; /* "\0": every key >= key */
	}
	return key_cmp(k->mv_data, k->mv_size, r->end, r->end_len) < 0;
}

/* Position `cur` on the first key of `r`, or on the next one (next == true). *found is false
 * once the range is exhausted. */
static int range_step(struct sto_exec *x, MDB_cursor *cur, const struct key_range *r, bool next,
		      MDB_val *k, MDB_val *v, bool *found)
{
	int rc;

	if (next) {
		rc = mdb_cursor_get(cur, k, v, MDB_NEXT);
	} else {
		k->mv_data = (void *)r->key;
		k->mv_size = r->key_len;
		rc = mdb_cursor_get(cur, k, v, MDB_SET_RANGE);
	}
	if (rc == MDB_NOTFOUND) {
		*found = false;
		return 0;
	}
	if (rc != 0) {
		return sto_mdb_err(x->errmsg, x->errlen, rc, "cannot read kv");
	}
	*found = in_range(r, k);
	return 0;
}

static int decode_rec(struct sto_exec *x, const MDB_val *k, const MDB_val *v,
		      struct sto_kv_rec *rec)
{
	if (sto_kv_rec_decode(v, rec) != 0) {
		return sto_err(x->errmsg, x->errlen, STORAGE_ECORRUPT,
			       "kv record of a %zu-byte key is corrupt (%zu bytes)", k->mv_size,
			       v->mv_size);
	}
	return 0;
}

static int open_kv_cursor(struct sto_exec *x, MDB_cursor **cur)
{
	int rc = mdb_cursor_open(x->txn, x->h->dbi_kv, cur);

	if (rc != 0) {
		return sto_mdb_err(x->errmsg, x->errlen, rc, "cannot open kv cursor");
	}
	return 0;
}

/* ---- compares ---- */

static bool compare_one(const struct storage_compare *c, const struct sto_kv_rec *rec)
{
	uint64_t n = 0;
	int r;

	if (c->target == STORAGE_CMP_VALUE) {
		if (rec == NULL) {
			return false; /* like etcd: a value compare on a missing key fails */
		}
		r = key_cmp(rec->value, rec->value_len, c->value, c->value_len);
	} else {
		if (rec != NULL) {
			n = c->target == STORAGE_CMP_VERSION  ? rec->version
			    : c->target == STORAGE_CMP_CREATE ? rec->create_revision
			    : c->target == STORAGE_CMP_MOD    ? rec->mod_revision
							      : rec->lease;
		}
		r = n < c->number ? -1 : n > c->number ? 1 : 0;
	}
	switch (c->result) {
	case STORAGE_CMP_EQUAL:
		return r == 0;
	case STORAGE_CMP_NOT_EQUAL:
		return r != 0;
	case STORAGE_CMP_LESS:
		return r < 0;
	case STORAGE_CMP_GREATER:
		return r > 0;
	}
	return false;
}

static int eval_compare(struct sto_exec *x, const struct storage_compare *c, bool *pass)
{
	struct key_range r = {c->key, c->key_len, c->range_end, c->range_end_len};
	struct sto_kv_rec rec;
	MDB_cursor *cur;
	bool found;
	bool any = false;
	MDB_val k;
	MDB_val v;
	int rv;

	rv = open_kv_cursor(x, &cur);
	if (rv != 0) {
		return rv;
	}
	*pass = true;
	rv = range_step(x, cur, &r, false, &k, &v, &found);
	while (rv == 0 && found) {
		any = true;
		rv = decode_rec(x, &k, &v, &rec);
		if (rv != 0) {
			break;
		}
		if (!compare_one(c, &rec)) {
			*pass = false;
			break;
		}
		rv = range_step(x, cur, &r, true, &k, &v, &found);
	}
	if (rv == 0 && !any) {
		*pass = compare_one(c, NULL);
	}
	mdb_cursor_close(cur);
	return rv;
}

/* ---- operations ---- */

static int op_range(struct sto_exec *x, const struct storage_op *op)
{
	struct key_range r = {op->key, op->key_len, op->range_end, op->range_end_len};
	bool count_only = (op->flags & STORAGE_OP_COUNT_ONLY) != 0;
	bool keys_only = (op->flags & STORAGE_OP_KEYS_ONLY) != 0;
	struct sto_kv_rec rec;
	uint64_t count = 0;
	uint32_t n_kvs = 0;
	MDB_cursor *cur;
	size_t op_off;
	bool found;
	MDB_val k;
	MDB_val v;
	int rv;

	rv = sto_reply_op_begin(x->out, STORAGE_OP_RANGE, &op_off);
	if (rv == 0) {
		rv = open_kv_cursor(x, &cur);
	}
	if (rv != 0) {
		return rv;
	}
	rv = range_step(x, cur, &r, false, &k, &v, &found);
	while (rv == 0 && found) {
		count++;
		if (!count_only && (op->limit == 0 || n_kvs < op->limit)) {
			rv = decode_rec(x, &k, &v, &rec);
			if (rv == 0) {
				rv = sto_reply_kv(x->out, k.mv_data, k.mv_size, &rec, !keys_only);
			}
			if (rv != 0) {
				break;
			}
			n_kvs++;
		}
		rv = range_step(x, cur, &r, true, &k, &v, &found);
	}
	mdb_cursor_close(cur);
	if (rv == 0) {
		sto_reply_op_end(x->out, op_off, !count_only && count > n_kvs, count, n_kvs);
	}
	return rv;
}

static int op_put(struct sto_exec *x, const struct storage_op *op, uint64_t rev)
{
	struct sto_kv_rec old;
	struct sto_kv_rec rec;
	uint32_t n_kvs = 0;
	bool found = false;
	size_t op_off;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = sto_reply_op_begin(x->out, STORAGE_OP_PUT, &op_off);
	if (rv != 0) {
		return rv;
	}
	k.mv_data = (void *)op->key;
	k.mv_size = op->key_len;
	rc = mdb_get(x->txn, x->h->dbi_kv, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND) {
		return sto_mdb_err(x->errmsg, x->errlen, rc, "cannot read kv");
	}
	if (rc == 0) {
		found = true;
		rv = decode_rec(x, &k, &v, &old);
		if (rv != 0) {
			return rv;
		}
		/* Copied into the reply now: the put below may move the old record. */
		if ((op->flags & STORAGE_OP_PREV_KV) != 0) {
			rv = sto_reply_kv(x->out, op->key, op->key_len, &old, true);
			if (rv != 0) {
				return rv;
			}
			n_kvs = 1;
		}
	}
	rec.create_revision = found ? old.create_revision : rev;
	rec.mod_revision = rev;
	rec.version = found ? old.version + 1 : 1;
	rec.lease = op->lease;
	v.mv_size = STO_KV_HDR_SIZE + op->value_len;
	v.mv_data = NULL;
	rc = mdb_put(x->txn, x->h->dbi_kv, &k, &v, MDB_RESERVE);
	if (rc != 0) {
		return sto_mdb_err(x->errmsg, x->errlen, rc, "cannot write kv");
	}
	sto_kv_rec_encode_hdr(v.mv_data, &rec);
	if (op->value_len > 0) {
		memcpy((uint8_t *)v.mv_data + STO_KV_HDR_SIZE, op->value, op->value_len);
	}
	sto_reply_op_end(x->out, op_off, false, 0, n_kvs);
	return 0;
}

static int op_delete(struct sto_exec *x, const struct storage_op *op, bool *changed)
{
	struct key_range r = {op->key, op->key_len, op->range_end, op->range_end_len};
	bool prev = (op->flags & STORAGE_OP_PREV_KV) != 0;
	struct sto_kv_rec rec;
	uint64_t count = 0;
	MDB_cursor *cur;
	size_t op_off;
	bool found;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	rv = sto_reply_op_begin(x->out, STORAGE_OP_DELETE, &op_off);
	if (rv == 0) {
		rv = open_kv_cursor(x, &cur);
	}
	if (rv != 0) {
		return rv;
	}
	rv = range_step(x, cur, &r, false, &k, &v, &found);
	while (rv == 0 && found) {
		rv = decode_rec(x, &k, &v, &rec);
		if (rv == 0 && prev) {
			rv = sto_reply_kv(x->out, k.mv_data, k.mv_size, &rec, true);
		}
		if (rv != 0) {
			break;
		}
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0) {
			rv = sto_mdb_err(x->errmsg, x->errlen, rc, "cannot delete kv");
			break;
		}
		count++;
		if (r.end_len == 0) {
			break; /* single key */
		}
		/* After a delete the cursor already sits on the next record; MDB_NEXT returns it.
		 */
		rv = range_step(x, cur, &r, true, &k, &v, &found);
	}
	mdb_cursor_close(cur);
	if (rv == 0) {
		sto_reply_op_end(x->out, op_off, false, count, prev ? (uint32_t)count : 0);
		*changed = *changed || count > 0;
	}
	return rv;
}

int sto_exec_txn(struct sto_exec *x, const struct storage_txn *t)
{
	const struct storage_op *ops;
	uint64_t next_rev = x->revision + 1;
	bool changed = false;
	bool ok = true;
	size_t rev_off;
	size_t n_ops;
	size_t i;
	int status;
	int rv;

	status = storage_txn_validate(t, NULL, 0);
	if (status != 0) {
		return sto_reply_simple(x->out, STORAGE_CMD_TXN, status, x->revision, 0);
	}
	for (i = 0; i < t->n_compares && ok; i++) {
		rv = eval_compare(x, &t->compares[i], &ok);
		if (rv != 0) {
			return rv;
		}
	}
	ops = ok ? t->success : t->failure;
	n_ops = ok ? t->n_success : t->n_failure;
	rv = sto_reply_header(x->out, STORAGE_CMD_TXN, 0, x->revision, 0, ok, n_ops, &rev_off);
	for (i = 0; i < n_ops && rv == 0; i++) {
		switch (ops[i].type) {
		case STORAGE_OP_RANGE:
			rv = op_range(x, &ops[i]);
			break;
		case STORAGE_OP_PUT:
			if (!x->writable) {
				return STORAGE_EINVAL;
			}
			rv = op_put(x, &ops[i], next_rev);
			changed = true;
			break;
		case STORAGE_OP_DELETE:
			if (!x->writable) {
				return STORAGE_EINVAL;
			}
			rv = op_delete(x, &ops[i], &changed);
			break;
		}
	}
	if (rv != 0) {
		return rv;
	}
	/* One revision per txn, and none for a txn that changed nothing (as etcd). */
	if (changed) {
		x->revision = next_rev;
	}
	sto_reply_patch_revision(x->out, rev_off, x->revision);
	return 0;
}

/* ---- reads ---- */

int storage_read(storage_t *h, const struct storage_txn *t, struct storage_result *res,
		 char *errmsg, size_t errlen)
{
	struct sto_buf out = {0};
	struct sto_exec x;
	MDB_txn *txn;
	size_t i;
	int rv;

	if (res != NULL) {
		memset(res, 0, sizeof(*res));
	}
	if (h == NULL || t == NULL || res == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_read: NULL argument");
	}
	rv = storage_txn_validate(t, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	for (i = 0; i < t->n_success + t->n_failure; i++) {
		const struct storage_op *op =
		    i < t->n_success ? &t->success[i] : &t->failure[i - t->n_success];

		if (op->type != STORAGE_OP_RANGE) {
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "storage_read: only range ops may be read locally");
		}
	}
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	x.h = h;
	x.txn = txn;
	x.writable = false;
	x.out = &out;
	x.errmsg = errmsg;
	x.errlen = errlen;
	rv = sto_meta_get_u64(h, txn, STO_META_REVISION, &x.revision, errmsg, errlen);
	if (rv == 0) {
		rv = sto_exec_txn(&x, t);
		if (rv == STORAGE_ENOMEM) {
			sto_err(errmsg, errlen, rv, "out of memory");
		}
	}
	mdb_txn_abort(txn);
	if (rv == 0) {
		rv = sto_reply_decode(out.p, out.len, res, errmsg, errlen);
	}
	sto_buf_free(&out);
	return rv;
}

int storage_range(storage_t *h, const struct storage_op *range, struct storage_result *res,
		  char *errmsg, size_t errlen)
{
	struct storage_txn t = {0};

	if (range == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_range: NULL op");
	}
	t.success = range;
	t.n_success = 1;
	return storage_read(h, &t, res, errmsg, errlen);
}

int storage_get(storage_t *h, const void *key, size_t key_len, bool *found, struct storage_kv *kv,
		struct storage_result *res, char *errmsg, size_t errlen)
{
	struct storage_op op = {0};
	int rv;

	if (found == NULL || kv == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_get: NULL argument");
	}
	*found = false;
	memset(kv, 0, sizeof(*kv));
	op.type = STORAGE_OP_RANGE;
	op.key = key;
	op.key_len = key_len;
	rv = storage_range(h, &op, res, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (res->n_ops == 1 && res->ops[0].n_kvs == 1) {
		*found = true;
		*kv = res->ops[0].kvs[0];
	}
	return 0;
}
