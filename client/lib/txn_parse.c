/* etcdctl's txn grammar (compares, success ops, failure ops separated by blank lines). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "client/lib/internal.h"
#include "client/lib/txn_parse.h"

/* Most words on one op line (put k v --prev-kv ...). */
#define MAX_WORDS 16

struct word {
	char *s; /* malloc'ed, NUL-terminated; len may be shorter than strlen with \0 escapes */
	size_t len;
	bool quoted;
};

struct cursor {
	const char *p, *end;
};

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r';
}

static void skip_blanks(struct cursor *cur)
{
	while (cur->p < cur->end && is_blank(*cur->p)) {
		cur->p++;
	}
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9') {
		return ch - '0';
	}
	if (ch >= 'a' && ch <= 'f') {
		return ch - 'a' + 10;
	}
	if (ch >= 'A' && ch <= 'F') {
		return ch - 'A' + 10;
	}
	return -1;
}

/*
 * Read one word at the cursor: quoted, or bare up to a blank or one of `stops`.
 * Returns 0, CAIRN_EINVAL (unterminated quote / bad escape / nothing there), CAIRN_ENOMEM.
 */
static int read_word(struct cursor *cur, const char *stops, struct word *w, const char **why)
{
	const char *p = cur->p;
	char *o;

	skip_blanks(cur);
	p = cur->p;
	if (p >= cur->end) {
		*why = "missing word";
		return CAIRN_EINVAL;
	}
	w->s = malloc((size_t)(cur->end - p) + 1);
	if (w->s == NULL) {
		return CAIRN_ENOMEM;
	}
	o = w->s;
	w->quoted = *p == '"' || *p == '\'';
	if (*p == '\'') {
		for (p++; p < cur->end && *p != '\''; p++) {
			*o++ = *p;
		}
		if (p >= cur->end) {
			*why = "unterminated quote";
			goto err;
		}
		p++;
	} else if (*p == '"') {
		for (p++; p < cur->end && *p != '"'; p++) {
			if (*p != '\\') {
				*o++ = *p;
				continue;
			}
			if (++p >= cur->end) {
				break;
			}
			switch (*p) {
			case 'n':
				*o++ = '\n';
				break;
			case 't':
				*o++ = '\t';
				break;
			case 'r':
				*o++ = '\r';
				break;
			case '0':
				*o++ = '\0';
				break;
			case 'x':
				if (cur->end - p < 3 || hexval(p[1]) < 0 || hexval(p[2]) < 0) {
					*why = "bad \\x escape";
					goto err;
				}
				*o++ = (char)(hexval(p[1]) * 16 + hexval(p[2]));
				p += 2;
				break;
			default: /* \\ \" and any other character stand for themselves */
				*o++ = *p;
				break;
			}
		}
		if (p >= cur->end) {
			*why = "unterminated quote";
			goto err;
		}
		p++;
	} else {
		while (p < cur->end && !is_blank(*p) && strchr(stops, *p) == NULL) {
			*o++ = *p++;
		}
		if (o == w->s) {
			*why = "missing word";
			goto err;
		}
	}
	*o = '\0';
	w->len = (size_t)(o - w->s);
	cur->p = p;
	return 0;
err:
	free(w->s);
	w->s = NULL;
	return CAIRN_EINVAL;
}

static int parse_int64(const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0') {
		return CAIRN_EINVAL;
	}
	*out = (int64_t)v;
	return 0;
}

