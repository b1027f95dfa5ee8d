/* torture.c — one torture run: cluster, workload, nemesis, healing, final reads, convergence,
 * member exits, the checker's verdict and the report directory (see torture.h). */
#include "test/torture/torture.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/cairn.h"
#include "test/integration/harness.h"
#include "test/torture/torture_internal.h"

#define TORTURE_MONITOR_PERIOD_MS 100
#define TORTURE_FINAL_OP_MS	  2000	/* deadline of one final-phase operation */
#define TORTURE_CONVERGE_MS	  20000 /* members agree on applied index and revision */
#define TORTURE_STATUS_MS	  1000
#define TORTURE_CONTENT_ATTEMPTS  5 /* full reads retried if a member moved meanwhile */
#define TORTURE_ENDPOINTS_MAX	  (H_MAX_MEMBERS * 32)
#define TORTURE_DIFFS_SHOWN	  5

void torture_config_defaults(struct torture_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->seed = 1;
	cfg->duration_ms = 20000;
	cfg->nodes = 3;
	cfg->net = H_NET_PROXY;
	cfg->clients = 5;
	cfg->keys = 3;
	cfg->faults = (1u << NEM__COUNT) - 1;
	cfg->out_dir = "torture-out";
	cfg->op_timeout_ms = 1000;
	cfg->rate = 200;
	cfg->read_pct = 50;
	cfg->cas_pct = 25;
	cfg->plot = true;
	cfg->verbose = true;
	cfg->recover_timeout_ms = 30000;
	cfg->snapshot_count = TORTURE_SNAPSHOT_COUNT;
}

unsigned torture_delay_kinds(void)
{
	unsigned m = 0;
	for (int k = 0; k < NEM__COUNT; k++)
		if (nem_kind_family(k) == NEM_FAM_DELAY)
			m |= 1u << k;
	return m;
}

void torture_anomalies_describe(unsigned a, char *buf, size_t len)
{
	static const char *const names[] = {"not-linearizable", "lost-write",	"divergence",
					    "liveness",		"crash",	"unclean-exit",
					    "bad-history",	"check-unknown"};
	size_t pos = 0;
	buf[0] = '\0';
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((a & (1u << i)) && pos < len)
			pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", pos ? "," : "",
						names[i]);
	if (a == 0)
		snprintf(buf, len, "none");
}

void trun_note(struct trun *run, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	size_t l = strlen(run->notes);
	snprintf(run->notes + l, sizeof(run->notes) - l, "%s\n", line);
	if (run->cfg->verbose) {
		printf("  %s\n", line);
		fflush(stdout);
	}
}

static int64_t rel_now(const struct trun *run)
{
	return wl_now_ns() - run->hist.t0_ns;
}

static int mkdir_p(const char *path)
{
	char tmp[512];
	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
				return -1;
			*p = '/';
		}
	return mkdir(tmp, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static void copy_file(const char *from, const char *to)
{
	FILE *in = fopen(from, "rb");
	if (in == NULL)
		return;
	FILE *out = fopen(to, "wb");
	if (out != NULL) {
		char buf[65536];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			fwrite(buf, 1, n, out);
		fclose(out);
	}
	fclose(in);
}

/* Sleeps until `until_ns` (relative to t0), noticing members that crash meanwhile. */
static void sleep_until(struct trun *run, int64_t until_ns)
{
	for (;;) {
		int64_t left = until_ns - rel_now(run);
		if (left <= 0)
			return;
		int ms = left > 200000000 ? 200 : (int)(left / 1000000) + 1;
		h_pause_ms(ms);
		nem_check_crashes(&run->nm, true);
	}
}

static void endpoints_of(const struct h_cluster *c, char *buf, size_t len)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (int id = 1; id <= c->n && pos < len; id++)
		pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", id > 1 ? "," : "",
					c->m[id].client_addr);
}

/* ---- the nemesis ----------------------------------------------------------------------------- */

struct action {
	int64_t t_ns;
	bool start;
	size_t ev;
};

static int cmp_action(const void *a, const void *b)
{
	const struct action *x = a, *y = b;
	if (x->t_ns != y->t_ns)
		return x->t_ns < y->t_ns ? -1 : 1;
	if (x->start != y->start)
		return x->start ? 1 : -1; /* ends first */
	return x->ev < y->ev ? -1 : x->ev > y->ev;
}

