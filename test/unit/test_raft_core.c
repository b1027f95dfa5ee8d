/* test_raft_core.c — unit tests of the Raft core's API and rules, driven by hand-built messages. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "raft/raft.h"

/* ---- a tiny synchronous harness: persist instantly, deliver in FIFO order ---- */

#define MAXN 7
#define MAXQ 4096

static uint64_t rng_state;
static uint64_t test_rand(void *ctx)
{
	(void)ctx;
	/* splitmix64 */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

struct node {
	struct raft *r;
	raft_index applied;
	size_t n_applied_normal;
	struct raft_read reads[64];
	size_t n_reads;
	bool down;
	raft_id snap_asks[64]; /* send_snapshot ids, in the order handed out */
	size_t n_snap_asks;
};

struct net {
	struct node nodes[MAXN + 1];
	size_t n;
	struct raft_message q[MAXQ];
	size_t qn;
	uint64_t now;
	bool cut[MAXN + 1][MAXN + 1]; /* cut[a][b]: messages a -> b are dropped */
};

static struct raft_server servers[MAXN];

static void make_config(struct raft_config *c, raft_id id, size_t n)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < n; i++)
		servers[i] = (struct raft_server){.id = i + 1, .voter = true};
	c->id = id;
	c->configuration.servers = servers;
	c->configuration.n = n;
	c->election_timeout_ms = 1000;
	c->heartbeat_ms = 100;
	c->rand = test_rand;
}

static void net_init(struct net *net, size_t n)
{
	memset(net, 0, sizeof(*net));
	rng_state = 42;
	net->n = n;
	for (size_t i = 1; i <= n; i++) {
		struct raft_config c;
		make_config(&c, i, n);
		ck_assert_int_eq(raft_init(&net->nodes[i].r, &c, NULL, 0), 0);
	}
}

static void net_close(struct net *net)
{
	for (size_t i = 0; i < net->qn; i++)
		raft_message_free(&net->q[i]);
	for (size_t i = 1; i <= net->n; i++)
		raft_close(net->nodes[i].r);
}

static void enqueue(struct net *net, const struct raft_message *m)
{
	if (net->cut[m->from][m->to])
		return;
	ck_assert_uint_lt(net->qn, MAXQ);
	ck_assert_int_eq(raft_message_copy(&net->q[net->qn++], m), 0);
}

/* Takes and processes one node's update: persists at once, queues messages. */
static void flush(struct net *net, size_t i)
{
	struct node *nd = &net->nodes[i];
	struct raft_update u;
	ck_assert_int_eq(raft_take_update(nd->r, &u), 0);
	for (size_t k = 0; k < u.n_messages; k++)
		enqueue(net, &u.messages[k]);
	if (u.n_entries > 0)
		raft_persisted(nd->r, net->now, u.entries[u.n_entries - 1].term,
			       u.entries[u.n_entries - 1].index);
	for (size_t k = 0; k < u.n_messages_after_persist; k++)
		enqueue(net, &u.messages_after_persist[k]);
	for (size_t k = 0; k < u.n_committed; k++) {
		ck_assert_uint_eq(u.committed[k].index, nd->applied + 1);
		nd->applied = u.committed[k].index;
		if (u.committed[k].type == RAFT_ENTRY_NORMAL)
			nd->n_applied_normal++;
	}
	for (size_t k = 0; k < u.n_reads; k++) {
		ck_assert_uint_lt(nd->n_reads, 64);
		nd->reads[nd->n_reads++] = u.reads[k];
	}
	for (size_t k = 0; k < u.n_send_snapshot; k++) {
		ck_assert_uint_lt(nd->n_snap_asks, 64);
		nd->snap_asks[nd->n_snap_asks++] = u.send_snapshot[k];
	}
}

/* Delivers queued messages until nothing is left (bounded). */
static void settle(struct net *net)
{
	for (int rounds = 0; rounds < 100000; rounds++) {
		bool any = false;
		for (size_t i = 1; i <= net->n; i++)
			if (!net->nodes[i].down && raft_has_update(net->nodes[i].r)) {
				flush(net, i);
				any = true;
			}
		if (net->qn > 0) {
			struct raft_message m = net->q[0];
			memmove(net->q, net->q + 1, (net->qn - 1) * sizeof(net->q[0]));
			net->qn--;
			if (!net->nodes[m.to].down && !net->cut[m.from][m.to])
				ck_assert_int_eq(raft_step(net->nodes[m.to].r, net->now, &m), 0);
			raft_message_free(&m);
			any = true;
		}
		if (!any)
			return;
	}
	ck_abort_msg("network did not settle");
}

static void advance(struct net *net, uint64_t ms)
{
	uint64_t end = net->now + ms;
	while (net->now < end) {
		net->now += 10;
		for (size_t i = 1; i <= net->n; i++)
			if (!net->nodes[i].down)
				ck_assert_int_eq(raft_tick(net->nodes[i].r, net->now), 0);
		settle(net);
	}
}

static size_t leader_of(struct net *net)
{
	size_t found = 0;
	for (size_t i = 1; i <= net->n; i++)
		if (!net->nodes[i].down && raft_role(net->nodes[i].r) == RAFT_LEADER)
			found = i;
	return found;
}

static void propose_str(struct net *net, size_t i, const char *s, int want)
{
	struct raft_entry e = {.data = s, .len = strlen(s)};
	ck_assert_int_eq(raft_propose(net->nodes[i].r, net->now, &e, 1, NULL, NULL), want);
}

/* ---- tests --------------------------------------------------------------- */

