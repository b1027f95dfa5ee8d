/* node.c — drives the Raft core from the event loop: updates to disk and network, client requests,
 * replies. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"

/* ---- pending lists --------------------------------------------------------------- */

static void plist_push(struct pending_list *l, struct pending *p)
{
	p->next = NULL;
	if (l->tail)
		l->tail->next = p;
	else
		l->head = p;
	l->tail = p;
	l->n++;
}

static struct pending *plist_pop(struct pending_list *l)
{
	struct pending *p = l->head;
	if (p == NULL)
		return NULL;
	l->head = p->next;
	if (l->head == NULL)
		l->tail = NULL;
	l->n--;
	p->next = NULL;
	return p;
}

static struct pending *pending_new(struct conn *c, int kind, uint64_t req_id, int op)
{
	struct pending *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return NULL;
	p->kind = kind;
	p->conn = c;
	p->req_id = req_id;
	p->op = op;
	c->refs++;
	c->pending++;
	return p;
}

static void pending_free(struct pending *p)
{
	if (p->req)
		cairn__request__free_unpacked(p->req, NULL);
	p->conn->pending--;
	conn_unref(p->conn);
	free(p);
}

/* ---- replies ------------------------------------------------------------------------ */

const char *node_leader_client_addr(struct server *s, raft_id leader)
{
	if (leader == s->cfg.id)
		return s->cfg.advertise_client;
	struct peer *p = peer_by_id(s, leader);
	return p ? p->client_addr : "";
}

static void fill_header(struct server *s, Cairn__ResponseHeader *h, uint64_t revision)
{
	Cairn__ResponseHeader init = CAIRN__RESPONSE_HEADER__INIT;
	*h = init;
	h->cluster_id = s->cluster_id;
	h->member_id = s->cfg.id;
	h->revision = (int64_t)revision;
	h->raft_term = raft_current_term(s->raft);
}

static void send_response(struct conn *c, Cairn__Response *resp)
{
	if (c->closing)
		return;
	size_t n = cairn__response__get_packed_size(resp);
	if (n > c->s->cfg.max_frame_bytes) {
		/* The client could not read it either: say so instead. */
		char msg[160];
		snprintf(msg, sizeof(msg),
			 "the response (%zu bytes) exceeds the frame limit of %u bytes; use a "
			 "limit or a smaller range",
			 n, c->s->cfg.max_frame_bytes);
		Cairn__Error err = CAIRN__ERROR__INIT;
		err.code = CAIRN__ERROR_CODE__INVALID_ARGUMENT;
		err.message = msg;
		Cairn__Response small = CAIRN__RESPONSE__INIT;
		small.id = resp->id;
		small.header = resp->header;
		small.error = &err;
		conn_send_msg(c, &small.base);
		return;
	}
	conn_send_msg(c, &resp->base);
}

static void reply_error(struct conn *c, uint64_t req_id, Cairn__ErrorCode code, const char *msg)
{
	struct server *s = c->s;
	Cairn__ResponseHeader h;
	fill_header(s, &h, s->revision);
	Cairn__Error err = CAIRN__ERROR__INIT;
	err.code = code;
	err.message = (char *)(msg ? msg : "");
	char addr[CAIRN_ADDR_MAX] = "";
	if (code == CAIRN__ERROR_CODE__NOT_LEADER) {
		raft_id l = raft_leader(s->raft);
		err.leader_id = l;
		snprintf(addr, sizeof(addr), "%s", node_leader_client_addr(s, l));
		err.leader_client_addr = addr;
	}
	Cairn__Response resp = CAIRN__RESPONSE__INIT;
	resp.id = req_id;
	resp.header = &h;
	resp.error = &err;
	send_response(c, &resp);
}

/* Writes must go to the leader: say where it is (or that none is known). */
static void reply_not_leader(struct conn *c, uint64_t req_id)
{
	struct server *s = c->s;
	raft_id l = raft_leader(s->raft);
	if (l == 0 || l == s->cfg.id)
		reply_error(c, req_id, CAIRN__ERROR_CODE__NO_LEADER,
			    "no leader is known right now");
	else
		reply_error(c, req_id, CAIRN__ERROR_CODE__NOT_LEADER, "not the leader");
}

/* ---- reads ----------------------------------------------------------------------------- */

static void serve_range(struct conn *c, uint64_t req_id, const Cairn__RangeRequest *r)
{
	struct server *s = c->s;
	if (c->closing)
		return;
	struct storage_op op = {
	    .type = STORAGE_OP_RANGE,
	    .key = r->key.data,
	    .key_len = r->key.len,
	    .range_end = r->range_end.data,
	    .range_end_len = r->range_end.len,
	    .limit = (uint64_t)r->limit,
	    .flags = (r->keys_only ? STORAGE_OP_KEYS_ONLY : 0u) |
		     (r->count_only ? STORAGE_OP_COUNT_ONLY : 0u),
	};
	struct storage_result res;
	char msg[STORAGE_ERRMSG_SIZE];
	int rv = storage_range(s->store, &op, &res, msg, sizeof(msg));
	if (rv != 0) {
		reply_error(c, req_id, convert_storage_error(rv), msg);
		return;
	}
	struct arena a = {0};
	Cairn__RangeResponse rr;
	if (convert_range_result(&res.ops[0], &rr, &a) != 0) {
		reply_error(c, req_id, CAIRN__ERROR_CODE__INTERNAL, "out of memory");
	} else {
		Cairn__ResponseHeader h;
		fill_header(s, &h, res.revision);
		Cairn__Response resp = CAIRN__RESPONSE__INIT;
		resp.id = req_id;
		resp.header = &h;
		resp.op_case = CAIRN__RESPONSE__OP_RANGE;
		resp.range = &rr;
		send_response(c, &resp);
	}
	arena_free(&a);
	storage_result_free(&res);
}

