/* cairnctl: the etcdctl-like command line of Cairn, built on libcairn. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/cairn.h"
#include "client/lib/txn_parse.h"

/* Exit codes (documented in usage()). */
enum {
	EXIT_OK = 0,
	EXIT_CLUSTER = 1,     /* an error reported by the cluster */
	EXIT_UNREACHABLE = 2, /* cannot reach a leader / timed out / outcome unknown */
	EXIT_INPUT = 3,	      /* invalid input */
	EXIT_TXN_FAILED = 4,  /* a txn whose compares failed */
};

/* Most positional arguments of any command. */
#define MAX_ARGS 8
/* Largest stdin accepted (put value, txn text). */
#define MAX_STDIN (64u * 1024u * 1024u)

enum format { FMT_SIMPLE, FMT_JSON, FMT_TABLE };

struct cli {
	const char *endpoints;
	enum format fmt;
	uint32_t timeout_ms;
	const char *args[MAX_ARGS];
	int n_args;
	/* command flags */
	bool prefix, keys_only, count_only, serializable, rev, prev_kv, cluster, from_key;
	int64_t limit;
};

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: cairnctl [global options] <command> [arguments]\n"
	    "\n"
	    "Global options (anywhere on the line):\n"
	    "  --endpoints h:p[,h:p...]  cluster members to talk to (default: $CAIRN_ENDPOINTS,\n"
	    "                            else " CAIRN_DEFAULT_ENDPOINT ")\n"
	    "  -w, --write-out FORMAT    simple (default), json or table\n"
	    "  --command-timeout DUR     deadline of each request, e.g. 500ms, 5s, 1m (default "
	    "5s)\n"
	    "  -h, --help                this help\n"
	    "\n"
	    "Commands:\n"
	    "  put KEY [VALUE] [--prev-kv]     set KEY; VALUE is read from stdin when absent\n"
	    "  get KEY [END] [--prefix] [--from-key] [--limit N] [--keys-only] [--count-only]\n"
	    "                [--consistency l|s] [--rev]\n"
	    "                                  read KEY, [KEY, END), or every key with the\n"
	    "                                  prefix KEY; --consistency s reads the local\n"
	    "                                  state of any member (may be stale); --rev\n"
	    "                                  also prints the revision the read was served\n"
	    "                                  at and each key's create/mod revision and version\n"
	    "  del KEY [END] [--prefix] [--from-key] [--prev-kv]\n"
	    "                                  delete; prints the number of keys deleted\n"
	    "  txn                             read a transaction from stdin (etcdctl grammar):\n"
	    "                                    compares, e.g. value(\"k\") = \"v\", "
	    "version(\"k\") > \"3\",\n"
	    "                                    mod(\"k\") < \"5\", create(\"k\") != \"0\"\n"
	    "                                    a blank line, success ops (put k v, get k "
	    "[--prefix],\n"
	    "                                    del k [--prefix]), a blank line, failure ops\n"
	    "  status [--cluster]              one line per endpoint (or per member with "
	    "--cluster):\n"
	    "                                  endpoint, id, version, db size, is leader, role,\n"
	    "                                  raft term, commit index, applied index, revision\n"
	    "  member list                     id, name, peer address, client address, is leader\n"
	    "\n"
	    "Keys and values are printed as raw bytes with -w simple, base64 with -w json.\n"
	    "\n"
	    "Exit codes:\n"
	    "  0  success\n"
	    "  1  error reported by the cluster (e.g. key too large, no space)\n"
	    "  2  cannot reach a leader, timed out, or a write's outcome is unknown\n"
	    "  3  invalid input (usage, bad endpoint, txn syntax)\n"
	    "  4  txn executed but its compares failed (the failure branch ran)\n");
}

