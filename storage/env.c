/* Opening a data directory: lock, LMDB environment, format marker, sanity checks, commits. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "storage/internal.h"

#define STO_PATH_MAX	4096u
#define STO_DIR_MODE	0700
#define STO_PID_MAX	32u /* room for a decimal pid and a newline */
#define LMDB_META_PAGES 2u  /* LMDB keeps two meta pages at the head of data.mdb */

static int path_join(char *out, const char *dir, const char *name, char *errmsg, size_t errlen)
{
	int n = snprintf(out, STO_PATH_MAX, "%s/%s", dir, name);

	if (n < 0 || (size_t)n >= STO_PATH_MAX) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "path too long: %s/%s", dir, name);
	}
	return 0;
}

static int make_dir(const char *dir, char *errmsg, size_t errlen)
{
	struct stat st;

	if (mkdir(dir, STO_DIR_MODE) == 0) {
		return 0;
	}
	if (errno != EEXIST) {
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot create data directory %s: %s",
			       dir, strerror(errno));
	}
	if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
		return sto_err(errmsg, errlen, STORAGE_EIO, "%s exists and is not a directory",
			       dir);
	}
	return 0;
}

/* Take an exclusive flock() on <dir>/cairn.lock. flock locks belong to the open file
 * description, so a second open() in the same process conflicts too (fcntl locks would not),
 * and so does a forked child that opens the file itself. LMDB's own lock.mdb only coordinates
 * readers and writers; it does not stop a second process from opening the environment. */
static int lock_dir(storage_t *h, char *errmsg, size_t errlen)
{
	char path[STO_PATH_MAX];
	char pid[STO_PID_MAX];
	ssize_t n;
	int rv;
	int len;

	rv = path_join(path, h->dir, STO_LOCK_FILE, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	h->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, STO_FILE_MODE);
	if (h->lock_fd < 0) {
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot open %s: %s", path,
			       strerror(errno));
	}
	if (flock(h->lock_fd, LOCK_EX | LOCK_NB) != 0) {
		rv = errno == EWOULDBLOCK ? STORAGE_EBUSY : STORAGE_EIO;
		if (rv == STORAGE_EBUSY) {
			n = pread(h->lock_fd, pid, sizeof(pid) - 1, 0);
			pid[n > 0 ? n : 0] = '\0';
			pid[strcspn(pid, "\n")] = '\0';
			sto_err(errmsg, errlen, rv,
				"data directory %s in use (locked by pid %s via %s)", h->dir,
				pid[0] != '\0' ? pid : "?", path);
		} else {
			sto_err(errmsg, errlen, rv, "cannot lock %s: %s", path, strerror(errno));
		}
		goto err_after_open;
	}
	/* The pid is only a hint for the message above; failing to write it is harmless. */
	len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
	if (ftruncate(h->lock_fd, 0) == 0 && len > 0) {
		n = pwrite(h->lock_fd, pid, (size_t)len, 0);
		(void)n;
	}
	return 0;

err_after_open:
	close(h->lock_fd);
	h->lock_fd = -1;
	return rv;
}

/* A data.mdb of zero bytes would be silently re-initialized by LMDB as an empty database. */
static int check_data_file_before(storage_t *h, char *errmsg, size_t errlen)
{
	char path[STO_PATH_MAX];
	struct stat st;
	int rv;

	rv = path_join(path, h->dir, STO_DATA_FILE, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	if (stat(path, &st) != 0) {
		if (errno == ENOENT && sto_wal_has_segments(h->dir)) {
			/* data.mdb deleted beside its log: the term and vote that went with the log
			 * are gone, and a member that forgot its vote may vote twice in a term. */
			return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				       "%s has no data.mdb but %s/wal holds a log: the term and vote "
				       "that went with it are lost; remove wal/ too to start empty",
				       h->dir, h->dir);
		}
		if (errno == ENOENT) {
			return 0;
		}
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot stat %s: %s", path,
			       strerror(errno));
	}
	if (!S_ISREG(st.st_mode)) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "%s is not a regular file", path);
	}
	if (st.st_size == 0) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			       "%s is empty (truncated); refusing to re-initialize it", path);
	}
	return 0;
}

