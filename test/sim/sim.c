/* sim.c — the deterministic cluster simulator: events, nodes, disks, network, clients, checks. */
#include "test/sim/sim.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "test/sim/checker.h"

#define SIM_TRACE_RING		   64	  /* trace events kept for failure reports */
#define SIM_MAX_BATCH		   64	  /* entries per sim_propose() call */
#define SIM_PAYLOAD_MAX		   48	  /* "n<node>-c<counter>" */
#define SIM_SAME_TIME_LIMIT	   100000 /* events at one virtual ms before we call it a livelock */
#define SIM_FULL_VERIFY_EVERY	   512 /* steps between full log comparisons of mirrors and cores */
#define SIM_NO_TIMER		   UINT64_MAX
#define SIM_HARD_STATE_CRASH_BOOST 10 /* chaos crashes: weight of term/vote writes */
#define SIM_RETRY_MS		   10 /* liveness check: pause between client retries */
#define SIM_HEALTHY_LATENCY_MS	   5  /* liveness check: one-way latency of a healed network */
#define SIM_INSTALL_CRASH_BOOST	   10 /* chaos crashes: weight of snapshot installs */

/* ---- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

void sim_rng_seed(struct sim_rng *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t sim_rng_next(struct sim_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t sim_rng_range(struct sim_rng *r, uint64_t lo, uint64_t hi)
{
	if (hi <= lo)
		return lo;
	uint64_t span = hi - lo + 1;
	if (span == 0) /* the whole 64-bit range */
		return sim_rng_next(r);
	return lo + sim_rng_next(r) % span; /* the modulo bias is irrelevant for a test */
}

bool sim_rng_chance(struct sim_rng *r, double p)
{
	if (p <= 0)
		return false;
	/* 53 random bits as a double in [0, 1): exact, hence identical on every platform. */
	return (double)(sim_rng_next(r) >> 11) * 0x1.0p-53 < p;
}

/* ---- data structures */

enum {
	EV_DELIVER = 1,
	EV_DISK = 2,
	EV_CRASH = 3,
	EV_RESTART = 4,
	EV_COMPACT = 5,	    /* a host's log compaction completes */
	EV_SNAP_SENT = 6,   /* the sender's end of a snapshot transfer */
	EV_SNAP_ARRIVE = 7, /* the receiver has the whole snapshot */
};

struct sim_msg {
	struct raft_message m; /* deep copy (raft_message_copy) */
};

/* A snapshot in transit: the sender's state machine at its applied index. Shared by the
 * transfer's two events (refs). */
struct sim_snap {
	int refs;
	raft_id from, to;
	uint32_t from_gen, to_gen; /* incarnations at the start: a crash breaks the stream */
	raft_term term;		   /* tag: the sender's term */
	raft_index index;
	raft_term index_term;
	struct checker_entry *hist; /* the state machine: `index` applied entries */
	bool report;		    /* the sender's host reports the end to its core */
	bool lost;
};

struct sim_event {
	uint64_t time;
	uint64_t seq; /* tie-break: order of scheduling */
	struct sim_msg *msg;
	struct sim_snap *snap; /* EV_SNAP_* */
	raft_index index;      /* EV_COMPACT */
	uint32_t gen; /* EV_DISK, EV_CRASH, EV_RESTART, EV_COMPACT: the node's incarnation then */
	uint8_t kind;
	uint8_t node; /* EV_DISK, EV_CRASH, EV_RESTART, EV_COMPACT */
};

/* An entry on a simulated disk (owns its data). */
struct sim_entry {
	raft_term term;
	uint8_t type;
	void *data;
	size_t len;
	uint64_t hash;
};

/* A persist request handed out by an update, waiting for the disk. */
struct sim_persist {
	struct sim_persist *next;
	bool hard_state;
	raft_term term;
	raft_id vote;
	raft_index truncate_from;
	raft_index first_index;
	struct sim_entry *entries;
	size_t n_entries;
	struct raft_message *after; /* messages_after_persist, deep copies */
	size_t n_after;
	/* A snapshot install (alone in its batch): replaces the log and the state machine. */
	bool install;
	raft_index snap_index;
	raft_term snap_term;
	struct checker_entry *snap_hist;
};

struct sim_node {
	raft_id id;
	struct raft *r; /* NULL when down */
	uint32_t incarnation;
	struct sim_rng rng; /* the core's `rand` */
	/* disk: changes only when a persist batch, a compaction or an install completes */
	raft_term disk_term;
	raft_id disk_vote;
	raft_index disk_first;	  /* index of disk[0]; entries below are in the state machine */
	raft_term disk_prev_term; /* term of the entry at disk_first - 1 */
	struct sim_entry *disk;
	size_t disk_n, disk_cap;
	uint32_t disk_min_ms, disk_max_ms;
	struct sim_persist *pq_head, *pq_tail;
	size_t pq_len;
	size_t batch; /* requests at the head of the queue being written; 0: disk idle */
	uint64_t batch_done_at;
	bool crash_pending; /* crash at the end of the current step (chaos crashes) */
	/* the core's in-memory log as updates described it (verified against the core) */
	struct checker_entry *mem; /* mem[i] is the entry at index mem_first + i */
	size_t mem_n, mem_cap;
	raft_index mem_first;
	raft_term mem_prev_term;
	raft_index mem_unchanged; /* entries <= this unchanged since the last check */
	/* state machine: durable, survives crashes (applied in one transaction with the index).
	 * It is also the snapshot: a host compacts its log only up to its applied index. */
	struct checker_entry *sm;
	size_t sm_n, sm_cap;
	uint32_t sm_generation; /* bumped when an installed snapshot replaces it */
	bool compact_pending;	/* an EV_COMPACT is scheduled */
	uint64_t compact_threshold;
	/* timer */
	uint64_t timer_at; /* SIM_NO_TIMER: none */
	uint64_t timer_seq;
	uint64_t ticks_at_now; /* ticks at the current virtual ms: livelock guard */
	/* soft state after the last update */
	int role;
	raft_term term;
	raft_id leader;
	raft_index commit;
};

enum {
	TR_DELIVER = 1,
	TR_DROP,
	TR_DUP,
	TR_HOLD,
	TR_TICK,
	TR_DISK,
	TR_ROLE,
	TR_APPLY,
	TR_PROPOSE,
	TR_READ,
	TR_READ_DONE,
	TR_CRASH,
	TR_RESTART,
	TR_TRANSFER,
	TR_NOTE,
	TR_COMPACT,
	TR_SNAP_SEND,
	TR_SNAP_SENT,
	TR_SNAP_ARRIVE,
	TR_INSTALL,
};

#define SIM_NOTE_MAX 112

struct sim_trace_rec {
	uint64_t step, time;
	uint8_t kind;
	raft_id node;
	struct raft_message m; /* DELIVER, DROP, DUP, HOLD (entries not kept) */
	raft_index e_first, e_last;
	raft_term e_first_term;
	uint64_t a, b, c;
	int code;
	char note[SIM_NOTE_MAX]; /* DROP: reason; NOTE: text */
};

struct sim {
	struct sim_options opts;
	struct sim_rng rng; /* network, disks */
	uint64_t now;
	uint64_t seq;
	uint64_t step_at_now;
	uint64_t steps_at_now;
	struct sim_event *heap;
	size_t heap_n, heap_cap;
	unsigned n;
	struct sim_node nodes[SIM_MAX_NODES];
	struct raft_server servers[SIM_MAX_NODES];
	bool cut[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1];
	uint64_t link_last[SIM_MAX_NODES + 1][SIM_MAX_NODES + 1]; /* FIFO: latest arrival */
	sim_filter_fn filter;
	void *filter_ctx;
	struct sim_msg **held;
	size_t held_n, held_cap;
	struct checker *ck;
	struct checker_node cknodes[SIM_MAX_NODES];
	struct sim_proposal *props;
	size_t props_n, props_cap;
	uint64_t *pending; /* ids of proposals still pending */
	size_t pending_n, pending_cap;
	struct sim_read *reads;
	size_t reads_n, reads_cap;
	uint64_t *waiting; /* ids of reads waiting for their node's applied index */
	size_t waiting_n, waiting_cap;
	uint64_t payload_counter;
	struct sim_stats stats;
	struct raft_stats closed; /* counters of closed core instances */
	bool failed;
	char fail_inv[64];
	char fail_msg[640];
	uint64_t fail_step, fail_time;
	struct sim_trace_rec trace[SIM_TRACE_RING];
	uint64_t trace_n;
};

static int node_process_update(struct sim *s, struct sim_node *nd);
static int sim_check(struct sim *s);

/* ---- helpers */

/* Makes room for `need` elements of `elem` bytes in the array whose pointer is at `pp`. The
 * pointer is read and written with memcpy: it is a `T *`, not a `void *`. */
static int grow(void *pp, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return 0;
	size_t c = *cap ? *cap : 16;
	while (c < need)
		c *= 2;
	void *p;
	memcpy(&p, pp, sizeof(p));
	void *q = realloc(p, c * elem);
	if (q == NULL)
		return SIM_ENOMEM;
	memcpy(pp, &q, sizeof(q));
	*cap = c;
	return 0;
}

#define GROW(arr, cap, need) grow(&(arr), &(cap), (need), sizeof(*(arr)))

static struct sim_node *node_get(struct sim *s, raft_id id)
{
	if (id < 1 || id > s->n)
		return NULL;
	return &s->nodes[id - 1];
}

static const struct sim_node *node_cget(const struct sim *s, raft_id id)
{
	if (id < 1 || id > s->n)
		return NULL;
	return &s->nodes[id - 1];
}

uint64_t sim_payload_hash(const void *data, size_t len, uint8_t type)
{
	return checker_entry_hash(type, data, len);
}

static uint64_t entry_hash(const struct raft_entry *e)
{
	return checker_entry_hash(e->type, e->data, e->len);
}

/* ---- a node's disk log and log mirror start at a first index (compaction) */

static raft_index disk_last(const struct sim_node *nd)
{
	return nd->disk_first - 1 + nd->disk_n;
}

static const struct sim_entry *disk_get(const struct sim_node *nd, raft_index i)
{
	if (i < nd->disk_first || i > disk_last(nd))
		return NULL;
	return &nd->disk[i - nd->disk_first];
}

/* Term of entry i as this node durably knows it: its disk log, or below it the state machine
 * (compacted entries are applied ones). 0 when unknown. */
static raft_term disk_term_at(const struct sim_node *nd, raft_index i)
{
	const struct sim_entry *e = disk_get(nd, i);
	if (e != NULL)
		return e->term;
	if (i == 0 || i > disk_last(nd))
		return 0;
	if (i + 1 == nd->disk_first)
		return nd->disk_prev_term;
	return i <= nd->sm_n ? nd->sm[i - 1].term : 0;
}

static raft_index mem_last(const struct sim_node *nd)
{
	return nd->mem_first - 1 + nd->mem_n;
}

static const struct checker_entry *mem_get(const struct sim_node *nd, raft_index i)
{
	if (i < nd->mem_first || i > mem_last(nd))
		return NULL;
	return &nd->mem[i - nd->mem_first];
}

static raft_term mem_last_term(const struct sim_node *nd)
{
	return nd->mem_n ? nd->mem[nd->mem_n - 1].term : nd->mem_prev_term;
}

void sim_fail(struct sim *s, const char *invariant, const char *fmt, ...)
{
	if (s->failed)
		return; /* keep the first violation: later ones are usually its consequences */
	s->failed = true;
	s->fail_step = s->stats.steps;
	s->fail_time = s->now;
	snprintf(s->fail_inv, sizeof(s->fail_inv), "%s", invariant);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->fail_msg, sizeof(s->fail_msg), fmt, ap);
	va_end(ap);
}

static int fail_nomem(struct sim *s)
{
	sim_fail(s, "Out of memory", "allocation failed");
	return SIM_EFAILED;
}

/* ---- trace */

static const char *msg_name(int type)
{
	static const char *const names[] = {
	    [RAFT_MSG_APPEND] = "AppendEntries",
	    [RAFT_MSG_APPEND_RESP] = "AppendEntriesResp",
	    [RAFT_MSG_VOTE] = "RequestVote",
	    [RAFT_MSG_VOTE_RESP] = "RequestVoteResp",
	    [RAFT_MSG_PREVOTE] = "PreVote",
	    [RAFT_MSG_PREVOTE_RESP] = "PreVoteResp",
	    [RAFT_MSG_HEARTBEAT] = "Heartbeat",
	    [RAFT_MSG_HEARTBEAT_RESP] = "HeartbeatResp",
	    [RAFT_MSG_TIMEOUT_NOW] = "TimeoutNow",
	    [RAFT_MSG_READ_INDEX] = "ReadIndex",
	    [RAFT_MSG_READ_INDEX_RESP] = "ReadIndexResp",
	    [SIM_MSG_SNAPSHOT] = "Snapshot",
	};
	if (type < 0 || (size_t)type >= sizeof(names) / sizeof(names[0]) || names[type] == NULL)
		return "Unknown";
	return names[type];
}

static const char *role_name(int role)
{
	switch (role) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_PRE_CANDIDATE:
		return "pre-candidate";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	default:
		return "down";
	}
}

