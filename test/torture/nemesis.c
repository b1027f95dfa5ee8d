/* nemesis.c — the torture fault injector: builds a seeded schedule and applies each fault to a
 * harness cluster (kill -9, SIGSTOP, partitions / one-way loss / delays through the harness's
 * link API: the proxy or nftables in network namespaces), then heals it. */
#include "test/torture/nemesis.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "test/torture/torture_rand.h"
#include "test/torture/workload.h"

#define NEM_STREAM_PLAN	    0x6e656d70u /* "nemp" */
#define NEM_FIRST_QUIET_MIN 1000
#define NEM_FIRST_QUIET_MAX 2000
#define NEM_QUIET_MIN	    800
#define NEM_QUIET_MAX	    2000
#define NEM_END_MARGIN_MS   500 /* every fault is healed this long before the end */
#define NEM_MIN_EFFECTIVE   800 /* a fault cut shorter than this is left out */
#define NEM_DELAY_MIN_MS    20
#define NEM_DELAY_MAX_MS    800
#define NEM_LEADER_WAIT_MS  2000 /* finding the leader before a fault */
#define NEM_STATUS_MS	    300
#define NEM_OVERLAP_PCT	    40	/* share of faults started inside the previous one */
#define NEM_OVERLAP_EDGE_MS 300 /* ... at least this far from its start and end */

struct kind_info {
	const char *name;
	int family;
	int min_nodes;
	int dur_min, dur_max; /* ms */
};

static const struct kind_info kinds[NEM__COUNT] = {
    [NEM_KILL_FOLLOWER] = {"kill-follower", NEM_FAM_KILL, 2, 1000, 4000},
    [NEM_KILL_LEADER] = {"kill-leader", NEM_FAM_KILL, 1, 1000, 4000},
    [NEM_KILL_MAJORITY] = {"kill-majority", NEM_FAM_KILL, 2, 1000, 3000},
    [NEM_PAUSE_LEADER] = {"pause-leader", NEM_FAM_PAUSE, 1, 1000, 4000},
    [NEM_PAUSE_FOLLOWER] = {"pause-follower", NEM_FAM_PAUSE, 2, 1000, 4000},
    [NEM_PARTITION_LEADER] = {"partition-leader", NEM_FAM_PARTITION, 3, 1500, 5000},
    [NEM_PARTITION_SPLIT] = {"partition-split", NEM_FAM_PARTITION, 3, 1500, 5000},
    [NEM_PARTITION_BRIDGE] = {"partition-bridge", NEM_FAM_PARTITION, 5, 1500, 5000},
    [NEM_PARTITION_RING] = {"partition-ring", NEM_FAM_PARTITION, 5, 1500, 5000},
    [NEM_ONEWAY_LEADER_OUT] = {"oneway-leader-out", NEM_FAM_ONEWAY, 3, 1500, 5000},
    [NEM_ONEWAY_LEADER_IN] = {"oneway-leader-in", NEM_FAM_ONEWAY, 3, 1500, 5000},
    [NEM_DELAY_ALL] = {"delay-all", NEM_FAM_DELAY, 2, 2000, 5000},
    [NEM_DELAY_LEADER] = {"delay-leader", NEM_FAM_DELAY, 2, 2000, 5000},
};

static const char *const family_names[NEM_FAM__COUNT] = {
    [NEM_FAM_KILL] = "kill",	 [NEM_FAM_PAUSE] = "pause", [NEM_FAM_PARTITION] = "partition",
    [NEM_FAM_ONEWAY] = "oneway", [NEM_FAM_DELAY] = "delay",
};

const char *nem_kind_name(int kind)
{
	return kind >= 0 && kind < NEM__COUNT ? kinds[kind].name : "?";
}

const char *nem_family_name(int family)
{
	return family >= 0 && family < NEM_FAM__COUNT ? family_names[family] : "?";
}

int nem_kind_family(int kind)
{
	return kind >= 0 && kind < NEM__COUNT ? kinds[kind].family : -1;
}

int nem_kind_min_nodes(int kind)
{
	return kind >= 0 && kind < NEM__COUNT ? kinds[kind].min_nodes : 1000;
}

