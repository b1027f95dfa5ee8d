/* Tests of faults: full map, failed commits, corrupt records, readers during writes. */
#include <pthread.h>
#include <stdatomic.h>

#include "test/unit/test_storage_util.h"

static char *dir;

static void setup(void)
{
	dir = t_mkdtemp();
}

static void teardown(void)
{
	t_rmdir(dir);
	dir = NULL;
}

#define SMALL_MAP   ((size_t)1 << 20)
#define VALUE_BYTES 4000

static storage_t *open_map(size_t map_size)
{
	struct storage_options o = {0};

	o.nosync = true;
	o.map_size = map_size;
	return t_open_opts(dir, &o);
}

static void value_for(char *buf, int i)
{
	memset(buf, 'a' + i % 26, VALUE_BYTES - 1);
	buf[VALUE_BYTES - 1] = '\0';
}

static int try_put(storage_t *h, const char *key, const char *value, char *err)
{
	struct storage_op op = t_put_op(key, value);
	struct storage_cmd cmd = {0};
	struct storage_result r;
	int rv;

	cmd.index = t_state(h).applied_index + 1;
	cmd.term = 1;
	cmd.type = STORAGE_CMD_TXN;
	cmd.txn.success = &op;
	cmd.txn.n_success = 1;
	rv = storage_apply(h, &cmd, 1, &r, err, STORAGE_ERRMSG_SIZE);
	if (rv == 0) {
		ck_assert_int_eq(r.status, 0);
		storage_result_free(&r);
	}
	return rv;
}

static int try_persist(storage_t *h, uint64_t index, const void *data, size_t len, char *err)
{
	struct storage_entry e = {0};
	struct storage_persist p = {0};

	e.index = index;
	e.term = 1;
	e.data = data;
	e.len = len;
	p.entries = &e;
	p.n_entries = 1;
	return storage_persist(h, &p, err, STORAGE_ERRMSG_SIZE);
}

/* A full map is a clean error: the write is rolled back, reads go on, data stays intact. */
START_TEST(test_map_full)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	char value[VALUE_BYTES];
	char key[32];
	char *huge;
	struct storage_state st;
	storage_t *h = open_map(SMALL_MAP);
	int n = 0;
	int rv;
	int i;

	/* persist then apply each write, as a node does, until the map is full */
	for (;;) {
		snprintf(key, sizeof(key), "key%05d", n);
		value_for(value, n);
		rv = try_persist(h, (uint64_t)n + 1, value, sizeof(value), err);
		if (rv == 0) {
			rv = try_put(h, key, value, err);
		}
		if (rv != 0) {
			break;
		}
		n++;
		ck_assert_int_lt(n, 1000); /* 1 MiB cannot hold 8 MB */
	}
	ck_assert_msg(rv == STORAGE_ENOSPC, "%s (%s)", storage_strerror(rv), err);
	ck_assert_msg(strstr(err, "full") != NULL || strstr(err, "MAP_FULL") != NULL, "%s", err);
	ck_assert_int_gt(n, 10);
	st = t_state(h);
	ck_assert_uint_eq(st.applied_index, (uint64_t)n);
	ck_assert_uint_eq(st.revision, (uint64_t)n);
	ck_assert_uint_ge(st.last_index, (uint64_t)n);

	/* still full, still clean (never EFATAL) for the state machine; the log is in its own
	 * files, so a full map does not stop appends (a full disk does: test_storage_wal) */
	huge = calloc(1, SMALL_MAP);
	ck_assert_ptr_nonnull(huge);
	ck_assert_int_eq(try_persist(h, st.last_index + 1, huge, SMALL_MAP, err), 0);
	memset(huge, 'h', SMALL_MAP - 1);
	ck_assert_int_eq(try_put(h, "huge", huge, err), STORAGE_ENOSPC);
	free(huge);

	/* reads work and every acknowledged write is intact */
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		value_for(value, i);
		t_assert_value(h, key, value);
	}
	t_assert_value(h, "huge", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, (uint64_t)n);
	storage_close(h);

	/* a bigger map makes room: data intact, writes go on */
	h = open_map(4 * SMALL_MAP);
	for (i = 0; i < n; i++) {
		snprintf(key, sizeof(key), "key%05d", i);
		value_for(value, i);
		t_assert_value(h, key, value);
	}
	ck_assert_int_eq(try_put(h, "more", "room", err), 0);
	t_assert_value(h, "more", "room");
	storage_close(h);
}
END_TEST

/* storage_kv_hash(): replicas that applied the same commands agree; any difference in a
 * value shows. */
