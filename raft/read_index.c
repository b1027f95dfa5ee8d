/* read_index.c — linearizable reads without log writes: ReadIndex with shared heartbeat rounds
 * (§6.4). */
#include <stdlib.h>
#include <string.h>

#include "raft/raft_int.h"

/* How it works. A read waits until the leader has committed an entry of its own term (so
 * its commit index is at least every index committed before). Then it joins a "round": the
 * leader records its commit index as the read index, bumps read_seq and sends heartbeats
 * carrying it; every AppendEntries and heartbeat response echoes the seq. Once a majority
 * (the leader included) acknowledged a seq, the leader was still the leader when every read
 * of that round arrived, and they may be served once applied >= read index. Only one round
 * is outstanding at a time: reads that arrive meanwhile all share the next one, so a busy
 * leader sends one heartbeat per follower per round trip, not one per read. */

static bool round_outstanding(const struct raft *r)
{
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].seq != 0)
			return true;
	return false;
}

static bool has_unassigned(const struct raft *r)
{
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].seq == 0)
			return true;
	return false;
}

static int answer(struct raft *r, const struct raft_pending_read *rd, int err)
{
	if (rd->from == 0)
		return raft_push_read_result(r, rd->ctx, rd->index, err);
	struct raft_message m = {
	    .type = RAFT_MSG_READ_INDEX_RESP,
	    .to = rd->from,
	    .read_ctx = rd->ctx,
	    .index = rd->index,
	    .reject = err != 0,
	};
	return raft_send(r, &m);
}

/* The highest round acknowledged by a majority of voters. */
static uint64_t confirmed_seq(struct raft *r)
{
	uint64_t acks[64] = {0};
	uint64_t *v = acks;
	if (r->n_voters > sizeof(acks) / sizeof(acks[0])) {
		v = malloc(r->n_voters * sizeof(*v));
		if (v == NULL)
			return 0; /* retried at the next acknowledgement */
	}
	size_t n = 0;
	for (size_t i = 0; i < r->n_peers; i++) {
		const struct raft_progress *p = &r->peers[i];
		if (p->voter)
			v[n++] = p->id == r->id ? r->read_seq : p->read_ack;
	}
	/* quorum-th largest by partial selection: small n */
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (v[j] > v[i]) {
				uint64_t t = v[i];
				v[i] = v[j];
				v[j] = t;
			}
	uint64_t c = v[raft_quorum(r) - 1];
	if (v != acks)
		free(v);
	return c;
}

static int serve_confirmed(struct raft *r)
{
	uint64_t c = confirmed_seq(r);
	size_t keep = 0;
	int rv = 0;
	for (size_t i = 0; i < r->n_reads; i++) {
		struct raft_pending_read *rd = &r->reads[i];
		if (rv == 0 && rd->seq != 0 && rd->seq <= c) {
			rv = answer(r, rd, 0);
			if (rv == 0)
				continue;
		}
		r->reads[keep++] = *rd;
	}
	r->n_reads = keep;
	return rv;
}

int readindex_start_round(struct raft *r)
{
	if (r->role != RAFT_LEADER || !r->committed_in_term || !has_unassigned(r) ||
	    round_outstanding(r))
		return 0;
	r->read_seq++;
	r->stats.read_rounds++;
	for (size_t i = 0; i < r->n_reads; i++)
		if (r->reads[i].seq == 0) {
			r->reads[i].seq = r->read_seq;
			r->reads[i].index = r->commit;
		}
	if (r->n_voters > 1) {
		int rv = replication_broadcast_heartbeat(r);
		if (rv != 0)
			return rv;
	}
	return serve_confirmed(r); /* a lone voter confirms at once */
}

int readindex_on_ack(struct raft *r)
{
	if (r->role != RAFT_LEADER)
		return 0;
	int rv = serve_confirmed(r);
	if (rv != 0)
		return rv;
	return readindex_start_round(r);
}

