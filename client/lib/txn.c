/* libcairn transaction builder and etcd range helpers. */
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"
#include "client/lib/txn_int.h"

void cairn_prefix_end(const void *prefix, size_t prefix_len, void *out, size_t *out_len)
{
	const unsigned char *p = prefix;
	unsigned char *o = out;
	size_t n = prefix_len;

	/* Drop trailing 0xff bytes: no key with that prefix sorts past their increment. */
	while (n > 0 && p[n - 1] == 0xff) {
		n--;
	}
	if (n == 0) {
		o[0] = 0;
		*out_len = 1;
		return;
	}
	memmove(o, p, n);
	o[n - 1]++;
	*out_len = n;
}

cairn_txn *cairn_txn_new(void)
{
	cairn_txn *t = calloc(1, sizeof(*t));

	if (t == NULL) {
		return NULL;
	}
	cairn__txn_request__init(&t->req);
	return t;
}

static void free_bin(ProtobufCBinaryData *b)
{
	free(b->data);
	b->data = NULL;
	b->len = 0;
}

static void free_request_op(Cairn__RequestOp *op)
{
	switch (op->request_case) {
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE:
		free_bin(&op->request_range->key);
		free_bin(&op->request_range->range_end);
		free(op->request_range);
		break;
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT:
		free_bin(&op->request_put->key);
		free_bin(&op->request_put->value);
		free(op->request_put);
		break;
	case CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE:
		free_bin(&op->request_delete_range->key);
		free_bin(&op->request_delete_range->range_end);
		free(op->request_delete_range);
		break;
	default:
		break;
	}
	free(op);
}

void cairn_txn_free(cairn_txn *t)
{
	size_t i;

	if (t == NULL) {
		return;
	}
	for (i = 0; i < t->req.n_compare; i++) {
		Cairn__Compare *cmp = t->req.compare[i];

		free_bin(&cmp->key);
		if (cmp->target_union_case == CAIRN__COMPARE__TARGET_UNION_VALUE) {
			free_bin(&cmp->value);
		}
		free(cmp);
	}
	for (i = 0; i < t->req.n_success; i++) {
		free_request_op(t->req.success[i]);
	}
	for (i = 0; i < t->req.n_failure; i++) {
		free_request_op(t->req.failure[i]);
	}
	free(t->req.compare);
	free(t->req.success);
	free(t->req.failure);
	free(t);
}

void cairn_txn_counts(const cairn_txn *t, size_t *n_compares, size_t *n_success, size_t *n_failure)
{
	if (n_compares != NULL) {
		*n_compares = t->req.n_compare;
	}
	if (n_success != NULL) {
		*n_success = t->req.n_success;
	}
	if (n_failure != NULL) {
		*n_failure = t->req.n_failure;
	}
}

/* Copy `len` bytes of `p` into `b` (one extra byte so that len 0 still allocates). */
static int copy_bin(ProtobufCBinaryData *b, const void *p, size_t len)
{
	b->data = malloc(len + 1);
	if (b->data == NULL) {
		return CAIRN_ENOMEM;
	}
	if (len > 0) {
		memcpy(b->data, p, len);
	}
	b->len = len;
	return 0;
}

/* Append `item` to a protobuf repeated field. */
static int push_ptr(void ***arr, size_t *n, void *item)
{
	void **a = realloc(*arr, (*n + 1) * sizeof(**arr));

	if (a == NULL) {
		return CAIRN_ENOMEM;
	}
	a[*n] = item;
	*arr = a;
	(*n)++;
	return 0;
}

static bool cmp_op_valid(enum cairn_cmp_op op)
{
	return op == CAIRN_CMP_EQUAL || op == CAIRN_CMP_GREATER || op == CAIRN_CMP_LESS ||
	       op == CAIRN_CMP_NOT_EQUAL;
}

static int add_compare(cairn_txn *t, Cairn__Compare *cmp)
{
	if (push_ptr((void ***)&t->req.compare, &t->req.n_compare, cmp) != 0) {
		free_bin(&cmp->key);
		if (cmp->target_union_case == CAIRN__COMPARE__TARGET_UNION_VALUE) {
			free_bin(&cmp->value);
		}
		free(cmp);
		return CAIRN_ENOMEM;
	}
	return 0;
}

