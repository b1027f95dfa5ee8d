/* harness.h — integration test harness: real cairnd processes, a raw protocol client, and link
 * faults between members through a fault-injecting TCP proxy or (as root) network namespaces
 * with nftables. See docs/testing.md. */
#ifndef CAIRN_TEST_HARNESS_H
#define CAIRN_TEST_HARNESS_H

#include <check.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h> /* strcmp in H_ASSERT_STR_EQ */
#include <sys/types.h>

#include "proto/cairn.pb-c.h"

/*
 * Conventions
 * -----------
 * - Every wait is bounded by a deadline given in milliseconds; nothing sleeps and hopes.
 *   Helpers that can time out return NULL / 0 / false and let the test assert.
 * - Member ids are 1..n, as on cairnd's command line; `mask` arguments are bit sets of ids
 *   (bit id set = member included), H_ALL = every member.
 * - Responses returned by the client helpers are owned by the caller: free with h_free().
 * - Assertions: use H_ASSERT* (not ck_assert*) in tests. On failure they print the tail of
 *   every member's log, kill every process the harness started and remove the temporary
 *   directories, then fail the test through Check (which, in fork mode, _exits the test
 *   process without running any fixture).
 */

#define H_MAX_MEMBERS 5
#define H_ALL	      0xffffffffu
/* Fast failover for tests: elections within a second even under ASan. */
#define H_HEARTBEAT_MS	      50
#define H_ELECTION_TIMEOUT_MS 500
/* Default deadlines. */
#define H_RPC_TIMEOUT_MS    5000  /* one request/response */
#define H_LEADER_TIMEOUT_MS 20000 /* a cluster elects a leader everyone agrees on */
#define H_START_TIMEOUT_MS  20000 /* a process starts serving (ASan startup is slow) */
#define H_STOP_TIMEOUT_MS   20000 /* a process exits after SIGTERM (ASan leak check) */

/* ---- failures ------------------------------------------------------------------------------ */

/* Dumps every member's log tail, kills every harness process, removes temporary directories.
 * Safe to call more than once. */
void h_on_failure(void);

#define H_ASSERT_MSG(cond, ...)                                                                    \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			h_on_failure();                                                            \
			ck_abort_msg(__VA_ARGS__);                                                 \
		}                                                                                  \
	} while (0)
#define H_ASSERT(cond) H_ASSERT_MSG(cond, "Assertion '%s' failed", #cond)
#define H_ASSERT_INT_EQ(a, b)                                                                      \
	do {                                                                                       \
		long long h_a_ = (long long)(a), h_b_ = (long long)(b);                            \
		H_ASSERT_MSG(h_a_ == h_b_, "Assertion '%s == %s' failed: %lld != %lld", #a, #b,    \
			     h_a_, h_b_);                                                          \
	} while (0)
#define H_ASSERT_STR_EQ(a, b)                                                                      \
	do {                                                                                       \
		const char *h_a_ = (a), *h_b_ = (b);                                               \
		H_ASSERT_MSG(h_a_ != NULL && h_b_ != NULL && strcmp(h_a_, h_b_) == 0,              \
			     "Assertion '%s == %s' failed: \"%s\" != \"%s\"", #a, #b,              \
			     h_a_ ? h_a_ : "(null)", h_b_ ? h_b_ : "(null)");                      \
	} while (0)
