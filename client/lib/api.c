/* libcairn public calls: request encoding, asynchronous submission and synchronous wrappers. */
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"
#include "client/lib/txn_int.h"

/* ---- completions (I/O thread) ------------------------------------------------------------ */

static const char *result_msg(int rv, const char *msg)
{
	if (rv == CAIRN_ENOMEM) {
		return "out of memory building the result";
	}
	return msg;
}

/* A write the server answered with success was applied: if its result cannot be built (no
 * memory, a malformed response), the caller must not read the error as "not applied". */
static int applied_result(int rv, const char **msg)
{
	if (rv == 0) {
		return 0;
	}
	*msg = "the write was applied, but its result could not be decoded";
	return CAIRN_EUNKNOWN;
}

static void done_range(struct op *op, int rv, const char *msg, const Cairn__Response *r,
		       const char *addr)
{
	struct cairn_range_result *res = NULL;

	(void)addr;
	if (rv == 0) {
		rv = cairni_result_range(r, &res);
		msg = result_msg(rv, msg);
	}
	op->cb.range(rv, msg, res, op->user_arg);
}

static void done_put(struct op *op, int rv, const char *msg, const Cairn__Response *r,
		     const char *addr)
{
	struct cairn_put_result *res = NULL;

	(void)addr;
	if (rv == 0) {
		rv = applied_result(cairni_result_put(r, &res), &msg);
	}
	op->cb.put(rv, msg, res, op->user_arg);
}

static void done_delete(struct op *op, int rv, const char *msg, const Cairn__Response *r,
			const char *addr)
{
	struct cairn_delete_result *res = NULL;

	(void)addr;
	if (rv == 0) {
		rv = applied_result(cairni_result_delete(r, &res), &msg);
	}
	op->cb.del(rv, msg, res, op->user_arg);
}

static void done_txn(struct op *op, int rv, const char *msg, const Cairn__Response *r,
		     const char *addr)
{
	struct cairn_txn_result *res = NULL;

	(void)addr;
	if (rv == 0) {
		rv = applied_result(cairni_result_txn(r, &res), &msg);
	}
	op->cb.txn(rv, msg, res, op->user_arg);
}

static void done_status(struct op *op, int rv, const char *msg, const Cairn__Response *r,
			const char *addr)
{
	struct cairn_status_result *res = NULL;

	if (rv == 0) {
		rv = cairni_result_status(r, addr, &res);
		msg = result_msg(rv, msg);
	}
	op->cb.status(rv, msg, res, op->user_arg);
}

/* ---- submission -------------------------------------------------------------------------- */

static int submit(cairn_client *c, enum op_kind kind, const ProtobufCMessage *msg,
		  uint32_t timeout_ms, struct op **opp, char *errmsg, size_t errlen)
{
	int rv = cairni_op_new(c, kind, msg, timeout_ms, opp);

	if (rv == CAIRN_ETOOLARGE) {
		cairni_errmsg_set(errmsg, errlen,
				  "request of %zu bytes exceeds the maximum frame size %u",
				  protobuf_c_message_get_packed_size(msg), c->max_frame);
	} else if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "%s", cairn_strerror(rv));
	}
	return rv;
}

static int enqueue(cairn_client *c, struct op *op, char *errmsg, size_t errlen)
{
	int rv = cairni_op_submit(c, op);

	if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "%s", cairn_strerror(rv));
	}
	return rv;
}

