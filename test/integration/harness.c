/* harness.c — integration test harness: spawns and controls cairnd processes, speaks the client
 * protocol, and runs a fault-injecting TCP proxy between members or puts them in network
 * namespaces (harness_netns.c) (see harness.h). */
#define _GNU_SOURCE /* accept4, pipe2, nftw, setns */
#include "test/integration/harness.h"
#include "test/integration/harness_netns.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define H_MAX_CLUSTERS	8
#define H_MAX_RESP_SIZE (64u << 20)
#define H_PORT_LO	20000 /* below Linux's ephemeral range (32768-60999) */
#define H_PORT_HI	32000
#define H_PORT_BLOCK	16
#define H_PROXY_BUF	(64u << 10)
#define H_LOG_TAIL	40

/* ---- time ------------------------------------------------------------------------------------ */

uint64_t h_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void h_pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

void h_note(const char *fmt, ...)
{
	static int verbose = -1;
	if (verbose < 0) {
		const char *v = getenv("CAIRN_IT_VERBOSE");
		verbose = v != NULL && v[0] != '\0' && strcmp(v, "0") != 0;
	}
	if (!verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[it %d] ", (int)getpid());
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = h_now_ms();
	return now >= deadline ? 0 : (int)(deadline - now);
}

/* ---- registry of live clusters, for failure dumps -----------------------------------------------
 */

static struct h_cluster *g_clusters[H_MAX_CLUSTERS];
static unsigned g_counter; /* clusters and port blocks created by this process */

static void registry_add(struct h_cluster *c)
{
	for (int i = 0; i < H_MAX_CLUSTERS; i++)
		if (g_clusters[i] == NULL) {
			g_clusters[i] = c;
			c->registered = true;
			return;
		}
}

static void registry_remove(struct h_cluster *c)
{
	for (int i = 0; i < H_MAX_CLUSTERS; i++)
		if (g_clusters[i] == c)
			g_clusters[i] = NULL;
	c->registered = false;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void rm_tree(const char *root)
{
	if (root[0] != '\0')
		nftw(root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static bool keep_data(void)
{
	const char *k = getenv("CAIRN_KEEP_DATA");
	return k != NULL && k[0] != '\0' && strcmp(k, "0") != 0;
}

static void proxy_stop(struct h_proxy *p);

/* Removes a cluster's namespaces (members must be dead); reports what could not be removed. */
static void netns_remove(struct h_cluster *c)
{
	if (c->netns == NULL)
		return;
	char err[512];
	if (netns_destroy(c->netns, err, sizeof(err)) != 0)
		fprintf(stderr, "harness: network namespaces of %s not fully removed: %s\n",
			c->root, err);
	c->netns = NULL;
}

static void kill_and_reap(struct h_member *m)
{
	if (m->pid <= 0)
		return;
	kill(m->pid, SIGKILL);
	int st;
	while (waitpid(m->pid, &st, 0) < 0 && errno == EINTR)
		;
	m->pid = 0;
	m->paused = false;
}

void h_on_failure(void)
{
	static bool done;
	if (done)
		return;
	done = true;
	for (int i = 0; i < H_MAX_CLUSTERS; i++) {
		struct h_cluster *c = g_clusters[i];
		if (c == NULL)
			continue;
		for (int id = 1; id <= c->n; id++) {
			char title[128];
			snprintf(title, sizeof(title), "member %d (%s)", id,
				 c->m[id].pid ? "running" : "not running");
			h_log_tail(c->m[id].log_path, H_LOG_TAIL, title);
		}
		for (int id = 1; id <= c->n; id++)
			kill_and_reap(&c->m[id]);
		if (c->proxy) {
			proxy_stop(c->proxy);
			c->proxy = NULL;
		}
		netns_remove(c);
		if (keep_data())
			fprintf(stderr, "harness: data and logs kept in %s\n", c->root);
		else
			rm_tree(c->root);
		g_clusters[i] = NULL;
	}
}

/* ---- logs ------------------------------------------------------------------------------------ */

static char *read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (f == NULL)
		return NULL;
	size_t cap = 8192, n = 0;
	char *buf = malloc(cap);
	for (;;) {
		if (buf == NULL)
			break;
		if (n + 4096 + 1 > cap) {
			char *nb = realloc(buf, cap * 2);
			if (nb == NULL) {
				free(buf);
				buf = NULL;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		size_t r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r == 0)
			break;
	}
	fclose(f);
	if (buf != NULL) {
		buf[n] = '\0';
		if (len)
			*len = n;
	}
	return buf;
}

bool h_log_contains(const char *log_path, const char *needle)
{
	size_t n;
	char *s = read_file(log_path, &n);
	if (s == NULL)
		return false;
	/* Logs are text; a stray NUL would only shorten the search. */
	bool found = strstr(s, needle) != NULL;
	free(s);
	return found;
}

int h_log_count(const char *log_path, const char *needle)
{
	FILE *f = fopen(log_path, "r");
	if (f == NULL)
		return 0;
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

bool h_wait_log(struct h_cluster *c, int id, const char *needle, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		if (h_log_contains(c->m[id].log_path, needle))
			return true;
		if (h_now_ms() >= deadline)
			return false;
		h_pause_ms(20);
	}
}

void h_log_tail(const char *log_path, int lines, const char *title)
{
	size_t n;
	char *s = read_file(log_path, &n);
	fprintf(stderr, "----- %s: last %d lines of %s -----\n", title, lines, log_path);
	if (s == NULL) {
		fprintf(stderr, "(no log)\n");
		return;
	}
	size_t start = n;
	int seen = 0;
	while (start > 0) {
		if (s[start - 1] == '\n' && start != n && ++seen == lines)
			break;
		start--;
	}
	fwrite(s + start, 1, n - start, stderr);
	if (n > 0 && s[n - 1] != '\n')
		fputc('\n', stderr);
	fprintf(stderr, "----- end of %s -----\n", title);
	free(s);
}

static void log_marker(const char *log_path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void log_marker(const char *log_path, const char *fmt, ...)
{
	FILE *f = fopen(log_path, "a");
	if (f == NULL)
		return;
	va_list ap;
	va_start(ap, fmt);
	fprintf(f, "==== harness: ");
	vfprintf(f, fmt, ap);
	fprintf(f, " ====\n");
	va_end(ap);
	fclose(f);
}

/* ---- ports ----------------------------------------------------------------------------------- */

static bool port_free(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return false;
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* as libuv does */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bool ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

/* A block of H_PORT_BLOCK consecutive free ports, derived from the pid and a counter so that
 * test processes (one per test in fork mode) do not collide. */
static int alloc_port_block(void)
{
	const unsigned nblocks = (H_PORT_HI - H_PORT_LO) / H_PORT_BLOCK;
	for (int attempt = 0; attempt < 200; attempt++) {
		unsigned k = ((unsigned)getpid() * 7919u + g_counter++ * 104729u) % nblocks;
		int base = H_PORT_LO + (int)(k * H_PORT_BLOCK);
		bool ok = true;
		for (int i = 0; i < H_PORT_BLOCK && ok; i++)
			ok = port_free(base + i);
		if (ok)
			return base;
	}
	H_ASSERT_MSG(0, "no free port block in %d..%d", H_PORT_LO, H_PORT_HI);
	return 0;
}

/* ---- processes ------------------------------------------------------------------------------- */

const char *h_cairnd_path(void)
{
	static char path[512];
	const char *b = getenv("CAIRN_BUILD");
	snprintf(path, sizeof(path), "%s/cairnd", b && b[0] ? b : "build");
	return path;
}

/* fork + exec with stdout/stderr appended to log_path, in the network namespace open as `nsfd`
 * (-1: the harness's). The child joins the namespace itself, right before exec, so the pid the
 * harness holds is cairnd's (kill -9 and SIGSTOP hit it, not a wrapper such as `ip netns
 * exec`). The child dies with the test process (PR_SET_PDEATHSIG), so a crashed or timed-out
 * test leaves no cairnd behind. */
static pid_t spawn_in(const char *const *argv, const char *log_path, int nsfd)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	H_ASSERT_MSG(fd >= 0, "cannot open %s: %s", log_path, strerror(errno));
	int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		if (devnull >= 0)
			dup2(devnull, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) {
			static const char msg[] =
			    "harness: setns into the member's namespace failed\n";
			ssize_t w = write(2, msg, sizeof(msg) - 1);
			(void)w;
			_exit(126);
		}
		execv(argv[0], (char *const *)argv);
		static const char msg[] = "harness: exec failed\n";
		ssize_t w = write(2, msg, sizeof(msg) - 1);
		(void)w;
		_exit(127);
	}
	close(fd);
	if (devnull >= 0)
		close(devnull);
	H_ASSERT_MSG(pid > 0, "fork failed: %s", strerror(errno));
	return pid;
}

static pid_t spawn(const char *const *argv, const char *log_path)
{
	return spawn_in(argv, log_path, -1);
}

/* Waits for `pid` to exit: 0 and *status, or -1 at the deadline. */
static int reap(pid_t pid, int timeout_ms, int *status)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid)
			return 0;
		if (r < 0 && errno != EINTR) {
			*status = -1;
			return 0;
		}
		if (h_now_ms() >= deadline)
			return -1;
		h_pause_ms(5);
	}
}

int h_run_cairnd(const char *const *argv, const char *log_path, int timeout_ms)
{
	const char *v[64];
	int n = 0;
	v[n++] = h_cairnd_path();
	for (int i = 1; argv[i] != NULL && n < 63; i++)
		v[n++] = argv[i];
	v[n] = NULL;
	pid_t pid = spawn(v, log_path);
	int st;
	if (reap(pid, timeout_ms, &st) != 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		return -1;
	}
	return st;
}

static void describe_status(int st, char *buf, size_t len)
{
	if (st == -1)
		snprintf(buf, len, "still running");
	else if (WIFEXITED(st))
		snprintf(buf, len, "exit status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "killed by signal %d", WTERMSIG(st));
	else
		snprintf(buf, len, "wait status %#x", st);
}

/* ---- raw client ------------------------------------------------------------------------------ */

struct stash {
	Cairn__Response *r;
	struct stash *next;
};

struct h_conn {
	int fd;
	uint64_t next_id;
	uint8_t *buf;
	size_t len, cap;
	struct stash *stash;
	bool eof;
};

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	if (colon == NULL || (size_t)(colon - addr) >= sizeof(host))
		return -1;
	memcpy(host, addr, (size_t)(colon - addr));
	host[colon - addr] = '\0';
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

static int connect_once(const struct sockaddr_in *sa, int timeout_ms)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	int rv = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	if (rv != 0 && errno == EINPROGRESS) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (poll(&p, 1, timeout_ms) == 1) {
			int err = 0;
			socklen_t l = sizeof(err);
			getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l);
			rv = err == 0 ? 0 : -1;
		}
	}
	if (rv != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

struct h_conn *h_connect(const char *addr, int timeout_ms)
{
	struct sockaddr_in sa;
	if (parse_addr(addr, &sa) != 0)
		return NULL;
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int left = remaining_ms(deadline);
		int fd = connect_once(&sa, left > 0 ? left : 1);
		if (fd >= 0) {
			struct h_conn *hc = calloc(1, sizeof(*hc));
			H_ASSERT(hc != NULL);
			hc->fd = fd;
			hc->next_id = 1;
			return hc;
		}
		if (h_now_ms() >= deadline)
			return NULL;
		h_pause_ms(10);
	}
}

