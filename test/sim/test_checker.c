/* test_checker.c — the invariant checker catches forged violations and accepts legal histories. */
#include <check.h>
#include <stdlib.h>

#include "test/sim/checker.h"

#define N 3

/* A forged cluster: three nodes whose logs and state machines the tests write by hand. */
struct forge {
	struct checker *c;
	struct checker_node nodes[N];
	struct checker_entry log[N][16];
	struct checker_entry sm[N][16];
};

static struct forge *f;

static void setup(void)
{
	f = calloc(1, sizeof(*f));
	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(checker_create(&f->c), 0);
	for (int i = 0; i < N; i++) {
		struct checker_node *n = &f->nodes[i];
		n->id = (raft_id)i + 1;
		n->up = true;
		n->incarnation = 1;
		n->role = RAFT_FOLLOWER;
		n->term = 1;
		n->log = f->log[i];
		n->applied = f->sm[i];
	}
}

static void teardown(void)
{
	checker_destroy(f->c);
	free(f);
}

/* An entry: its payload hash is the letter, so 'a' at term 1 and 'a' at term 2 differ only by
 * term. */
static struct checker_entry e(raft_term term, char payload)
{
	return (struct checker_entry){.term = term, .hash = checker_entry_hash(1, &payload, 1)};
}

/* Sets node `id`'s log from a string of (term digit, payload letter) pairs: "1a1b2c". */
static void set_log(raft_id id, const char *spec)
{
	struct checker_node *n = &f->nodes[id - 1];
	size_t k = 0;
	for (const char *p = spec; p[0] && p[1]; p += 2)
		f->log[id - 1][k++] = e((raft_term)(p[0] - '0'), p[1]);
	n->n_log = k;
	n->log_unchanged = 0;
	n->log_first = 0;
	n->prev_term = 0;
}

/* A compacted log: entries before `first` are gone, the one at first - 1 had `prev_term`. */
static void set_log_from(raft_id id, raft_index first, raft_term prev_term, const char *spec)
{
	set_log(id, spec);
	f->nodes[id - 1].log_first = first;
	f->nodes[id - 1].prev_term = prev_term;
}

static void set_applied(raft_id id, const char *spec)
{
	struct checker_node *n = &f->nodes[id - 1];
	size_t k = 0;
	for (const char *p = spec; p[0] && p[1]; p += 2)
		f->sm[id - 1][k++] = e((raft_term)(p[0] - '0'), p[1]);
	n->n_applied = k;
}

/* An installed snapshot replaces the state machine. */
static void install(raft_id id, const char *spec)
{
	set_applied(id, spec);
	f->nodes[id - 1].sm_generation++;
}

static void set_role(raft_id id, int role, raft_term term, raft_index commit)
{
	f->nodes[id - 1].role = role;
	f->nodes[id - 1].term = term;
	f->nodes[id - 1].commit = commit;
}

static int step(void)
{
	return checker_step(f->c, f->nodes, N);
}

#define ASSERT_OK() ck_assert_msg(step() == CHECKER_OK, "unexpected: %s", checker_message(f->c))
#define ASSERT_VIOLATION(v)                                                                        \
	do {                                                                                       \
		int got_ = step();                                                                 \
		ck_assert_msg(got_ == (v), "expected %s, got %s (%s)", checker_name(v),            \
			      checker_name(got_), checker_message(f->c));                          \
	} while (0)

/* A legal history: elections, replication, commits, a follower overwriting uncommitted
 * entries, a crash losing unpersisted entries, a new leader carrying on. */
START_TEST(test_legal_history_passes)
{
	set_role(1, RAFT_LEADER, 1, 0);
	set_log(1, "1a1b");
	set_log(2, "1a");
	set_log(3, "");
	ASSERT_OK();
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(2, "1a1b");
	set_role(2, RAFT_FOLLOWER, 1, 1);
	set_applied(1, "1a1b");
	set_applied(2, "1a");
	ASSERT_OK();
	/* Node 1 appends c, unreplicated, then crashes; node 3 held a stale uncommitted entry. */
	set_log(1, "1a1b1c");
	set_log(3, "1a");
	ASSERT_OK();
	f->nodes[0].up = false;
	ASSERT_OK();
	/* Node 2 wins term 2 with the committed prefix; node 3 receives it. */
	set_role(2, RAFT_LEADER, 2, 2);
	set_log(2, "1a1b2d");
	set_role(3, RAFT_FOLLOWER, 2, 0);
	set_log(3, "1a1b2d");
	ASSERT_OK();
	/* Node 1 restarts from a disk without c, then c is replaced by d: fine, never committed. */
	f->nodes[0].up = true;
	f->nodes[0].incarnation = 2;
	set_role(1, RAFT_FOLLOWER, 2, 2);
	set_log(1, "1a1b1c");
	ASSERT_OK();
	set_log(1, "1a1b2d");
	set_role(2, RAFT_LEADER, 2, 3);
	set_applied(2, "1a1b2d");
	ASSERT_OK();
	ck_assert_uint_eq(checker_committed(f->c), 3);
	ck_assert_uint_eq(checker_leader_of(f->c, 2), 2);
}
END_TEST

