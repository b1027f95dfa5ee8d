/* The Raft log as append-only segment files: one write and one flush per group-committed batch. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/internal.h"

/*
 * Layout (docs/storage.md): <dir>/wal/<seq as 16 hex digits>.wal, seq growing by one per new
 * segment. A segment is a header then records, back to back:
 *   header: "CAIRNWAL" | version u32 | crc u32 (CRC32C of the next 24 bytes) | seq u64
 *           | first u64 | nonce u64 (random)
 *   record: crc u32 | len u32 | index u64 | term u64 | type u8 | flags u8 (bit 0: last record
 *           of its batch, bit 1: first record of its batch) | 2 zero bytes | len bytes of data
 *   A record's crc is the CRC32C of the segment's nonce followed by everything after the crc
 *   field: bytes that merely look like a record (a client's value holding one) do not check.
 * Records are contiguous by index across segments and their terms never decrease.
 *
 * Why it is safe without a transaction log of its own:
 * - A batch is one pwrite at the end of the active segment, then fdatasync. A crash can only
 *   tear the batch being written, which was never acknowledged: at open, the first record of
 *   the last segment that fails its checks ends the log and the file is cut there, unless a
 *   later batch starts after the damage (a valid record with the first-of-batch flag: that
 *   batch was written after the damaged one was flushed and acknowledged, so this is
 *   corruption, ECORRUPT). Records of the torn batch itself may survive after the damage
 *   (pages reach the disk in any order); they are not first of their batch.
 * - Nothing is ever overwritten in place. A truncation (a conflicting suffix, §3.5) cuts the
 *   file with ftruncate and fsyncs it before anything new is written after the cut, so no
 *   stale record can follow a new one after a crash.
 * - Which entries count is decided by LMDB's durable `log_start` (first index and the term
 *   before it), not by which segment files exist: compaction and snapshot installs commit
 *   log_start first and delete segments after, and storage_open() applies the same rule
 *   (sto_wal_start_at) again, so a crash between the two steps is harmless.
 */

#define WAL_DIR		     "wal"
#define WAL_SUFFIX	     ".wal"
#define WAL_MAGIC	     "CAIRNWAL"
#define WAL_MAGIC_SIZE	     8u
#define WAL_VERSION	     1u
#define WAL_SEG_HDR_SIZE     40u /* magic(8) version(4) crc(4) seq(8) first(8) nonce(8) */
#define WAL_HDR_CRC_FROM     16u /* the header's crc covers seq, first and nonce */
#define WAL_REC_HDR_SIZE     28u /* crc(4) len(4) index(8) term(8) type(1) flags(1) pad(2) */
#define WAL_FLAG_BATCH_END   0x1u /* the last record of a batch (one write + flush) */
#define WAL_FLAG_BATCH_FIRST 0x2u /* the first record of a batch */
#define WAL_CRC_INIT	     0xffffffffu
#define WAL_BUF_KEEP	     (4u * 1024u * 1024u) /* a larger encoding buffer is freed after use */
#define WAL_NAME_SIZE	     32u
#define WAL_PATH_MAX	     4096u
#define WAL_SEQ_HEX_DIGITS   16u
#define WAL_DIR_MODE	     0700
#define WAL_INDEX_MIN_CAP    1024u

static void seg_name(char *out, uint64_t seq)
{
	snprintf(out, WAL_NAME_SIZE, "%016llx%s", (unsigned long long)seq, WAL_SUFFIX);
}

static bool parse_name(const char *name, uint64_t *seq)
{
	size_t len = strlen(name);
	if (len != WAL_SEQ_HEX_DIGITS + strlen(WAL_SUFFIX) ||
	    strcmp(name + WAL_SEQ_HEX_DIGITS, WAL_SUFFIX) != 0)
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < WAL_SEQ_HEX_DIGITS; i++) {
		char c = name[i];
		unsigned d;
		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a') + 10u;
		else
			return false;
		v = (v << 4) | d;
	}
	*seq = v;
	return true;
}

static int seg_path(struct sto_wal *w, char *out, uint64_t seq, char *errmsg, size_t errlen)
{
	char name[WAL_NAME_SIZE];
	seg_name(name, seq);
	int n = snprintf(out, WAL_PATH_MAX, "%s/%s", w->dir, name);
	if (n < 0 || (size_t)n >= WAL_PATH_MAX)
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "path too long: %s", w->dir);
	return 0;
}

static int sync_fd(storage_t *h, int fd, bool full)
{
	if (h->nosync)
		return 0;
	int rc = full ? fsync(fd) : fdatasync(fd);
	if (rc == 0)
		atomic_fetch_add(&h->syncs, 1);
	return rc;
}

/* Reserves the segment's blocks up to segment_size. Appends inside the file's size then flush
 * without a metadata journal commit (measured here: ~115 us instead of ~165 us per append +
 * fdatasync, ~140 instead of ~215 with three members on one disk). Best effort: without it
 * appends grow the file. The reserved space reads as zeros, which end the log at open. */