static int die_input(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int die_input(const char *fmt, ...)
{
	va_list ap;

	fputs("Error: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n", stderr);
	return EXIT_INPUT;
}

static int exit_code_of(int rv)
{
	switch (rv) {
	case 0:
		return EXIT_OK;
	case CAIRN_ETIMEDOUT:
	case CAIRN_EUNKNOWN:
	case CAIRN_ECLOSED:
		return EXIT_UNREACHABLE;
	case CAIRN_EBADENDPOINT:
		return EXIT_INPUT;
	default:
		return EXIT_CLUSTER;
	}
}

static int report(int rv, const char *msg)
{
	fprintf(stderr, "Error: %s%s%s\n", cairn_strerror(rv), msg[0] != '\0' ? ": " : "", msg);
	return exit_code_of(rv);
}

/* "5s", "500ms", "1m", "2" (seconds). */
static int parse_duration(const char *s, uint32_t *ms)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || v < 0) {
		return -1;
	}
	if (strcmp(end, "ms") == 0) {
		/* as is */
	} else if (strcmp(end, "s") == 0 || *end == '\0') {
		v *= 1000;
	} else if (strcmp(end, "m") == 0) {
		v *= 60000;
	} else {
		return -1;
	}
	if (v < 1 || v > 86400000.0) {
		return -1;
	}
	*ms = (uint32_t)v;
	return 0;
}

/* Value of an option given as "--opt=value" or "--opt value". */
static const char *opt_value(int argc, char **argv, int *i, const char *arg, const char *name)
{
	size_t n = strlen(name);

	if (strncmp(arg, name, n) != 0) {
		return NULL;
	}
	if (arg[n] == '=') {
		return arg + n + 1;
	}
	if (arg[n] == '\0' && *i + 1 < argc) {
		return argv[++*i];
	}
	return NULL;
}

static bool is_opt(const char *arg, const char *name)
{
	size_t n = strlen(name);

	return strncmp(arg, name, n) == 0 && (arg[n] == '\0' || arg[n] == '=');
}

static int parse_args(struct cli *cli, int argc, char **argv)
{
	bool only_args = false;
	int i;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (only_args || a[0] != '-' || a[1] == '\0') {
			if (cli->n_args == MAX_ARGS) {
				return die_input("too many arguments");
			}
			cli->args[cli->n_args++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			only_args = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(EXIT_OK);
		} else if (is_opt(a, "--endpoints")) {
			if ((v = opt_value(argc, argv, &i, a, "--endpoints")) == NULL) {
				return die_input("--endpoints needs a value");
			}
			cli->endpoints = v;
		} else if (is_opt(a, "-w") || is_opt(a, "--write-out")) {
			v = opt_value(argc, argv, &i, a, a[1] == 'w' ? "-w" : "--write-out");
			if (v == NULL) {
				return die_input("--write-out needs a value");
			}
			if (strcmp(v, "simple") == 0) {
				cli->fmt = FMT_SIMPLE;
			} else if (strcmp(v, "json") == 0) {
				cli->fmt = FMT_JSON;
			} else if (strcmp(v, "table") == 0) {
				cli->fmt = FMT_TABLE;
			} else {
				return die_input(
				    "unknown output format \"%s\" (simple, json, table)", v);
			}
		} else if (is_opt(a, "--command-timeout")) {
			v = opt_value(argc, argv, &i, a, "--command-timeout");
			if (v == NULL || parse_duration(v, &cli->timeout_ms) != 0) {
				return die_input("bad --command-timeout \"%s\" (e.g. 500ms, 5s)",
						 v != NULL ? v : "");
			}
		} else if (is_opt(a, "--limit")) {
			char *end;

			v = opt_value(argc, argv, &i, a, "--limit");
			if (v == NULL) {
				return die_input("--limit needs a value");
			}
			errno = 0;
			cli->limit = strtoll(v, &end, 10);
			if (errno != 0 || *end != '\0' || end == v || cli->limit < 0) {
				return die_input("bad --limit \"%s\"", v);
			}
		} else if (is_opt(a, "--consistency")) {
			v = opt_value(argc, argv, &i, a, "--consistency");
			if (v == NULL || (strcmp(v, "l") != 0 && strcmp(v, "s") != 0)) {
				return die_input("bad --consistency \"%s\" (l or s)",
						 v != NULL ? v : "");
			}
			cli->serializable = v[0] == 's';
		} else if (strcmp(a, "--prefix") == 0) {
			cli->prefix = true;
		} else if (strcmp(a, "--from-key") == 0) {
			cli->from_key = true;
		} else if (strcmp(a, "--keys-only") == 0) {
			cli->keys_only = true;
		} else if (strcmp(a, "--count-only") == 0) {
			cli->count_only = true;
		} else if (strcmp(a, "--rev") == 0) {
			cli->rev = true;
		} else if (strcmp(a, "--prev-kv") == 0) {
			cli->prev_kv = true;
		} else if (strcmp(a, "--cluster") == 0) {
			cli->cluster = true;
		} else {
			return die_input("unknown option %s (see cairnctl --help)", a);
		}
	}
	return EXIT_OK;
}