struct h_conn *h_connect_member(struct h_cluster *c, int id, int timeout_ms)
{
	return h_connect(c->m[id].client_addr, timeout_ms);
}

void h_free(Cairn__Response *r)
{
	if (r != NULL)
		cairn__response__free_unpacked(r, NULL);
}

void h_close(struct h_conn *hc)
{
	if (hc == NULL)
		return;
	close(hc->fd);
	while (hc->stash) {
		struct stash *s = hc->stash;
		hc->stash = s->next;
		h_free(s->r);
		free(s);
	}
	free(hc->buf);
	free(hc);
}

static int send_all(int fd, const uint8_t *p, size_t len, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		int left = remaining_ms(deadline);
		if (left == 0)
			return -1;
		struct pollfd pf = {.fd = fd, .events = POLLOUT};
		poll(&pf, 1, left);
	}
	return 0;
}

int h_send_raw(struct h_conn *hc, const void *data, size_t len)
{
	return send_all(hc->fd, data, len, H_RPC_TIMEOUT_MS);
}

int h_send(struct h_conn *hc, Cairn__Request *req)
{
	if (req->id == 0)
		req->id = hc->next_id++;
	size_t n = cairn__request__get_packed_size(req);
	uint8_t *b = malloc(n + 4);
	H_ASSERT(b != NULL);
	b[0] = (uint8_t)(n >> 24);
	b[1] = (uint8_t)(n >> 16);
	b[2] = (uint8_t)(n >> 8);
	b[3] = (uint8_t)n;
	cairn__request__pack(req, b + 4);
	int rv = send_all(hc->fd, b, n + 4, H_RPC_TIMEOUT_MS);
	free(b);
	return rv;
}

/* Reads the next frame off the socket (ignoring the stash). */
static Cairn__Response *recv_frame(struct h_conn *hc, int timeout_ms, int *why)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	int dummy;
	if (why == NULL)
		why = &dummy;
	for (;;) {
		if (hc->len >= 4) {
			uint32_t flen = (uint32_t)hc->buf[0] << 24 | (uint32_t)hc->buf[1] << 16 |
					(uint32_t)hc->buf[2] << 8 | hc->buf[3];
			if (flen > H_MAX_RESP_SIZE) {
				*why = H_ERROR;
				return NULL;
			}
			if (hc->len >= 4 + (size_t)flen) {
				Cairn__Response *r =
				    cairn__response__unpack(NULL, flen, hc->buf + 4);
				memmove(hc->buf, hc->buf + 4 + flen, hc->len - 4 - flen);
				hc->len -= 4 + flen;
				*why = r ? H_OK : H_ERROR;
				return r;
			}
		}
		if (hc->eof) {
			*why = H_EOF;
			return NULL;
		}
		if (hc->cap - hc->len < 65536) {
			size_t cap = hc->cap ? hc->cap * 2 : 131072;
			uint8_t *nb = realloc(hc->buf, cap);
			H_ASSERT(nb != NULL);
			hc->buf = nb;
			hc->cap = cap;
		}
		ssize_t n = recv(hc->fd, hc->buf + hc->len, hc->cap - hc->len, 0);
		if (n > 0) {
			hc->len += (size_t)n;
			continue;
		}
		if (n == 0) {
			hc->eof = true;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			hc->eof = true; /* reset: treated as closed */
			continue;
		}
		int left = remaining_ms(deadline);
		if (left == 0) {
			*why = H_TIMEOUT;
			return NULL;
		}
		struct pollfd pf = {.fd = hc->fd, .events = POLLIN};
		poll(&pf, 1, left);
	}
}

Cairn__Response *h_recv(struct h_conn *hc, int timeout_ms, int *why)
{
	if (hc->stash) {
		struct stash *s = hc->stash;
		hc->stash = s->next;
		Cairn__Response *r = s->r;
		free(s);
		if (why)
			*why = H_OK;
		return r;
	}
	return recv_frame(hc, timeout_ms, why);
}

Cairn__Response *h_wait(struct h_conn *hc, uint64_t id, int timeout_ms, int *why)
{
	for (struct stash **pp = &hc->stash; *pp; pp = &(*pp)->next) {
		if ((*pp)->r->id == id) {
			struct stash *s = *pp;
			*pp = s->next;
			Cairn__Response *r = s->r;
			free(s);
			if (why)
				*why = H_OK;
			return r;
		}
	}
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		Cairn__Response *r = recv_frame(hc, remaining_ms(deadline), why);
		if (r == NULL || r->id == id)
			return r;
		struct stash *s = calloc(1, sizeof(*s)), **tail = &hc->stash;
		H_ASSERT(s != NULL);
		s->r = r;
		while (*tail)
			tail = &(*tail)->next;
		*tail = s;
	}
}

Cairn__Response *h_call(struct h_conn *hc, Cairn__Request *req, int timeout_ms)
{
	if (hc == NULL || h_send(hc, req) != 0)
		return NULL;
	return h_wait(hc, req->id, timeout_ms, NULL);
}

bool h_wait_closed(struct h_conn *hc, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int why;
		Cairn__Response *r = recv_frame(hc, remaining_ms(deadline), &why);
		if (r != NULL) {
			h_free(r);
			continue;
		}
		if (why == H_EOF)
			return true;
		if (why == H_TIMEOUT)
			return false;
		/* H_ERROR: garbage in the stream; keep reading until EOF. */
		hc->len = 0;
	}
}

int h_errcode(const Cairn__Response *r)
{
	return r && r->error ? (int)r->error->code : 0;
}

const char *h_errname(int code)
{
	const ProtobufCEnumValue *v =
	    protobuf_c_enum_descriptor_get_value(&cairn__error_code__descriptor, code);
	return v ? v->name : "?";
}

const char *h_errmsg(const Cairn__Response *r)
{
	return r && r->error && r->error->message ? r->error->message : "";
}

/* ---- request builders ------------------------------------------------------------------------ */

