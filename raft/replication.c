/* replication.c — AppendEntries, heartbeats, per-follower flow control and commitment (§3.5, §3.6,
 * §10.2). */
#include <stdlib.h>
#include <string.h>

#include "raft/raft_int.h"

/* ---- flow control -------------------------------------------------------- */

void progress_reset(struct raft *r, struct raft_progress *p)
{
	(void)r;
	p->state = PROGRESS_PROBE;
	p->probe_sent = false;
	p->in_head = 0;
	p->in_count = 0;
	p->snap_deadline = 0;
	p->snap_retry_at = 0;
}

static bool inflight_full(const struct raft *r, const struct raft_progress *p)
{
	return p->in_count >= r->cfg.max_inflight_msgs;
}

static void inflight_add(struct raft *r, struct raft_progress *p, raft_index last)
{
	uint32_t cap = r->cfg.max_inflight_msgs;
	p->inflight[(p->in_head + p->in_count) % cap] = last;
	p->in_count++;
}

/* Frees every message slot whose last index is acknowledged. */
static void inflight_free_to(struct raft *r, struct raft_progress *p, raft_index upto)
{
	uint32_t cap = r->cfg.max_inflight_msgs;
	while (p->in_count > 0 && p->inflight[p->in_head] <= upto) {
		p->in_head = (p->in_head + 1) % cap;
		p->in_count--;
	}
}

void progress_become_replicate(struct raft_progress *p)
{
	p->state = PROGRESS_REPLICATE;
	p->probe_sent = false;
	p->next = p->match + 1;
	p->in_head = 0;
	p->in_count = 0;
}

void progress_become_probe(struct raft_progress *p, raft_index next)
{
	p->state = PROGRESS_PROBE;
	p->probe_sent = false;
	p->next = next > p->match + 1 ? next : p->match + 1;
	p->in_head = 0;
	p->in_count = 0;
}

/* ---- sending ------------------------------------------------------------- */

/* Sends the next batch of entries to `p` if flow control allows (bounded entries and bytes
 * per message, §10.2.1 pipelining up to max_inflight messages). In PROBE state one message
 * at a time, possibly empty, to find where the logs match. */
static int send_append(struct raft *r, struct raft_progress *p, bool allow_empty);

int replication_send_append(struct raft *r, struct raft_progress *p)
{
	return send_append(r, p, false);
}

/* allow_empty: in REPLICATE, send an entry-less append at next - 1 anyway. The follower
 * either confirms it holds everything sent so far or rejects, which reveals a lost message
 * that no later entry would expose. */
static int send_append(struct raft *r, struct raft_progress *p, bool allow_empty)
{
	if (p->id == r->id)
		return 0;
	/* §5.1, Figure 5.3: while the host streams a snapshot, appends would only be rejected. */
	if (p->state == PROGRESS_SNAPSHOT)
		return 0;
	if (p->state == PROGRESS_PROBE && p->probe_sent)
		return 0;
	if (p->state == PROGRESS_REPLICATE && inflight_full(r, p))
		return 0;
	raft_index last = log_last_index(&r->log);
	/* The entry before next, or next itself, was compacted (§5.1): prev_term is unknown and
	 * so are the entries. Only a snapshot can bring this follower up to date. */
	if (p->next < r->log.first)
		return snapshot_need(r, p);
	if (p->next > last + 1)
		p->next = last + 1;
	raft_index prev = p->next - 1;
	size_t n = 0, bytes = 0;
	while (p->next + n <= last && n < r->cfg.max_entries_per_msg) {
		const struct raft_entry *e = log_get(&r->log, p->next + n);
		if (n > 0 && bytes + e->len > r->cfg.max_bytes_per_msg)
			break;
		bytes += e->len;
		n++;
	}
	if (p->state == PROGRESS_REPLICATE && n == 0 && !allow_empty)
		return 0;
	struct raft_message m = {
	    .type = RAFT_MSG_APPEND,
	    .to = p->id,
	    .prev_index = prev,
	    .prev_term = log_term_at(&r->log, prev),
	    .commit = r->commit,
	    .read_seq = r->read_seq,
	};
	if (n > 0) {
		m.entries = malloc(n * sizeof(*m.entries));
		if (m.entries == NULL)
			return RAFT_ENOMEM;
		memcpy(m.entries, log_get(&r->log, p->next), n * sizeof(*m.entries));
		m.n_entries = n;
	}
	int rv = raft_send(r, &m);
	if (rv != 0)
		return rv;
	r->stats.append_msgs_sent++;
	if (p->state == PROGRESS_PROBE) {
		p->probe_sent = true;
	} else if (n > 0) {
		inflight_add(r, p, p->next + n - 1);
		p->next += n; /* optimistic: assume delivery, pipeline the next batch */
	}
	return 0;
}