static const char *err_name(int err)
{
	switch (err) {
	case SIM_EDOWN:
		return "node down";
	case SIM_EFAILED:
		return "failed";
	default:
		return raft_strerror(err);
	}
}

static struct sim_trace_rec *tr_new(struct sim *s, uint8_t kind, raft_id node)
{
	struct sim_trace_rec *t = &s->trace[s->trace_n++ % SIM_TRACE_RING];
	t->step = s->stats.steps;
	t->time = s->now;
	t->kind = kind;
	t->node = node;
	t->note[0] = '\0';
	t->code = 0;
	t->a = t->b = t->c = 0;
	return t;
}

static void tr_msg(struct sim_trace_rec *t, const struct raft_message *m)
{
	t->m = *m;
	t->m.entries = NULL;
	t->e_first = t->e_last = 0;
	t->e_first_term = 0;
	if (m->n_entries > 0) {
		t->e_first = m->entries[0].index;
		t->e_first_term = m->entries[0].term;
		t->e_last = m->entries[m->n_entries - 1].index;
	}
}

static void format_msg(const struct sim_trace_rec *t, char *buf, size_t n)
{
	const struct raft_message *m = &t->m;
	int k = snprintf(buf, n, "%llu->%llu %s term=%llu", (unsigned long long)m->from,
			 (unsigned long long)m->to, msg_name(m->type), (unsigned long long)m->term);
	if (k < 0 || (size_t)k >= n)
		return;
	buf += k;
	n -= (size_t)k;
	switch (m->type) {
	case RAFT_MSG_APPEND:
		if (m->n_entries > 0)
			snprintf(buf, n,
				 " prev=%llu/%llu entries=%llu..%llu(t%llu) commit=%llu seq=%llu",
				 (unsigned long long)m->prev_index,
				 (unsigned long long)m->prev_term, (unsigned long long)t->e_first,
				 (unsigned long long)t->e_last, (unsigned long long)t->e_first_term,
				 (unsigned long long)m->commit, (unsigned long long)m->read_seq);
		else
			snprintf(buf, n, " prev=%llu/%llu entries=none commit=%llu seq=%llu",
				 (unsigned long long)m->prev_index,
				 (unsigned long long)m->prev_term, (unsigned long long)m->commit,
				 (unsigned long long)m->read_seq);
		break;
	case RAFT_MSG_APPEND_RESP:
		snprintf(buf, n, " %s index=%llu hint=%llu/%llu seq=%llu",
			 m->reject ? "REJECT" : "ok", (unsigned long long)m->index,
			 (unsigned long long)m->hint_index, (unsigned long long)m->hint_term,
			 (unsigned long long)m->read_seq);
		break;
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		snprintf(buf, n, " last=%llu/%llu%s", (unsigned long long)m->last_log_index,
			 (unsigned long long)m->last_log_term, m->transfer ? " transfer" : "");
		break;
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		snprintf(buf, n, " %s", m->reject ? "REJECT" : "granted");
		break;
	case RAFT_MSG_HEARTBEAT:
		snprintf(buf, n, " commit=%llu seq=%llu", (unsigned long long)m->commit,
			 (unsigned long long)m->read_seq);
		break;
	case RAFT_MSG_HEARTBEAT_RESP:
		snprintf(buf, n, " seq=%llu", (unsigned long long)m->read_seq);
		break;
	case RAFT_MSG_READ_INDEX:
		snprintf(buf, n, " ctx=%llu", (unsigned long long)m->read_ctx);
		break;
	case RAFT_MSG_READ_INDEX_RESP:
		snprintf(buf, n, " ctx=%llu index=%llu%s", (unsigned long long)m->read_ctx,
			 (unsigned long long)m->index, m->reject ? " REJECT" : "");
		break;
	case SIM_MSG_SNAPSHOT:
		snprintf(buf, n, " at %llu/t%llu", (unsigned long long)m->prev_index,
			 (unsigned long long)m->prev_term);
		break;
	default:
		break;
	}
}

static void tr_format(const struct sim_trace_rec *t, char *buf, size_t n)
{
	char m[256];
	unsigned long long node = t->node, a = t->a, b = t->b, c = t->c;
	switch (t->kind) {
	case TR_DELIVER:
		format_msg(t, m, sizeof(m));
		snprintf(buf, n, "deliver %s", m);
		break;
	case TR_DROP:
		format_msg(t, m, sizeof(m));
		snprintf(buf, n, "drop (%s) %s", t->note, m);
		break;
	case TR_DUP:
		format_msg(t, m, sizeof(m));
		snprintf(buf, n, "duplicate %s", m);
		break;
	case TR_HOLD:
		format_msg(t, m, sizeof(m));
		snprintf(buf, n, "hold %s", m);
		break;
	case TR_TICK:
		snprintf(buf, n, "tick node %llu", node);
		break;
	case TR_DISK:
		snprintf(buf, n, "disk node %llu: %llu request(s) durable, last=%llu/t%llu", node,
			 a, b, c);
		break;
	case TR_ROLE:
		snprintf(buf, n, "node %llu is %s term=%llu leader=%llu", node, role_name(t->code),
			 a, b);
		break;
	case TR_APPLY:
		snprintf(buf, n, "node %llu applied %llu..%llu", node, a, b);
		break;
	case TR_PROPOSE:
		if (t->code == 0)
			snprintf(buf, n,
				 "client: propose on node %llu -> index %llu..%llu term %llu", node,
				 a, a + c - 1, b);
		else
			snprintf(buf, n, "client: propose on node %llu -> %s", node,
				 err_name(t->code));
		break;
	case TR_READ:
		if (t->code == 0)
			snprintf(buf, n, "client: read #%llu on node %llu (committed >= %llu)", a,
				 node, b);
		else
			snprintf(buf, n, "client: read on node %llu -> %s", node,
				 err_name(t->code));
		break;
	case TR_READ_DONE:
		if (t->code == 0)
			snprintf(buf, n, "node %llu: read #%llu index=%llu (applied %llu)", node, a,
				 b, c);
		else
			snprintf(buf, n, "node %llu: read #%llu failed: %s", node, a,
				 err_name(t->code));
		break;
	case TR_CRASH:
		snprintf(buf, n, "CRASH%s node %llu (lost %llu unpersisted request(s))",
			 t->code ? " (chaos)" : "", node, a);
		break;
	case TR_RESTART:
		snprintf(buf, n, "RESTART node %llu (disk term=%llu last=%llu applied=%llu)", node,
			 a, b, c);
		break;
	case TR_TRANSFER:
		snprintf(buf, n, "client: transfer leadership %llu -> %llu: %s", node, a,
			 t->code ? err_name(t->code) : "started");
		break;
	case TR_COMPACT:
		snprintf(buf, n, "node %llu compacted its log up to %llu", node, a);
		break;
	case TR_SNAP_SEND:
		snprintf(buf, n,
			 "node %llu streams its state machine at %llu/t%llu to node %llu%s%s", node,
			 b, c, a, t->note[0] ? ": lost: " : "", t->note);
		break;
	case TR_SNAP_SENT:
		snprintf(buf, n, "node %llu: snapshot to node %llu %s", node, a, t->note);
		break;
	case TR_SNAP_ARRIVE:
		snprintf(buf, n, "node %llu: snapshot at %llu/t%llu from node %llu %s", node, b, c,
			 a, t->note);
		break;
	case TR_INSTALL:
		snprintf(buf, n, "node %llu: install of the snapshot at %llu/t%llu %s", node, a, b,
			 t->note);
		break;
	case TR_NOTE:
	default:
		snprintf(buf, n, "%s", t->note);
		break;
	}
}

static void tr_print(const struct sim_trace_rec *t, FILE *f)
{
	char buf[512];
	tr_format(t, buf, sizeof(buf));
	fprintf(f, "  [#%-7llu t=%7llu] %s\n", (unsigned long long)t->step,
		(unsigned long long)t->time, buf);
}

static void tr_done(struct sim *s, const struct sim_trace_rec *t)
{
	if (s->opts.trace != NULL)
		tr_print(t, s->opts.trace);
}

void sim_note(struct sim *s, const char *fmt, ...)
{
	struct sim_trace_rec *t = tr_new(s, TR_NOTE, 0);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(t->note, sizeof(t->note), fmt, ap);
	va_end(ap);
	tr_done(s, t);
}

static void tr_message(struct sim *s, uint8_t kind, const struct raft_message *m, const char *why)
{
	struct sim_trace_rec *t = tr_new(s, kind, m->to);
	tr_msg(t, m);
	if (why != NULL)
		snprintf(t->note, sizeof(t->note), "%s", why);
	tr_done(s, t);
}

void sim_print_trace(const struct sim *s, FILE *f, size_t n)
{
	if (n > SIM_TRACE_RING)
		n = SIM_TRACE_RING;
	if (n > s->trace_n)
		n = s->trace_n;
	for (uint64_t i = s->trace_n - n; i < s->trace_n; i++)
		tr_print(&s->trace[i % SIM_TRACE_RING], f);
}

void sim_print_nodes(const struct sim *s, FILE *f)
{
	for (unsigned i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];
		if (nd->r == NULL) {
			fprintf(f,
				"  node %llu: down; disk term=%llu vote=%llu first=%llu last=%llu; "
				"applied=%zu\n",
				(unsigned long long)nd->id, (unsigned long long)nd->disk_term,
				(unsigned long long)nd->disk_vote,
				(unsigned long long)nd->disk_first,
				(unsigned long long)disk_last(nd), nd->sm_n);
			continue;
		}
		fprintf(f,
			"  node %llu: %s term=%llu leader=%llu commit=%llu first=%llu "
			"last=%llu/t%llu persisted=%llu applied=%zu%s; disk term=%llu vote=%llu "
			"first=%llu last=%llu, %zu request(s) pending\n",
			(unsigned long long)nd->id, role_name(nd->role),
			(unsigned long long)nd->term, (unsigned long long)nd->leader,
			(unsigned long long)nd->commit, (unsigned long long)nd->mem_first,
			(unsigned long long)mem_last(nd), (unsigned long long)mem_last_term(nd),
			(unsigned long long)raft_persisted_index(nd->r), nd->sm_n,
			raft_installing(nd->r) ? " INSTALLING" : "",
			(unsigned long long)nd->disk_term, (unsigned long long)nd->disk_vote,
			(unsigned long long)nd->disk_first, (unsigned long long)disk_last(nd),
			nd->pq_len);
	}
}

void sim_print_failure(const struct sim *s, FILE *f, size_t n)
{
	if (!s->failed)
		return;
	fprintf(f, "seed=%llu step=%llu t=%llums: %s: %s\n", (unsigned long long)s->opts.seed,
		(unsigned long long)s->fail_step, (unsigned long long)s->fail_time, s->fail_inv,
		s->fail_msg);
	fprintf(f, "nodes:\n");
	sim_print_nodes(s, f);
	fprintf(f, "last %zu events:\n", n < s->trace_n ? n : (size_t)s->trace_n);
	sim_print_trace(s, f, n);
}

/* ---- event queue: a binary heap ordered by (time, seq) */

static bool ev_before(const struct sim_event *a, const struct sim_event *b)
{
	return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static int ev_push(struct sim *s, struct sim_event ev)
{
	if (GROW(s->heap, s->heap_cap, s->heap_n + 1) != 0)
		return fail_nomem(s);
	ev.seq = s->seq++;
	size_t i = s->heap_n++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!ev_before(&ev, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
		i = parent;
	}
	s->heap[i] = ev;
	return 0;
}

static struct sim_event ev_pop(struct sim *s)
{
	struct sim_event top = s->heap[0];
	struct sim_event last = s->heap[--s->heap_n];
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct sim_event *best = &last;
		if (l < s->heap_n && ev_before(&s->heap[l], best)) {
			m = l;
			best = &s->heap[l];
		}
		if (r < s->heap_n && ev_before(&s->heap[r], best))
			m = r;
		if (m == i)
			break;
		s->heap[i] = s->heap[m];
		i = m;
	}
	if (s->heap_n > 0)
		s->heap[i] = last;
	return top;
}

/* ---- network */

bool sim_link_ok(const struct sim *s, raft_id from, raft_id to)
{
	if (from < 1 || from > s->n || to < 1 || to > s->n)
		return false;
	return !s->cut[from][to];
}

static void msg_free(struct sim_msg *sm)
{
	if (sm == NULL)
		return;
	raft_message_free(&sm->m);
	free(sm);
}

static int msg_copy(struct sim *s, const struct raft_message *m, struct sim_msg **out)
{
	struct sim_msg *sm = calloc(1, sizeof(*sm));
	if (sm == NULL)
		return fail_nomem(s);
	if (raft_message_copy(&sm->m, m) != 0) {
		free(sm);
		return fail_nomem(s);
	}
	*out = sm;
	return 0;
}

/* When a message sent now arrives. Links are FIFO, like the TCP connections cairnd uses:
 * latency jitter never lets a message overtake an earlier one on the same link. A reordered
 * message (reorder_rate) or a duplicate copy takes an extra delay outside that order, so
 * later messages overtake it. */
