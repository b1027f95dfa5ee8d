/* Storage's compact binary reply encoding (cached in sessions) and its decoding into results. */
#include <stdlib.h>
#include <string.h>

#include "storage/internal.h"

#define REPLY_SUCCEEDED 0x1u /* header flags */
#define KV_HAS_VALUE	0x1u /* kv flags */
/* Op header: type(1) more(1) count(8) n_kvs(4). */
#define OP_MORE_OFF  1u
#define OP_COUNT_OFF 2u
#define OP_NKVS_OFF  10u
#define OP_HDR_SIZE  14u
/* Statuses are small negative STORAGE_E* codes, stored negated. */
#define STATUS_MAX 1024u

int sto_reply_header(struct sto_buf *out, enum storage_cmd_type type, int status, uint64_t revision,
		     uint64_t client_id, bool succeeded, size_t n_ops, size_t *rev_off)
{
	int rv;

	rv = sto_buf_u8(out, STO_REPLY_VERSION);
	if (rv == 0) {
		rv = sto_buf_u8(out, (uint8_t)type);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, (uint64_t)(-(int64_t)status));
	}
	if (rv == 0) {
		*rev_off = out->len;
		rv = sto_buf_u64(out, revision);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, client_id);
	}
	if (rv == 0) {
		rv = sto_buf_u8(out, succeeded ? REPLY_SUCCEEDED : 0);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, n_ops);
	}
	return rv;
}

void sto_reply_patch_revision(struct sto_buf *out, size_t rev_off, uint64_t revision)
{
	sto_put_u64(out->p + rev_off, revision);
}

int sto_reply_simple(struct sto_buf *out, enum storage_cmd_type type, int status, uint64_t revision,
		     uint64_t client_id)
{
	size_t rev_off;

	return sto_reply_header(out, type, status, revision, client_id, false, 0, &rev_off);
}

int sto_reply_op_begin(struct sto_buf *out, enum storage_op_type type, size_t *op_off)
{
	uint8_t hdr[OP_HDR_SIZE] = {0};

	hdr[0] = (uint8_t)type;
	*op_off = out->len;
	return sto_buf_add(out, hdr, sizeof(hdr));
}

void sto_reply_op_end(struct sto_buf *out, size_t op_off, bool more, uint64_t count, uint32_t n_kvs)
{
	uint8_t *p = out->p + op_off;

	p[OP_MORE_OFF] = more ? 1 : 0;
	sto_put_u64(p + OP_COUNT_OFF, count);
	sto_put_u32(p + OP_NKVS_OFF, n_kvs);
}

int sto_reply_kv(struct sto_buf *out, const void *key, size_t key_len, const struct sto_kv_rec *rec,
		 bool with_value)
{
	int rv;

	rv = sto_buf_varint(out, key_len);
	if (rv == 0) {
		rv = sto_buf_add(out, key, key_len);
	}
	if (rv == 0) {
		rv = sto_buf_u8(out, with_value ? KV_HAS_VALUE : 0);
	}
	if (rv == 0 && with_value) {
		rv = sto_buf_varint(out, rec->value_len);
		if (rv == 0) {
			rv = sto_buf_add(out, rec->value, rec->value_len);
		}
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, rec->create_revision);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, rec->mod_revision);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, rec->version);
	}
	if (rv == 0) {
		rv = sto_buf_varint(out, rec->lease);
	}
	return rv;
}

static bool parse_kv(struct sto_rd *r, struct storage_kv *kv)
{
	uint64_t klen;
	uint64_t vlen = 0;
	uint8_t flags;
	const uint8_t *key;
	const uint8_t *value = NULL;
	struct storage_kv tmp;

	if (!sto_rd_varint(r, &klen) || klen == 0 || klen > STORAGE_MAX_KEY_SIZE ||
	    !sto_rd_bytes(r, (size_t)klen, &key) || !sto_rd_u8(r, &flags) ||
	    (flags & ~KV_HAS_VALUE) != 0) {
		return false;
	}
	if ((flags & KV_HAS_VALUE) != 0) {
		if (!sto_rd_varint(r, &vlen) || vlen > STORAGE_MAX_VALUE_SIZE ||
		    !sto_rd_bytes(r, (size_t)vlen, &value)) {
			return false;
		}
	}
	if (!sto_rd_varint(r, &tmp.create_revision) || !sto_rd_varint(r, &tmp.mod_revision) ||
	    !sto_rd_varint(r, &tmp.version) || !sto_rd_varint(r, &tmp.lease)) {
		return false;
	}
	if (kv != NULL) {
		tmp.key = key;
		tmp.key_len = (size_t)klen;
		tmp.value = value;
		tmp.value_len = (size_t)vlen;
		*kv = tmp;
	}
	return true;
}

