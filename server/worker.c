/* worker.c — the storage threads, off the event loop: one appends to the log (group commit, one
 * write + one flush per batch), the other applies committed entries to the state machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "server/server.h"

/* Decodes committed entries into storage commands. Normal entries carry a peer.Command; the
 * protobuf objects must live until storage_apply returns. */
struct decoded {
	struct storage_cmd *cmds;
	Cairn__Peer__Command **pb;
	struct txn_build *tb;
	size_t n;
};

static void decoded_free(struct decoded *d)
{
	for (size_t i = 0; i < d->n; i++) {
		if (d->pb && d->pb[i])
			cairn__peer__command__free_unpacked(d->pb[i], NULL);
		if (d->tb)
			convert_txn_free(&d->tb[i]);
	}
	free(d->cmds);
	free(d->pb);
	free(d->tb);
	memset(d, 0, sizeof(*d));
}

static int decode_entries(const struct storage_entry *e, size_t n, struct decoded *d)
{
	memset(d, 0, sizeof(*d));
	d->cmds = calloc(n, sizeof(*d->cmds));
	d->pb = calloc(n, sizeof(*d->pb));
	d->tb = calloc(n, sizeof(*d->tb));
	d->n = n;
	if (d->cmds == NULL || d->pb == NULL || d->tb == NULL)
		return STORAGE_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct storage_cmd *c = &d->cmds[i];
		c->index = e[i].index;
		c->term = e[i].term;
		c->type = STORAGE_CMD_NOOP;
		if (e[i].type != RAFT_ENTRY_NORMAL)
			continue;
		Cairn__Peer__Command *pc = cairn__peer__command__unpack(NULL, e[i].len, e[i].data);
		if (pc == NULL) {
			/* Cannot happen for entries this code wrote. Every replica decodes the same
			 * bytes the same way, so answering "malformed" keeps them identical. */
			c->type = STORAGE_CMD_MALFORMED;
			continue;
		}
		d->pb[i] = pc;
		if (pc->cmd_case == CAIRN__PEER__COMMAND__CMD_OPEN_SESSION) {
			c->type = STORAGE_CMD_REGISTER_SESSION;
		} else if (pc->cmd_case == CAIRN__PEER__COMMAND__CMD_TXN) {
			c->type = STORAGE_CMD_TXN;
			c->client_id = pc->client_id;
			c->seq = pc->seq;
			int rv = convert_txn(pc->txn, &d->tb[i]);
			if (rv == STORAGE_ENOMEM)
				return rv;
			if (rv != 0) {
				/* The leader validated it before proposing, so only a bug or a
				 * foreign writer gets here; storage answers it as malformed,
				 * identically on every replica, instead of applying an empty
				 * transaction. */
				c->type = STORAGE_CMD_MALFORMED;
				continue;
			}
			c->txn = d->tb[i].txn;
		} else {
			c->type = STORAGE_CMD_MALFORMED;
		}
	}
	return 0;
}

static _Noreturn void fatal(struct worker *w, const char *what, int err, const char *msg)
{
	/* fsyncgate: after a failed fsync the kernel may have dropped dirty pages; the only
	 * safe reaction is to stop, and let Raft recover from the other replicas and the log. */
	slog(w->s, LOG_ERROR, "FATAL: %s failed: %s (%s); exiting", what, storage_strerror(err),
	     msg);
	fflush(stderr);
	_exit(3);
}

/* The disk (log thread) or the map (apply thread) is full: tell the loop (it refuses new
 * writes while either thread waits), wait a second, retry. `flag` is the calling thread's.
 * Returns true when the server is stopping instead. */
static bool wait_for_space(struct worker *w, bool *flag, const char *what, int err,
			   const char *msg)
{
	pthread_mutex_lock(&w->mu);
	bool first = !*flag;
	*flag = true;
	bool stop = w->stop;
	pthread_mutex_unlock(&w->mu);
	if (first)
		slog(w->s, LOG_ERROR, "%s: %s (%s); refusing writes, retrying every second", what,
		     storage_strerror(err), msg);
	if (stop)
		return true;
	struct timespec ts = {1, 0};
	nanosleep(&ts, NULL);
	return false;
}

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Reads how full the store is, at most every CAIRN_SPACE_REFRESH_MS; from either thread
 * (a read transaction). Returns true when it took a reading. */
