/* history.c — building a history in memory: interned strings, pairing completions with invocations.
 */
#include "test/torture/history.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/* Strings are copied into chunks of this size (a longer string gets a chunk of its own). */
#define STRING_CHUNK_SIZE (64u * 1024u)
/* Initial slot counts of the open-addressing tables (powers of two). */
#define STRTAB_INITIAL_SLOTS  256u
#define PROCMAP_INITIAL_SLOTS 64u
#define OPS_INITIAL_CAPACITY  256u
/* "no pending operation" in the process map. */
#define NO_OP SIZE_MAX

struct string_chunk {
	struct string_chunk *next;
	size_t used, size;
	char data[];
};

struct strtab_slot {
	const char *s; /* NULL: free */
	uint64_t hash;
};

struct proc_slot {
	int64_t process;
	size_t pending; /* op index, or NO_OP */
	bool used;
};

struct history_impl {
	struct string_chunk *chunks;
	struct strtab_slot *strs;
	size_t strs_cap, strs_n;
	struct proc_slot *procs;
	size_t procs_cap, procs_n;
	size_t ops_cap;
};

const char *history_strerror(int err)
{
	switch (err) {
	case HISTORY_EOK:
		return "success";
	case HISTORY_ENOMEM:
		return "out of memory";
	case HISTORY_EIO:
		return "input/output error";
	case HISTORY_EPARSE:
		return "malformed history line";
	case HISTORY_EINVAL:
		return "inconsistent history event";
	default:
		return "unknown error";
	}
}

const char *history_f_name(enum history_f f)
{
	switch (f) {
	case HISTORY_READ:
		return "read";
	case HISTORY_WRITE:
		return "write";
	case HISTORY_CAS:
		return "cas";
	case HISTORY_DELETE:
		return "delete";
	}
	return "?";
}

const char *history_type_name(enum history_type t)
{
	switch (t) {
	case HISTORY_INVOKE:
		return "invoke";
	case HISTORY_OK:
		return "ok";
	case HISTORY_FAIL:
		return "fail";
	case HISTORY_INFO:
		return "info";
	}
	return "?";
}

const char *history_status_name(enum history_status s)
{
	switch (s) {
	case HISTORY_STATUS_PENDING:
		return "pending";
	case HISTORY_STATUS_OK:
		return "ok";
	case HISTORY_STATUS_FAIL:
		return "fail";
	case HISTORY_STATUS_INFO:
		return "info";
	}
	return "?";
}

