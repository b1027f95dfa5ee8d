/* libcairn against an in-test fake server: framing, routing, retries, sessions, async, errors. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "client/cairn.h"
#include "proto/cairn.pb-c.h"

/* ---- the fake server --------------------------------------------------------------------- */

#define FAKE_MAX_CONNS 16
#define FAKE_MAX_RECS  4096
#define FAKE_MAX_KEYS  256
#define FAKE_MAX_SESS  256
#define FAKE_MAX_BATCH 64
/* A safety net for waits in tests; never an assertion about speed. */
#define WAIT_LIMIT_S 20

struct rec {
	uint64_t id, client_id, seq;
	int op;
	char key[64];
	int conn; /* accept number of the connection it came on */
};

struct fake_conn {
	int fd;
	int no;
	uint8_t *buf;
	size_t len, cap;
};

struct fake {
	int lfd;
	int wake[2];
	uint16_t port;
	char addr[32];
	uint64_t member_id;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop;
	struct fake_conn conns[FAKE_MAX_CONNS];
	int accepts;
	struct rec recs[FAKE_MAX_RECS];
	size_t n_recs;
	/* the tiny key-value store */
	char keys[FAKE_MAX_KEYS][64];
	char vals[FAKE_MAX_KEYS][64];
	int64_t versions[FAKE_MAX_KEYS];
	size_t n_keys;
	int64_t rev;
	int applied; /* writes applied (retries answered from the session cache excluded) */
	struct {
		uint64_t client_id, last_seq;
	} sess[FAKE_MAX_SESS];
	size_t n_sess;
	/* behaviour switches, set by tests under mu */
	const char *redirect_to; /* answer NOT_LEADER pointing here to writes, sessions, reads */
	int drop_writes;	 /* apply the next N writes, then close without answering */
	bool hold_writes;	 /* never answer writes */
	bool hold_reads;	 /* never answer reads */
	int batch;		 /* collect N answers, send them in reverse order in one write */
	bool split;		 /* send each answer in two writes */
	int garbage;		 /* 1: undecodable frame, 2: oversized length, to reads */
	int expire_writes;	 /* answer the next N writes SESSION_EXPIRED */
	int error_code;		 /* answer writes with this error code */
	bool drop_then_expire;	 /* after dropping a write, expire the next one */
	int redirect_writes;	 /* answer the next N writes NOT_LEADER -> redirect_writes_to */
	const char *redirect_writes_to;
	size_t pend_len[FAKE_MAX_BATCH];
	uint8_t *pend[FAKE_MAX_BATCH];
	int n_pend;
	int pend_fd;
};

static void write_all(int fd, const void *p, size_t len)
{
	const uint8_t *b = p;

	while (len > 0) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		if (n <= 0) {
			return; /* the client went away: fine for a fake */
		}
		b += n;
		len -= (size_t)n;
	}
}

static uint8_t *frame_of(const Cairn__Response *r, size_t *len)
{
	size_t n = cairn__response__get_packed_size(r);
	uint8_t *b = malloc(n + 4);

	ck_assert_ptr_nonnull(b);
	b[0] = (uint8_t)(n >> 24);
	b[1] = (uint8_t)(n >> 16);
	b[2] = (uint8_t)(n >> 8);
	b[3] = (uint8_t)n;
	cairn__response__pack(r, b + 4);
	*len = n + 4;
	return b;
}

static void fake_send_frame(struct fake *f, int fd, uint8_t *b, size_t len)
{
	if (f->batch > 0) {
		f->pend[f->n_pend] = b;
		f->pend_len[f->n_pend] = len;
		f->pend_fd = fd;
		if (++f->n_pend == f->batch) {
			size_t total = 0, off = 0;
			uint8_t *all;
			int i;

			for (i = 0; i < f->n_pend; i++) {
				total += f->pend_len[i];
			}
			all = malloc(total);
			for (i = f->n_pend - 1; i >= 0; i--) {
				memcpy(all + off, f->pend[i], f->pend_len[i]);
				off += f->pend_len[i];
				free(f->pend[i]);
			}
			write_all(f->pend_fd, all, total); /* several frames, one write */
			free(all);
			f->n_pend = 0;
		}
		return;
	}
	if (f->split) {
		size_t half = len / 2 + 1;

		write_all(fd, b, half);
		usleep(20000); /* lets the client read the first part alone */
		write_all(fd, b + half, len - half);
	} else {
		write_all(fd, b, len);
	}
	free(b);
}

static void fake_reply(struct fake *f, int fd, Cairn__Response *r)
{
	Cairn__ResponseHeader h = CAIRN__RESPONSE_HEADER__INIT;
	size_t len;
	uint8_t *b;

	h.cluster_id = 1;
	h.member_id = f->member_id;
	h.revision = f->rev;
	h.raft_term = 2;
	r->header = &h;
	b = frame_of(r, &len);
	fake_send_frame(f, fd, b, len);
}

static void fake_error(struct fake *f, int fd, uint64_t id, Cairn__ErrorCode code,
		       const char *leader)
{
	Cairn__Response r = CAIRN__RESPONSE__INIT;
	Cairn__Error e = CAIRN__ERROR__INIT;

	r.id = id;
	e.code = code;
	e.message = (char *)"fake says no";
	if (leader != NULL) {
		e.leader_client_addr = (char *)leader;
		e.leader_id = 2;
	}
	r.error = &e;
	fake_reply(f, fd, &r);
}

static int fake_find_key(struct fake *f, const ProtobufCBinaryData *k)
{
	size_t i;

	for (i = 0; i < f->n_keys; i++) {
		if (strlen(f->keys[i]) == k->len && memcmp(f->keys[i], k->data, k->len) == 0) {
			return (int)i;
		}
	}
	return -1;
}

static void fake_apply_put(struct fake *f, const Cairn__PutRequest *p)
{
	int i = fake_find_key(f, &p->key);

	if (i < 0 && f->n_keys < FAKE_MAX_KEYS) {
		i = (int)f->n_keys++;
		snprintf(f->keys[i], sizeof(f->keys[i]), "%.*s", (int)p->key.len, p->key.data);
		f->versions[i] = 0;
	}
	if (i >= 0) {
		snprintf(f->vals[i], sizeof(f->vals[i]), "%.*s", (int)p->value.len, p->value.data);
		f->versions[i]++;
	}
	f->rev++;
	f->applied++;
}

