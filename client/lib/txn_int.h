/* libcairn internals: the transaction builder's representation and range helpers. */
#ifndef CAIRN_CLIENT_TXN_INT_H
#define CAIRN_CLIENT_TXN_INT_H

#include "client/lib/internal.h"

#pragma GCC visibility push(hidden)

/* The builder is the protobuf request itself, with every buffer malloc'ed and owned. */
struct cairn_txn {
	Cairn__TxnRequest req;
};

/* Fill `out` with the range end for (key, prefix, end): a malloc'ed copy (or {0, NULL} for
 * a single key). Errors: CAIRN_EINVAL (NULL end with a length), CAIRN_ENOMEM. */
int cairni_range_end_of(const void *key, size_t key_len, bool prefix, const void *end,
			size_t end_len, ProtobufCBinaryData *out);

#pragma GCC visibility pop

#endif /* CAIRN_CLIENT_TXN_INT_H */