static void preallocate(struct sto_wal *w, int fd, uint64_t from)
{
	if (w->segment_size > from)
		(void)posix_fallocate(fd, (off_t)from, (off_t)(w->segment_size - from));
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

/* A failure after which the files may not match what we believe: never retried. */
static int wal_fatal(storage_t *h, char *errmsg, size_t errlen, const char *what, int err)
{
	atomic_store(&h->failed, true);
	return sto_err(errmsg, errlen, STORAGE_EFATAL, "%s: %s: the node must exit", what,
		       strerror(err));
}

static void seg_release(struct sto_wal_seg *s)
{
	if (s->fd >= 0)
		close(s->fd);
	free(s->off);
	free(s->term);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static int seg_reserve(struct sto_wal_seg *s, uint64_t extra)
{
	if (s->n + extra <= s->cap)
		return 0;
	uint64_t cap = s->cap < WAL_INDEX_MIN_CAP ? WAL_INDEX_MIN_CAP : s->cap;
	while (cap < s->n + extra)
		cap *= 2;
	uint64_t *off = realloc(s->off, cap * sizeof(*off));
	if (off == NULL)
		return STORAGE_ENOMEM;
	s->off = off;
	uint64_t *term = realloc(s->term, cap * sizeof(*term));
	if (term == NULL)
		return STORAGE_ENOMEM;
	s->term = term;
	s->cap = cap;
	return 0;
}

static uint64_t wal_last(const struct sto_wal *w)
{
	if (w->n_segs == 0)
		return 0;
	const struct sto_wal_seg *s = &w->segs[w->n_segs - 1];
	return s->first + s->n - 1;
}

static bool wal_empty(const struct sto_wal *w)
{
	for (size_t i = 0; i < w->n_segs; i++)
		if (w->segs[i].n > 0)
			return false;
	return true;
}

static uint64_t wal_first(const struct sto_wal *w)
{
	for (size_t i = 0; i < w->n_segs; i++)
		if (w->segs[i].n > 0)
			return w->segs[i].first;
	return 0;
}

/* The segment holding `index` (which must be in the WAL), and the record's slot in it. */
static struct sto_wal_seg *find_seg(struct sto_wal *w, uint64_t index, uint64_t *slot)
{
	for (size_t i = w->n_segs; i-- > 0;) {
		struct sto_wal_seg *s = &w->segs[i];
		if (s->n > 0 && index >= s->first && index < s->first + s->n) {
			*slot = index - s->first;
			return s;
		}
	}
	return NULL;
}

static bool wal_has(struct sto_wal *w, uint64_t index)
{
	uint64_t slot;
	return index != 0 && find_seg(w, index, &slot) != NULL;
}

static uint64_t wal_term_of(struct sto_wal *w, uint64_t index)
{
	uint64_t slot;
	struct sto_wal_seg *s = find_seg(w, index, &slot);
	return s != NULL ? s->term[slot] : 0;
}

/* The logical log: [first, last], where entries below `first` still in the files are dead. */
static void bounds_locked(struct sto_wal *w, struct sto_log_bounds *b)
{
	b->first = w->first;
	b->prev_term = w->prev_term;
	uint64_t last = wal_last(w);
	if (wal_empty(w) || last < w->first) {
		b->last = w->first - 1;
		b->last_term = w->prev_term;
	} else {
		b->last = last;
		b->last_term = wal_term_of(w, last);
	}
}

void sto_wal_bounds(storage_t *h, struct sto_log_bounds *b)
{
	pthread_mutex_lock(&h->wal.mu);
	bounds_locked(&h->wal, b);
	pthread_mutex_unlock(&h->wal.mu);
}

static int fsync_dir(storage_t *h, char *errmsg, size_t errlen)
{
	if (sync_fd(h, h->wal.dir_fd, true) != 0)
		return wal_fatal(h, errmsg, errlen, "cannot flush the wal directory", errno);
	return 0;
}

/* Removes segments [lo, hi), the last one first (for a suffix, a crash halfway then leaves a
 * contiguous log; for a prefix, the gap a crash may leave is below the log's start, and open
 * drops such dead segments unread). Called with mu held. */
static void drop_segs(storage_t *h, size_t lo, size_t hi)
{
	struct sto_wal *w = &h->wal;
	char path[WAL_PATH_MAX];
	for (size_t i = hi; i-- > lo;) {
		if (seg_path(w, path, w->segs[i].seq, NULL, 0) == 0)
			(void)unlink(path);
		seg_release(&w->segs[i]);
	}
	if (w->n_segs > hi)
		memmove(&w->segs[lo], &w->segs[hi], (w->n_segs - hi) * sizeof(w->segs[0]));
	w->n_segs -= hi - lo;
}

/* ---- reading a segment at open ------------------------------------------------------------ */

struct seg_scan {
	uint8_t *data;
	size_t size;
	uint64_t seq;
	uint64_t first;
	bool header_ok;
};

static int read_file(int fd, uint8_t **out, size_t *size, char *errmsg, size_t errlen,
		     const char *path)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot stat %s: %s", path,
			       strerror(errno));
	size_t n = (size_t)st.st_size;
	uint8_t *p = malloc(n > 0 ? n : 1);
	if (p == NULL)
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory reading %s", path);
	size_t got = 0;
	while (got < n) {
		ssize_t r = pread(fd, p + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			free(p);
			return sto_err(errmsg, errlen, STORAGE_EIO, "cannot read %s: %s", path,
				       r < 0 ? strerror(errno) : "short read");
		}
		got += (size_t)r;
	}
	*out = p;
	*size = n;
	return 0;
}

