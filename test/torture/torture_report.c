/* torture_report.c — the report directory of a torture run: summary (text + JSON), the
 * anomaly report, time series for the plot, and the call to scripts/torture-plot.sh. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test/torture/torture_internal.h"

#define TR_BUCKET_NS	   500000000  /* timeline resolution: 0.5 s */
#define TR_CONTEXT_NS	   1000000000 /* faults this close to a finding are "around it" */
#define TR_PLOT_SCRIPT	   "scripts/torture-plot.sh"
#define TR_PLOT_SCRIPT_ENV "CAIRN_TORTURE_PLOT"

static double sec(int64_t ns)
{
	return (double)ns / 1e9;
}

void trun_recovery_times(struct trun *run)
{
	const struct wl_history *h = &run->hist;
	for (size_t i = 0; i < run->nm.n_faults; i++) {
		struct nem_fault *f = &run->nm.faults[i];
		f->recovered_ns = -1;
		if (f->end_ns < 0)
			continue;
		int64_t limit = i + 1 < run->nm.n_faults ? run->nm.faults[i + 1].start_ns
							 : run->workload_end_ns;
		for (size_t k = 0; k < h->n; k++) {
			const struct wl_event *e = &h->ev[k];
			if (e->type != WL_INVOKE || e->f == WL_READ || e->time_ns < f->end_ns)
				continue;
			if (e->time_ns >= limit)
				break;
			if (e->inv >= 0 && h->ev[e->inv].type == WL_OK) {
				f->recovered_ns = h->ev[e->inv].time_ns;
				break;
			}
		}
	}
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
	return x < y ? -1 : x > y;
}

/* Latency percentiles (ms) of sorted ns values. */
static double pct(const int64_t *v, size_t n, double p)
{
	if (n == 0)
		return 0;
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return (double)v[i] / 1e6;
}

struct counts {
	size_t ok[3], fail[3], info[3], cas_compare_failed;
};

static void count_by_f(const struct wl_history *h, struct counts *c)
{
	memset(c, 0, sizeof(*c));
	for (size_t i = 0; i < h->n; i++) {
		const struct wl_event *e = &h->ev[i];
		if (e->f > WL_CAS)
			continue;
		if (e->type == WL_OK)
			c->ok[e->f]++;
		else if (e->type == WL_FAIL) {
			c->fail[e->f]++;
			if (e->f == WL_CAS && e->err == 0)
				c->cas_compare_failed++;
		} else if (e->type == WL_INFO)
			c->info[e->f]++;
	}
}

static void replay_line(const struct trun *run, char *buf, size_t len)
{
	const struct torture_config *cfg = run->cfg;
	char fl[512];
	nem_mask_describe(cfg->faults, fl, sizeof(fl));
	snprintf(buf, len,
		 "build/cairn-torture --seed %" PRIu64 " --duration %dms --nodes %d --net %s "
		 "--clients %d --keys %d --faults %s%s --rate %d --op-timeout %ums --mix %d,%d "
		 "--snapshot-count %d --out %s%s%s",
		 cfg->seed, cfg->duration_ms, cfg->nodes, h_net_name(cfg->net), cfg->clients,
		 cfg->keys, fl, cfg->overlap ? " --overlap" : "", cfg->rate, cfg->op_timeout_ms,
		 cfg->read_pct, cfg->cas_pct, cfg->snapshot_count, cfg->out_dir,
		 cfg->nosync ? " --nosync" : "", cfg->inject_anomaly ? " --inject-anomaly" : "");
}

/* Ops completed during [from, to): ok / info counts. */
static void ops_between(const struct wl_history *h, int64_t from, int64_t to, size_t *ok,
			size_t *info)
{
	*ok = *info = 0;
	for (size_t i = 0; i < h->n; i++) {
		const struct wl_event *e = &h->ev[i];
		if (e->time_ns < from || e->time_ns >= to)
			continue;
		if (e->type == WL_OK)
			(*ok)++;
		else if (e->type == WL_INFO)
			(*info)++;
	}
}

