/* fuzz.c — the fuzzy tier: per seed a random cluster, fault mix and schedule, then liveness. */
#include "test/sim/fuzz.h"

#include <string.h>

#include "test/sim/sim.h"

#define FUZZ_TRACE_LINES       50 /* events shown with a failure */
#define FUZZ_LIVENESS_MIN_MS   30000
#define FUZZ_LIVENESS_TIMEOUTS 30 /* ... or this many election timeouts, whichever is longer */
/* Require every read to be answered by the end (sim_options.liveness_all_reads): off until the
 * core answers (or fails) forwarded reads whose messages were lost. */
#define FUZZ_ALL_READS_ANSWERED true
#define FUZZ_MAX_STEPS		1000000 /* ~12x the busiest seed seen (83k events): more is a storm */

/* What a seed decided about its run. */
struct fuzz_plan {
	unsigned n;
	struct raft_config raft;
	struct sim_net_options net;
	uint32_t disk_max_ms;
	bool partitions, crashes, slow_disks, transfers, reads, batches;
	struct sim_snapshot_options snap;
	double crash_rate; /* chaos crashes: see sim_options */
	uint64_t duration_ms;
	uint32_t gap_min_ms, gap_max_ms; /* between two driver actions */
};

static uint64_t pick(struct sim_rng *r, const uint64_t *vals, size_t n)
{
	return vals[sim_rng_range(r, 0, n - 1)];
}

