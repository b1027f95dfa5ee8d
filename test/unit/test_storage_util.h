/* Helpers for the storage tests; header-only since each test file is its own binary. */
#ifndef CAIRN_TEST_STORAGE_UTIL_H
#define CAIRN_TEST_STORAGE_UTIL_H

#include <check.h>
#include <dirent.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/storage.h"

#define T_TMPDIR_TEMPLATE "/tmp/cairn-storage-test-XXXXXX"
#define T_PATH_MAX	  4096

/* A fresh empty directory under /tmp; free with t_rmdir(). */
static inline char *t_mkdtemp(void)
{
	char *d = strdup(T_TMPDIR_TEMPLATE);

	ck_assert_ptr_nonnull(d);
	ck_assert_ptr_nonnull(mkdtemp(d));
	return d;
}

/* Remove a data directory (files, and the files of its subdirectories such as wal/). */
static inline void t_rmtree(const char *dir)
{
	char path[T_PATH_MAX];
	struct dirent *e;
	DIR *d;

	d = opendir(dir);
	if (d != NULL) {
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
				continue;
			}
			if (strlen(dir) + strlen(e->d_name) + 2 > sizeof(path)) {
				continue;
			}
			strcpy(path, dir);
			strcat(path, "/");
			strcat(path, e->d_name);
			if (unlink(path) != 0) {
				t_rmtree(path);
			}
		}
		closedir(d);
	}
	rmdir(dir);
}

/* Remove a data directory and free its name. */
static inline void t_rmdir(char *dir)
{
	if (dir == NULL) {
		return;
	}
	t_rmtree(dir);
	free(dir);
}

static inline char *t_path(const char *dir, const char *name)
{
	static char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return path;
}

static inline storage_t *t_open_opts(const char *dir, const struct storage_options *opts)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	storage_t *h = NULL;
	int rv = storage_open(dir, opts, &h, err, sizeof(err));

	ck_assert_msg(rv == 0, "storage_open(%s): %s (%s)", dir, storage_strerror(rv), err);
	ck_assert_ptr_nonnull(h);
	return h;
}

/* Unit tests do not need durability; the crash test and the benchmark use real fsync. */
static inline storage_t *t_open(const char *dir)
{
	struct storage_options o = {0};

	o.nosync = true;
	return t_open_opts(dir, &o);
}

static inline struct storage_state t_state(storage_t *h)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_state st;
	int rv = storage_state(h, &st, err, sizeof(err));

	ck_assert_msg(rv == 0, "storage_state: %s (%s)", storage_strerror(rv), err);
	return st;
}

/* ---- building requests ---- */

static inline struct storage_op t_put_op(const char *key, const char *value)
{
	struct storage_op op = {0};

	op.type = STORAGE_OP_PUT;
	op.key = key;
	op.key_len = strlen(key);
	op.value = value;
	op.value_len = value != NULL ? strlen(value) : 0;
	return op;
}

/* end NULL: the single key; "" is not used (use NULL). "\0" is written as T_ALL. */
#define T_ALL ((const char *)1)
static inline void t_set_range(const void **k, size_t *kl, const void **e, size_t *el,
			       const char *key, const char *end)
{
	static const uint8_t zero = 0;

	*k = key;
	*kl = strlen(key);
	if (end == NULL) {
		*e = NULL;
		*el = 0;
	} else if (end == T_ALL) {
		*e = &zero;
		*el = 1;
	} else {
		*e = end;
		*el = strlen(end);
	}
}

static inline struct storage_op t_range_op(const char *key, const char *end)
{
	struct storage_op op = {0};

	op.type = STORAGE_OP_RANGE;
	t_set_range(&op.key, &op.key_len, &op.range_end, &op.range_end_len, key, end);
	return op;
}

static inline struct storage_op t_del_op(const char *key, const char *end)
{
	struct storage_op op = {0};

	op.type = STORAGE_OP_DELETE;
	t_set_range(&op.key, &op.key_len, &op.range_end, &op.range_end_len, key, end);
	return op;
}

static inline struct storage_txn t_txn1(const struct storage_op *op)
{
	struct storage_txn t = {0};

	t.success = op;
	t.n_success = 1;
	return t;
}

/* ---- applying ---- */