static void fake_close_fd(struct fake *f, int fd)
{
	int i;

	for (i = 0; i < FAKE_MAX_CONNS; i++) {
		if (f->conns[i].fd == fd) {
			close(fd);
			f->conns[i].fd = -1;
			f->conns[i].len = 0;
		}
	}
}

/* Session check as the real state machine does it (§6.3). 0: apply; 1: cached; else error. */
static int fake_session(struct fake *f, const Cairn__Request *q, Cairn__ErrorCode *err)
{
	size_t i;

	if (q->client_id == 0) {
		return 0;
	}
	for (i = 0; i < f->n_sess; i++) {
		if (f->sess[i].client_id != q->client_id) {
			continue;
		}
		if (q->seq == f->sess[i].last_seq) {
			return 1;
		}
		if (q->seq < f->sess[i].last_seq) {
			*err = CAIRN__ERROR_CODE__STALE_SEQUENCE;
			return 2;
		}
		f->sess[i].last_seq = q->seq;
		return 0;
	}
	*err = CAIRN__ERROR_CODE__SESSION_EXPIRED;
	return 2;
}

static void fake_handle(struct fake *f, int fd, const Cairn__Request *q)
{
	Cairn__Response r = CAIRN__RESPONSE__INIT;
	bool is_write = q->op_case == CAIRN__REQUEST__OP_PUT ||
			q->op_case == CAIRN__REQUEST__OP_DELETE_RANGE ||
			q->op_case == CAIRN__REQUEST__OP_TXN;
	Cairn__ErrorCode err = CAIRN__ERROR_CODE__OK;
	int s;

	r.id = q->id;
	if (f->redirect_to != NULL && q->op_case != CAIRN__REQUEST__OP_STATUS) {
		fake_error(f, fd, q->id, CAIRN__ERROR_CODE__NOT_LEADER, f->redirect_to);
		return;
	}
	if (is_write) {
		if (f->redirect_writes > 0) {
			f->redirect_writes--;
			fake_error(f, fd, q->id, CAIRN__ERROR_CODE__NOT_LEADER,
				   f->redirect_writes_to);
			return;
		}
		if (f->hold_writes) {
			return;
		}
		if (f->expire_writes > 0) {
			f->expire_writes--;
			fake_error(f, fd, q->id, CAIRN__ERROR_CODE__SESSION_EXPIRED, NULL);
			return;
		}
		if (f->error_code != 0) {
			fake_error(f, fd, q->id, (Cairn__ErrorCode)f->error_code, NULL);
			return;
		}
		s = fake_session(f, q, &err);
		if (s == 2) {
			fake_error(f, fd, q->id, err, NULL);
			return;
		}
		if (s == 0 && q->op_case == CAIRN__REQUEST__OP_PUT) {
			fake_apply_put(f, q->put);
		}
		if (f->drop_writes > 0) {
			f->drop_writes--;
			if (f->drop_then_expire) {
				f->expire_writes = 1;
			}
			fake_close_fd(f, fd);
			return;
		}
	} else if (f->hold_reads && q->op_case == CAIRN__REQUEST__OP_RANGE) {
		return;
	}
	switch (q->op_case) {
	case CAIRN__REQUEST__OP_SESSION: {
		Cairn__SessionResponse sr = CAIRN__SESSION_RESPONSE__INIT;

		ck_assert_uint_lt(f->n_sess, FAKE_MAX_SESS);
		sr.client_id = 1000 * f->member_id + f->n_sess;
		f->sess[f->n_sess].client_id = sr.client_id;
		f->sess[f->n_sess].last_seq = 0;
		f->n_sess++;
		r.op_case = CAIRN__RESPONSE__OP_SESSION;
		r.session = &sr;
		fake_reply(f, fd, &r);
		return;
	}
	case CAIRN__REQUEST__OP_PUT: {
		Cairn__PutResponse pr = CAIRN__PUT_RESPONSE__INIT;

		r.op_case = CAIRN__RESPONSE__OP_PUT;
		r.put = &pr;
		fake_reply(f, fd, &r);
		return;
	}
	case CAIRN__REQUEST__OP_RANGE: {
		Cairn__RangeResponse rr = CAIRN__RANGE_RESPONSE__INIT;
		Cairn__KeyValue kv = CAIRN__KEY_VALUE__INIT, *kvp = &kv;
		int i = fake_find_key(f, &q->range->key);

		if (f->garbage == 1) {
			static const uint8_t bad[] = {0,    0,	  0,	6,    0xff,
						      0xff, 0xff, 0xff, 0xff, 0xff};

			write_all(fd, bad, sizeof(bad));
			return;
		}
		if (f->garbage == 2) {
			static const uint8_t big[] = {0x7f, 0xff, 0xff, 0xff, 1, 2, 3};

			write_all(fd, big, sizeof(big));
			return;
		}
		if (i >= 0) {
			kv.key.data = (uint8_t *)f->keys[i];
			kv.key.len = strlen(f->keys[i]);
			kv.value.data = (uint8_t *)f->vals[i];
			kv.value.len = strlen(f->vals[i]);
			kv.version = f->versions[i];
			kv.create_revision = 1;
			kv.mod_revision = f->rev;
			rr.kvs = &kvp;
			rr.n_kvs = 1;
			rr.count = 1;
		}
		r.op_case = CAIRN__RESPONSE__OP_RANGE;
		r.range = &rr;
		fake_reply(f, fd, &r);
		return;
	}
	case CAIRN__REQUEST__OP_TXN: {
		Cairn__TxnResponse tr = CAIRN__TXN_RESPONSE__INIT;
		Cairn__ResponseOp ro = CAIRN__RESPONSE_OP__INIT, *rop = &ro;
		Cairn__PutResponse pr = CAIRN__PUT_RESPONSE__INIT;

		/* Succeeds when it has no compares; answers one put per success op. */
		tr.succeeded = q->txn->n_compare == 0;
		if (tr.succeeded && q->txn->n_success > 0) {
			ro.response_case = CAIRN__RESPONSE_OP__RESPONSE_RESPONSE_PUT;
			ro.response_put = &pr;
			tr.responses = &rop;
			tr.n_responses = 1;
		}
		r.op_case = CAIRN__RESPONSE__OP_TXN;
		r.txn = &tr;
		fake_reply(f, fd, &r);
		return;
	}
	case CAIRN__REQUEST__OP_STATUS: {
		Cairn__StatusResponse st = CAIRN__STATUS_RESPONSE__INIT;
		Cairn__Member m = CAIRN__MEMBER__INIT, *mp = &m;

		st.member_id = f->member_id;
		st.leader_id = 1;
		st.raft_term = 2;
		st.revision = f->rev;
		st.role = (char *)(f->member_id == 1 ? "leader" : "follower");
		st.version = (char *)"fake";
		m.id = f->member_id;
		m.name = (char *)"n";
		m.client_addr = f->addr;
		m.peer_addr = (char *)"127.0.0.1:1";
		st.members = &mp;
		st.n_members = 1;
		r.op_case = CAIRN__RESPONSE__OP_STATUS;
		r.status = &st;
		fake_reply(f, fd, &r);
		return;
	}
	default:
		fake_error(f, fd, q->id, CAIRN__ERROR_CODE__UNKNOWN_OPERATION, NULL);
		return;
	}
}

