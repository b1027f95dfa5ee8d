/* Unit tests of the Raft log's segment files (storage/wal.c): recovery, cuts, compaction. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "test/unit/test_storage_util.h"

/* 16 bytes of data per entry, so a record is 44 bytes and a segment of SEG_SIZE holds
 * exactly 4 single-entry batches (40 + 4 * 44 = 216 >= 200: the fifth starts a new file). */
#define SEG_SIZE     200u
#define DATA_LEN     16u
#define SEG_HDR_SIZE 40u
#define REC_HDR_SIZE 28u
#define REC_SIZE     (REC_HDR_SIZE + DATA_LEN)
#define MAX_SEGS     64u

static char *dir;
static storage_t *h;
static struct storage_options opts;

static void setup(void)
{
	dir = t_mkdtemp();
	memset(&opts, 0, sizeof(opts));
	opts.nosync = true;
	opts.segment_size = SEG_SIZE;
	h = t_open_opts(dir, &opts);
}

static void teardown(void)
{
	storage_close(h);
	h = NULL;
	t_rmdir(dir);
	dir = NULL;
}

static void reopen(void)
{
	storage_close(h);
	h = t_open_opts(dir, &opts);
}

/* storage_open's error for `dir` (the handle, if any, is closed again). */
static int try_open(const char *d, char *err)
{
	storage_t *x = NULL;
	int rv = storage_open(d, &opts, &x, err, STORAGE_ERRMSG_SIZE);

	if (rv == 0) {
		ck_assert_ptr_nonnull(x);
		storage_close(x);
	} else {
		ck_assert_ptr_null(x);
	}
	return rv;
}

/* ---- entries ---- */

static void data_of(char *out, uint64_t index, uint64_t term)
{
	char tmp[64];

	snprintf(tmp, sizeof(tmp), "i%07llut%07llu", (unsigned long long)index,
		 (unsigned long long)term);
	ck_assert_uint_eq(strlen(tmp), DATA_LEN);
	memcpy(out, tmp, DATA_LEN);
}

static int persist_range(storage_t *x, uint64_t truncate_from, uint64_t lo, uint64_t hi,
			 uint64_t term, char *err)
{
	static char data[64][DATA_LEN];
	struct storage_entry e[64];
	struct storage_persist p = {0};
	size_t n = 0;

	ck_assert_uint_le(hi - lo, 64);
	for (uint64_t i = lo; i < hi; i++, n++) {
		data_of(data[n], i, term);
		e[n].index = i;
		e[n].term = term;
		e[n].type = (uint8_t)(i % 5);
		e[n].data = data[n];
		e[n].len = DATA_LEN;
	}
	p.truncate_from = truncate_from;
	p.entries = n > 0 ? e : NULL;
	p.n_entries = n;
	return storage_persist(x, &p, err, STORAGE_ERRMSG_SIZE);
}

/* Entries [lo, hi) of `term` in one batch. */
static void append_batch(uint64_t lo, uint64_t hi, uint64_t term)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	int rv = persist_range(h, 0, lo, hi, term, err);

	ck_assert_msg(rv == 0, "append %llu..%llu: %s (%s)", (unsigned long long)lo,
		      (unsigned long long)hi, storage_strerror(rv), err);
}

/* Entries [lo, hi) of `term`, one batch (one storage_persist) each. */
static void append_each(uint64_t lo, uint64_t hi, uint64_t term)
{
	for (uint64_t i = lo; i < hi; i++) {
		append_batch(i, i + 1, term);
	}
}

static void truncate_log(uint64_t from)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	int rv = persist_range(h, from, 0, 0, 0, err);

	ck_assert_msg(rv == 0, "truncate from %llu: %s (%s)", (unsigned long long)from,
		      storage_strerror(rv), err);
}

static uint64_t term_of(uint64_t index)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	uint64_t term = 999;
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

/* Entries [lo, hi) read back (in one storage_log_entries call) with `term`, their own index,
 * type and data; storage_log_term agrees. */
static void check_entries(uint64_t lo, uint64_t hi, uint64_t term)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_entries es;
	char want[DATA_LEN];
	int rv = storage_log_entries(h, lo, hi, 0, &es, err, sizeof(err));

	ck_assert_msg(rv == 0, "entries %llu..%llu: %s (%s)", (unsigned long long)lo,
		      (unsigned long long)hi, storage_strerror(rv), err);
	ck_assert_uint_eq(es.n, hi - lo);
	for (size_t i = 0; i < es.n; i++) {
		const struct storage_entry *e = &es.entries[i];

		data_of(want, lo + i, term);
		ck_assert_uint_eq(e->index, lo + i);
		ck_assert_uint_eq(e->term, term);
		ck_assert_uint_eq(e->type, (lo + i) % 5);
		ck_assert_uint_eq(e->len, DATA_LEN);
		ck_assert_int_eq(memcmp(e->data, want, DATA_LEN), 0);
		ck_assert_uint_eq(term_of(lo + i), term);
	}
	storage_entries_free(&es);
}

static void check_bounds(uint64_t first, uint64_t last, uint64_t last_term)
{
	struct storage_state st = t_state(h);

	ck_assert_uint_eq(st.first_index, first);
	ck_assert_uint_eq(st.snapshot_index, first - 1);
	ck_assert_uint_eq(st.last_index, last);
	ck_assert_uint_eq(st.last_term, last_term);
	ck_assert_int_eq(term_err(last + 1), STORAGE_EUNAVAIL);
}

/* Apply entries up to `upto` as no-ops, with their log terms. */
static void apply_upto(uint64_t upto)
{
	char err[STORAGE_ERRMSG_SIZE] = "";

	for (uint64_t i = t_state(h).applied_index + 1; i <= upto; i++) {
		struct storage_cmd cmd = {0};
		struct storage_result r;
		int rv;

		cmd.index = i;
		cmd.term = term_of(i);
		cmd.type = STORAGE_CMD_NOOP;
		rv = storage_apply(h, &cmd, 1, &r, err, sizeof(err));
		ck_assert_msg(rv == 0, "apply %llu: %s (%s)", (unsigned long long)i,
			      storage_strerror(rv), err);
		storage_result_free(&r);
	}
	ck_assert_uint_eq(t_state(h).applied_index, upto);
}

/* ---- segment files ---- */

static const char *seg_path_in(const char *d, uint64_t seq)
{
	static char path[T_PATH_MAX];

	snprintf(path, sizeof(path), "%s/wal/%016llx.wal", d, (unsigned long long)seq);
	return path;
}

static const char *seg_path(uint64_t seq)
{
	return seg_path_in(dir, seq);
}