START_TEST(test_kv_hash)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	storage_t *a = open_map(4 * SMALL_MAP);
	char *dir_b = t_mkdtemp();
	struct storage_options o = {.nosync = true};
	storage_t *b = t_open_opts(dir_b, &o);
	struct storage_kv_hash ha, hb;

	ck_assert_int_eq(storage_kv_hash(a, &ha, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_kv_hash(b, &hb, err, sizeof(err)), 0);
	ck_assert_uint_eq(ha.hash, hb.hash);
	ck_assert_uint_eq(ha.keys, 0);
	ck_assert_int_eq(try_put(a, "k1", "v1", err), 0);
	ck_assert_int_eq(try_put(b, "k1", "v1", err), 0);
	ck_assert_int_eq(try_put(a, "k2", "v2", err), 0);
	ck_assert_int_eq(try_put(b, "k2", "v2", err), 0);
	ck_assert_int_eq(storage_kv_hash(a, &ha, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_kv_hash(b, &hb, err, sizeof(err)), 0);
	ck_assert_uint_eq(ha.hash, hb.hash);
	ck_assert_uint_eq(ha.keys, 2);
	ck_assert_uint_eq(ha.revision, 2);
	ck_assert_uint_eq(ha.applied_index, hb.applied_index);
	ck_assert_int_eq(try_put(a, "k3", "x", err), 0);
	ck_assert_int_eq(try_put(b, "k3", "y", err), 0);
	ck_assert_int_eq(storage_kv_hash(a, &ha, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_kv_hash(b, &hb, err, sizeof(err)), 0);
	ck_assert_uint_ne(ha.hash, hb.hash);
	ck_assert_int_eq(storage_kv_hash(NULL, &ha, err, sizeof(err)), STORAGE_EINVAL);
	storage_close(a);
	storage_close(b);
	t_rmdir(dir_b);
}
END_TEST

/* storage_space() reports the map size and grows with the data, so a server can refuse
 * writes before the map fills up. */
START_TEST(test_space_reading)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	char value[VALUE_BYTES];
	char key[32];
	struct storage_space sp0, sp1;
	storage_t *h = open_map(4 * SMALL_MAP);

	ck_assert_int_eq(storage_space(h, &sp0, err, sizeof(err)), 0);
	ck_assert_uint_eq(sp0.map_size, 4 * SMALL_MAP);
	ck_assert_uint_gt(sp0.page_size, 0);
	ck_assert_uint_gt(sp0.used_bytes, 0);
	ck_assert_uint_lt(sp0.used_bytes, sp0.map_size);
	for (int n = 0; n < 20; n++) {
		snprintf(key, sizeof(key), "key%05d", n);
		value_for(value, n);
		ck_assert_int_eq(try_persist(h, (uint64_t)n + 1, value, sizeof(value), err), 0);
		ck_assert_int_eq(try_put(h, key, value, err), 0);
	}
	ck_assert_int_eq(storage_space(h, &sp1, err, sizeof(err)), 0);
	/* 20 values in the store (the log is in its own files, outside the map) */
	ck_assert_uint_ge(sp1.used_bytes, sp0.used_bytes + 20 * (uint64_t)VALUE_BYTES);
	ck_assert_uint_le(sp1.used_bytes, sp1.map_size);
	ck_assert_int_eq(storage_space(NULL, &sp1, err, sizeof(err)), STORAGE_EINVAL);
	storage_close(h);
}
END_TEST

/* A failed commit (countdown fault injection standing in for a failed fsync) is fatal. */
START_TEST(test_failed_commit_is_fatal)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_options o = {0};
	struct storage_hard_state hs = {1, 1};
	struct storage_persist p = {0};
	storage_t *h;

	o.nosync = true;
	o.fail_commit_after = 2;
	h = t_open_opts(dir, &o);
	ck_assert_int_eq(try_put(h, "a", "1", err), 0);
	ck_assert_int_eq(try_put(h, "b", "2", err), STORAGE_EFATAL);
	ck_assert_msg(strstr(err, "exit") != NULL, "%s", err);
	/* never retried: every later write fails the same way */
	ck_assert_int_eq(try_put(h, "c", "3", err), STORAGE_EFATAL);
	p.hard_state = &hs;
	ck_assert_int_eq(storage_persist(h, &p, err, sizeof(err)), STORAGE_EFATAL);
	ck_assert_int_eq(storage_log_compact(h, 1, err, sizeof(err)), STORAGE_EFATAL);
	/* reads still answer (the caller is about to exit and may log state) */
	t_assert_value(h, "a", "1");
	t_assert_value(h, "b", NULL);
	storage_close(h);

	h = t_open(dir);
	t_assert_value(h, "a", "1");
	t_assert_value(h, "b", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, 1);
	ck_assert_uint_eq(t_state(h).hard_state.term, 0);
	storage_close(h);
}
END_TEST

