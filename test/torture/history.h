/* history.h — operation histories of the fault-injection harness: building, JSON lines I/O. */
#ifndef CAIRN_TORTURE_HISTORY_H
#define CAIRN_TORTURE_HISTORY_H

/*
 * A history is what concurrent clients did to the store: for every operation, who issued it
 * (a process), what it was (read, write, cas, delete of one key), when it was invoked and when
 * and how it completed. The workload client records it as JSON lines (one event per line, the
 * format is specified in docs/checker.md); the linearizability checker (lincheck.h) reads it.
 *
 * Events and operations
 * ---------------------
 * A line is an *event*: an invocation or a completion (ok, fail or info). history_add_event()
 * pairs each completion with the pending invocation of the same process, so the history holds
 * *operations* (one per invocation), in invocation order of the input. Processes are
 * sequential: a process has at most one pending operation. An operation with no completion
 * (yet) has status HISTORY_STATUS_PENDING; the checker treats it like `info`.
 *
 * Strings
 * -------
 * Every string of an operation (key, value, from, to, error) is copied into the history and
 * interned: two equal strings of one history are the same pointer, so the checker compares
 * values by pointer. They live as long as the history. NULL stands for JSON null (a missing
 * key, for reads and cas). Strings may not contain NUL bytes.
 *
 * Errors
 * ------
 * Functions return 0 or a negative HISTORY_E* code, and write a NUL-terminated message with
 * context (line number, field) into the optional `errmsg` buffer (NULL/0 to skip). On error the
 * history is left as it was before the call (an event is added entirely or not at all).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum history_error {
	HISTORY_EOK = 0,
	HISTORY_ENOMEM = -1, /* out of memory */
	HISTORY_EIO = -2,    /* the file could not be opened or read */
	HISTORY_EPARSE = -3, /* a line is not a well-formed event (syntax, types, fields) */
	HISTORY_EINVAL = -4, /* an event contradicts the history (pairing, times) or bad argument */
};

/* A fixed, static description of `err` ("unknown error" for codes not in the list). */
const char *history_strerror(int err);

/* A good size for errmsg buffers. */
#define HISTORY_ERRMSG_SIZE 256u
/* Longest line the reader accepts, in bytes (without the newline). */
#define HISTORY_MAX_LINE (1u << 20)
/* Longest string (key, value, error), in bytes once decoded. */
#define HISTORY_MAX_STRING (64u * 1024u)
/* Deepest nesting of unknown JSON values that the reader skips. */
#define HISTORY_MAX_DEPTH 32u
/* complete_time of an operation that has no completion. */
#define HISTORY_TIME_NONE INT64_MAX

enum history_f {
	HISTORY_READ = 0,
	HISTORY_WRITE,	/* "value" := value */
	HISTORY_CAS,	/* if current == "from" then current := "to" (from/to may be null) */
	HISTORY_DELETE, /* current := null (a write of null) */
};

enum history_type {
	HISTORY_INVOKE = 0,
	HISTORY_OK,   /* it took effect (a read: it returned "value") */
	HISTORY_FAIL, /* it definitely did not take effect (a cas: the compare did not hold) */
	HISTORY_INFO, /* unknown outcome: may take effect at any time after its invocation, or never
		       */
};

enum history_status {
	HISTORY_STATUS_PENDING = 0, /* no completion event (yet): same meaning as info */
	HISTORY_STATUS_OK,
	HISTORY_STATUS_FAIL,
	HISTORY_STATUS_INFO,
};

/* One line of the history, as read or as about to be written. Strings are borrowed. */
struct history_event {
	int64_t process;
	enum history_type type;
	enum history_f f;
	const char *key;   /* required on invocations; optional on completions (must match) */
	const char *value; /* invoke write: the value (not null); ok read: the value read */
	const char *from;  /* invoke cas */
	const char *to;	   /* invoke cas */
	const char *error; /* optional text (NULL: absent); a `fail` cas with an error: see below */
	int64_t time;	   /* monotonic nanoseconds */
	int64_t revision;  /* optional: the store revision the server reported */
	bool has_value;	   /* "value" present (possibly null) */
	bool has_from, has_to, has_revision;
	unsigned line; /* line number in the file (1-based), 0 when built in memory */
};