/* Reads wait for entries the apply thread has computed but not committed (its transaction
 * stays open across batches, worker.c): ask for the commit now rather than at its deadline. */
static void want_commit(struct server *s)
{
	if (s->reads_ready.head != NULL && s->applied < s->replied)
		worker_commit_applies(s);
}

/* Serves linearizable reads whose read index is now applied. */
static void serve_ready_reads(struct server *s)
{
	struct pending_list keep = {0};
	struct pending *p;
	while ((p = plist_pop(&s->reads_ready)) != NULL) {
		if (p->index <= s->applied) {
			serve_range(p->conn, p->req_id, p->req->range);
			pending_free(p);
		} else {
			plist_push(&keep, p);
		}
	}
	s->reads_ready = keep;
	want_commit(s);
}

static void on_read_result(struct server *s, const struct raft_read *rd)
{
	/* Pending reads are few and short-lived; a scan keeps this simple. */
	struct pending **pp = &s->reads.head, *prev = NULL;
	while (*pp && (*pp)->read_ctx != rd->ctx) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	struct pending *p = *pp;
	if (p == NULL)
		return;
	*pp = p->next;
	if (s->reads.tail == p)
		s->reads.tail = prev;
	s->reads.n--;
	p->next = NULL;
	if (rd->err != 0) {
		reply_error(p->conn, p->req_id, CAIRN__ERROR_CODE__LEADERSHIP_LOST,
			    "leadership changed before the read was confirmed; retry");
		pending_free(p);
		return;
	}
	p->index = rd->index;
	plist_push(&s->reads_ready, p);
}

/* etcd answers an empty key with "key is not provided"; so do we, rather than calling it too
 * large. Returns true when some op or compare of the txn has an empty key. */
static bool has_empty_key(const Cairn__TxnRequest *t)
{
	for (size_t i = 0; i < t->n_compare; i++)
		if (t->compare[i]->key.len == 0)
			return true;
	for (int b = 0; b < 2; b++) {
		Cairn__RequestOp **ops = b ? t->failure : t->success;
		size_t n = b ? t->n_failure : t->n_success;
		for (size_t i = 0; i < n; i++) {
			const Cairn__RequestOp *op = ops[i];
			size_t len = 1;
			if (op->request_case == CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE)
				len = op->request_range->key.len;
			else if (op->request_case == CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT)
				len = op->request_put->key.len;
			else if (op->request_case ==
				 CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE)
				len = op->request_delete_range->key.len;
			if (len == 0)
				return true;
		}
	}
	return false;
}

static void handle_range(struct conn *c, Cairn__Request *req)
{
	struct server *s = c->s;
	const Cairn__RangeRequest *r = req->range;
	Cairn__RequestOp op = CAIRN__REQUEST_OP__INIT;
	op.request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE;
	op.request_range = req->range;
	Cairn__RequestOp *ops[1] = {&op};
	Cairn__TxnRequest t = CAIRN__TXN_REQUEST__INIT;
	t.success = ops;
	t.n_success = 1;
	struct txn_build tb;
	char msg[STORAGE_ERRMSG_SIZE] = "invalid range request (revision must be 0, limit >= 0)";
	if (has_empty_key(&t)) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__INVALID_ARGUMENT, "key is not provided");
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	int rv = convert_txn(&t, &tb);
	if (rv == 0) {
		rv = storage_txn_validate(&tb.txn, msg, sizeof(msg));
		convert_txn_free(&tb);
	}
	if (rv != 0) {
		reply_error(c, req->id, convert_storage_error(rv), msg);
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	/* Writes are answered as soon as their results are known, a moment before the apply
	 * transaction commits (worker.c): a serializable read waits for that commit, so that a
	 * member never serves state older than what it acknowledged (read-your-writes). */
	if (r->serializable && s->applied >= s->replied) {
		serve_range(c, req->id, r);
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	struct pending *p = pending_new(c, PENDING_READ, req->id, req->op_case);
	if (p == NULL) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__INTERNAL, "out of memory");
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	p->req = req;
	if (r->serializable) {
		p->index = s->replied;
		p->deadline = uv_now(s->loop) + CAIRN_READ_TIMEOUT_MS;
		plist_push(&s->reads_ready, p);
		want_commit(s);
		return;
	}
	p->read_ctx = ++s->next_read_ctx;
	p->deadline = uv_now(s->loop) + CAIRN_READ_TIMEOUT_MS;
	rv = raft_read_index(s->raft, uv_now(s->loop), p->read_ctx);
	if (rv != 0) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__NO_LEADER,
			    "no leader is known right now");
		pending_free(p);
		return;
	}
	plist_push(&s->reads, p);
}

/* ---- writes ---------------------------------------------------------------------------- */