static void req_init(struct h_req *r)
{
	memset(r, 0, sizeof(*r));
	Cairn__Request ri = CAIRN__REQUEST__INIT;
	r->req = ri;
}

void h_req_put(struct h_req *r, const void *key, size_t klen, const void *val, size_t vlen)
{
	req_init(r);
	Cairn__PutRequest pi = CAIRN__PUT_REQUEST__INIT;
	r->put = pi;
	r->put.key.data = (uint8_t *)key;
	r->put.key.len = klen;
	r->put.value.data = (uint8_t *)val;
	r->put.value.len = vlen;
	r->req.op_case = CAIRN__REQUEST__OP_PUT;
	r->req.put = &r->put;
}

void h_req_get(struct h_req *r, const char *key, bool serializable)
{
	req_init(r);
	Cairn__RangeRequest ri = CAIRN__RANGE_REQUEST__INIT;
	r->range = ri;
	r->range.key.data = (uint8_t *)key;
	r->range.key.len = strlen(key);
	r->range.serializable = serializable;
	r->req.op_case = CAIRN__REQUEST__OP_RANGE;
	r->req.range = &r->range;
}

void h_req_status(struct h_req *r)
{
	req_init(r);
	Cairn__StatusRequest si = CAIRN__STATUS_REQUEST__INIT;
	r->status = si;
	r->req.op_case = CAIRN__REQUEST__OP_STATUS;
	r->req.status = &r->status;
}

void h_req_session(struct h_req *r)
{
	req_init(r);
	Cairn__SessionRequest si = CAIRN__SESSION_REQUEST__INIT;
	r->session = si;
	r->req.op_case = CAIRN__REQUEST__OP_SESSION;
	r->req.session = &r->session;
}

Cairn__Response *h_put(struct h_conn *hc, const char *key, const char *val, int timeout_ms)
{
	return h_put_seq(hc, key, val, 0, 0, timeout_ms);
}

Cairn__Response *h_put_seq(struct h_conn *hc, const char *key, const char *val, uint64_t client_id,
			   uint64_t seq, int timeout_ms)
{
	struct h_req r;
	h_req_put(&r, key, strlen(key), val, strlen(val));
	r.req.client_id = client_id;
	r.req.seq = seq;
	return h_call(hc, &r.req, timeout_ms);
}

Cairn__Response *h_get(struct h_conn *hc, const char *key, bool serializable, int timeout_ms)
{
	struct h_req r;
	h_req_get(&r, key, serializable);
	return h_call(hc, &r.req, timeout_ms);
}

Cairn__Response *h_status(struct h_conn *hc, int timeout_ms)
{
	struct h_req r;
	h_req_status(&r);
	return h_call(hc, &r.req, timeout_ms);
}

Cairn__Response *h_session(struct h_conn *hc, int timeout_ms)
{
	struct h_req r;
	h_req_session(&r);
	return h_call(hc, &r.req, timeout_ms);
}

Cairn__Response *h_txn(struct h_conn *hc, Cairn__TxnRequest *txn, int timeout_ms)
{
	Cairn__Request req = CAIRN__REQUEST__INIT;
	req.op_case = CAIRN__REQUEST__OP_TXN;
	req.txn = txn;
	return h_call(hc, &req, timeout_ms);
}

void h_txn_init(struct h_txn *t)
{
	memset(t, 0, sizeof(*t));
	Cairn__TxnRequest ti = CAIRN__TXN_REQUEST__INIT;
	t->t = ti;
	t->t.compare = t->cmpp;
	t->t.success = t->opp[H_SUCCESS];
	t->t.failure = t->opp[H_FAILURE];
}

static Cairn__Compare *txn_cmp(struct h_txn *t, const char *key, Cairn__Compare__Result result)
{
	H_ASSERT(t->t.n_compare < H_TXN_MAX);
	Cairn__Compare *c = &t->cmp[t->t.n_compare];
	Cairn__Compare ci = CAIRN__COMPARE__INIT;
	*c = ci;
	c->key.data = (uint8_t *)key;
	c->key.len = strlen(key);
	c->result = result;
	t->cmpp[t->t.n_compare++] = c;
	return c;
}

void h_txn_cmp_num(struct h_txn *t, const char *key, Cairn__Compare__Target target,
		   Cairn__Compare__Result result, int64_t v)
{
	Cairn__Compare *c = txn_cmp(t, key, result);
	c->target = target;
	switch (target) {
	case CAIRN__COMPARE__TARGET__VERSION:
		c->target_union_case = CAIRN__COMPARE__TARGET_UNION_VERSION;
		c->version = v;
		break;
	case CAIRN__COMPARE__TARGET__CREATE:
		c->target_union_case = CAIRN__COMPARE__TARGET_UNION_CREATE_REVISION;
		c->create_revision = v;
		break;
	case CAIRN__COMPARE__TARGET__MOD:
		c->target_union_case = CAIRN__COMPARE__TARGET_UNION_MOD_REVISION;
		c->mod_revision = v;
		break;
	default:
		H_ASSERT_MSG(0, "h_txn_cmp_num: not a numeric target");
	}
}

void h_txn_cmp_value(struct h_txn *t, const char *key, Cairn__Compare__Result result, const char *v)
{
	Cairn__Compare *c = txn_cmp(t, key, result);
	c->target = CAIRN__COMPARE__TARGET__VALUE;
	c->target_union_case = CAIRN__COMPARE__TARGET_UNION_VALUE;
	c->value.data = (uint8_t *)v;
	c->value.len = strlen(v);
}

static Cairn__RequestOp *txn_op(struct h_txn *t, int branch, size_t *i)
{
	size_t *n = branch == H_SUCCESS ? &t->t.n_success : &t->t.n_failure;
	H_ASSERT(*n < H_TXN_MAX);
	*i = (*n)++;
	Cairn__RequestOp *op = &t->ops[branch][*i];
	Cairn__RequestOp oi = CAIRN__REQUEST_OP__INIT;
	*op = oi;
	t->opp[branch][*i] = op;
	return op;
}

void h_txn_put(struct h_txn *t, int branch, const char *key, const char *val)
{
	size_t i;
	Cairn__RequestOp *op = txn_op(t, branch, &i);
	Cairn__PutRequest pi = CAIRN__PUT_REQUEST__INIT;
	Cairn__PutRequest *p = &t->put[branch][i];
	*p = pi;
	p->key.data = (uint8_t *)key;
	p->key.len = strlen(key);
	p->value.data = (uint8_t *)val;
	p->value.len = strlen(val);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT;
	op->request_put = p;
}

void h_txn_get(struct h_txn *t, int branch, const char *key)
{
	size_t i;
	Cairn__RequestOp *op = txn_op(t, branch, &i);
	Cairn__RangeRequest ri = CAIRN__RANGE_REQUEST__INIT;
	Cairn__RangeRequest *r = &t->range[branch][i];
	*r = ri;
	r->key.data = (uint8_t *)key;
	r->key.len = strlen(key);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE;
	op->request_range = r;
}

void h_txn_del(struct h_txn *t, int branch, const char *key)
{
	size_t i;
	Cairn__RequestOp *op = txn_op(t, branch, &i);
	Cairn__DeleteRangeRequest di = CAIRN__DELETE_RANGE_REQUEST__INIT;
	Cairn__DeleteRangeRequest *d = &t->del[branch][i];
	*d = di;
	d->key.data = (uint8_t *)key;
	d->key.len = strlen(key);
	op->request_case = CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE;
	op->request_delete_range = d;
}

const Cairn__KeyValue *h_kv(const Cairn__Response *r)
{
	if (r == NULL || h_errcode(r) != 0 || r->op_case != CAIRN__RESPONSE__OP_RANGE ||
	    r->range->n_kvs == 0)
		return NULL;
	return r->range->kvs[0];
}

bool h_kv_is(const Cairn__KeyValue *kv, const char *val)
{
	if (kv == NULL)
		return val == NULL;
	return val != NULL && kv->value.len == strlen(val) &&
	       memcmp(kv->value.data, val, kv->value.len) == 0;
}

/* ---- fault-injecting proxy ----------------------------------------------------------------- */

/* Bytes of a delayed link waiting for their time (H_LINK_DELAY), in arrival order. */
struct dchunk {
	uint64_t due_ms; /* h_now_ms() at which they may be forwarded */
	size_t len, off;
	struct dchunk *next;
	uint8_t data[];
};

struct pconn {
	int from, to;
	int a, b;     /* a: accepted from `from`; b: connection to `to` (-1: none, blackhole) */
	bool b_ready; /* b's connect completed */
	bool dead;
	int ia, ib; /* indexes in this round's pollfd array, -1 if not polled */
	size_t ab_len, ba_len;
	uint8_t ab[H_PROXY_BUF], ba[H_PROXY_BUF];
	struct dchunk *dq_head, *dq_tail; /* a -> b bytes delayed (H_LINK_DELAY) */
	size_t dq_bytes;
	struct pconn *next;
};

