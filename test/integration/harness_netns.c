/* harness_netns.c — network namespaces, veths, a bridge and nftables rules for the harness's
 * H_NET_NETNS mode (see harness_netns.h and docs/testing.md).
 *
 * Layout of one cluster (tag = "<pid>x<k>", k counting the clusters of this process):
 *
 *   root namespace            hub namespace cairn<tag>hub        member namespace cairn<tag>m<id>
 *   cn<tag> 10.a.b.254/24 ─── up0 ┐
 *                                 br0 (bridge) ── m<id> ───────── cairn0 10.a.b.<id>/24
 *
 * The bridge lives in its own namespace rather than in the root one so that the host's
 * firewall (e.g. Docker's FORWARD policy DROP, applied to bridged traffic when br_netfilter is
 * loaded) never sees member-to-member traffic; the root namespace only has one veth, whose
 * address lets the harness process, the torture workload and cairnctl reach every member.
 * Everything is made with ip(8) and nft(8) run in a child that joined the namespace with
 * setns(2); deleting the namespaces deletes the veths and the bridge with them.
 *
 * Names carry the harness's pid so that a later harness can tell leftovers of a dead process
 * (killed by a Check timeout, or by kill -9) from those of a live one, and remove them.
 */
#define _GNU_SOURCE /* setns, unshare, pipe2 */
#include "test/integration/harness_netns.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NETNS_DIR	 "/var/run/netns" /* where ip(8) keeps named namespaces */
#define NS_PREFIX	 "cairn"	  /* cairn<tag>hub, cairn<tag>m<id>, cairn<pid>probe */
#define IF_PREFIX	 "cn"		  /* the root namespace's veth: cn<tag> (<= 15 chars) */
#define MEMBER_IF	 "cairn0"	  /* a member's end of its veth, in its namespace */
#define TOOL_TIMEOUT_MS	 10000
#define TOOL_INPUT_MAX	 32768 /* written to a pipe before the fork: below its capacity */
#define MAX_LIVE	 8
#define SUBNET_FIRST	 160 /* subnets 10.160.0.0/24 .. 10.223.255.0/24 */
#define SUBNET_COUNT	 (64 * 256)
#define HUB		 0 /* index of the hub in name[] / path[] / fd[] */
#define NETEM_LIMIT_PKTS 100000