START_TEST(test_init_errors)
{
	struct raft *r = NULL;
	struct raft_config c;
	make_config(&c, 1, 3);
	c.id = 0;
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), RAFT_EINVAL);
	make_config(&c, 9, 3);
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), RAFT_EINVAL);
	make_config(&c, 1, 3);
	c.rand = NULL;
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), RAFT_EINVAL);
	make_config(&c, 1, 3);
	c.heartbeat_ms = 2000;
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), RAFT_EINVAL);
	make_config(&c, 1, 3);
	servers[1].id = 1; /* duplicate */
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), RAFT_EINVAL);

	/* A log whose terms go backwards, or applied beyond the log, is refused. */
	make_config(&c, 1, 3);
	struct raft_entry ents[2] = {{.term = 2, .index = 1}, {.term = 1, .index = 2}};
	struct raft_initial_state st = {.term = 2, .entries = ents, .n_entries = 2};
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), RAFT_EBADSTATE);
	ents[1].term = 2;
	st.applied = 5;
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), RAFT_EBADSTATE);
	st.applied = 1;
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	ck_assert_uint_eq(raft_last_index(r), 2);
	ck_assert_uint_eq(raft_commit_index(r), 1);
	raft_close(r);
	ck_assert_str_eq(raft_strerror(RAFT_ENOTLEADER), "not the leader");
	ck_assert_str_eq(raft_strerror(12345), "unknown raft error");
}
END_TEST

START_TEST(test_single_node_commits_after_persist)
{
	struct net net;
	net_init(&net, 1);
	struct raft *r = net.nodes[1].r;
	ck_assert_int_eq(raft_tick(r, 0), 0); /* a lone voter campaigns at once */
	ck_assert_int_eq(raft_role(r), RAFT_LEADER);
	ck_assert_uint_eq(raft_current_term(r), 1);

	struct raft_update u;
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.term, 1);
	ck_assert_uint_eq(u.vote, 1);
	ck_assert_uint_eq(u.n_entries, 1); /* the no-op */
	ck_assert_int_eq(u.entries[0].type, RAFT_ENTRY_NOOP);
	ck_assert_uint_eq(u.n_committed, 0); /* not durable yet */
	ck_assert(u.soft_state_changed);

	struct raft_entry e = {.data = "x", .len = 1};
	raft_term t;
	raft_index idx;
	ck_assert_int_eq(raft_propose(r, 1, &e, 1, &t, &idx), 0);
	ck_assert_uint_eq(idx, 2);
	ck_assert_uint_eq(raft_commit_index(r), 0);
	raft_persisted(r, 1, 1, 1);
	ck_assert_uint_eq(raft_commit_index(r), 1);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_uint_eq(u.entries[0].index, 2);
	ck_assert_uint_eq(u.n_committed, 1);
	raft_persisted(r, 2, 1, 2);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 1);
	ck_assert_uint_eq(u.committed[0].index, 2);
	ck_assert_mem_eq(u.committed[0].data, "x", 1);

	/* A stale persist report (wrong term) is ignored. */
	raft_persisted(r, 3, 7, 2);
	ck_assert_uint_eq(raft_persisted_index(r), 2);

	/* Reads are confirmed at once by a lone voter, at the commit index. */
	ck_assert_int_eq(raft_read_index(r, 3, 77), 0);
	ck_assert(raft_has_update(r));
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 1);
	ck_assert_uint_eq(u.reads[0].ctx, 77);
	ck_assert_uint_eq(u.reads[0].index, 2);
	ck_assert_int_eq(u.reads[0].err, 0);
	net_close(&net);
}
END_TEST

START_TEST(test_three_nodes_elect_and_replicate)
{
	struct net net;
	net_init(&net, 3);
	advance(&net, 3000);
	size_t l = leader_of(&net);
	ck_assert_uint_ne(l, 0);
	for (size_t i = 1; i <= 3; i++) {
		ck_assert_uint_eq(raft_leader(net.nodes[i].r), l);
		ck_assert_uint_eq(raft_current_term(net.nodes[i].r),
				  raft_current_term(net.nodes[l].r));
	}
	size_t f = l % 3 + 1;
	propose_str(&net, f, "no", RAFT_ENOTLEADER);
	for (int k = 0; k < 10; k++)
		propose_str(&net, l, "v", 0);
	settle(&net);
	advance(&net, 200);
	for (size_t i = 1; i <= 3; i++) {
		ck_assert_uint_eq(net.nodes[i].n_applied_normal, 10);
		ck_assert_uint_eq(raft_commit_index(net.nodes[i].r), 11);
	}
	struct raft_stats st;
	raft_get_stats(net.nodes[l].r, &st);
	ck_assert_uint_ge(st.became_leader, 1);
	net_close(&net);
}
END_TEST

START_TEST(test_propose_limits)
{
	struct net net;
	net_init(&net, 1);
	struct raft *r = net.nodes[1].r;
	raft_tick(r, 0);
	ck_assert_int_eq(raft_propose(r, 0, NULL, 0, NULL, NULL), RAFT_EINVAL);
	struct raft_entry e = {.data = NULL, .len = (2u << 20) + 1};
	ck_assert_int_eq(raft_propose(r, 0, &e, 1, NULL, NULL), RAFT_ETOOBIG);
	ck_assert_uint_eq(raft_last_index(r), 1);
	net_close(&net);
}
END_TEST