struct h_proxy {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int wake[2];
	int n;
	int lfd[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int lport[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];	      /* wanted (under mu) */
	int delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];      /* wanted H_LINK_DELAY ms (mu) */
	uint64_t bytes[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1]; /* under mu */
	int target_port[H_MAX_MEMBERS + 1];
	uint64_t gen, acked;
	bool stop;
	/* proxy thread only */
	int applied[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int applied_delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	struct pconn *conns;
};

static void dq_clear(struct pconn *pc)
{
	while (pc->dq_head != NULL) {
		struct dchunk *d = pc->dq_head;
		pc->dq_head = d->next;
		free(d);
	}
	pc->dq_tail = NULL;
	pc->dq_bytes = 0;
}

static void pconn_kill(struct pconn *pc)
{
	if (pc->dead)
		return;
	pc->dead = true;
	if (pc->a >= 0)
		close(pc->a);
	if (pc->b >= 0)
		close(pc->b);
	pc->a = pc->b = -1;
	dq_clear(pc);
}

static void proxy_accept(struct h_proxy *p, int from, int to)
{
	for (;;) {
		int a = accept4(p->lfd[from][to], NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (a < 0)
			return;
		int mode = p->applied[from][to];
		if (mode == H_LINK_DROP) {
			close(a);
			continue;
		}
		struct pconn *pc = calloc(1, sizeof(*pc));
		if (pc == NULL) {
			close(a);
			continue;
		}
		pc->from = from;
		pc->to = to;
		pc->a = a;
		pc->b = -1;
		pc->ia = pc->ib = -1;
		int one = 1;
		setsockopt(a, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (mode == H_LINK_PASS || mode == H_LINK_DELAY) {
			struct sockaddr_in sa = {.sin_family = AF_INET};
			sa.sin_port = htons((uint16_t)p->target_port[to]);
			sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			int b = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
			int rv = b < 0 ? -1 : connect(b, (struct sockaddr *)&sa, sizeof(sa));
			if (b >= 0)
				setsockopt(b, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			if (rv == 0) {
				pc->b = b;
				pc->b_ready = true;
			} else if (b >= 0 && errno == EINPROGRESS) {
				pc->b = b;
			} else {
				if (b >= 0)
					close(b);
				close(a);
				free(pc);
				continue;
			}
		}
		pc->next = p->conns;
		p->conns = pc;
	}
}

/* Moves bytes from fd `in` into buf (or discards them), returns false when `in` is closed. */
static bool pump_in(int in, uint8_t *buf, size_t *len, bool discard, uint64_t *count,
		    struct h_proxy *p)
{
	uint8_t scratch[H_PROXY_BUF];
	uint8_t *dst = discard ? scratch : buf + *len;
	size_t room = discard ? sizeof(scratch) : H_PROXY_BUF - *len;
	if (room == 0)
		return true;
	ssize_t n = recv(in, dst, room, 0);
	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	if (!discard) {
		*len += (size_t)n;
		if (count) {
			pthread_mutex_lock(&p->mu);
			*count += (uint64_t)n;
			pthread_mutex_unlock(&p->mu);
		}
	}
	return true;
}

/* Reads from `in` into the delay queue of pc, due `delay_ms` from now (never before the bytes
 * queued earlier); returns false when `in` is closed. */
static bool pump_in_delayed(struct pconn *pc, int delay_ms, uint64_t *count, struct h_proxy *p)
{
	uint8_t scratch[H_PROXY_BUF];
	ssize_t n = recv(pc->a, scratch, sizeof(scratch), 0);
	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	struct dchunk *d = malloc(sizeof(*d) + (size_t)n);
	if (d == NULL)
		return false; /* reset the connection: the member reconnects */
	d->due_ms = h_now_ms() + (uint64_t)delay_ms;
	if (pc->dq_tail != NULL && pc->dq_tail->due_ms > d->due_ms)
		d->due_ms = pc->dq_tail->due_ms;
	d->len = (size_t)n;
	d->off = 0;
	d->next = NULL;
	memcpy(d->data, scratch, (size_t)n);
	if (pc->dq_tail != NULL)
		pc->dq_tail->next = d;
	else
		pc->dq_head = d;
	pc->dq_tail = d;
	pc->dq_bytes += (size_t)n;
	pthread_mutex_lock(&p->mu);
	*count += (uint64_t)n;
	pthread_mutex_unlock(&p->mu);
	return true;
}

/* Moves the delayed bytes whose time has come into the a -> b buffer. */
static void release_delayed(struct pconn *pc, uint64_t now)
{
	while (pc->dq_head != NULL && pc->dq_head->due_ms <= now && pc->ab_len < H_PROXY_BUF) {
		struct dchunk *d = pc->dq_head;
		size_t k = d->len - d->off;
		if (k > H_PROXY_BUF - pc->ab_len)
			k = H_PROXY_BUF - pc->ab_len;
		memcpy(pc->ab + pc->ab_len, d->data + d->off, k);
		pc->ab_len += k;
		d->off += k;
		pc->dq_bytes -= k;
		if (d->off == d->len) {
			pc->dq_head = d->next;
			if (pc->dq_head == NULL)
				pc->dq_tail = NULL;
			free(d);
		}
	}
}

static bool pump_out(int out, uint8_t *buf, size_t *len)
{
	if (*len == 0)
		return true;
	ssize_t n = send(out, buf, *len, MSG_NOSIGNAL);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
	memmove(buf, buf + n, *len - (size_t)n);
	*len -= (size_t)n;
	return true;
}

static void *proxy_main(void *arg)
{
	struct h_proxy *p = arg;
	int n = p->n;
	struct pollfd *pfds = NULL;
	size_t pcap = 0;
	for (;;) {
		/* 1. take the wanted modes and apply the changes */
		int want[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
		pthread_mutex_lock(&p->mu);
		bool stop = p->stop;
		uint64_t gen = p->gen;
		memcpy(want, p->mode, sizeof(want));
		memcpy(p->applied_delay, p->delay, sizeof(p->applied_delay));
		pthread_mutex_unlock(&p->mu);
		if (stop)
			break;
		for (int f = 1; f <= n; f++)
			for (int t = 1; t <= n; t++) {
				int old = p->applied[f][t], now = want[f][t];
				if (f == t || old == now)
					continue;
				/* PASS <-> DELAY keeps the stream (delayed bytes still flow) */
				bool keep = (old == H_LINK_PASS && now == H_LINK_DELAY) ||
					    (old == H_LINK_DELAY && now == H_LINK_PASS);
				for (struct pconn *pc = p->conns; pc && !keep; pc = pc->next) {
					if (pc->from != f || pc->to != t)
						continue;
					if (now == H_LINK_DROP || old != H_LINK_PASS)
						pconn_kill(pc); /* cut, or reset after a fault */
					else {
						pc->ab_len = pc->ba_len = 0; /* into the hole */
						dq_clear(pc); /* bytes still delayed, too */
					}
				}
				p->applied[f][t] = now;
			}
		for (struct pconn **pp = &p->conns; *pp;) {
			struct pconn *pc = *pp;
			if (pc->dead) {
				*pp = pc->next;
				free(pc);
			} else {
				pp = &pc->next;
			}
		}
		pthread_mutex_lock(&p->mu);
		p->acked = gen;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);

		/* 2. poll */
		size_t want_fds = 1 + (size_t)(n * n) + 2;
		for (struct pconn *pc = p->conns; pc; pc = pc->next)
			want_fds += 2;
		if (want_fds > pcap) {
			pcap = want_fds * 2;
			struct pollfd *np = realloc(pfds, pcap * sizeof(*pfds));
			if (np == NULL)
				break;
			pfds = np;
		}
		size_t k = 0;
		int timeout = 1000;
		uint64_t now_ms = h_now_ms();
		pfds[k++] = (struct pollfd){.fd = p->wake[0], .events = POLLIN};
		int lidx[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
		for (int f = 1; f <= n; f++)
			for (int t = 1; t <= n; t++) {
				lidx[f][t] = -1;
				if (f == t)
					continue;
				lidx[f][t] = (int)k;
				pfds[k++] = (struct pollfd){.fd = p->lfd[f][t], .events = POLLIN};
			}
		for (struct pconn *pc = p->conns; pc; pc = pc->next) {
			short ea = 0, eb = 0;
			bool hole = p->applied[pc->from][pc->to] == H_LINK_BLACKHOLE;
			bool delayed =
			    p->applied[pc->from][pc->to] == H_LINK_DELAY || pc->dq_head != NULL;
			if (delayed ? pc->dq_bytes < H_LINK_DELAY_MAX_QUEUED
				    : (hole || pc->ab_len < H_PROXY_BUF))
				ea |= POLLIN;
			if (pc->dq_head != NULL && pc->ab_len < H_PROXY_BUF) {
				uint64_t due = pc->dq_head->due_ms;
				int wait = due <= now_ms ? 0 : (int)(due - now_ms);
				if (wait < timeout)
					timeout = wait;
			}
			if (pc->ba_len > 0)
				ea |= POLLOUT;
			pc->ia = (int)k;
			pfds[k++] = (struct pollfd){.fd = pc->a, .events = ea};
			pc->ib = -1;
			if (pc->b >= 0) {
				if (!pc->b_ready) {
					eb = POLLOUT;
				} else {
					if (pc->ba_len < H_PROXY_BUF)
						eb |= POLLIN;
					if (pc->ab_len > 0)
						eb |= POLLOUT;
				}
				pc->ib = (int)k;
				pfds[k++] = (struct pollfd){.fd = pc->b, .events = eb};
			}
		}
		if (poll(pfds, (nfds_t)k, timeout) < 0 && errno != EINTR)
			break;
		now_ms = h_now_ms();

		/* 3. handle events */
		if (pfds[0].revents) {
			char drain[64];
			while (read(p->wake[0], drain, sizeof(drain)) > 0)
				;
		}
		for (struct pconn *pc = p->conns; pc; pc = pc->next) {
			if (pc->dead)
				continue;
			bool hole = p->applied[pc->from][pc->to] == H_LINK_BLACKHOLE;
			bool delay_mode = p->applied[pc->from][pc->to] == H_LINK_DELAY;
			bool delayed = delay_mode || pc->dq_head != NULL;
			uint64_t *cnt = &p->bytes[pc->from][pc->to];
			bool ok = true;
			if (pc->ib >= 0 && !pc->b_ready && pfds[pc->ib].revents) {
				int err = 0;
				socklen_t l = sizeof(err);
				getsockopt(pc->b, SOL_SOCKET, SO_ERROR, &err, &l);
				if (err != 0)
					ok = false;
				else
					pc->b_ready = true;
			}
			if (ok && pfds[pc->ia].revents && delayed && pc->b >= 0)
				ok = pump_in_delayed(
				    pc, delay_mode ? p->applied_delay[pc->from][pc->to] : 0, cnt,
				    p);
			else if (ok && pfds[pc->ia].revents)
				ok = pump_in(pc->a, pc->ab, &pc->ab_len, hole || pc->b < 0, cnt, p);
			if (ok && pc->dq_head != NULL)
				release_delayed(pc, now_ms);
			if (ok && pc->b_ready && pc->ib >= 0 && pfds[pc->ib].revents)
				ok = pump_in(pc->b, pc->ba, &pc->ba_len, hole, NULL, p);
			if (ok && pc->b_ready)
				ok = pump_out(pc->b, pc->ab, &pc->ab_len);
			if (ok)
				ok = pump_out(pc->a, pc->ba, &pc->ba_len);
			if (!ok)
				pconn_kill(pc); /* either side closed: close both */
		}
		for (int f = 1; f <= n; f++)
			for (int t = 1; t <= n; t++)
				if (lidx[f][t] >= 0 && pfds[lidx[f][t]].revents)
					proxy_accept(p, f, t);
	}
	free(pfds);
	while (p->conns) {
		struct pconn *pc = p->conns;
		p->conns = pc->next;
		pconn_kill(pc);
		free(pc);
	}
	return NULL;
}

static int listen_any(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t l = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &l) != 0) {
		close(fd);
		return -1;
	}
	*port = ntohs(sa.sin_port);
	return fd;
}

static struct h_proxy *proxy_start(struct h_cluster *c)
{
	struct h_proxy *p = calloc(1, sizeof(*p));
	H_ASSERT(p != NULL);
	p->n = c->n;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	H_ASSERT(pipe2(p->wake, O_NONBLOCK | O_CLOEXEC) == 0);
	for (int id = 1; id <= c->n; id++)
		p->target_port[id] = c->m[id].peer_port;
	for (int f = 1; f <= c->n; f++)
		for (int t = 1; t <= c->n; t++) {
			p->lfd[f][t] = -1;
			if (f == t)
				continue;
			p->lfd[f][t] = listen_any(&p->lport[f][t]);
			H_ASSERT_MSG(p->lfd[f][t] >= 0, "proxy: cannot listen: %s",
				     strerror(errno));
		}
	H_ASSERT(pthread_create(&p->thread, NULL, proxy_main, p) == 0);
	return p;
}

static void proxy_stop(struct h_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_mutex_unlock(&p->mu);
	ssize_t w = write(p->wake[1], "x", 1);
	(void)w;
	pthread_join(p->thread, NULL);
	for (int f = 1; f <= p->n; f++)
		for (int t = 1; t <= p->n; t++)
			if (p->lfd[f][t] >= 0)
				close(p->lfd[f][t]);
	close(p->wake[0]);
	close(p->wake[1]);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}

/* Sets modes (already written under mu by the caller) and waits for the thread to apply them;
 * false if it did not within 10 s. */
static bool proxy_sync(struct h_proxy *p)
{
	pthread_mutex_lock(&p->mu);
	uint64_t my = ++p->gen;
	pthread_mutex_unlock(&p->mu);
	ssize_t w = write(p->wake[1], "x", 1);
	(void)w;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	pthread_mutex_lock(&p->mu);
	int rv = 0;
	while (p->acked < my && rv == 0)
		rv = pthread_cond_timedwait(&p->cv, &p->mu, &ts);
	bool ok = p->acked >= my;
	pthread_mutex_unlock(&p->mu);
	return ok;
}

/* ---- link faults: one API over the proxy and the namespaces -------------------------------- */

bool h_cluster_has_links(const struct h_cluster *c)
{
	return c->proxy != NULL || c->netns != NULL;
}

/* Serializes read-modify-write changes of a cluster's links (tests change them from one thread;
 * this keeps h_link_set & co. safe should two threads ever do it). */
static pthread_mutex_t g_links_mu = PTHREAD_MUTEX_INITIALIZER;

typedef int link_matrix[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];

/* The modes and delays in force (under g_links_mu). */
static void links_get(struct h_cluster *c, link_matrix mode, link_matrix delay)
{
	if (c->netns != NULL) {
		netns_links(c->netns, mode, delay);
		return;
	}
	pthread_mutex_lock(&c->proxy->mu);
	memcpy(mode, c->proxy->mode, sizeof(link_matrix));
	memcpy(delay, c->proxy->delay, sizeof(link_matrix));
	pthread_mutex_unlock(&c->proxy->mu);
}

/* Applies every link at once and returns when it is in force, then releases g_links_mu (taken
 * by the caller) and asserts that it worked — after unlocking, since a failed assertion does
 * not return (and with CK_FORK=no the next test runs in this same process). */
static void links_put_unlock(struct h_cluster *c, link_matrix mode, link_matrix delay)
{
	char err[1024] = "";
	bool ok;
	if (c->netns != NULL) {
		ok = netns_apply(c->netns, (const int(*)[H_MAX_MEMBERS + 1]) mode,
				 (const int(*)[H_MAX_MEMBERS + 1]) delay, err, sizeof(err)) == 0;
	} else {
		pthread_mutex_lock(&c->proxy->mu);
		memcpy(c->proxy->mode, mode, sizeof(link_matrix));
		memcpy(c->proxy->delay, delay, sizeof(link_matrix));
		pthread_mutex_unlock(&c->proxy->mu);
		ok = proxy_sync(c->proxy);
		if (!ok)
			snprintf(err, sizeof(err), "the proxy thread did not apply it");
	}
	pthread_mutex_unlock(&g_links_mu);
	H_ASSERT_MSG(ok, "link change: %s", err);
}

static void links_need(struct h_cluster *c, const char *what)
{
	H_ASSERT_MSG(h_cluster_has_links(c),
		     "%s needs a cluster with opts.net = H_NET_PROXY (and more than one member) or "
		     "H_NET_NETNS",
		     what);
}

void h_link_set(struct h_cluster *c, int from, int to, enum h_link_mode mode)
{
	links_need(c, "h_link_set");
	H_ASSERT(from >= 1 && from <= c->n && to >= 1 && to <= c->n && from != to);
	H_ASSERT(mode >= H_LINK_PASS && mode <= H_LINK_DELAY);
	link_matrix m, d;
	pthread_mutex_lock(&g_links_mu);
	links_get(c, m, d);
	m[from][to] = (int)mode;
	links_put_unlock(c, m, d);
}

void h_isolate(struct h_cluster *c, int id, enum h_link_mode mode)
{
	links_need(c, "h_isolate");
	H_ASSERT(id >= 1 && id <= c->n);
	link_matrix m, d;
	pthread_mutex_lock(&g_links_mu);
	links_get(c, m, d);
	for (int k = 1; k <= c->n; k++)
		if (k != id) {
			m[id][k] = (int)mode;
			m[k][id] = (int)mode;
		}
	links_put_unlock(c, m, d);
}

void h_heal(struct h_cluster *c)
{
	links_need(c, "h_heal");
	link_matrix m, d;
	memset(m, 0, sizeof(m));
	memset(d, 0, sizeof(d));
	pthread_mutex_lock(&g_links_mu);
	links_put_unlock(c, m, d);
}

void h_link_set_delay(struct h_cluster *c, int from, int to, int delay_ms)
{
	links_need(c, "h_link_set_delay");
	H_ASSERT(from >= 1 && from <= c->n && to >= 1 && to <= c->n && from != to);
	H_ASSERT(delay_ms >= 0 && delay_ms <= H_LINK_DELAY_MAX_MS);
	link_matrix m, d;
	pthread_mutex_lock(&g_links_mu);
	links_get(c, m, d);
	m[from][to] = H_LINK_DELAY;
	d[from][to] = delay_ms;
	links_put_unlock(c, m, d);
}

void h_link_set_matrix(struct h_cluster *c, const int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		       const int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1])
{
	links_need(c, "h_link_set_matrix");
	for (int f = 1; f <= c->n; f++)
		for (int t = 1; t <= c->n; t++) {
			if (f == t)
				continue;
			H_ASSERT(mode[f][t] >= H_LINK_PASS && mode[f][t] <= H_LINK_DELAY);
			H_ASSERT(delay_ms == NULL ||
				 (delay_ms[f][t] >= 0 && delay_ms[f][t] <= H_LINK_DELAY_MAX_MS));
		}
	link_matrix m, d;
	memset(m, 0, sizeof(m));
	memset(d, 0, sizeof(d));
	for (int f = 1; f <= c->n; f++)
		for (int t = 1; t <= c->n; t++) {
			if (f == t)
				continue;
			m[f][t] = mode[f][t];
			d[f][t] = delay_ms != NULL ? delay_ms[f][t] : 0;
		}
	pthread_mutex_lock(&g_links_mu);
	links_put_unlock(c, m, d);
}

uint64_t h_link_bytes(struct h_cluster *c, int from, int to)
{
	links_need(c, "h_link_bytes");
	if (c->netns != NULL) {
		int64_t b = netns_link_bytes(c->netns, from, to);
		H_ASSERT_MSG(b >= 0, "cannot read the nftables counter of link %d -> %d", from, to);
		return (uint64_t)b;
	}
	pthread_mutex_lock(&c->proxy->mu);
	uint64_t b = c->proxy->bytes[from][to];
	pthread_mutex_unlock(&c->proxy->mu);
	return b;
}

/* ---- network namespaces: availability, and cleanup when the process ends ------------------- */

const char *h_net_name(enum h_net net)
{
	switch (net) {
	case H_NET_LOOPBACK:
		return "loopback";
	case H_NET_PROXY:
		return "proxy";
	case H_NET_NETNS:
		return "netns";
	}
	return "?";
}

int h_netns_check(char *why, size_t len)
{
	return netns_check(why, len);
}

bool h_netns_delay_check(char *why, size_t len)
{
	char w[512];
	if (netns_check(w, sizeof(w)) != 0) {
		snprintf(why, len, "%s", w);
		return false;
	}
	return netns_delay_supported(why, len);
}

bool h_netns_skip(const char *test)
{
	char why[512];
	int rv = netns_check(why, sizeof(why));
	if (rv == 1) {
		fprintf(stderr,
			"\n******** SKIPPED (needs root / CAP_NET_ADMIN): %s: %s ********\n\n",
			test, why);
		return true;
	}
	H_ASSERT_MSG(rv == 0, "%s: network namespaces are permitted here but do not work: %s", test,
		     why);
	return false;
}

/*
 * Namespaces are files under /var/run/netns: unlike processes (PR_SET_PDEATHSIG) they outlive
 * a harness that dies without h_cluster_destroy. So the process that creates them removes
 * them at exit() and on the usual fatal signals; what even that misses (kill -9, a Check
 * timeout) is removed by the next harness (netns_check: names carry the pid).
 */
static pid_t g_cleanup_owner;

static void exit_cleanup(void)
{
	if (getpid() != g_cleanup_owner)
		return; /* a forked child inherited the handler */
	for (int i = 0; i < H_MAX_CLUSTERS; i++) {
		struct h_cluster *c = g_clusters[i];
		if (c == NULL || c->netns == NULL)
			continue;
		for (int id = 1; id <= c->n; id++)
			kill_and_reap(&c->m[id]);
		netns_remove(c);
	}
}

/* Async-signal-safe: kill(2), close(2), umount2(2), unlink(2). */
static void signal_cleanup(int sig)
{
	if (getpid() == g_cleanup_owner) {
		for (int i = 0; i < H_MAX_CLUSTERS; i++) {
			struct h_cluster *c = g_clusters[i];
			if (c == NULL || c->netns == NULL)
				continue;
			for (int id = 1; id <= c->n; id++)
				if (c->m[id].pid > 0)
					kill(c->m[id].pid, SIGKILL);
		}
		netns_emergency_cleanup();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void install_cleanup(void)
{
	if (g_cleanup_owner == getpid())
		return;
	g_cleanup_owner = getpid();
	atexit(exit_cleanup);
	static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGABRT};
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction old;
		/* only where nobody else handles the signal: the application's handler wins */
		if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL ||
		    (old.sa_flags & SA_SIGINFO))
			continue;
		struct sigaction sa;
		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = signal_cleanup;
		sigemptyset(&sa.sa_mask);
		sigaction(sigs[i], &sa, NULL);
	}
}

/* ---- clusters -------------------------------------------------------------------------------- */

/* Cached client connections used by the cluster-level helpers, one per member. */
static struct h_conn *g_cached[H_MAX_CLUSTERS][H_MAX_MEMBERS + 1];

static int cluster_slot(const struct h_cluster *c)
{
	for (int i = 0; i < H_MAX_CLUSTERS; i++)
		if (g_clusters[i] == c)
			return i;
	return -1;
}

static void drop_cached(struct h_cluster *c, int id)
{
	int s = cluster_slot(c);
	if (s >= 0 && g_cached[s][id]) {
		h_close(g_cached[s][id]);
		g_cached[s][id] = NULL;
	}
}

static struct h_conn *cached_conn(struct h_cluster *c, int id, int timeout_ms)
{
	int s = cluster_slot(c);
	H_ASSERT(s >= 0);
	if (g_cached[s][id] == NULL)
		g_cached[s][id] = h_connect_member(c, id, timeout_ms);
	return g_cached[s][id];
}

struct h_cluster *h_cluster_new(const struct h_cluster_opts *o)
{
	H_ASSERT(o->n >= 1 && o->n <= H_MAX_MEMBERS);
	H_ASSERT(o->net == H_NET_LOOPBACK || o->net == H_NET_PROXY || o->net == H_NET_NETNS);
	struct h_cluster *c = calloc(1, sizeof(*c));
	H_ASSERT(c != NULL);
	c->n = o->n;
	c->opts = *o;
	o = &c->opts;
	const char *tmp = getenv("TMPDIR");
	snprintf(c->root, sizeof(c->root), "%s/cairn-it-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	H_ASSERT_MSG(mkdtemp(c->root) != NULL, "mkdtemp: %s", strerror(errno));
	registry_add(c);
	snprintf(c->token, sizeof(c->token), "it-%d-%u", (int)getpid(), g_counter++);
	int base = alloc_port_block();
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		m->id = id;
		m->client_port = base + 2 * (id - 1);
		m->peer_port = base + 2 * (id - 1) + 1;
		snprintf(m->host, sizeof(m->host), "127.0.0.1");
		snprintf(m->data_dir, sizeof(m->data_dir), "%s/data-%d", c->root, id);
		snprintf(m->log_path, sizeof(m->log_path), "%s/member-%d.log", c->root, id);
	}
	if (o->net == H_NET_PROXY && c->n > 1)
		c->proxy = proxy_start(c);
	if (o->net == H_NET_NETNS) {
		char why[512];
		int chk = netns_check(why, sizeof(why));
		H_ASSERT_MSG(chk == 0, "network-namespace mode is not available here: %s", why);
		install_cleanup();
		int ports[H_MAX_MEMBERS + 1] = {0};
		for (int id = 1; id <= c->n; id++)
			ports[id] = c->m[id].peer_port;
		char err[1024];
		c->netns = netns_create(c->n, ports, err, sizeof(err));
		H_ASSERT_MSG(c->netns != NULL, "%s", err);
		for (int id = 1; id <= c->n; id++)
			snprintf(c->m[id].host, sizeof(c->m[id].host), "%s",
				 netns_member_ip(c->netns, id));
		h_note("cluster network: namespaces on %s", netns_subnet(c->netns));
	}
	for (int id = 1; id <= c->n; id++) {
		char addr[sizeof(c->m[id].client_addr)]; /* a local: gcc -Wrestrict sees c twice */
		snprintf(addr, sizeof(addr), "%s:%d", c->m[id].host, c->m[id].client_port);
		memcpy(c->m[id].client_addr, addr, sizeof(addr));
	}
	return c;
}

bool h_member_try_start(struct h_cluster *c, int id, const char *const *extra)
{
	struct h_member *m = &c->m[id];
	H_ASSERT_MSG(m->pid == 0, "member %d is already running", id);
	char idbuf[16], client[32], peer[32], hb[16], et[16];
	char cluster[1024] = "";
	snprintf(idbuf, sizeof(idbuf), "%d", id);
	snprintf(client, sizeof(client), "%s:%d", m->host, m->client_port);
	snprintf(peer, sizeof(peer), "%s:%d", m->host, m->peer_port);
	snprintf(hb, sizeof(hb), "%d", H_HEARTBEAT_MS);
	snprintf(et, sizeof(et), "%d", H_ELECTION_TIMEOUT_MS);
	for (int k = 1; k <= c->n; k++) {
		bool via_proxy = k != id && c->proxy != NULL;
		int port = via_proxy ? c->proxy->lport[id][k] : c->m[k].peer_port;
		size_t l = strlen(cluster);
		snprintf(cluster + l, sizeof(cluster) - l, "%s%d=%s:%d", k > 1 ? "," : "", k,
			 via_proxy ? "127.0.0.1" : c->m[k].host, port);
	}
	const char *argv[64];
	int n = 0;
	argv[n++] = h_cairnd_path();
	argv[n++] = "--data-dir";
	argv[n++] = m->data_dir;
	argv[n++] = "--listen-client";
	argv[n++] = client;
	argv[n++] = "--listen-peer";
	argv[n++] = peer;
	if (c->n > 1 || c->opts.net != H_NET_LOOPBACK) {
		argv[n++] = "--id";
		argv[n++] = idbuf;
		argv[n++] = "--initial-cluster";
		argv[n++] = cluster;
		argv[n++] = "--cluster-token";
		argv[n++] = c->token;
		argv[n++] = "--heartbeat-ms";
		argv[n++] = hb;
		argv[n++] = "--election-timeout-ms";
		argv[n++] = et;
	}
	if (c->opts.nosync)
		argv[n++] = "--unsafe-no-fsync";
	for (int i = 0; c->opts.extra[i] != NULL && n < 60; i++)
		argv[n++] = c->opts.extra[i];
	for (int i = 0; extra && extra[i] != NULL && n < 62; i++)
		argv[n++] = extra[i];
	argv[n] = NULL;

	char cmd[2048] = "";
	for (int i = 0; i < n; i++) {
		size_t l = strlen(cmd);
		snprintf(cmd + l, sizeof(cmd) - l, "%s%s", i ? " " : "", argv[i]);
	}
	log_marker(m->log_path, "starting member %d%s: %s", id,
		   c->netns != NULL ? " in its network namespace" : "", cmd);
	drop_cached(c, id);
	m->pid = spawn_in(argv, m->log_path, c->netns ? netns_member_fd(c->netns, id) : -1);
	m->paused = false;
	m->exited_checked = false;

	uint64_t deadline = h_now_ms() + H_START_TIMEOUT_MS;
	for (;;) {
		int st;
		pid_t r = waitpid(m->pid, &st, WNOHANG);
		if (r == m->pid) {
			m->pid = 0;
			m->last_status = st;
			return false;
		}
		struct h_conn *hc = h_connect(m->client_addr, 100);
		if (hc != NULL) {
			h_close(hc);
			return true;
		}
		if (h_now_ms() >= deadline) {
			kill_and_reap(m);
			m->last_status = -1;
			return false;
		}
	}
}

void h_member_start(struct h_cluster *c, int id)
{
	bool ok = h_member_try_start(c, id, NULL);
	char why[64];
	describe_status(c->m[id].last_status, why, sizeof(why));
	H_ASSERT_MSG(ok, "member %d did not start serving (%s)", id, why);
}

int h_cluster_start(struct h_cluster *c)
{
	for (int id = 1; id <= c->n; id++)
		h_member_start(c, id);
	int leader = h_find_leader(c, H_LEADER_TIMEOUT_MS);
	H_ASSERT_MSG(leader != 0, "no leader elected");
	h_note("cluster of %d in %s: leader %d", c->n, c->root, leader);
	return leader;
}

int h_member_wait_exit(struct h_cluster *c, int id, int timeout_ms)
{
	struct h_member *m = &c->m[id];
	if (m->pid == 0)
		return m->last_status;
	int st;
	if (reap(m->pid, timeout_ms, &st) != 0)
		return -1;
	m->pid = 0;
	m->paused = false;
	m->last_status = st;
	drop_cached(c, id);
	return st;
}

int h_member_stop(struct h_cluster *c, int id)
{
	struct h_member *m = &c->m[id];
	H_ASSERT_MSG(m->pid > 0, "member %d is not running", id);
	drop_cached(c, id);
	log_marker(m->log_path, "SIGTERM to member %d", id);
	kill(m->pid, SIGTERM);
	if (m->paused)
		kill(m->pid, SIGCONT);
	int st = h_member_wait_exit(c, id, H_STOP_TIMEOUT_MS);
	H_ASSERT_MSG(st != -1, "member %d did not exit within %d ms of SIGTERM", id,
		     H_STOP_TIMEOUT_MS);
	return st;
}

void h_member_stop_ok(struct h_cluster *c, int id)
{
	int st = h_member_stop(c, id);
	char why[64];
	describe_status(st, why, sizeof(why));
	H_ASSERT_MSG(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		     "member %d did not exit cleanly after SIGTERM: %s (see its log above)", id,
		     why);
}

void h_member_kill(struct h_cluster *c, int id)
{
	struct h_member *m = &c->m[id];
	H_ASSERT_MSG(m->pid > 0, "member %d is not running", id);
	log_marker(m->log_path, "SIGKILL to member %d", id);
	drop_cached(c, id);
	kill_and_reap(m);
	m->last_status = SIGKILL;
}

void h_member_pause(struct h_cluster *c, int id)
{
	struct h_member *m = &c->m[id];
	H_ASSERT(m->pid > 0 && !m->paused);
	kill(m->pid, SIGSTOP);
	m->paused = true;
	drop_cached(c, id);
}

void h_member_resume(struct h_cluster *c, int id)
{
	struct h_member *m = &c->m[id];
	H_ASSERT(m->pid > 0 && m->paused);
	kill(m->pid, SIGCONT);
	m->paused = false;
}

unsigned h_alive_mask(const struct h_cluster *c)
{
	unsigned mask = 0;
	for (int id = 1; id <= c->n; id++)
		if (c->m[id].pid > 0 && !c->m[id].paused)
			mask |= 1u << id;
	return mask;
}

void h_cluster_destroy(struct h_cluster *c)
{
	if (c == NULL)
		return;
	char failed[512] = "";
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		if (m->pid == 0)
			continue;
		drop_cached(c, id);
		log_marker(m->log_path, "SIGTERM to member %d (teardown)", id);
		if (m->paused)
			kill(m->pid, SIGCONT);
		kill(m->pid, SIGTERM);
		m->paused = false;
	}
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		if (m->pid == 0)
			continue;
		int st = h_member_wait_exit(c, id, H_STOP_TIMEOUT_MS);
		if (st == -1) {
			kill_and_reap(m);
		}
		if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			char why[64];
			describe_status(st, why, sizeof(why));
			size_t l = strlen(failed);
			snprintf(failed + l, sizeof(failed) - l, " member %d: %s;", id, why);
		}
	}
	H_ASSERT_MSG(failed[0] == '\0', "unclean exit after SIGTERM:%s", failed);
	int s = cluster_slot(c);
	for (int id = 0; s >= 0 && id <= H_MAX_MEMBERS; id++)
		if (g_cached[s][id]) {
			h_close(g_cached[s][id]);
			g_cached[s][id] = NULL;
		}
	if (c->proxy)
		proxy_stop(c->proxy);
	c->proxy = NULL;
	if (c->netns != NULL) {
		char err[512];
		int rv = netns_destroy(c->netns, err, sizeof(err));
		c->netns = NULL;
		H_ASSERT_MSG(rv == 0, "network namespaces not removed: %s", err);
	}
	if (!keep_data())
		rm_tree(c->root);
	registry_remove(c);
	free(c);
}

