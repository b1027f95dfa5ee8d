/* snapshot.c — log compaction and snapshots (Chapter 5, Figure 5.3 InstallSnapshot): the core's
 * side only; the state machine's bytes never pass through it. */
#include <stdlib.h>

#include "raft/raft_int.h"

/* How it works. Each server compacts its own log once its state machine durably holds a
 * prefix (§5.1, raft_compact). A leader that must send a follower an entry it compacted asks
 * its host, once, to stream the state machine instead (send_snapshot) and stops appending to
 * that follower (progress state SNAPSHOT) until the follower answers with an APPEND_RESP
 * success; heartbeats go on, so the follower keeps its leader and check-quorum counts it.
 * The follower's host hands the complete snapshot to raft_snapshot_offer(), which decides like
 * an AppendEntries whose prev is the snapshot's last entry: nothing to do when that entry is
 * already committed here or in our log (Figure 5.3: "if existing log entry has same index and term
 * as snapshot's last included entry, retain log entries following it"), otherwise install it
 * and discard the entire log. The install is durable before raft_snapshot_installed(), which
 * acknowledges it to the leader. */

static void advance_clock(struct raft *r, uint64_t now)
{
	if (now > r->now)
		r->now = now;
}

/* ---- compaction (§5.1) ---------------------------------------------------- */

int raft_compact(struct raft *r, raft_index index)
{
	if (index < r->log.first)
		return 0;
	/* Only what is committed and durable here can be in the host's state machine; a longer
	 * prefix would be a host bug that loses entries. */
	if (index > r->commit || index > r->persisted)
		return RAFT_EINVAL;
	int rv = ptrs_reserve(&r->graveyard, index - r->log.first + 1);
	if (rv != 0)
		return rv;
	log_compact(&r->log, index, &r->graveyard);
	/* The host holds these in its state machine: they are never to be handed out again. */
	if (r->emitted < index)
		r->emitted = index;
	r->stats.compactions++;
	return 0;
}

/* ---- leader side --------------------------------------------------------- */

/* `p` needs entries we compacted: ask the host for a snapshot, unless one failed less than
 * an election timeout ago (then `p` waits in PROBE; the next heartbeat answer after that
 * retries). */
int snapshot_need(struct raft *r, struct raft_progress *p)
{
	if (r->role != RAFT_LEADER || p->id == r->id || r->now < p->snap_retry_at)
		return 0;
	bool asked = false;
	for (size_t i = 0; i < r->n_out_snap; i++)
		asked = asked || r->out_snap[i] == p->id;
	if (!asked) {
		if (r->n_out_snap == r->cap_out_snap) {
			size_t cap = r->cap_out_snap ? r->cap_out_snap * 2 : 4;
			raft_id *v = realloc(r->out_snap, cap * sizeof(*v));
			if (v == NULL)
				return RAFT_ENOMEM;
			r->out_snap = v;
			r->cap_out_snap = cap;
		}
		r->out_snap[r->n_out_snap++] = p->id;
		r->stats.snapshots_sent++;
	}
	p->state = PROGRESS_SNAPSHOT;
	p->probe_sent = false;
	p->in_head = 0;
	p->in_count = 0;
	p->snap_deadline = r->now + r->cfg.snapshot_timeout_ms;
	return 0;
}

/* The snapshot to `p` failed or was given up on: probe again from our last index (the
 * follower may have installed it and lost only its answer), and ask for another snapshot no
 * sooner than an election timeout from now. */
static int snapshot_abort(struct raft *r, struct raft_progress *p)
{
	r->stats.snapshots_aborted++;
	p->snap_retry_at = r->now + r->cfg.election_timeout_ms;
	progress_become_probe(p, log_last_index(&r->log) + 1);
	return replication_send_append(r, p);
}

int raft_snapshot_sent(struct raft *r, uint64_t now, raft_id to, bool ok)
{
	advance_clock(r, now);
	if (r->role != RAFT_LEADER)
		return 0;
	struct raft_progress *p = raft_progress_of(r, to);
	if (p == NULL || p->id == r->id || p->state != PROGRESS_SNAPSHOT)
		return 0; /* a stream the core no longer waits for */
	if (ok) {
		/* Every byte left; the follower still has to install it: wait again. */
		p->snap_deadline = r->now + r->cfg.snapshot_timeout_ms;
		return 0;
	}
	return snapshot_abort(r, p);
}

