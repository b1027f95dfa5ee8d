/* checker.c — incremental checks of Raft's safety invariants over states fed step by step. */
#include "test/sim/checker.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECKER_MSG_MAX	 512
#define CHECKER_MAP_INIT 1024
#define TERM_UNKNOWN	 UINT64_MAX

/* A hash map from a pair of integers to a pair of integers. Open addressing, linear probing,
 * never shrinks: the checker only ever adds history. */
struct ck_slot {
	uint64_t k1, k2;
	uint64_t v1, v2;
	bool used;
};

struct ck_map {
	struct ck_slot *slots;
	size_t cap; /* a power of two */
	size_t len;
};

/* One entry of the committed sequence. */
struct ck_committed {
	raft_term term;
	uint64_t hash;
	/* Lowest term of a leader whose commit index covered this entry: the term in which it was
	 * committed (TERM_UNKNOWN if only followers or state machines have shown it so far). */
	raft_term commit_term;
	uint64_t chain; /* prefix hash up to this entry, as in logs: where compacted logs resume */
};

/* The checker's own copy of a node's log, with the prefix hash ("chain") of each entry. */
struct ck_log_entry {
	raft_term term;
	uint64_t hash;
	uint64_t chain;
};

struct ck_node {
	bool seen;
	bool was_up;
	uint32_t incarnation;
	int role; /* at the previous step */
	raft_term term;
	raft_index log_first; /* index of log[0] */
	struct ck_log_entry *log;
	size_t n_log, cap_log;
	raft_index commit_checked; /* entries <= this were compared with the committed sequence */
	size_t applied_checked;	   /* same for the state machine */
	uint32_t sm_generation;	   /* of the state machine checked */
	bool lc_valid;		   /* Leader Completeness checked for this leadership ... */
	raft_term lc_term;	   /* ... of this term ... */
	raft_index lc_verified;	   /* ... up to this committed index */
};

struct checker {
	struct ck_map leaders; /* (term, 0) -> (leader id, 0) */
	struct ck_map
	    entries; /* (index, term) -> (prefix chain, id of the first node seen with it) */
	struct ck_committed *committed;
	size_t n_committed, cap_committed;
	struct ck_node nodes[CHECKER_MAX_NODES];
	size_t n_nodes; /* 0 until the first step */
	char msg[CHECKER_MSG_MAX];
};

static const char *const checker_names[] = {
    [CHECKER_OK] = "OK",
    [CHECKER_ELECTION_SAFETY] = "Election Safety",
    [CHECKER_LEADER_APPEND_ONLY] = "Leader Append-Only",
    [CHECKER_LOG_MATCHING] = "Log Matching",
    [CHECKER_LEADER_COMPLETENESS] = "Leader Completeness",
    [CHECKER_STATE_MACHINE_SAFETY] = "State Machine Safety",
    [CHECKER_COMMIT_DURABILITY] = "Commit Durability",
    [CHECKER_CURRENT_TERM_COMMIT] = "Current-Term Commitment",
    [CHECKER_SNAPSHOT_SAFETY] = "Snapshot Safety",
    [CHECKER_ENOMEM] = "Out of memory",
    [CHECKER_EINVAL] = "Invalid input",
};

const char *checker_name(int violation)
{
	if (violation < 0 || (size_t)violation >= sizeof(checker_names) / sizeof(checker_names[0]))
		return "Unknown";
	return checker_names[violation];
}

static uint64_t ck_mix(uint64_t x)
{
	/* splitmix64's finaliser: a cheap, well-spread 64-bit mix. */
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return x;
}

uint64_t checker_entry_hash(uint8_t type, const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL; /* FNV-1a */
	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return ck_mix(h ^ ((uint64_t)type << 56) ^ len);
}

static uint64_t ck_chain(uint64_t prev, raft_index index, raft_term term, uint64_t hash)
{
	return ck_mix(prev ^ ck_mix(term ^ ck_mix(hash + index)));
}

__attribute__((format(printf, 3, 4))) static int ck_fail(struct checker *c, int violation,
							 const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	return violation;
}

/* ---- map */

