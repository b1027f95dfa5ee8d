/* log.c — the core's in-memory copy of the Raft log, from a first index on (compaction, §5.1). */
#include <stdlib.h>
#include <string.h>

#include "raft/raft_int.h"

void log_init(struct raft_log *l, raft_index first, raft_term prev_term)
{
	memset(l, 0, sizeof(*l));
	l->first = first == 0 ? 1 : first;
	l->prev_term = prev_term;
}

void log_free(struct raft_log *l)
{
	for (size_t i = 0; i < l->n; i++)
		free((void *)l->entries[i].data);
	free(l->entries);
	memset(l, 0, sizeof(*l));
}

raft_index log_last_index(const struct raft_log *l)
{
	return l->first + l->n - 1;
}

raft_term log_last_term(const struct raft_log *l)
{
	return l->n ? l->entries[l->n - 1].term : l->prev_term;
}

raft_term log_term_at(const struct raft_log *l, raft_index i)
{
	if (i + 1 == l->first)
		return l->prev_term;
	if (i < l->first || i > log_last_index(l))
		return 0;
	return l->entries[i - l->first].term;
}

const struct raft_entry *log_get(const struct raft_log *l, raft_index i)
{
	if (i < l->first || i > log_last_index(l))
		return NULL;
	return &l->entries[i - l->first];
}

int log_append(struct raft_log *l, raft_term term, uint8_t type, const void *data, size_t len)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		struct raft_entry *e = realloc(l->entries, cap * sizeof(*e));
		if (e == NULL)
			return RAFT_ENOMEM;
		l->entries = e;
		l->cap = cap;
	}
	void *copy = NULL;
	if (len > 0) {
		copy = malloc(len);
		if (copy == NULL)
			return RAFT_ENOMEM;
		memcpy(copy, data, len);
	}
	struct raft_entry *e = &l->entries[l->n];
	e->term = term;
	e->index = l->first + l->n;
	e->type = type;
	e->data = copy;
	e->len = len;
	l->n++;
	return 0;
}

/* Drops entries >= from. Their data may still be referenced by an update already handed
 * out or being assembled, so it goes to the graveyard, freed two takes later. */
int log_truncate(struct raft_log *l, raft_index from, struct raft_ptrs *graveyard)
{
	if (from < l->first)
		from = l->first;
	while (l->n > 0 && log_last_index(l) >= from) {
		struct raft_entry *e = &l->entries[l->n - 1];
		if (e->data != NULL && ptrs_push(graveyard, (void *)e->data) != 0)
			return RAFT_ENOMEM;
		e->data = NULL;
		l->n--;
	}
	return 0;
}

/* Drops entries <= upto (log compaction, §5.1): upto and its term become first - 1 and
 * prev_term. Like truncation, the data may still be referenced by an update, so it goes to the
 * graveyard, which the caller made room in. */
void log_compact(struct raft_log *l, raft_index upto, struct raft_ptrs *graveyard)
{
	if (upto < l->first)
		return;
	if (upto > log_last_index(l))
		upto = log_last_index(l);
	raft_term term = log_term_at(l, upto);
	size_t k = upto - l->first + 1;
	for (size_t i = 0; i < k; i++)
		if (l->entries[i].data != NULL)
			graveyard->v[graveyard->n++] = (void *)l->entries[i].data;
	if (k < l->n)
		memmove(l->entries, l->entries + k, (l->n - k) * sizeof(*l->entries));
	l->n -= k;
	l->first = upto + 1;
	l->prev_term = term;
}

/* Drops the whole log: it now starts after (index, term), the last entry of an installed
 * snapshot (Figure 5.3: "discard the entire log"). */
void log_reset(struct raft_log *l, raft_index index, raft_term term, struct raft_ptrs *graveyard)
{
	for (size_t i = 0; i < l->n; i++)
		if (l->entries[i].data != NULL)
			graveyard->v[graveyard->n++] = (void *)l->entries[i].data;
	l->n = 0;
	l->first = index + 1;
	l->prev_term = term;
}