/* Follower side of AppendEntries: consistency check, hint, truncation, commit cap. */
START_TEST(test_follower_append_rules)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 1;
	make_config(&c, 2, 3);
	struct raft_entry ents[3] = {{.term = 1}, {.term = 1}, {.term = 2}};
	struct raft_initial_state st = {.term = 2, .entries = ents, .n_entries = 3};
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	struct raft_update u;

	/* prev (3, term 3) does not match: reject with a hint at or below 3. */
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 1,
				 .to = 2,
				 .term = 3,
				 .prev_index = 3,
				 .prev_term = 3,
				 .commit = 0};
	ck_assert_int_eq(raft_step(r, 1, &m), 0);
	ck_assert_uint_eq(raft_current_term(r), 3);
	ck_assert_uint_eq(raft_leader(r), 1);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.n_messages, 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].hint_index, 3);
	ck_assert_uint_eq(u.messages_after_persist[0].hint_term, 2);

	/* prev (10, 3) beyond our log: hint = our last index. */
	m.prev_index = 10;
	ck_assert_int_eq(raft_step(r, 1, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].hint_index, 3);

	/* prev (2, 1) matches; entry 3 conflicts (term 3 vs 2): truncate and append. */
	struct raft_entry ne[2] = {
	    {.term = 3, .index = 3, .type = RAFT_ENTRY_NORMAL, .data = "a", .len = 1},
	    {.term = 3, .index = 4, .type = RAFT_ENTRY_NORMAL, .data = "b", .len = 1}};
	m.prev_index = 2;
	m.prev_term = 1;
	m.entries = ne;
	m.n_entries = 2;
	m.commit = 10; /* capped at the last new entry */
	ck_assert_int_eq(raft_step(r, 1, &m), 0);
	ck_assert_uint_eq(raft_commit_index(r), 4);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.truncate_from, 3);
	ck_assert_uint_eq(u.n_entries, 2);
	ck_assert_uint_eq(u.entries[0].index, 3);
	ck_assert_uint_eq(u.entries[0].term, 3);
	ck_assert(!u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].index, 4);
	/* Committed entries come out only once persisted. */
	ck_assert_uint_eq(u.n_committed, 2);
	ck_assert_uint_eq(u.committed[1].index, 2);
	raft_persisted(r, 2, 3, 4);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 2);
	ck_assert_uint_eq(u.committed[1].index, 4);

	/* A duplicate of the same message changes nothing. */
	ck_assert_int_eq(raft_step(r, 3, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 0);
	ck_assert_uint_eq(u.truncate_from, 0);

	/* A message from a lower term gets a rejection carrying our term. */
	m.term = 1;
	ck_assert_int_eq(raft_step(r, 3, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert_uint_eq(u.messages_after_persist[0].term, 3);
	ck_assert(u.messages_after_persist[0].reject);
	raft_close(r);
}
END_TEST

/* Voting: one vote per term, up-to-date check, vote waits for persistence. */
START_TEST(test_vote_rules)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 2;
	make_config(&c, 1, 3);
	struct raft_entry ents[2] = {{.term = 1}, {.term = 2}};
	struct raft_initial_state st = {.term = 2, .entries = ents, .n_entries = 2};
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	struct raft_update u;

	/* Stale log (last term 1): rejected even in a higher term. */
	struct raft_message v = {.type = RAFT_MSG_VOTE,
				 .from = 2,
				 .to = 1,
				 .term = 3,
				 .last_log_index = 9,
				 .last_log_term = 1};
	ck_assert_int_eq(raft_step(r, 5000, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(u.messages_after_persist[0].reject);
	ck_assert_uint_eq(raft_current_term(r), 3);

	/* Up to date: granted, and the grant waits for the vote to be persisted. */
	v.last_log_term = 2;
	v.last_log_index = 2;
	ck_assert_int_eq(raft_step(r, 5000, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.vote, 2);
	ck_assert_uint_eq(u.n_messages, 0);
	ck_assert(!u.messages_after_persist[0].reject);

	/* Another candidate, same term: refused. */
	v.from = 3;
	ck_assert_int_eq(raft_step(r, 5000, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.messages_after_persist[0].reject);

	/* A pre-vote does not change our term and may be granted for a future term. */
	struct raft_message pv = {.type = RAFT_MSG_PREVOTE,
				  .from = 3,
				  .to = 1,
				  .term = 4,
				  .last_log_index = 2,
				  .last_log_term = 2};
	ck_assert_int_eq(raft_step(r, 5000, &pv), 0);
	ck_assert_uint_eq(raft_current_term(r), 3);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 1); /* pre-vote answers need no persistence */
	ck_assert(!u.messages[0].reject);
	ck_assert_uint_eq(u.messages[0].term, 4);
	raft_close(r);
}
END_TEST

/* A follower that heard from its leader recently ignores vote requests (§4.2.3) unless the
 * request comes from a leadership transfer. */
START_TEST(test_leader_lease_ignores_votes)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 3;
	make_config(&c, 2, 3);
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), 0);
	struct raft_update u;
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
	ck_assert_int_eq(raft_step(r, 100, &hb), 0);
	raft_take_update(r, &u);
	struct raft_message v = {.type = RAFT_MSG_VOTE, .from = 3, .to = 2, .term = 2};
	ck_assert_int_eq(raft_step(r, 200, &v), 0);
	ck_assert_uint_eq(raft_current_term(r), 1);
	raft_take_update(r, &u);
	ck_assert_uint_eq(u.n_messages + u.n_messages_after_persist, 0);
	v.transfer = true;
	ck_assert_int_eq(raft_step(r, 200, &v), 0);
	ck_assert_uint_eq(raft_current_term(r), 2);
	raft_take_update(r, &u);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(!u.messages_after_persist[0].reject);
	raft_close(r);
}
END_TEST

START_TEST(test_read_index_follower_forwards)
{
	struct net net;
	net_init(&net, 3);
	advance(&net, 3000);
	size_t l = leader_of(&net);
	size_t f = l % 3 + 1;
	ck_assert_int_eq(raft_read_index(net.nodes[f].r, net.now, 5), 0);
	ck_assert_int_eq(raft_read_index(net.nodes[l].r, net.now, 6), 0);
	settle(&net);
	ck_assert_uint_eq(net.nodes[f].n_reads, 1);
	ck_assert_uint_eq(net.nodes[f].reads[0].ctx, 5);
	ck_assert_int_eq(net.nodes[f].reads[0].err, 0);
	ck_assert_uint_eq(net.nodes[f].reads[0].index, raft_commit_index(net.nodes[l].r));
	ck_assert_uint_eq(net.nodes[l].n_reads, 1);
	ck_assert_uint_eq(net.nodes[l].reads[0].ctx, 6);
	net_close(&net);
}
END_TEST

/* A leader cut off from everyone never confirms a read; it fails when the leader steps down
 * through check-quorum. */
START_TEST(test_read_index_isolated_leader_fails)
{
	struct net net;
	net_init(&net, 3);
	advance(&net, 3000);
	size_t l = leader_of(&net);
	for (size_t i = 1; i <= 3; i++)
		if (i != l)
			net.cut[l][i] = net.cut[i][l] = true;
	ck_assert_int_eq(raft_read_index(net.nodes[l].r, net.now, 9), 0);
	advance(&net, 500);
	ck_assert_uint_eq(net.nodes[l].n_reads, 0);
	advance(&net, 3000);
	ck_assert_int_ne(raft_role(net.nodes[l].r), RAFT_LEADER);
	ck_assert_uint_eq(net.nodes[l].n_reads, 1);
	ck_assert_int_eq(net.nodes[l].reads[0].err, RAFT_ELEADERLOST);
	net_close(&net);
}
END_TEST

START_TEST(test_transfer)
{
	struct net net;
	net_init(&net, 3);
	advance(&net, 3000);
	size_t l = leader_of(&net);
	size_t t = l % 3 + 1;
	raft_term before = raft_current_term(net.nodes[l].r);
	ck_assert_int_eq(raft_transfer_leadership(net.nodes[l].r, net.now, l), RAFT_ENOTVOTER);
	ck_assert_int_eq(raft_transfer_leadership(net.nodes[t].r, net.now, l), RAFT_ENOTLEADER);
	ck_assert_int_eq(raft_transfer_leadership(net.nodes[l].r, net.now, t), 0);
	propose_str(&net, l, "x", RAFT_ETRANSFER);
	settle(&net);
	ck_assert_uint_eq(leader_of(&net), t);
	ck_assert_uint_eq(raft_current_term(net.nodes[t].r), before + 1);
	net_close(&net);
}
END_TEST

START_TEST(test_message_copy)
{
	struct raft_entry e[2] = {{.term = 1, .index = 1, .data = "ab", .len = 2},
				  {.term = 1, .index = 2, .data = NULL, .len = 0}};
	struct raft_message m = {.type = RAFT_MSG_APPEND, .entries = e, .n_entries = 2};
	struct raft_message c;
	ck_assert_int_eq(raft_message_copy(&c, &m), 0);
	ck_assert_ptr_ne(c.entries, e);
	ck_assert_ptr_ne(c.entries[0].data, e[0].data);
	ck_assert_mem_eq(c.entries[0].data, "ab", 2);
	raft_message_free(&c);
	ck_assert_ptr_null(c.entries);
}
END_TEST

/* Messages of unknown type, for someone else, or from strangers are ignored. */
START_TEST(test_ignores_garbage)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 4;
	make_config(&c, 1, 3);
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), 0);
	struct raft_message m = {.type = 200, .from = 2, .to = 1, .term = 50};
	ck_assert_int_eq(raft_step(r, 0, &m), 0);
	m.type = RAFT_MSG_APPEND;
	m.from = 99;
	ck_assert_int_eq(raft_step(r, 0, &m), 0);
	m.from = 2;
	m.to = 3;
	ck_assert_int_eq(raft_step(r, 0, &m), 0);
	ck_assert_uint_eq(raft_current_term(r), 0);
	ck_assert_int_eq(raft_step(r, 0, NULL), 0);
	raft_close(r);
}
END_TEST