/* ---- cluster-level helpers ------------------------------------------------------------------ */

Cairn__Response *h_member_status(struct h_cluster *c, int id, int timeout_ms)
{
	struct h_conn *hc = cached_conn(c, id, timeout_ms);
	Cairn__Response *r = hc ? h_status(hc, timeout_ms) : NULL;
	if (r == NULL || r->op_case != CAIRN__RESPONSE__OP_STATUS) {
		h_free(r);
		drop_cached(c, id);
		return NULL;
	}
	return r;
}

int h_find_leader_among(struct h_cluster *c, unsigned mask, int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		unsigned alive = mask & h_alive_mask(c);
		int leader = 0, nleaders = 0, polled = 0;
		uint64_t term = 0;
		bool ok = alive != 0;
		uint64_t said_leader[H_MAX_MEMBERS + 1] = {0}, said_term[H_MAX_MEMBERS + 1] = {0};
		for (int id = 1; id <= c->n && ok; id++) {
			if (!(alive & (1u << id)))
				continue;
			Cairn__Response *r = h_member_status(c, id, 1000);
			if (r == NULL) {
				ok = false;
				break;
			}
			polled++;
			said_leader[id] = r->status->leader_id;
			said_term[id] = r->status->raft_term;
			if (r->status->role && strcmp(r->status->role, "leader") == 0) {
				nleaders++;
				leader = id;
				term = r->status->raft_term;
			}
			h_free(r);
		}
		if (ok && nleaders == 1) {
			for (int id = 1; id <= c->n; id++)
				if ((alive & (1u << id)) &&
				    (said_leader[id] != (uint64_t)leader || said_term[id] != term))
					ok = false;
			if (ok && polled > 0)
				return leader;
		}
		if (h_now_ms() >= deadline)
			return 0;
		h_pause_ms(20);
	}
}

