/* libcairn results: one allocation per result, filled from a decoded Response. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"

#define MEM_CHUNK_MIN 4096u

struct mem_chunk {
	struct mem_chunk *next;
	size_t used, cap;
	alignas(max_align_t) unsigned char data[];
};

/* What precedes every result struct. */
union result_hdr {
	struct mem mem;
	max_align_t align;
};

void *cairni_mem_alloc(struct mem *m, size_t n)
{
	const size_t a = alignof(max_align_t);
	struct mem_chunk *ch = m->chunks;
	void *p;

	n = (n + a - 1) / a * a;
	if (n == 0) {
		n = a;
	}
	if (ch == NULL || ch->cap - ch->used < n) {
		size_t cap = n > MEM_CHUNK_MIN ? n : MEM_CHUNK_MIN;

		ch = malloc(sizeof(*ch) + cap);
		if (ch == NULL) {
			return NULL;
		}
		ch->used = 0;
		ch->cap = cap;
		ch->next = m->chunks;
		m->chunks = ch;
	}
	p = ch->data + ch->used;
	ch->used += n;
	memset(p, 0, n);
	return p;
}

char *cairni_mem_dup(struct mem *m, const void *p, size_t len)
{
	char *s = cairni_mem_alloc(m, len + 1);

	if (s == NULL) {
		return NULL;
	}
	if (len > 0) {
		memcpy(s, p, len);
	}
	s[len] = '\0';
	return s;
}

void *cairni_result_new(size_t size)
{
	union result_hdr *h = calloc(1, sizeof(*h) + size);

	if (h == NULL) {
		return NULL;
	}
	return h + 1;
}

struct mem *cairni_result_mem(void *res)
{
	return &((union result_hdr *)res - 1)->mem;
}

void cairni_result_free(void *res)
{
	union result_hdr *h;
	struct mem_chunk *ch, *next;

	if (res == NULL) {
		return;
	}
	h = (union result_hdr *)res - 1;
	for (ch = h->mem.chunks; ch != NULL; ch = next) {
		next = ch->next;
		free(ch);
	}
	free(h);
}

void cairn_range_result_free(struct cairn_range_result *res)
{
	cairni_result_free(res);
}
void cairn_put_result_free(struct cairn_put_result *res)
{
	cairni_result_free(res);
}
void cairn_delete_result_free(struct cairn_delete_result *res)
{
	cairni_result_free(res);
}
void cairn_txn_result_free(struct cairn_txn_result *res)
{
	cairni_result_free(res);
}
void cairn_status_result_free(struct cairn_status_result *res)
{
	cairni_result_free(res);
}

/* ---- filling ----------------------------------------------------------------------------- */

static void fill_header(struct cairn_header *h, const Cairn__Response *r)
{
	if (r->header == NULL) {
		return;
	}
	h->cluster_id = r->header->cluster_id;
	h->member_id = r->header->member_id;
	h->revision = r->header->revision;
	h->raft_term = r->header->raft_term;
}

static int fill_kv(struct mem *m, struct cairn_kv *kv, const Cairn__KeyValue *p)
{
	kv->key = cairni_mem_dup(m, p->key.data, p->key.len);
	kv->value = cairni_mem_dup(m, p->value.data, p->value.len);
	if (kv->key == NULL || kv->value == NULL) {
		return CAIRN_ENOMEM;
	}
	kv->key_len = p->key.len;
	kv->value_len = p->value.len;
	kv->create_revision = p->create_revision;
	kv->mod_revision = p->mod_revision;
	kv->version = p->version;
	kv->lease = p->lease;
	return 0;
}

static int fill_kvs(struct mem *m, struct cairn_kv **out, size_t *n_out, Cairn__KeyValue **kvs,
		    size_t n)
{
	size_t i;

	*n_out = 0;
	*out = NULL;
	if (n == 0) {
		return 0;
	}
	if (n > SIZE_MAX / sizeof(**out)) {
		return CAIRN_ENOMEM;
	}
	*out = cairni_mem_alloc(m, n * sizeof(**out));
	if (*out == NULL) {
		return CAIRN_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (fill_kv(m, &(*out)[i], kvs[i]) != 0) {
			return CAIRN_ENOMEM;
		}
	}
	*n_out = n;
	return 0;
}

static int fill_range(struct mem *m, struct cairn_range_result *res, const Cairn__RangeResponse *p)
{
	if (p == NULL) {
		return 0;
	}
	res->count = p->count;
	res->more = p->more;
	return fill_kvs(m, &res->kvs, &res->n_kvs, p->kvs, p->n_kvs);
}

static int fill_put(struct mem *m, struct cairn_put_result *res, const Cairn__PutResponse *p)
{
	if (p == NULL || p->prev_kv == NULL) {
		return 0;
	}
	res->prev_kv = cairni_mem_alloc(m, sizeof(*res->prev_kv));
	if (res->prev_kv == NULL) {
		return CAIRN_ENOMEM;
	}
	return fill_kv(m, res->prev_kv, p->prev_kv);
}

static int fill_delete(struct mem *m, struct cairn_delete_result *res,
		       const Cairn__DeleteRangeResponse *p)
{
	if (p == NULL) {
		return 0;
	}
	res->deleted = p->deleted;
	return fill_kvs(m, &res->prev_kvs, &res->n_prev_kvs, p->prev_kvs, p->n_prev_kvs);
}