struct h_netns {
	int n;
	char tag[32];
	char subnet[24];
	char rveth[16];
	char name[H_MAX_MEMBERS + 1][48]; /* [HUB] and members 1..n */
	char path[H_MAX_MEMBERS + 1][96]; /* their files under NETNS_DIR */
	int fd[H_MAX_MEMBERS + 1];
	char ip[H_MAX_MEMBERS + 1][20];
	int peer_port[H_MAX_MEMBERS + 1];
	/* what is applied (under mu) */
	pthread_mutex_t mu;
	int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	bool has_qdisc[H_MAX_MEMBERS + 1];
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct h_netns *volatile g_live[MAX_LIVE]; /* read by netns_emergency_cleanup */
static unsigned g_seq;
/* netns_check's verdict, per process (a forked test process probes again) */
static pid_t g_checked_pid;
static int g_check_rv;
static char g_check_why[512];
static bool g_delay_ok;
static char g_delay_why[256];
static char g_ip[256], g_nft[256], g_tc[256];

/* ---- running ip, nft, tc ---------------------------------------------------------------- */

static bool find_tool(const char *name, char *buf, size_t len)
{
	/* root's PATH may lack the sbin directories when the harness runs under sudo or cron */
	const char *env = getenv("PATH");
	char dirs[2048];
	snprintf(dirs, sizeof(dirs), "%s:/usr/sbin:/sbin:/usr/bin:/bin", env ? env : "");
	char *save = NULL;
	for (char *d = strtok_r(dirs, ":", &save); d != NULL; d = strtok_r(NULL, ":", &save)) {
		if (d[0] == '\0')
			continue;
		snprintf(buf, len, "%s/%s", d, name);
		if (access(buf, X_OK) == 0)
			return true;
	}
	buf[0] = '\0';
	return false;
}

/* Output of a tool on one line, for messages. */
static void one_line(char *s)
{
	size_t l = strlen(s);
	while (l > 0 && (s[l - 1] == '\n' || s[l - 1] == ' '))
		s[--l] = '\0';
	for (char *p = s; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* snprintf for messages, where cutting a long tool output short is fine (and expected). */
static void msgf(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void msgf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/*
 * Runs tool `path` with `argv` (argv[0] its name) inside the namespace open as `nsfd` (-1: this
 * process's), with `input` (may be NULL) on its stdin; its stdout and stderr go to `out`.
 * Returns its exit status (0: success), or -1 if it could not run or took too long. The input
 * is written into the pipe before the fork, so no SIGPIPE can reach the harness.
 */
static int run_tool(const char *path, const char *const *argv, int nsfd, const char *input,
		    char *out, size_t outlen)
{
	out[0] = '\0';
	size_t inlen = input ? strlen(input) : 0;
	if (inlen > TOOL_INPUT_MAX) {
		snprintf(out, outlen, "harness: tool input too long (%zu bytes)", inlen);
		return -1;
	}
	int in[2] = {-1, -1}, o[2] = {-1, -1};
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(o, O_CLOEXEC) != 0) {
		snprintf(out, outlen, "pipe: %s", strerror(errno));
		if (in[0] >= 0) {
			close(in[0]);
			close(in[1]);
		}
		return -1;
	}
	for (size_t off = 0; off < inlen;) {
		ssize_t w = write(in[1], input + off, inlen - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	pid_t parent = getpid();
	pid_t pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		dup2(in[0], 0);
		dup2(o[1], 1);
		dup2(o[1], 2);
		if (nsfd >= 0 && setns(nsfd, CLONE_NEWNET) != 0) {
			static const char msg[] = "harness: setns failed\n";
			ssize_t w = write(2, msg, sizeof(msg) - 1);
			(void)w;
			_exit(126);
		}
		execv(path, (char *const *)argv);
		static const char msg[] = "harness: exec failed\n";
		ssize_t w = write(2, msg, sizeof(msg) - 1);
		(void)w;
		_exit(127);
	}
	close(in[0]);
	close(o[1]);
	if (pid < 0) {
		snprintf(out, outlen, "fork: %s", strerror(errno));
		close(o[0]);
		return -1;
	}
	size_t got = 0;
	bool timed_out = false;
	uint64_t deadline = h_now_ms() + TOOL_TIMEOUT_MS;
	for (;;) {
		uint64_t now = h_now_ms();
		if (now >= deadline) {
			timed_out = true;
			kill(pid, SIGKILL);
			break;
		}
		struct pollfd p = {.fd = o[0], .events = POLLIN};
		int r = poll(&p, 1, (int)(deadline - now));
		if (r <= 0)
			continue; /* EINTR, or the deadline: checked above */
		char buf[512];
		ssize_t k = read(o[0], buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		size_t take = (size_t)k;
		if (got + take >= outlen)
			take = outlen > got + 1 ? outlen - got - 1 : 0;
		memcpy(out + got, buf, take);
		got += take;
		out[got] = '\0';
	}
	close(o[0]);
	int st = 0;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	one_line(out);
	if (timed_out) {
		size_t l = strlen(out);
		snprintf(out + l, outlen - l, "%s(killed after %d ms)", l ? " " : "",
			 TOOL_TIMEOUT_MS);
		return -1;
	}
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

/* `ip -batch -` in a namespace (-1: this one). */
static int ip_batch(int nsfd, const char *cmds, char *out, size_t len)
{
	const char *argv[] = {"ip", "-batch", "-", NULL};
	return run_tool(g_ip, argv, nsfd, cmds, out, len);
}

/* `nft -f -`: one transaction, applied entirely or not at all. */
static int nft_batch(int nsfd, const char *cmds, char *out, size_t len)
{
	const char *argv[] = {"nft", "-f", "-", NULL};
	return run_tool(g_nft, argv, nsfd, cmds, out, len);
}

static int tc_batch(int nsfd, const char *cmds, char *out, size_t len)
{
	const char *argv[] = {"tc", "-batch", "-", NULL};
	return run_tool(g_tc, argv, nsfd, cmds, out, len);
}

/* ---- namespace files and leftovers ------------------------------------------------------------
 */

/* What `ip netns del` does, with system calls only (also used from a signal handler). Returns
 * 0 or unlink's errno (ENOENT: there was nothing to remove). */
static int remove_ns_file(const char *path)
{
	umount2(path, MNT_DETACH);
	return unlink(path) == 0 ? 0 : errno;
}

/* Digits at s as a pid (0 if none); *end after them. */
static long parse_pid(const char *s, const char **end)
{
	long pid = 0;
	const char *p = s;
	while (*p >= '0' && *p <= '9' && pid < 100000000)
		pid = pid * 10 + (*p++ - '0');
	*end = p;
	return p == s ? 0 : pid;
}

static bool pid_gone(long pid)
{
	return pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Namespaces and root-namespace veths whose harness process no longer exists: removed, so a
 * crashed or killed run never leaves a cluster's network behind for long. */
static void remove_leftovers(void)
{
	DIR *d = opendir(NETNS_DIR);
	if (d != NULL) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
				continue;
			const char *end;
			long pid = parse_pid(e->d_name + strlen(NS_PREFIX), &end);
			if (pid == 0 || (*end != 'x' && strcmp(end, "probe") != 0))
				continue;
			if (!pid_gone(pid))
				continue;
			char path[512];
			snprintf(path, sizeof(path), "%s/%s", NETNS_DIR, e->d_name);
			remove_ns_file(path);
			fprintf(stderr,
				"harness: removed network namespace %s left by process %ld\n",
				e->d_name, pid);
		}
		closedir(d);
	}
	d = opendir("/sys/class/net");
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, IF_PREFIX, strlen(IF_PREFIX)) != 0)
			continue;
		const char *end;
		long pid = parse_pid(e->d_name + strlen(IF_PREFIX), &end);
		if (pid == 0 || *end != 'x' || !pid_gone(pid))
			continue;
		char cmd[300], out[512];
		snprintf(cmd, sizeof(cmd), "link del %s\n", e->d_name);
		if (ip_batch(-1, cmd, out, sizeof(out)) == 0)
			fprintf(stderr, "harness: removed interface %s left by process %ld\n",
				e->d_name, pid);
	}
	closedir(d);
}

/* ---- availability ---------------------------------------------------------------------------- */

static bool mentions_permission(const char *s)
{
	return strstr(s, "not permitted") != NULL || strstr(s, "Permission denied") != NULL;
}

/* A new network namespace in a child: 0 works, EPERM, or another errno. */
static int try_unshare(void)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (unshare(CLONE_NEWNET) == 0)
			_exit(0);
		_exit(errno == EPERM ? 1 : 2);
	}
	if (pid < 0)
		return errno;
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st))
		return EIO;
	return WEXITSTATUS(st) == 0 ? 0 : WEXITSTATUS(st) == 1 ? EPERM : EIO;
}

