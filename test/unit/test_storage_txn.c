/* Unit tests of transactions, compares, batched apply and exactly-once client sessions (§6.3). */
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

static struct storage_compare cmp_num(const char *key, enum storage_cmp_target target,
				      enum storage_cmp_result result, uint64_t number)
{
	struct storage_compare c = {0};

	c.key = key;
	c.key_len = strlen(key);
	c.target = target;
	c.result = result;
	c.number = number;
	return c;
}

static struct storage_compare cmp_value(const char *key, enum storage_cmp_result result,
					const char *value)
{
	struct storage_compare c = cmp_num(key, STORAGE_CMP_VALUE, result, 0);

	c.value = value;
	c.value_len = strlen(value);
	return c;
}

/* Run a txn with one compare; the success branch puts "then", the failure branch "else".
 * Returns whether the compare held, and checks the right branch ran. */
static bool eval(struct storage_compare c)
{
	struct storage_op then_op = t_put_op("branch", "then");
	struct storage_op else_op = t_put_op("branch", "else");
	struct storage_txn t = {0};
	struct storage_result r;
	bool ok;

	t.compares = &c;
	t.n_compares = 1;
	t.success = &then_op;
	t.n_success = 1;
	t.failure = &else_op;
	t.n_failure = 1;
	r = t_apply_txn(h, &t);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.n_ops, 1);
	ok = r.succeeded;
	storage_result_free(&r);
	t_assert_value(h, "branch", ok ? "then" : "else");
	return ok;
}

/* Every target x every result, against an operand below, equal to and above the key's field. */
START_TEST(test_compare_matrix)
{
	static const enum storage_cmp_target targets[] = {STORAGE_CMP_VERSION, STORAGE_CMP_CREATE,
							  STORAGE_CMP_MOD, STORAGE_CMP_LEASE};
	struct storage_op op;
	struct storage_kv kv;
	uint64_t fields[4];
	size_t i;

	t_put(h, "k", "m");	/* rev 1 */
	t_put(h, "other", "x"); /* rev 2 */
	op = t_put_op("k", "m");
	op.lease = 7;
	{
		struct storage_result r = t_apply_op(h, op); /* rev 3 */

		ck_assert_int_eq(r.status, 0);
		storage_result_free(&r);
	}
	free(t_get(h, "k", &kv));
	fields[0] = kv.version;		/* 2 */
	fields[1] = kv.create_revision; /* 1 */
	fields[2] = kv.mod_revision;	/* 3 */
	fields[3] = kv.lease;		/* 7 */
	ck_assert_uint_eq(fields[0], 2);
	ck_assert_uint_eq(fields[1], 1);
	ck_assert_uint_eq(fields[2], 3);
	ck_assert_uint_eq(fields[3], 7);

	for (i = 0; i < 4; i++) {
		uint64_t f = fields[i];
		enum storage_cmp_target tg = targets[i];

		ck_assert(eval(cmp_num("k", tg, STORAGE_CMP_EQUAL, f)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_EQUAL, f + 1)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_NOT_EQUAL, f)));
		ck_assert(eval(cmp_num("k", tg, STORAGE_CMP_NOT_EQUAL, f - 1)));
		ck_assert(eval(cmp_num("k", tg, STORAGE_CMP_LESS, f + 1)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_LESS, f)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_LESS, f - 1)));
		ck_assert(eval(cmp_num("k", tg, STORAGE_CMP_GREATER, f - 1)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_GREATER, f)));
		ck_assert(!eval(cmp_num("k", tg, STORAGE_CMP_GREATER, f + 1)));
	}
	/* values compare as bytes, a prefix sorting first */
	ck_assert(eval(cmp_value("k", STORAGE_CMP_EQUAL, "m")));
	ck_assert(!eval(cmp_value("k", STORAGE_CMP_EQUAL, "mm")));
	ck_assert(eval(cmp_value("k", STORAGE_CMP_NOT_EQUAL, "n")));
	ck_assert(!eval(cmp_value("k", STORAGE_CMP_NOT_EQUAL, "m")));
	ck_assert(eval(cmp_value("k", STORAGE_CMP_LESS, "n")));
	ck_assert(eval(cmp_value("k", STORAGE_CMP_LESS, "mm")));
	ck_assert(!eval(cmp_value("k", STORAGE_CMP_LESS, "m")));
	ck_assert(eval(cmp_value("k", STORAGE_CMP_GREATER, "l")));
	ck_assert(eval(cmp_value("k", STORAGE_CMP_GREATER, "")));
	ck_assert(!eval(cmp_value("k", STORAGE_CMP_GREATER, "z")));
}
END_TEST

