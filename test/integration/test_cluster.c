/* test_cluster.c — a healthy 3-member cluster: election, reads and writes through every member,
 * redirects, compare-and-swap transactions, pipelined requests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/integration/harness.h"

static struct h_cluster *start3(int *leader)
{
	struct h_cluster_opts o = {.n = 3, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	*leader = h_cluster_start(c);
	return c;
}

/* Three members elect exactly one leader; every member reports it, in one term, and knows
 * every member's client address. */
START_TEST(test_three_members_elect_one_leader)
{
	int leader;
	struct h_cluster *c = start3(&leader);
	uint64_t term = 0;
	int leaders = 0;
	for (int id = 1; id <= 3; id++) {
		Cairn__Response *r = h_member_status(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		Cairn__StatusResponse *st = r->status;
		H_ASSERT_INT_EQ(st->member_id, id);
		H_ASSERT_INT_EQ(r->header->member_id, id);
		H_ASSERT_INT_EQ(st->leader_id, leader);
		H_ASSERT_INT_EQ(st->n_members, 3);
		if (strcmp(st->role, "leader") == 0) {
			leaders++;
			term = st->raft_term;
		} else {
			H_ASSERT_STR_EQ(st->role, "follower");
		}
		h_free(r);
	}
	H_ASSERT_INT_EQ(leaders, 1);
	H_ASSERT(term > 0);
	/* Every member shares one cluster id. */
	uint64_t cid = 0;
	for (int id = 1; id <= 3; id++) {
		Cairn__Response *r = h_member_status(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		H_ASSERT_INT_EQ(r->status->raft_term, term);
		if (id == 1)
			cid = r->header->cluster_id;
		H_ASSERT(r->header->cluster_id == cid);
		h_free(r);
	}
	/* Followers learn the leader's client address (from its Hello). */
	for (int id = 1; id <= 3; id++) {
		if (id == leader)
			continue;
		uint64_t deadline = h_now_ms() + H_RPC_TIMEOUT_MS;
		bool known = false;
		while (!known && h_now_ms() < deadline) {
			Cairn__Response *r = h_member_status(c, id, H_RPC_TIMEOUT_MS);
			H_ASSERT_OK(r);
			for (size_t i = 0; i < r->status->n_members; i++) {
				Cairn__Member *m = r->status->members[i];
				if ((int)m->id == leader && m->client_addr &&
				    strcmp(m->client_addr, c->m[leader].client_addr) == 0)
					known = true;
			}
			h_free(r);
			if (!known)
				h_pause_ms(20);
		}
		H_ASSERT_MSG(known, "member %d does not know the leader's client address", id);
	}
	h_cluster_destroy(c);
}
END_TEST

/* A write acknowledged by the leader is seen by a linearizable read on every member at once
 * (followers confirm with the leader first), and by serializable reads eventually. */
START_TEST(test_put_get_through_every_member)
{
	int leader;
	struct h_cluster *c = start3(&leader);
	struct h_conn *lc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(lc != NULL);
	for (int round = 0; round < 3; round++) {
		char val[32];
		snprintf(val, sizeof(val), "value-%d", round);
		Cairn__Response *p = h_put(lc, "greeting", val, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(p);
		int64_t rev = p->header->revision;
		H_ASSERT(rev > 0);
		H_ASSERT_INT_EQ(p->header->member_id, leader);
		h_free(p);
		for (int id = 1; id <= 3; id++) {
			struct h_conn *hc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
			H_ASSERT(hc != NULL);
			Cairn__Response *g = h_get(hc, "greeting", false, H_RPC_TIMEOUT_MS);
			H_ASSERT_OK(g);
			const Cairn__KeyValue *kv = h_kv(g);
			H_ASSERT_MSG(h_kv_is(kv, val),
				     "linearizable read on member %d missed an acknowledged write",
				     id);
			H_ASSERT_INT_EQ(kv->mod_revision, rev);
			H_ASSERT_INT_EQ(kv->version, round + 1);
			H_ASSERT(g->header->revision >= rev);
			h_free(g);
			h_close(hc);
			H_ASSERT(h_wait_value(c, id, "greeting", val, true, H_RPC_TIMEOUT_MS));
		}
	}
	/* Missing keys: no kvs, count 0. */
	Cairn__Response *g = h_get(lc, "nope", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(g);
	H_ASSERT(h_kv(g) == NULL);
	H_ASSERT_INT_EQ(g->range->count, 0);
	h_free(g);
	/* Delete, then the key is gone everywhere. */
	Cairn__DeleteRangeRequest d = CAIRN__DELETE_RANGE_REQUEST__INIT;
	d.key.data = (uint8_t *)"greeting";
	d.key.len = strlen("greeting");
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.op_case = CAIRN__REQUEST__OP_DELETE_RANGE;
	req.delete_range = &d;
	Cairn__Response *dr = h_call(lc, &req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(dr);
	H_ASSERT_INT_EQ(dr->delete_range->deleted, 1);
	h_free(dr);
	for (int id = 1; id <= 3; id++)
		H_ASSERT(h_wait_value(c, id, "greeting", NULL, false, H_RPC_TIMEOUT_MS));
	h_close(lc);
	h_cluster_destroy(c);
}
END_TEST

/* A follower refuses writes with NOT_LEADER, naming the leader and its client address; the
 * write then succeeds there. */
START_TEST(test_follower_redirects_to_leader)
{
	int leader;
	struct h_cluster *c = start3(&leader);
	int follower = leader % 3 + 1;
	struct h_conn *fc = h_connect_member(c, follower, H_RPC_TIMEOUT_MS);
	H_ASSERT(fc != NULL);
	/* The follower may not have the leader's Hello yet: wait until it names it. */
	Cairn__Response *r = NULL;
	uint64_t deadline = h_now_ms() + H_RPC_TIMEOUT_MS;
	for (;;) {
		r = h_put(fc, "redirected", "yes", H_RPC_TIMEOUT_MS);
		H_ASSERT_ERR(r, CAIRN__ERROR_CODE__NOT_LEADER);
		if ((r->error->leader_client_addr && r->error->leader_client_addr[0]) ||
		    h_now_ms() >= deadline)
			break;
		h_free(r);
		h_pause_ms(20);
	}
	H_ASSERT_INT_EQ(r->error->leader_id, leader);
	H_ASSERT_STR_EQ(r->error->leader_client_addr, c->m[leader].client_addr);
	H_ASSERT(r->header != NULL);
	H_ASSERT_INT_EQ(r->header->member_id, follower);
	struct h_conn *lc = h_connect(r->error->leader_client_addr, H_RPC_TIMEOUT_MS);
	h_free(r);
	H_ASSERT(lc != NULL);
	r = h_put(lc, "redirected", "yes", H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	h_free(r);
	/* Sessions and transactions are writes too. */
	r = h_session(fc, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__NOT_LEADER);
	h_free(r);
	struct h_txn t;
	h_txn_init(&t);
	h_txn_put(&t, H_SUCCESS, "redirected", "txn");
	r = h_txn(fc, &t.t, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__NOT_LEADER);
	h_free(r);
	/* Reads are served by the follower itself. */
	r = h_get(fc, "redirected", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv_is(h_kv(r), "yes"));
	H_ASSERT_INT_EQ(r->header->member_id, follower);
	h_free(r);
	h_close(fc);
	h_close(lc);
	h_cluster_destroy(c);
}
END_TEST

static Cairn__Response *txn_ok(struct h_conn *hc, struct h_txn *t, bool want_succeeded)
{
	Cairn__Response *r = h_txn(hc, &t->t, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_INT_EQ(r->op_case, CAIRN__RESPONSE__OP_TXN);
	H_ASSERT_MSG(r->txn->succeeded == want_succeeded, "txn %s, expected %s",
		     r->txn->succeeded ? "succeeded" : "failed",
		     want_succeeded ? "success" : "failure");
	return r;
}

static const Cairn__KeyValue *get_kv(struct h_conn *hc, const char *key, Cairn__Response **keep)
{
	*keep = h_get(hc, key, false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(*keep);
	return h_kv(*keep);
}

/* Compare-and-swap with txn: compares on mod_revision, version, create_revision and value;
 * both branches; several ops applied atomically at one revision. */
START_TEST(test_cas_txn)
{
	int leader;
	struct h_cluster *c = start3(&leader);
	struct h_conn *hc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_put(hc, "cas", "v1", H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	int64_t r1 = r->header->revision;
	h_free(r);

	/* mod_revision == r1: success branch (put). */
	struct h_txn t;
	h_txn_init(&t);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__MOD, CAIRN__COMPARE__RESULT__EQUAL, r1);
	h_txn_put(&t, H_SUCCESS, "cas", "v2");
	h_txn_get(&t, H_FAILURE, "cas");
	r = txn_ok(hc, &t, true);
	H_ASSERT_INT_EQ(r->txn->n_responses, 1);
	H_ASSERT_INT_EQ(r->txn->responses[0]->response_case,
			CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_PUT);
	int64_t r2 = r->header->revision;
	H_ASSERT(r2 > r1);
	h_free(r);

	/* The same compare now fails: failure branch (range) returns the current value, and
	 * changes nothing. */
	r = txn_ok(hc, &t, false);
	H_ASSERT_INT_EQ(r->txn->n_responses, 1);
	H_ASSERT_INT_EQ(r->txn->responses[0]->response_case,
			CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_RANGE);
	Cairn__RangeResponse *rr = r->txn->responses[0]->response_range;
	H_ASSERT_INT_EQ(rr->n_kvs, 1);
	H_ASSERT(h_kv_is(rr->kvs[0], "v2"));
	H_ASSERT_INT_EQ(rr->kvs[0]->mod_revision, r2);
	H_ASSERT_INT_EQ(r->header->revision, r2);
	h_free(r);
	Cairn__Response *keep;
	const Cairn__KeyValue *kv = get_kv(hc, "cas", &keep);
	H_ASSERT(h_kv_is(kv, "v2"));
	H_ASSERT_INT_EQ(kv->version, 2);
	H_ASSERT_INT_EQ(kv->create_revision, r1);
	h_free(keep);

	/* version == 2 and create_revision == r1 (both must hold): put v3. */
	h_txn_init(&t);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__VERSION, CAIRN__COMPARE__RESULT__EQUAL, 2);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__CREATE, CAIRN__COMPARE__RESULT__EQUAL, r1);
	h_txn_put(&t, H_SUCCESS, "cas", "v3");
	h_free(txn_ok(hc, &t, true));
	/* One false compare among true ones: failure. */
	h_txn_init(&t);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__VERSION, CAIRN__COMPARE__RESULT__EQUAL, 3);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__VERSION, CAIRN__COMPARE__RESULT__LESS, 3);
	h_txn_put(&t, H_SUCCESS, "cas", "never");
	h_free(txn_ok(hc, &t, false));

	/* value == "v3": two puts at one revision. value != "v3" would have deleted "side". */
	h_txn_init(&t);
	h_txn_cmp_value(&t, "cas", CAIRN__COMPARE__RESULT__EQUAL, "v3");
	h_txn_put(&t, H_SUCCESS, "cas", "v4");
	h_txn_put(&t, H_SUCCESS, "side", "s1");
	h_txn_del(&t, H_FAILURE, "side");
	r = txn_ok(hc, &t, true);
	H_ASSERT_INT_EQ(r->txn->n_responses, 2);
	int64_t r4 = r->header->revision;
	h_free(r);
	kv = get_kv(hc, "cas", &keep);
	H_ASSERT(h_kv_is(kv, "v4"));
	H_ASSERT_INT_EQ(kv->mod_revision, r4);
	H_ASSERT_INT_EQ(kv->version, 4);
	h_free(keep);
	kv = get_kv(hc, "side", &keep);
	H_ASSERT(h_kv_is(kv, "s1"));
	H_ASSERT_INT_EQ(kv->mod_revision, r4);
	h_free(keep);

	/* value == "stale": failure branch deletes "side". */
	h_txn_init(&t);
	h_txn_cmp_value(&t, "cas", CAIRN__COMPARE__RESULT__EQUAL, "stale");
	h_txn_put(&t, H_SUCCESS, "cas", "never");
	h_txn_del(&t, H_FAILURE, "side");
	r = txn_ok(hc, &t, false);
	H_ASSERT_INT_EQ(r->txn->responses[0]->response_case,
			CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_DELETE_RANGE);
	H_ASSERT_INT_EQ(r->txn->responses[0]->response_delete_range->deleted, 1);
	h_free(r);
	kv = get_kv(hc, "side", &keep);
	H_ASSERT(kv == NULL);
	h_free(keep);
	kv = get_kv(hc, "cas", &keep);
	H_ASSERT(h_kv_is(kv, "v4"));
	h_free(keep);

	/* Create-if-absent: version == 0 holds for a missing key, once. */
	h_txn_init(&t);
	h_txn_cmp_num(&t, "lock", CAIRN__COMPARE__TARGET__VERSION, CAIRN__COMPARE__RESULT__EQUAL,
		      0);
	h_txn_put(&t, H_SUCCESS, "lock", "owner-a");
	h_txn_get(&t, H_FAILURE, "lock");
	h_free(txn_ok(hc, &t, true));
	r = txn_ok(hc, &t, false);
	H_ASSERT(h_kv_is(r->txn->responses[0]->response_range->kvs[0], "owner-a"));
	h_free(r);

	/* GREATER / NOT_EQUAL on revisions. */
	h_txn_init(&t);
	h_txn_cmp_num(&t, "cas", CAIRN__COMPARE__TARGET__MOD, CAIRN__COMPARE__RESULT__GREATER, r1);
	h_txn_cmp_value(&t, "cas", CAIRN__COMPARE__RESULT__NOT_EQUAL, "v1");
	h_txn_put(&t, H_SUCCESS, "cas", "v5");
	h_free(txn_ok(hc, &t, true));
	/* A follower's linearizable read sees the last CAS. */
	int follower = leader % 3 + 1;
	struct h_conn *fc = h_connect_member(c, follower, H_RPC_TIMEOUT_MS);
	kv = get_kv(fc, "cas", &keep);
	H_ASSERT(h_kv_is(kv, "v5"));
	h_free(keep);
	h_close(fc);
	h_close(hc);
	h_cluster_destroy(c);
}
END_TEST

/* Many requests in flight on one connection: every one is answered once, under its id. */
START_TEST(test_pipelined_requests)
{
	enum { N = 200 };
	int leader;
	struct h_cluster *c = start3(&leader);
	struct h_conn *hc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	char keys[N][32];
	for (int i = 0; i < N; i++) {
		snprintf(keys[i], sizeof(keys[i]), "pipe-%03d", i);
		struct h_req r;
		h_req_put(&r, keys[i], strlen(keys[i]), keys[i], strlen(keys[i]));
		r.req.id = 1000 + (uint64_t)i;
		H_ASSERT(h_send(hc, &r.req) == 0);
	}
	bool seen[N] = {false};
	int64_t revs[N];
	for (int i = 0; i < N; i++) {
		Cairn__Response *r = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
		H_ASSERT_OK(r);
		H_ASSERT(r->id >= 1000 && r->id < 1000 + N);
		int k = (int)(r->id - 1000);
		H_ASSERT_MSG(!seen[k], "two responses for request %d", k);
		seen[k] = true;
		revs[k] = r->header->revision;
		h_free(r);
	}
	/* Each put got its own revision. */
	for (int i = 0; i < N; i++)
		for (int j = i + 1; j < N; j++)
			H_ASSERT(revs[i] != revs[j]);
	/* A range over the prefix counts them all. */
	Cairn__RangeRequest rq = CAIRN__RANGE_REQUEST__INIT;
	rq.key.data = (uint8_t *)"pipe-";
	rq.key.len = 5;
	rq.range_end.data = (uint8_t *)"pipe.";
	rq.range_end.len = 5;
	rq.count_only = true;
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.op_case = CAIRN__REQUEST__OP_RANGE;
	req.range = &rq;
	Cairn__Response *r = h_call(hc, &req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_INT_EQ(r->range->count, N);
	int64_t rev = r->header->revision;
	h_free(r);
	h_close(hc);
	/* Every member converges on the same applied index and revision. */
	uint64_t deadline = h_now_ms() + H_LEADER_TIMEOUT_MS;
	bool same = false;
	while (!same && h_now_ms() < deadline) {
		uint64_t applied[4] = {0};
		int64_t mrev[4] = {0};
		for (int id = 1; id <= 3; id++) {
			Cairn__Response *st = h_member_status(c, id, H_RPC_TIMEOUT_MS);
			H_ASSERT_OK(st);
			applied[id] = st->status->applied_index;
			mrev[id] = st->status->revision;
			h_free(st);
		}
		same = applied[1] == applied[2] && applied[2] == applied[3] && mrev[1] == rev &&
		       mrev[2] == rev && mrev[3] == rev;
		if (!same)
			h_pause_ms(20);
	}
	H_ASSERT_MSG(same, "members did not converge on revision %lld", (long long)rev);
	/* ... and on the same key-value content: the same kv_hash at the same applied index,
	 * which is not the hash of an empty store. */
	uint64_t hashes[4] = {0}, at[4] = {0};
	for (int id = 1; id <= 3; id++) {
		struct h_conn *mc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT(mc != NULL);
		struct h_req sq;
		h_req_status(&sq);
		sq.status.kv_hash = true;
		Cairn__Response *st = h_call(mc, &sq.req, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(st);
		hashes[id] = st->status->kv_hash;
		at[id] = st->status->applied_index;
		H_ASSERT_INT_EQ(st->status->revision, rev);
		h_free(st);
		h_close(mc);
	}
	H_ASSERT_INT_EQ(at[1], at[2]);
	H_ASSERT_INT_EQ(at[2], at[3]);
	H_ASSERT_MSG(hashes[1] == hashes[2] && hashes[2] == hashes[3] && hashes[1] != 0 &&
			 hashes[1] != 0xcbf29ce484222325ull,
		     "kv_hash differs or is empty: %llx %llx %llx", (unsigned long long)hashes[1],
		     (unsigned long long)hashes[2], (unsigned long long)hashes[3]);
	h_cluster_destroy(c);
}
END_TEST

static Cairn__Response *range(struct h_conn *hc, const char *key, const char *end, int64_t limit,
			      bool keys_only, bool count_only)
{
	Cairn__RangeRequest rq = CAIRN__RANGE_REQUEST__INIT;
	rq.key.data = (uint8_t *)key;
	rq.key.len = strlen(key);
	rq.range_end.data = (uint8_t *)end;
	rq.range_end.len = end[0] == '\0' ? 1 : strlen(end); /* "" means "\0": every key >= */
	rq.limit = limit;
	rq.keys_only = keys_only;
	rq.count_only = count_only;
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.op_case = CAIRN__REQUEST__OP_RANGE;
	req.range = &rq;
	Cairn__Response *r = h_call(hc, &req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	return r;
}

/* Ranges (prefix, open-ended, limit + more, keys_only, count_only) on a follower, put and
 * delete with prev_kv. */
START_TEST(test_ranges_and_prev_kv)
{
	int leader;
	struct h_cluster *c = start3(&leader);
	struct h_conn *lc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	static const char *const keys[] = {"a", "dir/1", "dir/2", "dir/3", "dis", "z"};
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		Cairn__Response *r = h_put(lc, keys[i], keys[i], H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		h_free(r);
	}
	/* put with prev_kv returns the previous pair. */
	struct h_req p;
	h_req_put(&p, "a", 1, "a2", 2);
	p.put.prev_kv = true;
	Cairn__Response *r = h_call(lc, &p.req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(r->put->prev_kv != NULL && h_kv_is(r->put->prev_kv, "a"));
	h_free(r);

	struct h_conn *fc = h_connect_member(c, leader % 3 + 1, H_RPC_TIMEOUT_MS);
	H_ASSERT(fc != NULL);
	r = range(fc, "dir/", "dir0", 0, false, false); /* the prefix "dir/" */
	H_ASSERT_INT_EQ(r->range->n_kvs, 3);
	H_ASSERT_INT_EQ(r->range->count, 3);
	H_ASSERT(!r->range->more);
	H_ASSERT(h_kv_is(r->range->kvs[0], "dir/1") && h_kv_is(r->range->kvs[2], "dir/3"));
	h_free(r);
	r = range(fc, "dir/", "dir0", 2, false, false);
	H_ASSERT_INT_EQ(r->range->n_kvs, 2);
	H_ASSERT(r->range->more);
	H_ASSERT_INT_EQ(r->range->count, 3);
	h_free(r);
	r = range(fc, "dis", "", 0, true, false); /* every key >= "dis" */
	H_ASSERT_INT_EQ(r->range->n_kvs, 2);
	H_ASSERT_INT_EQ(r->range->kvs[0]->value.len, 0);
	H_ASSERT(r->range->kvs[1]->key.len == 1 && r->range->kvs[1]->key.data[0] == 'z');
	h_free(r);
	r = range(fc, "a", "", 0, false, true);
	H_ASSERT_INT_EQ(r->range->n_kvs, 0);
	H_ASSERT_INT_EQ(r->range->count, 6);
	h_free(r);

	/* delete_range over the prefix with prev_kv. */
	Cairn__DeleteRangeRequest d = CAIRN__DELETE_RANGE_REQUEST__INIT;
	d.key.data = (uint8_t *)"dir/";
	d.key.len = 4;
	d.range_end.data = (uint8_t *)"dir0";
	d.range_end.len = 4;
	d.prev_kv = true;
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.op_case = CAIRN__REQUEST__OP_DELETE_RANGE;
	req.delete_range = &d;
	r = h_call(lc, &req, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_INT_EQ(r->delete_range->deleted, 3);
	H_ASSERT_INT_EQ(r->delete_range->n_prev_kvs, 3);
	h_free(r);
	r = range(fc, "a", "", 0, false, true);
	H_ASSERT_INT_EQ(r->range->count, 3);
	h_free(r);
	h_close(fc);
	h_close(lc);
	h_cluster_destroy(c);
}
END_TEST

/* A member started with another cluster token is a stranger: the others refuse its
 * connections (and say so in their logs) and go on without it. */
START_TEST(test_stranger_is_refused)
{
	struct h_cluster_opts o = {.n = 3, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	h_member_start(c, 1);
	h_member_start(c, 2);
	static const char *const other[] = {"--cluster-token", "someone-else", NULL};
	H_ASSERT(h_member_try_start(c, 3, other));
	int leader = h_find_leader_among(c, (1u << 1) | (1u << 2), H_LEADER_TIMEOUT_MS);
	H_ASSERT(leader == 1 || leader == 2);
	H_ASSERT(h_put_anywhere(c, (1u << 1) | (1u << 2), "k", "v", H_LEADER_TIMEOUT_MS) > 0);
	H_ASSERT(h_wait_log(c, 1, "rejecting peer connection from member 3", H_RPC_TIMEOUT_MS));
	H_ASSERT(h_wait_log(c, 3, "rejecting peer connection from member", H_RPC_TIMEOUT_MS));
	/* The stranger never learns the key nor follows their leader. */
	struct h_conn *hc = h_connect_member(c, 3, H_RPC_TIMEOUT_MS);
	Cairn__Response *r = h_get(hc, "k", true, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv(r) == NULL);
	H_ASSERT(r->header->cluster_id != 0);
	uint64_t stranger_cid = r->header->cluster_id;
	h_free(r);
	h_close(hc);
	Cairn__Response *st = h_member_status(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(st);
	H_ASSERT(st->header->cluster_id != stranger_cid);
	h_free(st);
	h_cluster_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("integration: cluster");
	TCase *tc = h_tcase("cluster");
	h_add_test(tc, test_three_members_elect_one_leader);
	h_add_test(tc, test_put_get_through_every_member);
	h_add_test(tc, test_follower_redirects_to_leader);
	h_add_test(tc, test_cas_txn);
	h_add_test(tc, test_pipelined_requests);
	h_add_test(tc, test_ranges_and_prev_kv);
	h_add_test(tc, test_stranger_is_refused);
	suite_add_tcase(s, tc);
	return h_run_suite(s);
}
