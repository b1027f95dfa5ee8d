/* test_failover.c — crashes, pauses and partitions: kill -9 of the leader, restarts and
 * catch-up, a 5-member cluster losing two members, exactly-once retries across a leader crash,
 * and no stale linearizable read from a deposed leader. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/integration/harness.h"

#define MASK(id)      (1u << (id))
#define ALL_BUT(id)   (H_ALL & ~MASK(id))
#define RETRY_MS      20000 /* a write goes through once a new leader is elected */
#define STALE_READ_MS 3000  /* how long a read on a deposed leader is given to answer */

/* A linearizable read of `key` on member `id` returns `val`. */
static void assert_value(struct h_cluster *c, int id, const char *key, const char *val)
{
	struct h_conn *hc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_get(hc, key, false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_MSG(h_kv_is(h_kv(r), val), "member %d: %s is not %s", id, key,
		     val ? val : "absent");
	h_free(r);
	h_close(hc);
}

struct acked {
	char key[32], val[32];
};

/* kill -9 of the leader in the middle of a stream of pipelined writes: every write whose
 * acknowledgement reached the client survives; a new leader takes writes; the killed member
 * restarts and catches up. Durability is under test: members fsync. */
START_TEST(test_leader_kill_loses_no_acknowledged_write)
{
	enum { BEFORE = 20, BURST = 60, AFTER = 20 };
	struct h_cluster_opts o = {.n = 3};
	struct h_cluster *c = h_cluster_new(&o);
	int old = h_cluster_start(c);
	struct acked *acked = calloc(BEFORE + BURST + AFTER, sizeof(*acked));
	int n_acked = 0;

	struct h_conn *hc = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	for (int i = 0; i < BEFORE; i++) {
		struct acked *a = &acked[n_acked];
		snprintf(a->key, sizeof(a->key), "before-%03d", i);
		snprintf(a->val, sizeof(a->val), "b%d", i);
		Cairn__Response *r = h_put(hc, a->key, a->val, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(r);
		h_free(r);
		n_acked++;
	}
	Cairn__Response *st = h_member_status(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(st);
	uint64_t old_term = st->status->raft_term;
	h_free(st);

	/* A burst of writes in flight; the leader dies after a few are acknowledged. */
	static char bkeys[BURST][32], bvals[BURST][32];
	for (int i = 0; i < BURST; i++) {
		snprintf(bkeys[i], sizeof(bkeys[i]), "burst-%03d", i);
		snprintf(bvals[i], sizeof(bvals[i]), "x%d", i);
		struct h_req r;
		h_req_put(&r, bkeys[i], strlen(bkeys[i]), bvals[i], strlen(bvals[i]));
		r.req.id = 100 + (uint64_t)i;
		H_ASSERT(h_send(hc, &r.req) == 0);
	}
	int got = 0;
	while (got < 5) {
		Cairn__Response *r = h_recv(hc, H_RPC_TIMEOUT_MS, NULL);
		H_ASSERT_OK(r);
		int k = (int)r->id - 100;
		H_ASSERT(k >= 0 && k < BURST);
		snprintf(acked[n_acked].key, sizeof(acked[n_acked].key), "%s", bkeys[k]);
		snprintf(acked[n_acked].val, sizeof(acked[n_acked].val), "%s", bvals[k]);
		n_acked++;
		got++;
		h_free(r);
	}
	h_member_kill(c, old);
	/* Replies already in our socket buffer were sent before the crash: acknowledged too. */
	for (;;) {
		int why;
		Cairn__Response *r = h_recv(hc, 1000, &why);
		if (r == NULL)
			break;
		if (h_errcode(r) == 0) {
			int k = (int)r->id - 100;
			H_ASSERT(k >= 0 && k < BURST);
			snprintf(acked[n_acked].key, sizeof(acked[n_acked].key), "%s", bkeys[k]);
			snprintf(acked[n_acked].val, sizeof(acked[n_acked].val), "%s", bvals[k]);
			n_acked++;
		}
		h_free(r);
	}
	h_close(hc);

	int leader = h_find_leader_among(c, ALL_BUT(old), H_LEADER_TIMEOUT_MS);
	H_ASSERT_MSG(leader != 0 && leader != old, "no new leader after the leader was killed");
	st = h_member_status(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(st);
	H_ASSERT(st->status->raft_term > old_term);
	h_free(st);
	for (int i = 0; i < AFTER; i++) {
		struct acked *a = &acked[n_acked];
		snprintf(a->key, sizeof(a->key), "after-%03d", i);
		snprintf(a->val, sizeof(a->val), "a%d", i);
		H_ASSERT_MSG(h_put_anywhere(c, ALL_BUT(old), a->key, a->val, RETRY_MS) > 0,
			     "write %d after the failover was not acknowledged", i);
		n_acked++;
	}
	/* No acknowledged write is lost: linearizable reads on both survivors. */
	for (int id = 1; id <= 3; id++) {
		if (id == old)
			continue;
		struct h_conn *rc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT(rc != NULL);
		for (int i = 0; i < n_acked; i++) {
			Cairn__Response *r = h_get(rc, acked[i].key, false, H_RPC_TIMEOUT_MS);
			H_ASSERT_OK(r);
			H_ASSERT_MSG(h_kv_is(h_kv(r), acked[i].val),
				     "acknowledged write %s=%s lost on member %d", acked[i].key,
				     acked[i].val, id);
			h_free(r);
		}
		h_close(rc);
	}
	/* The killed member restarts and catches up: its local reads show every write. */
	h_member_start(c, old);
	for (int i = 0; i < n_acked; i++)
		H_ASSERT_MSG(h_wait_value(c, old, acked[i].key, acked[i].val, true, RETRY_MS),
			     "restarted member %d never showed %s=%s", old, acked[i].key,
			     acked[i].val);
	/* It rejoins as a follower of the current leader. */
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	free(acked);
	h_cluster_destroy(c);
}
END_TEST

/* Five members survive losing two (the leader among them); a third loss stops writes; a
 * restart brings the quorum back. */
START_TEST(test_five_members_survive_two_kills)
{
	struct h_cluster_opts o = {.n = 5};
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	H_ASSERT(h_put_anywhere(c, H_ALL, "k0", "v0", RETRY_MS) > 0);

	int other = leader % 5 + 1;
	h_member_kill(c, leader);
	h_member_kill(c, other);
	unsigned alive = h_alive_mask(c);
	int l2 = h_find_leader_among(c, alive, H_LEADER_TIMEOUT_MS);
	H_ASSERT_MSG(l2 != 0 && l2 != leader && l2 != other, "no leader among 3 of 5");
	H_ASSERT(h_put_anywhere(c, alive, "k1", "v1", RETRY_MS) > 0);
	for (int id = 1; id <= 5; id++)
		if (alive & MASK(id)) {
			assert_value(c, id, "k0", "v0");
			assert_value(c, id, "k1", "v1");
		}

	/* Two of five left: no quorum, so no write may be acknowledged. */
	h_member_kill(c, l2);
	alive = h_alive_mask(c);
	for (int id = 1; id <= 5; id++) {
		if (!(alive & MASK(id)))
			continue;
		struct h_conn *hc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT(hc != NULL);
		Cairn__Response *r = h_put(hc, "k2", "minority", 2000);
		H_ASSERT_MSG(r == NULL || h_errcode(r) != 0,
			     "member %d acknowledged a write without a quorum", id);
		h_free(r);
		h_close(hc);
	}
	/* A restart restores the quorum of three. */
	h_member_start(c, leader);
	alive = h_alive_mask(c);
	H_ASSERT(h_put_anywhere(c, alive, "k3", "v3", RETRY_MS) > 0);
	H_ASSERT(h_wait_value(c, leader, "k1", "v1", true, RETRY_MS));
	H_ASSERT(h_wait_value(c, leader, "k3", "v3", true, RETRY_MS));
	h_cluster_destroy(c);
}
END_TEST

/* Sends put(key, val) with (client_id, seq) to whichever member leads among `mask`, until one
 * acknowledges it. Returns the acknowledging response. */
static Cairn__Response *retry_seq(struct h_cluster *c, unsigned mask, const char *key,
				  const char *val, uint64_t client_id, uint64_t seq)
{
	uint64_t deadline = h_now_ms() + RETRY_MS;
	int target = 0;
	while (h_now_ms() < deadline) {
		if (target == 0)
			target = h_find_leader_among(c, mask, H_LEADER_TIMEOUT_MS);
		H_ASSERT(target != 0);
		struct h_conn *hc = h_connect_member(c, target, H_RPC_TIMEOUT_MS);
		Cairn__Response *r =
		    hc ? h_put_seq(hc, key, val, client_id, seq, H_RPC_TIMEOUT_MS) : NULL;
		h_close(hc);
		if (r != NULL && h_errcode(r) == 0)
			return r;
		int code = h_errcode(r);
		H_ASSERT_MSG(r == NULL || code == CAIRN__ERROR_CODE__NOT_LEADER ||
				 code == CAIRN__ERROR_CODE__NO_LEADER ||
				 code == CAIRN__ERROR_CODE__LEADERSHIP_LOST ||
				 code == CAIRN__ERROR_CODE__TIMEOUT,
			     "retry of (%llu, %llu) failed: %s (%s)", (unsigned long long)client_id,
			     (unsigned long long)seq, h_errname(code), h_errmsg(r));
		h_free(r);
		target = 0;
		h_pause_ms(20);
	}
	H_ASSERT_MSG(0, "retry of (%llu, %llu) never acknowledged", (unsigned long long)client_id,
		     (unsigned long long)seq);
	return NULL;
}

/* Store revision as seen by a linearizable read on `id`. */
static int64_t revision_on(struct h_cluster *c, int id)
{
	struct h_conn *hc = h_connect_member(c, id, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_get(hc, "any", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	int64_t rev = r->header->revision;
	h_free(r);
	h_close(hc);
	return rev;
}

/* The key's version and the store's revision after the retry show the write applied once. */
static void check_once(struct h_cluster *c, int leader, const char *key, const char *val,
		       int64_t rev_before)
{
	struct h_conn *hc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_get(hc, key, false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	const Cairn__KeyValue *kv = h_kv(r);
	H_ASSERT(h_kv_is(kv, val));
	H_ASSERT_MSG(kv->version == 1, "the retried put was applied %lld times",
		     (long long)kv->version);
	H_ASSERT_INT_EQ(kv->mod_revision, rev_before + 1);
	H_ASSERT_INT_EQ(r->header->revision, rev_before + 1);
	h_free(r);
	h_close(hc);
}

/* Exactly-once (§6.3): a put with (client_id, seq) acknowledged by a leader that then dies is
 * retried on the new leader with the same (client_id, seq): the original reply comes back and
 * the put is not applied again. Older sequence numbers and unknown sessions are refused. */
START_TEST(test_retry_after_leader_kill_applies_once)
{
	struct h_cluster_opts o = {.n = 3};
	struct h_cluster *c = h_cluster_new(&o);
	int old = h_cluster_start(c);
	struct h_conn *hc = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_session(hc, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_INT_EQ(r->op_case, CAIRN__RESPONSE__OP_SESSION);
	uint64_t cid = r->session->client_id;
	H_ASSERT(cid != 0);
	h_free(r);
	int64_t rev0 = revision_on(c, old);

	r = h_put_seq(hc, "once", "v", cid, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	int64_t rev1 = r->header->revision;
	H_ASSERT_INT_EQ(rev1, rev0 + 1);
	h_free(r);
	h_member_kill(c, old);
	h_close(hc);

	r = retry_seq(c, ALL_BUT(old), "once", "v", cid, 1);
	h_note("retry answered by %llu with revision %lld (original %lld)",
	       (unsigned long long)r->header->member_id, (long long)r->header->revision,
	       (long long)rev1);
	H_ASSERT_MSG(r->header->revision == rev1,
		     "the retry got revision %lld, the original reply had %lld",
		     (long long)r->header->revision, (long long)rev1);
	int leader = (int)r->header->member_id;
	h_free(r);
	check_once(c, leader, "once", "v", rev0);

	/* Same session, next sequence number: applied. Going back: refused. */
	hc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	r = h_put_seq(hc, "once", "w", cid, 2, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT_INT_EQ(r->header->revision, rev1 + 1);
	h_free(r);
	r = h_put_seq(hc, "once", "stale", cid, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__STALE_SEQUENCE);
	h_free(r);
	r = h_put_seq(hc, "once", "stranger", cid + 1000000, 1, H_RPC_TIMEOUT_MS);
	H_ASSERT_ERR(r, CAIRN__ERROR_CODE__SESSION_EXPIRED);
	h_free(r);
	r = h_get(hc, "once", false, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv_is(h_kv(r), "w"));
	H_ASSERT_INT_EQ(h_kv(r)->version, 2);
	h_free(r);
	h_close(hc);
	/* The restarted member agrees. */
	h_member_start(c, old);
	H_ASSERT(h_wait_value(c, old, "once", "w", true, RETRY_MS));
	h_cluster_destroy(c);
}
END_TEST

/* The same, but the leader dies right after the put is sent, before its reply is read: the
 * outcome is unknown to the client, and the retry must apply the put exactly once either way.
 */
START_TEST(test_retry_of_unanswered_write_applies_once)
{
	struct h_cluster_opts o = {.n = 3};
	struct h_cluster *c = h_cluster_new(&o);
	int old = h_cluster_start(c);
	struct h_conn *hc = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	Cairn__Response *r = h_session(hc, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	uint64_t cid = r->session->client_id;
	h_free(r);
	int64_t rev0 = revision_on(c, old);

	struct h_req pr;
	h_req_put(&pr, "unanswered", 10, "v", 1);
	pr.req.client_id = cid;
	pr.req.seq = 1;
	H_ASSERT(h_send(hc, &pr.req) == 0);
	h_member_kill(c, old);
	h_close(hc);

	r = retry_seq(c, ALL_BUT(old), "unanswered", "v", cid, 1);
	H_ASSERT_INT_EQ(r->header->revision, rev0 + 1);
	int leader = (int)r->header->member_id;
	h_free(r);
	check_once(c, leader, "unanswered", "v", rev0);
	/* And once more, on the same new leader: still once. */
	r = retry_seq(c, ALL_BUT(old), "unanswered", "v", cid, 1);
	H_ASSERT_INT_EQ(r->header->revision, rev0 + 1);
	h_free(r);
	check_once(c, leader, "unanswered", "v", rev0);
	h_cluster_destroy(c);
}
END_TEST

/* A leader cut off from the others by the proxy must not serve a stale linearizable read:
 * after the majority elects a new leader and a new value is written there, a linearizable
 * read sent to the old leader fails, times out, or returns the new value — never the old. */
START_TEST(test_partitioned_leader_serves_no_stale_read)
{
	struct h_cluster_opts o = {.n = 3, .net = H_NET_PROXY, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	int old = h_cluster_start(c);
	H_ASSERT(h_put_anywhere(c, MASK(old), "x", "old", RETRY_MS) > 0);
	for (int id = 1; id <= 3; id++)
		H_ASSERT(h_wait_value(c, id, "x", "old", true, RETRY_MS));
	/* Client connections go straight to the members; only peer traffic is cut. */
	struct h_conn *oc = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(oc != NULL);

	h_isolate(c, old, H_LINK_DROP);
	int leader = h_find_leader_among(c, ALL_BUT(old), H_LEADER_TIMEOUT_MS);
	H_ASSERT_MSG(leader != 0 && leader != old, "the majority did not elect a new leader");
	H_ASSERT(h_put_anywhere(c, ALL_BUT(old), "x", "new", RETRY_MS) > 0);

	/* The partition is real: the old leader's local state still has the old value. */
	Cairn__Response *r = h_get(oc, "x", true, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv_is(h_kv(r), "old"));
	h_free(r);
	/* But a linearizable read there must not return it. */
	h_assert_not_stale(oc, old, "x", "old", "new", STALE_READ_MS);
	struct h_conn *oc2 = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(oc2 != NULL);
	h_assert_not_stale(oc2, old, "x", "old", "new", STALE_READ_MS);
	h_close(oc2);
	/* Nor may it acknowledge a write. */
	r = h_put(oc, "x", "from-the-minority", 2000);
	H_ASSERT_MSG(r == NULL || h_errcode(r) != 0, "an isolated member acknowledged a write");
	h_free(r);

	/* Healed: the old leader follows the new one and reads the new value. */
	h_heal(c);
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	H_ASSERT(h_wait_value(c, old, "x", "new", false, RETRY_MS));
	H_ASSERT(h_wait_value(c, old, "x", "new", true, RETRY_MS));
	h_close(oc);
	h_cluster_destroy(c);
}
END_TEST

/* The same with SIGSTOP: a paused leader wakes up still believing it leads; a linearizable
 * read sent to it the moment it resumes must not return the value overwritten meanwhile. */
START_TEST(test_paused_leader_serves_no_stale_read)
{
	struct h_cluster_opts o = {.n = 3, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	int old = h_cluster_start(c);
	H_ASSERT(h_put_anywhere(c, MASK(old), "y", "old", RETRY_MS) > 0);
	struct h_conn *oc = h_connect_member(c, old, H_RPC_TIMEOUT_MS);
	H_ASSERT(oc != NULL);
	h_member_pause(c, old);
	int leader = h_find_leader_among(c, ALL_BUT(old), H_LEADER_TIMEOUT_MS);
	H_ASSERT_MSG(leader != 0 && leader != old, "no new leader while the old one is paused");
	H_ASSERT(h_put_anywhere(c, ALL_BUT(old), "y", "new", RETRY_MS) > 0);
	/* Queue the read while it is still stopped, then wake it up. */
	struct h_req rq;
	h_req_get(&rq, "y", false);
	H_ASSERT(h_send(oc, &rq.req) == 0);
	h_member_resume(c, old);
	Cairn__Response *r = h_wait(oc, rq.req.id, STALE_READ_MS, NULL);
	h_note("read queued on the paused leader: %s",
	       r == NULL ? "no answer" : h_errname(h_errcode(r)));
	if (r != NULL && h_errcode(r) == 0)
		H_ASSERT_MSG(h_kv_is(h_kv(r), "new"),
			     "resumed old leader returned a stale linearizable read");
	h_free(r);
	h_assert_not_stale(oc, old, "y", "old", "new", STALE_READ_MS);
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	H_ASSERT(h_wait_value(c, old, "y", "new", true, RETRY_MS));
	h_close(oc);
	h_cluster_destroy(c);
}
END_TEST

/* A follower behind a blackhole (its connections stay open but every byte is lost, both ways)
 * misses writes; the cluster goes on; once healed it catches up. */
START_TEST(test_blackholed_follower_catches_up)
{
	struct h_cluster_opts o = {.n = 3, .net = H_NET_PROXY, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	int f = leader % 3 + 1;
	H_ASSERT(h_put_anywhere(c, H_ALL, "z0", "v0", RETRY_MS) > 0);
	H_ASSERT(h_wait_value(c, f, "z0", "v0", true, RETRY_MS));
	h_isolate(c, f, H_LINK_BLACKHOLE);
	for (int i = 1; i <= 10; i++) {
		char k[32], v[32];
		snprintf(k, sizeof(k), "z%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		H_ASSERT(h_put_anywhere(c, ALL_BUT(f), k, v, RETRY_MS) > 0);
	}
	/* It cannot have seen them. */
	struct h_conn *fc = h_connect_member(c, f, H_RPC_TIMEOUT_MS);
	Cairn__Response *r = h_get(fc, "z10", true, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	H_ASSERT(h_kv(r) == NULL);
	h_free(r);
	h_close(fc);
	h_heal(c);
	H_ASSERT(h_wait_value(c, f, "z10", "v10", true, RETRY_MS));
	H_ASSERT(h_wait_value(c, f, "z1", "v1", true, RETRY_MS));
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	h_cluster_destroy(c);
}
END_TEST

/* Every member stops (SIGTERM) and starts again: the cluster elects a leader and has every
 * acknowledged write (fsync on). */
START_TEST(test_whole_cluster_restart)
{
	struct h_cluster_opts o = {.n = 3};
	struct h_cluster *c = h_cluster_new(&o);
	h_cluster_start(c);
	for (int i = 0; i < 10; i++) {
		char k[32], v[32];
		snprintf(k, sizeof(k), "r%d", i);
		snprintf(v, sizeof(v), "v%d", i);
		H_ASSERT(h_put_anywhere(c, H_ALL, k, v, RETRY_MS) > 0);
	}
	for (int id = 1; id <= 3; id++)
		h_member_stop_ok(c, id);
	for (int id = 3; id >= 1; id--)
		h_member_start(c, id);
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	for (int id = 1; id <= 3; id++)
		for (int i = 0; i < 10; i++) {
			char k[32], v[32];
			snprintf(k, sizeof(k), "r%d", i);
			snprintf(v, sizeof(v), "v%d", i);
			H_ASSERT(h_wait_value(c, id, k, v, false, RETRY_MS));
		}
	H_ASSERT(h_put_anywhere(c, H_ALL, "after", "restart", RETRY_MS) > 0);
	h_cluster_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("integration: failover");
	TCase *tc = h_tcase("failover");
	h_add_test(tc, test_leader_kill_loses_no_acknowledged_write);
	h_add_test(tc, test_five_members_survive_two_kills);
	h_add_test(tc, test_retry_after_leader_kill_applies_once);
	h_add_test(tc, test_retry_of_unanswered_write_applies_once);
	h_add_test(tc, test_partitioned_leader_serves_no_stale_read);
	h_add_test(tc, test_paused_leader_serves_no_stale_read);
	h_add_test(tc, test_blackholed_follower_catches_up);
	h_add_test(tc, test_whole_cluster_restart);
	suite_add_tcase(s, tc);
	return h_run_suite(s);
}
