/* libcairn pure helpers: cairnctl's txn grammar, the txn builder, prefix range ends. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "client/cairn.h"
#include "client/lib/txn_int.h"
#include "client/lib/txn_parse.h"

static cairn_txn *parse_ok(const char *text)
{
	char err[CAIRN_ERRMSG_SIZE] = "";
	cairn_txn *t = NULL;
	int rv = cairn_txn_parse(text, strlen(text), &t, err, sizeof(err));

	ck_assert_msg(rv == 0, "parse failed: %s", err);
	ck_assert_ptr_nonnull(t);
	return t;
}

static int parse_err(const char *text, char *err)
{
	cairn_txn *t = (cairn_txn *)1;
	int rv = cairn_txn_parse(text, strlen(text), &t, err, CAIRN_ERRMSG_SIZE);

	ck_assert_ptr_null(t);
	return rv;
}

static void bin_eq(ProtobufCBinaryData b, const char *s, size_t len)
{
	ck_assert_uint_eq(b.len, len);
	ck_assert(len == 0 || memcmp(b.data, s, len) == 0);
}

START_TEST(test_parse_etcdctl_example)
{
	cairn_txn *t = parse_ok("mod(\"key1\") > \"0\"\n"
				"value(\"key2\") = \"v 2\"\n"
				"version(\"k\") != 3\n"
				"create(\"k\") < \"5\"\n"
				"\n"
				"put key1 \"overwrote-key1\"\n"
				"get key2 --prefix --limit 10 --keys-only\n"
				"\n"
				"put key2 some-value --prev-kv\n"
				"del key3 key9\n");
	Cairn__TxnRequest *r = &t->req;
	size_t nc, ns, nf;

	cairn_txn_counts(t, &nc, &ns, &nf);
	ck_assert_uint_eq(nc, 4);
	ck_assert_uint_eq(ns, 2);
	ck_assert_uint_eq(nf, 2);
	ck_assert_int_eq(r->compare[0]->target, CAIRN__COMPARE__TARGET__MOD);
	ck_assert_int_eq(r->compare[0]->result, CAIRN__COMPARE__RESULT__GREATER);
	ck_assert_int_eq(r->compare[0]->target_union_case,
			 CAIRN__COMPARE__TARGET_UNION_MOD_REVISION);
	ck_assert_int_eq(r->compare[0]->mod_revision, 0);
	bin_eq(r->compare[0]->key, "key1", 4);
	ck_assert_int_eq(r->compare[1]->target, CAIRN__COMPARE__TARGET__VALUE);
	ck_assert_int_eq(r->compare[1]->result, CAIRN__COMPARE__RESULT__EQUAL);
	bin_eq(r->compare[1]->value, "v 2", 3);
	ck_assert_int_eq(r->compare[2]->target, CAIRN__COMPARE__TARGET__VERSION);
	ck_assert_int_eq(r->compare[2]->result, CAIRN__COMPARE__RESULT__NOT_EQUAL);
	ck_assert_int_eq(r->compare[2]->version, 3);
	ck_assert_int_eq(r->compare[3]->target, CAIRN__COMPARE__TARGET__CREATE);
	ck_assert_int_eq(r->compare[3]->result, CAIRN__COMPARE__RESULT__LESS);
	ck_assert_int_eq(r->compare[3]->create_revision, 5);

	ck_assert_int_eq(r->success[0]->request_case, CAIRN__REQUEST_OP__REQUEST_REQUEST_PUT);
	bin_eq(r->success[0]->request_put->key, "key1", 4);
	bin_eq(r->success[0]->request_put->value, "overwrote-key1", 14);
	ck_assert(!r->success[0]->request_put->prev_kv);
	ck_assert_int_eq(r->success[1]->request_case, CAIRN__REQUEST_OP__REQUEST_REQUEST_RANGE);
	bin_eq(r->success[1]->request_range->key, "key2", 4);
	bin_eq(r->success[1]->request_range->range_end, "key3", 4);
	ck_assert_int_eq(r->success[1]->request_range->limit, 10);
	ck_assert(r->success[1]->request_range->keys_only);

	ck_assert(r->failure[0]->request_put->prev_kv);
	ck_assert_int_eq(r->failure[1]->request_case,
			 CAIRN__REQUEST_OP__REQUEST_REQUEST_DELETE_RANGE);
	bin_eq(r->failure[1]->request_delete_range->key, "key3", 4);
	bin_eq(r->failure[1]->request_delete_range->range_end, "key9", 4);
	cairn_txn_free(t);
}
END_TEST

START_TEST(test_parse_sections_and_quoting)
{
	cairn_txn *t;
	size_t nc, ns, nf;

	/* No compares: a leading blank line; CRLF; escapes; single quotes; short forms. */
	t = parse_ok("\r\nput 'a b' \"x\\ty\\x41\\\"\"\r\n");
	cairn_txn_counts(t, &nc, &ns, &nf);
	ck_assert_uint_eq(nc, 0);
	ck_assert_uint_eq(ns, 1);
	ck_assert_uint_eq(nf, 0);
	bin_eq(t->req.success[0]->request_put->key, "a b", 3);
	bin_eq(t->req.success[0]->request_put->value, "x\tyA\"", 5);
	cairn_txn_free(t);

	t = parse_ok("val(\"k\") == \"\"\nver(k) = 0\nm(\"k\")<7\nc(\"k\") > 1\n");
	cairn_txn_counts(t, &nc, &ns, &nf);
	ck_assert_uint_eq(nc, 4);
	bin_eq(t->req.compare[0]->value, "", 0);
	bin_eq(t->req.compare[1]->key, "k", 1);
	ck_assert_int_eq(t->req.compare[2]->mod_revision, 7);
	cairn_txn_free(t);

	t = parse_ok("");
	cairn_txn_counts(t, &nc, &ns, &nf);
	ck_assert_uint_eq(nc + ns + nf, 0);
	cairn_txn_free(t);

	/* Everything after the failure section is ignored, like etcdctl. */
	t = parse_ok("\n\ndel k --prefix\n\nput ignored x\n");
	cairn_txn_counts(t, &nc, &ns, &nf);
	ck_assert_uint_eq(nf, 1);
	bin_eq(t->req.failure[0]->request_delete_range->range_end, "l", 1);
	cairn_txn_free(t);
}
END_TEST

