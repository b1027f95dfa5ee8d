/* torture_monitor.h — a thread that polls every member's Status during a torture run to see
 * which member leads in which term (leader changes, for the summary and the plot). */
#ifndef CAIRN_TORTURE_MONITOR_H
#define CAIRN_TORTURE_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include "test/integration/harness.h"

/* A leader seen for the first time: (term, member) at time t_ns (since the history's t0). */
struct tmon_leader {
	int64_t t_ns;
	uint64_t term;
	int member;
};

struct tmon;

/* Starts polling the client addresses of c's members every `period_ms`. Returns 0 or -1. */
int tmon_start(struct tmon **out, const struct h_cluster *c, int64_t t0_ns, int period_ms);
/* Stops the thread; the observations stay readable until tmon_free(). */
void tmon_stop(struct tmon *m);
void tmon_free(struct tmon *m);
/* Leaders observed, in the order they were first seen (valid after tmon_stop). */
const struct tmon_leader *tmon_leaders(const struct tmon *m, size_t *n);

#endif /* CAIRN_TORTURE_MONITOR_H */
