/* test_scenarios.c — Raft behaviours as timelines against the simulator: crash, cut, drop. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test/sim/sim.h"

#define ELECTION_MS  1000 /* the core's default election timeout */
#define HEARTBEAT_MS 100
#define LONG_MS	     20000 /* generous bound for anything that must happen "eventually" */

static struct sim *s;

/* Every check of the simulator's invariants is also a test assertion. */
#define OK() ok_(__FILE__, __LINE__)
static void ok_(const char *file, int line)
{
	if (sim_failed(s)) {
		sim_print_failure(s, stderr, 50);
		ck_abort_msg("%s:%d: %s: %s", file, line, sim_failure_invariant(s), sim_failure(s));
	}
}

/* CAIRN_SIM_TRACE=1 prints every event of every scenario to stderr. */
static void start_with(const struct sim_options *o)
{
	struct sim_options opts = *o;
	if (getenv("CAIRN_SIM_TRACE") != NULL)
		opts.trace = stderr;
	ck_assert_int_eq(sim_create(&s, &opts), 0);
	OK();
}

static void start(unsigned n, uint64_t seed)
{
	struct sim_options o;
	sim_options_default(&o, n, seed);
	start_with(&o);
}

static void teardown(void)
{
	sim_destroy(s);
	s = NULL;
}

static void run_for(uint64_t ms)
{
	sim_run_for(s, ms);
	OK();
}

static bool pred_leader(struct sim *sm, void *ctx)
{
	(void)ctx;
	return sim_leader(sm) != 0;
}

/* Waits for a leader that every up node follows, so tests start from a quiet cluster. */
static bool pred_stable_leader(struct sim *sm, void *ctx)
{
	(void)ctx;
	raft_id l = sim_leader(sm);
	if (l == 0)
		return false;
	raft_term t = raft_current_term(sim_raft(sm, l));
	for (raft_id id = 1; id <= sim_n_nodes(sm); id++) {
		struct raft *r = sim_raft(sm, id);
		if (r != NULL && (raft_leader(r) != l || raft_current_term(r) != t))
			return false;
	}
	return raft_commit_index(sim_raft(sm, l)) >= raft_last_index(sim_raft(sm, l));
}

static void wait_for(sim_pred_fn pred, void *ctx, uint64_t max_ms, const char *what)
{
	int rv = sim_run_until_pred(s, pred, ctx, max_ms);
	OK();
	ck_assert_msg(rv == 0, "timed out after %llums waiting for %s", (unsigned long long)max_ms,
		      what);
}

static raft_id stable_leader(void)
{
	wait_for(pred_stable_leader, NULL, LONG_MS, "a stable leader");
	return sim_leader(s);
}

static raft_term term_of(raft_id id)
{
	return raft_current_term(sim_raft(s, id));
}

static int role_of(raft_id id)
{
	struct raft *r = sim_raft(s, id);
	return r ? raft_role(r) : 0;
}

static bool pred_committed(struct sim *sm, void *ctx)
{
	return sim_proposal(sm, *(uint64_t *)ctx)->state == SIM_PROP_COMMITTED;
}

static void wait_committed(uint64_t id)
{
	wait_for(pred_committed, &id, LONG_MS, "a proposal to commit");
}

static uint64_t propose(raft_id node, size_t n)
{
	uint64_t id = 0;
	int rv = sim_propose(s, node, n, &id);
	OK();
	ck_assert_msg(rv == 0, "propose on node %llu: %d", (unsigned long long)node, rv);
	return id;
}

struct applied_ctx {
	raft_index index;
};

static bool pred_all_applied(struct sim *sm, void *ctx)
{
	raft_index index = ((struct applied_ctx *)ctx)->index;
	for (raft_id id = 1; id <= sim_n_nodes(sm); id++)
		if (sim_applied(sm, id) < index)
			return false;
	return true;
}

static void wait_all_applied(raft_index index)
{
	struct applied_ctx c = {index};
	wait_for(pred_all_applied, &c, LONG_MS, "every node to apply");
}

struct node_index {
	raft_id id;
	raft_index index;
};

static bool pred_node_applied(struct sim *sm, void *ctx)
{
	const struct node_index *ni = ctx;
	return sim_applied(sm, ni->id) >= ni->index;
}

static raft_id other_than(raft_id a, raft_id b)
{
	for (raft_id id = 1; id <= sim_n_nodes(s); id++)
		if (id != a && id != b)
			return id;
	return 0;
}

/* ---- elections */

static void one_leader(unsigned n)
{
	start(n, 11 + n);
	wait_for(pred_leader, NULL, LONG_MS, "a leader");
	raft_id l = stable_leader();
	run_for(5 * ELECTION_MS); /* a quiet cluster keeps its leader */
	ck_assert_uint_eq(sim_leader(s), l);
	unsigned leaders = 0;
	for (raft_id id = 1; id <= n; id++) {
		leaders += role_of(id) == RAFT_LEADER;
		ck_assert_uint_eq(raft_leader(sim_raft(s, id)), l);
		ck_assert_uint_eq(term_of(id), term_of(l));
	}
	ck_assert_uint_eq(leaders, 1);
}

START_TEST(test_one_leader_3)
{
	one_leader(3);
}
END_TEST

START_TEST(test_one_leader_5)
{
	one_leader(5);
}
END_TEST

/* ---- a partitioned old leader cannot commit; after healing the majority's entries win */

