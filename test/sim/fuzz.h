/* fuzz.h — one randomized simulator run per seed: cluster, faults and schedule drawn from it. */
#ifndef CAIRN_SIM_FUZZ_H
#define CAIRN_SIM_FUZZ_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define FUZZ_TEXT_MAX 16384

struct fuzz_result {
	bool failed;
	unsigned n_nodes;
	uint64_t elections, leaders, commits, reads;
	uint64_t drops, dups, partitions, crashes, restarts;
	uint64_t virtual_ms, steps;
	uint64_t compactions, snapshots_sent, snapshots_lost, snapshots_declined;
	uint64_t snapshots_installed, installs_failed;	  /* failed: reported failed or crashed */
	uint64_t snapshots_unreported, snapshots_aborted; /* aborted: by the leader's core */
	/* On failure: "FAIL seed=<s>: <invariant>: <detail> ... replay: CAIRN_SEED=<s> make sim"
	 * on the first line, then the last events of the trace. */
	char text[FUZZ_TEXT_MAX];
};

/* Runs seed `seed`: draws a cluster size (3, 5, 7), raft tunables, a fault mix (loss,
 * duplication, reordering, partitions both ways, crashes and restarts, slow disks, leadership
 * transfers, reads, log compaction with snapshot transfers and installs) and a schedule of client
 * proposals and faults for some virtual time; then heals everything and checks liveness. Invariants
 * are checked after every event. `trace`: when set, every event (and the plan) is printed there as
 * it happens. Returns 0 when the seed passed, SIM_EFAILED when it found a violation (out->text says
 * which), or another SIM_E* if the simulator could not be set up. */
int fuzz_run_seed(uint64_t seed, FILE *trace, struct fuzz_result *out);

#endif /* CAIRN_SIM_FUZZ_H */
