/* Crash test: a child applies and acknowledges writes, the parent SIGKILLs it at random. */
#include <errno.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

#include "test/unit/test_storage_util.h"

#define ROUNDS	       40
#define KEYS	       7  /* write i puts "k<i % KEYS>" = "v<i>" and "counter" = "<i>" */
#define MAX_BATCH      4  /* commands per persist/apply batch */
#define MAX_ACKS_SEEN  12 /* the parent kills after 1..MAX_ACKS_SEEN acknowledgements */
#define MAX_EXTRA_US   2000
#define NAME_MAX_BYTES 32

/* Child exit codes: only reached on a bug, since the parent kills the child. */
enum { CHILD_OPEN_FAILED = 3, CHILD_PERSIST_FAILED, CHILD_APPLY_FAILED, CHILD_ACK_FAILED };

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct write_cmd {
	char key[NAME_MAX_BYTES];
	char value[NAME_MAX_BYTES];
	char counter[NAME_MAX_BYTES];
	char data[NAME_MAX_BYTES];
	struct storage_op ops[2];
};

static void make_write(struct write_cmd *w, uint64_t i, struct storage_cmd *cmd,
		       struct storage_entry *e)
{
	snprintf(w->key, sizeof(w->key), "k%llu", (unsigned long long)(i % KEYS));
	snprintf(w->value, sizeof(w->value), "v%llu", (unsigned long long)i);
	snprintf(w->counter, sizeof(w->counter), "%llu", (unsigned long long)i);
	snprintf(w->data, sizeof(w->data), "cmd%llu", (unsigned long long)i);
	w->ops[0] = t_put_op(w->key, w->value);
	w->ops[1] = t_put_op("counter", w->counter);
	memset(cmd, 0, sizeof(*cmd));
	cmd->index = i;
	cmd->term = 1;
	cmd->type = STORAGE_CMD_TXN;
	cmd->txn.success = w->ops;
	cmd->txn.n_success = 2;
	memset(e, 0, sizeof(*e));
	e->index = i;
	e->term = 1;
	e->data = w->data;
	e->len = strlen(w->data);
}

/* Runs until killed: persist a batch, apply it (in the same or a second txn), acknowledge. */
static void child_main(const char *dir, int ack_fd, uint64_t seed)
{
	struct write_cmd w[MAX_BATCH];
	struct storage_cmd cmds[MAX_BATCH];
	struct storage_entry entries[MAX_BATCH];
	struct storage_result res[MAX_BATCH];
	struct storage_persist p = {0};
	struct storage_state st;
	storage_t *h;
	uint64_t next;
	size_t n;
	size_t i;

	if (storage_open(dir, NULL, &h, NULL, 0) != 0 || storage_state(h, &st, NULL, 0) != 0) {
		_exit(CHILD_OPEN_FAILED);
	}
	next = st.applied_index + 1;
	for (;;) {
		n = 1 + rng_next(&seed) % MAX_BATCH;
		for (i = 0; i < n; i++) {
			make_write(&w[i], next + i, &cmds[i], &entries[i]);
		}
		p.entries = entries;
		p.n_entries = n;
		/* half the batches fold the apply into the persist transaction */
		p.apply = rng_next(&seed) % 2 == 0 ? cmds : NULL;
		p.n_apply = p.apply != NULL ? n : 0;
		p.results = res;
		char perr[STORAGE_ERRMSG_SIZE] = "";
		if (storage_persist(h, &p, perr, sizeof(perr)) != 0) {
			fprintf(stderr, "persist: %s\n", perr);
			_exit(CHILD_PERSIST_FAILED);
		}
		if (p.apply == NULL && storage_apply(h, cmds, n, res, NULL, 0) != 0) {
			_exit(CHILD_APPLY_FAILED);
		}
		for (i = 0; i < n; i++) {
			storage_result_free(&res[i]);
		}
		next += n;
		{
			uint64_t acked = next - 1;

			if (write(ack_fd, &acked, sizeof(acked)) != sizeof(acked)) {
				_exit(CHILD_ACK_FAILED);
			}
		}
	}
}

struct log_check {
	uint64_t next;
	bool ok;
};

static int log_cb(const struct storage_entry *e, void *arg)
{
	struct log_check *c = arg;
	char want[NAME_MAX_BYTES];

	snprintf(want, sizeof(want), "cmd%llu", (unsigned long long)e->index);
	if (e->index != c->next || e->len != strlen(want) || memcmp(e->data, want, e->len) != 0) {
		c->ok = false;
	}
	c->next++;
	return 0;
}