START_TEST(test_partitioned_leader_cannot_commit)
{
	start(5, 21);
	raft_id old = stable_leader();
	wait_committed(propose(old, 1));
	raft_index old_commit = raft_commit_index(sim_raft(s, old));
	sim_isolate(s, old);
	uint64_t lost = propose(old, 3); /* still believes it leads */
	raft_index lost_index = sim_proposal(s, lost)->index;
	wait_for(pred_leader, NULL, LONG_MS, "a leader");
	raft_id l;
	/* The majority elects a new leader and commits through it. */
	for (;;) {
		l = sim_leader(s);
		if (l != 0 && l != old)
			break;
		run_for(50);
	}
	uint64_t won = propose(l, 2);
	wait_committed(won + 1);
	run_for(2 * ELECTION_MS);
	/* Never committed; already known lost once the majority committed other entries there. */
	for (uint64_t id = lost; id < lost + 3; id++)
		ck_assert_int_ne(sim_proposal(s, id)->state, SIM_PROP_COMMITTED);
	ck_assert_uint_eq(raft_commit_index(sim_raft(s, old)), old_commit);
	ck_assert_uint_lt(sim_applied(s, old), lost_index);
	sim_heal(s);
	wait_all_applied(sim_proposal(s, won + 1)->index);
	/* The old leader's entries were overwritten (§3.5) and are reported lost. */
	for (uint64_t id = lost; id < lost + 3; id++)
		ck_assert_int_eq(sim_proposal(s, id)->state, SIM_PROP_LOST);
	raft_term t;
	ck_assert_int_eq(sim_applied_entry(s, old, lost_index, &t, NULL), 0);
	ck_assert_uint_gt(t, sim_proposal(s, lost)->term);
}
END_TEST

/* ---- Figure 3.7 (Figure 8 of the Raft paper): an entry of an old term stored on a majority
 * is not committed by counting replicas; a leader with a newer last term may still replace it
 * (§3.6.2). */

struct fig8 {
	int phase;
	raft_id l2, l3;
	raft_term t3;
};

static int fig8_filter(void *ctx, struct sim *sm, const struct raft_message *m)
{
	struct fig8 *f = ctx;
	if (m->type != RAFT_MSG_APPEND || m->n_entries == 0)
		return SIM_PASS;
	/* (a) node 1's new entry reaches node 2 only. */
	if (f->phase == 1 && m->from == 1 && m->to != 2)
		return SIM_DROP;
	/* (b) the next leader's entries (its no-op) reach nobody. */
	if (f->phase == 2)
		return SIM_DROP;
	/* (c) the term-3 leader's own entries never land: it may repair logs with older entries,
	 * but every message that would append one of its term is lost. */
	if (f->phase == 3 && m->from == f->l3) {
		struct raft *to = sim_raft(sm, m->to);
		bool would_match = to != NULL && raft_term_at(to, m->prev_index) == m->prev_term;
		for (size_t i = 0; i < m->n_entries; i++)
			if (m->entries[i].term == f->t3 && would_match)
				return SIM_DROP;
	}
	return SIM_PASS;
}

struct leader_among {
	raft_id a, b, c;
};

static bool pred_leader_among(struct sim *sm, void *ctx)
{
	struct leader_among *la = ctx;
	raft_id l = sim_leader(sm);
	return l != 0 && (l == la->a || l == la->b || l == la->c);
}

START_TEST(test_figure_8_commitment)
{
	struct sim_options o;
	sim_options_default(&o, 5, 31);
	o.raft.max_entries_per_msg = 1; /* old entries and the new leader's no-op travel apart */
	start_with(&o);
	struct fig8 f = {0};
	sim_set_filter(s, fig8_filter, &f);
	raft_id l0 = stable_leader();
	if (l0 != 1) {
		ck_assert_int_eq(sim_transfer(s, l0, 1), 0);
		struct leader_among la = {1, 1, 1};
		wait_for(pred_leader_among, &la, LONG_MS, "node 1 to lead");
	}
	stable_leader();
	raft_index i = raft_last_index(sim_raft(s, 1)) + 1;
	raft_term t1 = term_of(1);
	wait_all_applied(i - 1);

	/* (a) node 1 (term t1) appends X at index i; only node 2 receives it. */
	f.phase = 1;
	uint64_t x = propose(1, 1);
	ck_assert_uint_eq(sim_proposal(s, x)->index, i);
	run_for(50);
	ck_assert_uint_eq(raft_term_at(sim_raft(s, 2), i), t1);
	ck_assert_uint_lt(raft_commit_index(sim_raft(s, 1)), i);

	/* (b) node 1 crashes; with node 2 cut off, one of 3..5 wins term t2 and appends its
	 * no-op at index i, which reaches nobody; then it crashes too. */
	f.phase = 2;
	sim_crash(s, 1);
	sim_isolate(s, 2);
	struct leader_among la = {3, 4, 5};
	wait_for(pred_leader_among, &la, LONG_MS, "a leader among 3..5");
	f.l2 = sim_leader(s);
	raft_term t2 = term_of(f.l2);
	ck_assert_uint_gt(t2, t1);
	run_for(20);
	ck_assert_uint_eq(sim_disk_term_at(s, f.l2, i), t2);
	sim_crash(s, f.l2);

	/* (c) node 1 comes back; node 1 or 2 (both hold X) wins term t3 and copies X to the two
	 * others: X is on four of five nodes, yet not committed, because no entry of t3 is. */
	f.phase = 3;
	sim_heal(s);
	sim_restart(s, 1);
	OK();
	la = (struct leader_among){1, 2, 2};
	wait_for(pred_leader_among, &la, LONG_MS, "node 1 or 2 to lead");
	f.l3 = sim_leader(s);
	f.t3 = term_of(f.l3);
	ck_assert_uint_gt(f.t3, t2);
	run_for(3 * ELECTION_MS);
	ck_assert_uint_eq(sim_leader(s), f.l3);
	unsigned holders = 0;
	for (raft_id id = 1; id <= 5; id++)
		if (sim_is_up(s, id) && raft_term_at(sim_raft(s, id), i) == t1)
			holders++;
	ck_assert_uint_eq(holders, 4);
	for (raft_id id = 1; id <= 5; id++)
		if (sim_is_up(s, id))
			ck_assert_uint_lt(raft_commit_index(sim_raft(s, id)), i);
	ck_assert_int_eq(sim_proposal(s, x)->state, SIM_PROP_PENDING);

	/* (d) the t3 leader crashes and the other X holder is cut off; the t2 leader returns with
	 * a more up-to-date last entry (t2 > t1), wins, and replaces X everywhere. */
	f.phase = 4;
	raft_id other = f.l3 == 1 ? 2 : 1;
	sim_crash(s, f.l3);
	sim_isolate(s, other);
	sim_restart(s, f.l2);
	OK();
	la = (struct leader_among){f.l2, f.l2, f.l2};
	wait_for(pred_leader_among, &la, LONG_MS, "the term-2 leader to lead again");
	sim_heal(s);
	sim_restart(s, f.l3);
	OK();
	wait_all_applied(i + 1);
	for (raft_id id = 1; id <= 5; id++) {
		raft_term t;
		ck_assert_int_eq(sim_applied_entry(s, id, i, &t, NULL), 0);
		ck_assert_uint_eq(t, t2);
	}
	ck_assert_int_eq(sim_proposal(s, x)->state, SIM_PROP_LOST);
}
END_TEST

