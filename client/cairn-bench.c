/* cairn-bench: closed-loop load generator for Cairn on libcairn's asynchronous API. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/bench/hist.h"
#include "client/cairn.h"

/* ---- limits and defaults --------------------------------------------------------------- */

#define DEFAULT_CLIENTS	    1u
#define DEFAULT_CONNS	    1u
#define DEFAULT_KEY_SIZE    16u
#define DEFAULT_VALUE_SIZE  256u
#define DEFAULT_KEY_SPACE   10000u
#define DEFAULT_DURATION_MS 10000u
#define DEFAULT_WARMUP_MS   1000u
#define DEFAULT_TIMEOUT_MS  5000u
#define DEFAULT_PROGRESS_MS 1000u
#define DEFAULT_RATIO	    0.5
#define MAX_CLIENTS	    100000u
#define MAX_CONNS	    256u
#define MAX_KEY_SIZE	    (64u * 1024u)
#define MAX_VALUE_SIZE	    (1024u * 1024u)
/* Writers of the preload phase (filling the key space before a read workload). */
#define PRELOAD_WRITERS 64u
/* Runs at least this long print a progress line. */
#define PROGRESS_MIN_RUN_MS 3000u
/* After the end, clients get their timeout plus this to finish what is in flight. */
#define DRAIN_GRACE_MS 2000u
/* The main thread's polling period. */
#define TICK_MS 10u
/* failover: timeout of each put attempt, pause after a failed one, and the longest wait. */
#define FAILOVER_ATTEMPT_MS 100u
#define FAILOVER_PAUSE_MS   10u
#define FAILOVER_MAX_MS	    60000u
/* Error codes are 0 .. -N_ERR_CODES+1. */
#define N_ERR_CODES 16

#define NS_PER_MS 1000000ull
#define NS_PER_S  1000000000ull

enum workload { WL_PUT, WL_GET, WL_GET_SERIAL, WL_TXN_CAS, WL_MIXED, WL_FAILOVER };
static const char *const workload_names[] = {"put",	"get",	 "get-serial",
					     "txn-cas", "mixed", "failover"};
#define N_WORKLOADS (sizeof(workload_names) / sizeof(workload_names[0]))

enum phase { PH_WARMUP = 0, PH_MEASURE = 1, PH_STOP = 2 };

struct config {
	const char *endpoints;
	enum workload wl;
	unsigned clients, conns;
	size_t key_size, value_size;
	uint64_t key_space;
	uint64_t total;	      /* measured operations; 0 = by duration */
	uint64_t duration_ms; /* measured time when total == 0 */
	uint64_t warmup_ms;
	uint32_t timeout_ms;
	uint64_t progress_ms; /* 0 = never */
	double ratio;	      /* mixed: fraction of reads */
	int preload;	      /* -1 = by workload */
	bool json;
	uint64_t seed;
	long kill_pid; /* failover */
};

struct bench;

/* One cairn_client: its I/O thread runs the callbacks of every logical client on it, one at a
 * time, so everything below but the atomics is touched by that thread only (until joined). */
struct handle {
	struct bench *b;
	cairn_client *c;
	struct hist hist; /* successful measured operations */
	uint64_t errs[N_ERR_CODES];
	uint64_t cas_failed;
	uint64_t last_done_ns;
	atomic_uint_fast64_t done;   /* measured operations completed (ok or not) */
	atomic_uint_fast64_t errors; /* of which errors */
	char last_err[CAIRN_ERRMSG_SIZE];
};

/* A logical client: one operation outstanding at a time (closed loop). */
struct client {
	struct bench *b;
	struct handle *h;
	uint64_t rng;
	uint64_t t0;   /* start of the operation in flight */
	bool measured; /* it was started in the measured phase */
	bool preload;  /* this client is a preload writer */
	char *key;
};

struct bench {
	struct config cfg;
	struct handle *handles;
	struct client *clients;
	size_t n_clients; /* running now (workload clients or preload writers) */
	char *value;
	struct cairn_range_opts ropts;
	struct cairn_put_opts popts;
	atomic_int phase;
	atomic_uint_fast64_t measure_start_ns;
	atomic_uint_fast64_t stop_ns;
	atomic_uint_fast64_t issued; /* measured operations started (for --total) */
	atomic_uint_fast64_t preload_next;
	atomic_uint_fast64_t preload_errors;
	atomic_uint idle; /* clients that stopped issuing */
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000u), (long)(ms % 1000u) * 1000000L};

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR && !interrupted) {
	}
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: uniform enough to pick keys. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ull;
}

/* ---- keys -------------------------------------------------------------------------------- */

/* Key i is "k" followed by i in decimal, zero-padded to the key size: keys sort by index. */
static void key_format(const struct config *cfg, char *buf, uint64_t i)
{
	char digits[24];
	int n = snprintf(digits, sizeof(digits), "%" PRIu64, i);
	size_t pad = cfg->key_size - 1u - (size_t)n;

	buf[0] = 'k';
	memset(buf + 1, '0', pad);
	memcpy(buf + 1 + pad, digits, (size_t)n);
	buf[cfg->key_size] = '\0';
}

