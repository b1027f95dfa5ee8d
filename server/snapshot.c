/* snapshot.c — log compaction and snapshot transfer (Raft §5, Figure 5.3).
 *
 * Cairn's snapshot IS the LMDB state machine: nothing is written at compaction time. When
 * enough entries were applied, the log prefix up to (applied - catch-up entries) is dropped, on
 * disk (a storage transaction) and then in the core (raft_compact). A follower that needs a
 * dropped entry is sent the state machine instead: the leader opens a point-in-time read of
 * it (storage_snapshot_open, a read transaction) and streams it as SnapshotChunk frames on its
 * outbound connection, a chunk at a time while the connection's backlog is small. The follower
 * spools the chunks (storage_snapshot_install_*), asks the core at the last one whether the
 * snapshot is still needed (raft_snapshot_offer), and if so installs it on the storage thread
 * (one transaction, verified by its checksum first) and tells the core (raft_snapshot_installed),
 * which acknowledges it to the leader.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "server/server.h"

/* ---- sending (leader) ------------------------------------------------------------------- */

static void send_close(struct peer *p)
{
	storage_snapshot_close(p->snap);
	p->snap = NULL;
}

static uint64_t stall_ms(const struct server *s)
{
	return (uint64_t)CAIRN_SNAPSHOT_STALL_TIMEOUTS * s->cfg.election_timeout_ms;
}

/* The stream to `p` ends: tell the core how. */
static void send_end(struct server *s, struct peer *p, bool ok, const char *why)
{
	if (p->snap == NULL)
		return;
	if (ok) {
		s->snapshots_sent++;
		/* The follower still receives and installs it: do not compact past it for a
		 * while, or its acknowledgement would ask for another snapshot at once. */
		p->snap_hold_index = p->snap_meta.index;
		p->snap_hold_until = uv_now(s->loop) + stall_ms(s);
		slog(s, LOG_INFO, "snapshot at index %llu (%llu bytes) sent to member %llu",
		     (unsigned long long)p->snap_meta.index, (unsigned long long)p->snap_offset,
		     (unsigned long long)p->id);
	} else {
		slog(s, LOG_WARN, "snapshot to member %llu abandoned after %llu bytes: %s",
		     (unsigned long long)p->id, (unsigned long long)p->snap_offset, why);
	}
	send_close(p);
	raft_snapshot_sent(s->raft, uv_now(s->loop), p->id, ok);
}

void snapshot_send_start(struct server *s, raft_id to)
{
	struct peer *p = peer_by_id(s, to);
	if (p == NULL)
		return;
	if (p->snap != NULL) {
		/* The core gave up waiting (raft_config.snapshot_timeout_ms) and asks again while
		 * the stream still runs: a large state on a slow link takes longer than that.
		 * A stream that still makes progress (same leader term, same connection) is as
		 * good as a new one, so it goes on rather than start over and never finish. */
		if (p->snap_term == raft_current_term(s->raft) && p->out != NULL &&
		    p->out->id == p->snap_conn && !p->out->closing &&
		    uv_now(s->loop) < p->snap_progress_at + stall_ms(s))
			return;
		send_close(p);
	}
	char msg[STORAGE_ERRMSG_SIZE];
	int rv = storage_snapshot_open(s->store, &p->snap, &p->snap_meta, msg, sizeof(msg));
	if (rv != 0) {
		p->snap = NULL;
		slog(s, LOG_ERROR, "cannot open a snapshot for member %llu: %s (%s)",
		     (unsigned long long)to, storage_strerror(rv), msg);
		raft_snapshot_sent(s->raft, uv_now(s->loop), to, false);
		return;
	}
	if (p->out == NULL || !p->up || p->out->closing) {
		send_end(s, p, false, "no connection");
		return;
	}
	p->snap_term = raft_current_term(s->raft);
	p->snap_conn = p->out->id;
	p->snap_offset = 0;
	p->snap_progress_at = uv_now(s->loop);
	slog(s, LOG_INFO,
	     "member %llu needs compacted entries: sending a snapshot at index %llu (term %llu)",
	     (unsigned long long)to, (unsigned long long)p->snap_meta.index,
	     (unsigned long long)p->snap_meta.term);
}