/* ---- pre-vote: a node rejoining after a partition does not disrupt a stable leader (§9.6) */

START_TEST(test_prevote_rejoining_node_does_not_disrupt)
{
	start(3, 41);
	raft_id l = stable_leader();
	raft_term t = term_of(l);
	raft_id f = other_than(l, 0);
	sim_isolate(s, f);
	run_for(10 * ELECTION_MS);	  /* it times out again and again, alone */
	ck_assert_uint_eq(term_of(f), t); /* pre-votes failed: its term did not grow */
	ck_assert_uint_eq(sim_leader(s), l);
	sim_heal(s);
	run_for(5 * ELECTION_MS);
	ck_assert_uint_eq(sim_leader(s), l);
	ck_assert_uint_eq(term_of(l), t);
	ck_assert_uint_eq(raft_leader(sim_raft(s, f)), l);
	wait_committed(propose(l, 1));
}
END_TEST

/* ---- check-quorum: a leader cut off from the majority steps down (§6.2) */

static bool pred_not_leader(struct sim *sm, void *ctx)
{
	raft_id id = *(raft_id *)ctx;
	struct raft *r = sim_raft(sm, id);
	return r == NULL || raft_role(r) != RAFT_LEADER;
}

START_TEST(test_check_quorum_step_down)
{
	start(5, 51);
	raft_id l = stable_leader();
	uint64_t t0 = sim_now(s);
	sim_isolate(s, l);
	/* It notices within two election timeouts (one to miss a full round, one to check). */
	wait_for(pred_not_leader, &l, 2 * ELECTION_MS + 2 * HEARTBEAT_MS,
		 "the leader to step down");
	ck_assert_uint_le(sim_now(s) - t0, 2 * ELECTION_MS + 2 * HEARTBEAT_MS);
	ck_assert_uint_eq(raft_leader(sim_raft(s, l)), 0);
}
END_TEST

/* ---- ReadIndex (§6.4) */

START_TEST(test_read_index_refused_on_deposed_leader)
{
	start(5, 61);
	raft_id old = stable_leader();
	sim_isolate(s, old);
	uint64_t r1;
	ck_assert_int_eq(sim_read(s, old, &r1), 0);
	OK();
	/* The majority moves on and commits new writes. */
	raft_id l;
	for (;;) {
		wait_for(pred_leader, NULL, LONG_MS, "a leader");
		l = sim_leader(s);
		if (l != old)
			break;
		run_for(50);
	}
	wait_committed(propose(l, 1));
	uint64_t r2;
	int rv = sim_read(s, old, &r2);
	OK();
	run_for(3 * ELECTION_MS);
	const struct sim_read *rd = sim_read_get(s, r1);
	ck_assert_int_ne(rd->state, SIM_READ_SERVED);
	ck_assert_int_ne(rd->state, SIM_READ_WAITING);
	if (rv == 0) {
		rd = sim_read_get(s, r2);
		ck_assert_int_ne(rd->state, SIM_READ_SERVED);
		ck_assert_int_ne(rd->state, SIM_READ_WAITING);
	}
}
END_TEST

static bool pred_read_served(struct sim *sm, void *ctx)
{
	return sim_read_get(sm, *(uint64_t *)ctx)->state == SIM_READ_SERVED;
}

START_TEST(test_read_index_served_after_confirmation)
{
	start(3, 71);
	raft_id l = stable_leader();
	uint64_t p = propose(l, 5);
	wait_committed(p + 4);
	raft_index committed = sim_committed(s);
	uint64_t r1, r2;
	ck_assert_int_eq(sim_read(s, l, &r1), 0);
	ck_assert_int_eq(sim_read(s, other_than(l, 0), &r2), 0); /* forwarded to the leader */
	OK();
	/* Not from the call itself: confirmation needs a heartbeat round. */
	ck_assert_int_eq(sim_read_get(s, r1)->state, SIM_READ_PENDING);
	wait_for(pred_read_served, &r1, 2 * ELECTION_MS, "the leader's read");
	wait_for(pred_read_served, &r2, 2 * ELECTION_MS, "the follower's read");
	ck_assert_uint_ge(sim_read_get(s, r1)->index, committed);
	ck_assert_uint_ge(sim_read_get(s, r2)->index, committed);
	ck_assert_uint_ge(sim_read_get(s, r2)->served_applied, committed);
}
END_TEST

