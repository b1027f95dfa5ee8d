/* core.c — creating and closing a core, the public entry points, and assembling updates. */
#include <stdlib.h>
#include <string.h>

#include "raft/raft_int.h"

static const char *const error_strings[RAFT_ERR_COUNT] = {
    [RAFT_OK] = "success",
    [RAFT_ENOMEM] = "out of memory",
    [RAFT_EINVAL] = "invalid argument",
    [RAFT_ENOTLEADER] = "not the leader",
    [RAFT_ENOLEADER] = "no leader known",
    [RAFT_ETRANSFER] = "leadership transfer in progress",
    [RAFT_ETOOBIG] = "entry too large",
    [RAFT_ELEADERLOST] = "leadership lost before the request completed",
    [RAFT_EBADSTATE] = "inconsistent initial state",
    [RAFT_ENOTVOTER] = "not a voter of the configuration",
};

const char *raft_strerror(int err)
{
	if (err < 0 || err >= RAFT_ERR_COUNT || error_strings[err] == NULL)
		return "unknown raft error";
	return error_strings[err];
}

const char *raft_role_name(int role)
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
		return "unknown";
	}
}

/* ---- small containers ---------------------------------------------------- */

int ptrs_push(struct raft_ptrs *p, void *x)
{
	if (p->n == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		void **v = realloc(p->v, cap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		p->v = v;
		p->cap = cap;
	}
	p->v[p->n++] = x;
	return 0;
}

int ptrs_reserve(struct raft_ptrs *p, size_t n)
{
	if (p->cap - p->n >= n)
		return 0;
	size_t cap = p->cap ? p->cap : 16;
	while (cap - p->n < n)
		cap *= 2;
	void **v = realloc(p->v, cap * sizeof(*v));
	if (v == NULL)
		return RAFT_ENOMEM;
	p->v = v;
	p->cap = cap;
	return 0;
}

void ptrs_free_all(struct raft_ptrs *p)
{
	for (size_t i = 0; i < p->n; i++)
		free(p->v[i]);
	p->n = 0;
}

static int msgvec_push(struct raft_msgvec *mv, const struct raft_message *m)
{
	if (mv->n == mv->cap) {
		size_t cap = mv->cap ? mv->cap * 2 : 16;
		struct raft_message *v = realloc(mv->v, cap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		mv->v = v;
		mv->cap = cap;
	}
	mv->v[mv->n++] = *m;
	return 0;
}

static void msgs_free(struct raft_message *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].entries); /* entry data belongs to the log or the graveyard */
	free(v);
}

/* ---- helpers used by the other files ------------------------------------- */

size_t raft_quorum(const struct raft *r)
{
	return r->n_voters / 2 + 1;
}

struct raft_progress *raft_progress_of(struct raft *r, raft_id id)
{
	for (size_t i = 0; i < r->n_peers; i++)
		if (r->peers[i].id == id)
			return &r->peers[i];
	return NULL;
}

/* Queues a message. Vote grants and append acknowledgements promise that something is on
 * disk (the vote, the term, the entries), so they wait for every persist handed out so far;
 * a leader's own appends and everything else may leave at once (§10.2.1). */
int raft_send(struct raft *r, struct raft_message *m)
{
	m->from = r->id;
	if (m->term == 0)
		m->term = r->term;
	struct raft_msgvec *mv = &r->out_now;
	switch (m->type) {
	case RAFT_MSG_VOTE:
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_APPEND_RESP:
		mv = &r->out_after;
		break;
	default:
		break;
	}
	int rv = msgvec_push(mv, m);
	if (rv != 0) {
		free(m->entries);
		m->entries = NULL;
	}
	return rv;
}

/* For messages that promise nothing unpersisted, whatever their type: the acknowledgement of
 * an installed snapshot, which the host made durable before reporting it. */
int raft_send_now(struct raft *r, struct raft_message *m)
{
	m->from = r->id;
	if (m->term == 0)
		m->term = r->term;
	int rv = msgvec_push(&r->out_now, m);
	if (rv != 0) {
		free(m->entries);
		m->entries = NULL;
	}
	return rv;
}

uint64_t raft_random_timeout(struct raft *r)
{
	uint64_t base = r->cfg.election_timeout_ms;
	return base + r->cfg.rand(r->cfg.rand_ctx) % base;
}