/* LMDB maps the file and would die with SIGBUS on pages past its end: refuse a file shorter
 * than the pages its meta page says are in use. */
static int check_data_file_after(storage_t *h, char *errmsg, size_t errlen)
{
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	int fd;
	int rc;
	uint64_t need;

	rc = mdb_env_info(h->env, &info);
	if (rc == 0) {
		rc = mdb_env_stat(h->env, &st);
	}
	if (rc == 0) {
		rc = mdb_env_get_fd(h->env, &fd);
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot inspect data.mdb");
	}
	if (fstat(fd, &fst) != 0) {
		return sto_err(errmsg, errlen, STORAGE_EIO, "cannot stat data.mdb: %s",
			       strerror(errno));
	}
	need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
	if (need < (uint64_t)LMDB_META_PAGES * st.ms_psize) {
		need = (uint64_t)LMDB_META_PAGES * st.ms_psize;
	}
	if ((uint64_t)fst.st_size < need) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			       "%s/%s is truncated: %lld bytes, but its meta page uses %llu",
			       h->dir, STO_DATA_FILE, (long long)fst.st_size,
			       (unsigned long long)need);
	}
	if ((size_t)info.me_mapsize < need) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL,
			       "map size %zu is smaller than the data file (%llu bytes)",
			       (size_t)info.me_mapsize, (unsigned long long)need);
	}
	return 0;
}

static int open_db(MDB_txn *txn, const char *name, MDB_dbi *dbi, char *errmsg, size_t errlen)
{
	int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);

	if (rc != 0) {
		return sto_err(errmsg, errlen, sto_from_mdb(rc), "cannot open sub-database %s: %s",
			       name, mdb_strerror(rc));
	}
	return 0;
}

static int is_fresh(storage_t *h, MDB_txn *txn, bool *fresh, char *errmsg, size_t errlen)
{
	MDB_dbi dbis[] = {h->dbi_log, h->dbi_meta, h->dbi_kv, h->dbi_sessions, h->dbi_session_lru};
	MDB_stat st;
	size_t i;
	int rc;

	*fresh = true;
	for (i = 0; i < sizeof(dbis) / sizeof(dbis[0]); i++) {
		rc = mdb_stat(txn, dbis[i], &st);
		if (rc != 0) {
			return sto_mdb_err(errmsg, errlen, rc, "cannot stat sub-database");
		}
		if (st.ms_entries != 0) {
			*fresh = false;
		}
	}
	return 0;
}

/* Decode every meta record once at open, so that corruption shows up here rather than later. */
static int check_meta(storage_t *h, MDB_txn *txn, char *errmsg, size_t errlen)
{
	static const char *const pairs[] = {STO_META_HARD_STATE, STO_META_APPLIED,
					    STO_META_LOG_START};
	uint64_t a;
	uint64_t b;
	MDB_val k;
	MDB_val v;
	size_t i;
	int rv;
	int rc;

	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		rv = sto_meta_get_pair(h, txn, pairs[i], 0, 0, &a, &b, errmsg, errlen);
		if (rv != 0) {
			return rv;
		}
	}
	rv = sto_meta_get_u64(h, txn, STO_META_REVISION, &a, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	k.mv_data = (void *)STO_META_CONF;
	k.mv_size = strlen(STO_META_CONF);
	rc = mdb_get(txn, h->dbi_meta, &k, &v);
	if (rc == 0 && (v.mv_size < STO_CONF_HDR_SIZE ||
			v.mv_size - STO_CONF_HDR_SIZE > STORAGE_MAX_CONF_SIZE)) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT, "meta record %s is %zu bytes",
			       STO_META_CONF, v.mv_size);
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read meta");
	}
	return 0;
}