/* ---- leadership transfer (§3.10) */

START_TEST(test_leadership_transfer)
{
	start(3, 81);
	raft_id l = stable_leader();
	raft_term t = term_of(l);
	raft_id target = other_than(l, 0);
	ck_assert_int_eq(sim_transfer(s, l, target), 0);
	OK();
	uint64_t id;
	ck_assert_int_eq(sim_propose(s, l, 1, &id), RAFT_ETRANSFER);
	struct leader_among la = {target, target, target};
	wait_for(pred_leader_among, &la, 2 * ELECTION_MS, "the target to lead");
	ck_assert_uint_eq(term_of(target), t + 1);
	ck_assert_int_ne(role_of(l), RAFT_LEADER);
	wait_committed(propose(target, 1));
	ck_assert_int_eq(sim_transfer(s, target, target), RAFT_ENOTVOTER);
	ck_assert_int_eq(sim_transfer(s, l, target), RAFT_ENOTLEADER);
}
END_TEST

/* ---- crashes and disks */

START_TEST(test_follower_crash_loses_unpersisted_entries)
{
	start(3, 91);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	ck_assert_int_eq(sim_set_disk(s, f, 500, 500), 0);
	uint64_t p = propose(l, 5);
	raft_index last = sim_proposal(s, p + 4)->index;
	run_for(50);
	/* In its memory, not on its disk. */
	ck_assert_uint_eq(raft_last_index(sim_raft(s, f)), last);
	ck_assert_uint_lt(sim_disk_last_index(s, f), last);
	ck_assert_uint_gt(sim_persist_pending(s, f), 0);
	wait_committed(p + 4); /* through the leader and the other follower */
	ck_assert_uint_lt(sim_applied(s, f), last);
	sim_crash(s, f);
	OK();
	ck_assert_uint_lt(sim_disk_last_index(s, f), last);
	sim_set_disk(s, f, 0, 2);
	sim_restart(s, f);
	OK();
	ck_assert_uint_lt(raft_last_index(sim_raft(s, f)), last);
	wait_all_applied(last);
	ck_assert_uint_ge(sim_disk_last_index(s, f), last);
}
END_TEST

/* §10.2.1: the leader writes its log in parallel with replication and counts itself only
 * once its own write is durable. */
START_TEST(test_slow_leader_disk_commits_through_followers)
{
	start(3, 101);
	raft_id l = stable_leader();
	ck_assert_int_eq(sim_set_disk(s, l, 500, 500), 0);
	uint64_t p = propose(l, 1);
	raft_index i = sim_proposal(s, p)->index;
	run_for(100);
	struct raft *r = sim_raft(s, l);
	ck_assert_uint_ge(raft_commit_index(r), i); /* two followers are a majority */
	ck_assert_uint_lt(raft_persisted_index(r), i);
	ck_assert_uint_lt(sim_applied(s, l), i); /* never applied before it is on its disk */
	run_for(500);
	ck_assert_uint_ge(sim_applied(s, l), i);
}
END_TEST

START_TEST(test_slow_leader_disk_counts_only_after_persist)
{
	start(5, 111);
	raft_id l = stable_leader();
	raft_id a = other_than(l, 0), b = other_than(l, a);
	sim_isolate(s, a);
	sim_isolate(s, b); /* the leader and two followers remain: three of five */
	ck_assert_int_eq(sim_set_disk(s, l, 500, 500), 0);
	uint64_t p = propose(l, 1);
	raft_index i = sim_proposal(s, p)->index;
	run_for(100);
	ck_assert_uint_lt(raft_commit_index(sim_raft(s, l)), i); /* needs its own write */
	ck_assert_int_eq(sim_proposal(s, p)->state, SIM_PROP_PENDING);
	run_for(500);
	ck_assert_uint_ge(raft_commit_index(sim_raft(s, l)), i);
	ck_assert_int_eq(sim_proposal(s, p)->state, SIM_PROP_COMMITTED);
}
END_TEST

/* A vote is a promise: it may only leave once it is on disk, or a crash could let the node vote
 * twice in one term (raft.h: vote grants are messages_after_persist). */
START_TEST(test_vote_leaves_only_after_persist)
{
	start(3, 141);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	ck_assert_int_eq(sim_set_disk(s, f, 300, 300), 0);
	sim_crash(s, l);
	OK();
	/* The two survivors need each other: whoever wins holds f's durable vote. */
	wait_for(pred_leader, NULL, LONG_MS, "a leader");
	raft_id winner = sim_leader(s);
	raft_term t = term_of(winner);
	ck_assert_uint_eq(sim_disk_term(s, f), t);
	ck_assert_uint_eq(sim_disk_vote(s, f), winner);
}
END_TEST

/* ---- pipelining and batching, counted on the wire */

struct wire {
	raft_id leader, follower;
	bool hold_acks;
	size_t appends;	    /* AppendEntries with entries, leader -> follower */
	size_t entries;	    /* entries they carried */
	size_t max_entries; /* most in one message */
};

static int wire_filter(void *ctx, struct sim *sm, const struct raft_message *m)
{
	struct wire *w = ctx;
	(void)sm;
	if (m->type == RAFT_MSG_APPEND && m->from == w->leader && m->to == w->follower &&
	    m->n_entries > 0) {
		w->appends++;
		w->entries += m->n_entries;
		if (m->n_entries > w->max_entries)
			w->max_entries = m->n_entries;
	}
	if (w->hold_acks && m->from == w->follower && m->to == w->leader &&
	    (m->type == RAFT_MSG_APPEND_RESP || m->type == RAFT_MSG_HEARTBEAT_RESP))
		return SIM_HOLD;
	return SIM_PASS;
}