static size_t digits_of(uint64_t v)
{
	size_t n = 1;

	while (v >= 10) {
		v /= 10;
		n++;
	}
	return n;
}

/* ---- the closed loop --------------------------------------------------------------------- */

static void client_issue(struct client *cl);

static int err_slot(int rv)
{
	int i = -rv;

	return i > 0 && i < N_ERR_CODES ? i : 0;
}

/* An operation of `cl` ended (rv = 0 or its error): account for it, start the next. */
static void client_done(struct client *cl, int rv, const char *msg)
{
	struct bench *b = cl->b;
	struct handle *h = cl->h;
	uint64_t t = now_ns();

	if (cl->preload) {
		if (rv != 0) {
			atomic_fetch_add(&b->preload_errors, 1);
			snprintf(h->last_err, sizeof(h->last_err), "%s: %s", cairn_strerror(rv),
				 msg);
		}
		client_issue(cl);
		return;
	}
	if (cl->measured && t <= atomic_load(&b->stop_ns)) {
		if (rv == 0) {
			hist_record(&h->hist, t - cl->t0);
		} else {
			h->errs[err_slot(rv)]++;
			atomic_fetch_add_explicit(&h->errors, 1, memory_order_relaxed);
			snprintf(h->last_err, sizeof(h->last_err), "%s: %s", cairn_strerror(rv),
				 msg);
		}
		if (t > h->last_done_ns) {
			h->last_done_ns = t;
		}
		atomic_fetch_add_explicit(&h->done, 1, memory_order_release);
	}
	client_issue(cl);
}

static void on_put(int rv, const char *msg, struct cairn_put_result *res, void *arg)
{
	cairn_put_result_free(res);
	client_done(arg, rv, msg);
}

static void on_get(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	cairn_range_result_free(res);
	client_done(arg, rv, msg);
}

static void on_cas_txn(int rv, const char *msg, struct cairn_txn_result *res, void *arg)
{
	struct client *cl = arg;

	if (rv == 0 && !res->succeeded && cl->measured) {
		cl->h->cas_failed++; /* not an error: someone wrote the key in between */
	}
	cairn_txn_result_free(res);
	client_done(cl, rv, msg);
}

/* txn-cas, second step: compare the key's mod_revision with what we read, then put. */
static void on_cas_get(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	struct client *cl = arg;
	struct bench *b = cl->b;
	int64_t mod = 0;
	cairn_txn *txn;

	if (rv != 0) {
		client_done(cl, rv, msg);
		return;
	}
	if (res->n_kvs == 1) {
		mod = res->kvs[0].mod_revision;
	}
	cairn_range_result_free(res);
	txn = cairn_txn_new();
	if (txn == NULL ||
	    cairn_txn_compare_int(txn, CAIRN_CMP_MOD, CAIRN_CMP_EQUAL, cl->key, b->cfg.key_size,
				  mod) != 0 ||
	    cairn_txn_put(txn, CAIRN_TXN_SUCCESS, cl->key, b->cfg.key_size, b->value,
			  b->cfg.value_size, false) != 0) {
		cairn_txn_free(txn);
		client_done(cl, CAIRN_ENOMEM, "building the transaction");
		return;
	}
	rv = cairn_txn_commit_async(cl->h->c, txn, b->cfg.timeout_ms, on_cas_txn, cl);
	cairn_txn_free(txn);
	if (rv != 0) {
		client_done(cl, rv, "cairn_txn_commit_async");
	}
}

/* Whether `cl` may start another operation; if not, it becomes idle for good. */
static bool client_may_issue(struct client *cl)
{
	struct bench *b = cl->b;
	int ph = atomic_load(&b->phase);

	if (interrupted || ph == PH_STOP) {
		return false;
	}
	cl->measured = ph == PH_MEASURE;
	if (cl->measured && b->cfg.total > 0 && atomic_fetch_add(&b->issued, 1) >= b->cfg.total) {
		return false;
	}
	return true;
}