static int range_submit(cairn_client *c, const void *key, size_t key_len, bool explicit_end,
			const void *end, size_t end_len, const struct cairn_range_opts *opts,
			cairn_range_cb cb, void *arg, char *errmsg, size_t errlen)
{
	static const struct cairn_range_opts defaults;
	Cairn__RangeRequest r = CAIRN__RANGE_REQUEST__INIT;
	struct op *op;
	bool prefix;
	int rv;

	if (opts == NULL) {
		opts = &defaults;
	}
	if (c == NULL || cb == NULL || (key == NULL && key_len > 0) || opts->limit < 0) {
		cairni_errmsg_set(errmsg, errlen,
				  "invalid argument (NULL client, callback or key, or "
				  "negative limit)");
		return CAIRN_EINVAL;
	}
	if (!explicit_end) {
		end = opts->range_end;
		end_len = opts->range_end_len;
	}
	prefix = opts->prefix && !explicit_end;
	if (key_len == 0 && !prefix && end_len == 0) {
		cairni_errmsg_set(errmsg, errlen, "empty key");
		return CAIRN_EKEYSIZE;
	}
	r.key.data = (uint8_t *)(uintptr_t)key;
	r.key.len = key_len;
	r.limit = opts->limit;
	r.keys_only = opts->keys_only;
	r.count_only = opts->count_only;
	r.serializable = opts->serializable;
	rv = cairni_range_end_of(key, key_len, prefix, end, end_len, &r.range_end);
	if (key_len == 0) {
		/* An empty key starts a range at the smallest key, as in etcd: "\0". */
		r.key.data = (uint8_t *)(uintptr_t) "";
		r.key.len = 1;
	}
	if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "%s",
				  rv == CAIRN_EINVAL ? "NULL range_end" : "out of memory");
		return rv;
	}
	rv = submit(c, OPK_RANGE, &r.base, opts->timeout_ms, &op, errmsg, errlen);
	free(r.range_end.data);
	if (rv != 0) {
		return rv;
	}
	op->done = done_range;
	op->cb.range = cb;
	op->user_arg = arg;
	return enqueue(c, op, errmsg, errlen);
}

static int put_submit(cairn_client *c, const void *key, size_t key_len, const void *value,
		      size_t value_len, const struct cairn_put_opts *opts, cairn_put_cb cb,
		      void *arg, char *errmsg, size_t errlen)
{
	static const struct cairn_put_opts defaults;
	Cairn__PutRequest p = CAIRN__PUT_REQUEST__INIT;
	struct op *op;
	int rv;

	if (opts == NULL) {
		opts = &defaults;
	}
	if (c == NULL || cb == NULL || (key == NULL && key_len > 0) ||
	    (value == NULL && value_len > 0)) {
		cairni_errmsg_set(errmsg, errlen,
				  "invalid argument (NULL client, callback, key or value)");
		return CAIRN_EINVAL;
	}
	if (key_len == 0) {
		cairni_errmsg_set(errmsg, errlen, "empty key");
		return CAIRN_EKEYSIZE;
	}
	p.key.data = (uint8_t *)(uintptr_t)key;
	p.key.len = key_len;
	p.value.data = (uint8_t *)(uintptr_t)value;
	p.value.len = value_len;
	p.prev_kv = opts->prev_kv;
	rv = submit(c, OPK_PUT, &p.base, opts->timeout_ms, &op, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	op->done = done_put;
	op->cb.put = cb;
	op->user_arg = arg;
	return enqueue(c, op, errmsg, errlen);
}

static int delete_submit(cairn_client *c, const void *key, size_t key_len,
			 const struct cairn_delete_opts *opts, cairn_delete_cb cb, void *arg,
			 char *errmsg, size_t errlen)
{
	static const struct cairn_delete_opts defaults;
	Cairn__DeleteRangeRequest d = CAIRN__DELETE_RANGE_REQUEST__INIT;
	struct op *op;
	int rv;

	if (opts == NULL) {
		opts = &defaults;
	}
	if (c == NULL || cb == NULL || (key == NULL && key_len > 0)) {
		cairni_errmsg_set(errmsg, errlen,
				  "invalid argument (NULL client, callback or key)");
		return CAIRN_EINVAL;
	}
	if (key_len == 0 && !opts->prefix && opts->range_end_len == 0) {
		cairni_errmsg_set(errmsg, errlen, "empty key");
		return CAIRN_EKEYSIZE;
	}
	d.key.data = (uint8_t *)(uintptr_t)key;
	d.key.len = key_len;
	d.prev_kv = opts->prev_kv;
	rv = cairni_range_end_of(key, key_len, opts->prefix, opts->range_end, opts->range_end_len,
				 &d.range_end);
	if (key_len == 0) {
		d.key.data = (uint8_t *)(uintptr_t) "";
		d.key.len = 1;
	}
	if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "%s",
				  rv == CAIRN_EINVAL ? "NULL range_end" : "out of memory");
		return rv;
	}
	rv = submit(c, OPK_DELETE, &d.base, opts->timeout_ms, &op, errmsg, errlen);
	free(d.range_end.data);
	if (rv != 0) {
		return rv;
	}
	op->done = done_delete;
	op->cb.del = cb;
	op->user_arg = arg;
	return enqueue(c, op, errmsg, errlen);
}