static int check_format(storage_t *h, MDB_txn *txn, char *errmsg, size_t errlen)
{
	uint8_t buf[STO_U32_SIZE];
	uint32_t version;
	bool fresh;
	MDB_val k;
	MDB_val v;
	int rv;
	int rc;

	k.mv_data = (void *)STO_META_FORMAT;
	k.mv_size = strlen(STO_META_FORMAT);
	rc = mdb_get(txn, h->dbi_meta, &k, &v);
	if (rc == MDB_NOTFOUND) {
		rv = is_fresh(h, txn, &fresh, errmsg, errlen);
		if (rv != 0) {
			return rv;
		}
		if (!fresh) {
			return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				       "%s holds data but no format marker", h->dir);
		}

		sto_put_u32(buf, STORAGE_FORMAT_VERSION);
		v.mv_data = buf;
		v.mv_size = sizeof(buf);
		rc = mdb_put(txn, h->dbi_meta, &k, &v, 0);
		if (rc != 0) {
			return sto_mdb_err(errmsg, errlen, rc, "cannot write the format marker");
		}
		return 0;
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read the format marker");
	}
	if (v.mv_size != STO_U32_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			       "format marker in %s is %zu bytes, expected %u", h->dir, v.mv_size,
			       STO_U32_SIZE);
	}
	version = sto_get_u32(v.mv_data);
	if (version > STORAGE_FORMAT_VERSION) {
		return sto_err(errmsg, errlen, STORAGE_EFORMAT,
			       "data directory %s has format %u, newer than this build supports "
			       "(%u): upgrade cairnd",
			       h->dir, version, STORAGE_FORMAT_VERSION);
	}
	if (version == STORAGE_FORMAT_VERSION - 1) {
		h->migrate_log = true; /* format 1: the log is in LMDB; moved after open */
		return 0;
	}
	if (version != STORAGE_FORMAT_VERSION) {
		return sto_err(errmsg, errlen, STORAGE_EFORMAT,
			       "data directory %s has unknown format %u (this build: %u)", h->dir,
			       version, STORAGE_FORMAT_VERSION);
	}
	return 0;
}

static int init_dbs(storage_t *h, char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	int rv;

	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = open_db(txn, STO_DB_LOG, &h->dbi_log, errmsg, errlen);
	if (rv == 0) {
		rv = open_db(txn, STO_DB_META, &h->dbi_meta, errmsg, errlen);
	}
	if (rv == 0) {
		rv = open_db(txn, STO_DB_KV, &h->dbi_kv, errmsg, errlen);
	}
	if (rv == 0) {
		rv = open_db(txn, STO_DB_SESSIONS, &h->dbi_sessions, errmsg, errlen);
	}
	if (rv == 0) {
		rv = open_db(txn, STO_DB_SESSION_LRU, &h->dbi_session_lru, errmsg, errlen);
	}
	if (rv == 0) {
		rv = check_format(h, txn, errmsg, errlen);
	}
	if (rv == 0) {
		rv = check_meta(h, txn, errmsg, errlen);
	}
	if (rv != 0) {
		goto err_after_begin;
	}
	/* Committing also makes the dbi handles valid for every later transaction. */
	return sto_commit(h, txn, STO_DURABLE, errmsg, errlen);

err_after_begin:
	mdb_txn_abort(txn);
	return rv;
}

static int open_env(storage_t *h, size_t map_size, char *errmsg, size_t errlen)
{
	/* MDB_NOMETASYNC: every commit flushes its data pages but leaves the meta page to the next
	 * flush; sto_commit() adds that flush for commits that must be durable on return. */
	unsigned flags = MDB_NOTLS | (h->nosync ? MDB_NOSYNC : MDB_NOMETASYNC);
	int stale;
	int rc;

	rc = mdb_env_create(&h->env);
	if (rc != 0) {
		h->env = NULL;
		return sto_mdb_err(errmsg, errlen, rc, "cannot create LMDB environment");
	}
	rc = mdb_env_set_maxdbs(h->env, STO_MAX_DBS);
	if (rc == 0) {
		rc = mdb_env_set_mapsize(h->env, map_size);
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot configure LMDB environment");
	}
	rc = mdb_env_open(h->env, h->dir, flags, STO_FILE_MODE);
	if (rc != 0) {
		return sto_err(errmsg, errlen, sto_from_mdb(rc),
			       "cannot open LMDB environment in %s: %s", h->dir, mdb_strerror(rc));
	}
	/* Clear reader slots left behind by a process that crashed. */
	rc = mdb_reader_check(h->env, &stale);
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot check LMDB readers");
	}
	if (mdb_env_get_maxkeysize(h->env) < (int)STORAGE_MAX_KEY_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_EFORMAT,
			       "LMDB max key size %d is below STORAGE_MAX_KEY_SIZE %u",
			       mdb_env_get_maxkeysize(h->env), STORAGE_MAX_KEY_SIZE);
	}
	return 0;
}

