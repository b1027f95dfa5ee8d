/* history_json.c — the JSON-lines form of histories: a strict little parser, a reader, a writer. */
#include "test/torture/history.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/*
 * The parser accepts exactly one JSON object per line (RFC 8259 syntax, whitespace allowed
 * around tokens). Known fields must have the documented types; unknown fields are skipped
 * whatever their value (forward compatibility), nested at most HISTORY_MAX_DEPTH deep. It never
 * reads past `len` and reports the first problem with its column.
 */

struct parser {
	const char *s;
	size_t len, i;
	char *out; /* scratch: decoded strings are appended here */
	size_t out_used;
	unsigned line;
	char *errmsg;
	size_t errlen;
};

static int fail(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct parser *p, const char *fmt, ...)
{
	if (p->errmsg == NULL || p->errlen == 0)
		return HISTORY_EPARSE;
	int n = 0;
	if (p->line != 0)
		n = snprintf(p->errmsg, p->errlen, "line %u: ", p->line);
	if (n >= 0 && (size_t)n < p->errlen) {
		va_list ap;
		va_start(ap, fmt);
		int m = vsnprintf(p->errmsg + n, p->errlen - (size_t)n, fmt, ap);
		va_end(ap);
		if (m >= 0 && (size_t)(n + m) < p->errlen)
			snprintf(p->errmsg + n + m, p->errlen - (size_t)(n + m), " (column %zu)",
				 p->i + 1);
	}
	return HISTORY_EPARSE;
}

static void skip_ws(struct parser *p)
{
	while (p->i < p->len && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\r' ||
				 p->s[p->i] == '\n'))
		p->i++;
}

static bool at(struct parser *p, char c)
{
	return p->i < p->len && p->s[p->i] == c;
}

static int hex4(struct parser *p, unsigned *out)
{
	if (p->len - p->i < 4)
		return fail(p, "truncated \\u escape");
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		char c = p->s[p->i++];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return fail(p, "bad hex digit in \\u escape");
	}
	*out = v;
	return 0;
}

static void put_utf8(struct parser *p, unsigned cp)
{
	char *o = p->out + p->out_used;
	if (cp < 0x80) {
		o[0] = (char)cp;
		p->out_used += 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xc0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3f));
		p->out_used += 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xe0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		p->out_used += 3;
	} else {
		o[0] = (char)(0xf0 | (cp >> 18));
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[3] = (char)(0x80 | (cp & 0x3f));
		p->out_used += 4;
	}
}

/*
 * Parses a string at p->i (which is at '"'). If `decoded` is not NULL, the decoded, NUL-ended
 * string is appended to the scratch buffer and returned there. A decoded string is never longer
 * than its encoding, so 2 * len + 16 bytes of scratch always suffice for every string of a line
 * plus their NULs.
 */
