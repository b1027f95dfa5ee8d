#!/bin/bash
# Benchmarks Cairn and etcd 3.4 side by side on this machine (loopback, 3 members each, one
# system after the other) and writes docs/benchmarks/<date>.md + <date>-throughput.png.
#
#   scripts/bench-vs-etcd.sh            full run (about 6 minutes, plus the first Go build)
#   QUICK=1 scripts/bench-vs-etcd.sh    smoke run (2 s per workload, 3 failover trials)
#
# Environment: BUILD (build dir, default build/), DURATION (per workload, default 10s),
# WARMUP (1s), FAILOVER_TRIALS (10), OUT_DIR (docs/benchmarks), KEEP=1 keeps the work dir,
# CAIRN_PORT / ETCD_PORT (first client port, default 17379 / 12379; members are 100 apart),
# SYSTEMS ("cairn etcd"), MATRIX (workload:clients list), CAIRND_FLAGS / ETCD_FLAGS (extra
# member flags; default none: both run with their default durability, i.e. an fsync per
# commit, and their default timeouts), WAIT_QUIET=S (wait up to S seconds for the machine to
# be idle before each system), UPDATE_README=1 (default: rewrite the table between the
# README's bench-vs-etcd markers, if it has them), REPORT_FROM=docs/benchmarks/<date>.jsonl
# (only redo the report from saved results).
# Every member listens on 127.0.0.1 only; every loop is bounded; everything started is
# stopped on exit. See docs/benchmarks.md.
set -Eeuo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
	DURATION=${DURATION:-2s}
	WARMUP=${WARMUP:-300ms}
	FAILOVER_TRIALS=${FAILOVER_TRIALS:-3}
else
	DURATION=${DURATION:-10s}
	WARMUP=${WARMUP:-1s}
	FAILOVER_TRIALS=${FAILOVER_TRIALS:-10}
fi
OUT_DIR=${OUT_DIR:-$ROOT/docs/benchmarks}
CAIRN_PORT=${CAIRN_PORT:-17379}
ETCD_PORT=${ETCD_PORT:-12379}
SYSTEMS=${SYSTEMS:-cairn etcd}
CAIRND_FLAGS=${CAIRND_FLAGS:-}
ETCD_FLAGS=${ETCD_FLAGS:-}
UPDATE_README=${UPDATE_README:-1}
WAIT_QUIET=${WAIT_QUIET:-0}
KEY_SIZE=16
VALUE_SIZE=256
KEY_SPACE=10000
N=3
WAIT_HEALTHY_S=60 # bound on waiting for a cluster to be up (start, restart after a kill)
# workload:clients, in this order (the first read workload preloads the key space).
MATRIX=${MATRIX:-"put:1 put:16 put:64 put:256 get:1 get:64 get-serial:1 get-serial:64 txn-cas:16"}
DEBIAN_PACKAGES="etcd-server etcd-client golang-go golang-etcd-server-dev gnuplot-nox"

CAIRND=$BUILD/cairnd
CAIRNCTL=$BUILD/cairnctl
CAIRN_BENCH=$BUILD/cairn-bench
ETCD_LOAD=$BUILD/etcd-load
TICK=$(getconf CLK_TCK)
DATE=$(date +%F)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/cairn-bench-vs-etcd.XXXXXX")
RESULTS=$WORK/results.jsonl
PIDS=() # every member pid we started, by slot: PIDS[i] for member i (1..N)
: >"$RESULTS"

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# ---- processes -----------------------------------------------------------------------------