static void client_issue(struct client *cl)
{
	struct bench *b = cl->b;
	const struct config *cfg = &b->cfg;
	enum workload wl = cfg->wl;
	uint64_t k;
	int rv;

	if (cl->preload) {
		k = atomic_fetch_add(&b->preload_next, 1);
		if (interrupted || k >= cfg->key_space) {
			atomic_fetch_add(&b->idle, 1);
			return;
		}
		key_format(cfg, cl->key, k);
		rv = cairn_put_async(cl->h->c, cl->key, cfg->key_size, b->value, cfg->value_size,
				     &b->popts, on_put, cl);
		if (rv != 0) {
			atomic_fetch_add(&b->preload_errors, 1);
			atomic_fetch_add(&b->idle, 1);
		}
		return;
	}
	/* A callback that fails at once must not recurse without bound: loop instead. */
	for (;;) {
		if (!client_may_issue(cl)) {
			atomic_fetch_add(&b->idle, 1);
			return;
		}
		key_format(cfg, cl->key, rng_next(&cl->rng) % cfg->key_space);
		if (wl == WL_MIXED) {
			double x = (double)(rng_next(&cl->rng) >> 11) / 9007199254740992.0;

			wl = x < cfg->ratio ? WL_GET : WL_PUT;
		}
		cl->t0 = now_ns();
		switch (wl) {
		case WL_PUT:
			rv = cairn_put_async(cl->h->c, cl->key, cfg->key_size, b->value,
					     cfg->value_size, &b->popts, on_put, cl);
			break;
		case WL_GET:
		case WL_GET_SERIAL:
			rv = cairn_get_async(cl->h->c, cl->key, cfg->key_size, &b->ropts, on_get,
					     cl);
			break;
		case WL_TXN_CAS: {
			struct cairn_range_opts o = b->ropts;

			o.serializable = false; /* the read of a CAS must be current */
			rv = cairn_get_async(cl->h->c, cl->key, cfg->key_size, &o, on_cas_get, cl);
			break;
		}
		default:
			rv = CAIRN_EINVAL;
			break;
		}
		if (rv == 0) {
			return;
		}
		/* Refused at once: its callback never comes. Count it and go on. */
		if (cl->measured) {
			struct handle *h = cl->h;

			h->errs[err_slot(rv)]++;
			atomic_fetch_add(&h->errors, 1);
			atomic_fetch_add(&h->done, 1);
			snprintf(h->last_err, sizeof(h->last_err), "%s (at submission)",
				 cairn_strerror(rv));
		}
		if (rv == CAIRN_ECLOSED) {
			atomic_fetch_add(&b->idle, 1);
			return;
		}
		wl = cfg->wl;
	}
}

/* ---- handles ----------------------------------------------------------------------------- */

/* Endpoint list rotated by `shift`, so that handle i starts at member i % n. */
static char *rotate_endpoints(const char *list, unsigned shift)
{
	char *copy = strdup(list), *out, *save = NULL, *tok;
	char *parts[CAIRN_MAX_ENDPOINTS];
	size_t n = 0, i, len = strlen(list) + 2;

	out = calloc(1, len);
	if (copy == NULL || out == NULL) {
		free(copy);
		free(out);
		return NULL;
	}
	for (tok = strtok_r(copy, ",", &save); tok != NULL && n < CAIRN_MAX_ENDPOINTS;
	     tok = strtok_r(NULL, ",", &save)) {
		parts[n++] = tok;
	}
	for (i = 0; i < n; i++) {
		if (i > 0) {
			strcat(out, ",");
		}
		strcat(out, parts[(i + shift) % n]);
	}
	free(copy);
	return out;
}

static int handles_open(struct bench *b, unsigned writers_per_handle)
{
	const struct config *cfg = &b->cfg;
	struct cairn_options o;
	unsigned i;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = cfg->timeout_ms;
	/* A write holds a session while in flight: one per concurrent write, plus slack. */
	o.max_sessions = writers_per_handle + 4u;
	if (cfg->wl == WL_FAILOVER) {
		o.backoff_min_ms = 5;
		o.backoff_max_ms = 50;
		o.connect_timeout_ms = 200;
	}
	b->handles = calloc(cfg->conns, sizeof(*b->handles));
	if (b->handles == NULL) {
		return CAIRN_ENOMEM;
	}
	for (i = 0; i < cfg->conns; i++) {
		struct handle *h = &b->handles[i];
		char err[CAIRN_ERRMSG_SIZE] = "";
		char *eps = rotate_endpoints(cfg->endpoints, i);
		int rv;

		h->b = b;
		hist_init(&h->hist);
		if (eps == NULL) {
			return CAIRN_ENOMEM;
		}
		rv = cairn_connect(eps, &o, &h->c, err, sizeof(err));
		free(eps);
		if (rv != 0) {
			fprintf(stderr, "cairn-bench: connect: %s: %s\n", cairn_strerror(rv), err);
			return rv;
		}
	}
	return 0;
}

static void handles_close(struct bench *b)
{
	unsigned i;

	for (i = 0; b->handles != NULL && i < b->cfg.conns; i++) {
		cairn_close(b->handles[i].c);
		b->handles[i].c = NULL;
	}
}

/* Make `n` clients (over the handles, round robin) with their key buffers. */
static int clients_make(struct bench *b, size_t n, bool preload)
{
	size_t i;

	b->clients = calloc(n, sizeof(*b->clients));
	if (b->clients == NULL) {
		return CAIRN_ENOMEM;
	}
	b->n_clients = n;
	for (i = 0; i < n; i++) {
		struct client *cl = &b->clients[i];

		cl->b = b;
		cl->h = &b->handles[i % b->cfg.conns];
		cl->preload = preload;
		cl->rng = b->cfg.seed ^ ((uint64_t)(i + 1) * 0x9e3779b97f4a7c15ull);
		if (cl->rng == 0) {
			cl->rng = 1;
		}
		cl->key = malloc(b->cfg.key_size + 1);
		if (cl->key == NULL) {
			return CAIRN_ENOMEM;
		}
	}
	return 0;
}