int cairn_txn_compare_int(cairn_txn *t, enum cairn_cmp_target target, enum cairn_cmp_op op,
			  const void *key, size_t key_len, int64_t number)
{
	Cairn__Compare *cmp;

	if (t == NULL || key == NULL || key_len == 0 || !cmp_op_valid(op)) {
		return CAIRN_EINVAL;
	}
	cmp = malloc(sizeof(*cmp));
	if (cmp == NULL) {
		return CAIRN_ENOMEM;
	}
	cairn__compare__init(cmp);
	cmp->result = (Cairn__Compare__Result)op;
	switch (target) {
	case CAIRN_CMP_VERSION:
		cmp->target = CAIRN__COMPARE__TARGET__VERSION;
		cmp->target_union_case = CAIRN__COMPARE__TARGET_UNION_VERSION;
		cmp->version = number;
		break;
	case CAIRN_CMP_CREATE:
		cmp->target = CAIRN__COMPARE__TARGET__CREATE;
		cmp->target_union_case = CAIRN__COMPARE__TARGET_UNION_CREATE_REVISION;
		cmp->create_revision = number;
		break;
	case CAIRN_CMP_MOD:
		cmp->target = CAIRN__COMPARE__TARGET__MOD;
		cmp->target_union_case = CAIRN__COMPARE__TARGET_UNION_MOD_REVISION;
		cmp->mod_revision = number;
		break;
	default:
		free(cmp);
		return CAIRN_EINVAL;
	}
	if (copy_bin(&cmp->key, key, key_len) != 0) {
		free(cmp);
		return CAIRN_ENOMEM;
	}
	return add_compare(t, cmp);
}

int cairn_txn_compare_value(cairn_txn *t, enum cairn_cmp_op op, const void *key, size_t key_len,
			    const void *value, size_t value_len)
{
	Cairn__Compare *cmp;

	if (t == NULL || key == NULL || key_len == 0 || !cmp_op_valid(op) ||
	    (value == NULL && value_len > 0)) {
		return CAIRN_EINVAL;
	}
	cmp = malloc(sizeof(*cmp));
	if (cmp == NULL) {
		return CAIRN_ENOMEM;
	}
	cairn__compare__init(cmp);
	cmp->result = (Cairn__Compare__Result)op;
	cmp->target = CAIRN__COMPARE__TARGET__VALUE;
	cmp->target_union_case = CAIRN__COMPARE__TARGET_UNION_VALUE;
	if (copy_bin(&cmp->key, key, key_len) != 0) {
		free(cmp);
		return CAIRN_ENOMEM;
	}
	if (copy_bin(&cmp->value, value, value_len) != 0) {
		free_bin(&cmp->key);
		free(cmp);
		return CAIRN_ENOMEM;
	}
	return add_compare(t, cmp);
}

static int add_op(cairn_txn *t, enum cairn_txn_branch branch, Cairn__RequestOp *op)
{
	int rv;

	if (branch == CAIRN_TXN_SUCCESS) {
		rv = push_ptr((void ***)&t->req.success, &t->req.n_success, op);
	} else {
		rv = push_ptr((void ***)&t->req.failure, &t->req.n_failure, op);
	}
	if (rv != 0) {
		free_request_op(op);
	}
	return rv;
}

static bool branch_valid(enum cairn_txn_branch b)
{
	return b == CAIRN_TXN_SUCCESS || b == CAIRN_TXN_FAILURE;
}