static void remove_stale_snapshot(storage_t *h)
{
	char path[STO_PATH_MAX];

	/* A crash during an install leaves a partial stream behind; it is never reused. */
	if (path_join(path, h->dir, STO_SNAP_TMP_FILE, NULL, 0) == 0) {
		unlink(path);
	}
}

/* Format 1 kept the log in LMDB's `log` sub-database: copy it into segment files, then empty
 * it and mark the directory format 2 in one durable commit. A crash before that commit
 * leaves format 1 and the old log, and the next open copies again (over what was copied). */
#define MIGRATE_BATCH_ENTRIES 1024u
static int migrate_log(storage_t *h, char *errmsg, size_t errlen)
{
	struct storage_entry batch[MIGRATE_BATCH_ENTRIES];
	uint8_t fmt[STO_U32_SIZE];
	MDB_cursor *cur = NULL;
	MDB_txn *txn;
	MDB_val k;
	MDB_val v;
	uint64_t prev_index = 0;
	size_t n = 0;
	int rv;
	int rc;

	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rc = mdb_cursor_open(txn, h->dbi_log, &cur);
	while (rc == 0 && (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		if (sto_log_rec_decode(&k, &v, &batch[n]) != 0) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				     "format 1 log: bad record while upgrading");
			goto err;
		}
		if (prev_index != 0 && batch[n].index != prev_index + 1) {
			rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT,
				     "format 1 log: entry %llu missing while upgrading",
				     (unsigned long long)prev_index + 1);
			goto err;
		}
		prev_index = batch[n].index;
		if (++n == MIGRATE_BATCH_ENTRIES) {
			rv = sto_wal_append(h, 0, batch, n, errmsg, errlen);
			if (rv != 0) {
				goto err;
			}
			n = 0;
		}
	}
	if (rc != MDB_NOTFOUND) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot read the format 1 log");
		goto err;
	}
	if (n > 0) {
		rv = sto_wal_append(h, 0, batch, n, errmsg, errlen);
		if (rv != 0) {
			goto err;
		}
	}
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_drop(txn, h->dbi_log, 0);
	if (rc == 0) {
		k.mv_data = (void *)STO_META_FORMAT;
		k.mv_size = strlen(STO_META_FORMAT);
		sto_put_u32(fmt, STORAGE_FORMAT_VERSION);
		v.mv_data = fmt;
		v.mv_size = sizeof(fmt);
		rc = mdb_put(txn, h->dbi_meta, &k, &v, 0);
	}
	if (rc != 0) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot finish the format upgrade");
		goto err;
	}
	h->migrate_log = false;
	return sto_commit(h, txn, STO_DURABLE, errmsg, errlen);

err:
	if (cur != NULL) {
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	return rv;
}

/* A state machine ahead of the log (data.mdb copied without wal/, as mdb_copy does for a
 * backup) is a snapshot: the log restarts after the applied index. Applied entries are
 * committed, so this only compacts. */