/* Parse a reply. With ops == NULL only count ops and kvs (first pass); otherwise fill r, ops
 * and kvs, which have room for what the first pass counted. */
static bool parse_reply(const uint8_t *p, size_t len, struct storage_result *r,
			struct storage_op_result *ops, struct storage_kv *kvs, size_t *n_ops,
			size_t *n_kvs)
{
	struct sto_rd rd = {p, len};
	uint8_t version;
	uint8_t type;
	uint8_t flags;
	uint64_t status;
	uint64_t revision;
	uint64_t client_id;
	uint64_t nops;
	size_t total_kvs = 0;
	uint64_t i;
	uint32_t j;

	if (!sto_rd_u8(&rd, &version) || version != STO_REPLY_VERSION || !sto_rd_u8(&rd, &type) ||
	    type < STORAGE_CMD_NOOP || type > STORAGE_CMD_CONF || !sto_rd_varint(&rd, &status) ||
	    status > STATUS_MAX || !sto_rd_u64(&rd, &revision) || !sto_rd_varint(&rd, &client_id) ||
	    !sto_rd_u8(&rd, &flags) || (flags & ~REPLY_SUCCEEDED) != 0 ||
	    !sto_rd_varint(&rd, &nops) || nops > STORAGE_MAX_TXN_OPS) {
		return false;
	}
	if (ops != NULL) {
		r->status = -(int)status;
		r->type = (enum storage_cmd_type)type;
		r->revision = revision;
		r->client_id = client_id;
		r->succeeded = (flags & REPLY_SUCCEEDED) != 0;
		r->ops = nops > 0 ? ops : NULL;
		r->n_ops = (size_t)nops;
	}
	for (i = 0; i < nops; i++) {
		const uint8_t *hdr;
		uint32_t nkvs;

		if (!sto_rd_bytes(&rd, OP_HDR_SIZE, &hdr) || hdr[0] < STORAGE_OP_RANGE ||
		    hdr[0] > STORAGE_OP_DELETE || hdr[OP_MORE_OFF] > 1) {
			return false;
		}
		nkvs = sto_get_u32(hdr + OP_NKVS_OFF);
		if (ops != NULL) {
			ops[i].type = (enum storage_op_type)hdr[0];
			ops[i].more = hdr[OP_MORE_OFF] != 0;
			ops[i].count = sto_get_u64(hdr + OP_COUNT_OFF);
			ops[i].kvs = nkvs > 0 ? &kvs[total_kvs] : NULL;
			ops[i].n_kvs = nkvs;
		}
		for (j = 0; j < nkvs; j++) {
			if (!parse_kv(&rd, ops != NULL ? &kvs[total_kvs] : NULL)) {
				return false;
			}
			total_kvs++;
		}
	}
	if (rd.left != 0) {
		return false;
	}
	*n_ops = (size_t)nops;
	*n_kvs = total_kvs;
	return true;
}

int sto_reply_decode(const uint8_t *p, size_t len, struct storage_result *r, char *errmsg,
		     size_t errlen)
{
	size_t n_ops;
	size_t n_kvs;
	size_t ops_size;
	size_t kvs_size;
	uint8_t *block;

	memset(r, 0, sizeof(*r));
	if (!parse_reply(p, len, NULL, NULL, NULL, &n_ops, &n_kvs)) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "malformed reply (%zu bytes)",
			       len);
	}
	ops_size = n_ops * sizeof(struct storage_op_result);
	kvs_size = n_kvs * sizeof(struct storage_kv);
	block = malloc(ops_size + kvs_size + len);
	if (block == NULL) {
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	memcpy(block + ops_size + kvs_size, p, len);
	/* Second pass over the copy, so that kvs point into memory the result owns. */
	parse_reply(block + ops_size + kvs_size, len, r, (struct storage_op_result *)block,
		    (struct storage_kv *)(block + ops_size), &n_ops, &n_kvs);
	r->priv = block;
	return 0;
}

void storage_result_free(struct storage_result *r)
{
	if (r == NULL) {
		return;
	}
	free(r->priv);
	memset(r, 0, sizeof(*r));
}
