/* test_torture.c — the CI slice of the torture harness: three seeded 20 s runs on 3 members with
 * kill, pause and partition faults must find no anomaly, and so must one in network-namespace
 * mode (partitions by nftables; root only, SKIPPED otherwise); a planted stale read must be
 * caught (a checker never shown to catch a bad history proves nothing). Also the nemesis
 * schedule's determinism and the proxy's delay mode. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/integration/harness.h"
#include "test/torture/nemesis.h"
#include "test/torture/torture.h"
#include "test/torture/workload.h"

#define CI_SEEDS       3
#define CI_DURATION_MS 20000
#define CI_FAULTS      "kill,pause,partition"
#define CI_NETNS_SEED  1 /* the same schedule as the first proxy run, made by the kernel */

/* Reports go to $CAIRN_TORTURE_OUT, else $CAIRN_BUILD/torture-test (kept for inspection). */
static const char *out_dir(void)
{
	static char dir[512];
	const char *o = getenv("CAIRN_TORTURE_OUT");
	if (o != NULL && o[0] != '\0')
		return o;
	const char *b = getenv("CAIRN_BUILD");
	snprintf(dir, sizeof(dir), "%s/torture-test", b && b[0] ? b : "build");
	return dir;
}

static void ci_config(struct torture_config *cfg, uint64_t seed)
{
	torture_config_defaults(cfg);
	cfg->seed = seed;
	cfg->duration_ms = CI_DURATION_MS;
	cfg->nodes = 3;
	cfg->clients = 4;
	cfg->keys = 3;
	cfg->rate = 150;
	cfg->out_dir = out_dir();
	cfg->plot = false;
	char err[256];
	ck_assert_msg(nem_parse_faults(CI_FAULTS, cfg->nodes, &cfg->faults, err, sizeof(err)) == 0,
		      "%s", err);
}

/* Seeds 1..3, 20 s each: no anomaly, and each run injected every family asked for. */
START_TEST(test_ci_seed)
{
	struct torture_config cfg;
	ci_config(&cfg, (uint64_t)_i + 1);
	struct torture_result res;
	int rv = torture_run(&cfg, &res);
	H_ASSERT_MSG(rv == 0, "seed %d: %s", _i + 1, res.verdict);
	unsigned want = (1u << NEM_FAM_KILL) | (1u << NEM_FAM_PAUSE) | (1u << NEM_FAM_PARTITION);
	H_ASSERT_MSG((res.families & want) == want,
		     "seed %d injected families %#x, wanted kill, pause and partition (%#x)",
		     _i + 1, res.families, want);
	H_ASSERT(res.ok > 0 && res.faults >= 3);
	H_ASSERT_STR_EQ(res.check_outcome, "linearizable");
	/* The members compacted their logs (snapshot count 100) during the run. */
	H_ASSERT_MSG(res.compactions > 0, "seed %d: no log compaction in the members' logs",
		     _i + 1);
}
END_TEST

/* One seed with the members in network namespaces: partitions are nftables rules (TCP resets
 * or silent drops in the kernel), kills and pauses hit cairnd itself inside its namespace. */
START_TEST(test_ci_netns_seed)
{
	if (h_netns_skip("test_ci_netns_seed"))
		return;
	struct torture_config cfg;
	ci_config(&cfg, CI_NETNS_SEED);
	cfg.net = H_NET_NETNS;
	static char dir[600];
	snprintf(dir, sizeof(dir), "%s/netns", out_dir()); /* beside the proxy runs' reports */
	cfg.out_dir = dir;
	struct torture_result res;
	int rv = torture_run(&cfg, &res);
	H_ASSERT_MSG(rv == 0, "netns seed %d: %s", CI_NETNS_SEED, res.verdict);
	unsigned want = (1u << NEM_FAM_KILL) | (1u << NEM_FAM_PAUSE) | (1u << NEM_FAM_PARTITION);
	H_ASSERT_MSG((res.families & want) == want,
		     "netns seed %d injected families %#x, wanted kill, pause and partition (%#x)",
		     CI_NETNS_SEED, res.families, want);
	H_ASSERT(res.ok > 0 && res.faults >= 3);
	H_ASSERT_STR_EQ(res.check_outcome, "linearizable");
}
END_TEST

/* The harness + checker must flag a stale read planted in a real history. */
START_TEST(test_injected_stale_read_is_caught)
{
	struct torture_config cfg;
	torture_config_defaults(&cfg);
	cfg.seed = 1000;
	cfg.duration_ms = 4000;
	cfg.faults = 0;
	cfg.nosync = true;
	cfg.inject_anomaly = true;
	cfg.out_dir = out_dir();
	cfg.plot = false;
	struct torture_result res;
	int rv = torture_run(&cfg, &res);
	H_ASSERT_MSG(rv == 1, "expected an anomaly, got %d: %s", rv, res.verdict);
	H_ASSERT_MSG(res.injected, "no read could be made stale: %s", res.verdict);
	H_ASSERT_MSG(res.anomalies & TA_NOT_LINEARIZABLE, "anomalies %#x: %s", res.anomalies,
		     res.verdict);
	H_ASSERT_MSG(res.injected_caught, "the checker did not flag the stale read's key");
	/* nothing else is wrong with the run */
	H_ASSERT_INT_EQ(res.anomalies & ~(unsigned)TA_NOT_LINEARIZABLE, 0);
}
END_TEST