static int read_stdin(char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);

	if (buf == NULL) {
		return -1;
	}
	for (;;) {
		size_t got;

		if (n == cap) {
			char *b;

			if (cap >= MAX_STDIN) {
				free(buf);
				return -1;
			}
			cap *= 2;
			b = realloc(buf, cap);
			if (b == NULL) {
				free(buf);
				return -1;
			}
			buf = b;
		}
		got = fread(buf + n, 1, cap - n, stdin);
		n += got;
		if (got == 0) {
			break;
		}
	}
	if (ferror(stdin)) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* ---- output ------------------------------------------------------------------------------ */

static void put_b64(const char *p, size_t len)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *s = (const unsigned char *)p;
	size_t i;

	putchar('"');
	for (i = 0; i + 2 < len; i += 3) {
		putchar(tbl[s[i] >> 2]);
		putchar(tbl[(s[i] & 3) << 4 | s[i + 1] >> 4]);
		putchar(tbl[(s[i + 1] & 15) << 2 | s[i + 2] >> 6]);
		putchar(tbl[s[i + 2] & 63]);
	}
	if (len - i == 1) {
		putchar(tbl[s[i] >> 2]);
		putchar(tbl[(s[i] & 3) << 4]);
		fputs("==", stdout);
	} else if (len - i == 2) {
		putchar(tbl[s[i] >> 2]);
		putchar(tbl[(s[i] & 3) << 4 | s[i + 1] >> 4]);
		putchar(tbl[(s[i + 1] & 15) << 2]);
		putchar('=');
	}
	putchar('"');
}

static void put_json_str(const char *s)
{
	putchar('"');
	for (; *s != '\0'; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\') {
			printf("\\%c", ch);
		} else if (ch < 0x20) {
			printf("\\u%04x", ch);
		} else {
			putchar(ch);
		}
	}
	putchar('"');
}

static void json_header(const struct cairn_header *h)
{
	printf("\"header\":{\"cluster_id\":%" PRIu64 ",\"member_id\":%" PRIu64
	       ",\"revision\":%" PRId64 ",\"raft_term\":%" PRIu64 "}",
	       h->cluster_id, h->member_id, h->revision, h->raft_term);
}

static void json_kv(const struct cairn_kv *kv)
{
	fputs("{\"key\":", stdout);
	put_b64(kv->key, kv->key_len);
	printf(",\"create_revision\":%" PRId64 ",\"mod_revision\":%" PRId64 ",\"version\":%" PRId64,
	       kv->create_revision, kv->mod_revision, kv->version);
	if (kv->value_len > 0) {
		fputs(",\"value\":", stdout);
		put_b64(kv->value, kv->value_len);
	}
	if (kv->lease != 0) {
		printf(",\"lease\":%" PRId64, kv->lease);
	}
	putchar('}');
}

static void json_kvs(const char *name, const struct cairn_kv *kvs, size_t n)
{
	size_t i;

	if (n == 0) {
		return;
	}
	printf(",\"%s\":[", name);
	for (i = 0; i < n; i++) {
		if (i > 0) {
			putchar(',');
		}
		json_kv(&kvs[i]);
	}
	putchar(']');
}

static void simple_kv(const struct cairn_kv *kv, const struct cli *cli)
{
	fwrite(kv->key, 1, kv->key_len, stdout);
	putchar('\n');
	if (!cli->keys_only) {
		fwrite(kv->value, 1, kv->value_len, stdout);
		putchar('\n');
	}
	if (cli->rev) {
		printf("create_revision=%" PRId64 " mod_revision=%" PRId64 " version=%" PRId64 "\n",
		       kv->create_revision, kv->mod_revision, kv->version);
	}
}