static int queue_chunk(struct peer *p, const uint8_t *data, size_t len, bool done)
{
	Cairn__Peer__SnapshotChunk ch = CAIRN__PEER__SNAPSHOT_CHUNK__INIT;
	ch.term = p->snap_term;
	ch.from = p->s->cfg.id;
	ch.index = p->snap_meta.index;
	ch.index_term = p->snap_meta.term;
	ch.offset = p->snap_offset;
	ch.data.data = (uint8_t *)data;
	ch.data.len = len;
	ch.done = done;
	Cairn__Peer__PeerFrame f = CAIRN__PEER__PEER_FRAME__INIT;
	f.frame_case = CAIRN__PEER__PEER_FRAME__FRAME_SNAPSHOT;
	f.snapshot = &ch;
	if (conn_send_msg(p->out, &f.base) != 0)
		return -1;
	p->snap_offset += len;
	p->snap_progress_at = uv_now(p->s->loop);
	return 0;
}

static void pump_one(struct server *s, struct peer *p, uint8_t *buf)
{
	for (;;) {
		struct conn *c = p->out;
		if (c == NULL || c->closing || !p->up || c->id != p->snap_conn) {
			send_end(s, p, false, "the connection closed");
			return;
		}
		/* A deposed leader's stream is refused by the follower anyway (stale term) and
		 * would only compete with the new leader's. */
		if (raft_role(s->raft) != RAFT_LEADER ||
		    raft_current_term(s->raft) != p->snap_term) {
			send_end(s, p, false, "no longer the leader of that term");
			return;
		}
		if (c->out.len + c->inflight.len >= CAIRN_SNAPSHOT_QUEUE) {
			/* Come back when the socket took some of it; a follower that takes
			 * nothing for long (hung, or a blackholed link) must not pin the read
			 * transaction, and with it the map, forever. */
			if (uv_now(s->loop) >= p->snap_progress_at + stall_ms(s))
				send_end(s, p, false, "the follower takes no data (stalled)");
			return;
		}
		size_t n = 0;
		char msg[STORAGE_ERRMSG_SIZE];
		int rv =
		    storage_snapshot_read(p->snap, buf, CAIRN_SNAPSHOT_CHUNK, &n, msg, sizeof(msg));
		if (rv != 0) {
			slog(s, LOG_ERROR, "reading the snapshot for member %llu: %s (%s)",
			     (unsigned long long)p->id, storage_strerror(rv), msg);
			send_end(s, p, false, "read error");
			return;
		}
		if (queue_chunk(p, buf, n, n == 0) != 0) {
			send_end(s, p, false, "cannot queue a chunk");
			return;
		}
		if (n == 0) {
			send_end(s, p, true, NULL);
			return;
		}
	}
}

void snapshot_pump(struct server *s)
{
	for (size_t i = 0; i < s->n_peers; i++) {
		struct peer *p = &s->peers[i];
		if (p->snap == NULL)
			continue;
		if (s->snap_buf == NULL && (s->snap_buf = malloc(CAIRN_SNAPSHOT_CHUNK)) == NULL)
			return; /* try again next turn */
		pump_one(s, p, s->snap_buf);
	}
}

/* ---- receiving (follower) ------------------------------------------------------------------ */

static void recv_abort(struct server *s, const char *why)
{
	if (s->snap_in.in == NULL || s->snap_in.installing)
		return;
	if (why != NULL)
		slog(s, LOG_WARN, "snapshot from member %llu abandoned after %llu bytes: %s",
		     (unsigned long long)s->snap_in.from, (unsigned long long)s->snap_in.offset,
		     why);
	storage_snapshot_install_abort(s->snap_in.in);
	s->snap_in.in = NULL;
}

