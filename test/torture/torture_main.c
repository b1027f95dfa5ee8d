/* torture_main.c — cairn-torture: runs the Jepsen-style fault-injection harness for one seed or
 * a range of seeds and exits non-zero on any anomaly (docs/torture.md). */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test/torture/nemesis.h"
#include "test/torture/torture.h"

#define EXIT_ANOMALY 1
#define EXIT_USAGE   2

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "usage: cairn-torture [options]\n"
	    "  --seed S            run seed S (default 1); the same seed replays the same fault\n"
	    "                      schedule and operation mix\n"
	    "  --seeds N           run N seeds: --start, --start + 1, ... (default start 1)\n"
	    "  --start S           first seed of --seeds\n"
	    "  --duration T        workload + nemesis time per seed: 20s, 500ms, 5m (default 20s)\n"
	    "  --nodes N           cluster members, 1..5 (default 3)\n"
	    "  --net MODE          how partitions are made (default proxy):\n"
	    "                        proxy  a fault-injecting TCP proxy on every peer link\n"
	    "                        netns  a network namespace per member, links cut with\n"
	    "                               nftables (needs root; delays need netem)\n"
	    "  --clients N         concurrent clients, one operation in flight each (default 5)\n"
	    "  --keys K            registers k0..k<K-1> (default 3)\n"
	    "  --faults LIST       comma-separated families or kinds (default all):\n"
	    "                        kill (kill-follower, kill-leader, kill-majority)\n"
	    "                        pause (pause-leader, pause-follower)\n"
	    "                        partition (partition-leader, partition-split,\n"
	    "                                   partition-bridge, partition-ring: 5 members)\n"
	    "                        oneway (oneway-leader-out, oneway-leader-in)\n"
	    "                        delay (delay-all, delay-leader)\n"
	    "                        all, none\n"
	    "  --overlap           some faults start while the previous one is still active\n"
	    "                      (e.g. a kill during a partition); at most two at once\n"
	    "  --out DIR           reports go to DIR/<seed>/ (default torture-out)\n"
	    "  --rate R            at most R operations started per second, all clients (default\n"
	    "                      200; 0 = as fast as they go)\n"
	    "  --op-timeout T      deadline of one client operation (default 1000ms)\n"
	    "  --mix R,C           percent of reads and of cas (default 50,25; writes: the rest)\n"
	    "  --recover-timeout T after healing, a write must succeed within T (default 30s)\n"
	    "  --check-steps N     checker search budget per key (default: the checker's)\n"
	    "  --nosync            run cairnd with --unsafe-no-fsync (durability not tested)\n"
	    "  --snapshot-count N  cairnd --snapshot-count, catch-up entries N/5 (default 100:\n"
	    "                      frequent compactions and snapshot transfers)\n"
	    "  --inject-anomaly    self-test: make one read stale before checking (must FAIL)\n"
	    "  --no-plot           skip scripts/torture-plot.sh\n"
	    "  --quiet             only the verdict line per seed\n"
	    "exit status: 0 no anomaly, 1 an anomaly in some seed, 2 usage or set-up error\n");
}