static void fake_on_bytes(struct fake *f, struct fake_conn *fc)
{
	size_t off = 0;

	while (fc->fd >= 0 && fc->len - off >= 4) {
		const uint8_t *p = fc->buf + off;
		uint32_t len =
		    (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
		Cairn__Request *q;
		struct rec *rc;
		int fd = fc->fd;

		if (fc->len - off - 4 < len) {
			break;
		}
		q = cairn__request__unpack(NULL, len, p + 4);
		off += 4 + len;
		ck_assert_ptr_nonnull(q);
		pthread_mutex_lock(&f->mu);
		ck_assert_uint_lt(f->n_recs, FAKE_MAX_RECS);
		rc = &f->recs[f->n_recs++];
		rc->id = q->id;
		rc->client_id = q->client_id;
		rc->seq = q->seq;
		rc->op = q->op_case;
		rc->conn = fc->no;
		rc->key[0] = '\0';
		if (q->op_case == CAIRN__REQUEST__OP_PUT) {
			snprintf(rc->key, sizeof(rc->key), "%.*s", (int)q->put->key.len,
				 q->put->key.data);
		} else if (q->op_case == CAIRN__REQUEST__OP_RANGE) {
			snprintf(rc->key, sizeof(rc->key), "%.*s", (int)q->range->key.len,
				 q->range->key.data);
		}
		fake_handle(f, fd, q);
		pthread_cond_broadcast(&f->cv);
		pthread_mutex_unlock(&f->mu);
		cairn__request__free_unpacked(q, NULL);
	}
	if (fc->fd >= 0) {
		memmove(fc->buf, fc->buf + off, fc->len - off);
		fc->len -= off;
	}
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;

	for (;;) {
		struct pollfd pf[FAKE_MAX_CONNS + 2];
		int idx[FAKE_MAX_CONNS + 2];
		int n = 0, i;

		pf[n].fd = f->wake[0];
		pf[n++].events = POLLIN;
		pf[n].fd = f->lfd;
		pf[n++].events = POLLIN;
		for (i = 0; i < FAKE_MAX_CONNS; i++) {
			if (f->conns[i].fd >= 0) {
				idx[n] = i;
				pf[n].fd = f->conns[i].fd;
				pf[n++].events = POLLIN;
			}
		}
		if (poll(pf, (nfds_t)n, -1) < 0) {
			continue;
		}
		if (pf[0].revents != 0) {
			break;
		}
		if (pf[1].revents & POLLIN) {
			int fd = accept(f->lfd, NULL, NULL);

			pthread_mutex_lock(&f->mu);
			for (i = 0; fd >= 0 && i < FAKE_MAX_CONNS; i++) {
				if (f->conns[i].fd < 0) {
					f->conns[i].fd = fd;
					f->conns[i].no = ++f->accepts;
					f->conns[i].len = 0;
					break;
				}
			}
			pthread_cond_broadcast(&f->cv);
			pthread_mutex_unlock(&f->mu);
		}
		for (i = 2; i < n; i++) {
			struct fake_conn *fc = &f->conns[idx[i]];
			ssize_t got;

			if (pf[i].revents == 0 || fc->fd != pf[i].fd) {
				continue;
			}
			if (fc->cap - fc->len < 65536) {
				fc->cap = fc->cap * 2 + 65536;
				fc->buf = realloc(fc->buf, fc->cap);
			}
			got = recv(fc->fd, fc->buf + fc->len, fc->cap - fc->len, 0);
			if (got <= 0) {
				pthread_mutex_lock(&f->mu);
				fake_close_fd(f, fc->fd);
				pthread_mutex_unlock(&f->mu);
				continue;
			}
			fc->len += (size_t)got;
			fake_on_bytes(f, fc);
		}
	}
	return NULL;
}

static struct fake *fake_start(uint64_t member_id)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int i, one = 1;

	ck_assert_ptr_nonnull(f);
	f->member_id = member_id;
	f->rev = 1;
	for (i = 0; i < FAKE_MAX_CONNS; i++) {
		f->conns[i].fd = -1;
	}
	pthread_mutex_init(&f->mu, NULL);
	pthread_cond_init(&f->cv, NULL);
	ck_assert_int_eq(pipe(f->wake), 0);
	f->lfd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(f->lfd, 0);
	setsockopt(f->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(f->lfd, 16), 0);
	ck_assert_int_eq(getsockname(f->lfd, (struct sockaddr *)&sa, &sl), 0);
	f->port = ntohs(sa.sin_port);
	snprintf(f->addr, sizeof(f->addr), "127.0.0.1:%u", f->port);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return f;
}