/* A response arrived and carries no error. */
#define H_ASSERT_OK(resp)                                                                          \
	do {                                                                                       \
		const Cairn__Response *h_r_ = (resp);                                              \
		H_ASSERT_MSG(h_r_ != NULL, "no response to '%s'", #resp);                          \
		H_ASSERT_MSG(h_errcode(h_r_) == 0, "'%s' failed: %s (%s)", #resp,                  \
			     h_errname(h_errcode(h_r_)), h_errmsg(h_r_));                          \
	} while (0)
/* A response arrived and carries error `code`. */
#define H_ASSERT_ERR(resp, code)                                                                   \
	do {                                                                                       \
		const Cairn__Response *h_r_ = (resp);                                              \
		H_ASSERT_MSG(h_r_ != NULL, "no response to '%s'", #resp);                          \
		H_ASSERT_MSG(h_errcode(h_r_) == (int)(code), "'%s': expected %s, got %s (%s)",     \
			     #resp, h_errname((int)(code)), h_errname(h_errcode(h_r_)),            \
			     h_errmsg(h_r_));                                                      \
	} while (0)

/* Prints a progress note to stderr when CAIRN_IT_VERBOSE is set (and non-zero). */
void h_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- time ------------------------------------------------------------------------------------ */

/* Monotonic milliseconds. */
uint64_t h_now_ms(void);
/* Sleeps a little between two polls of a condition (never used to wait for an outcome). */
void h_pause_ms(int ms);

/* ---- cluster processes ---------------------------------------------------------------------- */

struct h_member {
	int id;
	pid_t pid; /* 0: not running */
	bool paused;
	int client_port, peer_port;
	char host[24];	      /* the address it listens on: 127.0.0.1, or 10.a.b.<id> (netns) */
	char client_addr[32]; /* host:client_port */
	char data_dir[512];
	char log_path[512];
	int last_status; /* wait status of the last exit */
	bool exited_checked;
};

struct h_proxy;
struct h_netns;

/*
 * How members are connected, and whether links between them can be cut (h_link_set & co.):
 *   H_NET_LOOPBACK  members talk to each other directly on 127.0.0.1; no link faults.
 *   H_NET_PROXY     every ordered pair of members (from -> to) goes through its own port of a
 *                   fault-injecting TCP proxy in the harness process (below). No privileges.
 *   H_NET_NETNS     each member runs in its own network namespace, with its own address
 *                   10.a.b.<id> on a private /24 (a bridge in a hub namespace joins them; the
 *                   harness's namespace has 10.a.b.254, so clients reach members directly),
 *                   and link faults are nftables rules in the members' namespaces: the
 *                   kernel's TCP sees real resets, losses and retransmissions. Needs root (see
 *                   h_netns_check); delays need the netem qdisc (h_netns_delay_check).
 */
enum h_net { H_NET_LOOPBACK = 0, H_NET_PROXY = 1, H_NET_NETNS = 2 };
/* "loopback", "proxy", "netns". */
const char *h_net_name(enum h_net net);

struct h_cluster_opts {
	int n;		       /* members: 1..H_MAX_MEMBERS */
	enum h_net net;	       /* default H_NET_LOOPBACK */
	bool nosync;	       /* --unsafe-no-fsync (only where durability is not under test) */
	const char *extra[16]; /* more cairnd flags, NULL-terminated */
};

struct h_cluster {
	int n;
	struct h_member m[H_MAX_MEMBERS + 1]; /* by id; m[0] unused */
	char root[256];			      /* temporary directory holding everything */
	char token[64];			      /* --cluster-token, unique per cluster */
	struct h_cluster_opts opts;
	struct h_proxy *proxy; /* H_NET_PROXY with more than one member */
	struct h_netns *netns; /* H_NET_NETNS */
	bool registered;
};

/* Whether h_link_set & co. work on this cluster (a proxy, or network namespaces). */
bool h_cluster_has_links(const struct h_cluster *c);

/*
 * Whether H_NET_NETNS can run here: 0 yes; 1 not permitted (not root, or new network
 * namespaces refused with EPERM): skip; -1 permitted but unusable (ip or nft missing, nftables
 * refused...): a real failure. `why` says which. The first call in a process probes with a
 * scratch namespace, and removes namespaces and interfaces that harness processes which no
 * longer exist left behind.
 */
int h_netns_check(char *why, size_t len);
/* Whether H_LINK_DELAY works in H_NET_NETNS (the kernel has netem); why not otherwise. */
bool h_netns_delay_check(char *why, size_t len);
/* For tests that need H_NET_NETNS: when it is not permitted here, prints a loud
 * "SKIPPED (needs root / CAP_NET_ADMIN): <test>: <why>" line and returns true (the test
 * returns, passing without asserting anything); when it is permitted but broken, fails the
 * test; otherwise returns false. */
bool h_netns_skip(const char *test);

/* Path of the cairnd binary: $CAIRN_BUILD/cairnd (default build/cairnd). */
const char *h_cairnd_path(void);

/* Creates the directories and ports (and the proxy, or the namespaces) of a cluster; starts
 * nothing. */
struct h_cluster *h_cluster_new(const struct h_cluster_opts *o);
/* Starts every member and waits for a leader; returns the leader's id. */
int h_cluster_start(struct h_cluster *c);
/* SIGTERMs every running member, asserts each exits with status 0 (an ASan report or leak
 * makes it non-zero), stops the proxy or removes the namespaces, and removes the directories.
 * Namespaces are also removed by h_on_failure, at exit, and on SIGINT / SIGTERM / SIGHUP /
 * SIGQUIT / SIGABRT of the harness process. */
void h_cluster_destroy(struct h_cluster *c);

/* Spawns member `id` (in its namespace with H_NET_NETNS: the child joins it with setns(2)
 * before exec, so the pid is cairnd's own) and waits until it accepts client connections.
 * Asserts it started. */
void h_member_start(struct h_cluster *c, int id);
/* Like h_member_start with `extra` flags appended (NULL-terminated); does not assert: returns
 * false if the process exited before serving (its wait status in m->last_status). */
bool h_member_try_start(struct h_cluster *c, int id, const char *const *extra);
/* SIGTERM and wait; returns the wait status (asserts the process exits before the deadline). */
int h_member_stop(struct h_cluster *c, int id);
/* SIGTERM and assert a clean exit with status 0. */
void h_member_stop_ok(struct h_cluster *c, int id);
/* kill -9 and reap. */
void h_member_kill(struct h_cluster *c, int id);
/* SIGSTOP / SIGCONT. */
void h_member_pause(struct h_cluster *c, int id);
void h_member_resume(struct h_cluster *c, int id);
/* Waits until the process exits on its own; returns its wait status, or -1 at the deadline. */
int h_member_wait_exit(struct h_cluster *c, int id, int timeout_ms);
/* Members running and not paused, as a mask. */
unsigned h_alive_mask(const struct h_cluster *c);

/* Runs cairnd with `argv` (argv[0] is replaced by the binary), output to `log_path`, and waits
 * until it exits: returns the wait status, or -1 if it still runs at the deadline (then it is
 * killed). For start-up failures. */
int h_run_cairnd(const char *const *argv, const char *log_path, int timeout_ms);

/* Logs. */
bool h_log_contains(const char *log_path, const char *needle);
/* Lines of a log that contain `needle` (0 if it cannot be read). Member logs span every
 * process of that member: the harness appends. */
int h_log_count(const char *log_path, const char *needle);
/* Waits until member `id`'s log contains `needle`. */
bool h_wait_log(struct h_cluster *c, int id, const char *needle, int timeout_ms);
/* Prints the last `lines` lines of a log to stderr. */
void h_log_tail(const char *log_path, int lines, const char *title);

/* ---- raw client ------------------------------------------------------------------------------ */

struct h_conn;

enum h_why { H_OK = 0, H_TIMEOUT = 1, H_EOF = 2, H_ERROR = 3 };

/* Connects to "host:port" within the deadline; NULL if it cannot. */
struct h_conn *h_connect(const char *addr, int timeout_ms);
/* Connects to member `id`'s client port. */
struct h_conn *h_connect_member(struct h_cluster *c, int id, int timeout_ms);
void h_close(struct h_conn *hc);
/* Sends a request; sets req->id to a fresh id when it is 0. Returns 0 or -1. */
int h_send(struct h_conn *hc, Cairn__Request *req);
/* Sends raw bytes as they are (for malformed frames). Returns 0 or -1. */
int h_send_raw(struct h_conn *hc, const void *data, size_t len);
/* Next response (any id), or NULL with *why set (why may be NULL). */
Cairn__Response *h_recv(struct h_conn *hc, int timeout_ms, int *why);
/* The response with `id` (others that arrive meanwhile are kept for later). */
Cairn__Response *h_wait(struct h_conn *hc, uint64_t id, int timeout_ms, int *why);
/* h_send + h_wait. */
Cairn__Response *h_call(struct h_conn *hc, Cairn__Request *req, int timeout_ms);
/* True once the server has closed the connection (EOF or reset) before the deadline; responses
 * received meanwhile are discarded. */
bool h_wait_closed(struct h_conn *hc, int timeout_ms);
void h_free(Cairn__Response *r);

/* Error code of a response (0 = OK), its name and message. */
int h_errcode(const Cairn__Response *r);
const char *h_errname(int code);
const char *h_errmsg(const Cairn__Response *r);

/* Request builders: they fill a caller's Request whose pointers refer to `arena` storage that
 * lives as long as the struct h_req. */
struct h_req {
	Cairn__Request req;
	Cairn__PutRequest put;
	Cairn__RangeRequest range;
	Cairn__DeleteRangeRequest del;
	Cairn__StatusRequest status;
	Cairn__SessionRequest session;
};
void h_req_put(struct h_req *r, const void *key, size_t klen, const void *val, size_t vlen);
void h_req_get(struct h_req *r, const char *key, bool serializable);
void h_req_status(struct h_req *r);
void h_req_session(struct h_req *r);

/* A transaction under construction: up to H_TXN_MAX compares and ops per branch, string keys
 * and values borrowed from the caller. */
#define H_TXN_MAX 8
enum { H_SUCCESS = 0, H_FAILURE = 1 };
struct h_txn {
	Cairn__TxnRequest t;
	Cairn__Compare cmp[H_TXN_MAX];
	Cairn__Compare *cmpp[H_TXN_MAX];
	Cairn__RequestOp ops[2][H_TXN_MAX];
	Cairn__RequestOp *opp[2][H_TXN_MAX];
	Cairn__PutRequest put[2][H_TXN_MAX];
	Cairn__RangeRequest range[2][H_TXN_MAX];
	Cairn__DeleteRangeRequest del[2][H_TXN_MAX];
};
void h_txn_init(struct h_txn *t);
/* Compare `target` (VERSION, CREATE or MOD) of `key` with `v`. */
void h_txn_cmp_num(struct h_txn *t, const char *key, Cairn__Compare__Target target,
		   Cairn__Compare__Result result, int64_t v);
void h_txn_cmp_value(struct h_txn *t, const char *key, Cairn__Compare__Result result,
		     const char *v);
void h_txn_put(struct h_txn *t, int branch, const char *key, const char *val);
void h_txn_get(struct h_txn *t, int branch, const char *key);
void h_txn_del(struct h_txn *t, int branch, const char *key);

/* One-call helpers (string keys/values); NULL = no response before the deadline. */
Cairn__Response *h_put(struct h_conn *hc, const char *key, const char *val, int timeout_ms);
Cairn__Response *h_put_seq(struct h_conn *hc, const char *key, const char *val, uint64_t client_id,
			   uint64_t seq, int timeout_ms);
Cairn__Response *h_get(struct h_conn *hc, const char *key, bool serializable, int timeout_ms);
Cairn__Response *h_status(struct h_conn *hc, int timeout_ms);
Cairn__Response *h_session(struct h_conn *hc, int timeout_ms);
Cairn__Response *h_txn(struct h_conn *hc, Cairn__TxnRequest *txn, int timeout_ms);

/* The single key-value of a range response, or NULL (no such key / not a range reply). */
const Cairn__KeyValue *h_kv(const Cairn__Response *r);
/* Whether kv's value equals the string `val`. */
bool h_kv_is(const Cairn__KeyValue *kv, const char *val);

/* ---- cluster-level helpers ------------------------------------------------------------------- */

/* Polls Status on every member of `mask` that is alive until exactly one reports role leader
 * and every polled member reports that leader in the same term. Returns its id, 0 at the
 * deadline. */
int h_find_leader_among(struct h_cluster *c, unsigned mask, int timeout_ms);
int h_find_leader(struct h_cluster *c, int timeout_ms);
/* Status of member `id` (NULL if it does not answer). */
Cairn__Response *h_member_status(struct h_cluster *c, int id, int timeout_ms);

/* Writes key=val through whichever member of `mask` is the leader, following redirects and
 * retrying NO_LEADER / LEADERSHIP_LOST / lost connections until the deadline (so a retried
 * write may apply twice: use only where that does not matter). Returns the revision of the
 * acknowledged write, or 0 at the deadline. */
int64_t h_put_anywhere(struct h_cluster *c, unsigned mask, const char *key, const char *val,
		       int timeout_ms);
/* Waits until every member of `mask` reports the same applied index, revision and kv_hash
 * (Status with kv_hash), and that hash is not the empty store's; asserts it within
 * `timeout_ms`, naming what differed. */
void h_assert_converged(struct h_cluster *c, unsigned mask, int timeout_ms);
/* A linearizable read of `key` on deposed leader `id` (connection `hc`): within `timeout_ms`
 * it must return `fresh`, get no answer, or be refused with NO_LEADER, NOT_LEADER,
 * LEADERSHIP_LOST or TIMEOUT; never return `stale`, another value or another error. */
void h_assert_not_stale(struct h_conn *hc, int id, const char *key, const char *stale,
			const char *fresh, int timeout_ms);
/* Waits until a read of `key` on member `id` returns value `val` (NULL: the key is absent). */
bool h_wait_value(struct h_cluster *c, int id, const char *key, const char *val, bool serializable,
		  int timeout_ms);

/* ---- link faults: fault-injecting proxy or network namespaces ------------------------------- */

/*
 * H_NET_PROXY: every ordered pair (from -> to) of members has its own listening port in
 * this process, and member `from`'s --initial-cluster names that port as `to`'s peer address.
 * Cairn members send on their own outbound connection only, so link (from -> to) carries
 * exactly the messages `from` sends to `to`.
 *   H_LINK_PASS      forward bytes both ways
 *   H_LINK_DROP      close the link's connections; accept new ones and close them at once
 *   H_LINK_BLACKHOLE keep connections open (and accept new ones) but discard every byte
 * Leaving DROP or BLACKHOLE resets the link's connections (a blackhole may have cut a frame
 * in half), so the member reconnects with a clean stream. Changes are synchronous: when
 * h_link_set returns, the proxy thread applies the new mode.
 */
enum h_link_mode { H_LINK_PASS = 0, H_LINK_DROP = 1, H_LINK_BLACKHOLE = 2, H_LINK_DELAY = 3 };
/*
 * H_LINK_DELAY (set with h_link_set_delay or h_link_set_matrix) forwards every byte of the
 * link's `from -> to` direction (the one carrying `from`'s messages) about `delay_ms` after the
 * proxy read it, in order; at most H_LINK_DELAY_MAX_QUEUED bytes wait per connection (then the
 * proxy stops reading, and TCP flow control pushes back on the sender). Going from PASS to
 * DELAY or back keeps the connections: bytes already waiting are still delivered at their
 * time, then new bytes flow without delay. DELAY to DROP or BLACKHOLE resets the connections
 * (as leaving DROP or BLACKHOLE does), and so does DROP or BLACKHOLE to DELAY.
 */
#define H_LINK_DELAY_MAX_QUEUED (4u << 20)
#define H_LINK_DELAY_MAX_MS	60000
/*
 * H_NET_NETNS: link (from -> to) is the TCP connection `from` opens to `to`'s peer port (the
 * same one the proxy carries); nftables rules in `from`'s namespace match it by `to`'s address
 * and peer port, so client traffic is never cut and a one-way fault stays one-way. A change is
 * applied before the call returns (one atomic `nft -f` transaction per member namespace whose
 * rules change).
 *   H_LINK_DROP      `from`'s packets are rejected with a TCP reset to its own socket: connects
 *                    fail at once, an established connection resets on its next send
 *   H_LINK_BLACKHOLE `from`'s packets and `to`'s answers on that connection are dropped
 *                    silently; the kernel retransmits (with backoff) and reports nothing
 *   H_LINK_DELAY     a netem qdisc on `from`'s veth delays its packets to `to`'s peer port;
 *                    refused (the test fails) when the kernel has no netem (h_netns_delay_check)
 * Connections are not reset when a fault ends: TCP resumes them (after its retransmission
 * backoff), as after a real network fault. h_link_bytes counts IP bytes (headers and
 * retransmissions included) that passed on the link: an approximation of the proxy's count.
 */

void h_link_set(struct h_cluster *c, int from, int to, enum h_link_mode mode);
/* Every link to and from `id`. */
void h_isolate(struct h_cluster *c, int id, enum h_link_mode mode);
/* Every link back to PASS. */
void h_heal(struct h_cluster *c);
/* Bytes forwarded on link (from -> to) so far (H_NET_NETNS: IP bytes, see above). */
uint64_t h_link_bytes(struct h_cluster *c, int from, int to);
/* Link (from -> to) to H_LINK_DELAY with `delay_ms` (0..H_LINK_DELAY_MAX_MS). */
void h_link_set_delay(struct h_cluster *c, int from, int to, int delay_ms);
/* Every link at once (one synchronous change, no intermediate state): link (f -> t) gets
 * mode[f][t] and, when that is H_LINK_DELAY, delay_ms[f][t] (delay_ms may be NULL: 0).
 * Indexes are member ids 1..n; the diagonal and unused rows are ignored. */
void h_link_set_matrix(struct h_cluster *c, const int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		       const int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1]);

/* ---- suites -------------------------------------------------------------------------------- */

/* A TCase with a timeout fit for integration tests (real processes, ASan). */
TCase *h_tcase(const char *name);
/* tcase_add_test, unless CAIRN_IT_TEST is set and is not a substring of the test's name. */
void h_add_test(TCase *tc, const TTest *t);
/* Runs the suite (CK_FORK as set in the environment) and returns main's exit status. */
int h_run_suite(Suite *s);

#endif /* CAIRN_TEST_HARNESS_H */