void snapshot_on_chunk(struct server *s, struct conn *c, const Cairn__Peer__SnapshotChunk *ch)
{
	char msg[STORAGE_ERRMSG_SIZE];
	if (s->snap_in.installing)
		return; /* one install at a time; the leader retries if it still matters */
	if (ch->offset == 0) {
		/* A stream from a deposed leader is refused at the end anyway; it must not cancel
		 * one from a leader of a later term. */
		if (ch->term < raft_current_term(s->raft) ||
		    (s->snap_in.in != NULL && ch->term < s->snap_in.term))
			return;
		recv_abort(s, s->snap_in.in ? "a new stream started" : NULL);
		int rv = storage_snapshot_install_begin(s->store, &s->snap_in.in, msg, sizeof(msg));
		if (rv != 0) {
			s->snap_in.in = NULL;
			slog(s, LOG_ERROR, "cannot receive a snapshot: %s (%s)",
			     storage_strerror(rv), msg);
			return;
		}
		s->snap_in.conn = c->id;
		s->snap_in.from = ch->from;
		s->snap_in.term = ch->term;
		s->snap_in.index = ch->index;
		s->snap_in.index_term = ch->index_term;
		s->snap_in.offset = 0;
		slog(s, LOG_INFO, "receiving a snapshot at index %llu (term %llu) from member %llu",
		     (unsigned long long)ch->index, (unsigned long long)ch->index_term,
		     (unsigned long long)ch->from);
	}
	if (s->snap_in.in == NULL || s->snap_in.conn != c->id)
		return; /* the tail of a stream we are not receiving */
	if (ch->offset != s->snap_in.offset || ch->from != s->snap_in.from ||
	    ch->term != s->snap_in.term || ch->index != s->snap_in.index ||
	    ch->index_term != s->snap_in.index_term) {
		recv_abort(s, "a chunk out of sequence");
		return;
	}
	if (ch->data.len > 0) {
		int rv = storage_snapshot_install_write(s->snap_in.in, ch->data.data, ch->data.len,
							msg, sizeof(msg));
		if (rv != 0) {
			slog(s, LOG_ERROR, "spooling a snapshot: %s (%s)", storage_strerror(rv),
			     msg);
			recv_abort(s, "spool error");
			return;
		}
		s->snap_in.offset += ch->data.len;
	}
	if (!ch->done)
		return;
	bool install = false;
	int rv = raft_snapshot_offer(s->raft, uv_now(s->loop), ch->from, ch->term, ch->index,
				     ch->index_term, &install);
	if (rv != 0 || !install) {
		if (rv != 0)
			slog(s, LOG_WARN, "raft_snapshot_offer: %s", raft_strerror(rv));
		else
			slog(s, LOG_INFO,
			     "snapshot at index %llu not needed (log already has it, or stale)",
			     (unsigned long long)ch->index);
		recv_abort(s, NULL);
		return;
	}
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL) {
		recv_abort(s, "out of memory");
		raft_snapshot_installed(s->raft, uv_now(s->loop), ch->index, ch->index_term, false);
		return;
	}
	j->kind = JOB_INSTALL;
	j->install = s->snap_in.in;
	j->snap_index = ch->index;
	j->snap_term = ch->index_term;
	s->snap_in.installing = true;
	worker_submit(s, j);
}

void snapshot_on_conn_closed(struct server *s, struct conn *c)
{
	if (s->snap_in.in != NULL && !s->snap_in.installing && s->snap_in.conn == c->id)
		recv_abort(s, "the connection closed");
}

/* ---- compaction ------------------------------------------------------------------------- */

void snapshot_maybe_compact(struct server *s, uint64_t applied_bytes)
{
	s->bytes_since_compact += applied_bytes;
	if (s->compacting || s->stopping)
		return;
	const struct config *cfg = &s->cfg;
	raft_index first = raft_first_index(s->raft);
	raft_index keep = cfg->snapshot_catchup;
	if (s->applied <= keep)
		return;
	raft_index upto = s->applied - keep;
	bool by_count = upto + 1 >= first + cfg->snapshot_count;
	bool by_bytes = s->bytes_since_compact >= CAIRN_COMPACT_BYTES;
	if (!by_count && !by_bytes)
		return;
	/* A stream in flight, or sent and not yet installed, ends at its index; compacting past
	 * it would make the follower that installs it need a snapshot again at once. */
	uint64_t now = uv_now(s->loop);
	for (size_t i = 0; i < s->n_peers; i++) {
		const struct peer *p = &s->peers[i];
		if (p->snap != NULL && p->snap_meta.index < upto)
			upto = p->snap_meta.index;
		if (p->snap == NULL && now < p->snap_hold_until && p->snap_hold_index < upto)
			upto = p->snap_hold_index;
	}
	if (upto < first)
		return;
	struct job *j = calloc(1, sizeof(*j));
	if (j == NULL)
		return; /* next time */
	j->kind = JOB_COMPACT;
	j->compact_upto = upto;
	s->compacting = true;
	s->bytes_since_compact = 0;
	worker_submit(s, j);
}