/* The sequence numbers of the files in <dir>/wal, sorted; every file must be a segment. */
static size_t seg_list(uint64_t *seqs)
{
	char wal[T_PATH_MAX];
	struct dirent *de;
	size_t n = 0;
	DIR *d;

	snprintf(wal, sizeof(wal), "%s/wal", dir);
	d = opendir(wal);
	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)) != NULL) {
		unsigned long long seq;
		char tail[8] = "";

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) {
			continue;
		}
		ck_assert_msg(strlen(de->d_name) == 20 &&
				  sscanf(de->d_name, "%16llx%7s", &seq, tail) == 2 &&
				  strcmp(tail, ".wal") == 0,
			      "stray file %s", de->d_name);
		ck_assert_uint_lt(n, MAX_SEGS);
		seqs[n++] = seq;
	}
	closedir(d);
	for (size_t i = 1; i < n; i++) { /* insertion sort: a handful of names */
		for (size_t j = i; j > 0 && seqs[j - 1] > seqs[j]; j--) {
			uint64_t t = seqs[j];

			seqs[j] = seqs[j - 1];
			seqs[j - 1] = t;
		}
	}
	return n;
}

static size_t seg_count(void)
{
	uint64_t seqs[MAX_SEGS];

	return seg_list(seqs);
}

/* The segment files are exactly `want` (sequence numbers, ascending). */
static void assert_segs(const uint64_t *want, size_t n)
{
	uint64_t seqs[MAX_SEGS];
	size_t got = seg_list(seqs);

	ck_assert_uint_eq(got, n);
	for (size_t i = 0; i < n; i++) {
		ck_assert_uint_eq(seqs[i], want[i]);
	}
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *p;
	FILE *f = fopen(path, "rb");

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(fstat(fileno(f), &st), 0);
	*len = (size_t)st.st_size;
	p = malloc(*len + 1);
	ck_assert_ptr_nonnull(p);
	ck_assert_uint_eq(fread(p, 1, *len, f), *len);
	fclose(f);
	return p;
}

static void spit(const char *path, const void *p, size_t len, const char *mode)
{
	FILE *f = fopen(path, mode);

	ck_assert_msg(f != NULL, "open %s: %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(p, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++) {
		v = (v << 8) | p[i];
	}
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* An independent CRC32C (Castagnoli, reflected), to check the on-disk format: of `pre` (may be
 * NULL) followed by p. */
static uint32_t crc32c_of2(const uint8_t *pre, size_t pre_len, const uint8_t *p, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < pre_len + len; i++) {
		crc ^= i < pre_len ? pre[i] : p[i - pre_len];
		for (int b = 0; b < 8; b++) {
			crc = (crc & 1u) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
		}
	}
	return crc ^ 0xffffffffu;
}

static uint32_t crc32c(const uint8_t *p, size_t len)
{
	return crc32c_of2(NULL, 0, p, len);
}

/* A record's CRC: of the segment's nonce (header bytes 32..39), then the record after its crc. */
static uint32_t rec_crc(const uint8_t *seg, const uint8_t *rec, size_t len)
{
	return crc32c_of2(seg + 32, 8, rec + 4, len - 4);
}

/* The end of the valid records of a segment image (each record checked against its CRC), and
 * whether everything after it is zeros (the segment's preallocated space). No Check calls:
 * the disk-full child uses it too. */
static size_t walk_end(const uint8_t *p, size_t len, bool *tail_zero)
{
	size_t off = SEG_HDR_SIZE;

	while (off + REC_HDR_SIZE <= len) {
		uint32_t n = be32(p + off + 4);

		if (n > len - off - REC_HDR_SIZE ||
		    be32(p + off) != rec_crc(p, p + off, REC_HDR_SIZE + n)) {
			break;
		}
		off += REC_HDR_SIZE + n;
	}
	*tail_zero = true;
	for (size_t i = off; i < len; i++) {
		if (p[i] != 0) {
			*tail_zero = false;
		}
	}
	return off;
}

/* The end of segment `seq`'s records; nothing but zeros may follow them. */
static long seg_end(uint64_t seq)
{
	size_t len;
	uint8_t *p = slurp(seg_path(seq), &len);
	bool zero;
	size_t end = walk_end(p, len, &zero);

	free(p);
	ck_assert_msg(zero, "segment %llu: non-zero bytes after its last record at %zu",
		      (unsigned long long)seq, end);
	return (long)end;
}

/* Offset of the record of `index` in segment `seq`, found by walking the records. */
static long rec_off(uint64_t seq, uint64_t index)
{
	size_t len;
	uint8_t *p = slurp(seg_path(seq), &len);
	size_t off = SEG_HDR_SIZE;
	long found = -1;

	while (off + REC_HDR_SIZE <= len) {
		if (be64(p + off + 8) == index) {
			found = (long)off;
			break;
		}
		off += REC_HDR_SIZE + be32(p + off + 4);
	}
	free(p);
	ck_assert_msg(found >= 0, "entry %llu not in segment %llu", (unsigned long long)index,
		      (unsigned long long)seq);
	return found;
}

