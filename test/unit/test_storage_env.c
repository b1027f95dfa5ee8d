/* Tests of opening a data directory: lock, format, corrupt and truncated files, LMDB tools. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

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

static int try_open(const char *d, storage_t **h, char *err)
{
	struct storage_options o = {0};

	o.nosync = true;
	err[0] = '\0';
	return storage_open(d, &o, h, err, STORAGE_ERRMSG_SIZE);
}

/* A directory holding some data spread over several pages. */
static void populate(void)
{
	storage_t *h = t_open(dir);
	char key[16];
	char value[1024];
	int i;

	memset(value, 'v', sizeof(value) - 1);
	value[sizeof(value) - 1] = '\0';
	for (i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "key%03d", i);
		t_put(h, key, value);
	}
	storage_close(h);
}

START_TEST(test_open_creates_and_reopens)
{
	char err[STORAGE_ERRMSG_SIZE];
	char *sub;
	storage_t *h;
	struct stat st;

	sub = strdup(t_path(dir, "node1"));
	h = t_open(sub);
	ck_assert_int_eq(stat(sub, &st), 0);
	ck_assert(S_ISDIR(st.st_mode));
	ck_assert_int_eq(access(t_path(sub, "data.mdb"), F_OK), 0);
	ck_assert_int_eq(access(t_path(sub, "cairn.lock"), F_OK), 0);
	t_put(h, "a", "1");
	storage_close(h);
	h = t_open(sub);
	t_assert_value(h, "a", "1");
	storage_close(h);
	storage_close(NULL);
	t_rmdir(sub);

	ck_assert_int_eq(storage_open(NULL, NULL, &h, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_ptr_null(h);
	ck_assert_int_eq(storage_open(dir, NULL, NULL, err, sizeof(err)), STORAGE_EINVAL);
	{
		struct storage_options o = {0};

		o.map_size = STORAGE_MIN_MAP_SIZE - 1;
		ck_assert_int_eq(storage_open(dir, &o, &h, err, sizeof(err)), STORAGE_EINVAL);
	}
	/* a path that is a file, and a missing parent */
	ck_assert_int_eq(close(open(t_path(dir, "file"), O_CREAT | O_WRONLY, 0600)), 0);
	sub = strdup(t_path(dir, "file"));
	ck_assert_int_eq(try_open(sub, &h, err), STORAGE_EIO);
	free(sub);
	sub = strdup(t_path(dir, "no/such/parent"));
	ck_assert_int_eq(try_open(sub, &h, err), STORAGE_EIO);
	ck_assert_msg(strstr(err, "no/such/parent") != NULL, "%s", err);
	free(sub);
}
END_TEST

START_TEST(test_lock_same_process)
{
	char err[STORAGE_ERRMSG_SIZE];
	storage_t *h = t_open(dir);
	storage_t *h2 = NULL;

	ck_assert_int_eq(try_open(dir, &h2, err), STORAGE_EBUSY);
	ck_assert_ptr_null(h2);
	ck_assert_msg(strstr(err, "in use") != NULL, "%s", err);
	ck_assert_str_eq(storage_strerror(STORAGE_EBUSY), "data directory in use");
	storage_close(h);
	h2 = t_open(dir);
	storage_close(h2);
}
END_TEST

/* The parent holds the directory; a forked child cannot open it. */
START_TEST(test_lock_forked_child)
{
	storage_t *h = t_open(dir);
	int status;
	pid_t pid;

	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		char err[STORAGE_ERRMSG_SIZE];
		storage_t *h2 = NULL;
		int rv = try_open(dir, &h2, err);

		_exit(rv == STORAGE_EBUSY && h2 == NULL ? 0 : 1);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	storage_close(h);
}
END_TEST

/* A child process holds the directory; the parent cannot open it until the child is gone. */
START_TEST(test_lock_held_by_child)
{
	char err[STORAGE_ERRMSG_SIZE];
	storage_t *h = NULL;
	int ready[2];
	int release[2];
	int status;
	char c = 0;
	pid_t pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(release), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		storage_t *hc = NULL;
		char e[STORAGE_ERRMSG_SIZE];

		if (try_open(dir, &hc, e) != 0) {
			_exit(1);
		}
		if (write(ready[1], "r", 1) != 1 || read(release[0], &c, 1) != 1) {
			_exit(2);
		}
		storage_close(hc);
		_exit(0);
	}
	ck_assert_int_eq(read(ready[0], &c, 1), 1);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_EBUSY);
	ck_assert_msg(strstr(err, "locked by pid") != NULL, "%s", err);
	ck_assert_int_eq(write(release[1], "x", 1), 1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	h = t_open(dir);
	storage_close(h);
	close(ready[0]);
	close(ready[1]);
	close(release[0]);
	close(release[1]);
}
END_TEST

START_TEST(test_format_newer_refused)
{
	char err[STORAGE_ERRMSG_SIZE];
	uint8_t v[4] = {0, 0, 0, STORAGE_FORMAT_VERSION + 1};
	storage_t *h = t_open(dir);

	t_put(h, "a", "b");
	storage_close(h);
	t_raw_put(dir, "meta", "format", 6, v, sizeof(v));
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_EFORMAT);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(err, "newer") != NULL, "%s", err);
	/* an unknown older one too */
	v[3] = 0;
	t_raw_put(dir, "meta", "format", 6, v, sizeof(v));
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_EFORMAT);
	/* a malformed marker is corruption */
	t_raw_put(dir, "meta", "format", 6, v, 3);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	/* no marker but data */
	t_raw_put(dir, "meta", "format", 6, NULL, 0);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "format marker") != NULL, "%s", err);
}
END_TEST