/* etcd: a missing key has version/create/mod/lease 0 and fails every value compare. */
START_TEST(test_compare_missing_key)
{
	static const enum storage_cmp_target targets[] = {STORAGE_CMP_VERSION, STORAGE_CMP_CREATE,
							  STORAGE_CMP_MOD, STORAGE_CMP_LEASE};
	size_t i;

	for (i = 0; i < 4; i++) {
		ck_assert(eval(cmp_num("nope", targets[i], STORAGE_CMP_EQUAL, 0)));
		ck_assert(!eval(cmp_num("nope", targets[i], STORAGE_CMP_NOT_EQUAL, 0)));
		ck_assert(eval(cmp_num("nope", targets[i], STORAGE_CMP_LESS, 1)));
		ck_assert(!eval(cmp_num("nope", targets[i], STORAGE_CMP_GREATER, 0)));
	}
	ck_assert(!eval(cmp_value("nope", STORAGE_CMP_EQUAL, "")));
	ck_assert(!eval(cmp_value("nope", STORAGE_CMP_NOT_EQUAL, "x")));
	ck_assert(!eval(cmp_value("nope", STORAGE_CMP_LESS, "zzz")));
	ck_assert(!eval(cmp_value("nope", STORAGE_CMP_GREATER, "")));
}
END_TEST

START_TEST(test_compare_range)
{
	struct storage_compare c;

	t_put(h, "r/a", "1");
	t_put(h, "r/b", "1");
	t_put(h, "r/c", "2");
	c = cmp_value("r/a", STORAGE_CMP_EQUAL, "1");
	c.range_end = "r/c";
	c.range_end_len = 3;
	ck_assert(eval(c)); /* a and b */
	c.range_end = "r/d";
	ck_assert(!eval(c)); /* c differs */
	c = cmp_num("r/a", STORAGE_CMP_VERSION, STORAGE_CMP_EQUAL, 1);
	c.range_end = "r/d";
	c.range_end_len = 3;
	ck_assert(eval(c));
	/* an empty range behaves like a missing key */
	c = cmp_num("s/", STORAGE_CMP_CREATE, STORAGE_CMP_EQUAL, 0);
	c.range_end = "s0";
	c.range_end_len = 2;
	ck_assert(eval(c));
	c = cmp_value("s/", STORAGE_CMP_NOT_EQUAL, "x");
	c.range_end = "s0";
	c.range_end_len = 2;
	ck_assert(!eval(c));
}
END_TEST

/* Compares are ANDed; each branch runs atomically; results follow the branch's ops. */
START_TEST(test_txn_branches)
{
	struct storage_compare cmps[2];
	struct storage_op succ[3];
	struct storage_op fail[2];
	struct storage_txn t = {0};
	struct storage_result r;

	t_put(h, "lock", "free"); /* rev 1 */
	t_put(h, "n", "0");	  /* rev 2 */
	cmps[0] = cmp_value("lock", STORAGE_CMP_EQUAL, "free");
	cmps[1] = cmp_num("n", STORAGE_CMP_MOD, STORAGE_CMP_EQUAL, 2);
	succ[0] = t_put_op("lock", "held");
	succ[1] = t_put_op("n", "1");
	succ[2] = t_del_op("missing", NULL);
	fail[0] = t_range_op("lock", NULL);
	fail[1] = t_range_op("n", NULL);
	t.compares = cmps;
	t.n_compares = 2;
	t.success = succ;
	t.n_success = 3;
	t.failure = fail;
	t.n_failure = 2;

	r = t_apply_txn(h, &t);
	ck_assert_int_eq(r.status, 0);
	ck_assert(r.succeeded);
	ck_assert_uint_eq(r.revision, 3); /* one revision for the whole txn */
	ck_assert_uint_eq(r.n_ops, 3);
	ck_assert_int_eq(r.ops[0].type, STORAGE_OP_PUT);
	ck_assert_int_eq(r.ops[1].type, STORAGE_OP_PUT);
	ck_assert_int_eq(r.ops[2].type, STORAGE_OP_DELETE);
	ck_assert_uint_eq(r.ops[2].count, 0);
	storage_result_free(&r);
	{
		struct storage_kv a;
		struct storage_kv b;

		free(t_get(h, "lock", &a));
		free(t_get(h, "n", &b));
		ck_assert_uint_eq(a.mod_revision, 3);
		ck_assert_uint_eq(b.mod_revision, 3);
	}

	/* Same txn again: the lock is held, the failure branch (reads only) runs and the
	 * revision does not move. */
	r = t_apply_txn(h, &t);
	ck_assert_int_eq(r.status, 0);
	ck_assert(!r.succeeded);
	ck_assert_uint_eq(r.revision, 3);
	ck_assert_uint_eq(r.n_ops, 2);
	ck_assert_int_eq(r.ops[0].type, STORAGE_OP_RANGE);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "lock", "held"));
	ck_assert(t_kv_eq(&r.ops[1].kvs[0], "n", "1"));
	storage_result_free(&r);
	ck_assert_uint_eq(t_state(h).revision, 3);
	ck_assert_uint_eq(t_state(h).applied_index, 4);
}
END_TEST