static void flip_byte(const char *path, long off)
{
	uint8_t c;
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x40;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/* ---- layout ---- */

/* The files are what docs/storage.md describes, byte for byte. */
START_TEST(test_on_disk_layout)
{
	/* bit 0: last of its batch, bit 1: first; 1-6 alone (both), 7..9 one batch */
	static const uint8_t flags_seg2[] = {3, 3, 2, 0, 1};
	size_t len;
	uint8_t *p;

	ck_assert_uint_eq(crc32c((const uint8_t *)"123456789", 9), 0xe3069283u); /* check value */
	append_each(1, 7, 1);
	append_batch(7, 10, 2);
	assert_segs((const uint64_t[]){1, 2}, 2);
	ck_assert_int_eq(seg_end(1), SEG_HDR_SIZE + 4 * REC_SIZE);
	ck_assert_int_eq(seg_end(2), SEG_HDR_SIZE + 5 * REC_SIZE);
	uint64_t nonces[3] = {0};
	for (uint64_t seq = 1; seq <= 2; seq++) {
		uint64_t first = seq == 1 ? 1 : 5;
		uint64_t n = seq == 1 ? 4 : 5;

		p = slurp(seg_path(seq), &len);
		ck_assert_int_eq(memcmp(p, "CAIRNWAL", 8), 0);
		ck_assert_uint_eq(be32(p + 8), 1);
		ck_assert_uint_eq(be32(p + 12), crc32c(p + 16, 24));
		ck_assert_uint_eq(be64(p + 16), seq);
		ck_assert_uint_eq(be64(p + 24), first);
		nonces[seq] = be64(p + 32); /* random per segment */
		ck_assert_uint_ne(nonces[seq], 0);
		for (uint64_t i = 0; i < n; i++) {
			const uint8_t *r = p + SEG_HDR_SIZE + i * REC_SIZE;
			uint64_t index = first + i;
			uint64_t term = index <= 6 ? 1 : 2;
			char want[DATA_LEN];

			data_of(want, index, term);
			ck_assert_uint_eq(be32(r), rec_crc(p, r, REC_SIZE));
			ck_assert_uint_ne(be32(r), crc32c(r + 4, REC_SIZE - 4)); /* the nonce counts */
			ck_assert_uint_eq(be32(r + 4), DATA_LEN);
			ck_assert_uint_eq(be64(r + 8), index);
			ck_assert_uint_eq(be64(r + 16), term);
			ck_assert_uint_eq(r[24], index % 5);
			ck_assert_uint_eq(r[25], seq == 1 ? 3 : flags_seg2[i]);
			ck_assert_uint_eq(r[26], 0);
			ck_assert_uint_eq(r[27], 0);
			ck_assert_int_eq(memcmp(r + REC_HDR_SIZE, want, DATA_LEN), 0);
		}
		free(p);
	}
	ck_assert_uint_ne(nonces[1], nonces[2]);
}
END_TEST

/* ---- rule 1: appends, reads, terms, many segments ---- */

struct seen {
	uint64_t next;
	size_t n;
	size_t bytes;
};

static int read_cb(const struct storage_entry *e, void *arg)
{
	struct seen *s = arg;
	char want[DATA_LEN];

	data_of(want, e->index, 1 + (e->index - 1) / 10);
	if (e->index != s->next || e->len != DATA_LEN || memcmp(e->data, want, DATA_LEN) != 0) {
		return 1; /* positive: not a storage error */
	}
	s->next++;
	s->n++;
	s->bytes += e->len;
	return 0;
}

/* Entries 1..100, the term going up every 10 entries: 25 segments of 4. */
static void check_hundred(void)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_entries es;
	struct seen s;

	check_bounds(1, 100, 10);
	for (uint64_t t = 1; t <= 10; t++) {
		check_entries(10 * (t - 1) + 1, 10 * t + 1, t);
	}
	/* the whole log in one read, across all 24 boundaries */
	ck_assert_int_eq(storage_log_entries(h, 1, 101, 0, &es, err, sizeof(err)), 0);
	ck_assert_uint_eq(es.n, 100);
	for (size_t i = 0; i < es.n; i++) {
		ck_assert_uint_eq(es.entries[i].index, i + 1);
		ck_assert_uint_eq(es.entries[i].term, 1 + i / 10);
	}
	storage_entries_free(&es);
	/* storage_log_read across boundaries: 3..97 */
	s = (struct seen){.next = 3};
	ck_assert_int_eq(storage_log_read(h, 3, 98, 0, read_cb, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.n, 95);
	ck_assert_uint_eq(s.next, 98);
	/* max_bytes: 3 entries of 16 bytes fit in 50, from 3 (segment 1) into segment 2 */
	s = (struct seen){.next = 3};
	ck_assert_int_eq(storage_log_read(h, 3, 98, 50, read_cb, &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s.n, 3);
	ck_assert_uint_eq(s.bytes, 48);
	/* exactly 48 fits 3 too; below one entry, one is still delivered */
	ck_assert_int_eq(storage_log_entries(h, 4, 50, 48, &es, err, sizeof(err)), 0);
	ck_assert_uint_eq(es.n, 3);
	ck_assert_uint_eq(es.entries[2].index, 6);
	storage_entries_free(&es);
	ck_assert_int_eq(storage_log_entries(h, 8, 50, 5, &es, err, sizeof(err)), 0);
	ck_assert_uint_eq(es.n, 1);
	ck_assert_uint_eq(es.entries[0].index, 8);
	storage_entries_free(&es);
	ck_assert_int_eq(storage_log_entries(h, 99, 102, 0, &es, NULL, 0), STORAGE_EUNAVAIL);
	ck_assert_uint_eq(es.n, 0);
}

START_TEST(test_many_segments)
{
	for (uint64_t i = 1; i <= 100; i++) {
		append_batch(i, i + 1, 1 + (i - 1) / 10);
	}
	ck_assert_uint_eq(seg_count(), 25);
	check_hundred();
	reopen();
	ck_assert_uint_eq(seg_count(), 25);
	check_hundred();
	/* segment 25 (97..100) is full: entry 101 starts segment 26 */
	append_batch(101, 102, 11);
	ck_assert_uint_eq(seg_count(), 26);
	ck_assert_int_eq(access(seg_path(26), F_OK), 0);
	reopen();
	check_bounds(1, 101, 11);
	check_entries(101, 102, 11);
	check_entries(91, 101, 10);
}
END_TEST

/* ---- rule 2: truncation across segments ---- */

/* Cut in the middle of segment 2 of 5 (explicit truncate_from), then append. */
START_TEST(test_truncate_mid_segment)
{
	append_each(1, 21, 1); /* segments 1..5: 1-4, 5-8, 9-12, 13-16, 17-20 */
	assert_segs((const uint64_t[]){1, 2, 3, 4, 5}, 5);
	truncate_log(7);
	assert_segs((const uint64_t[]){1, 2}, 2);
	ck_assert_int_eq(seg_end(2), SEG_HDR_SIZE + 2 * REC_SIZE);
	check_bounds(1, 6, 1);
	ck_assert_int_eq(term_err(7), STORAGE_EUNAVAIL);
	check_entries(1, 7, 1);
	/* 7, 8 fill segment 2 again, 9.. go to a new file (sequence numbers keep growing) */
	append_each(7, 13, 2);
	assert_segs((const uint64_t[]){1, 2, 6}, 3);
	check_bounds(1, 12, 2);
	check_entries(1, 7, 1);
	check_entries(7, 13, 2);
	reopen();
	assert_segs((const uint64_t[]){1, 2, 6}, 3);
	check_bounds(1, 12, 2);
	check_entries(1, 7, 1);
	check_entries(7, 13, 2);
	/* a conflicting suffix replaced from the middle of segment 1, in one batch */
	append_batch(3, 6, 3);
	assert_segs((const uint64_t[]){1}, 1);
	check_bounds(1, 5, 3);
	reopen();
	check_bounds(1, 5, 3);
	check_entries(1, 3, 1);
	check_entries(3, 6, 3);
}
END_TEST

/* Cuts exactly at the first index of a segment: by conflicting entries and by truncate_from,
 * and of the very first segment. */
START_TEST(test_truncate_at_segment_start)
{
	append_each(1, 21, 1);
	/* 9 is the first entry of segment 3: segments 3, 4, 5 go whole */
	append_batch(9, 11, 2);
	/* segment 2 is full: 9, 10 start segment 6 */
	assert_segs((const uint64_t[]){1, 2, 6}, 3);
	check_bounds(1, 10, 2);
	check_entries(1, 9, 1);
	check_entries(9, 11, 2);
	reopen();
	check_bounds(1, 10, 2);
	check_entries(9, 11, 2);
	/* truncate_from = 5, the first entry of segment 2 */
	truncate_log(5);
	assert_segs((const uint64_t[]){1}, 1);
	check_bounds(1, 4, 1);
	append_batch(5, 7, 3);
	assert_segs((const uint64_t[]){1, 7}, 2);
	reopen();
	assert_segs((const uint64_t[]){1, 7}, 2);
	check_bounds(1, 6, 3);
	check_entries(1, 5, 1);
	check_entries(5, 7, 3);
	/* truncate_from = 1: everything, the first segment is emptied to its header */
	truncate_log(1);
	check_bounds(1, 0, 0);
	assert_segs((const uint64_t[]){1}, 1);
	ck_assert_int_eq(seg_end(1), SEG_HDR_SIZE);
	reopen();
	check_bounds(1, 0, 0);
	append_batch(1, 3, 4);
	reopen();
	check_bounds(1, 2, 4);
	check_entries(1, 3, 4);
}
END_TEST

/* ---- rule 3: torn tails ---- */

/* The last record cut short: the log ends at the record before it. */
START_TEST(test_torn_tail_truncated)
{
	append_each(1, 11, 1); /* segment 3 holds 9, 10 */
	storage_close(h);
	h = NULL;
	ck_assert_int_eq(truncate(seg_path(3), SEG_HDR_SIZE + 2 * REC_SIZE - 5), 0);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 9, 1);
	check_entries(1, 10, 1);
	ck_assert_int_eq(seg_end(3), SEG_HDR_SIZE + REC_SIZE); /* cut at open */
	append_batch(10, 12, 2);
	reopen();
	check_bounds(1, 11, 2);
	check_entries(1, 10, 1);
	check_entries(10, 12, 2);

	/* a torn multi-record batch: the complete records before the tear stay */
	append_batch(12, 15, 3); /* 12, 13, 14 in one write, in segment 3 */
	storage_close(h);
	h = NULL;
	ck_assert_int_eq(truncate(seg_path(3), rec_off(3, 13) + REC_HDR_SIZE + 3), 0);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 12, 3);
	check_entries(12, 13, 3);
	append_batch(13, 14, 4);
	reopen();
	check_bounds(1, 13, 4);
	check_entries(10, 12, 2);
	check_entries(12, 13, 3);
	check_entries(13, 14, 4);
}
END_TEST