/* The applier's results are final before the commit (a reader does not see the write yet), and
 * they are the caller's whatever happens to the commit: a failed commit frees nothing of them
 * and makes nothing visible. */
static int put_early(storage_t *h, struct storage_result *res, bool *visible_before, char *err)
{
	struct storage_op op = t_put_op("early", "bird");
	struct storage_entry e = {.index = 1, .term = 1, .type = 1, .data = "x", .len = 1};
	struct storage_cmd cmd = {.index = 1, .term = 1, .type = STORAGE_CMD_TXN};
	struct storage_persist p = {.entries = &e, .n_entries = 1};
	struct storage_applier *a;

	cmd.txn.success = &op;
	cmd.txn.n_success = 1;
	ck_assert_int_eq(storage_persist(h, &p, err, STORAGE_ERRMSG_SIZE), 0);
	ck_assert_int_eq(storage_applier_begin(h, &a, err, STORAGE_ERRMSG_SIZE), 0);
	ck_assert_int_eq(storage_applier_apply(a, &cmd, 1, res, err, STORAGE_ERRMSG_SIZE), 0);
	char *seen = t_get(h, "early", NULL);
	*visible_before = seen != NULL;
	free(seen);
	return storage_applier_commit(a, err, STORAGE_ERRMSG_SIZE);
}

START_TEST(test_applier_results_before_commit)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_options o = {0};
	struct storage_result res[1];
	bool visible_before = true;
	storage_t *h;

	o.nosync = true;
	h = t_open_opts(dir, &o);
	ck_assert_int_eq(put_early(h, res, &visible_before, err), 0);
	ck_assert(!visible_before);
	ck_assert_int_eq(res[0].status, 0);
	ck_assert_uint_eq(res[0].revision, 1);
	storage_result_free(&res[0]);
	t_assert_value(h, "early", "bird");
	storage_close(h);

	/* The commit fails (the first write is the log append, the second the commit): the
	 * results stay valid and are the caller's; nothing is visible, now or after a reopen. */
	t_rmdir(dir);
	dir = t_mkdtemp();
	o.fail_commit_after = 2;
	h = t_open_opts(dir, &o);
	ck_assert_int_eq(put_early(h, res, &visible_before, err), STORAGE_EFATAL);
	ck_assert(!visible_before);
	ck_assert_int_eq(res[0].status, 0);
	ck_assert_uint_eq(res[0].revision, 1);
	storage_result_free(&res[0]); /* ASan: a double free if storage freed them too */
	t_assert_value(h, "early", NULL);
	storage_close(h);
	h = t_open(dir);
	t_assert_value(h, "early", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, 0);
	ck_assert_uint_eq(t_state(h).last_index, 1);
	storage_close(h);
}
END_TEST

START_TEST(test_corrupt_kv_record)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_op rop = t_range_op("a", T_ALL);
	struct storage_snapshot *s;
	struct storage_result r;
	struct storage_kv kv;
	uint8_t buf[64];
	size_t n;
	bool found;
	storage_t *h = t_open(dir);

	t_put(h, "k", "v");
	t_put(h, "z", "ok");
	storage_close(h);
	t_raw_put(dir, "kv", "k", 1, "garbage", 7);
	h = t_open(dir);

	ck_assert_int_eq(storage_get(h, "k", 1, &found, &kv, &r, err, sizeof(err)),
			 STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "corrupt") != NULL, "%s", err);
	ck_assert_int_eq(storage_range(h, &rop, &r, err, sizeof(err)), STORAGE_ECORRUPT);
	/* a write touching the record fails the whole batch, and nothing is applied */
	ck_assert_int_eq(try_put(h, "k", "new", err), STORAGE_ECORRUPT);
	ck_assert_uint_eq(t_state(h).applied_index, 2);
	/* the rest of the store works */
	t_assert_value(h, "z", "ok");
	ck_assert_int_eq(try_put(h, "y", "fine", err), 0);
	/* a snapshot never ships a corrupt record */
	ck_assert_int_eq(storage_snapshot_open(h, &s, NULL, err, sizeof(err)), 0);
	{
		int rv;

		do {
			rv = storage_snapshot_read(s, buf, sizeof(buf), &n, err, sizeof(err));
		} while (rv == 0 && n > 0);
		ck_assert_int_eq(rv, STORAGE_ECORRUPT);
	}
	storage_snapshot_close(s);
	storage_close(h);
}
END_TEST

static uint64_t register_session(storage_t *h)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t id;

	cmd.type = STORAGE_CMD_REGISTER_SESSION;
	r = t_apply_cmd(h, cmd);
	id = r.client_id;
	storage_result_free(&r);
	return id;
}