/* A read-only txn served locally with compares. */
START_TEST(test_read_txn)
{
	struct storage_compare c = cmp_value("a", STORAGE_CMP_EQUAL, "1");
	struct storage_op ok = t_range_op("a", NULL);
	struct storage_op ko = t_range_op("b", NULL);
	struct storage_txn t = {0};
	struct storage_result r;

	t_put(h, "a", "1");
	t_put(h, "b", "2");
	t.compares = &c;
	t.n_compares = 1;
	t.success = &ok;
	t.n_success = 1;
	t.failure = &ko;
	t.n_failure = 1;
	ck_assert_int_eq(storage_read(h, &t, &r, NULL, 0), 0);
	ck_assert(r.succeeded);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "a", "1"));
	ck_assert_uint_eq(r.revision, 2);
	storage_result_free(&r);
	c = cmp_value("a", STORAGE_CMP_EQUAL, "0");
	ck_assert_int_eq(storage_read(h, &t, &r, NULL, 0), 0);
	ck_assert(!r.succeeded);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "b", "2"));
	storage_result_free(&r);
}
END_TEST

static struct storage_cmd put_cmd(uint64_t index, const struct storage_op *op)
{
	struct storage_cmd c = {0};

	c.index = index;
	c.term = 1;
	c.type = STORAGE_CMD_TXN;
	c.txn.success = op;
	c.txn.n_success = 1;
	return c;
}

/* Batches apply atomically with applied_index; entries already applied are skipped. */
START_TEST(test_apply_batch_and_idempotence)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_op ops[8];
	struct storage_cmd cmds[8];
	struct storage_result res[8];
	char keys[8][32];
	size_t i;

	for (i = 0; i < 8; i++) {
		snprintf(keys[i], sizeof(keys[i]), "k%zu", i + 1);
		ops[i] = t_put_op(keys[i], keys[i]);
		cmds[i] = put_cmd(i + 1, &ops[i]);
	}
	ck_assert_int_eq(storage_apply(h, cmds, 5, res, err, sizeof(err)), 0);
	for (i = 0; i < 5; i++) {
		ck_assert(!res[i].skipped);
		ck_assert_int_eq(res[i].status, 0);
		ck_assert_uint_eq(res[i].revision, i + 1);
		storage_result_free(&res[i]);
	}
	ck_assert_uint_eq(t_state(h).applied_index, 5);
	ck_assert_uint_eq(t_state(h).applied_term, 1);

	/* re-applying 3..8 after a "crash": 3..5 skipped, 6..8 applied once */
	ck_assert_int_eq(storage_apply(h, &cmds[2], 6, res, err, sizeof(err)), 0);
	for (i = 0; i < 6; i++) {
		ck_assert(res[i].skipped == (i < 3));
		if (i >= 3) {
			ck_assert_uint_eq(res[i].revision, i + 3);
		}
		storage_result_free(&res[i]);
	}
	ck_assert_uint_eq(t_state(h).applied_index, 8);
	ck_assert_uint_eq(t_state(h).revision, 8);
	{
		struct storage_kv kv;

		free(t_get(h, "k4", &kv));
		ck_assert_uint_eq(kv.version, 1);
	}
	/* everything already applied: no-op */
	ck_assert_int_eq(storage_apply(h, cmds, 3, res, err, sizeof(err)), 0);
	ck_assert(res[0].skipped && res[1].skipped && res[2].skipped);
}
END_TEST