static uint64_t net_arrival(struct sim *s, const struct raft_message *m, bool out_of_order)
{
	const struct sim_net_options *net = &s->opts.net;
	uint64_t at = s->now + sim_rng_range(&s->rng, net->latency_min_ms, net->latency_max_ms);
	if (out_of_order || sim_rng_chance(&s->rng, net->reorder_rate))
		return at +
		       sim_rng_range(&s->rng, 1, net->reorder_extra_ms ? net->reorder_extra_ms : 1);
	uint64_t *last = &s->link_last[m->from][m->to];
	if (at < *last)
		at = *last; /* same time: the sequence number keeps the order */
	*last = at;
	return at;
}

/* Puts a message on the wire: link cuts and random loss apply now, at send time, and again
 * (cuts only) at delivery. */
static int net_transmit(struct sim *s, const struct raft_message *m)
{
	if (s->cut[m->from][m->to]) {
		s->stats.partition_drops++;
		tr_message(s, TR_DROP, m, "link cut");
		return 0;
	}
	if (sim_rng_chance(&s->rng, s->opts.net.drop_rate)) {
		s->stats.drops++;
		tr_message(s, TR_DROP, m, "random loss");
		return 0;
	}
	int copies = 1;
	if (sim_rng_chance(&s->rng, s->opts.net.dup_rate)) {
		copies = 2;
		s->stats.dups++;
		tr_message(s, TR_DUP, m, NULL);
	}
	for (int i = 0; i < copies; i++) {
		struct sim_msg *sm;
		int rv = msg_copy(s, m, &sm);
		if (rv != 0)
			return rv;
		struct sim_event ev = {
		    .time = net_arrival(s, m, i > 0), .kind = EV_DELIVER, .msg = sm};
		if ((rv = ev_push(s, ev)) != 0) {
			msg_free(sm);
			return rv;
		}
	}
	return 0;
}

/* A core handed out `m` (from node `from`). */
static int net_send(struct sim *s, raft_id from, const struct raft_message *m)
{
	if (m->type > 0 && m->type < RAFT_MSG_TYPE_MAX)
		s->stats.msgs_sent[m->type]++;
	if (m->type == RAFT_MSG_APPEND && m->n_entries > s->stats.max_append_entries)
		s->stats.max_append_entries = m->n_entries;
	if (m->from != from || m->to < 1 || m->to > s->n || m->to == from) {
		sim_fail(s, "Contract", "node %llu sent a %s from %llu to %llu",
			 (unsigned long long)from, msg_name(m->type), (unsigned long long)m->from,
			 (unsigned long long)m->to);
		return SIM_EFAILED;
	}
	if (m->n_entries > 0 && m->type != RAFT_MSG_APPEND) {
		sim_fail(s, "Contract", "node %llu sent a %s carrying entries",
			 (unsigned long long)from, msg_name(m->type));
		return SIM_EFAILED;
	}
	if (s->filter != NULL) {
		int fate = s->filter(s->filter_ctx, s, m);
		if (fate == SIM_DROP) {
			s->stats.filter_drops++;
			tr_message(s, TR_DROP, m, "filter");
			return 0;
		}
		if (fate == SIM_HOLD) {
			struct sim_msg *sm;
			int rv = msg_copy(s, m, &sm);
			if (rv != 0)
				return rv;
			if (GROW(s->held, s->held_cap, s->held_n + 1) != 0) {
				msg_free(sm);
				return fail_nomem(s);
			}
			s->held[s->held_n++] = sm;
			tr_message(s, TR_HOLD, m, NULL);
			return 0;
		}
	}
	return net_transmit(s, m);
}

void sim_set_filter(struct sim *s, sim_filter_fn fn, void *ctx)
{
	s->filter = fn;
	s->filter_ctx = ctx;
}

size_t sim_held_count(const struct sim *s)
{
	return s->held_n;
}

void sim_release_held(struct sim *s)
{
	sim_note(s, "releasing %zu held message(s)", s->held_n);
	for (size_t i = 0; i < s->held_n; i++) {
		if (!s->failed)
			net_transmit(s, &s->held[i]->m);
		msg_free(s->held[i]);
	}
	s->held_n = 0;
}

void sim_drop_held(struct sim *s)
{
	sim_note(s, "dropping %zu held message(s)", s->held_n);
	for (size_t i = 0; i < s->held_n; i++)
		msg_free(s->held[i]);
	s->stats.filter_drops += s->held_n;
	s->held_n = 0;
}

void sim_cut(struct sim *s, raft_id from, raft_id to)
{
	if (from < 1 || from > s->n || to < 1 || to > s->n || from == to)
		return;
	s->cut[from][to] = true;
	s->stats.partitions++;
	sim_note(s, "PARTITION: cut link %llu -> %llu", (unsigned long long)from,
		 (unsigned long long)to);
}

void sim_isolate(struct sim *s, raft_id id)
{
	if (id < 1 || id > s->n)
		return;
	for (raft_id j = 1; j <= s->n; j++) {
		if (j == id)
			continue;
		s->cut[id][j] = true;
		s->cut[j][id] = true;
	}
	s->stats.partitions++;
	sim_note(s, "PARTITION: isolate node %llu", (unsigned long long)id);
}

void sim_partition(struct sim *s, const raft_id *side, size_t n)
{
	bool in[SIM_MAX_NODES + 1] = {false};
	char desc[SIM_NOTE_MAX] = "";
	size_t len = 0;
	for (size_t i = 0; i < n; i++) {
		if (side[i] < 1 || side[i] > s->n)
			continue;
		in[side[i]] = true;
		int k = snprintf(desc + len, sizeof(desc) - len, "%s%llu", len ? "," : "",
				 (unsigned long long)side[i]);
		if (k > 0 && len + (size_t)k < sizeof(desc))
			len += (size_t)k;
	}
	for (raft_id a = 1; a <= s->n; a++)
		for (raft_id b = 1; b <= s->n; b++)
			if (in[a] != in[b])
				s->cut[a][b] = true;
	s->stats.partitions++;
	sim_note(s, "PARTITION: {%s} | rest", desc);
}

void sim_heal(struct sim *s)
{
	memset(s->cut, 0, sizeof(s->cut));
	sim_note(s, "HEAL: all links restored");
}

void sim_set_net(struct sim *s, const struct sim_net_options *net)
{
	s->opts.net = *net;
	sim_note(s, "network: drop=%.3f dup=%.3f reorder=%.3f latency=%u..%ums", net->drop_rate,
		 net->dup_rate, net->reorder_rate, net->latency_min_ms, net->latency_max_ms);
}

void sim_get_net(const struct sim *s, struct sim_net_options *net)
{
	*net = s->opts.net;
}

/* ---- disk */

int sim_set_disk(struct sim *s, raft_id id, uint32_t min_ms, uint32_t max_ms)
{
	struct sim_node *nd = node_get(s, id);
	if (nd == NULL)
		return SIM_EINVAL;
	nd->disk_min_ms = min_ms;
	nd->disk_max_ms = max_ms;
	sim_note(s, "disk of node %llu now takes %u..%ums", (unsigned long long)id, min_ms, max_ms);
	return 0;
}

static void entries_free(struct sim_entry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(e[i].data);
	free(e);
}

static void persist_free(struct sim_persist *p)
{
	free(p->snap_hist);
	entries_free(p->entries, p->n_entries);
	for (size_t i = 0; i < p->n_after; i++)
		raft_message_free(&p->after[i]);
	free(p->after);
	free(p);
}

static int disk_start(struct sim *s, struct sim_node *nd)
{
	/* Group commit: everything queued so far goes into this one write, up to a snapshot
	 * install, which is a write of its own (like cairnd's storage jobs) and takes longer the
	 * bigger the state machine. */
	uint64_t d = sim_rng_range(&s->rng, nd->disk_min_ms, nd->disk_max_ms);
	if (nd->pq_head->install) {
		nd->batch = 1;
		d += nd->pq_head->snap_index / SIM_SNAP_ENTRIES_PER_MS;
	} else {
		nd->batch = 0;
		for (const struct sim_persist *p = nd->pq_head; p != NULL && !p->install;
		     p = p->next)
			nd->batch++;
	}
	nd->batch_done_at = s->now + d;
	struct sim_event ev = {
	    .time = s->now + d, .kind = EV_DISK, .node = (uint8_t)nd->id, .gen = nd->incarnation};
	return ev_push(s, ev);
}

/* Chaos crashes aim at the window that matters: a node crashes while a persist request it
 * was just handed is not yet durable, either right after the current step or at a random
 * moment before its disk write completes. */
static int chaos_crash_maybe(struct sim *s, struct sim_node *nd, unsigned weight)
{
	/* Votes and terms are written rarely but matter most (a vote lost in a crash can be
	 * given twice), and so are snapshot installs: their writes draw crashes more often. */
	double rate = s->opts.crash_rate * weight;
	if (!sim_rng_chance(&s->rng, rate))
		return 0;
	uint64_t window = nd->batch_done_at > s->now ? nd->batch_done_at - s->now : 0;
	uint64_t at = window > 0 ? sim_rng_range(&s->rng, 0, window - 1) : 0;
	if (at == 0) {
		nd->crash_pending = true;
		return 0;
	}
	struct sim_event ev = {
	    .time = s->now + at, .kind = EV_CRASH, .node = (uint8_t)nd->id, .gen = nd->incarnation};
	return ev_push(s, ev);
}

static int persist_enqueue(struct sim *s, struct sim_node *nd, const struct raft_update *u)
{
	bool writes = u->hard_state_changed || u->truncate_from != 0 || u->n_entries > 0;
	if (!writes && u->n_messages_after_persist == 0)
		return 0;
	if (!writes && nd->pq_len == 0) {
		/* Nothing handed out earlier is still in flight: the promise already holds. */
		for (size_t i = 0; i < u->n_messages_after_persist; i++) {
			int rv = net_send(s, nd->id, &u->messages_after_persist[i]);
			if (rv != 0)
				return rv;
		}
		return 0;
	}
	struct sim_persist *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return fail_nomem(s);
	p->hard_state = u->hard_state_changed;
	p->term = u->term;
	p->vote = u->vote;
	p->truncate_from = u->truncate_from;
	if (u->n_entries > 0) {
		p->first_index = u->entries[0].index;
		p->entries = calloc(u->n_entries, sizeof(*p->entries));
		if (p->entries == NULL)
			goto err_nomem;
		p->n_entries = u->n_entries;
		for (size_t i = 0; i < u->n_entries; i++) {
			const struct raft_entry *e = &u->entries[i];
			struct sim_entry *d = &p->entries[i];
			d->term = e->term;
			d->type = e->type;
			d->len = e->len;
			d->hash = entry_hash(e);
			if (e->len > 0) {
				d->data = malloc(e->len);
				if (d->data == NULL)
					goto err_nomem;
				memcpy(d->data, e->data, e->len);
			}
		}
	}
	if (u->n_messages_after_persist > 0) {
		p->after = calloc(u->n_messages_after_persist, sizeof(*p->after));
		if (p->after == NULL)
			goto err_nomem;
		for (size_t i = 0; i < u->n_messages_after_persist; i++) {
			if (raft_message_copy(&p->after[i], &u->messages_after_persist[i]) != 0)
				goto err_nomem;
			p->n_after++;
		}
	}
	if (nd->pq_tail)
		nd->pq_tail->next = p;
	else
		nd->pq_head = p;
	nd->pq_tail = p;
	nd->pq_len++;
	s->stats.persist_requests++;
	if (nd->batch == 0) {
		int rv = disk_start(s, nd);
		if (rv != 0)
			return rv;
	}
	return chaos_crash_maybe(s, nd, u->hard_state_changed ? SIM_HARD_STATE_CRASH_BOOST : 1);
err_nomem:
	persist_free(p);
	return fail_nomem(s);
}

/* Writes one request to the disk: hard state, truncation, then entries (raft.h step 1). */
static int disk_write(struct sim *s, struct sim_node *nd, struct sim_persist *p)
{
	if (p->hard_state) {
		if (p->term < nd->disk_term) {
			sim_fail(s, "Contract", "node %llu persisted term %llu after term %llu",
				 (unsigned long long)nd->id, (unsigned long long)p->term,
				 (unsigned long long)nd->disk_term);
			return SIM_EFAILED;
		}
		nd->disk_term = p->term;
		nd->disk_vote = p->vote;
	}
	if (p->truncate_from != 0) {
		if (p->truncate_from > disk_last(nd) + 1 || p->truncate_from < nd->disk_first) {
			sim_fail(s, "Contract",
				 "node %llu: truncate_from %llu outside its disk log (%llu..%llu)",
				 (unsigned long long)nd->id, (unsigned long long)p->truncate_from,
				 (unsigned long long)nd->disk_first,
				 (unsigned long long)disk_last(nd));
			return SIM_EFAILED;
		}
		size_t keep = p->truncate_from - nd->disk_first;
		for (size_t i = keep; i < nd->disk_n; i++)
			free(nd->disk[i].data);
		nd->disk_n = keep;
	}
	if (p->n_entries == 0)
		return 0;
	if (p->first_index != disk_last(nd) + 1) {
		sim_fail(s, "Contract",
			 "node %llu: entries from %llu appended to a disk ending at %llu",
			 (unsigned long long)nd->id, (unsigned long long)p->first_index,
			 (unsigned long long)disk_last(nd));
		return SIM_EFAILED;
	}
	if (GROW(nd->disk, nd->disk_cap, nd->disk_n + p->n_entries) != 0)
		return fail_nomem(s);
	/* The disk takes ownership of the entries' data. */
	memcpy(&nd->disk[nd->disk_n], p->entries, p->n_entries * sizeof(*p->entries));
	nd->disk_n += p->n_entries;
	free(p->entries);
	p->entries = NULL;
	p->n_entries = 0;
	return 0;
}

