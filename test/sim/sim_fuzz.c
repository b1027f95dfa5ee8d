/* sim_fuzz.c — cairn-sim: sweeps seeds (fuzzy tier), replays one seed, or runs the demo. */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test/sim/fuzz.h"
#include "test/sim/sim.h"

#define MAX_JOBS       64
#define FAILURE_TRACES 3 /* failures printed with their trace; later ones get one line */

static void usage(FILE *f)
{
	fprintf(f, "usage: cairn-sim --seeds N [--start S] [--jobs J]   run seeds S..S+N-1 (S=1)\n"
		   "       cairn-sim --seed S [--verbose]               replay one seed\n"
		   "       cairn-sim --demo                             narrated 3-node run\n"
		   "--jobs defaults to the number of CPUs; results do not depend on it.\n");
}

/* ---- totals */

struct totals {
	uint64_t seeds, passed, failed;
	uint64_t by_size[8]; /* seeds per cluster size */
	uint64_t elections, leaders, commits, reads;
	uint64_t drops, dups, partitions, crashes, restarts;
	uint64_t virtual_ms, steps;
	uint64_t compactions, snapshots_sent, snapshots_lost, snapshots_declined;
	uint64_t snapshots_installed, installs_failed;
	uint64_t snapshots_unreported, snapshots_aborted;
};

static void totals_add(struct totals *t, const struct fuzz_result *r)
{
	t->seeds++;
	if (r->failed)
		t->failed++;
	else
		t->passed++;
	if (r->n_nodes < 8)
		t->by_size[r->n_nodes]++;
	t->elections += r->elections;
	t->leaders += r->leaders;
	t->commits += r->commits;
	t->reads += r->reads;
	t->drops += r->drops;
	t->dups += r->dups;
	t->partitions += r->partitions;
	t->crashes += r->crashes;
	t->restarts += r->restarts;
	t->virtual_ms += r->virtual_ms;
	t->steps += r->steps;
	t->compactions += r->compactions;
	t->snapshots_sent += r->snapshots_sent;
	t->snapshots_lost += r->snapshots_lost;
	t->snapshots_declined += r->snapshots_declined;
	t->snapshots_installed += r->snapshots_installed;
	t->installs_failed += r->installs_failed;
	t->snapshots_unreported += r->snapshots_unreported;
	t->snapshots_aborted += r->snapshots_aborted;
}

static double wall_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void totals_print(const struct totals *t, uint64_t start, unsigned jobs, double wall)
{
	uint64_t vs = t->virtual_ms / 1000;
	printf("seeds %" PRIu64 "..%" PRIu64 " (%u job%s): 3 nodes %" PRIu64 ", 5 nodes %" PRIu64
	       ", 7 nodes %" PRIu64 "\n",
	       start, start + t->seeds - 1, jobs, jobs == 1 ? "" : "s", t->by_size[3],
	       t->by_size[5], t->by_size[7]);
	printf("elections %" PRIu64 ", leaders %" PRIu64 ", commits %" PRIu64 ", reads %" PRIu64
	       "\n",
	       t->elections, t->leaders, t->commits, t->reads);
	printf("faults: drops %" PRIu64 ", dups %" PRIu64 ", partitions %" PRIu64
	       ", crashes %" PRIu64 ", restarts %" PRIu64 "\n",
	       t->drops, t->dups, t->partitions, t->crashes, t->restarts);
	printf("snapshots: compactions %" PRIu64 ", sent %" PRIu64 " (lost %" PRIu64
	       ", never reported %" PRIu64 ", given up by the leader %" PRIu64
	       "), not needed %" PRIu64 ", installed %" PRIu64
	       ", installs failed or crashed %" PRIu64 "\n",
	       t->compactions, t->snapshots_sent, t->snapshots_lost, t->snapshots_unreported,
	       t->snapshots_aborted, t->snapshots_declined, t->snapshots_installed,
	       t->installs_failed);
	printf("virtual time %" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s simulated in %.1fs wall time "
	       "(%" PRIu64 " events)\n",
	       vs / 3600, vs / 60 % 60, vs % 60, wall, t->steps);
	printf("%" PRIu64 " passed, %" PRIu64 " failed\n", t->passed, t->failed);
}