/* Every acknowledged write is there and the state is consistent with applied_index. */
static void verify(const char *dir, uint64_t acked, struct storage_state *prev, uint64_t seed,
		   int round)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct log_check lc = {1, true};
	struct storage_state st;
	char want[NAME_MAX_BYTES];
	char key[NAME_MAX_BYTES];
	storage_t *h = NULL;
	uint64_t j;
	int rv;

	rv = storage_open(dir, NULL, &h, err, sizeof(err));
	ck_assert_msg(rv == 0, "seed %llu round %d: reopen: %s (%s)", (unsigned long long)seed,
		      round, storage_strerror(rv), err);
	st = t_state(h);
	ck_assert_msg(st.applied_index >= acked,
		      "seed %llu round %d: applied %llu < acknowledged %llu",
		      (unsigned long long)seed, round, (unsigned long long)st.applied_index,
		      (unsigned long long)acked);
	ck_assert_msg(st.applied_index >= prev->applied_index && st.revision >= prev->revision,
		      "seed %llu round %d: went backwards", (unsigned long long)seed, round);
	/* each write is one revision */
	ck_assert_uint_eq(st.revision, st.applied_index);
	/* entries are persisted before they are applied */
	ck_assert_uint_ge(st.last_index, st.applied_index);
	if (st.applied_index > 0) {
		snprintf(want, sizeof(want), "%llu", (unsigned long long)st.applied_index);
		t_assert_value(h, "counter", want);
	}
	for (j = st.applied_index > KEYS ? st.applied_index - KEYS + 1 : 1; j <= st.applied_index;
	     j++) {
		snprintf(key, sizeof(key), "k%llu", (unsigned long long)(j % KEYS));
		snprintf(want, sizeof(want), "v%llu", (unsigned long long)j);
		t_assert_value(h, key, want);
	}
	rv = storage_log_read(h, 1, st.last_index + 1, 0, log_cb, &lc, err, sizeof(err));
	ck_assert_msg(rv == 0 && lc.ok, "seed %llu round %d: log: %s (%s)",
		      (unsigned long long)seed, round, storage_strerror(rv), err);
	/* ... and every entry up to last_index was read, not just a prefix. */
	ck_assert_msg(lc.next == st.last_index + 1,
		      "seed %llu round %d: log read stopped at %llu of %llu",
		      (unsigned long long)seed, round, (unsigned long long)lc.next - 1,
		      (unsigned long long)st.last_index);
	storage_close(h);
	*prev = st;
}

START_TEST(test_crash_consistency)
{
	struct storage_state prev = {0};
	uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
	char *dir = t_mkdtemp();
	const char *env = getenv("CAIRN_SEED");
	uint64_t seed0;
	int killed = 0;
	int round;

	if (env != NULL) {
		seed = strtoull(env, NULL, 10);
	}
	seed |= 1; /* xorshift needs a non-zero state */
	seed0 = seed;
	fprintf(stderr, "crash test seed %llu (replay with CAIRN_SEED=)\n",
		(unsigned long long)seed0);
	for (round = 0; round < ROUNDS; round++) {
		uint64_t want_acks = 1 + rng_next(&seed) % MAX_ACKS_SEEN;
		uint64_t child_seed = rng_next(&seed);
		uint64_t acked = 0;
		uint64_t seen = 0;
		uint64_t a;
		int fds[2];
		int status;
		ssize_t n;
		pid_t pid;

		ck_assert_int_eq(pipe(fds), 0);
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			close(fds[0]);
			child_main(dir, fds[1], child_seed);
		}
		close(fds[1]);
		while (seen < want_acks && (n = read(fds[0], &a, sizeof(a))) == sizeof(a)) {
			acked = a;
			seen++;
		}
		/* Kill right away or a little later: a random point of the next write. */
		if (rng_next(&seed) % 2 == 0) {
			usleep((useconds_t)(rng_next(&seed) % MAX_EXTRA_US));
		}
		kill(pid, SIGKILL);
		/* Acknowledgements written before the kill are still in the pipe. */
		while ((n = read(fds[0], &a, sizeof(a))) == sizeof(a) ||
		       (n < 0 && errno == EINTR)) {
			if (n == sizeof(a)) {
				acked = a;
			}
		}
		close(fds[0]);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
			      "seed %llu round %d: child exited by itself (status %d)",
			      (unsigned long long)seed0, round, status);
		killed++;
		ck_assert_msg(acked >= prev.applied_index || acked == 0,
			      "acknowledgements went backwards");
		verify(dir, acked, &prev, seed0, round);
	}
	ck_assert_int_eq(killed, ROUNDS);
	ck_assert_uint_gt(prev.applied_index, 0);
	t_rmdir(dir);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_crash");
	TCase *tc = tcase_create("crash");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_crash_consistency);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