static int install_complete(struct sim *s, struct sim_node *nd);

static int disk_complete(struct sim *s, struct sim_node *nd)
{
	if (nd->pq_head->install)
		return install_complete(s, nd);
	size_t n = nd->batch;
	bool wrote_entries = false;
	struct raft_message *after = NULL;
	size_t n_after = 0, cap_after = 0;
	int rv = 0;
	nd->batch = 0;
	for (size_t i = 0; i < n; i++) {
		struct sim_persist *p = nd->pq_head;
		nd->pq_head = p->next;
		if (nd->pq_head == NULL)
			nd->pq_tail = NULL;
		nd->pq_len--;
		wrote_entries = wrote_entries || p->n_entries > 0;
		if (rv == 0)
			rv = disk_write(s, nd, p);
		if (rv == 0 && p->n_after > 0) {
			if (GROW(after, cap_after, n_after + p->n_after) != 0) {
				rv = fail_nomem(s);
			} else {
				/* Move the messages: their buffers now belong to `after`. */
				memcpy(&after[n_after], p->after, p->n_after * sizeof(*after));
				n_after += p->n_after;
				p->n_after = 0;
			}
		}
		persist_free(p);
	}
	s->stats.persist_batches++;
	struct sim_trace_rec *t = tr_new(s, TR_DISK, nd->id);
	t->a = n;
	t->b = disk_last(nd);
	t->c = disk_term_at(nd, disk_last(nd));
	tr_done(s, t);
	if (rv == 0 && wrote_entries && nd->disk_n > 0)
		rv = raft_persisted(nd->r, s->now, nd->disk[nd->disk_n - 1].term, disk_last(nd));
	/* Every request up to this batch is durable: release what waited for it (raft.h step 2). */
	for (size_t i = 0; i < n_after; i++) {
		if (rv == 0)
			rv = net_send(s, nd->id, &after[i]);
		raft_message_free(&after[i]);
	}
	free(after);
	if (rv != 0)
		return s->failed ? SIM_EFAILED : rv;
	if ((rv = node_process_update(s, nd)) != 0)
		return rv;
	if (nd->batch == 0 && nd->pq_len > 0)
		return disk_start(s, nd);
	return 0;
}

static void persist_queue_clear(struct sim_node *nd)
{
	while (nd->pq_head != NULL) {
		struct sim_persist *p = nd->pq_head;
		nd->pq_head = p->next;
		persist_free(p);
	}
	nd->pq_tail = NULL;
	nd->pq_len = 0;
	nd->batch = 0;
}

/* ---- clients: proposals and reads */

static void pending_remove(uint64_t *arr, size_t *n, size_t i)
{
	arr[i] = arr[--*n];
}

/* Entry (index, term, hash) was applied by some node: settles proposals waiting on it. */
static int props_on_apply(struct sim *s, raft_index index, raft_term term, uint64_t hash)
{
	for (size_t i = 0; i < s->pending_n;) {
		struct sim_proposal *p = &s->props[s->pending[i] - 1];
		if (p->index != index) {
			i++;
			continue;
		}
		if (p->term == term) {
			if (p->hash != hash) {
				sim_fail(
				    s, "Contract",
				    "proposal #%llu got index %llu term %llu but another payload "
				    "was committed there",
				    (unsigned long long)p->id, (unsigned long long)index,
				    (unsigned long long)term);
				return SIM_EFAILED;
			}
			p->state = SIM_PROP_COMMITTED;
			p->committed_at = s->now;
			s->stats.proposals_committed++;
		} else {
			/* raft.h: another term at that index means the proposal was lost. */
			p->state = SIM_PROP_LOST;
			s->stats.proposals_lost++;
		}
		pending_remove(s->pending, &s->pending_n, i);
	}
	return 0;
}

static void read_serve(struct sim *s, struct sim_read *rd, const struct sim_node *nd)
{
	rd->state = SIM_READ_SERVED;
	rd->served_applied = nd->sm_n;
	s->stats.reads_served++;
	struct sim_trace_rec *t = tr_new(s, TR_READ_DONE, nd->id);
	t->a = rd->id;
	t->b = rd->index;
	t->c = nd->sm_n;
	tr_done(s, t);
}

static void reads_on_apply(struct sim *s, const struct sim_node *nd)
{
	for (size_t i = 0; i < s->waiting_n;) {
		struct sim_read *rd = &s->reads[s->waiting[i] - 1];
		if (rd->node == nd->id && nd->sm_n >= rd->index) {
			read_serve(s, rd, nd);
			pending_remove(s->waiting, &s->waiting_n, i);
		} else {
			i++;
		}
	}
}

static int read_result(struct sim *s, struct sim_node *nd, const struct raft_read *r)
{
	if (r->ctx < 1 || r->ctx > s->reads_n) {
		sim_fail(s, "Contract", "node %llu answered unknown read ctx %llu",
			 (unsigned long long)nd->id, (unsigned long long)r->ctx);
		return SIM_EFAILED;
	}
	struct sim_read *rd = &s->reads[r->ctx - 1];
	if (rd->node != nd->id || rd->state != SIM_READ_PENDING) {
		sim_fail(s, "Contract", "node %llu answered read #%llu (asked of node %llu) twice",
			 (unsigned long long)nd->id, (unsigned long long)r->ctx,
			 (unsigned long long)rd->node);
		return SIM_EFAILED;
	}
	rd->answered_at = s->now;
	if (r->err != 0) {
		rd->state = SIM_READ_FAILED;
		rd->err = r->err;
		s->stats.reads_failed++;
		struct sim_trace_rec *t = tr_new(s, TR_READ_DONE, nd->id);
		t->a = rd->id;
		t->code = r->err;
		tr_done(s, t);
		return 0;
	}
	rd->index = r->index;
	/* §6.4: the read index must cover every write committed before the read was asked. */
	if (r->index < rd->min_index) {
		sim_fail(s, "Linearizability (ReadIndex)",
			 "read #%llu on node %llu got index %llu, but index %llu was already "
			 "committed when it was requested at t=%llu",
			 (unsigned long long)rd->id, (unsigned long long)nd->id,
			 (unsigned long long)r->index, (unsigned long long)rd->min_index,
			 (unsigned long long)rd->requested_at);
		return SIM_EFAILED;
	}
	if (nd->sm_n >= r->index) {
		read_serve(s, rd, nd);
		return 0;
	}
	rd->state = SIM_READ_WAITING;
	if (GROW(s->waiting, s->waiting_cap, s->waiting_n + 1) != 0)
		return fail_nomem(s);
	s->waiting[s->waiting_n++] = rd->id;
	return 0;
}

/* ---- updates */

static void mem_dirty(struct sim_node *nd, raft_index index)
{
	if (index >= 1 && index - 1 < nd->mem_unchanged)
		nd->mem_unchanged = index - 1;
}

/* Does the core's log at [from, to] match our mirror of it? */
static int mem_verify(struct sim *s, struct sim_node *nd, raft_index from, raft_index to)
{
	for (raft_index i = from; i <= to; i++) {
		struct raft_entry e;
		const struct checker_entry *m = mem_get(nd, i);
		if (m == NULL || raft_log_entry(nd->r, i, &e) != 0 || e.index != i ||
		    e.term != m->term || entry_hash(&e) != m->hash) {
			sim_fail(s, "Contract",
				 "node %llu's log at index %llu differs from what its updates said "
				 "(term %llu expected)",
				 (unsigned long long)nd->id, (unsigned long long)i,
				 (unsigned long long)(m ? m->term : 0));
			return SIM_EFAILED;
		}
	}
	return 0;
}

/* The core's log must be what the mirror says: same first and last index, same boundary
 * terms (the entries themselves are compared by mem_verify). */
static int mem_check_bounds(struct sim *s, struct sim_node *nd)
{
	if (raft_last_index(nd->r) == mem_last(nd) && raft_first_index(nd->r) == nd->mem_first &&
	    raft_term_at(nd->r, mem_last(nd)) == mem_last_term(nd) &&
	    raft_term_at(nd->r, nd->mem_first - 1) == nd->mem_prev_term)
		return 0;
	sim_fail(s, "Contract",
		 "node %llu: its log (first %llu, last %llu) does not match its updates (first "
		 "%llu, last %llu)",
		 (unsigned long long)nd->id, (unsigned long long)raft_first_index(nd->r),
		 (unsigned long long)raft_last_index(nd->r), (unsigned long long)nd->mem_first,
		 (unsigned long long)mem_last(nd));
	return SIM_EFAILED;
}

/* Follows the in-memory log through the update (truncate_from, entries) and checks that the
 * core agrees. */
static int mem_update(struct sim *s, struct sim_node *nd, const struct raft_update *u)
{
	if (u->truncate_from != 0) {
		if (u->truncate_from > mem_last(nd) + 1 || u->truncate_from < nd->mem_first) {
			sim_fail(s, "Contract",
				 "node %llu: truncate_from %llu outside its log (%llu..%llu)",
				 (unsigned long long)nd->id, (unsigned long long)u->truncate_from,
				 (unsigned long long)nd->mem_first,
				 (unsigned long long)mem_last(nd));
			return SIM_EFAILED;
		}
		nd->mem_n = u->truncate_from - nd->mem_first;
		mem_dirty(nd, u->truncate_from);
	}
	if ((u->truncate_from != 0 || u->n_entries > 0) && raft_installing(nd->r)) {
		sim_fail(s, "Contract",
			 "node %llu was handed log writes while installing a snapshot",
			 (unsigned long long)nd->id);
		return SIM_EFAILED;
	}
	raft_index first_new = mem_last(nd) + 1;
	if (u->n_entries > 0) {
		if (GROW(nd->mem, nd->mem_cap, nd->mem_n + u->n_entries) != 0)
			return fail_nomem(s);
		mem_dirty(nd, first_new);
	}
	for (size_t i = 0; i < u->n_entries; i++) {
		const struct raft_entry *e = &u->entries[i];
		raft_term prev = mem_last_term(nd);
		if (e->index != mem_last(nd) + 1 || e->term < prev) {
			sim_fail(s, "Contract",
				 "node %llu: update entry %zu is index %llu term %llu, after index "
				 "%llu term %llu%s",
				 (unsigned long long)nd->id, i, (unsigned long long)e->index,
				 (unsigned long long)e->term, (unsigned long long)mem_last(nd),
				 (unsigned long long)prev,
				 u->truncate_from ? "" : " (no truncate_from)");
			return SIM_EFAILED;
		}
		nd->mem[nd->mem_n++] =
		    (struct checker_entry){.term = e->term, .hash = entry_hash(e)};
	}
	int rv = mem_check_bounds(s, nd);
	if (rv != 0)
		return rv;
	if (u->n_entries > 0)
		return mem_verify(s, nd, first_new, mem_last(nd));
	return 0;
}

/* The host compacted or installed: the front of the mirror goes (raft_compact) or all of it
 * (an install: the log restarts after the snapshot). */
static void mem_compact(struct sim_node *nd, raft_index upto, raft_term term)
{
	if (upto < nd->mem_first)
		return;
	size_t k = upto - nd->mem_first + 1;
	if (k > nd->mem_n)
		k = nd->mem_n;
	if (k < nd->mem_n)
		memmove(nd->mem, nd->mem + k, (nd->mem_n - k) * sizeof(*nd->mem));
	nd->mem_n -= k;
	nd->mem_first = upto + 1;
	nd->mem_prev_term = term;
}

static void mem_reset(struct sim_node *nd, raft_index index, raft_term term)
{
	nd->mem_n = 0;
	nd->mem_first = index + 1;
	nd->mem_prev_term = term;
	nd->mem_unchanged = 0;
}

static int apply_committed(struct sim *s, struct sim_node *nd, const struct raft_update *u)
{
	if (u->n_committed == 0)
		return 0;
	raft_index first = nd->sm_n + 1;
	for (size_t i = 0; i < u->n_committed; i++) {
		const struct raft_entry *e = &u->committed[i];
		uint64_t h = entry_hash(e);
		if (e->index != nd->sm_n + 1) {
			sim_fail(s, "Contract",
				 "node %llu was handed committed index %llu with applied index %zu",
				 (unsigned long long)nd->id, (unsigned long long)e->index,
				 nd->sm_n);
			return SIM_EFAILED;
		}
		/* raft.h step 3: only entries this host has already persisted. */
		const struct sim_entry *d = disk_get(nd, e->index);
		if (d == NULL || d->term != e->term || d->hash != h) {
			sim_fail(
			    s, "Contract",
			    "node %llu was handed committed index %llu term %llu, which is not "
			    "on its disk (disk %llu..%llu)",
			    (unsigned long long)nd->id, (unsigned long long)e->index,
			    (unsigned long long)e->term, (unsigned long long)nd->disk_first,
			    (unsigned long long)disk_last(nd));
			return SIM_EFAILED;
		}
		if (GROW(nd->sm, nd->sm_cap, nd->sm_n + 1) != 0)
			return fail_nomem(s);
		nd->sm[nd->sm_n++] = (struct checker_entry){.term = e->term, .hash = h};
		if (props_on_apply(s, e->index, e->term, h) != 0)
			return SIM_EFAILED;
	}
	struct sim_trace_rec *t = tr_new(s, TR_APPLY, nd->id);
	t->a = first;
	t->b = nd->sm_n;
	tr_done(s, t);
	reads_on_apply(s, nd);
	return 0;
}

