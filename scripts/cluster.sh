#!/bin/sh
# Starts, stops and inspects a local Cairn cluster of N members on loopback (N = 1, 3 or 5).
#
#   scripts/cluster.sh start [N]    start N members (default 3) in .cluster/
#   scripts/cluster.sh stop         stop them (SIGTERM, then SIGKILL after 10 s)
#   scripts/cluster.sh status       which members run, and `cairnctl status`
#   scripts/cluster.sh clean        stop and delete the data directories
#
# Member i listens for clients on 127.0.0.1:(7379 + 100*(i-1)) and for peers on
# 127.0.0.1:(7380 + 100*(i-1)); its data is in .cluster/data/i, its log in .cluster/i.log.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
DIR=${CAIRN_CLUSTER_DIR:-$ROOT/.cluster}
CAIRND=$BUILD/cairnd
CAIRNCTL=$BUILD/cairnctl

client_port() { echo $((7379 + 100 * ($1 - 1))); }
peer_port() { echo $((7380 + 100 * ($1 - 1))); }

endpoints() {
	n=$(cat "$DIR/size" 2>/dev/null || echo 3)
	eps=""
	i=1
	while [ "$i" -le "$n" ]; do
		eps="$eps${eps:+,}127.0.0.1:$(client_port "$i")"
		i=$((i + 1))
	done
	echo "$eps"
}

running() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

start() {
	n=${1:-3}
	case "$n" in 1 | 3 | 5) ;; *) echo "cluster.sh: N must be 1, 3 or 5" >&2; exit 3 ;; esac
	[ -x "$CAIRND" ] || { echo "cluster.sh: $CAIRND not built; run make" >&2; exit 1; }
	if [ -f "$DIR/size" ] && [ "$(cat "$DIR/size")" != "$n" ] && [ -d "$DIR/data" ]; then
		echo "cluster.sh: $DIR holds a $(cat "$DIR/size")-member cluster; run 'scripts/cluster.sh clean' first" >&2
		exit 1
	fi
	mkdir -p "$DIR/data"
	echo "$n" >"$DIR/size"
	ic=""
	i=1
	while [ "$i" -le "$n" ]; do
		ic="$ic${ic:+,}$i=127.0.0.1:$(peer_port "$i")"
		i=$((i + 1))
	done
	i=1
	while [ "$i" -le "$n" ]; do
		if running "$i"; then
			echo "member $i already running (pid $(cat "$DIR/$i.pid"))"
		else
			"$CAIRND" --id "$i" --name "cairn-$i" --data-dir "$DIR/data/$i" \
				--listen-client "127.0.0.1:$(client_port "$i")" \
				--listen-peer "127.0.0.1:$(peer_port "$i")" \
				--initial-cluster "$ic" >>"$DIR/$i.log" 2>&1 &
			echo $! >"$DIR/$i.pid"
			echo "member $i: pid $!, clients 127.0.0.1:$(client_port "$i"), log $DIR/$i.log"
		fi
		i=$((i + 1))
	done
	# Wait (bounded) until a leader answers.
	tries=0
	while [ $tries -lt 50 ]; do
		if [ -x "$CAIRNCTL" ] && "$CAIRNCTL" --endpoints "$(endpoints)" --command-timeout 1s \
			status >/dev/null 2>&1; then
			break
		fi
		sleep 0.2
		tries=$((tries + 1))
	done
	echo
	echo "Endpoints: $(endpoints)"
	echo "Try:"
	echo "  export CAIRN_ENDPOINTS=$(endpoints)"
	echo "  $CAIRNCTL put greeting hello"
	echo "  $CAIRNCTL get greeting"
	echo "  $CAIRNCTL get --prefix gr"
	echo "  $CAIRNCTL status -w table"
	echo "  scripts/cluster.sh stop"
}

stop() {
	for f in "$DIR"/*.pid; do
		[ -f "$f" ] || continue
		pid=$(cat "$f")
		if kill -0 "$pid" 2>/dev/null; then
			kill "$pid" 2>/dev/null || true
			t=0
			while kill -0 "$pid" 2>/dev/null && [ $t -lt 100 ]; do
				sleep 0.1
				t=$((t + 1))
			done
			kill -9 "$pid" 2>/dev/null || true
			echo "stopped member $(basename "$f" .pid) (pid $pid)"
		fi
		rm -f "$f"
	done
}

status() {
	n=$(cat "$DIR/size" 2>/dev/null || echo 0)
	i=1
	while [ "$i" -le "$n" ]; do
		if running "$i"; then
			echo "member $i: running (pid $(cat "$DIR/$i.pid")), clients 127.0.0.1:$(client_port "$i")"
		else
			echo "member $i: stopped"
		fi
		i=$((i + 1))
	done
	if [ "$n" -gt 0 ] && [ -x "$CAIRNCTL" ]; then
		"$CAIRNCTL" --endpoints "$(endpoints)" status -w table || true
	fi
}

case "${1:-}" in
start) start "${2:-3}" ;;
stop) stop ;;
status) status ;;
clean) stop; rm -rf "$DIR" ;;
*)
	sed -n '2,10p' "$0"
	exit 3
	;;
esac