static int txn_submit(cairn_client *c, const cairn_txn *txn, uint32_t timeout_ms, cairn_txn_cb cb,
		      void *arg, char *errmsg, size_t errlen)
{
	struct op *op;
	int rv;

	if (c == NULL || txn == NULL || cb == NULL) {
		cairni_errmsg_set(errmsg, errlen,
				  "invalid argument (NULL client, txn or callback)");
		return CAIRN_EINVAL;
	}
	rv = submit(c, OPK_TXN, &txn->req.base, timeout_ms, &op, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	op->done = done_txn;
	op->cb.txn = cb;
	op->user_arg = arg;
	return enqueue(c, op, errmsg, errlen);
}

static int status_submit(cairn_client *c, const char *endpoint, uint32_t timeout_ms, bool kv_hash,
			 cairn_status_cb cb, void *arg, char *errmsg, size_t errlen)
{
	Cairn__StatusRequest s = CAIRN__STATUS_REQUEST__INIT;
	s.kv_hash = kv_hash;
	char *ep = NULL;
	struct op *op;
	int rv;

	if (c == NULL || cb == NULL) {
		cairni_errmsg_set(errmsg, errlen, "invalid argument (NULL client or callback)");
		return CAIRN_EINVAL;
	}
	if (endpoint != NULL) {
		rv = cairni_endpoint_check(endpoint, strlen(endpoint), &ep);
		if (rv != 0) {
			cairni_errmsg_set(errmsg, errlen,
					  "bad endpoint \"%s\" (expected host:port)", endpoint);
			return rv;
		}
	}
	rv = submit(c, OPK_STATUS, &s.base, timeout_ms, &op, errmsg, errlen);
	if (rv != 0) {
		free(ep);
		return rv;
	}
	op->endpoint = ep;
	op->done = done_status;
	op->cb.status = cb;
	op->user_arg = arg;
	return enqueue(c, op, errmsg, errlen);
}

/* ---- asynchronous API -------------------------------------------------------------------- */

int cairn_get_async(cairn_client *c, const void *key, size_t key_len,
		    const struct cairn_range_opts *opts, cairn_range_cb cb, void *arg)
{
	return range_submit(c, key, key_len, false, NULL, 0, opts, cb, arg, NULL, 0);
}

int cairn_range_async(cairn_client *c, const void *key, size_t key_len, const void *range_end,
		      size_t range_end_len, const struct cairn_range_opts *opts, cairn_range_cb cb,
		      void *arg)
{
	return range_submit(c, key, key_len, true, range_end, range_end_len, opts, cb, arg, NULL,
			    0);
}

int cairn_put_async(cairn_client *c, const void *key, size_t key_len, const void *value,
		    size_t value_len, const struct cairn_put_opts *opts, cairn_put_cb cb, void *arg)
{
	return put_submit(c, key, key_len, value, value_len, opts, cb, arg, NULL, 0);
}

int cairn_delete_async(cairn_client *c, const void *key, size_t key_len,
		       const struct cairn_delete_opts *opts, cairn_delete_cb cb, void *arg)
{
	return delete_submit(c, key, key_len, opts, cb, arg, NULL, 0);
}

int cairn_txn_commit_async(cairn_client *c, const cairn_txn *txn, uint32_t timeout_ms,
			   cairn_txn_cb cb, void *arg)
{
	return txn_submit(c, txn, timeout_ms, cb, arg, NULL, 0);
}

int cairn_status_async(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		       cairn_status_cb cb, void *arg)
{
	return status_submit(c, endpoint, timeout_ms, false, cb, arg, NULL, 0);
}

/* ---- synchronous API: an asynchronous call and a wait ------------------------------------ */

struct waiter {
	uv_mutex_t mu;
	uv_cond_t cv;
	bool done;
	int rv;
	void *res;
	char *errmsg;
	size_t errlen;
};

static int waiter_init(cairn_client *c, struct waiter *w, char *errmsg, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->errmsg = errmsg;
	w->errlen = errlen;
	if (c != NULL && cairni_client_on_io_thread(c)) {
		cairni_errmsg_set(errmsg, errlen,
				  "synchronous call from a callback (use the _async form)");
		return CAIRN_EDEADLK;
	}
	if (uv_mutex_init(&w->mu) != 0) {
		return CAIRN_ESYS;
	}
	if (uv_cond_init(&w->cv) != 0) {
		uv_mutex_destroy(&w->mu);
		return CAIRN_ESYS;
	}
	return 0;
}

static void waiter_complete(struct waiter *w, int rv, const char *msg, void *res)
{
	uv_mutex_lock(&w->mu);
	w->rv = rv;
	w->res = res;
	if (rv != 0) {
		cairni_errmsg_set(w->errmsg, w->errlen, "%s", msg);
	}
	w->done = true;
	uv_cond_signal(&w->cv);
	uv_mutex_unlock(&w->mu);
}

/* Wait for the completion if `rv` (the submission's) is 0; always release the waiter. */
static int waiter_finish(struct waiter *w, int rv)
{
	if (rv == 0) {
		uv_mutex_lock(&w->mu);
		while (!w->done) {
			uv_cond_wait(&w->cv, &w->mu);
		}
		uv_mutex_unlock(&w->mu);
		rv = w->rv;
	}
	uv_cond_destroy(&w->cv);
	uv_mutex_destroy(&w->mu);
	return rv;
}

static void sync_range_cb(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	waiter_complete(arg, rv, msg, res);
}
static void sync_put_cb(int rv, const char *msg, struct cairn_put_result *res, void *arg)
{
	waiter_complete(arg, rv, msg, res);
}
static void sync_delete_cb(int rv, const char *msg, struct cairn_delete_result *res, void *arg)
{
	waiter_complete(arg, rv, msg, res);
}
static void sync_txn_cb(int rv, const char *msg, struct cairn_txn_result *res, void *arg)
{
	waiter_complete(arg, rv, msg, res);
}
static void sync_status_cb(int rv, const char *msg, struct cairn_status_result *res, void *arg)
{
	waiter_complete(arg, rv, msg, res);
}

int cairn_get(cairn_client *c, const void *key, size_t key_len, const struct cairn_range_opts *opts,
	      struct cairn_range_result **res, char *errmsg, size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = range_submit(c, key, key_len, false, NULL, 0, opts, sync_range_cb, &w, errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

int cairn_range(cairn_client *c, const void *key, size_t key_len, const void *range_end,
		size_t range_end_len, const struct cairn_range_opts *opts,
		struct cairn_range_result **res, char *errmsg, size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = range_submit(c, key, key_len, true, range_end, range_end_len, opts, sync_range_cb, &w,
			  errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

int cairn_put(cairn_client *c, const void *key, size_t key_len, const void *value, size_t value_len,
	      const struct cairn_put_opts *opts, struct cairn_put_result **res, char *errmsg,
	      size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = put_submit(c, key, key_len, value, value_len, opts, sync_put_cb, &w, errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

int cairn_delete(cairn_client *c, const void *key, size_t key_len,
		 const struct cairn_delete_opts *opts, struct cairn_delete_result **res,
		 char *errmsg, size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = delete_submit(c, key, key_len, opts, sync_delete_cb, &w, errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

int cairn_txn_commit(cairn_client *c, const cairn_txn *txn, uint32_t timeout_ms,
		     struct cairn_txn_result **res, char *errmsg, size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = txn_submit(c, txn, timeout_ms, sync_txn_cb, &w, errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

static int status_sync(cairn_client *c, const char *endpoint, uint32_t timeout_ms, bool kv_hash,
		       struct cairn_status_result **res, char *errmsg, size_t errlen)
{
	struct waiter w;
	int rv;

	if (res != NULL) {
		*res = NULL;
	}
	rv = waiter_init(c, &w, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = status_submit(c, endpoint, timeout_ms, kv_hash, sync_status_cb, &w, errmsg, errlen);
	rv = waiter_finish(&w, rv);
	if (res != NULL) {
		*res = w.res;
	} else {
		cairni_result_free(w.res);
	}
	return rv;
}

int cairn_status(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		 struct cairn_status_result **res, char *errmsg, size_t errlen)
{
	return status_sync(c, endpoint, timeout_ms, false, res, errmsg, errlen);
}

int cairn_status_hash(cairn_client *c, const char *endpoint, uint32_t timeout_ms,
		      struct cairn_status_result **res, char *errmsg, size_t errlen)
{
	return status_sync(c, endpoint, timeout_ms, true, res, errmsg, errlen);
}