/* One operation: an invocation and its completion, if any. */
struct history_op {
	int64_t process;
	enum history_f f;
	enum history_status status;
	const char *key;
	/* write: the value written; read with status ok: the value read (NULL: null); else NULL */
	const char *value;
	const char *from, *to; /* cas only */
	/* The completion's "error" text (NULL if none). A cas that ends `fail` WITH an error was
	 * refused before taking effect (e.g. a timeout that did not apply) and imposes nothing; a
	 * `fail` cas WITHOUT an error means the compare did not hold. */
	const char *error;
	int64_t invoke_time, complete_time; /* complete_time: HISTORY_TIME_NONE if pending */
	int64_t revision;		    /* valid if has_revision */
	bool has_revision;
	unsigned invoke_line, complete_line; /* 0 if unknown */
};

struct history_impl;

/* Operations in invocation order of the input. Read-only for users. */
struct history {
	struct history_op *ops;
	size_t n_ops;
	size_t n_events; /* events added (lines that were not blank) */
	struct history_impl *impl;
};

/* Initialises an empty history. Returns 0 or HISTORY_ENOMEM. */
int history_init(struct history *h);

/* Releases everything `h` owns (every string and op pointer becomes invalid). NULL-safe. */
void history_free(struct history *h);

/*
 * Adds one event. An invocation starts a new operation of its process (HISTORY_EINVAL if that
 * process still has one pending); a completion completes the pending operation of its process
 * (HISTORY_EINVAL if none, if f or key differ, if a field contradicts the invocation, or if its
 * time is before the invocation's). Required fields (HISTORY_EPARSE if missing or of the wrong
 * kind): invoke read: key; invoke write: key, value (a string); invoke cas: key, from, to;
 * invoke delete: key; ok read: value (a string or null). Fields that do not apply are ignored.
 * `ev->line`, if not 0, is quoted in messages and stored in the op.
 * If `op_index` is not NULL it receives the index of the operation the event belongs to.
 */
int history_add_event(struct history *h, const struct history_event *ev, size_t *op_index,
		      char *errmsg, size_t errlen);

/*
 * Parses one JSON line (without its newline, `len` bytes, need not be NUL-terminated) into
 * `ev`. Strings in `ev` point into `scratch`, a buffer of at least 2 * len + 16 bytes owned by
 * the caller, and are valid while it is. Returns 0 or HISTORY_EPARSE (message names the
 * problem, and `line` if not 0). Does not look at any history: it checks syntax and types only.
 */
int history_parse_event(const char *text, size_t len, unsigned line, struct history_event *ev,
			char *scratch, char *errmsg, size_t errlen);

/*
 * Reads JSON lines from `in` to its end and adds each event to `h`; blank lines are skipped.
 * Stops at the first bad line: HISTORY_EPARSE or HISTORY_EINVAL with "line N: ..." in errmsg
 * (events before it stay in `h`), HISTORY_EIO on a read error, HISTORY_ENOMEM.
 */
int history_read(struct history *h, FILE *in, char *errmsg, size_t errlen);

/* history_read() on the file at `path` ("-": standard input). HISTORY_EIO if it cannot be
 * opened. */
int history_load_file(struct history *h, const char *path, char *errmsg, size_t errlen);

/*
 * Writes `ev` as one JSON line (with its newline) in the documented format, with only the
 * fields that apply to its type and f. Returns 0 or HISTORY_EIO (a write error) or
 * HISTORY_EINVAL (a NULL key). The workload client uses this to record histories.
 */
int history_write_event(FILE *out, const struct history_event *ev);

/* Fixed names used in the format: "read", "write", "cas", "delete"; "invoke", "ok"...; and for
 * statuses "pending", "ok", "fail", "info". */
const char *history_f_name(enum history_f f);
const char *history_type_name(enum history_type t);
const char *history_status_name(enum history_status s);

#endif
