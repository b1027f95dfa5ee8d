/* Unit tests of the Raft log and hard state: group commit, truncation, reads, compaction. */
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

#define DATA_MAX 32

/* Entries [lo, hi) with the given term and data "e<index>t<term>". */
struct batch {
	struct storage_entry e[256];
	char data[256][DATA_MAX];
	size_t n;
};

static void make(struct batch *b, uint64_t lo, uint64_t hi, uint64_t term)
{
	uint64_t i;

	b->n = 0;
	for (i = lo; i < hi; i++) {
		struct storage_entry *e = &b->e[b->n];

		snprintf(b->data[b->n], DATA_MAX, "e%llut%llu", (unsigned long long)i,
			 (unsigned long long)term);
		e->index = i;
		e->term = term;
		e->type = (uint8_t)(i % 3);
		e->data = b->data[b->n];
		e->len = strlen(b->data[b->n]);
		b->n++;
	}
}

static int persist(const struct batch *b, uint64_t truncate_from,
		   const struct storage_hard_state *hs, char *err)
{
	struct storage_persist p = {0};

	p.truncate_from = truncate_from;
	p.entries = b != NULL ? b->e : NULL;
	p.n_entries = b != NULL ? b->n : 0;
	p.hard_state = hs;
	return storage_persist(h, &p, err, STORAGE_ERRMSG_SIZE);
}

static void append(uint64_t lo, uint64_t hi, uint64_t term)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct batch b;
	int rv;

	make(&b, lo, hi, term);
	rv = persist(&b, 0, NULL, err);
	ck_assert_msg(rv == 0, "append %llu..%llu: %s (%s)", (unsigned long long)lo,
		      (unsigned long long)hi, storage_strerror(rv), err);
}

static uint64_t term_of(uint64_t index)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	uint64_t term = 99;
	int rv = storage_log_term(h, index, &term, err, sizeof(err));

	ck_assert_msg(rv == 0, "term(%llu): %s (%s)", (unsigned long long)index,
		      storage_strerror(rv), err);
	return term;
}

static int term_err(uint64_t index)
{
	uint64_t term;

	return storage_log_term(h, index, &term, NULL, 0);
}

/* Check that entries [lo, hi) read back with `term`. */
static void check_entries(uint64_t lo, uint64_t hi, uint64_t term)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_entries es;
	char want[DATA_MAX];
	size_t i;
	int rv;

	rv = storage_log_entries(h, lo, hi, 0, &es, err, sizeof(err));
	ck_assert_msg(rv == 0, "entries: %s (%s)", storage_strerror(rv), err);
	ck_assert_uint_eq(es.n, hi - lo);
	for (i = 0; i < es.n; i++) {
		snprintf(want, sizeof(want), "e%llut%llu", (unsigned long long)(lo + i),
			 (unsigned long long)term);
		ck_assert_uint_eq(es.entries[i].index, lo + i);
		ck_assert_uint_eq(es.entries[i].term, term);
		ck_assert_uint_eq(es.entries[i].type, (lo + i) % 3);
		ck_assert_uint_eq(es.entries[i].len, strlen(want));
		ck_assert_int_eq(memcmp(es.entries[i].data, want, es.entries[i].len), 0);
	}
	storage_entries_free(&es);
}

START_TEST(test_empty_log)
{
	struct storage_state st = t_state(h);
	struct storage_entries es;

	ck_assert_uint_eq(st.first_index, 1);
	ck_assert_uint_eq(st.last_index, 0);
	ck_assert_uint_eq(st.last_term, 0);
	ck_assert_uint_eq(st.snapshot_index, 0);
	ck_assert_uint_eq(st.hard_state.term, 0);
	ck_assert_uint_eq(st.hard_state.vote, 0);
	ck_assert_uint_eq(term_of(0), 0);
	ck_assert_int_eq(term_err(1), STORAGE_EUNAVAIL);
	ck_assert_int_eq(storage_log_entries(h, 1, 1, 0, &es, NULL, 0), 0);
	ck_assert_uint_eq(es.n, 0);
	ck_assert_int_eq(storage_log_entries(h, 1, 2, 0, &es, NULL, 0), STORAGE_EUNAVAIL);
	/* an empty batch is a no-op without a commit */
	{
		struct storage_stats before;
		struct storage_stats after;

		storage_stats(h, &before);
		ck_assert_int_eq(persist(NULL, 0, NULL, NULL), 0);
		storage_stats(h, &after);
		ck_assert_uint_eq(after.commits, before.commits);
	}
}
END_TEST