static void propose(struct conn *c, Cairn__Request *req, Cairn__Peer__Command *cmd, int kind)
{
	struct server *s = c->s;
	size_t n = cairn__peer__command__get_packed_size(cmd);
	uint8_t *data = malloc(n ? n : 1);
	if (data == NULL) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__INTERNAL, "out of memory");
		return;
	}
	cairn__peer__command__pack(cmd, data);
	struct raft_entry e = {.type = RAFT_ENTRY_NORMAL, .data = data, .len = n};
	raft_term term;
	raft_index index;
	int rv = raft_propose(s->raft, uv_now(s->loop), &e, 1, &term, &index);
	free(data);
	if (rv == RAFT_ENOTLEADER) {
		reply_not_leader(c, req->id);
		return;
	}
	if (rv == RAFT_ETRANSFER) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__NO_LEADER,
			    "leadership transfer in progress; retry");
		return;
	}
	if (rv != 0) {
		reply_error(c, req->id,
			    rv == RAFT_ETOOBIG ? CAIRN__ERROR_CODE__INVALID_ARGUMENT
					       : CAIRN__ERROR_CODE__INTERNAL,
			    raft_strerror(rv));
		return;
	}
	struct pending *p = pending_new(c, kind, req->id, req->op_case);
	if (p == NULL)
		return; /* the write goes on; the client times out and retries (exactly-once) */
	p->term = term;
	p->index = index;
	plist_push(&s->writes, p);
}

/* Admission control: refuse a write the store may not have room for, so that no committed
 * entry ever meets a full map (or disk) on its way to disk. The reading lags a little; writes
 * admitted since it are counted on top. */
#define NOSPACE_MAP  "the data store is full (--map-size); reads still work"
#define NOSPACE_DISK "the disk of the data directory is (nearly) full; reads still work"
static bool admit_write(struct server *s, size_t request_bytes, const char **why)
{
	*why = NOSPACE_MAP;
	if (worker_nospace(s)) {
		*why = worker_nospace_disk(s) ? NOSPACE_DISK : NOSPACE_MAP;
		return false;
	}
	for (int attempt = 0;; attempt++) {
		struct storage_space sp;
		uint64_t seq;
		worker_space(s, &sp, &seq);
		if (sp.map_size == 0)
			return true; /* no reading yet */
		if (seq != s->admitted_seq) {
			s->admitted_seq = seq;
			s->admitted_bytes = 0;
		}
		uint64_t cost =
		    (uint64_t)request_bytes * CAIRN_SPACE_WRITE_FACTOR + 2 * sp.page_size;
		uint64_t reserve = sp.map_size / 64;
		if (reserve < 16 * sp.page_size)
			reserve = 16 * sp.page_size;
		/* The log's files and data.mdb's growth need disk space too: keep some free, so
		 * that a full disk is met here rather than by a commit (fatal for LMDB). */
		bool disk_ok = sp.disk_free_bytes == UINT64_MAX ||
			       s->admitted_bytes + cost + CAIRN_DISK_RESERVE_BYTES <=
				   sp.disk_free_bytes;
		*why = disk_ok ? NOSPACE_MAP : NOSPACE_DISK;
		if (disk_ok && sp.used_bytes + s->admitted_bytes + cost + reserve <= sp.map_size) {
			s->admitted_bytes += cost;
			return true;
		}
		/* Refused: writes counted since the reading may be on disk by now, or space may
		 * have been freed (the worker reads again only after its commits), so take a
		 * new reading (at most every CAIRN_SPACE_REFRESH_MS) rather than refuse for
		 * good. */
		if (attempt > 0 || !worker_space_refresh(s))
			return false;
	}
}

static void handle_write(struct conn *c, Cairn__Request *req)
{
	struct server *s = c->s;
	if (raft_role(s->raft) != RAFT_LEADER) {
		reply_not_leader(c, req->id);
		return;
	}
	Cairn__TxnRequest txn;
	Cairn__RequestOp op;
	Cairn__RequestOp *ops[1];
	convert_request_txn(req, &txn, &op, ops);
	struct txn_build tb;
	char msg[STORAGE_ERRMSG_SIZE] = "malformed request (lease and revision must be 0)";
	if (has_empty_key(&txn)) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__INVALID_ARGUMENT, "key is not provided");
		return;
	}
	int rv = convert_txn(&txn, &tb);
	if (rv == 0) {
		rv = storage_txn_validate(&tb.txn, msg, sizeof(msg));
		convert_txn_free(&tb);
	}
	if (rv != 0) {
		reply_error(c, req->id, convert_storage_error(rv), msg);
		return;
	}
	/* Only valid writes are charged against the space estimate. */
	const char *why;
	if (!admit_write(s, cairn__request__get_packed_size(req), &why)) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__NO_SPACE, why);
		return;
	}
	Cairn__Peer__Command cmd = CAIRN__PEER__COMMAND__INIT;
	cmd.client_id = req->client_id;
	cmd.seq = req->seq;
	cmd.cmd_case = CAIRN__PEER__COMMAND__CMD_TXN;
	cmd.txn = &txn;
	propose(c, req, &cmd, PENDING_WRITE);
}

