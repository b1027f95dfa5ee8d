/* transfer.c — leadership transfer (§3.10): catch the target up, then tell it to campaign. */
#include "raft/raft_int.h"

/* Called when the transfer starts and whenever the target acknowledges entries. */
int transfer_on_progress(struct raft *r, struct raft_progress *p)
{
	if (r->role != RAFT_LEADER || r->transfer_target != p->id)
		return 0;
	if (p->match == log_last_index(&r->log)) {
		struct raft_message m = {.type = RAFT_MSG_TIMEOUT_NOW, .to = p->id};
		return raft_send(r, &m);
	}
	return replication_send_append(r, p);
}

/* The leader asks us to start an election at once, skipping pre-vote; voters ignore their
 * leader lease for it because the message says it is a transfer. */
int transfer_recv_timeout_now(struct raft *r, const struct raft_message *m)
{
	(void)m;
	struct raft_progress *self = raft_progress_of(r, r->id);
	if (self == NULL || !self->voter || r->role == RAFT_LEADER)
		return 0;
	return election_start(r, false, true);
}
