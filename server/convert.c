/* convert.c — between the wire format (cairn.proto) and storage's C structures. */
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

void *arena_alloc(struct arena *a, size_t size)
{
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 16;
		void **v = realloc(a->v, cap * sizeof(*v));
		if (v == NULL)
			return NULL;
		a->v = v;
		a->cap = cap;
	}
	void *p = calloc(1, size ? size : 1);
	if (p != NULL)
		a->v[a->n++] = p;
	return p;
}

void arena_free(struct arena *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	memset(a, 0, sizeof(*a));
}

static int convert_op(const Cairn__RequestOp *in, struct storage_op *out)
{
	memset(out, 0, sizeof(*out));
	if (in == NULL)
		return STORAGE_EINVAL;
	switch (in->request_case) {
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE: {
		const Cairn__RangeRequest *r = in->request_range;
		if (r->revision != 0 || r->limit < 0)
			return STORAGE_EINVAL;
		out->type = STORAGE_OP_RANGE;
		out->key = r->key.data;
		out->key_len = r->key.len;
		out->range_end = r->range_end.data;
		out->range_end_len = r->range_end.len;
		out->limit = (uint64_t)r->limit;
		out->flags = (r->keys_only ? STORAGE_OP_KEYS_ONLY : 0) |
			     (r->count_only ? STORAGE_OP_COUNT_ONLY : 0);
		return 0;
	}
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT: {
		const Cairn__PutRequest *p = in->request_put;
		if (p->lease != 0)
			return STORAGE_EINVAL;
		out->type = STORAGE_OP_PUT;
		out->key = p->key.data;
		out->key_len = p->key.len;
		out->value = p->value.data;
		out->value_len = p->value.len;
		out->flags = p->prev_kv ? STORAGE_OP_PREV_KV : 0;
		return 0;
	}
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE: {
		const Cairn__DeleteRangeRequest *d = in->request_delete_range;
		out->type = STORAGE_OP_DELETE;
		out->key = d->key.data;
		out->key_len = d->key.len;
		out->range_end = d->range_end.data;
		out->range_end_len = d->range_end.len;
		out->flags = d->prev_kv ? STORAGE_OP_PREV_KV : 0;
		return 0;
	}
	default:
		return STORAGE_EINVAL;
	}
}

static int convert_compare(const Cairn__Compare *in, struct storage_compare *out)
{
	memset(out, 0, sizeof(*out));
	out->key = in->key.data;
	out->key_len = in->key.len;
	switch (in->result) {
	case CAIRN__COMPARE__RESULT__EQUAL:
		out->result = STORAGE_CMP_EQUAL;
		break;
	case CAIRN__COMPARE__RESULT__NOT_EQUAL:
		out->result = STORAGE_CMP_NOT_EQUAL;
		break;
	case CAIRN__COMPARE__RESULT__LESS:
		out->result = STORAGE_CMP_LESS;
		break;
	case CAIRN__COMPARE__RESULT__GREATER:
		out->result = STORAGE_CMP_GREATER;
		break;
	default:
		return STORAGE_EINVAL;
	}
	int64_t num = 0;
	switch (in->target) {
	case CAIRN__COMPARE__TARGET__VALUE:
		out->target = STORAGE_CMP_VALUE;
		if (in->target_union_case == CAIRN__COMPARE__TARGET_UNION_VALUE) {
			out->value = in->value.data;
			out->value_len = in->value.len;
		} else if (in->target_union_case != CAIRN__COMPARE__TARGET_UNION__NOT_SET) {
			return STORAGE_EINVAL;
		}
		return 0;
	case CAIRN__COMPARE__TARGET__VERSION:
		out->target = STORAGE_CMP_VERSION;
		if (in->target_union_case == CAIRN__COMPARE__TARGET_UNION_VERSION)
			num = in->version;
		else if (in->target_union_case != CAIRN__COMPARE__TARGET_UNION__NOT_SET)
			return STORAGE_EINVAL;
		break;
	case CAIRN__COMPARE__TARGET__CREATE:
		out->target = STORAGE_CMP_CREATE;
		if (in->target_union_case == CAIRN__COMPARE__TARGET_UNION_CREATE_REVISION)
			num = in->create_revision;
		else if (in->target_union_case != CAIRN__COMPARE__TARGET_UNION__NOT_SET)
			return STORAGE_EINVAL;
		break;
	case CAIRN__COMPARE__TARGET__MOD:
		out->target = STORAGE_CMP_MOD;
		if (in->target_union_case == CAIRN__COMPARE__TARGET_UNION_MOD_REVISION)
			num = in->mod_revision;
		else if (in->target_union_case != CAIRN__COMPARE__TARGET_UNION__NOT_SET)
			return STORAGE_EINVAL;
		break;
	default:
		return STORAGE_EINVAL;
	}
	if (num < 0)
		return STORAGE_EINVAL;
	out->number = (uint64_t)num;
	return 0;
}