static int parse_compare(cairn_txn *txn, struct cursor *cur, const char **why)
{
	static const struct {
		const char *name;
		enum cairn_cmp_target target;
	} targets[] = {
	    {"value", CAIRN_CMP_VALUE},	  {"val", CAIRN_CMP_VALUE}, {"version", CAIRN_CMP_VERSION},
	    {"ver", CAIRN_CMP_VERSION},	  {"mod", CAIRN_CMP_MOD},   {"m", CAIRN_CMP_MOD},
	    {"create", CAIRN_CMP_CREATE}, {"c", CAIRN_CMP_CREATE},
	};
	struct word name = {0}, key = {0}, value = {0};
	enum cairn_cmp_target target = CAIRN_CMP_VALUE;
	enum cairn_cmp_op op;
	bool found = false;
	int64_t num;
	size_t i;
	int rv;

	rv = read_word(cur, "(", &name, why);
	if (rv != 0) {
		goto out;
	}
	for (i = 0; i < sizeof(targets) / sizeof(targets[0]); i++) {
		if (strcmp(name.s, targets[i].name) == 0) {
			target = targets[i].target;
			found = true;
		}
	}
	rv = CAIRN_EINVAL;
	if (!found) {
		*why = "unknown compare target (expected value, version, mod or create)";
		goto out;
	}
	skip_blanks(cur);
	if (cur->p >= cur->end || *cur->p != '(') {
		*why = "expected ( after the compare target";
		goto out;
	}
	cur->p++;
	rv = read_word(cur, ")", &key, why);
	if (rv != 0) {
		goto out;
	}
	rv = CAIRN_EINVAL;
	skip_blanks(cur);
	if (cur->p >= cur->end || *cur->p != ')') {
		*why = "expected ) after the key";
		goto out;
	}
	cur->p++;
	skip_blanks(cur);
	if (cur->end - cur->p >= 2 && memcmp(cur->p, "!=", 2) == 0) {
		op = CAIRN_CMP_NOT_EQUAL;
		cur->p += 2;
	} else if (cur->end - cur->p >= 2 && memcmp(cur->p, "==", 2) == 0) {
		op = CAIRN_CMP_EQUAL;
		cur->p += 2;
	} else if (cur->p < cur->end && *cur->p == '=') {
		op = CAIRN_CMP_EQUAL;
		cur->p++;
	} else if (cur->p < cur->end && *cur->p == '<') {
		op = CAIRN_CMP_LESS;
		cur->p++;
	} else if (cur->p < cur->end && *cur->p == '>') {
		op = CAIRN_CMP_GREATER;
		cur->p++;
	} else {
		*why = "expected an operator (=, !=, <, >)";
		goto out;
	}
	rv = read_word(cur, "", &value, why);
	if (rv != 0) {
		goto out;
	}
	rv = CAIRN_EINVAL;
	skip_blanks(cur);
	if (cur->p != cur->end) {
		*why = "unexpected text after the compare";
		goto out;
	}
	if (key.len == 0) {
		*why = "empty key";
		goto out;
	}
	if (target == CAIRN_CMP_VALUE) {
		rv = cairn_txn_compare_value(txn, op, key.s, key.len, value.s, value.len);
	} else if (parse_int64(value.s, &num) != 0) {
		*why = "version, mod and create compare with an integer";
	} else {
		rv = cairn_txn_compare_int(txn, target, op, key.s, key.len, num);
	}
out:
	free(name.s);
	free(key.s);
	free(value.s);
	return rv;
}