static void fake_stop(struct fake *f)
{
	int i;

	ck_assert_int_eq(write(f->wake[1], "x", 1), 1);
	pthread_join(f->thread, NULL);
	for (i = 0; i < FAKE_MAX_CONNS; i++) {
		if (f->conns[i].fd >= 0) {
			close(f->conns[i].fd);
		}
		free(f->conns[i].buf);
	}
	for (i = 0; i < f->n_pend; i++) {
		free(f->pend[i]);
	}
	close(f->lfd);
	close(f->wake[0]);
	close(f->wake[1]);
	pthread_mutex_destroy(&f->mu);
	pthread_cond_destroy(&f->cv);
	free(f);
}

/* Close every client connection from the server side (the listening socket stays). */
static void fake_drop_all(struct fake *f)
{
	int i;

	pthread_mutex_lock(&f->mu);
	for (i = 0; i < FAKE_MAX_CONNS; i++) {
		if (f->conns[i].fd >= 0) {
			shutdown(f->conns[i].fd, SHUT_RDWR);
		}
	}
	pthread_mutex_unlock(&f->mu);
}

static size_t fake_count(struct fake *f, int op)
{
	size_t i, n = 0;

	pthread_mutex_lock(&f->mu);
	for (i = 0; i < f->n_recs; i++) {
		n += f->recs[i].op == op;
	}
	pthread_mutex_unlock(&f->mu);
	return n;
}

/* Copy the i-th record of kind `op`. */
static struct rec fake_rec(struct fake *f, int op, size_t nth)
{
	struct rec r;
	size_t i, n = 0;

	memset(&r, 0, sizeof(r));
	pthread_mutex_lock(&f->mu);
	for (i = 0; i < f->n_recs; i++) {
		if (f->recs[i].op == op && n++ == nth) {
			r = f->recs[i];
			break;
		}
	}
	pthread_mutex_unlock(&f->mu);
	ck_assert_int_eq(r.op, op);
	return r;
}

/* Wait until the fake has received `n` requests of kind `op`. */
static void fake_wait(struct fake *f, int op, size_t n)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += WAIT_LIMIT_S;
	pthread_mutex_lock(&f->mu);
	for (;;) {
		size_t i, k = 0;

		for (i = 0; i < f->n_recs; i++) {
			k += f->recs[i].op == op;
		}
		if (k >= n) {
			break;
		}
		ck_assert_int_eq(pthread_cond_timedwait(&f->cv, &f->mu, &ts), 0);
	}
	pthread_mutex_unlock(&f->mu);
}

#define SET(f, field, v)                                                                           \
	do {                                                                                       \
		pthread_mutex_lock(&(f)->mu);                                                      \
		(f)->field = (v);                                                                  \
		pthread_mutex_unlock(&(f)->mu);                                                    \
	} while (0)

static cairn_client *connect_to(const char *eps, uint32_t timeout_ms)
{
	struct cairn_options o = {0};
	char err[CAIRN_ERRMSG_SIZE];
	cairn_client *c = NULL;

	o.timeout_ms = timeout_ms;
	o.backoff_min_ms = 1;
	o.backoff_max_ms = 20;
	ck_assert_msg(cairn_connect(eps, &o, &c, err, sizeof(err)) == 0, "%s", err);
	return c;
}

static int put_s(cairn_client *c, const char *k, const char *v, uint32_t timeout_ms, char *err)
{
	struct cairn_put_opts o = {0};

	o.timeout_ms = timeout_ms;
	return cairn_put(c, k, strlen(k), v, strlen(v), &o, NULL, err, CAIRN_ERRMSG_SIZE);
}

/* ---- async completion counter ------------------------------------------------------------ */

struct counter {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int done, ok, bad;
	int rvs[16];
};

static void counter_init(struct counter *k)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->mu, NULL);
	pthread_cond_init(&k->cv, NULL);
}

static void counter_add(struct counter *k, int rv)
{
	pthread_mutex_lock(&k->mu);
	if (k->done < 16) {
		k->rvs[k->done] = rv;
	}
	k->done++;
	if (rv == 0) {
		k->ok++;
	} else {
		k->bad++;
	}
	pthread_cond_broadcast(&k->cv);
	pthread_mutex_unlock(&k->mu);
}

static void counter_wait(struct counter *k, int n)
{
	pthread_mutex_lock(&k->mu);
	while (k->done < n) {
		pthread_cond_wait(&k->cv, &k->mu);
	}
	pthread_mutex_unlock(&k->mu);
}

static void counter_destroy(struct counter *k)
{
	pthread_mutex_destroy(&k->mu);
	pthread_cond_destroy(&k->cv);
}

static void on_put(int rv, const char *msg, struct cairn_put_result *res, void *arg)
{
	(void)msg;
	ck_assert((rv == 0) == (res != NULL));
	cairn_put_result_free(res);
	counter_add(arg, rv);
}

struct get_check {
	struct counter *k;
	char want[32];
};

static void on_get(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	struct get_check *g = arg;
	int good = rv;

	(void)msg;
	if (rv == 0) {
		good = res->n_kvs == 1 && strcmp(res->kvs[0].value, g->want) == 0 ? 0 : -100;
	}
	cairn_range_result_free(res);
	counter_add(g->k, good);
}

/* ---- tests ------------------------------------------------------------------------------- */