int h_find_leader(struct h_cluster *c, int timeout_ms)
{
	return h_find_leader_among(c, H_ALL, timeout_ms);
}

static int next_in_mask(struct h_cluster *c, unsigned mask, int after)
{
	for (int i = 1; i <= c->n; i++) {
		int id = (after + i - 1) % c->n + 1;
		if (mask & (1u << id))
			return id;
	}
	return 0;
}

int64_t h_put_anywhere(struct h_cluster *c, unsigned mask, const char *key, const char *val,
		       int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	int target = next_in_mask(c, mask & h_alive_mask(c), 0);
	while (h_now_ms() < deadline) {
		unsigned alive = mask & h_alive_mask(c);
		if (target == 0 || !(alive & (1u << target)))
			target = next_in_mask(c, alive, target);
		if (target == 0) {
			h_pause_ms(20);
			continue;
		}
		int left = remaining_ms(deadline);
		struct h_conn *hc = cached_conn(c, target, left < 1000 ? left : 1000);
		Cairn__Response *r =
		    hc ? h_put(hc, key, val, left < 3000 ? (left ? left : 1) : 3000) : NULL;
		if (r == NULL) {
			drop_cached(c, target);
			target = next_in_mask(c, alive, target);
			continue;
		}
		int code = h_errcode(r);
		if (code == 0) {
			int64_t rev = r->header ? r->header->revision : 0;
			h_free(r);
			H_ASSERT_MSG(rev > 0, "put %s acknowledged without a revision", key);
			return rev;
		}
		if (code == CAIRN__ERROR_CODE__NOT_LEADER) {
			int l = (int)r->error->leader_id;
			target = l >= 1 && l <= c->n && (alive & (1u << l))
				     ? l
				     : next_in_mask(c, alive, target);
		} else if (code == CAIRN__ERROR_CODE__NO_LEADER ||
			   code == CAIRN__ERROR_CODE__LEADERSHIP_LOST ||
			   code == CAIRN__ERROR_CODE__TIMEOUT ||
			   code == CAIRN__ERROR_CODE__SHUTTING_DOWN) {
			target = next_in_mask(c, alive, target);
			h_pause_ms(20);
		} else {
			H_ASSERT_MSG(0, "put %s on member %d: unexpected %s (%s)", key, target,
				     h_errname(code), h_errmsg(r));
		}
		h_free(r);
	}
	return 0;
}

