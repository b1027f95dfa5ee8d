/* Unit tests of the key-value state machine: put/get/range/delete, revisions, versions, limits. */
#include "test/unit/test_storage_util.h"

static char *dir;
static storage_t *h;

static void setup(void)
{
	dir = t_mkdtemp();
	h = t_open(dir);
}

static void teardown(void)
{
	storage_close(h);
	h = NULL;
	t_rmdir(dir);
	dir = NULL;
}

START_TEST(test_put_get)
{
	struct storage_kv kv;

	t_assert_value(h, "a", NULL);
	ck_assert_uint_eq(t_put(h, "a", "1"), 1);
	ck_assert_uint_eq(t_put(h, "b", ""), 2);
	t_assert_value(h, "a", "1");
	t_assert_value(h, "b", "");
	free(t_get(h, "a", &kv));
	ck_assert_uint_eq(kv.create_revision, 1);
	ck_assert_uint_eq(kv.mod_revision, 1);
	ck_assert_uint_eq(kv.version, 1);
	ck_assert_uint_eq(kv.lease, 0);
	ck_assert_uint_eq(t_state(h).revision, 2);
}
END_TEST

/* etcd semantics of create_revision, mod_revision and version across put/put/delete/put. */
START_TEST(test_revisions_and_versions)
{
	struct storage_result r;
	struct storage_kv kv;

	ck_assert_uint_eq(t_put(h, "k", "v1"), 1);
	ck_assert_uint_eq(t_put(h, "other", "x"), 2);
	ck_assert_uint_eq(t_put(h, "k", "v2"), 3);
	free(t_get(h, "k", &kv));
	ck_assert_uint_eq(kv.create_revision, 1);
	ck_assert_uint_eq(kv.mod_revision, 3);
	ck_assert_uint_eq(kv.version, 2);

	r = t_apply_op(h, t_del_op("k", NULL));
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.revision, 4);
	ck_assert_uint_eq(r.ops[0].count, 1);
	storage_result_free(&r);
	t_assert_value(h, "k", NULL);

	ck_assert_uint_eq(t_put(h, "k", "v3"), 5);
	free(t_get(h, "k", &kv));
	ck_assert_uint_eq(kv.create_revision, 5);
	ck_assert_uint_eq(kv.mod_revision, 5);
	ck_assert_uint_eq(kv.version, 1);
	/* The untouched key keeps its revisions. */
	free(t_get(h, "other", &kv));
	ck_assert_uint_eq(kv.create_revision, 2);
	ck_assert_uint_eq(kv.mod_revision, 2);
}
END_TEST

START_TEST(test_put_prev_kv_and_lease)
{
	struct storage_op op = t_put_op("k", "new");
	struct storage_result r;
	struct storage_kv kv;

	op.flags = STORAGE_OP_PREV_KV;
	op.lease = 42;
	r = t_apply_op(h, op);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.n_ops, 1);
	ck_assert_int_eq(r.ops[0].type, STORAGE_OP_PUT);
	ck_assert_uint_eq(r.ops[0].n_kvs, 0); /* no previous value */
	storage_result_free(&r);

	op = t_put_op("k", "newer");
	op.flags = STORAGE_OP_PREV_KV;
	r = t_apply_op(h, op);
	ck_assert_uint_eq(r.ops[0].n_kvs, 1);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "k", "new"));
	ck_assert_uint_eq(r.ops[0].kvs[0].lease, 42);
	ck_assert_uint_eq(r.ops[0].kvs[0].version, 1);
	ck_assert_uint_eq(r.revision, 2);
	storage_result_free(&r);

	free(t_get(h, "k", &kv));
	ck_assert_uint_eq(kv.lease, 0); /* the second put carried no lease */
	ck_assert_uint_eq(kv.version, 2);
}
END_TEST

static void put_abcde(void)
{
	const char *keys[] = {"a", "b", "c", "d", "e"};
	size_t i;

	for (i = 0; i < 5; i++) {
		t_put(h, keys[i], keys[i]);
	}
}

