/* Unit tests of snapshots: chunked read, install round trip, corrupted streams, log fix-up. */
#include "test/unit/test_storage_util.h"

static char *dir_a;
static char *dir_b;
static storage_t *a;
static storage_t *b;

static void setup(void)
{
	dir_a = t_mkdtemp();
	dir_b = t_mkdtemp();
	a = t_open(dir_a);
	b = t_open(dir_b);
}

static void teardown(void)
{
	storage_close(a);
	storage_close(b);
	t_rmdir(dir_a);
	t_rmdir(dir_b);
}

struct stream {
	uint8_t *p;
	size_t len;
};

/* Read a whole snapshot of h in chunks of `chunk` bytes. */
static struct stream take(storage_t *h, size_t chunk, struct storage_snapshot_meta *meta)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot *s;
	struct stream st = {0};
	size_t cap = 0;
	size_t n;
	int rv;

	rv = storage_snapshot_open(h, &s, meta, err, sizeof(err));
	ck_assert_msg(rv == 0, "snapshot_open: %s (%s)", storage_strerror(rv), err);
	for (;;) {
		if (cap - st.len < chunk) {
			cap = 2 * cap + chunk;
			st.p = realloc(st.p, cap);
			ck_assert_ptr_nonnull(st.p);
		}
		rv = storage_snapshot_read(s, st.p + st.len, chunk, &n, err, sizeof(err));
		ck_assert_msg(rv == 0, "snapshot_read: %s (%s)", storage_strerror(rv), err);
		ck_assert_uint_le(n, chunk);
		if (n == 0) {
			break;
		}
		st.len += n;
	}
	storage_snapshot_close(s);
	return st;
}

/* Install a stream into h in chunks; returns the finish result. */
static int install(storage_t *h, const struct stream *st, size_t chunk,
		   struct storage_snapshot_meta *meta, char *err)
{
	struct storage_snapshot_install *in;
	size_t off;
	int rv;

	rv = storage_snapshot_install_begin(h, &in, err, STORAGE_ERRMSG_SIZE);
	ck_assert_msg(rv == 0, "install_begin: %s (%s)", storage_strerror(rv), err);
	for (off = 0; off < st->len; off += chunk) {
		size_t n = st->len - off < chunk ? st->len - off : chunk;

		rv = storage_snapshot_install_write(in, st->p + off, n, err, STORAGE_ERRMSG_SIZE);
		ck_assert_int_eq(rv, 0);
	}
	return storage_snapshot_install_finish(in, meta, err, STORAGE_ERRMSG_SIZE);
}

static uint64_t register_session(storage_t *h)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t id;

	cmd.type = STORAGE_CMD_REGISTER_SESSION;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	id = r.client_id;
	storage_result_free(&r);
	return id;
}

static struct storage_result session_put(storage_t *h, uint64_t id, uint64_t seq, const char *key,
					 const char *value)
{
	struct storage_op op = t_put_op(key, value);
	struct storage_cmd cmd = {0};

	cmd.type = STORAGE_CMD_TXN;
	cmd.client_id = id;
	cmd.seq = seq;
	cmd.txn.success = &op;
	cmd.txn.n_success = 1;
	return t_apply_cmd(h, cmd);
}

/* Both stores hold exactly the same kvs, metadata included. */
static void assert_same_kvs(void)
{
	struct storage_op op = t_range_op("\x01", T_ALL);
	struct storage_result ra;
	struct storage_result rb;
	size_t i;

	ck_assert_int_eq(storage_range(a, &op, &ra, NULL, 0), 0);
	ck_assert_int_eq(storage_range(b, &op, &rb, NULL, 0), 0);
	ck_assert_uint_eq(ra.ops[0].n_kvs, rb.ops[0].n_kvs);
	for (i = 0; i < ra.ops[0].n_kvs; i++) {
		const struct storage_kv *x = &ra.ops[0].kvs[i];
		const struct storage_kv *y = &rb.ops[0].kvs[i];

		ck_assert_uint_eq(x->key_len, y->key_len);
		ck_assert_int_eq(memcmp(x->key, y->key, x->key_len), 0);
		ck_assert_uint_eq(x->value_len, y->value_len);
		ck_assert_int_eq(memcmp(x->value, y->value, x->value_len), 0);
		ck_assert_uint_eq(x->create_revision, y->create_revision);
		ck_assert_uint_eq(x->mod_revision, y->mod_revision);
		ck_assert_uint_eq(x->version, y->version);
		ck_assert_uint_eq(x->lease, y->lease);
	}
	storage_result_free(&ra);
	storage_result_free(&rb);
}

