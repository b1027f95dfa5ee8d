/* lincheck_report.c — printing a checker report for people (text) and for scripts (JSON). */
#include "test/torture/lincheck.h"

#include <inttypes.h>
#include <string.h>

/* Values longer than this are cut in the text report (the JSON report has them whole). */
#define TEXT_VALUE_MAX 60u

/* A quoted string with control characters escaped; NULL prints as null. */
static void text_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	size_t n = 0;
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++, n++) {
		if (n == TEXT_VALUE_MAX) {
			fputs("...", out);
			break;
		}
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20 || *c == 0x7f)
			fprintf(out, "\\x%02x", *c);
		else
			fputc(*c, out);
	}
	fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			fprintf(out, "\\%c", *c);
		else if (*c < 0x20)
			fprintf(out, "\\u%04x", *c);
		else
			fputc(*c, out);
	}
	fputc('"', out);
}

void lincheck_print_op(FILE *out, const struct history *h, size_t i)
{
	const struct history_op *op = &h->ops[i];
	fprintf(out, "p%lld %s ", (long long)op->process, history_f_name(op->f));
	text_str(out, op->key);
	switch (op->f) {
	case HISTORY_READ:
		if (op->status == HISTORY_STATUS_OK) {
			fputs(" -> ", out);
			text_str(out, op->value);
		}
		break;
	case HISTORY_WRITE:
		fputc(' ', out);
		text_str(out, op->value);
		break;
	case HISTORY_CAS:
		fputc(' ', out);
		text_str(out, op->from);
		fputs(" -> ", out);
		text_str(out, op->to);
		break;
	case HISTORY_DELETE:
		break;
	}
	fprintf(out, "  %s  invoke %lld", history_status_name(op->status),
		(long long)op->invoke_time);
	if (op->status == HISTORY_STATUS_PENDING)
		fputs(" complete never", out);
	else
		fprintf(out, " complete %lld (+%.3f ms)", (long long)op->complete_time,
			(double)(op->complete_time - op->invoke_time) / 1e6);
	if (op->error != NULL) {
		fputs(" error ", out);
		text_str(out, op->error);
	}
	if (op->invoke_line != 0) {
		fprintf(out, "  line %u", op->invoke_line);
		if (op->complete_line != 0)
			fprintf(out, "-%u", op->complete_line);
	}
}

static const char *role_name(enum lincheck_role role)
{
	switch (role) {
	case LINCHECK_ROLE_STUCK:
		return "stuck";
	case LINCHECK_ROLE_CONCURRENT:
		return "concurrent";
	case LINCHECK_ROLE_BEFORE:
		return "before";
	}
	return "?";
}

static const char *limit_name(enum lincheck_limit limit)
{
	switch (limit) {
	case LINCHECK_LIMIT_NONE:
		return "none";
	case LINCHECK_LIMIT_STEPS:
		return "steps";
	case LINCHECK_LIMIT_MEMORY:
		return "memory";
	}
	return "?";
}

static void print_violation(FILE *out, const struct history *h, const struct lincheck_key *k)
{
	fputs("\nkey ", out);
	text_str(out, k->key);
	fputs(": NOT LINEARIZABLE\n  no linearization reaches the completion of:\n    ", out);
	lincheck_print_op(out, h, k->stuck_op);
	fprintf(out,
		"\n  %s non-linearizable prefix: the %zu operations of this key invoked by time "
		"%lld\n",
		k->prefix_exact ? "shortest" : "a (search budget too small to find the shortest)",
		k->prefix_ops, (long long)h->ops[k->stuck_op].complete_time);
	if (k->without_failed_cas)
		fputs(
		    "  (found with the key's failed cas left out: fewer constraints, so the whole "
		    "history is not linearizable either)\n",
		    out);
	fputs("  the register could then hold: ", out);
	for (size_t i = 0; i < k->n_possible; i++) {
		if (i > 0)
			fputs(", ", out);
		text_str(out, k->possible[i]);
	}
	if (k->n_possible == 0)
		fputs("(not computed: search budget)", out);
	fputs(k->possible_truncated ? ", ...\n" : "\n", out);
	if (k->n_path > 0) {
		fputs("  a longest partial linearization ends with:\n", out);
		for (size_t i = 0; i < k->n_path; i++) {
			fputs("    ", out);
			lincheck_print_op(out, h, k->path[i].op);
			fputs("\n        => ", out);
			text_str(out, k->path[i].value_after);
			fputc('\n', out);
		}
	}
	fputs("  operations around it (invocation order):\n", out);
	for (size_t i = 0; i < k->n_window; i++) {
		const struct lincheck_window_op *w = &k->window[i];
		fprintf(out, "  %s %-10s ", w->role == LINCHECK_ROLE_STUCK ? ">>" : "  ",
			role_name(w->role));
		lincheck_print_op(out, h, w->op);
		fputc('\n', out);
	}
	if (k->window_omitted > 0)
		fprintf(
		    out,
		    "     (%zu more concurrent operations not shown, %zu of them info operations "
		    "invoked earlier)\n",
		    k->window_omitted, k->window_omitted_info);
}