/* A forwarded read is answered once even if the network duplicates the answer, fails when
 * the leader changes, and the list of forwarded reads stays bounded. */
START_TEST(test_forwarded_reads)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 5;
	make_config(&c, 2, 3);
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), 0);
	struct raft_update u;
	ck_assert_int_eq(raft_read_index(r, 0, 1), RAFT_ENOLEADER);
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
	ck_assert_int_eq(raft_step(r, 10, &hb), 0);
	ck_assert_int_eq(raft_read_index(r, 10, 5), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 2); /* heartbeat response + the forwarded read */
	struct raft_message resp = {.type = RAFT_MSG_READ_INDEX_RESP,
				    .from = 1,
				    .to = 2,
				    .term = 1,
				    .read_ctx = 5,
				    .index = 7};
	ck_assert_int_eq(raft_step(r, 11, &resp), 0);
	ck_assert_int_eq(raft_step(r, 11, &resp), 0); /* duplicate */
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 1);
	ck_assert_uint_eq(u.reads[0].ctx, 5);
	ck_assert_uint_eq(u.reads[0].index, 7);
	ck_assert_int_eq(u.reads[0].err, 0);

	/* the leader changes (a new term): the pending forwarded read fails */
	ck_assert_int_eq(raft_read_index(r, 12, 6), 0);
	hb.from = 3;
	hb.term = 2;
	ck_assert_int_eq(raft_step(r, 13, &hb), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 1);
	ck_assert_uint_eq(u.reads[0].ctx, 6);
	ck_assert_int_eq(u.reads[0].err, RAFT_ELEADERLOST);

	/* no answer within an election timeout: the read fails (the request may be lost) */
	ck_assert_int_eq(raft_read_index(r, 20, 8), 0);
	ck_assert_int_eq(raft_tick(r, 500), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 0);
	ck_assert_uint_le(u.next_timeout, 20 + 1000);
	ck_assert_int_eq(raft_tick(r, 20 + 1000), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 1);
	ck_assert_uint_eq(u.reads[0].ctx, 8);
	ck_assert_int_eq(u.reads[0].err, RAFT_ELEADERLOST);
	/* keep the leader known for what follows */
	hb.term = 2;
	ck_assert_int_eq(raft_step(r, 1021, &hb), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);

	/* answers that never come cannot pile up without bound */
	for (uint64_t i = 0; i < 65536 + 3; i++)
		ck_assert_int_eq(raft_read_index(r, 14, 1000 + i), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_reads, 3);
	ck_assert_uint_eq(u.reads[0].ctx, 1000);
	ck_assert_int_eq(u.reads[0].err, RAFT_ELEADERLOST);
	raft_close(r);
}
END_TEST

/* A follower that loses its leader's connection drops the lease and campaigns within about
 * a heartbeat; the others grant its pre-vote once they lost the leader too. */