START_TEST(test_bad_meta_record_refused)
{
	char err[STORAGE_ERRMSG_SIZE];
	storage_t *h = t_open(dir);

	t_put(h, "a", "b");
	storage_close(h);
	t_raw_put(dir, "meta", "applied", 7, "xyz", 3);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "applied") != NULL, "%s", err);
}
END_TEST

static void overwrite(const char *path, off_t off, size_t len, unsigned seed)
{
	uint8_t *buf = malloc(len);
	int fd = open(path, O_WRONLY);
	size_t i;

	ck_assert_ptr_nonnull(buf);
	ck_assert_int_ge(fd, 0);
	for (i = 0; i < len; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	ck_assert_int_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	close(fd);
	free(buf);
}

START_TEST(test_garbage_file_refused)
{
	char err[STORAGE_ERRMSG_SIZE];
	char *data;
	struct stat st;
	storage_t *h;

	populate();
	data = strdup(t_path(dir, "data.mdb"));
	ck_assert_int_eq(stat(data, &st), 0);
	overwrite(data, 0, (size_t)st.st_size, 1);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	ck_assert_ptr_null(h);
	ck_assert_msg(strstr(err, "data.mdb") != NULL || strstr(err, dir) != NULL, "%s", err);
	free(data);
}
END_TEST

START_TEST(test_garbage_meta_page_refused)
{
	char err[STORAGE_ERRMSG_SIZE];
	char *data;
	storage_t *h;

	populate();
	data = strdup(t_path(dir, "data.mdb"));
	overwrite(data, 0, 512, 2); /* the first meta page */
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	free(data);
	/* a plain text file */
	t_rmdir(dir);
	dir = t_mkdtemp();
	{
		FILE *f = fopen(t_path(dir, "data.mdb"), "w");

		ck_assert_ptr_nonnull(f);
		fputs("this is not an LMDB file, just some text of a reasonable length\n", f);
		fclose(f);
	}
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
}
END_TEST

static void truncate_to(off_t size)
{
	ck_assert_int_eq(truncate(t_path(dir, "data.mdb"), size), 0);
}

START_TEST(test_truncated_file_refused)
{
	char err[STORAGE_ERRMSG_SIZE];
	struct stat st;
	storage_t *h;

	populate();
	ck_assert_int_eq(stat(t_path(dir, "data.mdb"), &st), 0);
	ck_assert_int_gt(st.st_size, 16 * 4096);
	truncate_to(st.st_size / 2);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "truncated") != NULL, "%s", err);
	truncate_to(4096 + 100);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	truncate_to(100);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	truncate_to(0);
	ck_assert_int_eq(try_open(dir, &h, err), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "empty") != NULL, "%s", err);
	ck_assert_ptr_null(h);
}
END_TEST

START_TEST(test_strerror)
{
	int e;

	for (e = STORAGE_EAGAIN; e <= STORAGE_OK; e++) {
		ck_assert_str_ne(storage_strerror(e), "unknown error");
	}
	ck_assert_str_eq(storage_strerror(STORAGE_EAGAIN - 1), "unknown error");
	ck_assert_str_eq(storage_strerror(1), "unknown error");
}
END_TEST

START_TEST(test_stats_count_syncs)
{
	struct storage_options o = {0};
	struct storage_stats a;
	struct storage_stats b;
	storage_t *h = t_open_opts(dir, &o); /* durable */

	struct storage_hard_state hs = {1, 0};
	struct storage_persist p = {0};

	/* an apply commit flushes once (its meta page rides on the next flush) */
	storage_stats(h, &a);
	t_put(h, "a", "1");
	t_put(h, "b", "2");
	storage_stats(h, &b);
	ck_assert_uint_eq(b.commits - a.commits, 2);
	ck_assert_uint_eq(b.syncs - a.syncs, 2);
	/* a persist is durable on return: data flush, then meta flush */
	p.hard_state = &hs;
	ck_assert_int_eq(storage_persist(h, &p, NULL, 0), 0);
	storage_stats(h, &a);
	ck_assert_uint_eq(a.commits - b.commits, 1);
	ck_assert_uint_eq(a.syncs - b.syncs, 2);
	storage_close(h);
}
END_TEST

/* The files open with the real LMDB tools (mdb_stat, mdb_dump). */
START_TEST(test_lmdb_tools)
{
	char cmd[T_PATH_MAX];
	storage_t *h = t_open(dir);
	int status;

	t_put(h, "tools-check-key", "tools-check-value");
	storage_close(h);
	if (access("scripts/lmdb-tools-check.sh", X_OK) != 0) {
		ck_abort_msg("scripts/lmdb-tools-check.sh not found: run from the repository root");
	}
	snprintf(cmd, sizeof(cmd), "scripts/lmdb-tools-check.sh '%s' tools-check-key >/dev/null",
		 dir);
	status = system(cmd);
	ck_assert_msg(status == 0, "%s exited with %d", cmd, status);
	snprintf(cmd, sizeof(cmd), "scripts/lmdb-tools-check.sh '%s' no-such-key >/dev/null 2>&1",
		 dir);
	ck_assert_int_ne(system(cmd), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_env");
	TCase *tc = tcase_create("env");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_open_creates_and_reopens);
	tcase_add_test(tc, test_lock_same_process);
	tcase_add_test(tc, test_lock_forked_child);
	tcase_add_test(tc, test_lock_held_by_child);
	tcase_add_test(tc, test_format_newer_refused);
	tcase_add_test(tc, test_bad_meta_record_refused);
	tcase_add_test(tc, test_garbage_file_refused);
	tcase_add_test(tc, test_garbage_meta_page_refused);
	tcase_add_test(tc, test_truncated_file_refused);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_stats_count_syncs);
	tcase_add_test(tc, test_lmdb_tools);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