/* Write `len` bytes at `off` of a file (extending it if needed). */
static void write_at(const char *path, long off, const void *p, size_t len)
{
	int fd = open(path, O_RDWR);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pwrite(fd, p, len, off), (ssize_t)len);
	close(fd);
}

/* Garbage or zeros after the last record (a torn write, blocks allocated but never written):
 * the log ends at the last complete record and the junk is gone. */
START_TEST(test_torn_tail_garbage)
{
	uint8_t junk[300];
	uint64_t last = 10;

	append_each(1, 11, 1);
	for (unsigned variant = 0; variant < 4; variant++) {
		uint64_t seq = seg_count(); /* 3, 3, 3, 4: numbered from 1 without gaps here */
		long end;

		storage_close(h);
		h = NULL;
		end = seg_end(seq);
		for (size_t i = 0; i < sizeof(junk); i++) {
			junk[i] = variant == 0 ? 0 : (uint8_t)(i * 131u + 7u + variant);
		}
		if (variant <= 1) {
			/* zeros, then garbage, appended at the end of the file */
			spit(seg_path(seq), junk, sizeof(junk), "ab");
		} else {
			/* garbage right after the last record; variant 3: shorter than a record
			 * header */
			write_at(seg_path(seq), end, junk, variant == 3 ? 10 : sizeof(junk));
		}
		h = t_open_opts(dir, &opts);
		check_bounds(1, last, variant + 1);
		ck_assert_int_eq(seg_end(seq), end); /* and only zeros after it */
		append_batch(last + 1, last + 2, variant + 2);
		last++;
		reopen();
		check_bounds(1, last, variant + 2);
	}
	check_entries(1, 11, 1);
	for (uint64_t i = 11; i <= last; i++) {
		check_entries(i, i + 1, i - 9);
	}
}
END_TEST

/* ---- rule 4: corruption ---- */

/* A bad record or header in a segment that is not the last: refused, whatever the record. */
START_TEST(test_corrupt_non_last_segment)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	static const uint64_t targets[] = {6, 8, 5}; /* middle, last, first record of seg 2 */

	append_each(1, 13, 1); /* 1-4, 5-8, 9-12 */
	storage_close(h);
	h = NULL;
	for (size_t i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		long data = rec_off(2, targets[i]) + REC_HDR_SIZE + 3;
		long hdr = rec_off(2, targets[i]) + 16; /* the term */

		flip_byte(seg_path(2), data);
		ck_assert_int_eq(try_open(dir, err), STORAGE_ECORRUPT);
		flip_byte(seg_path(2), data);
		flip_byte(seg_path(2), hdr);
		ck_assert_int_eq(try_open(dir, err), STORAGE_ECORRUPT);
		flip_byte(seg_path(2), hdr);
	}
	/* the header of segment 2 (its first index) */
	flip_byte(seg_path(2), 30);
	ck_assert_int_eq(try_open(dir, err), STORAGE_ECORRUPT);
	flip_byte(seg_path(2), 30);
	/* repaired: all there, nothing was cut by the failed opens */
	h = t_open_opts(dir, &opts);
	check_bounds(1, 12, 1);
	check_entries(1, 13, 1);
	assert_segs((const uint64_t[]){1, 2, 3}, 3);
}
END_TEST

/* In the last segment, a bad record followed by complete batches was acknowledged: refused.
 * One in the last batch is a torn write: cut. */
START_TEST(test_corrupt_last_segment)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	long off;

	append_each(1, 10, 1);	 /* segment 3 holds 9 */
	append_each(10, 12, 1);	 /* 10, 11 alone */
	append_batch(12, 15, 2); /* 12, 13, 14 in one batch */
	ck_assert_uint_eq(seg_count(), 3);
	storage_close(h);
	h = NULL;
	/* 9, 10 and 11 are followed by a later batch (12..14 at least: its first record is
	 * intact), so each was flushed and acknowledged before it: corruption */
	for (uint64_t i = 9; i <= 11; i++) {
		off = rec_off(3, i) + REC_HDR_SIZE + 1;
		flip_byte(seg_path(3), off);
		ck_assert_int_eq(try_open(dir, err), STORAGE_ECORRUPT);
		ck_assert_msg(strstr(err, "later batches") != NULL, "%s", err);
		flip_byte(seg_path(3), off);
	}
	/* 13 is inside the last batch, and 14 after it is intact but not first of a batch: a
	 * torn write whose later page reached the disk; cut at 13 */
	off = rec_off(3, 13) + REC_HDR_SIZE + 1;
	flip_byte(seg_path(3), off);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 12, 2);
	storage_close(h);
	h = NULL;
	/* 12 is the first record of the last batch: cut there */
	flip_byte(seg_path(3), rec_off(3, 12) + REC_HDR_SIZE + 1);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 11, 1);
	check_entries(1, 12, 1);
	append_batch(12, 13, 3);
	reopen();
	check_bounds(1, 12, 3);
	check_entries(1, 12, 1);
	check_entries(12, 13, 3);
}
END_TEST

/* A missing segment file in the middle of the log is a gap: refused, never silently cut. */
START_TEST(test_missing_segment)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	uint8_t *saved;
	size_t len;

	append_each(1, 17, 1); /* 4 segments */
	storage_close(h);
	h = NULL;
	for (uint64_t seq = 2; seq <= 3; seq++) {
		saved = slurp(seg_path(seq), &len);
		ck_assert_int_eq(unlink(seg_path(seq)), 0);
		ck_assert_msg(try_open(dir, err) == STORAGE_ECORRUPT,
			      "segment %llu of 4 missing: open did not fail",
			      (unsigned long long)seq);
		/* the failed open left the other files alone */
		ck_assert_uint_eq(seg_count(), 3);
		spit(seg_path(seq), saved, len, "wb");
		free(saved);
		h = t_open_opts(dir, &opts);
		check_bounds(1, 16, 1);
		check_entries(1, 17, 1);
		storage_close(h);
		h = NULL;
	}
	h = t_open_opts(dir, &opts);
}
END_TEST