/* ---- workers: each runs every jobs-th seed and reports each one through a pipe */

enum { REC_START = 1, REC_RESULT = 2 };

struct rec {
	int kind;
	uint64_t seed;
	struct fuzz_result result; /* REC_RESULT */
};

static int write_full(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n > 0) {
		ssize_t k = read(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

/* Runs seeds first, first+step, ... < end, then exits. */
static void worker(int fd, uint64_t first, uint64_t end, uint64_t step)
{
	static struct rec rec; /* large: keep it off the stack */
	for (uint64_t seed = first; seed < end; seed += step) {
		rec.kind = REC_START;
		rec.seed = seed;
		if (write_full(fd, &rec, sizeof(rec)) != 0)
			_exit(2);
		fuzz_run_seed(seed, NULL, &rec.result);
		rec.kind = REC_RESULT;
		if (write_full(fd, &rec, sizeof(rec)) != 0)
			_exit(2);
	}
	/* exit(), not _exit(): LeakSanitizer checks at exit, and the parent sees its verdict. */
	exit(0);
}

struct lane {
	pid_t pid;
	int fd;
	uint64_t next;	  /* next seed of this lane not yet reported */
	uint64_t running; /* seed started but not reported, 0 if none */
	uint64_t last;	  /* last seed reported, 0 if none */
	bool done;
};

static void report_failure(const struct fuzz_result *r, uint64_t *shown)
{
	if ((*shown)++ < FAILURE_TRACES) {
		fputs(r->text, stdout);
	} else {
		const char *nl = strchr(r->text, '\n');
		fwrite(r->text, 1, nl ? (size_t)(nl - r->text + 1) : strlen(r->text), stdout);
	}
	fflush(stdout);
}

static int lane_spawn(struct lane *l, uint64_t end, uint64_t step)
{
	int fds[2];
	if (pipe(fds) != 0)
		return -1;
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid < 0) {
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		close(fds[0]);
		worker(fds[1], l->next, end, step);
	}
	close(fds[1]);
	l->pid = pid;
	l->fd = fds[0];
	l->running = 0;
	l->done = l->next >= end;
	return 0;
}

/* A worker died: the seed it was running is a failure (it crashed the process); a new worker
 * carries on with the rest of its lane. */
static int lane_died(struct lane *l, struct totals *t, uint64_t *shown, uint64_t end, uint64_t step)
{
	int status = 0;
	close(l->fd);
	waitpid(l->pid, &status, 0);
	static struct fuzz_result r;
	memset(&r, 0, sizeof(r));
	r.failed = true;
	if (l->running == 0 && l->next >= end) {
		l->done = true;
		if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
			return 0;
		/* Every seed passed but the process did not exit cleanly: LeakSanitizer found a
		 * leak (its report is above) or something else went wrong at exit. */
		snprintf(r.text, sizeof(r.text),
			 "FAIL seed=%" PRIu64
			 ": the worker that ran it and earlier seeds ended with "
			 "%s %d (a leak? see the report above) ... replay: CAIRN_SEED=%" PRIu64
			 " make sim\n",
			 l->last, WIFSIGNALED(status) ? "signal" : "exit status",
			 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), l->last);
		if (t->passed > 0)
			t->passed--; /* that seed's pass is withdrawn */
		t->failed++;
		report_failure(&r, shown);
		return 0;
	}
	uint64_t seed = l->running ? l->running : l->next;
	snprintf(r.text, sizeof(r.text),
		 "FAIL seed=%" PRIu64
		 ": crashed the simulator (%s %d) ... replay: CAIRN_SEED=%" PRIu64 " make sim\n",
		 seed, WIFSIGNALED(status) ? "signal" : "exit status",
		 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), seed);
	totals_add(t, &r);
	report_failure(&r, shown);
	l->next = seed + step;
	if (l->next >= end) {
		l->done = true;
		return 0;
	}
	return lane_spawn(l, end, step);
}