static int start_after_applied(storage_t *h, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	uint64_t applied;
	uint64_t applied_term;
	MDB_txn *txn;
	int rv;

	sto_wal_bounds(h, &b);
	rv = sto_write_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &applied, &applied_term, errmsg,
			       errlen);
	if (rv != 0 || applied <= b.last) {
		mdb_txn_abort(txn);
		return rv;
	}
	rv = sto_meta_put_pair(h, txn, STO_META_LOG_START, applied + 1, applied_term, errmsg,
			       errlen);
	if (rv != 0) {
		mdb_txn_abort(txn);
		return rv;
	}
	rv = sto_commit(h, txn, STO_DURABLE, errmsg, errlen);
	if (rv == 0) {
		rv = sto_wal_start_at(h, applied + 1, applied_term, errmsg, errlen);
	}
	return rv;
}

/* Loads the log's segment files, cut to what LMDB's log_start says is still needed. */
static int open_log(storage_t *h, char *errmsg, size_t errlen)
{
	uint64_t first;
	uint64_t prev_term;
	MDB_txn *txn;
	int rv = sto_read_begin(h, &txn, errmsg, errlen);

	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_LOG_START, 1, 0, &first, &prev_term, errmsg,
			       errlen);
	mdb_txn_abort(txn);
	if (rv == 0 && first == 0) {
		rv = sto_err(errmsg, errlen, STORAGE_ECORRUPT, "log first index is 0");
	}
	if (rv == 0) {
		rv = sto_wal_open(h, first, prev_term, errmsg, errlen);
	}
	if (rv == 0 && h->migrate_log) {
		rv = migrate_log(h, errmsg, errlen);
	}
	if (rv == 0) {
		rv = start_after_applied(h, errmsg, errlen);
	}
	return rv;
}

int storage_open(const char *dir, const struct storage_options *opts, storage_t **out, char *errmsg,
		 size_t errlen)
{
	static const struct storage_options defaults;
	size_t map_size;
	storage_t *h;
	int rv;

	if (out != NULL) {
		*out = NULL;
	}
	if (dir == NULL || out == NULL || dir[0] == '\0') {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_open: no directory");
	}
	if (opts == NULL) {
		opts = &defaults;
	}
	map_size = opts->map_size != 0 ? opts->map_size : STORAGE_DEFAULT_MAP_SIZE;
	if (map_size < STORAGE_MIN_MAP_SIZE) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "map size %zu below minimum %zu",
			       map_size, STORAGE_MIN_MAP_SIZE);
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL) {
		return sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
	}
	h->lock_fd = -1;
	h->wal.dir_fd = -1;
	pthread_mutex_init(&h->wal.mu, NULL);
	pthread_mutex_init(&h->wal.wmu, NULL);
	h->wal.segment_size =
	    opts->segment_size != 0 ? opts->segment_size : STORAGE_DEFAULT_SEGMENT_SIZE;
	h->nosync = opts->nosync;
	h->session_ttl = opts->session_ttl != 0 ? opts->session_ttl : STORAGE_DEFAULT_SESSION_TTL;
	h->max_sessions =
	    opts->max_sessions != 0 ? opts->max_sessions : STORAGE_DEFAULT_MAX_SESSIONS;
	atomic_init(&h->fail_commit_after, 0);
	atomic_init(&h->failed, false);
	atomic_init(&h->installing, false);
	atomic_init(&h->commits, 0);
	atomic_init(&h->syncs, 0);
	h->dir = strdup(dir);
	if (h->dir == NULL) {
		rv = sto_err(errmsg, errlen, STORAGE_ENOMEM, "out of memory");
		goto err_after_alloc;
	}
	rv = make_dir(dir, errmsg, errlen);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = lock_dir(h, errmsg, errlen);
	if (rv != 0) {
		goto err_after_alloc;
	}
	rv = check_data_file_before(h, errmsg, errlen);
	if (rv != 0) {
		goto err_after_lock;
	}
	remove_stale_snapshot(h);
	rv = open_env(h, map_size, errmsg, errlen);
	if (rv != 0) {
		goto err_after_env;
	}
	rv = check_data_file_after(h, errmsg, errlen);
	if (rv != 0) {
		goto err_after_env;
	}
	rv = init_dbs(h, errmsg, errlen);
	if (rv != 0) {
		goto err_after_env;
	}
	rv = open_log(h, errmsg, errlen);
	if (rv != 0) {
		goto err_after_wal;
	}
	/* Armed only now, so that the count starts with the caller's first write. */
	atomic_store(&h->fail_commit_after, opts->fail_commit_after);
	*out = h;
	return 0;