/* The probe's ruleset: a table, a base chain and a reject, as clusters use them. */
static const char PROBE_RULES[] =
    "table inet cairn {\n"
    "  chain output { type filter hook output priority 0; policy accept; }\n"
    "}\n"
    "add rule inet cairn output ip daddr 10.0.0.1 tcp dport 1 reject with tcp reset\n";

static int check_uncached(char *why, size_t len)
{
	if (geteuid() != 0) {
		snprintf(why, len,
			 "not running as root (network namespaces and nftables need "
			 "CAP_SYS_ADMIN and CAP_NET_ADMIN)");
		return 1;
	}
	int e = try_unshare();
	if (e == EPERM) {
		snprintf(why, len,
			 "unshare(CLONE_NEWNET): Operation not permitted (root without "
			 "CAP_SYS_ADMIN, e.g. an unprivileged container)");
		return 1;
	}
	if (e != 0) {
		snprintf(why, len, "cannot create a network namespace (unshare: %s)", strerror(e));
		return -1;
	}
	if (!find_tool("ip", g_ip, sizeof(g_ip))) {
		snprintf(why, len, "ip not found: install iproute2 (scripts/install-deps.sh)");
		return -1;
	}
	if (!find_tool("nft", g_nft, sizeof(g_nft))) {
		snprintf(why, len, "nft not found: install nftables (scripts/install-deps.sh)");
		return -1;
	}
	remove_leftovers();
	/* A scratch namespace: can ip make one, does nftables work in it, is there netem? */
	char name[64], path[128], cmd[160], out[1024];
	snprintf(name, sizeof(name), NS_PREFIX "%ldprobe", (long)getpid());
	snprintf(path, sizeof(path), "%s/%s", NETNS_DIR, name);
	remove_ns_file(path);
	snprintf(cmd, sizeof(cmd), "netns add %s\n", name);
	if (ip_batch(-1, cmd, out, sizeof(out)) != 0) {
		bool perm = mentions_permission(out);
		msgf(why, len, "ip netns add failed: %s", out);
		remove_ns_file(path);
		return perm ? 1 : -1;
	}
	int rv = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, len, "cannot open %s: %s", path, strerror(errno));
		rv = -1;
	} else if (nft_batch(fd, PROBE_RULES, out, sizeof(out)) != 0) {
		msgf(why, len, "nftables does not work in a new namespace: %s", out);
		rv = mentions_permission(out) ? 1 : -1; /* e.g. root without CAP_NET_ADMIN */
	}
	g_delay_ok = false;
	if (rv == 0 && !find_tool("tc", g_tc, sizeof(g_tc))) {
		snprintf(g_delay_why, sizeof(g_delay_why),
			 "tc not found: install iproute2 (scripts/install-deps.sh)");
	} else if (rv == 0) {
		const char *argv[] = {"tc",   "qdisc", "add",	"dev", "lo",
				      "root", "netem", "delay", "1ms", NULL};
		if (run_tool(g_tc, argv, fd, NULL, out, sizeof(out)) == 0)
			g_delay_ok = true;
		else
			msgf(g_delay_why, sizeof(g_delay_why),
			     "delays need the netem qdisc, which this kernel lacks "
			     "(CONFIG_NET_SCH_NETEM; tc says: %s)",
			     out);
	}
	if (fd >= 0)
		close(fd);
	remove_ns_file(path);
	if (rv == 0)
		snprintf(why, len, "ok");
	return rv;
}