void convert_txn_free(struct txn_build *b)
{
	free(b->compares);
	free(b->success);
	free(b->failure);
	memset(b, 0, sizeof(*b));
}

int convert_txn(const Cairn__TxnRequest *t, struct txn_build *out)
{
	memset(out, 0, sizeof(*out));
	if (t == NULL)
		return STORAGE_EINVAL;
	if (t->n_compare > STORAGE_MAX_TXN_COMPARES || t->n_success > STORAGE_MAX_TXN_OPS ||
	    t->n_failure > STORAGE_MAX_TXN_OPS)
		return STORAGE_ETOOMANYOPS;
	out->compares = calloc(t->n_compare + 1, sizeof(*out->compares));
	out->success = calloc(t->n_success + 1, sizeof(*out->success));
	out->failure = calloc(t->n_failure + 1, sizeof(*out->failure));
	if (!out->compares || !out->success || !out->failure) {
		convert_txn_free(out);
		return STORAGE_ENOMEM;
	}
	int rv = 0;
	for (size_t i = 0; i < t->n_compare && rv == 0; i++)
		rv = convert_compare(t->compare[i], &out->compares[i]);
	for (size_t i = 0; i < t->n_success && rv == 0; i++)
		rv = convert_op(t->success[i], &out->success[i]);
	for (size_t i = 0; i < t->n_failure && rv == 0; i++)
		rv = convert_op(t->failure[i], &out->failure[i]);
	if (rv != 0) {
		/* Leave an empty txn whose single op is invalid so apply reports the error. */
		convert_txn_free(out);
		return rv;
	}
	out->txn.compares = out->compares;
	out->txn.n_compares = t->n_compare;
	out->txn.success = out->success;
	out->txn.n_success = t->n_success;
	out->txn.failure = out->failure;
	out->txn.n_failure = t->n_failure;
	return 0;
}

int convert_request_txn(const Cairn__Request *req, Cairn__TxnRequest *txn, Cairn__RequestOp *op,
			Cairn__RequestOp **ops)
{
	Cairn__TxnRequest ti = CAIRN__TXN_REQUEST__INIT;
	Cairn__RequestOp oi = CAIRN__REQUEST_OP__INIT;
	*txn = ti;
	*op = oi;
	switch (req->op_case) {
	case CAIRN__REQUEST__OP_PUT:
		op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT;
		op->request_put = req->put;
		break;
	case CAIRN__REQUEST__OP_DELETE_RANGE:
		op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
		op->request_delete_range = req->delete_range;
		break;
	case CAIRN__REQUEST__OP_RANGE:
		op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE;
		op->request_range = req->range;
		break;
	case CAIRN__REQUEST__OP_TXN:
		*txn = *req->txn;
		return 0;
	default:
		return -1;
	}
	ops[0] = op;
	txn->success = ops;
	txn->n_success = 1;
	return 0;
}

Cairn__ErrorCode convert_storage_error(int err)
{
	switch (err) {
	case 0:
		return CAIRN__ERROR_CODE__OK;
	case STORAGE_EKEYSIZE:
		return CAIRN__ERROR_CODE__KEY_TOO_LARGE;
	case STORAGE_EVALSIZE:
		return CAIRN__ERROR_CODE__VALUE_TOO_LARGE;
	case STORAGE_ETOOMANYOPS:
		return CAIRN__ERROR_CODE__TOO_MANY_OPS;
	case STORAGE_ETOOLARGE:
	case STORAGE_EINVAL:
		return CAIRN__ERROR_CODE__INVALID_ARGUMENT;
	case STORAGE_ESESSION:
		return CAIRN__ERROR_CODE__SESSION_EXPIRED;
	case STORAGE_ESTALE:
		return CAIRN__ERROR_CODE__STALE_SEQUENCE;
	case STORAGE_ENOSPC:
		return CAIRN__ERROR_CODE__NO_SPACE;
	default:
		return CAIRN__ERROR_CODE__INTERNAL;
	}
}

static int convert_kv(const struct storage_kv *in, Cairn__KeyValue *out)
{
	Cairn__KeyValue init = CAIRN__KEY_VALUE__INIT;
	*out = init;
	out->key.data = (uint8_t *)in->key;
	out->key.len = in->key_len;
	out->value.data = (uint8_t *)in->value;
	out->value.len = in->value_len;
	out->create_revision = (int64_t)in->create_revision;
	out->mod_revision = (int64_t)in->mod_revision;
	out->version = (int64_t)in->version;
	out->lease = (int64_t)in->lease;
	return 0;
}

