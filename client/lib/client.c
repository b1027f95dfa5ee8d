/* libcairn I/O thread: connections, framing, routing to the leader, retries and sessions. */
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "client/lib/internal.h"

#define NS_PER_MS 1000000ull
/* Initial size of the in-flight table (a power of two). */
#define TABLE_MIN 64u
/* TCP keepalive delay, in seconds, so that a silently dead peer is eventually noticed. */
#define KEEPALIVE_S 10u

struct conn {
	cairn_client *c;
	char *addr;
	enum { CONN_CONNECTING, CONN_OPEN, CONN_CLOSING } state;
	uv_tcp_t tcp;
	uv_timer_t ctimer; /* connect timeout */
	uv_connect_t creq;
	int closes_pending;
	struct link pending;  /* ops waiting for the connection */
	struct link inflight; /* ops sent on it */
	uint8_t *out;	      /* frames to send at the next flush */
	size_t out_len, out_cap;
	uint8_t *in; /* bytes received, not yet a whole frame */
	size_t in_len, in_cap;
	uint64_t last_recv_ns;
	struct link link; /* client->conns */
};

struct write_req {
	uv_write_t req;
	uint8_t *buf;
};

static void op_route(struct op *op);
static void op_finish(struct op *op, int rv, const char *msg, const Cairn__Response *resp,
		      const char *addr);
static void op_acquire_session(struct op *op);
static void sessions_pump(cairn_client *c);
static void conn_fail(struct conn *conn, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static uint64_t now_ns(void)
{
	return uv_hrtime();
}

/* ---- endpoints --------------------------------------------------------------------------- */

int cairni_endpoint_check(const char *s, size_t len, char **out)
{
	const char *colon = NULL;
	size_t i, host_len;
	unsigned long port = 0;
	char *copy;

	while (len > 0 && (*s == ' ' || *s == '\t')) {
		s++;
		len--;
	}
	while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t')) {
		len--;
	}
	for (i = 0; i < len; i++) {
		if (s[i] == ':') {
			colon = s + i;
		}
	}
	if (colon == NULL || colon == s || colon + 1 == s + len || len - (size_t)(colon - s) > 6) {
		return CAIRN_EBADENDPOINT;
	}
	for (i = (size_t)(colon - s) + 1; i < len; i++) {
		if (s[i] < '0' || s[i] > '9') {
			return CAIRN_EBADENDPOINT;
		}
		port = port * 10 + (unsigned long)(s[i] - '0');
	}
	if (port == 0 || port > 65535) {
		return CAIRN_EBADENDPOINT;
	}
	host_len = (size_t)(colon - s);
	if (s[0] == '[' && s[host_len - 1] != ']') {
		return CAIRN_EBADENDPOINT;
	}
	if (s[0] != '[' && memchr(s, ':', host_len) != NULL) {
		return CAIRN_EBADENDPOINT; /* a bare IPv6 address needs brackets */
	}
	copy = malloc(len + 1);
	if (copy == NULL) {
		return CAIRN_ENOMEM;
	}
	memcpy(copy, s, len);
	copy[len] = '\0';
	*out = copy;
	return 0;
}

/* Resolve a checked endpoint. Blocking for host names (documented in cairn.h). */
static int endpoint_resolve(const char *ep, struct sockaddr_storage *ss, char *msg, size_t msglen)
{
	const char *colon = strrchr(ep, ':');
	char host[256];
	size_t host_len = (size_t)(colon - ep);
	int port = atoi(colon + 1);
	struct addrinfo hints, *ai = NULL;
	int rv;

	if (ep[0] == '[') {
		ep++;
		host_len -= 2;
	}
	if (host_len >= sizeof(host)) {
		cairni_errmsg_set(msg, msglen, "host name too long in %s", ep);
		return CAIRN_EBADENDPOINT;
	}
	memcpy(host, ep, host_len);
	host[host_len] = '\0';
	memset(ss, 0, sizeof(*ss));
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0 ||
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) {
		return 0;
	}
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	rv = getaddrinfo(host, colon + 1, &hints, &ai);
	if (rv != 0 || ai == NULL) {
		cairni_errmsg_set(msg, msglen, "cannot resolve %s: %s", host,
				  rv != 0 ? gai_strerror(rv) : "no address");
		if (ai != NULL) {
			freeaddrinfo(ai);
		}
		return CAIRN_EBADENDPOINT;
	}
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

/* ---- the in-flight table ----------------------------------------------------------------- */

static int table_insert(cairn_client *c, struct op *op)
{
	size_t b;

	if (c->table_count + 1 > c->table_size) {
		size_t size = c->table_size == 0 ? TABLE_MIN : c->table_size * 2;
		struct op **t = calloc(size, sizeof(*t));
		size_t i;

		if (t == NULL) {
			return CAIRN_ENOMEM;
		}
		for (i = 0; i < c->table_size; i++) {
			struct op *o = c->table[i], *next;

			for (; o != NULL; o = next) {
				next = o->hnext;
				b = o->req_id & (size - 1);
				o->hnext = t[b];
				t[b] = o;
			}
		}
		free(c->table);
		c->table = t;
		c->table_size = size;
	}
	b = op->req_id & (c->table_size - 1);
	op->hnext = c->table[b];
	c->table[b] = op;
	c->table_count++;
	return 0;
}

static struct op *table_find(cairn_client *c, uint64_t id)
{
	struct op *o;

	if (c->table_size == 0) {
		return NULL;
	}
	for (o = c->table[id & (c->table_size - 1)]; o != NULL; o = o->hnext) {
		if (o->req_id == id) {
			return o;
		}
	}
	return NULL;
}