/* Starts and ends every fault of the plan at its time (faults may overlap). */
static int run_plan(struct trun *run)
{
	size_t n = run->plan.n;
	if (n == 0)
		return 0;
	struct action *acts = calloc(2 * n, sizeof(*acts));
	size_t *fault_of = calloc(n, sizeof(*fault_of));
	if (acts == NULL || fault_of == NULL) {
		free(acts);
		free(fault_of);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		const struct nem_event *e = &run->plan.ev[i];
		acts[2 * i] = (struct action){(int64_t)e->start_ms * 1000000, true, i};
		acts[2 * i + 1] =
		    (struct action){((int64_t)e->start_ms + e->dur_ms) * 1000000, false, i};
	}
	qsort(acts, 2 * n, sizeof(*acts), cmp_action);
	for (size_t k = 0; k < 2 * n; k++) {
		sleep_until(run, acts[k].t_ns);
		if (acts[k].start)
			fault_of[acts[k].ev] = nem_inject(&run->nm, &run->plan.ev[acts[k].ev]);
		else
			nem_heal_fault(&run->nm, fault_of[acts[k].ev]);
	}
	free(acts);
	free(fault_of);
	return 0;
}

/* ---- final phase: liveness and final reads ------------------------------------------------ */

static void final_phase(struct trun *run, struct h_cluster *c)
{
	const struct torture_config *cfg = run->cfg;
	struct torture_result *res = run->res;
	uint64_t start = h_now_ms();
	uint64_t deadline = start + (uint64_t)cfg->recover_timeout_ms;
	run->recovered_ns = -1;
	run->final_reads_complete = false;
	int leader = h_find_leader(c, cfg->recover_timeout_ms);
	if (leader == 0) {
		res->anomalies |= TA_LIVENESS;
		trun_note(run,
			  "LIVENESS: no leader that every member agrees on within %d ms of healing",
			  cfg->recover_timeout_ms);
	} else {
		trun_note(run, "after healing: member %d leads (%.3f s after the heal)", leader,
			  (double)(h_now_ms() - start) / 1e3);
	}
	char eps[TORTURE_ENDPOINTS_MAX];
	endpoints_of(c, eps, sizeof(eps));
	struct cairn_options o = {.timeout_ms = TORTURE_FINAL_OP_MS};
	cairn_client *fc = NULL;
	char msg[CAIRN_ERRMSG_SIZE];
	if (cairn_connect(eps, &o, &fc, msg, sizeof(msg)) != 0) {
		res->anomalies |= TA_LIVENESS;
		trun_note(run, "final phase: cairn_connect: %s", msg);
		return;
	}
	int process = wl_history_new_process(&run->hist);
	/* liveness: one write must succeed again */
	bool wrote = false;
	while (!wrote && h_now_ms() < deadline) {
		char val[32];
		wl_history_new_value(&run->hist, val, sizeof(val));
		enum wl_type ty = wl_exec(&run->hist, fc, &process, WL_WRITE, 0, val, NULL, NULL,
					  TORTURE_FINAL_OP_MS, NULL);
		if (ty == WL_OK) {
			wrote = true;
			run->recovered_ns = rel_now(run);
		} else {
			h_pause_ms(50);
		}
	}
	if (!wrote) {
		res->anomalies |= TA_LIVENESS;
		trun_note(run, "LIVENESS: no write succeeded within %d ms of healing",
			  cfg->recover_timeout_ms);
	} else {
		trun_note(run, "after healing: writes succeed again %.3f s after the heal",
			  (double)(run->recovered_ns - run->heal_ns) / 1e9);
	}
	/* final reads: one ok linearizable read of every key */
	bool all = true;
	for (int k = 0; k < cfg->keys; k++) {
		bool got = false;
		while (!got && h_now_ms() < deadline) {
			got = wl_exec(&run->hist, fc, &process, WL_READ, k, NULL, NULL, NULL,
				      TORTURE_FINAL_OP_MS, NULL) == WL_OK;
			if (!got)
				h_pause_ms(50);
		}
		if (!got) {
			all = false;
			res->anomalies |= TA_LIVENESS;
			trun_note(run, "LIVENESS: no final read of k%d succeeded within %d ms", k,
				  cfg->recover_timeout_ms);
		}
	}
	run->final_reads_complete = all;
	run->final_done_ns = rel_now(run);
	cairn_close(fc);
}