/* Fill a with kvs (small and large values, overwrites, deletes), a session and a conf. */
static uint64_t populate_a(void)
{
	struct storage_cmd conf = {0};
	struct storage_result r;
	char key[32];
	char *big;
	uint64_t id;
	int i;

	big = malloc(100000);
	ck_assert_ptr_nonnull(big);
	memset(big, 'B', 99999);
	big[99999] = '\0';
	for (i = 0; i < 500; i++) {
		snprintf(key, sizeof(key), "key/%04d", i);
		t_put(a, key, i % 50 == 0 ? big : key);
	}
	t_put(a, "key/0001", "overwritten");
	r = t_apply_op(a, t_del_op("key/0002", NULL));
	storage_result_free(&r);
	id = register_session(a);
	r = session_put(a, id, 1, "s", "once");
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);
	conf.type = STORAGE_CMD_CONF;
	conf.conf = "conf-blob";
	conf.conf_len = 9;
	r = t_apply_cmd(a, conf);
	storage_result_free(&r);
	free(big);
	return id;
}

START_TEST(test_round_trip)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot_meta ma;
	struct storage_snapshot_meta mb;
	struct storage_state sa;
	struct storage_state sb;
	struct storage_result r;
	struct stream st;
	uint64_t index;
	uint64_t id;
	size_t len;
	void *conf;
	int rv;

	id = populate_a();
	t_put(b, "only-on-b", "gone after install");
	sa = t_state(a);
	st = take(a, 777, &ma);
	ck_assert_uint_eq(ma.index, sa.applied_index);
	ck_assert_uint_eq(ma.term, sa.applied_term);
	ck_assert_uint_eq(ma.revision, sa.revision);
	ck_assert_uint_eq(ma.conf_index, sa.applied_index);

	rv = install(b, &st, 4096, &mb, err);
	ck_assert_msg(rv == 0, "install: %s (%s)", storage_strerror(rv), err);
	ck_assert_uint_eq(mb.index, ma.index);
	ck_assert_uint_eq(mb.revision, ma.revision);
	sb = t_state(b);
	ck_assert_uint_eq(sb.applied_index, sa.applied_index);
	ck_assert_uint_eq(sb.applied_term, sa.applied_term);
	ck_assert_uint_eq(sb.revision, sa.revision);
	ck_assert_uint_eq(sb.first_index, sa.applied_index + 1);
	ck_assert_uint_eq(sb.snapshot_index, sa.applied_index);
	assert_same_kvs();
	t_assert_value(b, "only-on-b", NULL);
	t_assert_value(b, "key/0001", "overwritten");
	ck_assert_int_eq(storage_conf_get(b, &index, &conf, &len, NULL, 0), 0);
	ck_assert_uint_eq(len, 9);
	ck_assert_int_eq(memcmp(conf, "conf-blob", 9), 0);
	ck_assert_uint_eq(index, ma.conf_index);
	free(conf);

	/* the session came along: a retry on b gets the reply cached on a */
	r = session_put(b, id, 1, "s", "once");
	ck_assert(r.cached);
	storage_result_free(&r);

	/* the same stream, read again in another chunk size, is byte-identical */
	{
		struct stream st2 = take(a, 13, NULL);

		ck_assert_uint_eq(st2.len, st.len);
		ck_assert_int_eq(memcmp(st2.p, st.p, st.len), 0);
		free(st2.p);
	}
	/* b keeps working after the install and survives a reopen */
	t_put(b, "after", "install");
	storage_close(b);
	b = t_open(dir_b);
	t_assert_value(b, "after", "install");
	ck_assert_uint_eq(t_state(b).revision, sa.revision + 1);
	free(st.p);
}
END_TEST