START_TEST(test_append_read)
{
	struct storage_state st;

	append(1, 11, 1);
	append(11, 21, 2);
	st = t_state(h);
	ck_assert_uint_eq(st.first_index, 1);
	ck_assert_uint_eq(st.last_index, 20);
	ck_assert_uint_eq(st.last_term, 2);
	ck_assert_uint_eq(term_of(10), 1);
	ck_assert_uint_eq(term_of(11), 2);
	ck_assert_int_eq(term_err(21), STORAGE_EUNAVAIL);
	check_entries(1, 11, 1);
	check_entries(11, 21, 2);
	check_entries(5, 6, 1);

	/* persisted */
	storage_close(h);
	h = t_open(dir);
	check_entries(1, 11, 1);
	ck_assert_uint_eq(t_state(h).last_index, 20);
}
END_TEST

struct cb_state {
	uint64_t next;
	size_t calls;
	size_t stop_after;
};

static int read_cb(const struct storage_entry *e, void *arg)
{
	struct cb_state *s = arg;

	ck_assert_uint_eq(e->index, s->next);
	s->next++;
	s->calls++;
	return s->calls == s->stop_after ? 7 : 0;
}

START_TEST(test_read_callback_and_max_bytes)
{
	struct cb_state s = {3, 0, 0};
	struct storage_entries es;

	append(1, 101, 1); /* data "e<i>t1": 4..6 bytes */
	ck_assert_int_eq(storage_log_read(h, 3, 50, 0, read_cb, &s, NULL, 0), 0);
	ck_assert_uint_eq(s.calls, 47);

	/* a non-zero callback return stops and is returned */
	s.next = 10;
	s.calls = 0;
	s.stop_after = 5;
	ck_assert_int_eq(storage_log_read(h, 10, 100, 0, read_cb, &s, NULL, 0), 7);
	ck_assert_uint_eq(s.calls, 5);

	/* max_bytes: entries 10..14 are "e10t1".."e14t1", 5 bytes each */
	ck_assert_int_eq(storage_log_entries(h, 10, 100, 12, &es, NULL, 0), 0);
	ck_assert_uint_eq(es.n, 2);
	storage_entries_free(&es);
	ck_assert_int_eq(storage_log_entries(h, 10, 100, 15, &es, NULL, 0), 0);
	ck_assert_uint_eq(es.n, 3);
	storage_entries_free(&es);
	/* always at least one entry */
	ck_assert_int_eq(storage_log_entries(h, 10, 100, 1, &es, NULL, 0), 0);
	ck_assert_uint_eq(es.n, 1);
	storage_entries_free(&es);

	ck_assert_int_eq(storage_log_read(h, 0, 5, 0, read_cb, &s, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_log_read(h, 5, 4, 0, read_cb, &s, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_log_read(h, 5, 6, 0, NULL, &s, NULL, 0), STORAGE_EINVAL);
	ck_assert_int_eq(storage_log_read(h, 90, 102, 0, read_cb, &s, NULL, 0), STORAGE_EUNAVAIL);
	storage_entries_free(NULL);
}
END_TEST

START_TEST(test_hard_state)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_hard_state hs = {5, 2};
	struct storage_state st;

	ck_assert_int_eq(persist(NULL, 0, &hs, err), 0);
	st = t_state(h);
	ck_assert_uint_eq(st.hard_state.term, 5);
	ck_assert_uint_eq(st.hard_state.vote, 2);
	hs.vote = 0;
	hs.term = 6;
	ck_assert_int_eq(persist(NULL, 0, &hs, err), 0);
	/* the term never goes back */
	hs.term = 4;
	ck_assert_int_eq(persist(NULL, 0, &hs, err), STORAGE_EINVAL);
	ck_assert_msg(strstr(err, "term") != NULL, "%s", err);
	storage_close(h);
	h = t_open(dir);
	st = t_state(h);
	ck_assert_uint_eq(st.hard_state.term, 6);
	ck_assert_uint_eq(st.hard_state.vote, 0);
}
END_TEST

/* Truncate + append + hard state in ONE transaction: one commit, all or nothing. */
START_TEST(test_group_commit)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_hard_state hs = {3, 1};
	struct storage_stats before;
	struct storage_stats after;
	struct storage_state st;
	struct batch b;

	append(1, 21, 1);
	make(&b, 12, 18, 3);
	storage_stats(h, &before);
	ck_assert_int_eq(persist(&b, 12, &hs, err), 0);
	storage_stats(h, &after);
	ck_assert_uint_eq(after.commits - before.commits, 1);
	ck_assert_uint_eq(after.syncs, before.syncs); /* nosync handle */
	st = t_state(h);
	ck_assert_uint_eq(st.last_index, 17);
	ck_assert_uint_eq(st.last_term, 3);
	ck_assert_uint_eq(st.hard_state.term, 3);
	ck_assert_uint_eq(st.hard_state.vote, 1);
	check_entries(1, 12, 1);
	check_entries(12, 18, 3);

	/* all or nothing: a valid truncation with a bad append leaves the log as it was */
	make(&b, 12, 14, 4);
	hs.term = 4;
	ck_assert_int_eq(persist(&b, 5, &hs, err), STORAGE_EINVAL);
	st = t_state(h);
	ck_assert_uint_eq(st.last_index, 17);
	ck_assert_uint_eq(st.hard_state.term, 3);
	storage_stats(h, &before);
	ck_assert_uint_eq(before.commits, after.commits);
}
END_TEST

