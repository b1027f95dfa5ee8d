/* workload.c — the torture register workload: history recording (JSON lines) and the client
 * threads that drive get / put / cas against the cluster through libcairn. */
#include "test/torture/workload.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "test/torture/torture_rand.h"

#define WL_KEY_NAME_MAX	   16
#define WL_VALUE_MAX	   32
#define WL_JSON_LINE_MAX   4096
#define WL_MIN_CAP	   1024
#define WL_READER_EVERY	   3 /* every third worker only reads */
#define WL_ENDPOINTS_MAX   1024
#define WL_ENDPOINTS_ITEMS 16

int64_t wl_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- history -------------------------------------------------------------------------------- */

int wl_history_init(struct wl_history *h, int nkeys, int first_process, const char *stream_path)
{
	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->mu, NULL);
	h->nkeys = nkeys;
	h->next_process = first_process;
	h->next_value = 1;
	h->t0_ns = wl_now_ns();
	if (stream_path != NULL) {
		h->stream = fopen(stream_path, "w");
		if (h->stream == NULL)
			return -1;
	}
	return 0;
}

void wl_history_free(struct wl_history *h)
{
	wl_history_close_stream(h);
	for (size_t i = 0; i < h->n; i++) {
		free(h->ev[i].value);
		free(h->ev[i].from);
		free(h->ev[i].to);
		free(h->ev[i].orig_value);
	}
	free(h->ev);
	h->ev = NULL;
	h->n = h->cap = 0;
	pthread_mutex_destroy(&h->mu);
}

int wl_history_new_process(struct wl_history *h)
{
	pthread_mutex_lock(&h->mu);
	int p = h->next_process++;
	pthread_mutex_unlock(&h->mu);
	return p;
}

void wl_history_new_value(struct wl_history *h, char *buf, size_t len)
{
	pthread_mutex_lock(&h->mu);
	uint64_t v = h->next_value++;
	pthread_mutex_unlock(&h->mu);
	snprintf(buf, len, "v%" PRIu64, v);
}

static char *dup_or_null(const char *s, size_t len)
{
	if (s == NULL)
		return NULL;
	char *d = malloc(len + 1);
	if (d == NULL)
		abort(); /* a torture run without memory is over */
	memcpy(d, s, len);
	d[len] = '\0';
	return d;
}

static char *dup_str(const char *s)
{
	return s == NULL ? NULL : dup_or_null(s, strlen(s));
}

/* Appends (under mu) and streams the event; returns its index. */
static long append_locked(struct wl_history *h, const struct wl_event *e)
{
	if (h->n == h->cap) {
		size_t cap = h->cap ? h->cap * 2 : WL_MIN_CAP;
		struct wl_event *ev = realloc(h->ev, cap * sizeof(*ev));
		if (ev == NULL)
			abort();
		h->ev = ev;
		h->cap = cap;
	}
	h->ev[h->n] = *e;
	if (h->stream != NULL) {
		char line[WL_JSON_LINE_MAX];
		size_t l = wl_event_json(h, &h->ev[h->n], line, sizeof(line));
		if (l < sizeof(line))
			fprintf(h->stream, "%s\n", line);
	}
	return (long)h->n++;
}

long wl_history_invoke(struct wl_history *h, int process, enum wl_f f, int key, const char *value,
		       const char *from, const char *to)
{
	struct wl_event e = {
	    .process = process,
	    .type = WL_INVOKE,
	    .f = (uint8_t)f,
	    .key = key,
	    .value = dup_str(value),
	    .from = dup_str(from),
	    .to = dup_str(to),
	    .inv = -1,
	};
	pthread_mutex_lock(&h->mu);
	e.time_ns = wl_now_ns() - h->t0_ns;
	long i = append_locked(h, &e);
	pthread_mutex_unlock(&h->mu);
	return i;
}

