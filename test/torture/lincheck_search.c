/* lincheck_search.c — the search for a linearization of one key: Wing & Gong, Lowe's just-in-time.
 */
#include "test/torture/lincheck_search.h"

#include <stdlib.h>
#include <string.h>

/*
 * How the search works (docs/checker.md has the long version, with the arguments)
 * -------------------------------------------------------------------------------
 * Non-info lops are numbered by invocation (0..m-1), info lops follow (m..n-1), also by
 * invocation.
 *
 * Just-in-time linearization (Lowe): the search walks the completions of the non-info lops in
 * time order. At the completion of R (not yet linearized), R must take effect now, possibly
 * after some other operations already invoked and not yet linearized ("active"): the search
 * picks, depth first, a chain of active operations ending with R that the model accepts,
 * trying R alone first. A configuration is (set of linearized lops, register value); the
 * position in the completion order is a function of the set.
 *
 * Cache (Wing & Gong, Lowe): explored configurations are remembered. Reaching one again cannot
 * succeed (the earlier visit failed: it cannot be on the current path, whose set only grows).
 * It is keyed by the non-info part of the set (compactly: everything below `lo` plus a bit
 * window) and the value, and holds the info parts seen with it: a configuration whose info part
 * is a superset of a remembered one is dominated (an info op left out may still be used, or
 * never) and pruned too.
 *
 * Info operations are where naive searches explode: each stays active to the end and could be
 * slotted in anywhere. Three reductions, each of which keeps some linearization if one exists:
 *   - Obligation: a linearization can be rewritten so that every info op I is immediately
 *     followed by an op that *needs* it (accepted in the value I produced, not in the value
 *     before). So after an info op only such an op is tried; at a node without obligation only
 *     info ops that some active op could need are tried (the "observed" list), or all of them
 *     if an active failed cas is stuck on the current value.
 *   - Interchangeable info ops (same kind, from, to) are used in invocation order only.
 *   - Values that no op reads or compares with are indistinguishable: the cache compares them
 *     as one value ("canonical" values), and info ops producing them form one class.
 *
 * Look-ahead (optional): linearizing an op that changes the value is refused if some ok read
 * or cas still needs the current value and nothing left can produce it again.
 *
 * The search is iterative (an explicit stack of frames, each enough to undo one step). The
 * active lops are doubly linked lists whose unlink/relink/append follow the stack (LIFO).
 */

#define NONE	 UINT32_MAX
#define TIME_INF INT64_MAX
/* Initial sizes; everything grows by doubling. */
#define INITIAL_TABLE_SLOTS 1024u
#define INITIAL_STACK	    256u
#define ARENA_CHUNK_SIZE    (1u << 20)

/* Enough to undo one step of the search and to resume the parent's candidate iteration. */
struct frame {
	uint32_t op;
	uint32_t state, pos, oblig, lo, hi, next_ni, next_inf, next_a;
	uint8_t phase;
	bool failcas_here;
};

/* Cache: one group per (value, non-info part of the set), holding the info parts seen with it. */
struct cinfo {
	struct cinfo *next;
	uint64_t mask; /* bit (id % 64) of every id: a quick subset test */
	uint64_t n;    /* ids in ids[] */
	uint32_t ids[];
};

struct cgroup {
	uint64_t hash;
	struct cinfo *sets;
	uint64_t nwords;
	uint64_t w[];
};

struct chunk {
	struct chunk *next;
	size_t used, size;
	uint64_t data[];
};

/* Candidate iteration phases at a node: R itself, other active non-info, active info. */
enum { PHASE_R, PHASE_NI, PHASE_INFO, PHASE_DONE };

struct search {
	struct lincheck_lop *ops;
	uint32_t n, m;
	uint32_t *ret_order; /* m non-info lops by completion */
	/* Active lists. Non-info lops invoked by now and info lops invoked by now ("all info"):
	 * links next/prev, n + 2 of them, the sentinels being n and n + 1. Info lops whose value an
	 * op invoked by now reads or compares with ("observed info", the only ones worth trying
	 * unless a failed cas is stuck): links anext/aprev, sentinel n, activated in a_order. */
	uint32_t *next, *prev;
	uint32_t *anext, *aprev;
	uint32_t *a_order, *a_pos; /* observed info lops by activation; lop -> position or NONE */
	uint8_t *a_in;		   /* lop -> appended to the observed list (and not undone) */
	int64_t *a_time;	   /* lop -> activation time in the observed list */
	uint32_t n_a;
	uint8_t *lin;
	uint64_t *bits; /* linearized non-info lops, m bits (+ one spare word) */
	uint32_t *ilin; /* linearized info lops, sorted */
	uint32_t nilin;
	uint32_t *kinfo; /* the ones that matter for the cache key (see cache_visit()) */
	uint32_t nkinfo;
	uint64_t kinfo_mask;	 /* bit (id % 64) of each */
	uint32_t *info_cas_from; /* value -> info cas comparing with it */
	int64_t
	    *min_obs_call;   /* per value: earliest invocation of an op that reads / compares it */
	uint32_t *prev_same; /* info op -> previous info op with the same effect, or NONE */
	uint32_t *canon;     /* value -> itself, or `unread` (n_values + 1) if nobody reads it */
	uint32_t *need;	     /* value -> ok reads and ok cas of it not linearized yet */
	uint32_t *prod_left; /* value -> writes and cas producing it not linearized yet */
	bool has_failcas;
	bool lookahead;