int readindex_recv_request(struct raft *r, const struct raft_message *m)
{
	struct raft_pending_read rd = {.ctx = m->read_ctx, .from = m->from};
	if (r->role != RAFT_LEADER)
		return answer(r, &rd, r->leader == 0 ? RAFT_ENOLEADER : RAFT_ENOTLEADER);
	if (r->n_reads == r->cap_reads) {
		size_t cap = r->cap_reads ? r->cap_reads * 2 : 16;
		struct raft_pending_read *v = realloc(r->reads, cap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		r->reads = v;
		r->cap_reads = cap;
	}
	r->reads[r->n_reads++] = rd;
	return 0; /* the round starts at the next raft_take_update() */
}

/* A follower forwards a read to its leader and remembers it, so that a duplicated or late
 * answer is not reported twice, and so that the read fails if the leader changes or if no
 * answer comes within an election timeout (the request or its answer was lost). */
static void fwd_remove(struct raft *r, size_t i)
{
	memmove(r->fwd_reads + i, r->fwd_reads + i + 1,
		(r->n_fwd_reads - i - 1) * sizeof(*r->fwd_reads));
	r->n_fwd_reads--;
}

int readindex_forward(struct raft *r, uint64_t ctx)
{
	if (r->n_fwd_reads >= RAFT_MAX_FORWARDED_READS) {
		uint64_t old = r->fwd_reads[0].ctx;
		fwd_remove(r, 0);
		int rv = raft_push_read_result(r, old, 0, RAFT_ELEADERLOST);
		if (rv != 0)
			return rv;
	}
	if (r->n_fwd_reads == r->cap_fwd_reads) {
		size_t cap = r->cap_fwd_reads ? r->cap_fwd_reads * 2 : 16;
		struct raft_fwd_read *v = realloc(r->fwd_reads, cap * sizeof(*v));
		if (v == NULL)
			return RAFT_ENOMEM;
		r->fwd_reads = v;
		r->cap_fwd_reads = cap;
	}
	struct raft_message m = {.type = RAFT_MSG_READ_INDEX, .to = r->leader, .read_ctx = ctx};
	int rv = raft_send(r, &m);
	if (rv == 0)
		r->fwd_reads[r->n_fwd_reads++] = (struct raft_fwd_read){
		    .ctx = ctx, .deadline = r->now + r->cfg.election_timeout_ms};
	return rv;
}

int readindex_recv_response(struct raft *r, const struct raft_message *m)
{
	for (size_t i = 0; i < r->n_fwd_reads; i++) {
		if (r->fwd_reads[i].ctx != m->read_ctx)
			continue;
		fwd_remove(r, i);
		return raft_push_read_result(r, m->read_ctx, m->index,
					     m->reject ? RAFT_ELEADERLOST : 0);
	}
	return 0; /* a duplicate, or already failed */
}

/* The leader we forwarded to is gone: its answers can no longer be trusted to arrive. */
int readindex_fail_forwarded(struct raft *r)
{
	int rv = 0;
	for (size_t i = 0; i < r->n_fwd_reads; i++) {
		int e = raft_push_read_result(r, r->fwd_reads[i].ctx, 0, RAFT_ELEADERLOST);
		if (rv == 0)
			rv = e;
	}
	r->n_fwd_reads = 0;
	return rv;
}

/* Forwarded reads whose answer is overdue (deadlines are in forwarding order). */
int readindex_expire_forwarded(struct raft *r)
{
	while (r->n_fwd_reads > 0 && r->fwd_reads[0].deadline <= r->now) {
		uint64_t ctx = r->fwd_reads[0].ctx;
		fwd_remove(r, 0);
		int rv = raft_push_read_result(r, ctx, 0, RAFT_ELEADERLOST);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Leadership is lost: no pending read can be confirmed any more. */
int readindex_fail_all(struct raft *r)
{
	int rv = 0;
	for (size_t i = 0; i < r->n_reads; i++) {
		int e = answer(r, &r->reads[i], RAFT_ELEADERLOST);
		if (rv == 0)
			rv = e;
	}
	r->n_reads = 0;
	return rv;
}

bool readindex_round_wanted(const struct raft *r)
{
	return r->role == RAFT_LEADER && r->committed_in_term && has_unassigned(r) &&
	       !round_outstanding(r);
}