long wl_history_complete(struct wl_history *h, long inv, enum wl_type type, const char *read_value,
			 size_t read_len, int err, uint64_t member, int64_t revision)
{
	pthread_mutex_lock(&h->mu);
	const struct wl_event *ie = &h->ev[inv];
	struct wl_event e = {
	    .process = ie->process,
	    .type = (uint8_t)type,
	    .f = ie->f,
	    .key = ie->key,
	    .inv = inv,
	    .err = err,
	    .member = member,
	    .revision = revision,
	};
	if (ie->f == WL_READ)
		e.value = type == WL_OK ? dup_or_null(read_value, read_len) : NULL;
	else
		e.value = dup_str(ie->value);
	e.from = dup_str(ie->from);
	e.to = dup_str(ie->to);
	e.time_ns = wl_now_ns() - h->t0_ns;
	long i = append_locked(h, &e);
	h->ev[inv].inv = i;
	pthread_mutex_unlock(&h->mu);
	return i;
}

void wl_history_close_stream(struct wl_history *h)
{
	pthread_mutex_lock(&h->mu);
	if (h->stream != NULL) {
		fclose(h->stream);
		h->stream = NULL;
	}
	pthread_mutex_unlock(&h->mu);
}

const char *wl_f_name(int f)
{
	switch (f) {
	case WL_READ:
		return "read";
	case WL_WRITE:
		return "write";
	case WL_CAS:
		return "cas";
	default:
		return "?";
	}
}

const char *wl_type_name(int type)
{
	switch (type) {
	case WL_INVOKE:
		return "invoke";
	case WL_OK:
		return "ok";
	case WL_FAIL:
		return "fail";
	case WL_INFO:
		return "info";
	default:
		return "?";
	}
}

/* Appends a JSON string (or null) to buf at *pos, never overflowing; *pos counts what was
 * needed. Bytes outside printable ASCII are written as \u00XX. */
static void json_str(char *buf, size_t len, size_t *pos, const char *s)
{
	char tmp[8];
#define PUT(str)                                                                                   \
	do {                                                                                       \
		const char *p_ = (str);                                                            \
		size_t l_ = strlen(p_);                                                            \
		if (*pos < len)                                                                    \
			memcpy(buf + *pos, p_, *pos + l_ < len ? l_ : len - *pos);                 \
		*pos += l_;                                                                        \
	} while (0)
	if (s == NULL) {
		PUT("null");
		return;
	}
	PUT("\"");
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)*p;
			tmp[2] = '\0';
		} else if (*p < 0x20 || *p >= 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\u%04x", (unsigned)*p);
		} else {
			tmp[0] = (char)*p;
			tmp[1] = '\0';
		}
		PUT(tmp);
	}
	PUT("\"");
#undef PUT
}

size_t wl_event_json(const struct wl_history *h, const struct wl_event *e, char *buf, size_t len)
{
	(void)h;
	size_t pos = 0;
	char head[128], key[WL_KEY_NAME_MAX + 8];
	snprintf(head, sizeof(head),
		 "{\"process\":%d,\"type\":\"%s\",\"f\":\"%s\",\"key\":", e->process,
		 wl_type_name(e->type), wl_f_name(e->f));
	snprintf(key, sizeof(key), "k%d", e->key);
#define APPEND(str)                                                                                \
	do {                                                                                       \
		const char *p_ = (str);                                                            \
		size_t l_ = strlen(p_);                                                            \
		if (pos < len)                                                                     \
			memcpy(buf + pos, p_, pos + l_ < len ? l_ : len - pos);                    \
		pos += l_;                                                                         \
	} while (0)
	APPEND(head);
	json_str(buf, len, &pos, key);
	if (e->f == WL_CAS) {
		APPEND(",\"from\":");
		json_str(buf, len, &pos, e->from);
		APPEND(",\"to\":");
		json_str(buf, len, &pos, e->to);
	} else if (e->f == WL_WRITE) {
		APPEND(",\"value\":");
		json_str(buf, len, &pos, e->value);
	} else if (e->type == WL_OK) { /* read: a value only on ok */
		APPEND(",\"value\":");
		json_str(buf, len, &pos, e->value);
	}
	if ((e->type == WL_FAIL || e->type == WL_INFO) && e->err != 0) {
		APPEND(",\"error\":");
		json_str(buf, len, &pos, cairn_strerror(e->err));
	}
	if (e->member != 0 && e->type != WL_INVOKE) {
		char node[40];
		snprintf(node, sizeof(node), ",\"node\":%" PRIu64, e->member);
		APPEND(node);
	}
	char tail[80];
	if (e->revision > 0)
		snprintf(tail, sizeof(tail), ",\"revision\":%" PRId64 ",\"time\":%" PRId64 "}",
			 e->revision, e->time_ns);
	else
		snprintf(tail, sizeof(tail), ",\"time\":%" PRId64 "}", e->time_ns);
	APPEND(tail);
#undef APPEND
	if (len > 0)
		buf[pos < len ? pos : len - 1] = '\0';
	return pos;
}