/* Zeros over the last records of a segment that is not the last one look like its unused
 * preallocated space, but the next segment does not follow on: acknowledged entries went bad
 * (a lost write), refused. */
START_TEST(test_zeroed_records_in_non_last_segment)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	static const uint8_t zeros[REC_SIZE];
	uint8_t *saved;
	size_t len;

	append_each(1, 14, 1); /* 1-4, 5-8, 9-12, 13 */
	storage_close(h);
	h = NULL;
	/* entry 4 (segment 1, followed by segment 2 of 4), then 12 (segment 3, followed by the
	 * last segment) */
	for (uint64_t seq = 1; seq <= 3; seq += 2) {
		saved = slurp(seg_path(seq), &len);
		write_at(seg_path(seq), rec_off(seq, 4 * seq), zeros, sizeof(zeros));
		ck_assert_msg(try_open(dir, err) == STORAGE_ECORRUPT,
			      "entry %llu zeroed: open did not fail",
			      (unsigned long long)(4 * seq));
		ck_assert_uint_eq(seg_count(), 4);
		spit(seg_path(seq), saved, len, "wb");
		free(saved);
	}
	h = t_open_opts(dir, &opts);
	check_bounds(1, 13, 1);
	check_entries(1, 14, 1);
}
END_TEST

/* ---- rule 5: a last segment cut short at creation ---- */

START_TEST(test_bad_last_segment_header)
{
	/* what a crash can leave of a new segment: nothing, part of a header, a bad header */
	static const struct {
		const char *bytes;
		size_t len;
	} cases[] = {
	    {"", 0},
	    {"CAIRNWAL\0\0", 10},
	    {"CAIRNWAL\0\0\0\1garbage-garbage-garbage-gar", SEG_HDR_SIZE},
	};
	uint64_t last = 16;

	append_each(1, 17, 1); /* 4 full segments */
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint64_t seqs[MAX_SEGS];
		size_t n;

		storage_close(h);
		h = NULL;
		n = seg_list(seqs);
		spit(seg_path(seqs[n - 1] + 1), cases[i].bytes, cases[i].len, "wb");
		h = t_open_opts(dir, &opts);
		ck_assert_uint_eq(seg_count(), n); /* removed */
		ck_assert_int_ne(access(seg_path(seqs[n - 1] + 1), F_OK), 0);
		check_bounds(1, last, 1);
		check_entries(1, last + 1, 1);
		/* fill the last segment up (4 entries) so that the next file is new */
		append_each(last + 1, last + 5, 1);
		last += 4;
		ck_assert_uint_eq(seg_count(), n + 1);
		reopen();
		check_bounds(1, last, 1);
	}
	check_entries(1, last + 1, 1);
}
END_TEST

/* ---- rule 6: compaction ---- */

START_TEST(test_compaction_deletes_segments)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	uint8_t *seg1;
	uint8_t *seg3;
	size_t len1;
	size_t len3;
	struct storage_state st;

	append_each(1, 9, 1);  /* 1-4, 5-8 */
	append_each(9, 21, 2); /* 9-12, 13-16, 17-20 */
	seg1 = slurp(seg_path(1), &len1);
	seg3 = slurp(seg_path(3), &len3);
	apply_upto(14);
	/* 11 is in segment 3: segments 1 and 2 are wholly before it */
	ck_assert_int_eq(storage_log_compact(h, 10, err, sizeof(err)), 0);
	assert_segs((const uint64_t[]){3, 4, 5}, 3);
	st = t_state(h);
	ck_assert_uint_eq(st.first_index, 11);
	ck_assert_uint_eq(st.snapshot_index, 10);
	ck_assert_uint_eq(st.snapshot_term, 2);
	ck_assert_uint_eq(st.last_index, 20);
	ck_assert_uint_eq(term_of(10), 2);
	ck_assert_int_eq(term_err(9), STORAGE_ECOMPACTED);
	ck_assert_int_eq(term_err(1), STORAGE_ECOMPACTED);
	{
		struct storage_entries es;

		/* 9 and 10 are still in segment 3's file, but dead */
		ck_assert_int_eq(storage_log_entries(h, 10, 12, 0, &es, NULL, 0),
				 STORAGE_ECOMPACTED);
		ck_assert_int_eq(storage_log_entries(h, 1, 2, 0, &es, NULL, 0), STORAGE_ECOMPACTED);
	}
	check_entries(11, 21, 2);
	reopen();
	assert_segs((const uint64_t[]){3, 4, 5}, 3);
	check_bounds(11, 20, 2);
	ck_assert_uint_eq(t_state(h).snapshot_term, 2);
	check_entries(11, 21, 2);
	ck_assert_int_eq(term_err(9), STORAGE_ECOMPACTED);
	/* 13 starts segment 4, but segment 3 holds 12, the entry before the first one, whose
	 * term an open checks against log_start: it stays */
	ck_assert_int_eq(storage_log_compact(h, 12, err, sizeof(err)), 0);
	assert_segs((const uint64_t[]){3, 4, 5}, 3);
	check_bounds(13, 20, 2);
	ck_assert_uint_eq(term_of(12), 2);
	ck_assert_int_eq(term_err(11), STORAGE_ECOMPACTED);
	/* now segment 3 is wholly before the snapshot point */
	ck_assert_int_eq(storage_log_compact(h, 13, err, sizeof(err)), 0);
	assert_segs((const uint64_t[]){4, 5}, 2);
	check_bounds(14, 20, 2);
	ck_assert_uint_eq(term_of(13), 2);
	/* 15 is inside segment 4: nothing to delete */
	ck_assert_int_eq(storage_log_compact(h, 14, err, sizeof(err)), 0);
	assert_segs((const uint64_t[]){4, 5}, 2);
	check_bounds(15, 20, 2);
	check_entries(15, 21, 2);

	/* leftovers of a crash between the log_start commit and the deletes: removed at open */
	storage_close(h);
	h = NULL;
	spit(seg_path(1), seg1, len1, "wb");
	spit(seg_path(3), seg3, len3, "wb");
	free(seg1);
	free(seg3);
	h = t_open_opts(dir, &opts);
	assert_segs((const uint64_t[]){4, 5}, 2);
	check_bounds(15, 20, 2);
	check_entries(15, 21, 2);
	ck_assert_int_eq(term_err(13), STORAGE_ECOMPACTED);
	append_batch(21, 23, 3);
	reopen();
	check_bounds(15, 22, 3);
	check_entries(15, 21, 2);
	check_entries(21, 23, 3);
}
END_TEST