int raft_push_read_result(struct raft *r, uint64_t ctx, raft_index index, int err)
{
	if (r->n_out_reads == r->cap_out_reads) {
		size_t cap = r->cap_out_reads ? r->cap_out_reads * 2 : 16;
		struct raft_read *v = realloc(r->out_reads, cap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		r->out_reads = v;
		r->cap_out_reads = cap;
	}
	r->out_reads[r->n_out_reads++] = (struct raft_read){.ctx = ctx, .index = index, .err = err};
	return 0;
}

/* ---- creation ------------------------------------------------------------ */

static int fill_config(struct raft_config *c, const struct raft_config *in)
{
	*c = *in;
	if (c->id == 0 || c->rand == NULL || c->configuration.n == 0 ||
	    c->configuration.servers == NULL)
		return RAFT_EINVAL;
	if (c->election_timeout_ms == 0)
		c->election_timeout_ms = RAFT_DEFAULT_ELECTION_TIMEOUT_MS;
	if (c->heartbeat_ms == 0)
		c->heartbeat_ms = RAFT_DEFAULT_HEARTBEAT_MS;
	if (c->max_entries_per_msg == 0)
		c->max_entries_per_msg = RAFT_DEFAULT_MAX_ENTRIES_PER_MSG;
	if (c->max_bytes_per_msg == 0)
		c->max_bytes_per_msg = RAFT_DEFAULT_MAX_BYTES_PER_MSG;
	if (c->max_inflight_msgs == 0)
		c->max_inflight_msgs = RAFT_DEFAULT_MAX_INFLIGHT;
	if (c->max_entry_bytes == 0)
		c->max_entry_bytes = RAFT_DEFAULT_MAX_ENTRY_BYTES;
	if (c->snapshot_timeout_ms == 0)
		c->snapshot_timeout_ms = RAFT_DEFAULT_SNAPSHOT_TIMEOUTS * c->election_timeout_ms;
	if (c->heartbeat_ms >= c->election_timeout_ms)
		return RAFT_EINVAL;
	c->configuration.servers = NULL; /* the copy lives in r->peers */
	return 0;
}

int raft_init(struct raft **out, const struct raft_config *config,
	      const struct raft_initial_state *state, uint64_t now)
{
	static const struct raft_initial_state empty = {0};
	int rv;
	if (out == NULL || config == NULL)
		return RAFT_EINVAL;
	if (state == NULL)
		state = &empty;

	struct raft *r = calloc(1, sizeof(*r));
	if (r == NULL)
		return RAFT_ENOMEM;
	rv = fill_config(&r->cfg, config);
	if (rv != 0)
		goto err_after_alloc;
	r->id = config->id;

	/* The configuration: an explicit value, so membership changes can replace it later. */
	const struct raft_configuration *cf = &config->configuration;
	r->peers = calloc(cf->n, sizeof(*r->peers));
	if (r->peers == NULL) {
		rv = RAFT_ENOMEM;
		goto err_after_alloc;
	}
	bool self_voter = false;
	for (size_t i = 0; i < cf->n; i++) {
		if (cf->servers[i].id == 0) {
			rv = RAFT_EINVAL;
			goto err_after_peers;
		}
		for (size_t j = 0; j < i; j++)
			if (cf->servers[j].id == cf->servers[i].id) {
				rv = RAFT_EINVAL;
				goto err_after_peers;
			}
		struct raft_progress *p = &r->peers[i];
		p->id = cf->servers[i].id;
		p->voter = cf->servers[i].voter;
		p->inflight = calloc(r->cfg.max_inflight_msgs, sizeof(*p->inflight));
		if (p->inflight == NULL) {
			rv = RAFT_ENOMEM;
			goto err_after_peers;
		}
		r->n_peers++;
		if (p->voter)
			r->n_voters++;
		if (p->id == r->id && p->voter)
			self_voter = true;
	}
	if (!self_voter) {
		rv = RAFT_EINVAL;
		goto err_after_peers;
	}

	/* The persisted state. */
	r->term = state->term;
	r->vote = state->vote;
	log_init(&r->log, state->first_index, state->prev_term);
	for (size_t i = 0; i < state->n_entries; i++) {
		const struct raft_entry *e = &state->entries[i];
		raft_index want = r->log.first + i;
		if ((e->index != 0 && e->index != want) || e->term == 0 || e->term > r->term ||
		    e->term < log_last_term(&r->log)) {
			rv = RAFT_EBADSTATE;
			goto err_after_log;
		}
		rv = log_append(&r->log, e->term, e->type, e->data, e->len);
		if (rv != 0)
			goto err_after_log;
	}
	raft_index last = log_last_index(&r->log);
	if (state->applied > last || (state->applied != 0 && state->applied + 1 < r->log.first)) {
		rv = RAFT_EBADSTATE;
		goto err_after_log;
	}
	if (r->vote != 0 && raft_progress_of(r, r->vote) == NULL) {
		rv = RAFT_EBADSTATE;
		goto err_after_log;
	}
	r->commit = state->applied > r->log.first - 1 ? state->applied : r->log.first - 1;
	r->emitted = r->commit;
	r->persisted = last;
	r->unstable_from = last + 1;

	r->role = RAFT_FOLLOWER;
	r->last_role = RAFT_FOLLOWER;
	r->now = now;
	/* A lone voter has nobody to wait for: it campaigns at the first tick. */
	r->election_deadline = r->n_voters == 1 ? now : now + raft_random_timeout(r);
	*out = r;
	return 0;

err_after_log:
	log_free(&r->log);
err_after_peers:
	for (size_t i = 0; i < cf->n; i++)
		free(r->peers[i].inflight);
	free(r->peers);
err_after_alloc:
	free(r);
	return rv;
}

static void release_handed(struct raft *r)
{
	struct raft_update *u = &r->handed;
	free(u->entries);
	msgs_free(u->messages, u->n_messages);
	msgs_free(u->messages_after_persist, u->n_messages_after_persist);
	free(u->committed);
	free(u->reads);
	free(u->send_snapshot);
	memset(u, 0, sizeof(*u));
}

void raft_close(struct raft *r)
{
	if (r == NULL)
		return;
	release_handed(r);
	msgs_free(r->out_now.v, r->out_now.n);
	msgs_free(r->out_after.v, r->out_after.n);
	free(r->out_reads);
	free(r->out_snap);
	free(r->reads);
	free(r->fwd_reads);
	ptrs_free_all(&r->graveyard);
	ptrs_free_all(&r->old_graveyard);
	free(r->graveyard.v);
	free(r->old_graveyard.v);
	log_free(&r->log);
	for (size_t i = 0; i < r->n_peers; i++)
		free(r->peers[i].inflight);
	free(r->peers);
	free(r);
}

/* ---- entry points ------------------------------------------------------- */

static void advance_clock(struct raft *r, uint64_t now)
{
	if (now > r->now)
		r->now = now;
}

int raft_tick(struct raft *r, uint64_t now)
{
	advance_clock(r, now);
	return election_tick(r);
}

int raft_persisted(struct raft *r, uint64_t now, raft_term term, raft_index index)
{
	advance_clock(r, now);
	if (index > log_last_index(&r->log) || index <= r->persisted)
		return 0;
	if (log_term_at(&r->log, index) != term)
		return 0; /* stale: that entry was replaced since */
	r->persisted = index;
	if (r->role == RAFT_LEADER) {
		struct raft_progress *self = raft_progress_of(r, r->id);
		self->match = index;
		self->next = index + 1;
		return replication_maybe_commit(r);
	}
	return 0;
}

int raft_propose(struct raft *r, uint64_t now, const struct raft_entry *entries, size_t n,
		 raft_term *term_out, raft_index *index_out)
{
	advance_clock(r, now);
	if (n == 0 || entries == NULL)
		return RAFT_EINVAL;
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transfer_target != 0)
		return RAFT_ETRANSFER;
	for (size_t i = 0; i < n; i++)
		if (entries[i].len > r->cfg.max_entry_bytes)
			return RAFT_ETOOBIG;
	raft_index first = log_last_index(&r->log) + 1;
	for (size_t i = 0; i < n; i++) {
		int rv = log_append(&r->log, r->term, RAFT_ENTRY_NORMAL, entries[i].data,
				    entries[i].len);
		if (rv != 0) {
			/* Undo the part appended: nothing was handed out yet. */
			log_truncate(&r->log, first, &r->graveyard);
			return rv;
		}
	}
	if (term_out != NULL)
		*term_out = r->term;
	if (index_out != NULL)
		*index_out = first;
	return replication_broadcast_append(r);
}

