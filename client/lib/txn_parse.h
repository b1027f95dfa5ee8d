/* The etcdctl `txn` text grammar, parsed into a cairn_txn (used by cairnctl, tested alone). */
#ifndef CAIRN_CLIENT_TXN_PARSE_H
#define CAIRN_CLIENT_TXN_PARSE_H

#include <stddef.h>

#include "client/cairn.h"

/*
 * Parse `len` bytes of `text` in etcdctl's non-interactive txn grammar:
 *
 *   compares, one per line, e.g.    value("k") = "v"     version("k") > "3"
 *                                   mod("k") < "5"       create("k") != "0"
 *     (targets: value|val, version|ver, mod|m, create|c; operators = == != < >;
 *      the number of version/mod/create may be quoted or bare)
 *   a blank line
 *   success ops, one per line:      put k v [--prev-kv]
 *                                   get k [end] [--prefix] [--limit N] [--keys-only]
 *                                         [--count-only]
 *                                   del k [end] [--prefix] [--prev-kv]
 *   a blank line
 *   failure ops, same syntax.
 *
 * Words are separated by blanks; a word may be "double quoted" (escapes \\ \" \n \t \r \0
 * \xHH) or 'single quoted' (verbatim). Missing sections are empty. `text` is borrowed.
 * On success *out is a new builder (free with cairn_txn_free()).
 * Errors: CAIRN_EINVAL (syntax; errmsg says "line N: ..."), CAIRN_ENOMEM.
 */
int cairn_txn_parse(const char *text, size_t len, cairn_txn **out, char *errmsg, size_t errlen);

#endif /* CAIRN_CLIENT_TXN_PARSE_H */