	/* the current node */
	uint32_t state, pos, oblig, lo, hi, next_ni, next_inf, next_a;
	bool failcas_here;

	struct frame *stack;
	size_t depth, stack_cap;

	struct cgroup **table;
	size_t table_cap, table_n, n_entries;
	struct chunk *chunks;
	size_t arena_bytes;
	uint64_t *keybuf;
	size_t keybuf_cap;

	uint64_t steps, max_steps;
	size_t max_memory, fixed_bytes;
	enum lincheck_limit limit;

	/* the furthest point reached, for the report */
	int64_t maxpos;
	uint32_t possible[LINCHECK_MAX_POSSIBLE];
	size_t n_possible;
	bool possible_truncated;
	uint32_t path_op[LINCHECK_PATH_TAIL], path_state[LINCHECK_PATH_TAIL];
	size_t n_path;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	x ^= x >> 31;
	return x;
}

/* The register value an op leaves behind if it takes effect from state s; false if the model
 * refuses it in s. */
static bool step_model(const struct lincheck_lop *op, uint32_t s, uint32_t *out)
{
	switch (op->kind) {
	case LOP_READ:
		*out = s;
		return s == op->a;
	case LOP_WRITE:
		*out = op->a;
		return true;
	case LOP_CAS:
		*out = op->b;
		return s == op->a;
	default:
		*out = s;
		return s != op->a;
	}
}

/* ---- the cache of visited configurations --------------------------------------------------- */

static size_t search_memory(const struct search *s)
{
	return s->fixed_bytes + s->arena_bytes + s->table_cap * sizeof(*s->table) +
	       s->stack_cap * sizeof(*s->stack) + s->keybuf_cap * sizeof(*s->keybuf);
}

static uint64_t *arena_alloc(struct search *s, size_t words)
{
	struct chunk *c = s->chunks;
	if (c == NULL || c->size - c->used < words) {
		size_t size = ARENA_CHUNK_SIZE / sizeof(uint64_t);
		if (words > size)
			size = words;
		c = malloc(sizeof(*c) + size * sizeof(uint64_t));
		if (c == NULL)
			return NULL;
		c->next = s->chunks;
		c->size = size;
		c->used = 0;
		s->chunks = c;
		s->arena_bytes += sizeof(*c) + size * sizeof(uint64_t);
	}
	uint64_t *p = c->data + c->used;
	c->used += words;
	return p;
}

static int table_grow(struct search *s)
{
	size_t cap = s->table_cap == 0 ? INITIAL_TABLE_SLOTS : s->table_cap * 2;
	struct cgroup **t = calloc(cap, sizeof(*t));
	if (t == NULL)
		return HISTORY_ENOMEM;
	for (size_t i = 0; i < s->table_cap; i++) {
		struct cgroup *g = s->table[i];
		if (g == NULL)
			continue;
		size_t j = g->hash & (cap - 1);
		while (t[j] != NULL)
			j = (j + 1) & (cap - 1);
		t[j] = g;
	}
	free(s->table);
	s->table = t;
	s->table_cap = cap;
	return 0;
}

/*
 * Writes the canonical form of the non-info part of the current configuration into s->keybuf
 * and returns its length in words: the value and `lo` (every non-info lop below lo is
 * linearized, lo is not), then the bits of the non-info lops in [lo, hi) (none at or above hi
 * is linearized). The info part is s->ilin, kept sorted.
 */
static size_t canonical_key(struct search *s, int *rv)
{
	uint32_t lo = s->lo, hi = s->hi > s->lo ? s->hi : s->lo;
	size_t nbits = hi - lo;
	size_t nw = (nbits + 63) / 64;
	size_t total = 2 + nw;
	if (total > s->keybuf_cap) {
		size_t cap = s->keybuf_cap == 0 ? 64 : s->keybuf_cap;
		while (cap < total)
			cap *= 2;
		uint64_t *k = realloc(s->keybuf, cap * sizeof(*k));
		if (k == NULL) {
			*rv = HISTORY_ENOMEM;
			return 0;
		}
		s->keybuf = k;
		s->keybuf_cap = cap;
	}
	uint64_t *k = s->keybuf;
	k[0] = (uint64_t)s->canon[s->state] | ((uint64_t)lo << 32);
	k[1] = (uint64_t)nbits;
	for (size_t w = 0; w < nw; w++) {
		size_t o = lo + 64 * w;
		unsigned sh = (unsigned)(o & 63);
		uint64_t word = s->bits[o >> 6] >> sh;
		if (sh != 0)
			word |= s->bits[(o >> 6) + 1] << (64 - sh);
		if (w == nw - 1 && (nbits & 63) != 0)
			word &= (1ull << (nbits & 63)) - 1;
		k[2 + w] = word;
	}
	return total;
}