static void handle_session(struct conn *c, Cairn__Request *req)
{
	struct server *s = c->s;
	if (raft_role(s->raft) != RAFT_LEADER) {
		reply_not_leader(c, req->id);
		return;
	}
	Cairn__Peer__Command cmd = CAIRN__PEER__COMMAND__INIT;
	cmd.cmd_case = CAIRN__PEER__COMMAND__CMD_OPEN_SESSION;
	cmd.open_session = true;
	propose(c, req, &cmd, PENDING_SESSION);
}

static void reply_write(struct server *s, struct pending *p, const struct storage_result *r)
{
	struct conn *c = p->conn;
	if (c->closing)
		return;
	if (r->status != 0) {
		const char *msg = storage_strerror(r->status);
		Cairn__ErrorCode code = convert_storage_error(r->status);
		if (r->status == STORAGE_ENOREPLY) {
			/* Applied exactly once, but the reply was too large to keep for retries:
			 * to this client the outcome is as unknown as a lost reply. */
			msg = "the write was applied once but its reply was too large to keep";
			code = CAIRN__ERROR_CODE__TIMEOUT;
		}
		reply_error(c, p->req_id, code, msg);
		return;
	}
	Cairn__ResponseHeader h;
	fill_header(s, &h, r->revision);
	Cairn__Response resp = CAIRN__RESPONSE__INIT;
	resp.id = p->req_id;
	resp.header = &h;
	struct arena a = {0};
	Cairn__SessionResponse sr = CAIRN__SESSION_RESPONSE__INIT;
	if (p->kind == PENDING_SESSION) {
		sr.client_id = r->client_id;
		resp.op_case = CAIRN__RESPONSE__OP_SESSION;
		resp.session = &sr;
	} else if (convert_result(r, p->op, &resp, &a) != 0) {
		arena_free(&a);
		reply_error(c, p->req_id, CAIRN__ERROR_CODE__INTERNAL, "cannot encode the result");
		return;
	}
	send_response(c, &resp);
	arena_free(&a);
}

/* Leadership lost: whatever we proposed may or may not commit under the next leader. The
 * client retries with the same session sequence number, which makes that safe. */
static void fail_pending_writes(struct server *s, const char *why)
{
	struct pending *p;
	while ((p = plist_pop(&s->writes)) != NULL) {
		if (!p->conn->closing)
			reply_error(p->conn, p->req_id, CAIRN__ERROR_CODE__LEADERSHIP_LOST, why);
		pending_free(p);
	}
}

/* ---- status ---------------------------------------------------------------------------- */

static void handle_status(struct conn *c, Cairn__Request *req)
{
	struct server *s = c->s;
	struct storage_state st = {0};
	storage_state(s->store, &st, NULL, 0);
	struct storage_stats ss;
	storage_stats(s->store, &ss);
	char path[1100];
	snprintf(path, sizeof(path), "%s/data.mdb", s->cfg.data_dir);
	struct stat sb;
	int64_t db_size = stat(path, &sb) == 0 ? (int64_t)sb.st_blocks * 512 : 0;

	Cairn__Member members[CAIRN_MAX_MEMBERS];
	Cairn__Member *mp[CAIRN_MAX_MEMBERS];
	char names[CAIRN_MAX_MEMBERS][CAIRN_NAME_MAX];
	size_t n = 0;
	for (size_t i = 0; i < s->cfg.n_members; i++) {
		Cairn__Member init = CAIRN__MEMBER__INIT;
		members[n] = init;
		const struct member_addr *m = &s->cfg.members[i];
		members[n].id = m->id;
		members[n].peer_addr = (char *)m->peer_addr;
		if (m->id == s->cfg.id) {
			members[n].name = s->cfg.name;
			members[n].client_addr = s->cfg.advertise_client;
		} else {
			snprintf(names[n], sizeof(names[n]), "cairn-%llu",
				 (unsigned long long)m->id);
			members[n].name = names[n];
			struct peer *p = peer_by_id(s, m->id);
			members[n].client_addr = p ? p->client_addr : (char *)"";
		}
		mp[n] = &members[n];
		n++;
	}
	struct raft_stats rs;
	raft_get_stats(s->raft, &rs);
	Cairn__StatusResponse sr = CAIRN__STATUS_RESPONSE__INIT;
	sr.member_id = s->cfg.id;
	sr.leader_id = raft_leader(s->raft);
	sr.raft_term = raft_current_term(s->raft);
	sr.commit_index = raft_commit_index(s->raft);
	sr.applied_index = st.applied_index;
	sr.revision = (int64_t)st.revision;
	sr.db_size = db_size;
	sr.members = mp;
	sr.n_members = n;
	sr.version = CAIRN_VERSION;
	sr.role = (char *)raft_role_name(raft_role(s->raft));
	sr.fsyncs = ss.syncs;
	if (req->status != NULL && req->status->kv_hash) {
		struct storage_kv_hash kh;
		if (storage_kv_hash(s->store, &kh, NULL, 0) == 0) {
			sr.kv_hash = kh.hash;
			sr.applied_index = kh.applied_index;
			sr.revision = (int64_t)kh.revision;
		}
	}
	sr.entries_committed = rs.entries_committed;
	sr.log_first_index = raft_first_index(s->raft);
	sr.compactions = s->compactions;
	sr.snapshots_sent = s->snapshots_sent;
	sr.snapshots_installed = s->snapshots_installed;
	Cairn__ResponseHeader h;
	fill_header(s, &h, st.revision);
	Cairn__Response resp = CAIRN__RESPONSE__INIT;
	resp.id = req->id;
	resp.header = &h;
	resp.op_case = CAIRN__RESPONSE__OP_STATUS;
	resp.status = &sr;
	send_response(c, &resp);
}

