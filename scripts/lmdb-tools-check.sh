#!/bin/sh
# Shows that a Cairn data directory opens with the real LMDB tools: usage: lmdb-tools-check.sh DATA_DIR KEY
# mdb_stat must list every sub-database and mdb_dump must find KEY (printable) in `kv`.
set -eu

if [ $# -ne 2 ]; then
	echo "usage: $0 DATA_DIR KEY" >&2
	exit 2
fi
dir=$1
key=$2

stat_out=$(mdb_stat -a "$dir")
printf '%s\n' "$stat_out"
for db in log meta kv sessions session_lru; do
	if ! printf '%s\n' "$stat_out" | grep -qx "Status of $db"; then
		echo "lmdb-tools-check: sub-database '$db' not listed by mdb_stat" >&2
		exit 1
	fi
done

# mdb_dump -p prints each key and value on its own line, indented by one space.
if ! mdb_dump -p -s kv "$dir" | grep -qxF " $key"; then
	echo "lmdb-tools-check: key '$key' not found by mdb_dump in sub-database kv" >&2
	exit 1
fi
echo "lmdb-tools-check: ok ($dir: sub-databases listed, key '$key' found)"