#define PICK(r, ...)                                                                               \
	pick((r), (const uint64_t[]){__VA_ARGS__},                                                 \
	     sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

static double pick_rate(struct sim_rng *r, const double *vals, size_t n)
{
	return vals[sim_rng_range(r, 0, n - 1)];
}

#define PICK_RATE(r, ...)                                                                          \
	pick_rate((r), (const double[]){__VA_ARGS__},                                              \
		  sizeof((const double[]){__VA_ARGS__}) / sizeof(double))

static void fuzz_plan(struct sim_rng *r, struct fuzz_plan *p)
{
	memset(p, 0, sizeof(*p));
	p->n = (unsigned)PICK(r, 3, 3, 3, 5, 5, 5, 7, 7);
	uint32_t et = (uint32_t)PICK(r, 150, 300, 500, 1000);
	p->raft.election_timeout_ms = et;
	p->raft.heartbeat_ms = et / (uint32_t)PICK(r, 3, 5, 10);
	p->raft.max_entries_per_msg = (uint32_t)PICK(r, 0, 0, 1, 2, 8, 64);
	p->raft.max_inflight_msgs = (uint32_t)PICK(r, 0, 0, 1, 2, 8);
	p->raft.disable_pre_vote = sim_rng_chance(r, 0.15);
	p->raft.disable_check_quorum = sim_rng_chance(r, 0.15);
	p->net.drop_rate = PICK_RATE(r, 0, 0, 0.01, 0.05, 0.15, 0.3);
	p->net.dup_rate = PICK_RATE(r, 0, 0, 0.02, 0.1);
	p->net.reorder_rate = PICK_RATE(r, 0, 0.05, 0.3);
	p->net.latency_min_ms = 1;
	p->net.latency_max_ms = (uint32_t)PICK(r, 2, 5, 10, et / 5);
	p->net.reorder_extra_ms = et / 2;
	p->disk_max_ms = (uint32_t)PICK(r, 0, 1, 3, 10);
	p->partitions = sim_rng_chance(r, 0.6);
	p->crashes = sim_rng_chance(r, 0.6);
	if (p->crashes)
		p->crash_rate = PICK_RATE(r, 0, 0.001, 0.005, 0.02);
	p->slow_disks = sim_rng_chance(r, 0.4);
	p->transfers = sim_rng_chance(r, 0.3);
	p->reads = sim_rng_chance(r, 0.6);
	p->batches = sim_rng_chance(r, 0.5);
	p->duration_ms = (uint64_t)et * sim_rng_range(r, 100, 400);
	p->gap_min_ms = et / 20;
	p->gap_max_ms = et;
	/* Compaction and snapshots in most seeds, aggressive enough that followers that fall a
	 * few entries behind need one; slow transfers, broken ones never reported, failed
	 * installs and a short give-up time now and then. Drawn after everything else so that
	 * the rest of a seed's plan is the same as before snapshots existed. */
	p->snap.enabled = sim_rng_chance(r, 0.85);
	p->snap.compact_min = 2;
	p->snap.compact_max = (uint32_t)PICK(r, 5, 20, 50);
	p->snap.trail_max = (uint32_t)PICK(r, 0, 3, 10);
	p->snap.transfer_extra_ms = (uint32_t)PICK(r, 0, 0, 20, et, 3 * et);
	p->snap.no_report_rate = PICK_RATE(r, 0, 0.25, 1);
	p->snap.install_fail_rate = PICK_RATE(r, 0, 0, 0.05, 0.2);
	if (sim_rng_chance(r, 0.2))
		p->raft.snapshot_timeout_ms = 2 * et;
}

static void plan_print(FILE *f, uint64_t seed, const struct fuzz_plan *p)
{
	fprintf(f,
		"seed %llu: %u nodes, election %ums, heartbeat %ums, max_entries_per_msg %u, "
		"max_inflight %u%s%s\n",
		(unsigned long long)seed, p->n, p->raft.election_timeout_ms, p->raft.heartbeat_ms,
		p->raft.max_entries_per_msg, p->raft.max_inflight_msgs,
		p->raft.disable_pre_vote ? ", no pre-vote" : "",
		p->raft.disable_check_quorum ? ", no check-quorum" : "");
	fprintf(f,
		"  network: drop %.2f dup %.2f reorder %.2f latency %u..%ums; disks 0..%ums; "
		"faults:%s%s%s%s%s%s; "
		"chaos crashes %.3f/persist; %llums of chaos\n",
		p->net.drop_rate, p->net.dup_rate, p->net.reorder_rate, p->net.latency_min_ms,
		p->net.latency_max_ms, p->disk_max_ms, p->partitions ? " partitions" : "",
		p->crashes ? " crashes" : "", p->slow_disks ? " slow-disks" : "",
		p->transfers ? " transfers" : "", p->reads ? " reads" : "",
		p->batches ? " batches" : "", p->crash_rate, (unsigned long long)p->duration_ms);
	if (p->snap.enabled)
		fprintf(f,
			"  snapshots: compact past %u..%u applied entries keeping 0..%u; transfers "
			"+0..%ums; %.2f of broken ones unreported; installs fail %.2f; give up "
			"after %ums\n",
			p->snap.compact_min, p->snap.compact_max, p->snap.trail_max,
			p->snap.transfer_extra_ms, p->snap.no_report_rate,
			p->snap.install_fail_rate,
			p->raft.snapshot_timeout_ms ? p->raft.snapshot_timeout_ms
						    : 5 * p->raft.election_timeout_ms);
	else
		fprintf(f, "  snapshots: off\n");
}

static raft_id random_node(struct sim_rng *r, const struct sim *s)
{
	return (raft_id)sim_rng_range(r, 1, sim_n_nodes(s));
}

/* A random node in state `up`, 0 if there is none. */
static raft_id random_node_up(struct sim_rng *r, const struct sim *s, bool up)
{
	raft_id ids[SIM_MAX_NODES];
	size_t n = 0;
	for (raft_id id = 1; id <= sim_n_nodes(s); id++)
		if (sim_is_up(s, id) == up)
			ids[n++] = id;
	return n ? ids[sim_rng_range(r, 0, n - 1)] : 0;
}

/* A random running node with persist requests not yet durable, 0 if there is none. */
static raft_id random_node_writing(struct sim_rng *r, const struct sim *s)
{
	raft_id ids[SIM_MAX_NODES];
	size_t n = 0;
	for (raft_id id = 1; id <= sim_n_nodes(s); id++)
		if (sim_is_up(s, id) && sim_persist_pending(s, id) > 0)
			ids[n++] = id;
	return n ? ids[sim_rng_range(r, 0, n - 1)] : 0;
}

static void do_partition(struct sim_rng *r, struct sim *s)
{
	unsigned n = sim_n_nodes(s);
	uint64_t kind = sim_rng_range(r, 0, 9);
	if (kind < 3) {
		raft_id l = sim_leader(s);
		sim_isolate(s, l ? l : random_node(r, s));
	} else if (kind < 5) {
		sim_isolate(s, random_node(r, s));
	} else if (kind < 8) {
		/* A random split: each node lands on one side. */
		raft_id side[SIM_MAX_NODES];
		size_t k = 0;
		for (raft_id id = 1; id <= n; id++)
			if (sim_rng_chance(r, 0.5))
				side[k++] = id;
		sim_partition(s, side, k);
	} else {
		/* One-way faults: a few links lose their messages in one direction only. */
		uint64_t links = sim_rng_range(r, 1, 3);
		for (uint64_t i = 0; i < links; i++) {
			raft_id a = random_node(r, s), b = random_node(r, s);
			if (a != b)
				sim_cut(s, a, b);
		}
	}
}

/* One driver action. Errors other than SIM_EFAILED are the expected refusals of a busy
 * cluster (not leader, transfer running, node down) and are ignored. */
static int fuzz_act(struct sim_rng *r, struct sim *s, const struct fuzz_plan *p)
{
	enum { PROPOSE, PROPOSE_ANY, BATCH, READ, CRASH, RESTART, PARTITION, HEAL, DISK, TRANSFER };
	const unsigned weights[] = {
	    [PROPOSE] = 40,
	    [PROPOSE_ANY] = 4,
	    [BATCH] = p->batches ? 6 : 0,
	    [READ] = p->reads ? 12 : 0,
	    [CRASH] = p->crashes ? 4 : 0,
	    [RESTART] = p->crashes ? 6 : 0,
	    [PARTITION] = p->partitions ? 5 : 0,
	    [HEAL] = p->partitions ? 5 : 0,
	    [DISK] = p->slow_disks ? 4 : 0,
	    [TRANSFER] = p->transfers ? 3 : 0,
	};
	unsigned total = 0;
	for (size_t i = 0; i < sizeof(weights) / sizeof(weights[0]); i++)
		total += weights[i];
	uint64_t x = sim_rng_range(r, 0, total - 1);
	size_t a = 0;
	while (x >= weights[a])
		x -= weights[a++];
	int rv = 0;
	raft_id id;
	switch (a) {
	case PROPOSE:
		rv = sim_propose_to_leader(s, NULL);
		break;
	case PROPOSE_ANY:
		rv = sim_propose(s, random_node(r, s), 1, NULL);
		break;
	case BATCH:
		if ((id = sim_leader(s)) != 0)
			rv = sim_propose(s, id, (size_t)sim_rng_range(r, 2, 20), NULL);
		break;
	case READ:
		id = sim_rng_chance(r, 0.5) ? sim_leader(s) : 0;
		if (id == 0)
			id = random_node_up(r, s, true);
		if (id != 0)
			rv = sim_read(s, id, NULL);
		break;
	case CRASH:
		/* Leaders and nodes with writes in flight are where crashes hurt. */
		x = sim_rng_range(r, 0, 9);
		id = x < 4 ? sim_leader(s) : x < 7 ? random_node_writing(r, s) : 0;
		if (id == 0)
			id = random_node_up(r, s, true);
		if (id != 0)
			rv = sim_crash(s, id);
		break;
	case RESTART:
		if ((id = random_node_up(r, s, false)) != 0)
			rv = sim_restart(s, id);
		break;
	case PARTITION:
		do_partition(r, s);
		break;
	case HEAL:
		sim_heal(s);
		break;
	case DISK:
		id = random_node(r, s);
		if (sim_rng_chance(r, 0.6)) {
			uint32_t lo = (uint32_t)sim_rng_range(r, 5, 50);
			rv = sim_set_disk(s, id, lo, lo + (uint32_t)sim_rng_range(r, 0, 500));
		} else {
			rv = sim_set_disk(s, id, 0, p->disk_max_ms);
		}
		break;
	case TRANSFER:
		if ((id = sim_leader(s)) != 0)
			rv = sim_transfer(s, id, random_node(r, s));
		break;
	default:
		break;
	}
	return sim_failed(s) ? SIM_EFAILED : (rv == SIM_ENOMEM ? rv : 0);
}

static void result_fill(const struct sim *s, struct fuzz_result *out)
{
	struct sim_stats st;
	sim_get_stats(s, &st);
	out->n_nodes = sim_n_nodes(s);
	out->elections = st.raft.elections_started;
	out->leaders = st.raft.became_leader;
	out->commits = st.proposals_committed;
	out->reads = st.reads_served;
	out->drops = st.drops + st.partition_drops;
	out->dups = st.dups;
	out->partitions = st.partitions;
	out->crashes = st.crashes;
	out->restarts = st.restarts;
	out->virtual_ms = sim_now(s);
	out->steps = st.steps;
	out->compactions = st.compactions;
	out->snapshots_sent = st.snapshots_asked;
	out->snapshots_lost = st.snapshots_lost;
	out->snapshots_declined = st.snapshots_declined;
	out->snapshots_installed = st.snapshots_installed;
	out->installs_failed = st.installs_failed + st.installs_crashed;
	out->snapshots_unreported = st.snapshots_unreported;
	out->snapshots_aborted = st.raft.snapshots_aborted;
}

/* Formats the failure report into out->text (one FAIL line, then the trace). */
static void failure_text(const struct sim *s, uint64_t seed, struct fuzz_result *out)
{
	FILE *f = fmemopen(out->text, sizeof(out->text), "w");
	if (f == NULL) {
		snprintf(out->text, sizeof(out->text),
			 "FAIL seed=%llu: %s: %s ... replay: CAIRN_SEED=%llu make sim\n",
			 (unsigned long long)seed, sim_failure_invariant(s), sim_failure(s),
			 (unsigned long long)seed);
		return;
	}
	fprintf(
	    f,
	    "FAIL seed=%llu: %s: %s (step %llu, t=%llums) ... replay: CAIRN_SEED=%llu make sim\n",
	    (unsigned long long)seed, sim_failure_invariant(s), sim_failure(s),
	    (unsigned long long)out->steps, (unsigned long long)sim_now(s),
	    (unsigned long long)seed);
	fprintf(f, "nodes at the failure:\n");
	sim_print_nodes(s, f);
	fprintf(f, "last events:\n");
	sim_print_trace(s, f, FUZZ_TRACE_LINES);
	fclose(f);
	out->text[sizeof(out->text) - 1] = '\0';
}

int fuzz_run_seed(uint64_t seed, FILE *trace, struct fuzz_result *out)
{
	memset(out, 0, sizeof(*out));
	/* The driver's choices come from their own stream, apart from the simulator's. */
	struct sim_rng r;
	sim_rng_seed(&r, seed ^ 0x5eed5eed5eed5eedULL);
	struct fuzz_plan p;
	fuzz_plan(&r, &p);
	if (trace != NULL)
		plan_print(trace, seed, &p);
	struct sim_options o;
	sim_options_default(&o, p.n, seed);
	o.raft = p.raft;
	o.net = p.net;
	o.disk_min_ms = 0;
	o.disk_max_ms = p.disk_max_ms;
	o.crash_rate = p.crash_rate;
	o.restart_min_ms = p.raft.election_timeout_ms / 10;
	o.restart_max_ms = p.raft.election_timeout_ms * 3;
	o.trace = trace;
	o.max_steps = FUZZ_MAX_STEPS;
	o.liveness_all_reads = FUZZ_ALL_READS_ANSWERED;
	o.snap = p.snap;
	struct sim *s;
	int rv = sim_create(&s, &o);
	if (rv != 0) {
		snprintf(out->text, sizeof(out->text), "FAIL seed=%llu: setup: sim_create: %d\n",
			 (unsigned long long)seed, rv);
		out->failed = true;
		return rv;
	}
	while (!sim_failed(s) && sim_now(s) < p.duration_ms) {
		uint64_t gap = sim_rng_range(&r, p.gap_min_ms, p.gap_max_ms);
		if (sim_run_for(s, gap) != 0)
			break;
		if (fuzz_act(&r, s, &p) != 0)
			break;
	}
	if (!sim_failed(s)) {
		uint64_t live = (uint64_t)p.raft.election_timeout_ms * FUZZ_LIVENESS_TIMEOUTS;
		sim_check_liveness(s, live > FUZZ_LIVENESS_MIN_MS ? live : FUZZ_LIVENESS_MIN_MS);
	}
	result_fill(s, out);
	rv = 0;
	if (sim_failed(s)) {
		out->failed = true;
		failure_text(s, seed, out);
		rv = SIM_EFAILED;
	}
	sim_destroy(s);
	return rv;
}
