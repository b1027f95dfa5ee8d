/* harness_netns.h — the integration harness's network-namespace mode (internal to the harness;
 * tests use harness.h). Each member lives in its own network namespace, joined by a veth to a
 * bridge in a hub namespace; the root namespace has an address on the same /24, so clients in
 * the harness process reach every member directly. Link faults are nftables rules inside the
 * member namespaces, delays netem qdiscs on their veths. See docs/testing.md. */
#ifndef CAIRN_TEST_HARNESS_NETNS_H
#define CAIRN_TEST_HARNESS_NETNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "test/integration/harness.h"

struct h_netns;

/*
 * Whether this process can build namespaces: 0 yes; 1 not permitted (not root, or the kernel
 * refuses a new network namespace with EPERM, as in an unprivileged container): callers skip;
 * -1 permitted but unusable (a tool missing, nftables refused...): callers fail. `why` says
 * which. Probed once per process (it creates and removes a scratch namespace); it also removes
 * namespaces and interfaces left behind by harness processes that no longer exist.
 */
int netns_check(char *why, size_t len);
/* Whether H_LINK_DELAY works (netem in this kernel, tc installed); why not otherwise. Valid
 * after netns_check returned 0. */
bool netns_delay_supported(char *why, size_t len);

/* The namespaces, veths, bridge and nftables tables of an n-member cluster whose members
 * listen on peer_port[id] (1..n). NULL with a message on failure (nothing is left behind). */
struct h_netns *netns_create(int n, const int *peer_port, char *err, size_t len);
/* Member id's address ("10.a.b.id"). */
const char *netns_member_ip(const struct h_netns *ns, int id);
/* An open descriptor of member id's namespace, for setns(2) in a child before exec. */
int netns_member_fd(const struct h_netns *ns, int id);
/* The subnet, for notes: "10.a.b.0/24". */
const char *netns_subnet(const struct h_netns *ns);
/* Sets every link (from -> to) to mode[from][to] (H_LINK_*) and, for H_LINK_DELAY,
 * delay_ms[from][to]; one atomic nftables transaction per member namespace whose rules change.
 * Returns 0, or -1 with a message (nothing is applied when a delay is asked for and netem is
 * missing). */
int netns_apply(struct h_netns *ns, const int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		const int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1], char *err, size_t len);
/* The link modes and delays last applied. */
void netns_links(const struct h_netns *ns, int mode[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1],
		 int delay_ms[H_MAX_MEMBERS + 1][H_MAX_MEMBERS + 1]);
/* Bytes of IP packets (headers included) that member `from` sent on its connection to `to`'s
 * peer port while the link was passing (an nftables counter); -1 if it cannot be read. */
int64_t netns_link_bytes(struct h_netns *ns, int from, int to);
/* Removes everything netns_create made and frees ns. Members must have exited. Returns 0, or
 * -1 with a message if something could not be removed. */
int netns_destroy(struct h_netns *ns, char *err, size_t len);
/* Last resort from a signal handler (async-signal-safe): unmounts and unlinks the namespace
 * files of every live h_netns of this process, so that the kernel frees the namespaces and
 * their interfaces once their processes are gone. */
void netns_emergency_cleanup(void);

#endif /* CAIRN_TEST_HARNESS_NETNS_H */