int netns_check(char *why, size_t len)
{
	pthread_mutex_lock(&g_mu);
	if (g_checked_pid != getpid()) {
		g_check_rv = check_uncached(g_check_why, sizeof(g_check_why));
		g_checked_pid = getpid();
	}
	int rv = g_check_rv;
	snprintf(why, len, "%s", g_check_why);
	pthread_mutex_unlock(&g_mu);
	return rv;
}

bool netns_delay_supported(char *why, size_t len)
{
	pthread_mutex_lock(&g_mu);
	bool ok = g_checked_pid == getpid() && g_check_rv == 0 && g_delay_ok;
	if (!ok)
		snprintf(why, len, "%s",
			 g_checked_pid == getpid() && g_check_rv == 0 ? g_delay_why
								      : "namespaces unusable");
	pthread_mutex_unlock(&g_mu);
	return ok;
}

/* ---- subnets --------------------------------------------------------------------------------- */

/* Whether a route of the root namespace's main table overlaps 10.a.b.0/24 (the host's own
 * networks, other clusters of this or another harness). The default route is not a conflict. */
static bool subnet_in_use(uint32_t net)
{
	FILE *f = fopen("/proc/net/route", "r");
	if (f == NULL)
		return false;
	char line[512];
	bool used = false;
	if (fgets(line, sizeof(line), f) == NULL) { /* header */
		fclose(f);
		return false;
	}
	while (!used && fgets(line, sizeof(line), f) != NULL) {
		char ifname[64];
		unsigned long dest, gw, mask;
		unsigned flags, refcnt, use, metric;
		if (sscanf(line, "%63s %lx %lx %x %u %u %u %lx", ifname, &dest, &gw, &flags,
			   &refcnt, &use, &metric, &mask) != 8)
			continue;
		/* the kernel prints the network-order words as host integers */
		uint32_t d = ntohl((uint32_t)dest), m = ntohl((uint32_t)mask);
		if (m == 0)
			continue;
		uint32_t common = m & 0xffffff00u;
		if ((d & common) == (net & common))
			used = true;
	}
	fclose(f);
	return used;
}

/* A free 10.a.b.0/24, derived from the pid and the cluster's number so that concurrent
 * harness processes start from different places. */
static int pick_subnet(unsigned k, unsigned *a, unsigned *b)
{
	unsigned start = ((unsigned)getpid() * 2654435761u + k * 40503u) % SUBNET_COUNT;
	for (unsigned i = 0; i < 512; i++) {
		unsigned idx = (start + i) % SUBNET_COUNT;
		*a = SUBNET_FIRST + idx / 256;
		*b = idx % 256;
		if (!subnet_in_use(10u << 24 | *a << 16 | *b << 8))
			return 0;
	}
	return -1;
}