int raft_read_index(struct raft *r, uint64_t now, uint64_t ctx)
{
	advance_clock(r, now);
	if (r->role == RAFT_LEADER) {
		struct raft_message m = {.type = RAFT_MSG_READ_INDEX, .from = 0, .read_ctx = ctx};
		return readindex_recv_request(r, &m);
	}
	if (r->leader == 0 || r->role != RAFT_FOLLOWER)
		return RAFT_ENOLEADER;
	return readindex_forward(r, ctx);
}

/* What may be handed out for persisting and applying: nothing about the log while the host
 * installs a snapshot (§5.1, Figure 5.3), which is about to replace both the log and the state
 * machine; a persist or an apply queued behind the install would land on the wrong log or state. */
static bool log_output_pending(const struct raft *r)
{
	if (r->installing)
		return false;
	return r->truncate_from != 0 || r->unstable_from <= log_last_index(&r->log) ||
	       r->emitted < (r->commit < r->persisted ? r->commit : r->persisted);
}

bool raft_has_update(const struct raft *r)
{
	return r->hs_dirty || log_output_pending(r) || r->out_now.n > 0 || r->out_after.n > 0 ||
	       r->n_out_reads > 0 || r->n_out_snap > 0 || r->role != r->last_role ||
	       r->leader != r->last_leader || readindex_round_wanted(r);
}