int nem_parse_faults(const char *list, int nodes, unsigned *mask, char *err, size_t errlen)
{
	*mask = 0;
	if (list == NULL)
		return 0;
	char *copy = strdup(list);
	if (copy == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int rv = 0;
	char *save = NULL;
	for (char *tok = strtok_r(copy, ", ", &save); tok != NULL;
	     tok = strtok_r(NULL, ", ", &save)) {
		unsigned m = 0;
		if (strcmp(tok, "all") == 0) {
			m = (1u << NEM__COUNT) - 1;
		} else if (strcmp(tok, "none") == 0) {
			m = 0;
		} else {
			for (int k = 0; k < NEM__COUNT; k++)
				if (strcmp(tok, kinds[k].name) == 0 ||
				    strcmp(tok, family_names[kinds[k].family]) == 0)
					m |= 1u << k;
			if (m == 0) {
				snprintf(err, errlen,
					 "unknown fault '%s' (families: kill, pause, partition, "
					 "oneway, delay; or a kind such as kill-leader)",
					 tok);
				rv = -1;
				break;
			}
		}
		*mask |= m;
	}
	free(copy);
	for (int k = 0; k < NEM__COUNT; k++)
		if (nodes < kinds[k].min_nodes)
			*mask &= ~(1u << k);
	return rv;
}

void nem_mask_describe(unsigned mask, char *buf, size_t len)
{
	size_t pos = 0;
	if (len > 0)
		buf[0] = '\0';
	for (int k = 0; k < NEM__COUNT; k++)
		if ((mask & (1u << k)) && pos < len)
			pos += (size_t)snprintf(buf + pos, len - pos, "%s%s", pos ? "," : "",
						kinds[k].name);
	if (mask == 0)
		snprintf(buf, len, "none");
}

/* ---- schedule ------------------------------------------------------------------------------- */

static int pick_kind_of_family(uint64_t *rng, unsigned mask, int family)
{
	int cand[NEM__COUNT], n = 0;
	for (int k = 0; k < NEM__COUNT; k++)
		if ((mask & (1u << k)) && kinds[k].family == family)
			cand[n++] = k;
	return n == 0 ? -1 : cand[t_rand_below(rng, (uint64_t)n)];
}

int nem_plan_make(uint64_t seed, int duration_ms, int nodes, unsigned mask, bool overlap,
		  struct nem_plan *out)
{
	(void)nodes; /* the mask already excludes what `nodes` cannot do */
	out->ev = NULL;
	out->n = 0;
	uint64_t rng = t_rand_seed(seed, NEM_STREAM_PLAN);
	int fams[NEM_FAM__COUNT], nf = 0;
	for (int f = 0; f < NEM_FAM__COUNT; f++)
		for (int k = 0; k < NEM__COUNT; k++)
			if ((mask & (1u << k)) && kinds[k].family == f) {
				fams[nf++] = f;
				break;
			}
	/* the first faults cover every family once, in a seeded order */
	for (int i = nf - 1; i > 0; i--) {
		int j = (int)t_rand_below(&rng, (uint64_t)i + 1);
		int t = fams[i];
		fams[i] = fams[j];
		fams[j] = t;
	}
	if (nf == 0)
		return 0;
	size_t cap = 16;
	out->ev = calloc(cap, sizeof(*out->ev));
	if (out->ev == NULL)
		return -1;
	int t = t_rand_range(&rng, NEM_FIRST_QUIET_MIN, NEM_FIRST_QUIET_MAX);
	bool prev_overlapped = false;
	for (int i = 0;; i++) {
		int fam = i < nf ? fams[i] : fams[t_rand_below(&rng, (uint64_t)nf)];
		int kind = pick_kind_of_family(&rng, mask, fam);
		struct nem_event e = {
		    .kind = kind,
		    .start_ms = t,
		    .dur_ms = t_rand_range(&rng, kinds[kind].dur_min, kinds[kind].dur_max),
		    .pick = t_rand_next(&rng),
		    .link_mode = t_rand_below(&rng, 2) ? H_LINK_BLACKHOLE : H_LINK_DROP,
		    .delay_ms = t_rand_range(&rng, NEM_DELAY_MIN_MS, NEM_DELAY_MAX_MS),
		};
		int quiet = t_rand_range(&rng, NEM_QUIET_MIN, NEM_QUIET_MAX);
		int ov = (int)t_rand_below(&rng, 100);
		/* overlap: start inside the previous fault (which overlapped nothing) */
		const struct nem_event *prev = out->n > 0 ? &out->ev[out->n - 1] : NULL;
		bool inside = overlap && prev != NULL && !prev_overlapped && ov < NEM_OVERLAP_PCT &&
			      prev->dur_ms >= 2 * NEM_OVERLAP_EDGE_MS;
		if (inside) {
			e.start_ms = prev->start_ms + NEM_OVERLAP_EDGE_MS +
				     (int)(t_rand_next(&rng) %
					   (uint64_t)(prev->dur_ms - 2 * NEM_OVERLAP_EDGE_MS + 1));
			t = e.start_ms;
		}
		int room = duration_ms - NEM_END_MARGIN_MS - t;
		if (e.dur_ms > room)
			e.dur_ms = room;
		if (e.dur_ms < NEM_MIN_EFFECTIVE)
			break;
		int end = e.start_ms + e.dur_ms;
		if (inside && prev->start_ms + prev->dur_ms > end)
			end = prev->start_ms + prev->dur_ms;
		if (out->n == cap) {
			cap *= 2;
			struct nem_event *ev = realloc(out->ev, cap * sizeof(*ev));
			if (ev == NULL) {
				nem_plan_free(out);
				return -1;
			}
			out->ev = ev;
		}
		out->ev[out->n++] = e;
		prev_overlapped = inside;
		t = end + quiet;
	}
	return 0;
}

void nem_plan_free(struct nem_plan *p)
{
	free(p->ev);
	p->ev = NULL;
	p->n = 0;
}

static bool is_network(int kind)
{
	int f = kinds[kind].family;
	return f == NEM_FAM_PARTITION || f == NEM_FAM_ONEWAY || f == NEM_FAM_DELAY;
}

void nem_event_describe(const struct nem_event *e, char *buf, size_t len)
{
	char extra[48] = "";
	if (kinds[e->kind].family == NEM_FAM_DELAY)
		snprintf(extra, sizeof(extra), ", %d ms delay", e->delay_ms);
	else if (is_network(e->kind))
		snprintf(extra, sizeof(extra), ", %s",
			 e->link_mode == H_LINK_BLACKHOLE ? "blackhole" : "drop");
	snprintf(buf, len, "%s at +%d.%03ds for %d ms%s", kinds[e->kind].name, e->start_ms / 1000,
		 e->start_ms % 1000, e->dur_ms, extra);
}

/* ---- applying ------------------------------------------------------------------------------- */

void nem_init(struct nemesis *nm, struct h_cluster *c, int64_t t0_ns, FILE *log, bool echo)
{
	memset(nm, 0, sizeof(*nm));
	nm->c = c;
	nm->t0_ns = t0_ns;
	nm->log = log;
	nm->echo = echo;
}

void nem_free(struct nemesis *nm)
{
	free(nm->faults);
	nm->faults = NULL;
	nm->n_faults = nm->cap_faults = 0;
}

static int64_t rel_now(const struct nemesis *nm)
{
	return wl_now_ns() - nm->t0_ns;
}

void nem_logf(struct nemesis *nm, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	int64_t t = rel_now(nm);
	if (nm->log != NULL) {
		fprintf(nm->log, "+%lld.%03llds %s\n", (long long)(t / 1000000000),
			(long long)(t / 1000000 % 1000), msg);
		fflush(nm->log);
	}
	if (nm->echo) {
		printf("  +%lld.%03llds %s\n", (long long)(t / 1000000000),
		       (long long)(t / 1000000 % 1000), msg);
		fflush(stdout);
	}
}

static int find_leader_term(struct nemesis *nm, int timeout_ms, uint64_t *term_out)
{
	struct h_cluster *c = nm->c;
	uint64_t deadline = h_now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int leader = 0;
		uint64_t best = 0;
		unsigned alive = h_alive_mask(c);
		for (int id = 1; id <= c->n; id++) {
			if (!(alive & (1u << id)))
				continue;
			Cairn__Response *r = h_member_status(c, id, NEM_STATUS_MS);
			if (r == NULL)
				continue;
			if (r->status->role != NULL && strcmp(r->status->role, "leader") == 0 &&
			    r->status->raft_term >= best) {
				best = r->status->raft_term;
				leader = id;
			}
			h_free(r);
		}
		if (leader != 0 || h_now_ms() >= deadline) {
			if (term_out)
				*term_out = best;
			return leader;
		}
		h_pause_ms(20);
	}
}