START_TEST(test_pipelining)
{
	struct sim_options o;
	sim_options_default(&o, 3, 121);
	o.raft.max_entries_per_msg = 1;
	o.raft.max_inflight_msgs = 8;
	start_with(&o);
	raft_id l = stable_leader();
	wait_committed(propose(l, 1)); /* followers are known to match: replication pipelines */
	struct wire w = {.leader = l, .follower = other_than(l, 0), .hold_acks = true};
	sim_set_filter(s, wire_filter, &w);
	uint64_t p = 0;
	for (int k = 0; k < 6; k++) {
		p = propose(l, 1);
		run_for(2);
	}
	run_for(20);
	/* Six AppendEntries went out without a single answer coming back. */
	ck_assert_uint_ge(w.appends, 6);
	ck_assert_uint_gt(sim_held_count(s), 0);
	sim_set_filter(s, NULL, NULL);
	sim_release_held(s);
	wait_committed(p);
	wait_all_applied(sim_proposal(s, p)->index);
}
END_TEST

START_TEST(test_batching)
{
	struct sim_options o;
	sim_options_default(&o, 3, 131);
	o.raft.max_entries_per_msg = 3;
	start_with(&o);
	raft_id l = stable_leader();
	wait_committed(propose(l, 1));
	struct wire w = {.leader = l, .follower = other_than(l, 0)};
	sim_set_filter(s, wire_filter, &w);
	uint64_t p = propose(l, 10);
	wait_committed(p + 9);
	wait_all_applied(sim_proposal(s, p + 9)->index);
	ck_assert_uint_le(w.max_entries, 3);
	ck_assert_uint_ge(w.max_entries, 2); /* entries do travel together */
	ck_assert_uint_ge(w.appends, 4);     /* ceil(10 / 3) */
	ck_assert_uint_ge(w.entries, 10);
	struct sim_stats st;
	sim_get_stats(s, &st);
	ck_assert_uint_le(st.max_append_entries, 3);
}
END_TEST

/* ---- the fault model itself: a seed replays exactly */

static void run_lossy(uint64_t seed, struct sim_stats *st, raft_index *committed)
{
	struct sim_options o;
	sim_options_default(&o, 5, seed);
	o.net.drop_rate = 0.1;
	o.net.dup_rate = 0.1;
	o.net.reorder_rate = 0.2;
	start_with(&o);
	for (int k = 0; k < 50; k++) {
		sim_propose_to_leader(s, NULL);
		run_for(200);
		if (k == 20)
			sim_crash(s, 1 + (raft_id)(k % 5));
		if (k == 30)
			sim_restart(s, 1 + (raft_id)(20 % 5));
	}
	OK();
	sim_get_stats(s, st);
	*committed = sim_committed(s);
	teardown();
}

START_TEST(test_same_seed_same_run)
{
	struct sim_stats a, b;
	raft_index ca, cb;
	run_lossy(7, &a, &ca);
	run_lossy(7, &b, &cb);
	ck_assert_uint_eq(a.steps, b.steps);
	ck_assert_uint_eq(a.drops, b.drops);
	ck_assert_uint_eq(a.msgs_delivered, b.msgs_delivered);
	ck_assert_uint_eq(ca, cb);
	ck_assert_uint_gt(a.drops, 0);
	ck_assert_uint_gt(a.dups, 0);
}
END_TEST

/* ---- log compaction and snapshots (Chapter 5, Figure 5.3) ---------------- */

/* Snapshots on; compaction by the seeded policy when `auto_compact`, otherwise only through
 * sim_compact(). */
static void start_snap(unsigned n, uint64_t seed, bool auto_compact)
{
	struct sim_options o;
	sim_options_default(&o, n, seed);
	o.snap.enabled = true;
	o.snap.no_report_rate = 0;
	if (!auto_compact)
		o.snap.compact_min = o.snap.compact_max = UINT32_MAX;
	else
		o.snap.compact_max = 5;
	start_with(&o);
}

static void compact(raft_id id)
{
	ck_assert_int_eq(sim_compact(s, id, sim_applied(s, id)), 0);
	OK();
}

static struct sim_stats stats(void)
{
	struct sim_stats st;
	sim_get_stats(s, &st);
	return st;
}

/* Commits `n` entries through the leader and waits until every up node it can reach applied
 * them. */
static raft_index write_n(raft_id l, size_t n)
{
	uint64_t p = propose(l, n);
	wait_committed(p + n - 1);
	raft_index last = sim_proposal(s, p + n - 1)->index;
	for (raft_id id = 1; id <= sim_n_nodes(s); id++) {
		struct node_index ni = {id, last};
		if (sim_is_up(s, id) && (id == l || sim_link_ok(s, l, id)))
			wait_for(pred_node_applied, &ni, LONG_MS, "a node to apply");
	}
	return last;
}

/* (a) A follower is down while the leader compacts past everything it has; back up, it is
 * sent a snapshot, installs it and catches up (§5.1, Figure 5.3). */