/*
 * The info part of the cache key: the linearized info lops, except (without failed cas) those
 * whose value nothing left can read or compare with. Such a lop can never be linearized again
 * in any continuation (only an op that needs its value may follow it), so whether it was is
 * irrelevant to the future; leaving it out lets more configurations be recognised as already
 * explored, and keeps the cache small when many info ops took effect.
 */
static void filter_info(struct search *s)
{
	s->nkinfo = 0;
	s->kinfo_mask = 0;
	for (uint32_t i = 0; i < s->nilin; i++) {
		uint32_t x = s->ilin[i];
		const struct lincheck_lop *l = &s->ops[x];
		uint32_t v = l->kind == LOP_CAS ? l->b : l->a;
		if (!s->has_failcas && s->need[v] == 0 && s->info_cas_from[v] == 0)
			continue;
		s->kinfo[s->nkinfo++] = x;
		s->kinfo_mask |= 1ull << (x & 63);
	}
}

/* Whether sorted a[0..na) is a subset of sorted b[0..nb). */
static bool sorted_subset(const uint32_t *a, size_t na, const uint32_t *b, size_t nb)
{
	size_t j = 0;
	for (size_t i = 0; i < na; i++) {
		while (j < nb && b[j] < a[i])
			j++;
		if (j == nb || b[j] != a[i])
			return false;
		j++;
	}
	return true;
}

static int remember_info(struct search *s, struct cgroup *g)
{
	struct cinfo *c = (struct cinfo *)arena_alloc(s, 3 + (s->nkinfo + 1) / 2);
	if (c == NULL)
		return HISTORY_ENOMEM;
	c->mask = s->kinfo_mask;
	c->n = s->nkinfo;
	memcpy(c->ids, s->kinfo, s->nkinfo * sizeof(*s->kinfo));
	c->next = g->sets;
	g->sets = c;
	s->n_entries++;
	return 0;
}

/*
 * 1 if the current configuration need not be explored, 0 if it is new (now remembered), or
 * HISTORY_ENOMEM. Need not: the same non-info set and value were reached before with a subset
 * of the current info ops linearized. That visit failed (it is not on the current path, whose
 * sets only grow), and it could do everything this one can: an info op that is not linearized
 * may still be, or never be. Also 1, with s->limit set, when the memory budget is spent.
 */
static int cache_visit(struct search *s)
{
	int rv = 0;
	filter_info(s);
	size_t nw = canonical_key(s, &rv);
	if (rv != 0)
		return rv;
	uint64_t h = 0x9e3779b97f4a7c15ull;
	for (size_t i = 0; i < nw; i++)
		h = mix64(h ^ s->keybuf[i]) + i;
	if ((s->table_n + 1) * 2 > s->table_cap && table_grow(s) != 0)
		return HISTORY_ENOMEM;
	size_t j = h & (s->table_cap - 1);
	struct cgroup *g;
	for (; (g = s->table[j]) != NULL; j = (j + 1) & (s->table_cap - 1))
		if (g->hash == h && g->nwords == nw &&
		    memcmp(g->w, s->keybuf, nw * sizeof(uint64_t)) == 0)
			break;
	if (g != NULL)
		for (const struct cinfo *c = g->sets; c != NULL; c = c->next)
			if ((c->mask & ~s->kinfo_mask) == 0 && c->n <= s->nkinfo &&
			    sorted_subset(c->ids, c->n, s->kinfo, s->nkinfo))
				return 1;
	if (search_memory(s) > s->max_memory) {
		s->limit = LINCHECK_LIMIT_MEMORY;
		return 1;
	}
	if (g == NULL) {
		g = (struct cgroup *)arena_alloc(s, 3 + nw);
		if (g == NULL)
			return HISTORY_ENOMEM;
		g->hash = h;
		g->sets = NULL;
		g->nwords = nw;
		memcpy(g->w, s->keybuf, nw * sizeof(uint64_t));
		s->table[j] = g;
		s->table_n++;
	}
	return remember_info(s, g);
}

/* ---- the active lists ---------------------------------------------------------------------- */

static void dl_unlink(uint32_t *next, uint32_t *prev, uint32_t x)
{
	next[prev[x]] = next[x];
	prev[next[x]] = prev[x];
}