int replication_broadcast_append(struct raft *r)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		/* In REPLICATE keep sending while the window is open: each call sends one
		 * bounded batch. */
		for (;;) {
			raft_index before = p->next;
			uint32_t count = p->in_count;
			int rv = replication_send_append(r, p);
			if (rv != 0)
				return rv;
			if (p->state != PROGRESS_REPLICATE || p->next == before ||
			    p->in_count == count)
				break;
		}
	}
	return 0;
}

static int send_heartbeat(struct raft *r, struct raft_progress *p)
{
	/* Commit is capped at what the follower is known to hold, so it never marks an entry
	 * committed that it has not got from this leader. */
	struct raft_message m = {
	    .type = RAFT_MSG_HEARTBEAT,
	    .to = p->id,
	    .commit = p->match < r->commit ? p->match : r->commit,
	    .read_seq = r->read_seq,
	};
	r->stats.heartbeats_sent++;
	return raft_send(r, &m);
}

int replication_broadcast_heartbeat(struct raft *r)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		if (p->id == r->id)
			continue;
		int rv = send_heartbeat(r, p);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* ---- commitment (§3.6.2, §10.2.1) --------------------------------------- */

static int cmp_desc(const void *a, const void *b)
{
	raft_index x = *(const raft_index *)a, y = *(const raft_index *)b;
	return x < y ? 1 : x > y ? -1 : 0;
}