static uint64_t next_timeout(const struct raft *r)
{
	uint64_t t;
	if (r->role == RAFT_LEADER) {
		t = r->heartbeat_deadline;
		if (r->quorum_deadline < t)
			t = r->quorum_deadline;
		if (r->transfer_target != 0 && r->transfer_deadline < t)
			t = r->transfer_deadline;
		t = snapshot_next_deadline(r, t);
	} else {
		t = r->election_deadline;
		if (r->n_fwd_reads > 0 && r->fwd_reads[0].deadline < t)
			t = r->fwd_reads[0].deadline;
	}
	return t;
}

static struct raft_entry *copy_entry_range(const struct raft_log *l, raft_index from, raft_index to,
					   size_t *n_out)
{
	*n_out = 0;
	if (from > to)
		return NULL;
	size_t n = to - from + 1;
	struct raft_entry *v = malloc(n * sizeof(*v));
	if (v == NULL)
		return NULL;
	memcpy(v, log_get(l, from), n * sizeof(*v));
	*n_out = n;
	return v;
}

int raft_take_update(struct raft *r, struct raft_update *u)
{
	int rv;
	/* Reads that arrived since the last update share one heartbeat round (§6.4). */
	if (r->role == RAFT_LEADER) {
		rv = readindex_start_round(r);
		if (rv != 0)
			return rv;
	}

	struct raft_update nu;
	memset(&nu, 0, sizeof(nu));
	raft_index last = log_last_index(&r->log);
	bool log_out = !r->installing; /* see log_output_pending() */
	if (log_out && r->unstable_from <= last) {
		nu.entries = copy_entry_range(&r->log, r->unstable_from, last, &nu.n_entries);
		if (nu.entries == NULL)
			return RAFT_ENOMEM;
	}
	raft_index apply_to = r->commit < r->persisted ? r->commit : r->persisted;
	if (log_out && r->emitted < apply_to) {
		nu.committed = copy_entry_range(&r->log, r->emitted + 1, apply_to, &nu.n_committed);
		if (nu.committed == NULL) {
			free(nu.entries);
			return RAFT_ENOMEM;
		}
	}
	/* Snapshots are asked for by a leader, tagged with its term: an ask left over from a
	 * leadership since lost is dropped (snapshot_forget_asks() runs on every role change). */
	nu.send_snapshot = r->out_snap;
	nu.n_send_snapshot = r->n_out_snap;

	/* Nothing can fail from here on. */
	release_handed(r);
	ptrs_free_all(&r->old_graveyard);
	struct raft_ptrs tmp = r->old_graveyard;
	r->old_graveyard = r->graveyard;
	r->graveyard = tmp;

	nu.hard_state_changed = r->hs_dirty;
	nu.term = r->term;
	nu.vote = r->vote;
	nu.truncate_from = log_out ? r->truncate_from : 0;
	nu.messages = r->out_now.v;
	nu.n_messages = r->out_now.n;
	nu.messages_after_persist = r->out_after.v;
	nu.n_messages_after_persist = r->out_after.n;
	nu.reads = r->out_reads;
	nu.n_reads = r->n_out_reads;
	nu.soft_state_changed = r->role != r->last_role || r->leader != r->last_leader;
	nu.role = r->role;
	nu.leader = r->leader;
	nu.commit = r->commit;
	nu.next_timeout = next_timeout(r);

	r->hs_dirty = false;
	if (log_out) {
		r->truncate_from = 0;
		r->unstable_from = last + 1;
	}
	r->out_snap = NULL;
	r->n_out_snap = 0;
	r->cap_out_snap = 0;
	if (nu.n_committed > 0) {
		r->emitted = apply_to;
		r->stats.entries_committed += nu.n_committed;
	}
	memset(&r->out_now, 0, sizeof(r->out_now));
	memset(&r->out_after, 0, sizeof(r->out_after));
	r->out_reads = NULL;
	r->n_out_reads = 0;
	r->cap_out_reads = 0;
	r->last_role = r->role;
	r->last_leader = r->leader;

	r->handed = nu;
	*u = nu;
	return 0;
}