/* Undoes dl_unlink(x); valid only in LIFO order. */
static void dl_relink(uint32_t *next, uint32_t *prev, uint32_t x)
{
	next[prev[x]] = x;
	prev[next[x]] = x;
}

static void dl_append(uint32_t *next, uint32_t *prev, uint32_t sentinel, uint32_t x)
{
	prev[x] = prev[sentinel];
	next[x] = sentinel;
	next[prev[sentinel]] = x;
	prev[sentinel] = x;
}

/* Makes active every lop invoked at or before t (invocations at the same time as a completion
 * count as concurrent with it), and every observed info lop whose time has come. */
static void activate_until(struct search *s, int64_t t)
{
	while (s->next_ni < s->m && s->ops[s->next_ni].call <= t)
		dl_append(s->next, s->prev, s->n, s->next_ni++);
	while (s->next_inf < s->n && s->ops[s->next_inf].call <= t)
		dl_append(s->next, s->prev, s->n + 1, s->next_inf++);
	for (; s->next_a < s->n_a && s->a_time[s->a_order[s->next_a]] <= t; s->next_a++) {
		uint32_t x = s->a_order[s->next_a];
		/* It may have been used already, through the list of all info lops. */
		if (!s->lin[x]) {
			dl_append(s->anext, s->aprev, s->n, x);
			s->a_in[x] = 1;
		}
	}
}

/* ---- one step down and up ------------------------------------------------------------------ */

static void ilin_insert(struct search *s, uint32_t x)
{
	uint32_t i = s->nilin;
	while (i > 0 && s->ilin[i - 1] > x) {
		s->ilin[i] = s->ilin[i - 1];
		i--;
	}
	s->ilin[i] = x;
	s->nilin++;
}

static void ilin_remove(struct search *s, uint32_t x)
{
	uint32_t i = 0;
	while (s->ilin[i] != x)
		i++;
	memmove(&s->ilin[i], &s->ilin[i + 1], (s->nilin - i - 1) * sizeof(*s->ilin));
	s->nilin--;
}

static int descend(struct search *s, uint32_t x, uint32_t next_state, uint8_t phase)
{
	if (s->depth == s->stack_cap) {
		size_t cap = s->stack_cap == 0 ? INITIAL_STACK : s->stack_cap * 2;
		struct frame *st = realloc(s->stack, cap * sizeof(*st));
		if (st == NULL)
			return HISTORY_ENOMEM;
		s->stack = st;
		s->stack_cap = cap;
	}
	s->stack[s->depth++] = (struct frame){
	    .op = x,
	    .state = s->state,
	    .pos = s->pos,
	    .oblig = s->oblig,
	    .lo = s->lo,
	    .hi = s->hi,
	    .next_ni = s->next_ni,
	    .next_inf = s->next_inf,
	    .next_a = s->next_a,
	    .phase = phase,
	    .failcas_here = s->failcas_here,
	};
	dl_unlink(s->next, s->prev, x);
	if (s->a_in[x])
		dl_unlink(s->anext, s->aprev, x);
	s->lin[x] = 1;
	if (x < s->m) {
		s->bits[x >> 6] |= 1ull << (x & 63);
		if (x + 1 > s->hi)
			s->hi = x + 1;
		while (s->lo < s->m && s->lin[s->lo])
			s->lo++;
	} else {
		ilin_insert(s, x);
	}
	const struct lincheck_lop *op = &s->ops[x];
	if (!op->info && (op->kind == LOP_READ || op->kind == LOP_CAS))
		s->need[op->a]--;
	if (op->kind == LOP_WRITE || op->kind == LOP_CAS)
		s->prod_left[op->kind == LOP_WRITE ? op->a : op->b]--;
	s->oblig = op->info ? s->state : NONE;
	s->state = next_state;
	if (x == s->ret_order[s->pos]) {
		do
			s->pos++;
		while (s->pos < s->m && s->lin[s->ret_order[s->pos]]);
		if (s->pos < s->m)
			activate_until(s, s->ops[s->ret_order[s->pos]].ret);
	}
	return 0;
}