/* ---- client frames --------------------------------------------------------------------- */

void node_on_client_frame(struct conn *c, const uint8_t *data, size_t len)
{
	struct server *s = c->s;
	Cairn__Request *req = cairn__request__unpack(NULL, len, data);
	if (req == NULL) {
		Cairn__Error err = CAIRN__ERROR__INIT;
		err.code = CAIRN__ERROR_CODE__BAD_FRAME;
		err.message = "undecodable request frame; closing the connection";
		Cairn__Response resp = CAIRN__RESPONSE__INIT;
		resp.error = &err;
		send_response(c, &resp);
		c->close_after_flush = true;
		slog(s, LOG_WARN, "client connection %llu: undecodable frame of %zu bytes; closing",
		     (unsigned long long)c->id, len);
		return;
	}
	if (s->stopping) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__SHUTTING_DOWN, "the server is stopping");
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	if (c->pending >= CAIRN_MAX_PENDING_PER_CONN) {
		reply_error(c, req->id, CAIRN__ERROR_CODE__INVALID_ARGUMENT,
			    "too many requests in flight on this connection");
		cairn__request__free_unpacked(req, NULL);
		return;
	}
	switch (req->op_case) {
	case CAIRN__REQUEST__OP_RANGE:
		handle_range(c, req); /* takes ownership of req */
		return;
	case CAIRN__REQUEST__OP_PUT:
	case CAIRN__REQUEST__OP_DELETE_RANGE:
	case CAIRN__REQUEST__OP_TXN:
		handle_write(c, req);
		break;
	case CAIRN__REQUEST__OP_SESSION:
		handle_session(c, req);
		break;
	case CAIRN__REQUEST__OP_STATUS:
		handle_status(c, req);
		break;
	default:
		reply_error(c, req->id, CAIRN__ERROR_CODE__UNKNOWN_OPERATION,
			    "request has no known operation set");
		break;
	}
	cairn__request__free_unpacked(req, NULL);
}

static void on_client_accept(uv_stream_t *listener, int status)
{
	struct server *s = listener->data;
	if (status != 0 || s->stopping)
		return;
	struct conn *c = conn_new(s, CONN_CLIENT);
	if (c == NULL)
		return;
	if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || conn_start(c) != 0)
		conn_close(c, "accept failed");
}

/* ---- raft updates ------------------------------------------------------------------------ */

static int copy_entries(const struct raft_entry *in, size_t n, struct storage_entry **out,
			uint8_t **arena)
{
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += in[i].len;
	*out = malloc((n ? n : 1) * sizeof(**out));
	*arena = malloc(bytes ? bytes : 1);
	if (*out == NULL || *arena == NULL)
		return -1;
	size_t off = 0;
	for (size_t i = 0; i < n; i++) {
		struct storage_entry *e = &(*out)[i];
		e->index = in[i].index;
		e->term = in[i].term;
		e->type = in[i].type;
		e->len = in[i].len;
		e->data = *arena + off;
		if (in[i].len)
			memcpy(*arena + off, in[i].data, in[i].len);
		off += in[i].len;
	}
	return 0;
}

static void oom_fatal(struct server *s)
{
	slog(s, LOG_ERROR, "FATAL: out of memory handling a Raft update; exiting");
	fflush(stderr);
	_exit(3);
}

static void on_soft_state(struct server *s, const struct raft_update *u)
{
	int old_role = s->role;
	raft_id old_leader = s->leader;
	s->role = u->role;
	s->leader = u->leader;
	if (u->role == RAFT_LEADER && old_role != RAFT_LEADER)
		slog(s, LOG_INFO, "elected leader in term %llu",
		     (unsigned long long)raft_current_term(s->raft));
	if (old_role == RAFT_LEADER && u->role != RAFT_LEADER) {
		slog(s, LOG_INFO, "stepped down in term %llu",
		     (unsigned long long)raft_current_term(s->raft));
		fail_pending_writes(s, "leadership lost before the write was applied; outcome "
				       "unknown, retry with the same sequence number");
	}
	if (u->leader != old_leader && u->leader != s->cfg.id) {
		if (u->leader == 0)
			slog(s, LOG_INFO, "no leader (term %llu, %s)",
			     (unsigned long long)raft_current_term(s->raft),
			     raft_role_name(u->role));
		else
			slog(s, LOG_INFO, "leader is %llu (term %llu)",
			     (unsigned long long)u->leader,
			     (unsigned long long)raft_current_term(s->raft));
	}
}