START_TEST(test_peer_lost)
{
	struct raft *r;
	struct raft_config c;
	rng_state = 6;
	make_config(&c, 2, 3);
	ck_assert_int_eq(raft_init(&r, &c, NULL, 0), 0);
	struct raft_update u;
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 1};
	ck_assert_int_eq(raft_step(r, 100, &hb), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_ge(u.next_timeout, 100 + 1000);
	/* another server than the leader: nothing changes */
	ck_assert_int_eq(raft_peer_lost(r, 150, 3), 0);
	ck_assert_uint_ge(raft_next_timeout(r), 100 + 1000);
	/* while in lease, a pre-vote from node 3 is ignored */
	struct raft_message pv = {.type = RAFT_MSG_PREVOTE, .from = 3, .to = 2, .term = 2};
	ck_assert_int_eq(raft_step(r, 160, &pv), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 0);
	/* the leader's connection closes: campaign within two heartbeats; grant pre-votes */
	ck_assert_int_eq(raft_peer_lost(r, 200, 1), 0);
	ck_assert_uint_le(raft_next_timeout(r), 200 + 2 * 100);
	ck_assert_int_eq(raft_step(r, 210, &pv), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 1);
	ck_assert(!u.messages[0].reject);
	ck_assert_int_eq(raft_tick(r, 400), 0);
	ck_assert_int_eq(raft_role(r), RAFT_PRE_CANDIDATE);
	raft_close(r);
}
END_TEST

/* ---- log compaction and snapshots (Chapter 5) ---------------------------- */

/* A follower with entries 1..3 (terms 1, 1, 2) in term 2, nothing committed. */
static struct raft *follower_1_1_2(uint64_t seed)
{
	struct raft *r;
	struct raft_config c;
	rng_state = seed;
	make_config(&c, 2, 3);
	struct raft_entry ents[3] = {{.term = 1, .data = "a", .len = 1},
				     {.term = 1, .data = "b", .len = 1},
				     {.term = 2, .data = "c", .len = 1}};
	struct raft_initial_state st = {.term = 2, .entries = ents, .n_entries = 3};
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	return r;
}

/* raft_compact: EINVAL beyond commit or persisted, a no-op below first_index, and entries
 * handed out in the current update stay valid after they are compacted (ASan checks). */
