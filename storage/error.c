/* Storage error codes: the string table and the translation of LMDB/errno codes at the boundary. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

#include "storage/internal.h"

const char *storage_strerror(int err)
{
	switch (err) {
	case STORAGE_OK:
		return "success";
	case STORAGE_EINVAL:
		return "invalid argument";
	case STORAGE_ENOMEM:
		return "out of memory";
	case STORAGE_EIO:
		return "I/O error";
	case STORAGE_EBUSY:
		return "data directory in use";
	case STORAGE_EFORMAT:
		return "unsupported data format";
	case STORAGE_ECORRUPT:
		return "data corrupted";
	case STORAGE_ENOSPC:
		return "no space left in the database map";
	case STORAGE_EFATAL:
		return "commit failed, the node must exit";
	case STORAGE_ECOMPACTED:
		return "log index compacted";
	case STORAGE_EUNAVAIL:
		return "log index not yet available";
	case STORAGE_EKEYSIZE:
		return "key empty or too large";
	case STORAGE_EVALSIZE:
		return "value too large";
	case STORAGE_ETOOMANYOPS:
		return "too many operations in transaction";
	case STORAGE_ETOOLARGE:
		return "request too large";
	case STORAGE_ESESSION:
		return "client session unknown or expired";
	case STORAGE_ESTALE:
		return "stale request";
	case STORAGE_ENOREPLY:
		return "already applied, reply not cached";
	case STORAGE_EAGAIN:
		return "too many concurrent readers, try again";
	default:
		return "unknown error";
	}
}

int sto_err(char *errmsg, size_t errlen, int rv, const char *fmt, ...)
{
	va_list ap;

	if (errmsg != NULL && errlen > 0) {
		va_start(ap, fmt);
		vsnprintf(errmsg, errlen, fmt, ap);
		va_end(ap);
	}
	return rv;
}

int sto_from_mdb(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return STORAGE_OK;
	case MDB_MAP_FULL:
		return STORAGE_ENOSPC;
	case MDB_TXN_FULL:
		return STORAGE_ETOOLARGE;
	case MDB_INVALID:
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INCOMPATIBLE:
		return STORAGE_ECORRUPT;
	case MDB_VERSION_MISMATCH:
		return STORAGE_EFORMAT;
	case MDB_PANIC:
		return STORAGE_EFATAL;
	case MDB_READERS_FULL:
		return STORAGE_EAGAIN;
	case MDB_BAD_VALSIZE:
	case MDB_BAD_TXN:
	case MDB_BAD_DBI:
	case MDB_BAD_RSLOT:
	case EINVAL:
		return STORAGE_EINVAL;
	case ENOMEM:
		return STORAGE_ENOMEM;
	case ENOSPC:
		/* The file system is full: not the clean map-full case; only reached outside
		 * commits (a failed commit is always fatal). */
		return STORAGE_EIO;
	default:
		return STORAGE_EIO;
	}
}

int sto_mdb_err(char *errmsg, size_t errlen, int rc, const char *what)
{
	return sto_err(errmsg, errlen, sto_from_mdb(rc), "%s: %s", what, mdb_strerror(rc));
}
