/* test_history.c — the JSON-lines history reader: well-formed input, and clear errors otherwise. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test/torture/history.h"

static struct history hist;
static char err[HISTORY_ERRMSG_SIZE];

static void setup(void)
{
	ck_assert_int_eq(history_init(&hist), 0);
	err[0] = '\0';
}

static void teardown(void)
{
	history_free(&hist);
}

/* Reads the `len` bytes at `text` as a history file into `hist`. */
static int load_n(const char *text, size_t len)
{
	FILE *f = fmemopen((void *)text, len, "r");
	ck_assert_ptr_nonnull(f);
	int rv = history_read(&hist, f, err, sizeof(err));
	fclose(f);
	return rv;
}

static int load(const char *text)
{
	return load_n(text, strlen(text));
}

/* Asserts that `text` is refused with `code` and a message containing `needle`. */
static void assert_refused(const char *text, int code, const char *needle)
{
	teardown();
	setup();
	int rv = load(text);
	ck_assert_msg(rv == code, "%s: got %d (%s), want %d", text, rv, err, code);
	ck_assert_msg(strstr(err, needle) != NULL, "message \"%s\" lacks \"%s\"", err, needle);
}

#define INV_W                                                                                      \
	"{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k\",\"value\":\"v\","        \
	"\"time\":1}\n"
#define OK_W                                                                                       \
	"{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"key\":\"k\",\"value\":\"v\",\"time\":2}" \
	"\n"

START_TEST(test_well_formed)
{
	const char *text = INV_W OK_W
	    "\n"
	    "  \r\n"
	    "{\"process\":2,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\",\"time\":3}\r\n"
	    "{ \"time\" : 4 , \"type\":\"ok\", \"f\":\"read\",\"process\":2,\"value\":null,"
	    "\"extra\":{\"nested\":[1,2.5e3,-0.1,true,false,null,\"x\"]},\"revision\":17}\n"
	    "{\"process\":3,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"from\":null,"
	    "\"to\":\"caf\\u00e9 \\ud83d\\ude00 \\\"q\\\" \\\\ \\/ \\n\",\"time\":5}\n"
	    "{\"process\":3,\"type\":\"fail\",\"f\":\"cas\",\"key\":\"k\",\"time\":6,"
	    "\"error\":\"compare failed\"}\n"
	    "{\"process\":4,\"type\":\"invoke\",\"f\":\"delete\",\"key\":\"k\",\"time\":7}\n"
	    "{\"process\":4,\"type\":\"info\",\"f\":\"delete\",\"key\":\"k\",\"time\":8}\n"
	    "{\"process\":-5,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k\",\"value\":\"w\","
	    "\"time\":9}";
	ck_assert_msg(load(text) == 0, "%s", err);
	ck_assert_uint_eq(hist.n_ops, 5);
	ck_assert_uint_eq(hist.n_events, 9);
	const struct history_op *w = &hist.ops[0], *r = &hist.ops[1], *c = &hist.ops[2];
	ck_assert_int_eq(w->f, HISTORY_WRITE);
	ck_assert_int_eq(w->status, HISTORY_STATUS_OK);
	ck_assert_str_eq(w->value, "v");
	ck_assert_int_eq(w->invoke_time, 1);
	ck_assert_int_eq(w->complete_time, 2);
	ck_assert_uint_eq(w->invoke_line, 1);
	ck_assert_uint_eq(w->complete_line, 2);
	ck_assert_int_eq(r->f, HISTORY_READ);
	ck_assert_ptr_null(r->value);
	ck_assert(r->has_revision);
	ck_assert_int_eq(r->revision, 17);
	ck_assert_uint_eq(r->invoke_line, 5);
	ck_assert_ptr_null(c->from);
	ck_assert_str_eq(c->to, "caf\xc3\xa9 \xf0\x9f\x98\x80 \"q\" \\ / \n");
	ck_assert_int_eq(c->status, HISTORY_STATUS_FAIL);
	ck_assert_str_eq(c->error, "compare failed");
	ck_assert_int_eq(hist.ops[3].f, HISTORY_DELETE);
	ck_assert_int_eq(hist.ops[3].status, HISTORY_STATUS_INFO);
	ck_assert_int_eq(hist.ops[4].status, HISTORY_STATUS_PENDING);
	ck_assert_int_eq(hist.ops[4].process, -5);
	ck_assert_int_eq(hist.ops[4].complete_time, HISTORY_TIME_NONE);
	/* Interned: equal strings are one pointer. */
	ck_assert_ptr_eq(w->key, r->key);
}
END_TEST

