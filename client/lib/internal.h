/* libcairn internals shared by the client's files: the client handle, operations, connections. */
#ifndef CAIRN_CLIENT_INTERNAL_H
#define CAIRN_CLIENT_INTERNAL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "client/cairn.h"
#include "proto/cairn.pb-c.h"

/* Nothing below is part of the ABI: keep it out of libcairn.so's dynamic symbol table. */
#pragma GCC visibility push(hidden)

/* ---- intrusive circular doubly-linked list ----------------------------------------------- */

struct link {
	struct link *prev, *next;
};

#define CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static inline void link_init(struct link *l)
{
	l->prev = l->next = l;
}
static inline bool link_empty(const struct link *l)
{
	return l->next == l;
}
static inline void link_push(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}
static inline void link_remove(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

/* ---- limits ------------------------------------------------------------------------------ */

/* Bytes of a frame's length prefix. */
#define FRAME_HDR 4u
/* Most bytes the envelope (id, client_id, seq, op tag + length) adds to an op's body. */
#define ENVELOPE_MAX 48u
/* NOT_LEADER redirects followed at once before backing off (guards against redirect loops). */
#define MAX_QUICK_REDIRECTS 3u
/* Read buffer growth step. */
#define READ_CHUNK (64u * 1024u)

/* ---- result memory ----------------------------------------------------------------------- */

/* A chunked bump allocator: every result lives in one of these, found just before it. */
struct mem_chunk;
struct mem {
	struct mem_chunk *chunks;
};
void *cairni_mem_alloc(struct mem *m, size_t n);
/* Allocate a result struct of `size` bytes preceded by its struct mem; zeroed. */
void *cairni_result_new(size_t size);
struct mem *cairni_result_mem(void *res);
void cairni_result_free(void *res);
/* Copy `len` bytes + NUL into the result's memory; NULL on ENOMEM. */
char *cairni_mem_dup(struct mem *m, const void *p, size_t len);

/* Conversions from a decoded Response into the public results (0 or CAIRN_ENOMEM). */
int cairni_result_range(const Cairn__Response *r, struct cairn_range_result **out);
int cairni_result_put(const Cairn__Response *r, struct cairn_put_result **out);
int cairni_result_delete(const Cairn__Response *r, struct cairn_delete_result **out);
int cairni_result_txn(const Cairn__Response *r, struct cairn_txn_result **out);
int cairni_result_status(const Cairn__Response *r, const char *endpoint,
			 struct cairn_status_result **out);

/* ---- errors ------------------------------------------------------------------------------ */

void cairni_errmsg_set(char *buf, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void cairni_errmsg_vset(char *buf, size_t len, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));
/* The CAIRN_E* code of a definite server error (codes the client does not retry). */
int cairni_error_from_server(int code);

/* ---- operations -------------------------------------------------------------------------- */

enum op_kind { OPK_RANGE, OPK_PUT, OPK_DELETE, OPK_TXN, OPK_STATUS, OPK_SESSION };

enum op_state {
	OPS_QUEUED,	  /* submitted, not yet seen by the I/O thread */
	OPS_WAIT_SESSION, /* write waiting for an idle session */
	OPS_WAIT_RETRY,	  /* backing off; the timer routes it again */
	OPS_PENDING,	  /* waiting on a connection being established */
	OPS_INFLIGHT,	  /* sent, waiting for the response */
	OPS_DONE,
};

struct op;
struct conn;
struct session;

/* Called once on the I/O thread when the op completes; `resp` only when rv == 0 (then also
 * `addr`, the endpoint that answered). */
typedef void (*op_done_fn)(struct op *op, int rv, const char *msg, const Cairn__Response *resp,
			   const char *addr);

struct op {
	cairn_client *c;
	enum op_kind kind;
	enum op_state state;
	bool is_write; /* put, delete, txn: exactly-once via a session */
	int field;     /* Request oneof field number of the body */
	uint8_t *body; /* the encoded op message */
	size_t body_len;
	char *endpoint;	      /* pinned to this endpoint (status of one member), else NULL */
	uint64_t deadline_ns; /* uv_hrtime() based */
	uint32_t timeout_ms;  /* for messages */
	uint64_t req_id;      /* id of the attempt in flight, 0 if none */
	struct conn *conn;    /* OPS_PENDING / OPS_INFLIGHT: the connection */
	uint64_t sent_ns;     /* when the attempt in flight was sent */
	unsigned attempts;    /* failed attempts so far (backoff exponent) */
	unsigned redirects;   /* consecutive NOT_LEADER redirects followed at once */
	struct session *sess; /* writes: the session carrying this write */
	uint64_t seq;	      /* writes: its sequence number in sess */
	unsigned sends;	      /* times (sess, seq) was handed to a connection */
	int last_err;	      /* reason of the last failed attempt, for messages */
	char last_msg[CAIRN_ERRMSG_SIZE];
	uv_timer_t timer; /* deadline or backoff */
	bool timer_live;
	struct link link; /* submit queue, session waiters, conn pending / in flight */
	struct link all;  /* client->ops: every op the I/O thread knows */
	struct op *hnext; /* client's in-flight table by req_id */
	op_done_fn done;
	union {
		cairn_range_cb range;
		cairn_put_cb put;
		cairn_delete_cb del;
		cairn_txn_cb txn;
		cairn_status_cb status;
	} cb; /* the caller's callback, called by `done` */
	void *user_arg;
};

/* ---- the client -------------------------------------------------------------------------- */

struct session {
	uint64_t client_id;
	uint64_t last_seq;    /* last sequence number with a definite outcome */
	struct session *next; /* idle list */
};

struct cairn_client {
	/* Immutable after cairn_connect(). */
	uint32_t timeout_ms, backoff_min_ms, backoff_max_ms, max_frame, max_sessions;
	uint32_t connect_timeout_ms;
	char **endpoints;
	size_t n_endpoints;
	uv_thread_t thread;

	/* Shared with API threads, under `mu`. */
	uv_mutex_t mu;
	struct link submitq;
	bool closing;

	/* I/O thread only. */
	uv_loop_t loop;
	uv_async_t async;
	uv_prepare_t prepare;
	bool shutdown;	      /* the loop is tearing down */
	size_t cursor;	      /* next endpoint to try */
	char *leader_addr;    /* learned from NOT_LEADER */
	struct conn *current; /* where routed calls go */
	struct link conns;
	struct link ops;
	struct op **table; /* in flight by req_id */
	size_t table_size, table_count;
	uint64_t next_id;
	uint64_t rng;
	struct session *idle_sessions;
	unsigned n_sessions; /* open or opening */
	unsigned n_opening;
	struct link session_waiters;
};

/* Parse "host:port" into a malloc'ed normalized copy; CAIRN_EBADENDPOINT / CAIRN_ENOMEM. */
int cairni_endpoint_check(const char *s, size_t len, char **out);

/* Queue a fully prepared op for the I/O thread (any thread). On error the op is freed and
 * its callback is never called. Errors: CAIRN_ECLOSED. */
int cairni_op_submit(cairn_client *c, struct op *op);
/* Allocate an op around a borrowed protobuf message (packed now). */
int cairni_op_new(cairn_client *c, enum op_kind kind, const ProtobufCMessage *msg,
		  uint32_t timeout_ms, struct op **out);
void cairni_op_free(struct op *op);
/* Whether the calling thread is the client's I/O thread. */
bool cairni_client_on_io_thread(cairn_client *c);

#pragma GCC visibility pop

#endif /* CAIRN_CLIENT_INTERNAL_H */