void h_assert_not_stale(struct h_conn *hc, int id, const char *key, const char *stale,
			const char *fresh, int timeout_ms)
{
	Cairn__Response *r = h_get(hc, key, false, timeout_ms);
	if (r == NULL) {
		h_note("linearizable read on %d: no answer", id);
		return;
	}
	int code = h_errcode(r);
	if (code != 0) {
		h_note("linearizable read on %d: %s (%s)", id, h_errname(code), h_errmsg(r));
		H_ASSERT_MSG(code == CAIRN__ERROR_CODE__NO_LEADER ||
				 code == CAIRN__ERROR_CODE__NOT_LEADER ||
				 code == CAIRN__ERROR_CODE__LEADERSHIP_LOST ||
				 code == CAIRN__ERROR_CODE__TIMEOUT,
			     "linearizable read on deposed leader %d failed with %s (%s)", id,
			     h_errname(code), h_errmsg(r));
		h_free(r);
		return;
	}
	const Cairn__KeyValue *kv = h_kv(r);
	H_ASSERT_MSG(!h_kv_is(kv, stale),
		     "linearizable read on deposed leader %d returned the stale value %s", id,
		     stale);
	H_ASSERT_MSG(h_kv_is(kv, fresh), "linearizable read on %d returned something else", id);
	h_free(r);
}