static int session_put(storage_t *h, uint64_t id, uint64_t seq)
{
	struct storage_op op = t_put_op("s", "v");
	struct storage_cmd cmd = {0};
	struct storage_result r;
	int rv;

	cmd.index = t_state(h).applied_index + 1;
	cmd.term = 1;
	cmd.type = STORAGE_CMD_TXN;
	cmd.client_id = id;
	cmd.seq = seq;
	cmd.txn.success = &op;
	cmd.txn.n_success = 1;
	rv = storage_apply(h, &cmd, 1, &r, NULL, 0);
	if (rv == 0) {
		storage_result_free(&r);
	}
	return rv;
}

START_TEST(test_corrupt_session_record)
{
	uint8_t key[8];
	uint8_t rec[17 + 2];
	storage_t *h = t_open(dir);
	uint64_t id = register_session(h);

	ck_assert_int_eq(session_put(h, id, 1), 0);
	storage_close(h);
	t_be64(key, id);
	/* too short */
	t_raw_put(dir, "sessions", key, sizeof(key), "bad", 3);
	h = t_open(dir);
	ck_assert_int_eq(session_put(h, id, 1), STORAGE_ECORRUPT);
	storage_close(h);
	/* a well-formed header around a garbage cached reply */
	memset(rec, 0, sizeof(rec));
	t_be64(rec, 1);
	t_be64(rec + 8, 2);
	rec[16] = 1;
	rec[17] = 0xee;
	rec[18] = 0xff;
	t_raw_put(dir, "sessions", key, sizeof(key), rec, sizeof(rec));
	h = t_open(dir);
	ck_assert_int_eq(session_put(h, id, 1), STORAGE_ECORRUPT);
	ck_assert_uint_eq(t_state(h).applied_index, 2);
	storage_close(h);
}
END_TEST

/* Reads from another thread while the storage thread writes see only committed, whole
 * transactions: "a" and "b" are always written together. */
struct reader {
	storage_t *h;
	atomic_bool stop;
	int errors;
	int reads;
	uint64_t last_revision;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	struct storage_op op = t_range_op("a", "c");

	while (!atomic_load(&r->stop) || r->reads == 0) {
		struct storage_result res;

		if (storage_range(r->h, &op, &res, NULL, 0) != 0) {
			r->errors++;
			continue;
		}
		if (res.revision < r->last_revision) {
			r->errors++;
		}
		r->last_revision = res.revision;
		if (res.ops[0].n_kvs == 2) {
			const struct storage_kv *a = &res.ops[0].kvs[0];
			const struct storage_kv *b = &res.ops[0].kvs[1];

			if (a->mod_revision != b->mod_revision || a->value_len != b->value_len ||
			    memcmp(a->value, b->value, a->value_len) != 0 ||
			    a->mod_revision != res.revision) {
				r->errors++;
			}
		} else if (res.ops[0].n_kvs != 0) {
			r->errors++;
		}
		r->reads++;
		storage_result_free(&res);
	}
	return NULL;
}

START_TEST(test_concurrent_reader)
{
	struct reader r = {0};
	struct storage_op ops[2];
	struct storage_txn t = {0};
	struct storage_result res;
	pthread_t th;
	char v[16];
	int i;

	r.h = t_open(dir);
	atomic_init(&r.stop, false);
	ck_assert_int_eq(pthread_create(&th, NULL, reader_main, &r), 0);
	for (i = 0; i < 300; i++) {
		snprintf(v, sizeof(v), "%d", i);
		ops[0] = t_put_op("a", v);
		ops[1] = t_put_op("b", v);
		t.success = ops;
		t.n_success = 2;
		res = t_apply_txn(r.h, &t);
		ck_assert_int_eq(res.status,
				 0); /* the writes happened: a reader had something to see */
		ck_assert_uint_eq(res.revision, (uint64_t)i + 1);
		storage_result_free(&res);
	}
	atomic_store(&r.stop, true);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert_int_eq(r.errors, 0);
	ck_assert_int_gt(r.reads, 0);
	storage_close(r.h);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_faults");
	TCase *tc = tcase_create("faults");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_map_full);
	tcase_add_test(tc, test_space_reading);
	tcase_add_test(tc, test_kv_hash);
	tcase_add_test(tc, test_failed_commit_is_fatal);
	tcase_add_test(tc, test_applier_results_before_commit);
	tcase_add_test(tc, test_corrupt_kv_record);
	tcase_add_test(tc, test_corrupt_session_record);
	tcase_add_test(tc, test_concurrent_reader);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