int wl_history_write(const struct wl_history *h, const char *path)
{
	FILE *f = fopen(path, "w");
	if (f == NULL)
		return -1;
	char *line = malloc(WL_JSON_LINE_MAX);
	if (line == NULL) {
		fclose(f);
		return -1;
	}
	for (size_t i = 0; i < h->n; i++) {
		size_t l = wl_event_json(h, &h->ev[i], line, WL_JSON_LINE_MAX);
		if (l < WL_JSON_LINE_MAX)
			fprintf(f, "%s\n", line);
	}
	free(line);
	return fclose(f) == 0 ? 0 : -1;
}

/* ---- operations ----------------------------------------------------------------------------- */

/* Whether a write that failed with `rv` definitely did not apply (see wl_exec). */
static bool write_error_is_definite(int rv)
{
	return rv != CAIRN_EUNKNOWN;
}

enum wl_type wl_exec(struct wl_history *h, cairn_client *c, int *process, enum wl_f f, int key,
		     const char *value, const char *from, const char *to, uint32_t timeout_ms,
		     char **out_value)
{
	char k[WL_KEY_NAME_MAX];
	snprintf(k, sizeof(k), "k%d", key);
	size_t klen = strlen(k);
	if (out_value != NULL)
		*out_value = NULL;
	enum wl_type type = WL_FAIL;
	if (f == WL_READ) {
		long inv = wl_history_invoke(h, *process, f, key, NULL, NULL, NULL);
		struct cairn_range_opts o = {.timeout_ms = timeout_ms};
		struct cairn_range_result *r = NULL;
		int rv = cairn_get(c, k, klen, &o, &r, NULL, 0);
		if (rv == 0) {
			const char *v = r->n_kvs > 0 ? r->kvs[0].value : NULL;
			size_t vl = r->n_kvs > 0 ? r->kvs[0].value_len : 0;
			wl_history_complete(h, inv, WL_OK, v, vl, 0, r->header.member_id,
					    r->header.revision);
			if (out_value != NULL)
				*out_value = dup_or_null(v, vl);
			cairn_range_result_free(r);
			type = WL_OK;
		} else {
			wl_history_complete(h, inv, WL_FAIL, NULL, 0, rv, 0, 0);
		}
		return type;
	}
	long inv = wl_history_invoke(h, *process, f, key, f == WL_WRITE ? value : NULL,
				     f == WL_CAS ? from : NULL, f == WL_CAS ? to : NULL);
	int rv;
	uint64_t member = 0;
	int64_t revision = 0;
	bool succeeded = true;
	if (f == WL_WRITE) {
		struct cairn_put_opts o = {.timeout_ms = timeout_ms};
		struct cairn_put_result *r = NULL;
		rv = cairn_put(c, k, klen, value, strlen(value), &o, &r, NULL, 0);
		if (rv == 0) {
			member = r->header.member_id;
			revision = r->header.revision;
		}
		cairn_put_result_free(r);
	} else {
		cairn_txn *t = cairn_txn_new();
		if (t == NULL)
			abort();
		rv = cairn_txn_compare_value(t, CAIRN_CMP_EQUAL, k, klen, from, strlen(from));
		if (rv == 0)
			rv = cairn_txn_put(t, CAIRN_TXN_SUCCESS, k, klen, to, strlen(to), false);
		struct cairn_txn_result *r = NULL;
		if (rv == 0)
			rv = cairn_txn_commit(c, t, timeout_ms, &r, NULL, 0);
		if (rv == 0) {
			member = r->header.member_id;
			revision = r->header.revision;
			succeeded = r->succeeded;
		}
		cairn_txn_result_free(r);
		cairn_txn_free(t);
	}
	if (rv == 0 && succeeded)
		type = WL_OK;
	else if (rv == 0 || write_error_is_definite(rv))
		type = WL_FAIL;
	else
		type = WL_INFO;
	wl_history_complete(h, inv, type, NULL, 0, rv, member, revision);
	if (type == WL_INFO)
		*process = wl_history_new_process(h);
	return type;
}