int nem_find_leader(struct nemesis *nm, int timeout_ms)
{
	return find_leader_term(nm, timeout_ms, NULL);
}

/* Running, unpaused members other than `except`, in id order. */
static int others(struct h_cluster *c, int except, int *out)
{
	int n = 0;
	unsigned alive = h_alive_mask(c);
	for (int id = 1; id <= c->n; id++)
		if ((alive & (1u << id)) && id != except)
			out[n++] = id;
	return n;
}

/* A permutation of 1..n drawn from rng. */
static void shuffle_ids(uint64_t *rng, int n, int *perm)
{
	for (int i = 0; i < n; i++)
		perm[i] = i + 1;
	for (int i = n - 1; i > 0; i--) {
		int j = (int)t_rand_below(rng, (uint64_t)i + 1);
		int t = perm[i];
		perm[i] = perm[j];
		perm[j] = t;
	}
}

static size_t mask_ids(unsigned mask, int n, char *buf, size_t len)
{
	size_t pos = 0;
	buf[0] = '\0';
	for (int id = 1; id <= n; id++)
		if ((mask & (1u << id)) && pos < len)
			pos += (size_t)snprintf(buf + pos, len - pos, "%s%d", pos ? "," : "", id);
	return pos;
}

static struct nem_fault *new_fault(struct nemesis *nm)
{
	if (nm->n_faults == nm->cap_faults) {
		size_t cap = nm->cap_faults ? nm->cap_faults * 2 : 16;
		struct nem_fault *f = realloc(nm->faults, cap * sizeof(*f));
		if (f == NULL)
			abort();
		nm->faults = f;
		nm->cap_faults = cap;
	}
	struct nem_fault *f = &nm->faults[nm->n_faults++];
	memset(f, 0, sizeof(*f));
	f->end_ns = -1;
	f->recovered_ns = -1;
	return f;
}

