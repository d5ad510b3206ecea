#!/usr/bin/env bash
# Highly available Redis for tests that need one (Debian's redis-server, no persistence, on
# loopback): a Sentinel-managed primary with one replica and three Sentinels, or a Redis Cluster
# of three masters (each with one replica when asked). Every process runs in the foreground of
# its own nohup, its pid in STATE_DIR/<name>/pid, its log in STATE_DIR/<name>/redis.log.
#
#   redis-ha.sh sentinel STATE_DIR            start; prints the redis-sentinel:// URL (master "hotelbus")
#   redis-ha.sh cluster  STATE_DIR [REPLICAS] start 3 masters (+ REPLICAS per master, 0 or 1) and
#                                             create the cluster; prints the redis-cluster:// URL
#   redis-ha.sh stop     STATE_DIR            stop every process it started there (by pid)
#   redis-ha.sh kill     STATE_DIR NAME       SIGKILL one process (NAME: primary, replica, sentinel1..3,
#                                             node1..6); prints its port
#
# Ports are free ones picked at start (a Cluster node's bus port, its port + 10000, must be free
# too); HOTELBUS_RIG_REDIS_HA_PORT=N uses N, N+1, ... instead. STATE_DIR/ports lists "name port".
# Sentinels declare a primary down after 1 s without an answer (down-after-milliseconds 1000),
# cluster nodes after 2 s (cluster-node-timeout 2000), so a failover takes a few seconds.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

usage() { echo "usage: $0 sentinel|cluster|stop|kill STATE_DIR [ARG]" >&2; exit 2; }
cmd=${1:-}
state=${2:-}
[[ -n $cmd && -n $state ]] || usage
MASTER=hotelbus

# next_port: sets PORT to the next port to use (see the header); the cluster needs port+10000
# free as well.
next_port_base=${HOTELBUS_RIG_REDIS_HA_PORT:-}
next_port() {
	if [[ -n $next_port_base ]]; then
		PORT=$next_port_base
		next_port_base=$((next_port_base + 1))
		return
	fi
	local p
	for _ in $(seq 200); do
		p=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
		if ((p < 55000)) && ! port_busy $((p + 10000)) && ! grep -q " $p\$" "$state/ports" 2>/dev/null; then
			PORT=$p
			return
		fi
	done
	die "no free port pair found"
}

# start NAME PORT ARGS...: starts redis-server as NAME on PORT with ARGS and waits for PING.
start() {
	local name=$1 port=$2
	shift 2
	local dir=$state/$name
	mkdir -p "$dir"
	port_busy "$port" && die "$name: port $port is already in use"
	echo "$name $port" >>"$state/ports"
	nohup redis-server "$@" --port "$port" --bind 127.0.0.1 --daemonize no --dir "$dir" \
		--logfile "$dir/redis.log" --save '' --appendonly no \
		>"$dir/stdout.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

wait_ping() {
	local name=$1 port=$2 i
	for ((i = 0; i < 200; i++)); do
		[[ $(redis-cli -p "$port" ping 2>/dev/null) == PONG ]] && return 0
		sleep 0.05
	done
	tail -n 20 "$state/$name/redis.log" "$state/$name/stdout.log" >&2 || true
	die "$name on port $port did not answer PING"
}

port_of() { awk -v n="$1" '$1 == n { print $2 }' "$state/ports"; }

case $cmd in
sentinel)
	need_cmd redis-server
	need_cmd redis-cli
	mkdir -p "$state"
	[[ ! -s $state/ports ]] || die "$state already holds a running set (stop it first)"
	next_port
	p=$PORT
	start primary "$p"
	wait_ping primary "$p"
	next_port
	r=$PORT
	start replica "$r" --replicaof 127.0.0.1 "$p"
	wait_ping replica "$r"
	addrs=()
	for n in 1 2 3; do
		next_port
		s=$PORT
		mkdir -p "$state/sentinel$n"
		cat >"$state/sentinel$n/sentinel.conf" <<EOF