START_TEST(test_compact_rules)
{
	struct raft *r = follower_1_1_2(11);
	struct raft_update u;
	struct raft_stats st;
	ck_assert_int_eq(raft_compact(r, 1), RAFT_EINVAL); /* nothing committed */
	struct raft_entry ne[2] = {
	    {.term = 2, .index = 4, .type = RAFT_ENTRY_NORMAL, .data = "d", .len = 1},
	    {.term = 2, .index = 5, .type = RAFT_ENTRY_NORMAL, .data = "e", .len = 1}};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 1,
				 .to = 2,
				 .term = 2,
				 .prev_index = 3,
				 .prev_term = 2,
				 .commit = 5,
				 .entries = ne,
				 .n_entries = 2};
	ck_assert_int_eq(raft_step(r, 10, &m), 0);
	ck_assert_uint_eq(raft_commit_index(r), 5);
	ck_assert_uint_eq(raft_persisted_index(r), 3);
	ck_assert_int_eq(raft_compact(r, 4), RAFT_EINVAL); /* committed, not durable */
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 3); /* 1..3: what is durable */
	raft_persisted(r, 11, 2, 5);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 2);
	ck_assert_uint_eq(u.committed[0].index, 4);
	ck_assert_int_eq(raft_compact(r, 6), RAFT_EINVAL); /* beyond commit */
	/* Compact everything: the update's entries stay readable until the next take. */
	ck_assert_int_eq(raft_compact(r, 5), 0);
	ck_assert_mem_eq(u.committed[0].data, "d", 1);
	ck_assert_mem_eq(u.committed[1].data, "e", 1);
	ck_assert_uint_eq(raft_first_index(r), 6);
	ck_assert_uint_eq(raft_last_index(r), 5);
	ck_assert_uint_eq(raft_term_at(r, 5), 2);
	ck_assert_uint_eq(raft_term_at(r, 4), 0); /* forgotten */
	struct raft_entry e;
	ck_assert_int_eq(raft_log_entry(r, 5, &e), RAFT_EINVAL);
	/* Below first_index: a no-op. */
	ck_assert_int_eq(raft_compact(r, 3), 0);
	ck_assert_int_eq(raft_compact(r, 5), 0);
	raft_get_stats(r, &st);
	ck_assert_uint_eq(st.compactions, 1);
	/* Nothing is handed out again; the empty log still accepts appends after (5, 2). */
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 0);
	struct raft_entry ne6 = {
	    .term = 2, .index = 6, .type = RAFT_ENTRY_NORMAL, .data = "f", .len = 1};
	m.prev_index = 5;
	m.entries = &ne6;
	m.n_entries = 1;
	m.commit = 6;
	ck_assert_int_eq(raft_step(r, 12, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_uint_eq(u.entries[0].index, 6);
	ck_assert(!u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].index, 6);
	/* An append whose prev is compacted and below commit is acknowledged at commit. */
	m.prev_index = 2;
	m.prev_term = 1;
	m.n_entries = 0;
	m.entries = NULL;
	ck_assert_int_eq(raft_step(r, 13, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(!u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].index, 6);
	raft_close(r);
}
END_TEST

/* raft_snapshot_offer's decisions (Figure 5.3, receiver) and the "installing" state. */
START_TEST(test_snapshot_offer)
{
	struct raft *r = follower_1_1_2(12);
	struct raft_update u;
	bool install = true;

	/* A stale term: no install, answered with our term so the sender steps down. */
	ck_assert_int_eq(raft_snapshot_offer(r, 10, 1, 1, 9, 1, &install), 0);
	ck_assert(!install);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].term, 2);
	ck_assert_uint_eq(u.messages_after_persist[0].to, 1);

	/* Our log holds (3, 2): nothing to install; success at 3, and 3 is committed. */
	ck_assert_int_eq(raft_snapshot_offer(r, 11, 1, 2, 3, 2, &install), 0);
	ck_assert(!install);
	ck_assert_uint_eq(raft_leader(r), 1);
	ck_assert_uint_eq(raft_commit_index(r), 3);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(!u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].index, 3);
	ck_assert_uint_eq(u.n_committed, 3);

	/* Already committed (2 <= commit 3), even with a term we would not match: success at
	 * our commit index. */
	ck_assert_int_eq(raft_snapshot_offer(r, 12, 1, 2, 2, 1, &install), 0);
	ck_assert(!install);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(!u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.messages_after_persist[0].index, 3);

	/* From a server outside the configuration: ignored. */
	ck_assert_int_eq(raft_snapshot_offer(r, 12, 9, 5, 20, 5, &install), 0);
	ck_assert(!install);
	ck_assert_uint_eq(raft_current_term(r), 2);

	/* A newer term and a snapshot we lack: follower of the sender in that term, install. */
	ck_assert_int_eq(raft_snapshot_offer(r, 20, 3, 4, 10, 3, &install), 0);
	ck_assert(install);
	ck_assert(raft_installing(r));
	ck_assert_uint_eq(raft_current_term(r), 4);
	ck_assert_uint_eq(raft_leader(r), 3);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.term, 4);
	ck_assert_uint_eq(u.n_messages + u.n_messages_after_persist, 0);

	/* While installing: other offers ignored, appends treated as lost (no log writes, no
	 * answer), no elections, but votes still answered. */
	install = true;
	ck_assert_int_eq(raft_snapshot_offer(r, 21, 3, 4, 12, 4, &install), 0);
	ck_assert(!install);
	struct raft_entry ne = {.term = 4, .index = 4, .type = RAFT_ENTRY_NORMAL};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 3,
				 .to = 2,
				 .term = 4,
				 .prev_index = 3,
				 .prev_term = 2,
				 .commit = 4,
				 .entries = &ne,
				 .n_entries = 1};
	ck_assert_int_eq(raft_step(r, 22, &m), 0);
	ck_assert_uint_eq(raft_last_index(r), 3);
	ck_assert(!raft_has_update(r));
	ck_assert_int_eq(raft_tick(r, 10000), 0);
	ck_assert_int_eq(raft_role(r), RAFT_FOLLOWER);
	ck_assert_uint_gt(raft_next_timeout(r), 10000);
	struct raft_message v = {.type = RAFT_MSG_VOTE,
				 .from = 1,
				 .to = 2,
				 .term = 5,
				 .last_log_index = 3,
				 .last_log_term = 2};
	ck_assert_int_eq(raft_step(r, 10001, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.hard_state_changed);
	ck_assert_uint_eq(u.n_entries, 0);
	ck_assert_uint_eq(u.truncate_from, 0);
	ck_assert_uint_eq(u.n_messages_after_persist, 1);
	ck_assert(!u.messages_after_persist[0].reject); /* (3, 2) is as up to date as ours */
	ck_assert_uint_eq(raft_current_term(r), 5);

	/* The install must be the one offered. */
	ck_assert_int_eq(raft_snapshot_installed(r, 10002, 9, 3, true), RAFT_EINVAL);
	ck_assert_int_eq(raft_snapshot_installed(r, 10002, 10, 2, true), RAFT_EINVAL);
	ck_assert_int_eq(raft_snapshot_installed(r, 10002, 10, 3, true), 0);
	ck_assert(!raft_installing(r));
	ck_assert_int_eq(raft_snapshot_installed(r, 10003, 10, 3, true), RAFT_EINVAL);
	ck_assert_uint_eq(raft_first_index(r), 11);
	ck_assert_uint_eq(raft_last_index(r), 10);
	ck_assert_uint_eq(raft_term_at(r, 10), 3);
	ck_assert_uint_eq(raft_commit_index(r), 10);
	ck_assert_uint_eq(raft_persisted_index(r), 10);
	/* No leader known in term 5 (the vote reset it): no answer; nothing to apply. */
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 0);
	ck_assert_uint_eq(u.n_messages + u.n_messages_after_persist, 0);
	struct raft_stats st;
	raft_get_stats(r, &st);
	ck_assert_uint_eq(st.snapshots_installed, 1);

	/* A leader of term 5 appends after the snapshot; entries <= 10 never come out. */
	struct raft_entry ne11 = {
	    .term = 5, .index = 11, .type = RAFT_ENTRY_NORMAL, .data = "k", .len = 1};
	m = (struct raft_message){.type = RAFT_MSG_APPEND,
				  .from = 1,
				  .to = 2,
				  .term = 5,
				  .prev_index = 10,
				  .prev_term = 3,
				  .commit = 11,
				  .entries = &ne11,
				  .n_entries = 1};
	ck_assert_int_eq(raft_step(r, 10010, &m), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_uint_eq(u.entries[0].index, 11);
	ck_assert(!u.messages_after_persist[0].reject);
	raft_persisted(r, 10011, 5, 11);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_committed, 1);
	ck_assert_uint_eq(u.committed[0].index, 11);

	/* A failed install changes nothing. Once it is over, the current leader gets its answer
	 * in `messages` (the install is durable). */
	ck_assert_int_eq(raft_snapshot_offer(r, 10020, 1, 5, 30, 5, &install), 0);
	ck_assert(install);
	ck_assert_int_eq(raft_snapshot_installed(r, 10021, 30, 5, false), 0);
	ck_assert(!raft_installing(r));
	ck_assert_uint_eq(raft_last_index(r), 11);
	ck_assert_uint_eq(raft_commit_index(r), 11);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages + u.n_messages_after_persist, 0);
	ck_assert_int_eq(raft_snapshot_offer(r, 10022, 1, 5, 30, 5, &install), 0);
	ck_assert(install);
	ck_assert_int_eq(raft_snapshot_installed(r, 10023, 30, 5, true), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 1);
	ck_assert_uint_eq(u.n_messages_after_persist, 0);
	ck_assert_int_eq(u.messages[0].type, RAFT_MSG_APPEND_RESP);
	ck_assert_uint_eq(u.messages[0].to, 1);
	ck_assert(!u.messages[0].reject);
	ck_assert_uint_eq(u.messages[0].index, 30);
	raft_close(r);
}
END_TEST