/* Persist batch N+1 and apply batch N in one transaction. */
START_TEST(test_persist_with_apply)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_op ops[3];
	struct storage_cmd cmds[3];
	struct storage_result res[3];
	struct storage_persist p = {0};
	struct storage_stats before;
	struct storage_stats after;
	struct storage_state st;
	struct batch b;
	size_t i;

	append(1, 4, 1);
	make(&b, 4, 7, 1);
	for (i = 0; i < 3; i++) {
		ops[i] = t_put_op(i == 0 ? "a" : i == 1 ? "b" : "c", "v");
		memset(&cmds[i], 0, sizeof(cmds[i]));
		cmds[i].index = i + 1;
		cmds[i].term = 1;
		cmds[i].type = STORAGE_CMD_TXN;
		cmds[i].txn.success = &ops[i];
		cmds[i].txn.n_success = 1;
	}
	p.entries = b.e;
	p.n_entries = b.n;
	p.apply = cmds;
	p.n_apply = 3;
	p.results = res;
	storage_stats(h, &before);
	ck_assert_int_eq(storage_persist(h, &p, err, sizeof(err)), 0);
	storage_stats(h, &after);
	ck_assert_uint_eq(after.commits - before.commits, 1);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(res[i].status, 0);
		ck_assert_uint_eq(res[i].revision, i + 1);
		storage_result_free(&res[i]);
	}
	st = t_state(h);
	ck_assert_uint_eq(st.last_index, 6);
	ck_assert_uint_eq(st.applied_index, 3);
	t_assert_value(h, "c", "v");

	/* an apply error rolls the log part back too */
	make(&b, 7, 9, 1);
	cmds[0].index = 9; /* gap after applied 3 */
	p.entries = b.e;
	p.n_entries = b.n;
	p.n_apply = 1;
	ck_assert_int_eq(storage_persist(h, &p, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_uint_eq(t_state(h).last_index, 6);
	p.results = NULL;
	ck_assert_int_eq(storage_persist(h, &p, err, sizeof(err)), STORAGE_EINVAL);
}
END_TEST

START_TEST(test_overwrite_conflicting_suffix)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_state st;
	struct batch b;

	append(1, 11, 1);
	/* §3.5: entries 6..8 of term 2 replace 6..10 of term 1 */
	make(&b, 6, 9, 2);
	ck_assert_int_eq(persist(&b, 0, NULL, err), 0);
	st = t_state(h);
	ck_assert_uint_eq(st.last_index, 8);
	ck_assert_uint_eq(st.last_term, 2);
	check_entries(1, 6, 1);
	check_entries(6, 9, 2);

	/* explicit truncation alone */
	ck_assert_int_eq(persist(NULL, 4, NULL, err), 0);
	st = t_state(h);
	ck_assert_uint_eq(st.last_index, 3);
	ck_assert_uint_eq(st.last_term, 1);
	/* truncating beyond the end is a no-op */
	ck_assert_int_eq(persist(NULL, 50, NULL, err), 0);
	ck_assert_uint_eq(t_state(h).last_index, 3);
}
END_TEST