static bool refresh_space(struct worker *w, bool force)
{
	uint64_t now = mono_ms();
	pthread_mutex_lock(&w->mu);
	bool due = force || now >= w->space_at_ms + CAIRN_SPACE_REFRESH_MS;
	pthread_mutex_unlock(&w->mu);
	if (!due)
		return false;
	struct storage_space sp;
	if (storage_space(w->s->store, &sp, NULL, 0) != 0)
		return false;
	pthread_mutex_lock(&w->mu);
	w->space = sp;
	w->space_seq++;
	w->space_at_ms = now;
	pthread_mutex_unlock(&w->mu);
	return true;
}

bool worker_space_refresh(struct server *s)
{
	return refresh_space(&s->worker, false);
}

void worker_space(struct server *s, struct storage_space *out, uint64_t *seq)
{
	struct worker *w = &s->worker;
	pthread_mutex_lock(&w->mu);
	*out = w->space;
	*seq = w->space_seq;
	pthread_mutex_unlock(&w->mu);
}

static void space_ok(struct worker *w, bool *flag)
{
	pthread_mutex_lock(&w->mu);
	bool was = *flag;
	*flag = false;
	bool still = w->nospace_log || w->nospace_apply;
	pthread_mutex_unlock(&w->mu);
	if (was && !still)
		slog(w->s, LOG_INFO, "space available again: accepting writes");
}

/* Hands each JOB_APPLY of the batch its slice of the results. */
static void distribute_results(struct worker *w, struct job *batch,
			       const struct storage_result *res)
{
	size_t na = 0;
	for (struct job *j = batch; j; j = j->next) {
		j->results = malloc(j->n_apply * sizeof(*j->results));
		if (j->results == NULL)
			fatal(w, "allocation", STORAGE_ENOMEM, "results");
		memcpy(j->results, res + na, j->n_apply * sizeof(*res));
		na += j->n_apply;
	}
}

/* Called with a batch's results as soon as they are computed, before the commit (the entries
 * are committed in Raft: durable on a majority, and re-applied identically from the log after
 * a crash), so the loop may answer the clients now, while the disk works. The job structs stay
 * the worker's until they come back through the done list; the loop only reads `results`. */
static void post_results(struct worker *w, struct job *batch, const struct storage_result *res)
{
	distribute_results(w, batch, res);
	pthread_mutex_lock(&w->mu);
	for (struct job *j = batch; j; j = j->next) {
		j->early_next = NULL;
		if (w->early_tail)
			w->early_tail->early_next = j;
		else
			w->early_head = j;
		w->early_tail = j;
	}
	pthread_mutex_unlock(&w->mu);
	uv_async_send(&w->done_async);
}

/* Hands a finished segment (a NULL-terminated list) back to the loop. */
static void hand_back(struct worker *w, struct job *seg)
{
	pthread_mutex_lock(&w->mu);
	for (struct job *j = seg, *next; j; j = next) {
		next = j->next;
		j->next = NULL;
		if (w->done_tail)
			w->done_tail->next = j;
		else
			w->done_head = j;
		w->done_tail = j;
	}
	pthread_mutex_unlock(&w->mu);
	uv_async_send(&w->done_async);
}

/* Concatenates the entries of a list of JOB_APPLY and decodes them. */
static size_t gather(struct worker *w, struct job *list, struct storage_entry **all,
		     struct decoded *d)
{
	size_t na = 0;
	for (struct job *j = list; j; j = j->next)
		na += j->n_apply;
	*all = malloc((na ? na : 1) * sizeof(**all));
	if (*all == NULL)
		fatal(w, "allocation", STORAGE_ENOMEM, "apply batch");
	size_t k = 0;
	for (struct job *j = list; j; j = j->next) {
		memcpy(*all + k, j->apply, j->n_apply * sizeof(**all));
		k += j->n_apply;
	}
	int rv = decode_entries(*all, na, d);
	if (rv != 0)
		fatal(w, "decoding committed entries", rv, "out of memory");
	return na;
}