/* ---- convergence ---------------------------------------------------------------------------- */

struct kv_snapshot {
	struct cairn_range_result *r;
};

static bool same_kv(const struct cairn_kv *a, const struct cairn_kv *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0 &&
	       a->value_len == b->value_len && memcmp(a->value, b->value, a->value_len) == 0 &&
	       a->mod_revision == b->mod_revision && a->create_revision == b->create_revision &&
	       a->version == b->version;
}

/* Polls every member's Status until all report the same applied and commit index and
 * revision; fills run->member[]. */
static bool wait_same_index(struct trun *run, struct h_cluster *c, cairn_client *sc, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		bool same = true;
		for (int id = 1; id <= c->n; id++) {
			struct trun_member_end *me = &run->member[id];
			struct cairn_status_result *st = NULL;
			me->answered = cairn_status_hash(sc, c->m[id].client_addr,
							 TORTURE_STATUS_MS, &st, NULL, 0) == 0;
			if (!me->answered) {
				same = false;
				continue;
			}
			me->applied = st->applied_index;
			me->commit = st->commit_index;
			me->term = st->raft_term;
			me->leader = st->leader_id;
			me->revision = st->revision;
			me->kv_hash = st->kv_hash;
			cairn_status_result_free(st);
			if (id > 1 &&
			    (!run->member[1].answered || me->applied != run->member[1].applied ||
			     me->commit != run->member[1].commit ||
			     me->revision != run->member[1].revision))
				same = false;
		}
		if (same)
			return true;
		if (h_now_ms() >= deadline)
			return false;
		h_pause_ms(50);
	}
}

/* One serializable read of every key on member id (a client that knows only that member). */
static struct cairn_range_result *read_all(struct h_cluster *c, int id, char *msg, size_t len)
{
	struct cairn_options o = {.timeout_ms = TORTURE_STATUS_MS * 2};
	cairn_client *mc = NULL;
	if (cairn_connect(c->m[id].client_addr, &o, &mc, msg, len) != 0)
		return NULL;
	struct cairn_range_opts ro = {.range_end = "\0", .range_end_len = 1, .serializable = true};
	struct cairn_range_result *r = NULL;
	if (cairn_get(mc, "\0", 1, &ro, &r, msg, len) != 0)
		r = NULL;
	cairn_close(mc);
	return r;
}