/* The running CRC state after a segment's nonce: where every record's CRC starts. */
static uint32_t nonce_seed(struct sto_wal *w, const uint8_t *nonce)
{
	return sto_crc32c_extend(w->crc_table, WAL_CRC_INIT, nonce, STO_U64_SIZE);
}

static uint32_t rec_crc(struct sto_wal *w, uint32_t seed, const uint8_t *p, size_t n)
{
	return sto_crc32c_extend(w->crc_table, seed, p, n) ^ WAL_CRC_INIT;
}

static bool header_valid(struct sto_wal *w, const uint8_t *p, size_t size, uint64_t seq,
			 uint64_t *first, uint32_t *seed)
{
	if (size < WAL_SEG_HDR_SIZE || memcmp(p, WAL_MAGIC, WAL_MAGIC_SIZE) != 0)
		return false;
	if (sto_get_u32(p + 8) != WAL_VERSION)
		return false;
	if (sto_crc32c(w->crc_table, p + WAL_HDR_CRC_FROM, WAL_SEG_HDR_SIZE - WAL_HDR_CRC_FROM) !=
	    sto_get_u32(p + 12))
		return false;
	if (sto_get_u64(p + 16) != seq)
		return false;
	*first = sto_get_u64(p + 24);
	*seed = nonce_seed(w, p + 32);
	return *first != 0;
}

/* Decodes the record at `off` of a segment image; false if it is not a valid record at
 * `index` with a term >= min_term. */
static bool record_at(struct sto_wal *w, uint32_t seed, const uint8_t *p, size_t size, size_t off,
		      uint64_t index, uint64_t min_term, struct storage_entry *e, size_t *rec_size)
{
	if (size - off < WAL_REC_HDR_SIZE)
		return false;
	const uint8_t *r = p + off;
	uint32_t len = sto_get_u32(r + 4);
	if (len > STORAGE_MAX_ENTRY_SIZE || size - off - WAL_REC_HDR_SIZE < len)
		return false;
	if (rec_crc(w, seed, r + 4, WAL_REC_HDR_SIZE - 4 + len) != sto_get_u32(r))
		return false;
	e->index = sto_get_u64(r + 8);
	e->term = sto_get_u64(r + 16);
	e->type = r[24];
	e->data = r + WAL_REC_HDR_SIZE;
	e->len = len;
	*rec_size = WAL_REC_HDR_SIZE + len;
	return e->index == index && e->term >= min_term && e->term != 0;
}

/* After a bad record at `off` (which should be entry `index`): does a later batch start
 * further on (a valid record, of a higher index, that is the first of its batch)? Then the
 * damaged batch had been flushed and acknowledged before that one was written. */
static bool later_batch_follows(struct sto_wal *w, uint32_t seed, const uint8_t *p, size_t size,
				size_t off, uint64_t index)
{
	uint64_t max_index = index + (size - off) / WAL_REC_HDR_SIZE;
	for (size_t o = off + 1; o + WAL_REC_HDR_SIZE <= size; o++) {
		uint64_t idx = sto_get_u64(p + o + 8);
		if (idx <= index || idx > max_index || (p[o + 25] & WAL_FLAG_BATCH_FIRST) == 0)
			continue;
		struct storage_entry e;
		size_t rec_size;
		if (record_at(w, seed, p, size, o, idx, 0, &e, &rec_size))
			return true;
	}
	return false;
}

/* Opens segment `seq`, checks its header, and loads its index. A bad header or record ends the
 * log there if the segment is the last one (`last`): the file is cut; elsewhere it is
 * STORAGE_ECORRUPT. *gone is set when the last segment had no valid header and was removed. */