START_TEST(test_two_leaders_in_one_term)
{
	set_role(1, RAFT_LEADER, 3, 0);
	set_role(2, RAFT_LEADER, 3, 0);
	ASSERT_VIOLATION(CHECKER_ELECTION_SAFETY);
}
END_TEST

/* Over the whole run: the second leader of term 3 appears after the first stepped down. */
START_TEST(test_two_leaders_in_one_term_at_different_times)
{
	set_role(1, RAFT_LEADER, 3, 0);
	ASSERT_OK();
	set_role(1, RAFT_FOLLOWER, 3, 0);
	ASSERT_OK();
	set_role(2, RAFT_LEADER, 3, 0);
	ASSERT_VIOLATION(CHECKER_ELECTION_SAFETY);
}
END_TEST

/* Index 2 has term 1 on both nodes, but index 1 differs. */
START_TEST(test_logs_disagree_before_matching_entry)
{
	set_log(1, "1a1b");
	set_log(2, "1x1b");
	ASSERT_VIOLATION(CHECKER_LOG_MATCHING);
}
END_TEST

/* The same, with the two logs never present at the same step. */
START_TEST(test_logs_disagree_across_time)
{
	set_log(1, "1a1b");
	ASSERT_OK();
	set_log(1, "");
	ASSERT_OK();
	set_log(3, "1x1b");
	ASSERT_VIOLATION(CHECKER_LOG_MATCHING);
}
END_TEST

/* Same index and term but different payloads: two leaders wrote index 1 in term 1. */
START_TEST(test_same_index_term_different_entry)
{
	set_log(1, "1a");
	set_log(2, "1z");
	ASSERT_VIOLATION(CHECKER_LOG_MATCHING);
}
END_TEST

START_TEST(test_leader_lost_committed_entry)
{
	set_role(1, RAFT_LEADER, 1, 1);
	set_log(1, "1a");
	ASSERT_OK();
	set_role(1, RAFT_FOLLOWER, 2, 1);
	set_role(2, RAFT_LEADER, 2, 0);
	set_log(2, "2b");
	ASSERT_VIOLATION(CHECKER_LEADER_COMPLETENESS);
}
END_TEST

/* A stale leader of an older term lacking a newer commit is not a violation (§3.6.3 speaks of
 * leaders of later terms); this is what a partitioned old leader looks like. */
START_TEST(test_stale_leader_of_older_term_is_fine)
{
	set_role(3, RAFT_LEADER, 1, 0);
	set_log(3, "");
	ASSERT_OK();
	set_role(1, RAFT_LEADER, 2, 1);
	set_log(1, "2a");
	set_role(2, RAFT_FOLLOWER, 2, 0);
	set_log(2, "2a");
	ASSERT_OK();
	/* ... but a leader of term 3 without it is. */
	set_role(3, RAFT_FOLLOWER, 3, 0);
	set_role(1, RAFT_FOLLOWER, 3, 1);
	set_role(2, RAFT_LEADER, 3, 0);
	set_log(2, "");
	ASSERT_VIOLATION(CHECKER_LEADER_COMPLETENESS);
}
END_TEST

START_TEST(test_applied_sequences_diverge)
{
	set_log(1, "1a");
	set_log(2, "1a");
	set_applied(1, "1a");
	ASSERT_OK();
	set_applied(2, "1b");
	ASSERT_VIOLATION(CHECKER_STATE_MACHINE_SAFETY);
}
END_TEST

/* A state machine applying an entry that contradicts a commit index elsewhere. */
START_TEST(test_applied_contradicts_commit_index)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b");
	ASSERT_OK();
	set_applied(3, "1a1c");
	ASSERT_VIOLATION(CHECKER_STATE_MACHINE_SAFETY);
}
END_TEST

START_TEST(test_leader_overwrites_own_entry)
{
	set_role(1, RAFT_LEADER, 2, 0);
	set_log(1, "1a2b");
	ASSERT_OK();
	set_log(1, "1a2c");
	ASSERT_VIOLATION(CHECKER_LEADER_APPEND_ONLY);
}
END_TEST