static struct storage_result range(struct storage_op op)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_result r;
	int rv = storage_range(h, &op, &r, err, sizeof(err));

	ck_assert_msg(rv == 0, "range: %s (%s)", storage_strerror(rv), err);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.n_ops, 1);
	return r;
}

START_TEST(test_range)
{
	struct storage_op op;
	struct storage_result r;

	put_abcde();
	r = range(t_range_op("b", "d"));
	ck_assert_uint_eq(r.ops[0].n_kvs, 2);
	ck_assert_uint_eq(r.ops[0].count, 2);
	ck_assert(!r.ops[0].more);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "b", "b"));
	ck_assert(t_kv_eq(&r.ops[0].kvs[1], "c", "c"));
	ck_assert_uint_eq(r.revision, 5);
	storage_result_free(&r);

	/* limit: count still counts the whole range, `more` says there is more */
	op = t_range_op("b", "e");
	op.limit = 1;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].n_kvs, 1);
	ck_assert_uint_eq(r.ops[0].count, 3);
	ck_assert(r.ops[0].more);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "b", "b"));
	storage_result_free(&r);

	op.limit = 3;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].n_kvs, 3);
	ck_assert(!r.ops[0].more);
	storage_result_free(&r);

	op = t_range_op("a", T_ALL);
	op.flags = STORAGE_OP_COUNT_ONLY;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].n_kvs, 0);
	ck_assert_uint_eq(r.ops[0].count, 5);
	ck_assert(!r.ops[0].more);
	storage_result_free(&r);

	op = t_range_op("c", T_ALL);
	op.flags = STORAGE_OP_KEYS_ONLY;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].n_kvs, 3);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "c", NULL));
	ck_assert_ptr_null(r.ops[0].kvs[0].value);
	ck_assert_uint_eq(r.ops[0].kvs[0].value_len, 0);
	ck_assert_uint_eq(r.ops[0].kvs[0].version, 1);
	ck_assert(t_kv_eq(&r.ops[0].kvs[2], "e", NULL));
	storage_result_free(&r);

	/* single key, missing key, empty and inverted ranges */
	r = range(t_range_op("c", NULL));
	ck_assert_uint_eq(r.ops[0].n_kvs, 1);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "c", "c"));
	storage_result_free(&r);
	r = range(t_range_op("cc", NULL));
	ck_assert_uint_eq(r.ops[0].n_kvs, 0);
	ck_assert_uint_eq(r.ops[0].count, 0);
	storage_result_free(&r);
	r = range(t_range_op("d", "b"));
	ck_assert_uint_eq(r.ops[0].count, 0);
	storage_result_free(&r);
	r = range(t_range_op("b", "b"));
	ck_assert_uint_eq(r.ops[0].count, 0);
	storage_result_free(&r);
}
END_TEST

START_TEST(test_range_all_and_prefix)
{
	static const uint8_t zero = 0;
	struct storage_op op = {0};
	struct storage_result r;
	uint8_t end[8];
	size_t end_len;

	t_put(h, "foo", "0");
	t_put(h, "foo/a", "1");
	t_put(h, "foo/b", "2");
	t_put(h, "foo0", "3");
	t_put(h, "fop", "4");

	/* key "\0", range_end "\0": every key */
	op.type = STORAGE_OP_RANGE;
	op.key = &zero;
	op.key_len = 1;
	op.range_end = &zero;
	op.range_end_len = 1;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].count, 5);
	storage_result_free(&r);

	ck_assert_int_eq(storage_prefix_end("foo/", 4, end, &end_len), 0);
	ck_assert_uint_eq(end_len, 4);
	ck_assert_int_eq(memcmp(end, "foo0", 4), 0);
	op = t_range_op("foo/", NULL);
	op.range_end = end;
	op.range_end_len = end_len;
	r = range(op);
	ck_assert_uint_eq(r.ops[0].count, 2);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "foo/a", "1"));
	ck_assert(t_kv_eq(&r.ops[0].kvs[1], "foo/b", "2"));
	storage_result_free(&r);
}
END_TEST