static size_t ck_map_pos(const struct ck_map *m, uint64_t k1, uint64_t k2)
{
	return (size_t)(ck_mix(k1 * 0x9e3779b97f4a7c15ULL ^ k2) & (m->cap - 1));
}

static struct ck_slot *ck_map_find(const struct ck_map *m, uint64_t k1, uint64_t k2)
{
	if (m->cap == 0)
		return NULL;
	for (size_t i = ck_map_pos(m, k1, k2);; i = (i + 1) & (m->cap - 1)) {
		struct ck_slot *s = &m->slots[i];
		if (!s->used)
			return NULL;
		if (s->k1 == k1 && s->k2 == k2)
			return s;
	}
}

static int ck_map_grow(struct ck_map *m)
{
	size_t cap = m->cap ? m->cap * 2 : CHECKER_MAP_INIT;
	struct ck_slot *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return CHECKER_ENOMEM;
	struct ck_map bigger = {.slots = slots, .cap = cap, .len = m->len};
	for (size_t i = 0; i < m->cap; i++) {
		if (!m->slots[i].used)
			continue;
		size_t j = ck_map_pos(&bigger, m->slots[i].k1, m->slots[i].k2);
		while (slots[j].used)
			j = (j + 1) & (cap - 1);
		slots[j] = m->slots[i];
	}
	free(m->slots);
	*m = bigger;
	return 0;
}

/* Inserts a key known to be absent. */
static int ck_map_put(struct ck_map *m, uint64_t k1, uint64_t k2, uint64_t v1, uint64_t v2)
{
	if ((m->len + 1) * 2 > m->cap) {
		int rv = ck_map_grow(m);
		if (rv != 0)
			return rv;
	}
	size_t i = ck_map_pos(m, k1, k2);
	while (m->slots[i].used)
		i = (i + 1) & (m->cap - 1);
	m->slots[i] = (struct ck_slot){.k1 = k1, .k2 = k2, .v1 = v1, .v2 = v2, .used = true};
	m->len++;
	return 0;
}

/* ---- lifecycle */

int checker_create(struct checker **out)
{
	struct checker *c = calloc(1, sizeof(*c));
	if (c == NULL)
		return CHECKER_ENOMEM;
	*out = c;
	return 0;
}

void checker_destroy(struct checker *c)
{
	if (c == NULL)
		return;
	for (size_t i = 0; i < CHECKER_MAX_NODES; i++)
		free(c->nodes[i].log);
	free(c->leaders.slots);
	free(c->entries.slots);
	free(c->committed);
	free(c);
}

const char *checker_message(const struct checker *c)
{
	return c->msg;
}

raft_index checker_committed(const struct checker *c)
{
	return c->n_committed;
}

int checker_committed_entry(const struct checker *c, raft_index index, struct checker_entry *out)
{
	if (index == 0 || index > c->n_committed)
		return CHECKER_EINVAL;
	out->term = c->committed[index - 1].term;
	out->hash = c->committed[index - 1].hash;
	return 0;
}

raft_id checker_leader_of(const struct checker *c, raft_term term)
{
	const struct ck_slot *s = ck_map_find(&c->leaders, term, 0);
	return s ? s->v1 : 0;
}

/* ---- committed sequence */

/* A committed index was lowered to `index`: leaders must be checked again from there. */
static void ck_recheck_completeness_from(struct checker *c, raft_index index)
{
	for (size_t i = 0; i < c->n_nodes; i++)
		if (c->nodes[i].lc_verified >= index)
			c->nodes[i].lc_verified = index - 1;
}

/* `who` shows entry `e` at `index` as committed (`what` says how, for the message). Extends
 * the committed sequence or compares with it. commit_term is the term of the leader that
 * committed it, TERM_UNKNOWN when `who` is not that leader. */