static void print_range(const struct cairn_range_result *r, const struct cli *cli, bool json)
{
	size_t i;

	if (json) {
		putchar('{');
		json_header(&r->header);
		json_kvs("kvs", r->kvs, r->n_kvs);
		if (r->more) {
			fputs(",\"more\":true", stdout);
		}
		printf(",\"count\":%" PRId64 "}", r->count);
		return;
	}
	if (cli->rev) {
		printf("revision=%" PRId64 "\n", r->header.revision);
	}
	if (cli->count_only) {
		printf("%" PRId64 "\n", r->count);
		return;
	}
	for (i = 0; i < r->n_kvs; i++) {
		simple_kv(&r->kvs[i], cli);
	}
}

static void print_put(const struct cairn_put_result *r, const struct cli *cli, bool json)
{
	if (json) {
		putchar('{');
		json_header(&r->header);
		if (r->prev_kv != NULL) {
			fputs(",\"prev_kv\":", stdout);
			json_kv(r->prev_kv);
		}
		putchar('}');
		return;
	}
	puts("OK");
	if (r->prev_kv != NULL) {
		simple_kv(r->prev_kv, cli);
	}
}

static void print_delete(const struct cairn_delete_result *r, const struct cli *cli, bool json)
{
	size_t i;

	if (json) {
		putchar('{');
		json_header(&r->header);
		printf(",\"deleted\":%" PRId64, r->deleted);
		json_kvs("prev_kvs", r->prev_kvs, r->n_prev_kvs);
		putchar('}');
		return;
	}
	printf("%" PRId64 "\n", r->deleted);
	for (i = 0; i < r->n_prev_kvs; i++) {
		simple_kv(&r->prev_kvs[i], cli);
	}
}

/* ---- commands ---------------------------------------------------------------------------- */

static int cmd_put(cairn_client *c, const struct cli *cli)
{
	struct cairn_put_opts o = {0};
	struct cairn_put_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE] = "";
	const char *key, *val;
	char *buf = NULL;
	size_t val_len;
	int rv;

	if (cli->n_args < 2 || cli->n_args > 3) {
		return die_input("usage: put KEY [VALUE]");
	}
	key = cli->args[1];
	if (key[0] == '\0') {
		return die_input("empty key");
	}
	if (cli->n_args == 3) {
		val = cli->args[2];
		val_len = strlen(val);
	} else {
		if (read_stdin(&buf, &val_len) != 0) {
			return die_input("cannot read the value from stdin");
		}
		val = buf;
	}
	o.timeout_ms = cli->timeout_ms;
	o.prev_kv = cli->prev_kv;
	rv = cairn_put(c, key, strlen(key), val, val_len, &o, &res, err, sizeof(err));
	free(buf);
	if (rv != 0) {
		return report(rv, err);
	}
	print_put(res, cli, cli->fmt == FMT_JSON);
	if (cli->fmt == FMT_JSON) {
		putchar('\n');
	}
	cairn_put_result_free(res);
	return EXIT_OK;
}

static int cmd_get(cairn_client *c, const struct cli *cli)
{
	struct cairn_range_opts o = {0};
	struct cairn_range_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE] = "";
	const char *key;
	int rv;

	if (cli->n_args < 2 || cli->n_args > 3) {
		return die_input("usage: get KEY [END] [options]");
	}
	key = cli->args[1];
	if (key[0] == '\0' && !cli->prefix && !cli->from_key && cli->n_args == 2) {
		return die_input("empty key (use --prefix or --from-key to read every key)");
	}
	o.timeout_ms = cli->timeout_ms;
	o.prefix = cli->prefix;
	o.limit = cli->limit;
	o.keys_only = cli->keys_only;
	o.count_only = cli->count_only;
	o.serializable = cli->serializable;
	if (cli->from_key) {
		o.range_end = "";
		o.range_end_len = 1; /* "\0": every key >= key */
	} else if (cli->n_args == 3) {
		o.range_end = cli->args[2];
		o.range_end_len = strlen(cli->args[2]);
	}
	rv = cairn_get(c, key, strlen(key), &o, &res, err, sizeof(err));
	if (rv != 0) {
		return report(rv, err);
	}
	print_range(res, cli, cli->fmt == FMT_JSON);
	if (cli->fmt == FMT_JSON) {
		putchar('\n');
	}
	cairn_range_result_free(res);
	return EXIT_OK;
}