START_TEST(test_leader_deletes_own_entry)
{
	set_role(1, RAFT_LEADER, 2, 0);
	set_log(1, "1a2b");
	ASSERT_OK();
	set_log(1, "1a");
	ASSERT_VIOLATION(CHECKER_LEADER_APPEND_ONLY);
}
END_TEST

/* log_unchanged is only a promise about the prefix below it: a change above it is seen. */
START_TEST(test_leader_overwrite_seen_above_promise)
{
	set_role(1, RAFT_LEADER, 2, 0);
	set_log(1, "1a2b2c");
	ASSERT_OK();
	set_log(1, "1a2b2d");
	f->nodes[0].log_unchanged = 2;
	ASSERT_VIOLATION(CHECKER_LEADER_APPEND_ONLY);
}
END_TEST

/* The same overwrite after the node stopped being leader (a new term) is legal. */
START_TEST(test_follower_may_overwrite_uncommitted)
{
	set_role(1, RAFT_LEADER, 2, 0);
	set_log(1, "1a2b");
	ASSERT_OK();
	set_role(1, RAFT_FOLLOWER, 3, 0);
	set_log(1, "1a3c");
	ASSERT_OK();
}
END_TEST

/* Figure 3.7: the leader of term 4 counts replicas of a term-2 entry. */
START_TEST(test_leader_commits_old_term_entry_by_counting)
{
	set_role(1, RAFT_LEADER, 4, 1);
	set_log(1, "1a2b4c");
	ASSERT_OK();
	set_role(1, RAFT_LEADER, 4, 2);
	ASSERT_VIOLATION(CHECKER_CURRENT_TERM_COMMIT);
}
END_TEST

/* ... while committing it together with an entry of term 4 is the rule. */
START_TEST(test_leader_commits_old_term_entry_indirectly)
{
	set_role(1, RAFT_LEADER, 4, 1);
	set_log(1, "1a2b4c");
	ASSERT_OK();
	set_role(1, RAFT_LEADER, 4, 3);
	ASSERT_OK();
}
END_TEST

START_TEST(test_node_drops_entry_below_its_commit)
{
	set_log(2, "1a1b");
	set_role(2, RAFT_FOLLOWER, 1, 2);
	ASSERT_OK();
	set_log(2, "1a");
	set_role(2, RAFT_FOLLOWER, 1, 1);
	ASSERT_VIOLATION(CHECKER_COMMIT_DURABILITY);
}
END_TEST

START_TEST(test_commit_beyond_log)
{
	set_log(2, "1a");
	set_role(2, RAFT_FOLLOWER, 1, 2);
	ASSERT_VIOLATION(CHECKER_COMMIT_DURABILITY);
}
END_TEST

START_TEST(test_state_machine_goes_back)
{
	set_applied(1, "1a1b");
	ASSERT_OK();
	set_applied(1, "1a");
	ASSERT_VIOLATION(CHECKER_STATE_MACHINE_SAFETY);
}
END_TEST

/* ---- compaction and snapshots ---- */

/* Legal: a leader compacts its committed prefix and stays complete; a follower with a
 * divergent uncommitted suffix installs a snapshot and restarts its log after it; a node
 * restarts from a compacted log. */
START_TEST(test_compaction_and_install_pass)
{
	set_role(1, RAFT_LEADER, 2, 3);
	set_log(1, "1a1b2c");
	set_role(2, RAFT_FOLLOWER, 2, 3);
	set_log(2, "1a1b2c");
	set_role(3, RAFT_FOLLOWER, 4, 1); /* x, y: a deposed leader's, never committed */
	set_log(3, "1a4x4y");
	set_applied(1, "1a1b2c");
	set_applied(3, "1a");
	ASSERT_OK();
	set_log_from(1, 3, 1, "2c2d"); /* compacted 1..2, appended d */
	set_log_from(2, 4, 2, "");     /* compacted everything */
	ASSERT_OK();
	set_role(1, RAFT_LEADER, 2, 4);
	set_applied(1, "1a1b2c2d");
	ASSERT_OK();
	/* Node 3 installs the snapshot at 4: its whole log goes, x and y included. */
	install(3, "1a1b2c2d");
	set_role(3, RAFT_FOLLOWER, 4, 4);
	set_log_from(3, 5, 2, "");
	ASSERT_OK();
	set_log_from(3, 5, 2, "2e");
	set_log_from(1, 3, 1, "2c2d2e");
	ASSERT_OK();
	/* Node 2 restarts from its compacted disk and catches up. */
	f->nodes[1].incarnation++;
	set_log_from(2, 4, 2, "2d2e");
	ASSERT_OK();
	/* A new leader whose log starts after entries committed earlier is complete. */
	set_role(1, RAFT_FOLLOWER, 3, 4);
	set_role(2, RAFT_LEADER, 3, 4);
	ASSERT_OK();
	ck_assert_uint_eq(checker_committed(f->c), 4);
}
END_TEST