static int ck_commit(struct checker *c, raft_id who, const char *what, raft_index index,
		     raft_term term, uint64_t hash, raft_term commit_term)
{
	if (index <= c->n_committed) {
		struct ck_committed *k = &c->committed[index - 1];
		if (k->term != term || k->hash != hash)
			return ck_fail(c, CHECKER_STATE_MACHINE_SAFETY,
				       "node %llu %s index %llu term %llu (hash %016llx) but index "
				       "%llu term %llu (hash %016llx) is already committed",
				       (unsigned long long)who, what, (unsigned long long)index,
				       (unsigned long long)term, (unsigned long long)hash,
				       (unsigned long long)index, (unsigned long long)k->term,
				       (unsigned long long)k->hash);
		if (commit_term < k->commit_term) {
			k->commit_term = commit_term;
			ck_recheck_completeness_from(c, index);
		}
		return 0;
	}
	if (index != c->n_committed + 1)
		return ck_fail(c, CHECKER_STATE_MACHINE_SAFETY,
			       "node %llu %s index %llu with only %llu entries known committed",
			       (unsigned long long)who, what, (unsigned long long)index,
			       (unsigned long long)c->n_committed);
	if (c->n_committed == c->cap_committed) {
		size_t cap = c->cap_committed ? c->cap_committed * 2 : 256;
		struct ck_committed *p = realloc(c->committed, cap * sizeof(*p));
		if (p == NULL)
			return CHECKER_ENOMEM;
		c->committed = p;
		c->cap_committed = cap;
	}
	uint64_t prev = c->n_committed > 0 ? c->committed[c->n_committed - 1].chain : 0;
	c->committed[c->n_committed++] =
	    (struct ck_committed){.term = term,
				  .hash = hash,
				  .commit_term = commit_term,
				  .chain = ck_chain(prev, index, term, hash)};
	return 0;
}

/* ---- per node */

static raft_index node_first(const struct checker_node *n)
{
	return n->log_first ? n->log_first : 1;
}

static void ck_node_reset(struct ck_node *cn, const struct checker_node *n)
{
	cn->seen = true;
	cn->incarnation = n->incarnation;
	cn->was_up = false;
	cn->role = RAFT_FOLLOWER;
	cn->term = 0;
	cn->log_first = node_first(n);
	cn->n_log = 0;
	cn->commit_checked = 0;
	cn->lc_valid = false;
	cn->lc_verified = 0;
}

static int ck_reserve_log(struct ck_node *cn, size_t n)
{
	if (n <= cn->cap_log)
		return 0;
	size_t cap = cn->cap_log ? cn->cap_log : 64;
	while (cap < n)
		cap *= 2;
	struct ck_log_entry *p = realloc(cn->log, cap * sizeof(*p));
	if (p == NULL)
		return CHECKER_ENOMEM;
	cn->log = p;
	cn->cap_log = cap;
	return 0;
}

/* A state machine replaced by an installed snapshot: all of it must be committed already (a
 * snapshot is of applied state) and equal to the committed sequence. */
static int ck_installed(struct checker *c, struct ck_node *cn, const struct checker_node *n)
{
	if (n->n_applied < cn->applied_checked)
		return ck_fail(c, CHECKER_SNAPSHOT_SAFETY,
			       "node %llu installed a snapshot at %zu over a state machine at %zu",
			       (unsigned long long)n->id, n->n_applied, cn->applied_checked);
	if (n->n_applied > c->n_committed)
		return ck_fail(c, CHECKER_SNAPSHOT_SAFETY,
			       "node %llu installed a snapshot at %zu with only %llu entries known "
			       "committed",
			       (unsigned long long)n->id, n->n_applied,
			       (unsigned long long)c->n_committed);
	for (size_t k = 0; k < n->n_applied; k++) {
		const struct ck_committed *e = &c->committed[k];
		if (e->term != n->applied[k].term || e->hash != n->applied[k].hash)
			return ck_fail(
			    c, CHECKER_SNAPSHOT_SAFETY,
			    "node %llu installed a snapshot whose index %zu is term %llu "
			    "(hash %016llx), but term %llu (hash %016llx) is committed",
			    (unsigned long long)n->id, k + 1,
			    (unsigned long long)n->applied[k].term,
			    (unsigned long long)n->applied[k].hash, (unsigned long long)e->term,
			    (unsigned long long)e->hash);
	}
	cn->applied_checked = n->n_applied;
	cn->sm_generation = n->sm_generation;
	return 0;
}