START_TEST(test_apply_errors)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_op op = t_put_op("a", "b");
	struct storage_cmd cmds[2];
	struct storage_result res[2];

	/* a gap after applied_index */
	cmds[0] = put_cmd(2, &op);
	ck_assert_int_eq(storage_apply(h, cmds, 1, res, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_msg(strstr(err, "gap") != NULL, "%s", err);
	/* non-contiguous */
	cmds[0] = put_cmd(1, &op);
	cmds[1] = put_cmd(3, &op);
	ck_assert_int_eq(storage_apply(h, cmds, 2, res, err, sizeof(err)), STORAGE_EINVAL);
	/* decreasing terms */
	cmds[1] = put_cmd(2, &op);
	cmds[0].term = 2;
	ck_assert_int_eq(storage_apply(h, cmds, 2, res, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_int_eq(storage_apply(h, NULL, 1, res, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_apply(h, cmds, 0, res, NULL, 0), 0);
	ck_assert_uint_eq(t_state(h).applied_index, 0);
	t_assert_value(h, "a", NULL);
	/* a term lower than the applied term */
	cmds[0] = put_cmd(1, &op);
	cmds[0].term = 5;
	ck_assert_int_eq(storage_apply(h, cmds, 1, res, NULL, 0), 0);
	storage_result_free(&res[0]);
	cmds[0] = put_cmd(2, &op);
	cmds[0].term = 4;
	ck_assert_int_eq(storage_apply(h, cmds, 1, res, NULL, 0), STORAGE_EINVAL);
}
END_TEST

START_TEST(test_noop_conf_unknown)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t index;
	void *conf;
	size_t len;
	char *big;

	t_put(h, "a", "1");
	index = t_noop(h);
	ck_assert_uint_eq(t_state(h).applied_index, index);
	ck_assert_uint_eq(t_state(h).revision, 1);

	ck_assert_int_eq(storage_conf_get(h, &index, &conf, &len, NULL, 0), 0);
	ck_assert_ptr_null(conf);
	ck_assert_uint_eq(index, 0);
	cmd.type = STORAGE_CMD_CONF;
	cmd.conf = "members:1,2,3";
	cmd.conf_len = 13;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	ck_assert_int_eq(r.type, STORAGE_CMD_CONF);
	storage_result_free(&r);
	ck_assert_int_eq(storage_conf_get(h, &index, &conf, &len, NULL, 0), 0);
	ck_assert_uint_eq(index, 3);
	ck_assert_uint_eq(len, 13);
	ck_assert_int_eq(memcmp(conf, "members:1,2,3", 13), 0);
	free(conf);

	big = calloc(1, STORAGE_MAX_CONF_SIZE + 1);
	ck_assert_ptr_nonnull(big);
	cmd.conf = big;
	cmd.conf_len = STORAGE_MAX_CONF_SIZE + 1;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, STORAGE_ETOOLARGE);
	storage_result_free(&r);
	free(big);

	memset(&cmd, 0, sizeof(cmd));
	cmd.type = (enum storage_cmd_type)77;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, STORAGE_EINVAL);
	storage_result_free(&r);
	ck_assert_uint_eq(t_state(h).applied_index, 5);
	/* type 0: what cairnd applies for an entry it cannot decode; nothing changes but the
	 * applied index, the same way on every replica */
	uint64_t rev = t_state(h).revision;
	cmd.type = (enum storage_cmd_type)0;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, STORAGE_EINVAL);
	ck_assert_uint_eq(r.revision, rev);
	storage_result_free(&r);
	ck_assert_uint_eq(t_state(h).applied_index, 6);
	ck_assert_uint_eq(t_state(h).revision, rev);
}
END_TEST

/* ---- sessions ---- */

static uint64_t register_session(void)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t id;

	cmd.type = STORAGE_CMD_REGISTER_SESSION;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.client_id, t_state(h).applied_index);
	id = r.client_id;
	storage_result_free(&r);
	return id;
}