/* ---- storage jobs done --------------------------------------------------------------------- */

void snapshot_on_job_done(struct server *s, struct job *j)
{
	uint64_t now = uv_now(s->loop);
	if (j->kind == JOB_COMPACT) {
		s->compacting = false;
		if (j->status != 0) {
			slog(s, LOG_WARN, "log compaction up to %llu failed: %s (%s)",
			     (unsigned long long)j->compact_upto, storage_strerror(j->status),
			     j->errmsg);
			return;
		}
		int rv = raft_compact(s->raft, j->compact_upto);
		if (rv != 0) {
			/* The disk log is compacted; the core keeps its copy until next time. */
			slog(s, LOG_WARN, "raft_compact(%llu): %s",
			     (unsigned long long)j->compact_upto, raft_strerror(rv));
			return;
		}
		s->compactions++;
		s->trim_after_ms = now + CAIRN_TRIM_DELAY_MS;
		slog(s, LOG_INFO, "log compacted up to %llu", (unsigned long long)j->compact_upto);
		return;
	}
	/* JOB_INSTALL */
	s->trim_after_ms = now + CAIRN_TRIM_DELAY_MS; /* the old log goes, whatever the outcome */
	s->snap_in.in = NULL; /* the worker consumed it */
	s->snap_in.installing = false;
	if (j->status != 0) {
		slog(s, LOG_ERROR, "installing the snapshot at index %llu failed: %s (%s)",
		     (unsigned long long)j->snap_index, storage_strerror(j->status), j->errmsg);
		raft_snapshot_installed(s->raft, now, j->snap_index, j->snap_term, false);
		return;
	}
	if (j->meta.index != j->snap_index || j->meta.term != j->snap_term) {
		/* The stream's own header disagrees with the frames that carried it: the state
		 * machine now holds something Raft was not told about. Never serve from it. */
		slog(s, LOG_ERROR,
		     "FATAL: installed snapshot is at %llu/%llu but was announced as %llu/%llu; "
		     "exiting",
		     (unsigned long long)j->meta.index, (unsigned long long)j->meta.term,
		     (unsigned long long)j->snap_index, (unsigned long long)j->snap_term);
		fflush(stderr);
		_exit(3);
	}
	s->applied = j->meta.index;
	if (s->replied < j->meta.index)
		s->replied = j->meta.index;
	s->applied_term = j->meta.term;
	s->revision = j->meta.revision;
	s->snapshots_installed++;
	s->bytes_since_compact = 0;
	slog(s, LOG_INFO, "installed a snapshot at index %llu (term %llu, revision %llu)",
	     (unsigned long long)j->meta.index, (unsigned long long)j->meta.term,
	     (unsigned long long)j->meta.revision);
	int rv = raft_snapshot_installed(s->raft, now, j->snap_index, j->snap_term, true);
	if (rv != 0)
		slog(s, LOG_WARN, "raft_snapshot_installed: %s", raft_strerror(rv));
}

void snapshot_stop(struct server *s)
{
	for (size_t i = 0; i < s->n_peers; i++)
		send_close(&s->peers[i]);
	free(s->snap_buf);
	s->snap_buf = NULL;
	if (s->snap_in.in != NULL && !s->snap_in.installing) {
		storage_snapshot_install_abort(s->snap_in.in);
		s->snap_in.in = NULL;
	}
}