/* Compacting the whole log (applies folded into storage_persist), then going on. */
START_TEST(test_compaction_of_everything)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_cmd cmds[8];
	struct storage_result res[8];
	struct storage_persist p = {0};
	static char data[8][DATA_LEN];
	struct storage_entry e[8];
	int rv;

	/* 1..8 persisted and applied in batches of one */
	for (uint64_t i = 1; i <= 8; i++) {
		size_t k = (size_t)(i - 1);

		data_of(data[k], i, 1);
		e[k] = (struct storage_entry){.index = i,
					      .term = 1,
					      .type = (uint8_t)(i % 5),
					      .data = data[k],
					      .len = DATA_LEN};
		cmds[k] = (struct storage_cmd){.index = i, .term = 1, .type = STORAGE_CMD_NOOP};
		p.entries = &e[k];
		p.n_entries = 1;
		p.apply = &cmds[k];
		p.n_apply = 1;
		p.results = &res[k];
		rv = storage_persist(h, &p, err, sizeof(err));
		ck_assert_msg(rv == 0, "persist %llu: %s (%s)", (unsigned long long)i,
			      storage_strerror(rv), err);
		storage_result_free(&res[k]);
	}
	ck_assert_uint_eq(t_state(h).applied_index, 8);
	assert_segs((const uint64_t[]){1, 2}, 2);
	ck_assert_int_eq(storage_log_compact(h, 9, err, sizeof(err)), STORAGE_EINVAL);
	ck_assert_int_eq(storage_log_compact(h, 8, err, sizeof(err)), 0);
	check_bounds(9, 8, 1);
	ck_assert_uint_eq(t_state(h).snapshot_term, 1);
	ck_assert_uint_le(seg_count(), 1); /* at most segment 2, all dead */
	ck_assert_int_ne(access(seg_path(1), F_OK), 0);
	reopen();
	check_bounds(9, 8, 1);
	append_each(9, 14, 2);
	check_bounds(9, 13, 2);
	reopen();
	check_bounds(9, 13, 2);
	check_entries(9, 14, 2);
	ck_assert_int_eq(term_err(8), 0);
	ck_assert_uint_eq(term_of(8), 1);
	ck_assert_int_eq(term_err(7), STORAGE_ECOMPACTED);
}
END_TEST

/* ---- rule 7: snapshot install ---- */

struct stream {
	uint8_t *p;
	size_t len;
};

static struct stream take_snapshot(storage_t *x, struct storage_snapshot_meta *meta)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot *s;
	struct stream st = {0};
	size_t cap = 0;
	size_t n;
	int rv = storage_snapshot_open(x, &s, meta, err, sizeof(err));

	ck_assert_msg(rv == 0, "snapshot_open: %s (%s)", storage_strerror(rv), err);
	for (;;) {
		if (cap - st.len < 4096) {
			cap = 2 * cap + 4096;
			st.p = realloc(st.p, cap);
			ck_assert_ptr_nonnull(st.p);
		}
		rv = storage_snapshot_read(s, st.p + st.len, 4096, &n, err, sizeof(err));
		ck_assert_msg(rv == 0, "snapshot_read: %s (%s)", storage_strerror(rv), err);
		if (n == 0) {
			break;
		}
		st.len += n;
	}
	storage_snapshot_close(s);
	return st;
}

static void install(storage_t *x, const struct stream *st)
{
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_snapshot_install *in;
	int rv = storage_snapshot_install_begin(x, &in, err, sizeof(err));

	ck_assert_msg(rv == 0, "install_begin: %s (%s)", storage_strerror(rv), err);
	ck_assert_int_eq(storage_snapshot_install_write(in, st->p, st->len, err, sizeof(err)), 0);
	rv = storage_snapshot_install_finish(in, NULL, err, sizeof(err));
	ck_assert_msg(rv == 0, "install_finish: %s (%s)", storage_strerror(rv), err);
}

/* The source of the install tests: 1..4 term 1, 5..s term 2, applied; a snapshot at s. */
static struct stream source_snapshot(uint64_t s, char **src_dir)
{
	struct storage_snapshot_meta meta;
	struct stream st;
	storage_t *saved = h;

	*src_dir = t_mkdtemp();
	h = t_open_opts(*src_dir, &opts); /* the helpers work on h */
	append_each(1, 5, 1);
	append_each(5, s + 1, 2);
	apply_upto(s);
	st = take_snapshot(h, &meta);
	ck_assert_uint_eq(meta.index, s);
	ck_assert_uint_eq(meta.term, 2);
	storage_close(h);
	h = saved;
	return st;
}

START_TEST(test_install_keeps_matching_suffix)
{
	char *src_dir;
	struct stream st = source_snapshot(6, &src_dir);

	/* the same history up to 6, and more: 1-4, 5-8, 9-12 */
	append_each(1, 5, 1);
	append_each(5, 13, 2);
	install(h, &st);
	check_bounds(7, 12, 2);
	ck_assert_uint_eq(t_state(h).snapshot_term, 2);
	ck_assert_uint_eq(t_state(h).applied_index, 6);
	ck_assert_uint_eq(term_of(6), 2);
	ck_assert_int_eq(term_err(5), STORAGE_ECOMPACTED);
	check_entries(7, 13, 2);
	assert_segs((const uint64_t[]){2, 3}, 2); /* segment 1 (1..4) was wholly before */
	append_batch(13, 14, 3);
	reopen();
	check_bounds(7, 13, 3);
	check_entries(7, 13, 2);
	check_entries(13, 14, 3);
	free(st.p);
	t_rmdir(src_dir);
}
END_TEST

/* A log that disagrees at the snapshot index is discarded whole. */
START_TEST(test_install_discards_conflicting_log)
{
	char *src_dir;
	struct stream st = source_snapshot(6, &src_dir);

	append_each(1, 13, 1); /* term 1 at 6: conflicts */
	install(h, &st);
	check_bounds(7, 6, 2);
	ck_assert_uint_eq(t_state(h).applied_index, 6);
	ck_assert_uint_eq(term_of(6), 2);
	ck_assert_int_eq(term_err(7), STORAGE_EUNAVAIL);
	ck_assert_uint_eq(seg_count(), 0);
	{
		struct storage_entries es;

		ck_assert_int_eq(storage_log_entries(h, 7, 8, 0, &es, NULL, 0), STORAGE_EUNAVAIL);
	}
	reopen();
	check_bounds(7, 6, 2);
	/* the next entry is S + 1, and its term may not be below the snapshot's */
	{
		char err[STORAGE_ERRMSG_SIZE] = "";

		ck_assert_int_eq(persist_range(h, 0, 7, 8, 1, err), STORAGE_EINVAL);
		ck_assert_int_eq(persist_range(h, 0, 8, 9, 2, err), STORAGE_EINVAL); /* a gap */
	}
	append_batch(7, 9, 2);
	check_bounds(7, 8, 2);
	reopen();
	check_bounds(7, 8, 2);
	check_entries(7, 9, 2);
	ck_assert_uint_eq(seg_count(), 1);

	/* a log shorter than the snapshot goes too */
	storage_close(h);
	h = NULL;
	t_rmdir(dir);
	dir = t_mkdtemp();
	h = t_open_opts(dir, &opts);
	append_each(1, 4, 2);
	install(h, &st);
	check_bounds(7, 6, 2);
	ck_assert_uint_eq(seg_count(), 0);
	reopen();
	check_bounds(7, 6, 2);
	free(st.p);
	t_rmdir(src_dir);
}
END_TEST

/* A crash after the install's commit but before its segment deletes: the conflicting files
 * are still there at the next open, and must not come back as the log. Here the snapshot
 * index is the last entry of a segment, so the next segment starts right after it. */