static void check_convergence(struct trun *run, struct h_cluster *c)
{
	struct torture_result *res = run->res;
	char eps[TORTURE_ENDPOINTS_MAX];
	endpoints_of(c, eps, sizeof(eps));
	cairn_client *sc = NULL;
	if (cairn_connect(eps, NULL, &sc, NULL, 0) != 0) {
		res->anomalies |= TA_DIVERGENCE;
		trun_note(run, "convergence: cannot create a status client");
		return;
	}
	run->converged = false;
	for (int attempt = 0; attempt < TORTURE_CONTENT_ATTEMPTS; attempt++) {
		if (!wait_same_index(run, c, sc, TORTURE_CONVERGE_MS)) {
			char line[512] = "";
			size_t pos = 0;
			for (int id = 1; id <= c->n; id++) {
				struct trun_member_end *me = &run->member[id];
				if (me->answered)
					pos += (size_t)snprintf(
					    line + pos, sizeof(line) - pos,
					    " member %d: applied %" PRIu64 " commit %" PRIu64
					    " revision %" PRId64 " term %" PRIu64 ";",
					    id, me->applied, me->commit, me->revision, me->term);
				else
					pos += (size_t)snprintf(line + pos, sizeof(line) - pos,
								" member %d: no answer;", id);
			}
			res->anomalies |= TA_DIVERGENCE;
			trun_note(
			    run,
			    "DIVERGENCE: members do not reach the same applied index and revision "
			    "within %d ms of the final reads:%s",
			    TORTURE_CONVERGE_MS, line);
			break;
		}
		struct kv_snapshot snap[H_MAX_MEMBERS + 1];
		memset(snap, 0, sizeof(snap));
		bool read_ok = true;
		for (int id = 1; id <= c->n; id++) {
			char msg[CAIRN_ERRMSG_SIZE] = "";
			snap[id].r = read_all(c, id, msg, sizeof(msg));
			if (snap[id].r == NULL) {
				trun_note(run, "convergence: full read on member %d failed: %s", id,
					  msg);
				read_ok = false;
			} else {
				run->member[id].n_keys = snap[id].r->n_kvs;
			}
		}
		/* did anything move while we were reading? then again */
		uint64_t applied1 = run->member[1].applied;
		bool stable = read_ok && wait_same_index(run, c, sc, TORTURE_STATUS_MS) &&
			      run->member[1].applied == applied1;
		if (stable) {
			int diffs = 0;
			char what[1024] = "";
			size_t pos = 0;
			const struct cairn_range_result *a = snap[1].r;
			for (int id = 2; id <= c->n; id++) {
				const struct cairn_range_result *b = snap[id].r;
				if (a->n_kvs != b->n_kvs) {
					diffs++;
					pos += (size_t)snprintf(
					    what + pos, sizeof(what) - pos,
					    " member 1 has %zu keys, member %d %zu;", a->n_kvs, id,
					    b->n_kvs);
				}
				for (size_t i = 0; i < a->n_kvs && i < b->n_kvs; i++)
					if (!same_kv(&a->kvs[i], &b->kvs[i]) &&
					    pos < sizeof(what)) {
						if (++diffs <= TORTURE_DIFFS_SHOWN)
							pos += (size_t)snprintf(
							    what + pos, sizeof(what) - pos,
							    " %s=%s@%" PRId64
							    " on member 1 but %s=%s@%" PRId64
							    " on member %d;",
							    a->kvs[i].key, a->kvs[i].value,
							    a->kvs[i].mod_revision, b->kvs[i].key,
							    b->kvs[i].value, b->kvs[i].mod_revision,
							    id);
					}
			}
			bool hash_differs = false;
			for (int id = 2; id <= c->n; id++)
				if (run->member[1].kv_hash != 0 && run->member[id].kv_hash != 0 &&
				    run->member[id].kv_hash != run->member[1].kv_hash)
					hash_differs = true;
			if (hash_differs) {
				diffs++;
				pos += (size_t)snprintf(what + pos, sizeof(what) - pos,
							" kv_hash differs between members;");
			}
			for (int id = 1; id <= c->n; id++)
				cairn_range_result_free(snap[id].r);
			run->applied = run->member[1].applied;
			run->revision = run->member[1].revision;
			if (diffs > 0) {
				res->anomalies |= TA_DIVERGENCE;
				trun_note(run,
					  "DIVERGENCE: same applied index %" PRIu64
					  " but different contents:%s",
					  run->applied, what);
			} else {
				run->converged = true;
				trun_note(run,
					  "converged: every member at applied index %" PRIu64
					  ", revision %" PRId64 ", %zu keys, same contents%s",
					  run->applied, run->revision, run->member[1].n_keys,
					  run->member[1].kv_hash ? ", same kv_hash" : "");
			}
			break;
		}
		for (int id = 1; id <= c->n; id++)
			cairn_range_result_free(snap[id].r);
		if (attempt == TORTURE_CONTENT_ATTEMPTS - 1) {
			res->anomalies |= TA_DIVERGENCE;
			trun_note(run, "DIVERGENCE: could not read every member's contents at one "
				       "applied index");
		}
	}
	cairn_close(sc);
}

/* ---- stopping ---------------------------------------------------------------------------- */

static void stop_members(struct trun *run, struct h_cluster *c)
{
	struct torture_result *res = run->res;
	char path[700];
	snprintf(path, sizeof(path), "%s/members", run->dir);
	mkdir_p(path);
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		run->member[id].exit_status = -1;
		if (m->pid > 0) {
			int st = h_member_stop(c, id);
			run->member[id].exit_status = st;
			if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				res->anomalies |= TA_UNCLEAN_EXIT;
				if (WIFSIGNALED(st))
					trun_note(
					    run,
					    "UNCLEAN EXIT: member %d killed by signal %d after "
					    "SIGTERM (see members/member-%d.log)",
					    id, WTERMSIG(st), id);
				else
					trun_note(
					    run,
					    "UNCLEAN EXIT: member %d exited with status %d after "
					    "SIGTERM (see members/member-%d.log)",
					    id, WEXITSTATUS(st), id);
			}
		}
		snprintf(path, sizeof(path), "%s/members/member-%d.log", run->dir, id);
		copy_file(m->log_path, path);
		run->res->compactions += h_log_count(m->log_path, "log compacted");
		run->res->snapshots_installed += h_log_count(m->log_path, "installed a snapshot");
	}
}