static struct storage_result session_put(uint64_t client, uint64_t seq, const char *key,
					 const char *value)
{
	struct storage_op op = t_put_op(key, value);
	struct storage_cmd cmd = {0};

	op.flags = STORAGE_OP_PREV_KV;
	cmd.type = STORAGE_CMD_TXN;
	cmd.client_id = client;
	cmd.seq = seq;
	cmd.txn.success = &op;
	cmd.txn.n_success = 1;
	return t_apply_cmd(h, cmd);
}

START_TEST(test_session_exactly_once)
{
	struct storage_result r1;
	struct storage_result r;
	struct storage_kv kv;
	uint64_t id = register_session();

	t_put(h, "k", "v0"); /* rev 1 */
	r1 = session_put(id, 1, "k", "v1");
	ck_assert_int_eq(r1.status, 0);
	ck_assert(!r1.cached);
	ck_assert_uint_eq(r1.revision, 2);
	ck_assert(t_kv_eq(&r1.ops[0].kvs[0], "k", "v0"));

	/* A retry of seq 1 (e.g. after a leader change) is not applied again: same reply. */
	t_put(h, "other", "x"); /* rev 3 */
	r = session_put(id, 1, "k", "v1");
	ck_assert_int_eq(r.status, 0);
	ck_assert(r.cached);
	ck_assert_uint_eq(r.revision, 2);
	ck_assert_uint_eq(r.n_ops, 1);
	ck_assert(t_kv_eq(&r.ops[0].kvs[0], "k", "v0"));
	storage_result_free(&r);
	free(t_get(h, "k", &kv));
	ck_assert_uint_eq(kv.version, 2);
	ck_assert_uint_eq(t_state(h).revision, 3);

	r = session_put(id, 2, "k", "v2");
	ck_assert_int_eq(r.status, 0);
	ck_assert(!r.cached);
	ck_assert_uint_eq(r.revision, 4);
	storage_result_free(&r);

	/* seq 1 is now older than the last one: its reply is gone */
	r = session_put(id, 1, "k", "v1");
	ck_assert_int_eq(r.status, STORAGE_ESTALE);
	storage_result_free(&r);
	t_assert_value(h, "k", "v2");

	/* unknown session, seq 0 */
	r = session_put(id + 1000, 1, "k", "zz");
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	r = session_put(id, 0, "k", "zz");
	ck_assert_int_eq(r.status, STORAGE_EINVAL);
	storage_result_free(&r);
	t_assert_value(h, "k", "v2");

	/* sessions are persistent */
	storage_close(h);
	h = t_open(dir);
	r = session_put(id, 2, "k", "v2");
	ck_assert(r.cached);
	ck_assert_uint_eq(r.revision, 4);
	storage_result_free(&r);
	storage_result_free(&r1);
}
END_TEST

/* A failed command is cached like any other: its retry gets the same error. */
START_TEST(test_session_caches_errors)
{
	static char big_key[STORAGE_MAX_KEY_SIZE + 2];
	struct storage_result r;
	uint64_t id = register_session();

	memset(big_key, 'k', sizeof(big_key) - 1);
	r = session_put(id, 1, big_key, "v");
	ck_assert_int_eq(r.status, STORAGE_EKEYSIZE);
	ck_assert(!r.cached);
	storage_result_free(&r);
	r = session_put(id, 1, big_key, "v");
	ck_assert_int_eq(r.status, STORAGE_EKEYSIZE);
	ck_assert(r.cached);
	storage_result_free(&r);
}
END_TEST

START_TEST(test_session_close)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t id = register_session();

	cmd.type = STORAGE_CMD_CLOSE_SESSION;
	cmd.client_id = id;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	r = session_put(id, 1, "k", "v");
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	t_assert_value(h, "k", NULL);
}
END_TEST