/* ---- clusters -------------------------------------------------------------------------------- */

static void live_add(struct h_netns *ns)
{
	pthread_mutex_lock(&g_mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (g_live[i] == NULL) {
			g_live[i] = ns;
			break;
		}
	pthread_mutex_unlock(&g_mu);
}

static void live_remove(struct h_netns *ns)
{
	pthread_mutex_lock(&g_mu);
	for (int i = 0; i < MAX_LIVE; i++)
		if (g_live[i] == ns)
			g_live[i] = NULL;
	pthread_mutex_unlock(&g_mu);
}

/* Appends printf output to a command buffer. */
static void cat(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t len, const char *fmt, ...)
{
	size_t l = strlen(buf);
	if (l >= len)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + l, len - l, fmt, ap);
	va_end(ap);
}

static bool rveth_exists(const struct h_netns *ns)
{
	char p[128];
	snprintf(p, sizeof(p), "/sys/class/net/%s", ns->rveth);
	return access(p, F_OK) == 0;
}

/* Removes whatever exists of ns; returns 0 when nothing is left. */
static int teardown(struct h_netns *ns, char *err, size_t len)
{
	err[0] = '\0';
	for (int i = 0; i <= ns->n; i++)
		if (ns->fd[i] >= 0) {
			close(ns->fd[i]);
			ns->fd[i] = -1;
		}
	char out[1024];
	/* The root veth goes with the hub namespace, but only once the kernel has freed it;
	 * deleting it here is synchronous, so `ip link` shows nothing the moment we return. */
	if (rveth_exists(ns)) {
		char cmd[64];
		snprintf(cmd, sizeof(cmd), "link del %s\n", ns->rveth);
		if (ip_batch(-1, cmd, out, sizeof(out)) != 0 && rveth_exists(ns))
			cat(err, len, "ip link del %s: %s; ", ns->rveth, out);
	}
	for (int i = 0; i <= ns->n; i++) {
		if (ns->path[i][0] == '\0')
			continue;
		int e = remove_ns_file(ns->path[i]);
		if (e != 0 && e != ENOENT)
			cat(err, len, "cannot remove %s: %s; ", ns->path[i], strerror(e));
	}
	return err[0] == '\0' ? 0 : -1;
}

struct h_netns *netns_create(int n, const int *peer_port, char *err, size_t len)
{
	char why[512];
	if (netns_check(why, sizeof(why)) != 0) {
		snprintf(err, len, "%s", why);
		return NULL;
	}
	if (n < 1 || n > H_MAX_MEMBERS) {
		snprintf(err, len, "bad member count %d", n);
		return NULL;
	}
	struct h_netns *ns = calloc(1, sizeof(*ns));
	if (ns == NULL) {
		snprintf(err, len, "out of memory");
		return NULL;
	}
	ns->n = n;
	pthread_mutex_init(&ns->mu, NULL);
	for (int i = 0; i <= H_MAX_MEMBERS; i++)
		ns->fd[i] = -1;
	pthread_mutex_lock(&g_mu);
	unsigned k = g_seq++ % 100000;
	pthread_mutex_unlock(&g_mu);
	snprintf(ns->tag, sizeof(ns->tag), "%ldx%u", (long)getpid(), k);
	/* at most 7 + 1 + 5 characters: with "cn", within IFNAMSIZ - 1 */
	snprintf(ns->rveth, sizeof(ns->rveth), IF_PREFIX "%.13s", ns->tag);
	unsigned a, b;
	if (pick_subnet(k, &a, &b) != 0) {
		snprintf(err, len, "no free 10.x.y.0/24 subnet in 10.%d-%d.*", SUBNET_FIRST,
			 SUBNET_FIRST + SUBNET_COUNT / 256 - 1);
		free(ns);
		return NULL;
	}
	snprintf(ns->subnet, sizeof(ns->subnet), "10.%u.%u.0/24", a, b);
	snprintf(ns->name[HUB], sizeof(ns->name[HUB]), NS_PREFIX "%shub", ns->tag);
	for (int id = 1; id <= n; id++) {
		snprintf(ns->name[id], sizeof(ns->name[id]), NS_PREFIX "%sm%d", ns->tag, id);
		snprintf(ns->ip[id], sizeof(ns->ip[id]), "10.%u.%u.%d", a, b, id);
		ns->peer_port[id] = peer_port[id];
	}
	for (int i = 0; i <= n; i++) {
		char p[sizeof(ns->path[i])]; /* via a local: gcc -Wrestrict sees ns on both sides */
		snprintf(p, sizeof(p), "%s/%s", NETNS_DIR, ns->name[i]);
		memcpy(ns->path[i], p, sizeof(p));
	}
	live_add(ns); /* from here on, a signal handler can remove what exists */