static int load_seg(storage_t *h, uint64_t seq, bool last, uint64_t expect_first,
		    uint64_t min_term, bool *gone, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	char path[WAL_PATH_MAX];
	struct sto_wal_seg s = {.fd = -1, .seq = seq};
	uint32_t seed = 0;
	uint8_t *img = NULL;
	size_t size = 0;
	int rv;

	*gone = false;
	rv = seg_path(w, path, seq, errmsg, errlen);
	if (rv != 0)
		return rv;
	s.fd = open(path, O_RDWR | O_CLOEXEC);
	if (s.fd < 0)
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot open %s: %s", path,
			       strerror(errno));
	rv = read_file(s.fd, &img, &size, errmsg, errlen, path);
	if (rv != 0)
		goto err;
	bool hdr_ok = header_valid(w, img, size, seq, &s.first, &seed);
	if (hdr_ok && expect_first != 0 && s.first != expect_first) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			     "%s starts at index %llu but the previous segment ends at %llu: "
			     "entries are missing",
			     path, (unsigned long long)s.first,
			     (unsigned long long)expect_first - 1);
		goto err;
	}
	if (!hdr_ok) {
		/* The header is flushed before any record is written: a bad one with data after
		 * it is damage, not a creation cut short. */
		if (!last || (size > WAL_SEG_HDR_SIZE &&
			      !all_zero(img + WAL_SEG_HDR_SIZE, size - WAL_SEG_HDR_SIZE))) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "%s: bad segment header",
				     path);
			goto err;
		}
		/* A segment whose creation was cut short by a crash: it never held anything. */
		free(img);
		seg_release(&s);
		if (unlink(path) != 0)
			return sto_err(errmsg, errlen, STORAGE_EIO, "cannot remove %s: %s", path,
				       strerror(errno));
		*gone = true;
		return 0;
	}
	size_t off = WAL_SEG_HDR_SIZE;
	while (off < size) {
		struct storage_entry e;
		size_t rec_size;
		if (!record_at(w, seed, img, size, off, s.first + s.n, min_term, &e, &rec_size)) {
			if (all_zero(img + off, size - off))
				break; /* the preallocated rest of the segment */
			if (!last) {
				rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
					     "%s: bad record at offset %zu (index %llu)", path, off,
					     (unsigned long long)(s.first + s.n));
				goto err;
			}
			if (later_batch_follows(w, seed, img, size, off, s.first + s.n)) {
				rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
					     "%s: bad record at offset %zu (index %llu) followed by "
					     "later batches",
					     path, off, (unsigned long long)(s.first + s.n));
				goto err;
			}
			/* The torn tail of the last batch, never acknowledged: cut it. */
			if (ftruncate(s.fd, (off_t)off) != 0 || sync_fd(h, s.fd, true) != 0) {
				rv = sto_err(errmsg, errlen, STORAGE_EIO, "cannot cut %s at %zu: %s",
					     path, off, strerror(errno));
				goto err;
			}
			preallocate(w, s.fd, off);
			break;
		}
		if (seg_reserve(&s, 1) != 0) {
			rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
			goto err;
		}
		s.off[s.n] = off;
		s.term[s.n] = e.term;
		s.n++;
		min_term = e.term;
		off += rec_size;
	}
	s.size = off < size ? off : size;
	s.seed = seed;
	free(img);
	if (w->n_segs == w->cap_segs) {
		size_t cap = w->cap_segs ? w->cap_segs * 2 : 8;
		struct sto_wal_seg *ns = realloc(w->segs, cap * sizeof(*ns));
		if (ns == NULL) {
			seg_release(&s);
			return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		}
		w->segs = ns;
		w->cap_segs = cap;
	}
	w->segs[w->n_segs++] = s;
	return 0;
err:
	free(img);
	seg_release(&s);
	return rv;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Sequence numbers of the segment files, sorted. */
static int list_segs(struct sto_wal *w, uint64_t **out, size_t *n, char *errmsg, size_t errlen)
{
	DIR *d = opendir(w->dir);
	if (d == NULL)
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot list %s: %s", w->dir,
			       strerror(errno));
	uint64_t *v = NULL;
	size_t len = 0, cap = 0;
	struct dirent *de;
	int rv = 0;
	while ((de = readdir(d)) != NULL) {
		uint64_t seq;
		if (!parse_name(de->d_name, &seq))
			continue;
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			uint64_t *nv = realloc(v, cap * sizeof(*nv));
			if (nv == NULL) {
				rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
				break;
			}
			v = nv;
		}
		v[len++] = seq;
	}
	closedir(d);
	if (rv != 0) {
		free(v);
		return rv;
	}
	if (len > 1)
		qsort(v, len, sizeof(*v), cmp_u64);
	*out = v;
	*n = len;
	return 0;
}

bool sto_wal_has_segments(const char *dir)
{
	char sub[WAL_PATH_MAX];
	int n = snprintf(sub, sizeof(sub), "%s/%s", dir, WAL_DIR);
	if (n < 0 || (size_t)n >= sizeof(sub))
		return false;
	DIR *d = opendir(sub);
	if (d == NULL)
		return false;
	bool found = false;
	struct dirent *de;
	uint64_t seq;
	while (!found && (de = readdir(d)) != NULL)
		found = parse_name(de->d_name, &seq);
	closedir(d);
	return found;
}

/* The first index a segment says it starts at, from its header alone (0 if unreadable). */
static uint64_t peek_first(struct sto_wal *w, uint64_t seq)
{
	char path[WAL_PATH_MAX];
	uint8_t hdr[WAL_SEG_HDR_SIZE];
	uint64_t first = 0;
	uint32_t seed;
	if (seg_path(w, path, seq, NULL, 0) != 0)
		return 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    !header_valid(w, hdr, sizeof(hdr), seq, &first, &seed))
		first = 0;
	close(fd);
	return first;
}