static int parse_string(struct parser *p, const char **decoded)
{
	p->i++; /* '"' */
	size_t start = p->out_used;
	for (;;) {
		if (p->i >= p->len)
			return fail(p, "unterminated string");
		unsigned char c = (unsigned char)p->s[p->i];
		if (c == '"') {
			p->i++;
			break;
		}
		if (c < 0x20)
			return fail(p, "control character in string");
		if (c != '\\') {
			p->out[p->out_used++] = (char)c;
			p->i++;
			continue;
		}
		p->i++;
		if (p->i >= p->len)
			return fail(p, "unterminated escape");
		char e = p->s[p->i++];
		switch (e) {
		case '"':
		case '\\':
		case '/':
			p->out[p->out_used++] = e;
			break;
		case 'b':
			p->out[p->out_used++] = '\b';
			break;
		case 'f':
			p->out[p->out_used++] = '\f';
			break;
		case 'n':
			p->out[p->out_used++] = '\n';
			break;
		case 'r':
			p->out[p->out_used++] = '\r';
			break;
		case 't':
			p->out[p->out_used++] = '\t';
			break;
		case 'u': {
			unsigned cp;
			int rv = hex4(p, &cp);
			if (rv != 0)
				return rv;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return fail(p, "unpaired low surrogate in \\u escape");
			if (cp >= 0xd800 && cp <= 0xdbff) {
				unsigned lo;
				if (p->len - p->i < 2 || p->s[p->i] != '\\' ||
				    p->s[p->i + 1] != 'u')
					return fail(p, "unpaired high surrogate in \\u escape");
				p->i += 2;
				rv = hex4(p, &lo);
				if (rv != 0)
					return rv;
				if (lo < 0xdc00 || lo > 0xdfff)
					return fail(p, "bad low surrogate in \\u escape");
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			if (cp == 0)
				return fail(p, "NUL character (\\u0000) in string");
			put_utf8(p, cp);
			break;
		}
		default:
			return fail(p, "bad escape '\\%c'", e);
		}
	}
	if (p->out_used - start > HISTORY_MAX_STRING)
		return fail(p, "string longer than %u bytes", HISTORY_MAX_STRING);
	p->out[p->out_used++] = '\0';
	if (decoded != NULL)
		*decoded = p->out + start;
	else
		p->out_used = start;
	return 0;
}

/* Scans a JSON number; *is_int tells whether it has neither fraction nor exponent. */
static int scan_number(struct parser *p, size_t *start, bool *is_int)
{
	*start = p->i;
	*is_int = true;
	if (at(p, '-'))
		p->i++;
	if (at(p, '0')) {
		p->i++;
	} else if (p->i < p->len && p->s[p->i] >= '1' && p->s[p->i] <= '9') {
		while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	} else {
		return fail(p, "bad number");
	}
	if (at(p, '.')) {
		*is_int = false;
		p->i++;
		if (!(p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9'))
			return fail(p, "bad number fraction");
		while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	if (at(p, 'e') || at(p, 'E')) {
		*is_int = false;
		p->i++;
		if (at(p, '+') || at(p, '-'))
			p->i++;
		if (!(p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9'))
			return fail(p, "bad number exponent");
		while (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9')
			p->i++;
	}
	return 0;
}

static int parse_int64(struct parser *p, const char *field, int64_t *out)
{
	if (!(at(p, '-') || (p->i < p->len && p->s[p->i] >= '0' && p->s[p->i] <= '9')))
		return fail(p, "\"%s\" must be an integer", field);
	size_t start;
	bool is_int;
	int rv = scan_number(p, &start, &is_int);
	if (rv != 0)
		return rv;
	if (!is_int)
		return fail(p, "\"%s\" must be an integer", field);
	bool neg = p->s[start] == '-';
	uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	uint64_t v = 0;
	for (size_t k = start + (neg ? 1 : 0); k < p->i; k++) {
		unsigned d = (unsigned)(p->s[k] - '0');
		if (v > (limit - d) / 10)
			return fail(p, "\"%s\" is out of range", field);
		v = v * 10 + d;
	}
	if (neg)
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	else
		*out = (int64_t)v;
	return 0;
}

static int expect_literal(struct parser *p, const char *lit)
{
	size_t n = strlen(lit);
	if (p->len - p->i < n || memcmp(p->s + p->i, lit, n) != 0)
		return fail(p, "unexpected character");
	p->i += n;
	return 0;
}

/* Skips any JSON value (for unknown fields). */
static int skip_value(struct parser *p, unsigned depth)
{
	if (depth > HISTORY_MAX_DEPTH)
		return fail(p, "nesting deeper than %u", HISTORY_MAX_DEPTH);
	skip_ws(p);
	if (p->i >= p->len)
		return fail(p, "missing value");
	char c = p->s[p->i];
	int rv;
	switch (c) {
	case '"':
		return parse_string(p, NULL);
	case 't':
		return expect_literal(p, "true");
	case 'f':
		return expect_literal(p, "false");
	case 'n':
		return expect_literal(p, "null");
	case '{':
	case '[': {
		char close = c == '{' ? '}' : ']';
		p->i++;
		skip_ws(p);
		if (at(p, close)) {
			p->i++;
			return 0;
		}
		for (;;) {
			skip_ws(p);
			if (c == '{') {
				if (!at(p, '"'))
					return fail(p, "expected a field name");
				rv = parse_string(p, NULL);
				if (rv != 0)
					return rv;
				skip_ws(p);
				if (!at(p, ':'))
					return fail(p, "expected ':'");
				p->i++;
			}
			rv = skip_value(p, depth + 1);
			if (rv != 0)
				return rv;
			skip_ws(p);
			if (at(p, ',')) {
				p->i++;
				continue;
			}
			if (at(p, close)) {
				p->i++;
				return 0;
			}
			return fail(p, "expected ',' or '%c'", close);
		}
	}
	default: {
		size_t start;
		bool is_int;
		return scan_number(p, &start, &is_int);
	}
	}
}

/* A string or null: *out is NULL for null. */
static int parse_nullable_string(struct parser *p, const char *field, const char **out)
{
	if (at(p, 'n')) {
		*out = NULL;
		return expect_literal(p, "null");
	}
	if (!at(p, '"'))
		return fail(p, "\"%s\" must be a string or null", field);
	return parse_string(p, out);
}

static int parse_string_field(struct parser *p, const char *field, const char **out)
{
	if (!at(p, '"'))
		return fail(p, "\"%s\" must be a string", field);
	return parse_string(p, out);
}

enum field_bit {
	F_PROCESS = 1u << 0,
	F_TYPE = 1u << 1,
	F_F = 1u << 2,
	F_KEY = 1u << 3,
	F_VALUE = 1u << 4,
	F_FROM = 1u << 5,
	F_TO = 1u << 6,
	F_TIME = 1u << 7,
	F_ERROR = 1u << 8,
	F_REVISION = 1u << 9,
};

static const struct {
	const char *name;
	unsigned bit;
} fields[] = {
    {"process", F_PROCESS}, {"type", F_TYPE},	      {"f", F_F},   {"key", F_KEY},
    {"value", F_VALUE},	    {"from", F_FROM},	      {"to", F_TO}, {"time", F_TIME},
    {"error", F_ERROR},	    {"revision", F_REVISION},
};

static int parse_field(struct parser *p, unsigned bit, struct history_event *ev)
{
	const char *s = NULL;
	int rv;
	switch (bit) {
	case F_PROCESS:
		return parse_int64(p, "process", &ev->process);
	case F_TIME:
		rv = parse_int64(p, "time", &ev->time);
		if (rv == 0 && ev->time < 0)
			return fail(p, "\"time\" must not be negative");
		return rv;
	case F_REVISION:
		ev->has_revision = true;
		return parse_int64(p, "revision", &ev->revision);
	case F_TYPE:
		rv = parse_string_field(p, "type", &s);
		if (rv != 0)
			return rv;
		if (strcmp(s, "invoke") == 0)
			ev->type = HISTORY_INVOKE;
		else if (strcmp(s, "ok") == 0)
			ev->type = HISTORY_OK;
		else if (strcmp(s, "fail") == 0)
			ev->type = HISTORY_FAIL;
		else if (strcmp(s, "info") == 0)
			ev->type = HISTORY_INFO;
		else
			return fail(p, "\"type\" must be invoke, ok, fail or info");
		return 0;
	case F_F:
		rv = parse_string_field(p, "f", &s);
		if (rv != 0)
			return rv;
		if (strcmp(s, "read") == 0)
			ev->f = HISTORY_READ;
		else if (strcmp(s, "write") == 0)
			ev->f = HISTORY_WRITE;
		else if (strcmp(s, "cas") == 0)
			ev->f = HISTORY_CAS;
		else if (strcmp(s, "delete") == 0)
			ev->f = HISTORY_DELETE;
		else
			return fail(p, "\"f\" must be read, write, cas or delete");
		return 0;
	case F_KEY:
		return parse_string_field(p, "key", &ev->key);
	case F_VALUE:
		ev->has_value = true;
		return parse_nullable_string(p, "value", &ev->value);
	case F_FROM:
		ev->has_from = true;
		return parse_nullable_string(p, "from", &ev->from);
	case F_TO:
		ev->has_to = true;
		return parse_nullable_string(p, "to", &ev->to);
	case F_ERROR:
		return parse_nullable_string(p, "error", &ev->error);
	}
	return fail(p, "internal: unknown field");
}

int history_parse_event(const char *text, size_t len, unsigned line, struct history_event *ev,
			char *scratch, char *errmsg, size_t errlen)
{
	struct parser p = {.s = text,
			   .len = len,
			   .out = scratch,
			   .line = line,
			   .errmsg = errmsg,
			   .errlen = errlen};
	memset(ev, 0, sizeof(*ev));
	ev->line = line;
	unsigned seen = 0;
	int rv;
	if (len > HISTORY_MAX_LINE)
		return fail(&p, "line longer than %u bytes", HISTORY_MAX_LINE);
	skip_ws(&p);
	if (!at(&p, '{'))
		return fail(&p, "expected a JSON object");
	p.i++;
	skip_ws(&p);
	if (at(&p, '}'))
		return fail(&p, "empty object");
	for (;;) {
		skip_ws(&p);
		if (!at(&p, '"'))
			return fail(&p, "expected a field name");
		size_t mark = p.out_used;
		const char *name;
		rv = parse_string(&p, &name);
		if (rv != 0)
			return rv;
		unsigned bit = 0;
		for (size_t k = 0; k < sizeof(fields) / sizeof(fields[0]); k++)
			if (strcmp(name, fields[k].name) == 0)
				bit = fields[k].bit;
		p.out_used = mark; /* the name is not needed any more */
		skip_ws(&p);
		if (!at(&p, ':'))
			return fail(&p, "expected ':'");
		p.i++;
		skip_ws(&p);
		if (bit != 0) {
			if (seen & bit)
				return fail(&p, "duplicate field \"%s\"", name);
			seen |= bit;
			rv = parse_field(&p, bit, ev);
		} else {
			rv = skip_value(&p, 1);
		}
		if (rv != 0)
			return rv;
		skip_ws(&p);
		if (at(&p, ',')) {
			p.i++;
			continue;
		}
		if (at(&p, '}')) {
			p.i++;
			break;
		}
		return fail(&p, "expected ',' or '}'");
	}
	skip_ws(&p);
	if (p.i != p.len)
		return fail(&p, "trailing characters after the object");
	static const struct {
		unsigned bit;
		const char *name;
	} required[] = {{F_PROCESS, "process"}, {F_TYPE, "type"}, {F_F, "f"}, {F_TIME, "time"}};
	for (size_t k = 0; k < sizeof(required) / sizeof(required[0]); k++)
		if (!(seen & required[k].bit))
			return fail(&p, "missing field \"%s\"", required[k].name);
	return 0;
}

static void set_error(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_error(char *errmsg, size_t errlen, const char *fmt, ...)
{
	if (errmsg == NULL || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errmsg, errlen, fmt, ap);
	va_end(ap);
}

int history_read(struct history *h, FILE *in, char *errmsg, size_t errlen)
{
	char *buf = NULL;
	size_t cap = 0;
	char *scratch = NULL;
	size_t scratch_cap = 0;
	unsigned line = 0;
	int rv = 0;
	for (;;) {
		errno = 0;
		ssize_t n = getline(&buf, &cap, in);
		if (n < 0) {
			if (ferror(in)) {
				set_error(errmsg, errlen, "after line %u: read error: %s", line,
					  strerror(errno != 0 ? errno : EIO));
				rv = HISTORY_EIO;
			}
			break;
		}
		line++;
		size_t len = (size_t)n;
		if (len > 0 && buf[len - 1] == '\n')
			len--;
		if (len > 0 && buf[len - 1] == '\r')
			len--;
		size_t k = 0;
		while (k < len && (buf[k] == ' ' || buf[k] == '\t'))
			k++;
		if (k == len)
			continue; /* blank line */
		if (memchr(buf, '\0', len) != NULL) {
			set_error(errmsg, errlen, "line %u: NUL byte in line", line);
			rv = HISTORY_EPARSE;
			break;
		}
		if (len > HISTORY_MAX_LINE) {
			set_error(errmsg, errlen, "line %u: line longer than %u bytes", line,
				  HISTORY_MAX_LINE);
			rv = HISTORY_EPARSE;
			break;
		}
		if (2 * len + 16 > scratch_cap) {
			char *s = realloc(scratch, 2 * len + 16);
			if (s == NULL) {
				set_error(errmsg, errlen, "line %u: out of memory", line);
				rv = HISTORY_ENOMEM;
				break;
			}
			scratch = s;
			scratch_cap = 2 * len + 16;
		}
		struct history_event ev;
		rv = history_parse_event(buf, len, line, &ev, scratch, errmsg, errlen);
		if (rv == 0)
			rv = history_add_event(h, &ev, NULL, errmsg, errlen);
		if (rv != 0)
			break;
	}
	free(buf);
	free(scratch);
	return rv;
}

int history_load_file(struct history *h, const char *path, char *errmsg, size_t errlen)
{
	if (strcmp(path, "-") == 0)
		return history_read(h, stdin, errmsg, errlen);
	FILE *in = fopen(path, "r");
	if (in == NULL) {
		set_error(errmsg, errlen, "%s: %s", path, strerror(errno));
		return HISTORY_EIO;
	}
	int rv = history_read(h, in, errmsg, errlen);
	fclose(in);
	return rv;
}

static void write_string(FILE *out, const char *s)
{
	if (s == NULL) {
		fputs("null", out);
		return;
	}
	fputc('"', out);
	for (const unsigned char *c = (const unsigned char *)s; *c != '\0'; c++) {
		switch (*c) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		default:
			if (*c < 0x20)
				fprintf(out, "\\u%04x", *c);
			else
				fputc(*c, out);
		}
	}
	fputc('"', out);
}

int history_write_event(FILE *out, const struct history_event *ev)
{
	if (ev->key == NULL)
		return HISTORY_EINVAL;
	fprintf(out,
		"{\"process\":%lld,\"type\":\"%s\",\"f\":\"%s\",\"key\":", (long long)ev->process,
		history_type_name(ev->type), history_f_name(ev->f));
	write_string(out, ev->key);
	bool invoke = ev->type == HISTORY_INVOKE;
	if ((ev->f == HISTORY_WRITE && (invoke || ev->value != NULL)) ||
	    (ev->f == HISTORY_READ && ev->type == HISTORY_OK)) {
		fputs(",\"value\":", out);
		write_string(out, ev->value);
	}
	if (ev->f == HISTORY_CAS && (invoke || ev->has_from || ev->has_to)) {
		fputs(",\"from\":", out);
		write_string(out, ev->from);
		fputs(",\"to\":", out);
		write_string(out, ev->to);
	}
	if (ev->error != NULL) {
		fputs(",\"error\":", out);
		write_string(out, ev->error);
	}
	if (ev->has_revision)
		fprintf(out, ",\"revision\":%lld", (long long)ev->revision);
	fprintf(out, ",\"time\":%lld}\n", (long long)ev->time);
	return ferror(out) ? HISTORY_EIO : 0;
}
