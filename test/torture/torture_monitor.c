/* torture_monitor.c — polls Status of every member from its own libcairn client and records each
 * (term, leader) pair the first time one member claims leadership in that term. */
#include "test/torture/torture_monitor.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "client/cairn.h"
#include "test/torture/workload.h"

#define TMON_STATUS_TIMEOUT_MS 250

struct tmon {
	pthread_t thread;
	bool started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stop; /* under mu */
	int n;
	char addr[H_MAX_MEMBERS + 1][32];
	int period_ms;
	int64_t t0_ns;
	cairn_client *client;
	struct tmon_leader *leaders;
	size_t n_leaders, cap;
};

static void record(struct tmon *m, uint64_t term, int member)
{
	for (size_t i = 0; i < m->n_leaders; i++)
		if (m->leaders[i].term == term && m->leaders[i].member == member)
			return;
	if (m->n_leaders == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 32;
		struct tmon_leader *l = realloc(m->leaders, cap * sizeof(*l));
		if (l == NULL)
			return;
		m->leaders = l;
		m->cap = cap;
	}
	m->leaders[m->n_leaders++] =
	    (struct tmon_leader){.t_ns = wl_now_ns() - m->t0_ns, .term = term, .member = member};
}

static void *tmon_main(void *arg)
{
	struct tmon *m = arg;
	pthread_mutex_lock(&m->mu);
	while (!m->stop) {
		pthread_mutex_unlock(&m->mu);
		for (int id = 1; id <= m->n; id++) {
			struct cairn_status_result *st = NULL;
			if (cairn_status(m->client, m->addr[id], TMON_STATUS_TIMEOUT_MS, &st, NULL,
					 0) == 0) {
				if (st->role != NULL && strcmp(st->role, "leader") == 0)
					record(m, st->raft_term, id);
				cairn_status_result_free(st);
			}
		}
		pthread_mutex_lock(&m->mu);
		if (m->stop)
			break;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += (long)m->period_ms * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&m->cv, &m->mu, &ts);
	}
	pthread_mutex_unlock(&m->mu);
	return NULL;
}

int tmon_start(struct tmon **out, const struct h_cluster *c, int64_t t0_ns, int period_ms)
{
	*out = NULL;
	struct tmon *m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -1;
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	m->n = c->n;
	m->period_ms = period_ms;
	m->t0_ns = t0_ns;
	for (int id = 1; id <= c->n; id++)
		snprintf(m->addr[id], sizeof(m->addr[id]), "%s", c->m[id].client_addr);
	struct cairn_options o = {.connect_timeout_ms = TMON_STATUS_TIMEOUT_MS};
	if (cairn_connect(m->addr[1], &o, &m->client, NULL, 0) != 0 ||
	    pthread_create(&m->thread, NULL, tmon_main, m) != 0) {
		tmon_free(m);
		return -1;
	}
	m->started = true;
	*out = m;
	return 0;
}

void tmon_stop(struct tmon *m)
{
	if (m == NULL || !m->started)
		return;
	pthread_mutex_lock(&m->mu);
	m->stop = true;
	pthread_cond_signal(&m->cv);
	pthread_mutex_unlock(&m->mu);
	pthread_join(m->thread, NULL);
	m->started = false;
}

void tmon_free(struct tmon *m)
{
	if (m == NULL)
		return;
	tmon_stop(m);
	if (m->client != NULL)
		cairn_close(m->client);
	pthread_mutex_destroy(&m->mu);
	pthread_cond_destroy(&m->cv);
	free(m->leaders);
	free(m);
}

const struct tmon_leader *tmon_leaders(const struct tmon *m, size_t *n)
{
	*n = m->n_leaders;
	return m->leaders;
}
