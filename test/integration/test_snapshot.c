/* test_snapshot.c — log compaction and snapshot transfer between real members: a follower that
 * missed compacted entries is sent the state machine, installs it and converges; a transfer
 * lost in the network is retried; members restart from a compacted log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/integration/harness.h"

#define RETRY_MS    20000
#define ALL_BUT(id) (H_ALL & ~(1u << (id)))

/* Compact after 20 applied entries, keep 5: a follower that misses a few dozen writes can
 * only catch up from a snapshot. */
static const char *const SNAP_FLAGS[] = {"--snapshot-count", "20", "--snapshot-catchup-entries",
					 "5", NULL};

static void opts_init(struct h_cluster_opts *o, bool proxy)
{
	memset(o, 0, sizeof(*o));
	o->n = 3;
	o->net = proxy ? H_NET_PROXY : H_NET_LOOPBACK;
	o->nosync = true; /* durability is not under test here; restarts use SIGTERM */
	for (int i = 0; SNAP_FLAGS[i] != NULL; i++)
		o->extra[i] = SNAP_FLAGS[i];
}

static void key_of(char *k, size_t n, int i)
{
	snprintf(k, n, "snap/%04d", i);
}

/* Writes keys [from, to): each key gets "v<i>-<round>-padding...". */
static void write_keys(struct h_cluster *c, unsigned mask, int from, int to, int round)
{
	for (int i = from; i < to; i++) {
		char k[32], v[64];
		key_of(k, sizeof(k), i);
		snprintf(v, sizeof(v), "v%d-%d-%s", i, round, "padding-padding-padding-padding");
		H_ASSERT(h_put_anywhere(c, mask, k, v, RETRY_MS) > 0);
	}
}