START_TEST(test_compacted_beyond_commit)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b1c");
	ASSERT_OK();
	set_log_from(1, 4, 1, "");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

/* The log resumes after (2, term 2) where (2, term 1) is committed. */
START_TEST(test_compacted_prefix_wrong_term)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b");
	ASSERT_OK();
	set_role(2, RAFT_FOLLOWER, 2, 2);
	set_log_from(2, 3, 2, "2c");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

/* A snapshot of state nobody committed. */
START_TEST(test_snapshot_of_uncommitted_state)
{
	set_role(1, RAFT_LEADER, 1, 1);
	set_log(1, "1a1b");
	set_applied(1, "1a");
	ASSERT_OK();
	install(2, "1a1b");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

START_TEST(test_snapshot_differs_from_committed)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b");
	set_applied(1, "1a1b");
	ASSERT_OK();
	install(2, "1a1z");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

START_TEST(test_snapshot_moves_state_machine_back)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b");
	set_applied(1, "1a1b");
	set_applied(2, "1a1b");
	ASSERT_OK();
	install(2, "1a");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

/* An install that keeps the follower's conflicting suffix: entry 3 (term 2) followed x in its
 * old log, and now claims to follow the committed b. */
START_TEST(test_install_keeps_conflicting_suffix)
{
	set_role(1, RAFT_LEADER, 3, 2);
	set_log(1, "1a1b");
	set_applied(1, "1a1b");
	set_role(2, RAFT_FOLLOWER, 2, 1);
	set_log(2, "1a2x2y");
	ASSERT_OK();
	install(2, "1a1b");
	set_role(2, RAFT_FOLLOWER, 3, 2);
	set_log_from(2, 3, 1, "2y");
	ASSERT_VIOLATION(CHECKER_LOG_MATCHING);
}
END_TEST

/* A log start that moves back within one incarnation. */
START_TEST(test_log_start_goes_back)
{
	set_role(1, RAFT_LEADER, 1, 2);
	set_log(1, "1a1b");
	set_applied(1, "1a1b");
	ASSERT_OK();
	set_log_from(1, 3, 1, "");
	ASSERT_OK();
	set_log_from(1, 2, 1, "1b");
	ASSERT_VIOLATION(CHECKER_SNAPSHOT_SAFETY);
}
END_TEST

static Suite *checker_suite(void)
{
	Suite *s = suite_create("checker");
	TCase *tc = tcase_create("forged");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_legal_history_passes);
	tcase_add_test(tc, test_two_leaders_in_one_term);
	tcase_add_test(tc, test_two_leaders_in_one_term_at_different_times);
	tcase_add_test(tc, test_logs_disagree_before_matching_entry);
	tcase_add_test(tc, test_logs_disagree_across_time);
	tcase_add_test(tc, test_same_index_term_different_entry);
	tcase_add_test(tc, test_leader_lost_committed_entry);
	tcase_add_test(tc, test_stale_leader_of_older_term_is_fine);
	tcase_add_test(tc, test_applied_sequences_diverge);
	tcase_add_test(tc, test_applied_contradicts_commit_index);
	tcase_add_test(tc, test_leader_overwrites_own_entry);
	tcase_add_test(tc, test_leader_deletes_own_entry);
	tcase_add_test(tc, test_leader_overwrite_seen_above_promise);
	tcase_add_test(tc, test_follower_may_overwrite_uncommitted);
	tcase_add_test(tc, test_leader_commits_old_term_entry_by_counting);
	tcase_add_test(tc, test_leader_commits_old_term_entry_indirectly);
	tcase_add_test(tc, test_node_drops_entry_below_its_commit);
	tcase_add_test(tc, test_commit_beyond_log);
	tcase_add_test(tc, test_state_machine_goes_back);
	tcase_add_test(tc, test_compaction_and_install_pass);
	tcase_add_test(tc, test_compacted_beyond_commit);
	tcase_add_test(tc, test_compacted_prefix_wrong_term);
	tcase_add_test(tc, test_snapshot_of_uncommitted_state);
	tcase_add_test(tc, test_snapshot_differs_from_committed);
	tcase_add_test(tc, test_snapshot_moves_state_machine_back);
	tcase_add_test(tc, test_install_keeps_conflicting_suffix);
	tcase_add_test(tc, test_log_start_goes_back);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(checker_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