static int ck_state_machine(struct checker *c, struct ck_node *cn, const struct checker_node *n)
{
	if (n->sm_generation != cn->sm_generation)
		return ck_installed(c, cn, n);
	if (n->n_applied < cn->applied_checked)
		return ck_fail(c, CHECKER_STATE_MACHINE_SAFETY,
			       "node %llu's state machine went back from %zu to %zu entries",
			       (unsigned long long)n->id, cn->applied_checked, n->n_applied);
	for (size_t k = cn->applied_checked; k < n->n_applied; k++) {
		int rv = ck_commit(c, n->id, "applied", k + 1, n->applied[k].term,
				   n->applied[k].hash, TERM_UNKNOWN);
		if (rv != 0)
			return rv;
	}
	cn->applied_checked = n->n_applied;
	return 0;
}

/* The compacted prefix of a node's log (Snapshot Safety): known committed, at or below the
 * node's commit index, ending on the committed term. Sets *chain to the prefix hash there. */
static int ck_prefix(struct checker *c, const struct checker_node *n, uint64_t *chain)
{
	raft_index f = node_first(n);
	*chain = 0;
	if (f == 1)
		return 0;
	raft_index p = f - 1;
	if (p > c->n_committed)
		return ck_fail(
		    c, CHECKER_SNAPSHOT_SAFETY,
		    "node %llu's log starts at %llu (compacted) but only %llu entries are "
		    "known committed",
		    (unsigned long long)n->id, (unsigned long long)f,
		    (unsigned long long)c->n_committed);
	if (p > n->commit)
		return ck_fail(c, CHECKER_SNAPSHOT_SAFETY,
			       "node %llu's log starts at %llu (compacted) beyond its commit index "
			       "%llu",
			       (unsigned long long)n->id, (unsigned long long)f,
			       (unsigned long long)n->commit);
	const struct ck_committed *k = &c->committed[p - 1];
	if (k->term != n->prev_term)
		return ck_fail(c, CHECKER_SNAPSHOT_SAFETY,
			       "node %llu's log starts after index %llu term %llu, but index %llu "
			       "term %llu is committed",
			       (unsigned long long)n->id, (unsigned long long)p,
			       (unsigned long long)n->prev_term, (unsigned long long)p,
			       (unsigned long long)k->term);
	*chain = k->chain;
	return 0;
}

/* Brings the checker's copy of the node's log up to date, checking Leader Append-Only, Commit
 * Durability and Log Matching on what changed. */