/* The schedule is a function of the seed; the first faults cover every family chosen. */
START_TEST(test_plan_is_seeded_and_covers_families)
{
	unsigned mask;
	char err[256];
	ck_assert_int_eq(nem_parse_faults("all", 5, &mask, err, sizeof(err)), 0);
	unsigned mask3;
	ck_assert_int_eq(nem_parse_faults("all", 3, &mask3, err, sizeof(err)), 0);
	ck_assert_uint_eq(mask3 & (1u << NEM_PARTITION_RING), 0); /* ring needs 5 members */
	ck_assert_uint_ne(mask & (1u << NEM_PARTITION_RING), 0);
	ck_assert_int_eq(nem_parse_faults("kill-leader,pause", 3, &mask3, err, sizeof(err)), 0);
	ck_assert_uint_eq(mask3, (1u << NEM_KILL_LEADER) | (1u << NEM_PAUSE_LEADER) |
				     (1u << NEM_PAUSE_FOLLOWER));
	ck_assert_int_eq(nem_parse_faults("kill,bogus", 3, &mask3, err, sizeof(err)), -1);
	ck_assert_int_eq(nem_parse_faults(CI_FAULTS, 3, &mask3, err, sizeof(err)), 0);
	int differ = 0;
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct nem_plan a, b, other;
		ck_assert_int_eq(nem_plan_make(seed, CI_DURATION_MS, 3, mask3, false, &a), 0);
		ck_assert_int_eq(nem_plan_make(seed, CI_DURATION_MS, 3, mask3, false, &b), 0);
		ck_assert_int_eq(nem_plan_make(seed + 1, CI_DURATION_MS, 3, mask3, false, &other),
				 0);
		ck_assert_uint_eq(a.n, b.n);
		ck_assert(a.n == 0 || memcmp(a.ev, b.ev, a.n * sizeof(*a.ev)) == 0);
		if (a.n != other.n || memcmp(a.ev, other.ev, a.n * sizeof(*a.ev)) != 0)
			differ++;
		unsigned fams = 0;
		int last_end = 0;
		for (size_t i = 0; i < a.n; i++) {
			const struct nem_event *e = &a.ev[i];
			ck_assert_uint_ne(mask3 & (1u << e->kind), 0);
			ck_assert_int_ge(e->start_ms, last_end); /* one fault at a time */
			ck_assert_int_ge(e->dur_ms, 800);
			ck_assert_int_le(e->start_ms + e->dur_ms, CI_DURATION_MS - 500);
			last_end = e->start_ms + e->dur_ms;
			fams |= 1u << nem_kind_family(e->kind);
		}
		ck_assert_msg(fams == ((1u << NEM_FAM_KILL) | (1u << NEM_FAM_PAUSE) |
				       (1u << NEM_FAM_PARTITION)),
			      "seed %llu: a 20 s plan misses a family", (unsigned long long)seed);
		nem_plan_free(&a);
		nem_plan_free(&b);
		nem_plan_free(&other);
	}
	ck_assert_int_gt(differ, 190);
	/* --overlap: some faults start inside the previous one, never three at once */
	int overlaps = 0;
	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct nem_plan p;
		ck_assert_int_eq(nem_plan_make(seed, 60000, 5, mask, true, &p), 0);
		for (size_t i = 0; i < p.n; i++) {
			const struct nem_event *e = &p.ev[i];
			ck_assert_int_le(e->start_ms + e->dur_ms, 60000 - 500);
			int active = 0;
			for (size_t j = 0; j < p.n; j++)
				if (p.ev[j].start_ms <= e->start_ms &&
				    p.ev[j].start_ms + p.ev[j].dur_ms > e->start_ms)
					active++;
			ck_assert_int_le(active, 2);
			if (i > 0)
				ck_assert_int_ge(e->start_ms, p.ev[i - 1].start_ms);
			if (active == 2)
				overlaps++;
		}
		nem_plan_free(&p);
	}
	ck_assert_int_gt(overlaps, 200);
}
END_TEST

/* History lines are the documented JSON, with "error" on fail/info but not on a cas whose
 * compare failed. */
