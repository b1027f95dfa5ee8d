/* lincheck_final.c — durability against final reads: no acknowledged write may silently vanish. */
#include "test/torture/lincheck.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define TIME_INF INT64_MAX

struct ref {
	const char *key;
	size_t idx;
};

static int cmp_ref(const void *a, const void *b)
{
	const struct ref *x = a, *y = b;
	if (x->key != y->key) {
		int c = strcmp(x->key, y->key);
		if (c != 0)
			return c;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static bool is_write(const struct history_op *op)
{
	return op->f == HISTORY_WRITE || op->f == HISTORY_DELETE || op->f == HISTORY_CAS;
}

static bool acknowledged(const struct history_op *op)
{
	return is_write(op) && op->status == HISTORY_STATUS_OK;
}

/* A write that may have taken effect: ok, info or pending. */
static bool may_write(const struct history_op *op)
{
	return is_write(op) && op->status != HISTORY_STATUS_FAIL;
}

static int64_t end_time(const struct history_op *op)
{
	return op->status == HISTORY_STATUS_OK || op->status == HISTORY_STATUS_FAIL
		   ? op->complete_time
		   : TIME_INF;
}

/* The value a write leaves when it takes effect. */
static const char *produced(const struct history_op *op)
{
	if (op->f == HISTORY_WRITE)
		return op->value;
	if (op->f == HISTORY_CAS)
		return op->to;
	return NULL;
}

static void set_error(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *errmsg, size_t errlen, const char *fmt, ...)
{
	if (errmsg == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
}

/* Checks one key's ops (history indices idx[0..n), in history order). */
static int check_key(const struct history *h, const size_t *idx, size_t n,
		     struct lincheck_report *r, char *errmsg, size_t errlen)
{
	int64_t done = INT64_MIN;
	size_t last = 0;
	bool acked = false;
	for (size_t i = 0; i < n; i++) {
		const struct history_op *op = &h->ops[idx[i]];
		if (acknowledged(op))
			acked = true;
		if (is_write(op) &&
		    (op->status == HISTORY_STATUS_OK || op->status == HISTORY_STATUS_FAIL) &&
		    op->complete_time > done) {
			done = op->complete_time;
			last = idx[i];
		}
	}
	if (!acked)
		return 0;
	/*
	 * For a given acknowledged write W, the final read that is hardest to explain is the one
	 * that completed first among those that do not show W's value (fewest writes could have
	 * come in between). So only two final reads matter: the first one to complete, and the
	 * first one to complete with a value other than the first one's.
	 */
	size_t finals = 0, first = SIZE_MAX, alt = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		const struct history_op *f = &h->ops[idx[i]];
		if (f->f != HISTORY_READ || f->status != HISTORY_STATUS_OK ||
		    f->invoke_time <= done)
			continue;
		finals++;
		if (first == SIZE_MAX || f->complete_time < h->ops[first].complete_time)
			first = idx[i];
	}
	for (size_t i = 0; i < n && first != SIZE_MAX; i++) {
		const struct history_op *f = &h->ops[idx[i]];
		if (f->f != HISTORY_READ || f->status != HISTORY_STATUS_OK ||
		    f->invoke_time <= done || f->value == h->ops[first].value)
			continue;
		if (alt == SIZE_MAX || f->complete_time < h->ops[alt].complete_time)
			alt = idx[i];
	}
	size_t reads[2] = {first, alt};
	for (size_t fi = 0; fi < 2; fi++) {
		if (reads[fi] == SIZE_MAX)
			continue;
		const struct history_op *f = &h->ops[reads[fi]];
		/* The two writes that may take effect latest, among those invoked before f ended.
		 */
		size_t top1 = SIZE_MAX, top2 = SIZE_MAX;
		for (size_t j = 0; j < n; j++) {
			const struct history_op *x = &h->ops[idx[j]];
			if (!may_write(x) || x->invoke_time >= f->complete_time)
				continue;
			if (top1 == SIZE_MAX || end_time(x) > end_time(&h->ops[top1])) {
				top2 = top1;
				top1 = idx[j];
			} else if (top2 == SIZE_MAX || end_time(x) > end_time(&h->ops[top2])) {
				top2 = idx[j];
			}
		}
		for (size_t j = 0; j < n; j++) {
			const struct history_op *w = &h->ops[idx[j]];
			if (!acknowledged(w) || produced(w) == f->value)
				continue;
			/* f is the hardest read for w: the first one, unless it shows w's value. */
			if (fi == 1 && produced(w) != h->ops[first].value)
				continue;
			size_t other = top1 != idx[j] ? top1 : top2;
			/* Completing at the instant w was invoked still counts as concurrent. */
			if (other != SIZE_MAX && end_time(&h->ops[other]) >= w->invoke_time)
				continue;
			r->n_lost++;
			if (r->n_lost_listed < LINCHECK_MAX_LOST)
				r->lost[r->n_lost_listed++] = (struct lincheck_lost_write){
				    .write_op = idx[j], .final_read_op = reads[fi]};
		}
	}
	r->n_final_reads += finals;
	if (finals == 0) {
		const struct history_op *l = &h->ops[last];
		set_error(
		    errmsg, errlen,
		    "key \"%s\": no final read (an ok read invoked after its last write, cas or "
		    "delete completed: process %lld, time %lld, line %u)",
		    l->key, (long long)l->process, (long long)l->complete_time, l->complete_line);
		return HISTORY_EINVAL;
	}
	return 0;
}

int lincheck_final_reads(const struct history *h, struct lincheck_report *r, char *errmsg,
			 size_t errlen)
{
	r->final_reads_checked = true;
	if (r->lost == NULL) {
		r->lost = calloc(LINCHECK_MAX_LOST, sizeof(*r->lost));
		if (r->lost == NULL)
			return HISTORY_ENOMEM;
	}
	struct ref *refs = malloc((h->n_ops > 0 ? h->n_ops : 1) * sizeof(*refs));
	size_t *idx = malloc((h->n_ops > 0 ? h->n_ops : 1) * sizeof(*idx));
	int rv = 0;
	if (refs == NULL || idx == NULL) {
		rv = HISTORY_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < h->n_ops; i++)
		refs[i] = (struct ref){.key = h->ops[i].key, .idx = i};
	qsort(refs, h->n_ops, sizeof(*refs), cmp_ref);
	for (size_t i = 0; i < h->n_ops; i++)
		idx[i] = refs[i].idx;
	for (size_t i = 0; i < h->n_ops && rv == 0;) {
		size_t j = i;
		while (j < h->n_ops && refs[j].key == refs[i].key)
			j++;
		rv = check_key(h, idx + i, j - i, r, errmsg, errlen);
		i = j;
	}
out:
	free(refs);
	free(idx);
	return rv;
}