int cairn_txn_put(cairn_txn *t, enum cairn_txn_branch branch, const void *key, size_t key_len,
		  const void *value, size_t value_len, bool prev_kv)
{
	Cairn__RequestOp *op;
	Cairn__PutRequest *p;

	if (t == NULL || !branch_valid(branch) || key == NULL || key_len == 0 ||
	    (value == NULL && value_len > 0)) {
		return CAIRN_EINVAL;
	}
	op = malloc(sizeof(*op));
	p = malloc(sizeof(*p));
	if (op == NULL || p == NULL) {
		free(op);
		free(p);
		return CAIRN_ENOMEM;
	}
	cairn__request_op__init(op);
	cairn__put_request__init(p);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT;
	op->request_put = p;
	p->prev_kv = prev_kv;
	if (copy_bin(&p->key, key, key_len) != 0 || copy_bin(&p->value, value, value_len) != 0) {
		free_request_op(op);
		return CAIRN_ENOMEM;
	}
	return add_op(t, branch, op);
}

int cairni_range_end_of(const void *key, size_t key_len, bool prefix, const void *end,
			size_t end_len, ProtobufCBinaryData *out)
{
	if (prefix) {
		if (copy_bin(out, key, key_len) != 0) {
			return CAIRN_ENOMEM;
		}
		cairn_prefix_end(key, key_len, out->data, &out->len);
		return 0;
	}
	if (end_len == 0) {
		out->data = NULL;
		out->len = 0;
		return 0;
	}
	if (end == NULL) {
		return CAIRN_EINVAL;
	}
	return copy_bin(out, end, end_len);
}

int cairn_txn_get(cairn_txn *t, enum cairn_txn_branch branch, const void *key, size_t key_len,
		  const struct cairn_range_opts *opts)
{
	static const struct cairn_range_opts defaults;
	Cairn__RequestOp *op;
	Cairn__RangeRequest *r;
	int rv;

	if (opts == NULL) {
		opts = &defaults;
	}
	if (t == NULL || !branch_valid(branch) || (key == NULL && key_len > 0) ||
	    (key_len == 0 && !opts->prefix && opts->range_end_len == 0) || opts->limit < 0) {
		return CAIRN_EINVAL;
	}
	op = malloc(sizeof(*op));
	r = malloc(sizeof(*r));
	if (op == NULL || r == NULL) {
		free(op);
		free(r);
		return CAIRN_ENOMEM;
	}
	cairn__request_op__init(op);
	cairn__range_request__init(r);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE;
	op->request_range = r;
	r->limit = opts->limit;
	r->keys_only = opts->keys_only;
	r->count_only = opts->count_only;
	/* An empty key starts a range at the smallest key, as in etcd: "\0". */
	rv = cairni_range_end_of(key, key_len, opts->prefix, opts->range_end, opts->range_end_len,
				 &r->range_end);
	if (rv == 0) {
		rv = key_len > 0 ? copy_bin(&r->key, key, key_len) : copy_bin(&r->key, "", 1);
	}
	if (rv != 0) {
		free_request_op(op);
		return rv;
	}
	return add_op(t, branch, op);
}

int cairn_txn_delete(cairn_txn *t, enum cairn_txn_branch branch, const void *key, size_t key_len,
		     const struct cairn_delete_opts *opts)
{
	static const struct cairn_delete_opts defaults;
	Cairn__RequestOp *op;
	Cairn__DeleteRangeRequest *d;
	int rv;

	if (opts == NULL) {
		opts = &defaults;
	}
	if (t == NULL || !branch_valid(branch) || (key == NULL && key_len > 0) ||
	    (key_len == 0 && !opts->prefix && opts->range_end_len == 0)) {
		return CAIRN_EINVAL;
	}
	op = malloc(sizeof(*op));
	d = malloc(sizeof(*d));
	if (op == NULL || d == NULL) {
		free(op);
		free(d);
		return CAIRN_ENOMEM;
	}
	cairn__request_op__init(op);
	cairn__delete_range_request__init(d);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op->request_delete_range = d;
	d->prev_kv = opts->prev_kv;
	/* An empty key starts a range at the smallest key, as in etcd: "\0". */
	rv = cairni_range_end_of(key, key_len, opts->prefix, opts->range_end, opts->range_end_len,
				 &d->range_end);
	if (rv == 0) {
		rv = key_len > 0 ? copy_bin(&d->key, key, key_len) : copy_bin(&d->key, "", 1);
	}
	if (rv != 0) {
		free_request_op(op);
		return rv;
	}
	return add_op(t, branch, op);
}
