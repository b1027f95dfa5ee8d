/* Storage benchmark: entries/s and fsyncs per op for persist + apply batches, real fsync. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

#define VALUE_SIZE    256u
#define MAX_BATCH     256u
#define DISTINCT_KEYS 100000u /* keys are reused so the kv store stays bounded */
#define RUN_SECONDS   2.0
#define MAX_ENTRIES   400000u /* per batch size, bounds the log's growth */
#define KEY_SIZE      32u
#define PATH_SIZE     4096u
#define NS_PER_SEC    1e9
#define US_PER_SEC    1e6

struct result {
	size_t batch;
	bool combined;
	uint64_t ops;
	uint64_t entries;
	double seconds;
	uint64_t syncs;
};

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / NS_PER_SEC;
}

static void remove_dir(const char *dir)
{
	static const char *const files[] = {"data.mdb", "lock.mdb", "cairn.lock"};
	char path[PATH_SIZE];
	size_t i;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		int n = snprintf(path, sizeof(path), "%s/%s", dir, files[i]);

		if (n > 0 && (size_t)n < sizeof(path)) {
			unlink(path);
		}
	}
	rmdir(dir);
}

/* One operation = persist `batch` log entries durably, then apply them as puts: with a second
 * call (storage_apply), or as the apply part of the same storage_persist (combined). */
static int run(const char *tmp, size_t batch, bool combined, struct result *out)
{
	static struct storage_entry entries[MAX_BATCH];
	static struct storage_cmd cmds[MAX_BATCH];
	static struct storage_op ops[MAX_BATCH];
	static struct storage_result results[MAX_BATCH];
	static char keys[MAX_BATCH][KEY_SIZE];
	char err[STORAGE_ERRMSG_SIZE] = "";
	char dir[PATH_SIZE];
	char value[VALUE_SIZE];
	struct storage_stats before;
	struct storage_stats after;
	struct storage_persist p = {0};
	storage_t *h;
	uint64_t index = 1;
	double start;
	size_t i;
	int rv;

	snprintf(dir, sizeof(dir), "%s/cairn-bench-XXXXXX", tmp);
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	struct storage_options o = {0};

	o.nosync = getenv("CAIRN_BENCH_NOSYNC") != NULL;
	rv = storage_open(dir, &o, &h, err, sizeof(err));
	if (rv != 0) {
		fprintf(stderr, "storage_open: %s (%s)\n", storage_strerror(rv), err);
		remove_dir(dir);
		return 1;
	}
	memset(value, 'v', sizeof(value));
	memset(out, 0, sizeof(*out));
	out->batch = batch;
	out->combined = combined;
	storage_stats(h, &before);
	start = now();
	while (now() - start < RUN_SECONDS && out->entries + batch <= MAX_ENTRIES) {
		for (i = 0; i < batch; i++, index++) {
			snprintf(keys[i], KEY_SIZE, "bench/key/%06llu",
				 (unsigned long long)(index % DISTINCT_KEYS));
			entries[i].index = index;
			entries[i].term = 1;
			entries[i].type = 0;
			entries[i].data = value;
			entries[i].len = sizeof(value);
			memset(&ops[i], 0, sizeof(ops[i]));
			ops[i].type = STORAGE_OP_PUT;
			ops[i].key = keys[i];
			ops[i].key_len = strlen(keys[i]);
			ops[i].value = value;
			ops[i].value_len = sizeof(value);
			memset(&cmds[i], 0, sizeof(cmds[i]));
			cmds[i].index = index;
			cmds[i].term = 1;
			cmds[i].type = STORAGE_CMD_TXN;
			cmds[i].txn.success = &ops[i];
			cmds[i].txn.n_success = 1;
		}
		p.entries = entries;
		p.n_entries = batch;
		p.apply = combined ? cmds : NULL;
		p.n_apply = combined ? batch : 0;
		p.results = results;
		rv = storage_persist(h, &p, err, sizeof(err));
		if (rv == 0 && !combined) {
			rv = storage_apply(h, cmds, batch, results, err, sizeof(err));
		}
		if (rv != 0) {
			fprintf(stderr, "batch %zu: %s (%s)\n", batch, storage_strerror(rv), err);
			break;
		}
		for (i = 0; i < batch; i++) {
			storage_result_free(&results[i]);
		}
		out->ops++;
		out->entries += batch;
	}
	out->seconds = now() - start;
	storage_stats(h, &after);
	out->syncs = after.syncs - before.syncs;
	storage_close(h);
	remove_dir(dir);
	return rv != 0;
}

int main(void)
{
	static const size_t batches[] = {1, 16, 256};
	const char *tmp = getenv("TMPDIR");
	struct result r;
	int combined;
	size_t i;

	if (tmp == NULL || tmp[0] == '\0') {
		tmp = "/tmp";
	}
	printf(
	    "storage benchmark: one op = persist N log entries (durable) + apply them as N puts of "
	    "%u-byte values;\n  separate: storage_persist then storage_apply (2 calls); "
	    "combined: one storage_persist with an apply part (log write, then the apply "
	    "commit).\n"
	    "  data dir under %s%s\n\n",
	    VALUE_SIZE, tmp,
	    getenv("CAIRN_BENCH_NOSYNC") != NULL ? ", NOSYNC (not durable)" : ", real fsync");
	printf("%-9s %6s %8s %9s %8s %10s %12s %10s %12s %10s\n", "mode", "batch", "ops", "entries",
	       "seconds", "ops/s", "entries/s", "fsyncs/op", "fsyncs/entry", "us/op");
	for (combined = 0; combined <= 1; combined++) {
		for (i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
			if (run(tmp, batches[i], combined != 0, &r) != 0) {
				return EXIT_FAILURE;
			}
			printf("%-9s %6zu %8llu %9llu %8.2f %10.0f %12.0f %10.2f %12.4f %10.1f\n",
			       r.combined ? "combined" : "separate", r.batch,
			       (unsigned long long)r.ops, (unsigned long long)r.entries, r.seconds,
			       (double)r.ops / r.seconds, (double)r.entries / r.seconds,
			       (double)r.syncs / (double)r.ops, (double)r.syncs / (double)r.entries,
			       r.seconds * US_PER_SEC / (double)r.ops);
			fflush(stdout);
		}
	}
	return EXIT_SUCCESS;
}
