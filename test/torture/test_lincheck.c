/* test_lincheck.c — the linearizability checker accepts legal histories and rejects wrong ones. */
#include <check.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test/torture/history.h"
#include "test/torture/lincheck.h"

/* ---- building histories by hand -------------------------------------------------------------- */

static struct history hist;

static void setup(void)
{
	ck_assert_int_eq(history_init(&hist), 0);
}

static void teardown(void)
{
	history_free(&hist);
}

/* Adds one operation: its invocation at t0 and, unless type is HISTORY_INVOKE (pending), its
 * completion at t1. Returns its index. */
static size_t add_op(struct history *h, int64_t p, enum history_f f, enum history_type type,
		     const char *key, const char *value, const char *from, const char *to,
		     int64_t t0, int64_t t1)
{
	char err[HISTORY_ERRMSG_SIZE] = "";
	size_t idx;
	struct history_event ev = {
	    .process = p, .type = HISTORY_INVOKE, .f = f, .key = key, .time = t0};
	if (f == HISTORY_WRITE) {
		ev.value = value;
		ev.has_value = true;
	}
	if (f == HISTORY_CAS) {
		ev.from = from;
		ev.to = to;
		ev.has_from = ev.has_to = true;
	}
	ck_assert_msg(history_add_event(h, &ev, &idx, err, sizeof(err)) == 0, "%s", err);
	if (type == HISTORY_INVOKE)
		return idx;
	struct history_event done = {.process = p, .type = type, .f = f, .key = key, .time = t1};
	if (f == HISTORY_READ && type == HISTORY_OK) {
		done.value = value;
		done.has_value = true;
	}
	size_t idx2;
	ck_assert_msg(history_add_event(h, &done, &idx2, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(idx, idx2);
	return idx;
}

static size_t W(int64_t p, const char *k, const char *v, int64_t t0, int64_t t1)
{
	return add_op(&hist, p, HISTORY_WRITE, HISTORY_OK, k, v, NULL, NULL, t0, t1);
}

static size_t W_info(int64_t p, const char *k, const char *v, int64_t t0, int64_t t1)
{
	return add_op(&hist, p, HISTORY_WRITE, HISTORY_INFO, k, v, NULL, NULL, t0, t1);
}

static size_t W_fail(int64_t p, const char *k, const char *v, int64_t t0, int64_t t1)
{
	return add_op(&hist, p, HISTORY_WRITE, HISTORY_FAIL, k, v, NULL, NULL, t0, t1);
}

static size_t R(int64_t p, const char *k, const char *v, int64_t t0, int64_t t1)
{
	return add_op(&hist, p, HISTORY_READ, HISTORY_OK, k, v, NULL, NULL, t0, t1);
}

static size_t CAS(int64_t p, const char *k, const char *from, const char *to, int64_t t0,
		  int64_t t1)
{
	return add_op(&hist, p, HISTORY_CAS, HISTORY_OK, k, NULL, from, to, t0, t1);
}

static size_t CAS_fail(int64_t p, const char *k, const char *from, const char *to, int64_t t0,
		       int64_t t1)
{
	return add_op(&hist, p, HISTORY_CAS, HISTORY_FAIL, k, NULL, from, to, t0, t1);
}

static size_t CAS_info(int64_t p, const char *k, const char *from, const char *to, int64_t t0,
		       int64_t t1)
{
	return add_op(&hist, p, HISTORY_CAS, HISTORY_INFO, k, NULL, from, to, t0, t1);
}

static size_t DEL(int64_t p, const char *k, int64_t t0, int64_t t1)
{
	return add_op(&hist, p, HISTORY_DELETE, HISTORY_OK, k, NULL, NULL, NULL, t0, t1);
}

static enum lincheck_outcome check_opts(const struct lincheck_options *o,
					struct lincheck_report *keep)
{
	struct lincheck_report r;
	char err[HISTORY_ERRMSG_SIZE] = "";
	int rv = lincheck_check(&hist, o, &r, err, sizeof(err));
	ck_assert_msg(rv == 0, "lincheck_check: %d %s", rv, err);
	enum lincheck_outcome out = r.outcome;
	if (getenv("CAIRN_LINCHECK_VERBOSE") != NULL)
		lincheck_print(stderr, &hist, &r);
	if (keep != NULL)
		*keep = r;
	else
		lincheck_report_free(&r);
	return out;
}

static enum lincheck_outcome check(void)
{
	return check_opts(NULL, NULL);
}

static const struct lincheck_key *find_key(const struct lincheck_report *r, const char *key)
{
	for (size_t i = 0; i < r->n_keys; i++)
		if (strcmp(r->keys[i].key, key) == 0)
			return &r->keys[i];
	ck_abort_msg("key %s not in report", key);
	return NULL;
}

#define ASSERT_LINEARIZABLE()	  ck_assert_int_eq(check(), LINCHECK_LINEARIZABLE)
#define ASSERT_NOT_LINEARIZABLE() ck_assert_int_eq(check(), LINCHECK_NOT_LINEARIZABLE)

/* ---- legal histories ------------------------------------------------------------------------- */

START_TEST(test_empty_history)
{
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_sequential)
{
	R(1, "k", NULL, 0, 10);
	W(1, "k", "v1", 20, 30);
	R(2, "k", "v1", 40, 50);
	CAS(1, "k", "v1", "v2", 60, 70);
	R(2, "k", "v2", 80, 90);
	CAS_fail(1, "k", "v1", "v3", 100, 110);
	DEL(2, "k", 120, 130);
	R(1, "k", NULL, 140, 150);
	CAS(1, "k", NULL, "v4", 160, 170); /* create if absent */
	R(2, "k", "v4", 180, 190);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_concurrent_writes_either_order)
{
	/* Two overlapping writes: a later read may see either one. */
	W(1, "a", "x", 0, 100);
	W(2, "a", "y", 50, 150);
	R(3, "a", "x", 200, 210);
	W(1, "b", "x", 0, 100);
	W(2, "b", "y", 50, 150);
	R(3, "b", "y", 200, 210);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_read_concurrent_with_write_sees_old_or_new)
{
	W(1, "a", "old", 0, 10);
	W(1, "a", "new", 20, 100);
	R(2, "a", "old", 30, 40);
	R(3, "a", "new", 50, 60);
	R(2, "a", "new", 70, 80); /* once a read saw new, later reads may not see old... */
	R(4, "a", "new", 110, 120);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_read_returns_equal_time_boundaries)
{
	/* A read invoked at the very nanosecond a write completed counts as concurrent. */
	W(1, "a", "v1", 0, 10);
	W(1, "a", "v2", 20, 30);
	R(2, "a", "v1", 30, 40);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_info_write_appears_later)
{
	/* The write timed out, yet took effect long after its info completion. */
	W_info(1, "a", "late", 0, 10);
	R(2, "a", NULL, 20, 30);
	R(2, "a", NULL, 40, 50);
	R(3, "a", "late", 1000, 1010);
	R(2, "a", "late", 2000, 2010);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_info_write_never_appears)
{
	W(1, "a", "v1", 0, 10);
	W_info(2, "a", "lost-in-flight", 20, 30);
	R(3, "a", "v1", 40, 50);
	W(1, "a", "v2", 60, 70);
	R(3, "a", "v2", 80, 90);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_pending_write_counts_as_info)
{
	W(1, "a", "v1", 0, 10);
	add_op(&hist, 2, HISTORY_WRITE, HISTORY_INVOKE, "a", "v2", NULL, NULL, 20, 0);
	R(3, "a", "v1", 30, 40);
	R(3, "a", "v2", 50, 60);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_info_cas_takes_effect_or_not)
{
	W(1, "a", "v1", 0, 10);
	CAS_info(2, "a", "v1", "v2", 20, 30);
	R(3, "a", "v1", 40, 50);
	R(3, "a", "v2", 60, 70);
	W(1, "b", "v1", 0, 10);
	CAS_info(2, "b", "v1", "v2", 20, 30);
	R(3, "b", "v1", 40, 50);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_failed_cas)
{
	W(1, "a", "v1", 0, 10);
	CAS_fail(2, "a", "v0", "v2", 20, 30);
	R(3, "a", "v1", 40, 50);
	/* A cas that failed because a concurrent write changed the value first. */
	W(1, "b", "v1", 0, 10);
	W(2, "b", "v2", 20, 100);
	CAS_fail(3, "b", "v1", "v3", 30, 40);
	R(3, "b", "v2", 110, 120);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_failed_cas_explained_by_info_write)
{
	/* The compare failed although v1 was current: only the info write can explain it. */
	W(1, "a", "v1", 0, 10);
	W_info(2, "a", "v9", 20, 30);
	CAS_fail(3, "a", "v1", "v3", 40, 50);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_failed_cas_with_error_imposes_nothing)
{
	W(1, "a", "v1", 0, 10);
	/* A cas refused before it was sent: "fail" with an error text. */
	struct history_event inv = {.process = 2,
				    .type = HISTORY_INVOKE,
				    .f = HISTORY_CAS,
				    .key = "a",
				    .from = "v1",
				    .to = "v2",
				    .has_from = true,
				    .has_to = true,
				    .time = 20};
	struct history_event done = {.process = 2,
				     .type = HISTORY_FAIL,
				     .f = HISTORY_CAS,
				     .key = "a",
				     .error = "no leader",
				     .time = 30};
	ck_assert_int_eq(history_add_event(&hist, &inv, NULL, NULL, 0), 0);
	ck_assert_int_eq(history_add_event(&hist, &done, NULL, NULL, 0), 0);
	R(3, "a", "v1", 40, 50);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_failed_write_and_failed_read_are_dropped)
{
	W(1, "a", "v1", 0, 10);
	W_fail(2, "a", "never", 20, 30);
	add_op(&hist, 3, HISTORY_READ, HISTORY_INFO, "a", NULL, NULL, NULL, 40, 50);
	add_op(&hist, 3, HISTORY_READ, HISTORY_FAIL, "a", NULL, NULL, NULL, 60, 70);
	R(3, "a", "v1", 80, 90);
	ASSERT_LINEARIZABLE();
}
END_TEST

START_TEST(test_many_keys)
{
	char key[32], v[32];
	for (int k = 0; k < 40; k++) {
		snprintf(key, sizeof(key), "key-%d", k);
		for (int i = 0; i < 20; i++) {
			snprintf(v, sizeof(v), "v%d", i);
			int64_t t = (int64_t)i * 100;
			W(k, key, v, t, t + 10);
			R(1000 + k, key, v, t + 20, t + 30);
		}
	}
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_LINEARIZABLE);
	ck_assert_uint_eq(r.n_keys, 40);
	ck_assert_uint_eq(r.n_ops, 40 * 40);
	ck_assert_uint_eq(r.n_ok, 40 * 40);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_same_value_written_twice)
{
	W(1, "a", "x", 0, 10);
	W(1, "a", "y", 20, 30);
	W(1, "a", "x", 40, 50);
	R(2, "a", "x", 60, 70);
	ASSERT_LINEARIZABLE();
}
END_TEST

/* ---- histories that must fail ---------------------------------------------------------------- */

START_TEST(test_stale_read)
{
	W(1, "k", "v1", 0, 10);
	W(1, "k", "v2", 20, 30);
	size_t bad = R(2, "k", "v1", 40, 50);
	W(1, "other", "x", 0, 10);
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_NOT_LINEARIZABLE);
	ck_assert_uint_eq(r.n_violations, 1);
	const struct lincheck_key *k = find_key(&r, "k");
	ck_assert_int_eq(k->outcome, LINCHECK_NOT_LINEARIZABLE);
	ck_assert_uint_eq(k->stuck_op, bad);
	ck_assert_uint_eq(k->prefix_ops, 3);
	ck_assert_uint_eq(k->n_possible, 1);
	ck_assert_str_eq(k->possible[0], "v2");
	ck_assert_uint_ge(k->n_window, 3);
	ck_assert_int_eq(find_key(&r, "other")->outcome, LINCHECK_LINEARIZABLE);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_lost_write)
{
	W(1, "k", "v1", 0, 10);
	size_t lost = W(2, "k", "v2", 20, 30);
	R(3, "k", "v2", 40, 50);
	size_t final = R(3, "k", "v1", 1000, 1010); /* after healing: the acknowledged v2 is gone */
	struct lincheck_options o = {.final_reads = true};
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(&o, &r), LINCHECK_NOT_LINEARIZABLE);
	ck_assert_uint_eq(find_key(&r, "k")->stuck_op, final);
	ck_assert(r.final_reads_checked);
	ck_assert_uint_eq(r.n_lost, 1);
	ck_assert_uint_eq(r.lost[0].write_op, lost);
	ck_assert_uint_eq(r.lost[0].final_read_op, final);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_lost_write_never_read)
{
	W(1, "k", "v1", 0, 10);
	W(2, "k", "v2", 20, 30);
	R(3, "k", "v1", 1000, 1010);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_final_reads_overwritten_is_fine)
{
	W(1, "k", "v1", 0, 10);
	W(2, "k", "v2", 5, 30);	      /* concurrent with v1: either may win */
	W_info(3, "k", "v3", 40, 50); /* may have overwritten v2 */
	R(3, "k", "v3", 1000, 1010);
	R(1, "k", "v3", 1000, 1020);
	struct lincheck_options o = {.final_reads = true};
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(&o, &r), LINCHECK_LINEARIZABLE);
	ck_assert_uint_eq(r.n_final_reads, 2);
	ck_assert_uint_eq(r.n_lost, 0);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_final_reads_required)
{
	W(1, "k", "v1", 0, 10);
	R(2, "k", "v1", 5, 20); /* concurrent with the write: not a final read */
	struct lincheck_options o = {.final_reads = true};
	struct lincheck_report r;
	char err[HISTORY_ERRMSG_SIZE] = "";
	ck_assert_int_eq(lincheck_check(&hist, &o, &r, err, sizeof(err)), HISTORY_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "no final read"));
	ck_assert_ptr_nonnull(strstr(err, "\"k\""));
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_duplicated_cas)
{
	W(1, "k", "v1", 0, 10);
	CAS(2, "k", "v1", "v2", 20, 30);
	size_t dup = CAS(3, "k", "v1", "v3", 40, 50);
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_NOT_LINEARIZABLE);
	ck_assert_uint_eq(find_key(&r, "k")->stuck_op, dup);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_concurrent_duplicated_cas)
{
	/* Both cas overlap; still only one of them can have seen v1. */
	W(1, "k", "v1", 0, 10);
	CAS(2, "k", "v1", "v2", 20, 60);
	CAS(3, "k", "v1", "v3", 30, 70);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_read_of_value_never_written)
{
	W(1, "k", "v1", 0, 10);
	R(2, "k", "ghost", 20, 30);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_read_of_failed_write)
{
	W_fail(1, "k", "v1", 0, 10);
	R(2, "k", "v1", 20, 30);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_read_null_after_completed_write)
{
	W(1, "k", "v1", 0, 10);
	R(2, "k", NULL, 20, 30);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_failed_cas_on_current_value)
{
	W(1, "k", "v1", 0, 10);
	size_t bad = CAS_fail(2, "k", "v1", "v2", 20, 30);
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_NOT_LINEARIZABLE);
	ck_assert_uint_eq(find_key(&r, "k")->stuck_op, bad);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_read_goes_back_in_time)
{
	/* Both reads overlap the write, but once one saw new, a later one may not see old. */
	W(1, "k", "old", 0, 10);
	W(1, "k", "new", 20, 100);
	R(2, "k", "new", 30, 40);
	R(3, "k", "old", 50, 60);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_info_write_cannot_appear_before_invocation)
{
	R(2, "k", "late", 0, 10);
	W_info(1, "k", "late", 20, 30);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_info_write_cannot_appear_twice)
{
	W_info(1, "k", "x", 0, 10);
	R(2, "k", "x", 20, 30);
	W(3, "k", "y", 40, 50);
	R(2, "k", "x", 60, 70);
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

START_TEST(test_violation_report_prints)
{
	W(1, "k", "v1", 0, 10);
	W(1, "k", "v2", 20, 30);
	W_info(4, "k", "v9", 25, 35);
	R(2, "k", "v1", 40, 50);
	R(3, "k", "v2", 45, 55);
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_NOT_LINEARIZABLE);
	char *text = NULL, *json = NULL;
	size_t tlen = 0, jlen = 0;
	FILE *t = open_memstream(&text, &tlen);
	FILE *j = open_memstream(&json, &jlen);
	ck_assert_ptr_nonnull(t);
	ck_assert_ptr_nonnull(j);
	lincheck_print(t, &hist, &r);
	lincheck_print_json(j, &hist, &r);
	fclose(t);
	fclose(j);
	ck_assert_ptr_nonnull(strstr(text, "NOT LINEARIZABLE"));
	ck_assert_ptr_nonnull(strstr(text, ">> stuck"));
	ck_assert_ptr_nonnull(strstr(text, "p2 read \"k\" -> \"v1\""));
	ck_assert_ptr_nonnull(strstr(json, "\"outcome\":\"not-linearizable\""));
	ck_assert_ptr_nonnull(strstr(json, "\"role\":\"stuck\""));
	free(text);
	free(json);
	lincheck_report_free(&r);
}
END_TEST