	char cmd[4096] = "", out[1024];
	const char *step = "ip netns add";
	for (int i = 0; i <= n; i++)
		cat(cmd, sizeof(cmd), "netns add %s\n", ns->name[i]);
	if (ip_batch(-1, cmd, out, sizeof(out)) != 0)
		goto fail;
	for (int i = 0; i <= n; i++) {
		ns->fd[i] = open(ns->path[i], O_RDONLY | O_CLOEXEC);
		if (ns->fd[i] < 0) {
			snprintf(out, sizeof(out), "open %s: %s", ns->path[i], strerror(errno));
			step = "open";
			goto fail;
		}
	}
	/* veths are created straight into their namespaces: no name clash with the host's */
	step = "veths";
	cmd[0] = '\0';
	cat(cmd, sizeof(cmd), "link add %s type veth peer name up0 netns %s\n", ns->rveth,
	    ns->name[HUB]);
	cat(cmd, sizeof(cmd), "addr add 10.%u.%u.254/24 dev %s\n", a, b, ns->rveth);
	cat(cmd, sizeof(cmd), "link set %s up\n", ns->rveth);
	for (int id = 1; id <= n; id++)
		cat(cmd, sizeof(cmd),
		    "link add m%d netns %s type veth peer name " MEMBER_IF " netns %s\n", id,
		    ns->name[HUB], ns->name[id]);
	if (ip_batch(-1, cmd, out, sizeof(out)) != 0)
		goto fail;
	step = "hub bridge";
	cmd[0] = '\0';
	cat(cmd, sizeof(cmd), "link add br0 type bridge\nlink set br0 up\nlink set lo up\n");
	cat(cmd, sizeof(cmd), "link set up0 master br0 up\n");
	for (int id = 1; id <= n; id++)
		cat(cmd, sizeof(cmd), "link set m%d master br0 up\n", id);
	if (ip_batch(ns->fd[HUB], cmd, out, sizeof(out)) != 0)
		goto fail;
	for (int id = 1; id <= n; id++) {
		step = "member address";
		cmd[0] = '\0';
		cat(cmd, sizeof(cmd), "link set lo up\naddr add %s/24 dev " MEMBER_IF "\n",
		    ns->ip[id]);
		cat(cmd, sizeof(cmd), "link set " MEMBER_IF " up\n");
		if (ip_batch(ns->fd[id], cmd, out, sizeof(out)) != 0)
			goto fail;
		/* One table per member: chains to filter its own traffic, and a counter of the
		 * bytes it sends on each of its peer connections (h_link_bytes). */
		step = "nftables table";
		cmd[0] = '\0';
		cat(cmd, sizeof(cmd), "table inet cairn {\n");
		for (int t = 1; t <= n; t++)
			if (t != id)
				cat(cmd, sizeof(cmd), "  counter out%d { }\n", t);
		cat(cmd, sizeof(cmd),
		    "  chain output { type filter hook output priority 0; policy accept; }\n"
		    "  chain input { type filter hook input priority 0; policy accept; }\n}\n");
		for (int t = 1; t <= n; t++)
			if (t != id)
				cat(cmd, sizeof(cmd),
				    "add rule inet cairn output ip daddr %s tcp dport %d counter "
				    "name \"out%d\"\n",
				    ns->ip[t], ns->peer_port[t], t);
		if (nft_batch(ns->fd[id], cmd, out, sizeof(out)) != 0)
			goto fail;
	}
	return ns;

fail:
	msgf(err, len, "network namespaces (%s): %s", step, out);
	char terr[512];
	teardown(ns, terr, sizeof(terr));
	live_remove(ns);
	pthread_mutex_destroy(&ns->mu);
	free(ns);
	return NULL;
}