START_TEST(test_persist_errors)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_persist p = {0};
	struct batch b;
	char *big;

	append(1, 6, 2);
	make(&b, 8, 10, 2); /* gap */
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	ck_assert_msg(strstr(err, "gap") != NULL, "%s", err);
	make(&b, 6, 8, 1); /* term below the previous entry's */
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	make(&b, 6, 9, 3); /* not contiguous */
	b.e[2].index = 10;
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	make(&b, 6, 9, 3); /* decreasing terms inside the batch */
	b.e[2].term = 2;
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	make(&b, 0, 1, 3);
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	make(&b, 6, 7, 3);
	b.e[0].data = NULL;
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	big = calloc(1, STORAGE_MAX_ENTRY_SIZE + 1);
	ck_assert_ptr_nonnull(big);
	make(&b, 6, 7, 3);
	b.e[0].data = big;
	b.e[0].len = STORAGE_MAX_ENTRY_SIZE + 1;
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_ETOOLARGE);
	free(big);
	ck_assert_int_eq(storage_persist(h, NULL, NULL, 0), STORAGE_EINVAL);
	p.n_entries = 1;
	ck_assert_int_eq(storage_persist(h, &p, NULL, 0), STORAGE_EINVAL);
	/* nothing changed */
	ck_assert_uint_eq(t_state(h).last_index, 5);
	check_entries(1, 6, 2);
}
END_TEST

/* Applied entries are committed: they can be neither truncated nor replaced (§3.6). */
START_TEST(test_applied_entries_are_immutable)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct batch b;

	append(1, 6, 1);
	t_noop(h);
	t_noop(h);
	t_noop(h); /* applied 3 */
	ck_assert_int_eq(persist(NULL, 3, NULL, err), STORAGE_EINVAL);
	make(&b, 2, 4, 2);
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_EINVAL);
	ck_assert_int_eq(persist(NULL, 4, NULL, err), 0);
	make(&b, 4, 6, 2);
	ck_assert_int_eq(persist(&b, 0, NULL, err), 0);
	check_entries(1, 4, 1);
	check_entries(4, 6, 2);
}
END_TEST