START_TEST(test_syntax_errors)
{
	assert_refused("nope\n", HISTORY_EPARSE, "line 1: expected a JSON object");
	assert_refused(INV_W "{\"process\":1,}\n", HISTORY_EPARSE, "line 2: expected a field name");
	assert_refused("{\"process\":1 \"type\":\"ok\"}", HISTORY_EPARSE, "expected ',' or '}'");
	assert_refused(
	    "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\",\"time\":1}x",
	    HISTORY_EPARSE, "trailing characters");
	assert_refused("{}", HISTORY_EPARSE, "empty object");
	assert_refused("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\"}",
		       HISTORY_EPARSE, "missing field \"time\"");
	assert_refused("{\"process\":\"1\",\"type\":\"invoke\"}", HISTORY_EPARSE,
		       "\"process\" must be an integer");
	assert_refused("{\"process\":1.5}", HISTORY_EPARSE, "\"process\" must be an integer");
	assert_refused("{\"process\":1e3}", HISTORY_EPARSE, "\"process\" must be an integer");
	assert_refused("{\"process\":99999999999999999999}", HISTORY_EPARSE, "out of range");
	assert_refused("{\"time\":-1}", HISTORY_EPARSE, "must not be negative");
	assert_refused("{\"process\":1,\"process\":2}", HISTORY_EPARSE, "duplicate field");
	assert_refused("{\"type\":\"done\"}", HISTORY_EPARSE, "\"type\" must be");
	assert_refused("{\"f\":\"incr\"}", HISTORY_EPARSE, "\"f\" must be");
	assert_refused("{\"key\":null}", HISTORY_EPARSE, "\"key\" must be a string");
	assert_refused("{\"value\":3}", HISTORY_EPARSE, "\"value\" must be a string or null");
	assert_refused("{\"key\":\"abc", HISTORY_EPARSE, "unterminated string");
	assert_refused("{\"key\":\"a\tb\"}", HISTORY_EPARSE, "control character");
	assert_refused("{\"key\":\"a\\u0000b\"}", HISTORY_EPARSE, "NUL");
	assert_refused("{\"key\":\"a\\ud800\"}", HISTORY_EPARSE, "surrogate");
	assert_refused("{\"key\":\"a\\x\"}", HISTORY_EPARSE, "bad escape");
	assert_refused("{\"key\":\"\\u12g4\"}", HISTORY_EPARSE, "hex digit");
	assert_refused("{\"x\":tru}", HISTORY_EPARSE, "unexpected character");
	assert_refused("{\"x\":[1,2}", HISTORY_EPARSE, "expected ',' or ']'");
	assert_refused("{\"x\":-}", HISTORY_EPARSE, "bad number");
	assert_refused("{\"x\":01}", HISTORY_EPARSE, "expected ',' or '}'");
	char deep[200] = "{\"x\":";
	for (int i = 0; i < 40; i++)
		strcat(deep, "[");
	assert_refused(deep, HISTORY_EPARSE, "nesting deeper");
	static const char with_nul[] = INV_W "{\"process\":1,\"ty\0pe\":1}\n";
	teardown();
	setup();
	ck_assert_int_eq(load_n(with_nul, sizeof(with_nul) - 1), HISTORY_EPARSE);
	ck_assert_str_eq(err, "line 2: NUL byte in line");
}
END_TEST