/* Undoes the last descend(); returns the op it had linearized and the parent's phase. */
static uint32_t ascend(struct search *s, uint8_t *phase)
{
	const struct frame *f = &s->stack[--s->depth];
	uint32_t x = f->op;
	while (s->next_a > f->next_a) {
		uint32_t y = s->a_order[--s->next_a];
		if (s->a_in[y]) {
			dl_unlink(s->anext, s->aprev, y);
			s->a_in[y] = 0;
		}
	}
	while (s->next_inf > f->next_inf)
		dl_unlink(s->next, s->prev, --s->next_inf);
	while (s->next_ni > f->next_ni)
		dl_unlink(s->next, s->prev, --s->next_ni);
	if (s->a_in[x])
		dl_relink(s->anext, s->aprev, x);
	dl_relink(s->next, s->prev, x);
	const struct lincheck_lop *op = &s->ops[x];
	if (!op->info && (op->kind == LOP_READ || op->kind == LOP_CAS))
		s->need[op->a]++;
	if (op->kind == LOP_WRITE || op->kind == LOP_CAS)
		s->prod_left[op->kind == LOP_WRITE ? op->a : op->b]++;
	s->lin[x] = 0;
	if (x < s->m)
		s->bits[x >> 6] &= ~(1ull << (x & 63));
	else
		ilin_remove(s, x);
	s->state = f->state;
	s->pos = f->pos;
	s->oblig = f->oblig;
	s->lo = f->lo;
	s->hi = f->hi;
	s->failcas_here = f->failcas_here;
	*phase = f->phase;
	return x;
}

/* ---- candidates ---------------------------------------------------------------------------- */

/*
 * The next candidate after *cur in the node's order: R, the other active non-info lops, then
 * info lops: only the observed ones at a node without obligation where no failed cas is stuck
 * (no other info lop could pass acceptable()), else all of them.
 */
static uint32_t next_candidate(const struct search *s, uint8_t *phase, uint32_t *cur)
{
	uint32_t r = s->ret_order[s->pos];
	bool observed_only = s->oblig == NONE && !s->failcas_here;
	const uint32_t *inext = observed_only ? s->anext : s->next;
	uint32_t isent = observed_only ? s->n : s->n + 1;
	for (;;) {
		if (*phase == PHASE_R) {
			if (*cur == NONE) {
				*cur = r;
				return r;
			}
			*phase = PHASE_NI;
			*cur = s->n;
		} else if (*phase == PHASE_NI) {
			uint32_t x = s->next[*cur];
			if (x == r)
				x = s->next[x];
			if (x != s->n) {
				*cur = x;
				return x;
			}
			*phase = PHASE_INFO;
			*cur = isent;
		} else if (*phase == PHASE_INFO) {
			uint32_t x = inext[*cur];
			if (x != isent) {
				*cur = x;
				return x;
			}
			*phase = PHASE_DONE;
		} else {
			return NONE;
		}
	}
}

/*
 * Look-ahead: whether linearizing op (which changes the value) leaves behind an ok read or cas
 * that needs the current value while nothing left can produce that value again. No completion
 * of such a configuration exists, however far the search would go before noticing.
 */
static bool strands_reader(const struct search *s, const struct lincheck_lop *op)
{
	uint32_t v = s->state;
	uint32_t needers = s->need[v];
	if (!op->info && op->kind == LOP_CAS && op->a == v)
		needers--; /* op itself is one of them */
	return needers > 0 && s->prod_left[v] == 0;
}

/* Whether linearizing x now is worth trying; *next_state receives the value after it. */
static bool acceptable(const struct search *s, uint32_t x, uint32_t *next_state)
{
	if (s->prev_same[x] != NONE && !s->lin[s->prev_same[x]])
		return false; /* an earlier interchangeable op is still unused: use it instead */
	const struct lincheck_lop *op = &s->ops[x];
	if (!step_model(op, s->state, next_state))
		return false;
	if (op->info && s->canon[*next_state] == s->canon[s->state])
		return false; /* changes nothing that matters: leaving it out is as good */
	if (s->lookahead && *next_state != s->state && strands_reader(s, op))
		return false;
	if (s->oblig != NONE) {
		uint32_t ignored;
		return !step_model(op, s->oblig, &ignored); /* must need the info op before it */
	}
	if (op->info)
		return s->min_obs_call[*next_state] <= s->ops[s->ret_order[s->pos]].ret ||
		       s->failcas_here;
	return true;
}

/* Whether an active failed cas is stuck on the current value (so an info write could help). */
static bool failcas_stuck(const struct search *s)
{
	if (!s->has_failcas || s->next[s->n + 1] == s->n + 1)
		return false;
	for (uint32_t x = s->next[s->n]; x != s->n; x = s->next[x])
		if (s->ops[x].kind == LOP_FAILCAS && s->ops[x].a == s->state)
			return true;
	return false;
}

/* Remembers how far the search got and what the register could hold there. */
static void note_progress(struct search *s)
{
	if ((int64_t)s->pos > s->maxpos) {
		s->maxpos = s->pos;
		s->n_possible = 0;
		s->possible_truncated = false;
		size_t k = s->depth < LINCHECK_PATH_TAIL ? s->depth : LINCHECK_PATH_TAIL;
		for (size_t i = 0; i < k; i++) {
			size_t d = s->depth - k + i;
			s->path_op[i] = s->stack[d].op;
			s->path_state[i] = d + 1 < s->depth ? s->stack[d + 1].state : s->state;
		}
		s->n_path = k;
	}
	if ((int64_t)s->pos != s->maxpos)
		return;
	for (size_t i = 0; i < s->n_possible; i++)
		if (s->possible[i] == s->state)
			return;
	if (s->n_possible < LINCHECK_MAX_POSSIBLE)
		s->possible[s->n_possible++] = s->state;
	else
		s->possible_truncated = true;
}