/* A follower with entries appended but not yet handed out when an install starts: they are
 * withheld (no persist request for log entries during an install) and dropped with the log. */
START_TEST(test_snapshot_install_withholds_log_output)
{
	struct raft *r = follower_1_1_2(13);
	struct raft_update u;
	struct raft_entry ne = {.term = 3, .index = 4, .type = RAFT_ENTRY_NORMAL};
	struct raft_message m = {.type = RAFT_MSG_APPEND,
				 .from = 1,
				 .to = 2,
				 .term = 3,
				 .prev_index = 2,
				 .prev_term = 1,
				 .commit = 2,
				 .entries = &ne,
				 .n_entries = 1};
	ne.index = 3; /* conflicts with (3, 2): a truncation and an append, both unstable */
	ck_assert_int_eq(raft_step(r, 10, &m), 0);
	bool install = false;
	ck_assert_int_eq(raft_snapshot_offer(r, 11, 1, 3, 8, 3, &install), 0);
	ck_assert(install);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 0);
	ck_assert_uint_eq(u.truncate_from, 0);
	ck_assert_uint_eq(u.n_committed, 0); /* 1..2 are committed and durable: withheld too */
	ck_assert_int_eq(raft_snapshot_installed(r, 12, 8, 3, true), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 0);
	ck_assert_uint_eq(u.truncate_from, 0);
	ck_assert_uint_eq(u.n_committed, 0);
	ck_assert_uint_eq(u.messages[0].index, 8);
	raft_close(r);

	/* Same, but the install fails: the withheld output comes out afterwards. */
	r = follower_1_1_2(14);
	ck_assert_int_eq(raft_step(r, 10, &m), 0);
	ck_assert_int_eq(raft_snapshot_offer(r, 11, 1, 3, 8, 3, &install), 0);
	ck_assert(install);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 0);
	ck_assert_int_eq(raft_snapshot_installed(r, 12, 8, 3, false), 0);
	ck_assert(raft_has_update(r));
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.truncate_from, 3);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_uint_eq(u.n_committed, 2);
	raft_close(r);
}
END_TEST

/* Leader side: a follower that needs compacted entries is asked a snapshot for once; a
 * failed one sends it back to probing, with no new ask for an election timeout; one neither
 * reported nor answered is given up after snapshot_timeout_ms; an install catches it up. */
START_TEST(test_snapshot_leader)
{
	struct net net;
	net_init(&net, 3);
	advance(&net, 3000);
	size_t l = leader_of(&net);
	size_t f = l % 3 + 1;
	struct raft *lr = net.nodes[l].r;
	for (size_t i = 1; i <= 3; i++)
		net.cut[f][i] = net.cut[i][f] = true;
	for (int k = 0; k < 10; k++)
		propose_str(&net, l, "v", 0);
	settle(&net);
	advance(&net, 200);
	raft_index commit = raft_commit_index(lr);
	ck_assert_uint_eq(net.nodes[l].applied, commit);
	ck_assert_int_eq(raft_compact(lr, commit), 0);
	ck_assert_uint_eq(raft_first_index(lr), commit + 1);
	ck_assert_uint_lt(raft_last_index(net.nodes[f].r), commit);

	/* f comes back: it rejects, and the leader asks for a snapshot, once. */
	for (size_t i = 1; i <= 3; i++)
		net.cut[f][i] = net.cut[i][f] = false;
	advance(&net, 500);
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 1);
	ck_assert_uint_eq(net.nodes[l].snap_asks[0], f);
	uint64_t asked_at = net.now;

	/* The stream failed: probing again, and no new ask for an election timeout. */
	ck_assert_int_eq(raft_snapshot_sent(lr, net.now, f, false), 0);
	ck_assert_int_eq(raft_snapshot_sent(lr, net.now, f, false), 0); /* not waiting: ignored */
	advance(&net, 500);
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 1);
	advance(&net, 700);
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 2);
	ck_assert_uint_ge(net.now, asked_at + 1000);

	/* No report and no answer: given up after snapshot_timeout_ms (5 election timeouts),
	 * asked again an election timeout later. */
	advance(&net, 4000);
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 2);
	advance(&net, 2500);
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 3);
	struct raft_stats st;
	raft_get_stats(lr, &st);
	ck_assert_uint_eq(st.snapshots_sent, 3);
	ck_assert_uint_eq(st.snapshots_aborted, 2);

	/* This one goes through: f installs the leader's state at its applied index. */
	ck_assert_int_eq(raft_snapshot_sent(lr, net.now, f, true), 0);
	struct raft *fr = net.nodes[f].r;
	bool install = false;
	raft_index a = net.nodes[l].applied;
	ck_assert_int_eq(raft_snapshot_offer(fr, net.now, l, raft_current_term(lr), a,
					     raft_term_at(lr, a), &install),
			 0);
	ck_assert(install);
	ck_assert_int_eq(raft_snapshot_installed(fr, net.now, a, raft_term_at(lr, a), true), 0);
	net.nodes[f].applied = a; /* the host's state machine is the snapshot */
	settle(&net);
	advance(&net, 300);
	ck_assert_uint_eq(raft_last_index(fr), raft_last_index(lr));
	ck_assert_uint_eq(raft_commit_index(fr), raft_commit_index(lr));
	propose_str(&net, l, "w", 0);
	settle(&net);
	advance(&net, 300);
	ck_assert_uint_eq(net.nodes[f].applied, raft_commit_index(lr));
	ck_assert_uint_eq(net.nodes[l].n_snap_asks, 3);
	net_close(&net);
}
END_TEST

/* Restart from a compacted log whose every entry was compacted: the log is empty, its last
 * entry is (first_index - 1, prev_term), for votes and for a new leader's no-op. */