static void append_list(struct job **head, struct job *list)
{
	while (*head)
		head = &(*head)->next;
	*head = list;
}

/* The map is full: everything since the open transaction began was lost with it. Applies
 * `list` again in one commit once there is room (storage_apply's rules make the results the
 * same), gives results to the jobs that had none, and hands the list back. */
static void reapply_after_nospace(struct worker *w, struct job *list, int err, const char *why)
{
	char msg[STORAGE_ERRMSG_SIZE];
	struct storage_entry *all;
	struct decoded d = {0};
	size_t na = gather(w, list, &all, &d);
	struct storage_result *res = calloc(na ? na : 1, sizeof(*res));
	if (res == NULL)
		fatal(w, "allocation", STORAGE_ENOMEM, "results");
	bool stopping = wait_for_space(w, &w->nospace_apply, "apply", err, why);
	while (!stopping) {
		int rv = storage_apply(w->s->store, d.cmds, na, res, msg, sizeof(msg));
		if (rv == 0) {
			space_ok(w, &w->nospace_apply);
			size_t k = 0;
			for (struct job *j = list; j; j = j->next) {
				if (j->results == NULL) {
					j->results = malloc(j->n_apply * sizeof(*j->results));
					if (j->results == NULL)
						fatal(w, "allocation", STORAGE_ENOMEM, "results");
					memcpy(j->results, res + k, j->n_apply * sizeof(*res));
				} else {
					for (size_t i = 0; i < j->n_apply; i++)
						storage_result_free(&res[k + i]);
				}
				k += j->n_apply;
			}
			break;
		}
		if (rv != STORAGE_ENOSPC)
			fatal(w, "apply", rv, msg);
		stopping = wait_for_space(w, &w->nospace_apply, "apply", rv, msg);
	}
	/* Stopping: the jobs without results are handed back without; the log replays them. */
	decoded_free(&d);
	free(all);
	free(res);
	hand_back(w, list);
}

/* Commits the open apply transaction and hands back every job applied in it: the loop then
 * moves its applied index (readers see these entries from now on). */
static void commit_applies(struct worker *w)
{
	char msg[STORAGE_ERRMSG_SIZE];
	struct job *list = w->uncommitted;
	w->uncommitted = NULL;
	int rv = storage_applier_commit(w->applier, msg, sizeof(msg));
	w->applier = NULL;
	if (rv == STORAGE_ENOSPC) {
		reapply_after_nospace(w, list, rv, msg);
		return;
	}
	if (rv != 0)
		fatal(w, "apply commit", rv, msg);
	space_ok(w, &w->nospace_apply);
	refresh_space(w, false);
	hand_back(w, list);
}

/* Applies a batch of JOB_APPLY in the open apply transaction (opening one if needed); the
 * results go to the loop at once (post_results), the jobs wait for the commit. The entries were
 * persisted before the core handed them out. */
static void run_apply(struct worker *w, struct job *batch)
{
	char msg[STORAGE_ERRMSG_SIZE];
	struct storage_entry *all;
	struct decoded d = {0};
	size_t na = gather(w, batch, &all, &d);
	struct storage_result *res = calloc(na ? na : 1, sizeof(*res));
	if (res == NULL)
		fatal(w, "allocation", STORAGE_ENOMEM, "results");
	int rv = 0;
	if (w->applier == NULL) {
		rv = storage_applier_begin(w->s->store, &w->applier, msg, sizeof(msg));
		if (rv != 0)
			fatal(w, "apply", rv, msg);
		w->applier_since_ms = mono_ms();
	}
	rv = storage_applier_apply(w->applier, d.cmds, na, res, msg, sizeof(msg));
	decoded_free(&d);
	free(all);
	if (rv == STORAGE_ENOSPC) {
		free(res);
		storage_applier_abort(w->applier);
		w->applier = NULL;
		struct job *list = w->uncommitted;
		w->uncommitted = NULL;
		append_list(&list, batch);
		reapply_after_nospace(w, list, rv, msg);
		return;
	}
	if (rv != 0)
		fatal(w, "apply", rv, msg);
	post_results(w, batch, res);
	free(res); /* each job has its copy */
	append_list(&w->uncommitted, batch);
}