START_TEST(test_put_get_sessions)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_range_result *res = NULL;
	struct cairn_put_result *pres = NULL;
	char err[CAIRN_ERRMSG_SIZE];
	struct rec p1, p2;

	ck_assert_int_eq(cairn_put(c, "k", 1, "v1", 2, NULL, &pres, err, sizeof(err)), 0);
	ck_assert_uint_eq(pres->header.member_id, 1);
	ck_assert_int_eq(pres->header.revision, 2);
	ck_assert_ptr_null(pres->prev_kv);
	cairn_put_result_free(pres);
	ck_assert_int_eq(put_s(c, "k", "v2", 0, err), 0);
	ck_assert_int_eq(cairn_get(c, "k", 1, NULL, &res, err, sizeof(err)), 0);
	ck_assert_uint_eq(res->n_kvs, 1);
	ck_assert_str_eq(res->kvs[0].key, "k");
	ck_assert_str_eq(res->kvs[0].value, "v2");
	ck_assert_uint_eq(res->kvs[0].value_len, 2);
	ck_assert_int_eq(res->kvs[0].version, 2);
	ck_assert_int_eq(res->header.revision, 3);
	ck_assert_uint_eq(res->header.raft_term, 2);
	cairn_range_result_free(res);
	/* One session, numbered writes 1, 2. */
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_SESSION), 1);
	p1 = fake_rec(f, CAIRN__REQUEST__OP_PUT, 0);
	p2 = fake_rec(f, CAIRN__REQUEST__OP_PUT, 1);
	ck_assert_uint_eq(p1.client_id, 1000);
	ck_assert_uint_eq(p1.seq, 1);
	ck_assert_uint_eq(p2.client_id, 1000);
	ck_assert_uint_eq(p2.seq, 2);
	/* Reads carry no session. */
	ck_assert_uint_eq(fake_rec(f, CAIRN__REQUEST__OP_RANGE, 0).client_id, 0);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_split_frames)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_range_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE];

	ck_assert_int_eq(put_s(c, "a", "split-value", 0, err), 0);
	SET(f, split, true);
	ck_assert_int_eq(cairn_get(c, "a", 1, NULL, &res, err, sizeof(err)), 0);
	ck_assert_str_eq(res->kvs[0].value, "split-value");
	cairn_range_result_free(res);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

/* Eight reads answered in reverse order, all in one TCP write. */
START_TEST(test_out_of_order_coalesced)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct get_check g[8];
	struct counter k;
	char err[CAIRN_ERRMSG_SIZE];
	int i;

	counter_init(&k);
	for (i = 0; i < 8; i++) {
		char key[16], val[24];

		snprintf(key, sizeof(key), "k%d", i);
		snprintf(val, sizeof(val), "value-%d", i);
		ck_assert_int_eq(put_s(c, key, val, 0, err), 0);
	}
	SET(f, batch, 8);
	for (i = 0; i < 8; i++) {
		char key[16];

		snprintf(key, sizeof(key), "k%d", i);
		g[i].k = &k;
		snprintf(g[i].want, sizeof(g[i].want), "value-%d", i);
		ck_assert_int_eq(cairn_get_async(c, key, strlen(key), NULL, on_get, &g[i]), 0);
	}
	counter_wait(&k, 8);
	ck_assert_int_eq(k.ok, 8);
	ck_assert_int_eq(cairn_close(c), 0);
	counter_destroy(&k);
	fake_stop(f);
}
END_TEST

START_TEST(test_not_leader_redirect)
{
	struct fake *leader = fake_start(1);
	struct fake *follower = fake_start(2);
	cairn_client *c;
	struct cairn_range_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE];
	size_t before;

	SET(follower, redirect_to, leader->addr);
	c = connect_to(follower->addr, 0);
	ck_assert_int_eq(put_s(c, "x", "1", 0, err), 0);
	/* The session request was redirected, then both went to the leader. */
	ck_assert_uint_ge(fake_count(follower, CAIRN__REQUEST__OP_SESSION), 1);
	ck_assert_uint_eq(fake_count(leader, CAIRN__REQUEST__OP_SESSION), 1);
	ck_assert_uint_eq(fake_count(leader, CAIRN__REQUEST__OP_PUT), 1);
	/* The leader is cached: later calls go straight to it. */
	pthread_mutex_lock(&follower->mu);
	before = follower->n_recs;
	pthread_mutex_unlock(&follower->mu);
	ck_assert_int_eq(cairn_get(c, "x", 1, NULL, &res, err, sizeof(err)), 0);
	ck_assert_str_eq(res->kvs[0].value, "1");
	cairn_range_result_free(res);
	ck_assert_int_eq(put_s(c, "x", "2", 0, err), 0);
	pthread_mutex_lock(&follower->mu);
	ck_assert_uint_eq(follower->n_recs, before);
	pthread_mutex_unlock(&follower->mu);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(leader);
	fake_stop(follower);
}
END_TEST

/* The first endpoint refuses connections: the client moves on to the next one. */
START_TEST(test_failover_between_endpoints)
{
	struct fake *dead = fake_start(3);
	struct fake *f = fake_start(1);
	char eps[128], err[CAIRN_ERRMSG_SIZE];
	cairn_client *c;

	snprintf(eps, sizeof(eps), "%s, %s", dead->addr, f->addr);
	fake_stop(dead); /* its port now refuses */
	c = connect_to(eps, 0);
	ck_assert_msg(put_s(c, "y", "1", 0, err) == 0, "%s", err);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_reconnect_after_close)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_range_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE];

	ck_assert_int_eq(put_s(c, "r", "1", 0, err), 0);
	fake_drop_all(f);
	ck_assert_msg(cairn_get(c, "r", 1, NULL, &res, err, sizeof(err)) == 0, "%s", err);
	ck_assert_str_eq(res->kvs[0].value, "1");
	cairn_range_result_free(res);
	pthread_mutex_lock(&f->mu);
	ck_assert_int_eq(f->accepts, 2);
	pthread_mutex_unlock(&f->mu);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

/* The write is applied but the connection drops before the reply: the retry carries the same
 * (client_id, seq) and is answered from the session, not applied again. */