static void write_tsvs(struct trun *run)
{
	const struct wl_history *h = &run->hist;
	char path[700];
	/* latency.tsv: every completion */
	snprintf(path, sizeof(path), "%s/latency.tsv", run->dir);
	FILE *f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "# invoke_s\tlatency_ms\tf\ttype\tprocess\n");
		for (size_t i = 0; i < h->n; i++) {
			const struct wl_event *e = &h->ev[i];
			if (e->type == WL_INVOKE || e->inv < 0)
				continue;
			const struct wl_event *ie = &h->ev[e->inv];
			fprintf(f, "%.6f\t%.3f\t%s\t%s\t%d\n", sec(ie->time_ns),
				(double)(e->time_ns - ie->time_ns) / 1e6, wl_f_name(e->f),
				wl_type_name(e->type), e->process);
		}
		fclose(f);
	}
	/* timeline.tsv: per bucket, completions per second and latency of ok ops */
	int64_t end = 0;
	for (size_t i = 0; i < h->n; i++)
		if (h->ev[i].time_ns > end)
			end = h->ev[i].time_ns;
	size_t nb = (size_t)(end / TR_BUCKET_NS) + 1;
	size_t *okc = calloc(nb, sizeof(size_t)), *failc = calloc(nb, sizeof(size_t)),
	       *infoc = calloc(nb, sizeof(size_t)), *latn = calloc(nb, sizeof(size_t));
	int64_t **lat = calloc(nb, sizeof(int64_t *));
	size_t *latcap = calloc(nb, sizeof(size_t));
	snprintf(path, sizeof(path), "%s/timeline.tsv", run->dir);
	f = fopen(path, "w");
	if (okc && failc && infoc && latn && lat && latcap && f) {
		for (size_t i = 0; i < h->n; i++) {
			const struct wl_event *e = &h->ev[i];
			if (e->type == WL_INVOKE || e->inv < 0)
				continue;
			size_t b = (size_t)(e->time_ns / TR_BUCKET_NS);
			if (e->type == WL_OK) {
				okc[b]++;
				if (latn[b] == latcap[b]) {
					size_t cap = latcap[b] ? latcap[b] * 2 : 64;
					int64_t *nl = realloc(lat[b], cap * sizeof(int64_t));
					if (nl == NULL)
						continue;
					lat[b] = nl;
					latcap[b] = cap;
				}
				lat[b][latn[b]++] = e->time_ns - h->ev[e->inv].time_ns;
			} else if (e->type == WL_FAIL) {
				failc[b]++;
			} else {
				infoc[b]++;
			}
		}
		double per = 1e9 / TR_BUCKET_NS;
		fprintf(
		    f,
		    "# "
		    "t_s\tok_per_s\tfail_per_s\tinfo_per_s\tlat_p50_ms\tlat_p99_ms\tlat_max_ms\n");
		for (size_t b = 0; b < nb; b++) {
			if (latn[b] > 0)
				qsort(lat[b], latn[b], sizeof(int64_t), cmp_i64);
			fprintf(f, "%.3f\t%.1f\t%.1f\t%.1f\t%.3f\t%.3f\t%.3f\n",
				sec((int64_t)b * TR_BUCKET_NS + TR_BUCKET_NS / 2),
				(double)okc[b] * per, (double)failc[b] * per,
				(double)infoc[b] * per, pct(lat[b], latn[b], 0.5),
				pct(lat[b], latn[b], 0.99), pct(lat[b], latn[b], 1.0));
		}
	}
	if (f != NULL)
		fclose(f);
	for (size_t b = 0; lat != NULL && b < nb; b++)
		free(lat[b]);
	free(lat);
	free(latcap);
	free(latn);
	free(okc);
	free(failc);
	free(infoc);
	/* faults.tsv and leaders.tsv */
	snprintf(path, sizeof(path), "%s/faults.tsv", run->dir);
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "# start_s\tend_s\tkind\tdescription\n");
		for (size_t i = 0; i < run->nm.n_faults; i++) {
			const struct nem_fault *nf = &run->nm.faults[i];
			fprintf(f, "%.3f\t%.3f\t%s\t%s\n", sec(nf->start_ns),
				sec(nf->end_ns >= 0 ? nf->end_ns : run->heal_ns),
				nem_kind_name(nf->kind), nf->desc);
		}
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/leaders.tsv", run->dir);
	f = fopen(path, "w");
	if (f != NULL) {
		fprintf(f, "# t_s\tterm\tmember\n");
		for (size_t i = 0; i < run->n_leaders; i++)
			fprintf(f, "%.3f\t%" PRIu64 "\t%d\n", sec(run->leaders[i].t_ns),
				run->leaders[i].term, run->leaders[i].member);
		fclose(f);
	}
}