/* A snapshot is a point-in-time copy: writes after snapshot_open are not in it. */
START_TEST(test_point_in_time)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot_meta m;
	struct storage_snapshot *s;
	struct stream st = {0};
	size_t n;
	int rv;

	t_put(a, "k1", "v1");
	ck_assert_int_eq(storage_snapshot_open(a, &s, &m, err, sizeof(err)), 0);
	t_put(a, "k1", "changed");
	t_put(a, "k2", "v2");
	st.p = malloc(1 << 16);
	ck_assert_ptr_nonnull(st.p);
	do {
		rv = storage_snapshot_read(s, st.p + st.len, 100, &n, err, sizeof(err));
		ck_assert_int_eq(rv, 0);
		st.len += n;
	} while (n > 0);
	storage_snapshot_close(s);
	ck_assert_int_eq(install(b, &st, 50, NULL, err), 0);
	t_assert_value(b, "k1", "v1");
	t_assert_value(b, "k2", NULL);
	ck_assert_uint_eq(t_state(b).applied_index, m.index);
	ck_assert_uint_eq(t_state(b).revision, 1);
	free(st.p);
}
END_TEST

START_TEST(test_corrupted_chunk_refused)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct stream st;
	size_t i;

	populate_a();
	t_put(b, "b-key", "b-value");
	st = take(a, 4096, NULL);
	/* flip one byte anywhere in the body: refused, b unchanged */
	for (i = 100; i < st.len; i += st.len / 7) {
		st.p[i] ^= 0x5a;
		ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_ECORRUPT);
		st.p[i] ^= 0x5a;
		t_assert_value(b, "b-key", "b-value");
		t_assert_value(b, "key/0003", NULL);
	}
	/* the checksum itself */
	st.p[st.len - 1] ^= 1;
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "checksum") != NULL, "%s", err);
	st.p[st.len - 1] ^= 1;
	/* truncated stream, trailing garbage */
	st.len -= 10;
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_ECORRUPT);
	st.len += 10;
	st.p = realloc(st.p, st.len + 3);
	ck_assert_ptr_nonnull(st.p);
	memcpy(st.p + st.len, "xyz", 3);
	st.len += 3;
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_ECORRUPT);
	st.len -= 3;
	/* wrong magic, unknown version */
	st.p[0] ^= 1;
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_ECORRUPT);
	st.p[0] ^= 1;
	st.p[11] = 9;
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), STORAGE_EFORMAT);
	st.p[11] = 1;
	t_assert_value(b, "b-key", "b-value");
	/* the intact stream still installs */
	ck_assert_int_eq(install(b, &st, 1000, NULL, err), 0);
	t_assert_value(b, "b-key", NULL);
	t_assert_value(b, "key/0003", "key/0003");
	free(st.p);
}
END_TEST

START_TEST(test_stale_snapshot_refused)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct stream st;
	int i;

	t_put(a, "a", "1");
	st = take(a, 4096, NULL);
	for (i = 0; i < 3; i++) {
		t_put(b, "b", "x");
	}
	ck_assert_int_eq(install(b, &st, 4096, NULL, err), STORAGE_ESTALE);
	t_assert_value(b, "b", "x");
	free(st.p);
}
END_TEST