/* Runs a batch of JOB_PERSIST as ONE log write: every truncation, append and hard-state
 * change of the batch, in order, made durable by one flush (a hard state adds an LMDB commit
 * before it). Everything that arrived while the previous batch was on disk goes into this
 * one: group commit. */
static void run_persist(struct worker *w, struct job *batch)
{
	char msg[STORAGE_ERRMSG_SIZE];
	storage_t *st = w->s->store;

	size_t total = 0;
	for (struct job *j = batch; j; j = j->next)
		total += j->n_entries;
	struct storage_entry *ents = total ? malloc(total * sizeof(*ents)) : NULL;
	if (total && !ents)
		fatal(w, "allocation", STORAGE_ENOMEM, "storage batch");

	struct storage_persist p = {0};
	struct storage_hard_state hs;
	size_t n = 0;
	for (struct job *j = batch; j; j = j->next) {
		if (j->truncate_from != 0) {
			if (p.truncate_from == 0 || j->truncate_from < p.truncate_from)
				p.truncate_from = j->truncate_from;
			while (n > 0 && ents[n - 1].index >= j->truncate_from)
				n--;
		}
		if (j->n_entries > 0) {
			/* An append that overlaps what this batch holds replaces it (§3.5). */
			while (n > 0 && ents[n - 1].index >= j->entries[0].index)
				n--;
			memcpy(ents + n, j->entries, j->n_entries * sizeof(*ents));
			n += j->n_entries;
		}
		if (j->has_hs) {
			hs = j->hs;
			p.hard_state = &hs;
		}
	}
	p.entries = ents;
	p.n_entries = n;

	if (n > 0 || p.hard_state != NULL || p.truncate_from != 0) {
		for (;;) {
			int rv = storage_persist(st, &p, msg, sizeof(msg));
			if (rv == 0) {
				space_ok(w, &w->nospace_log);
				break;
			}
			if (rv == STORAGE_ENOSPC) {
				/* Disk full: nothing of the batch was kept and nothing acknowledged;
				 * Raft needs these entries on disk before it can go on, so wait
				 * while the loop refuses new writes. */
				if (wait_for_space(w, &w->nospace_log, "log append", rv, msg))
					break;
				continue;
			}
			fatal(w, "log append", rv, msg);
		}
	}
	free(ents);
}

