/* workload.h — the torture register workload: concurrent libcairn clients doing get / put /
 * compare-and-swap on a few keys, every operation recorded as invoke + ok / fail / info. */
#ifndef CAIRN_TORTURE_WORKLOAD_H
#define CAIRN_TORTURE_WORKLOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "client/cairn.h"

/*
 * The history
 * -----------
 * Every operation is an `invoke` event followed (on the same process) by exactly one
 * completion: `ok`, `fail` (definitely did not take effect) or `info` (outcome unknown).
 * A process is sequential: one operation at a time; after an `info` its operation may still
 * be pending in the cluster, so the worker continues under a NEW process id (as in Jepsen).
 * Times are CLOCK_MONOTONIC nanoseconds since the run started (wl_history.t0_ns).
 *
 * history.jsonl holds one JSON object per line, in the order events happened:
 *   {"process":3,"type":"invoke","f":"write","key":"k1","value":"v17","time":123456789}
 *   {"process":3,"type":"ok","f":"write","key":"k1","value":"v17","time":123999999}
 *   {"process":4,"type":"invoke","f":"cas","key":"k1","from":"v17","to":"v18","time":...}
 *   {"process":5,"type":"invoke","f":"read","key":"k0","time":...}
 *   {"process":5,"type":"ok","f":"read","key":"k0","value":null,"time":...}
 *   {"process":6,"type":"info","f":"write","key":"k2","value":"v20","error":"...","time":...}
 * Completions answered by a member carry "node" (its id) and "revision" (the answer's header
 * revision); the checker ignores both, they are for reading a report.
 * Completions of type fail / info carry "error" (libcairn's text for the error) except a cas
 * whose compare did not hold: a `fail` cas WITHOUT "error" is a compare that failed, WITH one
 * it was refused before taking effect and says nothing about the value.
 * Written values are unique in a run ("v<n>"), so a read names the write it observed.
 */

enum wl_f { WL_READ = 0, WL_WRITE = 1, WL_CAS = 2 };
enum wl_type { WL_INVOKE = 0, WL_OK = 1, WL_FAIL = 2, WL_INFO = 3 };

struct wl_event {
	int process;
	uint8_t type; /* enum wl_type */
	uint8_t f;    /* enum wl_f */
	int key;      /* index: key "k<key>" */
	char *value;  /* write: the value; read ok: what was read (NULL: missing key) */
	char *from;   /* cas */
	char *to;     /* cas */
	int64_t time_ns;
	/* diagnostics, not part of history.jsonl */
	long inv; /* completions: index of the invoke event; invokes: of the completion, -1 */
	int err;  /* fail / info: the libcairn error (0 for a cas whose compare failed) */
	uint64_t member;  /* ok / cas fail: the member that answered (header.member_id) */
	int64_t revision; /* ok / cas fail: header.revision of the answer (0: none) */
	bool injected;	  /* value rewritten by --inject-anomaly */
	char *orig_value; /* the value before the injection */
};

struct wl_history {
	pthread_mutex_t mu;
	struct wl_event *ev;
	size_t n, cap;
	int64_t t0_ns;
	int nkeys;
	int next_process;    /* under mu */
	uint64_t next_value; /* under mu */
	FILE *stream;	     /* history.jsonl while the run goes on (NULL: none) */
};

/* Monotonic nanoseconds (absolute). */
int64_t wl_now_ns(void);

/* Initialises an empty history with `nkeys` keys, processes numbered from `first_process`,
 * streaming to `stream_path` (NULL: memory only). Returns 0 or -1 (errno). */
int wl_history_init(struct wl_history *h, int nkeys, int first_process, const char *stream_path);
void wl_history_free(struct wl_history *h);
/* A process id never used before. */
int wl_history_new_process(struct wl_history *h);
/* A value never written before: "v<n>" in buf. */
void wl_history_new_value(struct wl_history *h, char *buf, size_t len);
/* Appends an invoke; returns its index. Strings are copied. */
long wl_history_invoke(struct wl_history *h, int process, enum wl_f f, int key, const char *value,
		       const char *from, const char *to);
/* Appends the completion of invoke `inv`. `read_value` for an ok read (NULL: missing key,
 * read_len bytes otherwise); `err` the libcairn error of a fail / info (written as "error");
 * member and revision from the answer's header (0: none). Returns the index of the completion. */
long wl_history_complete(struct wl_history *h, long inv, enum wl_type type, const char *read_value,
			 size_t read_len, int err, uint64_t member, int64_t revision);
/* Flushes and closes the stream (events keep being recorded in memory). */
void wl_history_close_stream(struct wl_history *h);
/* Writes the whole history, one JSON object per line, to `path`. Returns 0 or -1. */
int wl_history_write(const struct wl_history *h, const char *path);
/* One event as a JSON line (no newline) into buf; returns the length it needed. */
size_t wl_event_json(const struct wl_history *h, const struct wl_event *e, char *buf, size_t len);

const char *wl_f_name(int f);
const char *wl_type_name(int type);

/*
 * Operations
 * ----------
 * wl_exec runs one operation synchronously on client `c` as process *process, recording its
 * invoke and completion, and moves *process to a new id after an `info`. Mapping:
 *   read  = cairn_get (linearizable); any error -> fail (a read changes nothing)
 *   write = cairn_put
 *   cas   = txn { value(key) == from } success { put key = to }; compare failed -> fail
 * For writes and cas, CAIRN_EUNKNOWN -> info; every other error -> fail, because libcairn
 * guarantees (cairn.h, "Exactly-once writes") that the write was then not applied: the
 * checker holds it to that.
 * Returns the completion type; *out_value (if not NULL) receives a copy of an ok read's value
 * (NULL for a missing key) to free.
 */
enum wl_type wl_exec(struct wl_history *h, cairn_client *c, int *process, enum wl_f f, int key,
		     const char *value, const char *from, const char *to, uint32_t timeout_ms,
		     char **out_value);

/* Workers: `clients` threads, each with its own cairn_client and process id, running a random
 * mix until wl_stop(). Worker i lists the endpoints starting with member (i mod n) + 1, so the
 * clients spread over the members; every third worker (i mod 3 == 2) only reads: since reads
 * are not redirected to the leader, it keeps reading from whichever member it is connected to
 * (linearizable reads on followers, and on members cut off from the others). */
struct wl_config {
	const char *endpoints; /* comma-separated client addresses */
	int clients;
	int keys;
	uint32_t op_timeout_ms;
	int rate;      /* total operations per second started, at most; 0 = no limit */
	int read_pct;  /* share of reads (the rest is split between writes and cas), for the
			* workers that do not only read */
	int cas_pct;   /* share of cas */
	uint64_t seed; /* per-worker generators are derived from it */
};

struct workload;

/* Starts the workers. Returns 0, or -1 with a message in err. */
int wl_start(struct workload **out, const struct wl_config *cfg, struct wl_history *h, char *err,
	     size_t errlen);
/* Stops them: each finishes its operation in flight (bounded by op_timeout_ms); frees. */
void wl_stop(struct workload *w);

#endif /* CAIRN_TORTURE_WORKLOAD_H */