static void table_remove(cairn_client *c, struct op *op)
{
	struct op **p = &c->table[op->req_id & (c->table_size - 1)];

	for (; *p != NULL; p = &(*p)->hnext) {
		if (*p == op) {
			*p = op->hnext;
			op->hnext = NULL;
			c->table_count--;
			return;
		}
	}
}

/* ---- timers and backoff ------------------------------------------------------------------ */

static uint64_t rng_next(cairn_client *c)
{
	/* xorshift64*: jitter only, no need for quality. */
	c->rng ^= c->rng >> 12;
	c->rng ^= c->rng << 25;
	c->rng ^= c->rng >> 27;
	return c->rng * 2685821657736338717ull;
}

/* Exponential backoff with "equal jitter": half fixed, half random. */
static uint64_t backoff_ms(cairn_client *c, unsigned attempts)
{
	uint64_t d = c->backoff_min_ms;
	unsigned i;

	for (i = 1; i < attempts && d < c->backoff_max_ms; i++) {
		d *= 2;
	}
	if (d > c->backoff_max_ms) {
		d = c->backoff_max_ms;
	}
	return d / 2 + rng_next(c) % (d / 2 + 1);
}

static uint64_t remaining_ms(const struct op *op)
{
	uint64_t now = now_ns();

	if (now >= op->deadline_ns) {
		return 0;
	}
	return (op->deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS;
}

static void op_on_timer(uv_timer_t *t);

static void op_arm(struct op *op, uint64_t ms)
{
	uint64_t rem = remaining_ms(op);

	uv_timer_start(&op->timer, op_on_timer, ms < rem ? ms : rem, 0);
}

static void op_arm_deadline(struct op *op)
{
	uv_timer_start(&op->timer, op_on_timer, remaining_ms(op), 0);
}

/* An attempt failed in a way worth retrying: remember why and try again after a backoff. */
static void op_retry_later(struct op *op, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void op_retry_later(struct op *op, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cairni_errmsg_vset(op->last_msg, sizeof(op->last_msg), fmt, ap);
	va_end(ap);
	op->last_err = err;
	if (op->kind == OPK_SESSION) {
		/* Writes waiting for this session report why, should their deadline pass. */
		struct link *l;

		for (l = op->c->session_waiters.next; l != &op->c->session_waiters; l = l->next) {
			struct op *w = CONTAINER_OF(l, struct op, link);

			cairni_errmsg_set(w->last_msg, sizeof(w->last_msg), "opening a session: %s",
					  op->last_msg);
		}
	}
	op->attempts++;
	op->redirects = 0;
	op->state = OPS_WAIT_RETRY;
	op->conn = NULL;
	op_arm(op, backoff_ms(op->c, op->attempts));
}

/* The deadline passed: the op ends here, with ETIMEDOUT or, for a write that may have
 * reached the cluster, EUNKNOWN. */
static void op_expire(struct op *op)
{
	char msg[CAIRN_ERRMSG_SIZE + 64];
	struct conn *silent = NULL;

	if (op->state == OPS_INFLIGHT && op->conn->last_recv_ns < op->sent_ns) {
		/* Nothing came back on that connection since we sent: it may be dead without
		 * TCP knowing; drop it so that later calls try elsewhere. */
		silent = op->conn;
	}
	if (op->last_msg[0] != '\0') {
		snprintf(msg, sizeof(msg), "no answer within %u ms (last error: %s)",
			 op->timeout_ms, op->last_msg);
	} else {
		snprintf(msg, sizeof(msg), "no answer within %u ms", op->timeout_ms);
	}
	op_finish(op, CAIRN_ETIMEDOUT, msg, NULL, NULL);
	if (silent != NULL) {
		conn_fail(silent, CAIRN_ETIMEDOUT, "no response from %s", silent->addr);
	}
}

static void op_on_timer(uv_timer_t *t)
{
	struct op *op = t->data;

	if (now_ns() >= op->deadline_ns) {
		op_expire(op);
	} else if (op->state == OPS_WAIT_RETRY) {
		op_route(op);
	} else {
		op_arm_deadline(op); /* woke early (millisecond rounding) */
	}
}

/* ---- connections ------------------------------------------------------------------------- */

static void conn_on_closed(uv_handle_t *h)
{
	struct conn *conn = h->data;

	if (--conn->closes_pending > 0) {
		return;
	}
	free(conn->out);
	free(conn->in);
	free(conn->addr);
	free(conn);
}

static void conn_close_handles(struct conn *conn)
{
	conn->state = CONN_CLOSING;
	conn->closes_pending = 2;
	uv_close((uv_handle_t *)&conn->tcp, conn_on_closed);
	uv_close((uv_handle_t *)&conn->ctimer, conn_on_closed);
}

/* Stop routing to `addr` for now: the next routed attempt tries the next endpoint. */
static void client_forget(cairn_client *c, const char *addr)
{
	if (c->current != NULL && strcmp(c->current->addr, addr) == 0) {
		c->current = NULL;
	}
	if (c->leader_addr != NULL && strcmp(c->leader_addr, addr) == 0) {
		free(c->leader_addr);
		c->leader_addr = NULL;
	} else if (strcmp(c->endpoints[c->cursor % c->n_endpoints], addr) == 0) {
		c->cursor++;
	}
}

/* The connection is unusable: close it and retry every op that was on it. */
static void conn_fail(struct conn *conn, int err, const char *fmt, ...)
{
	cairn_client *c = conn->c;
	char msg[CAIRN_ERRMSG_SIZE];
	va_list ap;

	if (conn->state == CONN_CLOSING) {
		return;
	}
	va_start(ap, fmt);
	cairni_errmsg_vset(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conn->state = CONN_CLOSING;
	link_remove(&conn->link);
	client_forget(c, conn->addr);
	while (!link_empty(&conn->pending)) {
		struct op *op = CONTAINER_OF(conn->pending.next, struct op, link);

		link_remove(&op->link);
		op_retry_later(op, err, "%s", msg);
	}
	while (!link_empty(&conn->inflight)) {
		struct op *op = CONTAINER_OF(conn->inflight.next, struct op, link);

		link_remove(&op->link);
		table_remove(c, op);
		op->req_id = 0;
		op_retry_later(op, err, "%s", msg);
	}
	conn_close_handles(conn);
}

static void op_send(struct conn *conn, struct op *op);

static void conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *conn = h->data;

	(void)suggested;
	if (conn->in_cap - conn->in_len < READ_CHUNK) {
		size_t cap = conn->in_cap * 2;
		uint8_t *p;

		if (cap < conn->in_len + READ_CHUNK) {
			cap = conn->in_len + READ_CHUNK;
		}
		p = realloc(conn->in, cap);
		if (p == NULL) {
			*buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
			return;
		}
		conn->in = p;
		conn->in_cap = cap;
	}
	*buf =
	    uv_buf_init((char *)conn->in + conn->in_len, (unsigned)(conn->in_cap - conn->in_len));
}

static bool resp_type_ok(const struct op *op, const Cairn__Response *r)
{
	switch (op->kind) {
	case OPK_RANGE:
		return r->op_case == CAIRN__RESPONSE__OP_RANGE;
	case OPK_PUT:
		return r->op_case == CAIRN__RESPONSE__OP_PUT;
	case OPK_DELETE:
		return r->op_case == CAIRN__RESPONSE__OP_DELETE_RANGE;
	case OPK_TXN:
		return r->op_case == CAIRN__RESPONSE__OP_TXN;
	case OPK_STATUS:
		return r->op_case == CAIRN__RESPONSE__OP_STATUS;
	case OPK_SESSION:
		return r->op_case == CAIRN__RESPONSE__OP_SESSION;
	}
	return false;
}

static void op_on_response(struct op *op, const Cairn__Response *r, struct conn *conn)
{
	cairn_client *c = op->c;
	int code = r->error != NULL ? (int)r->error->code : CAIRN__ERROR_CODE__OK;
	const char *smsg = r->error != NULL && r->error->message != NULL ? r->error->message : "";
	char msg[CAIRN_ERRMSG_SIZE];
	char *leader = NULL;

	switch (code) {
	case CAIRN__ERROR_CODE__OK:
		if (!resp_type_ok(op, r)) {
			snprintf(msg, sizeof(msg), "%s answered with a response of another type",
				 conn->addr);
			op_finish(op, CAIRN_EPROTO, msg, NULL, NULL);
			return;
		}
		op_finish(op, 0, "", r, conn->addr);
		return;
	case CAIRN__ERROR_CODE__NOT_LEADER:
	case CAIRN__ERROR_CODE__NO_LEADER:
		/* A member that is not the leader never proposes: this send was not applied,
		 * only earlier ones might have been. */
		if (op->is_write && op->sends > 0) {
			op->sends--;
		}
		if (code == CAIRN__ERROR_CODE__NO_LEADER) {
			client_forget(c, conn->addr);
			op_retry_later(op, CAIRN_ETIMEDOUT, "%s: no leader%s%s", conn->addr,
				       smsg[0] != '\0' ? ": " : "", smsg);
			return;
		}
		if (op->endpoint == NULL && r->error->leader_client_addr != NULL &&
		    r->error->leader_client_addr[0] != '\0' &&
		    cairni_endpoint_check(r->error->leader_client_addr,
					  strlen(r->error->leader_client_addr), &leader) == 0) {
			if (c->current != NULL && strcmp(c->current->addr, leader) != 0) {
				c->current = NULL;
			}
			free(c->leader_addr);
			c->leader_addr = leader;
			if (++op->redirects <= MAX_QUICK_REDIRECTS) {
				op->last_err = CAIRN_ETIMEDOUT;
				snprintf(op->last_msg, sizeof(op->last_msg),
					 "%s is not the leader, redirected to %s", conn->addr,
					 leader);
				op_route(op);
				return;
			}
		} else {
			client_forget(c, conn->addr);
		}
		op_retry_later(op, CAIRN_ETIMEDOUT, "%s is not the leader (leader: %s)", conn->addr,
			       leader != NULL ? c->leader_addr : "unknown");
		return;
	case CAIRN__ERROR_CODE__SHUTTING_DOWN:
		client_forget(c, conn->addr);
		op_retry_later(op, CAIRN_ETIMEDOUT, "%s: shutting down%s%s", conn->addr,
			       smsg[0] != '\0' ? ": " : "", smsg);
		return;
	case CAIRN__ERROR_CODE__TIMEOUT:
	case CAIRN__ERROR_CODE__LEADERSHIP_LOST:
		op_retry_later(op, CAIRN_ETIMEDOUT, "%s: %s%s%s", conn->addr,
			       code == CAIRN__ERROR_CODE__TIMEOUT ? "server timeout"
								  : "leadership lost",
			       smsg[0] != '\0' ? ": " : "", smsg);
		return;
	case CAIRN__ERROR_CODE__SESSION_EXPIRED:
	case CAIRN__ERROR_CODE__STALE_SEQUENCE:
		if (!op->is_write || op->sess == NULL) {
			snprintf(msg, sizeof(msg), "%s: unexpected session error: %s", conn->addr,
				 smsg);
			op_finish(op, CAIRN_EPROTO, msg, NULL, NULL);
			return;
		}
		if (op->sends == 1) {
			/* Our only send was refused: not applied. Start over in a new session. */
			struct session *s = op->sess;

			op->sess = NULL;
			op->sends = 0;
			free(s);
			c->n_sessions--;
			op_acquire_session(op);
			return;
		}
		snprintf(msg, sizeof(msg),
			 "%s: session %s while retrying: the write may have been applied",
			 conn->addr,
			 code == CAIRN__ERROR_CODE__STALE_SEQUENCE ? "moved on" : "expired");
		op_finish(op, CAIRN_EUNKNOWN, msg, NULL, NULL);
		return;
	default:
		snprintf(msg, sizeof(msg), "%s%s%s", conn->addr, smsg[0] != '\0' ? ": " : "", smsg);
		op_finish(op, cairni_error_from_server(code), msg, NULL, NULL);
		return;
	}
}

static void conn_dispatch(struct conn *conn, const Cairn__Response *r)
{
	struct op *op;

	if (r->id == 0) {
		/* A connection-level error (bad or oversized frame): the server closes. */
		int code = r->error != NULL ? (int)r->error->code : CAIRN__ERROR_CODE__BAD_FRAME;

		conn_fail(conn, cairni_error_from_server(code), "%s rejected a frame: %s%s%s",
			  conn->addr, cairn_strerror(cairni_error_from_server(code)),
			  r->error != NULL && r->error->message[0] != '\0' ? ": " : "",
			  r->error != NULL ? r->error->message : "");
		return;
	}
	op = table_find(conn->c, r->id);
	if (op == NULL || op->conn != conn) {
		return; /* an attempt we already gave up on */
	}
	table_remove(conn->c, op);
	link_remove(&op->link);
	op->req_id = 0;
	op->state = OPS_WAIT_RETRY; /* in no list until op_on_response() decides */
	op->conn = NULL;
	op_on_response(op, r, conn);
}

static void conn_parse(struct conn *conn)
{
	uint32_t max = conn->c->max_frame;
	size_t off = 0;

	while (conn->state == CONN_OPEN && conn->in_len - off >= FRAME_HDR) {
		const uint8_t *p = conn->in + off;
		uint32_t len = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
			       (uint32_t)p[3];
		Cairn__Response *r;

		if (len > max) {
			conn_fail(conn, CAIRN_EPROTO,
				  "protocol error: %s sent a frame of %u bytes (maximum %u)",
				  conn->addr, len, max);
			return;
		}
		if (conn->in_len - off - FRAME_HDR < len) {
			break;
		}
		r = cairn__response__unpack(NULL, len, p + FRAME_HDR);
		off += FRAME_HDR + len;
		if (r == NULL) {
			conn_fail(conn, CAIRN_EPROTO,
				  "protocol error: undecodable response from %s", conn->addr);
			return;
		}
		conn->last_recv_ns = now_ns();
		conn_dispatch(conn, r);
		cairn__response__free_unpacked(r, NULL);
	}
	if (off > 0) {
		memmove(conn->in, conn->in + off, conn->in_len - off);
		conn->in_len -= off;
	}
}

static void conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *conn = s->data;

	(void)buf;
	if (nread < 0) {
		if (nread == UV_EOF) {
			conn_fail(conn, CAIRN_ETIMEDOUT, "%s closed the connection", conn->addr);
		} else {
			conn_fail(conn, CAIRN_ETIMEDOUT, "read from %s: %s", conn->addr,
				  uv_strerror((int)nread));
		}
		return;
	}
	conn->in_len += (size_t)nread;
	conn_parse(conn);
}

static void conn_on_connect(uv_connect_t *req, int status)
{
	struct conn *conn = req->data;
	int rv;

	if (conn->state != CONN_CONNECTING) {
		return; /* closed meanwhile (status is UV_ECANCELED) */
	}
	if (status < 0) {
		conn_fail(conn, CAIRN_ETIMEDOUT, "connect to %s: %s", conn->addr,
			  uv_strerror(status));
		return;
	}
	uv_timer_stop(&conn->ctimer);
	uv_tcp_nodelay(&conn->tcp, 1);
	uv_tcp_keepalive(&conn->tcp, 1, KEEPALIVE_S);
	rv = uv_read_start((uv_stream_t *)&conn->tcp, conn_on_alloc, conn_on_read);
	if (rv != 0) {
		conn_fail(conn, CAIRN_ETIMEDOUT, "read from %s: %s", conn->addr, uv_strerror(rv));
		return;
	}
	conn->state = CONN_OPEN;
	conn->last_recv_ns = now_ns();
	while (!link_empty(&conn->pending) && conn->state == CONN_OPEN) {
		struct op *op = CONTAINER_OF(conn->pending.next, struct op, link);

		link_remove(&op->link);
		op_send(conn, op);
	}
}

static void conn_on_connect_timeout(uv_timer_t *t)
{
	struct conn *conn = t->data;

	conn_fail(conn, CAIRN_ETIMEDOUT, "connect to %s: timed out after %u ms", conn->addr,
		  conn->c->connect_timeout_ms);
}

static struct conn *conn_open(cairn_client *c, const char *addr, char *msg, size_t msglen)
{
	struct sockaddr_storage ss;
	struct conn *conn;
	int rv;

	if (endpoint_resolve(addr, &ss, msg, msglen) != 0) {
		return NULL;
	}
	conn = calloc(1, sizeof(*conn));
	if (conn == NULL || (conn->addr = strdup(addr)) == NULL) {
		free(conn);
		cairni_errmsg_set(msg, msglen, "out of memory");
		return NULL;
	}
	conn->c = c;
	link_init(&conn->pending);
	link_init(&conn->inflight);
	link_init(&conn->link);
	uv_tcp_init(&c->loop, &conn->tcp);
	uv_timer_init(&c->loop, &conn->ctimer);
	conn->tcp.data = conn;
	conn->ctimer.data = conn;
	conn->creq.data = conn;
	rv = uv_tcp_connect(&conn->creq, &conn->tcp, (const struct sockaddr *)&ss, conn_on_connect);
	if (rv != 0) {
		cairni_errmsg_set(msg, msglen, "connect to %s: %s", addr, uv_strerror(rv));
		conn_close_handles(conn);
		return NULL;
	}
	uv_timer_start(&conn->ctimer, conn_on_connect_timeout, c->connect_timeout_ms, 0);
	conn->state = CONN_CONNECTING;
	link_push(&c->conns, &conn->link);
	return conn;
}

/* Send every frame queued during this loop iteration: one write per connection
 * (called before the loop blocks for I/O). */
static void conn_on_write(uv_write_t *req, int status)
{
	struct write_req *w = CONTAINER_OF(req, struct write_req, req);
	struct conn *conn = req->handle->data;

	free(w->buf);
	free(w);
	if (status < 0 && status != UV_ECANCELED) {
		conn_fail(conn, CAIRN_ETIMEDOUT, "write to %s: %s", conn->addr,
			  uv_strerror(status));
	}
}

static void conn_flush(struct conn *conn)
{
	struct write_req *w;
	uv_buf_t b;
	int rv;

	if (conn->state != CONN_OPEN || conn->out_len == 0) {
		return;
	}
	w = malloc(sizeof(*w));
	if (w == NULL) {
		conn_fail(conn, CAIRN_ENOMEM, "out of memory");
		return;
	}
	w->buf = conn->out;
	b = uv_buf_init((char *)conn->out, (unsigned)conn->out_len);
	conn->out = NULL;
	conn->out_len = conn->out_cap = 0;
	rv = uv_write(&w->req, (uv_stream_t *)&conn->tcp, &b, 1, conn_on_write);
	if (rv != 0) {
		free(w->buf);
		free(w);
		conn_fail(conn, CAIRN_ETIMEDOUT, "write to %s: %s", conn->addr, uv_strerror(rv));
	}
}

static void client_on_prepare(uv_prepare_t *p)
{
	cairn_client *c = p->data;
	struct link *l, *next;

	for (l = c->conns.next; l != &c->conns; l = next) {
		next = l->next;
		conn_flush(CONTAINER_OF(l, struct conn, link));
	}
}

/* ---- sending ----------------------------------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (uint8_t)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (uint8_t)v;
	return n;
}

/* Append the frame of `op`'s current attempt to conn->out. The envelope is written by hand
 * (fields may come in any order) so that the op's body, encoded once, is reused on retries
 * with a new request id. */
static int frame_append(struct conn *conn, struct op *op)
{
	size_t need = FRAME_HDR + ENVELOPE_MAX + op->body_len;
	uint8_t *p, *start;
	size_t len;

	if (conn->out_cap - conn->out_len < need) {
		size_t cap = conn->out_cap * 2;
		uint8_t *q;

		if (cap < conn->out_len + need) {
			cap = conn->out_len + need;
		}
		q = realloc(conn->out, cap);
		if (q == NULL) {
			return CAIRN_ENOMEM;
		}
		conn->out = q;
		conn->out_cap = cap;
	}
	start = conn->out + conn->out_len;
	p = start + FRAME_HDR;
	p += put_varint(p, 1u << 3); /* id, varint */
	p += put_varint(p, op->req_id);
	if (op->sess != NULL) {
		p += put_varint(p, 2u << 3); /* client_id */
		p += put_varint(p, op->sess->client_id);
		p += put_varint(p, 3u << 3); /* seq */
		p += put_varint(p, op->seq);
	}
	p += put_varint(p, (uint64_t)op->field << 3 | 2u); /* length-delimited */
	p += put_varint(p, op->body_len);
	if (op->body_len > 0) {
		memcpy(p, op->body, op->body_len);
		p += op->body_len;
	}
	len = (size_t)(p - start) - FRAME_HDR;
	start[0] = (uint8_t)(len >> 24);
	start[1] = (uint8_t)(len >> 16);
	start[2] = (uint8_t)(len >> 8);
	start[3] = (uint8_t)len;
	conn->out_len += (size_t)(p - start);
	return 0;
}

static void op_send(struct conn *conn, struct op *op)
{
	cairn_client *c = op->c;

	op->req_id = ++c->next_id;
	/* Register the id before the frame can leave: a frame queued for an op that then fails
	 * here would still be sent, and a write would be reported "not applied" (and its
	 * session sequence number reused) while the server applies it. */
	if (table_insert(c, op) != 0) {
		op->req_id = 0;
		op->state = OPS_WAIT_RETRY; /* not in any list */
		op_finish(op, CAIRN_ENOMEM, "out of memory", NULL, NULL);
		return;
	}
	if (frame_append(conn, op) != 0) {
		table_remove(c, op);
		op->req_id = 0;
		op->state = OPS_WAIT_RETRY; /* not in any list */
		op_finish(op, CAIRN_ENOMEM, "out of memory", NULL, NULL);
		return;
	}
	if (op->is_write) {
		op->sends++;
	}
	op->conn = conn;
	op->sent_ns = now_ns();
	op->state = OPS_INFLIGHT;
	link_push(&conn->inflight, &op->link);
	op_arm_deadline(op);
}

/* Find (or open) the connection for the op's next attempt. */
static struct conn *route_conn(cairn_client *c, struct op *op, char *msg, size_t msglen)
{
	const char *addr;
	struct link *l;
	struct conn *conn = NULL;

	if (op->endpoint != NULL) {
		addr = op->endpoint;
	} else if (c->current != NULL) {
		return c->current;
	} else if (c->leader_addr != NULL) {
		addr = c->leader_addr;
	} else {
		addr = c->endpoints[c->cursor % c->n_endpoints];
	}
	for (l = c->conns.next; l != &c->conns; l = l->next) {
		struct conn *x = CONTAINER_OF(l, struct conn, link);

		if (strcmp(x->addr, addr) == 0) {
			conn = x;
			break;
		}
	}
	if (conn == NULL) {
		conn = conn_open(c, addr, msg, msglen);
		if (conn == NULL) {
			if (op->endpoint == NULL) {
				client_forget(c, addr);
			}
			return NULL;
		}
	}
	if (op->endpoint == NULL) {
		c->current = conn;
	}
	return conn;
}

static void op_route(struct op *op)
{
	char msg[CAIRN_ERRMSG_SIZE];
	struct conn *conn;

	if (op->is_write && op->sess == NULL) {
		op_acquire_session(op);
		return;
	}
	msg[0] = '\0';
	conn = route_conn(op->c, op, msg, sizeof(msg));
	if (conn == NULL) {
		op_retry_later(op, CAIRN_ETIMEDOUT, "%s", msg);
		return;
	}
	if (conn->state == CONN_CONNECTING) {
		op->conn = conn;
		op->state = OPS_PENDING;
		link_push(&conn->pending, &op->link);
		op_arm_deadline(op);
		return;
	}
	op_send(conn, op);
}

/* ---- sessions ---------------------------------------------------------------------------- */

static void op_bind_session(struct op *op, struct session *s)
{
	op->sess = s;
	op->seq = s->last_seq + 1;
	op->sends = 0;
}

/* A session is free again: hand it to the first waiting write, or keep it idle. */
static void session_release(cairn_client *c, struct session *s)
{
	if (!c->shutdown && !link_empty(&c->session_waiters)) {
		struct op *op = CONTAINER_OF(c->session_waiters.next, struct op, link);

		link_remove(&op->link);
		op_bind_session(op, s);
		op_route(op);
		return;
	}
	s->next = c->idle_sessions;
	c->idle_sessions = s;
}

static void session_retire(cairn_client *c, struct session *s)
{
	free(s);
	c->n_sessions--;
	sessions_pump(c);
}

static void on_session_opened(struct op *op, int rv, const char *msg, const Cairn__Response *r,
			      const char *addr)
{
	cairn_client *c = op->c;
	struct session *s;

	(void)addr;
	c->n_opening--;
	if (rv == 0 && r->session->client_id == 0) {
		rv = CAIRN_EPROTO;
		msg = "the server opened a session with id 0";
	}
	if (rv == 0 && (s = calloc(1, sizeof(*s))) == NULL) {
		rv = CAIRN_ENOMEM;
		msg = "out of memory";
	}
	if (rv != 0) {
		c->n_sessions--;
		/* A definite refusal would repeat: fail the first waiter with it. A timeout
		 * just lets the waiters run into their own deadlines. */
		if (!c->shutdown && rv != CAIRN_ETIMEDOUT && rv != CAIRN_ECLOSED &&
		    !link_empty(&c->session_waiters)) {
			char m[CAIRN_ERRMSG_SIZE + 32];
			struct op *w = CONTAINER_OF(c->session_waiters.next, struct op, link);

			snprintf(m, sizeof(m), "cannot open a session: %s", msg);
			op_finish(w, rv, m, NULL, NULL);
		}
		if (!c->shutdown) {
			sessions_pump(c);
		}
		return;
	}
	s->client_id = r->session->client_id;
	session_release(c, s);
}

static void op_start(struct op *op);

/* Open sessions while writes wait for one and the pool may grow. */
static void sessions_pump(cairn_client *c)
{
	size_t waiters = 0;
	struct link *l;

	if (c->shutdown) {
		return;
	}
	for (l = c->session_waiters.next; l != &c->session_waiters; l = l->next) {
		if (++waiters > c->n_opening) {
			break;
		}
	}
	while (waiters > c->n_opening && c->n_sessions < c->max_sessions) {
		Cairn__SessionRequest req = CAIRN__SESSION_REQUEST__INIT;
		struct op *op;

		if (cairni_op_new(c, OPK_SESSION, &req.base, 0, &op) != 0) {
			return; /* waiters run into their deadlines */
		}
		op->done = on_session_opened;
		c->n_sessions++;
		c->n_opening++;
		op_start(op);
	}
}

static void op_acquire_session(struct op *op)
{
	cairn_client *c = op->c;
	struct session *s = c->idle_sessions;

	if (s != NULL) {
		c->idle_sessions = s->next;
		op_bind_session(op, s);
		op_route(op);
		return;
	}
	op->state = OPS_WAIT_SESSION;
	link_push(&c->session_waiters, &op->link);
	op_arm_deadline(op);
	sessions_pump(c);
}

/* ---- op lifecycle ------------------------------------------------------------------------ */

static void op_on_closed(uv_handle_t *h)
{
	cairni_op_free(h->data);
}

static void op_finish(struct op *op, int rv, const char *msg, const Cairn__Response *resp,
		      const char *addr)
{
	cairn_client *c = op->c;
	char m[CAIRN_ERRMSG_SIZE + 96];

	switch (op->state) {
	case OPS_WAIT_SESSION:
	case OPS_PENDING:
		link_remove(&op->link);
		break;
	case OPS_INFLIGHT:
		link_remove(&op->link);
		table_remove(c, op);
		break;
	default:
		break;
	}
	op->state = OPS_DONE;
	op->conn = NULL;
	if (op->is_write && op->sends > 0 &&
	    (rv == CAIRN_ETIMEDOUT || rv == CAIRN_ECLOSED || rv == CAIRN_ENOMEM)) {
		/* It was sent at least once and no definite answer came back. */
		snprintf(m, sizeof(m), "sent, but %s", msg);
		rv = CAIRN_EUNKNOWN;
		msg = m;
	}
	if (op->sess != NULL) {
		struct session *s = op->sess;

		op->sess = NULL;
		if (rv == CAIRN_EUNKNOWN) {
			session_retire(c, s); /* its next seq could meet the lost one's reply */
		} else {
			if (op->sends > 0) {
				s->last_seq = op->seq;
			}
			session_release(c, s);
		}
	}
	link_remove(&op->all);
	if (op->timer_live) {
		uv_timer_stop(&op->timer);
	}
	op->done(op, rv, msg, resp, addr);
	if (op->timer_live) {
		uv_close((uv_handle_t *)&op->timer, op_on_closed);
	} else {
		cairni_op_free(op);
	}
}

static void op_start(struct op *op)
{
	cairn_client *c = op->c;

	link_push(&c->ops, &op->all);
	uv_timer_init(&c->loop, &op->timer);
	op->timer.data = op;
	op->timer_live = true;
	if (op->is_write) {
		op_acquire_session(op);
	} else {
		op_route(op);
	}
}

/* ---- the I/O thread ---------------------------------------------------------------------- */

static void client_shutdown(cairn_client *c)
{
	struct link *l;

	c->shutdown = true;
	while (!link_empty(&c->ops)) {
		struct op *op = CONTAINER_OF(c->ops.next, struct op, all);

		op_finish(op, CAIRN_ECLOSED, "client closed", NULL, NULL);
	}
	while (c->idle_sessions != NULL) {
		struct session *s = c->idle_sessions;

		c->idle_sessions = s->next;
		free(s);
	}
	while (!link_empty(&c->conns)) {
		l = c->conns.next;
		link_remove(l);
		conn_close_handles(CONTAINER_OF(l, struct conn, link));
	}
	c->current = NULL;
	uv_prepare_stop(&c->prepare);
	uv_close((uv_handle_t *)&c->prepare, NULL);
	uv_close((uv_handle_t *)&c->async, NULL);
}

static void client_on_async(uv_async_t *a)
{
	cairn_client *c = a->data;
	struct link q;
	bool closing;

	link_init(&q);
	uv_mutex_lock(&c->mu);
	closing = c->closing;
	if (!link_empty(&c->submitq)) {
		q = c->submitq;
		q.next->prev = &q;
		q.prev->next = &q;
		link_init(&c->submitq);
	}
	uv_mutex_unlock(&c->mu);
	while (!link_empty(&q)) {
		struct op *op = CONTAINER_OF(q.next, struct op, link);

		link_remove(&op->link);
		op_start(op);
	}
	if (closing && !c->shutdown) {
		client_shutdown(c);
	}
}

static void client_thread(void *arg)
{
	cairn_client *c = arg;

	uv_run(&c->loop, UV_RUN_DEFAULT);
}

bool cairni_client_on_io_thread(cairn_client *c)
{
	uv_thread_t self = uv_thread_self();

	return uv_thread_equal(&self, &c->thread) != 0;
}

int cairni_op_submit(cairn_client *c, struct op *op)
{
	uv_mutex_lock(&c->mu);
	if (c->closing) {
		uv_mutex_unlock(&c->mu);
		cairni_op_free(op);
		return CAIRN_ECLOSED;
	}
	link_push(&c->submitq, &op->link);
	/* Under the lock, so that cairn_close() cannot close the handle in between. */
	uv_async_send(&c->async);
	uv_mutex_unlock(&c->mu);
	return 0;
}

int cairni_op_new(cairn_client *c, enum op_kind kind, const ProtobufCMessage *msg,
		  uint32_t timeout_ms, struct op **out)
{
	static const int fields[] = {[OPK_RANGE] = 10, [OPK_PUT] = 11,	  [OPK_DELETE] = 12,
				     [OPK_TXN] = 13,   [OPK_STATUS] = 14, [OPK_SESSION] = 15};
	size_t len = protobuf_c_message_get_packed_size(msg);
	struct op *op;

	if (len > c->max_frame || c->max_frame - len < ENVELOPE_MAX) {
		return CAIRN_ETOOLARGE;
	}
	op = calloc(1, sizeof(*op));
	if (op == NULL) {
		return CAIRN_ENOMEM;
	}
	op->body = malloc(len + 1);
	if (op->body == NULL) {
		free(op);
		return CAIRN_ENOMEM;
	}
	op->body_len = protobuf_c_message_pack(msg, op->body);
	op->c = c;
	op->kind = kind;
	op->field = fields[kind];
	op->is_write = kind == OPK_PUT || kind == OPK_DELETE || kind == OPK_TXN;
	op->timeout_ms = timeout_ms != 0 ? timeout_ms : c->timeout_ms;
	op->deadline_ns = now_ns() + (uint64_t)op->timeout_ms * NS_PER_MS;
	op->state = OPS_QUEUED;
	link_init(&op->link);
	link_init(&op->all);
	*out = op;
	return 0;
}

void cairni_op_free(struct op *op)
{
	free(op->body);
	free(op->endpoint);
	free(op);
}

/* ---- connect / close --------------------------------------------------------------------- */

static int parse_endpoints(cairn_client *c, const char *list, char *errmsg, size_t errlen)
{
	const char *p = list != NULL && list[0] != '\0' ? list : CAIRN_DEFAULT_ENDPOINT;

	c->endpoints = calloc(CAIRN_MAX_ENDPOINTS, sizeof(*c->endpoints));
	if (c->endpoints == NULL) {
		return CAIRN_ENOMEM;
	}
	while (*p != '\0') {
		const char *end = strchr(p, ',');
		size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
		size_t i, blank = 0;
		int rv;

		for (i = 0; i < len; i++) {
			blank += p[i] == ' ' || p[i] == '\t';
		}
		if (blank < len) {
			if (c->n_endpoints == CAIRN_MAX_ENDPOINTS) {
				cairni_errmsg_set(errmsg, errlen, "more than %u endpoints",
						  CAIRN_MAX_ENDPOINTS);
				return CAIRN_EBADENDPOINT;
			}
			rv = cairni_endpoint_check(p, len, &c->endpoints[c->n_endpoints]);
			if (rv != 0) {
				cairni_errmsg_set(errmsg, errlen,
						  "bad endpoint \"%.*s\" (expected host:port)",
						  (int)len, p);
				return rv;
			}
			c->n_endpoints++;
		}
		p += len;
		if (*p == ',') {
			p++;
		}
	}
	if (c->n_endpoints == 0) {
		cairni_errmsg_set(errmsg, errlen, "no endpoint in \"%s\"", list);
		return CAIRN_EBADENDPOINT;
	}
	return 0;
}

static void client_free(cairn_client *c)
{
	size_t i;

	if (c->endpoints != NULL) {
		for (i = 0; i < c->n_endpoints; i++) {
			free(c->endpoints[i]);
		}
		free(c->endpoints);
	}
	free(c->leader_addr);
	free(c->table);
	free(c);
}

#define OR_DEFAULT(v, d) ((v) != 0 ? (v) : (d))

int cairn_connect(const char *endpoints, const struct cairn_options *opts, cairn_client **out,
		  char *errmsg, size_t errlen)
{
	static const struct cairn_options defaults;
	cairn_client *c;
	int rv;

	if (out == NULL) {
		cairni_errmsg_set(errmsg, errlen, "NULL out");
		return CAIRN_EINVAL;
	}
	*out = NULL;
	if (opts == NULL) {
		opts = &defaults;
	}
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		return CAIRN_ENOMEM;
	}
	c->timeout_ms = OR_DEFAULT(opts->timeout_ms, CAIRN_DEFAULT_TIMEOUT_MS);
	c->backoff_min_ms = OR_DEFAULT(opts->backoff_min_ms, CAIRN_DEFAULT_BACKOFF_MIN_MS);
	c->backoff_max_ms = OR_DEFAULT(opts->backoff_max_ms, CAIRN_DEFAULT_BACKOFF_MAX_MS);
	c->max_frame = OR_DEFAULT(opts->max_frame_size, CAIRN_DEFAULT_MAX_FRAME);
	c->max_sessions = OR_DEFAULT(opts->max_sessions, CAIRN_DEFAULT_MAX_SESSIONS);
	c->connect_timeout_ms =
	    OR_DEFAULT(opts->connect_timeout_ms, CAIRN_DEFAULT_CONNECT_TIMEOUT_MS);
	if (c->backoff_min_ms > c->backoff_max_ms || c->max_frame < 2 * ENVELOPE_MAX) {
		cairni_errmsg_set(errmsg, errlen,
				  "bad options (backoff_min_ms > backoff_max_ms or "
				  "max_frame_size too small)");
		rv = CAIRN_EINVAL;
		goto err_free;
	}
	rv = parse_endpoints(c, endpoints, errmsg, errlen);
	if (rv != 0) {
		goto err_free;
	}
	c->rng = now_ns() ^ (uint64_t)(uintptr_t)c ^ 0x9e3779b97f4a7c15ull;
	link_init(&c->submitq);
	link_init(&c->conns);
	link_init(&c->ops);
	link_init(&c->session_waiters);
	if (uv_mutex_init(&c->mu) != 0) {
		rv = CAIRN_ESYS;
		goto err_free;
	}
	rv = uv_loop_init(&c->loop);
	if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "uv_loop_init: %s", uv_strerror(rv));
		rv = CAIRN_ESYS;
		goto err_after_mutex;
	}
	c->async.data = c;
	c->prepare.data = c;
	if (uv_async_init(&c->loop, &c->async, client_on_async) != 0) {
		rv = CAIRN_ESYS;
		goto err_after_loop;
	}
	uv_prepare_init(&c->loop, &c->prepare);
	uv_prepare_start(&c->prepare, client_on_prepare);
	rv = uv_thread_create(&c->thread, client_thread, c);
	if (rv != 0) {
		cairni_errmsg_set(errmsg, errlen, "uv_thread_create: %s", uv_strerror(rv));
		rv = CAIRN_ESYS;
		goto err_after_handles;
	}
	*out = c;
	return 0;

err_after_handles:
	uv_close((uv_handle_t *)&c->async, NULL);
	uv_close((uv_handle_t *)&c->prepare, NULL);
	uv_run(&c->loop, UV_RUN_DEFAULT);
err_after_loop:
	uv_loop_close(&c->loop);
err_after_mutex:
	uv_mutex_destroy(&c->mu);
err_free:
	client_free(c);
	return rv;
}

int cairn_close(cairn_client *c)
{
	int rv;

	if (c == NULL) {
		return 0;
	}
	if (cairni_client_on_io_thread(c)) {
		return CAIRN_EDEADLK;
	}
	uv_mutex_lock(&c->mu);
	c->closing = true;
	uv_async_send(&c->async);
	uv_mutex_unlock(&c->mu);
	uv_thread_join(&c->thread);
	/* Every handle was closed by client_shutdown(): the loop must have nothing left. */
	rv = uv_loop_close(&c->loop);
	uv_mutex_destroy(&c->mu);
	client_free(c);
	return rv == 0 ? 0 : CAIRN_ESYS;
}