static Cairn__KeyValue **convert_kvs(const struct storage_kv *kvs, size_t n, struct arena *a)
{
	Cairn__KeyValue *v = arena_alloc(a, n * sizeof(*v));
	Cairn__KeyValue **p = arena_alloc(a, n * sizeof(*p));
	if (v == NULL || p == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		convert_kv(&kvs[i], &v[i]);
		p[i] = &v[i];
	}
	return p;
}

int convert_range_result(const struct storage_op_result *r, Cairn__RangeResponse *out,
			 struct arena *a)
{
	Cairn__RangeResponse init = CAIRN__RANGE_RESPONSE__INIT;
	*out = init;
	out->count = (int64_t)r->count;
	out->more = r->more;
	if (r->n_kvs > 0) {
		out->kvs = convert_kvs(r->kvs, r->n_kvs, a);
		if (out->kvs == NULL)
			return -1;
		out->n_kvs = r->n_kvs;
	}
	return 0;
}

static int convert_op_result(const struct storage_op_result *r, Cairn__ResponseOp *out,
			     struct arena *a)
{
	Cairn__ResponseOp init = CAIRN__RESPONSE_OP__INIT;
	*out = init;
	switch (r->type) {
	case STORAGE_OP_RANGE: {
		Cairn__RangeResponse *rr = arena_alloc(a, sizeof(*rr));
		if (rr == NULL || convert_range_result(r, rr, a) != 0)
			return -1;
		out->response_case = CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_RANGE;
		out->response_range = rr;
		return 0;
	}
	case STORAGE_OP_PUT: {
		Cairn__PutResponse *pr = arena_alloc(a, sizeof(*pr));
		if (pr == NULL)
			return -1;
		Cairn__PutResponse pi = CAIRN__PUT_RESPONSE__INIT;
		*pr = pi;
		if (r->n_kvs > 0) {
			Cairn__KeyValue **kv = convert_kvs(r->kvs, 1, a);
			if (kv == NULL)
				return -1;
			pr->prev_kv = kv[0];
		}
		out->response_case = CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
		out->response_put = pr;
		return 0;
	}
	case STORAGE_OP_DELETE: {
		Cairn__DeleteRangeResponse *dr = arena_alloc(a, sizeof(*dr));
		if (dr == NULL)
			return -1;
		Cairn__DeleteRangeResponse di = CAIRN__DELETE_RANGE_RESPONSE__INIT;
		*dr = di;
		dr->deleted = (int64_t)r->count;
		if (r->n_kvs > 0) {
			dr->prev_kvs = convert_kvs(r->kvs, r->n_kvs, a);
			if (dr->prev_kvs == NULL)
				return -1;
			dr->n_prev_kvs = r->n_kvs;
		}
		out->response_case = CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE;
		out->response_delete_range = dr;
		return 0;
	}
	default:
		return -1;
	}
}

/* Shapes a txn result as the response the request asked for: a put or delete request gets
 * its single op's response, a txn gets the whole TxnResponse. */
int convert_result(const struct storage_result *r, int op_case, Cairn__Response *resp,
		   struct arena *a)
{
	if (op_case == CAIRN__REQUEST__OP_TXN) {
		Cairn__TxnResponse *t = arena_alloc(a, sizeof(*t));
		if (t == NULL)
			return -1;
		Cairn__TxnResponse ti = CAIRN__TXN_RESPONSE__INIT;
		*t = ti;
		t->succeeded = r->succeeded;
		if (r->n_ops > 0) {
			Cairn__ResponseOp *ops = arena_alloc(a, r->n_ops * sizeof(*ops));
			Cairn__ResponseOp **p = arena_alloc(a, r->n_ops * sizeof(*p));
			if (ops == NULL || p == NULL)
				return -1;
			for (size_t i = 0; i < r->n_ops; i++) {
				if (convert_op_result(&r->ops[i], &ops[i], a) != 0)
					return -1;
				p[i] = &ops[i];
			}
			t->responses = p;
			t->n_responses = r->n_ops;
		}
		resp->op_case = CAIRN__RESPONSE__OP_TXN;
		resp->txn = t;
		return 0;
	}
	if (r->n_ops != 1)
		return -1;
	Cairn__ResponseOp op;
	if (convert_op_result(&r->ops[0], &op, a) != 0)
		return -1;
	switch (op.response_case) {
	case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
		resp->op_case = CAIRN__RESPONSE__OP_RANGE;
		resp->range = op.response_range;
		return 0;
	case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
		resp->op_case = CAIRN__RESPONSE__OP_PUT;
		resp->put = op.response_put;
		return 0;
	case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
		resp->op_case = CAIRN__RESPONSE__OP_DELETE_RANGE;
		resp->delete_range = op.response_delete_range;
		return 0;
	default:
		return -1;
	}
}