const char *netns_member_ip(const struct h_netns *ns, int id)
{
	return ns->ip[id];
}

int netns_member_fd(const struct h_netns *ns, int id)
{
	return ns->fd[id];
}

const char *netns_subnet(const struct h_netns *ns)
{
	return ns->subnet;
}

void netns_links(const struct h_netns *ns, int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		 int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1])
{
	struct h_netns *m = (struct h_netns *)ns;
	pthread_mutex_lock(&m->mu);
	memcpy(mode, ns->mode, sizeof(ns->mode));
	memcpy(delay_ms, ns->delay, sizeof(ns->delay));
	pthread_mutex_unlock(&m->mu);
}

/*
 * Member f's rules. A link (f -> t) is the TCP connection f opens to t's peer port: cairnd
 * sends its Raft messages to t only on that connection (as with the proxy), so matching the
 * destination port as well as the address keeps a one-way fault one-way — t's own connection
 * to f (and its acknowledgements) pass, so f still hears t. Client traffic to t is never
 * matched.
 *   DROP       f's packets on the link are rejected with a TCP reset delivered to f's own
 *              socket: its connects fail at once and an established connection resets on its
 *              next send (no input rule: it would eat that reset).
 *   BLACKHOLE  f's packets are dropped silently and so are t's answers on that connection:
 *              the kernel retransmits with backoff; nothing arrives; no error is reported.
 *   PASS/DELAY counted (h_link_bytes); DELAY is a netem qdisc (tc, below).
 */
static void rules_of(const struct h_netns *ns, int f,
		     const int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1], char *cmd, size_t len)
{
	cmd[0] = '\0';
	cat(cmd, len, "flush chain inet cairn output\nflush chain inet cairn input\n");
	for (int t = 1; t <= ns->n; t++) {
		if (t == f)
			continue;
		const char *ip = ns->ip[t];
		int port = ns->peer_port[t];
		switch (mode[f][t]) {
		case H_LINK_DROP:
			cat(cmd, len,
			    "add rule inet cairn output ip daddr %s tcp dport %d reject with tcp "
			    "reset\n",
			    ip, port);
			break;
		case H_LINK_BLACKHOLE:
			cat(cmd, len, "add rule inet cairn output ip daddr %s tcp dport %d drop\n",
			    ip, port);
			cat(cmd, len, "add rule inet cairn input ip saddr %s tcp sport %d drop\n",
			    ip, port);
			break;
		default:
			cat(cmd, len,
			    "add rule inet cairn output ip daddr %s tcp dport %d counter name "
			    "\"out%d\"\n",
			    ip, port, t);
			break;
		}
	}
}

/*
 * Member f's delays: an HTB root on its veth whose default class passes traffic unshaped
 * (100 Gbit/s), and per delayed peer t a class with a netem leaf, selected by a u32 filter on
 * t's address and peer port, so only the link (f -> t) is delayed.
 */
static void delays_of(const struct h_netns *ns, int f,
		      const int delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1], char *cmd, size_t len)
{
	cmd[0] = '\0';
	cat(cmd, len,
	    "qdisc add dev " MEMBER_IF " root handle 1: htb default 1\n"
	    "class add dev " MEMBER_IF " parent 1: classid 1:1 htb rate 100gbit\n");
	for (int t = 1; t <= ns->n; t++) {
		if (t == f || delay[f][t] <= 0)
			continue;
		cat(cmd, len,
		    "class add dev " MEMBER_IF " parent 1: classid 1:1%d htb rate 100gbit\n", t);
		cat(cmd, len,
		    "qdisc add dev " MEMBER_IF
		    " parent 1:1%d handle 1%d: netem delay %dms limit %d\n",
		    t, t, delay[f][t], NETEM_LIMIT_PKTS);
		cat(cmd, len,
		    "filter add dev " MEMBER_IF " parent 1: protocol ip prio 1 u32 match ip dst "
		    "%s/32 match ip dport %d 0xffff flowid 1:1%d\n",
		    ns->ip[t], ns->peer_port[t], t);
	}
}