START_TEST(test_restart_compacted_empty_log)
{
	struct raft *r;
	struct raft_config c;
	struct raft_update u;
	rng_state = 15;
	make_config(&c, 1, 3);
	struct raft_initial_state st = {.term = 3, .first_index = 6, .prev_term = 2, .applied = 5};
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	ck_assert_uint_eq(raft_first_index(r), 6);
	ck_assert_uint_eq(raft_last_index(r), 5);
	ck_assert_uint_eq(raft_term_at(r, 5), 2);
	ck_assert_uint_eq(raft_commit_index(r), 5);
	/* Votes compare with (5, 2). */
	struct raft_message v = {.type = RAFT_MSG_VOTE,
				 .from = 2,
				 .to = 1,
				 .term = 4,
				 .last_log_index = 4,
				 .last_log_term = 2};
	ck_assert_int_eq(raft_step(r, 5000, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(u.messages_after_persist[0].reject);
	ck_assert_uint_eq(u.n_committed, 0);
	v.last_log_index = 5;
	ck_assert_int_eq(raft_step(r, 5000, &v), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert(!u.messages_after_persist[0].reject);
	raft_close(r);

	/* It campaigns with (5, 2) and, elected, appends its no-op at 6 after prev (5, 2). */
	ck_assert_int_eq(raft_init(&r, &c, &st, 0), 0);
	ck_assert_int_eq(raft_tick(r, 5000), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 2);
	ck_assert_int_eq(u.messages[0].type, RAFT_MSG_PREVOTE);
	ck_assert_uint_eq(u.messages[0].last_log_index, 5);
	ck_assert_uint_eq(u.messages[0].last_log_term, 2);
	struct raft_message g = {
	    .type = RAFT_MSG_PREVOTE_RESP, .from = 2, .to = 1, .term = 4, .reject = false};
	ck_assert_int_eq(raft_step(r, 5001, &g), 0);
	ck_assert_int_eq(raft_role(r), RAFT_CANDIDATE);
	g.type = RAFT_MSG_VOTE_RESP;
	ck_assert_int_eq(raft_step(r, 5002, &g), 0);
	ck_assert_int_eq(raft_role(r), RAFT_LEADER);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_entries, 1);
	ck_assert_uint_eq(u.entries[0].index, 6);
	bool saw_append = false;
	for (size_t k = 0; k < u.n_messages; k++)
		if (u.messages[k].type == RAFT_MSG_APPEND) {
			saw_append = true;
			ck_assert_uint_eq(u.messages[k].prev_index, 5);
			ck_assert_uint_eq(u.messages[k].prev_term, 2);
		}
	ck_assert(saw_append);
	/* A follower that rejects with a hint below our first index is sent a snapshot. */
	struct raft_message rej = {.type = RAFT_MSG_APPEND_RESP,
				   .from = 2,
				   .to = 1,
				   .term = 4,
				   .reject = true,
				   .index = 5,
				   .hint_index = 3,
				   .hint_term = 1};
	ck_assert_int_eq(raft_step(r, 5003, &rej), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_send_snapshot, 1);
	ck_assert_uint_eq(u.send_snapshot[0], 2);
	for (size_t k = 0; k < u.n_messages; k++)
		ck_assert(u.messages[k].type != RAFT_MSG_APPEND || u.messages[k].to != 2);
	/* Stale rejections are ignored in SNAPSHOT; a success that teaches nothing too; the
	 * answer to the snapshot ends it. */
	ck_assert_int_eq(raft_step(r, 5004, &rej), 0);
	struct raft_message ok = {
	    .type = RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 4, .index = 0};
	ck_assert_int_eq(raft_step(r, 5004, &ok), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_send_snapshot, 0);
	for (size_t k = 0; k < u.n_messages; k++)
		ck_assert(u.messages[k].type != RAFT_MSG_APPEND || u.messages[k].to != 2);
	ok.index = 5;
	ck_assert_int_eq(raft_step(r, 5005, &ok), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_messages, 1);
	ck_assert_int_eq(u.messages[0].type, RAFT_MSG_APPEND);
	ck_assert_uint_eq(u.messages[0].prev_index, 5);
	ck_assert_uint_eq(u.messages[0].n_entries, 1);
	/* Stepping down drops an ask not yet handed out. */
	rej.hint_index = 1;
	rej.index = 5;
	struct raft_message rej3 = rej;
	rej3.from = 3;
	ck_assert_int_eq(raft_step(r, 5006, &rej3), 0);
	struct raft_message hb = {.type = RAFT_MSG_HEARTBEAT, .from = 2, .to = 1, .term = 9};
	ck_assert_int_eq(raft_step(r, 5007, &hb), 0);
	ck_assert_int_eq(raft_take_update(r, &u), 0);
	ck_assert_uint_eq(u.n_send_snapshot, 0);
	raft_close(r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("raft_core");
	TCase *tc = tcase_create("core");
	tcase_add_test(tc, test_init_errors);
	tcase_add_test(tc, test_single_node_commits_after_persist);
	tcase_add_test(tc, test_three_nodes_elect_and_replicate);
	tcase_add_test(tc, test_propose_limits);
	tcase_add_test(tc, test_follower_append_rules);
	tcase_add_test(tc, test_vote_rules);
	tcase_add_test(tc, test_leader_lease_ignores_votes);
	tcase_add_test(tc, test_read_index_follower_forwards);
	tcase_add_test(tc, test_read_index_isolated_leader_fails);
	tcase_add_test(tc, test_transfer);
	tcase_add_test(tc, test_message_copy);
	tcase_add_test(tc, test_ignores_garbage);
	tcase_add_test(tc, test_forwarded_reads);
	tcase_add_test(tc, test_peer_lost);
	tcase_add_test(tc, test_compact_rules);
	tcase_add_test(tc, test_snapshot_offer);
	tcase_add_test(tc, test_snapshot_install_withholds_log_output);
	tcase_add_test(tc, test_snapshot_leader);
	tcase_add_test(tc, test_restart_compacted_empty_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