/* Sets every link to the combination of what the active faults want. */
static void apply_links(struct nemesis *nm)
{
	struct h_cluster *c = nm->c;
	if (!h_cluster_has_links(c))
		return;
	int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	memset(mode, 0, sizeof(mode));
	memset(delay, 0, sizeof(delay));
	for (int i = 0; i < nm->n_active; i++) {
		const struct nem_active *a = &nm->active[i];
		if (!a->links)
			continue;
		for (int f = 1; f <= c->n; f++)
			for (int t = 1; t <= c->n; t++) {
				int m = a->mode[f][t];
				if (m == H_LINK_DROP || m == H_LINK_BLACKHOLE) {
					if (mode[f][t] != H_LINK_DROP &&
					    mode[f][t] != H_LINK_BLACKHOLE)
						mode[f][t] =
						    m; /* a cut wins; the first cut stays */
				} else if (m == H_LINK_DELAY && mode[f][t] != H_LINK_DROP &&
					   mode[f][t] != H_LINK_BLACKHOLE) {
					mode[f][t] = H_LINK_DELAY;
					if (a->delay[f][t] > delay[f][t])
						delay[f][t] = a->delay[f][t];
				}
			}
	}
	h_link_set_matrix(c, mode, delay);
}

size_t nem_inject(struct nemesis *nm, const struct nem_event *e)
{
	struct h_cluster *c = nm->c;
	int n = c->n;
	if (nm->n_active == NEM_MAX_ACTIVE)
		nem_heal_fault(nm, nm->active[0].fault);
	nem_check_crashes(nm, true);
	uint64_t rng = e->pick;
	uint64_t term = 0;
	int leader = find_leader_term(nm, NEM_LEADER_WAIT_MS, &term);
	int target = leader;
	char note[64] = "";
	int cand[H_MAX_MEMBERS];
	int fam = kinds[e->kind].family;
	bool wants_leader = e->kind == NEM_KILL_LEADER || e->kind == NEM_PAUSE_LEADER ||
			    e->kind == NEM_PARTITION_LEADER || e->kind == NEM_ONEWAY_LEADER_OUT ||
			    e->kind == NEM_ONEWAY_LEADER_IN || e->kind == NEM_DELAY_LEADER;
	if (wants_leader && target == 0) {
		int k = others(c, 0, cand);
		target = k > 0 ? cand[t_rand_below(&rng, (uint64_t)k)] : 0;
		snprintf(note, sizeof(note), " (no leader found: a random member)");
	}
	struct nem_fault *f = new_fault(nm);
	size_t fault = nm->n_faults - 1;
	f->kind = e->kind;
	f->leader_before = leader;
	f->start_ns = rel_now(nm);
	struct nem_active *act = &nm->active[nm->n_active++];
	memset(act, 0, sizeof(*act));
	act->fault = fault;
	int(*mode)[H_MAX_MEMBERS + 1] = act->mode;
	int(*delay)[H_MAX_MEMBERS + 1] = act->delay;
	const char *lm = e->link_mode == H_LINK_BLACKHOLE ? "blackhole" : "drop";
	char ids[32], ids2[32];
	int perm[H_MAX_MEMBERS];

	switch (e->kind) {
	case NEM_KILL_FOLLOWER:
	case NEM_PAUSE_FOLLOWER: {
		int k = others(c, leader, cand);
		target = k > 0 ? cand[t_rand_below(&rng, (uint64_t)k)] : 0;
		if (target == 0) {
			snprintf(f->desc, sizeof(f->desc), "%s: no running follower: nothing done",
				 kinds[e->kind].name);
			break;
		}
		if (e->kind == NEM_KILL_FOLLOWER) {
			h_member_kill(c, target);
			act->killed = 1u << target;
		} else {
			h_member_pause(c, target);
			act->paused = 1u << target;
		}
		snprintf(f->desc, sizeof(f->desc), "%s: member %d (leader %d)", kinds[e->kind].name,
			 target, leader);
		break;
	}
	case NEM_KILL_LEADER:
	case NEM_PAUSE_LEADER:
		if (target == 0) {
			snprintf(f->desc, sizeof(f->desc), "%s: no running member: nothing done",
				 kinds[e->kind].name);
			break;
		}
		if (e->kind == NEM_KILL_LEADER) {
			h_member_kill(c, target);
			act->killed = 1u << target;
		} else {
			h_member_pause(c, target);
			act->paused = 1u << target;
		}
		snprintf(f->desc, sizeof(f->desc), "%s: member %d (term %llu)%s",
			 kinds[e->kind].name, target, (unsigned long long)term, note);
		break;
	case NEM_KILL_MAJORITY: {
		/* down members count towards the majority */
		int want = n / 2 + 1 - (n - __builtin_popcount(h_alive_mask(c)));
		unsigned victims = 0;
		if (leader != 0)
			victims |= 1u << leader;
		int k = others(c, leader, cand);
		/* the rest at random among the running members */
		for (int i = k - 1; i > 0; i--) {
			int j = (int)t_rand_below(&rng, (uint64_t)i + 1);
			int t = cand[i];
			cand[i] = cand[j];
			cand[j] = t;
		}
		for (int i = 0; i < k && __builtin_popcount(victims) < want; i++)
			victims |= 1u << cand[i];
		if (want <= 0)
			victims = 0;
		for (int id = 1; id <= n; id++)
			if (victims & (1u << id))
				h_member_kill(c, id);
		act->killed = victims;
		mask_ids(victims, n, ids, sizeof(ids));
		snprintf(f->desc, sizeof(f->desc), "kill-majority: members %s (leader %d)", ids,
			 leader);
		break;
	}
	case NEM_PARTITION_LEADER:
	case NEM_ONEWAY_LEADER_OUT:
	case NEM_ONEWAY_LEADER_IN:
		if (target == 0) {
			snprintf(f->desc, sizeof(f->desc), "%s: no member: nothing done",
				 kinds[e->kind].name);
			break;
		}
		for (int k = 1; k <= n; k++) {
			if (k == target)
				continue;
			if (e->kind != NEM_ONEWAY_LEADER_IN)
				mode[target][k] = e->link_mode;
			if (e->kind != NEM_ONEWAY_LEADER_OUT)
				mode[k][target] = e->link_mode;
		}
		act->links = true;
		apply_links(nm);
		snprintf(f->desc, sizeof(f->desc), "%s: member %d (term %llu), %s%s",
			 kinds[e->kind].name, target, (unsigned long long)term, lm, note);
		break;
	case NEM_PARTITION_SPLIT: {
		shuffle_ids(&rng, n, perm);
		unsigned minority = 0;
		for (int i = 0; i < n / 2; i++)
			minority |= 1u << perm[i];
		for (int a = 1; a <= n; a++)
			for (int b = 1; b <= n; b++)
				if (a != b && !!(minority & (1u << a)) != !!(minority & (1u << b)))
					mode[a][b] = e->link_mode;
		act->links = true;
		apply_links(nm);
		unsigned all = ((1u << (n + 1)) - 2);
		mask_ids(all & ~minority, n, ids, sizeof(ids));
		mask_ids(minority, n, ids2, sizeof(ids2));
		snprintf(f->desc, sizeof(f->desc), "partition-split: {%s} | {%s} (leader %d), %s",
			 ids, ids2, leader, lm);
		break;
	}
	case NEM_PARTITION_BRIDGE: {
		shuffle_ids(&rng, n, perm);
		/* perm[0], perm[1] | perm[2] bridges | perm[3], perm[4] */
		for (int i = 0; i < 2; i++)
			for (int j = 3; j < 5; j++) {
				mode[perm[i]][perm[j]] = e->link_mode;
				mode[perm[j]][perm[i]] = e->link_mode;
			}
		act->links = true;
		apply_links(nm);
		snprintf(f->desc, sizeof(f->desc),
			 "partition-bridge: {%d,%d} | %d | {%d,%d} (leader %d), %s", perm[0],
			 perm[1], perm[2], perm[3], perm[4], leader, lm);
		break;
	}
	case NEM_PARTITION_RING: {
		shuffle_ids(&rng, n, perm);
		for (int i = 0; i < n; i++)
			for (int j = 0; j < n; j++) {
				int d = (i - j + n) % n;
				if (i != j && d != 1 && d != n - 1)
					mode[perm[i]][perm[j]] = e->link_mode;
			}
		act->links = true;
		apply_links(nm);
		snprintf(
		    f->desc, sizeof(f->desc),
		    "partition-ring: %d-%d-%d-%d-%d-(%d), each sees its neighbours (leader %d), %s",
		    perm[0], perm[1], perm[2], perm[3], perm[4], perm[0], leader, lm);
		break;
	}
	case NEM_DELAY_ALL:
	case NEM_DELAY_LEADER:
		if (e->kind == NEM_DELAY_LEADER && target == 0) {
			snprintf(f->desc, sizeof(f->desc), "delay-leader: no member: nothing done");
			break;
		}
		for (int a = 1; a <= n; a++)
			for (int b = 1; b <= n; b++)
				if (a != b &&
				    (e->kind == NEM_DELAY_ALL || a == target || b == target)) {
					mode[a][b] = H_LINK_DELAY;
					delay[a][b] = e->delay_ms;
				}
		act->links = true;
		apply_links(nm);
		if (e->kind == NEM_DELAY_ALL)
			snprintf(f->desc, sizeof(f->desc),
				 "delay-all: %d ms on every link (leader %d)", e->delay_ms, leader);
		else
			snprintf(f->desc, sizeof(f->desc),
				 "delay-leader: %d ms on member %d's links%s", e->delay_ms, target,
				 note);
		break;
	default:
		snprintf(f->desc, sizeof(f->desc), "unknown fault kind %d", e->kind);
		break;
	}
	(void)fam;
	f->targets = act->killed | act->paused;
	if (target != 0 && wants_leader)
		f->targets |= 1u << target;
	if (nm->n_active > 1)
		nem_logf(nm, "start %s (while %d other fault%s active)", f->desc, nm->n_active - 1,
			 nm->n_active > 2 ? "s are" : " is");
	else
		nem_logf(nm, "start %s", f->desc);
	return fault;
}

