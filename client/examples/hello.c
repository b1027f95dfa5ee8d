/* hello: the smallest tour of libcairn: connect, put, get, a compare-and-swap txn, print. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cairn.h" /* once installed: #include <cairn.h>, pkg-config cairn */

int main(int argc, char **argv)
{
	const char *endpoints = argc > 1 ? argv[1] : getenv("CAIRN_ENDPOINTS");
	char err[CAIRN_ERRMSG_SIZE];
	struct cairn_range_result *got = NULL;
	struct cairn_txn_result *txr = NULL;
	cairn_client *c = NULL;
	cairn_txn *txn = NULL;
	int64_t mod;
	int rv;

	/* NULL/empty endpoints means 127.0.0.1:7379. No connection is made yet. */
	rv = cairn_connect(endpoints, NULL, &c, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "connect: %s: %s\n", cairn_strerror(rv), err);
		return 1;
	}

	/* A write: exactly-once, sent to the leader wherever it is. */
	rv = cairn_put(c, "greeting", 8, "hello", 5, NULL, NULL, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "put: %s: %s\n", cairn_strerror(rv), err);
		goto out;
	}

	/* A linearizable read. The result is ours to free. */
	rv = cairn_get(c, "greeting", 8, NULL, &got, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "get: %s: %s\n", cairn_strerror(rv), err);
		goto out;
	}
	if (got->n_kvs != 1) {
		fprintf(stderr, "get: key vanished\n");
		rv = 1;
		goto out;
	}
	printf("greeting = %s (mod_revision %" PRId64 ", store revision %" PRId64 ")\n",
	       got->kvs[0].value, got->kvs[0].mod_revision, got->header.revision);
	mod = got->kvs[0].mod_revision;

	/* Compare-and-swap: replace the value only if nobody wrote it since we read it. */
	txn = cairn_txn_new();
	if (txn == NULL ||
	    cairn_txn_compare_int(txn, CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, "greeting", 8, mod) != 0 ||
	    cairn_txn_put(txn, CAIRN_TXN_SUCCESS, "greeting", 8, "hello, world", 12, false) != 0 ||
	    cairn_txn_get(txn, CAIRN_TXN_FAILURE, "greeting", 8, NULL) != 0) {
		fprintf(stderr, "txn: out of memory\n");
		rv = 1;
		goto out;
	}
	rv = cairn_txn_commit(c, txn, 0, &txr, err, sizeof(err));
	if (rv == CAIRN_EUNKNOWN) {
		/* The deadline passed while the write was in flight: it may have happened. */
		fprintf(stderr, "txn: %s\n", err);
		goto out;
	}
	if (rv != 0) {
		fprintf(stderr, "txn: %s: %s\n", cairn_strerror(rv), err);
		goto out;
	}
	if (txr->succeeded) {
		printf("swapped at revision %" PRId64 "\n", txr->header.revision);
	} else if (txr->n_responses == 1 && txr->responses[0].type == CAIRN_OP_RANGE &&
		   txr->responses[0].u.range.n_kvs == 1) {
		printf("someone else wrote it first: %s\n", txr->responses[0].u.range.kvs[0].value);
	}

out:
	cairn_txn_result_free(txr);
	cairn_txn_free(txn);
	cairn_range_result_free(got);
	cairn_close(c);
	return rv == 0 ? 0 : 1;
}