START_TEST(test_compaction)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_state st;
	struct batch b;
	int i;

	append(1, 6, 1);
	append(6, 11, 2);
	for (i = 0; i < 7; i++) {
		t_noop(h); /* applied 7 */
	}
	ck_assert_int_eq(storage_log_compact(h, 8, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_int_eq(storage_log_compact(h, 6, err, sizeof(err)), 0);
	st = t_state(h);
	ck_assert_uint_eq(st.first_index, 7);
	ck_assert_uint_eq(st.snapshot_index, 6);
	ck_assert_uint_eq(st.snapshot_term, 2);
	ck_assert_uint_eq(st.last_index, 10);
	ck_assert_uint_eq(term_of(6), 2); /* the term before the first entry is kept */
	ck_assert_int_eq(term_err(5), STORAGE_ECOMPACTED);
	ck_assert_int_eq(storage_log_read(h, 6, 8, 0, read_cb, NULL, NULL, 0), STORAGE_ECOMPACTED);
	check_entries(7, 11, 2);
	/* compacting what is already gone is a no-op */
	ck_assert_int_eq(storage_log_compact(h, 3, err, sizeof(err)), 0);
	/* writing below the first index is refused */
	make(&b, 6, 7, 2);
	ck_assert_int_eq(persist(&b, 0, NULL, err), STORAGE_ECOMPACTED);
	/* appending after it still works, and survives a reopen */
	append(11, 13, 3);
	storage_close(h);
	h = t_open(dir);
	st = t_state(h);
	ck_assert_uint_eq(st.first_index, 7);
	ck_assert_uint_eq(st.last_index, 12);
	/* compact everything applied */
	ck_assert_int_eq(storage_log_compact(h, 7, err, sizeof(err)), 0);
	ck_assert_uint_eq(t_state(h).first_index, 8);
}
END_TEST

/* The one segment file of a fresh log (segments are named by sequence number, from 1). */
static char *segment_path(void)
{
	static char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/wal/%016x.wal", dir, 1u);
	return path;
}

static long file_size(const char *path)
{
	FILE *f = fopen(path, "rb");
	long n;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	fclose(f);
	return n;
}

static void flip_byte(const char *path, long off)
{
	FILE *f = fopen(path, "r+b");
	int c;

	ck_assert_ptr_nonnull(f);
	ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
	c = fgetc(f);
	ck_assert_int_ne(c, EOF);
	ck_assert_int_eq(fseek(f, off, SEEK_SET), 0);
	ck_assert_int_ne(fputc(c ^ 0x40, f), EOF);
	fclose(f);
}

/* A record damaged in the middle of the log is corruption (open refuses, naming the index);
 * damage at the very end is a torn write, cut off at open. */
START_TEST(test_corrupt_log_record)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	storage_t *h2 = NULL;
	long size;

	/* one batch per entry; a 40-byte segment header, then records of a 28-byte header and
	 * "e<i>t1" (4 bytes below 10): entry 5 starts at 40 + 4 * 32 */
	for (uint64_t i = 1; i <= 10; i++) {
		append(i, i + 1, 1);
	}
	storage_close(h);
	h = NULL;
	size = 40 + 9 * 32 + 28 + 5; /* the end of entry 10 ("e10t1"); zeros follow */
	ck_assert_int_ge(file_size(segment_path()), size);
	/* a byte of entry 5's data, then of its length field: complete batches follow, so it is
	 * corruption, not a torn write, whichever field went bad */
	flip_byte(segment_path(), 40 + 4 * 32 + 29);
	ck_assert_int_eq(storage_open(dir, NULL, &h2, err, sizeof(err)), STORAGE_ECORRUPT);
	ck_assert_ptr_null(h2);
	ck_assert_msg(strstr(err, "index 5") != NULL, "%s", err);
	flip_byte(segment_path(), 40 + 4 * 32 + 29); /* repaired */
	flip_byte(segment_path(), 40 + 4 * 32 + 7);
	ck_assert_int_eq(storage_open(dir, NULL, &h2, err, sizeof(err)), STORAGE_ECORRUPT);
	ck_assert_msg(strstr(err, "index 5") != NULL, "%s", err);
	flip_byte(segment_path(), 40 + 4 * 32 + 7);

	/* the last record torn (the file may end inside it, or be followed by zeros): cut, the
	 * rest intact */
	ck_assert_int_eq(truncate(segment_path(), size - 3), 0);
	h = t_open(dir);
	ck_assert_uint_eq(t_state(h).last_index, 9);
	check_entries(1, 10, 1);
	/* and the log goes on from there */
	append(10, 12, 2);
	check_entries(10, 12, 2);
	storage_close(h);
	h = t_open(dir);
	ck_assert_uint_eq(t_state(h).last_index, 11);
	check_entries(1, 10, 1);
}
END_TEST

/* Reads check every record's CRC again: a record damaged while the handle is open (bit rot
 * after the checks at open) is reported, never handed out. */
START_TEST(test_read_checks_crc)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_entries es;
	uint64_t term;

	for (uint64_t i = 1; i <= 10; i++) {
		append(i, i + 1, 1);
	}
	flip_byte(segment_path(), 40 + 4 * 32 + 29); /* a byte of entry 5's data */
	ck_assert_int_eq(storage_log_entries(h, 1, 11, 0, &es, err, sizeof(err)), STORAGE_ECORRUPT);
	ck_assert_uint_eq(es.n, 0);
	ck_assert_msg(strstr(err, "5") != NULL, "%s", err);
	check_entries(1, 5, 1);
	check_entries(6, 11, 1);
	/* terms come from the index: still answered */
	ck_assert_int_eq(storage_log_term(h, 5, &term, err, sizeof(err)), 0);
	ck_assert_uint_eq(term, 1);
}
END_TEST