/* ---- workers -------------------------------------------------------------------------------- */

struct worker {
	struct workload *w;
	int index;
	bool reader; /* only reads */
	pthread_t thread;
	bool started;
	cairn_client *c;
	uint64_t rng;
	int process;
};

struct workload {
	struct wl_config cfg;
	struct wl_history *h;
	struct worker *workers;
	pthread_mutex_t mu;
	bool stop;   /* under mu */
	char **last; /* per key: the last value seen (read / written), for cas; under mu */
};

static bool should_stop(struct workload *w)
{
	pthread_mutex_lock(&w->mu);
	bool s = w->stop;
	pthread_mutex_unlock(&w->mu);
	return s;
}

static void note_value(struct workload *w, int key, const char *v)
{
	pthread_mutex_lock(&w->mu);
	free(w->last[key]);
	w->last[key] = dup_str(v);
	pthread_mutex_unlock(&w->mu);
}

static void sleep_ns(int64_t ns)
{
	if (ns <= 0)
		return;
	struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void *worker_main(void *arg)
{
	struct worker *wk = arg;
	struct workload *w = wk->w;
	const struct wl_config *cfg = &w->cfg;
	int64_t period = cfg->rate > 0 ? (int64_t)1000000000 * cfg->clients / cfg->rate : 0;
	/* spread the workers' first operations over one period */
	int64_t next = wl_now_ns() + (period > 0 ? period * wk->index / cfg->clients : 0);
	while (!should_stop(w)) {
		if (period > 0) {
			int64_t now = wl_now_ns();
			/* sleep in slices so that a stop is noticed */
			while (now < next && !should_stop(w)) {
				int64_t d = next - now;
				sleep_ns(d > 50000000 ? 50000000 : d);
				now = wl_now_ns();
			}
			if (should_stop(w))
				break;
			next = (next + period > now) ? next + period : now;
		}
		int key = (int)t_rand_below(&wk->rng, (uint64_t)cfg->keys);
		int dice = (int)t_rand_below(&wk->rng, 100);
		char val[WL_VALUE_MAX], from[WL_VALUE_MAX];
		char *read = NULL;
		if (wk->reader || dice < cfg->read_pct) {
			if (wl_exec(w->h, wk->c, &wk->process, WL_READ, key, NULL, NULL, NULL,
				    cfg->op_timeout_ms, &read) == WL_OK)
				note_value(w, key, read);
			free(read);
			continue;
		}
		wl_history_new_value(w->h, val, sizeof(val));
		bool cas = dice < cfg->read_pct + cfg->cas_pct;
		if (cas) {
			pthread_mutex_lock(&w->mu);
			bool known = w->last[key] != NULL;
			if (known)
				snprintf(from, sizeof(from), "%s", w->last[key]);
			pthread_mutex_unlock(&w->mu);
			if (!known) /* nothing to compare with yet: a write instead */
				cas = false;
		}
		enum wl_type t =
		    wl_exec(w->h, wk->c, &wk->process, cas ? WL_CAS : WL_WRITE, key, val,
			    cas ? from : NULL, cas ? val : NULL, cfg->op_timeout_ms, NULL);
		if (t == WL_OK)
			note_value(w, key, val);
	}
	return NULL;
}

/* The comma-separated list `in`, starting with its (k mod n)-th entry, into out. */
static void rotate_endpoints(const char *in, int k, char *out, size_t len)
{
	const char *item[WL_ENDPOINTS_ITEMS];
	size_t ilen[WL_ENDPOINTS_ITEMS];
	int n = 0;
	for (const char *p = in; *p && n < WL_ENDPOINTS_ITEMS;) {
		const char *comma = strchr(p, ',');
		size_t l = comma ? (size_t)(comma - p) : strlen(p);
		item[n] = p;
		ilen[n++] = l;
		p += l + (comma ? 1 : 0);
	}
	size_t pos = 0;
	out[0] = '\0';
	for (int j = 0; j < n && pos < len; j++) {
		int x = (k + j) % n;
		pos += (size_t)snprintf(out + pos, len - pos, "%s%.*s", j ? "," : "", (int)ilen[x],
					item[x]);
	}
}

int wl_start(struct workload **out, const struct wl_config *cfg, struct wl_history *h, char *err,
	     size_t errlen)
{
	*out = NULL;
	struct workload *w = calloc(1, sizeof(*w));
	if (w == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	w->cfg = *cfg;
	w->h = h;
	pthread_mutex_init(&w->mu, NULL);
	w->last = calloc((size_t)cfg->keys, sizeof(*w->last));
	w->workers = calloc((size_t)cfg->clients, sizeof(*w->workers));
	if (w->last == NULL || w->workers == NULL) {
		snprintf(err, errlen, "out of memory");
		wl_stop(w);
		return -1;
	}
	struct cairn_options o = {
	    .timeout_ms = cfg->op_timeout_ms,
	    .connect_timeout_ms = cfg->op_timeout_ms < 500 ? cfg->op_timeout_ms : 500,
	};
	for (int i = 0; i < cfg->clients; i++) {
		struct worker *wk = &w->workers[i];
		wk->w = w;
		wk->index = i;
		wk->reader = i % WL_READER_EVERY == WL_READER_EVERY - 1;
		wk->rng = t_rand_seed(cfg->seed, 0x776f726bu + (uint64_t)i);
		wk->process = wl_history_new_process(h);
		char msg[CAIRN_ERRMSG_SIZE];
		char eps[WL_ENDPOINTS_MAX];
		rotate_endpoints(cfg->endpoints, i, eps, sizeof(eps));
		int rv = cairn_connect(eps, &o, &wk->c, msg, sizeof(msg));
		if (rv != 0) {
			snprintf(err, errlen, "cairn_connect: %s (%s)", cairn_strerror(rv), msg);
			wl_stop(w);
			return -1;
		}
	}
	for (int i = 0; i < cfg->clients; i++) {
		struct worker *wk = &w->workers[i];
		if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
			snprintf(err, errlen, "pthread_create: %s", strerror(errno));
			wl_stop(w);
			return -1;
		}
		wk->started = true;
	}
	*out = w;
	return 0;
}

void wl_stop(struct workload *w)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_mutex_unlock(&w->mu);
	for (int i = 0; w->workers != NULL && i < w->cfg.clients; i++) {
		struct worker *wk = &w->workers[i];
		if (wk->started)
			pthread_join(wk->thread, NULL);
		if (wk->c != NULL)
			cairn_close(wk->c);
	}
	for (int i = 0; w->last != NULL && i < w->cfg.keys; i++)
		free(w->last[i]);
	free(w->last);
	free(w->workers);
	pthread_mutex_destroy(&w->mu);
	free(w);
}
