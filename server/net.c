/* net.c — framed TCP connections: buffered reads split into frames, writes batched once per loop
 * turn. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/server.h"

/* ---- logging ---------------------------------------------------------------- */

void slog(struct server *s, int level, const char *fmt, ...)
{
	static const char *const names[] = {"DEBUG", "INFO", "WARN", "ERROR"};
	if (s != NULL && level < s->cfg.log_level)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s [%llu] %s\n", tm.tm_year + 1900,
		tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		names[level < 0 || level > 3 ? 1 : level], s ? (unsigned long long)s->cfg.id : 0ull,
		msg);
}

/* ---- buffers ------------------------------------------------------------------ */

int buf_reserve(struct buf *b, size_t extra)
{
	if (b->cap - b->len >= extra)
		return 0;
	size_t cap = b->cap ? b->cap : 4096;
	while (cap - b->len < extra) {
		if (cap > SIZE_MAX / 2)
			return -1;
		cap *= 2;
	}
	uint8_t *d = realloc(b->data, cap);
	if (d == NULL)
		return -1;
	b->data = d;
	b->cap = cap;
	return 0;
}

void buf_free(struct buf *b)
{
	free(b->data);
	memset(b, 0, sizeof(*b));
}

/* ---- connections --------------------------------------------------------------- */

struct conn *conn_new(struct server *s, int kind)
{
	struct conn *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return NULL;
	c->s = s;
	c->kind = kind;
	c->id = ++s->next_conn_id;
	c->refs = 1;
	c->max_frame = kind == CONN_CLIENT ? s->cfg.max_frame_bytes : CAIRN_PEER_MAX_FRAME;
	uv_tcp_init(s->loop, &c->tcp);
	c->tcp.data = c;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	return c;
}

static void conn_destroy(struct conn *c)
{
	buf_free(&c->in);
	buf_free(&c->out);
	buf_free(&c->inflight);
	free(c);
}

void conn_unref(struct conn *c)
{
	if (--c->refs == 0)
		conn_destroy(c);
}

static void on_closed(uv_handle_t *h)
{
	struct conn *c = h->data;
	conn_unref(c);
}

void conn_close(struct conn *c, const char *why)
{
	if (c->closing)
		return;
	c->closing = true;
	struct server *s = c->s;
	if (why != NULL)
		slog(s, c->kind == CONN_CLIENT ? LOG_DEBUG : LOG_INFO,
		     "closing %s connection %llu: %s", c->kind == CONN_CLIENT ? "client" : "peer",
		     (unsigned long long)c->id, why);
	if (c->prev)
		c->prev->next = c->next;
	else if (s->conns == c)
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	c->next = c->prev = NULL;
	/* A client's pending requests hold references; their replies are dropped. */
	if (c->kind != CONN_CLIENT)
		peer_on_close(c);
	uv_close((uv_handle_t *)&c->tcp, on_closed);
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int conn_send_msg(struct conn *c, const ProtobufCMessage *msg)
{
	if (c->closing)
		return -1;
	size_t n = protobuf_c_message_get_packed_size(msg);
	if (n > UINT32_MAX || buf_reserve(&c->out, 4 + n) != 0) {
		conn_close(c, "out of memory queueing a reply");
		return -1;
	}
	put_be32(c->out.data + c->out.len, (uint32_t)n);
	protobuf_c_message_pack(msg, c->out.data + c->out.len + 4);
	c->out.len += 4 + n;
	return 0;
}

static void flush_one(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
	struct conn *c = req->data;
	c->writing = false;
	c->inflight.len = 0;
	if (status != 0) {
		if (!c->closing)
			conn_close(c, uv_strerror(status));
		conn_unref(c);
		return;
	}
	if (!c->closing) {
		if (c->out.len > 0)
			flush_one(c);
		else if (c->close_after_flush)
			conn_close(c, NULL);
	}
	conn_unref(c);
}

/* Hands everything queued to one uv_write; what is queued meanwhile waits for the next. */
static void flush_one(struct conn *c)
{
	if (c->closing || c->writing || c->out.len == 0 || !c->connected)
		return;
	struct buf t = c->inflight;
	c->inflight = c->out;
	c->out = t;
	c->out.len = 0;
	uv_buf_t b = uv_buf_init((char *)c->inflight.data, (unsigned)c->inflight.len);
	c->wreq.data = c;
	int rv = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_written);
	if (rv != 0) {
		conn_close(c, uv_strerror(rv));
		return;
	}
	c->writing = true;
	c->refs++;
}

/* Called once per loop iteration (the before-sleep hook): one write per connection. */
void conn_flush_all(struct server *s)
{
	for (struct conn *c = s->conns, *next; c != NULL; c = next) {
		next = c->next;
		if (c->out.len > 0)
			flush_one(c);
		else if (c->close_after_flush && !c->writing)
			conn_close(c, NULL);
	}
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *out)
{
	(void)suggested;
	struct conn *c = h->data;
	size_t want = CAIRN_READ_BUF_MIN;
	if (buf_reserve(&c->in, want) != 0) {
		*out = uv_buf_init(NULL, 0);
		return;
	}
	*out = uv_buf_init((char *)c->in.data + c->in.len, (unsigned)(c->in.cap - c->in.len));
}

static void on_frame(struct conn *c, const uint8_t *data, size_t len)
{
	if (c->kind == CONN_CLIENT)
		node_on_client_frame(c, data, len);
	else
		peer_on_frame(c, data, len);
}

/* A frame longer than allowed: tell a client why, then close. */
static void frame_too_large(struct conn *c, uint32_t len)
{
	char msg[160];
	snprintf(msg, sizeof(msg), "frame of %u bytes exceeds the limit of %u bytes", len,
		 c->max_frame);
	if (c->kind == CONN_CLIENT) {
		Cairn__Error err = CAIRN__ERROR__INIT;
		err.code = CAIRN__ERROR_CODE__FRAME_TOO_LARGE;
		err.message = msg;
		Cairn__Response resp = CAIRN__RESPONSE__INIT;
		resp.error = &err;
		conn_send_msg(c, &resp.base);
		c->close_after_flush = true;
		slog(c->s, LOG_WARN, "client connection %llu: %s; closing",
		     (unsigned long long)c->id, msg);
	} else {
		conn_close(c, msg);
	}
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *b)
{
	(void)b;
	struct conn *c = stream->data;
	if (nread < 0) {
		conn_close(c,
			   nread == UV_EOF ? "closed by the other side" : uv_strerror((int)nread));
		return;
	}
	if (nread == 0)
		return;
	c->in.len += (size_t)nread;
	size_t off = 0;
	c->refs++; /* frame handlers may close the connection */
	while (!c->closing && !c->close_after_flush && c->in.len - off >= 4) {
		uint32_t len = get_be32(c->in.data + off);
		if (len > c->max_frame) {
			frame_too_large(c, len);
			break;
		}
		if (c->in.len - off - 4 < len) {
			if (buf_reserve(&c->in, len + 4 - (c->in.len - off)) != 0) {
				conn_close(c, "out of memory reading a frame");
				break;
			}
			break;
		}
		on_frame(c, c->in.data + off + 4, len);
		off += 4 + (size_t)len;
	}
	if (c->closing || c->close_after_flush) {
		c->in.len = 0;
		if (c->close_after_flush && !c->closing)
			uv_read_stop(stream);
	} else if (off > 0) {
		memmove(c->in.data, c->in.data + off, c->in.len - off);
		c->in.len -= off;
	}
	conn_unref(c);
}

int conn_start(struct conn *c)
{
	c->connected = true;
	uv_tcp_nodelay(&c->tcp, 1);
	return uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}