START_TEST(test_retry_reuses_seq)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];
	struct rec a, b;

	SET(f, drop_writes, 1);
	ck_assert_msg(put_s(c, "once", "1", 0, err) == 0, "%s", err);
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_PUT), 2);
	a = fake_rec(f, CAIRN__REQUEST__OP_PUT, 0);
	b = fake_rec(f, CAIRN__REQUEST__OP_PUT, 1);
	ck_assert_uint_eq(a.client_id, b.client_id);
	ck_assert_uint_eq(a.seq, b.seq);
	ck_assert_uint_ne(a.id, b.id);
	ck_assert_int_ne(a.conn, b.conn);
	pthread_mutex_lock(&f->mu);
	ck_assert_int_eq(f->applied, 1);
	pthread_mutex_unlock(&f->mu);
	/* The session goes on with the next number. */
	ck_assert_int_eq(put_s(c, "once", "2", 0, err), 0);
	b = fake_rec(f, CAIRN__REQUEST__OP_PUT, 2);
	ck_assert_uint_eq(b.client_id, a.client_id);
	ck_assert_uint_eq(b.seq, a.seq + 1);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_unknown_outcome)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];
	struct rec a, b;

	ck_assert_int_eq(put_s(c, "warm", "up", 0, err), 0);
	SET(f, hold_writes, true);
	ck_assert_int_eq(put_s(c, "u", "1", 100, err), CAIRN_EUNKNOWN);
	ck_assert_ptr_nonnull(strstr(err, "sent, but no answer"));
	SET(f, hold_writes, false);
	/* The session of the unknown write is retired: the next write opens another one. */
	ck_assert_msg(put_s(c, "u", "2", 0, err) == 0, "%s", err);
	a = fake_rec(f, CAIRN__REQUEST__OP_PUT, 1);
	b = fake_rec(f, CAIRN__REQUEST__OP_PUT, fake_count(f, CAIRN__REQUEST__OP_PUT) - 1);
	ck_assert_uint_ne(a.client_id, b.client_id);
	ck_assert_uint_eq(b.seq, 1);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_read_timeout)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_range_opts o = {0};
	struct cairn_range_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE];

	SET(f, hold_reads, true);
	o.timeout_ms = 100;
	ck_assert_int_eq(cairn_get(c, "t", 1, &o, &res, err, sizeof(err)), CAIRN_ETIMEDOUT);
	ck_assert_ptr_null(res);
	SET(f, hold_reads, false);
	ck_assert_msg(cairn_get(c, "t", 1, NULL, &res, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(res->n_kvs, 0);
	cairn_range_result_free(res);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

/* Nothing listens: the call times out with the reason, never applied. */
START_TEST(test_unreachable)
{
	struct fake *dead = fake_start(1);
	char addr[32], err[CAIRN_ERRMSG_SIZE];
	cairn_client *c;

	snprintf(addr, sizeof(addr), "%s", dead->addr);
	fake_stop(dead);
	c = connect_to(addr, 100);
	ck_assert_int_eq(put_s(c, "k", "v", 0, err), CAIRN_ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err, "connect"));
	ck_assert_int_eq(cairn_get(c, "k", 1, NULL, NULL, err, sizeof(err)), CAIRN_ETIMEDOUT);
	ck_assert_int_eq(cairn_close(c), 0);
}
END_TEST

/* Four writes at once: four sessions, because a session carries one write at a time. */
START_TEST(test_session_pool)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct counter k;
	char err[CAIRN_ERRMSG_SIZE];
	uint64_t ids[4];
	int i, j;

	counter_init(&k);
	SET(f, hold_writes, true);
	for (i = 0; i < 4; i++) {
		char key[16];

		snprintf(key, sizeof(key), "p%d", i);
		ck_assert_int_eq(cairn_put_async(c, key, strlen(key), "v", 1, NULL, on_put, &k), 0);
	}
	fake_wait(f, CAIRN__REQUEST__OP_PUT, 4);
	for (i = 0; i < 4; i++) {
		ids[i] = fake_rec(f, CAIRN__REQUEST__OP_PUT, (size_t)i).client_id;
		ck_assert_uint_ne(ids[i], 0);
		for (j = 0; j < i; j++) {
			ck_assert_uint_ne(ids[i], ids[j]);
		}
	}
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_SESSION), 4);
	/* Closing with writes in flight: their outcome is unknown. */
	ck_assert_int_eq(cairn_close(c), 0);
	ck_assert_int_eq(k.done, 4);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(k.rvs[i], CAIRN_EUNKNOWN);
	}
	counter_destroy(&k);
	(void)err;
	fake_stop(f);
}
END_TEST

/* A pool of one: writes queue for the session and are numbered 1, 2, 3... */
START_TEST(test_session_pool_limit)
{
	struct fake *f = fake_start(1);
	struct cairn_options o = {0};
	struct counter k;
	cairn_client *c = NULL;
	int i;

	o.max_sessions = 1;
	ck_assert_int_eq(cairn_connect(f->addr, &o, &c, NULL, 0), 0);
	counter_init(&k);
	for (i = 0; i < 10; i++) {
		ck_assert_int_eq(cairn_put_async(c, "q", 1, "v", 1, NULL, on_put, &k), 0);
	}
	counter_wait(&k, 10);
	ck_assert_int_eq(k.ok, 10);
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_SESSION), 1);
	for (i = 0; i < 10; i++) {
		ck_assert_uint_eq(fake_rec(f, CAIRN__REQUEST__OP_PUT, (size_t)i).seq,
				  (uint64_t)i + 1);
	}
	ck_assert_int_eq(cairn_close(c), 0);
	counter_destroy(&k);
	fake_stop(f);
}
END_TEST

START_TEST(test_async_many)
{
	enum { N = 2000 };
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct get_check *g = calloc(N, sizeof(*g));
	struct counter k;
	char err[CAIRN_ERRMSG_SIZE];
	int i;

	counter_init(&k);
	ck_assert_int_eq(put_s(c, "m", "many", 0, err), 0);
	for (i = 0; i < N; i++) {
		g[i].k = &k;
		snprintf(g[i].want, sizeof(g[i].want), "many");
		ck_assert_int_eq(cairn_get_async(c, "m", 1, NULL, on_get, &g[i]), 0);
	}
	counter_wait(&k, N);
	ck_assert_int_eq(k.ok, N);
	ck_assert_int_eq(cairn_close(c), 0);
	counter_destroy(&k);
	free(g);
	fake_stop(f);
}
END_TEST

START_TEST(test_malformed_frame)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_range_opts o = {0};
	char err[CAIRN_ERRMSG_SIZE];

	o.timeout_ms = 200;
	SET(f, garbage, 1);
	ck_assert_int_eq(cairn_get(c, "g", 1, &o, NULL, err, sizeof(err)), CAIRN_ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err, "protocol error"));
	SET(f, garbage, 2);
	ck_assert_int_eq(cairn_get(c, "g", 1, &o, NULL, err, sizeof(err)), CAIRN_ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err, "protocol error"));
	SET(f, garbage, 0);
	ck_assert_msg(cairn_get(c, "g", 1, &o, NULL, err, sizeof(err)) == 0, "%s", err);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_session_expired_first_attempt)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];
	struct rec a, b;

	SET(f, expire_writes, 1);
	ck_assert_msg(put_s(c, "e", "1", 0, err) == 0, "%s", err);
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_SESSION), 2);
	a = fake_rec(f, CAIRN__REQUEST__OP_PUT, 0);
	b = fake_rec(f, CAIRN__REQUEST__OP_PUT, 1);
	ck_assert_uint_ne(a.client_id, b.client_id);
	ck_assert_uint_eq(b.seq, 1);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