START_TEST(test_budget_exhausted_is_unknown)
{
	/* Many concurrent blind writes, then a read of a value nobody wrote: proving that takes
	 * every order of the writes, far more than 100 steps. */
	char v[16];
	for (int i = 0; i < 12; i++) {
		snprintf(v, sizeof(v), "v%d", i);
		W(i, "k", v, i, 1000 + i);
	}
	R(100, "k", "ghost", 2000, 2010);
	struct lincheck_options o = {.max_steps = 100};
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(&o, &r), LINCHECK_UNKNOWN);
	ck_assert_uint_eq(r.n_unknown, 1);
	ck_assert_int_eq(r.keys[0].limit, LINCHECK_LIMIT_STEPS);
	lincheck_report_free(&r);
	/* With the default budget it is decided. */
	ASSERT_NOT_LINEARIZABLE();
}
END_TEST

/* Seeds 1..n, or only CAIRN_SEED (to replay a failure, printed with its seed). */
static void seed_range(uint64_t n, uint64_t *first, uint64_t *last)
{
	const char *env = getenv("CAIRN_SEED");
	*first = 1;
	*last = n;
	if (env != NULL)
		*first = *last = strtoull(env, NULL, 10);
}

/* ---- random histories ------------------------------------------------------------------------ */

struct rng {
	uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
	uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(struct rng *r, uint64_t n)
{
	return rnd(r) % n;
}

static int64_t between(struct rng *r, int64_t lo, int64_t hi)
{
	return lo + (int64_t)below(r, (uint64_t)(hi - lo + 1));
}

/* An operation of a generated history, with the instant it really took effect. */
struct gen_op {
	int64_t p, t0, t1, lin;
	enum history_f f;
	enum history_type type;
	int key;
	char value[24], from[24], to[24];
	bool null_value, null_from, effect;
};

struct gen {
	struct gen_op *ops;
	size_t n;
};

struct gen_params {
	int n_ops, n_keys, n_procs;
	bool sequential;
	int info_percent;
	int64_t max_duration;
	bool deletes;
};

static int cmp_lin(const void *a, const void *b)
{
	const struct gen_op *const *x = a, *const *y = b;
	if ((*x)->lin != (*y)->lin)
		return (*x)->lin < (*y)->lin ? -1 : 1;
	return *x < *y ? -1 : *x > *y;
}

/*
 * Generates a history that is linearizable by construction: every operation gets a real
 * instant of effect (inside its interval; for an info op that takes effect, anywhere after its
 * invocation), and reads / cas outcomes are computed by running the model in that order.
 */
static void generate(struct rng *rg, const struct gen_params *gp, struct gen *g)
{
	g->n = (size_t)gp->n_ops;
	g->ops = calloc(g->n, sizeof(*g->ops));
	ck_assert_ptr_nonnull(g->ops);
	int64_t *free_at = calloc((size_t)gp->n_procs, sizeof(*free_at));
	ck_assert_ptr_nonnull(free_at);
	int64_t clock = 0;
	unsigned counter = 0;
	char(*last)[24] = calloc((size_t)gp->n_keys, sizeof(*last));
	ck_assert_ptr_nonnull(last);
	for (size_t i = 0; i < g->n; i++) {
		struct gen_op *op = &g->ops[i];
		int p = 0;
		for (int q = 1; q < gp->n_procs; q++)
			if (free_at[q] < free_at[p])
				p = q;
		op->p = p;
		op->t0 =
		    gp->sequential ? clock + between(rg, 1, 50) : free_at[p] + between(rg, 0, 50);
		int64_t d = between(rg, 0, gp->max_duration);
		if (below(rg, 50) == 0)
			d *= 20; /* now and then a slow one */
		op->t1 = op->t0 + d;
		op->lin = between(rg, op->t0, op->t1);
		free_at[p] = op->t1 + 1;
		clock = op->t1 + 1;
		op->key = (int)below(rg, (uint64_t)gp->n_keys);
		int r = (int)below(rg, 100);
		if (r < 45) {
			op->f = HISTORY_READ;
		} else if (r < 75 || (!gp->deletes && r >= 95)) {
			op->f = HISTORY_WRITE;
			snprintf(op->value, sizeof(op->value), "v%u", counter++);
			memcpy(last[op->key], op->value, sizeof(op->value));
		} else if (r < 95) {
			op->f = HISTORY_CAS;
			snprintf(op->to, sizeof(op->to), "v%u", counter++);
			if (last[op->key][0] == '\0' || below(rg, 8) == 0) {
				op->null_from = true;
			} else if (below(rg, 4) == 0) {
				snprintf(op->from, sizeof(op->from), "v%u",
					 (unsigned)below(rg, counter));
			} else {
				memcpy(op->from, last[op->key], sizeof(op->from));
			}
		} else {
			op->f = HISTORY_DELETE;
		}
		op->type = HISTORY_OK;
		op->effect = true;
		if ((int)below(rg, 100) < gp->info_percent) {
			op->type = HISTORY_INFO;
			op->effect = op->f != HISTORY_READ && below(rg, 2) == 0;
			/* An info op may take effect after it was reported as info, even much later
			 * (but not in a sequential history, which must stay sequential). */
			if (op->effect && !gp->sequential && below(rg, 2) == 0)
				op->lin = op->t1 + between(rg, 0, 20 * gp->max_duration);
			if (op->f == HISTORY_DELETE && gp->sequential) {
				/* so that null stays provably dead in dead_values() */
				op->type = HISTORY_OK;
				op->effect = true;
			}
		}
	}
	/* Run the model in the order of the instants of effect. */
	struct gen_op **order = calloc(g->n, sizeof(*order));
	ck_assert_ptr_nonnull(order);
	for (size_t i = 0; i < g->n; i++)
		order[i] = &g->ops[i];
	qsort(order, g->n, sizeof(*order), cmp_lin);
	char(*cur)[24] = calloc((size_t)gp->n_keys, sizeof(*cur));
	bool *cur_null = calloc((size_t)gp->n_keys, sizeof(*cur_null));
	ck_assert_ptr_nonnull(cur);
	ck_assert_ptr_nonnull(cur_null);
	for (int k = 0; k < gp->n_keys; k++)
		cur_null[k] = true;
	for (size_t i = 0; i < g->n; i++) {
		struct gen_op *op = order[i];
		int k = op->key;
		switch (op->f) {
		case HISTORY_READ:
			memcpy(op->value, cur[k], sizeof(op->value));
			op->null_value = cur_null[k];
			break;
		case HISTORY_WRITE:
			if (op->effect) {
				memcpy(cur[k], op->value, sizeof(op->value));
				cur_null[k] = false;
			}
			break;
		case HISTORY_DELETE:
			if (op->effect)
				cur_null[k] = true;
			break;
		case HISTORY_CAS: {
			bool match = op->null_from ? cur_null[k]
						   : !cur_null[k] && strcmp(cur[k], op->from) == 0;
			if (op->type == HISTORY_OK && !match)
				op->type = HISTORY_FAIL;
			if (op->effect && match) {
				memcpy(cur[k], op->to, sizeof(op->to));
				cur_null[k] = false;
			}
			break;
		}
		}
	}
	free(cur);
	free(cur_null);
	free(order);
	free(last);
	free(free_at);
}

static void key_name(char *buf, size_t len, int k)
{
	snprintf(buf, len, "key%d", k);
}

/* Adds the generated ops to `hist` in generation order (op i gets index i). */
static void load_gen(const struct gen *g)
{
	char key[16];
	for (size_t i = 0; i < g->n; i++) {
		const struct gen_op *op = &g->ops[i];
		key_name(key, sizeof(key), op->key);
		size_t idx =
		    add_op(&hist, op->p, op->f, op->type, key, op->null_value ? NULL : op->value,
			   op->null_from ? NULL : op->from, op->to, op->t0, op->t1);
		ck_assert_uint_eq(idx, i);
	}
}

/* Values that an ok read at index `ri` of a sequential history certainly cannot return: any
 * value written (ok) before it and then replaced by a later ok write, delete or cas, and null
 * if the last ok write before it was not a delete. Writes `n` candidates into out. */
static size_t dead_values(const struct gen *g, size_t ri, const char **out, bool *null_dead)
{
	size_t n = 0;
	const char *live = NULL;
	bool live_null = true, any = false;
	for (size_t i = 0; i < ri; i++) {
		const struct gen_op *op = &g->ops[i];
		if (op->key != g->ops[ri].key || op->type != HISTORY_OK)
			continue;
		const char *produced;
		if (op->f == HISTORY_WRITE)
			produced = op->value;
		else if (op->f == HISTORY_CAS)
			produced = op->to;
		else if (op->f == HISTORY_DELETE)
			produced = NULL;
		else
			continue;
		if (any && !live_null)
			out[n++] = live;
		live = produced;
		live_null = produced == NULL;
		any = true;
	}
	*null_dead = any && !live_null;
	return n;
}

START_TEST(test_random_sequential_and_mutated)
{
	uint64_t first, last;
	seed_range(300, &first, &last);
	for (uint64_t seed = first; seed <= last; seed++) {
		struct rng rg = {seed};
		struct gen_params gp = {.n_ops = 30 + (int)below(&rg, 60),
					.n_keys = 1 + (int)below(&rg, 3),
					.n_procs = 1 + (int)below(&rg, 4),
					.sequential = true,
					.info_percent = (int)below(&rg, 3) * 5,
					.max_duration = 100,
					.deletes = true};
		struct gen g;
		generate(&rg, &gp, &g);
		teardown();
		setup();
		load_gen(&g);
		ck_assert_msg(check() == LINCHECK_LINEARIZABLE, "seed %" PRIu64 ": rejected", seed);

		/* Mutate one ok read to a value it cannot return. */
		size_t reads[200], nr = 0;
		for (size_t i = 0; i < g.n && nr < 200; i++)
			if (g.ops[i].f == HISTORY_READ && g.ops[i].type == HISTORY_OK)
				reads[nr++] = i;
		if (nr == 0) {
			free(g.ops);
			continue;
		}
		size_t ri = reads[below(&rg, nr)];
		const char *dead[200];
		bool null_dead;
		size_t nd = dead_values(&g, ri, dead, &null_dead);
		size_t choice = below(&rg, nd + 2);
		if (choice < nd) {
			snprintf(g.ops[ri].value, sizeof(g.ops[ri].value), "%s", dead[choice]);
			g.ops[ri].null_value = false;
		} else if (choice == nd && null_dead) {
			g.ops[ri].null_value = true;
		} else {
			snprintf(g.ops[ri].value, sizeof(g.ops[ri].value), "never-written");
			g.ops[ri].null_value = false;
		}
		teardown();
		setup();
		load_gen(&g);
		struct lincheck_report r;
		enum lincheck_outcome out = check_opts(NULL, &r);
		ck_assert_msg(out == LINCHECK_NOT_LINEARIZABLE, "seed %" PRIu64 ": mutation missed",
			      seed);
		char key[16];
		key_name(key, sizeof(key), g.ops[ri].key);
		ck_assert_msg(find_key(&r, key)->stuck_op == ri, "seed %" PRIu64 ": stuck at %zu",
			      seed, find_key(&r, key)->stuck_op);
		lincheck_report_free(&r);
		free(g.ops);
	}
}
END_TEST

START_TEST(test_random_concurrent_pass)
{
	uint64_t first, last;
	seed_range(200, &first, &last);
	for (uint64_t seed = first; seed <= last; seed++) {
		struct rng rg = {seed * 7919};
		struct gen_params gp = {.n_ops = 50 + (int)below(&rg, 250),
					.n_keys = 1 + (int)below(&rg, 4),
					.n_procs = 2 + (int)below(&rg, 10),
					.info_percent = (int)below(&rg, 4) * 5,
					.max_duration = 200,
					.deletes = true};
		struct gen g;
		generate(&rg, &gp, &g);
		teardown();
		setup();
		load_gen(&g);
		enum lincheck_outcome out = check();
		ck_assert_msg(out == LINCHECK_LINEARIZABLE, "seed %" PRIu64 ": outcome %d", seed,
			      out);
		free(g.ops);
	}
}
END_TEST

/* ---- cross-check against brute force on tiny random histories -------------------------------- */

#define TINY_MAX_OPS 14

struct tiny_op {
	int kind; /* 0 read, 1 write, 2 cas ok, 3 failed cas */
	int a, b; /* values: 0 = null, 1..3 */
	bool info;
	int64_t call, ret;
};

static bool tiny_step(const struct tiny_op *op, int s, int *out)
{
	switch (op->kind) {
	case 0:
		*out = s;
		return s == op->a;
	case 1:
		*out = op->a;
		return true;
	case 2:
		*out = op->b;
		return s == op->a;
	default:
		*out = s;
		return s != op->a;
	}
}

/* Every order of every subset containing all non-info ops, respecting real time; `failed`
 * remembers (set, value) pairs already explored (they failed, or the search would be over). */
static bool brute(const struct tiny_op *ops, int n, unsigned done, int state, uint8_t *failed)
{
	bool all = true;
	for (int i = 0; i < n; i++)
		if (!ops[i].info && !(done & (1u << i)))
			all = false;
	if (all)
		return true;
	if (failed[done * 4 + (unsigned)state])
		return false;
	for (int i = 0; i < n; i++) {
		if (done & (1u << i))
			continue;
		bool blocked = false;
		for (int j = 0; j < n; j++)
			if (j != i && !(done & (1u << j)) && !ops[j].info &&
			    ops[j].ret < ops[i].call)
				blocked = true;
		int next;
		if (blocked || !tiny_step(&ops[i], state, &next))
			continue;
		if (brute(ops, n, done | (1u << i), next, failed))
			return true;
	}
	failed[done * 4 + (unsigned)state] = 1;
	return false;
}

static bool brute_check(const struct tiny_op *ops, int n)
{
	uint8_t *failed = calloc((size_t)4 << n, 1);
	ck_assert_ptr_nonnull(failed);
	bool ok = brute(ops, n, 0, 0, failed);
	free(failed);
	return ok;
}

/* Completion order of non-info ops: time, invocation, index. */
static bool tiny_ret_before(const struct tiny_op *ops, int x, int y)
{
	if (ops[x].ret != ops[y].ret)
		return ops[x].ret < ops[y].ret;
	if (ops[x].call != ops[y].call)
		return ops[x].call < ops[y].call;
	return x < y;
}

/* The op whose completion ends the shortest non-linearizable prefix: in a prefix, ops invoked
 * but not completed yet may take effect before or after its end (writes and successful cas may
 * or may not have taken effect by then; reads and failed cas constrain nothing by then). */
static int shortest_bad_prefix(const struct tiny_op *ops, int n)
{
	int order[TINY_MAX_OPS], m = 0;
	for (int i = 0; i < n; i++)
		if (!ops[i].info)
			order[m++] = i;
	for (int i = 1; i < m; i++)
		for (int j = i; j > 0 && tiny_ret_before(ops, order[j], order[j - 1]); j--) {
			int t = order[j];
			order[j] = order[j - 1];
			order[j - 1] = t;
		}
	for (int j = 0; j < m; j++) {
		const struct tiny_op *end = &ops[order[j]];
		struct tiny_op pre[TINY_MAX_OPS];
		int np = 0;
		for (int i = 0; i < n; i++) {
			struct tiny_op o = ops[i];
			if (!o.info && (i == order[j] || tiny_ret_before(ops, i, order[j]))) {
				pre[np++] = o;
				continue;
			}
			if (o.call > end->ret || o.kind == 0 || o.kind == 3)
				continue;
			o.info = true;
			o.ret = INT64_MAX;
			pre[np++] = o;
		}
		if (!brute_check(pre, np))
			return order[j];
	}
	return -1;
}

START_TEST(test_random_tiny_against_brute_force)
{
	static const char *vals[] = {NULL, "a", "b", "c"};
	int disagreements = 0, linearizable = 0;
	/* CAIRN_LINCHECK_SEEDS=N runs more of them (a longer fuzzing session). */
	uint64_t seeds = 3000;
	if (getenv("CAIRN_LINCHECK_SEEDS") != NULL)
		seeds = strtoull(getenv("CAIRN_LINCHECK_SEEDS"), NULL, 10);
	uint64_t first, last;
	seed_range(seeds, &first, &last);
	for (uint64_t seed = first; seed <= last; seed++) {
		struct rng rg = {seed * 104729};
		int n = 2 + (int)below(&rg, TINY_MAX_OPS - 1);
		struct tiny_op ops[TINY_MAX_OPS];
		teardown();
		setup();
		for (int i = 0; i < n; i++) {
			struct tiny_op *o = &ops[i];
			o->kind = (int)below(&rg, 4);
			o->a = (int)below(&rg, 4);
			o->b = 1 + (int)below(&rg, 3);
			/* a write of null is a delete */
			o->call = between(&rg, 0, 4 * n);
			o->ret = o->call + between(&rg, 0, 15);
			o->info = (o->kind == 1 || o->kind == 2) && below(&rg, 3) == 0;
			enum history_type type = o->info	? HISTORY_INFO
						 : o->kind == 3 ? HISTORY_FAIL
								: HISTORY_OK;
			enum history_f f = o->kind == 0 ? HISTORY_READ
					   : o->kind == 1
					       ? (o->a == 0 ? HISTORY_DELETE : HISTORY_WRITE)
					       : HISTORY_CAS;
			add_op(&hist, i, f, type, "k", vals[o->a], vals[o->a], vals[o->b], o->call,
			       o->ret);
			if (o->info)
				o->ret = INT64_MAX;
		}
		if (getenv("CAIRN_SEED") != NULL)
			for (size_t i = 0; i < hist.n_ops; i++) {
				lincheck_print_op(stderr, &hist, i);
				fputc('\n', stderr);
			}
		bool expect = brute_check(ops, n);
		struct lincheck_report r;
		enum lincheck_outcome out = check_opts(NULL, &r);
		linearizable += expect;
		if ((out == LINCHECK_LINEARIZABLE) != expect) {
			disagreements++;
			fprintf(stderr, "seed %" PRIu64 ": brute force says %d, checker %d\n", seed,
				expect, out);
		} else if (!expect) {
			/* The stuck op ends the shortest non-linearizable prefix (of the history
			 * without its failed cas, if that is where the violation was found). */
			struct tiny_op alt[TINY_MAX_OPS];
			memcpy(alt, ops, sizeof(alt));
			for (int i = 0; i < n && r.keys[0].without_failed_cas; i++)
				if (alt[i].kind == 3) { /* a failed cas that is never there */
					alt[i].kind = 2;
					alt[i].info = true;
					alt[i].a = alt[i].b = 0;
				}
			int want = shortest_bad_prefix(alt, n);
			if (r.keys[0].stuck_op != (size_t)want) {
				disagreements++;
				fprintf(stderr,
					"seed %" PRIu64 ": stuck at op %zu, brute force %d\n", seed,
					r.keys[0].stuck_op, want);
			}
		}
		lincheck_report_free(&r);
	}
	ck_assert_int_eq(disagreements, 0);
	/* Both verdicts were exercised. */
	ck_assert_int_gt(linearizable, (int)(seeds / 10));
	ck_assert_int_lt(linearizable, (int)(seeds * 9 / 10));
}
END_TEST

/* ---- performance ----------------------------------------------------------------------------- */

START_TEST(test_large_concurrent_history)
{
	struct rng rg = {20240601};
	struct gen_params gp = {.n_ops = 50000,
				.n_keys = 10,
				.n_procs = 20,
				.info_percent = 2,
				.max_duration = 2000,
				.deletes = true};
	struct gen g;
	generate(&rg, &gp, &g);
	load_gen(&g);
	struct lincheck_report r;
	ck_assert_int_eq(check_opts(NULL, &r), LINCHECK_LINEARIZABLE);
	fprintf(stderr,
		"lincheck: %zu ops (%zu info) on %zu keys, %d processes: %.3f s, %.0f ops/s, "
		"%" PRIu64 " steps\n",
		r.n_ops, r.n_info, r.n_keys, gp.n_procs, r.seconds,
		r.seconds > 0 ? (double)r.n_ops / r.seconds : 0.0, r.steps);
	lincheck_report_free(&r);
	free(g.ops);
}
END_TEST

static Suite *lincheck_suite(void)
{
	Suite *s = suite_create("lincheck");
	TCase *tc = tcase_create("legal");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_empty_history);
	tcase_add_test(tc, test_sequential);
	tcase_add_test(tc, test_concurrent_writes_either_order);
	tcase_add_test(tc, test_read_concurrent_with_write_sees_old_or_new);
	tcase_add_test(tc, test_read_returns_equal_time_boundaries);
	tcase_add_test(tc, test_info_write_appears_later);
	tcase_add_test(tc, test_info_write_never_appears);
	tcase_add_test(tc, test_pending_write_counts_as_info);
	tcase_add_test(tc, test_info_cas_takes_effect_or_not);
	tcase_add_test(tc, test_failed_cas);
	tcase_add_test(tc, test_failed_cas_explained_by_info_write);
	tcase_add_test(tc, test_failed_cas_with_error_imposes_nothing);
	tcase_add_test(tc, test_failed_write_and_failed_read_are_dropped);
	tcase_add_test(tc, test_many_keys);
	tcase_add_test(tc, test_same_value_written_twice);
	tcase_add_test(tc, test_final_reads_overwritten_is_fine);
	suite_add_tcase(s, tc);

	tc = tcase_create("anomalies");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_stale_read);
	tcase_add_test(tc, test_lost_write);
	tcase_add_test(tc, test_lost_write_never_read);
	tcase_add_test(tc, test_final_reads_required);
	tcase_add_test(tc, test_duplicated_cas);
	tcase_add_test(tc, test_concurrent_duplicated_cas);
	tcase_add_test(tc, test_read_of_value_never_written);
	tcase_add_test(tc, test_read_of_failed_write);
	tcase_add_test(tc, test_read_null_after_completed_write);
	tcase_add_test(tc, test_failed_cas_on_current_value);
	tcase_add_test(tc, test_read_goes_back_in_time);
	tcase_add_test(tc, test_info_write_cannot_appear_before_invocation);
	tcase_add_test(tc, test_info_write_cannot_appear_twice);
	tcase_add_test(tc, test_violation_report_prints);
	tcase_add_test(tc, test_budget_exhausted_is_unknown);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 600);
	tcase_add_test(tc, test_random_sequential_and_mutated);
	tcase_add_test(tc, test_random_concurrent_pass);
	tcase_add_test(tc, test_random_tiny_against_brute_force);
	tcase_add_test(tc, test_large_concurrent_history);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lincheck_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
