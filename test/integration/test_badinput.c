/* test_badinput.c — malformed and oversized client input: every case gets its documented error,
 * the connection is closed only where the protocol says so, and the server keeps serving. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/integration/harness.h"

static struct h_cluster *start1(const char *const *extra)
{
	struct h_cluster_opts o = {.n = 1, .nosync = true};
	for (int i = 0; extra && extra[i]; i++)
		o.extra[i] = extra[i];
	struct h_cluster *c = h_cluster_new(&o);
	h_cluster_start(c);
	return c;
}

/* The member still serves: on `hc` if given, and on a fresh connection. */
static void assert_serving(struct h_cluster *c, struct h_conn *hc)
{
	static int n;
	char key[32], val[32];
	snprintf(key, sizeof(key), "alive-%d", n);
	snprintf(val, sizeof(val), "v%d", n++);
	struct h_conn *fresh = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT_MSG(fresh != NULL, "the server no longer accepts connections");
	struct h_conn *conns[2] = {fresh, hc};
	for (int i = 0; i < 2; i++) {
		if (conns[i] == NULL)
			continue;
		Cairn__Response *r = h_put(conns[i], key, val, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		h_free(r);
		r = h_get(conns[i], key, false, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		H_ASSERT(h_kv_is(h_kv(r), val));
		h_free(r);
	}
	h_close(fresh);
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Frames over --max-frame-bytes: FRAME_TOO_LARGE, then the connection is closed (judged from
 * the length prefix alone, before any body arrives); the log says why. */
START_TEST(test_oversized_frame)
{
	static const char *const extra[] = {"--max-frame-bytes", "65536", NULL};
	struct h_cluster *c = start1(extra);
	struct h_conn *bystander = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(bystander != NULL);

	/* A well-formed request one byte over the limit. */
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	size_t vlen = 65536;
	char *big = malloc(vlen);
	memset(big, 'b', vlen);
	struct h_req r;
	h_req_put(&r, "big", 3, big, vlen);
	H_ASSERT(cairn__request__get_packed_size(&r.req) > 65536);
	H_ASSERT(h_send(hc, &r.req) == 0);
	Cairn__Response *resp = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__FRAME_TOO_LARGE);
	H_ASSERT(strstr(h_errmsg(resp), "65536") != NULL);
	h_free(resp);
	H_ASSERT_MSG(h_wait_closed(hc, H_RPC_TIMEOUT_MS),
		     "connection not closed after FRAME_TOO_LARGE");
	h_close(hc);
	free(big);
	H_ASSERT(h_wait_log(c, 1, "exceeds the limit of 65536 bytes; closing", H_RPC_TIMEOUT_MS));

	/* A 4 GiB length prefix and nothing else. */
	hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	uint8_t hdr[4];
	be32(hdr, 0xffffffffu);
	H_ASSERT(h_send_raw(hc, hdr, 4) == 0);
	resp = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__FRAME_TOO_LARGE);
	h_free(resp);
	H_ASSERT(h_wait_closed(hc, H_RPC_TIMEOUT_MS));
	h_close(hc);
	H_ASSERT(h_wait_log(c, 1, "frame of 4294967295 bytes exceeds", H_RPC_TIMEOUT_MS));

	/* Exactly at the limit is fine. */
	hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	size_t fit = 65536 - 64;
	big = malloc(fit);
	memset(big, 'f', fit);
	for (;;) {
		h_req_put(&r, "fit", 3, big, fit);
		r.req.id = 1000; /* the id counts in the frame's size */
		size_t sz = cairn__request__get_packed_size(&r.req);
		if (sz == 65536)
			break;
		fit += 65536 - sz;
		H_ASSERT(fit < 65536);
		big = realloc(big, fit);
		memset(big, 'f', fit);
	}
	resp = h_call(hc, &r.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(resp);
	h_free(resp);
	free(big);
	assert_serving(c, hc);
	h_close(hc);
	assert_serving(c, bystander);
	h_close(bystander);
	h_cluster_destroy(c);
}
END_TEST

/* Bytes that do not decode as a Request: BAD_FRAME, then the connection is closed. */
START_TEST(test_undecodable_frame)
{
	struct h_cluster *c = start1(NULL);
	struct h_conn *bystander = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	static const uint8_t garbage[][12] = {
	    /* length 8: field 1 with an invalid wire type 7 */
	    {0, 0, 0, 8, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	    /* length 8: field 11 (put), length-delimited, claiming 100 bytes */
	    {0, 0, 0, 8, 0x5a, 0x64, 1, 2, 3, 4, 5, 6},
	};
	for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
		struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
		H_ASSERT(hc != NULL);
		H_ASSERT(h_send_raw(hc, garbage[i], sizeof(garbage[i])) == 0);
		Cairn__Response *resp = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
		H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__BAD_FRAME);
		h_free(resp);
		H_ASSERT_MSG(h_wait_closed(hc, H_RPC_TIMEOUT_MS),
			     "connection not closed after BAD_FRAME");
		h_close(hc);
	}
	H_ASSERT(h_wait_log(c, 1, "undecodable frame of 8 bytes; closing", H_RPC_TIMEOUT_MS));
	assert_serving(c, bystander);
	h_close(bystander);
	h_cluster_destroy(c);
}
END_TEST

/* A request with no operation: UNKNOWN_OPERATION under its id; the connection stays. A
 * zero-length frame is an empty Request: the same. */
START_TEST(test_unknown_operation)
{
	struct h_cluster *c = start1(NULL);
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.id = 77;
	Cairn__Response *resp = h_call(hc, &req, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__UNKNOWN_OPERATION);
	H_ASSERT_INT_EQ(resp->id, 77);
	H_ASSERT(resp->header != NULL);
	h_free(resp);
	static const uint8_t empty[4] = {0, 0, 0, 0};
	H_ASSERT(h_send_raw(hc, empty, sizeof(empty)) == 0);
	resp = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__UNKNOWN_OPERATION);
	H_ASSERT_INT_EQ(resp->id, 0);
	h_free(resp);
	/* An op number from the future (field 20, reserved for watches) is unknown too. */
	static const uint8_t future[] = {0, 0, 0, 5, 0x08, 0x05, 0xa2, 0x01, 0x00};
	H_ASSERT(h_send_raw(hc, future, sizeof(future)) == 0);
	resp = h_wait(hc, 5, H_RPC_TIMEOUT_MS, NULL);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__UNKNOWN_OPERATION);
	h_free(resp);
	assert_serving(c, hc);
	h_close(hc);
	h_cluster_destroy(c);
}
END_TEST