/* Runs the search. Returns an outcome (>= 0) or HISTORY_ENOMEM. */
static int search_run(struct search *s)
{
	if (s->m == 0)
		return LINCHECK_LINEARIZABLE;
	activate_until(s, s->ops[s->ret_order[0]].ret);
	bool enter = true;
	uint8_t phase = PHASE_DONE;
	uint32_t cur = NONE;
	for (;;) {
		if (enter) {
			enter = false;
			if (++s->steps > s->max_steps) {
				s->limit = LINCHECK_LIMIT_STEPS;
				return LINCHECK_UNKNOWN;
			}
			note_progress(s);
			phase = PHASE_R;
			cur = NONE;
			if (s->oblig == NONE) {
				s->failcas_here = failcas_stuck(s);
				int rv = cache_visit(s);
				if (rv < 0)
					return rv;
				if (s->limit != LINCHECK_LIMIT_NONE)
					return LINCHECK_UNKNOWN;
				if (rv == 1)
					phase = PHASE_DONE;
			}
		}
		uint32_t x, next_state = 0;
		while ((x = next_candidate(s, &phase, &cur)) != NONE)
			if (acceptable(s, x, &next_state))
				break;
		if (x != NONE) {
			int rv = descend(s, x, next_state, phase);
			if (rv != 0)
				return rv;
			if (s->pos == s->m)
				return LINCHECK_LINEARIZABLE;
			enter = true;
			continue;
		}
		if (s->depth == 0)
			return LINCHECK_NOT_LINEARIZABLE;
		cur = ascend(s, &phase);
	}
}

/* ---- per key ------------------------------------------------------------------------------- */

static int cmp_call(const void *a, const void *b)
{
	const struct lincheck_lop *x = a, *y = b;
	if (x->info != y->info)
		return x->info ? 1 : -1;
	if (x->call != y->call)
		return x->call < y->call ? -1 : 1;
	return x->hidx < y->hidx ? -1 : x->hidx > y->hidx;
}

struct ret_key {
	int64_t ret, call;
	uint32_t idx;
};