int sto_wal_open(storage_t *h, uint64_t first, uint64_t prev_term, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	char sub[WAL_PATH_MAX];
	uint64_t *seqs = NULL;
	size_t n = 0;
	int rv;

	w->dir_fd = -1;
	w->first = first;
	w->prev_term = prev_term;
	sto_crc32c_table(w->crc_table);
	int len = snprintf(sub, sizeof(sub), "%s/%s", h->dir, WAL_DIR);
	if (len < 0 || (size_t)len >= sizeof(sub))
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "path too long: %s", h->dir);
	w->dir = strdup(sub);
	if (w->dir == NULL)
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	bool created = false;
	if (mkdir(w->dir, WAL_DIR_MODE) == 0)
		created = true;
	else if (errno != EEXIST)
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot create %s: %s", w->dir,
			       strerror(errno));
	w->dir_fd = open(w->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (w->dir_fd < 0)
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot open %s: %s", w->dir,
			       strerror(errno));
	if (created) {
		int pfd = open(h->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (pfd >= 0) {
			int rc = sync_fd(h, pfd, true);
			close(pfd);
			if (rc != 0)
				return sto_err(errmsg, errlen, STORAGE_EIO, "cannot flush %s: %s",
					       h->dir, strerror(errno));
		}
	}
	rv = list_segs(w, &seqs, &n, errmsg, errlen);
	if (rv != 0)
		return rv;
	/* Segments wholly before the snapshot point first - 1 are dead (a compaction deletes
	 * them after committing log_start; a crash may have left some): drop them unread.
	 * Segment k is wholly dead when segment k+1 starts at or before first - 1. The one
	 * holding first - 1 stays: sto_wal_start_at() checks its term. */
	size_t start = 0;
	for (size_t k = 0; k + 1 < n; k++) {
		uint64_t next_first = peek_first(w, seqs[k + 1]);
		if (next_first != 0 && next_first < first)
			start = k + 1;
	}
	for (size_t k = 0; k < start; k++) {
		if (seg_path(w, sub, seqs[k], errmsg, errlen) == 0)
			(void)unlink(sub);
	}
	uint64_t expect = 0, min_term = 0;
	for (size_t k = start; k < n; k++) {
		bool gone;
		rv = load_seg(h, seqs[k], k + 1 == n, expect, min_term, &gone, errmsg, errlen);
		if (rv != 0)
			goto out;
		if (gone)
			break;
		struct sto_wal_seg *s = &w->segs[w->n_segs - 1];
		expect = s->first + s->n;
		if (s->n > 0)
			min_term = s->term[s->n - 1];
	}
	w->next_seq = n > 0 ? seqs[n - 1] + 1 : 1;
	if (!wal_empty(w) && wal_first(w) > first) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			     "the log in %s starts at index %llu but entries from %llu are needed",
			     w->dir, (unsigned long long)wal_first(w), (unsigned long long)first);
		goto out;
	}
	rv = sto_wal_start_at(h, first, prev_term, errmsg, errlen);
out:
	free(seqs);
	return rv;
}

void sto_wal_close(storage_t *h)
{
	struct sto_wal *w = &h->wal;
	for (size_t i = 0; i < w->n_segs; i++)
		seg_release(&w->segs[i]);
	free(w->segs);
	w->segs = NULL;
	w->n_segs = w->cap_segs = 0;
	if (w->dir_fd >= 0)
		close(w->dir_fd);
	w->dir_fd = -1;
	free(w->dir);
	w->dir = NULL;
	sto_buf_free(&w->buf);
}

/* Figure 5.3 steps 6-7, and compaction: the log now starts at `first` with `prev_term` before
 * it. If the WAL holds entry first - 1 with that term, or starts right at `first`, its suffix
 * is kept and the segments wholly before it are deleted; otherwise the whole WAL is discarded.
 * Run after log_start was made durable, and again at every open. */
int sto_wal_start_at(storage_t *h, uint64_t first, uint64_t prev_term, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	bool keep;

	if (wal_empty(w))
		keep = false;
	else if (wal_has(w, first - 1))
		keep = wal_term_of(w, first - 1) == prev_term;
	else
		keep = wal_first(w) == first;
	pthread_mutex_lock(&w->mu);
	w->first = first;
	w->prev_term = prev_term;
	if (keep) {
		/* Segments all of whose entries are before first - 1, except the active one. The
		 * one holding first - 1 stays, so that "the files start right at `first`" only
		 * ever means a log restarted there, never a checked entry deleted. */
		size_t dead = 0;
		while (dead + 1 < w->n_segs && w->segs[dead + 1].first < first)
			dead++;
		drop_segs(h, 0, dead);
	} else {
		drop_segs(h, 0, w->n_segs);
	}
	pthread_mutex_unlock(&w->mu);
	return keep ? 0 : fsync_dir(h, errmsg, errlen);
}

/* ---- appending ------------------------------------------------------------------------------ */

/* Eight unpredictable bytes (getrandom; if it fails, the clock and the pid: what matters is
 * that a client cannot guess them). */
static void make_nonce(uint8_t *out, uint64_t seq)
{
	if (getrandom(out, STO_U64_SIZE, 0) == (ssize_t)STO_U64_SIZE)
		return;
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	uint64_t x = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 16) ^
		     seq;
	sto_put_u64(out, x * 0x9e3779b97f4a7c15ull);
}