err_after_wal:
	sto_wal_close(h);
err_after_env:
	if (h->env != NULL) {
		mdb_env_close(h->env);
	}
err_after_lock:
	close(h->lock_fd);
err_after_alloc:
	pthread_mutex_destroy(&h->wal.mu);
	pthread_mutex_destroy(&h->wal.wmu);
	free(h->dir);
	free(h);
	return rv;
}

void storage_close(storage_t *h)
{
	if (h == NULL) {
		return;
	}
	/* A clean shutdown also makes the last applies durable (their meta page); a failure here
	 * changes nothing for correctness, the log can redo them. */
	if (!h->nosync && !atomic_load(&h->failed)) {
		mdb_env_sync(h->env, 1);
	}
	mdb_env_close(h->env);
	sto_wal_close(h);
	pthread_mutex_destroy(&h->wal.mu);
	pthread_mutex_destroy(&h->wal.wmu);
	close(h->lock_fd); /* releases the flock */
	free(h->dir);
	free(h);
}

void storage_stats(storage_t *h, struct storage_stats *out)
{
	out->commits = atomic_load(&h->commits);
	out->syncs = atomic_load(&h->syncs);
}

int storage_space(storage_t *h, struct storage_space *out, char *errmsg, size_t errlen)
{
	if (h == NULL || out == NULL)
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_space: NULL argument");
	MDB_envinfo info;
	MDB_stat st;
	int rc = mdb_env_info(h->env, &info);
	if (rc == 0)
		rc = mdb_env_stat(h->env, &st);
	if (rc != 0)
		return sto_mdb_err(errmsg, errlen, rc, "cannot read environment info");
	MDB_txn *txn;
	int rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0)
		return rv;
	/* Free-list records (database 0) hold page-number lists whose first word is their
	 * length: those pages are reused before the file grows. */
	uint64_t free_pages = 0;
	MDB_cursor *cur;
	rc = mdb_cursor_open(txn, 0, &cur);
	if (rc == 0) {
		MDB_val k, v;
		while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			if (v.mv_size < sizeof(size_t))
				continue;
			size_t n;
			memcpy(&n, v.mv_data, sizeof(n));
			free_pages += n;
		}
		mdb_cursor_close(cur);
		if (rc == MDB_NOTFOUND)
			rc = 0;
	}
	mdb_txn_abort(txn);
	if (rc != 0)
		return sto_mdb_err(errmsg, errlen, rc, "cannot read the free list");
	uint64_t pages = (uint64_t)info.me_last_pgno + 1;
	if (free_pages > pages)
		free_pages = pages;
	out->map_size = info.me_mapsize;
	out->page_size = st.ms_psize;
	out->used_bytes = (pages - free_pages) * st.ms_psize;
	struct statvfs vfs;
	out->disk_free_bytes = statvfs(h->dir, &vfs) == 0
				   ? (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize
				   : UINT64_MAX;
	return 0;
}

int sto_read_begin(storage_t *h, MDB_txn **txn, char *errmsg, size_t errlen)
{
	int rc = mdb_txn_begin(h->env, NULL, MDB_RDONLY, txn);

	if (rc != 0) {
		*txn = NULL;
		return sto_mdb_err(errmsg, errlen, rc, "cannot begin read transaction");
	}
	return 0;
}

int sto_write_begin(storage_t *h, MDB_txn **txn, char *errmsg, size_t errlen)
{
	int rc;

	*txn = NULL;
	if (atomic_load(&h->failed)) {
		return sto_err(errmsg, errlen, STORAGE_EFATAL,
			       "an earlier commit failed: the handle is unusable, exit");
	}
	rc = mdb_txn_begin(h->env, NULL, 0, txn);
	if (rc != 0) {
		*txn = NULL;
		if (rc == MDB_PANIC) {
			atomic_store(&h->failed, true);
		}
		return sto_mdb_err(errmsg, errlen, rc, "cannot begin write transaction");
	}
	return 0;
}