/* Expiry is driven by log indexes: a session unused for session_ttl entries is gone. */
START_TEST(test_session_expiry)
{
	struct storage_options o = {0};
	struct storage_result r;
	uint64_t a;
	uint64_t b;
	int i;

	storage_close(h);
	o.nosync = true;
	o.session_ttl = 10;
	h = t_open_opts(dir, &o);
	a = register_session(); /* index 1 */
	b = register_session(); /* index 2 */
	for (i = 0; i < 5; i++) {
		t_noop(h); /* 3..7 */
	}
	r = session_put(b, 1, "b", "1"); /* index 8: b used */
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);
	t_noop(h); /* 9 */
	t_noop(h); /* 10 */
	/* index 11: a was last used at 1, 11 - 1 >= 10: expired */
	r = session_put(a, 1, "a", "1");
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	r = session_put(b, 2, "b", "2"); /* 12: b still alive (last used at 8) */
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);
	for (i = 0; i < 9; i++) {
		t_noop(h); /* 13..21 */
	}
	r = session_put(b, 3, "b", "3"); /* 22: 22 - 12 >= 10 */
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	t_assert_value(h, "a", NULL);
	t_assert_value(h, "b", "2");
}
END_TEST

/* The least recently used session is evicted when max_sessions would be exceeded. */
START_TEST(test_session_lru_cap)
{
	struct storage_options o = {0};
	struct storage_result r;
	uint64_t ids[4];
	int i;

	storage_close(h);
	o.nosync = true;
	o.max_sessions = 3;
	h = t_open_opts(dir, &o);
	for (i = 0; i < 3; i++) {
		ids[i] = register_session();
	}
	r = session_put(ids[0], 1, "x", "0"); /* ids[0] becomes the most recently used */
	storage_result_free(&r);
	ids[3] = register_session(); /* evicts ids[1] */
	r = session_put(ids[1], 1, "x", "1");
	ck_assert_int_eq(r.status, STORAGE_ESESSION);
	storage_result_free(&r);
	r = session_put(ids[0], 1, "x", "0");
	ck_assert(r.cached);
	storage_result_free(&r);
	for (i = 2; i < 4; i++) {
		r = session_put(ids[i], 1, "x", "i");
		ck_assert_int_eq(r.status, 0);
		storage_result_free(&r);
	}
}
END_TEST

/* A reply too large to cache: the retry learns the command was applied, not its reply. */
START_TEST(test_session_reply_too_large)
{
	struct storage_op puts[8];
	struct storage_op rop = t_range_op("big", "bih");
	struct storage_txn t = {0};
	struct storage_cmd cmd = {0};
	struct storage_result r;
	char keys[8][32];
	char *value;
	uint64_t id;
	int i;

	value = malloc(STORAGE_MAX_CACHED_REPLY / 4);
	ck_assert_ptr_nonnull(value);
	memset(value, 'v', STORAGE_MAX_CACHED_REPLY / 4 - 1);
	value[STORAGE_MAX_CACHED_REPLY / 4 - 1] = '\0';
	for (i = 0; i < 8; i++) {
		snprintf(keys[i], sizeof(keys[i]), "big%d", i);
		puts[i] = t_put_op(keys[i], value);
	}
	t.success = puts;
	t.n_success = 8;
	r = t_apply_txn(h, &t);
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);

	id = register_session();
	cmd.type = STORAGE_CMD_TXN;
	cmd.client_id = id;
	cmd.seq = 1;
	cmd.txn.success = &rop;
	cmd.txn.n_success = 1;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	ck_assert_uint_eq(r.ops[0].n_kvs, 8);
	storage_result_free(&r);
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, STORAGE_ENOREPLY);
	storage_result_free(&r);
	free(value);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_txn");
	TCase *tc = tcase_create("txn");
	TCase *ts = tcase_create("sessions");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_compare_matrix);
	tcase_add_test(tc, test_compare_missing_key);
	tcase_add_test(tc, test_compare_range);
	tcase_add_test(tc, test_txn_branches);
	tcase_add_test(tc, test_read_txn);
	tcase_add_test(tc, test_apply_batch_and_idempotence);
	tcase_add_test(tc, test_apply_errors);
	tcase_add_test(tc, test_noop_conf_unknown);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(ts, setup, teardown);
	tcase_set_timeout(ts, 60);
	tcase_add_test(ts, test_session_exactly_once);
	tcase_add_test(ts, test_session_caches_errors);
	tcase_add_test(ts, test_session_close);
	tcase_add_test(ts, test_session_expiry);
	tcase_add_test(ts, test_session_lru_cap);
	tcase_add_test(ts, test_session_reply_too_large);
	suite_add_tcase(s, ts);
	return s;
}

int main(void)
{
	return t_run(suite());
}