void lincheck_print(FILE *out, const struct history *h, const struct lincheck_report *r)
{
	fprintf(out,
		"history: %zu operations (ok %zu, fail %zu, info %zu, no completion %zu) on %zu "
		"keys; reads %zu, writes %zu, cas %zu, deletes %zu\n",
		r->n_ops, r->n_ok, r->n_fail, r->n_info, r->n_pending, r->n_keys, r->n_reads,
		r->n_writes, r->n_cas, r->n_deletes);
	fprintf(out, "checked in %.3f s (%.0f ops/s), %" PRIu64 " search steps\n", r->seconds,
		r->seconds > 0 ? (double)r->n_ops / r->seconds : 0.0, r->steps);
	for (size_t i = 0; i < r->n_keys; i++)
		if (r->keys[i].outcome == LINCHECK_NOT_LINEARIZABLE)
			print_violation(out, h, &r->keys[i]);
	for (size_t i = 0; i < r->n_keys; i++) {
		const struct lincheck_key *k = &r->keys[i];
		if (k->outcome != LINCHECK_UNKNOWN)
			continue;
		fputs("\nkey ", out);
		text_str(out, k->key);
		fprintf(out,
			": UNKNOWN: search budget exhausted (%s: %" PRIu64 " steps, %zu bytes, %zu "
			"operations, %zu of them info)\n",
			limit_name(k->limit), k->steps, k->memory, k->n_constraints, k->n_info);
	}
	if (r->final_reads_checked) {
		fprintf(out, "\nfinal reads: %zu; lost writes: %zu\n", r->n_final_reads, r->n_lost);
		for (size_t i = 0; i < r->n_lost_listed; i++) {
			fputs("  lost:       ", out);
			lincheck_print_op(out, h, r->lost[i].write_op);
			fputs("\n  final read: ", out);
			lincheck_print_op(out, h, r->lost[i].final_read_op);
			fputc('\n', out);
		}
	}
	fprintf(out, "\nverdict: %s", lincheck_outcome_name(r->outcome));
	if (r->outcome == LINCHECK_NOT_LINEARIZABLE)
		fprintf(out, " (%zu of %zu keys; %zu lost writes)", r->n_violations, r->n_keys,
			r->n_lost);
	else if (r->outcome == LINCHECK_UNKNOWN)
		fprintf(out, " (search budget exhausted on %zu of %zu keys)", r->n_unknown,
			r->n_keys);
	fputc('\n', out);
}

static const char *json_outcome(enum lincheck_outcome o)
{
	switch (o) {
	case LINCHECK_LINEARIZABLE:
		return "linearizable";
	case LINCHECK_NOT_LINEARIZABLE:
		return "not-linearizable";
	case LINCHECK_UNKNOWN:
		return "unknown";
	}
	return "?";
}

static void json_op(FILE *out, const struct history *h, size_t i)
{
	const struct history_op *op = &h->ops[i];
	fprintf(out, "{\"index\":%zu,\"process\":%lld,\"f\":\"%s\",\"key\":", i,
		(long long)op->process, history_f_name(op->f));
	json_str(out, op->key);
	if (op->f == HISTORY_WRITE || (op->f == HISTORY_READ && op->status == HISTORY_STATUS_OK)) {
		fputs(",\"value\":", out);
		json_str(out, op->value);
	}
	if (op->f == HISTORY_CAS) {
		fputs(",\"from\":", out);
		json_str(out, op->from);
		fputs(",\"to\":", out);
		json_str(out, op->to);
	}
	fprintf(out, ",\"status\":\"%s\",\"invoke_time\":%lld,\"complete_time\":",
		history_status_name(op->status), (long long)op->invoke_time);
	if (op->status == HISTORY_STATUS_PENDING)
		fputs("null", out);
	else
		fprintf(out, "%lld", (long long)op->complete_time);
	if (op->error != NULL) {
		fputs(",\"error\":", out);
		json_str(out, op->error);
	}
	fprintf(out, ",\"invoke_line\":%u,\"complete_line\":%u}", op->invoke_line,
		op->complete_line);
}

