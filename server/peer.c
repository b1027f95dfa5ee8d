/* peer.c — the peer transport: one outbound TCP connection per member with reconnect backoff, Raft
 * messages as protobuf frames. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

struct peer *peer_by_id(struct server *s, raft_id id)
{
	for (size_t i = 0; i < s->n_peers; i++)
		if (s->peers[i].id == id)
			return &s->peers[i];
	return NULL;
}

/* ---- encoding ------------------------------------------------------------------ */

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int peer_encode_raft(struct buf *b, const struct raft_message *m)
{
	Cairn__Peer__RaftMessage rm = CAIRN__PEER__RAFT_MESSAGE__INIT;
	rm.type = m->type;
	rm.from = m->from;
	rm.to = m->to;
	rm.term = m->term;
	rm.prev_index = m->prev_index;
	rm.prev_term = m->prev_term;
	rm.commit = m->commit;
	rm.index = m->index;
	rm.last_log_index = m->last_log_index;
	rm.last_log_term = m->last_log_term;
	rm.hint_index = m->hint_index;
	rm.hint_term = m->hint_term;
	rm.read_seq = m->read_seq;
	rm.read_ctx = m->read_ctx;
	rm.reject = m->reject;
	rm.transfer = m->transfer;
	Cairn__Peer__Entry *ents = NULL, **ptrs = NULL;
	int rv = -1;
	if (m->n_entries > 0) {
		ents = calloc(m->n_entries, sizeof(*ents));
		ptrs = calloc(m->n_entries, sizeof(*ptrs));
		if (ents == NULL || ptrs == NULL)
			goto out;
		for (size_t i = 0; i < m->n_entries; i++) {
			Cairn__Peer__Entry init = CAIRN__PEER__ENTRY__INIT;
			ents[i] = init;
			ents[i].term = m->entries[i].term;
			ents[i].index = m->entries[i].index;
			ents[i].type = m->entries[i].type;
			ents[i].data.data = (uint8_t *)m->entries[i].data;
			ents[i].data.len = m->entries[i].len;
			ptrs[i] = &ents[i];
		}
		rm.entries = ptrs;
		rm.n_entries = m->n_entries;
	}
	Cairn__Peer__PeerFrame f = CAIRN__PEER__PEER_FRAME__INIT;
	f.frame_case = CAIRN__PEER__PEER_FRAME__FRAME_RAFT;
	f.raft = &rm;
	size_t n = cairn__peer__peer_frame__get_packed_size(&f);
	if (n > CAIRN_PEER_MAX_FRAME || buf_reserve(b, 4 + n) != 0)
		goto out;
	put_be32(b->data + b->len, (uint32_t)n);
	cairn__peer__peer_frame__pack(&f, b->data + b->len + 4);
	b->len += 4 + n;
	rv = 0;
out:
	free(ents);
	free(ptrs);
	return rv;
}

/* Queues a message on the outbound connection to its peer. A peer that is down or far behind
 * loses the message: Raft retransmits what matters. */
void peer_send_raft(struct server *s, const struct raft_message *m)
{
	struct peer *p = peer_by_id(s, m->to);
	if (p == NULL)
		return;
	struct conn *c = p->out;
	if (c == NULL || !p->up || c->closing || c->out.len > CAIRN_PEER_MAX_BUFFERED) {
		p->dropped++;
		return;
	}
	if (peer_encode_raft(&c->out, m) != 0)
		p->dropped++;
}

/* ---- outbound connections --------------------------------------------------------- */

int server_resolve(const char *addr, struct sockaddr_storage *out)
{
	char host[CAIRN_ADDR_MAX];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
		return UV_EINVAL;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	int port = atoi(colon + 1);
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	char *h = host;
	size_t hl = strlen(h);
	if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
		h[hl - 1] = '\0';
		h++;
	}
	if (strchr(h, ':') != NULL)
		return uv_ip6_addr(h, port, (struct sockaddr_in6 *)out);
	return uv_ip4_addr(h, port, (struct sockaddr_in *)out);
}

static void schedule_retry(struct peer *p);

static int send_hello(struct peer *p)
{
	struct server *s = p->s;
	Cairn__Peer__Hello h = CAIRN__PEER__HELLO__INIT;
	h.cluster_id = s->cluster_id;
	h.member_id = s->cfg.id;
	h.client_addr = s->cfg.advertise_client;
	h.protocol_version = CAIRN_PEER_PROTOCOL_VERSION;
	Cairn__Peer__PeerFrame f = CAIRN__PEER__PEER_FRAME__INIT;
	f.frame_case = CAIRN__PEER__PEER_FRAME__FRAME_HELLO;
	f.hello = &h;
	return conn_send_msg(p->out, &f.base);
}