int replication_maybe_commit(struct raft *r)
{
	if (r->role != RAFT_LEADER)
		return 0;
	raft_index matches[64] = {0};
	raft_index *v = matches;
	if (r->n_voters > sizeof(matches) / sizeof(matches[0])) {
		v = malloc(r->n_voters * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_peers; i++) {
		const struct raft_progress *p = &r->peers[i];
		if (!p->voter)
			continue;
		/* The leader's own log counts only once it is durable (§10.2.1). */
		v[n++] = p->id == r->id ? r->persisted : p->match;
	}
	qsort(v, n, sizeof(*v), cmp_desc);
	raft_index candidate = v[raft_quorum(r) - 1];
	if (v != matches)
		free(v);
	/* §3.6.2: only entries of the current term are committed by counting replicas; older
	 * ones are committed indirectly (Figure 3.7). */
	if (candidate <= r->commit || log_term_at(&r->log, candidate) != r->term)
		return 0;
	r->commit = candidate;
	if (!r->committed_in_term) {
		r->committed_in_term = true;
		int rv = readindex_on_ack(r); /* reads waiting for the term's first commit */
		if (rv != 0)
			return rv;
	}
	/* Tell followers about the new commit index: entries messages carry it; a follower
	 * with nothing left to receive gets a heartbeat. */
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		if (p->id == r->id)
			continue;
		if (p->next <= log_last_index(&r->log)) {
			int rv = replication_send_append(r, p);
			if (rv != 0)
				return rv;
		} else if (p->match == log_last_index(&r->log)) {
			int rv = send_heartbeat(r, p);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

/* ---- follower side -------------------------------------------------------- */

int replication_heard_from_leader(struct raft *r, raft_id leader)
{
	if (r->role != RAFT_FOLLOWER || r->leader != leader) {
		int rv = election_become_follower(r, r->term, leader);
		if (rv != 0)
			return rv;
	}
	r->last_leader_contact = r->now;
	r->heard_leader = true;
	r->election_deadline = r->now + raft_random_timeout(r);
	return 0;
}

/* §3.5: the consistency check, conflict truncation and append. A rejection carries a hint
 * (the last index whose term is <= prev_term) so the leader can skip a whole term of
 * mismatching entries at once instead of one index per round trip. */
int replication_recv_append(struct raft *r, const struct raft_message *m)
{
	int rv;
	rv = replication_heard_from_leader(r, m->from);
	if (rv != 0)
		return rv;
	struct raft_message resp = {
	    .type = RAFT_MSG_APPEND_RESP,
	    .to = m->from,
	    .read_seq = m->read_seq,
	};
	if (m->prev_index < r->commit) {
		/* Everything up to commit already matches the leader's log; skip the entries
		 * below it rather than risk judging a compacted or committed range. */
		resp.index = r->commit;
		raft_index upto = m->prev_index + m->n_entries;
		if (upto <= r->commit)
			return raft_send(r, &resp);
	}
	raft_index last = log_last_index(&r->log);
	if (m->prev_index >= r->commit &&
	    (m->prev_index > last || log_term_at(&r->log, m->prev_index) != m->prev_term)) {
		raft_index hint = m->prev_index < last ? m->prev_index : last;
		while (hint > r->commit && log_term_at(&r->log, hint) > m->prev_term)
			hint--;
		resp.reject = true;
		resp.index = m->prev_index;
		resp.hint_index = hint;
		resp.hint_term = log_term_at(&r->log, hint);
		return raft_send(r, &resp);
	}

	/* Append what is new; truncate at the first conflict (never at or below commit). */
	for (size_t i = 0; i < m->n_entries; i++) {
		const struct raft_entry *e = &m->entries[i];
		raft_index idx = m->prev_index + 1 + i;
		if (idx <= r->commit)
			continue;
		if (idx <= log_last_index(&r->log)) {
			if (log_term_at(&r->log, idx) == e->term)
				continue;
			rv = log_truncate(&r->log, idx, &r->graveyard);
			if (rv != 0)
				return rv;
			if (idx < r->unstable_from) {
				r->unstable_from = idx;
				if (r->truncate_from == 0 || idx < r->truncate_from)
					r->truncate_from = idx;
			}
			if (r->persisted >= idx)
				r->persisted = idx - 1;
		}
		rv = log_append(&r->log, e->term, e->type, e->data, e->len);
		if (rv != 0)
			return rv;
	}
	raft_index match = m->prev_index + m->n_entries;
	if (match < r->commit)
		match = r->commit;
	/* §3.5: commit = min(leaderCommit, index of last new entry). */
	raft_index c = m->commit < match ? m->commit : match;
	if (c > r->commit)
		r->commit = c;
	resp.index = match;
	return raft_send(r, &resp);
}

int replication_recv_heartbeat(struct raft *r, const struct raft_message *m)
{
	int rv = replication_heard_from_leader(r, m->from);
	if (rv != 0)
		return rv;
	raft_index c = m->commit;
	if (c > log_last_index(&r->log))
		c = log_last_index(&r->log);
	if (c > r->commit)
		r->commit = c;
	struct raft_message resp = {
	    .type = RAFT_MSG_HEARTBEAT_RESP,
	    .to = m->from,
	    .read_seq = m->read_seq,
	};
	return raft_send(r, &resp);
}

/* ---- leader side ----------------------------------------------------------- */

/* The largest index <= index whose term is <= term in our log (etcd's findConflictByTerm):
 * where the follower's log may still match ours. Below first_index - 1 our terms are
 * unknown (compacted): the answer is then a guess that sends the follower a snapshot. */
static raft_index match_by_term(const struct raft *r, raft_index index, raft_term term)
{
	if (index > log_last_index(&r->log))
		index = log_last_index(&r->log);
	while (index > 0 && index + 1 >= r->log.first && log_term_at(&r->log, index) > term)
		index--;
	return index;
}

static void note_ack(struct raft *r, struct raft_progress *p, uint64_t read_seq)
{
	p->recent_active = true;
	if (read_seq > p->read_ack && read_seq <= r->read_seq)
		p->read_ack = read_seq;
}

int replication_recv_append_resp(struct raft *r, const struct raft_message *m)
{
	if (r->role != RAFT_LEADER)
		return 0;
	struct raft_progress *p = raft_progress_of(r, m->from);
	int rv;
	note_ack(r, p, m->read_seq);

	if (m->reject) {
		/* Ignore stale rejections: in REPLICATE one about an index already matched, in
		 * PROBE one that is not about the probe we sent, in SNAPSHOT all of them (they
		 * answer appends sent before the snapshot was asked for). */
		if (p->state == PROGRESS_SNAPSHOT)
			goto reads;
		if (p->state == PROGRESS_REPLICATE && m->index <= p->match)
			goto reads;
		if (p->state == PROGRESS_PROBE && m->index != p->next - 1)
			goto reads;
		raft_index next = match_by_term(r, m->hint_index, m->hint_term) + 1;
		if (next > m->index)
			next = m->index; /* always move back at least one */
		progress_become_probe(p, next);
		rv = replication_send_append(r, p);
		if (rv != 0)
			return rv;
		goto reads;
	}

	bool advanced = m->index > p->match;
	/* In SNAPSHOT only news leaves it: the answer to the snapshot, or to an offer the
	 * follower did not need (§5.1, Figure 5.3). A success that teaches nothing is an old one.
	 */
	if (p->state == PROGRESS_SNAPSHOT && !advanced)
		goto reads;
	if (advanced) {
		p->match = m->index;
		if (p->next <= m->index)
			p->next = m->index + 1;
	}
	/* Any success proves where the logs match: leave PROBE (or SNAPSHOT) and pipeline. If
	 * the follower is still behind our first index (we compacted further meanwhile), the
	 * next send asks for another snapshot. */
	if (p->state == PROGRESS_PROBE || p->state == PROGRESS_SNAPSHOT)
		progress_become_replicate(p);
	else
		inflight_free_to(r, p, m->index);
	if (advanced) {
		rv = replication_maybe_commit(r);
		if (rv != 0)
			return rv;
		if (r->transfer_target == p->id) {
			rv = transfer_on_progress(r, p);
			if (rv != 0)
				return rv;
		}
	}
	if (r->role == RAFT_LEADER) {
		for (;;) {
			raft_index before = p->next;
			bool probe_before = p->probe_sent;
			rv = replication_send_append(r, p);
			if (rv != 0)
				return rv;
			if (p->next == before || p->state != PROGRESS_REPLICATE ||
			    probe_before != p->probe_sent)
				break;
		}
	}
reads:
	return readindex_on_ack(r);
}

int replication_recv_heartbeat_resp(struct raft *r, const struct raft_message *m)
{
	if (r->role != RAFT_LEADER)
		return 0;
	struct raft_progress *p = raft_progress_of(r, m->from);
	note_ack(r, p, m->read_seq);
	/* A live follower: resume a probe whose message may have been lost, and free one
	 * pipeline slot so a window full of lost messages cannot stall replication. */
	p->probe_sent = false;
	if (p->state == PROGRESS_REPLICATE && inflight_full(r, p)) {
		p->in_head = (p->in_head + 1) % r->cfg.max_inflight_msgs;
		p->in_count--;
	}
	if (p->match < log_last_index(&r->log)) {
		bool window_sent =
		    p->state == PROGRESS_REPLICATE && p->next > log_last_index(&r->log);
		int rv = send_append(r, p, window_sent);
		if (rv != 0)
			return rv;
	}
	return readindex_on_ack(r);
}