sentinel monitor $MASTER 127.0.0.1 $p 2
sentinel down-after-milliseconds $MASTER 1000
sentinel failover-timeout $MASTER 10000
sentinel parallel-syncs $MASTER 1
EOF
		# Sentinel rewrites its configuration file: it must be the first argument.
		echo "sentinel$n $s" >>"$state/ports"
		nohup redis-server "$state/sentinel$n/sentinel.conf" --sentinel --port "$s" --bind 127.0.0.1 --daemonize no \
			--dir "$state/sentinel$n" --logfile "$state/sentinel$n/redis.log" \
			>"$state/sentinel$n/stdout.log" 2>&1 </dev/null &
		echo $! >"$state/sentinel$n/pid"
		addrs+=("127.0.0.1:$s")
	done
	for n in 1 2 3; do wait_ping "sentinel$n" "$(port_of "sentinel$n")"; done
	# Ready when the replica is in sync and every Sentinel knows the replica and the other two.
	for ((i = 0; ; i++)); do
		ok=1
		[[ $(redis-cli -p "$r" info replication | tr -d '\r' | grep -c '^master_link_status:up') == 1 ]] || ok=0
		for n in 1 2 3; do
			out=$(redis-cli -p "$(port_of "sentinel$n")" sentinel master "$MASTER" 2>/dev/null | tr -d '\r' | paste - - | awk '$1 == "num-slaves" || $1 == "num-other-sentinels" { print $1 "=" $2 }')
			grep -q 'num-slaves=1' <<<"$out" && grep -q 'num-other-sentinels=2' <<<"$out" || ok=0
		done
		((ok)) && break
		((i < 600)) || die "the Sentinel set did not settle in 30 s"
		sleep 0.05
	done
	log "sentinel set up: primary 127.0.0.1:$p, replica 127.0.0.1:$r, sentinels ${addrs[*]} (state $state)"
	echo "redis-sentinel://$(IFS=,; echo "${addrs[*]}")/$MASTER"
	;;
cluster)
	need_cmd redis-server
	need_cmd redis-cli
	replicas=${3:-0}
	[[ $replicas == 0 || $replicas == 1 ]] || usage
	mkdir -p "$state"
	[[ ! -s $state/ports ]] || die "$state already holds a running set (stop it first)"
	nodes=$((3 * (1 + replicas)))
	addrs=()
	for ((n = 1; n <= nodes; n++)); do
		next_port
		p=$PORT
		start "node$n" "$p" --cluster-enabled yes --cluster-config-file "$state/node$n/nodes.conf" \
			--cluster-node-timeout 2000 --cluster-replica-validity-factor 0
		addrs+=("127.0.0.1:$p")
	done
	for ((n = 1; n <= nodes; n++)); do wait_ping "node$n" "$(port_of "node$n")"; done
	redis-cli --cluster create "${addrs[@]}" --cluster-replicas "$replicas" --cluster-yes >"$state/create.log" 2>&1 ||
		{ cat "$state/create.log" >&2; die "redis-cli --cluster create failed"; }
	for ((i = 0; ; i++)); do
		ok=1
		for ((n = 1; n <= nodes; n++)); do
			redis-cli -p "$(port_of "node$n")" cluster info | tr -d '\r' | grep -q '^cluster_state:ok' || ok=0
		done
		# every replica in sync with its master
		for ((n = 1; n <= nodes; n++)); do
			info=$(redis-cli -p "$(port_of "node$n")" info replication | tr -d '\r')
			if grep -q '^role:slave' <<<"$info"; then grep -q '^master_link_status:up' <<<"$info" || ok=0; fi
		done
		((ok)) && break
		((i < 600)) || die "the cluster did not reach cluster_state:ok in 30 s"
		sleep 0.05
	done
	log "cluster up: ${addrs[*]} ($replicas replica(s) per master; state $state)"
	echo "redis-cluster://$(IFS=,; echo "${addrs[*]}")"
	;;
stop)
	[[ -d $state ]] || exit 0
	for dir in "$state"/*/; do
		name=$(basename "$dir")
		# redis-server shows its address as its command line: tells it from a process that reused the pid
		stop_pid "$dir/pid" "127.0.0.1:$(port_of "$name")" "redis $name" &
	done
	wait
	rm -f "$state/ports"
	;;
kill)
	name=${3:-}
	[[ -n $name && -f $state/$name/pid ]] || die "no process $name in $state"
	pid=$(cat "$state/$name/pid")
	kill -KILL "$pid"
	while alive "$pid"; do sleep 0.02; done
	port_of "$name"
	;;
*) usage ;;
esac