static int parse_op(cairn_txn *txn, enum cairn_txn_branch branch, struct cursor *cur,
		    const char **why)
{
	struct word w[MAX_WORDS];
	struct word *pos[3];
	size_t n = 0, npos = 0, i;
	bool prefix = false, prev_kv = false, keys_only = false, count_only = false;
	int64_t limit = 0;
	int rv = 0;

	memset(w, 0, sizeof(w));
	for (;;) {
		skip_blanks(cur);
		if (cur->p >= cur->end) {
			break;
		}
		if (n == MAX_WORDS) {
			*why = "too many words";
			rv = CAIRN_EINVAL;
			goto out;
		}
		rv = read_word(cur, "", &w[n], why);
		if (rv != 0) {
			goto out;
		}
		n++;
	}
	rv = CAIRN_EINVAL;
	for (i = 1; i < n; i++) {
		const char *s = w[i].s;

		if (w[i].quoted || strncmp(s, "--", 2) != 0) {
			if (npos == 3) {
				*why = "too many arguments";
				goto out;
			}
			pos[npos++] = &w[i];
		} else if (strcmp(s, "--prefix") == 0) {
			prefix = true;
		} else if (strcmp(s, "--prev-kv") == 0) {
			prev_kv = true;
		} else if (strcmp(s, "--keys-only") == 0) {
			keys_only = true;
		} else if (strcmp(s, "--count-only") == 0) {
			count_only = true;
		} else if (strncmp(s, "--limit=", 8) == 0) {
			if (parse_int64(s + 8, &limit) != 0 || limit < 0) {
				*why = "bad --limit";
				goto out;
			}
		} else if (strcmp(s, "--limit") == 0) {
			if (i + 1 >= n || parse_int64(w[i + 1].s, &limit) != 0 || limit < 0) {
				*why = "bad --limit";
				goto out;
			}
			i++;
		} else {
			*why = "unknown option";
			goto out;
		}
	}
	if (n == 0) {
		*why = "empty operation";
		goto out;
	}
	if (strcmp(w[0].s, "put") == 0) {
		if (npos != 2 || prefix || keys_only || count_only || limit != 0) {
			*why = "usage: put <key> <value> [--prev-kv]";
			goto out;
		}
		rv = cairn_txn_put(txn, branch, pos[0]->s, pos[0]->len, pos[1]->s, pos[1]->len,
				   prev_kv);
	} else if (strcmp(w[0].s, "get") == 0) {
		struct cairn_range_opts o = {0};

		if (npos < 1 || npos > 2 || prev_kv) {
			*why =
			    "usage: get <key> [<range_end>] [--prefix] [--limit N] [--keys-only] "
			    "[--count-only]";
			goto out;
		}
		o.prefix = prefix;
		o.limit = limit;
		o.keys_only = keys_only;
		o.count_only = count_only;
		if (npos == 2) {
			o.range_end = pos[1]->s;
			o.range_end_len = pos[1]->len;
		}
		rv = cairn_txn_get(txn, branch, pos[0]->s, pos[0]->len, &o);
	} else if (strcmp(w[0].s, "del") == 0 || strcmp(w[0].s, "delete") == 0) {
		struct cairn_delete_opts o = {0};

		if (npos < 1 || npos > 2 || keys_only || count_only || limit != 0) {
			*why = "usage: del <key> [<range_end>] [--prefix] [--prev-kv]";
			goto out;
		}
		o.prefix = prefix;
		o.prev_kv = prev_kv;
		if (npos == 2) {
			o.range_end = pos[1]->s;
			o.range_end_len = pos[1]->len;
		}
		rv = cairn_txn_delete(txn, branch, pos[0]->s, pos[0]->len, &o);
	} else {
		*why = "unknown operation (expected put, get or del)";
		goto out;
	}
	if (rv == CAIRN_EINVAL) {
		*why = "invalid operation (empty key?)";
	}
out:
	for (i = 0; i < n; i++) {
		free(w[i].s);
	}
	return rv;
}

int cairn_txn_parse(const char *text, size_t len, cairn_txn **out, char *errmsg, size_t errlen)
{
	const char *p = text, *end = text + len;
	cairn_txn *txn;
	int section = 0; /* 0 compares, 1 success, 2 failure */
	unsigned line = 0;
	int rv = 0;

	if (out == NULL || (text == NULL && len > 0)) {
		cairni_errmsg_set(errmsg, errlen, "invalid argument");
		return CAIRN_EINVAL;
	}
	*out = NULL;
	txn = cairn_txn_new();
	if (txn == NULL) {
		return CAIRN_ENOMEM;
	}
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		struct cursor cur = {p, nl != NULL ? nl : end};
		const char *why = "syntax error";
		const char *ls;

		line++;
		p = nl != NULL ? nl + 1 : end;
		skip_blanks(&cur);
		if (cur.p == cur.end) {
			if (++section > 2) {
				break; /* etcdctl stops reading after the failure section */
			}
			continue;
		}
		ls = cur.p;
		if (section == 0) {
			rv = parse_compare(txn, &cur, &why);
		} else {
			rv = parse_op(txn, section == 1 ? CAIRN_TXN_SUCCESS : CAIRN_TXN_FAILURE,
				      &cur, &why);
		}
		if (rv == CAIRN_ENOMEM) {
			cairni_errmsg_set(errmsg, errlen, "out of memory");
			goto err;
		}
		if (rv != 0) {
			cairni_errmsg_set(errmsg, errlen, "line %u: %s: %.*s", line, why,
					  (int)(cur.end - ls), ls);
			goto err;
		}
	}
	*out = txn;
	return 0;
err:
	cairn_txn_free(txn);
	return rv;
}