/* data.mdb without the log's files (a backup made with mdb_copy): the state machine is a
 * snapshot, and the log restarts right after the applied index. */
START_TEST(test_state_without_log_files)
{
	char wal[T_PATH_MAX];
	struct storage_state st;

	append(1, 11, 1); /* t_noop applies at term 1 too */
	for (int i = 0; i < 7; i++) {
		t_noop(h); /* applied 7 */
	}
	storage_close(h);
	h = NULL;
	snprintf(wal, sizeof(wal), "%s/wal", dir);
	t_rmtree(wal);
	h = t_open(dir);
	st = t_state(h);
	ck_assert_uint_eq(st.applied_index, 7);
	ck_assert_uint_eq(st.first_index, 8);
	ck_assert_uint_eq(st.last_index, 7);
	ck_assert_uint_eq(st.snapshot_index, 7);
	ck_assert_uint_eq(st.snapshot_term, 1);
	ck_assert_uint_eq(st.applied_term, 1);
	ck_assert_int_eq(term_err(8), STORAGE_EUNAVAIL);
	/* the log goes on after it, and that survives a reopen */
	append(8, 10, 3);
	storage_close(h);
	h = t_open(dir);
	st = t_state(h);
	ck_assert_uint_eq(st.first_index, 8);
	ck_assert_uint_eq(st.last_index, 9);
	check_entries(8, 10, 3);
}
END_TEST

/* A read callback may call storage again (no lock is held while it runs): a regression would
 * hang here until the test times out. */
struct reenter {
	uint64_t seen;
	uint64_t terms;
};

static int reenter_cb(const struct storage_entry *e, void *arg)
{
	struct reenter *r = arg;
	uint64_t term = 0;

	ck_assert_int_eq(storage_log_term(h, e->index, &term, NULL, 0), 0);
	ck_assert_uint_eq(term, e->term);
	r->seen++;
	r->terms += term;
	return 0;
}

START_TEST(test_read_callback_reenters)
{
	struct reenter r = {0};

	append(1, 6, 2);
	ck_assert_int_eq(storage_log_read(h, 1, 6, 0, reenter_cb, &r, NULL, 0), 0);
	ck_assert_uint_eq(r.seen, 5);
	ck_assert_uint_eq(r.terms, 10);
}
END_TEST

/* storage_applier: batches applied in one open transaction have their final results at once,
 * become visible only at the commit, and an abort (or a failed apply) undoes them all. */
static void put_cmd(struct storage_cmd *c, struct storage_op *op, uint64_t index, const char *key)
{
	*op = t_put_op(key, "v");
	memset(c, 0, sizeof(*c));
	c->index = index;
	c->term = 1;
	c->type = STORAGE_CMD_TXN;
	c->txn.success = op;
	c->txn.n_success = 1;
}