int cairni_result_range(const Cairn__Response *r, struct cairn_range_result **out)
{
	struct cairn_range_result *res = cairni_result_new(sizeof(*res));

	if (res == NULL) {
		return CAIRN_ENOMEM;
	}
	fill_header(&res->header, r);
	if (fill_range(cairni_result_mem(res), res, r->range) != 0) {
		cairni_result_free(res);
		return CAIRN_ENOMEM;
	}
	*out = res;
	return 0;
}

int cairni_result_put(const Cairn__Response *r, struct cairn_put_result **out)
{
	struct cairn_put_result *res = cairni_result_new(sizeof(*res));

	if (res == NULL) {
		return CAIRN_ENOMEM;
	}
	fill_header(&res->header, r);
	if (fill_put(cairni_result_mem(res), res, r->put) != 0) {
		cairni_result_free(res);
		return CAIRN_ENOMEM;
	}
	*out = res;
	return 0;
}

int cairni_result_delete(const Cairn__Response *r, struct cairn_delete_result **out)
{
	struct cairn_delete_result *res = cairni_result_new(sizeof(*res));

	if (res == NULL) {
		return CAIRN_ENOMEM;
	}
	fill_header(&res->header, r);
	if (fill_delete(cairni_result_mem(res), res, r->delete_range) != 0) {
		cairni_result_free(res);
		return CAIRN_ENOMEM;
	}
	*out = res;
	return 0;
}

int cairni_result_txn(const Cairn__Response *r, struct cairn_txn_result **out)
{
	struct cairn_txn_result *res = cairni_result_new(sizeof(*res));
	const Cairn__TxnResponse *t = r->txn;
	struct mem *m;
	size_t i;
	int rv = 0;

	if (res == NULL) {
		return CAIRN_ENOMEM;
	}
	m = cairni_result_mem(res);
	fill_header(&res->header, r);
	if (t == NULL) {
		goto out;
	}
	res->succeeded = t->succeeded;
	if (t->n_responses == 0) {
		goto out;
	}
	res->responses = cairni_mem_alloc(m, t->n_responses * sizeof(*res->responses));
	if (res->responses == NULL) {
		rv = CAIRN_ENOMEM;
		goto out;
	}
	for (i = 0; i < t->n_responses && rv == 0; i++) {
		const Cairn__ResponseOp *p = t->responses[i];
		struct cairn_op_result *o = &res->responses[i];

		switch (p->response_case) {
		case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_RANGE:
			o->type = CAIRN_OP_RANGE;
			o->u.range.header = res->header;
			rv = fill_range(m, &o->u.range, p->response_range);
			break;
		case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_PUT:
			o->type = CAIRN_OP_PUT;
			o->u.put.header = res->header;
			rv = fill_put(m, &o->u.put, p->response_put);
			break;
		case CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE:
			o->type = CAIRN_OP_DELETE;
			o->u.del.header = res->header;
			rv = fill_delete(m, &o->u.del, p->response_delete_range);
			break;
		default:
			rv = CAIRN_EPROTO;
			break;
		}
	}
	res->n_responses = t->n_responses;
out:
	if (rv != 0) {
		cairni_result_free(res);
		return rv;
	}
	*out = res;
	return 0;
}

int cairni_result_status(const Cairn__Response *r, const char *endpoint,
			 struct cairn_status_result **out)
{
	struct cairn_status_result *res = cairni_result_new(sizeof(*res));
	const Cairn__StatusResponse *s = r->status;
	struct mem *m;
	size_t i;

	if (res == NULL) {
		return CAIRN_ENOMEM;
	}
	m = cairni_result_mem(res);
	fill_header(&res->header, r);
	res->endpoint = cairni_mem_dup(m, endpoint, strlen(endpoint));
	res->version = cairni_mem_dup(m, s->version, strlen(s->version));
	res->role = cairni_mem_dup(m, s->role, strlen(s->role));
	if (res->endpoint == NULL || res->version == NULL || res->role == NULL) {
		goto err;
	}
	res->member_id = s->member_id;
	res->leader_id = s->leader_id;
	res->raft_term = s->raft_term;
	res->commit_index = s->commit_index;
	res->applied_index = s->applied_index;
	res->revision = s->revision;
	res->db_size = s->db_size;
	res->kv_hash = s->kv_hash;
	res->fsyncs = s->fsyncs;
	res->entries_committed = s->entries_committed;
	res->log_first_index = s->log_first_index;
	res->compactions = s->compactions;
	res->snapshots_sent = s->snapshots_sent;
	res->snapshots_installed = s->snapshots_installed;
	if (s->n_members > 0) {
		res->members = cairni_mem_alloc(m, s->n_members * sizeof(*res->members));
		if (res->members == NULL) {
			goto err;
		}
		for (i = 0; i < s->n_members; i++) {
			const Cairn__Member *p = s->members[i];
			struct cairn_member *mb = &res->members[i];

			mb->id = p->id;
			mb->name = cairni_mem_dup(m, p->name, strlen(p->name));
			mb->peer_addr = cairni_mem_dup(m, p->peer_addr, strlen(p->peer_addr));
			mb->client_addr = cairni_mem_dup(m, p->client_addr, strlen(p->client_addr));
			if (mb->name == NULL || mb->peer_addr == NULL || mb->client_addr == NULL) {
				goto err;
			}
		}
		res->n_members = s->n_members;
	}
	*out = res;
	return 0;
err:
	cairni_result_free(res);
	return CAIRN_ENOMEM;
}
