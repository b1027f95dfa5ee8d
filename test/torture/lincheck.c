/* lincheck.c — the linearizability checker: per-key histories, prefixes, reports. */
#include "test/torture/lincheck.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test/torture/lincheck_search.h"

#define NONE		    UINT32_MAX
#define TIME_INF	    INT64_MAX
#define INITIAL_VALUE_SLOTS 64u

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

static double now_seconds(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *lincheck_outcome_name(enum lincheck_outcome o)
{
	switch (o) {
	case LINCHECK_LINEARIZABLE:
		return "linearizable";
	case LINCHECK_NOT_LINEARIZABLE:
		return "not linearizable";
	case LINCHECK_UNKNOWN:
		return "unknown";
	}
	return "?";
}

/* ---- value ids: interned string pointer -> small integer, per key ------------------------- */

struct value_map {
	const char **keys; /* slot -> string (NULL: free) */
	uint32_t *ids;
	size_t cap, n;
	const char **by_id; /* id -> string; id 0 is null */
	size_t by_id_cap;
};

static void value_map_free(struct value_map *vm)
{
	free(vm->keys);
	free(vm->ids);
	free(vm->by_id);
	memset(vm, 0, sizeof(*vm));
}

static int value_map_grow(struct value_map *vm)
{
	size_t cap = vm->cap == 0 ? INITIAL_VALUE_SLOTS : vm->cap * 2;
	const char **keys = calloc(cap, sizeof(*keys));
	uint32_t *ids = calloc(cap, sizeof(*ids));
	if (keys == NULL || ids == NULL) {
		free(keys);
		free(ids);
		return HISTORY_ENOMEM;
	}
	for (size_t i = 0; i < vm->cap; i++) {
		if (vm->keys[i] == NULL)
			continue;
		size_t j = mix64((uint64_t)(uintptr_t)vm->keys[i]) & (cap - 1);
		while (keys[j] != NULL)
			j = (j + 1) & (cap - 1);
		keys[j] = vm->keys[i];
		ids[j] = vm->ids[i];
	}
	free(vm->keys);
	free(vm->ids);
	vm->keys = keys;
	vm->ids = ids;
	vm->cap = cap;
	return 0;
}

/* The id of `s` (interned: compared by pointer); NULL is 0. Returns 0 or HISTORY_ENOMEM. */
static int value_id(struct value_map *vm, const char *s, uint32_t *id)
{
	if (s == NULL) {
		*id = 0;
		return 0;
	}
	if ((vm->n + 1) * 2 > vm->cap && value_map_grow(vm) != 0)
		return HISTORY_ENOMEM;
	size_t j = mix64((uint64_t)(uintptr_t)s) & (vm->cap - 1);
	while (vm->keys[j] != NULL) {
		if (vm->keys[j] == s) {
			*id = vm->ids[j];
			return 0;
		}
		j = (j + 1) & (vm->cap - 1);
	}
	if (vm->n + 2 > vm->by_id_cap) {
		size_t cap = vm->by_id_cap == 0 ? INITIAL_VALUE_SLOTS : vm->by_id_cap * 2;
		const char **by_id = realloc(vm->by_id, cap * sizeof(*by_id));
		if (by_id == NULL)
			return HISTORY_ENOMEM;
		vm->by_id = by_id;
		vm->by_id_cap = cap;
		vm->by_id[0] = NULL;
	}
	vm->n++;
	vm->keys[j] = s;
	vm->ids[j] = (uint32_t)vm->n;
	vm->by_id[vm->n] = s;
	*id = (uint32_t)vm->n;
	return 0;
}

/* A key being checked: its history ops, and the lops built from them. */
struct key_ctx {
	const struct history *h;
	const size_t *idx; /* the key's history ops */
	size_t n;
	const struct lincheck_options *o;
	struct value_map vm;
	struct lincheck_lop *all; /* every lop of the key (without failed cas if skip_failcas) */
	uint32_t n_all;
	uint32_t *by_ret; /* the non-info ones, in completion order */
	uint32_t m;
	struct lincheck_lop *tmp; /* a prefix */
	struct lincheck_key *k;
};

/* Turns the key's history ops into lops (ctx->all). */
static int build_lops(struct key_ctx *c, bool skip_failcas)
{
	const struct history *h = c->h;
	uint32_t cnt = 0;
	for (size_t i = 0; i < c->n; i++) {
		const struct history_op *op = &h->ops[c->idx[i]];
		bool info =
		    op->status == HISTORY_STATUS_INFO || op->status == HISTORY_STATUS_PENDING;
		struct lincheck_lop l = {.call = op->invoke_time,
					 .ret = info ? TIME_INF : op->complete_time,
					 .hidx = c->idx[i],
					 .info = info};
		int rv = 0;
		switch (op->f) {
		case HISTORY_READ:
			if (op->status != HISTORY_STATUS_OK)
				continue;
			l.kind = LOP_READ;
			rv = value_id(&c->vm, op->value, &l.a);
			break;
		case HISTORY_WRITE:
		case HISTORY_DELETE:
			if (op->status == HISTORY_STATUS_FAIL)
				continue;
			l.kind = LOP_WRITE;
			rv = value_id(&c->vm, op->f == HISTORY_WRITE ? op->value : NULL, &l.a);
			break;
		case HISTORY_CAS:
			if (op->status == HISTORY_STATUS_FAIL &&
			    (op->error != NULL || skip_failcas))
				continue;
			l.kind = op->status == HISTORY_STATUS_FAIL ? LOP_FAILCAS : LOP_CAS;
			rv = value_id(&c->vm, op->from, &l.a);
			if (rv == 0)
				rv = value_id(&c->vm, op->to, &l.b);
			break;
		}
		if (rv != 0)
			return rv;
		c->all[cnt++] = l;
	}
	c->n_all = cnt;
	return 0;
}

/* Completion order: time, then invocation, then history order (the search's order too). */
static bool ret_before(const struct lincheck_lop *x, const struct lincheck_lop *y)
{
	if (x->ret != y->ret)
		return x->ret < y->ret;
	if (x->call != y->call)
		return x->call < y->call;
	return x->hidx < y->hidx;
}

struct ret_ref {
	struct lincheck_lop l;
	uint32_t idx;
};

static int cmp_ret_ref(const void *a, const void *b)
{
	const struct ret_ref *x = a, *y = b;
	return ret_before(&x->l, &y->l) ? -1 : ret_before(&y->l, &x->l) ? 1 : 0;
}

static int sort_by_ret(struct key_ctx *c)
{
	struct ret_ref *refs = malloc((c->n_all > 0 ? c->n_all : 1) * sizeof(*refs));
	if (refs == NULL)
		return HISTORY_ENOMEM;
	c->m = 0;
	for (uint32_t i = 0; i < c->n_all; i++)
		if (!c->all[i].info)
			refs[c->m++] = (struct ret_ref){.l = c->all[i], .idx = i};
	qsort(refs, c->m, sizeof(*refs), cmp_ret_ref);
	for (uint32_t j = 0; j < c->m; j++)
		c->by_ret[j] = refs[j].idx;
	free(refs);
	return 0;
}

/*
 * The prefix of the key's history that ends with the j-th completion (in completion order).
 * Operations that completed by then are as they are; operations invoked by then but still
 * pending may take effect before that completion or after it, with the outcome they had: so
 * a pending write or successful cas becomes info (it may or may not have taken effect by
 * then), a pending read or failed cas is dropped (it constrains nothing that must happen by
 * then). Later operations are left out. This is also the prefix that the search itself stops
 * at when it is run without look-ahead.
 */
static uint32_t build_prefix(struct key_ctx *c, uint32_t j)
{
	const struct lincheck_lop *r = &c->all[c->by_ret[j]];
	uint32_t cnt = 0;
	for (uint32_t i = 0; i < c->n_all; i++) {
		struct lincheck_lop l = c->all[i];
		if (!l.info && (l.hidx == r->hidx || ret_before(&l, r))) {
			c->tmp[cnt++] = l;
			continue;
		}
		if (l.call > r->ret || l.kind == LOP_READ || l.kind == LOP_FAILCAS)
			continue;
		l.info = true;
		l.ret = TIME_INF;
		c->tmp[cnt++] = l;
	}
	return cnt;
}

/* One search; max_steps 0 is the default budget. */
static int run(struct key_ctx *c, const struct lincheck_lop *ops, uint32_t n, bool lookahead,
	       uint64_t max_steps, struct lincheck_search_result *res)
{
	const struct lincheck_options *o = c->o;
	struct lincheck_search_params p = {
	    .max_steps = max_steps != 0 ? max_steps : LINCHECK_DEFAULT_MAX_STEPS,
	    .max_memory = o->max_memory != 0 ? o->max_memory : LINCHECK_DEFAULT_MAX_MEMORY,
	    .lookahead = lookahead,
	};
	int rv = lincheck_search_run(ops, n, (uint32_t)c->vm.n, &p, res);
	if (rv != 0)
		return rv;
	c->k->steps += res->steps;
	if (res->cache_entries > c->k->cache_entries)
		c->k->cache_entries = res->cache_entries;
	if (res->memory > c->k->memory)
		c->k->memory = res->memory;
	return 0;
}

static uint32_t rank_of(const struct key_ctx *c, size_t hidx)
{
	for (uint32_t j = 0; j < c->m; j++)
		if (c->all[c->by_ret[j]].hidx == hidx)
			return j;
	return 0;
}

static const struct lincheck_lop *lop_of(const struct key_ctx *c, size_t hidx)
{
	for (uint32_t i = 0; i < c->n_all; i++)
		if (c->all[i].hidx == hidx)
			return &c->all[i];
	return NULL;
}

static bool in_window(const struct lincheck_key *k, size_t hidx)
{
	for (size_t i = 0; i < k->n_window; i++)
		if (k->window[i].op == hidx)
			return true;
	return false;
}

static void window_add(struct lincheck_key *k, size_t cap, size_t hidx, enum lincheck_role role)
{
	if (in_window(k, hidx) || k->n_window >= cap)
		return;
	k->window[k->n_window++] = (struct lincheck_window_op){.op = hidx, .role = role};
}

static const char *value_string(const struct value_map *vm, uint32_t id)
{
	return id == 0 || vm->by_id == NULL ? NULL : vm->by_id[id];
}

/* Adds the non-info ops overlapping r, nearest invocation first, until the window holds `upto`. */
static void add_concurrent(const struct key_ctx *c, const struct lincheck_lop *r, size_t upto)
{
	struct lincheck_key *k = c->k;
	while (k->n_window < upto) {
		const struct lincheck_lop *best = NULL;
		int64_t best_d = 0;
		for (uint32_t i = 0; i < c->n_all; i++) {
			const struct lincheck_lop *l = &c->all[i];
			if (l->info || l->call > r->ret || l->ret < r->call ||
			    in_window(k, l->hidx))
				continue;
			int64_t d = l->call > r->call ? l->call - r->call : r->call - l->call;
			if (best == NULL || d < best_d) {
				best = l;
				best_d = d;
			}
		}
		if (best == NULL)
			return;
		window_add(k, upto, best->hidx, LINCHECK_ROLE_CONCURRENT);
	}
}

/* Lists the operations around the stuck one r in the key's report, in invocation order. */
static int describe_window(struct key_ctx *c, const struct lincheck_lop *r)
{
	struct lincheck_key *k = c->k;
	const struct history *h = c->h;
	size_t cap = c->o->window_max != 0 ? c->o->window_max : LINCHECK_DEFAULT_WINDOW;
	k->window = calloc(cap + 1, sizeof(*k->window));
	if (k->window == NULL)
		return HISTORY_ENOMEM;
	window_add(k, cap + 1, r->hidx, LINCHECK_ROLE_STUCK);
	/* Half of the room for concurrent non-info ops, then the writes before it, info ops, and
	 * what room is left for more concurrent ones. */
	add_concurrent(c, r, cap / 2);
	size_t before = 0;
	for (uint32_t j = rank_of(c, r->hidx); j-- > 0 && before < LINCHECK_WINDOW_BEFORE;) {
		const struct lincheck_lop *l = &c->all[c->by_ret[j]];
		if (l->ret >= r->call || (l->kind != LOP_WRITE && l->kind != LOP_CAS))
			continue;
		window_add(k, cap, l->hidx, LINCHECK_ROLE_BEFORE);
		before++;
	}
	/* Info ops invoked before it completed: those that produce the value it needed, then the
	 * latest few (all of them are concurrent with it, but older ones rarely matter). */
	uint32_t need = r->kind == LOP_READ || r->kind == LOP_CAS ? r->a : NONE;
	for (uint32_t i = 0; i < c->n_all; i++) {
		const struct lincheck_lop *l = &c->all[i];
		if (l->info && l->call <= r->ret && (l->kind == LOP_CAS ? l->b : l->a) == need)
			window_add(k, cap, l->hidx, LINCHECK_ROLE_CONCURRENT);
	}
	for (size_t latest = 0; latest < LINCHECK_WINDOW_BEFORE; latest++) {
		const struct lincheck_lop *best = NULL;
		for (uint32_t i = 0; i < c->n_all; i++) {
			const struct lincheck_lop *l = &c->all[i];
			if (l->info && l->call <= r->ret && !in_window(k, l->hidx) &&
			    (best == NULL || l->call > best->call))
				best = l;
		}
		if (best == NULL)
			break;
		window_add(k, cap, best->hidx, LINCHECK_ROLE_CONCURRENT);
	}
	add_concurrent(c, r, cap);
	k->window_omitted = k->window_omitted_info = 0;
	for (uint32_t i = 0; i < c->n_all; i++) {
		const struct lincheck_lop *l = &c->all[i];
		if (l->call <= r->ret && l->ret >= r->call && !in_window(k, l->hidx)) {
			k->window_omitted++;
			k->window_omitted_info += l->info;
		}
	}
	for (size_t i = 1; i < k->n_window; i++) {
		struct lincheck_window_op w = k->window[i];
		size_t j = i;
		while (j > 0 &&
		       (h->ops[k->window[j - 1].op].invoke_time > h->ops[w.op].invoke_time ||
			(h->ops[k->window[j - 1].op].invoke_time == h->ops[w.op].invoke_time &&
			 k->window[j - 1].op > w.op))) {
			k->window[j] = k->window[j - 1];
			j--;
		}
		k->window[j] = w;
	}
	return 0;
}

/*
 * The search that decided found a violation; `first` is where it stopped. With look-ahead that
 * can be before the completion that makes the history non-linearizable, so: binary search for
 * the shortest non-linearizable prefix (prefixes of a linearizable prefix are linearizable, and
 * the search reached `first`, so every prefix before it is), then one search of that prefix
 * without look-ahead, which stops exactly at its end and says what the register could hold.
 */
static int locate_violation(struct key_ctx *c, const struct lincheck_search_result *first)
{
	struct lincheck_key *k = c->k;
	struct lincheck_search_result res;
	uint32_t lo = rank_of(c, first->stuck_hidx), hi = c->m - 1, step = 1;
	bool exact = true, galloping = true;
	/* The end is usually just after where the look-ahead stopped, and searches of
	 * non-linearizable prefixes cost the most (they are exhaustive): gallop up from there
	 * (linearizable prefixes are quick), then bisect. */
	while (lo < hi) {
		uint32_t j =
		    galloping ? (hi - lo > step ? lo + step - 1 : hi - 1) : lo + (hi - lo) / 2;
		int rv = run(c, c->tmp, build_prefix(c, j), true, c->o->max_steps, &res);
		if (rv != 0)
			return rv;
		if (res.outcome == LINCHECK_NOT_LINEARIZABLE) {
			hi = j;
			galloping = false;
		} else if (res.outcome == LINCHECK_LINEARIZABLE) {
			lo = j + 1;
			step *= 2;
		} else {
			exact = false;
			break;
		}
	}
	uint64_t detail_steps = c->o->max_steps != 0 ? c->o->max_steps : LINCHECK_DEFAULT_MAX_STEPS;
	if (detail_steps > LINCHECK_DETAIL_STEPS)
		detail_steps = LINCHECK_DETAIL_STEPS;
	int rv = run(c, c->tmp, build_prefix(c, hi), false, detail_steps, &res);
	if (rv != 0)
		return rv;
	size_t stuck = c->all[c->by_ret[hi]].hidx;
	k->n_possible = k->n_path = 0;
	if (res.outcome == LINCHECK_NOT_LINEARIZABLE) {
		stuck = res.stuck_hidx;
		exact = true;
		for (size_t i = 0; i < res.n_possible; i++)
			k->possible[i] = value_string(&c->vm, res.possible[i]);
		k->n_possible = res.n_possible;
		k->possible_truncated = res.possible_truncated;
		for (size_t i = 0; i < res.n_path; i++) {
			k->path[i].op = res.path_hidx[i];
			k->path[i].value_after = value_string(&c->vm, res.path_value[i]);
		}
		k->n_path = res.n_path;
	}
	const struct lincheck_lop *r = lop_of(c, stuck);
	k->stuck_op = stuck;
	k->prefix_exact = exact;
	k->prefix_ops = 0;
	for (size_t i = 0; i < c->n; i++)
		if (c->h->ops[c->idx[i]].invoke_time <= r->ret)
			k->prefix_ops++;
	return describe_window(c, r);
}

/* Decides the key on its lops (built with or without failed cas). */
static int search_key(struct key_ctx *c, bool skip_failcas)
{
	struct lincheck_key *k = c->k;
	int rv = build_lops(c, skip_failcas);
	if (rv != 0)
		return rv;
	rv = sort_by_ret(c);
	if (rv != 0)
		return rv;
	struct lincheck_search_result res;
	rv = run(c, c->all, c->n_all, true, c->o->max_steps, &res);
	if (rv != 0)
		return rv;
	k->outcome = res.outcome;
	k->limit = res.limit;
	k->n_constraints = c->n_all;
	k->n_info = res.n_info;
	if (res.outcome == LINCHECK_NOT_LINEARIZABLE)
		return locate_violation(c, &res);
	return 0;
}

/*
 * Failed cas are what makes the search expensive on a non-linearizable history with many info
 * ops: proving a violation means exhausting every configuration before it, and a failed cas
 * stuck on the current value may be explained by any info op. Without them the history has
 * fewer constraints, so a violation found without them is a violation of the whole history;
 * and that search is much cheaper. So a key with failed cas is first searched without them;
 * only if that finds no violation is it searched with them.
 */
static int check_key(const struct history *h, const size_t *idx, size_t n,
		     const struct lincheck_options *o, struct lincheck_key *k)
{
	struct key_ctx c = {.h = h, .idx = idx, .n = n, .o = o, .k = k};
	int rv = HISTORY_ENOMEM;
	c.all = malloc((n > 0 ? n : 1) * sizeof(*c.all));
	c.tmp = malloc((n > 0 ? n : 1) * sizeof(*c.tmp));
	c.by_ret = malloc((n > 0 ? n : 1) * sizeof(*c.by_ret));
	if (c.all == NULL || c.tmp == NULL || c.by_ret == NULL)
		goto out;
	bool has_failcas = false;
	for (size_t i = 0; i < n; i++) {
		const struct history_op *op = &h->ops[idx[i]];
		if (op->f == HISTORY_CAS && op->status == HISTORY_STATUS_FAIL && op->error == NULL)
			has_failcas = true;
	}
	if (has_failcas) {
		rv = search_key(&c, true);
		if (rv != 0)
			goto out;
		if (k->outcome == LINCHECK_NOT_LINEARIZABLE) {
			k->without_failed_cas = true;
			goto out;
		}
	}
	rv = search_key(&c, false);
out:
	free(c.all);
	free(c.tmp);
	free(c.by_ret);
	value_map_free(&c.vm);
	return rv;
}

/* ---- the whole history --------------------------------------------------------------------- */

struct key_ref {
	const char *key;
	size_t idx;
};

static int cmp_key_ref(const void *a, const void *b)
{
	const struct key_ref *x = a, *y = b;
	if (x->key != y->key) {
		int c = strcmp(x->key, y->key);
		if (c != 0)
			return c;
	}
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void count_ops(const struct history *h, struct lincheck_report *r)
{
	r->n_ops = h->n_ops;
	for (size_t i = 0; i < h->n_ops; i++) {
		const struct history_op *op = &h->ops[i];
		switch (op->status) {
		case HISTORY_STATUS_OK:
			r->n_ok++;
			break;
		case HISTORY_STATUS_FAIL:
			r->n_fail++;
			break;
		case HISTORY_STATUS_INFO:
			r->n_info++;
			break;
		case HISTORY_STATUS_PENDING:
			r->n_pending++;
			break;
		}
		switch (op->f) {
		case HISTORY_READ:
			r->n_reads++;
			break;
		case HISTORY_WRITE:
			r->n_writes++;
			break;
		case HISTORY_CAS:
			r->n_cas++;
			break;
		case HISTORY_DELETE:
			r->n_deletes++;
			break;
		}
	}
}

int lincheck_check(const struct history *h, const struct lincheck_options *opts,
		   struct lincheck_report *r, char *errmsg, size_t errlen)
{
	struct lincheck_options o = {0};
	if (opts != NULL)
		o = *opts;
	memset(r, 0, sizeof(*r));
	double start = now_seconds();
	int rv = 0;
	count_ops(h, r);
	struct key_ref *refs = malloc((h->n_ops > 0 ? h->n_ops : 1) * sizeof(*refs));
	size_t *idx = malloc((h->n_ops > 0 ? h->n_ops : 1) * sizeof(*idx));
	if (refs == NULL || idx == NULL) {
		rv = HISTORY_ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < h->n_ops; i++)
		refs[i] = (struct key_ref){.key = h->ops[i].key, .idx = i};
	qsort(refs, h->n_ops, sizeof(*refs), cmp_key_ref);
	for (size_t i = 0; i < h->n_ops; i++) {
		idx[i] = refs[i].idx;
		if (i == 0 || refs[i].key != refs[i - 1].key)
			r->n_keys++;
	}
	r->keys = calloc(r->n_keys > 0 ? r->n_keys : 1, sizeof(*r->keys));
	if (r->keys == NULL) {
		rv = HISTORY_ENOMEM;
		goto out;
	}
	if (o.final_reads) {
		rv = lincheck_final_reads(h, r, errmsg, errlen);
		if (rv != 0)
			goto out;
	}
	for (size_t i = 0, k = 0; i < h->n_ops; k++) {
		size_t j = i;
		while (j < h->n_ops && refs[j].key == refs[i].key)
			j++;
		struct lincheck_key *key = &r->keys[k];
		key->key = refs[i].key;
		key->n_ops = j - i;
		rv = check_key(h, idx + i, j - i, &o, key);
		if (rv != 0)
			goto out;
		r->steps += key->steps;
		if (key->outcome == LINCHECK_NOT_LINEARIZABLE)
			r->n_violations++;
		else if (key->outcome == LINCHECK_UNKNOWN)
			r->n_unknown++;
		i = j;
	}
	if (r->n_violations > 0 || r->n_lost > 0)
		r->outcome = LINCHECK_NOT_LINEARIZABLE;
	else if (r->n_unknown > 0)
		r->outcome = LINCHECK_UNKNOWN;
	else
		r->outcome = LINCHECK_LINEARIZABLE;
out:
	if (rv == HISTORY_ENOMEM && errmsg != NULL && errlen > 0)
		snprintf(errmsg, errlen, "out of memory");
	free(refs);
	free(idx);
	r->seconds = now_seconds() - start;
	return rv;
}

void lincheck_report_free(struct lincheck_report *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; r->keys != NULL && i < r->n_keys; i++)
		free(r->keys[i].window);
	free(r->keys);
	free(r->lost);
	r->keys = NULL;
	r->lost = NULL;
	r->n_keys = 0;
	r->n_lost_listed = 0;
}