int sto_commit(storage_t *h, MDB_txn *txn, enum sto_durability d, char *errmsg, size_t errlen)
{
	unsigned countdown = atomic_load(&h->fail_commit_after);
	int rc;

	if (countdown > 0) {
		atomic_store(&h->fail_commit_after, countdown - 1);
		if (countdown == 1) {
			mdb_txn_abort(txn);
			atomic_store(&h->failed, true);
			return sto_err(errmsg, errlen, STORAGE_EFATAL,
				       "commit failed (injected fault): the node must exit");
		}
	}
	rc = mdb_txn_commit(txn);
	if (rc == MDB_MAP_FULL) {
		/* Raised while allocating pages, before anything was written. */
		return sto_err(errmsg, errlen, STORAGE_ENOSPC,
			       "database map full (map size too small): write rolled back");
	}
	if (rc == 0 && d == STO_DURABLE && !h->nosync) {
		rc = mdb_env_sync(h->env, 1); /* the meta page: now the commit is on disk */
		if (rc == 0) {
			atomic_fetch_add(&h->syncs, 1);
		}
	}
	if (rc != 0) {
		/* The data may or may not be on disk and the kernel may have dropped dirty pages:
		 * never retry ("fsyncgate"); the caller exits and recovers from disk on restart. */
		atomic_store(&h->failed, true);
		return sto_err(errmsg, errlen, STORAGE_EFATAL,
			       "commit failed: %s: the node must exit", mdb_strerror(rc));
	}
	atomic_fetch_add(&h->commits, 1);
	if (!h->nosync) {
		atomic_fetch_add(&h->syncs, 1); /* LMDB's own data flush inside the commit */
	}
	return 0;
}

/* Reads meta record `key` of exactly `size` bytes into buf; *found = false when absent. */
static int meta_get(storage_t *h, MDB_txn *txn, const char *key, uint8_t *buf, size_t size,
		    bool *found, char *errmsg, size_t errlen)
{
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
	MDB_val v;
	int rc = mdb_get(txn, h->dbi_meta, &k, &v);

	*found = false;
	if (rc == MDB_NOTFOUND) {
		return 0;
	}
	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot read meta");
	}
	if (v.mv_size != size) {
		return sto_err(errmsg, errlen, STORAGE_ECORRUPT,
			       "meta record %s is %zu bytes, expected %zu", key, v.mv_size, size);
	}
	memcpy(buf, v.mv_data, size);
	*found = true;
	return 0;
}

static int meta_put(storage_t *h, MDB_txn *txn, const char *key, uint8_t *buf, size_t size,
		    char *errmsg, size_t errlen)
{
	MDB_val k = {.mv_size = strlen(key), .mv_data = (void *)key};
	MDB_val v = {.mv_size = size, .mv_data = buf};
	int rc = mdb_put(txn, h->dbi_meta, &k, &v, 0);

	if (rc != 0) {
		return sto_mdb_err(errmsg, errlen, rc, "cannot write meta");
	}
	return 0;
}

int sto_meta_get_pair(storage_t *h, MDB_txn *txn, const char *key, uint64_t def0, uint64_t def1,
		      uint64_t *a, uint64_t *b, char *errmsg, size_t errlen)
{
	uint8_t buf[STO_PAIR_SIZE];
	bool found;
	int rv = meta_get(h, txn, key, buf, sizeof(buf), &found, errmsg, errlen);

	if (rv != 0) {
		return rv;
	}
	*a = found ? sto_get_u64(buf) : def0;
	*b = found ? sto_get_u64(buf + STO_U64_SIZE) : def1;
	return 0;
}

int sto_meta_put_pair(storage_t *h, MDB_txn *txn, const char *key, uint64_t a, uint64_t b,
		      char *errmsg, size_t errlen)
{
	uint8_t buf[STO_PAIR_SIZE];

	sto_put_u64(buf, a);
	sto_put_u64(buf + STO_U64_SIZE, b);
	return meta_put(h, txn, key, buf, sizeof(buf), errmsg, errlen);
}