/* ---- accessors ----------------------------------------------------------- */

raft_id raft_self(const struct raft *r)
{
	return r->id;
}
int raft_role(const struct raft *r)
{
	return r->role;
}
raft_id raft_leader(const struct raft *r)
{
	return r->leader;
}
raft_term raft_current_term(const struct raft *r)
{
	return r->term;
}
raft_index raft_commit_index(const struct raft *r)
{
	return r->commit;
}
raft_index raft_last_index(const struct raft *r)
{
	return log_last_index(&r->log);
}
raft_index raft_persisted_index(const struct raft *r)
{
	return r->persisted;
}
uint64_t raft_next_timeout(const struct raft *r)
{
	return next_timeout(r);
}
raft_index raft_first_index(const struct raft *r)
{
	return r->log.first;
}
bool raft_installing(const struct raft *r)
{
	return r->installing;
}

int raft_log_entry(const struct raft *r, raft_index index, struct raft_entry *out)
{
	const struct raft_entry *e = log_get(&r->log, index);
	if (e == NULL)
		return RAFT_EINVAL;
	*out = *e;
	return 0;
}

raft_term raft_term_at(const struct raft *r, raft_index index)
{
	return log_term_at(&r->log, index);
}

void raft_get_stats(const struct raft *r, struct raft_stats *out)
{
	*out = r->stats;
}

/* ---- message copies for hosts -------------------------------------------- */

int raft_message_copy(struct raft_message *dst, const struct raft_message *src)
{
	*dst = *src;
	dst->entries = NULL;
	dst->n_entries = 0;
	if (src->n_entries == 0)
		return 0;
	dst->entries = calloc(src->n_entries, sizeof(*dst->entries));
	if (dst->entries == NULL)
		return RAFT_ENOMEM;
	for (size_t i = 0; i < src->n_entries; i++) {
		struct raft_entry *e = &dst->entries[i];
		*e = src->entries[i];
		e->data = NULL;
		if (e->len > 0) {
			void *d = malloc(e->len);
			if (d == NULL) {
				dst->n_entries = i;
				raft_message_free(dst);
				return RAFT_ENOMEM;
			}
			memcpy(d, src->entries[i].data, e->len);
			e->data = d;
		}
	}
	dst->n_entries = src->n_entries;
	return 0;
}

void raft_message_free(struct raft_message *m)
{
	if (m == NULL || m->entries == NULL)
		return;
	for (size_t i = 0; i < m->n_entries; i++)
		free((void *)m->entries[i].data);
	free(m->entries);
	m->entries = NULL;
	m->n_entries = 0;
}

/* ---- raft_step: term rules common to all messages (§3.3, §9.6, §4.2.3) ----- */