START_TEST(test_semantic_errors)
{
	assert_refused(OK_W, HISTORY_EINVAL, "line 1: process 1 completes an operation it did not");
	assert_refused(INV_W INV_W, HISTORY_EINVAL,
		       "line 2: process 1 invokes while its operation "
		       "of line 1 is pending");
	assert_refused(INV_W "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k\","
			     "\"value\":null,\"time\":2}",
		       HISTORY_EINVAL, "completes a read but invoked a write (line 1)");
	assert_refused(INV_W "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"key\":\"j\","
			     "\"time\":2}",
		       HISTORY_EINVAL, "completes key \"j\" but invoked key \"k\"");
	assert_refused(INV_W "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"value\":\"z\","
			     "\"time\":2}",
		       HISTORY_EINVAL, "write completes with value \"z\"");
	assert_refused(INV_W "{\"process\":1,\"type\":\"ok\",\"f\":\"write\",\"time\":0}",
		       HISTORY_EINVAL, "before its invocation");
	assert_refused(
	    "{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"key\":\"k\",\"time\":1}\n"
	    "{\"process\":1,\"type\":\"ok\",\"f\":\"read\",\"time\":2}",
	    HISTORY_EPARSE, "line 2: ok read needs \"value\"");
	assert_refused(
	    "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k\",\"time\":1}",
	    HISTORY_EPARSE, "invoke write needs a string \"value\"");
	assert_refused(
	    "{\"process\":1,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"from\":\"a\","
	    "\"time\":1}",
	    HISTORY_EPARSE, "invoke cas needs \"from\" and \"to\"");
	assert_refused("{\"process\":1,\"type\":\"invoke\",\"f\":\"read\",\"time\":1}",
		       HISTORY_EPARSE, "invoke needs a string \"key\"");
	/* Events before the bad line stay. */
	assert_refused(INV_W OK_W INV_W INV_W, HISTORY_EINVAL, "line 4");
	ck_assert_uint_eq(hist.n_ops, 2);
}
END_TEST

START_TEST(test_write_then_read_back)
{
	struct history_event evs[] = {
	    {.process = 7,
	     .type = HISTORY_INVOKE,
	     .f = HISTORY_CAS,
	     .key = "k\"1",
	     .from = NULL,
	     .to = "line\nbreak\x01",
	     .has_from = true,
	     .has_to = true,
	     .time = 10},
	    {.process = 7,
	     .type = HISTORY_OK,
	     .f = HISTORY_CAS,
	     .key = "k\"1",
	     .time = 11,
	     .revision = 5,
	     .has_revision = true},
	    {.process = 8, .type = HISTORY_INVOKE, .f = HISTORY_READ, .key = "k\"1", .time = 12},
	    {.process = 8,
	     .type = HISTORY_OK,
	     .f = HISTORY_READ,
	     .key = "k\"1",
	     .value = "line\nbreak\x01",
	     .has_value = true,
	     .time = 13},
	    {.process = 9,
	     .type = HISTORY_INVOKE,
	     .f = HISTORY_WRITE,
	     .key = "k2",
	     .value = "x",
	     .has_value = true,
	     .time = 14},
	    {.process = 9,
	     .type = HISTORY_INFO,
	     .f = HISTORY_WRITE,
	     .key = "k2",
	     .error = "timeout",
	     .time = 15},
	};
	char *buf = NULL;
	size_t len = 0;
	FILE *out = open_memstream(&buf, &len);
	ck_assert_ptr_nonnull(out);
	for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++)
		ck_assert_int_eq(history_write_event(out, &evs[i]), 0);
	fclose(out);
	ck_assert_msg(load(buf) == 0, "%s\n%s", err, buf);
	free(buf);
	ck_assert_uint_eq(hist.n_ops, 3);
	ck_assert_ptr_null(hist.ops[0].from);
	ck_assert_str_eq(hist.ops[0].to, "line\nbreak\x01");
	ck_assert_str_eq(hist.ops[0].key, "k\"1");
	ck_assert_int_eq(hist.ops[0].revision, 5);
	ck_assert_ptr_eq(hist.ops[1].value, hist.ops[0].to);
	ck_assert_int_eq(hist.ops[2].status, HISTORY_STATUS_INFO);
	ck_assert_str_eq(hist.ops[2].error, "timeout");
}
END_TEST