/* Creates the next segment, starting at `first`, and makes it the active one. */
static int new_seg(storage_t *h, uint64_t first, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	char path[WAL_PATH_MAX];
	uint8_t hdr[WAL_SEG_HDR_SIZE];
	struct sto_wal_seg s = {.fd = -1, .seq = w->next_seq, .first = first};
	int rv = seg_path(w, path, s.seq, errmsg, errlen);
	if (rv != 0)
		return rv;
	if (w->n_segs == w->cap_segs) {
		size_t cap = w->cap_segs ? w->cap_segs * 2 : 8;
		pthread_mutex_lock(&w->mu); /* readers index the array */
		struct sto_wal_seg *ns = realloc(w->segs, cap * sizeof(*ns));
		if (ns != NULL) {
			w->segs = ns;
			w->cap_segs = cap;
		}
		pthread_mutex_unlock(&w->mu);
		if (ns == NULL)
			return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	s.fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, STO_FILE_MODE);
	if (s.fd < 0)
		return sto_err(errmsg, errlen,
			       errno == ENOSPC || errno == EDQUOT ? STORAGE_ENOSPC : STORAGE_EIO,
			       "cannot create %s: %s", path, strerror(errno));
	memcpy(hdr, WAL_MAGIC, WAL_MAGIC_SIZE);
	sto_put_u32(hdr + 8, WAL_VERSION);
	sto_put_u64(hdr + 16, s.seq);
	sto_put_u64(hdr + 24, first);
	make_nonce(hdr + 32, s.seq);
	sto_put_u32(hdr + 12, sto_crc32c(w->crc_table, hdr + WAL_HDR_CRC_FROM,
					 WAL_SEG_HDR_SIZE - WAL_HDR_CRC_FROM));
	s.seed = nonce_seed(w, hdr + 32);
	ssize_t wr = pwrite(s.fd, hdr, sizeof(hdr), 0);
	if (wr != (ssize_t)sizeof(hdr)) {
		int err = wr < 0 ? errno : ENOSPC;
		close(s.fd);
		unlink(path);
		return sto_err(errmsg, errlen,
			       err == ENOSPC || err == EDQUOT || err == EFBIG ? STORAGE_ENOSPC
									      : STORAGE_EIO,
			       "cannot write %s: %s", path, strerror(err));
	}
	preallocate(w, s.fd, WAL_SEG_HDR_SIZE);
	if (sync_fd(h, s.fd, true) != 0) {
		int err = errno;
		close(s.fd);
		return wal_fatal(h, errmsg, errlen, "cannot flush a new wal segment", err);
	}
	rv = fsync_dir(h, errmsg, errlen);
	if (rv != 0) {
		close(s.fd);
		return rv;
	}
	s.size = WAL_SEG_HDR_SIZE;
	w->next_seq++;
	if (w->n_segs > 0) {
		/* The finished segment gives back its unused preallocated space (a crash that
		 * loses this leaves zeros, which read as the end of the segment). */
		struct sto_wal_seg *prev = &w->segs[w->n_segs - 1];
		(void)ftruncate(prev->fd, (off_t)prev->size);
	}
	pthread_mutex_lock(&w->mu);
	w->segs[w->n_segs++] = s;
	pthread_mutex_unlock(&w->mu);
	return 0;
}

/* Cuts the WAL so that its last entry is from - 1 (§3.5: a conflicting suffix goes). The cut
 * is on disk before this returns, so nothing written after it can be followed by stale
 * records after a crash. */
static int cut_from(storage_t *h, uint64_t from, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	uint64_t slot;
	struct sto_wal_seg *s = find_seg(w, from, &slot);
	if (s == NULL)
		return 0;
	size_t k = (size_t)(s - w->segs);
	bool whole = slot == 0 && k > 0; /* the cut is a segment boundary */
	size_t drop_from = whole ? k : k + 1;
	if (drop_from < w->n_segs) {
		pthread_mutex_lock(&w->mu);
		drop_segs(h, drop_from, w->n_segs);
		pthread_mutex_unlock(&w->mu);
		/* Durable before the cut below: a crash between the two then leaves the old
		 * tail of segment k, a prefix of the old log, never a cut segment followed by
		 * segments that no longer follow it. */
		int rv = fsync_dir(h, errmsg, errlen);
		if (rv != 0)
			return rv;
	}
	if (whole) {
		/* The previous segment is active again: give it room (its tail was trimmed). */
		preallocate(w, w->segs[k - 1].fd, w->segs[k - 1].size);
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	s = &w->segs[k];
	s->n = slot;
	s->size = slot == 0 ? WAL_SEG_HDR_SIZE : s->off[slot];
	pthread_mutex_unlock(&w->mu);
	if (ftruncate(s->fd, (off_t)s->size) != 0 || sync_fd(h, s->fd, true) != 0)
		return wal_fatal(h, errmsg, errlen, "cannot cut the log", errno);
	preallocate(w, s->fd, s->size); /* zeros after the cut: no stale records */
	return 0;
}

int sto_wal_check_append(storage_t *h, uint64_t truncate_from, const struct storage_entry *e,
			 size_t n, uint64_t applied, bool *rewrites, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	bounds_locked(&h->wal, &b); /* only writers change it, and this is one */
	*rewrites = false;
	if (truncate_from != 0) {
		/* §3.6: an applied entry is committed and a committed entry never changes. */
		if (truncate_from <= applied)
			return sto_err(errmsg, errlen, STORAGE_EINVAL,
				       "persist: cannot truncate from %llu, entries up to %llu "
				       "are applied",
				       (unsigned long long)truncate_from,
				       (unsigned long long)applied);
		if (truncate_from < b.first)
			return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
				       "persist: cannot truncate from %llu, first index is %llu",
				       (unsigned long long)truncate_from,
				       (unsigned long long)b.first);
		if (truncate_from <= b.last) {
			*rewrites = true;
			b.last = truncate_from - 1;
		}
	}
	if (n == 0)
		return 0;
	if (e[0].index < b.first)
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "persist: entry %llu is below first index %llu",
			       (unsigned long long)e[0].index, (unsigned long long)b.first);
	if (e[0].index > b.last + 1)
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu leaves a gap after last index %llu",
			       (unsigned long long)e[0].index, (unsigned long long)b.last);
	if (e[0].index <= applied)
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu would replace an applied entry (applied %llu)",
			       (unsigned long long)e[0].index, (unsigned long long)applied);
	if (e[0].index <= b.last)
		*rewrites = true;
	uint64_t prev_term =
	    e[0].index - 1 == b.first - 1 ? b.prev_term : wal_term_of(&h->wal, e[0].index - 1);
	if (e[0].term < prev_term)
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "persist: entry %llu has term %llu below the previous entry's %llu",
			       (unsigned long long)e[0].index, (unsigned long long)e[0].term,
			       (unsigned long long)prev_term);
	return 0;
}