/* Leader timer: snapshots neither reported nor answered in time are given up. */
int snapshot_tick(struct raft *r)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		if (p->state != PROGRESS_SNAPSHOT || r->now < p->snap_deadline)
			continue;
		int rv = snapshot_abort(r, p);
		if (rv != 0)
			return rv;
	}
	return 0;
}

uint64_t snapshot_next_deadline(const struct raft *r, uint64_t t)
{
	for (size_t i = 0; i < r->n_peers; i++) {
		const struct raft_progress *p = &r->peers[i];
		if (p->state == PROGRESS_SNAPSHOT && p->snap_deadline < t)
			t = p->snap_deadline;
	}
	return t;
}

/* Leadership changed: asks not yet handed out would be tagged with a term this node does not
 * lead (or lead with fresh progress states), so they are dropped. */
void snapshot_forget_asks(struct raft *r)
{
	r->n_out_snap = 0;
}

/* ---- follower side (Figure 5.3, receiver implementation) ---------------- */

int raft_snapshot_offer(struct raft *r, uint64_t now, raft_id from, raft_term term,
			raft_index index, raft_term index_term, bool *install)
{
	bool ignored;
	if (install == NULL)
		install = &ignored;
	*install = false;
	advance_clock(r, now);
	if (r->installing || from == r->id || raft_progress_of(r, from) == NULL)
		return 0;
	struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = from};
	int rv;
	if (term < r->term) {
		/* Figure 5.3: "reply immediately if term < currentTerm"; our term in the answer
		 * makes a deposed leader step down, as for a stale AppendEntries. */
		resp.reject = true;
		resp.index = index;
		return raft_send(r, &resp);
	}
	if (term == r->term && r->role == RAFT_LEADER)
		return 0; /* another leader of our term cannot exist (§3.6.3): a confused sender */
	if (term > r->term) {
		rv = election_become_follower(r, term, from);
		if (rv != 0)
			return rv;
	}
	rv = replication_heard_from_leader(r, from);
	if (rv != 0)
		return rv;

	raft_index last = log_last_index(&r->log);
	bool have =
	    index + 1 >= r->log.first && index <= last && log_term_at(&r->log, index) == index_term;
	if (r->commit >= index || have) {
		/* Like an AppendEntries whose prev matches: our log already agrees with the leader
		 * up to index. The snapshot is of applied, hence committed, state: by Log Matching
		 * so is our prefix up to it. */
		if (r->commit < index)
			r->commit = index;
		resp.index = r->commit > index ? r->commit : index;
		return raft_send(r, &resp);
	}

	/* raft_snapshot_installed() drops the whole log into the graveyard and must not fail:
	 * make room now in both graveyards (raft_take_update() swaps them). The log cannot grow
	 * while installing, and compaction moves entries from the log to the graveyard. */
	rv = ptrs_reserve(&r->graveyard, r->log.n);
	if (rv == 0)
		rv = ptrs_reserve(&r->old_graveyard, r->log.n);
	if (rv != 0)
		return rv;
	r->installing = true;
	r->install_index = index;
	r->install_term = index_term;
	*install = true;
	return 0;
}

int raft_snapshot_installed(struct raft *r, uint64_t now, raft_index index, raft_term index_term,
			    bool ok)
{
	advance_clock(r, now);
	if (!r->installing || index != r->install_index || index_term != r->install_term)
		return RAFT_EINVAL;
	r->installing = false;
	if (!ok)
		return 0; /* nothing changed; the leader sends it again if still needed */

	/* Figure 5.3 step 7: discard the entire log. What this follower held beyond index is
	 * either the leader's (then it is sent again) or a conflicting uncommitted suffix. */
	log_reset(&r->log, index, index_term, &r->graveyard);
	r->persisted = index;
	r->unstable_from = index + 1;
	r->truncate_from = 0; /* the install replaced the disk log: nothing left to delete */
	if (r->commit < index)
		r->commit = index;
	/* Figure 5.3 step 8: the state machine is the snapshot; never apply entries it holds. */
	if (r->emitted < index)
		r->emitted = index;
	r->stats.snapshots_installed++;
	r->election_deadline = r->now + raft_random_timeout(r);
	if (r->role != RAFT_FOLLOWER || r->leader == 0)
		return 0;
	struct raft_message resp = {.type = RAFT_MSG_APPEND_RESP, .to = r->leader, .index = index};
	return raft_send_now(r, &resp);
}