START_TEST(test_applier)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_applier *a = NULL;
	struct storage_cmd cmds[3];
	struct storage_op ops[3];
	struct storage_result res[3];

	append(1, 6, 1);
	ck_assert_int_eq(storage_applier_begin(h, &a, err, sizeof(err)), 0);
	put_cmd(&cmds[0], &ops[0], 1, "a");
	put_cmd(&cmds[1], &ops[1], 2, "b");
	ck_assert_int_eq(storage_applier_apply(a, cmds, 2, res, err, sizeof(err)), 0);
	ck_assert_uint_eq(res[1].revision, 2);
	storage_result_free(&res[0]);
	storage_result_free(&res[1]);
	put_cmd(&cmds[2], &ops[2], 3, "c");
	ck_assert_int_eq(storage_applier_apply(a, &cmds[2], 1, res, err, sizeof(err)), 0);
	ck_assert_uint_eq(res[0].revision, 3);
	storage_result_free(&res[0]);
	/* readers still see the state before the transaction */
	t_assert_value(h, "a", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, 0);
	ck_assert_int_eq(storage_applier_commit(a, err, sizeof(err)), 0);
	t_assert_value(h, "c", "v");
	ck_assert_uint_eq(t_state(h).applied_index, 3);

	/* an abort undoes every batch since begin */
	ck_assert_int_eq(storage_applier_begin(h, &a, err, sizeof(err)), 0);
	put_cmd(&cmds[0], &ops[0], 4, "d");
	ck_assert_int_eq(storage_applier_apply(a, cmds, 1, res, err, sizeof(err)), 0);
	storage_result_free(&res[0]);
	storage_applier_abort(a);
	t_assert_value(h, "d", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, 3);

	/* a failed apply (a gap after applied) takes the whole transaction with it */
	ck_assert_int_eq(storage_applier_begin(h, &a, err, sizeof(err)), 0);
	ck_assert_int_eq(storage_applier_apply(a, cmds, 1, res, err, sizeof(err)), 0);
	storage_result_free(&res[0]);
	put_cmd(&cmds[1], &ops[1], 9, "e");
	ck_assert_int_eq(storage_applier_apply(a, &cmds[1], 1, res, err, sizeof(err)),
			 STORAGE_EINVAL);
	ck_assert_int_eq(storage_applier_apply(a, cmds, 1, res, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_int_eq(storage_applier_commit(a, err, sizeof(err)), STORAGE_EINVAL);
	t_assert_value(h, "d", NULL);
	ck_assert_uint_eq(t_state(h).applied_index, 3);

	/* an entry not yet in the log is never applied */
	ck_assert_int_eq(storage_applier_begin(h, &a, err, sizeof(err)), 0);
	put_cmd(&cmds[0], &ops[0], 4, "d");
	put_cmd(&cmds[1], &ops[1], 5, "e");
	put_cmd(&cmds[2], &ops[2], 6, "f");
	ck_assert_int_eq(storage_applier_apply(a, cmds, 3, res, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_msg(strstr(err, "not in the log") != NULL, "%s", err);
	storage_applier_abort(a);
	ck_assert_uint_eq(t_state(h).applied_index, 3);
}
END_TEST

/* A new data.mdb beside an old log (data.mdb deleted by hand): the term and vote that went with
 * the log are gone, so the directory is refused rather than reopened with term 0. */
START_TEST(test_new_state_beside_old_log)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	storage_t *h2 = NULL;

	append(1, 4, 3);
	storage_close(h);
	h = NULL;
	ck_assert_int_eq(unlink(t_path(dir, "data.mdb")), 0);
	ck_assert_int_eq(unlink(t_path(dir, "lock.mdb")), 0);
	ck_assert_int_eq(storage_open(dir, NULL, &h2, err, sizeof(err)), STORAGE_ECORRUPT);
	ck_assert_ptr_null(h2);
	ck_assert_msg(strstr(err, "vote") != NULL, "%s", err);
	/* nothing was created: a second try is refused the same way */
	ck_assert_int_eq(access(t_path(dir, "data.mdb"), F_OK), -1);
	ck_assert_int_eq(storage_open(dir, NULL, &h2, err, sizeof(err)), STORAGE_ECORRUPT);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_log");
	TCase *tc = tcase_create("log");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_empty_log);
	tcase_add_test(tc, test_append_read);
	tcase_add_test(tc, test_read_callback_and_max_bytes);
	tcase_add_test(tc, test_hard_state);
	tcase_add_test(tc, test_group_commit);
	tcase_add_test(tc, test_persist_with_apply);
	tcase_add_test(tc, test_overwrite_conflicting_suffix);
	tcase_add_test(tc, test_persist_errors);
	tcase_add_test(tc, test_applied_entries_are_immutable);
	tcase_add_test(tc, test_compaction);
	tcase_add_test(tc, test_corrupt_log_record);
	tcase_add_test(tc, test_read_checks_crc);
	tcase_add_test(tc, test_state_without_log_files);
	tcase_add_test(tc, test_read_callback_reenters);
	tcase_add_test(tc, test_applier);
	tcase_add_test(tc, test_new_state_beside_old_log);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