int sto_meta_get_u64(storage_t *h, MDB_txn *txn, const char *key, uint64_t *out, char *errmsg,
		     size_t errlen)
{
	uint8_t buf[STO_U64_SIZE];
	bool found;
	int rv = meta_get(h, txn, key, buf, sizeof(buf), &found, errmsg, errlen);

	if (rv != 0) {
		return rv;
	}
	*out = found ? sto_get_u64(buf) : 0;
	return 0;
}

int sto_meta_put_u64(storage_t *h, MDB_txn *txn, const char *key, uint64_t val, char *errmsg,
		     size_t errlen)
{
	uint8_t buf[STO_U64_SIZE];

	sto_put_u64(buf, val);
	return meta_put(h, txn, key, buf, sizeof(buf), errmsg, errlen);
}

static uint64_t fnv1a(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

int storage_kv_hash(storage_t *h, struct storage_kv_hash *out, char *errmsg, size_t errlen)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	uint64_t applied_term;
	int rv, rc;

	if (h == NULL || out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_kv_hash: NULL argument");
	}
	memset(out, 0, sizeof(*out));
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &out->applied_index, &applied_term,
			       errmsg, errlen);
	if (rv == 0) {
		rv = sto_meta_get_u64(h, txn, STO_META_REVISION, &out->revision, errmsg, errlen);
	}
	if (rv != 0) {
		goto out;
	}
	rc = mdb_cursor_open(txn, h->dbi_kv, &cur);
	if (rc != 0) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot open a cursor on kv");
		goto out;
	}
	/* Records are encoded deterministically, so hashing the stored bytes is enough; the
	 * lengths keep (key, value) boundaries unambiguous. */
	uint64_t hash = 0xcbf29ce484222325ull;
	while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
		uint64_t kl = k.mv_size, vl = v.mv_size;
		hash = fnv1a(hash, &kl, sizeof(kl));
		hash = fnv1a(hash, k.mv_data, k.mv_size);
		hash = fnv1a(hash, &vl, sizeof(vl));
		hash = fnv1a(hash, v.mv_data, v.mv_size);
		out->keys++;
	}
	mdb_cursor_close(cur);
	if (rc != MDB_NOTFOUND) {
		rv = sto_mdb_err(errmsg, errlen, rc, "cannot walk kv");
		goto out;
	}
	out->hash = hash;
out:
	mdb_txn_abort(txn);
	if (rv != 0) {
		memset(out, 0, sizeof(*out));
	}
	return rv;
}

int storage_state(storage_t *h, struct storage_state *out, char *errmsg, size_t errlen)
{
	struct sto_log_bounds b;
	MDB_txn *txn;
	int rv;

	if (h == NULL || out == NULL) {
		return sto_err(errmsg, errlen, STORAGE_EINVAL, "storage_state: NULL argument");
	}
	memset(out, 0, sizeof(*out));
	rv = sto_read_begin(h, &txn, errmsg, errlen);
	if (rv != 0) {
		return rv;
	}
	rv = sto_meta_get_pair(h, txn, STO_META_HARD_STATE, 0, 0, &out->hard_state.term,
			       &out->hard_state.vote, errmsg, errlen);
	if (rv == 0) {
		rv = sto_meta_get_pair(h, txn, STO_META_APPLIED, 0, 0, &out->applied_index,
				       &out->applied_term, errmsg, errlen);
	}
	if (rv == 0) {
		rv = sto_meta_get_u64(h, txn, STO_META_REVISION, &out->revision, errmsg, errlen);
	}
	mdb_txn_abort(txn);
	if (rv != 0) {
		memset(out, 0, sizeof(*out));
		return rv;
	}
	sto_wal_bounds(h, &b);
	out->first_index = b.first;
	out->last_index = b.last;
	out->last_term = b.last_term;
	out->snapshot_index = b.first - 1;
	out->snapshot_term = b.prev_term;
	return 0;
}