/* Apply one command as the next log entry (applied_index + 1, term 1); asserts the call
 * succeeds and returns the result (caller frees). */
static inline struct storage_result t_apply_cmd(storage_t *h, struct storage_cmd cmd)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_result res;
	int rv;

	cmd.index = t_state(h).applied_index + 1;
	if (cmd.term == 0) {
		cmd.term = 1;
	}
	rv = storage_apply(h, &cmd, 1, &res, err, sizeof(err));
	ck_assert_msg(rv == 0, "storage_apply: %s (%s)", storage_strerror(rv), err);
	return res;
}

static inline struct storage_result t_apply_txn(storage_t *h, const struct storage_txn *txn)
{
	struct storage_cmd cmd = {0};

	cmd.type = STORAGE_CMD_TXN;
	cmd.txn = *txn;
	return t_apply_cmd(h, cmd);
}

static inline struct storage_result t_apply_op(storage_t *h, struct storage_op op)
{
	struct storage_txn t = t_txn1(&op);

	return t_apply_txn(h, &t);
}

/* Put and return the new revision; asserts success. */
static inline uint64_t t_put(storage_t *h, const char *key, const char *value)
{
	struct storage_result r = t_apply_op(h, t_put_op(key, value));
	uint64_t rev = r.revision;

	ck_assert_msg(r.status == 0, "put %s: %s", key, storage_strerror(r.status));
	storage_result_free(&r);
	return rev;
}

static inline uint64_t t_noop(storage_t *h)
{
	struct storage_cmd cmd = {0};
	struct storage_result r;
	uint64_t index = t_state(h).applied_index + 1;

	cmd.type = STORAGE_CMD_NOOP;
	r = t_apply_cmd(h, cmd);
	ck_assert_int_eq(r.status, 0);
	storage_result_free(&r);
	return index;
}

/* The value of `key` as a malloc'd string, or NULL if missing. Also returns the kv's metadata
 * in *meta if non-NULL. */
static inline char *t_get(storage_t *h, const char *key, struct storage_kv *meta)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_result res;
	struct storage_kv kv;
	bool found;
	char *s = NULL;
	int rv;

	rv = storage_get(h, key, strlen(key), &found, &kv, &res, err, sizeof(err));
	ck_assert_msg(rv == 0, "storage_get(%s): %s (%s)", key, storage_strerror(rv), err);
	if (found) {
		s = malloc(kv.value_len + 1);
		ck_assert_ptr_nonnull(s);
		memcpy(s, kv.value, kv.value_len);
		s[kv.value_len] = '\0';
		if (meta != NULL) {
			*meta = kv;
			meta->key = NULL;
			meta->value = NULL;
		}
	}
	storage_result_free(&res);
	return s;
}

static inline bool t_kv_eq(const struct storage_kv *kv, const char *key, const char *value)
{
	return kv->key_len == strlen(key) && memcmp(kv->key, key, kv->key_len) == 0 &&
	       (value == NULL ||
		(kv->value_len == strlen(value) && memcmp(kv->value, value, kv->value_len) == 0));
}

static inline void t_assert_value(storage_t *h, const char *key, const char *want)
{
	char *got = t_get(h, key, NULL);

	if (want == NULL) {
		ck_assert_msg(got == NULL, "key %s: expected missing, got %s", key, got);
	} else {
		ck_assert_msg(got != NULL, "key %s: missing, expected %s", key, want);
		ck_assert_str_eq(got, want);
	}
	free(got);
}

/* ---- raw LMDB access, to plant corruption behind storage's back (handle closed) ---- */

static inline void t_raw_put(const char *dir, const char *db, const void *key, size_t klen,
			     const void *val, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k = {klen, (void *)key};
	MDB_val v = {vlen, (void *)val};

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, dir, 0, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, db, 0, &dbi), 0);
	if (val == NULL) {
		ck_assert_int_eq(mdb_del(txn, dbi, &k, NULL), 0);
	} else {
		ck_assert_int_eq(mdb_put(txn, dbi, &k, &v, 0), 0);
	}
	ck_assert_int_eq(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static inline void t_be64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* Run a suite and return the process exit status. */
static inline int t_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#endif /* CAIRN_TEST_STORAGE_UTIL_H */