static void process_update(struct server *s, const struct raft_update *u)
{
	if (u->soft_state_changed)
		on_soft_state(s, u);

	bool persist = u->hard_state_changed || u->truncate_from != 0 || u->n_entries > 0;
	if (persist || (u->n_messages_after_persist > 0 && s->log_jobs_in_flight > 0)) {
		struct job *j = calloc(1, sizeof(*j));
		if (j == NULL)
			oom_fatal(s);
		j->kind = JOB_PERSIST;
		j->truncate_from = u->truncate_from;
		if (u->hard_state_changed) {
			j->has_hs = true;
			j->hs.term = u->term;
			j->hs.vote = u->vote;
		}
		if (u->n_entries > 0 &&
		    copy_entries(u->entries, u->n_entries, &j->entries, &j->arena) != 0)
			oom_fatal(s);
		j->n_entries = u->n_entries;
		if (u->n_messages_after_persist > 0) {
			j->after = calloc(u->n_messages_after_persist, sizeof(*j->after));
			if (j->after == NULL)
				oom_fatal(s);
			for (size_t i = 0; i < u->n_messages_after_persist; i++) {
				j->after[i].to = u->messages_after_persist[i].to;
				if (peer_encode_raft(&j->after[i].frame,
						     &u->messages_after_persist[i]) != 0)
					oom_fatal(s);
			}
			j->n_after = u->n_messages_after_persist;
		}
		worker_submit(s, j);
	} else {
		for (size_t i = 0; i < u->n_messages_after_persist; i++)
			peer_send_raft(s, &u->messages_after_persist[i]);
	}

	for (size_t i = 0; i < u->n_messages; i++)
		peer_send_raft(s, &u->messages[i]);

	if (u->n_committed > 0) {
		struct job *j = calloc(1, sizeof(*j));
		if (j == NULL ||
		    copy_entries(u->committed, u->n_committed, &j->apply, &j->arena) != 0)
			oom_fatal(s);
		j->kind = JOB_APPLY;
		j->n_apply = u->n_committed;
		worker_submit(s, j);
	}

	for (size_t i = 0; i < u->n_send_snapshot; i++)
		snapshot_send_start(s, u->send_snapshot[i]);

	for (size_t i = 0; i < u->n_reads; i++)
		on_read_result(s, &u->reads[i]);
	if (u->n_reads > 0)
		serve_ready_reads(s); /* one pass for all the reads this update confirmed */
}

void node_process_updates(struct server *s)
{
	for (int guard = 0; guard < 64 && raft_has_update(s->raft); guard++) {
		struct raft_update u;
		int rv = raft_take_update(s->raft, &u);
		if (rv != 0)
			oom_fatal(s);
		process_update(s, &u);
	}
}

/* A frame already encoded for one peer. */
static void send_encoded(struct server *s, struct encoded_msg *m)
{
	struct peer *p = peer_by_id(s, m->to);
	if (p == NULL || p->out == NULL || !p->up || p->out->closing ||
	    p->out->out.len > CAIRN_PEER_MAX_BUFFERED) {
		if (p)
			p->dropped++;
		return;
	}
	struct buf *b = &p->out->out;
	if (buf_reserve(b, m->frame.len) != 0)
		return;
	memcpy(b->data + b->len, m->frame.data, m->frame.len);
	b->len += m->frame.len;
}

void node_on_job_done(struct server *s, struct job *j)
{
	uint64_t now = uv_now(s->loop);
	if (j->kind == JOB_INSTALL || j->kind == JOB_COMPACT) {
		snapshot_on_job_done(s, j);
		serve_ready_reads(s);
		return;
	}
	if (j->kind == JOB_PERSIST) {
		if (j->n_entries > 0) {
			const struct storage_entry *last = &j->entries[j->n_entries - 1];
			raft_persisted(s->raft, now, last->term, last->index);
		}
		for (size_t i = 0; i < j->n_after; i++)
			send_encoded(s, &j->after[i]);
		return;
	}
	if (j->results == NULL) {
		/* Only at shutdown: the entries stay in the log and are applied at restart. */
		return;
	}

	if (!j->replied)
		node_on_apply_results(s, j);
	uint64_t bytes = 0;
	for (size_t i = 0; i < j->n_apply; i++) {
		const struct storage_entry *e = &j->apply[i];
		if (e->index <= s->applied)
			continue;
		bytes += e->len;
		s->applied = e->index;
		s->applied_term = e->term;
		s->entries_applied++;
	}
	serve_ready_reads(s);
	snapshot_maybe_compact(s, bytes);
}

/* Answers the writes a batch of applied entries decides. Runs when the results are known,
 * before the apply transaction commits (worker.c, post_results): the entries are committed in
 * Raft, so their outcome is final whatever happens to this disk write. Reads still wait for
 * s->applied, which moves only once the commit is done (and ask for it: want_commit). */
void node_on_apply_results(struct server *s, struct job *j)
{
	j->replied = true;
	for (size_t i = 0; i < j->n_apply; i++) {
		const struct storage_entry *e = &j->apply[i];
		const struct storage_result *r = &j->results[i];
		if (e->index <= s->replied)
			continue;
		s->replied = e->index;
		s->revision = r->revision;
		/* Proposals are in index order; any below this index were overwritten. */
		while (s->writes.head && s->writes.head->index <= e->index) {
			struct pending *p = plist_pop(&s->writes);
			if (p->index == e->index && p->term == e->term)
				reply_write(s, p, r);
			else if (!p->conn->closing)
				reply_error(p->conn, p->req_id, CAIRN__ERROR_CODE__LEADERSHIP_LOST,
					    "the proposal was overwritten by a new leader; retry");
			pending_free(p);
		}
	}
	want_commit(s);
}

/* ---- the loop hooks ---------------------------------------------------------------------- */

/* Reads whose read index never came (the request or its answer was lost with a peer
 * connection) or whose index is never applied would wait forever: answer TIMEOUT. */