static int cmd_del(cairn_client *c, const struct cli *cli)
{
	struct cairn_delete_opts o = {0};
	struct cairn_delete_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE] = "";
	const char *key;
	int rv;

	if (cli->n_args < 2 || cli->n_args > 3) {
		return die_input("usage: del KEY [END] [--prefix] [--prev-kv]");
	}
	key = cli->args[1];
	if (key[0] == '\0' && !cli->prefix && !cli->from_key && cli->n_args == 2) {
		return die_input("empty key");
	}
	o.timeout_ms = cli->timeout_ms;
	o.prefix = cli->prefix;
	o.prev_kv = cli->prev_kv;
	if (cli->from_key) {
		o.range_end = "";
		o.range_end_len = 1;
	} else if (cli->n_args == 3) {
		o.range_end = cli->args[2];
		o.range_end_len = strlen(cli->args[2]);
	}
	rv = cairn_delete(c, key, strlen(key), &o, &res, err, sizeof(err));
	if (rv != 0) {
		return report(rv, err);
	}
	print_delete(res, cli, cli->fmt == FMT_JSON);
	if (cli->fmt == FMT_JSON) {
		putchar('\n');
	}
	cairn_delete_result_free(res);
	return EXIT_OK;
}

static int cmd_txn(cairn_client *c, const struct cli *cli)
{
	struct cairn_txn_result *res = NULL;
	char err[CAIRN_ERRMSG_SIZE] = "";
	struct cli opcli = *cli;
	cairn_txn *txn = NULL;
	char *text;
	size_t len, i;
	int rv;

	if (cli->n_args != 1) {
		return die_input("usage: txn (reads the transaction from stdin)");
	}
	if (read_stdin(&text, &len) != 0) {
		return die_input("cannot read stdin");
	}
	rv = cairn_txn_parse(text, len, &txn, err, sizeof(err));
	free(text);
	if (rv != 0) {
		fprintf(stderr, "Error: %s\n", err);
		return rv == CAIRN_EINVAL ? EXIT_INPUT : EXIT_CLUSTER;
	}
	rv = cairn_txn_commit(c, txn, cli->timeout_ms, &res, err, sizeof(err));
	cairn_txn_free(txn);
	if (rv != 0) {
		return report(rv, err);
	}
	opcli.rev = false;
	opcli.keys_only = false;
	opcli.count_only = false;
	if (cli->fmt == FMT_JSON) {
		putchar('{');
		json_header(&res->header);
		printf(",\"succeeded\":%s,\"responses\":[", res->succeeded ? "true" : "false");
	} else {
		puts(res->succeeded ? "SUCCESS" : "FAILURE");
	}
	for (i = 0; i < res->n_responses; i++) {
		const struct cairn_op_result *o = &res->responses[i];
		bool json = cli->fmt == FMT_JSON;

		if (json) {
			printf("%s{\"%s\":", i > 0 ? "," : "",
			       o->type == CAIRN_OP_RANGE ? "response_range"
			       : o->type == CAIRN_OP_PUT ? "response_put"
							 : "response_delete_range");
		} else {
			putchar('\n');
		}
		switch (o->type) {
		case CAIRN_OP_RANGE:
			print_range(&o->u.range, &opcli, json);
			break;
		case CAIRN_OP_PUT:
			print_put(&o->u.put, &opcli, json);
			break;
		case CAIRN_OP_DELETE:
			print_delete(&o->u.del, &opcli, json);
			break;
		}
		if (json) {
			putchar('}');
		}
	}
	if (cli->fmt == FMT_JSON) {
		puts("]}");
	}
	rv = res->succeeded ? EXIT_OK : EXIT_TXN_FAILED;
	cairn_txn_result_free(res);
	return rv;
}