/* Every latency of ok ops, sorted (caller frees). */
static int64_t *ok_latencies(const struct wl_history *h, size_t *n)
{
	int64_t *v = malloc((h->n + 1) * sizeof(int64_t));
	*n = 0;
	if (v == NULL)
		return NULL;
	for (size_t i = 0; i < h->n; i++) {
		const struct wl_event *e = &h->ev[i];
		if (e->type == WL_OK && e->inv >= 0)
			v[(*n)++] = e->time_ns - h->ev[e->inv].time_ns;
	}
	qsort(v, *n, sizeof(int64_t), cmp_i64);
	return v;
}

static void json_escape(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

static void write_summary_txt(struct trun *run, const struct counts *cn, const int64_t *lat,
			      size_t nlat)
{
	const struct torture_config *cfg = run->cfg;
	const struct torture_result *res = run->res;
	char path[700], replay[1024], names[256], fl[512];
	snprintf(path, sizeof(path), "%s/summary.txt", run->dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return;
	replay_line(run, replay, sizeof(replay));
	torture_anomalies_describe(res->anomalies, names, sizeof(names));
	nem_mask_describe(cfg->faults, fl, sizeof(fl));
	double span = sec(run->workload_end_ns > 0 ? run->workload_end_ns : 1);
	fprintf(f, "Cairn torture run, seed %" PRIu64 "\n\n", cfg->seed);
	fprintf(f, "verdict:    %s\n", res->verdict);
	fprintf(f, "anomalies:  %s\n", names);
	fprintf(f, "replay:     %s\n\n", replay);
	fprintf(f,
		"cluster:    %d members, %s, heartbeat %d ms, election timeout %d ms, "
		"snapshot count %d (catch-up %d)\n",
		cfg->nodes, cfg->nosync ? "NO fsync" : "fsync on", H_HEARTBEAT_MS,
		H_ELECTION_TIMEOUT_MS, cfg->snapshot_count, cfg->snapshot_count / 5);
	fprintf(f, "network:    %s: %s\n", h_net_name(cfg->net),
		cfg->net == H_NET_NETNS
		    ? "a network namespace per member, links cut with nftables (real TCP resets "
		      "and losses)"
		    : "a fault-injecting TCP proxy on every peer link");
	char rate[32];
	if (cfg->rate > 0)
		snprintf(rate, sizeof(rate), "%d ops/s", cfg->rate);
	else
		snprintf(rate, sizeof(rate), "none");
	fprintf(f,
		"workload:   %d clients, %d keys, %d%% read / %d%% write / %d%% cas, op timeout "
		"%u ms, rate cap %s, %.3f s\n",
		cfg->clients, cfg->keys, cfg->read_pct, 100 - cfg->read_pct - cfg->cas_pct,
		cfg->cas_pct, cfg->op_timeout_ms, rate, sec(run->workload_end_ns));
	fprintf(f, "faults:     %s%s\n\n", fl, cfg->overlap ? " (overlapping)" : "");
	fprintf(f, "operations: %zu invoked: %zu ok, %zu fail, %zu info (unknown outcome)\n",
		res->ops, res->ok, res->fail, res->info);
	fprintf(f, "  read      %zu ok, %zu fail\n", cn->ok[WL_READ], cn->fail[WL_READ]);
	fprintf(f, "  write     %zu ok, %zu fail, %zu info\n", cn->ok[WL_WRITE], cn->fail[WL_WRITE],
		cn->info[WL_WRITE]);
	fprintf(f, "  cas       %zu ok, %zu fail (%zu compare failed, %zu refused), %zu info\n",
		cn->ok[WL_CAS], cn->fail[WL_CAS], cn->cas_compare_failed,
		cn->fail[WL_CAS] - cn->cas_compare_failed, cn->info[WL_CAS]);
	fprintf(f, "throughput: %.1f ok ops/s over the workload\n",
		(double)(cn->ok[0] + cn->ok[1] + cn->ok[2]) / span);
	fprintf(f, "latency:    ok ops p50 %.2f ms, p99 %.2f ms, max %.2f ms\n\n",
		pct(lat, nlat, 0.5), pct(lat, nlat, 0.99), pct(lat, nlat, 1.0));
	fprintf(f, "faults injected: %zu (the plan is in faults.log)\n", run->nm.n_faults);
	for (size_t i = 0; i < run->nm.n_faults; i++) {
		const struct nem_fault *nf = &run->nm.faults[i];
		size_t ok, info;
		int64_t end = nf->end_ns >= 0 ? nf->end_ns : run->heal_ns;
		ops_between(&run->hist, nf->start_ns, end, &ok, &info);
		char rec[64];
		if (nf->recovered_ns >= 0)
			snprintf(rec, sizeof(rec), "recovered %.3f s after healing",
				 sec(nf->recovered_ns - end));
		else
			snprintf(rec, sizeof(rec), "no ok write before the next fault");
		fprintf(f, "  +%7.3fs .. +%7.3fs  %-72s %s; during it %zu ok, %zu info\n",
			sec(nf->start_ns), sec(end), nf->desc, rec, ok, info);
	}
	fprintf(f, "\nleader changes: %d\n", res->leader_changes);
	fprintf(f, "log compactions: %d, snapshots installed: %d (from the members' logs)\n",
		res->compactions, res->snapshots_installed);
	for (size_t i = 0; i < run->n_leaders; i++)
		fprintf(f, "  +%7.3fs  member %d leads in term %" PRIu64 "\n",
			sec(run->leaders[i].t_ns), run->leaders[i].member, run->leaders[i].term);
	fprintf(f, "\nfinal phase: workload stopped at +%.3fs, everything healed at +%.3fs, ",
		sec(run->workload_end_ns), sec(run->heal_ns));
	if (run->recovered_ns >= 0)
		fprintf(f, "writes succeed again after %.3f s, ",
			sec(run->recovered_ns - run->heal_ns));
	else
		fprintf(f, "NO write succeeded, ");
	fprintf(f, "final reads %s\n", run->final_reads_complete ? "of every key" : "INCOMPLETE");
	fprintf(f, "convergence: %s\n",
		run->converged ? "same applied index, revision and contents" : "NOT CONVERGED");
	for (int id = 1; id <= run->nodes; id++) {
		const struct trun_member_end *me = &run->member[id];
		char ex[64];
		int st = me->exit_status;
		if (st == -1)
			snprintf(ex, sizeof(ex), "not running");
		else if (WIFEXITED(st))
			snprintf(ex, sizeof(ex), "exit %d", WEXITSTATUS(st));
		else
			snprintf(ex, sizeof(ex), "signal %d", WTERMSIG(st));
		fprintf(f,
			"  member %d: applied %" PRIu64 ", commit %" PRIu64 ", revision %" PRId64
			", term %" PRIu64 ", %zu keys, kv_hash %016" PRIx64 "; after SIGTERM: %s\n",
			id, me->applied, me->commit, me->revision, me->term, me->n_keys,
			me->kv_hash, ex);
	}
	const struct tc_verdict *v = &run->check;
	fprintf(f, "\nchecker: %s", res->check_outcome);
	if (run->check_ok)
		fprintf(f,
			": %zu ops, %zu keys, %" PRIu64 " search steps, %.3f s; %zu keys not "
			"linearizable, %zu unknown, %zu lost writes (final reads %s)\n",
			v->ops, v->keys, v->steps, v->seconds, v->violations, v->unknown, v->lost,
			v->final_reads_checked ? "checked" : "NOT checked");
	else
		fprintf(f, " (%s)\n", v->load_error);
	if (run->injected_event >= 0)
		fprintf(f, "injected anomaly: %s: %s\n", run->injected_desc,
			res->injected_caught ? "caught" : "NOT caught");
	if (run->notes[0])
		fprintf(f, "\nnotes:\n%s", run->notes);
	fprintf(f,
		"\nfiles: history.jsonl (the history), faults.log, check.txt / check.json (the "
		"checker's report), summary.json, timeline.tsv, latency.tsv, faults.tsv, "
		"leaders.tsv, members/member-N.log, plot.png%s\n",
		res->anomalies ? ", anomaly.txt" : "");
	fclose(f);
}

static void write_summary_json(struct trun *run, const struct counts *cn, const int64_t *lat,
			       size_t nlat)
{
	const struct torture_config *cfg = run->cfg;
	const struct torture_result *res = run->res;
	char path[700], names[256], fl[512], replay[1024];
	snprintf(path, sizeof(path), "%s/summary.json", run->dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return;
	torture_anomalies_describe(res->anomalies, names, sizeof(names));
	nem_mask_describe(cfg->faults, fl, sizeof(fl));
	replay_line(run, replay, sizeof(replay));
	fprintf(f, "{\"seed\":%" PRIu64 ",\"pass\":%s,\"anomalies\":", cfg->seed,
		res->anomalies ? "false" : "true");
	json_escape(f, res->anomalies ? names : "");
	fprintf(f, ",\"verdict\":");
	json_escape(f, res->verdict);
	fprintf(f, ",\"replay\":");
	json_escape(f, replay);
	fprintf(f,
		",\"config\":{\"nodes\":%d,\"net\":\"%s\",\"duration_ms\":%d,\"clients\":%d,"
		"\"keys\":%d,\"faults\":",
		cfg->nodes, h_net_name(cfg->net), cfg->duration_ms, cfg->clients, cfg->keys);
	json_escape(f, fl);
	fprintf(f,
		",\"overlap\":%s,\"op_timeout_ms\":%u,\"rate\":%d,\"read_pct\":%d,\"cas_pct\":%d,"
		"\"fsync\":%s,\"snapshot_count\":%d},",
		cfg->overlap ? "true" : "false", cfg->op_timeout_ms, cfg->rate, cfg->read_pct,
		cfg->cas_pct, cfg->nosync ? "false" : "true", cfg->snapshot_count);
	fprintf(
	    f,
	    "\"ops\":{\"invoked\":%zu,\"ok\":%zu,\"fail\":%zu,\"info\":%zu,"
	    "\"read\":{\"ok\":%zu,\"fail\":%zu},\"write\":{\"ok\":%zu,\"fail\":%zu,\"info\":%zu},"
	    "\"cas\":{\"ok\":%zu,\"fail\":%zu,\"compare_failed\":%zu,\"info\":%zu}},",
	    res->ops, res->ok, res->fail, res->info, cn->ok[0], cn->fail[0], cn->ok[1], cn->fail[1],
	    cn->info[1], cn->ok[2], cn->fail[2], cn->cas_compare_failed, cn->info[2]);
	fprintf(f, "\"latency_ms\":{\"p50\":%.3f,\"p99\":%.3f,\"max\":%.3f},", pct(lat, nlat, 0.5),
		pct(lat, nlat, 0.99), pct(lat, nlat, 1.0));
	fprintf(f, "\"faults\":[");
	for (size_t i = 0; i < run->nm.n_faults; i++) {
		const struct nem_fault *nf = &run->nm.faults[i];
		int64_t end = nf->end_ns >= 0 ? nf->end_ns : run->heal_ns;
		fprintf(f, "%s{\"kind\":\"%s\",\"start_s\":%.3f,\"end_s\":%.3f,\"description\":",
			i ? "," : "", nem_kind_name(nf->kind), sec(nf->start_ns), sec(end));
		json_escape(f, nf->desc);
		if (nf->recovered_ns >= 0)
			fprintf(f, ",\"recovery_s\":%.3f}", sec(nf->recovered_ns - end));
		else
			fprintf(f, ",\"recovery_s\":null}");
	}
	fprintf(f, "],\"compactions\":%d,\"snapshots_installed\":%d", res->compactions,
		res->snapshots_installed);
	fprintf(f, ",\"leader_changes\":%d,\"leaders\":[", res->leader_changes);
	for (size_t i = 0; i < run->n_leaders; i++)
		fprintf(f, "%s{\"t_s\":%.3f,\"term\":%" PRIu64 ",\"member\":%d}", i ? "," : "",
			sec(run->leaders[i].t_ns), run->leaders[i].term, run->leaders[i].member);
	fprintf(f, "],\"final\":{\"heal_s\":%.3f,", sec(run->heal_ns));
	if (run->recovered_ns >= 0)
		fprintf(f, "\"recovery_s\":%.3f,", sec(run->recovered_ns - run->heal_ns));
	else
		fprintf(f, "\"recovery_s\":null,");
	fprintf(f,
		"\"final_reads_complete\":%s,\"converged\":%s,\"applied_index\":%" PRIu64
		",\"revision\":%" PRId64 "},",
		run->final_reads_complete ? "true" : "false", run->converged ? "true" : "false",
		run->applied, run->revision);
	const struct tc_verdict *v = &run->check;
	fprintf(f,
		"\"checker\":{\"outcome\":\"%s\",\"ops\":%zu,\"keys\":%zu,\"violations\":%zu,"
		"\"unknown\":%zu,\"lost_writes\":%zu,\"final_reads_checked\":%s,\"seconds\":%.3f},",
		res->check_outcome, v->ops, v->keys, v->violations, v->unknown, v->lost,
		v->final_reads_checked ? "true" : "false", v->seconds);
	fprintf(f, "\"injected_anomaly\":%s,\"injected_caught\":%s}\n",
		res->injected ? "true" : "false", res->injected_caught ? "true" : "false");
	fclose(f);
}

static void write_anomaly(struct trun *run)
{
	const struct torture_result *res = run->res;
	if ((res->anomalies & ~TA_CHECK_UNKNOWN) == 0)
		return;
	char path[700], replay[1024];
	snprintf(path, sizeof(path), "%s/anomaly.txt", run->dir);
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return;
	replay_line(run, replay, sizeof(replay));
	fprintf(f, "ANOMALY: Cairn torture run, seed %" PRIu64 "\n%s\nreplay: %s\n\n",
		run->cfg->seed, res->verdict, replay);
	if (run->notes[0])
		fprintf(f, "%s\n", run->notes);
	const struct tc_verdict *v = &run->check;
	for (size_t i = 0; i < v->n_win; i++) {
		const struct tc_window *w = &v->win[i];
		fprintf(f, "%s on key %s between +%.6fs and +%.6fs; faults around it:\n",
			w->lost_write ? "lost write" : "no linearization", w->key, sec(w->from_ns),
			sec(w->to_ns));
		size_t shown = 0;
		for (size_t k = 0; k < run->nm.n_faults; k++) {
			const struct nem_fault *nf = &run->nm.faults[k];
			int64_t end = nf->end_ns >= 0 ? nf->end_ns : run->heal_ns;
			if (nf->start_ns <= w->to_ns + TR_CONTEXT_NS &&
			    end >= w->from_ns - TR_CONTEXT_NS) {
				fprintf(f, "  +%.3fs .. +%.3fs  %s\n", sec(nf->start_ns), sec(end),
					nf->desc);
				shown++;
			}
		}
		if (shown == 0)
			fprintf(f, "  (none within %.1f s)\n", sec(TR_CONTEXT_NS));
	}
	if (run->injected_event >= 0)
		fprintf(f, "\n(--inject-anomaly: %s)\n", run->injected_desc);
	/* the checker's own report: the smallest window it found, with every operation in it */
	snprintf(path, sizeof(path), "%s/check.txt", run->dir);
	FILE *in = fopen(path, "r");
	if (in != NULL) {
		fprintf(f, "\n---- checker report (check.txt) ----\n");
		char buf[4096];
		size_t n;
		while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
			fwrite(buf, 1, n, f);
		fclose(in);
	}
	fclose(f);
}

void trun_write_report(struct trun *run)
{
	struct counts cn;
	count_by_f(&run->hist, &cn);
	size_t nlat = 0;
	int64_t *lat = ok_latencies(&run->hist, &nlat);
	write_tsvs(run);
	if (run->cfg->plot)
		trun_plot(run); /* before the summary, which shows its notes */
	write_summary_txt(run, &cn, lat, nlat);
	write_summary_json(run, &cn, lat, nlat);
	write_anomaly(run);
	free(lat);
}

void trun_plot(struct trun *run)
{
	const char *script = getenv(TR_PLOT_SCRIPT_ENV);
	if (script == NULL || script[0] == '\0')
		script = TR_PLOT_SCRIPT;
	struct stat st;
	if (stat(script, &st) != 0) {
		trun_note(run, "no plot: %s not found (run from the repository root, or set %s)",
			  script, TR_PLOT_SCRIPT_ENV);
		return;
	}
	char cmd[1600];
	snprintf(cmd, sizeof(cmd), "sh '%s' '%s' >'%s/plot.log' 2>&1", script, run->dir, run->dir);
	int rv = system(cmd);
	char png[700];
	snprintf(png, sizeof(png), "%s/plot.png", run->dir);
	if (rv != 0)
		trun_note(run, "plot: %s failed (see %s/plot.log)", script, run->dir);
	else if (stat(png, &st) != 0)
		trun_note(run, "no plot: %s drew nothing (gnuplot missing? see %s/plot.log)",
			  script, run->dir);
}