static void expire_list(struct pending_list *l, uint64_t now)
{
	struct pending_list keep = {0};
	struct pending *p;
	while ((p = plist_pop(l)) != NULL) {
		if (now < p->deadline) {
			plist_push(&keep, p);
			continue;
		}
		reply_error(p->conn, p->req_id, CAIRN__ERROR_CODE__TIMEOUT,
			    "the read could not be confirmed in time; retry");
		pending_free(p);
	}
	*l = keep;
}

static void on_sweep_timer(uv_timer_t *t)
{
	struct server *s = t->data;
	uint64_t now = uv_now(s->loop);
	expire_list(&s->reads, now);
	expire_list(&s->reads_ready, now);
#ifdef __GLIBC__
	/* A compaction frees thousands of entries at once, and glibc keeps freed memory inside
	 * its heap; hand it back to the system a little later (once the core has released the
	 * dropped entries: it frees them over its next updates). Measured: ~1 MiB per member. */
	if (s->trim_after_ms != 0 && now >= s->trim_after_ms) {
		s->trim_after_ms = 0;
		malloc_trim(0);
	}
#endif
}

static void on_raft_timer(uv_timer_t *t)
{
	struct server *s = t->data;
	int rv = raft_tick(s->raft, uv_now(s->loop));
	if (rv != 0)
		slog(s, LOG_WARN, "raft_tick: %s", raft_strerror(rv));
}

/* Redis' beforeSleep: once per loop iteration, hand Raft's output to disk and network, then
 * write every connection's queued frames with one write call each. */
static void on_before_sleep(uv_prepare_t *h)
{
	struct server *s = h->data;
	node_process_updates(s);
	snapshot_pump(s);
	conn_flush_all(s);
	if (s->stopping)
		return;
	uint64_t now = uv_now(s->loop);
	uint64_t next = raft_next_timeout(s->raft);
	if (raft_has_update(s->raft))
		next = now; /* more output than one turn handles: come back at once */
	uv_timer_start(&s->raft_timer, on_raft_timer, next > now ? next - now : 0, 0);
}

/* ---- start / stop ------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rng_next(void *ctx)
{
	return splitmix(ctx);
}

static uint64_t cluster_id_of(const struct config *c)
{
	/* FNV-1a over the cluster token and the sorted member ids: every member computes the
	 * same id, whatever address it uses to reach the others (proxies, NAT). */
	raft_id ids[CAIRN_MAX_MEMBERS];
	size_t n = c->n_members;
	for (size_t i = 0; i < n; i++)
		ids[i] = c->members[i].id;
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (ids[j] < ids[i]) {
				raft_id t = ids[i];
				ids[i] = ids[j];
				ids[j] = t;
			}
	uint64_t h = 0xcbf29ce484222325ull;
	char tmp[sizeof(c->cluster_token) + 32];
	snprintf(tmp, sizeof(tmp), "%s;", c->cluster_token);
	for (const char *p = tmp; *p; p++) {
		h ^= (uint8_t)*p;
		h *= 0x100000001b3ull;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(tmp, sizeof(tmp), "%llu,", (unsigned long long)ids[i]);
		for (const char *p = tmp; *p; p++) {
			h ^= (uint8_t)*p;
			h *= 0x100000001b3ull;
		}
	}
	return h;
}