static void clients_free(struct bench *b)
{
	size_t i;

	for (i = 0; b->clients != NULL && i < b->n_clients; i++) {
		free(b->clients[i].key);
	}
	free(b->clients);
	b->clients = NULL;
	b->n_clients = 0;
}

/* Wait until every client is idle, at most `ms`. */
static bool wait_idle(struct bench *b, uint64_t ms)
{
	uint64_t until = now_ns() + ms * NS_PER_MS;

	while (atomic_load(&b->idle) < b->n_clients) {
		if (now_ns() > until) {
			return false;
		}
		sleep_ms(TICK_MS);
	}
	return true;
}

/* ---- phases ------------------------------------------------------------------------------ */

/* Write every key of the key space once, so that reads find them. */
static int preload(struct bench *b)
{
	const struct config *cfg = &b->cfg;
	size_t n = cfg->key_space < PRELOAD_WRITERS ? (size_t)cfg->key_space : PRELOAD_WRITERS;
	uint64_t t0 = now_ns(), errors;
	size_t i;
	int rv;

	if (n < cfg->clients) {
		n = cfg->clients;
	}
	if (n > cfg->key_space) {
		n = (size_t)cfg->key_space;
	}
	rv = clients_make(b, n, true);
	if (rv != 0) {
		return rv;
	}
	atomic_store(&b->idle, 0);
	for (i = 0; i < n; i++) {
		client_issue(&b->clients[i]);
	}
	/* Bounded: every put has a deadline; the key space is finite. */
	while (!wait_idle(b, 1000)) {
		if (interrupted) {
			if (!wait_idle(b, cfg->timeout_ms + DRAIN_GRACE_MS)) {
				return CAIRN_ECLOSED; /* clients still referenced: freed later */
			}
			break;
		}
		if (!cfg->json && cfg->progress_ms > 0) {
			fprintf(stderr, "preload: %" PRIu64 "/%" PRIu64 " keys\n",
				atomic_load(&b->preload_next) < cfg->key_space
				    ? (uint64_t)atomic_load(&b->preload_next)
				    : cfg->key_space,
				cfg->key_space);
		}
	}
	clients_free(b);
	errors = atomic_load(&b->preload_errors);
	if (!cfg->json) {
		fprintf(stderr, "preload: %" PRIu64 " keys in %.1f s, %" PRIu64 " errors\n",
			cfg->key_space, (double)(now_ns() - t0) / 1e9, errors);
	}
	if (errors > 0) {
		fprintf(stderr, "cairn-bench: preload failed for %" PRIu64 " keys\n", errors);
		return CAIRN_EINTERNAL;
	}
	return interrupted ? CAIRN_ECLOSED : 0;
}

static uint64_t done_sum(const struct bench *b, uint64_t *errors)
{
	uint64_t d = 0, e = 0;
	unsigned i;

	for (i = 0; i < b->cfg.conns; i++) {
		d += atomic_load(&b->handles[i].done);
		e += atomic_load_explicit(&b->handles[i].errors, memory_order_relaxed);
	}
	if (errors != NULL) {
		*errors = e;
	}
	return d;
}

/* The measured run: warm up, measure (for a duration or until `total` operations), stop. */
static int run(struct bench *b, uint64_t *elapsed_ns)
{
	const struct config *cfg = &b->cfg;
	uint64_t start, t, next_progress, last_done = 0, last_t;
	bool progress;
	size_t i;
	int rv;

	rv = clients_make(b, cfg->clients, false);
	if (rv != 0) {
		return rv;
	}
	atomic_store(&b->idle, 0);
	atomic_store(&b->stop_ns, UINT64_MAX);
	atomic_store(&b->phase, cfg->warmup_ms > 0 ? PH_WARMUP : PH_MEASURE);
	start = now_ns();
	if (cfg->warmup_ms == 0) {
		atomic_store(&b->measure_start_ns, start);
	}
	for (i = 0; i < b->n_clients; i++) {
		client_issue(&b->clients[i]);
	}
	if (cfg->warmup_ms > 0) {
		while (!interrupted && now_ns() - start < cfg->warmup_ms * NS_PER_MS) {
			sleep_ms(TICK_MS);
		}
		atomic_store(&b->measure_start_ns, now_ns());
		atomic_store(&b->phase, PH_MEASURE);
	}
	start = atomic_load(&b->measure_start_ns);
	progress = cfg->progress_ms > 0 && !cfg->json &&
		   (cfg->total > 0 || cfg->duration_ms >= PROGRESS_MIN_RUN_MS);
	next_progress = start + cfg->progress_ms * NS_PER_MS;
	last_t = start;
	for (;;) {
		uint64_t errors, done = done_sum(b, &errors);

		t = now_ns();
		if (interrupted) {
			break;
		}
		if (cfg->total > 0 ? done >= cfg->total
				   : t - start >= cfg->duration_ms * NS_PER_MS) {
			break;
		}
		if (atomic_load(&b->idle) == b->n_clients) {
			break; /* every client gave up (e.g. --total reached with errors) */
		}
		if (progress && t >= next_progress) {
			fprintf(stderr,
				"[%6.1fs] %10" PRIu64 " ops %10.0f ops/s (last %.0f ops/s) %" PRIu64
				" errors\n",
				(double)(t - start) / 1e9, done,
				(double)done / ((double)(t - start) / 1e9),
				(double)(done - last_done) / ((double)(t - last_t) / 1e9), errors);
			last_done = done;
			last_t = t;
			next_progress += cfg->progress_ms * NS_PER_MS;
		}
		sleep_ms(TICK_MS);
	}
	if (cfg->total == 0 || interrupted) {
		atomic_store(&b->stop_ns, t);
	}
	atomic_store(&b->phase, PH_STOP);
	if (!wait_idle(b, cfg->timeout_ms + DRAIN_GRACE_MS)) {
		fprintf(stderr, "cairn-bench: some operations did not finish; closing anyway\n");
	}
	if (cfg->total > 0 && !interrupted) {
		/* The run ends with its last measured operation. */
		t = start;
		for (i = 0; i < cfg->conns; i++) {
			if (b->handles[i].last_done_ns > t) {
				t = b->handles[i].last_done_ns;
			}
		}
	}
	*elapsed_ns = t - start;
	return 0;
}