void nem_heal_fault(struct nemesis *nm, size_t fault)
{
	int ai = -1;
	for (int i = 0; i < nm->n_active; i++)
		if (nm->active[i].fault == fault)
			ai = i;
	if (ai < 0)
		return;
	struct h_cluster *c = nm->c;
	struct nem_active a = nm->active[ai];
	memmove(&nm->active[ai], &nm->active[ai + 1],
		(size_t)(nm->n_active - ai - 1) * sizeof(nm->active[0]));
	nm->n_active--;
	struct nem_fault *f = &nm->faults[fault];
	char done[160] = "";
	size_t pos = 0;
	if (a.links) {
		apply_links(nm);
		pos += (size_t)snprintf(done + pos, sizeof(done) - pos, " links healed%s;",
					nm->n_active > 0 ? " (but for other faults)" : "");
	}
	for (int id = 1; id <= c->n; id++) {
		if ((a.paused & (1u << id)) && c->m[id].pid > 0 && c->m[id].paused) {
			h_member_resume(c, id);
			pos += (size_t)snprintf(done + pos, sizeof(done) - pos, " %d resumed;", id);
		}
	}
	nem_check_crashes(nm, false);
	for (int id = 1; id <= c->n; id++) {
		if ((a.killed & (1u << id)) && c->m[id].pid == 0) {
			if (h_member_try_start(c, id, NULL)) {
				pos += (size_t)snprintf(done + pos, sizeof(done) - pos,
							" %d restarted;", id);
			} else {
				nm->restart_failures++;
				pos += (size_t)snprintf(done + pos, sizeof(done) - pos,
							" %d FAILED TO RESTART (status %#x);", id,
							(unsigned)c->m[id].last_status);
			}
		}
	}
	if (pos > 0 && done[pos - 1] == ';')
		done[pos - 1] = '\0';
	f->end_ns = rel_now(nm);
	nem_logf(nm, "end   %s:%s", kinds[f->kind].name, done[0] ? done : " nothing to undo");
}