static void on_connect(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	free(req);
	struct peer *p = c->peer;
	if (c->closing || p == NULL) {
		conn_unref(c);
		return;
	}
	if (status != 0) {
		if (!p->reported_down && p->ever_up)
			slog(p->s, LOG_WARN, "peer %llu (%s) unreachable: %s",
			     (unsigned long long)p->id, p->peer_addr, uv_strerror(status));
		p->reported_down = true;
		conn_close(c, NULL);
		conn_unref(c);
		return;
	}
	if (conn_start(c) != 0 || send_hello(p) != 0) {
		conn_close(c, "cannot start the connection");
		conn_unref(c);
		return;
	}
	p->up = true;
	p->ever_up = true;
	p->reported_down = false;
	p->backoff_ms = CAIRN_PEER_BACKOFF_MIN_MS;
	slog(p->s, LOG_DEBUG, "connected to peer %llu (%s)", (unsigned long long)p->id,
	     p->peer_addr);
	conn_unref(c);
}

static void connect_peer(struct peer *p)
{
	struct server *s = p->s;
	if (s->stopping || p->out != NULL)
		return;
	struct sockaddr_storage sa;
	if (server_resolve(p->peer_addr, &sa) != 0) {
		slog(s, LOG_ERROR, "peer %llu: cannot parse address %s", (unsigned long long)p->id,
		     p->peer_addr);
		return;
	}
	struct conn *c = conn_new(s, CONN_PEER_OUT);
	uv_connect_t *req = malloc(sizeof(*req));
	if (c == NULL || req == NULL) {
		free(req);
		if (c)
			conn_close(c, NULL);
		schedule_retry(p);
		return;
	}
	c->peer = p;
	c->remote_id = p->id;
	p->out = c;
	req->data = c;
	c->refs++;
	int rv = uv_tcp_connect(req, &c->tcp, (const struct sockaddr *)&sa, on_connect);
	if (rv != 0) {
		free(req);
		conn_close(c, uv_strerror(rv));
		conn_unref(c);
	}
}

static void on_retry(uv_timer_t *t)
{
	connect_peer(t->data);
}

static void schedule_retry(struct peer *p)
{
	if (p->s->stopping)
		return;
	uv_timer_start(&p->retry, on_retry, p->backoff_ms, 0);
	p->backoff_ms *= 2;
	if (p->backoff_ms > CAIRN_PEER_BACKOFF_MAX_MS)
		p->backoff_ms = CAIRN_PEER_BACKOFF_MAX_MS;
}

void peer_on_close(struct conn *c)
{
	struct peer *p = c->peer;
	if (c->kind == CONN_PEER_IN)
		snapshot_on_conn_closed(c->s, c);
	if (c->kind == CONN_PEER_IN && p != NULL && c->remote_id != 0 && !c->s->stopping) {
		slog(c->s, LOG_INFO, "peer %llu down", (unsigned long long)p->id);
		raft_peer_lost(c->s->raft, uv_now(c->s->loop), p->id);
	}
	if (c->kind == CONN_PEER_OUT && p != NULL && p->out == c) {
		if (p->up)
			slog(c->s, LOG_DEBUG, "connection to peer %llu (%s) closed",
			     (unsigned long long)p->id, p->peer_addr);
		p->up = false;
		p->out = NULL;
		c->peer = NULL;
		schedule_retry(p);
	}
}

/* ---- inbound connections ---------------------------------------------------------- */

static void on_peer_accept(uv_stream_t *server, int status)
{
	struct server *s = server->data;
	if (status != 0 || s->stopping)
		return;
	struct conn *c = conn_new(s, CONN_PEER_IN);
	if (c == NULL)
		return;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 || conn_start(c) != 0)
		conn_close(c, "accept failed");
}