static void human_size(int64_t n, char *buf, size_t len)
{
	if (n >= 1000 * 1000 * 1000) {
		snprintf(buf, len, "%.1f GB", (double)n / 1e9);
	} else if (n >= 1000 * 1000) {
		snprintf(buf, len, "%.1f MB", (double)n / 1e6);
	} else if (n >= 1000) {
		snprintf(buf, len, "%.0f kB", (double)n / 1e3);
	} else {
		snprintf(buf, len, "%" PRId64 " B", n);
	}
}

static const char *const status_cols[] = {
    "ENDPOINT", "ID",	     "VERSION",	     "DB SIZE",	      "IS LEADER",
    "ROLE",	"RAFT TERM", "COMMIT INDEX", "APPLIED INDEX", "REVISION",
};
#define N_STATUS_COLS (sizeof(status_cols) / sizeof(status_cols[0]))
#define CELL	      48

static void status_cells(const struct cairn_status_result *s, char cells[][CELL])
{
	snprintf(cells[0], CELL, "%s", s->endpoint);
	snprintf(cells[1], CELL, "%016" PRIx64, s->member_id);
	snprintf(cells[2], CELL, "%s", s->version);
	human_size(s->db_size, cells[3], CELL);
	snprintf(cells[4], CELL, "%s",
		 s->leader_id != 0 && s->leader_id == s->member_id ? "true" : "false");
	snprintf(cells[5], CELL, "%s", s->role);
	snprintf(cells[6], CELL, "%" PRIu64, s->raft_term);
	snprintf(cells[7], CELL, "%" PRIu64, s->commit_index);
	snprintf(cells[8], CELL, "%" PRIu64, s->applied_index);
	snprintf(cells[9], CELL, "%" PRId64, s->revision);
}

/* An ASCII table like etcdctl's -w table. */
static void print_table(const char *const *heads, size_t ncols, char (*cells)[CELL], size_t nrows)
{
	size_t w[16], r, k;

	for (k = 0; k < ncols; k++) {
		w[k] = strlen(heads[k]);
		for (r = 0; r < nrows; r++) {
			size_t l = strlen(cells[r * ncols + k]);

			w[k] = l > w[k] ? l : w[k];
		}
	}
#define RULE()                                                                                     \
	do {                                                                                       \
		for (k = 0; k < ncols; k++) {                                                      \
			printf("+%.*s", (int)(w[k] + 2),                                           \
			       "--------------------------------------------------------------");  \
		}                                                                                  \
		puts("+");                                                                         \
	} while (0)
	RULE();
	for (k = 0; k < ncols; k++) {
		printf("| %-*s ", (int)w[k], heads[k]);
	}
	puts("|");
	RULE();
	for (r = 0; r < nrows; r++) {
		for (k = 0; k < ncols; k++) {
			printf("| %-*s ", (int)w[k], cells[r * ncols + k]);
		}
		puts("|");
	}
	RULE();
#undef RULE
}

/* The endpoints to query: the --endpoints list, or with --cluster the members' addresses. */
static int status_targets(cairn_client *c, const struct cli *cli, char ***out, size_t *n)
{
	const char *list = cli->endpoints;
	char **eps = NULL;
	size_t cnt = 0;

	if (cli->cluster) {
		struct cairn_status_result *s = NULL;
		char err[CAIRN_ERRMSG_SIZE] = "";
		size_t i;
		int rv = cairn_status(c, NULL, cli->timeout_ms, &s, err, sizeof(err));

		if (rv != 0) {
			return report(rv, err);
		}
		eps = calloc(s->n_members + 1, sizeof(*eps));
		for (i = 0; eps != NULL && i < s->n_members; i++) {
			if (s->members[i].client_addr[0] != '\0' &&
			    (eps[cnt] = strdup(s->members[i].client_addr)) != NULL) {
				cnt++; /* out of memory: that member is left out, not a hole */
			}
		}
		cairn_status_result_free(s);
	} else {
		const char *p = list;

		eps = calloc(CAIRN_MAX_ENDPOINTS, sizeof(*eps));
		while (eps != NULL && *p != '\0' && cnt < CAIRN_MAX_ENDPOINTS) {
			size_t len = strcspn(p, ",");

			while (len > 0 && *p == ' ') {
				p++;
				len--;
			}
			if (len > 0 && (eps[cnt] = strndup(p, len)) != NULL) {
				cnt++;
			}
			p += len;
			p += *p == ',';
		}
	}
	if (eps == NULL) {
		return report(CAIRN_ENOMEM, "");
	}
	*out = eps;
	*n = cnt;
	return EXIT_OK;
}