START_TEST(test_snapshot_follower_catches_up)
{
	start_snap(3, 201, true);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	raft_index before = write_n(l, 3);
	sim_crash(s, f);
	OK();
	raft_index last = 0;
	for (int k = 0; k < 5; k++)
		last = write_n(l, 10);
	ck_assert_uint_gt(raft_first_index(sim_raft(s, l)), sim_disk_last_index(s, f) + 1);
	ck_assert_uint_ge(sim_disk_last_index(s, f), before);
	sim_restart(s, f);
	OK();
	wait_all_applied(last);
	struct sim_stats st = stats();
	ck_assert_uint_ge(st.snapshots_installed, 1);
	ck_assert_uint_ge(st.raft.snapshots_installed, 1);
	ck_assert_uint_ge(st.compactions, 2);
	ck_assert_uint_gt(sim_disk_first_index(s, f), before + 1); /* its log restarted */
	/* It follows normally afterwards. */
	last = write_n(stable_leader(), 5);
	wait_all_applied(last);
}
END_TEST

/* (b) Snapshot transfers that are lost, or cut off by a partition halfway, are reported
 * failed; the leader retries (at most once per election timeout) until one gets through. */
struct snap_watch {
	raft_id to;
	int transfers; /* snapshot transfers to `to` seen */
	int drop_first;
	uint64_t at[8]; /* when the first ones started */
};

static int snap_filter(void *ctx, struct sim *sm, const struct raft_message *m)
{
	struct snap_watch *w = ctx;
	if (m->type != SIM_MSG_SNAPSHOT || m->to != w->to)
		return SIM_PASS;
	if (w->transfers < 8)
		w->at[w->transfers] = sim_now(sm);
	w->transfers++;
	return w->transfers <= w->drop_first ? SIM_DROP : SIM_PASS;
}

static bool pred_transfers(struct sim *sm, void *ctx)
{
	(void)sm;
	struct snap_watch *w = ctx;
	return w->transfers >= 2;
}

START_TEST(test_snapshot_transfer_lost_and_retried)
{
	struct sim_options o;
	sim_options_default(&o, 3, 211);
	o.snap.enabled = true;
	o.snap.no_report_rate = 0;
	o.snap.compact_min = o.snap.compact_max = UINT32_MAX;
	o.snap.transfer_extra_ms = 200; /* slow enough to be cut off halfway */
	start_with(&o);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	sim_crash(s, f);
	OK();
	raft_index last = write_n(l, 20);
	compact(l);
	struct snap_watch w = {.to = f, .drop_first = 1};
	sim_set_filter(s, snap_filter, &w);
	sim_restart(s, f);
	OK();
	/* The first transfer is lost; the second starts at least an election timeout later. */
	wait_for(pred_transfers, &w, 4 * ELECTION_MS, "a second snapshot transfer");
	sim_isolate(s, f); /* ... and is cut off on its way */
	run_for(ELECTION_MS / 2);
	sim_heal(s);
	wait_all_applied(last);
	struct sim_stats st = stats();
	ck_assert_int_ge(w.transfers, 3);
	ck_assert_uint_ge(st.snapshots_lost, 2);
	ck_assert_uint_ge(st.raft.snapshots_aborted, 2);
	ck_assert_uint_eq(st.snapshots_installed, 1);
	ck_assert_uint_ge(w.at[1] - w.at[0], ELECTION_MS); /* not retried at once */
	ck_assert_uint_ge(w.at[2] - w.at[1], ELECTION_MS);
}
END_TEST

/* (c) A crash in the middle of an install leaves the node as it was; after a restart it is
 * sent a snapshot again and installs it. */
static bool pred_installing(struct sim *sm, void *ctx)
{
	struct raft *r = sim_raft(sm, *(raft_id *)ctx);
	return r != NULL && raft_installing(r);
}

START_TEST(test_snapshot_crash_during_install)
{
	start_snap(3, 221, false);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	write_n(l, 2);
	sim_crash(s, f);
	OK();
	raft_index last = write_n(l, 30);
	compact(l);
	raft_index disk_last = sim_disk_last_index(s, f);
	raft_index applied = sim_applied(s, f);
	sim_restart(s, f);
	ck_assert_int_eq(sim_set_disk(s, f, 400, 400), 0); /* a slow install */
	OK();
	wait_for(pred_installing, &f, LONG_MS, "the install to start");
	run_for(100);
	ck_assert(raft_installing(sim_raft(s, f)));
	sim_crash(s, f);
	OK();
	ck_assert_uint_eq(sim_disk_first_index(s, f), 1); /* nothing of it is on the disk */
	ck_assert_uint_ge(sim_disk_last_index(s, f), disk_last);
	ck_assert_uint_eq(sim_applied(s, f), applied);
	struct sim_stats st = stats();
	ck_assert_uint_eq(st.installs_crashed, 1);
	ck_assert_uint_eq(st.snapshots_installed, 0);
	sim_set_disk(s, f, 0, 2);
	sim_restart(s, f);
	OK();
	wait_all_applied(last);
	st = stats();
	ck_assert_uint_eq(st.snapshots_installed, 1);
	ck_assert_uint_gt(sim_disk_first_index(s, f), disk_last + 1);
}
END_TEST

/* (d) A deposed leader holds a divergent uncommitted suffix; the new leader compacted past
 * the point where their logs part: the old leader is sent a snapshot and drops its whole log,
 * conflicting entries included (Figure 5.3 step 7). */