static void set_timer(struct sim *s, struct sim_node *nd, uint64_t at)
{
	if (at == nd->timer_at)
		return;
	nd->timer_at = at;
	nd->timer_seq = s->seq++;
}

/* A leader just advanced its commit index to `index`: the entry must already be durable on a
 * majority of disks (acks leave only after persisting; the leader counts itself only after
 * raft_persisted), or a few crashes could lose a committed entry. */
static int check_durable(struct sim *s, const struct sim_node *leader, raft_index index)
{
	const struct checker_entry *e = mem_get(leader, index);
	raft_term term = e ? e->term : 0;
	unsigned copies = 0;
	for (unsigned i = 0; i < s->n; i++)
		if (disk_term_at(&s->nodes[i], index) == term)
			copies++;
	if (copies * 2 > s->n)
		return 0;
	sim_fail(s, "Durable Commit",
		 "leader %llu committed index %llu (term %llu) with only %u of %u disks holding it",
		 (unsigned long long)leader->id, (unsigned long long)index,
		 (unsigned long long)term, copies, s->n);
	return SIM_EFAILED;
}

/* ---- snapshots: compaction, transfer, install (raft.h SNAPSHOTS) */

static void compact_draw_threshold(struct sim *s, struct sim_node *nd)
{
	const struct sim_snapshot_options *o = &s->opts.snap;
	nd->compact_threshold = sim_rng_range(&s->rng, o->compact_min, o->compact_max);
}

/* The host compacts up to `upto` (<= its applied index): its disk log, then the core. */
static int compact_now(struct sim *s, struct sim_node *nd, raft_index upto)
{
	if (upto > nd->sm_n) {
		sim_fail(s, "Contract",
			 "node %llu's host compacts up to %llu beyond its applied %zu",
			 (unsigned long long)nd->id, (unsigned long long)upto, nd->sm_n);
		return SIM_EFAILED;
	}
	if (upto < nd->mem_first && upto < nd->disk_first)
		return 0; /* an install got there first */
	if (upto >= nd->disk_first) {
		size_t k = upto - nd->disk_first + 1;
		raft_term disk_term = disk_term_at(nd, upto);
		for (size_t i = 0; i < k; i++)
			free(nd->disk[i].data);
		if (k < nd->disk_n)
			memmove(nd->disk, nd->disk + k, (nd->disk_n - k) * sizeof(*nd->disk));
		nd->disk_n -= k;
		nd->disk_first = upto + 1;
		nd->disk_prev_term = disk_term;
	}
	raft_term term = raft_term_at(nd->r, upto);
	int rv = raft_compact(nd->r, upto);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_compact(%llu) on node %llu (applied %zu): %s",
			 (unsigned long long)upto, (unsigned long long)nd->id, nd->sm_n,
			 raft_strerror(rv));
		return SIM_EFAILED;
	}
	if (upto >= nd->mem_first) {
		mem_compact(nd, upto, term);
		s->stats.compactions++;
		struct sim_trace_rec *t = tr_new(s, TR_COMPACT, nd->id);
		t->a = upto;
		tr_done(s, t);
	}
	return mem_check_bounds(s, nd);
}

/* The seeded compaction policy, after each update: once the applied part of the log exceeds
 * the node's threshold, compact to applied minus a random trail after a disk delay. */
static int compact_maybe(struct sim *s, struct sim_node *nd)
{
	const struct sim_snapshot_options *o = &s->opts.snap;
	if (!o->enabled || nd->compact_pending || nd->r == NULL)
		return 0;
	raft_index first = nd->mem_first;
	if (nd->sm_n < first || nd->sm_n - (first - 1) <= nd->compact_threshold)
		return 0;
	raft_index trail = sim_rng_range(&s->rng, 0, o->trail_max);
	raft_index upto = nd->sm_n > trail ? nd->sm_n - trail : 0;
	if (upto < first)
		upto = first;
	nd->compact_pending = true;
	struct sim_event ev = {.time = s->now +
				       sim_rng_range(&s->rng, nd->disk_min_ms, nd->disk_max_ms),
			       .kind = EV_COMPACT,
			       .node = (uint8_t)nd->id,
			       .gen = nd->incarnation,
			       .index = upto};
	return ev_push(s, ev);
}

static int compact_event(struct sim *s, struct sim_node *nd, raft_index upto)
{
	nd->compact_pending = false;
	compact_draw_threshold(s, nd);
	int rv = compact_now(s, nd, upto);
	if (rv != 0)
		return rv;
	return node_process_update(s, nd);
}

int sim_compact(struct sim *s, raft_id id, raft_index index)
{
	struct sim_node *nd = node_get(s, id);
	if (nd == NULL)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	if (index > nd->sm_n)
		return SIM_EINVAL;
	int rv = compact_now(s, nd, index);
	if (rv == 0)
		rv = node_process_update(s, nd);
	if (rv == 0)
		rv = sim_check(s);
	return rv;
}

static void snap_unref(struct sim_snap *sn)
{
	if (sn != NULL && --sn->refs == 0) {
		free(sn->hist);
		free(sn);
	}
}

/* Lost, as a trace line says why. */
static void snap_lose(struct sim *s, struct sim_snap *sn, raft_id node, const char *why)
{
	if (!sn->lost) {
		sn->lost = true;
		s->stats.snapshots_lost++;
	}
	struct sim_trace_rec *t = tr_new(s, TR_SNAP_SENT, node);
	t->a = sn->to;
	snprintf(t->note, sizeof(t->note), "lost: %s", why);
	tr_done(s, t);
}

/* The host of `nd` streams its state machine at its applied index to `to`, tagged with `term`
 * (raft.h step 2b: the term of the update that asked). One "message" through the network, with
 * its own faults. */
static int snap_start(struct sim *s, struct sim_node *nd, raft_id to, raft_term term, bool report)
{
	struct sim_node *dst = node_get(s, to);
	raft_index a = nd->sm_n;
	if (dst == NULL || to == nd->id || a == 0) {
		sim_fail(
		    s, "Contract",
		    "node %llu was asked for a snapshot to node %llu with %llu entries applied",
		    (unsigned long long)nd->id, (unsigned long long)to, (unsigned long long)a);
		return SIM_EFAILED;
	}
	/* The state machine is applied, hence committed, state: never anything else. */
	if (a > checker_committed(s->ck)) {
		sim_fail(s, "Snapshot Safety",
			 "node %llu's snapshot at %llu is beyond the %llu entries known committed",
			 (unsigned long long)nd->id, (unsigned long long)a,
			 (unsigned long long)checker_committed(s->ck));
		return SIM_EFAILED;
	}
	struct sim_snap *sn = calloc(1, sizeof(*sn));
	if (sn == NULL)
		return fail_nomem(s);
	sn->hist = malloc(a * sizeof(*sn->hist));
	if (sn->hist == NULL) {
		free(sn);
		return fail_nomem(s);
	}
	memcpy(sn->hist, nd->sm, a * sizeof(*sn->hist));
	sn->from = nd->id;
	sn->to = to;
	sn->from_gen = nd->incarnation;
	sn->to_gen = dst->incarnation;
	sn->term = term;
	sn->index = a;
	sn->index_term = nd->sm[a - 1].term;
	sn->report = report;
	s->stats.snapshots_asked++;

	const struct sim_net_options *net = &s->opts.net;
	struct raft_message fm = {.type = SIM_MSG_SNAPSHOT,
				  .from = nd->id,
				  .to = to,
				  .term = sn->term,
				  .prev_index = a,
				  .prev_term = sn->index_term};
	const char *why = NULL;
	if (s->filter != NULL && s->filter(s->filter_ctx, s, &fm) != SIM_PASS) {
		s->stats.filter_drops++;
		why = "filter";
	} else if (s->cut[nd->id][to]) {
		why = "link cut";
	} else if (sim_rng_chance(&s->rng, net->drop_rate)) {
		why = "random loss";
	}
	uint64_t dur = sim_rng_range(&s->rng, net->latency_min_ms, net->latency_max_ms) +
		       a / SIM_SNAP_ENTRIES_PER_MS +
		       sim_rng_range(&s->rng, 0, s->opts.snap.transfer_extra_ms);
	struct sim_trace_rec *t = tr_new(s, TR_SNAP_SEND, nd->id);
	t->a = to;
	t->b = a;
	t->c = sn->index_term;
	if (why != NULL)
		snprintf(t->note, sizeof(t->note), "%s", why);
	tr_done(s, t);
	if (why != NULL) {
		sn->lost = true;
		s->stats.snapshots_lost++;
		dur = sim_rng_range(&s->rng, 1, dur); /* the stream breaks somewhere along */
	}
	/* The sender's end, then (unless already lost) the receiver's a latency later. */
	sn->refs = 1;
	struct sim_event ev = {
	    .time = s->now + dur, .kind = EV_SNAP_SENT, .node = (uint8_t)nd->id, .snap = sn};
	int rv = ev_push(s, ev);
	if (rv != 0) {
		snap_unref(sn);
		return rv;
	}
	if (sn->lost)
		return 0;
	sn->refs++;
	ev = (struct sim_event){
	    .time = s->now + dur + sim_rng_range(&s->rng, net->latency_min_ms, net->latency_max_ms),
	    .kind = EV_SNAP_ARRIVE,
	    .node = (uint8_t)to,
	    .snap = sn};
	rv = ev_push(s, ev);
	if (rv != 0)
		snap_unref(sn);
	return rv;
}

int sim_send_snapshot(struct sim *s, raft_id from, raft_id to)
{
	struct sim_node *nd = node_get(s, from);
	if (nd == NULL || node_get(s, to) == NULL || from == to)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	if (nd->sm_n == 0)
		return SIM_EINVAL;
	int rv = snap_start(s, nd, to, raft_current_term(nd->r), false);
	return rv != 0 ? rv : sim_check(s);
}

/* The sender's host is done streaming: it reports how (or, sometimes, when the stream broke,
 * never reports at all: the core must give up by itself). */
static int snap_sent(struct sim *s, struct sim_snap *sn)
{
	struct sim_node *nd = node_get(s, sn->from);
	struct sim_node *dst = node_get(s, sn->to);
	if (nd->r == NULL || nd->incarnation != sn->from_gen) {
		if (!sn->lost)
			snap_lose(s, sn, sn->from, "the sender crashed");
		return 0;
	}
	if (!sn->lost) {
		if (s->cut[sn->from][sn->to])
			snap_lose(s, sn, sn->from, "link cut");
		else if (dst->r == NULL || dst->incarnation != sn->to_gen)
			snap_lose(s, sn, sn->from, "the receiver crashed");
	}
	if (!sn->report)
		return 0;
	if (sn->lost && sim_rng_chance(&s->rng, s->opts.snap.no_report_rate)) {
		s->stats.snapshots_unreported++;
		struct sim_trace_rec *t = tr_new(s, TR_SNAP_SENT, nd->id);
		t->a = sn->to;
		snprintf(t->note, sizeof(t->note), "broke: never reported");
		tr_done(s, t);
		return 0;
	}
	struct sim_trace_rec *t = tr_new(s, TR_SNAP_SENT, nd->id);
	t->a = sn->to;
	snprintf(t->note, sizeof(t->note), "%s",
		 sn->lost ? "reported failed" : "sent, reported ok");
	tr_done(s, t);
	int rv = raft_snapshot_sent(nd->r, s->now, sn->to, !sn->lost);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_snapshot_sent on node %llu: %s",
			 (unsigned long long)nd->id, raft_strerror(rv));
		return SIM_EFAILED;
	}
	return node_process_update(s, nd);
}

/* The receiver's host has the whole snapshot: ask the core, and install it if told to (a
 * persist request of its own, after those already queued). */