START_TEST(test_install_crash_leaves_conflicting_files)
{
	char *src_dir;
	struct stream st = source_snapshot(8, &src_dir);
	uint8_t *saved[3];
	size_t len[3];

	append_each(1, 13, 1); /* 1-4, 5-8, 9-12, all term 1: conflicts at 8 */
	for (int i = 0; i < 3; i++) {
		saved[i] = slurp(seg_path((uint64_t)i + 1), &len[i]);
	}
	install(h, &st);
	check_bounds(9, 8, 2);
	storage_close(h);
	h = NULL;
	for (int i = 0; i < 3; i++) {
		spit(seg_path((uint64_t)i + 1), saved[i], len[i], "wb");
		free(saved[i]);
	}
	h = t_open_opts(dir, &opts);
	/* entries 9..12 of term 1 after a snapshot of term 2 would break the log */
	check_bounds(9, 8, 2);
	ck_assert_int_eq(term_err(9), STORAGE_EUNAVAIL);
	append_batch(9, 10, 3);
	reopen();
	check_bounds(9, 9, 3);
	check_entries(9, 10, 3);
	free(st.p);
	t_rmdir(src_dir);
}
END_TEST

/* ---- rule 8: the format 1 upgrade ---- */

/* A format 1 directory: entries [lo, hi) in LMDB's `log` (term 1 + i / 100), `log_start`
 * (lo, prev_term) when lo > 1. */
static void make_format1(const char *d, uint64_t lo, uint64_t hi, uint64_t prev_term)
{
	static const uint8_t one[4] = {0, 0, 0, 1};
	storage_t *x = t_open_opts(d, &opts);

	storage_close(x);
	for (uint64_t i = lo; i < hi; i++) {
		uint8_t key[8];
		uint8_t val[9 + DATA_LEN];

		t_be64(key, i);
		t_be64(val, 1 + i / 100);
		val[8] = (uint8_t)(i % 5);
		data_of((char *)val + 9, i, 1 + i / 100);
		t_raw_put(d, "log", key, sizeof(key), val, sizeof(val));
	}
	if (lo > 1) {
		uint8_t start[16];

		t_be64(start, lo);
		t_be64(start + 8, prev_term);
		t_raw_put(d, "meta", "log_start", 9, start, sizeof(start));
	}
	t_raw_put(d, "meta", "format", 6, one, sizeof(one));
}

/* Entries in LMDB's `log` and the format marker, read behind storage's back. */
static void raw_check(const char *d, size_t *log_entries, uint32_t *format)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_stat st;
	MDB_val k = {6, (void *)"format"};
	MDB_val v;

	ck_assert_int_eq(mdb_env_create(&env), 0);
	ck_assert_int_eq(mdb_env_set_maxdbs(env, 8), 0);
	ck_assert_int_eq(mdb_env_open(env, d, MDB_RDONLY, 0600), 0);
	ck_assert_int_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
	ck_assert_int_eq(mdb_dbi_open(txn, "log", 0, &dbi), 0);
	ck_assert_int_eq(mdb_stat(txn, dbi, &st), 0);
	*log_entries = st.ms_entries;
	ck_assert_int_eq(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	ck_assert_int_eq(mdb_get(txn, dbi, &k, &v), 0);
	ck_assert_uint_eq(v.mv_size, 4);
	*format = be32(v.mv_data);
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

static void check_format1_log(uint64_t lo, uint64_t hi)
{
	for (uint64_t i = lo; i < hi; i += 100 - i % 100) {
		uint64_t end = i + 100 - i % 100 < hi ? i + 100 - i % 100 : hi;

		check_entries(i, end, 1 + i / 100);
	}
}

START_TEST(test_format1_upgrade)
{
	size_t n;
	uint32_t format;

	storage_close(h);
	h = NULL;
	/* 1500 entries: more than one migration batch (1024) */
	make_format1(dir, 1, 1501, 0);
	raw_check(dir, &n, &format);
	ck_assert_uint_eq(n, 1500);
	ck_assert_uint_eq(format, 1);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 1500, 16);
	check_format1_log(1, 1501);
	ck_assert_uint_ge(seg_count(), 1);
	storage_close(h);
	h = NULL;
	raw_check(dir, &n, &format);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(format, 2);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 1500, 16);
	check_format1_log(1, 1501);
	append_batch(1501, 1502, 16);
	reopen();
	check_bounds(1, 1501, 16);
	check_entries(1501, 1502, 16);
	storage_close(h);
	h = NULL;

	/* a crash after the copy but before the format commit: LMDB still says format 1 with
	 * the old log, the segment files hold a copy; the next open copies again, over it */
	make_format1(dir, 1, 1501, 0);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 1500, 16);
	check_format1_log(1, 1501);
	storage_close(h);
	h = NULL;
	raw_check(dir, &n, &format);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(format, 2);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 1500, 16);
}
END_TEST

/* A compacted format 1 log: log_start carries over. */
START_TEST(test_format1_upgrade_compacted)
{
	char *d2 = t_mkdtemp();
	size_t n;
	uint32_t format;

	make_format1(d2, 250, 260, 3);
	storage_close(h);
	h = t_open_opts(d2, &opts);
	check_bounds(250, 259, 3);
	ck_assert_uint_eq(t_state(h).snapshot_term, 3);
	ck_assert_uint_eq(term_of(249), 3);
	ck_assert_int_eq(term_err(248), STORAGE_ECOMPACTED);
	check_entries(250, 260, 3);
	storage_close(h);
	h = NULL;
	raw_check(d2, &n, &format);
	ck_assert_uint_eq(n, 0);
	ck_assert_uint_eq(format, 2);
	h = t_open_opts(d2, &opts);
	check_bounds(250, 259, 3);
	check_entries(250, 260, 3);
	storage_close(h);
	h = t_open_opts(dir, &opts); /* for teardown */
	t_rmdir(d2);
}
END_TEST

/* ---- rule 9: a full disk ---- */

#define FULL_LIMIT    (64 * 1024)
#define FULL_DATA_LEN 1000u

struct full_report {
	int step; /* how far the child got; FULL_DONE when it finished */
	int fail_rv;
	char fail_msg[STORAGE_ERRMSG_SIZE];
	uint64_t acked;
	long end_after_fail; /* end of the valid records */
	bool tail_zero;	     /* only zeros after them */
	int retry_rv;
	char retry_msg[STORAGE_ERRMSG_SIZE];
	int reopen_rv;
	uint64_t reopen_last;
	int read_rv;
	uint64_t bad_entry; /* first entry read back wrong, 0 if none */
	int append_after_rv;
};
#define FULL_DONE 100

static void full_data(uint8_t *p, uint64_t index)
{
	for (size_t j = 0; j < FULL_DATA_LEN; j++) {
		p[j] = (uint8_t)(index * 7u + j);
	}
}

static int full_persist(storage_t *x, uint64_t index, char *err)
{
	static uint8_t data[FULL_DATA_LEN];
	struct storage_entry e = {.index = index, .term = 1, .type = 0, .data = data};
	struct storage_persist p = {0};

	full_data(data, index);
	e.len = FULL_DATA_LEN;
	p.entries = &e;
	p.n_entries = 1;
	return storage_persist(x, &p, err, STORAGE_ERRMSG_SIZE);
}