START_TEST(test_snapshot_replaces_divergent_suffix)
{
	struct sim_options o;
	sim_options_default(&o, 3, 231);
	o.snap.enabled = true;
	o.snap.no_report_rate = 0;
	o.snap.compact_min = o.snap.compact_max = UINT32_MAX;
	start_with(&o);
	raft_id old = stable_leader();
	raft_index common = write_n(old, 3);
	sim_isolate(s, old);
	uint64_t lost = propose(old, 3); /* uncommitted, never to be */
	raft_index div = sim_proposal(s, lost)->index;
	ck_assert_uint_eq(div, common + 1);
	raft_id l;
	for (;;) {
		wait_for(pred_leader, NULL, LONG_MS, "a leader");
		l = sim_leader(s);
		if (l != old)
			break;
		run_for(50);
	}
	raft_index last = write_n(l, 20);
	for (raft_id id = 1; id <= 3; id++)
		if (id != old)
			compact(id);
	ck_assert_uint_gt(raft_first_index(sim_raft(s, l)), div + 3);
	ck_assert_uint_eq(raft_last_index(sim_raft(s, old)), div + 2);
	sim_heal(s);
	wait_all_applied(last);
	for (uint64_t id = lost; id < lost + 3; id++)
		ck_assert_int_eq(sim_proposal(s, id)->state, SIM_PROP_LOST);
	ck_assert_uint_ge(stats().snapshots_installed, 1);
	struct raft *r = sim_raft(s, old);
	ck_assert_uint_gt(raft_first_index(r), div + 2); /* the whole log went */
	for (raft_index i = div; i < div + 3; i++) {
		raft_term t;
		ck_assert_int_eq(sim_applied_entry(s, old, i, &t, NULL), 0);
		ck_assert_uint_gt(t, sim_proposal(s, lost)->term);
	}
}
END_TEST

/* (e) An offer of what the follower already has is not installed: it answers success (and
 * learns the snapshot's index is committed). Here its log holds the entry but its commit
 * index lags: heartbeats and empty appends to it are dropped. */
struct commit_hold {
	raft_id to;
	bool on;
};

static int commit_hold_filter(void *ctx, struct sim *sm, const struct raft_message *m)
{
	struct commit_hold *h = ctx;
	(void)sm;
	if (!h->on || m->to != h->to)
		return SIM_PASS;
	if (m->type == RAFT_MSG_HEARTBEAT || (m->type == RAFT_MSG_APPEND && m->n_entries == 0))
		return SIM_DROP;
	return SIM_PASS;
}

START_TEST(test_snapshot_offer_already_held)
{
	start_snap(3, 241, false);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	write_n(l, 3);
	struct commit_hold h = {.to = f, .on = true};
	sim_set_filter(s, commit_hold_filter, &h);
	uint64_t p = propose(l, 1);
	wait_committed(p);
	raft_index i = sim_proposal(s, p)->index;
	struct node_index li = {l, i};
	wait_for(pred_node_applied, &li, LONG_MS, "the leader to apply");
	run_for(20);
	struct raft *fr = sim_raft(s, f);
	ck_assert_uint_eq(raft_last_index(fr), i);   /* f has it ... */
	ck_assert_uint_lt(raft_commit_index(fr), i); /* ... not knowing it is committed */
	ck_assert_int_eq(sim_send_snapshot(s, l, f), 0);
	run_for(50);
	OK();
	struct sim_stats st = stats();
	ck_assert_uint_eq(st.snapshots_offered, 1);
	ck_assert_uint_eq(st.snapshots_declined, 1);
	ck_assert_uint_eq(st.snapshots_installed, 0);
	ck_assert_uint_ge(raft_commit_index(fr), i);
	ck_assert_uint_eq(raft_first_index(fr), 1); /* its log was kept */
	ck_assert_uint_ge(sim_applied(s, f), i);    /* applied from its own log */
	/* And when the follower's commit index already covers it. */
	h.on = false;
	ck_assert_int_eq(sim_send_snapshot(s, l, other_than(l, f)), 0);
	run_for(50);
	OK();
	st = stats();
	ck_assert_uint_eq(st.snapshots_declined, 2);
	ck_assert_uint_eq(st.snapshots_installed, 0);
}
END_TEST

/* (f) A deposed leader that still believes it leads streams a snapshot tagged with its old
 * term: the receiver answers with its newer term and the sender steps down; nothing is
 * installed. */
struct mute {
	raft_id old, f;
};

/* The deposed leader hears only f's AppendEntries answers, and f gets none of its appends or
 * heartbeats: the snapshot is the one thing that can tell it about the new term. */
static int mute_filter(void *ctx, struct sim *sm, const struct raft_message *m)
{
	struct mute *mu = ctx;
	(void)sm;
	if (m->to == mu->old)
		return m->from == mu->f && m->type == RAFT_MSG_APPEND_RESP ? SIM_PASS : SIM_DROP;
	if (m->from == mu->old && (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT))
		return SIM_DROP;
	return SIM_PASS;
}

START_TEST(test_snapshot_stale_term_offer)
{
	struct sim_options o;
	sim_options_default(&o, 3, 251);
	o.snap.enabled = true;
	o.snap.compact_min = o.snap.compact_max = UINT32_MAX;
	o.raft.disable_check_quorum = true; /* so that the cut-off leader keeps believing */
	start_with(&o);
	raft_id old = stable_leader();
	write_n(old, 3);
	raft_term t_old = term_of(old);
	sim_isolate(s, old);
	raft_id l;
	for (;;) {
		wait_for(pred_leader, NULL, LONG_MS, "a leader");
		l = sim_leader(s);
		if (l != old)
			break;
		run_for(50);
	}
	write_n(l, 2);
	ck_assert_int_eq(role_of(old), RAFT_LEADER);
	raft_id f = other_than(old, l);
	struct mute mu = {old, f};
	sim_set_filter(s, mute_filter, &mu);
	sim_heal(s);
	raft_term t_new = term_of(f);
	ck_assert_uint_gt(t_new, t_old);
	ck_assert_int_eq(sim_send_snapshot(s, old, f), 0);
	wait_for(pred_not_leader, &old, ELECTION_MS, "the deposed leader to step down");
	ck_assert_uint_eq(term_of(old), t_new);
	ck_assert_uint_eq(term_of(f), t_new);
	ck_assert(!raft_installing(sim_raft(s, f)));
	struct sim_stats st = stats();
	ck_assert_uint_eq(st.snapshots_declined, 1);
	ck_assert_uint_eq(st.snapshots_installed, 0);
	sim_set_filter(s, NULL, NULL);
	wait_all_applied(write_n(stable_leader(), 1));
}
END_TEST