START_TEST(test_parse_errors)
{
	char err[CAIRN_ERRMSG_SIZE];

	ck_assert_int_eq(parse_err("foo(\"k\") = \"1\"\n", err), CAIRN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 1"));
	ck_assert_int_eq(parse_err("value(\"k\" = \"1\"\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("value(\"k\") ~ \"1\"\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("version(\"k\") = \"x\"\n", err), CAIRN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "integer"));
	ck_assert_int_eq(parse_err("value(\"k) = \"1\"\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("value(\"k\") = \"1\" extra\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("\nput k\n", err), CAIRN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 2"));
	ck_assert_int_eq(parse_err("\nfrob k\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("\nget k --bogus\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("\nget k --limit\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("\nput \"\" v\n", err), CAIRN_EINVAL);
	ck_assert_int_eq(parse_err("\n\nput k \"\\x4\"\n", err), CAIRN_EINVAL);
	ck_assert_ptr_nonnull(strstr(err, "line 3"));
}
END_TEST

static void pe(const char *in, size_t len, const char *want, size_t want_len)
{
	unsigned char out[16];
	size_t n = 99;

	cairn_prefix_end(in, len, out, &n);
	ck_assert_uint_eq(n, want_len);
	ck_assert(memcmp(out, want, n) == 0);
}

START_TEST(test_prefix_end)
{
	pe("abc", 3, "abd", 3);
	pe("a", 1, "b", 1);
	pe("a\xff", 2, "b", 1);
	pe("a\xfe", 2, "a\xff", 2);
	pe("\xff\xff", 2, "\0", 1);
	pe("", 0, "\0", 1);
	pe("foo/", 4, "foo0", 4);
}
END_TEST

START_TEST(test_builder_errors)
{
	cairn_txn *t = cairn_txn_new();
	struct cairn_range_opts ro = {0};

	ck_assert_int_eq(cairn_txn_compare_int(t, CAIRN_CMP_VALUE, CAIRN_CMP_EQUAL, "k", 1, 1),
			 CAIRN_EINVAL);
	ck_assert_int_eq(cairn_txn_compare_int(t, CAIRN_CMP_MOD, (enum cairn_cmp_op)9, "k", 1, 1),
			 CAIRN_EINVAL);
	ck_assert_int_eq(cairn_txn_compare_value(t, CAIRN_CMP_EQUAL, "", 0, "v", 1), CAIRN_EINVAL);
	ck_assert_int_eq(cairn_txn_put(t, (enum cairn_txn_branch)7, "k", 1, "v", 1, false),
			 CAIRN_EINVAL);
	ck_assert_int_eq(cairn_txn_get(t, CAIRN_TXN_SUCCESS, "", 0, NULL), CAIRN_EINVAL);
	ro.prefix = true;
	ck_assert_int_eq(cairn_txn_get(t, CAIRN_TXN_SUCCESS, "", 0, &ro), 0);
	bin_eq(t->req.success[0]->request_range->range_end, "\0", 1);
	bin_eq(t->req.success[0]->request_range->key, "\0", 1);
	ck_assert_int_eq(cairn_txn_put(NULL, CAIRN_TXN_SUCCESS, "k", 1, "v", 1, false),
			 CAIRN_EINVAL);
	cairn_txn_free(t);
	cairn_txn_free(NULL);
}
END_TEST

static Suite *txn_suite(void)
{
	Suite *s = suite_create("client-txn");
	TCase *tc = tcase_create("grammar");

	tcase_add_test(tc, test_parse_etcdctl_example);
	tcase_add_test(tc, test_parse_sections_and_quoting);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_prefix_end);
	tcase_add_test(tc, test_builder_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(txn_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