/* failover: kill -9 `kill_pid` (the leader) and time until a put succeeds again. Each attempt
 * has a short deadline so that one stuck on a dead member or waiting for an election is
 * replaced quickly: the resolution of the figure is about FAILOVER_ATTEMPT_MS. */
static int failover(struct bench *b)
{
	const struct config *cfg = &b->cfg;
	char err[CAIRN_ERRMSG_SIZE] = "", key[64];
	uint64_t t0, t1, attempts = 0;
	int rv;

	snprintf(key, sizeof(key), "failover-probe");
	rv = cairn_put(b->handles[0].c, key, strlen(key), "0", 1, NULL, NULL, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "cairn-bench: failover: first put: %s: %s\n", cairn_strerror(rv),
			err);
		return rv;
	}
	t0 = now_ns();
	if (kill((pid_t)cfg->kill_pid, SIGKILL) != 0) {
		fprintf(stderr, "cairn-bench: kill %ld: %s\n", cfg->kill_pid, strerror(errno));
		return CAIRN_ESYS;
	}
	for (;;) {
		struct cairn_put_opts o = {.timeout_ms = FAILOVER_ATTEMPT_MS};

		attempts++;
		rv = cairn_put(b->handles[0].c, key, strlen(key), "1", 1, &o, NULL, err,
			       sizeof(err));
		t1 = now_ns();
		if (rv == 0 || interrupted || t1 - t0 > FAILOVER_MAX_MS * NS_PER_MS) {
			break;
		}
		sleep_ms(FAILOVER_PAUSE_MS);
	}
	if (rv != 0) {
		fprintf(stderr, "cairn-bench: failover: no write succeeded: %s: %s\n",
			cairn_strerror(rv), err);
		return rv;
	}
	if (cfg->json) {
		printf("{\"system\":\"cairn\",\"workload\":\"failover\",\"failover_ms\":%.1f,"
		       "\"attempts\":%" PRIu64 "}\n",
		       (double)(t1 - t0) / 1e6, attempts);
	} else {
		printf("failover: first write succeeded %.1f ms after kill -9 of pid %ld (%" PRIu64
		       " attempts)\n",
		       (double)(t1 - t0) / 1e6, cfg->kill_pid, attempts);
	}
	return 0;
}

/* ---- report ------------------------------------------------------------------------------ */

static double ms_of(uint64_t ns)
{
	return (double)ns / 1e6;
}