/* A frame cut short by the client closing the connection, and a client that vanishes with
 * requests in flight, do not disturb the server. */
START_TEST(test_truncated_frame_and_abandoned_requests)
{
	struct h_cluster *c = start1(NULL);
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	uint8_t part[14] = {0, 0, 0, 100, 0x08, 0x01};
	H_ASSERT(h_send_raw(hc, part, sizeof(part)) == 0);
	h_close(hc);
	hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	for (int i = 0; i < 50; i++) {
		char key[32];
		snprintf(key, sizeof(key), "gone-%d", i);
		struct h_req r;
		h_req_put(&r, key, strlen(key), "v", 1);
		H_ASSERT(h_send(hc, &r.req) == 0);
		struct h_req g;
		h_req_get(&g, key, false);
		H_ASSERT(h_send(hc, &g.req) == 0);
	}
	h_close(hc);
	assert_serving(c, NULL);
	h_cluster_destroy(c);
}
END_TEST

/* Keys must be 1..511 bytes: an empty key is refused with INVALID_ARGUMENT ("key is not
 * provided", as etcd says), a 512-byte key with KEY_TOO_LARGE (both on put and on range), a
 * 511-byte key works. The connection stays. */
START_TEST(test_key_limits)
{
	struct h_cluster *c = start1(NULL);
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_put(hc, "", "v", H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	H_ASSERT(strstr(h_errmsg(r), "key is not provided") != NULL);
	h_free(r);
	r = h_get(hc, "", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	h_free(r);
	r = h_get(hc, "", true, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	h_free(r);

	char key[513];
	memset(key, 'k', 512);
	key[512] = '\0';
	r = h_put(hc, key, "v", H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__KEY_TOO_LARGE);
	H_ASSERT(strstr(h_errmsg(r), "512") != NULL);
	h_free(r);
	r = h_get(hc, key, false, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__KEY_TOO_LARGE);
	h_free(r);
	key[511] = '\0';
	r = h_put(hc, key, "v511", H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	h_free(r);
	r = h_get(hc, key, false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv_is(h_kv(r), "v511"));
	h_free(r);
	/* Inside a txn, too. */
	struct h_txn t;
	h_txn_init(&t);
	h_txn_put(&t, H_SUCCESS, "", "v");
	r = h_txn(hc, &t.t, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	h_free(r);
	assert_serving(c, hc);
	h_close(hc);
	h_cluster_destroy(c);
}
END_TEST

/* Values up to 1 MiB: one byte more is VALUE_TOO_LARGE; exactly 1 MiB is stored. */
START_TEST(test_value_limit)
{
	struct h_cluster *c = start1(NULL);
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	size_t max = 1u << 20;
	char *v = malloc(max + 1);
	memset(v, 'v', max + 1);
	struct h_req r;
	h_req_put(&r, "huge", 4, v, max + 1);
	Cairn__Response *resp = h_call(hc, &r.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(resp, CAIRN__ERROR_CODE__VALUE_TOO_LARGE);
	h_free(resp);
	h_req_put(&r, "huge", 4, v, max);
	resp = h_call(hc, &r.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(resp);
	h_free(resp);
	resp = h_get(hc, "huge", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(resp);
	H_ASSERT(h_kv(resp) != NULL);
	H_ASSERT_INT_EQ(h_kv(resp)->value.len, max);
	H_ASSERT(memcmp(h_kv(resp)->value.data, v, max) == 0);
	h_free(resp);
	free(v);
	assert_serving(c, hc);
	h_close(hc);
	h_cluster_destroy(c);
}
END_TEST

/* Transactions: at most 128 ops per branch and 128 compares; more is TOO_MANY_OPS. Other
 * malformed requests (a revision or a lease, reserved for later) are INVALID_ARGUMENT. */
START_TEST(test_txn_limits_and_invalid_arguments)
{
	enum { N = 129 };
	struct h_cluster *c = start1(NULL);
	struct h_conn *hc = h_connect_member(c, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	static char keys[N][32];
	static Cairn__PutRequest puts[N];
	static Cairn__RequestOp ops[N], *opp[N];
	static Cairn__Compare cmps[N], *cmpp[N];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "op-%03d", i);
		Cairn__PutRequest pi = CAIRN__PUT_REQUEST__INIT;
		puts[i] = pi;
		puts[i].key.data = (uint8_t *)keys[i];
		puts[i].key.len = strlen(keys[i]);
		Cairn__RequestOp oi = CAIRN__REQUEST_OP__INIT;
		ops[i] = oi;
		ops[i].request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT;
		ops[i].request_put = &puts[i];
		opp[i] = &ops[i];
		Cairn__Compare ci = CAIRN__COMPARE__INIT;
		cmps[i] = ci;
		cmps[i].key.data = (uint8_t *)keys[i];
		cmps[i].key.len = strlen(keys[i]);
		cmps[i].target = CAIRN__COMPARE__TARGET__VERSION;
		cmps[i].target_union_case = CAIRN__COMPARE__TARGET_UNION_VERSION;
		cmpp[i] = &cmps[i];
	}
	Cairn__TxnRequest t = CAIRN__TXN_REQUEST__INIT;
	t.success = opp;
	t.n_success = N;
	Cairn__Response *r = h_txn(hc, &t, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__TOO_MANY_OPS);
	h_free(r);
	t.success = NULL;
	t.n_success = 0;
	t.failure = opp;
	t.n_failure = N;
	r = h_txn(hc, &t, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__TOO_MANY_OPS);
	h_free(r);
	t.failure = NULL;
	t.n_failure = 0;
	t.compare = cmpp;
	t.n_compare = N;
	r = h_txn(hc, &t, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__TOO_MANY_OPS);
	h_free(r);
	/* 128 compares (every key absent: version 0) and 128 puts: one atomic write. */
	t.n_compare = N - 1;
	t.success = opp;
	t.n_success = N - 1;
	r = h_txn(hc, &t, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(r->txn->succeeded);
	H_ASSERT_INT_EQ(r->txn->n_responses, N - 1);
	h_free(r);

	/* Reserved fields must be zero. */
	struct h_req g;
	h_req_get(&g, "op-000", false);
	g.range.revision = 5;
	r = h_call(hc, &g.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	h_free(r);
	struct h_req p;
	h_req_put(&p, "leased", 6, "v", 1);
	p.put.lease = 42;
	r = h_call(hc, &p.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__INVALID_ARGUMENT);
	h_free(r);
	assert_serving(c, hc);
	h_close(hc);
	h_cluster_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("integration: bad input");
	TCase *tc = h_tcase("badinput");
	h_add_test(tc, test_oversized_frame);
	h_add_test(tc, test_undecodable_frame);
	h_add_test(tc, test_unknown_operation);
	h_add_test(tc, test_truncated_frame_and_abandoned_requests);
	h_add_test(tc, test_key_limits);
	h_add_test(tc, test_value_limit);
	h_add_test(tc, test_txn_limits_and_invalid_arguments);
	suite_add_tcase(s, tc);
	return h_run_suite(s);
}