static void json_violation(FILE *out, const struct history *h, const struct lincheck_key *k)
{
	fputs("{\"key\":", out);
	json_str(out, k->key);
	fputs(",\"stuck\":", out);
	json_op(out, h, k->stuck_op);
	fprintf(out,
		",\"prefix_ops\":%zu,\"prefix_exact\":%s,\"without_failed_cas\":%s,"
		"\"possible_values\":[",
		k->prefix_ops, k->prefix_exact ? "true" : "false",
		k->without_failed_cas ? "true" : "false");
	for (size_t i = 0; i < k->n_possible; i++) {
		if (i > 0)
			fputc(',', out);
		json_str(out, k->possible[i]);
	}
	fprintf(out, "],\"possible_truncated\":%s,\"path\":[",
		k->possible_truncated ? "true" : "false");
	for (size_t i = 0; i < k->n_path; i++) {
		fputs(i > 0 ? ",{\"op\":" : "{\"op\":", out);
		json_op(out, h, k->path[i].op);
		fputs(",\"value_after\":", out);
		json_str(out, k->path[i].value_after);
		fputc('}', out);
	}
	fputs("],\"window\":[", out);
	for (size_t i = 0; i < k->n_window; i++) {
		fprintf(out, "%s{\"role\":\"%s\",\"op\":", i > 0 ? "," : "",
			role_name(k->window[i].role));
		json_op(out, h, k->window[i].op);
		fputc('}', out);
	}
	fprintf(out, "],\"window_omitted\":%zu,\"window_omitted_info\":%zu}", k->window_omitted,
		k->window_omitted_info);
}

void lincheck_print_json(FILE *out, const struct history *h, const struct lincheck_report *r)
{
	fprintf(out,
		"{\"outcome\":\"%s\",\"exit_code\":%d,\"ops\":%zu,\"ok\":%zu,\"fail\":%zu,"
		"\"info\":%zu,\"pending\":%zu,\"reads\":%zu,\"writes\":%zu,\"cas\":%zu,"
		"\"deletes\":%zu,\"keys\":%zu,\"violations\":%zu,\"unknown\":%zu,"
		"\"steps\":%" PRIu64 ",\"seconds\":%.6f,",
		json_outcome(r->outcome), (int)r->outcome, r->n_ops, r->n_ok, r->n_fail, r->n_info,
		r->n_pending, r->n_reads, r->n_writes, r->n_cas, r->n_deletes, r->n_keys,
		r->n_violations, r->n_unknown, r->steps, r->seconds);
	fputs("\"anomalies\":[", out);
	bool first = true;
	for (size_t i = 0; i < r->n_keys; i++) {
		if (r->keys[i].outcome != LINCHECK_NOT_LINEARIZABLE)
			continue;
		if (!first)
			fputc(',', out);
		first = false;
		json_violation(out, h, &r->keys[i]);
	}
	fputs("],\"per_key\":[", out);
	for (size_t i = 0; i < r->n_keys; i++) {
		const struct lincheck_key *k = &r->keys[i];
		fputs(i > 0 ? ",{\"key\":" : "{\"key\":", out);
		json_str(out, k->key);
		fprintf(out,
			",\"outcome\":\"%s\",\"ops\":%zu,\"constraints\":%zu,\"info\":%zu,"
			"\"steps\":%" PRIu64
			",\"cache_entries\":%zu,\"memory\":%zu,\"limit\":\"%s\"}",
			json_outcome(k->outcome), k->n_ops, k->n_constraints, k->n_info, k->steps,
			k->cache_entries, k->memory, limit_name(k->limit));
	}
	fprintf(out,
		"],\"final_reads\":{\"checked\":%s,\"reads\":%zu,\"lost\":%zu,\"lost_writes\":[",
		r->final_reads_checked ? "true" : "false", r->n_final_reads, r->n_lost);
	for (size_t i = 0; i < r->n_lost_listed; i++) {
		fputs(i > 0 ? ",{\"write\":" : "{\"write\":", out);
		json_op(out, h, r->lost[i].write_op);
		fputs(",\"final_read\":", out);
		json_op(out, h, r->lost[i].final_read_op);
		fputc('}', out);
	}
	fputs("]}}\n", out);
}