/* Deletes `key` through the leader among `mask`. */
static void delete_key(struct h_cluster *c, unsigned mask, const char *key)
{
	int leader = h_find_leader_among(c, mask, H_LEADER_TIMEOUT_MS);
	H_ASSERT(leader != 0);
	struct h_conn *hc = h_connect_member(c, leader, H_RPC_TIMEOUT_MS);
	H_ASSERT(hc != NULL);
	struct h_txn t;
	h_txn_init(&t);
	h_txn_del(&t, H_SUCCESS, key);
	Cairn__Response *r = h_txn(hc, &t.t, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(r);
	h_free(r);
	h_close(hc);
}

/* Serializable reads on member `id` return every key as written last. */
static void assert_keys(struct h_cluster *c, int id, int n, int round)
{
	for (int i = 0; i < n; i++) {
		char k[32], v[64];
		key_of(k, sizeof(k), i);
		snprintf(v, sizeof(v), "v%d-%d-%s", i, round, "padding-padding-padding-padding");
		H_ASSERT_MSG(h_wait_value(c, id, k, v, true, RETRY_MS), "member %d: %s != %s", id,
			     k, v);
	}
}

/* A follower is down while the others write and compact well past its log: when it comes
 * back, the leader sends it a snapshot, it installs it, converges, and then follows the log
 * again; restarted, it starts from its compacted log. */
START_TEST(test_lagging_follower_gets_snapshot)
{
	struct h_cluster_opts o;
	opts_init(&o, false);
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	int f = leader % 3 + 1;
	write_keys(c, H_ALL, 0, 10, 1);
	H_ASSERT(h_put_anywhere(c, H_ALL, "snap/gone", "deleted while the follower is down",
				RETRY_MS) > 0);
	H_ASSERT(h_wait_value(c, f, "snap/0009", "v9-1-padding-padding-padding-padding", true,
			      RETRY_MS));
	H_ASSERT(h_wait_value(c, f, "snap/gone", "deleted while the follower is down", true,
			      RETRY_MS));
	h_member_stop_ok(c, f);
	write_keys(c, ALL_BUT(f), 0, 120, 2); /* ~6 compactions of 20 entries */
	delete_key(c, ALL_BUT(f), "snap/gone");
	h_member_start(c, f);
	H_ASSERT(h_wait_log(c, f, "installed a snapshot", RETRY_MS));
	assert_keys(c, f, 120, 2);
	/* The install replaced the follower's state: a key it held and the others deleted is
	 * gone (an install that merged into the old state would keep it). */
	H_ASSERT(h_wait_value(c, f, "snap/gone", NULL, true, RETRY_MS));
	h_assert_converged(c, H_ALL, RETRY_MS);
	Cairn__Response *st = h_member_status(c, f, H_RPC_TIMEOUT_MS);
	H_ASSERT_OK(st);
	H_ASSERT(st->status->snapshots_installed >= 1);
	H_ASSERT(st->status->log_first_index > 10); /* its log starts after the snapshot */
	h_free(st);
	for (int id = 1; id <= 3; id++) {
		if (id == f)
			continue;
		st = h_member_status(c, id, H_RPC_TIMEOUT_MS);
		H_ASSERT_OK(st);
		H_ASSERT(st->status->compactions >= 1);
		h_free(st);
	}
	/* After the install it follows the log again. */
	write_keys(c, H_ALL, 0, 30, 3);
	h_assert_converged(c, H_ALL, RETRY_MS);
	/* Restart from the compacted log: the data and the log position survive. */
	h_member_stop_ok(c, f);
	h_member_start(c, f);
	assert_keys(c, f, 30, 3);
	write_keys(c, H_ALL, 30, 40, 3);
	h_assert_converged(c, H_ALL, RETRY_MS);
	h_cluster_destroy(c);
}
END_TEST

/* A snapshot transfer is lost in the network: the link from the leader to the follower delays
 * everything by five seconds, and once the leader has started the stream the link turns into a
 * blackhole (which resets its connections: the bytes waiting in the delay are gone). Neither
 * side may install or count on that stream; once the link heals, the leader sends another
 * snapshot, the follower installs it and converges. */
START_TEST(test_lost_snapshot_is_sent_again)
{
	struct h_cluster_opts o;
	opts_init(&o, true);
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	int f = leader % 3 + 1;
	write_keys(c, H_ALL, 0, 5, 1);
	h_member_stop_ok(c, f);
	write_keys(c, ALL_BUT(f), 0, 80, 2);
	leader = h_find_leader_among(c, ALL_BUT(f), H_LEADER_TIMEOUT_MS);
	H_ASSERT(leader != 0);
	h_link_set_delay(c, leader, f, 5000); /* far longer than switching the link takes */
	h_member_start(c, f);
	H_ASSERT(h_wait_log(c, leader, "sending a snapshot", RETRY_MS));
	h_link_set(c, leader, f, H_LINK_BLACKHOLE);
	h_pause_ms(1500);
	H_ASSERT(!h_log_contains(c->m[f].log_path, "installed a snapshot"));
	h_heal(c);
	H_ASSERT(h_wait_log(c, f, "installed a snapshot", RETRY_MS));
	assert_keys(c, f, 80, 2);
	h_assert_converged(c, H_ALL, RETRY_MS);
	/* The first stream was lost, so the leader sent at least one more. */
	H_ASSERT_MSG(h_log_count(c->m[leader].log_path, "sending a snapshot") >= 2,
		     "the leader started only %d snapshot stream(s)",
		     h_log_count(c->m[leader].log_path, "sending a snapshot"));
	h_cluster_destroy(c);
}
END_TEST

/* A follower that stops taking the stream (here: its link delays everything by a minute, so
 * the leader's socket buffers fill and stay full) must not pin the leader's stream, and with
 * it an LMDB read transaction and the compaction point, forever: the leader drops the stalled
 * stream after CAIRN_SNAPSHOT_STALL_TIMEOUTS election timeouts, and once the link works again a
 * new stream brings the follower up to date. The state (40 values of 1 MiB) is larger than
 * what the proxy and the sockets buffer, so the stream cannot finish before the link stalls. */
START_TEST(test_stalled_snapshot_stream_is_dropped)
{
	struct h_cluster_opts o;
	opts_init(&o, true);
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	int f = leader % 3 + 1;
	h_member_stop_ok(c, f);
	size_t big = 1u << 20;
	char *val = malloc(big + 1);
	H_ASSERT(val != NULL);
	for (int i = 0; i < 40; i++) {
		char k[32];
		snprintf(k, sizeof(k), "big/%02d", i);
		memset(val, 'a' + i % 26, big);
		val[big] = '\0';
		H_ASSERT(h_put_anywhere(c, ALL_BUT(f), k, val, RETRY_MS) > 0);
	}
	free(val);
	write_keys(c, ALL_BUT(f), 0, 40, 1); /* well past the compaction point */
	leader = h_find_leader_among(c, ALL_BUT(f), H_LEADER_TIMEOUT_MS);
	H_ASSERT(leader != 0);
	/* A slow link first (about 4 MiB a second through the proxy): the stream is running
	 * when the link stalls completely. */
	h_link_set_delay(c, leader, f, 1000);
	h_member_start(c, f);
	H_ASSERT(h_wait_log(c, leader, "sending a snapshot", RETRY_MS));
	h_link_set_delay(c, leader, f, H_LINK_DELAY_MAX_MS);
	H_ASSERT(h_wait_log(c, leader, "takes no data (stalled)", RETRY_MS));
	H_ASSERT(!h_log_contains(c->m[f].log_path, "installed a snapshot"));
	/* The link works again (DROP then PASS resets its connections). */
	h_link_set(c, leader, f, H_LINK_DROP);
	h_heal(c);
	H_ASSERT(h_wait_log(c, f, "installed a snapshot", RETRY_MS));
	assert_keys(c, f, 40, 1);
	h_assert_converged(c, H_ALL, RETRY_MS);
	h_cluster_destroy(c);
}
END_TEST

/* Every member compacted its log; all stop and start again: a leader is elected from the
 * compacted logs, every write is there, and the cluster takes new writes. */
START_TEST(test_compacted_cluster_restart)
{
	struct h_cluster_opts o;
	opts_init(&o, false);
	struct h_cluster *c = h_cluster_new(&o);
	h_cluster_start(c);
	write_keys(c, H_ALL, 0, 60, 1);
	h_assert_converged(c, H_ALL, RETRY_MS);
	for (int id = 1; id <= 3; id++)
		H_ASSERT(h_wait_log(c, id, "log compacted", RETRY_MS));
	for (int id = 1; id <= 3; id++)
		h_member_stop_ok(c, id);
	for (int id = 1; id <= 3; id++)
		h_member_start(c, id);
	H_ASSERT(h_find_leader(c, H_LEADER_TIMEOUT_MS) != 0);
	for (int id = 1; id <= 3; id++)
		assert_keys(c, id, 60, 1);
	write_keys(c, H_ALL, 0, 10, 2);
	h_assert_converged(c, H_ALL, RETRY_MS);
	h_cluster_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("integration: snapshots");
	TCase *tc = h_tcase("snapshot");
	h_add_test(tc, test_lagging_follower_gets_snapshot);
	h_add_test(tc, test_lost_snapshot_is_sent_again);
	h_add_test(tc, test_compacted_cluster_restart);
	h_add_test(tc, test_stalled_snapshot_stream_is_dropped);
	suite_add_tcase(s, tc);
	return h_run_suite(s);
}