/* "20s", "500ms", "2m", "20" (seconds) -> ms; -1 if malformed. */
static long parse_duration_ms(const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0)
		return -1;
	double ms;
	if (*end == '\0' || strcmp(end, "s") == 0)
		ms = v * 1000;
	else if (strcmp(end, "ms") == 0)
		ms = v;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		ms = v * 60000;
	else if (strcmp(end, "h") == 0)
		ms = v * 3600000;
	else
		return -1;
	return ms > 86400000.0 ? -1 : (long)ms;
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-')
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	struct torture_config cfg;
	torture_config_defaults(&cfg);
	const char *faults = "all";
	const char *net = "proxy";
	uint64_t start = 1, nseeds = 0;
	bool seed_given = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		long n;
		bool needs = true;
		int bad = 0;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--nosync") == 0) {
			cfg.nosync = true;
			needs = false;
		} else if (strcmp(a, "--inject-anomaly") == 0) {
			cfg.inject_anomaly = true;
			needs = false;
		} else if (strcmp(a, "--overlap") == 0) {
			cfg.overlap = true;
			needs = false;
		} else if (strcmp(a, "--no-plot") == 0) {
			cfg.plot = false;
			needs = false;
		} else if (strcmp(a, "--quiet") == 0) {
			cfg.verbose = false;
			needs = false;
		} else if (v == NULL) {
			bad = 1;
		} else if (strcmp(a, "--seed") == 0) {
			bad = parse_u64(v, &cfg.seed);
			seed_given = true;
		} else if (strcmp(a, "--seeds") == 0) {
			bad = parse_u64(v, &nseeds) || nseeds == 0;
		} else if (strcmp(a, "--start") == 0) {
			bad = parse_u64(v, &start);
		} else if (strcmp(a, "--duration") == 0) {
			n = parse_duration_ms(v);
			bad = n < 1000;
			cfg.duration_ms = (int)n;
		} else if (strcmp(a, "--nodes") == 0) {
			bad = parse_int(v, 1, H_MAX_MEMBERS, &n);
			cfg.nodes = (int)n;
		} else if (strcmp(a, "--clients") == 0) {
			bad = parse_int(v, 1, 256, &n);
			cfg.clients = (int)n;
		} else if (strcmp(a, "--keys") == 0) {
			bad = parse_int(v, 1, 10000, &n);
			cfg.keys = (int)n;
		} else if (strcmp(a, "--faults") == 0) {
			faults = v;
		} else if (strcmp(a, "--net") == 0) {
			net = v;
			bad = strcmp(v, "proxy") != 0 && strcmp(v, "netns") != 0;
		} else if (strcmp(a, "--out") == 0) {
			cfg.out_dir = v;
		} else if (strcmp(a, "--rate") == 0) {
			bad = parse_int(v, 0, 1000000, &n);
			cfg.rate = (int)n;
		} else if (strcmp(a, "--op-timeout") == 0) {
			n = parse_duration_ms(v);
			bad = n < 10 || n > 600000;
			cfg.op_timeout_ms = (uint32_t)n;
		} else if (strcmp(a, "--recover-timeout") == 0) {
			n = parse_duration_ms(v);
			bad = n < 1000 || n > 3600000;
			cfg.recover_timeout_ms = (int)n;
		} else if (strcmp(a, "--snapshot-count") == 0) {
			bad = parse_int(v, 1, 100000000, &n);
			cfg.snapshot_count = (int)n;
		} else if (strcmp(a, "--check-steps") == 0) {
			bad = parse_u64(v, &cfg.check_max_steps);
		} else if (strcmp(a, "--mix") == 0) {
			int r, c;
			char tail;
			bad = sscanf(v, "%d,%d%c", &r, &c, &tail) != 2 || r < 0 || c < 0 ||
			      r + c > 100;
			cfg.read_pct = r;
			cfg.cas_pct = c;
		} else {
			fprintf(stderr, "cairn-torture: unknown option %s\n", a);
			usage(stderr);
			return EXIT_USAGE;
		}
		if (bad) {
			fprintf(stderr, "cairn-torture: bad or missing value for %s\n", a);
			return EXIT_USAGE;
		}
		if (needs)
			i++;
	}
	char err[256];
	if (nem_parse_faults(faults, H_MAX_MEMBERS, &cfg.faults, err, sizeof(err)) != 0) {
		fprintf(stderr, "cairn-torture: --faults: %s\n", err);
		return EXIT_USAGE;
	}
	if (nseeds > 0 && seed_given) {
		fprintf(stderr,
			"cairn-torture: --seed and --seeds exclude each other (use --start)\n");
		return EXIT_USAGE;
	}
	if (strcmp(net, "netns") == 0) {
		cfg.net = H_NET_NETNS;
		char why[512];
		int rv = h_netns_check(why, sizeof(why));
		if (rv == 1) {
			fprintf(stderr,
				"cairn-torture: --net netns is not permitted here: %s. Run it as "
				"root, or use --net proxy (no privileges needed)\n",
				why);
			return EXIT_USAGE;
		}
		if (rv != 0) {
			fprintf(stderr, "cairn-torture: --net netns cannot work here: %s\n", why);
			return EXIT_USAGE;
		}
		unsigned delays = cfg.faults & torture_delay_kinds();
		if (delays != 0 && !h_netns_delay_check(why, sizeof(why))) {
			cfg.faults &= ~delays;
			if (cfg.faults == 0) {
				fprintf(stderr,
					"cairn-torture: --net netns: no fault left: delay faults "
					"cannot be made here: %s\n",
					why);
				return EXIT_USAGE;
			}
			printf("cairn-torture: --net netns: delay faults left out: %s\n", why);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (nseeds == 0) {
		start = cfg.seed;
		nseeds = 1;
	}
	uint64_t failed = 0, errors = 0;
	char failed_list[1024] = "";
	for (uint64_t k = 0; k < nseeds; k++) {
		cfg.seed = start + k;
		struct torture_result res;
		int rv = torture_run(&cfg, &res);
		if (!cfg.verbose)
			printf("seed %" PRIu64 ": %s\n", cfg.seed,
			       rv < 0 ? "SET-UP ERROR" : res.verdict);
		if (rv != 0) {
			if (rv < 0)
				errors++;
			else
				failed++;
			size_t l = strlen(failed_list);
			snprintf(failed_list + l, sizeof(failed_list) - l, " %" PRIu64, cfg.seed);
		}
	}
	if (nseeds > 1)
		printf("torture: %" PRIu64 " seeds from %" PRIu64 ": %" PRIu64 " passed, %" PRIu64
		       " with anomalies, %" PRIu64 " set-up errors%s%s\n",
		       nseeds, start, nseeds - failed - errors, failed, errors,
		       failed_list[0] ? "; seeds:" : "", failed_list);
	if (errors > 0 && failed == 0)
		return EXIT_USAGE;
	return failed > 0 || errors > 0 ? EXIT_ANOMALY : 0;
}
