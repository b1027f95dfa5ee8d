/* election.c — roles, timeouts, pre-vote and voting (§3.4, §9.6), check-quorum (§6.2). */
#include <string.h>

#include "raft/raft_int.h"

/* §4.2.3 / §6.2: while a follower hears from a leader within the election timeout (or while
 * we are the leader, kept honest by check-quorum) vote requests are ignored. */
bool election_in_lease(const struct raft *r)
{
	if (r->cfg.disable_check_quorum)
		return false;
	if (r->role == RAFT_LEADER)
		return true;
	return r->leader != 0 && r->heard_leader &&
	       r->now < r->last_leader_contact + r->cfg.election_timeout_ms;
}

static void reset_election_timer(struct raft *r)
{
	r->election_deadline = r->now + raft_random_timeout(r);
}

int election_become_follower(struct raft *r, raft_term term, raft_id leader)
{
	int rv = 0;
	bool was_leader = r->role == RAFT_LEADER;
	if (term > r->term) {
		r->term = term;
		r->vote = 0;
		r->hs_dirty = true;
	}
	r->role = RAFT_FOLLOWER;
	if (r->leader != leader && r->n_fwd_reads > 0) {
		rv = readindex_fail_forwarded(r);
		if (rv != 0)
			return rv;
	}
	r->leader = leader;
	if (leader != 0) {
		r->last_leader_contact = r->now;
		r->heard_leader = true;
	}
	r->transfer_target = 0;
	reset_election_timer(r);
	if (was_leader) {
		r->stats.stepped_down++;
		snapshot_forget_asks(r);
		rv = readindex_fail_all(r);
	}
	return rv;
}

static int become_leader(struct raft *r)
{
	r->role = RAFT_LEADER;
	r->leader = r->id;
	r->transfer_target = 0;
	r->committed_in_term = false;
	r->read_seq = 0;
	r->stats.became_leader++;
	snapshot_forget_asks(r);
	raft_index last = log_last_index(&r->log);
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		progress_reset(r, p);
		p->next = last + 1;
		p->match = 0;
		p->recent_active = false;
		p->read_ack = 0;
		if (p->id == r->id) {
			p->match = r->persisted;
			p->state = PROGRESS_REPLICATE;
		}
	}
	r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
	r->quorum_deadline = r->now + r->cfg.election_timeout_ms;
	/* §6.4 / §8: a no-op entry at the start of the term lets the leader learn which entries
	 * are committed and serve reads. */
	int rv = log_append(&r->log, r->term, RAFT_ENTRY_NOOP, NULL, 0);
	if (rv != 0)
		return rv;
	rv = replication_broadcast_append(r);
	if (rv != 0)
		return rv;
	return replication_maybe_commit(r); /* a lone voter commits once persisted */
}

static size_t count_votes(const struct raft *r, int value)
{
	size_t n = 0;
	for (size_t i = 0; i < r->n_peers; i++)
		if (r->peers[i].voter && r->peers[i].vote == value)
			n++;
	return n;
}

/* Starts a pre-vote round (§9.6) or a real election (§3.4). A transfer election skips the
 * pre-vote and tells voters to ignore their leader lease (§3.10). */