/* ---- the run ----------------------------------------------------------------------------- */

static void count_history(struct trun *run)
{
	struct torture_result *res = run->res;
	for (size_t i = 0; i < run->hist.n; i++) {
		const struct wl_event *e = &run->hist.ev[i];
		if (e->type == WL_INVOKE) {
			res->ops++;
			if (e->f == WL_READ)
				res->reads++;
			else if (e->f == WL_WRITE)
				res->writes++;
			else
				res->cas++;
		} else if (e->type == WL_OK) {
			res->ok++;
		} else if (e->type == WL_FAIL) {
			res->fail++;
		} else {
			res->info++;
		}
	}
}

static void run_checker(struct trun *run)
{
	const struct torture_config *cfg = run->cfg;
	struct torture_result *res = run->res;
	char hist[700], text[700], json[700];
	snprintf(hist, sizeof(hist), "%s/history.jsonl", run->dir);
	snprintf(text, sizeof(text), "%s/check.txt", run->dir);
	snprintf(json, sizeof(json), "%s/check.json", run->dir);
	if (wl_history_write(&run->hist, hist) != 0) {
		res->anomalies |= TA_BAD_HISTORY;
		trun_note(run, "cannot write %s: %s", hist, strerror(errno));
		return;
	}
	run->check_ok = tc_check_history(hist, run->final_reads_complete, cfg->check_max_steps,
					 text, json, &run->check) == 0;
	if (!run->check_ok) {
		res->anomalies |= TA_BAD_HISTORY;
		res->check_outcome = "not run";
		trun_note(run, "BAD HISTORY: the checker could not run: %s", run->check.load_error);
		return;
	}
	const struct tc_verdict *v = &run->check;
	res->check_outcome = v->outcome_name;
	res->keys_checked = v->keys;
	res->check_seconds = v->seconds;
	if (v->violations > 0)
		res->anomalies |= TA_NOT_LINEARIZABLE;
	if (v->lost > 0)
		res->anomalies |= TA_LOST_WRITE;
	if (v->unknown > 0)
		res->anomalies |= TA_CHECK_UNKNOWN;
	trun_note(run,
		  "checker: %s: %zu ops on %zu keys in %.2f s (%zu not linearizable, %zu unknown, "
		  "%zu lost writes%s)",
		  v->outcome_name, v->ops, v->keys, v->seconds, v->violations, v->unknown, v->lost,
		  v->final_reads_checked ? "" : "; final reads not checked");
	if (run->injected_event >= 0) {
		char key[32];
		snprintf(key, sizeof(key), "k%d", run->hist.ev[run->injected_event].key);
		for (size_t i = 0; i < v->n_win; i++)
			if (!v->win[i].lost_write && strcmp(v->win[i].key, key) == 0)
				res->injected_caught = true;
		trun_note(run, "injected anomaly %s by the checker",
			  res->injected_caught ? "CAUGHT" : "NOT CAUGHT");
	}
}

static void make_verdict(struct trun *run)
{
	struct torture_result *res = run->res;
	char names[256];
	torture_anomalies_describe(res->anomalies, names, sizeof(names));
	if (res->anomalies == 0)
		snprintf(
		    res->verdict, sizeof(res->verdict),
		    "PASS: %zu ops (%zu ok, %zu fail, %zu info), %zu faults, %d leader changes, "
		    "%d snapshots installed; linearizable, no lost write, converged at applied "
		    "index %" PRIu64 ", every member exited 0",
		    res->ops, res->ok, res->fail, res->info, res->faults, res->leader_changes,
		    res->snapshots_installed, run->applied);
	else
		snprintf(res->verdict, sizeof(res->verdict),
			 "FAIL (%s): %zu ops (%zu ok, %zu fail, %zu info), %zu faults; see "
			 "%s/summary.txt"
			 "%s",
			 names, res->ops, res->ok, res->fail, res->info, res->faults, run->dir,
			 (res->anomalies & ~TA_CHECK_UNKNOWN) ? " and anomaly.txt" : "");
}