static int snap_arrive(struct sim *s, struct sim_snap *sn)
{
	struct sim_node *nd = node_get(s, sn->to);
	if (sn->lost)
		return 0;
	if (nd->r == NULL || nd->incarnation != sn->to_gen) {
		snap_lose(s, sn, sn->to, "the receiver crashed");
		return 0;
	}
	if (s->cut[sn->from][sn->to]) {
		snap_lose(s, sn, sn->to, "link cut");
		return 0;
	}
	bool install = false;
	s->stats.snapshots_offered++;
	int rv = raft_snapshot_offer(nd->r, s->now, sn->from, sn->term, sn->index, sn->index_term,
				     &install);
	struct sim_trace_rec *t = tr_new(s, TR_SNAP_ARRIVE, nd->id);
	t->a = sn->from;
	t->b = sn->index;
	t->c = sn->index_term;
	snprintf(t->note, sizeof(t->note), "(tag term %llu): %s", (unsigned long long)sn->term,
		 install ? "install" : "not needed");
	tr_done(s, t);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_snapshot_offer on node %llu: %s",
			 (unsigned long long)nd->id, raft_strerror(rv));
		return SIM_EFAILED;
	}
	if (!install) {
		s->stats.snapshots_declined++;
		return node_process_update(s, nd);
	}
	struct sim_persist *p = calloc(1, sizeof(*p));
	if (p == NULL)
		return fail_nomem(s);
	p->install = true;
	p->snap_index = sn->index;
	p->snap_term = sn->index_term;
	p->snap_hist = sn->hist; /* the install owns the data now */
	sn->hist = NULL;
	if (nd->pq_tail)
		nd->pq_tail->next = p;
	else
		nd->pq_head = p;
	nd->pq_tail = p;
	nd->pq_len++;
	if (nd->batch == 0 && (rv = disk_start(s, nd)) != 0)
		return rv;
	/* A crash in the middle of an install must leave the node as it was. */
	if ((rv = chaos_crash_maybe(s, nd, SIM_INSTALL_CRASH_BOOST)) != 0)
		return rv;
	return node_process_update(s, nd);
}

/* The install is durable (or failed): replace the disk log and the state machine, tell the
 * core, follow the log in the mirror. */
static int install_complete(struct sim *s, struct sim_node *nd)
{
	struct sim_persist *p = nd->pq_head;
	nd->pq_head = p->next;
	if (nd->pq_head == NULL)
		nd->pq_tail = NULL;
	nd->pq_len--;
	nd->batch = 0;
	s->stats.persist_batches++;
	bool ok = !sim_rng_chance(&s->rng, s->opts.snap.install_fail_rate);
	raft_index index = p->snap_index;
	raft_term term = p->snap_term;
	if (ok) {
		for (size_t i = 0; i < nd->disk_n; i++)
			free(nd->disk[i].data);
		nd->disk_n = 0;
		nd->disk_first = index + 1;
		nd->disk_prev_term = term;
		if (GROW(nd->sm, nd->sm_cap, index) != 0) {
			persist_free(p);
			return fail_nomem(s);
		}
		memcpy(nd->sm, p->snap_hist, index * sizeof(*nd->sm));
		nd->sm_n = index;
		nd->sm_generation++;
		s->stats.snapshots_installed++;
	} else {
		s->stats.installs_failed++;
	}
	persist_free(p);
	struct sim_trace_rec *t = tr_new(s, TR_INSTALL, nd->id);
	t->a = index;
	t->b = term;
	snprintf(t->note, sizeof(t->note), "%s", ok ? "durable" : "FAILED (nothing changed)");
	tr_done(s, t);
	int rv = raft_snapshot_installed(nd->r, s->now, index, term, ok);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_snapshot_installed on node %llu: %s",
			 (unsigned long long)nd->id, raft_strerror(rv));
		return SIM_EFAILED;
	}
	if (ok) {
		mem_reset(nd, index, term);
		if ((rv = mem_check_bounds(s, nd)) != 0)
			return rv;
		reads_on_apply(s, nd);
	}
	if ((rv = node_process_update(s, nd)) != 0)
		return rv;
	if (nd->batch == 0 && nd->pq_len > 0)
		return disk_start(s, nd);
	return 0;
}

/* Collects and carries out a node's update in raft.h's order: persist, send, apply, reads. */
static int node_process_update(struct sim *s, struct sim_node *nd)
{
	struct raft_update u;
	int rv = raft_take_update(nd->r, &u);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_take_update on node %llu: %s",
			 (unsigned long long)nd->id, raft_strerror(rv));
		return SIM_EFAILED;
	}
	if ((rv = mem_update(s, nd, &u)) != 0)
		return rv;
	if ((rv = persist_enqueue(s, nd, &u)) != 0)
		return rv;
	for (size_t i = 0; i < u.n_messages; i++)
		if ((rv = net_send(s, nd->id, &u.messages[i])) != 0)
			return rv;
	for (size_t i = 0; i < u.n_send_snapshot; i++) {
		if (!s->opts.snap.enabled) {
			sim_fail(s, "Contract",
				 "node %llu asked for a snapshot but never compacted",
				 (unsigned long long)nd->id);
			return SIM_EFAILED;
		}
		if ((rv = snap_start(s, nd, u.send_snapshot[i], u.term, true)) != 0)
			return rv;
	}
	if (u.n_committed > 0 && raft_installing(nd->r)) {
		sim_fail(s, "Contract", "node %llu was handed committed entries while installing",
			 (unsigned long long)nd->id);
		return SIM_EFAILED;
	}
	if ((rv = apply_committed(s, nd, &u)) != 0)
		return rv;
	if ((rv = compact_maybe(s, nd)) != 0)
		return rv;
	for (size_t i = 0; i < u.n_reads; i++)
		if ((rv = read_result(s, nd, &u.reads[i])) != 0)
			return rv;
	int role = raft_role(nd->r);
	raft_term term = raft_current_term(nd->r);
	raft_id leader = raft_leader(nd->r);
	if (u.soft_state_changed && (u.role != role || u.leader != leader)) {
		sim_fail(s, "Contract",
			 "node %llu: update says %s/leader %llu, accessors say %s/leader %llu",
			 (unsigned long long)nd->id, role_name(u.role),
			 (unsigned long long)u.leader, role_name(role), (unsigned long long)leader);
		return SIM_EFAILED;
	}
	if (role != nd->role || term != nd->term || leader != nd->leader) {
		struct sim_trace_rec *t = tr_new(s, TR_ROLE, nd->id);
		t->code = role;
		t->a = term;
		t->b = leader;
		tr_done(s, t);
	}
	nd->role = role;
	nd->term = term;
	nd->leader = leader;
	raft_index commit = raft_commit_index(nd->r);
	if (role == RAFT_LEADER && commit > nd->commit && (rv = check_durable(s, nd, commit)) != 0)
		return rv;
	nd->commit = commit;
	set_timer(s, nd, u.next_timeout);
	return 0;
}

/* ---- nodes */

static uint64_t node_rand(void *ctx)
{
	return sim_rng_next(ctx);
}

static int node_start(struct sim *s, struct sim_node *nd)
{
	struct raft_config cfg = s->opts.raft;
	cfg.id = nd->id;
	cfg.configuration.servers = s->servers;
	cfg.configuration.n = s->n;
	cfg.rand = node_rand;
	cfg.rand_ctx = &nd->rng;
	if (nd->sm_n > disk_last(nd) || nd->sm_n + 1 < nd->disk_first) {
		sim_fail(s, "Contract",
			 "node %llu applied %zu entries but its disk log is %llu..%llu",
			 (unsigned long long)nd->id, nd->sm_n, (unsigned long long)nd->disk_first,
			 (unsigned long long)disk_last(nd));
		return SIM_EFAILED;
	}
	/* A compacted disk: the log starts after the state machine's snapshot. */
	struct raft_initial_state st = {
	    .term = nd->disk_term,
	    .vote = nd->disk_vote,
	    .first_index = nd->disk_first,
	    .prev_term = nd->disk_prev_term,
	    .n_entries = nd->disk_n,
	    .applied = nd->sm_n,
	};
	if (nd->disk_n > 0) {
		st.entries = calloc(nd->disk_n, sizeof(*st.entries));
		if (st.entries == NULL)
			return fail_nomem(s);
	}
	for (size_t i = 0; i < nd->disk_n; i++)
		st.entries[i] = (struct raft_entry){.term = nd->disk[i].term,
						    .index = nd->disk_first + i,
						    .type = nd->disk[i].type,
						    .data = nd->disk[i].data,
						    .len = nd->disk[i].len};
	int rv = raft_init(&nd->r, &cfg, &st, s->now);
	free(st.entries);
	if (rv != 0) {
		nd->r = NULL;
		sim_fail(s, "Contract", "raft_init of node %llu from its disk: %s",
			 (unsigned long long)nd->id, raft_strerror(rv));
		return SIM_EFAILED;
	}
	nd->incarnation++;
	if (GROW(nd->mem, nd->mem_cap, nd->disk_n) != 0)
		return fail_nomem(s);
	for (size_t i = 0; i < nd->disk_n; i++)
		nd->mem[i] =
		    (struct checker_entry){.term = nd->disk[i].term, .hash = nd->disk[i].hash};
	nd->mem_n = nd->disk_n;
	nd->mem_first = nd->disk_first;
	nd->mem_prev_term = nd->disk_prev_term;
	nd->mem_unchanged = 0;
	nd->role = 0;
	nd->term = 0;
	nd->leader = 0;
	nd->commit = 0;
	nd->timer_at = SIM_NO_TIMER;
	if ((rv = mem_check_bounds(s, nd)) != 0)
		return rv;
	if (nd->disk_n > 0 && (rv = mem_verify(s, nd, nd->mem_first, mem_last(nd))) != 0)
		return rv;
	return node_process_update(s, nd);
}

static void stats_add(struct raft_stats *a, const struct raft_stats *b)
{
	a->elections_started += b->elections_started;
	a->pre_votes_started += b->pre_votes_started;
	a->became_leader += b->became_leader;
	a->stepped_down += b->stepped_down;
	a->check_quorum_step_downs += b->check_quorum_step_downs;
	a->entries_committed += b->entries_committed;
	a->append_msgs_sent += b->append_msgs_sent;
	a->heartbeats_sent += b->heartbeats_sent;
	a->read_rounds += b->read_rounds;
	a->transfers += b->transfers;
	a->snapshots_sent += b->snapshots_sent;
	a->snapshots_aborted += b->snapshots_aborted;
	a->snapshots_installed += b->snapshots_installed;
	a->compactions += b->compactions;
}

static void node_stop(struct sim *s, struct sim_node *nd)
{
	struct raft_stats st;
	raft_get_stats(nd->r, &st);
	stats_add(&s->closed, &st);
	raft_close(nd->r);
	nd->r = NULL;
	persist_queue_clear(nd);
	nd->incarnation++; /* invalidates its scheduled disk completion and compaction */
	nd->compact_pending = false;
	nd->mem_n = 0;
	nd->timer_at = SIM_NO_TIMER;
	nd->role = 0;
	nd->leader = 0;
	nd->commit = 0;
}

static void node_crash(struct sim *s, struct sim_node *nd, bool chaos)
{
	raft_id id = nd->id;
	struct sim_trace_rec *t = tr_new(s, TR_CRASH, id);
	t->a = nd->pq_len;
	t->code = chaos;
	tr_done(s, t);
	for (const struct sim_persist *p = nd->pq_head; p != NULL; p = p->next)
		if (p->install)
			s->stats.installs_crashed++; /* nothing of it reached the disk */
	nd->crash_pending = false;
	node_stop(s, nd);
	s->stats.crashes++;
	/* Its clients see the connection drop: pending reads fail. */
	for (size_t i = 0; i < s->reads_n; i++) {
		struct sim_read *rd = &s->reads[i];
		if (rd->node == id &&
		    (rd->state == SIM_READ_PENDING || rd->state == SIM_READ_WAITING)) {
			rd->state = SIM_READ_FAILED;
			rd->err = SIM_EDOWN;
			s->stats.reads_failed++;
		}
	}
	for (size_t i = 0; i < s->waiting_n;) {
		if (s->reads[s->waiting[i] - 1].node == id)
			pending_remove(s->waiting, &s->waiting_n, i);
		else
			i++;
	}
}

/* A chaos crash: the node comes back by itself a little later. */
static int chaos_crash(struct sim *s, struct sim_node *nd)
{
	node_crash(s, nd, true);
	/* Half the time it is back before the messages already in flight have all arrived. */
	uint64_t delay =
	    sim_rng_chance(&s->rng, 0.5)
		? sim_rng_range(&s->rng, 1, 2 * (uint64_t)s->opts.net.latency_max_ms + 1)
		: sim_rng_range(&s->rng, s->opts.restart_min_ms, s->opts.restart_max_ms);
	struct sim_event ev = {.time = s->now + delay,
			       .kind = EV_RESTART,
			       .node = (uint8_t)nd->id,
			       .gen = nd->incarnation};
	return ev_push(s, ev);
}

int sim_crash(struct sim *s, raft_id id)
{
	struct sim_node *nd = node_get(s, id);
	if (nd == NULL)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	node_crash(s, nd, false);
	return sim_check(s);
}

void sim_set_crash_rate(struct sim *s, double rate)
{
	s->opts.crash_rate = rate;
}

int sim_restart(struct sim *s, raft_id id)
{
	struct sim_node *nd = node_get(s, id);
	if (nd == NULL)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r != NULL)
		return SIM_EUP;
	struct sim_trace_rec *t = tr_new(s, TR_RESTART, id);
	t->a = nd->disk_term;
	t->b = nd->disk_n;
	t->c = nd->sm_n;
	tr_done(s, t);
	s->stats.restarts++;
	int rv = node_start(s, nd);
	if (rv != 0)
		return rv;
	return sim_check(s);
}

static int chaos_restart(struct sim *s, struct sim_node *nd)
{
	struct sim_trace_rec *t = tr_new(s, TR_RESTART, nd->id);
	t->a = nd->disk_term;
	t->b = nd->disk_n;
	t->c = nd->sm_n;
	tr_done(s, t);
	s->stats.restarts++;
	return node_start(s, nd);
}