int election_start(struct raft *r, bool pre_vote, bool transfer)
{
	int rv;
	struct raft_progress *self = raft_progress_of(r, r->id);
	if (self == NULL || !self->voter)
		return 0;
	if (r->installing) {
		/* §5.1, Figure 5.3: the log is being replaced; a leader could not use it, and a
		 * candidate's no-op would have to be persisted on top of the install. Wait for it
		 * instead. */
		reset_election_timer(r);
		return 0;
	}
	for (size_t i = 0; i < r->n_peers; i++)
		r->peers[i].vote = -1;
	self->vote = 1;
	reset_election_timer(r);
	raft_term campaign_term = r->term + 1;
	int type;
	if (r->n_fwd_reads > 0) {
		rv = readindex_fail_forwarded(r);
		if (rv != 0)
			return rv;
	}
	if (pre_vote) {
		r->role = RAFT_PRE_CANDIDATE;
		r->leader = 0;
		r->stats.pre_votes_started++;
		type = RAFT_MSG_PREVOTE;
	} else {
		r->role = RAFT_CANDIDATE;
		r->leader = 0;
		r->term = campaign_term;
		r->vote = r->id;
		r->hs_dirty = true;
		r->stats.elections_started++;
		type = RAFT_MSG_VOTE;
	}
	if (count_votes(r, 1) >= raft_quorum(r)) {
		if (pre_vote)
			return election_start(r, false, transfer);
		return become_leader(r);
	}
	for (size_t i = 0; i < r->n_peers; i++) {
		struct raft_progress *p = &r->peers[i];
		if (p->id == r->id || !p->voter)
			continue;
		struct raft_message m = {
		    .type = (uint8_t)type,
		    .to = p->id,
		    .term = campaign_term,
		    .last_log_index = log_last_index(&r->log),
		    .last_log_term = log_last_term(&r->log),
		    .transfer = transfer,
		};
		rv = raft_send(r, &m);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* §3.6.1: the candidate's log is at least as up-to-date as ours. */
static bool log_up_to_date(const struct raft *r, raft_term last_term, raft_index last_index)
{
	raft_term my_term = log_last_term(&r->log);
	return last_term > my_term ||
	       (last_term == my_term && last_index >= log_last_index(&r->log));
}

int election_recv_vote(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE;
	bool can_vote =
	    r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
	bool grant = can_vote && log_up_to_date(r, m->last_log_term, m->last_log_index);
	struct raft_message resp = {
	    .type = pre ? RAFT_MSG_PREVOTE_RESP : RAFT_MSG_VOTE_RESP,
	    .to = m->from,
	    .reject = !grant,
	};
	if (grant) {
		if (pre) {
			resp.term =
			    m->term; /* the pre-candidate counts grants for its future term */
		} else {
			r->vote = m->from;
			r->hs_dirty = true;
			reset_election_timer(r);
		}
	}
	return raft_send(r, &resp);
}

int election_recv_vote_resp(struct raft *r, const struct raft_message *m)
{
	bool pre = m->type == RAFT_MSG_PREVOTE_RESP;
	if (pre && r->role != RAFT_PRE_CANDIDATE)
		return 0;
	if (!pre && r->role != RAFT_CANDIDATE)
		return 0;
	if (pre && !m->reject && m->term != r->term + 1)
		return 0; /* a grant for another round */
	struct raft_progress *p = raft_progress_of(r, m->from);
	if (p == NULL || !p->voter)
		return 0;
	if (p->vote == -1)
		p->vote = m->reject ? 0 : 1;
	size_t q = raft_quorum(r);
	if (count_votes(r, 1) >= q) {
		if (pre)
			return election_start(r, false, false);
		return become_leader(r);
	}
	if (count_votes(r, 0) >= q)
		return election_become_follower(r, r->term, 0);
	return 0;
}

/* Timer events: election timeouts for non-leaders; heartbeats, check-quorum and the
 * transfer deadline for the leader. */
int election_tick(struct raft *r)
{
	int rv;
	if (r->role != RAFT_LEADER) {
		rv = readindex_expire_forwarded(r);
		if (rv != 0)
			return rv;
		if (r->now < r->election_deadline)
			return 0;
		struct raft_progress *self = raft_progress_of(r, r->id);
		if (self == NULL || !self->voter) {
			reset_election_timer(r);
			return 0;
		}
		return election_start(r, !r->cfg.disable_pre_vote, false);
	}

	if (r->transfer_target != 0 && r->now >= r->transfer_deadline)
		r->transfer_target = 0; /* §3.10: abandon; accept proposals again */

	rv = snapshot_tick(r);
	if (rv != 0)
		return rv;

	if (r->now >= r->quorum_deadline) {
		r->quorum_deadline = r->now + r->cfg.election_timeout_ms;
		if (!r->cfg.disable_check_quorum) {
			size_t active = 0;
			for (size_t i = 0; i < r->n_peers; i++) {
				struct raft_progress *p = &r->peers[i];
				if (p->voter && (p->id == r->id || p->recent_active))
					active++;
				p->recent_active = false;
			}
			if (active < raft_quorum(r)) {
				/* §6.2: a leader that cannot reach a majority steps down, so
				 * clients look for the real leader and its reads stop. */
				r->stats.check_quorum_step_downs++;
				return election_become_follower(r, r->term, 0);
			}
		}
	}

	if (r->now >= r->heartbeat_deadline) {
		r->heartbeat_deadline = r->now + r->cfg.heartbeat_ms;
		rv = replication_broadcast_heartbeat(r);
		if (rv != 0)
			return rv;
	}
	return 0;
}

int raft_peer_lost(struct raft *r, uint64_t now, raft_id id)
{
	if (now > r->now)
		r->now = now;
	if (r->role != RAFT_FOLLOWER || r->leader != id || id == 0)
		return 0;
	r->heard_leader = false;
	uint64_t soon =
	    r->now + r->cfg.heartbeat_ms + r->cfg.rand(r->cfg.rand_ctx) % r->cfg.heartbeat_ms;
	if (soon < r->election_deadline)
		r->election_deadline = soon;
	return 0;
}