void h_assert_converged(struct h_cluster *c, unsigned mask, int timeout_ms)
{
	const uint64_t empty = 0xcbf29ce484222325ull; /* FNV-1a offset: the hash of nothing */
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	char last[512];
	for (;;) {
		bool same = true;
		int first = 0;
		uint64_t applied = 0, hash = 0;
		int64_t rev = 0;
		last[0] = '\0';
		for (int id = 1; id <= c->n; id++) {
			if (!(mask & (1u << id)))
				continue;
			struct h_conn *hc = h_connect_member(c, id, 1000);
			struct h_req rq;
			h_req_status(&rq);
			rq.status.kv_hash = true;
			Cairn__Response *r = hc ? h_call(hc, &rq.req, 2000) : NULL;
			h_close(hc);
			if (r == NULL || h_errcode(r) != 0 ||
			    r->op_case != CAIRN__RESPONSE__OP_STATUS) {
				h_free(r);
				same = false;
				size_t l = strlen(last);
				snprintf(last + l, sizeof(last) - l, " member %d: no status;", id);
				continue;
			}
			const Cairn__StatusResponse *st = r->status;
			size_t l = strlen(last);
			snprintf(last + l, sizeof(last) - l,
				 " member %d: applied %llu revision %lld hash %llx;", id,
				 (unsigned long long)st->applied_index, (long long)st->revision,
				 (unsigned long long)st->kv_hash);
			if (first == 0) {
				first = id;
				applied = st->applied_index;
				rev = st->revision;
				hash = st->kv_hash;
			} else if (st->applied_index != applied || st->revision != rev ||
				   st->kv_hash != hash) {
				same = false;
			}
			h_free(r);
		}
		if (same && first != 0 && hash != 0 && hash != empty)
			return;
		H_ASSERT_MSG(h_now_ms() < deadline, "members did not converge:%s", last);
		h_pause_ms(20);
	}
}

bool h_wait_value(struct h_cluster *c, int id, const char *key, const char *val, bool serializable,
		  int timeout_ms)
{
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		struct h_conn *hc = cached_conn(c, id, 1000);
		Cairn__Response *r = hc ? h_get(hc, key, serializable, 2000) : NULL;
		if (r == NULL)
			drop_cached(c, id);
		bool match = r != NULL && h_errcode(r) == 0 && h_kv_is(h_kv(r), val);
		h_free(r);
		if (match)
			return true;
		if (h_now_ms() >= deadline)
			return false;
		h_pause_ms(20);
	}
}

/* ---- suites -------------------------------------------------------------------------------- */

TCase *h_tcase(const char *name)
{
	TCase *tc = tcase_create(name);
	/* Every wait in a test is bounded by far less; this only catches a hung harness. */
	tcase_set_timeout(tc, 120);
	return tc;
}

void h_add_test(TCase *tc, const TTest *t)
{
	const char *only = getenv("CAIRN_IT_TEST");
	if (only != NULL && only[0] != '\0' && strstr(t->name, only) == NULL)
		return;
	tcase_add_test(tc, t);
}

int h_run_suite(Suite *s)
{
	SRunner *sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