static int ck_log(struct checker *c, struct ck_node *cn, const struct checker_node *n)
{
	uint64_t base;
	int rv = ck_prefix(c, n, &base);
	if (rv != 0)
		return rv;
	raft_index f = node_first(n);
	if (f < cn->log_first)
		return ck_fail(c, CHECKER_SNAPSHOT_SAFETY,
			       "node %llu's log start went back from %llu to %llu",
			       (unsigned long long)n->id, (unsigned long long)cn->log_first,
			       (unsigned long long)f);
	/* Compaction or an install dropped a prefix: forget it in the copy, and hash what is
	 * left again from the committed prefix, which is what it must follow now. */
	bool moved = f > cn->log_first;
	if (moved) {
		raft_index drop = f - cn->log_first;
		if (drop > cn->n_log)
			drop = cn->n_log;
		if (drop < cn->n_log)
			memmove(cn->log, cn->log + drop, (cn->n_log - drop) * sizeof(*cn->log));
		cn->n_log -= drop;
		cn->log_first = f;
	}
	/* From here cn->log[k] and n->log[k] are both the entry at index f + k. */
	size_t old_n = cn->n_log;
	size_t same = n->log_unchanged >= f ? n->log_unchanged - f + 1 : 0;
	if (same > old_n)
		same = old_n;
	if (same > n->n_log)
		same = n->n_log;
	/* First position where the new log differs from the copy. */
	size_t diff = same;
	while (diff < old_n && diff < n->n_log && cn->log[diff].term == n->log[diff].term &&
	       cn->log[diff].hash == n->log[diff].hash)
		diff++;
	if (diff < old_n) {
		/* An entry at index f + diff was overwritten or deleted. */
		raft_index index = f + diff;
		bool leader_same_term = cn->was_up && cn->role == RAFT_LEADER &&
					n->role == RAFT_LEADER && cn->term == n->term;
		if (leader_same_term)
			return ck_fail(
			    c, CHECKER_LEADER_APPEND_ONLY,
			    "leader %llu of term %llu %s its entry at index %llu (term %llu)",
			    (unsigned long long)n->id, (unsigned long long)n->term,
			    diff < n->n_log ? "overwrote" : "deleted", (unsigned long long)index,
			    (unsigned long long)cn->log[diff].term);
		if (index <= cn->commit_checked)
			return ck_fail(
			    c, CHECKER_COMMIT_DURABILITY,
			    "node %llu %s its entry at index %llu (term %llu) although its "
			    "commit index was %llu",
			    (unsigned long long)n->id, diff < n->n_log ? "overwrote" : "deleted",
			    (unsigned long long)index, (unsigned long long)cn->log[diff].term,
			    (unsigned long long)cn->commit_checked);
	}
	rv = ck_reserve_log(cn, n->n_log);
	if (rv != 0)
		return rv;
	for (size_t k = moved ? 0 : diff; k < n->n_log; k++) {
		raft_index index = f + k;
		uint64_t prev = k > 0 ? cn->log[k - 1].chain : base;
		uint64_t chain = ck_chain(prev, index, n->log[k].term, n->log[k].hash);
		cn->log[k] = (struct ck_log_entry){
		    .term = n->log[k].term, .hash = n->log[k].hash, .chain = chain};
		const struct ck_slot *sl = ck_map_find(&c->entries, index, n->log[k].term);
		if (sl == NULL) {
			rv = ck_map_put(&c->entries, index, n->log[k].term, chain, n->id);
			if (rv != 0)
				return rv;
		} else if (sl->v1 != chain) {
			return ck_fail(
			    c, CHECKER_LOG_MATCHING,
			    "node %llu has an entry at index %llu term %llu, as node %llu "
			    "had, but their logs differ at or before it",
			    (unsigned long long)n->id, (unsigned long long)index,
			    (unsigned long long)n->log[k].term, (unsigned long long)sl->v2);
		}
	}
	cn->n_log = n->n_log;
	return 0;
}

/* Term of the entry at `index` in a node's log; 0 when compacted or beyond. */
static raft_term node_term_at(const struct checker_node *n, raft_index index)
{
	raft_index f = node_first(n);
	if (index + 1 == f)
		return n->prev_term;
	if (index < f || index - f >= n->n_log)
		return 0;
	return n->log[index - f].term;
}

static int ck_commit_index(struct checker *c, struct ck_node *cn, const struct checker_node *n)
{
	raft_index f = node_first(n);
	raft_index last = f - 1 + n->n_log;
	if (n->commit > last)
		return ck_fail(c, CHECKER_COMMIT_DURABILITY,
			       "node %llu has commit index %llu beyond its last index %llu",
			       (unsigned long long)n->id, (unsigned long long)n->commit,
			       (unsigned long long)last);
	if (n->commit < cn->commit_checked)
		return ck_fail(c, CHECKER_COMMIT_DURABILITY,
			       "node %llu's commit index went back from %llu to %llu",
			       (unsigned long long)n->id, (unsigned long long)cn->commit_checked,
			       (unsigned long long)n->commit);
	/* §3.6.2: a leader counts replicas only for an entry of its own term; older entries are
	 * committed indirectly, below it (Figure 3.7). */
	bool leading =
	    cn->was_up && cn->role == RAFT_LEADER && n->role == RAFT_LEADER && cn->term == n->term;
	if (leading && n->commit > cn->commit_checked && node_term_at(n, n->commit) != n->term)
		return ck_fail(
		    c, CHECKER_CURRENT_TERM_COMMIT,
		    "leader %llu of term %llu advanced its commit index from %llu to %llu, "
		    "an entry of term %llu",
		    (unsigned long long)n->id, (unsigned long long)n->term,
		    (unsigned long long)cn->commit_checked, (unsigned long long)n->commit,
		    (unsigned long long)node_term_at(n, n->commit));
	/* Hence the entries it newly covers were committed in its term. Those it compacted are
	 * committed already (ck_prefix). */
	raft_term ct = n->role == RAFT_LEADER ? n->term : TERM_UNKNOWN;
	raft_index from = cn->commit_checked + 1 > f ? cn->commit_checked + 1 : f;
	for (raft_index i = from; i <= n->commit; i++) {
		int rv = ck_commit(c, n->id, "has in its log below its commit index", i,
				   n->log[i - f].term, n->log[i - f].hash, ct);
		if (rv != 0)
			return rv;
	}
	cn->commit_checked = n->commit;
	return 0;
}

