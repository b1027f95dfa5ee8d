/* Byte encoding: big-endian integers, varints, growable buffers, length-checked decoding. */
#include <stdlib.h>
#include <string.h>

#include "storage/internal.h"

/* A varint (LEB128) carries 7 bits per byte; a u64 needs at most 10 bytes. */
#define VARINT_MAX_BYTES 10u
#define VARINT_MORE	 0x80u
#define VARINT_BITS	 0x7fu
#define VARINT_SHIFT	 7u
#define BUF_MIN_CAP	 256u

void sto_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

void sto_put_u64(uint8_t *p, uint64_t v)
{
	sto_put_u32(p, (uint32_t)(v >> 32));
	sto_put_u32(p + STO_U32_SIZE, (uint32_t)v);
}

uint32_t sto_get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

uint64_t sto_get_u64(const uint8_t *p)
{
	return (uint64_t)sto_get_u32(p) << 32 | sto_get_u32(p + STO_U32_SIZE);
}

int sto_buf_reserve(struct sto_buf *b, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (b->cap - b->len >= extra) {
		return 0;
	}
	if (extra > SIZE_MAX / 2 - b->len) {
		return STORAGE_ENOMEM;
	}
	cap = b->cap < BUF_MIN_CAP ? BUF_MIN_CAP : b->cap;
	while (cap - b->len < extra) {
		cap *= 2;
	}
	p = realloc(b->p, cap);
	if (p == NULL) {
		return STORAGE_ENOMEM;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int sto_buf_add(struct sto_buf *b, const void *data, size_t n)
{
	int rv = sto_buf_reserve(b, n);

	if (rv != 0) {
		return rv;
	}
	if (n > 0) {
		memcpy(b->p + b->len, data, n);
	}
	b->len += n;
	return 0;
}

int sto_buf_u8(struct sto_buf *b, uint8_t v)
{
	return sto_buf_add(b, &v, 1);
}

int sto_buf_u32(struct sto_buf *b, uint32_t v)
{
	uint8_t tmp[STO_U32_SIZE];

	sto_put_u32(tmp, v);
	return sto_buf_add(b, tmp, sizeof(tmp));
}

int sto_buf_u64(struct sto_buf *b, uint64_t v)
{
	uint8_t tmp[STO_U64_SIZE];

	sto_put_u64(tmp, v);
	return sto_buf_add(b, tmp, sizeof(tmp));
}

int sto_buf_varint(struct sto_buf *b, uint64_t v)
{
	uint8_t tmp[VARINT_MAX_BYTES];
	size_t n = 0;

	while (v >= VARINT_MORE) {
		tmp[n++] = (uint8_t)((v & VARINT_BITS) | VARINT_MORE);
		v >>= VARINT_SHIFT;
	}
	tmp[n++] = (uint8_t)v;
	return sto_buf_add(b, tmp, n);
}

void sto_buf_free(struct sto_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = 0;
	b->cap = 0;
}

bool sto_rd_bytes(struct sto_rd *r, size_t n, const uint8_t **out)
{
	if (r->left < n) {
		return false;
	}
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

bool sto_rd_u8(struct sto_rd *r, uint8_t *v)
{
	const uint8_t *p;

	if (!sto_rd_bytes(r, 1, &p)) {
		return false;
	}
	*v = p[0];
	return true;
}

bool sto_rd_u32(struct sto_rd *r, uint32_t *v)
{
	const uint8_t *p;

	if (!sto_rd_bytes(r, STO_U32_SIZE, &p)) {
		return false;
	}
	*v = sto_get_u32(p);
	return true;
}

bool sto_rd_u64(struct sto_rd *r, uint64_t *v)
{
	const uint8_t *p;

	if (!sto_rd_bytes(r, STO_U64_SIZE, &p)) {
		return false;
	}
	*v = sto_get_u64(p);
	return true;
}

bool sto_rd_varint(struct sto_rd *r, uint64_t *v)
{
	uint64_t x = 0;
	unsigned shift = 0;
	size_t i;

	for (i = 0; i < VARINT_MAX_BYTES && i < r->left; i++) {
		uint8_t byte = r->p[i];

		/* The 10th byte may only carry the top bit of a u64. */
		if (i == VARINT_MAX_BYTES - 1 && byte > 1) {
			return false;
		}
		x |= (uint64_t)(byte & VARINT_BITS) << shift;
		if ((byte & VARINT_MORE) == 0) {
			r->p += i + 1;
			r->left -= i + 1;
			*v = x;
			return true;
		}
		shift += VARINT_SHIFT;
	}
	return false;
}

int sto_kv_rec_decode(const MDB_val *v, struct sto_kv_rec *rec)
{
	const uint8_t *p = v->mv_data;

	if (v->mv_size < STO_KV_HDR_SIZE || p[0] != STO_KV_REC_VERSION ||
	    v->mv_size - STO_KV_HDR_SIZE > STORAGE_MAX_VALUE_SIZE) {
		return STORAGE_ECORRUPT;
	}
	rec->create_revision = sto_get_u64(p + 1);
	rec->mod_revision = sto_get_u64(p + 1 + STO_U64_SIZE);
	rec->version = sto_get_u64(p + 1 + 2 * STO_U64_SIZE);
	rec->lease = sto_get_u64(p + 1 + 3 * STO_U64_SIZE);
	rec->value = p + STO_KV_HDR_SIZE;
	rec->value_len = v->mv_size - STO_KV_HDR_SIZE;
	return 0;
}

void sto_kv_rec_encode_hdr(uint8_t *p, const struct sto_kv_rec *rec)
{
	p[0] = STO_KV_REC_VERSION;
	sto_put_u64(p + 1, rec->create_revision);
	sto_put_u64(p + 1 + STO_U64_SIZE, rec->mod_revision);
	sto_put_u64(p + 1 + 2 * STO_U64_SIZE, rec->version);
	sto_put_u64(p + 1 + 3 * STO_U64_SIZE, rec->lease);
}

int sto_session_rec_decode(const MDB_val *v, struct sto_session_rec *rec)
{
	const uint8_t *p = v->mv_data;
	uint8_t flags;

	if (v->mv_size < STO_SESSION_HDR_SIZE) {
		return STORAGE_ECORRUPT;
	}
	flags = p[2 * STO_U64_SIZE];
	if ((flags & ~STO_SESSION_CACHED) != 0) {
		return STORAGE_ECORRUPT;
	}
	rec->last_seq = sto_get_u64(p);
	rec->last_index = sto_get_u64(p + STO_U64_SIZE);
	rec->cached = (flags & STO_SESSION_CACHED) != 0;
	rec->reply = p + STO_SESSION_HDR_SIZE;
	rec->reply_len = v->mv_size - STO_SESSION_HDR_SIZE;
	if (rec->reply_len > STORAGE_MAX_CACHED_REPLY || (!rec->cached && rec->reply_len != 0)) {
		return STORAGE_ECORRUPT;
	}
	return 0;
}

int sto_log_rec_decode(const MDB_val *k, const MDB_val *v, struct storage_entry *e)
{
	const uint8_t *p = v->mv_data;

	if (k->mv_size != STO_LOG_KEY_SIZE || v->mv_size < STO_LOG_HDR_SIZE ||
	    v->mv_size - STO_LOG_HDR_SIZE > STORAGE_MAX_ENTRY_SIZE) {
		return STORAGE_ECORRUPT;
	}
	e->index = sto_get_u64(k->mv_data);
	e->term = sto_get_u64(p);
	e->type = p[STO_U64_SIZE];
	e->data = p + STO_LOG_HDR_SIZE;
	e->len = v->mv_size - STO_LOG_HDR_SIZE;
	return 0;
}