static void append_log(storage_t *h, uint64_t lo, uint64_t hi, uint64_t term)
{
	struct storage_entry e[64];
	struct storage_persist p = {0};
	uint64_t i;

	for (i = lo; i < hi; i++) {
		e[i - lo].index = i;
		e[i - lo].term = term;
		e[i - lo].type = 0;
		e[i - lo].data = "x";
		e[i - lo].len = 1;
	}
	p.entries = e;
	p.n_entries = hi - lo;
	ck_assert_int_eq(storage_persist(h, &p, NULL, 0), 0);
}

/* Figure 5.3: a matching log entry at the snapshot index keeps the suffix, else the log goes. */
START_TEST(test_install_fixes_log)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_state sb;
	struct stream st;
	int i;

	for (i = 0; i < 5; i++) {
		t_put(a, "k", "v"); /* applied 5, term 1 */
	}
	st = take(a, 4096, NULL);

	append_log(b, 1, 9, 1); /* b holds entries 1..8 of term 1, applied nothing */
	ck_assert_int_eq(install(b, &st, 4096, NULL, err), 0);
	sb = t_state(b);
	ck_assert_uint_eq(sb.first_index, 6);
	ck_assert_uint_eq(sb.last_index, 8); /* 6..8 kept */
	ck_assert_uint_eq(sb.snapshot_term, 1);

	/* a conflicting log is discarded whole */
	storage_close(b);
	t_rmdir(dir_b);
	dir_b = t_mkdtemp();
	b = t_open(dir_b);
	append_log(b, 1, 4, 1);
	append_log(b, 4, 9, 2); /* entry 5 has term 2, the snapshot's has term 1 */
	ck_assert_int_eq(install(b, &st, 4096, NULL, err), 0);
	sb = t_state(b);
	ck_assert_uint_eq(sb.first_index, 6);
	ck_assert_uint_eq(sb.last_index, 5);
	ck_assert_uint_eq(sb.last_term, 1);
	ck_assert_uint_eq(sb.snapshot_index, 5);
	/* appending after the snapshot works */
	append_log(b, 6, 8, 2);
	ck_assert_uint_eq(t_state(b).last_index, 7);
	free(st.p);
}
END_TEST

START_TEST(test_install_api)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot_install *in;
	struct storage_snapshot_install *in2;
	struct stream empty = {0};

	ck_assert_int_eq(storage_snapshot_install_begin(b, &in, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_snapshot_install_begin(b, &in2, err, sizeof(err)), STORAGE_EBUSY);
	ck_assert_ptr_null(in2);
	storage_snapshot_install_abort(in);
	storage_snapshot_install_abort(NULL);
	ck_assert_int_eq(access(t_path(dir_b, "snapshot.tmp"), F_OK), -1);
	/* an empty stream is truncated */
	ck_assert_int_eq(install(b, &empty, 1, NULL, err), STORAGE_ECORRUPT);
	ck_assert_int_eq(storage_snapshot_install_finish(NULL, NULL, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_snapshot_open(NULL, NULL, NULL, NULL, 0), STORAGE_EINVAL);
	storage_snapshot_close(NULL);
	/* chunks are spooled to snapshot.tmp until finish or abort */
	ck_assert_int_eq(storage_snapshot_install_begin(b, &in, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_snapshot_install_write(in, "abc", 3, NULL, 0), 0);
	ck_assert_int_eq(access(t_path(dir_b, "snapshot.tmp"), F_OK), 0);
	storage_snapshot_install_abort(in);
	/* a spool file left behind by a crash is removed at open */
	storage_close(b);
	{
		FILE *f = fopen(t_path(dir_b, "snapshot.tmp"), "w");

		ck_assert_ptr_nonnull(f);
		fclose(f);
	}
	b = t_open(dir_b);
	ck_assert_int_eq(access(t_path(dir_b, "snapshot.tmp"), F_OK), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_snapshot");
	TCase *tc = tcase_create("snapshot");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_point_in_time);
	tcase_add_test(tc, test_corrupted_chunk_refused);
	tcase_add_test(tc, test_stale_snapshot_refused);
	tcase_add_test(tc, test_install_fixes_log);
	tcase_add_test(tc, test_install_api);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