/* Waits until the apply thread has nothing queued, running or uncommitted. */
static void wait_applies(struct worker *w)
{
	pthread_mutex_lock(&w->mu);
	w->commit_req = true;
	pthread_cond_signal(&w->acond);
	while (w->ahead != NULL || w->applying)
		pthread_cond_wait(&w->idle, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

/* A snapshot install (log thread, in queue order). It replaces the state machine, so every
 * apply handed out before it runs and commits first (none comes after it until the loop hears
 * it is done: the core hands out nothing while installing). */
static void run_install(struct worker *w, struct job *j)
{
	wait_applies(w);
	j->status =
	    storage_snapshot_install_finish(j->install, &j->meta, j->errmsg, sizeof(j->errmsg));
	j->install = NULL; /* released by finish, whatever the outcome */
	if (j->status == STORAGE_EFATAL)
		fatal(w, "snapshot install", j->status, j->errmsg);
	if (j->status == 0)
		refresh_space(w, true);
}

/* A log compaction (apply thread, with no transaction of its own open: it needs LMDB's
 * writer lock). */
static void run_compact(struct worker *w, struct job *j)
{
	j->status = storage_log_compact(w->s->store, j->compact_upto, j->errmsg, sizeof(j->errmsg));
	if (j->status == STORAGE_EFATAL)
		fatal(w, "log compaction", j->status, j->errmsg);
	if (j->status == 0)
		refresh_space(w, true);
}

/* Runs what was queued for the log thread, in order: consecutive persist jobs as one batch,
 * installs on their own. Each segment goes back to the loop as soon as it is done. */
static void run_queue(struct worker *w, struct job *batch)
{
	struct job *rest = batch;
	while (rest != NULL) {
		struct job *end = rest;
		if (rest->kind == JOB_PERSIST)
			while (end->next != NULL && end->next->kind == JOB_PERSIST)
				end = end->next;
		struct job *after = end->next;
		end->next = NULL;
		if (rest->kind == JOB_INSTALL)
			run_install(w, rest);
		else
			run_persist(w, rest);
		hand_back(w, rest);
		rest = after;
	}
}

static void *log_main(void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->head == NULL && !w->stop)
			pthread_cond_wait(&w->cond, &w->mu);
		if (w->head == NULL && w->stop)
			break;
		struct job *batch = w->head;
		w->head = w->tail = NULL;
		pthread_mutex_unlock(&w->mu);

		run_queue(w, batch);
		pthread_mutex_lock(&w->mu);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* The apply thread: applies batches as they come into one open transaction, and commits it
 * when the loop asks (readers are waiting for the state), CAIRN_APPLY_COMMIT_MS after it
 * began, before an install, or when stopping. One flush per commit instead of per batch;
 * the writes were answered from the results already. */
static void *apply_main(void *arg)
{
	struct worker *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		bool due = false;
		while (w->ahead == NULL && !w->stop) {
			if (w->applier == NULL) {
				w->commit_req = false; /* nothing open: nothing to commit */
				pthread_cond_wait(&w->acond, &w->mu);
				continue;
			}
			uint64_t deadline = w->applier_since_ms + CAIRN_APPLY_COMMIT_MS;
			if (w->commit_req || mono_ms() >= deadline) {
				due = true;
				break;
			}
			struct timespec ts = {(time_t)(deadline / 1000u),
					      (long)(deadline % 1000u) * 1000000L};
			pthread_cond_timedwait(&w->acond, &w->mu, &ts);
		}
		if (w->ahead == NULL && w->applier == NULL && w->stop)
			break;
		struct job *batch = w->ahead;
		w->ahead = w->atail = NULL;
		w->applying = true;
		pthread_mutex_unlock(&w->mu);

		/* Consecutive applies go into the open transaction; a compaction first commits
		 * it (it needs LMDB's writer lock), then runs on its own. */
		while (batch != NULL) {
			struct job *end = batch;
			if (batch->kind == JOB_APPLY)
				while (end->next != NULL && end->next->kind == JOB_APPLY)
					end = end->next;
			struct job *rest = end->next;
			end->next = NULL;
			if (batch->kind == JOB_APPLY) {
				run_apply(w, batch);
			} else {
				if (w->applier != NULL)
					commit_applies(w);
				run_compact(w, batch);
				hand_back(w, batch);
			}
			batch = rest;
		}

		pthread_mutex_lock(&w->mu);
		if (w->applier != NULL &&
		    (due || w->commit_req || w->stop ||
		     mono_ms() >= w->applier_since_ms + CAIRN_APPLY_COMMIT_MS)) {
			w->commit_req = false;
			pthread_mutex_unlock(&w->mu);
			commit_applies(w);
			pthread_mutex_lock(&w->mu);
		}
		if (w->applier == NULL) {
			w->applying = false;
			pthread_cond_broadcast(&w->idle);
		}
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

void worker_commit_applies(struct server *s)
{
	struct worker *w = &s->worker;
	pthread_mutex_lock(&w->mu);
	if (!w->commit_req) {
		w->commit_req = true;
		pthread_cond_signal(&w->acond);
	}
	pthread_mutex_unlock(&w->mu);
}

static void on_done(uv_async_t *a)
{
	struct worker *w = a->data;
	pthread_mutex_lock(&w->mu);
	struct job *early = w->early_head;
	w->early_head = w->early_tail = NULL;
	struct job *list = w->done_head;
	w->done_head = w->done_tail = NULL;
	pthread_mutex_unlock(&w->mu);
	/* Early results first: a job may be in both lists by now. */
	for (struct job *j = early, *next; j; j = next) {
		next = j->early_next;
		j->early_next = NULL;
		node_on_apply_results(w->s, j);
	}
	for (struct job *j = list, *next; j; j = next) {
		next = j->next;
		if (j->kind != JOB_APPLY && j->kind != JOB_COMPACT)
			w->s->log_jobs_in_flight--;
		node_on_job_done(w->s, j);
		job_free(j);
	}
}

int worker_start(struct server *s)
{
	struct worker *w = &s->worker;
	memset(w, 0, sizeof(*w));
	w->s = s;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cond, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* mono_ms() deadlines */
	pthread_cond_init(&w->acond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&w->idle, NULL);
	uv_async_init(s->loop, &w->done_async, on_done);
	w->done_async.data = w;
	if (pthread_create(&w->thread, NULL, log_main, w) != 0) {
		uv_close((uv_handle_t *)&w->done_async, NULL);
		return -1;
	}
	if (pthread_create(&w->apply_thread, NULL, apply_main, w) != 0) {
		pthread_mutex_lock(&w->mu);
		w->stop = true;
		pthread_cond_signal(&w->cond);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		uv_close((uv_handle_t *)&w->done_async, NULL);
		return -1;
	}
	w->started = true;
	refresh_space(w, true);
	return 0;
}

void worker_submit(struct server *s, struct job *j)
{
	struct worker *w = &s->worker;
	j->next = NULL;
	bool apply_thread = j->kind == JOB_APPLY || j->kind == JOB_COMPACT;
	if (!apply_thread)
		s->log_jobs_in_flight++;
	pthread_mutex_lock(&w->mu);
	if (apply_thread) {
		if (w->atail)
			w->atail->next = j;
		else
			w->ahead = j;
		w->atail = j;
		pthread_cond_signal(&w->acond);
	} else {
		if (w->tail)
			w->tail->next = j;
		else
			w->head = j;
		w->tail = j;
		pthread_cond_signal(&w->cond);
	}
	pthread_mutex_unlock(&w->mu);
}

void worker_stop(struct server *s)
{
	struct worker *w = &s->worker;
	if (!w->started)
		return;
	pthread_mutex_lock(&w->mu);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_cond_signal(&w->acond);
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_join(w->apply_thread, NULL);
	w->started = false;
	/* Jobs finished but not yet seen by the loop: release them. */
	for (struct job *j = w->done_head, *next; j; j = next) {
		next = j->next;
		job_free(j);
	}
	w->done_head = w->done_tail = NULL;
	w->early_head = w->early_tail = NULL; /* those jobs were in the done list too */
	uv_close((uv_handle_t *)&w->done_async, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->cond);
	pthread_cond_destroy(&w->acond);
	pthread_cond_destroy(&w->idle);
}

bool worker_nospace_disk(struct server *s)
{
	struct worker *w = &s->worker;
	pthread_mutex_lock(&w->mu);
	bool v = w->nospace_log;
	pthread_mutex_unlock(&w->mu);
	return v;
}

bool worker_nospace(struct server *s)
{
	struct worker *w = &s->worker;
	pthread_mutex_lock(&w->mu);
	bool v = w->nospace_log || w->nospace_apply;
	pthread_mutex_unlock(&w->mu);
	return v;
}

void job_free(struct job *j)
{
	if (j == NULL)
		return;
	for (size_t i = 0; i < j->n_after; i++)
		buf_free(&j->after[i].frame);
	free(j->after);
	free(j->entries);
	free(j->apply);
	if (j->results) {
		for (size_t i = 0; i < j->n_apply; i++)
			storage_result_free(&j->results[i]);
		free(j->results);
	}
	free(j->arena);
	storage_snapshot_install_abort(j->install);
	free(j);
}