/* Formats "line N: " (when line != 0) followed by the message into errmsg. */
static void errorf(char *errmsg, size_t errlen, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void errorf(char *errmsg, size_t errlen, unsigned line, const char *fmt, ...)
{
	if (errmsg == NULL || errlen == 0)
		return;
	int n = 0;
	if (line != 0)
		n = snprintf(errmsg, errlen, "line %u: ", line);
	if (n < 0 || (size_t)n >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
}

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 1469598103934665603ull; /* FNV-1a, then a final mix */
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ull;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t hash_int(int64_t v)
{
	uint64_t x = (uint64_t)v + 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

int history_init(struct history *h)
{
	memset(h, 0, sizeof(*h));
	h->impl = calloc(1, sizeof(*h->impl));
	if (h->impl == NULL)
		return HISTORY_ENOMEM;
	return 0;
}

void history_free(struct history *h)
{
	if (h == NULL)
		return;
	if (h->impl != NULL) {
		struct string_chunk *c = h->impl->chunks;
		while (c != NULL) {
			struct string_chunk *next = c->next;
			free(c);
			c = next;
		}
		free(h->impl->strs);
		free(h->impl->procs);
		free(h->impl);
	}
	free(h->ops);
	memset(h, 0, sizeof(*h));
}

static int strtab_grow(struct history_impl *im)
{
	size_t cap = im->strs_cap == 0 ? STRTAB_INITIAL_SLOTS : im->strs_cap * 2;
	struct strtab_slot *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return HISTORY_ENOMEM;
	for (size_t i = 0; i < im->strs_cap; i++) {
		if (im->strs[i].s == NULL)
			continue;
		size_t j = im->strs[i].hash & (cap - 1);
		while (slots[j].s != NULL)
			j = (j + 1) & (cap - 1);
		slots[j] = im->strs[i];
	}
	free(im->strs);
	im->strs = slots;
	im->strs_cap = cap;
	return 0;
}

/* Returns the interned copy of `s` (NULL stays NULL), or sets *rv to HISTORY_ENOMEM. */
static const char *intern(struct history_impl *im, const char *s, int *rv)
{
	if (s == NULL)
		return NULL;
	if ((im->strs_n + 1) * 2 > im->strs_cap && strtab_grow(im) != 0) {
		*rv = HISTORY_ENOMEM;
		return NULL;
	}
	size_t len = strlen(s);
	uint64_t hash = hash_bytes(s, len);
	size_t j = hash & (im->strs_cap - 1);
	while (im->strs[j].s != NULL) {
		if (im->strs[j].hash == hash && strcmp(im->strs[j].s, s) == 0)
			return im->strs[j].s;
		j = (j + 1) & (im->strs_cap - 1);
	}
	struct string_chunk *c = im->chunks;
	if (c == NULL || c->size - c->used < len + 1) {
		size_t size = len + 1 > STRING_CHUNK_SIZE ? len + 1 : STRING_CHUNK_SIZE;
		c = malloc(sizeof(*c) + size);
		if (c == NULL) {
			*rv = HISTORY_ENOMEM;
			return NULL;
		}
		c->size = size;
		c->used = 0;
		/* A big one-off chunk goes behind the current one, which keeps its free room. */
		if (im->chunks != NULL && size > STRING_CHUNK_SIZE) {
			c->next = im->chunks->next;
			im->chunks->next = c;
		} else {
			c->next = im->chunks;
			im->chunks = c;
		}
	}
	char *copy = c->data + c->used;
	memcpy(copy, s, len + 1);
	c->used += len + 1;
	im->strs[j].s = copy;
	im->strs[j].hash = hash;
	im->strs_n++;
	return copy;
}

static int procmap_grow(struct history_impl *im)
{
	size_t cap = im->procs_cap == 0 ? PROCMAP_INITIAL_SLOTS : im->procs_cap * 2;
	struct proc_slot *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return HISTORY_ENOMEM;
	for (size_t i = 0; i < im->procs_cap; i++) {
		if (!im->procs[i].used)
			continue;
		size_t j = hash_int(im->procs[i].process) & (cap - 1);
		while (slots[j].used)
			j = (j + 1) & (cap - 1);
		slots[j] = im->procs[i];
	}
	free(im->procs);
	im->procs = slots;
	im->procs_cap = cap;
	return 0;
}

/* The slot of `process` (possibly unused, ready to be claimed); the table has a free slot. */
static struct proc_slot *procmap_slot(struct history_impl *im, int64_t process)
{
	size_t j = hash_int(process) & (im->procs_cap - 1);
	while (im->procs[j].used && im->procs[j].process != process)
		j = (j + 1) & (im->procs_cap - 1);
	return &im->procs[j];
}

static bool str_eq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *or_null(const char *s)
{
	return s == NULL ? "null" : s;
}

static bool valid_f(enum history_f f)
{
	return f == HISTORY_READ || f == HISTORY_WRITE || f == HISTORY_CAS || f == HISTORY_DELETE;
}

/* Checks the fields an invocation needs. */
static int check_invoke(const struct history_event *ev, char *errmsg, size_t errlen)
{
	if (ev->key == NULL) {
		errorf(errmsg, errlen, ev->line, "invoke needs a string \"key\"");
		return HISTORY_EPARSE;
	}
	if (ev->f == HISTORY_WRITE && (!ev->has_value || ev->value == NULL)) {
		errorf(errmsg, errlen, ev->line, "invoke write needs a string \"value\"");
		return HISTORY_EPARSE;
	}
	if (ev->f == HISTORY_CAS && (!ev->has_from || !ev->has_to)) {
		errorf(errmsg, errlen, ev->line, "invoke cas needs \"from\" and \"to\"");
		return HISTORY_EPARSE;
	}
	return 0;
}

/* Checks a completion against the pending operation `op` it completes. */
static int check_completion(const struct history_event *ev, const struct history_op *op,
			    char *errmsg, size_t errlen)
{
	if (ev->f != op->f) {
		errorf(errmsg, errlen, ev->line,
		       "process %lld completes a %s but invoked a %s (line %u)",
		       (long long)ev->process, history_f_name(ev->f), history_f_name(op->f),
		       op->invoke_line);
		return HISTORY_EINVAL;
	}
	if (ev->key != NULL && strcmp(ev->key, op->key) != 0) {
		errorf(errmsg, errlen, ev->line,
		       "process %lld completes key \"%s\" but invoked key \"%s\" (line %u)",
		       (long long)ev->process, ev->key, op->key, op->invoke_line);
		return HISTORY_EINVAL;
	}
	if (ev->time < op->invoke_time) {
		errorf(errmsg, errlen, ev->line,
		       "completion time %lld is before its invocation time %lld (line %u)",
		       (long long)ev->time, (long long)op->invoke_time, op->invoke_line);
		return HISTORY_EINVAL;
	}
	if (op->f == HISTORY_READ && ev->type == HISTORY_OK && !ev->has_value) {
		errorf(errmsg, errlen, ev->line, "ok read needs \"value\" (a string or null)");
		return HISTORY_EPARSE;
	}
	if (op->f == HISTORY_WRITE && ev->has_value && !str_eq(ev->value, op->value)) {
		errorf(errmsg, errlen, ev->line,
		       "write completes with value \"%s\" but invoked value \"%s\" (line %u)",
		       or_null(ev->value), op->value, op->invoke_line);
		return HISTORY_EINVAL;
	}
	if (op->f == HISTORY_CAS && ((ev->has_from && !str_eq(ev->from, op->from)) ||
				     (ev->has_to && !str_eq(ev->to, op->to)))) {
		errorf(errmsg, errlen, ev->line,
		       "cas completes with other from/to than invoked (line %u)", op->invoke_line);
		return HISTORY_EINVAL;
	}
	return 0;
}

static int add_invoke(struct history *h, const struct history_event *ev, struct proc_slot *slot,
		      size_t *op_index)
{
	struct history_impl *im = h->impl;
	int rv = 0;
	if (h->n_ops == im->ops_cap) {
		size_t cap = im->ops_cap == 0 ? OPS_INITIAL_CAPACITY : im->ops_cap * 2;
		struct history_op *ops = realloc(h->ops, cap * sizeof(*ops));
		if (ops == NULL)
			return HISTORY_ENOMEM;
		h->ops = ops;
		im->ops_cap = cap;
	}
	struct history_op op = {
	    .process = ev->process,
	    .f = ev->f,
	    .status = HISTORY_STATUS_PENDING,
	    .invoke_time = ev->time,
	    .complete_time = HISTORY_TIME_NONE,
	    .invoke_line = ev->line,
	};
	/* Interned strings that end up unused after a failure are harmless. */
	op.key = intern(im, ev->key, &rv);
	if (ev->f == HISTORY_WRITE)
		op.value = intern(im, ev->value, &rv);
	if (ev->f == HISTORY_CAS) {
		op.from = intern(im, ev->from, &rv);
		op.to = intern(im, ev->to, &rv);
	}
	if (rv != 0)
		return rv;
	if (!slot->used) {
		slot->used = true;
		slot->process = ev->process;
		im->procs_n++;
	}
	slot->pending = h->n_ops;
	if (op_index != NULL)
		*op_index = h->n_ops;
	h->ops[h->n_ops++] = op;
	return 0;
}

static int add_completion(struct history *h, const struct history_event *ev, struct proc_slot *slot,
			  size_t *op_index)
{
	struct history_impl *im = h->impl;
	struct history_op *op = &h->ops[slot->pending];
	int rv = 0;
	const char *value = op->value;
	if (op->f == HISTORY_READ && ev->type == HISTORY_OK)
		value = intern(im, ev->value, &rv);
	const char *error = intern(im, ev->error, &rv);
	if (rv != 0)
		return rv;
	op->value = value;
	op->error = error;
	op->status = ev->type == HISTORY_OK	? HISTORY_STATUS_OK
		     : ev->type == HISTORY_FAIL ? HISTORY_STATUS_FAIL
						: HISTORY_STATUS_INFO;
	op->complete_time = ev->time;
	op->complete_line = ev->line;
	if (ev->has_revision) {
		op->revision = ev->revision;
		op->has_revision = true;
	}
	if (op_index != NULL)
		*op_index = slot->pending;
	slot->pending = NO_OP;
	return 0;
}

int history_add_event(struct history *h, const struct history_event *ev, size_t *op_index,
		      char *errmsg, size_t errlen)
{
	struct history_impl *im = h->impl;
	if (!valid_f(ev->f) || ev->type > HISTORY_INFO) {
		errorf(errmsg, errlen, ev->line, "bad \"f\" or \"type\"");
		return HISTORY_EINVAL;
	}
	if (ev->time == HISTORY_TIME_NONE || ev->time < 0) {
		errorf(errmsg, errlen, ev->line, "\"time\" out of range");
		return HISTORY_EINVAL;
	}
	if ((im->procs_n + 1) * 2 > im->procs_cap && procmap_grow(im) != 0) {
		errorf(errmsg, errlen, ev->line, "out of memory");
		return HISTORY_ENOMEM;
	}
	struct proc_slot *slot = procmap_slot(im, ev->process);
	bool pending = slot->used && slot->pending != NO_OP;
	int rv;
	if (ev->type == HISTORY_INVOKE) {
		if (pending) {
			errorf(errmsg, errlen, ev->line,
			       "process %lld invokes while its operation of line %u is pending",
			       (long long)ev->process, h->ops[slot->pending].invoke_line);
			return HISTORY_EINVAL;
		}
		rv = check_invoke(ev, errmsg, errlen);
		if (rv == 0) {
			rv = add_invoke(h, ev, slot, op_index);
			if (rv != 0)
				errorf(errmsg, errlen, ev->line, "out of memory");
		}
	} else {
		if (!pending) {
			errorf(errmsg, errlen, ev->line,
			       "process %lld completes an operation it did not invoke",
			       (long long)ev->process);
			return HISTORY_EINVAL;
		}
		rv = check_completion(ev, &h->ops[slot->pending], errmsg, errlen);
		if (rv == 0) {
			rv = add_completion(h, ev, slot, op_index);
			if (rv != 0)
				errorf(errmsg, errlen, ev->line, "out of memory");
		}
	}
	if (rv == 0)
		h->n_events++;
	return rv;
}