START_TEST(test_load_file)
{
	char path[] = "/tmp/cairn-history-XXXXXX";
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	FILE *f = fdopen(fd, "w");
	ck_assert_ptr_nonnull(f);
	fputs(INV_W OK_W, f);
	fclose(f);
	ck_assert_int_eq(history_load_file(&hist, path, err, sizeof(err)), 0);
	ck_assert_uint_eq(hist.n_ops, 1);
	unlink(path);
	ck_assert_int_eq(history_load_file(&hist, path, err, sizeof(err)), HISTORY_EIO);
	ck_assert_ptr_nonnull(strstr(err, path));
}
END_TEST

START_TEST(test_long_lines_and_strings)
{
	size_t n = HISTORY_MAX_STRING + 10;
	char *line = malloc(n + 200);
	ck_assert_ptr_nonnull(line);
	int k = snprintf(line, 200,
			 "{\"process\":1,\"type\":\"invoke\",\"f\":\"write\",\"key\":\"k\","
			 "\"time\":1,\"value\":\"");
	memset(line + k, 'a', n);
	strcpy(line + k + n, "\"}\n");
	assert_refused(line, HISTORY_EPARSE, "string longer than");
	free(line);
	/* A line over the limit is refused without being parsed. */
	n = HISTORY_MAX_LINE + 10;
	line = malloc(n + 2);
	ck_assert_ptr_nonnull(line);
	memset(line, ' ', n);
	line[0] = '{';
	line[n] = '\n';
	line[n + 1] = '\0';
	assert_refused(line, HISTORY_EPARSE, "line longer than");
	free(line);
}
END_TEST

/* Random corruptions of valid lines: never a crash (the sanitizers watch), always 0 or a code
 * with a message that names the line. */
START_TEST(test_mutated_lines_never_crash)
{
	static const char *lines[] = {
	    "{\"process\":3,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k2\",\"from\":\"v3\","
	    "\"to\":\"v\\u00e9\",\"time\":123456789}",
	    "{\"process\":3,\"type\":\"ok\",\"f\":\"read\",\"key\":\"k1\",\"value\":null,"
	    "\"x\":[{\"a\":1e-3}],\"time\":2}",
	};
	static const char alphabet[] = "{}[]\":,\\u0123456789.eE+-tfnulrsa \t";
	uint64_t s = 42;
	char buf[256], scratch[2 * 256 + 16];
	for (int iter = 0; iter < 20000; iter++) {
		s = s * 6364136223846793005ull + 1442695040888963407ull;
		const char *src = lines[(s >> 33) % 2];
		size_t len = strlen(src);
		memcpy(buf, src, len);
		int edits = 1 + (int)((s >> 40) % 4);
		for (int e = 0; e < edits; e++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			size_t pos = (s >> 20) % len;
			switch ((s >> 50) % 3) {
			case 0: /* replace */
				buf[pos] = alphabet[(s >> 8) % (sizeof(alphabet) - 1)];
				break;
			case 1: /* truncate */
				len = pos;
				break;
			default: /* duplicate a byte */
				if (len + 1 < sizeof(buf)) {
					memmove(buf + pos + 1, buf + pos, len - pos);
					len++;
				}
			}
			if (len == 0)
				break;
		}
		struct history_event ev;
		char msg[HISTORY_ERRMSG_SIZE] = "";
		int rv = history_parse_event(buf, len, 9, &ev, scratch, msg, sizeof(msg));
		if (rv != 0) {
			ck_assert_int_eq(rv, HISTORY_EPARSE);
			ck_assert_msg(strncmp(msg, "line 9: ", 8) == 0, "%s", msg);
			continue;
		}
		/* Parsed: adding it either works or is refused cleanly. */
		rv = history_add_event(&hist, &ev, NULL, msg, sizeof(msg));
		ck_assert(rv == 0 || rv == HISTORY_EINVAL || rv == HISTORY_EPARSE);
	}
}
END_TEST

static Suite *history_suite(void)
{
	Suite *s = suite_create("history");
	TCase *tc = tcase_create("json");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_well_formed);
	tcase_add_test(tc, test_syntax_errors);
	tcase_add_test(tc, test_semantic_errors);
	tcase_add_test(tc, test_write_then_read_back);
	tcase_add_test(tc, test_load_file);
	tcase_add_test(tc, test_long_lines_and_strings);
	tcase_add_test(tc, test_mutated_lines_never_crash);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(history_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
