/* lincheck_main.c — cairn-lincheck: checks a recorded history for linearizability (exit 0/1/2/3).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "test/torture/history.h"
#include "test/torture/lincheck.h"

static void usage(FILE *out)
{
	fputs("usage: cairn-lincheck HISTORY [--json] [--final-reads] [--max-steps N]\n"
	      "                      [--max-memory MIB] [--window N]\n"
	      "\n"
	      "Checks a JSON-lines history (docs/checker.md; \"-\" reads standard input) against\n"
	      "a per-key register model (read, write, cas, delete).\n"
	      "\n"
	      "  --json          print one JSON object instead of the text report\n"
	      "  --final-reads   also require final reads and report lost acknowledged writes\n"
	      "  --max-steps N   budget of one search of a key, in steps (default 20000000)\n"
	      "  --max-memory M  budget of one search of a key, in MiB (default 1024)\n"
	      "  --window N      most operations listed around a violation (default 24)\n"
	      "\n"
	      "exit: 0 linearizable, 1 not linearizable, 2 bad input or usage,\n"
	      "      3 unknown (search budget exhausted)\n",
	      out);
}

static int parse_count(const char *s, unsigned long long *out)
{
	char *end;
	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v == 0)
		return -1;
	*out = v;
	return 0;
}

static void json_error(const char *msg)
{
	fputs("{\"outcome\":\"bad-input\",\"exit_code\":2,\"error\":\"", stdout);
	for (const unsigned char *c = (const unsigned char *)msg; *c != '\0'; c++) {
		if (*c == '"' || *c == '\\')
			printf("\\%c", *c);
		else if (*c < 0x20)
			printf("\\u%04x", *c);
		else
			putchar(*c);
	}
	fputs("\"}\n", stdout);
}

int main(int argc, char **argv)
{
	const char *path = NULL;
	bool json = false;
	struct lincheck_options opts = {0};
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		unsigned long long v = 0;
		if (strcmp(a, "--json") == 0) {
			json = true;
		} else if (strcmp(a, "--final-reads") == 0) {
			opts.final_reads = true;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(a, "--max-steps") == 0 || strcmp(a, "--max-memory") == 0 ||
			   strcmp(a, "--window") == 0) {
			if (parse_count(i + 1 < argc ? argv[i + 1] : NULL, &v) != 0) {
				fprintf(stderr, "cairn-lincheck: %s needs a positive integer\n", a);
				return LINCHECK_EXIT_USAGE;
			}
			i++;
			if (strcmp(a, "--max-steps") == 0)
				opts.max_steps = v;
			else if (strcmp(a, "--max-memory") == 0)
				opts.max_memory = (size_t)v * 1024u * 1024u;
			else
				opts.window_max = (size_t)v;
		} else if (a[0] == '-' && a[1] != '\0') {
			fprintf(stderr, "cairn-lincheck: unknown option %s\n", a);
			usage(stderr);
			return LINCHECK_EXIT_USAGE;
		} else if (path == NULL) {
			path = a;
		} else {
			fprintf(stderr, "cairn-lincheck: more than one history given\n");
			return LINCHECK_EXIT_USAGE;
		}
	}
	if (path == NULL) {
		usage(stderr);
		return LINCHECK_EXIT_USAGE;
	}

	char err[HISTORY_ERRMSG_SIZE] = "";
	struct history h;
	struct lincheck_report r;
	memset(&r, 0, sizeof(r));
	int status = LINCHECK_EXIT_USAGE;
	int rv = history_init(&h);
	if (rv != 0) {
		fprintf(stderr, "cairn-lincheck: %s\n", history_strerror(rv));
		return LINCHECK_EXIT_USAGE;
	}
	rv = history_load_file(&h, path, err, sizeof(err));
	if (rv == 0)
		rv = lincheck_check(&h, &opts, &r, err, sizeof(err));
	if (rv != 0) {
		if (rv == HISTORY_EIO) /* the message names the file already */
			fprintf(stderr, "cairn-lincheck: %s\n",
				err[0] ? err : history_strerror(rv));
		else
			fprintf(stderr, "cairn-lincheck: %s: %s\n", path,
				err[0] ? err : history_strerror(rv));
		if (json)
			json_error(err[0] ? err : history_strerror(rv));
		goto out;
	}
	if (json)
		lincheck_print_json(stdout, &h, &r);
	else
		lincheck_print(stdout, &h, &r);
	status = (int)r.outcome;
out:
	lincheck_report_free(&r);
	history_free(&h);
	if (fflush(stdout) != 0)
		return LINCHECK_EXIT_USAGE;
	return status;
}