void peer_on_frame(struct conn *c, const uint8_t *data, size_t len)
{
	struct server *s = c->s;
	if (c->kind != CONN_PEER_IN)
		return; /* outbound connections only send */
	Cairn__Peer__PeerFrame *f = cairn__peer__peer_frame__unpack(NULL, len, data);
	if (f == NULL) {
		conn_close(c, "undecodable peer frame");
		return;
	}
	if (f->frame_case == CAIRN__PEER__PEER_FRAME__FRAME_HELLO) {
		Cairn__Peer__Hello *h = f->hello;
		struct peer *p = peer_by_id(s, h->member_id);
		if (h->cluster_id != s->cluster_id || p == NULL ||
		    h->protocol_version != CAIRN_PEER_PROTOCOL_VERSION) {
			slog(s, LOG_ERROR,
			     "rejecting peer connection from member %llu: cluster id %016llx (ours "
			     "%016llx), protocol %u: check --initial-cluster on every member",
			     (unsigned long long)h->member_id, (unsigned long long)h->cluster_id,
			     (unsigned long long)s->cluster_id, h->protocol_version);
			cairn__peer__peer_frame__free_unpacked(f, NULL);
			conn_close(c, "hello from a stranger");
			return;
		}
		c->remote_id = p->id;
		c->peer = p;
		slog(s, LOG_INFO, "peer %llu up (client address %s)", (unsigned long long)p->id,
		     h->client_addr ? h->client_addr : "");
		if (h->client_addr != NULL && strlen(h->client_addr) < sizeof(p->client_addr))
			strcpy(p->client_addr, h->client_addr);
	} else if (f->frame_case == CAIRN__PEER__PEER_FRAME__FRAME_RAFT && c->remote_id != 0) {
		Cairn__Peer__RaftMessage *rm = f->raft;
		struct raft_message m = {
		    .type = (uint8_t)(rm->type > 255 ? 0 : rm->type),
		    .from = rm->from,
		    .to = rm->to,
		    .term = rm->term,
		    .prev_index = rm->prev_index,
		    .prev_term = rm->prev_term,
		    .commit = rm->commit,
		    .index = rm->index,
		    .last_log_index = rm->last_log_index,
		    .last_log_term = rm->last_log_term,
		    .hint_index = rm->hint_index,
		    .hint_term = rm->hint_term,
		    .read_seq = rm->read_seq,
		    .read_ctx = rm->read_ctx,
		    .reject = rm->reject,
		    .transfer = rm->transfer,
		};
		struct raft_entry *ents = NULL;
		if (m.from != c->remote_id) {
			cairn__peer__peer_frame__free_unpacked(f, NULL);
			conn_close(c, "raft message with a forged sender");
			return;
		}
		if (rm->n_entries > 0) {
			ents = calloc(rm->n_entries, sizeof(*ents));
			if (ents == NULL) {
				cairn__peer__peer_frame__free_unpacked(f, NULL);
				return; /* lost; Raft retransmits */
			}
			for (size_t i = 0; i < rm->n_entries; i++) {
				ents[i].term = rm->entries[i]->term;
				ents[i].index = rm->entries[i]->index;
				ents[i].type = (uint8_t)rm->entries[i]->type;
				ents[i].data = rm->entries[i]->data.data;
				ents[i].len = rm->entries[i]->data.len;
			}
			m.entries = ents;
			m.n_entries = rm->n_entries;
		}
		int rv = raft_step(s->raft, uv_now(s->loop), &m);
		if (rv != 0)
			slog(s, LOG_WARN, "raft_step: %s", raft_strerror(rv));
		free(ents);
	} else if (f->frame_case == CAIRN__PEER__PEER_FRAME__FRAME_SNAPSHOT && c->remote_id != 0) {
		if (f->snapshot->from != c->remote_id) {
			cairn__peer__peer_frame__free_unpacked(f, NULL);
			conn_close(c, "snapshot chunk with a forged sender");
			return;
		}
		snapshot_on_chunk(s, c, f->snapshot);
	} else {
		cairn__peer__peer_frame__free_unpacked(f, NULL);
		conn_close(c, "peer frame before hello");
		return;
	}
	cairn__peer__peer_frame__free_unpacked(f, NULL);
}

/* ---- start / stop ------------------------------------------------------------------ */

int peers_start(struct server *s)
{
	struct sockaddr_storage sa;
	int rv = server_resolve(s->cfg.listen_peer, &sa);
	if (rv != 0) {
		slog(s, LOG_ERROR, "bad --listen-peer %s", s->cfg.listen_peer);
		return -1;
	}
	uv_tcp_init(s->loop, &s->peer_listener);
	s->peer_listener.data = s;
	rv = uv_tcp_bind(&s->peer_listener, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->peer_listener, 128, on_peer_accept);
	if (rv != 0) {
		slog(s, LOG_ERROR, "cannot listen for peers on %s: %s", s->cfg.listen_peer,
		     uv_strerror(rv));
		return -1;
	}
	for (size_t i = 0; i < s->n_peers; i++) {
		struct peer *p = &s->peers[i];
		uv_timer_init(s->loop, &p->retry);
		p->retry.data = p;
		p->backoff_ms = CAIRN_PEER_BACKOFF_MIN_MS;
		connect_peer(p);
	}
	return 0;
}

void peers_stop(struct server *s)
{
	for (size_t i = 0; i < s->n_peers; i++) {
		struct peer *p = &s->peers[i];
		uv_timer_stop(&p->retry);
		uv_close((uv_handle_t *)&p->retry, NULL);
	}
}