stop_pid() { # SIGTERM, then SIGKILL after 10 s
	local pid=$1 t=0
	kill "$pid" 2>/dev/null || return 0
	while kill -0 "$pid" 2>/dev/null && [ $t -lt 100 ]; do
		sleep 0.1
		t=$((t + 1))
	done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

stop_members() {
	local i
	for i in "${!PIDS[@]}"; do
		stop_pid "${PIDS[$i]}"
	done
	PIDS=()
}

cleanup() {
	local rc=$?
	stop_members
	if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
		log "work directory kept: $WORK"
	else
		rm -rf "$WORK"
	fi
	exit $rc
}
trap cleanup EXIT
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
trap 'exit 130' INT TERM

cpu_ticks() { # utime + stime of every member, summed
	local t=0 i v
	for i in "${!PIDS[@]}"; do
		v=$(awk '{print $14 + $15}' "/proc/${PIDS[$i]}/stat" 2>/dev/null || echo 0)
		t=$((t + v))
	done
	echo $t
}

machine_busy_ticks() { # busy jiffies of all CPUs (user nice system irq softirq steal)
	awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat
}

status_kb() { # status_kb PID FIELD -> kB
	awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || echo 0
}

# ---- dependencies and build ------------------------------------------------------------------

ensure_deps() {
	local missing="" p pkgs=gnuplot-nox
	[[ " $SYSTEMS " != *" etcd "* ]] || pkgs=$DEBIAN_PACKAGES
	for p in $pkgs; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	log "installing Debian packages:$missing"
	local sudo=""
	if [ "$(id -u)" -ne 0 ]; then
		command -v sudo >/dev/null || die "not root and no sudo: install$missing"
		sudo=sudo
	fi
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086
	$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null 2>&1 || {
		$sudo apt-get update -qq
		$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
	}
}

build() {
	log "building cairnd, cairnctl, cairn-bench"
	make -C "$ROOT" --no-print-directory BUILD="$BUILD" "$CAIRND" "$CAIRNCTL" "$CAIRN_BENCH" >&2
	if [[ " $SYSTEMS " == *" etcd "* ]]; then
		log "building etcd-load (Go, GOPATH mode, Debian's packages only)"
		mkdir -p "$BUILD/go/path"
		(cd "$ROOT/bench/etcd-load" &&
			GOPATH=/usr/share/gocode:$BUILD/go/path GO111MODULE=off GOFLAGS='' \
				GOCACHE=$BUILD/go/cache GOPROXY=off go build -o "$ETCD_LOAD" .) >&2
	fi
}

# ---- Cairn cluster ---------------------------------------------------------------------------

cairn_client_port() { echo $((CAIRN_PORT + 100 * ($1 - 1))); }
cairn_endpoints() {
	local i eps=""
	for i in $(seq 1 $N); do eps="$eps${eps:+,}127.0.0.1:$(cairn_client_port "$i")"; done
	echo "$eps"
}

cairn_start_member() {
	local i=$1 cp ic="" j
	cp=$(cairn_client_port "$i")
	for j in $(seq 1 $N); do ic="$ic${ic:+,}$j=127.0.0.1:$(($(cairn_client_port "$j") + 1))"; done
	# shellcheck disable=SC2086
	"$CAIRND" --id "$i" --name "cairn-$i" --data-dir "$WORK/cairn/data/$i" \
		--listen-client "127.0.0.1:$cp" --listen-peer "127.0.0.1:$((cp + 1))" \
		--initial-cluster "$ic" $CAIRND_FLAGS >>"$WORK/cairn/$i.log" 2>&1 &
	PIDS[i]=$!
}

# cairnctl status -w json on every member: one line per member "idx role fsyncs entries".
cairn_status_lines() {
	local i ep js
	for i in $(seq 1 $N); do
		ep=127.0.0.1:$(cairn_client_port "$i")
		js=$("$CAIRNCTL" --endpoints "$ep" --command-timeout 1s status -w json 2>/dev/null) || js=""
		echo "$i $(jnum "$js" role) $(jnum "$js" fsyncs) $(jnum "$js" entries_committed) $(jnum "$js" leader_id)"
	done
}

# The member index of the leader all members agree on, or nothing.
cairn_leader() {
	"$CAIRNCTL" --endpoints "$(cairn_endpoints)" --command-timeout 1s status 2>/dev/null |
		awk -F', ' '$5 == "true" {print $1}' | head -1 |
		while read -r ep; do
			local i
			for i in $(seq 1 $N); do
				if [ "$ep" = "127.0.0.1:$(cairn_client_port "$i")" ]; then echo "$i"; fi
			done
		done || true
}

# Fails at once if a member we started has exited (its log says why).
members_alive() {
	local i
	for i in "${!PIDS[@]}"; do
		if ! kill -0 "${PIDS[$i]}" 2>/dev/null; then
			log "member $i (pid ${PIDS[$i]}) exited; its log: $WORK/$1/$i.log"
			tail -n 5 "$WORK/$1/$i.log" >&2 || true
			return 1
		fi
	done
}

cairn_wait_healthy() { # every member answers and knows the same leader; a write succeeds
	local leaders deadline=$((SECONDS + WAIT_HEALTHY_S))
	while [ $SECONDS -lt $deadline ] && members_alive cairn; do
		leaders=$(cairn_status_lines | awk '$5 != "" && $5 != 0 {print $5}')
		if [ "$(echo "$leaders" | grep -c .)" -eq $N ] &&
			[ "$(echo "$leaders" | sort -u | wc -l)" -eq 1 ] &&
			"$CAIRNCTL" --endpoints "$(cairn_endpoints)" --command-timeout 2s \
				put bench-health ok >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

cairn_start() {
	local i
	mkdir -p "$WORK/cairn/data"
	for i in $(seq 1 $N); do cairn_start_member "$i"; done
	cairn_wait_healthy || die "the Cairn cluster did not become healthy (logs in $WORK/cairn)"
}

# ---- etcd cluster ----------------------------------------------------------------------------

etcd_client_port() { echo $((ETCD_PORT + 100 * ($1 - 1))); }
etcd_endpoints() {
	local i eps=""
	for i in $(seq 1 $N); do eps="$eps${eps:+,}127.0.0.1:$(etcd_client_port "$i")"; done
	echo "$eps"
}

etcd_start_member() {
	local i=$1 cp ic="" j
	cp=$(etcd_client_port "$i")
	for j in $(seq 1 $N); do
		ic="$ic${ic:+,}etcd-$j=http://127.0.0.1:$(($(etcd_client_port "$j") + 1))"
	done
	# shellcheck disable=SC2086
	etcd --name "etcd-$i" --data-dir "$WORK/etcd/data/$i" \
		--listen-client-urls "http://127.0.0.1:$cp" --advertise-client-urls "http://127.0.0.1:$cp" \
		--listen-peer-urls "http://127.0.0.1:$((cp + 1))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((cp + 1))" \
		--initial-cluster "$ic" --initial-cluster-token cairn-bench \
		--initial-cluster-state new --logger zap --log-outputs stderr \
		$ETCD_FLAGS >>"$WORK/etcd/$i.log" 2>&1 &
	PIDS[i]=$!
}

etcdctl_() { ETCDCTL_API=3 etcdctl --command-timeout=2s "$@"; }

etcd_leader() {
	etcdctl_ --endpoints "$(etcd_endpoints)" endpoint status 2>/dev/null |
		awk -F', ' '$5 == "true" {print $1}' | head -1 |
		while read -r ep; do
			local i
			for i in $(seq 1 $N); do
				if [ "$ep" = "127.0.0.1:$(etcd_client_port "$i")" ]; then echo "$i"; fi
			done
		done || true
}

etcd_wait_healthy() {
	local deadline=$((SECONDS + WAIT_HEALTHY_S))
	while [ $SECONDS -lt $deadline ] && members_alive etcd; do
		if [ "$(etcdctl_ --endpoints "$(etcd_endpoints)" endpoint health 2>&1 |
			grep -c 'is healthy')" -eq $N ] && [ -n "$(etcd_leader)" ] &&
			etcdctl_ --endpoints "$(etcd_endpoints)" put bench-health ok >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	return 1
}

etcd_start() {
	local i
	mkdir -p "$WORK/etcd/data"
	for i in $(seq 1 $N); do etcd_start_member "$i"; done
	etcd_wait_healthy || die "the etcd cluster did not become healthy (logs in $WORK/etcd)"
}

# ---- measuring -------------------------------------------------------------------------------

# jnum JSON NAME: the value of "NAME": (number or string) in a one-line JSON text.
jnum() {
	{ printf '%s' "$1" | grep -o "\"$2\":\"\{0,1\}[^,}\"]*" | head -1 | sed 's/^[^:]*:"\{0,1\}//'; } || true
}

# Sum of fsyncs of every member, and the leader's committed entries.
cairn_counters() {
	cairn_status_lines | awk '{f += $3; if ($2 == "leader") e = $4} END {print f + 0, e + 0}'
}

run_workload() { # SYSTEM WORKLOAD CLIENTS PRELOAD
	local sys=$1 wl=$2 c=$3 pre=$4 conns tool eps line t0 t1 c0 c1 m0 m1 w0 w1 ops extra fs0 fs1 en0 en1
	conns=$(conns_for "$c")
	if [ "$sys" = cairn ]; then
		tool=$CAIRN_BENCH
		eps=$(cairn_endpoints)
		read -r fs0 en0 < <(cairn_counters)
	else
		tool=$ETCD_LOAD
		eps=$(etcd_endpoints)
	fi
	c0=$(cpu_ticks)
	m0=$(machine_busy_ticks)
	w0=$(date +%s%N)
	t0=$({ TIMEFORMAT='%3U %3S'; time "$tool" --endpoints "$eps" --workload "$wl" \
		--clients "$c" --conns "$conns" --key-size $KEY_SIZE --value-size $VALUE_SIZE \
		--key-space $KEY_SPACE --duration "$DURATION" --warmup "$WARMUP" "$pre" --json \
		>"$WORK/out.json" 2>"$WORK/out.err"; } 2>&1) ||
		die "$sys $wl -c $c failed: $(tail -3 "$WORK/out.err")"
	c1=$(cpu_ticks)
	m1=$(machine_busy_ticks)
	w1=$(date +%s%N)
	line=$(tail -1 "$WORK/out.json")
	ops=$(jnum "$line" ops)
	[ -n "$ops" ] || die "$sys $wl: no JSON result: $(cat "$WORK/out.json" "$WORK/out.err")"
	t1=$(echo "$t0" | tail -1 | awk '{print $1 + $2}')
	extra=$(awk -v d=$((c1 - c0)) -v tk="$TICK" -v ops="$ops" -v cl="$t1" -v m=$((m1 - m0)) \
		-v w=$(((w1 - w0) / 1000000)) -v ncpu="$(nproc)" 'BEGIN {
		o = (m / tk - d / tk - cl) / (w / 1000) / ncpu * 100; if (o < 0) o = 0
		printf ",\"others_cpu_pct\":%.1f", o
		if (ops > 0) printf ",\"server_cpu_s_per_10k\":%.4f,\"client_cpu_s_per_10k\":%.4f", d / tk / ops * 10000, cl / ops * 10000
		else printf ",\"server_cpu_s_per_10k\":null,\"client_cpu_s_per_10k\":null" }')
	if [ "$sys" = cairn ]; then
		read -r fs1 en1 < <(cairn_counters)
		extra="$extra$(awk -v f=$((fs1 - fs0)) -v e=$((en1 - en0)) 'BEGIN {
			if (e > 0) printf ",\"fsyncs_per_entry\":%.4f,\"member_fsyncs\":%d,\"entries\":%d", f / e / 3, f, e
			else printf ",\"fsyncs_per_entry\":null" }')"
	fi
	echo "${line%\}}$extra}" >>"$RESULTS"
	log "$sys $wl c=$c: $(jnum "$line" ops_per_sec) ops/s, p50 $(jnum "$line" p50_ms) ms, p99 $(jnum "$line" p99_ms) ms, errors $(jnum "$line" errors), other processes $(jnum "$extra" others_cpu_pct)% CPU"
}

# Client handles (each one I/O thread and connection set, or one clientv3 client) per run.
conns_for() {
	if [ "$1" -le 1 ]; then echo 1; elif [ "$1" -le 16 ]; then echo 2; else echo 4; fi
}

record_memory() { # SYSTEM WHEN (idle: just started; after: after the workloads)
	local i pid idx
	if [ "$1" = cairn ]; then
		idx=$(jnum "$("$CAIRNCTL" --endpoints "$(cairn_endpoints)" --command-timeout 2s status -w json 2>/dev/null)" commit_index)
	else
		idx=$(jnum "$(etcdctl_ --endpoints "$(etcd_endpoints)" endpoint status -w json 2>/dev/null)" raftIndex)
	fi
	for i in $(seq 1 $N); do
		pid=${PIDS[$i]}
		echo "{\"system\":\"$1\",\"workload\":\"memory\",\"when\":\"$2\",\"log_index\":${idx:-0},\"member\":$i,\"vmrss_kb\":$(status_kb "$pid" VmRSS),\"rss_anon_kb\":$(status_kb "$pid" RssAnon),\"rss_file_kb\":$(status_kb "$pid" RssFile),\"vmhwm_kb\":$(status_kb "$pid" VmHWM)}" >>"$RESULTS"
	done
	log "$1 memory $2 (VmRSS kB): $(for i in $(seq 1 $N); do printf '%s ' "$(status_kb "${PIDS[$i]}" VmRSS)"; done)"
}

failover_trials() { # SYSTEM
	local sys=$1 k leader pid line tool eps
	for k in $(seq 1 "$FAILOVER_TRIALS"); do
		if [ "$sys" = cairn ]; then
			leader=$(cairn_leader)
			tool=$CAIRN_BENCH
			eps=$(cairn_endpoints)
		else
			leader=$(etcd_leader)
			tool=$ETCD_LOAD
			eps=$(etcd_endpoints)
		fi
		[ -n "$leader" ] || die "$sys: no leader before failover trial $k"
		pid=${PIDS[$leader]}
		line=$("$tool" --endpoints "$eps" --workload failover --kill-pid "$pid" --json \
			2>>"$WORK/failover.err" | tail -1) || die "$sys failover trial $k failed: $(tail -3 "$WORK/failover.err")"
		wait "$pid" 2>/dev/null || true
		echo "${line%\}},\"trial\":$k,\"killed_member\":$leader}" >>"$RESULTS"
		log "$sys failover $k/$FAILOVER_TRIALS: member $leader killed, write again after $(jnum "$line" failover_ms) ms"
		if [ "$sys" = cairn ]; then
			cairn_start_member "$leader"
			cairn_wait_healthy || die "cairn: not healthy after restarting member $leader"
		else
			etcd_start_member "$leader"
			etcd_wait_healthy || die "etcd: not healthy after restarting member $leader"
		fi
		sleep 1 # let the restarted member catch up before the next kill
	done
}

# Wait, at most WAIT_QUIET seconds, until other processes use under 15% of the CPUs (a 2 s
# sample), so that the figures are this system's and not the neighbours'.
wait_quiet() {
	local deadline=$((SECONDS + WAIT_QUIET)) a b
	[ "$WAIT_QUIET" -gt 0 ] || return 0
	while :; do
		a=$(machine_busy_ticks)
		sleep 2
		b=$(machine_busy_ticks)
		if [ $(((b - a) * 100 / (2 * TICK * $(nproc)))) -lt 15 ]; then
			return 0
		fi
		if [ $SECONDS -ge $deadline ]; then
			log "the machine is still busy after ${WAIT_QUIET}s; measuring anyway"
			return 0
		fi
	done
}

bench_system() { # SYSTEM
	local sys=$1 entry wl c pre preloaded=0
	wait_quiet
	log "== $sys: starting $N members"
	if [ "$sys" = cairn ]; then cairn_start; else etcd_start; fi
	record_memory "$sys" idle
	for entry in $MATRIX; do
		wl=${entry%%:*}
		c=${entry##*:}
		pre=--no-preload
		if [ "$wl" != put ] && [ $preloaded = 0 ]; then
			pre=--preload
			preloaded=1
		fi
		run_workload "$sys" "$wl" "$c" "$pre"
	done
	record_memory "$sys" after
	failover_trials "$sys"
	log "== $sys: stopping"
	stop_members
}

# ---- report ----------------------------------------------------------------------------------

# The run's circumstances, as the first line of the results (so that REPORT_FROM can redo the
# report from the results alone).
write_meta() {
	local machine versions q="" flags=""
	machine="$(nproc) CPUs ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), data on $(df -T "$WORK" | awk 'NR == 2 {print $2}')"
	versions="Cairn $("$CAIRND" --version 2>/dev/null | head -1) (git $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD 2>/dev/null || echo '+changes')); $(etcd --version 2>/dev/null | head -1 || echo 'etcd: not run'); $(go version 2>/dev/null | awk '{print $3}' || true)"
	[ "$QUICK" = 1 ] && q="QUICK=1 smoke run, "
	flags="${CAIRND_FLAGS:+; cairnd $CAIRND_FLAGS}${ETCD_FLAGS:+; etcd $ETCD_FLAGS}"
	printf '{"system":"meta","workload":"meta","date":"%s","duration":"%s","warmup":"%s","quick_note":"%s","load":"%s","machine":"%s","versions":"%s","flags":"%s"}\n' \
		"$DATE" "$DURATION" "$WARMUP" "$q" "$(cut -d' ' -f1-3 /proc/loadavg)" \
		"${machine//\"/}" "${versions//\"/}" "${flags//\"/}" >>"$RESULTS"
}

meta() { # a field of the meta line (strings without commas only: read up to the quote)
	grep -m1 '"workload":"meta"' "$RESULTS" | grep -o "\"$1\":\"[^\"]*" | sed 's/^[^:]*:"//' || true
}

write_report() {
	local name=$DATE
	[ "$QUICK" = 1 ] && name=$DATE-quick
	local md=$OUT_DIR/$name.md png=$OUT_DIR/$name-throughput.png dat=$WORK/plot.dat
	mkdir -p "$OUT_DIR"
	cp "$RESULTS" "$OUT_DIR/$name.jsonl"
	awk -f - "$RESULTS" >"$WORK/tables.md" 2>"$dat" <<'AWK'
function j(line, name,    m) {
	if (match(line, "\"" name "\":\"[^\"]*\"")) { m = substr(line, RSTART, RLENGTH); sub(/^[^:]*:"/, "", m); sub(/"$/, "", m); return m }
	if (match(line, "\"" name "\":[^,}]*")) { m = substr(line, RSTART, RLENGTH); sub(/^[^:]*:/, "", m); return m }
	return ""
}
function ratio(a, b) { return (a == "" || b == "" || b + 0 == 0) ? "–" : sprintf("%.2f×", a / b) }
function f(v, fmt) { return (v == "" || v == "null") ? "–" : sprintf(fmt, v) }
{
	sys = j($0, "system"); wl = j($0, "workload")
	if (wl == "meta") next
	if (wl == "memory") { if (j($0, "when") == "idle") idle[sys, j($0, "member")] = $0; else mem[sys, j($0, "member")] = $0; next }
	if (wl == "failover") { n[sys]++; fo[sys, n[sys]] = j($0, "failover_ms") + 0; next }
	key = wl ":" j($0, "clients")
	if (!(key in seen)) { seen[key] = 1; order[++nk] = key }
	r[sys, key] = $0
}
function median(sys,    i, k, t, a, m) {
	m = n[sys]; if (m == 0) return ""
	for (i = 1; i <= m; i++) a[i] = fo[sys, i]
	for (i = 2; i <= m; i++) { t = a[i]; for (k = i - 1; k >= 1 && a[k] > t; k--) a[k + 1] = a[k]; a[k + 1] = t }
	return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
}
function maxfo(sys,    i, m) { m = ""; for (i = 1; i <= n[sys]; i++) if (m == "" || fo[sys, i] > m) m = fo[sys, i]; return m }
END {
	print "| workload | clients | Cairn ops/s | etcd ops/s | Cairn ÷ etcd | Cairn p50 / p99 / p99.9 / max ms | etcd p50 / p99 / p99.9 / max ms | errors C / e | server CPU s per 10k ops C / e | client CPU s per 10k C / e | Cairn fsyncs per entry | other processes' CPU % C / e |"
	print "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
	for (i = 1; i <= nk; i++) {
		k = order[i]; c = r["cairn", k]; e = r["etcd", k]; split(k, p, ":")
		printf "| %s | %s | %s | %s | %s | %s / %s / %s / %s | %s / %s / %s / %s | %s / %s | %s / %s | %s / %s | %s | %s / %s |\n", p[1], p[2],
			f(j(c, "ops_per_sec"), "%.0f"), f(j(e, "ops_per_sec"), "%.0f"), ratio(j(c, "ops_per_sec"), j(e, "ops_per_sec")),
			f(j(c, "p50_ms"), "%.2f"), f(j(c, "p99_ms"), "%.2f"), f(j(c, "p999_ms"), "%.2f"), f(j(c, "max_ms"), "%.1f"),
			f(j(e, "p50_ms"), "%.2f"), f(j(e, "p99_ms"), "%.2f"), f(j(e, "p999_ms"), "%.2f"), f(j(e, "max_ms"), "%.1f"),
			f(j(c, "errors"), "%d"), f(j(e, "errors"), "%d"),
			f(j(c, "server_cpu_s_per_10k"), "%.2f"), f(j(e, "server_cpu_s_per_10k"), "%.2f"),
			f(j(c, "client_cpu_s_per_10k"), "%.2f"), f(j(e, "client_cpu_s_per_10k"), "%.2f"),
			(p[1] == "put" || p[1] == "txn-cas") ? f(j(c, "fsyncs_per_entry"), "%.3f") : "–",
			f(j(c, "others_cpu_pct"), "%.0f"), f(j(e, "others_cpu_pct"), "%.0f")
		if (p[1] == "txn-cas") cas = sprintf("txn-cas compare failures (lost races, not errors): Cairn %s, etcd %s.", f(j(c, "cas_failures"), "%d"), f(j(e, "cas_failures"), "%d"))
	}
	print ""
	if (cas != "") { print cas; print "" }
	printf "Resident memory of each member after the workloads (before the failover trials; Raft log index: Cairn %s, etcd %s), from /proc/PID/status; in brackets, just after start:\n", j(mem["cairn", 1], "log_index"), j(mem["etcd", 1], "log_index")
	print ""
	print "| member | Cairn VmRSS MiB (anon + file) | etcd VmRSS MiB (anon + file) | Cairn ÷ etcd | Cairn anon ÷ etcd anon |"
	print "| ---: | ---: | ---: | ---: | ---: |"
	for (m = 1; m <= 3; m++) {
		c = mem["cairn", m]; e = mem["etcd", m]
		printf "| %d | %s (%s + %s) [%s] | %s (%s + %s) [%s] | %s [%s] | %s |\n", m,
			f(j(c, "vmrss_kb") / 1024, "%.1f"), f(j(c, "rss_anon_kb") / 1024, "%.1f"), f(j(c, "rss_file_kb") / 1024, "%.1f"),
			f(j(idle["cairn", m], "vmrss_kb") / 1024, "%.1f"),
			f(j(e, "vmrss_kb") / 1024, "%.1f"), f(j(e, "rss_anon_kb") / 1024, "%.1f"), f(j(e, "rss_file_kb") / 1024, "%.1f"),
			f(j(idle["etcd", m], "vmrss_kb") / 1024, "%.1f"),
			ratio(j(c, "vmrss_kb"), j(e, "vmrss_kb")), ratio(j(idle["cairn", m], "vmrss_kb"), j(idle["etcd", m], "vmrss_kb")),
			ratio(j(c, "rss_anon_kb"), j(e, "rss_anon_kb"))
	}
	print ""
	print "Failover: kill -9 of the leader until the first write succeeds again (puts with a 100 ms deadline each, 10 ms apart):"
	print ""
	print "| | trials | median ms | max ms |"
	print "| --- | ---: | ---: | ---: |"
	printf "| Cairn | %d | %s | %s |\n", n["cairn"], f(median("cairn"), "%.0f"), f(maxfo("cairn"), "%.0f")
	printf "| etcd | %d | %s | %s |\n", n["etcd"], f(median("etcd"), "%.0f"), f(maxfo("etcd"), "%.0f")
	# Targets of issue #6, judged on this run.
	print ""
	print "Targets (issue #6), judged on this run:"
	print ""
	print "| target | figure | met |"
	print "| --- | --- | --- |"
	v = j(r["cairn", "put:1"], "p50_ms"); printf "| put, 1 client: p50 ≤ 0.5 ms | %s ms | %s |\n", f(v, "%.3f"), v == "" ? "–" : (v <= 0.5) ? "yes" : "no"
	split("put:64 put:256 get:64 get-serial:64", tk, " ")
	for (t = 1; t <= 4; t++) {
		a = j(r["cairn", tk[t]], "ops_per_sec"); b = j(r["etcd", tk[t]], "ops_per_sec")
		printf "| %s clients: ≥ 10× etcd's throughput | %s | %s |\n", tk[t], ratio(a, b), (a == "" || b == "" || b + 0 == 0) ? "–" : (a / b >= 10) ? "yes" : "no"
	}
	worst = ""
	for (m = 1; m <= 3; m++) { a = j(mem["cairn", m], "vmrss_kb"); b = j(mem["etcd", m], "vmrss_kb"); if (a != "" && b > 0 && (worst == "" || a / b > worst)) worst = a / b }
	printf "| resident memory per member ≤ 1/10 of etcd's | worst member %s | %s |\n", worst == "" ? "–" : sprintf("%.2f×", worst), worst == "" ? "–" : (worst <= 0.1) ? "yes" : "no"
	v = median("cairn"); printf "| failover median < 1 s | %s ms | %s |\n", f(v, "%.0f"), v == "" ? "–" : (v < 1000) ? "yes" : "no"
	# Plot data: clients, Cairn put, etcd put, Cairn get, etcd get, Cairn get-serial, etcd get-serial.
	split("1 16 64 256", cl, " ")
	for (t = 1; t <= 4; t++) {
		line = cl[t]
		split("put get get-serial", ws, " ")
		for (w = 1; w <= 3; w++) for (s = 1; s <= 2; s++) {
			v = j(r[(s == 1 ? "cairn" : "etcd"), ws[w] ":" cl[t]], "ops_per_sec")
			line = line " " (v == "" ? "NaN" : v)
		}
		print line > "/dev/stderr"
	}
}
AWK
	{
		echo "# Cairn vs etcd — $DATE"
		echo
		echo "Generated by \`scripts/bench-vs-etcd.sh\` ($(meta quick_note)$(meta duration) per workload after $(meta warmup) of warm-up). How to read it: [../benchmarks.md](../benchmarks.md)."
		echo
		echo "- Machine: $(meta machine); load average before the run: $(meta load) (anything else running shares the CPUs and the disk)."
		echo "- $(meta versions)."
		echo "- 3 members each on 127.0.0.1, one system after the other, default durability (fsync per commit) and default timeouts$(meta flags). Load generators on the same machine: \`cairn-bench\` (libcairn) and \`etcd-load\` (clientv3), closed loop, one request in flight per client, keys of $KEY_SIZE B over a key space of $KEY_SPACE, values of $VALUE_SIZE B. Client handles / gRPC clients per run: 1 for 1 client, 2 up to 16, 4 above."
		echo
		cat "$WORK/tables.md"
		echo
		echo "![throughput against clients]($name-throughput.png)"
		echo
		echo "Raw results (one JSON line per run): [$name.jsonl]($name.jsonl)."
		# Hand-written analysis of this run (profiles, what limits each figure), if any.
		if [ -f "$OUT_DIR/$name-notes.md" ]; then
			echo
			cat "$OUT_DIR/$name-notes.md"
		fi
	} >"$md"
	# The plot: gnuplot reads the data the awk above printed on its stderr.
	if command -v gnuplot >/dev/null; then
		gnuplot 2>"$WORK/gnuplot.err" <<EOF || log "gnuplot failed; no plot: $(tail -3 "$WORK/gnuplot.err")"
set terminal pngcairo size 900,560 font ",11"
set output "$png"
set title "Cairn vs etcd: throughput against concurrent clients (3 members, loopback, $DATE)"
set xlabel "clients (closed loop, one request in flight each)"
set ylabel "operations per second"
set logscale xy
set xtics ("1" 1, "16" 16, "64" 64, "256" 256)
set key bottom right box opaque
set grid
set datafile missing "NaN"
plot "$dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "Cairn put", \
     "$dat" using 1:3 with linespoints lw 2 pt 7 dt 2 lc rgb "#d62728" title "etcd put", \
     "$dat" using 1:4 with linespoints lw 2 pt 5 lc rgb "#2ca02c" title "Cairn get (linearizable)", \
     "$dat" using 1:5 with linespoints lw 2 pt 5 dt 2 lc rgb "#ff7f0e" title "etcd get (linearizable)", \
     "$dat" using 1:6 with linespoints lw 2 pt 9 lc rgb "#9467bd" title "Cairn get (serializable)", \
     "$dat" using 1:7 with linespoints lw 2 pt 9 dt 2 lc rgb "#8c564b" title "etcd get (serializable)"
EOF
	fi
	log "wrote $md and $png"
	if [ "$UPDATE_README" = 1 ] && [ "$QUICK" != 1 ] && grep -q '<!-- bench-vs-etcd:begin -->' "$ROOT/README.md" 2>/dev/null; then
		awk -v tbl="$WORK/tables.md" -v date="$DATE" '
			/<!-- bench-vs-etcd:begin -->/ { print; print ""; print "Latest run (" date ", [details](docs/benchmarks/" date ".md)):"; print ""
				while ((getline l < tbl) > 0) print l; print ""; skip = 1; next }
			/<!-- bench-vs-etcd:end -->/ { skip = 0 }
			!skip { print }' "$ROOT/README.md" >"$WORK/README.md" && cp "$WORK/README.md" "$ROOT/README.md"
		log "updated the table in README.md"
	fi
}

# ---- main ------------------------------------------------------------------------------------

if [ -n "${REPORT_FROM:-}" ]; then # redo the report (and the README table) from saved results
	cp "$REPORT_FROM" "$RESULTS"
	DATE=$(meta date)
	[ -n "$DATE" ] || die "$REPORT_FROM has no meta line"
	[[ "$(meta quick_note)" != QUICK* ]] || QUICK=1
	write_report
	exit 0
fi
ensure_deps
build
write_meta
log "work directory $WORK; $DURATION per workload, $FAILOVER_TRIALS failover trials"
for sys in $SYSTEMS; do
	bench_system "$sys"
done
write_report