int node_start(struct server *s)
{
	char msg[STORAGE_ERRMSG_SIZE];
	struct storage_options so = {.map_size = s->cfg.map_size, .nosync = s->cfg.nosync};
	int rv = storage_open(s->cfg.data_dir, &so, &s->store, msg, sizeof(msg));
	if (rv != 0) {
		slog(s, LOG_ERROR, "cannot open data directory %s: %s (%s)", s->cfg.data_dir,
		     storage_strerror(rv), msg);
		return -1;
	}
	struct storage_state st;
	rv = storage_state(s->store, &st, msg, sizeof(msg));
	if (rv != 0) {
		slog(s, LOG_ERROR, "cannot read state from %s: %s (%s)", s->cfg.data_dir,
		     storage_strerror(rv), msg);
		return -1;
	}
	struct storage_entries ents = {0};
	if (st.last_index >= st.first_index) {
		rv = storage_log_entries(s->store, st.first_index, st.last_index + 1, 0, &ents, msg,
					 sizeof(msg));
		if (rv != 0) {
			slog(s, LOG_ERROR, "cannot read the log from %s: %s (%s)", s->cfg.data_dir,
			     storage_strerror(rv), msg);
			return -1;
		}
	}
	s->cluster_id = cluster_id_of(&s->cfg);
	s->applied = st.applied_index;
	s->replied = st.applied_index;
	s->applied_term = st.applied_term;
	s->revision = st.revision;

	struct raft_server servers[CAIRN_MAX_MEMBERS];
	for (size_t i = 0; i < s->cfg.n_members; i++) {
		servers[i].id = s->cfg.members[i].id;
		servers[i].voter = true;
		if (servers[i].id != s->cfg.id) {
			struct peer *p = &s->peers[s->n_peers++];
			memset(p, 0, sizeof(*p));
			p->s = s;
			p->id = servers[i].id;
			strcpy(p->peer_addr, s->cfg.members[i].peer_addr);
		}
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	s->rng = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ ((uint64_t)getpid() << 40) ^
		 s->cfg.id;
	struct raft_config rc = {
	    .id = s->cfg.id,
	    .configuration = {.servers = servers, .n = s->cfg.n_members},
	    .election_timeout_ms = s->cfg.election_timeout_ms,
	    .heartbeat_ms = s->cfg.heartbeat_ms,
	    .rand = rng_next,
	    .rand_ctx = &s->rng,
	};
	struct raft_entry *re = NULL;
	if (ents.n > 0) {
		re = calloc(ents.n, sizeof(*re));
		if (re == NULL) {
			storage_entries_free(&ents);
			return -1;
		}
		for (size_t i = 0; i < ents.n; i++) {
			re[i].index = ents.entries[i].index;
			re[i].term = ents.entries[i].term;
			re[i].type = ents.entries[i].type;
			re[i].data = ents.entries[i].data;
			re[i].len = ents.entries[i].len;
		}
	}
	struct raft_initial_state is = {
	    .term = st.hard_state.term,
	    .vote = st.hard_state.vote,
	    .first_index = st.first_index,
	    .prev_term = st.snapshot_term,
	    .entries = re,
	    .n_entries = ents.n,
	    .applied = st.applied_index,
	};
	rv = raft_init(&s->raft, &rc, &is, uv_now(s->loop));
	free(re);
	storage_entries_free(&ents);
	if (rv != 0) {
		slog(s, LOG_ERROR, "cannot start Raft from %s: %s", s->cfg.data_dir,
		     raft_strerror(rv));
		return -1;
	}
	slog(s, LOG_INFO,
	     "member %llu (%s) starting: data %s, term %llu, log %llu..%llu, applied %llu, "
	     "revision %llu, cluster %016llx with %zu member(s)",
	     (unsigned long long)s->cfg.id, s->cfg.name, s->cfg.data_dir,
	     (unsigned long long)st.hard_state.term, (unsigned long long)st.first_index,
	     (unsigned long long)st.last_index, (unsigned long long)st.applied_index,
	     (unsigned long long)st.revision, (unsigned long long)s->cluster_id, s->cfg.n_members);

	if (worker_start(s) != 0) {
		slog(s, LOG_ERROR, "cannot start the storage thread");
		return -1;
	}

	struct sockaddr_storage sa;
	if (server_resolve(s->cfg.listen_client, &sa) != 0) {
		slog(s, LOG_ERROR, "bad --listen-client %s", s->cfg.listen_client);
		return -1;
	}
	uv_tcp_init(s->loop, &s->client_listener);
	s->client_listener.data = s;
	rv = uv_tcp_bind(&s->client_listener, (const struct sockaddr *)&sa, 0);
	if (rv == 0)
		rv = uv_listen((uv_stream_t *)&s->client_listener, 511, on_client_accept);
	if (rv != 0) {
		slog(s, LOG_ERROR, "cannot listen for clients on %s: %s", s->cfg.listen_client,
		     uv_strerror(rv));
		uv_close((uv_handle_t *)&s->client_listener, NULL);
		return -1;
	}
	s->listeners_open = true;
	if (peers_start(s) != 0) {
		uv_close((uv_handle_t *)&s->peer_listener, NULL);
		return -1;
	}
	uv_timer_init(s->loop, &s->raft_timer);
	s->raft_timer.data = s;
	uv_timer_init(s->loop, &s->sweep_timer);
	s->sweep_timer.data = s;
	uv_timer_start(&s->sweep_timer, on_sweep_timer, CAIRN_SWEEP_MS, CAIRN_SWEEP_MS);
	uv_prepare_init(s->loop, &s->before_sleep);
	s->before_sleep.data = s;
	uv_prepare_start(&s->before_sleep, on_before_sleep);
	uv_timer_start(&s->raft_timer, on_raft_timer, 0, 0);
	slog(s, LOG_INFO, "serving clients on %s, peers on %s", s->cfg.listen_client,
	     s->cfg.listen_peer);
	return 0;
}

/* Stop accepting, finish the disk work already queued, close every handle. */
void node_stop(struct server *s)
{
	if (s->stopping)
		return;
	s->stopping = true;
	slog(s, LOG_INFO, "shutting down");
	if (s->listeners_open) {
		uv_close((uv_handle_t *)&s->client_listener, NULL);
		uv_close((uv_handle_t *)&s->peer_listener, NULL);
		s->listeners_open = false;
	}
	uv_timer_stop(&s->raft_timer);
	uv_close((uv_handle_t *)&s->raft_timer, NULL);
	uv_timer_stop(&s->sweep_timer);
	uv_close((uv_handle_t *)&s->sweep_timer, NULL);
	uv_prepare_stop(&s->before_sleep);
	uv_close((uv_handle_t *)&s->before_sleep, NULL);
	snapshot_stop(s);
	worker_stop(s);
	fail_pending_writes(s, "the server is shutting down; outcome unknown");
	struct pending *p;
	while ((p = plist_pop(&s->reads)) != NULL)
		pending_free(p);
	while ((p = plist_pop(&s->reads_ready)) != NULL)
		pending_free(p);
	peers_stop(s);
	conn_flush_all(s);
	for (struct conn *c = s->conns, *next; c; c = next) {
		next = c->next;
		conn_close(c, NULL);
	}
}