int sto_wal_append(storage_t *h, uint64_t truncate_from, const struct storage_entry *e, size_t n,
		   char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	int rv;

	if (atomic_load(&h->failed))
		return sto_err(errmsg, errlen, STORAGE_EFATAL,
			       "an earlier write failed: the handle is unusable, exit");
	if (truncate_from != 0) {
		rv = cut_from(h, truncate_from, errmsg, errlen);
		if (rv != 0)
			return rv;
	}
	if (n == 0)
		return 0;
	if (wal_has(w, e[0].index)) {
		rv = cut_from(h, e[0].index, errmsg, errlen);
		if (rv != 0)
			return rv;
	}
	struct sto_wal_seg *s = w->n_segs > 0 ? &w->segs[w->n_segs - 1] : NULL;
	if (s != NULL && s->first + s->n != e[0].index) {
		/* The active segment does not end right before this batch: it holds only dead
		 * entries (the log restarted after a snapshot) or none. */
		pthread_mutex_lock(&w->mu);
		drop_segs(h, 0, w->n_segs);
		pthread_mutex_unlock(&w->mu);
		rv = fsync_dir(h, errmsg, errlen);
		if (rv != 0)
			return rv;
		s = NULL;
	}
	if (s == NULL || (s->n > 0 && s->size >= w->segment_size)) {
		rv = new_seg(h, e[0].index, errmsg, errlen);
		if (rv != 0)
			return rv;
		s = &w->segs[w->n_segs - 1];
	}
	size_t bytes = 0;
	for (size_t i = 0; i < n; i++)
		bytes += WAL_REC_HDR_SIZE + e[i].len;
	w->buf.len = 0;
	pthread_mutex_lock(&w->mu); /* readers index off[] and term[] */
	rv = seg_reserve(s, n);
	pthread_mutex_unlock(&w->mu);
	if (rv != 0 || sto_buf_reserve(&w->buf, bytes) != 0)
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	uint8_t *p = w->buf.p;
	for (size_t i = 0; i < n; i++) {
		sto_put_u32(p + 4, (uint32_t)e[i].len);
		sto_put_u64(p + 8, e[i].index);
		sto_put_u64(p + 16, e[i].term);
		p[24] = e[i].type;
		p[25] = (uint8_t)((i == 0 ? WAL_FLAG_BATCH_FIRST : 0u) |
				  (i + 1 == n ? WAL_FLAG_BATCH_END : 0u));
		p[26] = p[27] = 0;
		if (e[i].len > 0)
			memcpy(p + WAL_REC_HDR_SIZE, e[i].data, e[i].len);
		sto_put_u32(p, rec_crc(w, s->seed, p + 4, WAL_REC_HDR_SIZE - 4 + e[i].len));
		p += WAL_REC_HDR_SIZE + e[i].len;
	}
	unsigned countdown = atomic_load(&h->fail_commit_after);
	if (countdown > 0) {
		atomic_store(&h->fail_commit_after, countdown - 1);
		if (countdown == 1)
			return wal_fatal(h, errmsg, errlen, "log append failed (injected fault)",
					 EIO);
	}
	size_t done = 0;
	while (done < bytes) {
		ssize_t wr = pwrite(s->fd, w->buf.p + done, bytes - done, (off_t)(s->size + done));
		if (wr < 0 && errno == EINTR)
			continue;
		if (wr <= 0) {
			int err = wr < 0 ? errno : ENOSPC;
			/* Take the partial batch back out so that a retry appends cleanly. */
			if (ftruncate(s->fd, (off_t)s->size) != 0)
				return wal_fatal(h, errmsg, errlen, "cannot undo a failed append",
						 errno);
			preallocate(w, s->fd, s->size);
			/* EFBIG: a file size limit (RLIMIT_FSIZE, with SIGXFSZ ignored) */
			if (err == ENOSPC || err == EDQUOT || err == EFBIG)
				return sto_err(errmsg, errlen, STORAGE_ENOSPC,
					       "no space writing the log: %s", strerror(err));
			return wal_fatal(h, errmsg, errlen, "cannot write the log", err);
		}
		done += (size_t)wr;
	}
	if (sync_fd(h, s->fd, false) != 0)
		return wal_fatal(h, errmsg, errlen, "cannot flush the log", errno);
	pthread_mutex_lock(&w->mu);
	uint64_t off = s->size;
	for (size_t i = 0; i < n; i++) {
		s->off[s->n] = off;
		s->term[s->n] = e[i].term;
		s->n++;
		off += WAL_REC_HDR_SIZE + e[i].len;
	}
	s->size = off;
	pthread_mutex_unlock(&w->mu);
	if (w->buf.cap > WAL_BUF_KEEP)
		sto_buf_free(&w->buf); /* a catch-up burst: do not keep its buffer */
	return 0;
}