/* The first attempt is applied but its reply lost; the retry meets an expired session: the
 * client cannot know whether the write happened. */
START_TEST(test_session_expired_on_retry)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];
	struct rec a, b;

	SET(f, drop_then_expire, true);
	SET(f, drop_writes, 1);
	ck_assert_int_eq(put_s(c, "e", "1", 0, err), CAIRN_EUNKNOWN);
	ck_assert_ptr_nonnull(strstr(err, "expired"));
	a = fake_rec(f, CAIRN__REQUEST__OP_PUT, 0);
	b = fake_rec(f, CAIRN__REQUEST__OP_PUT, 1);
	ck_assert_uint_eq(a.client_id, b.client_id);
	ck_assert_uint_eq(a.seq, b.seq);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

/* A follower's NOT_LEADER means "not applied": when the leader then says the session is
 * unknown, the write is safely retried in a new session instead of reported unknown. */
START_TEST(test_not_leader_is_not_applied)
{
	struct fake *a = fake_start(1);
	struct fake *b = fake_start(2);
	cairn_client *c = connect_to(a->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];
	struct rec first, retry;

	ck_assert_int_eq(put_s(c, "warm", "up", 0, err), 0);
	pthread_mutex_lock(&a->mu);
	a->redirect_writes = 1;
	a->redirect_writes_to = b->addr;
	pthread_mutex_unlock(&a->mu);
	/* b does not know a's session: SESSION_EXPIRED, then a new session on b. */
	ck_assert_msg(put_s(c, "n", "1", 0, err) == 0, "%s", err);
	ck_assert_uint_eq(fake_count(b, CAIRN__REQUEST__OP_PUT), 2);
	first = fake_rec(b, CAIRN__REQUEST__OP_PUT, 0);
	retry = fake_rec(b, CAIRN__REQUEST__OP_PUT, 1);
	ck_assert_uint_ne(first.client_id, retry.client_id);
	ck_assert_uint_eq(retry.seq, 1);
	pthread_mutex_lock(&b->mu);
	ck_assert_int_eq(b->applied, 1);
	pthread_mutex_unlock(&b->mu);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(a);
	fake_stop(b);
}
END_TEST

START_TEST(test_definite_server_error)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	char err[CAIRN_ERRMSG_SIZE];

	ck_assert_int_eq(put_s(c, "d", "1", 0, err), 0);
	SET(f, error_code, CAIRN__ERROR_CODE__KEY_TOO_LARGE);
	ck_assert_int_eq(put_s(c, "d", "2", 0, err), CAIRN_EKEYSIZE);
	ck_assert_ptr_nonnull(strstr(err, "fake says no"));
	SET(f, error_code, CAIRN__ERROR_CODE__NO_SPACE);
	ck_assert_int_eq(put_s(c, "d", "2", 0, err), CAIRN_ENOSPACE);
	SET(f, error_code, 0);
	ck_assert_int_eq(put_s(c, "d", "3", 0, err), 0);
	/* One session throughout: definite errors return it to the pool. */
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_SESSION), 1);
	ck_assert_uint_eq(fake_rec(f, CAIRN__REQUEST__OP_PUT, 3).seq, 4);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

START_TEST(test_status_of_endpoint)
{
	struct fake *a = fake_start(1);
	struct fake *b = fake_start(2);
	cairn_client *c = connect_to(a->addr, 0);
	struct cairn_status_result *st = NULL;
	char err[CAIRN_ERRMSG_SIZE];

	ck_assert_msg(cairn_status(c, b->addr, 0, &st, err, sizeof(err)) == 0, "%s", err);
	ck_assert_uint_eq(st->member_id, 2);
	ck_assert_str_eq(st->endpoint, b->addr);
	ck_assert_str_eq(st->role, "follower");
	ck_assert_uint_eq(st->n_members, 1);
	ck_assert_str_eq(st->members[0].client_addr, b->addr);
	cairn_status_result_free(st);
	ck_assert_int_eq(cairn_status(c, NULL, 0, &st, err, sizeof(err)), 0);
	ck_assert_uint_eq(st->member_id, 1);
	ck_assert_str_eq(st->role, "leader");
	cairn_status_result_free(st);
	ck_assert_int_eq(cairn_status(c, "nocolon", 0, &st, err, sizeof(err)), CAIRN_EBADENDPOINT);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(a);
	fake_stop(b);
}
END_TEST

START_TEST(test_txn)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 0);
	struct cairn_txn_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE];
	cairn_txn *t = cairn_txn_new();

	ck_assert_int_eq(cairn_txn_put(t, CAIRN_TXN_SUCCESS, "a", 1, "b", 1, false), 0);
	ck_assert_int_eq(cairn_txn_commit(c, t, 0, &res, err, sizeof(err)), 0);
	ck_assert(res->succeeded);
	ck_assert_uint_eq(res->n_responses, 1);
	ck_assert_int_eq(res->responses[0].type, CAIRN_OP_PUT);
	ck_assert_uint_eq(res->responses[0].u.put.header.member_id, 1);
	cairn_txn_result_free(res);
	ck_assert_int_eq(cairn_txn_compare_int(t, CAIRN_CMP_VERSION, CAIRN_CMP_EQUAL, "a", 1, 0),
			 0);
	ck_assert_int_eq(cairn_txn_commit(c, t, 0, &res, err, sizeof(err)), 0);
	ck_assert(!res->succeeded);
	cairn_txn_result_free(res);
	cairn_txn_free(t);
	ck_assert_uint_eq(fake_rec(f, CAIRN__REQUEST__OP_TXN, 1).seq, 2);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

static void on_get_inner(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	(void)msg;
	cairn_range_result_free(res);
	counter_add(arg, rv);
}

struct reentry {
	cairn_client *c;
	struct counter k;
	int sync_rv, close_rv, async_rv;
};