static bool is_vote_request(int type)
{
	return type == RAFT_MSG_VOTE || type == RAFT_MSG_PREVOTE;
}

int raft_step(struct raft *r, uint64_t now, const struct raft_message *m)
{
	advance_clock(r, now);
	if (m == NULL || m->to != r->id || m->type == 0 || m->type >= RAFT_MSG_TYPE_MAX)
		return 0;
	struct raft_progress *from = raft_progress_of(r, m->from);
	if (from == NULL || m->from == r->id)
		return 0;
	/* §5.1, Figure 5.3: while the host installs a snapshot, AppendEntries would extend or
	 * truncate a log about to be replaced; they are treated as lost (the leader resends). */
	if (r->installing && m->type == RAFT_MSG_APPEND)
		return 0;
	int rv;

	if (m->term > r->term) {
		if (is_vote_request(m->type) && !m->transfer && election_in_lease(r)) {
			/* §4.2.3: a server that heard from a live leader within the minimum
			 * election timeout ignores vote requests, so a removed or rejoining server
			 * cannot disrupt the cluster. */
			return 0;
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			/* Pre-votes never change our term (§9.6). */
		} else if (m->type == RAFT_MSG_PREVOTE_RESP && !m->reject) {
			/* A grant carries the term we would campaign in, not the voter's term. */
		} else {
			raft_id lead = (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT)
					   ? m->from
					   : 0;
			rv = election_become_follower(r, m->term, lead);
			if (rv != 0)
				return rv;
		}
	} else if (m->term < r->term) {
		if (m->type == RAFT_MSG_APPEND || m->type == RAFT_MSG_HEARTBEAT) {
			/* A deposed leader still sending: tell it the new term so it steps down
			 * (otherwise, with pre-vote and check-quorum, it could be ignored forever).
			 */
			struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP,
						    .to = m->from,
						    .reject = true,
						    .index = m->prev_index};
			resp.hint_index = 0;
			return raft_send(r, &resp);
		}
		if (m->type == RAFT_MSG_READ_INDEX) {
			struct raft_message resp = {.type = RAFT_MSG_READ_INDEX_RESP,
						    .to = m->from,
						    .read_ctx = m->read_ctx,
						    .reject = true};
			return raft_send(r, &resp);
		}
		if (m->type == RAFT_MSG_PREVOTE) {
			struct raft_message resp = {
			    .type = RAFT_MSG_PREVOTE_RESP, .to = m->from, .reject = true};
			return raft_send(r, &resp);
		}
		return 0; /* stale */
	}

	switch (m->type) {
	case RAFT_MSG_VOTE:
	case RAFT_MSG_PREVOTE:
		return election_recv_vote(r, m);
	case RAFT_MSG_VOTE_RESP:
	case RAFT_MSG_PREVOTE_RESP:
		return election_recv_vote_resp(r, m);
	case RAFT_MSG_APPEND:
		return replication_recv_append(r, m);
	case RAFT_MSG_APPEND_RESP:
		return replication_recv_append_resp(r, m);
	case RAFT_MSG_HEARTBEAT:
		return replication_recv_heartbeat(r, m);
	case RAFT_MSG_HEARTBEAT_RESP:
		return replication_recv_heartbeat_resp(r, m);
	case RAFT_MSG_TIMEOUT_NOW:
		return transfer_recv_timeout_now(r, m);
	case RAFT_MSG_READ_INDEX:
		return readindex_recv_request(r, m);
	case RAFT_MSG_READ_INDEX_RESP:
		return readindex_recv_response(r, m);
	default:
		return 0;
	}
}

int raft_transfer_leadership(struct raft *r, uint64_t now, raft_id target)
{
	advance_clock(r, now);
	if (r->role != RAFT_LEADER)
		return RAFT_ENOTLEADER;
	if (r->transfer_target != 0)
		return RAFT_ETRANSFER;
	struct raft_progress *p = raft_progress_of(r, target);
	if (p == NULL || !p->voter || target == r->id)
		return RAFT_ENOTVOTER;
	r->transfer_target = target;
	r->transfer_deadline = r->now + r->cfg.election_timeout_ms;
	r->stats.transfers++;
	return transfer_on_progress(r, p);
}
