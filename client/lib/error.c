/* libcairn error codes: the string table, message buffers and the mapping of server codes. */
#include <stdio.h>

#include "client/lib/internal.h"

const char *cairn_strerror(int err)
{
	switch (err) {
	case CAIRN_OK:
		return "success";
	case CAIRN_EINVAL:
		return "invalid argument";
	case CAIRN_ENOMEM:
		return "out of memory";
	case CAIRN_ETIMEDOUT:
		return "timed out";
	case CAIRN_EUNKNOWN:
		return "outcome unknown: the write may or may not have been applied";
	case CAIRN_EKEYSIZE:
		return "key empty or too large";
	case CAIRN_EVALSIZE:
		return "value too large";
	case CAIRN_ETOOMANYOPS:
		return "too many operations in transaction";
	case CAIRN_ETOOLARGE:
		return "request too large";
	case CAIRN_ENOSPACE:
		return "no space left in the cluster's data store";
	case CAIRN_EPROTO:
		return "protocol error";
	case CAIRN_EINTERNAL:
		return "internal server error";
	case CAIRN_ECLOSED:
		return "client closed";
	case CAIRN_EDEADLK:
		return "synchronous call from a callback";
	case CAIRN_ESYS:
		return "system error";
	case CAIRN_EBADENDPOINT:
		return "bad endpoint (expected host:port)";
	default:
		return "unknown error";
	}
}

void cairni_errmsg_vset(char *buf, size_t len, const char *fmt, va_list ap)
{
	if (buf == NULL || len == 0) {
		return;
	}
	vsnprintf(buf, len, fmt, ap);
}

void cairni_errmsg_set(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	cairni_errmsg_vset(buf, len, fmt, ap);
	va_end(ap);
}

int cairni_error_from_server(int code)
{
	switch (code) {
	case CAIRN__ERROR_CODE__OK:
		return 0;
	case CAIRN__ERROR_CODE__INVALID_ARGUMENT:
		return CAIRN_EINVAL;
	case CAIRN__ERROR_CODE__KEY_TOO_LARGE:
		return CAIRN_EKEYSIZE;
	case CAIRN__ERROR_CODE__VALUE_TOO_LARGE:
		return CAIRN_EVALSIZE;
	case CAIRN__ERROR_CODE__TOO_MANY_OPS:
		return CAIRN_ETOOMANYOPS;
	case CAIRN__ERROR_CODE__NO_SPACE:
		return CAIRN_ENOSPACE;
	case CAIRN__ERROR_CODE__FRAME_TOO_LARGE:
		return CAIRN_ETOOLARGE;
	case CAIRN__ERROR_CODE__INTERNAL:
		return CAIRN_EINTERNAL;
	default: /* BAD_FRAME, UNKNOWN_OPERATION, codes this client does not know */
		return CAIRN_EPROTO;
	}
}
