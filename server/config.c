/* config.c — cairnd's options: defaults, an optional config file, then command-line flags (same
 * names). */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/server.h"

static const char usage[] =
    "Usage: cairnd [flags]\n"
    "\n"
    "A Cairn member: a replicated, strongly consistent key-value store (Raft + LMDB).\n"
    "With no flags it runs a single-node cluster in ./cairn-data on 127.0.0.1:7379.\n"
    "\n"
    "Flags (also accepted in a config file as `name = value` lines, without the dashes):\n"
    "  --config FILE              read options from FILE first; flags override it\n"
    "  --id N                     this member's id (default 1); must be in --initial-cluster\n"
    "  --name NAME                human-readable member name (default cairn-<id>)\n"
    "  --data-dir DIR             data directory (default ./cairn-data)\n"
    "  --listen-client HOST:PORT  client address (default 127.0.0.1:7379)\n"
    "  --advertise-client H:P     client address given to clients redirected here\n"
    "                             (default: --listen-client)\n"
    "  --listen-peer HOST:PORT    peer address (default: this id's --initial-cluster entry,\n"
    "                             or 127.0.0.1:7380)\n"
    "  --initial-cluster LIST     members as id=host:port of their peer address, comma\n"
    "                             separated, e.g. 1=127.0.0.1:7380,2=127.0.0.1:7480\n"
    "  --cluster-token TOKEN      names the cluster; members of one cluster share it\n"
    "                             (default cairn). The cluster id is derived from it and\n"
    "                             the member ids; peers with another id are refused\n"
    "  --heartbeat-ms N           leader heartbeat interval (default 100)\n"
    "  --election-timeout-ms N    base election timeout (default 1000; > 2 x heartbeat)\n"
    "  --max-frame-bytes N        largest client frame accepted (default 4194304)\n"
    "  --map-size N[K|M|G]        most the data file may grow to (default 1G)\n"
    "  --snapshot-count N         compact the Raft log once N entries were applied beyond\n"
    "                             what it must keep (default 2500)\n"
    "  --snapshot-catchup-entries N  entries kept after a compaction, so that a follower\n"
    "                             that lags by fewer is sent entries, not a snapshot\n"
    "                             (default 2500)\n"
    "  --log-level LEVEL          debug, info, warn or error (default info)\n"
    "  --unsafe-no-fsync          do not fsync (tests only: a crash may lose data)\n"
    "  --help, --version\n";

static int parse_u64(const char *s, uint64_t *out)
{
	if (s == NULL || *s == '\0' || !isdigit((unsigned char)*s))
		return -1;
	errno = 0;
	char *end;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0)
		return -1;
	uint64_t mult = 1;
	if (*end == 'K' || *end == 'k')
		mult = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mult = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mult = 1ull << 30, end++;
	if (*end != '\0' || v > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}

static int copy_str(char *dst, size_t cap, const char *src, const char *what)
{
	size_t n = strlen(src);
	if (n == 0 || n >= cap) {
		fprintf(stderr, "cairnd: %s: value empty or too long\n", what);
		return -1;
	}
	memcpy(dst, src, n + 1);
	return 0;
}

static int valid_addr(const char *a)
{
	const char *colon = strrchr(a, ':');
	if (colon == NULL || colon == a)
		return 0;
	uint64_t port;
	return parse_u64(colon + 1, &port) == 0 && port > 0 && port < 65536;
}

static int parse_cluster(struct config *c, const char *list)
{
	char tmp[sizeof(c->initial_cluster)];
	if (copy_str(tmp, sizeof(tmp), list, "--initial-cluster") != 0)
		return -1;
	c->n_members = 0;
	char *save = NULL;
	for (char *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');
		if (eq == NULL) {
			fprintf(stderr, "cairnd: --initial-cluster: '%s' is not id=host:port\n",
				tok);
			return -1;
		}
		*eq = '\0';
		uint64_t id;
		if (parse_u64(tok, &id) != 0 || id == 0) {
			fprintf(stderr, "cairnd: --initial-cluster: bad member id '%s'\n", tok);
			return -1;
		}
		if (!valid_addr(eq + 1)) {
			fprintf(stderr, "cairnd: --initial-cluster: bad address '%s'\n", eq + 1);
			return -1;
		}
		if (c->n_members == CAIRN_MAX_MEMBERS) {
			fprintf(stderr, "cairnd: --initial-cluster: at most %d members\n",
				CAIRN_MAX_MEMBERS);
			return -1;
		}
		for (size_t i = 0; i < c->n_members; i++)
			if (c->members[i].id == id) {
				fprintf(stderr, "cairnd: --initial-cluster: id %llu twice\n",
					(unsigned long long)id);
				return -1;
			}
		struct member_addr *m = &c->members[c->n_members++];
		m->id = id;
		if (copy_str(m->peer_addr, sizeof(m->peer_addr), eq + 1, "--initial-cluster") != 0)
			return -1;
	}
	if (c->n_members == 0) {
		fprintf(stderr, "cairnd: --initial-cluster: no members\n");
		return -1;
	}
	return copy_str(c->initial_cluster, sizeof(c->initial_cluster), list, "--initial-cluster");
}