static int ck_election(struct checker *c, const struct checker_node *n)
{
	if (n->role != RAFT_LEADER)
		return 0;
	const struct ck_slot *s = ck_map_find(&c->leaders, n->term, 0);
	if (s == NULL)
		return ck_map_put(&c->leaders, n->term, 0, n->id, 0);
	if (s->v1 != n->id)
		return ck_fail(c, CHECKER_ELECTION_SAFETY,
			       "nodes %llu and %llu are both leaders of term %llu",
			       (unsigned long long)s->v1, (unsigned long long)n->id,
			       (unsigned long long)n->term);
	return 0;
}

/* §3.6.3: every entry committed in an earlier term is in the log of the leader of a later one. */
static int ck_completeness(struct checker *c, struct ck_node *cn, const struct checker_node *n)
{
	if (!n->up || n->role != RAFT_LEADER) {
		cn->lc_valid = false;
		return 0;
	}
	if (!cn->lc_valid || cn->lc_term != n->term) {
		cn->lc_valid = true;
		cn->lc_term = n->term;
		cn->lc_verified = 0;
	}
	raft_index f = node_first(n);
	for (raft_index i = cn->lc_verified + 1; i <= c->n_committed; i++) {
		const struct ck_committed *k = &c->committed[i - 1];
		/* Entries it compacted are committed ones (ck_prefix): only compare what it has. */
		if (k->commit_term >= n->term || i < f)
			continue;
		if (i - f >= n->n_log || n->log[i - f].term != k->term ||
		    n->log[i - f].hash != k->hash)
			return ck_fail(c, CHECKER_LEADER_COMPLETENESS,
				       "leader %llu of term %llu lacks index %llu term %llu, "
				       "committed in term %llu",
				       (unsigned long long)n->id, (unsigned long long)n->term,
				       (unsigned long long)i, (unsigned long long)k->term,
				       (unsigned long long)k->commit_term);
	}
	cn->lc_verified = c->n_committed;
	return 0;
}

int checker_step(struct checker *c, const struct checker_node *nodes, size_t n)
{
	if (n > CHECKER_MAX_NODES || (c->n_nodes != 0 && n != c->n_nodes))
		return ck_fail(c, CHECKER_EINVAL, "checker_step: %zu nodes", n);
	c->n_nodes = n;
	int rv;
	/* Pass 1: histories (committed sequence, logs, leaders). */
	for (size_t i = 0; i < n; i++) {
		const struct checker_node *nd = &nodes[i];
		struct ck_node *cn = &c->nodes[i];
		if (!cn->seen || cn->incarnation != nd->incarnation || (nd->up && !cn->was_up))
			ck_node_reset(cn, nd);
		if ((rv = ck_state_machine(c, cn, nd)) != 0)
			return rv;
		if (!nd->up) {
			cn->was_up = false;
			cn->lc_valid = false;
			continue;
		}
		if ((rv = ck_log(c, cn, nd)) != 0)
			return rv;
		if ((rv = ck_commit_index(c, cn, nd)) != 0)
			return rv;
		if ((rv = ck_election(c, nd)) != 0)
			return rv;
	}
	/* Pass 2: leaders against everything committed so far, this step included. */
	for (size_t i = 0; i < n; i++) {
		struct ck_node *cn = &c->nodes[i];
		if ((rv = ck_completeness(c, cn, &nodes[i])) != 0)
			return rv;
		if (nodes[i].up) {
			cn->was_up = true;
			cn->role = nodes[i].role;
			cn->term = nodes[i].term;
		}
	}
	return CHECKER_OK;
}