static int cmp_ret(const void *a, const void *b)
{
	const struct ret_key *x = a, *y = b;
	if (x->ret != y->ret)
		return x->ret < y->ret ? -1 : 1;
	if (x->call != y->call)
		return x->call < y->call ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

static void search_free(struct search *s)
{
	free(s->ops);
	free(s->ret_order);
	free(s->next);
	free(s->prev);
	free(s->anext);
	free(s->aprev);
	free(s->a_order);
	free(s->a_pos);
	free(s->a_in);
	free(s->a_time);
	free(s->lin);
	free(s->bits);
	free(s->ilin);
	free(s->kinfo);
	free(s->info_cas_from);
	free(s->min_obs_call);
	free(s->prev_same);
	free(s->canon);
	free(s->need);
	free(s->prod_left);
	free(s->stack);
	free(s->table);
	free(s->keybuf);
	struct chunk *c = s->chunks;
	while (c != NULL) {
		struct chunk *next = c->next;
		free(c);
		c = next;
	}
}

/*
 * Values that no operation reads or compares with ("unread" values) are indistinguishable to
 * the model: every operation of the key is accepted or refused alike whichever of them the
 * register holds. canon[] maps them all to one value, `unread` (n_values + 1); the cache and
 * the no-op test compare canonical values, so configurations that differ only by which unread
 * value the register holds are one. (The search itself keeps the real values, for reports.)
 *
 * Then drops info ops that can never be needed: without failed cas, an info op is only ever
 * linearized right before an op that reads or compares the value it produces; if no op does,
 * it would only ever be left out. Also drops info cas that change nothing.
 */
static int canonicalize(struct search *s, uint32_t n_values)
{
	uint32_t unread = n_values + 1;
	s->canon = calloc(n_values + 2, sizeof(*s->canon));
	if (s->canon == NULL)
		return HISTORY_ENOMEM;
	for (uint32_t v = 0; v <= unread; v++)
		s->canon[v] = unread;
	for (uint32_t i = 0; i < s->n; i++)
		if (s->ops[i].kind != LOP_WRITE)
			s->canon[s->ops[i].a] = s->ops[i].a;
	for (uint32_t v = 0; v <= unread; v++)
		s->min_obs_call[v] = TIME_INF;
	for (uint32_t i = 0; i < s->n; i++) {
		const struct lincheck_lop *l = &s->ops[i];
		if ((l->kind == LOP_READ || l->kind == LOP_CAS) && l->call < s->min_obs_call[l->a])
			s->min_obs_call[l->a] = l->call;
	}
	uint32_t out = 0;
	for (uint32_t i = 0; i < s->n; i++) {
		const struct lincheck_lop *l = &s->ops[i];
		if (l->info) {
			uint32_t produced = l->kind == LOP_CAS ? l->b : l->a;
			if (l->kind == LOP_CAS && s->canon[l->a] == s->canon[l->b])
				continue;
			if (!s->has_failcas && s->min_obs_call[produced] == TIME_INF)
				continue;
		}
		s->ops[out++] = *l;
	}
	s->n = out;
	s->need = calloc(n_values + 2, sizeof(*s->need));
	s->prod_left = calloc(n_values + 2, sizeof(*s->prod_left));
	s->info_cas_from = calloc(n_values + 2, sizeof(*s->info_cas_from));
	if (s->need == NULL || s->prod_left == NULL || s->info_cas_from == NULL)
		return HISTORY_ENOMEM;
	for (uint32_t i = 0; i < s->n; i++) {
		const struct lincheck_lop *l = &s->ops[i];
		if (!l->info && (l->kind == LOP_READ || l->kind == LOP_CAS))
			s->need[l->a]++;
		if (l->kind == LOP_WRITE || l->kind == LOP_CAS)
			s->prod_left[l->kind == LOP_WRITE ? l->a : l->b]++;
		if (l->info && l->kind == LOP_CAS)
			s->info_cas_from[l->a]++;
	}
	return 0;
}

/*
 * Info ops with the same effect (kind, from, to) are interchangeable once invoked, since they
 * stay available to the end: the search only ever uses the earliest one not yet used. prev_same
 * links each info op to the previous one (by invocation) with the same effect.
 */
static int link_same_effect(struct search *s)
{
	uint32_t k = s->n - s->m;
	size_t cap = 16;
	while (cap < 2 * (size_t)k)
		cap *= 2;
	uint64_t *keys = malloc(cap * sizeof(*keys));
	uint32_t *last = malloc(cap * sizeof(*last));
	s->prev_same = malloc((s->n + 1) * sizeof(*s->prev_same));
	if (keys == NULL || last == NULL || s->prev_same == NULL) {
		free(keys);
		free(last);
		return HISTORY_ENOMEM;
	}
	for (size_t j = 0; j < cap; j++)
		keys[j] = UINT64_MAX;
	for (uint32_t i = 0; i < s->n; i++) {
		s->prev_same[i] = NONE;
		if (i < s->m)
			continue;
		const struct lincheck_lop *l = &s->ops[i];
		uint64_t key =
		    ((uint64_t)l->kind << 62) | ((uint64_t)s->canon[l->a] << 31) | s->canon[l->b];
		size_t j = mix64(key) & (cap - 1);
		while (keys[j] != UINT64_MAX && keys[j] != key)
			j = (j + 1) & (cap - 1);
		if (keys[j] == key)
			s->prev_same[i] = last[j];
		keys[j] = key;
		last[j] = i;
	}
	free(keys);
	free(last);
	return 0;
}

struct act_key {
	int64_t time;
	uint32_t idx;
};

static int cmp_act(const void *a, const void *b)
{
	const struct act_key *x = a, *y = b;
	if (x->time != y->time)
		return x->time < y->time ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Orders the info lops whose value some op reads or compares with by the time they become
 * worth trying: their invocation, or the first invocation of such an op if later. */
static int init_observed(struct search *s)
{
	uint32_t n = s->n, m = s->m;
	s->anext = malloc((n + 1) * sizeof(*s->anext));
	s->aprev = malloc((n + 1) * sizeof(*s->aprev));
	s->a_pos = malloc((n + 1) * sizeof(*s->a_pos));
	s->a_in = calloc(n + 1, sizeof(*s->a_in));
	s->a_time = malloc((n + 1) * sizeof(*s->a_time));
	s->a_order = malloc((n - m + 1) * sizeof(*s->a_order));
	struct act_key *ak = malloc((n - m + 1) * sizeof(*ak));
	if (s->anext == NULL || s->aprev == NULL || s->a_pos == NULL || s->a_in == NULL ||
	    s->a_time == NULL || s->a_order == NULL || ak == NULL) {
		free(ak);
		return HISTORY_ENOMEM;
	}
	uint32_t na = 0;
	for (uint32_t x = 0; x < n; x++) {
		s->a_pos[x] = NONE;
		if (x < m)
			continue;
		const struct lincheck_lop *l = &s->ops[x];
		int64_t t = s->min_obs_call[l->kind == LOP_CAS ? l->b : l->a];
		if (t == TIME_INF)
			continue;
		s->a_time[x] = t > l->call ? t : l->call;
		ak[na++] = (struct act_key){.time = s->a_time[x], .idx = x};
	}
	qsort(ak, na, sizeof(*ak), cmp_act);
	for (uint32_t i = 0; i < na; i++) {
		s->a_order[i] = ak[i].idx;
		s->a_pos[ak[i].idx] = i;
	}
	free(ak);
	s->n_a = na;
	s->next_a = 0;
	s->anext[n] = s->aprev[n] = n;
	return 0;
}

static int search_init(struct search *s, const struct lincheck_search_params *p, uint32_t n_values)
{
	uint32_t n = s->n;
	qsort(s->ops, n, sizeof(*s->ops), cmp_call);
	uint32_t m = 0;
	while (m < n && !s->ops[m].info)
		m++;
	s->m = m;
	s->ret_order = malloc((m > 0 ? m : 1) * sizeof(*s->ret_order));
	s->next = malloc((n + 2) * sizeof(*s->next));
	s->prev = malloc((n + 2) * sizeof(*s->prev));
	s->lin = calloc(n > 0 ? n : 1, 1);
	s->bits = calloc(m / 64 + 2, sizeof(*s->bits));
	s->ilin = malloc((n - m + 1) * sizeof(*s->ilin));
	s->kinfo = malloc((n - m + 1) * sizeof(*s->kinfo));
	struct ret_key *rk = malloc((m > 0 ? m : 1) * sizeof(*rk));
	if (s->ret_order == NULL || s->next == NULL || s->prev == NULL || s->lin == NULL ||
	    s->bits == NULL || s->ilin == NULL || s->kinfo == NULL || rk == NULL) {
		free(rk);
		return HISTORY_ENOMEM;
	}
	for (uint32_t i = 0; i < m; i++)
		rk[i] = (struct ret_key){.ret = s->ops[i].ret, .call = s->ops[i].call, .idx = i};
	qsort(rk, m, sizeof(*rk), cmp_ret);
	for (uint32_t i = 0; i < m; i++)
		s->ret_order[i] = rk[i].idx;
	free(rk);
	int rv = link_same_effect(s);
	if (rv == 0)
		rv = init_observed(s);
	if (rv != 0)
		return rv;
	for (uint32_t sent = n; sent <= n + 1; sent++)
		s->next[sent] = s->prev[sent] = sent;
	s->state = 0;
	s->oblig = NONE;
	s->next_ni = 0;
	s->next_inf = m;
	s->maxpos = -1;
	s->max_steps = p->max_steps;
	s->max_memory = p->max_memory;
	s->lookahead = p->lookahead;
	s->fixed_bytes = (size_t)n * (sizeof(struct lincheck_lop) + 9 * sizeof(uint32_t) + 9) +
			 (size_t)(n_values + 2) * (sizeof(int64_t) + 3 * sizeof(uint32_t)) +
			 (m / 64 + 2) * sizeof(uint64_t);
	return 0;
}

int lincheck_search_run(const struct lincheck_lop *ops, uint32_t n, uint32_t n_values,
			const struct lincheck_search_params *p, struct lincheck_search_result *r)
{
	struct search s;
	memset(&s, 0, sizeof(s));
	memset(r, 0, sizeof(*r));
	int rv = HISTORY_ENOMEM;
	s.ops = malloc((n > 0 ? n : 1) * sizeof(*s.ops));
	s.min_obs_call = malloc(((size_t)n_values + 2) * sizeof(*s.min_obs_call));
	if (s.ops == NULL || s.min_obs_call == NULL)
		goto out;
	memcpy(s.ops, ops, n * sizeof(*ops));
	s.n = n;
	for (uint32_t i = 0; i < n; i++)
		if (ops[i].kind == LOP_FAILCAS)
			s.has_failcas = true;
	rv = canonicalize(&s, n_values);
	if (rv == 0)
		rv = search_init(&s, p, n_values);
	if (rv != 0)
		goto out;
	r->n_lops = s.n;
	r->n_info = s.n - s.m;
	rv = search_run(&s);
	if (rv < 0)
		goto out;
	r->outcome = (enum lincheck_outcome)rv;
	rv = 0;
	r->steps = s.steps;
	r->cache_entries = s.n_entries;
	r->memory = search_memory(&s);
	r->limit = s.limit;
	if (r->outcome == LINCHECK_NOT_LINEARIZABLE) {
		r->stuck_hidx = s.ops[s.ret_order[s.maxpos]].hidx;
		memcpy(r->possible, s.possible, s.n_possible * sizeof(*s.possible));
		r->n_possible = s.n_possible;
		r->possible_truncated = s.possible_truncated;
		for (size_t i = 0; i < s.n_path; i++) {
			r->path_hidx[i] = s.ops[s.path_op[i]].hidx;
			r->path_value[i] = s.path_state[i];
		}
		r->n_path = s.n_path;
	}
out:
	search_free(&s);
	return rv;
}