static void on_get_reenter(int rv, const char *msg, struct cairn_range_result *res, void *arg)
{
	struct reentry *r = arg;

	(void)msg;
	cairn_range_result_free(res);
	r->sync_rv = cairn_get(r->c, "z", 1, NULL, NULL, NULL, 0);
	r->close_rv = cairn_close(r->c);
	/* A new async call from a callback is fine. */
	r->async_rv = cairn_get_async(r->c, "z", 1, NULL, on_get_inner, &r->k);
	counter_add(&r->k, rv);
}

START_TEST(test_callback_rules)
{
	struct fake *f = fake_start(1);
	struct reentry r;

	memset(&r, 0, sizeof(r));
	counter_init(&r.k);
	r.c = connect_to(f->addr, 0);
	ck_assert_int_eq(cairn_get_async(r.c, "z", 1, NULL, on_get_reenter, &r), 0);
	counter_wait(&r.k, 2);
	ck_assert_int_eq(r.sync_rv, CAIRN_EDEADLK);
	ck_assert_int_eq(r.close_rv, CAIRN_EDEADLK);
	ck_assert_int_eq(r.async_rv, 0);
	ck_assert_int_eq(cairn_close(r.c), 0);
	counter_destroy(&r.k);
	fake_stop(f);
}
END_TEST

START_TEST(test_close_cancels)
{
	struct fake *f = fake_start(1);
	cairn_client *c = connect_to(f->addr, 60000);
	struct get_check g = {0};
	struct counter k;

	counter_init(&k);
	g.k = &k;
	SET(f, hold_reads, true);
	ck_assert_int_eq(cairn_get_async(c, "h", 1, NULL, on_get, &g), 0);
	fake_wait(f, CAIRN__REQUEST__OP_RANGE, 1);
	ck_assert_int_eq(cairn_close(c), 0);
	ck_assert_int_eq(k.done, 1);
	ck_assert_int_eq(k.rvs[0], CAIRN_ECLOSED);
	counter_destroy(&k);
	fake_stop(f);
}
END_TEST

START_TEST(test_bad_arguments)
{
	char err[CAIRN_ERRMSG_SIZE];
	cairn_client *c = NULL;
	struct cairn_options o = {0};

	ck_assert_int_eq(cairn_connect("nocolon", NULL, &c, err, sizeof(err)), CAIRN_EBADENDPOINT);
	ck_assert_ptr_null(c);
	ck_assert_int_eq(cairn_connect("h:99999", NULL, &c, err, sizeof(err)), CAIRN_EBADENDPOINT);
	ck_assert_int_eq(cairn_connect("::1:5", NULL, &c, err, sizeof(err)), CAIRN_EBADENDPOINT);
	ck_assert_int_eq(cairn_connect(" , ", NULL, &c, err, sizeof(err)), CAIRN_EBADENDPOINT);
	o.backoff_min_ms = 100;
	o.backoff_max_ms = 10;
	ck_assert_int_eq(cairn_connect(NULL, &o, &c, err, sizeof(err)), CAIRN_EINVAL);
	ck_assert_int_eq(cairn_connect("[::1]:7379, localhost:1", NULL, &c, err, sizeof(err)), 0);
	ck_assert_int_eq(cairn_put(c, "", 0, "v", 1, NULL, NULL, err, sizeof(err)), CAIRN_EKEYSIZE);
	ck_assert_int_eq(cairn_get(c, NULL, 3, NULL, NULL, err, sizeof(err)), CAIRN_EINVAL);
	ck_assert_int_eq(cairn_put_async(c, "k", 1, "v", 1, NULL, NULL, NULL), CAIRN_EINVAL);
	ck_assert_int_eq(cairn_close(c), 0);
	ck_assert_int_eq(cairn_close(NULL), 0);
	ck_assert_str_eq(cairn_strerror(CAIRN_EUNKNOWN),
			 "outcome unknown: the write may or may not have been applied");
	ck_assert_str_eq(cairn_strerror(12345), "unknown error");
}
END_TEST

START_TEST(test_frame_too_large)
{
	struct fake *f = fake_start(1);
	struct cairn_options o = {0};
	cairn_client *c = NULL;
	char err[CAIRN_ERRMSG_SIZE], big[2048];

	memset(big, 'x', sizeof(big));
	o.max_frame_size = 1024;
	ck_assert_int_eq(cairn_connect(f->addr, &o, &c, NULL, 0), 0);
	ck_assert_int_eq(cairn_put(c, "k", 1, big, sizeof(big), NULL, NULL, err, sizeof(err)),
			 CAIRN_ETOOLARGE);
	ck_assert_uint_eq(fake_count(f, CAIRN__REQUEST__OP_PUT), 0);
	ck_assert_int_eq(cairn_close(c), 0);
	fake_stop(f);
}
END_TEST

static Suite *client_suite(void)
{
	Suite *s = suite_create("client");
	TCase *tc = tcase_create("fake-server");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_put_get_sessions);
	tcase_add_test(tc, test_split_frames);
	tcase_add_test(tc, test_out_of_order_coalesced);
	tcase_add_test(tc, test_not_leader_redirect);
	tcase_add_test(tc, test_failover_between_endpoints);
	tcase_add_test(tc, test_reconnect_after_close);
	tcase_add_test(tc, test_retry_reuses_seq);
	tcase_add_test(tc, test_unknown_outcome);
	tcase_add_test(tc, test_read_timeout);
	tcase_add_test(tc, test_unreachable);
	tcase_add_test(tc, test_session_pool);
	tcase_add_test(tc, test_session_pool_limit);
	tcase_add_test(tc, test_async_many);
	tcase_add_test(tc, test_malformed_frame);
	tcase_add_test(tc, test_session_expired_first_attempt);
	tcase_add_test(tc, test_session_expired_on_retry);
	tcase_add_test(tc, test_not_leader_is_not_applied);
	tcase_add_test(tc, test_definite_server_error);
	tcase_add_test(tc, test_status_of_endpoint);
	tcase_add_test(tc, test_txn);
	tcase_add_test(tc, test_callback_rules);
	tcase_add_test(tc, test_close_cancels);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_frame_too_large);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(client_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