int torture_run(const struct torture_config *cfg, struct torture_result *res)
{
	memset(res, 0, sizeof(*res));
	res->check_outcome = "not run";
	struct trun *run = calloc(1, sizeof(*run));
	if (run == NULL) {
		snprintf(res->verdict, sizeof(res->verdict), "out of memory");
		return -1;
	}
	run->cfg = cfg;
	run->res = res;
	run->injected_event = -1;
	run->nodes = cfg->nodes;
	snprintf(run->dir, sizeof(run->dir), "%s/%" PRIu64, cfg->out_dir, cfg->seed);
	snprintf(res->dir, sizeof(res->dir), "%s", run->dir);
	int rv = -1;
	FILE *flog = NULL;
	struct tmon *mon = NULL;
	struct workload *wl = NULL;
	struct h_cluster *c = NULL;
	bool hist_ready = false;

	if (mkdir_p(run->dir) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "cannot create %s: %s", run->dir,
			 strerror(errno));
		goto out;
	}
	char path[700];
	/* a report left by an earlier run of this seed must not mix with this one */
	static const char *const old_files[] = {
	    "anomaly.txt",  "check.txt",   "check.json",   "summary.txt", "summary.json",
	    "timeline.tsv", "latency.tsv", "faults.tsv",   "leaders.tsv", "plot.png",
	    "plot.gp",	    "plot.log",	   "history.jsonl"};
	for (size_t i = 0; i < sizeof(old_files) / sizeof(old_files[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", run->dir, old_files[i]);
		unlink(path);
	}
	snprintf(path, sizeof(path), "%s/faults.log", run->dir);
	flog = fopen(path, "w");
	if (flog == NULL) {
		snprintf(res->verdict, sizeof(res->verdict), "cannot create %s: %s", path,
			 strerror(errno));
		goto out;
	}
	unsigned mask = cfg->faults;
	for (int k = 0; k < NEM__COUNT; k++)
		if (cfg->nodes < nem_kind_min_nodes(k))
			mask &= ~(1u << k);
	/* cairn-torture leaves delays out itself (and says so); this is for other callers */
	char delay_why[256] = "";
	if (cfg->net == H_NET_NETNS && (mask & torture_delay_kinds()) != 0 &&
	    !h_netns_delay_check(delay_why, sizeof(delay_why)))
		mask &= ~torture_delay_kinds();
	else
		delay_why[0] = '\0';
	char fl[512];
	nem_mask_describe(mask, fl, sizeof(fl));
	if (cfg->verbose) {
		printf("torture: seed %" PRIu64
		       ": %d members (%s), %d.%03d s, %d clients, %d keys, faults "
		       "%s\n",
		       cfg->seed, cfg->nodes, h_net_name(cfg->net), cfg->duration_ms / 1000,
		       cfg->duration_ms % 1000, cfg->clients, cfg->keys, fl);
		fflush(stdout);
	}
	if (nem_plan_make(cfg->seed, cfg->duration_ms, cfg->nodes, mask, cfg->overlap,
			  &run->plan) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "out of memory");
		goto out;
	}
	fprintf(flog, "# seed %" PRIu64 ", %d members, network %s, duration %d ms, faults %s%s\n",
		cfg->seed, cfg->nodes, h_net_name(cfg->net), cfg->duration_ms, fl,
		cfg->overlap ? ", overlapping" : "");
	if (delay_why[0] != '\0')
		fprintf(flog, "# delay faults left out: %s\n", delay_why);
	for (size_t i = 0; i < run->plan.n; i++) {
		char d[160];
		nem_event_describe(&run->plan.ev[i], d, sizeof(d));
		fprintf(flog, "# plan %zu: %s\n", i + 1, d);
	}
	fflush(flog);

	/* the cluster */
	/* one member needs no proxy; namespaces are kept even then (the mode under test) */
	struct h_cluster_opts o = {
	    .n = cfg->nodes,
	    .net = cfg->net == H_NET_NETNS ? H_NET_NETNS
		   : cfg->nodes > 1	   ? H_NET_PROXY
					   : H_NET_LOOPBACK,
	    .nosync = cfg->nosync,
	};
	char snap_count[24], snap_keep[24];
	snprintf(snap_count, sizeof(snap_count), "%d", cfg->snapshot_count);
	snprintf(snap_keep, sizeof(snap_keep), "%d", cfg->snapshot_count / 5);
	o.extra[0] = "--snapshot-count";
	o.extra[1] = snap_count;
	o.extra[2] = "--snapshot-catchup-entries";
	o.extra[3] = snap_keep;
	c = h_cluster_new(&o);
	int leader = h_cluster_start(c);
	snprintf(path, sizeof(path), "%s/history.jsonl", run->dir);
	if (wl_history_init(&run->hist, cfg->keys, 0, path) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "cannot create %s: %s", path,
			 strerror(errno));
		goto out;
	}
	hist_ready = true;
	nem_init(&run->nm, c, run->hist.t0_ns, flog, cfg->verbose);
	nem_logf(&run->nm, "cluster of %d up (network: %s%s%s), member %d leads (data in %s)",
		 cfg->nodes, h_net_name(cfg->net), cfg->net == H_NET_NETNS ? ", members at " : "",
		 cfg->net == H_NET_NETNS ? c->m[1].host : "", leader, c->root);
	if (tmon_start(&mon, c, run->hist.t0_ns, TORTURE_MONITOR_PERIOD_MS) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "cannot start the monitor");
		goto out;
	}
	char eps[TORTURE_ENDPOINTS_MAX];
	endpoints_of(c, eps, sizeof(eps));
	struct wl_config wc = {
	    .endpoints = eps,
	    .clients = cfg->clients,
	    .keys = cfg->keys,
	    .op_timeout_ms = cfg->op_timeout_ms,
	    .rate = cfg->rate,
	    .read_pct = cfg->read_pct,
	    .cas_pct = cfg->cas_pct,
	    .seed = cfg->seed,
	};
	char err[256];
	if (wl_start(&wl, &wc, &run->hist, err, sizeof(err)) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "workload: %s", err);
		goto out;
	}

	/* the nemesis, on the main thread (members it restarts die with this thread) */
	if (run_plan(run) != 0) {
		snprintf(res->verdict, sizeof(res->verdict), "out of memory");
		goto out;
	}
	sleep_until(run, (int64_t)cfg->duration_ms * 1000000);
	nem_logf(&run->nm, "workload stops");
	wl_stop(wl);
	wl = NULL;
	run->workload_end_ns = rel_now(run);
	nem_heal_all(&run->nm);
	run->heal_ns = rel_now(run);

	final_phase(run, c);
	check_convergence(run, c);
	tmon_stop(mon);
	run->leaders = tmon_leaders(mon, &run->n_leaders);
	res->leader_changes = run->n_leaders > 0 ? (int)run->n_leaders - 1 : 0;
	stop_members(run, c);
	h_cluster_destroy(c);
	c = NULL;

	/* faults */
	res->faults = run->nm.n_faults;
	for (size_t i = 0; i < run->nm.n_faults; i++)
		res->families |= 1u << nem_kind_family(run->nm.faults[i].kind);
	if (run->nm.crashes > 0 || run->nm.restart_failures > 0) {
		res->anomalies |= TA_CRASH;
		trun_note(run, "CRASH: %d unexpected exits, %d failed restarts: %s",
			  run->nm.crashes, run->nm.restart_failures, run->nm.crash_report);
	}

	/* the history */
	wl_history_close_stream(&run->hist);
	if (cfg->inject_anomaly) {
		run->injected_event = tc_inject_stale_read(&run->hist, run->injected_desc,
							   sizeof(run->injected_desc));
		res->injected = run->injected_event >= 0;
		trun_note(run, "--inject-anomaly: %s", run->injected_desc);
	}
	count_history(run);
	run_checker(run);
	trun_recovery_times(run);
	make_verdict(run);
	trun_write_report(run);
	if (cfg->verbose) {
		printf("torture: seed %" PRIu64 ": %s\n", cfg->seed, res->verdict);
		fflush(stdout);
	}
	rv = res->anomalies != 0 ? 1 : 0;

out:
	if (wl != NULL)
		wl_stop(wl);
	if (c != NULL) {
		for (int id = 1; id <= c->n; id++)
			if (c->m[id].pid > 0)
				h_member_stop(c, id);
		h_cluster_destroy(c);
	}
	tmon_free(mon);
	nem_free(&run->nm);
	nem_plan_free(&run->plan);
	if (hist_ready)
		wl_history_free(&run->hist);
	if (flog != NULL)
		fclose(flog);
	if (rv < 0 && cfg->verbose)
		printf("torture: seed %" PRIu64 ": setup failed: %s\n", cfg->seed, res->verdict);
	free(run);
	return rv;
}