static int sweep(uint64_t start, uint64_t count, unsigned jobs)
{
	struct totals t = {0};
	struct lane lanes[MAX_JOBS];
	uint64_t end = start + count, shown = 0;
	double t0 = wall_seconds();
	uint64_t progress_every = count >= 10000 ? count / 10 : 0;
	if (jobs > count)
		jobs = count > 0 ? (unsigned)count : 1;
	for (unsigned j = 0; j < jobs; j++) {
		lanes[j] = (struct lane){.next = start + j};
		if (lane_spawn(&lanes[j], end, jobs) != 0) {
			perror("cairn-sim: fork");
			return 2;
		}
	}
	static struct rec rec;
	for (;;) {
		struct pollfd pfd[MAX_JOBS];
		unsigned idx[MAX_JOBS], n = 0;
		for (unsigned j = 0; j < jobs; j++) {
			if (lanes[j].done)
				continue;
			pfd[n] = (struct pollfd){.fd = lanes[j].fd, .events = POLLIN};
			idx[n++] = j;
		}
		if (n == 0)
			break;
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("cairn-sim: poll");
			return 2;
		}
		for (unsigned k = 0; k < n; k++) {
			if (!(pfd[k].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			struct lane *l = &lanes[idx[k]];
			if (read_full(l->fd, &rec, sizeof(rec)) != 0) {
				if (lane_died(l, &t, &shown, end, jobs) != 0) {
					perror("cairn-sim: fork");
					return 2;
				}
				continue;
			}
			if (rec.kind == REC_START) {
				l->running = rec.seed;
				continue;
			}
			l->running = 0;
			l->last = rec.seed;
			l->next = rec.seed + jobs;
			totals_add(&t, &rec.result);
			if (rec.result.failed)
				report_failure(&rec.result, &shown);
			if (progress_every && t.seeds % progress_every == 0)
				fprintf(stderr,
					"cairn-sim: %" PRIu64 "/%" PRIu64 " seeds, %" PRIu64
					" failed, %.0fs\n",
					t.seeds, count, t.failed, wall_seconds() - t0);
		}
	}
	totals_print(&t, start, jobs, wall_seconds() - t0);
	return t.failed ? 1 : 0;
}

static int replay(uint64_t seed, bool verbose)
{
	static struct fuzz_result r;
	double t0 = wall_seconds();
	int rv = fuzz_run_seed(seed, verbose ? stdout : NULL, &r);
	struct totals t = {0};
	totals_add(&t, &r);
	if (r.failed)
		fputs(r.text, stdout);
	totals_print(&t, seed, 1, wall_seconds() - t0);
	return rv == 0 && !r.failed ? 0 : 1;
}

/* ---- demo: a narrated run of a 3-node cluster */

struct demo_view {
	bool up;
	int role;
	raft_id leader;
	raft_term term;
	raft_index commit, applied;
};

static void demo_snapshot(struct sim *s, struct demo_view *v)
{
	for (raft_id id = 1; id <= sim_n_nodes(s); id++) {
		struct raft *r = sim_raft(s, id);
		struct demo_view *d = &v[id - 1];
		d->up = r != NULL;
		d->role = r ? raft_role(r) : 0;
		d->leader = r ? raft_leader(r) : 0;
		d->term = r ? raft_current_term(r) : 0;
		d->commit = r ? raft_commit_index(r) : 0;
		d->applied = sim_applied(s, id);
	}
}

static void say(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(struct sim *s, const char *fmt, ...)
{
	va_list ap;
	printf("  t=%6.3fs  ", (double)sim_now(s) / 1000.0);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Called after every event: says what changed since the previous one. */
static bool demo_narrate(struct sim *s, void *arg)
{
	struct demo_view *before = arg, after[SIM_MAX_NODES];
	demo_snapshot(s, after);
	for (raft_id id = 1; id <= sim_n_nodes(s); id++) {
		const struct demo_view *b = &before[id - 1], *a = &after[id - 1];
		if (!a->up)
			continue;
		if (a->role != b->role || a->term != b->term) {
			if (a->role == RAFT_LEADER)
				say(s, "node %llu wins the election: leader of term %llu",
				    (unsigned long long)id, (unsigned long long)a->term);
			else if (a->role == RAFT_CANDIDATE)
				say(s, "node %llu starts an election for term %llu",
				    (unsigned long long)id, (unsigned long long)a->term);
			else if (a->role == RAFT_PRE_CANDIDATE && b->role != RAFT_PRE_CANDIDATE)
				say(s, "node %llu hears from no leader: asks for pre-votes",
				    (unsigned long long)id);
			else if (b->role == RAFT_LEADER && a->term == b->term)
				say(s,
				    "node %llu steps down: it heard from no majority for an "
				    "election timeout (check-quorum)",
				    (unsigned long long)id);
			else if (b->role == RAFT_LEADER)
				say(s, "node %llu steps down: it saw term %llu",
				    (unsigned long long)id, (unsigned long long)a->term);
		}
		if (a->role == RAFT_FOLLOWER && a->leader != 0 && a->leader != b->leader)
			say(s, "node %llu follows leader %llu (term %llu)", (unsigned long long)id,
			    (unsigned long long)a->leader, (unsigned long long)a->term);
		if (a->role == RAFT_LEADER && b->role == RAFT_LEADER && a->commit > b->commit)
			say(s, "leader %llu: entries up to index %llu are committed",
			    (unsigned long long)id, (unsigned long long)a->commit);
	}
	memcpy(before, after, sizeof(after));
	return false;
}

/* Runs `ms` of virtual time, narrating what changes. */
static int demo_run(struct sim *s, uint64_t ms)
{
	struct demo_view before[SIM_MAX_NODES];
	demo_snapshot(s, before);
	int rv = sim_run_until_pred(s, demo_narrate, before, ms);
	return rv == SIM_ETIMEDOUT ? 0 : rv;
}

static void demo_applied(struct sim *s)
{
	char line[256];
	size_t len = 0;
	for (raft_id id = 1; id <= sim_n_nodes(s); id++) {
		int k = snprintf(line + len, sizeof(line) - len, "%snode %llu: %llu",
				 id > 1 ? ", " : "", (unsigned long long)id,
				 (unsigned long long)sim_applied(s, id));
		if (k > 0 && len + (size_t)k < sizeof(line))
			len += (size_t)k;
	}
	say(s, "applied entries per state machine: %s", line);
}

static raft_id demo_propose(struct sim *s, size_t n)
{
	raft_id l = sim_leader(s);
	uint64_t id;
	if (l == 0 || sim_propose(s, l, n, &id) != 0) {
		say(s, "client: no leader to write to");
		return 0;
	}
	const struct sim_proposal *p = sim_proposal(s, id);
	say(s, "client writes %zu entr%s to leader %llu -> log indexes %llu..%llu (term %llu)", n,
	    n == 1 ? "y" : "ies", (unsigned long long)l, (unsigned long long)p->index,
	    (unsigned long long)(p->index + n - 1), (unsigned long long)p->term);
	return l;
}

static int demo(void)
{
	struct sim_options o;
	sim_options_default(&o, 3, 2024);
	struct sim *s;
	if (sim_create(&s, &o) != 0) {
		fprintf(stderr, "cairn-sim: cannot create the simulator\n");
		return 2;
	}
	printf(
	    "Cairn — a 3-node cluster running the real Raft core (raft/) inside the deterministic\n"
	    "simulator: virtual time, election timeouts 1-2 s, heartbeats every 100 ms. Every\n"
	    "event is followed by a check of Raft's safety invariants.\n\n");
	printf("1. Start-up: nobody is leader yet.\n");
	demo_run(s, 3000);
	printf("\n2. A client writes through the leader; the entries replicate and commit.\n");
	demo_propose(s, 3);
	demo_run(s, 300);
	demo_applied(s);
	raft_id old = sim_leader(s);
	printf("\n3. The leader crashes.\n");
	if (old != 0) {
		sim_crash(s, old);
		say(s, "node %llu CRASHES", (unsigned long long)old);
	}
	demo_run(s, 4000);
	demo_propose(s, 2);
	demo_run(s, 300);
	printf("\n4. The crashed node restarts from its disk and catches up.\n");
	if (old != 0) {
		sim_restart(s, old);
		say(s, "node %llu restarts (term, vote and log read back from its disk)",
		    (unsigned long long)old);
	}
	demo_run(s, 1000);
	demo_applied(s);
	raft_id l = sim_leader(s);
	uint64_t isolated = 0;
	printf("\n5. The leader is cut off from the others by a network partition.\n");
	if (l != 0) {
		sim_isolate(s, l);
		say(s, "node %llu is ISOLATED", (unsigned long long)l);
		if (sim_propose(s, l, 1, &isolated) == 0)
			say(s,
			    "client writes 1 entry to the isolated leader %llu (index %llu): it "
			    "cannot commit without a majority",
			    (unsigned long long)l,
			    (unsigned long long)sim_proposal(s, isolated)->index);
	}
	demo_run(s, 5000);
	demo_propose(s, 2);
	demo_run(s, 300);
	printf("\n6. The partition heals: pre-vote keeps the returning node from disrupting the\n"
	       "   new leader; its uncommitted entry is replaced by the majority's log.\n");
	sim_heal(s);
	say(s, "network HEALED");
	demo_run(s, 2000);
	demo_applied(s);
	if (isolated != 0 && sim_proposal(s, isolated)->state == SIM_PROP_LOST)
		say(s,
		    "the isolated leader's write at index %llu was never committed: its client "
		    "gets no success and retries",
		    (unsigned long long)sim_proposal(s, isolated)->index);
	printf("\n7. A linearizable read (ReadIndex, §6.4) on the leader.\n");
	uint64_t rid;
	l = sim_leader(s);
	if (l != 0 && sim_read(s, l, &rid) == 0) {
		demo_run(s, 500);
		const struct sim_read *rd = sim_read_get(s, rid);
		if (rd->state == SIM_READ_SERVED)
			say(s, "read served by leader %llu at index %llu after one heartbeat round",
			    (unsigned long long)l, (unsigned long long)rd->index);
		else
			say(s, "read not served (state %d)", rd->state);
	}
	struct sim_stats st;
	sim_get_stats(s, &st);
	printf("\n%s after %.1f s of virtual time: %llu events, %llu messages delivered, %llu "
	       "elections, every invariant held.\n",
	       sim_failed(s) ? "FAILED" : "Done", (double)sim_now(s) / 1000.0,
	       (unsigned long long)st.steps, (unsigned long long)st.msgs_delivered,
	       (unsigned long long)st.raft.elections_started);
	if (sim_failed(s))
		sim_print_failure(s, stdout, 30);
	printf("This ran entirely inside the simulator. The same core drives cairnd (libuv, LMDB,\n"
	       "TCP): `make run` starts a local cluster; `make sim` sweeps the fuzzy tier.\n");
	int rv = sim_failed(s) ? 1 : 0;
	sim_destroy(s);
	return rv;
}

/* ---- main */

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		return -1;
	*out = v;
	return 0;
}

int main(int argc, char **argv)
{
	uint64_t seeds = 0, start = 1, seed = 0, jobs = 0;
	bool have_seeds = false, have_seed = false, verbose = false, run_demo = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		uint64_t *target = NULL;
		if (strcmp(a, "--seeds") == 0) {
			target = &seeds;
			have_seeds = true;
		} else if (strcmp(a, "--start") == 0) {
			target = &start;
		} else if (strcmp(a, "--seed") == 0) {
			target = &seed;
			have_seed = true;
		} else if (strcmp(a, "--jobs") == 0) {
			target = &jobs;
		} else if (strcmp(a, "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(a, "--demo") == 0) {
			run_demo = true;
		} else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			return 0;
		} else {
			usage(stderr);
			return 2;
		}
		if (target != NULL && (i + 1 >= argc || parse_u64(argv[++i], target) != 0)) {
			fprintf(stderr, "cairn-sim: %s needs a number\n", a);
			return 2;
		}
	}
	if (run_demo)
		return demo();
	if (have_seed)
		return replay(seed, verbose);
	if (!have_seeds) {
		usage(stderr);
		return 2;
	}
	if (jobs == 0) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);
		jobs = n > 0 ? (uint64_t)n : 1;
	}
	if (jobs > MAX_JOBS)
		jobs = MAX_JOBS;
	signal(SIGPIPE, SIG_IGN);
	return sweep(start, seeds, (unsigned)jobs);
}