START_TEST(test_prefix_end)
{
	uint8_t out[4];
	size_t n;

	ck_assert_int_eq(storage_prefix_end("abc", 3, out, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_int_eq(memcmp(out, "abd", 3), 0);
	ck_assert_int_eq(storage_prefix_end("ab\xff", 3, out, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_int_eq(memcmp(out, "ac", 2), 0);
	ck_assert_int_eq(storage_prefix_end("\xff\xff", 2, out, &n), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_uint_eq(out[0], 0);
	ck_assert_int_eq(storage_prefix_end("", 0, out, &n), STORAGE_EINVAL);
	ck_assert_int_eq(storage_prefix_end(NULL, 1, out, &n), STORAGE_EINVAL);
}
END_TEST

START_TEST(test_delete)
{
	struct storage_op op;
	struct storage_result r;

	put_abcde();
	/* a missing key: nothing deleted, no new revision */
	r = t_apply_op(h, t_del_op("zz", NULL));
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.ops[0].count, 0);
	ck_assert_uint_eq(r.revision, 5);
	storage_result_free(&r);
	ck_assert_uint_eq(t_state(h).revision, 5);

	/* a range with prev kvs, one revision for all */
	op = t_del_op("b", "d");
	op.flags = STORAGE_OP_PREV_KV;
	r = t_apply_op(h, op);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.revision, 6);
	ck_assert_int_eq(r.ops[0].type, STORAGE_OP_DELETE);
	ck_assert_uint_eq(r.ops[0].count, 2);
	ck_assert_uint_eq(r.ops[0].n_kvs, 2);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "b", "b"));
	ck_assert(t_kv_eq(&r.ops[0].kvs[1], "c", "c"));
	storage_result_free(&r);
	t_assert_value(h, "a", "a");
	t_assert_value(h, "b", NULL);
	t_assert_value(h, "c", NULL);
	t_assert_value(h, "d", "d");

	/* everything from d on, without prev kvs */
	r = t_apply_op(h, t_del_op("d", T_ALL));
	ck_assert_uint_eq(r.ops[0].count, 2);
	ck_assert_uint_eq(r.ops[0].n_kvs, 0);
	ck_assert_uint_eq(r.revision, 7);
	storage_result_free(&r);
	t_assert_value(h, "a", "a");
	t_assert_value(h, "e", NULL);
}
END_TEST

/* A range delete that spans many LMDB pages. */
START_TEST(test_delete_large_range)
{
	enum { N = 3000 };
	struct storage_op ops[STORAGE_MAX_TXN_OPS];
	char keys[STORAGE_MAX_TXN_OPS][16];
	struct storage_txn t = {0};
	struct storage_result r;
	char value[100];
	size_t i;
	size_t j;

	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (i = 0; i < N; i += STORAGE_MAX_TXN_OPS) {
		for (j = 0; j < STORAGE_MAX_TXN_OPS && i + j < N; j++) {
			snprintf(keys[j], sizeof(keys[j]), "k%05zu", i + j);
			ops[j] = t_put_op(keys[j], value);
		}
		t.success = ops;
		t.n_success = j;
		r = t_apply_txn(h, &t);
		ck_assert_int_eq(r.status, 0);
		storage_result_free(&r);
	}
	t_put(h, "j", "before");
	t_put(h, "l", "after");
	r = t_apply_op(h, t_del_op("k00100", "k02900"));
	ck_assert_uint_eq(r.ops[0].count, 2800);
	storage_result_free(&r);
	r = range(t_range_op("k", "l"));
	ck_assert_uint_eq(r.ops[0].count, 200);
	ck_assert(t_kv_eq(&r.ops[0].kvs[99], "k00099", value));
	ck_assert(t_kv_eq(&r.ops[0].kvs[100], "k02900", value));
	storage_result_free(&r);
	t_assert_value(h, "j", "before");
	t_assert_value(h, "l", "after");
}
END_TEST

static int apply_status(struct storage_txn t)
{
	struct storage_result r = t_apply_txn(h, &t);
	int status = r.status;

	ck_assert_uint_eq(r.n_ops, 0);
	storage_result_free(&r);
	return status;
}

START_TEST(test_limits)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	static char big_key[STORAGE_MAX_KEY_SIZE + 2];
	struct storage_op ops[STORAGE_MAX_TXN_OPS + 1];
	struct storage_op op;
	struct storage_txn t;
	uint64_t rev;
	char *value;
	size_t i;

	memset(big_key, 'k', sizeof(big_key) - 1);
	value = calloc(1, STORAGE_MAX_VALUE_SIZE + 2);
	ck_assert_ptr_nonnull(value);
	memset(value, 'v', STORAGE_MAX_VALUE_SIZE + 1);

	/* empty key */
	op = t_put_op("", "x");
	t = t_txn1(&op);
	ck_assert_int_eq(apply_status(t), STORAGE_EKEYSIZE);
	ck_assert_int_eq(storage_txn_validate(&t, err, sizeof(err)), STORAGE_EKEYSIZE);
	ck_assert_msg(strstr(err, "0 bytes") != NULL, "%s", err);

	/* a key of exactly the limit is fine, one more byte is not */
	big_key[STORAGE_MAX_KEY_SIZE] = '\0';
	t_put(h, big_key, "ok");
	t_assert_value(h, big_key, "ok");
	big_key[STORAGE_MAX_KEY_SIZE] = 'k';
	op = t_put_op(big_key, "x");
	t = t_txn1(&op);
	ck_assert_int_eq(apply_status(t), STORAGE_EKEYSIZE);
	op = t_range_op(big_key, NULL);
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EKEYSIZE);
	op = t_range_op("a", big_key);
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EKEYSIZE);

	/* value of exactly the limit, then one byte more */
	op = t_put_op("big", NULL);
	op.value = value;
	op.value_len = STORAGE_MAX_VALUE_SIZE;
	{
		struct storage_result r = t_apply_op(h, op);
		struct storage_kv kv;
		char *got;

		ck_assert_int_eq(r.status, 0);
		rev = r.revision;
		storage_result_free(&r);
		got = t_get(h, "big", &kv);

		ck_assert_ptr_nonnull(got);
		ck_assert_uint_eq(strlen(got), STORAGE_MAX_VALUE_SIZE);
		ck_assert_uint_eq(kv.mod_revision, rev);
		free(got);
	}
	op.value_len = STORAGE_MAX_VALUE_SIZE + 1;
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EVALSIZE);

	/* too many ops, too many compares */
	for (i = 0; i <= STORAGE_MAX_TXN_OPS; i++) {
		ops[i] = t_put_op("x", "y");
	}
	memset(&t, 0, sizeof(t));
	t.success = ops;
	t.n_success = STORAGE_MAX_TXN_OPS + 1;
	ck_assert_int_eq(apply_status(t), STORAGE_ETOOMANYOPS);
	t.n_success = 0;
	t.failure = ops;
	t.n_failure = STORAGE_MAX_TXN_OPS + 1;
	ck_assert_int_eq(apply_status(t), STORAGE_ETOOMANYOPS);
	t.n_failure = STORAGE_MAX_TXN_OPS;
	rev = t_state(h).revision;
	{
		struct storage_result r =
		    t_apply_txn(h, &t); /* no compares: success branch, empty */

		ck_assert_int_eq(r.status, 0);
		ck_assert(r.succeeded);
		ck_assert_uint_eq(r.n_ops, 0);
		ck_assert_uint_eq(r.revision, rev);
		storage_result_free(&r);
	}

	/* total bytes: five maximal values */
	for (i = 0; i < 5; i++) {
		ops[i] = t_put_op("x", NULL);
		ops[i].value = value;
		ops[i].value_len = STORAGE_MAX_VALUE_SIZE;
	}
	memset(&t, 0, sizeof(t));
	t.success = ops;
	t.n_success = 5;
	ck_assert_int_eq(apply_status(t), STORAGE_ETOOLARGE);

	/* malformed ops */
	op = t_put_op("x", "y");
	op.range_end = "z";
	op.range_end_len = 1;
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EINVAL);
	op = t_put_op("x", "y");
	op.type = (enum storage_op_type)9;
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EINVAL);
	op = t_put_op("x", "y");
	op.flags = 0x100;
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EINVAL);
	op = t_put_op("x", "y");
	op.key = NULL;
	ck_assert_int_eq(apply_status(t_txn1(&op)), STORAGE_EINVAL);

	/* none of the refused txns changed anything */
	t_assert_value(h, "x", NULL);
	ck_assert_uint_eq(t_state(h).revision, rev);
	free(value);
}
END_TEST