/* The child: no Check assertions here, everything goes back through `r`. */
static void full_child(const char *d, struct full_report *r)
{
	struct storage_options o = {.nosync = true, .segment_size = 1024 * 1024};
	char err[STORAGE_ERRMSG_SIZE] = "";
	struct storage_entries es;
	struct rlimit old;
	struct rlimit lim;
	storage_t *x = NULL;
	uint64_t i;
	int rv = 0;

	if (storage_open(d, &o, &x, err, sizeof(err)) != 0) {
		return;
	}
	r->step = 1;
	/* a file-size limit makes writes past it fail (EFBIG) as a full disk would */
	signal(SIGXFSZ, SIG_IGN);
	if (getrlimit(RLIMIT_FSIZE, &old) != 0) {
		return;
	}
	lim = old;
	lim.rlim_cur = FULL_LIMIT;
	if (setrlimit(RLIMIT_FSIZE, &lim) != 0) {
		return;
	}
	r->step = 2;
	for (i = 1; i < 1000; i++) {
		rv = full_persist(x, i, err);
		if (rv != 0) {
			break;
		}
	}
	r->fail_rv = rv;
	snprintf(r->fail_msg, sizeof(r->fail_msg), "%s", err);
	r->acked = i - 1;
	r->end_after_fail = -1;
	{
		/* the valid end of the segment, read behind storage's back */
		static uint8_t img[2 * FULL_LIMIT];
		int fd = open(seg_path_in(d, 1), O_RDONLY);
		ssize_t n = fd >= 0 ? pread(fd, img, sizeof(img), 0) : -1;

		if (fd >= 0) {
			close(fd);
		}
		if (n > 0) {
			r->end_after_fail = (long)walk_end(img, (size_t)n, &r->tail_zero);
		}
	}
	/* room again: the same handle appends */
	if (setrlimit(RLIMIT_FSIZE, &old) != 0) {
		return;
	}
	r->step = 3;
	err[0] = '\0';
	r->retry_rv = full_persist(x, i, err);
	snprintf(r->retry_msg, sizeof(r->retry_msg), "%s", err);
	storage_close(x);
	x = NULL;
	r->step = 4;
	r->reopen_rv = storage_open(d, &o, &x, err, sizeof(err));
	if (r->reopen_rv != 0) {
		return;
	}
	{
		struct storage_state st;

		if (storage_state(x, &st, NULL, 0) == 0) {
			r->reopen_last = st.last_index;
		}
	}
	r->read_rv = storage_log_entries(x, 1, r->reopen_last + 1, 0, &es, NULL, 0);
	if (r->read_rv == 0) {
		uint8_t want[FULL_DATA_LEN];

		for (size_t k = 0; k < es.n && r->bad_entry == 0; k++) {
			full_data(want, k + 1);
			if (es.entries[k].index != k + 1 || es.entries[k].len != FULL_DATA_LEN ||
			    memcmp(es.entries[k].data, want, FULL_DATA_LEN) != 0) {
				r->bad_entry = k + 1;
			}
		}
		if (es.n != r->reopen_last) {
			r->bad_entry = es.n + 1;
		}
		storage_entries_free(&es);
	}
	r->append_after_rv = full_persist(x, r->reopen_last + 1, err);
	storage_close(x);
	r->step = FULL_DONE;
}

/* Appends until the file-size limit: a clean STORAGE_ENOSPC, every acknowledged entry kept,
 * no partial record, and writes go on once there is room. In a child, so that the limit
 * stays there. */
START_TEST(test_disk_full)
{
	struct full_report r;
	int fds[2];
	pid_t pid;
	int status;
	size_t got = 0;

	storage_close(h); /* the child opens the directory itself */
	h = NULL;
	ck_assert_int_eq(pipe(fds), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct full_report cr;
		const uint8_t *p = (const uint8_t *)&cr;
		size_t done = 0;

		memset(&cr, 0, sizeof(cr));
		close(fds[0]);
		full_child(dir, &cr);
		while (done < sizeof(cr)) {
			ssize_t w = write(fds[1], p + done, sizeof(cr) - done);

			if (w <= 0) {
				_exit(2);
			}
			done += (size_t)w;
		}
		_exit(0);
	}
	close(fds[1]);
	while (got < sizeof(r)) {
		ssize_t n = read(fds[0], (uint8_t *)&r + got, sizeof(r) - got);

		ck_assert_int_gt(n, 0);
		got += (size_t)n;
	}
	close(fds[0]);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_int_eq(r.step, FULL_DONE);

	/* 63 records of 1028 bytes fit under 64 KiB with the header; the 64th does not */
	ck_assert_uint_eq(r.acked, 63);
	/* the partial 64th record was taken back out */
	ck_assert_int_eq(r.end_after_fail, SEG_HDR_SIZE + 63 * (REC_HDR_SIZE + FULL_DATA_LEN));
	ck_assert(r.tail_zero);
	ck_assert_int_eq(r.reopen_rv, 0);
	ck_assert_int_eq(r.read_rv, 0);
	ck_assert_uint_eq(r.bad_entry, 0);
	ck_assert_uint_ge(r.reopen_last, 63);
	/* a full disk is STORAGE_ENOSPC (nothing written, the handle usable), not EFATAL */
	ck_assert_msg(r.fail_rv == STORAGE_ENOSPC, "append past the limit: %s (%s)",
		      storage_strerror(r.fail_rv), r.fail_msg);
	ck_assert_msg(r.retry_rv == 0, "append after making room: %s (%s)",
		      storage_strerror(r.retry_rv), r.retry_msg);
	ck_assert_uint_eq(r.reopen_last, 64);
	ck_assert_int_eq(r.append_after_rv, 0);
	h = t_open_opts(dir, &opts);
	check_bounds(1, 65, 1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("storage_wal");
	TCase *tc = tcase_create("wal");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_on_disk_layout);
	tcase_add_test(tc, test_many_segments);
	tcase_add_test(tc, test_truncate_mid_segment);
	tcase_add_test(tc, test_truncate_at_segment_start);
	tcase_add_test(tc, test_torn_tail_truncated);
	tcase_add_test(tc, test_torn_tail_garbage);
	tcase_add_test(tc, test_corrupt_non_last_segment);
	tcase_add_test(tc, test_corrupt_last_segment);
	tcase_add_test(tc, test_missing_segment);
	tcase_add_test(tc, test_zeroed_records_in_non_last_segment);
	tcase_add_test(tc, test_bad_last_segment_header);
	tcase_add_test(tc, test_compaction_deletes_segments);
	tcase_add_test(tc, test_compaction_of_everything);
	tcase_add_test(tc, test_install_keeps_matching_suffix);
	tcase_add_test(tc, test_install_discards_conflicting_log);
	tcase_add_test(tc, test_install_crash_leaves_conflicting_files);
	tcase_add_test(tc, test_format1_upgrade);
	tcase_add_test(tc, test_format1_upgrade_compacted);
	tcase_add_test(tc, test_disk_full);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run(suite());
}