static int cmd_status(cairn_client *c, const struct cli *cli)
{
	char **eps = NULL;
	size_t n = 0, i, rows = 0;
	char(*cells)[CELL] = NULL;
	int code = EXIT_OK, rv;

	if (cli->n_args != 1) {
		return die_input("usage: status [--cluster]");
	}
	rv = status_targets(c, cli, &eps, &n);
	if (rv != EXIT_OK) {
		return rv;
	}
	cells = calloc(n * N_STATUS_COLS + 1, sizeof(*cells));
	if (cli->fmt == FMT_JSON) {
		putchar('[');
	}
	for (i = 0; i < n; i++) {
		struct cairn_status_result *s = NULL;
		char err[CAIRN_ERRMSG_SIZE] = "";

		rv = cairn_status(c, eps[i], cli->timeout_ms, &s, err, sizeof(err));
		if (rv != 0) {
			fprintf(stderr, "Error: %s: %s: %s\n", eps[i], cairn_strerror(rv), err);
			code = exit_code_of(rv);
			continue;
		}
		if (cli->fmt == FMT_JSON) {
			printf("%s{\"endpoint\":", rows > 0 ? "," : "");
			put_json_str(eps[i]);
			fputs(",\"status\":{", stdout);
			json_header(&s->header);
			printf(",\"member_id\":%" PRIu64 ",\"leader_id\":%" PRIu64
			       ",\"raft_term\":%" PRIu64 ",\"commit_index\":%" PRIu64
			       ",\"applied_index\":%" PRIu64 ",\"revision\":%" PRId64
			       ",\"db_size\":%" PRId64 ",\"kv_hash\":%" PRIu64
			       ",\"fsyncs\":%" PRIu64 ",\"entries_committed\":%" PRIu64
			       ",\"log_first_index\":%" PRIu64 ",\"compactions\":%" PRIu64
			       ",\"snapshots_sent\":%" PRIu64 ",\"snapshots_installed\":%" PRIu64,
			       s->member_id, s->leader_id, s->raft_term, s->commit_index,
			       s->applied_index, s->revision, s->db_size, s->kv_hash, s->fsyncs,
			       s->entries_committed, s->log_first_index, s->compactions,
			       s->snapshots_sent, s->snapshots_installed);
			fputs(",\"version\":", stdout);
			put_json_str(s->version);
			fputs(",\"role\":", stdout);
			put_json_str(s->role);
			fputs("}}", stdout);
		} else if (cells != NULL) {
			status_cells(s, &cells[rows * N_STATUS_COLS]);
			if (cli->fmt == FMT_SIMPLE) {
				size_t k;

				for (k = 0; k < N_STATUS_COLS; k++) {
					printf("%s%s", k > 0 ? ", " : "",
					       cells[rows * N_STATUS_COLS + k]);
				}
				putchar('\n');
			}
		}
		rows++;
		cairn_status_result_free(s);
	}
	if (cli->fmt == FMT_JSON) {
		puts("]");
	} else if (cli->fmt == FMT_TABLE && cells != NULL) {
		print_table(status_cols, N_STATUS_COLS, cells, rows);
	}
	for (i = 0; i < n; i++) {
		free(eps[i]);
	}
	free(eps);
	free(cells);
	return code;
}