struct seen {
	bool peer, cluster, name, advertise;
};

/* Applies one option. `name` has no leading dashes. */
static int apply_option(struct config *c, struct seen *seen, const char *name, const char *val)
{
	uint64_t v;
	if (strcmp(name, "unsafe-no-fsync") == 0) {
		c->nosync = val == NULL || strcmp(val, "true") == 0 || strcmp(val, "1") == 0;
		return 0;
	}
	if (val == NULL) {
		fprintf(stderr, "cairnd: --%s needs a value\n", name);
		return -1;
	}
	if (strcmp(name, "id") == 0) {
		if (parse_u64(val, &v) != 0 || v == 0) {
			fprintf(stderr, "cairnd: --id: '%s' is not a positive integer\n", val);
			return -1;
		}
		c->id = v;
	} else if (strcmp(name, "name") == 0) {
		seen->name = true;
		return copy_str(c->name, sizeof(c->name), val, "--name");
	} else if (strcmp(name, "data-dir") == 0) {
		return copy_str(c->data_dir, sizeof(c->data_dir), val, "--data-dir");
	} else if (strcmp(name, "listen-client") == 0 || strcmp(name, "listen-peer") == 0 ||
		   strcmp(name, "advertise-client") == 0) {
		if (!valid_addr(val)) {
			fprintf(stderr, "cairnd: --%s: '%s' is not host:port\n", name, val);
			return -1;
		}
		char *dst = name[0] == 'a'   ? c->advertise_client
			    : name[7] == 'c' ? c->listen_client
					     : c->listen_peer;
		if (name[0] == 'a')
			seen->advertise = true;
		if (strcmp(name, "listen-peer") == 0)
			seen->peer = true;
		return copy_str(dst, CAIRN_ADDR_MAX, val, name);
	} else if (strcmp(name, "cluster-token") == 0) {
		return copy_str(c->cluster_token, sizeof(c->cluster_token), val, "--cluster-token");
	} else if (strcmp(name, "initial-cluster") == 0) {
		seen->cluster = true;
		return parse_cluster(c, val);
	} else if (strcmp(name, "heartbeat-ms") == 0 || strcmp(name, "election-timeout-ms") == 0) {
		if (parse_u64(val, &v) != 0 || v == 0 || v > 60000) {
			fprintf(stderr, "cairnd: --%s: '%s' is not 1..60000\n", name, val);
			return -1;
		}
		if (name[0] == 'h')
			c->heartbeat_ms = (uint32_t)v;
		else
			c->election_timeout_ms = (uint32_t)v;
	} else if (strcmp(name, "max-frame-bytes") == 0) {
		if (parse_u64(val, &v) != 0 || v < CAIRN_MIN_MAX_FRAME || v > (1u << 30)) {
			fprintf(stderr, "cairnd: --max-frame-bytes: '%s' is not %u..%u\n", val,
				CAIRN_MIN_MAX_FRAME, 1u << 30);
			return -1;
		}
		c->max_frame_bytes = (uint32_t)v;
	} else if (strcmp(name, "snapshot-count") == 0 ||
		   strcmp(name, "snapshot-catchup-entries") == 0) {
		bool count = strcmp(name, "snapshot-count") == 0;
		if (parse_u64(val, &v) != 0 || v < (count ? 1u : 0u) || v > 100000000u) {
			fprintf(stderr, "cairnd: --%s: '%s' is not %u..100000000\n", name, val,
				count ? 1u : 0u);
			return -1;
		}
		if (count)
			c->snapshot_count = v;
		else
			c->snapshot_catchup = v;
	} else if (strcmp(name, "map-size") == 0) {
		if (parse_u64(val, &v) != 0 || v < STORAGE_MIN_MAP_SIZE) {
			fprintf(stderr, "cairnd: --map-size: '%s' is not a size >= 1M\n", val);
			return -1;
		}
		c->map_size = (size_t)v;
	} else if (strcmp(name, "log-level") == 0) {
		static const char *const levels[] = {"debug", "info", "warn", "error"};
		for (int i = 0; i < 4; i++)
			if (strcmp(val, levels[i]) == 0) {
				c->log_level = i;
				return 0;
			}
		fprintf(stderr, "cairnd: --log-level: '%s' is not debug, info, warn or error\n",
			val);
		return -1;
	} else {
		fprintf(stderr, "cairnd: unknown option '%s' (see --help)\n", name);
		return -1;
	}
	return 0;
}

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int read_config_file(struct config *c, struct seen *seen, const char *path)
{
	FILE *f = fopen(path, "r");
	if (f == NULL) {
		fprintf(stderr, "cairnd: cannot open config file %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[8192];
	int lineno = 0, rv = 0;
	while (rv == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		char *l = trim(line);
		if (*l == '\0' || *l == '#')
			continue;
		char *eq = strchr(l, '=');
		char *val = NULL;
		if (eq != NULL) {
			*eq = '\0';
			val = trim(eq + 1);
			size_t n = strlen(val);
			if (n >= 2 && val[0] == '"' && val[n - 1] == '"') {
				val[n - 1] = '\0';
				val++;
			}
		}
		char *key = trim(l);
		if (strncmp(key, "--", 2) == 0)
			key += 2;
		if (strcmp(key, "config") == 0) {
			fprintf(stderr, "cairnd: %s:%d: config files do not nest\n", path, lineno);
			rv = -1;
			break;
		}
		rv = apply_option(c, seen, key, val);
		if (rv != 0)
			fprintf(stderr, "cairnd: (in %s line %d)\n", path, lineno);
	}
	fclose(f);
	return rv;
}

int config_parse(struct config *c, int argc, char **argv)
{
	memset(c, 0, sizeof(*c));
	c->id = 1;
	strcpy(c->data_dir, CAIRN_DEFAULT_DATA_DIR);
	strcpy(c->listen_client, CAIRN_DEFAULT_CLIENT_ADDR);
	strcpy(c->listen_peer, CAIRN_DEFAULT_PEER_ADDR);
	strcpy(c->cluster_token, CAIRN_DEFAULT_CLUSTER_TOKEN);
	c->heartbeat_ms = 100;
	c->election_timeout_ms = 1000;
	c->max_frame_bytes = CAIRN_DEFAULT_MAX_FRAME;
	c->snapshot_count = CAIRN_DEFAULT_SNAPSHOT_COUNT;
	c->snapshot_catchup = CAIRN_DEFAULT_SNAPSHOT_CATCHUP;
	c->log_level = LOG_INFO;
	struct seen seen = {0};

	/* The config file first, so flags override it wherever they are on the line. */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			fputs(usage, stdout);
			return 1;
		}
		if (strcmp(a, "--version") == 0) {
			printf("cairnd %s\n", CAIRN_VERSION);
			return 1;
		}
		if (strncmp(a, "--config", 8) == 0) {
			const char *path = a[8] == '=' ? a + 9 : (i + 1 < argc ? argv[++i] : NULL);
			if (a[8] != '=' && a[8] != '\0') {
				fprintf(stderr, "cairnd: unknown option '%s'\n", a);
				return -1;
			}
			if (path == NULL) {
				fprintf(stderr, "cairnd: --config needs a file\n");
				return -1;
			}
			if (read_config_file(c, &seen, path) != 0)
				return -1;
		}
	}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strncmp(a, "--config", 8) == 0) {
			if (a[8] != '=')
				i++;
			continue;
		}
		if (strncmp(a, "--", 2) != 0) {
			fprintf(stderr, "cairnd: unexpected argument '%s' (see --help)\n", a);
			return -1;
		}
		char name[64];
		const char *val = NULL;
		const char *eq = strchr(a, '=');
		size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
		if (n == 0 || n >= sizeof(name)) {
			fprintf(stderr, "cairnd: unknown option '%s'\n", a);
			return -1;
		}
		memcpy(name, a + 2, n);
		name[n] = '\0';
		if (eq != NULL)
			val = eq + 1;
		else if (strcmp(name, "unsafe-no-fsync") != 0 && i + 1 < argc)
			val = argv[++i];
		if (apply_option(c, &seen, name, val) != 0)
			return -1;
	}

	if (!seen.cluster) {
		c->n_members = 1;
		c->members[0].id = c->id;
		strcpy(c->members[0].peer_addr, c->listen_peer);
		snprintf(c->initial_cluster, sizeof(c->initial_cluster), "%llu=%s",
			 (unsigned long long)c->id, c->listen_peer);
	}
	bool found = false;
	for (size_t i = 0; i < c->n_members; i++)
		if (c->members[i].id == c->id) {
			found = true;
			if (!seen.peer)
				strcpy(c->listen_peer, c->members[i].peer_addr);
		}
	if (!found) {
		fprintf(stderr, "cairnd: --id %llu is not in --initial-cluster %s\n",
			(unsigned long long)c->id, c->initial_cluster);
		return -1;
	}
	if (!seen.name)
		snprintf(c->name, sizeof(c->name), "cairn-%llu", (unsigned long long)c->id);
	if (!seen.advertise)
		strcpy(c->advertise_client, c->listen_client);
	if (c->election_timeout_ms <= 2 * c->heartbeat_ms) {
		fprintf(stderr,
			"cairnd: --election-timeout-ms (%u) must be more than twice --heartbeat-ms "
			"(%u)\n",
			c->election_timeout_ms, c->heartbeat_ms);
		return -1;
	}
	return 0;
}