bool sim_is_up(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd != NULL && nd->r != NULL;
}

/* ---- checks */

/* Runs the invariant checker over every node; also compares, every so often, each core's
 * whole log with our mirror of it (the mirror is what the checker sees). */
static int sim_check(struct sim *s)
{
	if (s->failed)
		return SIM_EFAILED;
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		if (nd->crash_pending && nd->r != NULL) {
			int rv = chaos_crash(s, nd);
			if (rv != 0)
				return rv;
		}
	}
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		struct checker_node *cn = &s->cknodes[i];
		cn->id = nd->id;
		cn->up = nd->r != NULL;
		cn->incarnation = nd->incarnation;
		cn->role = nd->role;
		cn->term = nd->term;
		cn->commit = nd->commit;
		cn->log = nd->mem;
		cn->n_log = nd->mem_n;
		cn->log_first = nd->mem_first;
		cn->prev_term = nd->mem_prev_term;
		cn->sm_generation = nd->sm_generation;
		cn->log_unchanged = nd->mem_unchanged;
		cn->applied = nd->sm;
		cn->n_applied = nd->sm_n;
	}
	int v = checker_step(s->ck, s->cknodes, s->n);
	for (unsigned i = 0; i < s->n; i++)
		s->nodes[i].mem_unchanged = mem_last(&s->nodes[i]);
	if (v != CHECKER_OK) {
		sim_fail(s, checker_name(v), "%s", checker_message(s->ck));
		return SIM_EFAILED;
	}
	if (s->stats.steps % SIM_FULL_VERIFY_EVERY == 0) {
		struct sim_node *nd = &s->nodes[(s->stats.steps / SIM_FULL_VERIFY_EVERY) % s->n];
		if (nd->r != NULL && nd->mem_n > 0)
			return mem_verify(s, nd, nd->mem_first, mem_last(nd));
	}
	return 0;
}

/* ---- running */

/* The next thing to happen: the heap's top or a node's timer, whichever is first by (time,
 * seq). Returns false when nothing is scheduled. */
static bool next_event(const struct sim *s, uint64_t *time, int *timer_node)
{
	bool found = false;
	uint64_t best_t = 0, best_seq = 0;
	*timer_node = -1;
	if (s->heap_n > 0) {
		found = true;
		best_t = s->heap[0].time;
		best_seq = s->heap[0].seq;
	}
	for (unsigned i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];
		if (nd->r == NULL || nd->timer_at == SIM_NO_TIMER)
			continue;
		uint64_t t = nd->timer_at > s->now ? nd->timer_at : s->now;
		if (!found || t < best_t || (t == best_t && nd->timer_seq < best_seq)) {
			found = true;
			best_t = t;
			best_seq = nd->timer_seq;
			*timer_node = (int)i;
		}
	}
	*time = best_t;
	return found;
}

static int deliver(struct sim *s, struct sim_msg *sm)
{
	const struct raft_message *m = &sm->m;
	struct sim_node *nd = node_get(s, m->to);
	if (nd == NULL || nd->r == NULL) {
		s->stats.partition_drops++;
		tr_message(s, TR_DROP, m, "receiver down");
		return 0;
	}
	if (s->cut[m->from][m->to]) {
		s->stats.partition_drops++;
		tr_message(s, TR_DROP, m, "link cut");
		return 0;
	}
	s->stats.msgs_delivered++;
	tr_message(s, TR_DELIVER, m, NULL);
	int rv = raft_step(nd->r, s->now, m);
	if (rv != 0) {
		sim_fail(s, "Contract", "raft_step on node %llu: %s", (unsigned long long)nd->id,
			 raft_strerror(rv));
		return SIM_EFAILED;
	}
	return node_process_update(s, nd);
}

int sim_step(struct sim *s)
{
	if (s->failed)
		return SIM_EFAILED;
	uint64_t t;
	int ti;
	if (!next_event(s, &t, &ti))
		return SIM_ETIMEDOUT;
	if (t != s->step_at_now) {
		s->step_at_now = t;
		s->steps_at_now = 0;
	}
	if (++s->steps_at_now > SIM_SAME_TIME_LIMIT) {
		sim_fail(s, "Liveness", "%d events at t=%llums: virtual time stopped advancing",
			 SIM_SAME_TIME_LIMIT, (unsigned long long)t);
		return SIM_EFAILED;
	}
	if (s->opts.max_steps != 0 && s->stats.steps >= s->opts.max_steps) {
		sim_fail(s, "Liveness", "more than %llu events by t=%llums: a message storm?",
			 (unsigned long long)s->opts.max_steps, (unsigned long long)t);
		return SIM_EFAILED;
	}
	s->now = t;
	s->stats.steps++;
	int rv = 0;
	if (ti >= 0) {
		struct sim_node *nd = &s->nodes[ti];
		tr_done(s, tr_new(s, TR_TICK, nd->id));
		nd->timer_at = SIM_NO_TIMER;
		rv = raft_tick(nd->r, s->now);
		if (rv != 0) {
			sim_fail(s, "Contract", "raft_tick on node %llu: %s",
				 (unsigned long long)nd->id, raft_strerror(rv));
			return SIM_EFAILED;
		}
		rv = node_process_update(s, nd);
	} else {
		struct sim_event ev = ev_pop(s);
		if (ev.kind == EV_DELIVER) {
			rv = deliver(s, ev.msg);
			msg_free(ev.msg);
		} else if (ev.kind == EV_DISK) {
			struct sim_node *nd = node_get(s, ev.node);
			/* A crash since it was scheduled lost this write. */
			if (nd != NULL && nd->r != NULL && nd->incarnation == ev.gen &&
			    nd->batch > 0)
				rv = disk_complete(s, nd);
		} else if (ev.kind == EV_CRASH) {
			struct sim_node *nd = node_get(s, ev.node);
			if (nd != NULL && nd->r != NULL && nd->incarnation == ev.gen)
				rv = chaos_crash(s, nd);
		} else if (ev.kind == EV_RESTART) {
			struct sim_node *nd = node_get(s, ev.node);
			if (nd != NULL && nd->r == NULL && nd->incarnation == ev.gen)
				rv = chaos_restart(s, nd);
		} else if (ev.kind == EV_COMPACT) {
			struct sim_node *nd = node_get(s, ev.node);
			if (nd != NULL && nd->r != NULL && nd->incarnation == ev.gen)
				rv = compact_event(s, nd, ev.index);
		} else if (ev.kind == EV_SNAP_SENT) {
			rv = snap_sent(s, ev.snap);
			snap_unref(ev.snap);
		} else if (ev.kind == EV_SNAP_ARRIVE) {
			rv = snap_arrive(s, ev.snap);
			snap_unref(ev.snap);
		}
	}
	if (rv != 0)
		return s->failed ? SIM_EFAILED : rv;
	return sim_check(s);
}

int sim_run_until(struct sim *s, uint64_t t)
{
	for (;;) {
		if (s->failed)
			return SIM_EFAILED;
		uint64_t next;
		int ti;
		if (!next_event(s, &next, &ti) || next > t)
			break;
		int rv = sim_step(s);
		if (rv != 0)
			return rv;
	}
	if (t > s->now)
		s->now = t;
	return 0;
}

int sim_run_for(struct sim *s, uint64_t ms)
{
	return sim_run_until(s, s->now + ms);
}

int sim_run_until_pred(struct sim *s, sim_pred_fn pred, void *ctx, uint64_t max_ms)
{
	uint64_t deadline = s->now + max_ms;
	for (;;) {
		if (s->failed)
			return SIM_EFAILED;
		if (pred(s, ctx))
			return 0;
		uint64_t next;
		int ti;
		if (!next_event(s, &next, &ti) || next > deadline) {
			s->now = deadline > s->now ? deadline : s->now;
			return pred(s, ctx) ? 0 : SIM_ETIMEDOUT;
		}
		int rv = sim_step(s);
		if (rv != 0)
			return rv;
	}
}

static bool pred_has_leader(struct sim *s, void *ctx)
{
	(void)ctx;
	return sim_leader(s) != 0;
}

int sim_wait_leader(struct sim *s, uint64_t max_ms)
{
	return sim_run_until_pred(s, pred_has_leader, NULL, max_ms);
}

uint64_t sim_now(const struct sim *s)
{
	return s->now;
}

/* ---- client API */

int sim_propose(struct sim *s, raft_id node, size_t n, uint64_t *first_id)
{
	struct sim_node *nd = node_get(s, node);
	if (nd == NULL || n == 0 || n > SIM_MAX_BATCH)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	char payload[SIM_MAX_BATCH][SIM_PAYLOAD_MAX];
	struct raft_entry entries[SIM_MAX_BATCH];
	uint64_t counter0 = s->payload_counter;
	for (size_t i = 0; i < n; i++) {
		int len =
		    snprintf(payload[i], SIM_PAYLOAD_MAX, "n%llu-c%llu", (unsigned long long)node,
			     (unsigned long long)(counter0 + 1 + i));
		entries[i] = (struct raft_entry){
		    .type = RAFT_ENTRY_NORMAL, .data = payload[i], .len = (size_t)len};
	}
	raft_term term = 0;
	raft_index index = 0;
	int rv = raft_propose(nd->r, s->now, entries, n, &term, &index);
	struct sim_trace_rec *t = tr_new(s, TR_PROPOSE, node);
	t->code = rv;
	t->a = index;
	t->b = term;
	t->c = n;
	tr_done(s, t);
	if (rv != 0) {
		int rv2 = node_process_update(s, nd);
		if (rv2 == 0)
			rv2 = sim_check(s);
		return rv2 != 0 ? rv2 : rv;
	}
	s->payload_counter += n;
	if (GROW(s->props, s->props_cap, s->props_n + n) != 0 ||
	    GROW(s->pending, s->pending_cap, s->pending_n + n) != 0)
		return fail_nomem(s);
	for (size_t i = 0; i < n; i++) {
		struct sim_proposal *p = &s->props[s->props_n++];
		*p = (struct sim_proposal){.id = s->props_n,
					   .node = node,
					   .term = term,
					   .index = index + i,
					   .hash = entry_hash(&entries[i]),
					   .submitted_at = s->now,
					   .state = SIM_PROP_PENDING};
		s->pending[s->pending_n++] = p->id;
	}
	s->stats.proposals += n;
	if (first_id != NULL)
		*first_id = s->props_n - n + 1;
	if ((rv = node_process_update(s, nd)) != 0)
		return rv;
	/* The entries must now be in the leader's log where raft_propose said. */
	for (size_t i = 0; i < n; i++) {
		const struct sim_proposal *p = &s->props[s->props_n - n + i];
		const struct checker_entry *e = mem_get(nd, p->index);
		if (e == NULL || e->term != p->term || e->hash != p->hash) {
			sim_fail(s, "Contract",
				 "raft_propose on node %llu returned index %llu term %llu, but its "
				 "log holds something else there",
				 (unsigned long long)node, (unsigned long long)p->index,
				 (unsigned long long)p->term);
			return SIM_EFAILED;
		}
	}
	return sim_check(s);
}

int sim_propose_to_leader(struct sim *s, uint64_t *id)
{
	raft_id l = sim_leader(s);
	if (l == 0)
		return RAFT_ENOLEADER;
	return sim_propose(s, l, 1, id);
}

const struct sim_proposal *sim_proposal(const struct sim *s, uint64_t id)
{
	if (id < 1 || id > s->props_n)
		return NULL;
	return &s->props[id - 1];
}

size_t sim_proposal_count(const struct sim *s)
{
	return s->props_n;
}

int sim_read(struct sim *s, raft_id node, uint64_t *id)
{
	struct sim_node *nd = node_get(s, node);
	if (nd == NULL)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	if (GROW(s->reads, s->reads_cap, s->reads_n + 1) != 0)
		return fail_nomem(s);
	uint64_t ctx = s->reads_n + 1;
	int rv = raft_read_index(nd->r, s->now, ctx);
	struct sim_trace_rec *t = tr_new(s, TR_READ, node);
	t->code = rv;
	t->a = ctx;
	t->b = checker_committed(s->ck);
	tr_done(s, t);
	if (rv == 0) {
		s->reads[s->reads_n++] = (struct sim_read){.id = ctx,
							   .node = node,
							   .requested_at = s->now,
							   .min_index = checker_committed(s->ck),
							   .state = SIM_READ_PENDING};
		s->stats.reads++;
		if (id != NULL)
			*id = ctx;
	}
	int rv2 = node_process_update(s, nd);
	if (rv2 == 0)
		rv2 = sim_check(s);
	return rv2 != 0 ? rv2 : rv;
}

const struct sim_read *sim_read_get(const struct sim *s, uint64_t id)
{
	if (id < 1 || id > s->reads_n)
		return NULL;
	return &s->reads[id - 1];
}

int sim_transfer(struct sim *s, raft_id from, raft_id to)
{
	struct sim_node *nd = node_get(s, from);
	if (nd == NULL)
		return SIM_EINVAL;
	if (s->failed)
		return SIM_EFAILED;
	if (nd->r == NULL)
		return SIM_EDOWN;
	int rv = raft_transfer_leadership(nd->r, s->now, to);
	struct sim_trace_rec *t = tr_new(s, TR_TRANSFER, from);
	t->a = to;
	t->code = rv;
	tr_done(s, t);
	int rv2 = node_process_update(s, nd);
	if (rv2 == 0)
		rv2 = sim_check(s);
	return rv2 != 0 ? rv2 : rv;
}

