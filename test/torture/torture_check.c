/* torture_check.c — the torture run's checking step: the recorded history through the
 * linearizability checker (lincheck.h), and the stale-read injection that proves it bites. */
#include "test/torture/torture_check.h"

#include <stdlib.h>
#include <string.h>

#include "test/torture/history.h"
#include "test/torture/lincheck.h"

static void window_span(const struct history *h, const struct lincheck_key *k, struct tc_window *w)
{
	snprintf(w->key, sizeof(w->key), "%s", k->key ? k->key : "?");
	w->lost_write = false;
	w->from_ns = INT64_MAX;
	w->to_ns = 0;
	for (size_t i = 0; i < k->n_window; i++) {
		const struct history_op *op = &h->ops[k->window[i].op];
		if (op->invoke_time < w->from_ns)
			w->from_ns = op->invoke_time;
		int64_t end =
		    op->complete_time != HISTORY_TIME_NONE ? op->complete_time : op->invoke_time;
		if (end > w->to_ns)
			w->to_ns = end;
	}
	if (k->n_window == 0 && k->stuck_op < h->n_ops) {
		const struct history_op *op = &h->ops[k->stuck_op];
		w->from_ns = op->invoke_time;
		w->to_ns =
		    op->complete_time != HISTORY_TIME_NONE ? op->complete_time : op->invoke_time;
	}
	if (w->from_ns == INT64_MAX)
		w->from_ns = 0;
}

int tc_check_history(const char *history_path, bool final_reads, uint64_t max_steps,
		     const char *text_path, const char *json_path, struct tc_verdict *v)
{
	memset(v, 0, sizeof(*v));
	v->outcome_name = "not run";
	struct history h;
	if (history_init(&h) != 0) {
		snprintf(v->load_error, sizeof(v->load_error), "out of memory");
		return -1;
	}
	char msg[HISTORY_ERRMSG_SIZE];
	int rv = history_load_file(&h, history_path, msg, sizeof(msg));
	if (rv != 0) {
		snprintf(v->load_error, sizeof(v->load_error), "%s: %s", history_strerror(rv), msg);
		history_free(&h);
		return -1;
	}
	v->loaded = true;
	struct lincheck_options o = {.max_steps = max_steps, .final_reads = final_reads};
	struct lincheck_report r;
	memset(&r, 0, sizeof(r));
	rv = lincheck_check(&h, &o, &r, msg, sizeof(msg));
	if (rv != 0) {
		snprintf(v->load_error, sizeof(v->load_error), "checker: %s: %s",
			 history_strerror(rv), msg);
		lincheck_report_free(&r);
		history_free(&h);
		return -1;
	}
	v->ran = true;
	v->outcome = (int)r.outcome;
	v->outcome_name = lincheck_outcome_name(r.outcome);
	v->ops = r.n_ops;
	v->keys = r.n_keys;
	v->violations = r.n_violations;
	v->unknown = r.n_unknown;
	v->lost = r.n_lost;
	v->final_reads_checked = r.final_reads_checked;
	v->steps = r.steps;
	v->seconds = r.seconds;
	for (size_t i = 0; i < r.n_keys && v->n_win < TC_MAX_WINDOWS; i++)
		if (r.keys[i].outcome == LINCHECK_NOT_LINEARIZABLE)
			window_span(&h, &r.keys[i], &v->win[v->n_win++]);
	for (size_t i = 0; i < r.n_lost_listed && v->n_win < TC_MAX_WINDOWS; i++) {
		const struct history_op *w = &h.ops[r.lost[i].write_op];
		const struct history_op *f = &h.ops[r.lost[i].final_read_op];
		struct tc_window *tw = &v->win[v->n_win++];
		snprintf(tw->key, sizeof(tw->key), "%s", w->key ? w->key : "?");
		tw->lost_write = true;
		tw->from_ns = w->invoke_time;
		tw->to_ns =
		    f->complete_time != HISTORY_TIME_NONE ? f->complete_time : f->invoke_time;
	}
	if (text_path != NULL) {
		FILE *out = fopen(text_path, "w");
		if (out != NULL) {
			lincheck_print(out, &h, &r);
			fclose(out);
		}
	}
	if (json_path != NULL) {
		FILE *out = fopen(json_path, "w");
		if (out != NULL) {
			lincheck_print_json(out, &h, &r);
			fclose(out);
		}
	}
	lincheck_report_free(&r);
	history_free(&h);
	return 0;
}

/* ---- --inject-anomaly ---------------------------------------------------------------------- */

static bool is_ok_write(const struct wl_history *h, const struct wl_event *e)
{
	return e->type == WL_INVOKE && e->f != WL_READ && e->inv >= 0 &&
	       h->ev[e->inv].type == WL_OK;
}

static const char *written(const struct wl_event *e)
{
	return e->f == WL_CAS ? e->to : e->value;
}

/* For the ok read completed by event `ci`: the stale value to plant, or NULL. */
static const char *stale_for(const struct wl_history *h, long ci)
{
	const struct wl_event *rc = &h->ev[ci];
	const struct wl_event *ri = &h->ev[rc->inv];
	/* W2: the acknowledged write of the key completed before the read was invoked that was
	 * invoked last; W1: one completed before W2 was invoked. */
	const struct wl_event *w2 = NULL;
	for (long i = rc->inv - 1; i >= 0; i--) {
		const struct wl_event *e = &h->ev[i];
		if (e->key != ri->key || !is_ok_write(h, e))
			continue;
		if (h->ev[e->inv].time_ns < ri->time_ns && (w2 == NULL || e->time_ns > w2->time_ns))
			w2 = e;
	}
	if (w2 == NULL)
		return NULL;
	for (long i = (long)(w2 - h->ev) - 1; i >= 0; i--) {
		const struct wl_event *e = &h->ev[i];
		if (e->key != ri->key || !is_ok_write(h, e))
			continue;
		const char *v = written(e);
		if (h->ev[e->inv].time_ns < w2->time_ns && v != NULL &&
		    (rc->value == NULL || strcmp(rc->value, v) != 0))
			return v;
	}
	return NULL;
}

long tc_inject_stale_read(struct wl_history *h, char *desc, size_t desclen)
{
	long n = (long)h->n;
	for (long d = 0; d < n; d++) {
		for (int side = 0; side < 2; side++) {
			long i = n / 2 + (side ? d : -d);
			if (i < 0 || i >= n || (side && d == 0))
				continue;
			struct wl_event *e = &h->ev[i];
			if (e->type != WL_OK || e->f != WL_READ)
				continue;
			const char *v = stale_for(h, i);
			if (v == NULL)
				continue;
			e->orig_value = e->value;
			e->value = strdup(v);
			if (e->value == NULL)
				abort();
			e->injected = true;
			snprintf(desc, desclen,
				 "process %d's read of k%d at %.6fs: value %s%s%s replaced by the "
				 "stale %s",
				 e->process, e->key, (double)e->time_ns / 1e9,
				 e->orig_value ? "\"" : "", e->orig_value ? e->orig_value : "null",
				 e->orig_value ? "\"" : "", e->value);
			return i;
		}
	}
	snprintf(desc, desclen,
		 "no read could be made stale (no key had two acknowledged "
		 "writes followed by a read)");
	return -1;
}