START_TEST(test_read_api_errors)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_op op = t_put_op("a", "b");
	struct storage_txn t = t_txn1(&op);
	struct storage_result r;
	struct storage_kv kv;
	bool found;

	ck_assert_int_eq(storage_read(h, &t, &r, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_ptr_null(r.priv);
	op = t_range_op("", NULL);
	ck_assert_int_eq(storage_range(h, &op, &r, err, sizeof(err)), STORAGE_EKEYSIZE);
	ck_assert_int_eq(storage_get(h, "", 0, &found, &kv, &r, NULL, 0), STORAGE_EKEYSIZE);
	ck_assert_int_eq(storage_read(NULL, &t, &r, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_read(h, NULL, &r, NULL, 0), STORAGE_EINVAL);
	storage_result_free(NULL);
	storage_result_free(&r);
}
END_TEST

/* A put followed by reads of the same key in one txn sees the put; two puts of one key
 * in one txn both count (Cairn applies ops in order; etcd would refuse the txn). */
START_TEST(test_ops_in_order)
{
	struct storage_op ops[4];
	struct storage_txn t = {0};
	struct storage_result r;
	struct storage_kv kv;

	ops[0] = t_put_op("k", "1");
	ops[1] = t_put_op("k", "2");
	ops[2] = t_range_op("k", NULL);
	ops[3] = t_put_op("j", "3");
	t.success = ops;
	t.n_success = 4;
	r = t_apply_txn(h, &t);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.revision, 1);
	ck_assert_uint_eq(r.n_ops, 4);
	ck_assert_int_eq(r.ops[2].type, STORAGE_OP_RANGE);
	ck_assert(t_kv_eq(&r.ops[2].kvs[0], "k", "2"));
	ck_assert_uint_eq(r.ops[2].kvs[0].version, 2);
	ck_assert_uint_eq(r.ops[2].kvs[0].mod_revision, 1);
	storage_result_free(&r);
	free(t_get(h, "j", &kv));
	ck_assert_uint_eq(kv.mod_revision, 1);
}
END_TEST

START_TEST(test_persists_across_reopen)
{
	t_put(h, "a", "1");
	t_put(h, "b", "2");
	storage_close(h);
	h = t_open(dir);
	t_assert_value(h, "a", "1");
	t_assert_value(h, "b", "2");
	ck_assert_uint_eq(t_state(h).revision, 2);
	ck_assert_uint_eq(t_state(h).applied_index, 2);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_kv");
	TCase *tc = tcase_create("kv");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_put_get);
	tcase_add_test(tc, test_revisions_and_versions);
	tcase_add_test(tc, test_put_prev_kv_and_lease);
	tcase_add_test(tc, test_range);
	tcase_add_test(tc, test_range_all_and_prefix);
	tcase_add_test(tc, test_prefix_end);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_delete_large_range);
	tcase_add_test(tc, test_limits);
	tcase_add_test(tc, test_read_api_errors);
	tcase_add_test(tc, test_ops_in_order);
	tcase_add_test(tc, test_persists_across_reopen);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