/* ---- observation */

unsigned sim_n_nodes(const struct sim *s)
{
	return s->n;
}

uint64_t sim_seed(const struct sim *s)
{
	return s->opts.seed;
}

struct raft *sim_raft(struct sim *s, raft_id id)
{
	struct sim_node *nd = node_get(s, id);
	return nd ? nd->r : NULL;
}

raft_id sim_leader(const struct sim *s)
{
	raft_id best = 0;
	raft_term best_term = 0;
	for (unsigned i = 0; i < s->n; i++) {
		const struct sim_node *nd = &s->nodes[i];
		if (nd->r != NULL && nd->role == RAFT_LEADER &&
		    (best == 0 || nd->term > best_term)) {
			best = nd->id;
			best_term = nd->term;
		}
	}
	return best;
}

raft_index sim_applied(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? nd->sm_n : 0;
}

int sim_applied_entry(const struct sim *s, raft_id id, raft_index index, raft_term *term,
		      uint64_t *hash)
{
	const struct sim_node *nd = node_cget(s, id);
	if (nd == NULL || index < 1 || index > nd->sm_n)
		return SIM_EINVAL;
	if (term)
		*term = nd->sm[index - 1].term;
	if (hash)
		*hash = nd->sm[index - 1].hash;
	return 0;
}

raft_index sim_committed(const struct sim *s)
{
	return checker_committed(s->ck);
}

raft_index sim_disk_last_index(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? disk_last(nd) : 0;
}

raft_index sim_disk_first_index(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? nd->disk_first : 0;
}

raft_term sim_disk_term_at(const struct sim *s, raft_id id, raft_index index)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? disk_term_at(nd, index) : 0;
}

raft_term sim_disk_term(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? nd->disk_term : 0;
}

raft_id sim_disk_vote(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? nd->disk_vote : 0;
}

size_t sim_persist_pending(const struct sim *s, raft_id id)
{
	const struct sim_node *nd = node_cget(s, id);
	return nd ? nd->pq_len : 0;
}

void sim_get_stats(const struct sim *s, struct sim_stats *out)
{
	*out = s->stats;
	out->raft = s->closed;
	for (unsigned i = 0; i < s->n; i++) {
		if (s->nodes[i].r == NULL)
			continue;
		struct raft_stats st;
		raft_get_stats(s->nodes[i].r, &st);
		stats_add(&out->raft, &st);
	}
}

bool sim_failed(const struct sim *s)
{
	return s->failed;
}

const char *sim_failure_invariant(const struct sim *s)
{
	return s->fail_inv;
}

const char *sim_failure(const struct sim *s)
{
	return s->fail_msg;
}

/* ---- lifecycle */

void sim_options_default(struct sim_options *o, unsigned n_nodes, uint64_t seed)
{
	memset(o, 0, sizeof(*o));
	o->seed = seed;
	o->n_nodes = n_nodes;
	o->net.latency_min_ms = 1;
	o->net.latency_max_ms = 5;
	o->net.reorder_extra_ms = 50;
	o->disk_min_ms = 0;
	o->disk_max_ms = 2;
	o->snap.compact_min = 2;
	o->snap.compact_max = 50;
	o->snap.trail_max = 10;
	o->snap.no_report_rate = 0.25;
}

int sim_create(struct sim **out, const struct sim_options *o)
{
	if (o->n_nodes < 1 || o->n_nodes > SIM_MAX_NODES)
		return SIM_EINVAL;
	struct sim *s = calloc(1, sizeof(*s));
	if (s == NULL)
		return SIM_ENOMEM;
	s->opts = *o;
	s->n = o->n_nodes;
	sim_rng_seed(&s->rng, o->seed);
	if (checker_create(&s->ck) != 0) {
		free(s);
		return SIM_ENOMEM;
	}
	for (unsigned i = 0; i < s->n; i++) {
		s->servers[i] = (struct raft_server){.id = i + 1, .voter = true};
		struct sim_node *nd = &s->nodes[i];
		nd->id = i + 1;
		/* Each core draws from its own stream, so one node's draws do not shift another's.
		 */
		sim_rng_seed(&nd->rng, o->seed * 0x100000001b3ULL + nd->id);
		nd->disk_min_ms = o->disk_min_ms;
		nd->disk_max_ms = o->disk_max_ms;
		nd->timer_at = SIM_NO_TIMER;
		nd->disk_first = 1;
		nd->mem_first = 1;
		if (o->snap.enabled)
			compact_draw_threshold(s, nd);
	}
	int rv = 0;
	for (unsigned i = 0; i < s->n && rv == 0; i++)
		rv = node_start(s, &s->nodes[i]);
	if (rv == 0)
		rv = sim_check(s);
	if (rv != 0 && s->nodes[0].r == NULL) {
		/* raft_init itself refused the configuration: report its error. */
		sim_destroy(s);
		return rv == SIM_EFAILED ? SIM_EINVAL : rv;
	}
	*out = s; /* a violation at start-up is reported through sim_failed() */
	return 0;
}

void sim_destroy(struct sim *s)
{
	if (s == NULL)
		return;
	for (unsigned i = 0; i < s->n; i++) {
		struct sim_node *nd = &s->nodes[i];
		raft_close(nd->r);
		persist_queue_clear(nd);
		for (size_t k = 0; k < nd->disk_n; k++)
			free(nd->disk[k].data);
		free(nd->disk);
		free(nd->mem);
		free(nd->sm);
	}
	for (size_t i = 0; i < s->heap_n; i++) {
		msg_free(s->heap[i].msg);
		snap_unref(s->heap[i].snap);
	}
	free(s->heap);
	for (size_t i = 0; i < s->held_n; i++)
		msg_free(s->held[i]);
	free(s->held);
	checker_destroy(s->ck);
	free(s->props);
	free(s->pending);
	free(s->reads);
	free(s->waiting);
	free(s);
}

/* ---- liveness */

struct live_ctx {
	uint64_t prop; /* proposal id */
	raft_id node;
	raft_term term;
	uint64_t read;
	raft_index target;
};

static bool pred_prop_settled(struct sim *s, void *arg)
{
	struct live_ctx *c = arg;
	const struct sim_proposal *p = sim_proposal(s, c->prop);
	const struct sim_node *nd = node_cget(s, c->node);
	if (p->state != SIM_PROP_PENDING)
		return true;
	/* Its leader is gone: the proposal may never settle; the client retries elsewhere. */
	return nd->r == NULL || nd->role != RAFT_LEADER || nd->term != c->term;
}

static bool pred_caught_up(struct sim *s, void *arg)
{
	struct live_ctx *c = arg;
	for (unsigned i = 0; i < s->n; i++)
		if (s->nodes[i].sm_n < c->target)
			return false;
	return true;
}

static bool pred_read_done(struct sim *s, void *arg)
{
	struct live_ctx *c = arg;
	const struct sim_read *rd = sim_read_get(s, c->read);
	return rd->state == SIM_READ_SERVED || rd->state == SIM_READ_FAILED;
}

/* Every read asked of a node that is up has been answered (served or failed). */
static bool pred_reads_settled(struct sim *s, void *arg)
{
	(void)arg;
	for (size_t i = 0; i < s->reads_n; i++)
		if (s->reads[i].state == SIM_READ_PENDING && sim_is_up(s, s->reads[i].node))
			return false;
	return true;
}

static uint64_t remaining(const struct sim *s, uint64_t deadline)
{
	return deadline > s->now ? deadline - s->now : 0;
}

int sim_check_liveness(struct sim *s, uint64_t max_ms)
{
	if (s->failed)
		return SIM_EFAILED;
	s->opts.crash_rate = 0;
	s->opts.snap.install_fail_rate = 0;
	uint64_t healed_at = s->now;
	uint64_t deadline = s->now + max_ms;
	/* A healed network is a healthy one: no loss, duplication or reordering, LAN latency. */
	struct sim_net_options net = s->opts.net;
	net.drop_rate = 0;
	net.dup_rate = 0;
	net.reorder_rate = 0;
	if (net.latency_max_ms > SIM_HEALTHY_LATENCY_MS) {
		net.latency_min_ms = 1;
		net.latency_max_ms = SIM_HEALTHY_LATENCY_MS;
	}
	sim_set_net(s, &net);
	sim_heal(s);
	for (raft_id id = 1; id <= s->n; id++) {
		sim_set_disk(s, id, s->opts.disk_min_ms, s->opts.disk_max_ms);
		if (!sim_is_up(s, id) && sim_restart(s, id) != 0)
			return SIM_EFAILED;
	}
	sim_note(s, "LIVENESS: network healed, all nodes up; %llums to make progress",
		 (unsigned long long)max_ms);
	struct live_ctx c = {0};
	/* A leader, and a fresh proposal committed through it. */
	for (;;) {
		int rv = sim_wait_leader(s, remaining(s, deadline));
		if (rv == SIM_EFAILED)
			return rv;
		if (rv != 0) {
			sim_fail(s, "Liveness", "no leader %llums after the network healed",
				 (unsigned long long)(s->now - healed_at));
			return SIM_EFAILED;
		}
		c.node = sim_leader(s);
		rv = sim_propose(s, c.node, 1, &c.prop);
		if (rv == SIM_EFAILED)
			return rv;
		if (rv == 0) {
			c.term = sim_proposal(s, c.prop)->term;
			rv = sim_run_until_pred(s, pred_prop_settled, &c, remaining(s, deadline));
			if (rv == SIM_EFAILED)
				return rv;
			if (sim_proposal(s, c.prop)->state == SIM_PROP_COMMITTED)
				break;
		} else if ((rv = sim_run_for(s, SIM_RETRY_MS)) != 0) {
			return rv; /* refused (e.g. a transfer is running): retry shortly */
		}
		if (s->now >= deadline) {
			sim_fail(
			    s, "Liveness",
			    "no proposal committed %llums after the network healed (last try on "
			    "node %llu)",
			    (unsigned long long)(s->now - healed_at), (unsigned long long)c.node);
			return SIM_EFAILED;
		}
	}
	/* Every node applies everything the leader knows committed. */
	const struct sim_node *l = node_cget(s, c.node);
	c.target = l->commit;
	int rv = sim_run_until_pred(s, pred_caught_up, &c, remaining(s, deadline));
	if (rv == SIM_EFAILED)
		return rv;
	if (rv != 0) {
		sim_fail(
		    s, "Liveness",
		    "%llums after healing, not every node has applied the leader's commit index "
		    "%llu",
		    (unsigned long long)(s->now - healed_at), (unsigned long long)c.target);
		return SIM_EFAILED;
	}
	/* Proposals the leader accepted in its current term are not dropped on the floor. */
	if (l->r != NULL && l->role == RAFT_LEADER && l->term == c.term) {
		for (size_t i = 0; i < s->props_n; i++) {
			const struct sim_proposal *p = &s->props[i];
			if (p->node == c.node && p->term == c.term &&
			    p->state != SIM_PROP_COMMITTED) {
				sim_fail(
				    s, "Liveness",
				    "proposal #%llu (index %llu) on leader %llu of term %llu was "
				    "not committed although a later one was",
				    (unsigned long long)p->id, (unsigned long long)p->index,
				    (unsigned long long)c.node, (unsigned long long)c.term);
				return SIM_EFAILED;
			}
		}
	}
	/* A linearizable read is served. */
	for (;;) {
		raft_id leader = sim_leader(s);
		if (leader != 0) {
			rv = sim_read(s, leader, &c.read);
			if (rv == SIM_EFAILED)
				return rv;
			if (rv == 0) {
				rv = sim_run_until_pred(s, pred_read_done, &c,
							remaining(s, deadline));
				if (rv == SIM_EFAILED)
					return rv;
				if (sim_read_get(s, c.read)->state == SIM_READ_SERVED)
					break;
			}
		}
		if (s->now >= deadline) {
			sim_fail(s, "Liveness", "no read served %llums after the network healed",
				 (unsigned long long)(s->now - healed_at));
			return SIM_EFAILED;
		}
		if ((rv = sim_run_for(s, SIM_RETRY_MS)) != 0)
			return rv;
	}
	/* Reads still in flight get the rest of the bound to be answered (a forwarded read
	 * whose request was lost is failed by its follower after an election timeout). */
	if (s->opts.liveness_all_reads) {
		rv = sim_run_until_pred(s, pred_reads_settled, NULL, remaining(s, deadline));
		if (rv == SIM_EFAILED)
			return rv;
	}
	for (size_t i = 0; s->opts.liveness_all_reads && i < s->reads_n; i++) {
		const struct sim_read *rd = &s->reads[i];
		if (rd->state == SIM_READ_PENDING && sim_is_up(s, rd->node)) {
			sim_fail(s, "Liveness",
				 "read #%llu asked of node %llu at t=%llu was never answered",
				 (unsigned long long)rd->id, (unsigned long long)rd->node,
				 (unsigned long long)rd->requested_at);
			return SIM_EFAILED;
		}
	}
	sim_note(s, "LIVENESS: ok %llums after healing", (unsigned long long)(s->now - healed_at));
	return 0;
}