int netns_apply(struct h_netns *ns, const int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		const int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1], char *err, size_t len)
{
	int n = ns->n;
	int want_mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	int want_delay[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1];
	memset(want_mode, 0, sizeof(want_mode));
	memset(want_delay, 0, sizeof(want_delay));
	bool delays = false;
	for (int f = 1; f <= n; f++)
		for (int t = 1; t <= n; t++) {
			if (f == t)
				continue;
			want_mode[f][t] = mode[f][t];
			if (mode[f][t] == H_LINK_DELAY && delay_ms != NULL && delay_ms[f][t] > 0) {
				want_delay[f][t] = delay_ms[f][t];
				delays = true;
			}
		}
	char why[256];
	if (delays && !netns_delay_supported(why, sizeof(why))) {
		msgf(err, len, "H_LINK_DELAY in network-namespace mode: %s", why);
		return -1;
	}
	pthread_mutex_lock(&ns->mu);
	int rv = 0;
	char cmd[8192], out[1024];
	for (int f = 1; f <= n && rv == 0; f++) {
		bool rules = false, delay = false;
		for (int t = 1; t <= n; t++) {
			/* PASS and DELAY have the same rules (a counter) */
			bool cut_now =
			    want_mode[f][t] == H_LINK_DROP || want_mode[f][t] == H_LINK_BLACKHOLE;
			bool cut_was =
			    ns->mode[f][t] == H_LINK_DROP || ns->mode[f][t] == H_LINK_BLACKHOLE;
			if ((cut_now || cut_was) && want_mode[f][t] != ns->mode[f][t])
				rules = true;
			if (want_delay[f][t] != ns->delay[f][t])
				delay = true;
		}
		if (rules) {
			rules_of(ns, f, want_mode, cmd, sizeof(cmd));
			if (nft_batch(ns->fd[f], cmd, out, sizeof(out)) != 0) {
				msgf(err, len, "nft in %s: %s", ns->name[f], out);
				rv = -1;
				break;
			}
		}
		if (delay) {
			if (ns->has_qdisc[f]) {
				const char *argv[] = {"tc",	 "qdisc", "del", "dev",
						      MEMBER_IF, "root",  NULL};
				run_tool(g_tc, argv, ns->fd[f], NULL, out, sizeof(out));
				ns->has_qdisc[f] = false;
			}
			bool any = false;
			for (int t = 1; t <= n; t++)
				any |= want_delay[f][t] > 0;
			if (any) {
				delays_of(ns, f, want_delay, cmd, sizeof(cmd));
				if (tc_batch(ns->fd[f], cmd, out, sizeof(out)) != 0) {
					msgf(err, len, "tc in %s: %s", ns->name[f], out);
					rv = -1;
					break;
				}
				ns->has_qdisc[f] = true;
			}
		}
		for (int t = 1; t <= n; t++) {
			ns->mode[f][t] = want_mode[f][t];
			ns->delay[f][t] = want_delay[f][t];
		}
	}
	pthread_mutex_unlock(&ns->mu);
	return rv;
}

int64_t netns_link_bytes(struct h_netns *ns, int from, int to)
{
	if (from < 1 || from > ns->n || to < 1 || to > ns->n || from == to)
		return -1;
	char counter[16], out[1024];
	snprintf(counter, sizeof(counter), "out%d", to);
	const char *argv[] = {"nft", "list", "counter", "inet", "cairn", counter, NULL};
	if (run_tool(g_nft, argv, ns->fd[from], NULL, out, sizeof(out)) != 0)
		return -1;
	const char *p = strstr(out, "bytes ");
	unsigned long long bytes;
	if (p == NULL || sscanf(p, "bytes %llu", &bytes) != 1)
		return -1;
	return (int64_t)bytes;
}

int netns_destroy(struct h_netns *ns, char *err, size_t len)
{
	if (ns == NULL)
		return 0;
	live_remove(ns);
	int rv = teardown(ns, err, len);
	pthread_mutex_destroy(&ns->mu);
	free(ns);
	return rv;
}

void netns_emergency_cleanup(void)
{
	for (int i = 0; i < MAX_LIVE; i++) {
		struct h_netns *ns = g_live[i];
		if (ns == NULL)
			continue;
		for (int k = 0; k <= ns->n; k++) {
			if (ns->fd[k] >= 0)
				close(ns->fd[k]);
			if (ns->path[k][0] != '\0')
				remove_ns_file(ns->path[k]);
		}
	}
}