static void report(struct bench *b, uint64_t elapsed_ns)
{
	const struct config *cfg = &b->cfg;
	struct hist *all = malloc(sizeof(*all));
	uint64_t errs[N_ERR_CODES] = {0}, errors = 0, cas_failed = 0, ops;
	double secs = (double)elapsed_ns / 1e9, ops_s, q[5];
	const double qs[5] = {0.5, 0.9, 0.99, 0.999, 1.0};
	unsigned i, j;

	if (all == NULL) {
		fprintf(stderr, "cairn-bench: out of memory\n");
		return;
	}
	hist_init(all);
	for (i = 0; i < cfg->conns; i++) {
		struct handle *h = &b->handles[i];

		hist_merge(all, &h->hist);
		for (j = 0; j < N_ERR_CODES; j++) {
			errs[j] += h->errs[j];
			errors += h->errs[j];
		}
		cas_failed += h->cas_failed;
	}
	ops = all->total;
	ops_s = secs > 0 ? (double)ops / secs : 0;
	for (i = 0; i < 5; i++) {
		q[i] = ms_of(i == 4 ? all->max : hist_quantile(all, qs[i]));
	}
	if (cfg->json) {
		printf("{\"system\":\"cairn\",\"workload\":\"%s\",\"clients\":%u,\"ops\":%" PRIu64
		       ",\"ops_per_sec\":%.1f,\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,"
		       "\"p999_ms\":%.3f,\"max_ms\":%.3f,\"errors\":%" PRIu64
		       ",\"cas_failures\":%" PRIu64 ",\"conns\":%u,\"key_size\":%zu,"
		       "\"value_size\":%zu,\"key_space\":%" PRIu64 ",\"seconds\":%.3f",
		       workload_names[cfg->wl], cfg->clients, ops, ops_s, q[0], q[1], q[2], q[3],
		       q[4], errors, cas_failed, cfg->conns, cfg->key_size, cfg->value_size,
		       cfg->key_space, secs);
		if (cfg->wl == WL_MIXED) {
			printf(",\"read_ratio\":%.3f", cfg->ratio);
		}
		printf("}\n");
	} else {
		printf("workload %s: %u clients over %u connections, key %zu B, value %zu B, "
		       "key space %" PRIu64 "%s\n",
		       workload_names[cfg->wl], cfg->clients, cfg->conns, cfg->key_size,
		       cfg->value_size, cfg->key_space, cfg->wl == WL_MIXED ? ", mixed" : "");
		if (cfg->wl == WL_MIXED) {
			printf("read ratio %.2f\n", cfg->ratio);
		}
		printf("%-12s %12s %10s %10s %10s %10s %10s %10s %8s\n", "ops", "ops/s", "p50 ms",
		       "p90 ms", "p99 ms", "p99.9 ms", "max ms", "mean ms", "errors");
		printf("%-12" PRIu64 " %12.1f %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f %8" PRIu64
		       "\n",
		       ops, ops_s, q[0], q[1], q[2], q[3], q[4],
		       ops > 0 ? all->sum / (double)ops / 1e6 : 0.0, errors);
		printf("measured %.2f s (after %.2f s of warm-up)\n", secs,
		       (double)cfg->warmup_ms / 1000.0);
		if (cfg->wl == WL_TXN_CAS) {
			printf("compare failures (CAS lost a race, not errors): %" PRIu64 "\n",
			       cas_failed);
		}
		for (j = 1; j < N_ERR_CODES; j++) {
			if (errs[j] > 0) {
				printf("  %" PRIu64 " x %s\n", errs[j], cairn_strerror(-(int)j));
			}
		}
		for (i = 0; errors > 0 && i < cfg->conns; i++) {
			if (b->handles[i].last_err[0] != '\0') {
				printf("  last error: %s\n", b->handles[i].last_err);
				break;
			}
		}
	}
	fflush(stdout);
	free(all);
}

/* ---- options ----------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cairn-bench [options] [WORKLOAD]\n"
		"\n"
		"Closed-loop load on a Cairn cluster: each client keeps one request in flight.\n"
		"\n"
		"Workloads:\n"
		"  put          put random keys\n"
		"  get          linearizable get of random keys (the key space is preloaded)\n"
		"  get-serial   serializable get (any member's local state)\n"
		"  txn-cas      linearizable get of a key, then a txn: if mod_revision is still\n"
		"               what we read, put; one op = both; lost races are counted apart\n"
		"  mixed        gets and puts; --ratio is the fraction of gets\n"
		"  failover     put once, kill -9 --kill-pid (the leader), time until a put\n"
		"               succeeds again\n"
		"\n"
		"Options:\n"
		"  -w, --workload W       one of the above (or as the positional argument)\n"
		"  --endpoints h:p,...    members (default $CAIRN_ENDPOINTS, "
		"else " CAIRN_DEFAULT_ENDPOINT ")\n"
		"  -c, --clients N        concurrent logical clients (default %u)\n"
		"  --conns N              client handles (each: an I/O thread + a connection);\n"
		"                         clients are spread over them (default %u)\n"
		"  --key-size B           key bytes (default %u)\n"
		"  --value-size B         value bytes (default %u)\n"
		"  --key-space N          distinct keys (default %u)\n"
		"  -n, --total N          measure N operations ...\n"
		"  -d, --duration D       ... or for D (default %us); D like 500ms, 10s, 2m\n"
		"  --warmup D             unmeasured load first (default %ums)\n"
		"  --ratio R              mixed: fraction of reads, 0..1 (default %.1f)\n"
		"  --preload / --no-preload  write every key first (default: for reads, txn-cas\n"
		"                         and mixed)\n"
		"  --timeout D            deadline of each request (default %ums)\n"
		"  --progress D           progress line period on stderr for runs of 3 s or more\n"
		"                         (default %ums; 0 = none)\n"
		"  --seed N               key choice seed (default: from the clock)\n"
		"  --kill-pid PID         failover: the process to kill\n"
		"  --json                 print one JSON line instead of the table\n"
		"  -h, --help\n",
		DEFAULT_CLIENTS, DEFAULT_CONNS, DEFAULT_KEY_SIZE, DEFAULT_VALUE_SIZE,
		DEFAULT_KEY_SPACE, DEFAULT_DURATION_MS / 1000u, DEFAULT_WARMUP_MS, DEFAULT_RATIO,
		DEFAULT_TIMEOUT_MS, DEFAULT_PROGRESS_MS);
}

/* "1500", "1.5s", "1500ms", "2m", "100us"; a bare number is seconds. Milliseconds out. */
static bool parse_duration(const char *s, uint64_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0) {
		return false;
	}
	if (*end == '\0' || strcmp(end, "s") == 0) {
		v *= 1000.0;
	} else if (strcmp(end, "ms") == 0) {
	} else if (strcmp(end, "us") == 0) {
		v /= 1000.0;
	} else if (strcmp(end, "m") == 0) {
		v *= 60000.0;
	} else if (strcmp(end, "h") == 0) {
		v *= 3600000.0;
	} else {
		return false;
	}
	if (v > 1e12) {
		return false;
	}
	*ms = (uint64_t)(v + 0.5);
	return true;
}