START_TEST(test_history_json_lines)
{
	struct wl_history h;
	ck_assert_int_eq(wl_history_init(&h, 3, 7, NULL), 0);
	char v[32];
	wl_history_new_value(&h, v, sizeof(v));
	ck_assert_str_eq(v, "v1");
	long w = wl_history_invoke(&h, 7, WL_WRITE, 1, "v1", NULL, NULL);
	long wc = wl_history_complete(&h, w, WL_INFO, NULL, 0, -4 /* CAIRN_EUNKNOWN */, 0, 0);
	long r = wl_history_invoke(&h, 8, WL_READ, 0, NULL, NULL, NULL);
	long rc = wl_history_complete(&h, r, WL_OK, NULL, 0, 0, 2, 5);
	long c = wl_history_invoke(&h, 8, WL_CAS, 2, NULL, "v1", "v2");
	long cc = wl_history_complete(&h, c, WL_FAIL, NULL, 0, 0, 2, 5);
	long r2 = wl_history_invoke(&h, 8, WL_READ, 2, NULL, NULL, NULL);
	long r2c = wl_history_complete(&h, r2, WL_OK, "a\"b\x01", 4, 0, 1, 6);
	char line[512];
	struct {
		long i;
		const char *prefix;
	} want[] = {
	    {w,
	     "{\"process\":7,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k1\",\"value\":\"v1\","
	     "\"time\":"},
	    {wc, "{\"process\":7,\"type\":\"info\",\"f\":\"write\",\"key\":\"k1\",\"value\":\"v1\","
		 "\"error\":"},
	    {r, "{\"process\":8,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k0\",\"time\":"},
	    {rc, "{\"process\":8,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k0\",\"value\":null,"
		 "\"node\":2,\"revision\":5,\"time\":"},
	    {c, "{\"process\":8,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k2\",\"from\":\"v1\","
		"\"to\":\"v2\",\"time\":"},
	    {cc, "{\"process\":8,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k2\",\"from\":\"v1\","
		 "\"to\":\"v2\",\"node\":2,\"revision\":5,\"time\":"},
	    {r2c, "{\"process\":8,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k2\","
		  "\"value\":\"a\\\"b\\u0001\",\"node\":1,\"revision\":6,\"time\":"},
	};
	for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		wl_event_json(&h, &h.ev[want[i].i], line, sizeof(line));
		ck_assert_msg(strncmp(line, want[i].prefix, strlen(want[i].prefix)) == 0,
			      "got %s\nwant %s...", line, want[i].prefix);
		ck_assert(line[strlen(line) - 1] == '}');
	}
	ck_assert_int_eq(wl_history_new_process(&h), 7);
	wl_history_free(&h);
}
END_TEST

/* H_LINK_DELAY holds a link's bytes for the delay (a write needs a round trip: at least two
 * delayed hops) and delivers them; back to PASS, writes are fast again. */
START_TEST(test_proxy_delay_link)
{
	struct h_cluster_opts o = {.n = 3, .net = H_NET_PROXY, .nosync = true};
	struct h_cluster *c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	H_ASSERT(h_put_anywhere(c, H_ALL, "a", "1", 20000) > 0);
	const int delay = 300;
	int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1] = {{0}};
	int ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1] = {{0}};
	for (int a = 1; a <= 3; a++)
		for (int b = 1; b <= 3; b++) {
			mode[a][b] = H_LINK_DELAY;
			ms[a][b] = delay;
		}
	/* below the election timeout per hop, but heartbeats arrive late: elections may happen */
	h_link_set_matrix(c, mode, ms);
	uint64_t bytes0 = 0;
	for (int b = 1; b <= 3; b++)
		if (b != leader)
			bytes0 += h_link_bytes(c, leader, b);
	uint64_t t0 = h_now_ms();
	H_ASSERT(h_put_anywhere(c, H_ALL, "a", "2", 30000) > 0);
	uint64_t took = h_now_ms() - t0;
	H_ASSERT_MSG(took >= 2 * (uint64_t)delay, "a write through delayed links took %llu ms",
		     (unsigned long long)took);
	uint64_t bytes1 = 0;
	for (int b = 1; b <= 3; b++)
		if (b != leader)
			bytes1 += h_link_bytes(c, leader, b);
	H_ASSERT(bytes1 > bytes0);
	/* one link: PASS <-> DELAY keeps the stream */
	h_heal(c);
	h_link_set_delay(c, 1, 2, 50);
	h_link_set(c, 1, 2, H_LINK_PASS);
	H_ASSERT(h_put_anywhere(c, H_ALL, "a", "3", 20000) > 0);
	for (int id = 1; id <= 3; id++)
		H_ASSERT(h_wait_value(c, id, "a", "3", true, 20000));
	h_cluster_destroy(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("torture");
	TCase *fast = h_tcase("fast");
	h_add_test(fast, test_plan_is_seeded_and_covers_families);
	h_add_test(fast, test_history_json_lines);
	h_add_test(fast, test_proxy_delay_link);
	suite_add_tcase(s, fast);
	TCase *runs = h_tcase("runs");
	h_add_test(runs, test_injected_stale_read_is_caught);
	const char *only = getenv("CAIRN_IT_TEST");
	if (only == NULL || only[0] == '\0' || strstr("test_ci_seed", only) != NULL)
		tcase_add_loop_test(runs, test_ci_seed, 0, CI_SEEDS);
	h_add_test(runs, test_ci_netns_seed);
	suite_add_tcase(s, runs);
	return h_run_suite(s);
}