/* (g) Every log compacted to nothing, every node restarted: the logs are empty (last entry =
 * first_index - 1 / prev_term), a leader is elected and appends after it; and votes compare
 * those last entries: a node restarted from an older compacted log cannot win against a
 * newer one. */
START_TEST(test_restart_from_compacted_logs)
{
	start_snap(3, 261, false);
	raft_id l = stable_leader();
	raft_index a = write_n(l, 10);
	wait_all_applied(a);
	for (raft_id id = 1; id <= 3; id++) {
		compact(id);
		ck_assert_uint_eq(raft_first_index(sim_raft(s, id)), a + 1);
		ck_assert_uint_eq(raft_last_index(sim_raft(s, id)), a);
	}
	for (raft_id id = 1; id <= 3; id++)
		sim_crash(s, id);
	OK();
	for (raft_id id = 1; id <= 3; id++) {
		sim_restart(s, id);
		OK();
		struct raft *r = sim_raft(s, id);
		ck_assert_uint_eq(raft_first_index(r), a + 1);
		ck_assert_uint_eq(raft_last_index(r), a);
		ck_assert_uint_eq(raft_commit_index(r), a);
		ck_assert_uint_eq(sim_disk_first_index(s, id), a + 1);
	}
	l = stable_leader();
	raft_index b = write_n(l, 3);
	ck_assert_uint_ge(b, a + 4); /* after the new leader's no-op (at a + 1 at the earliest) */
	wait_all_applied(b);

	/* x misses entries while down; the others compact past them. */
	raft_id x = other_than(l, 0), y = other_than(l, x);
	sim_crash(s, x);
	OK();
	raft_index c = write_n(l, 5);
	compact(l);
	compact(y);
	ck_assert_uint_eq(raft_last_index(sim_raft(s, y)), c);
	ck_assert_uint_eq(raft_first_index(sim_raft(s, y)), c + 1);
	/* The leader goes; x comes back with the older log: y must win, with x's vote. */
	sim_crash(s, l);
	sim_restart(s, x);
	OK();
	ck_assert_uint_lt(raft_last_index(sim_raft(s, x)), c);
	struct leader_among la = {y, y, y};
	wait_for(pred_leader_among, &la, LONG_MS, "y to lead");
	ck_assert_int_ne(role_of(x), RAFT_LEADER);
	sim_restart(s, l);
	OK();
	wait_all_applied(write_n(y, 2));
}
END_TEST

/* Leadership moves while a follower is being sent a snapshot: the new leader's view decides,
 * late reports and answers to the old leader are harmless. */
START_TEST(test_snapshot_across_leader_change)
{
	struct sim_options o;
	sim_options_default(&o, 5, 271);
	o.snap.enabled = true;
	o.snap.compact_max = 5;
	o.snap.transfer_extra_ms = 300;
	start_with(&o);
	raft_id l = stable_leader();
	raft_id f = other_than(l, 0);
	sim_crash(s, f);
	OK();
	raft_index last = 0;
	for (int k = 0; k < 4; k++)
		last = write_n(l, 10);
	sim_restart(s, f);
	OK();
	wait_for(pred_installing, &f, LONG_MS, "an install");
	sim_crash(s, l);
	OK();
	run_for(3 * ELECTION_MS);
	sim_restart(s, l);
	OK();
	last = write_n(stable_leader(), 10);
	wait_all_applied(last);
}
END_TEST

static Suite *scenario_suite(void)
{
	Suite *su = suite_create("scenarios");
	TCase *tc = tcase_create("raft");
	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_one_leader_3);
	tcase_add_test(tc, test_one_leader_5);
	tcase_add_test(tc, test_partitioned_leader_cannot_commit);
	tcase_add_test(tc, test_figure_8_commitment);
	tcase_add_test(tc, test_prevote_rejoining_node_does_not_disrupt);
	tcase_add_test(tc, test_check_quorum_step_down);
	tcase_add_test(tc, test_read_index_refused_on_deposed_leader);
	tcase_add_test(tc, test_read_index_served_after_confirmation);
	tcase_add_test(tc, test_leadership_transfer);
	tcase_add_test(tc, test_follower_crash_loses_unpersisted_entries);
	tcase_add_test(tc, test_slow_leader_disk_commits_through_followers);
	tcase_add_test(tc, test_slow_leader_disk_counts_only_after_persist);
	tcase_add_test(tc, test_vote_leaves_only_after_persist);
	tcase_add_test(tc, test_pipelining);
	tcase_add_test(tc, test_batching);
	tcase_add_test(tc, test_same_seed_same_run);
	tcase_add_test(tc, test_snapshot_follower_catches_up);
	tcase_add_test(tc, test_snapshot_transfer_lost_and_retried);
	tcase_add_test(tc, test_snapshot_crash_during_install);
	tcase_add_test(tc, test_snapshot_replaces_divergent_suffix);
	tcase_add_test(tc, test_snapshot_offer_already_held);
	tcase_add_test(tc, test_snapshot_stale_term_offer);
	tcase_add_test(tc, test_restart_from_compacted_logs);
	tcase_add_test(tc, test_snapshot_across_leader_change);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(scenario_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