static bool parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
		return false;
	}
	*out = v;
	return true;
}

static bool set_workload(struct config *cfg, const char *name)
{
	size_t i;

	for (i = 0; i < N_WORKLOADS; i++) {
		if (strcmp(name, workload_names[i]) == 0) {
			cfg->wl = (enum workload)i;
			return true;
		}
	}
	return false;
}

enum {
	OPT_ENDPOINTS = 256,
	OPT_CONNS,
	OPT_KEY_SIZE,
	OPT_VALUE_SIZE,
	OPT_KEY_SPACE,
	OPT_WARMUP,
	OPT_RATIO,
	OPT_PRELOAD,
	OPT_NO_PRELOAD,
	OPT_TIMEOUT,
	OPT_PROGRESS,
	OPT_SEED,
	OPT_KILL_PID,
	OPT_JSON,
};

static int parse_args(struct config *cfg, int argc, char **argv)
{
	static const struct option longs[] = {
	    {"workload", required_argument, NULL, 'w'},
	    {"endpoints", required_argument, NULL, OPT_ENDPOINTS},
	    {"clients", required_argument, NULL, 'c'},
	    {"conns", required_argument, NULL, OPT_CONNS},
	    {"key-size", required_argument, NULL, OPT_KEY_SIZE},
	    {"value-size", required_argument, NULL, OPT_VALUE_SIZE},
	    {"key-space", required_argument, NULL, OPT_KEY_SPACE},
	    {"total", required_argument, NULL, 'n'},
	    {"duration", required_argument, NULL, 'd'},
	    {"warmup", required_argument, NULL, OPT_WARMUP},
	    {"ratio", required_argument, NULL, OPT_RATIO},
	    {"preload", no_argument, NULL, OPT_PRELOAD},
	    {"no-preload", no_argument, NULL, OPT_NO_PRELOAD},
	    {"timeout", required_argument, NULL, OPT_TIMEOUT},
	    {"progress", required_argument, NULL, OPT_PROGRESS},
	    {"seed", required_argument, NULL, OPT_SEED},
	    {"kill-pid", required_argument, NULL, OPT_KILL_PID},
	    {"json", no_argument, NULL, OPT_JSON},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	bool wl_set = false, conns_set = false;
	uint64_t v;
	int opt;

	memset(cfg, 0, sizeof(*cfg));
	cfg->endpoints = getenv("CAIRN_ENDPOINTS");
	if (cfg->endpoints == NULL || cfg->endpoints[0] == '\0') {
		cfg->endpoints = CAIRN_DEFAULT_ENDPOINT;
	}
	cfg->wl = WL_PUT;
	cfg->clients = DEFAULT_CLIENTS;
	cfg->conns = DEFAULT_CONNS;
	cfg->key_size = DEFAULT_KEY_SIZE;
	cfg->value_size = DEFAULT_VALUE_SIZE;
	cfg->key_space = DEFAULT_KEY_SPACE;
	cfg->duration_ms = DEFAULT_DURATION_MS;
	cfg->warmup_ms = DEFAULT_WARMUP_MS;
	cfg->timeout_ms = DEFAULT_TIMEOUT_MS;
	cfg->progress_ms = DEFAULT_PROGRESS_MS;
	cfg->ratio = DEFAULT_RATIO;
	cfg->preload = -1;
	cfg->seed = now_ns() ^ (uint64_t)getpid();
	while ((opt = getopt_long(argc, argv, "w:c:n:d:h", longs, NULL)) != -1) {
		bool ok = true;

		switch (opt) {
		case 'w':
			ok = set_workload(cfg, optarg);
			wl_set = true;
			break;
		case OPT_ENDPOINTS:
			cfg->endpoints = optarg;
			break;
		case 'c':
			ok = parse_u64(optarg, 1, MAX_CLIENTS, &v);
			cfg->clients = (unsigned)v;
			break;
		case OPT_CONNS:
			ok = parse_u64(optarg, 1, MAX_CONNS, &v);
			cfg->conns = (unsigned)v;
			conns_set = true;
			break;
		case OPT_KEY_SIZE:
			ok = parse_u64(optarg, 2, MAX_KEY_SIZE, &v);
			cfg->key_size = (size_t)v;
			break;
		case OPT_VALUE_SIZE:
			ok = parse_u64(optarg, 0, MAX_VALUE_SIZE, &v);
			cfg->value_size = (size_t)v;
			break;
		case OPT_KEY_SPACE:
			ok = parse_u64(optarg, 1, UINT64_MAX / 2, &cfg->key_space);
			break;
		case 'n':
			ok = parse_u64(optarg, 1, UINT64_MAX / 2, &cfg->total);
			break;
		case 'd':
			ok = parse_duration(optarg, &cfg->duration_ms) && cfg->duration_ms > 0;
			break;
		case OPT_WARMUP:
			ok = parse_duration(optarg, &cfg->warmup_ms);
			break;
		case OPT_RATIO: {
			char *end;

			cfg->ratio = strtod(optarg, &end);
			ok = end != optarg && *end == '\0' && cfg->ratio >= 0 && cfg->ratio <= 1;
			break;
		}
		case OPT_PRELOAD:
			cfg->preload = 1;
			break;
		case OPT_NO_PRELOAD:
			cfg->preload = 0;
			break;
		case OPT_TIMEOUT:
			ok = parse_duration(optarg, &v) && v > 0 && v <= UINT32_MAX;
			cfg->timeout_ms = (uint32_t)v;
			break;
		case OPT_PROGRESS:
			ok = parse_duration(optarg, &cfg->progress_ms);
			break;
		case OPT_SEED:
			ok = parse_u64(optarg, 0, UINT64_MAX, &cfg->seed);
			break;
		case OPT_KILL_PID:
			ok = parse_u64(optarg, 1, INT32_MAX, &v);
			cfg->kill_pid = (long)v;
			break;
		case OPT_JSON:
			cfg->json = true;
			break;
		case 'h':
			usage(stdout);
			return 1;
		default:
			usage(stderr);
			return -1;
		}
		if (!ok) {
			fprintf(stderr, "cairn-bench: bad value for an option: %s\n",
				optarg != NULL ? optarg : "");
			return -1;
		}
	}
	if (optind < argc) {
		if (wl_set || optind + 1 < argc || !set_workload(cfg, argv[optind])) {
			fprintf(stderr, "cairn-bench: unexpected argument: %s\n", argv[optind]);
			usage(stderr);
			return -1;
		}
		wl_set = true;
	}
	if (cfg->wl == WL_FAILOVER && cfg->kill_pid == 0) {
		fprintf(stderr, "cairn-bench: failover needs --kill-pid\n");
		return -1;
	}
	if (cfg->wl == WL_FAILOVER) {
		cfg->clients = 1;
		cfg->conns = 1;
	}
	if (!conns_set && cfg->conns > cfg->clients) {
		cfg->conns = cfg->clients;
	}
	if (cfg->conns > cfg->clients) {
		fprintf(stderr, "cairn-bench: --conns (%u) is more than --clients (%u)\n",
			cfg->conns, cfg->clients);
		return -1;
	}
	if (digits_of(cfg->key_space - 1) > cfg->key_size - 1) {
		fprintf(stderr, "cairn-bench: --key-size %zu is too small for %" PRIu64 " keys\n",
			cfg->key_size, cfg->key_space);
		return -1;
	}
	if (cfg->preload < 0) {
		cfg->preload = cfg->wl == WL_GET || cfg->wl == WL_GET_SERIAL ||
			       cfg->wl == WL_TXN_CAS || cfg->wl == WL_MIXED;
	}
	return 0;
}

/* ---- main -------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	struct bench *b = calloc(1, sizeof(*b));
	struct sigaction sa;
	uint64_t elapsed = 0;
	unsigned writers;
	size_t i;
	int rv;

	if (b == NULL) {
		return 1;
	}
	rv = parse_args(&b->cfg, argc, argv);
	if (rv != 0) {
		free(b);
		return rv > 0 ? 0 : 3;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	b->value = malloc(b->cfg.value_size + 1);
	if (b->value == NULL) {
		return 1;
	}
	for (i = 0; i < b->cfg.value_size; i++) {
		b->value[i] = (char)('a' + (i * 7u + 3u) % 26u);
	}
	b->value[b->cfg.value_size] = '\0';
	b->ropts.timeout_ms = b->cfg.timeout_ms;
	b->ropts.serializable = b->cfg.wl == WL_GET_SERIAL;
	b->popts.timeout_ms = b->cfg.timeout_ms;

	writers = (b->cfg.clients + b->cfg.conns - 1u) / b->cfg.conns;
	if (b->cfg.preload && writers < PRELOAD_WRITERS / b->cfg.conns + 1u) {
		writers = PRELOAD_WRITERS / b->cfg.conns + 1u;
	}
	rv = handles_open(b, writers);
	if (rv != 0) {
		goto out;
	}
	if (b->cfg.wl == WL_FAILOVER) {
		rv = failover(b);
		goto out;
	}
	if (b->cfg.preload) {
		rv = preload(b);
		if (rv != 0) {
			goto out;
		}
	}
	rv = run(b, &elapsed);
	if (rv != 0) {
		goto out;
	}
	handles_close(b); /* joins the I/O threads: their counters are final */
	report(b, elapsed);

out:
	handles_close(b);
	clients_free(b);
	free(b->handles);
	free(b->value);
	free(b);
	if (rv != 0) {
		return 2;
	}
	return interrupted ? 130 : 0;
}