void nem_heal(struct nemesis *nm)
{
	while (nm->n_active > 0)
		nem_heal_fault(nm, nm->active[0].fault);
}

int nem_check_crashes(struct nemesis *nm, bool restart)
{
	struct h_cluster *c = nm->c;
	int found = 0;
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		if (m->pid <= 0 || m->paused)
			continue;
		int st = h_member_wait_exit(c, id, 0);
		if (st == -1)
			continue; /* still running */
		found++;
		nm->crashes++;
		char why[64];
		if (WIFEXITED(st))
			snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(st));
		else if (WIFSIGNALED(st))
			snprintf(why, sizeof(why), "killed by signal %d", WTERMSIG(st));
		else
			snprintf(why, sizeof(why), "wait status %#x", (unsigned)st);
		size_t l = strlen(nm->crash_report);
		snprintf(nm->crash_report + l, sizeof(nm->crash_report) - l,
			 "member %d exited on its own (%s) at +%.3fs, see %s; ", id, why,
			 (double)rel_now(nm) / 1e9, m->log_path);
		nem_logf(nm, "CRASH member %d exited on its own: %s", id, why);
		if (restart) {
			bool ok = h_member_try_start(c, id, NULL);
			if (!ok)
				nm->restart_failures++;
			nem_logf(nm, "restart member %d after its crash: %s", id,
				 ok ? "ok" : "FAILED");
		}
	}
	return found;
}

void nem_heal_all(struct nemesis *nm)
{
	struct h_cluster *c = nm->c;
	nem_heal(nm);
	nem_check_crashes(nm, false);
	if (h_cluster_has_links(c))
		h_heal(c);
	for (int id = 1; id <= c->n; id++) {
		struct h_member *m = &c->m[id];
		if (m->pid > 0 && m->paused)
			h_member_resume(c, id);
		if (m->pid == 0) {
			bool ok = h_member_try_start(c, id, NULL);
			if (!ok)
				nm->restart_failures++;
			nem_logf(nm, "heal: start member %d: %s", id, ok ? "ok" : "FAILED");
		}
	}
	nem_logf(nm, "healed: every member running, every link passing");
}