static int cmd_member_list(cairn_client *c, const struct cli *cli)
{
	static const char *const heads[] = {"ID", "NAME", "PEER ADDR", "CLIENT ADDR", "IS LEADER"};
	struct cairn_status_result *s = NULL;
	char err[CAIRN_ERRMSG_SIZE] = "";
	char(*cells)[CELL];
	size_t i;
	int rv;

	if (cli->n_args != 2) {
		return die_input("usage: member list");
	}
	rv = cairn_status(c, NULL, cli->timeout_ms, &s, err, sizeof(err));
	if (rv != 0) {
		return report(rv, err);
	}
	if (cli->fmt == FMT_JSON) {
		putchar('{');
		json_header(&s->header);
		fputs(",\"members\":[", stdout);
		for (i = 0; i < s->n_members; i++) {
			const struct cairn_member *m = &s->members[i];

			printf("%s{\"id\":%" PRIu64 ",\"name\":", i > 0 ? "," : "", m->id);
			put_json_str(m->name);
			fputs(",\"peer_addr\":", stdout);
			put_json_str(m->peer_addr);
			fputs(",\"client_addr\":", stdout);
			put_json_str(m->client_addr);
			printf(",\"is_leader\":%s}", m->id == s->leader_id ? "true" : "false");
		}
		puts("]}");
		cairn_status_result_free(s);
		return EXIT_OK;
	}
	cells = calloc(s->n_members * 5 + 1, sizeof(*cells));
	if (cells == NULL) {
		cairn_status_result_free(s);
		return report(CAIRN_ENOMEM, "");
	}
	for (i = 0; i < s->n_members; i++) {
		const struct cairn_member *m = &s->members[i];
		char(*row)[CELL] = &cells[i * 5];

		snprintf(row[0], CELL, "%016" PRIx64, m->id);
		snprintf(row[1], CELL, "%s", m->name);
		snprintf(row[2], CELL, "%s", m->peer_addr);
		snprintf(row[3], CELL, "%s", m->client_addr);
		snprintf(row[4], CELL, "%s", m->id == s->leader_id ? "true" : "false");
		if (cli->fmt == FMT_SIMPLE) {
			printf("%s, %s, %s, %s, %s\n", row[0], row[1], row[2], row[3], row[4]);
		}
	}
	if (cli->fmt == FMT_TABLE) {
		print_table(heads, 5, cells, s->n_members);
	}
	free(cells);
	cairn_status_result_free(s);
	return EXIT_OK;
}

int main(int argc, char **argv)
{
	struct cli cli;
	struct cairn_options opts = {0};
	char err[CAIRN_ERRMSG_SIZE] = "";
	cairn_client *c = NULL;
	const char *cmd;
	int rv, code;

	memset(&cli, 0, sizeof(cli));
	code = parse_args(&cli, argc, argv);
	if (code != EXIT_OK) {
		return code;
	}
	if (cli.endpoints == NULL) {
		cli.endpoints = getenv("CAIRN_ENDPOINTS");
	}
	if (cli.endpoints == NULL || cli.endpoints[0] == '\0') {
		cli.endpoints = CAIRN_DEFAULT_ENDPOINT;
	}
	if (cli.n_args == 0) {
		usage(stderr);
		return EXIT_INPUT;
	}
	cmd = cli.args[0];
	if (strcmp(cmd, "put") != 0 && strcmp(cmd, "get") != 0 && strcmp(cmd, "del") != 0 &&
	    strcmp(cmd, "txn") != 0 && strcmp(cmd, "status") != 0 &&
	    !(strcmp(cmd, "member") == 0 && cli.n_args >= 2 && strcmp(cli.args[1], "list") == 0)) {
		return die_input("unknown command \"%s\" (see cairnctl --help)", cmd);
	}
	opts.timeout_ms = cli.timeout_ms;
	rv = cairn_connect(cli.endpoints, &opts, &c, err, sizeof(err));
	if (rv != 0) {
		return report(rv, err);
	}
	if (strcmp(cmd, "put") == 0) {
		code = cmd_put(c, &cli);
	} else if (strcmp(cmd, "get") == 0) {
		code = cmd_get(c, &cli);
	} else if (strcmp(cmd, "del") == 0) {
		code = cmd_del(c, &cli);
	} else if (strcmp(cmd, "txn") == 0) {
		code = cmd_txn(c, &cli);
	} else if (strcmp(cmd, "status") == 0) {
		code = cmd_status(c, &cli);
	} else {
		code = cmd_member_list(c, &cli);
	}
	cairn_close(c);
	if (fflush(stdout) != 0 && code == EXIT_OK) {
		code = EXIT_CLUSTER;
	}
	return code;
}