/* ---- reading -------------------------------------------------------------------------------- */

int sto_wal_term(storage_t *h, uint64_t index, uint64_t *term, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	struct sto_log_bounds b;
	int rv = 0;

	if (index == 0) {
		*term = 0;
		return 0;
	}
	pthread_mutex_lock(&w->mu);
	bounds_locked(w, &b);
	if (index == b.first - 1)
		*term = b.prev_term;
	else if (index < b.first)
		rv = sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			     "log index %llu compacted (first index %llu)",
			     (unsigned long long)index, (unsigned long long)b.first);
	else if (index > b.last)
		rv = sto_err(errmsg, errlen, STORAGE_EUNAVAIL,
			     "log index %llu beyond last index %llu", (unsigned long long)index,
			     (unsigned long long)b.last);
	else
		*term = wal_term_of(w, index);
	pthread_mutex_unlock(&w->mu);
	return rv;
}

/* Reads entry `i` into *buf (grown as needed) under the index lock, so that the writer cannot
 * close or cut its file meanwhile; the caller checks and uses it without the lock. */
static int read_one(struct sto_wal *w, uint64_t i, uint8_t **buf, size_t *cap, size_t *size,
		    uint64_t *term, uint32_t *seed, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	int rv = 0;

	pthread_mutex_lock(&w->mu);
	bounds_locked(w, &b);
	if (i < b.first) {
		rv = sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			     "log index %llu compacted (first index %llu)", (unsigned long long)i,
			     (unsigned long long)b.first);
		goto out;
	}
	if (i > b.last) {
		rv = sto_err(errmsg, errlen, STORAGE_EUNAVAIL, "log index %llu beyond last index %llu",
			     (unsigned long long)i, (unsigned long long)b.last);
		goto out;
	}
	uint64_t slot;
	struct sto_wal_seg *s = find_seg(w, i, &slot);
	if (s == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "log entry %llu missing",
			     (unsigned long long)i);
		goto out;
	}
	uint64_t end = slot + 1 < s->n ? s->off[slot + 1] : s->size;
	*size = (size_t)(end - s->off[slot]);
	*term = s->term[slot];
	*seed = s->seed;
	if (*size > *cap) {
		uint8_t *nb = realloc(*buf, *size);
		if (nb == NULL) {
			rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
			goto out;
		}
		*buf = nb;
		*cap = *size;
	}
	size_t got = 0;
	while (got < *size) {
		ssize_t r = pread(s->fd, *buf + got, *size - got, (off_t)(s->off[slot] + got));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rv = sto_err(errmsg, errlen, STORAGE_EIO, "cannot read log entry %llu: %s",
				     (unsigned long long)i, r < 0 ? strerror(errno) : "short read");
			goto out;
		}
		got += (size_t)r;
	}
out:
	pthread_mutex_unlock(&w->mu);
	return rv;
}

/* The lock is not held while `cb` runs: it may call storage again. */
int sto_wal_read(storage_t *h, uint64_t lo, uint64_t hi, size_t max_bytes, storage_entry_cb cb,
		 void *arg, char *errmsg, size_t errlen)
{
	struct sto_wal *w = &h->wal;
	struct sto_log_bounds b;
	uint8_t *buf = NULL;
	size_t cap = 0, bytes = 0;
	int rv = 0;

	sto_wal_bounds(h, &b);
	if (lo < b.first)
		return sto_err(errmsg, errlen, STORAGE_ECOMPACTED,
			       "log index %llu compacted (first index %llu)", (unsigned long long)lo,
			       (unsigned long long)b.first);
	if (hi > b.last + 1)
		return sto_err(errmsg, errlen, STORAGE_EUNAVAIL,
			       "log range ends at %llu, beyond last index %llu",
			       (unsigned long long)hi - 1, (unsigned long long)b.last);
	for (uint64_t i = lo; i < hi; i++) {
		size_t size = 0;
		uint64_t term = 0;
		uint32_t seed = 0;
		rv = read_one(w, i, &buf, &cap, &size, &term, &seed, errmsg, errlen);
		if (rv != 0)
			break;
		struct storage_entry e;
		size_t rec_size;
		if (!record_at(w, seed, buf, size, 0, i, term, &e, &rec_size) || rec_size != size ||
		    e.term != term) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				     "log entry %llu is corrupt (bad checksum or header)",
				     (unsigned long long)i);
			break;
		}
		if (max_bytes != 0 && i > lo && (e.len > max_bytes || bytes > max_bytes - e.len))
			break;
		bytes += e.len;
		rv = cb(&e, arg);
		if (rv != 0)
			break;
	}
	free(buf);
	return rv;
}
