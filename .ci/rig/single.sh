#!/usr/bin/env bash
# The test rig: one combined Apache Kafka broker+controller (KRaft), one redis-server, a Redis
# Cluster of three masters (redis-ha.sh, for the tests that check the key layout on a Cluster),
# the interop peer's Python venv and the npm tools of the contract checks, all on loopback.
#
#   single.sh start [STATE_DIR]   start both, wait until they answer, write STATE_DIR/env
#   single.sh stop  [STATE_DIR]   stop what STATE_DIR's pid files name
#
# STATE_DIR (default $RUN_DIR/hotelbus-single, see common.sh) holds the broker's data and logs,
# the pid files and `env`, a file of `export` lines with the HOTELBUS_TEST_* variables. It also
# starts a private RabbitMQ node (rabbitmq.sh) for the RabbitMQ bridge's tests.
# Ports (default 19092 broker, 19093 controller, 16379 redis) come from HOTELBUS_RIG_KAFKA_PORT,
# HOTELBUS_RIG_CONTROLLER_PORT, HOTELBUS_RIG_REDIS_PORT; a busy explicit port is refused, a busy
# default one is replaced by a free port; the Redis Cluster takes free ports, or three from
# HOTELBUS_RIG_REDIS_CLUSTER_PORT on. Also sourced by test.sh for rig_start / rig_stop.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=rabbitmq.sh
source "$(dirname "${BASH_SOURCE[0]}")/rabbitmq.sh"

# rig_start STATE_DIR (its variable is not called state: a die in here runs the caller's EXIT
# trap inside this function, where a local "state" would hide the caller's)
rig_start() {
	local dir=$1
	locked ensure_debs
	locked ensure_kafka_jars
	need_cmd "$JAVA"

	local kport cport rport
	kport=$(pick_port kafka "${HOTELBUS_RIG_KAFKA_PORT:-19092}" "${HOTELBUS_RIG_KAFKA_PORT:-}")
	RIG_TAKEN="$kport"
	cport=$(pick_port controller "${HOTELBUS_RIG_CONTROLLER_PORT:-19093}" "${HOTELBUS_RIG_CONTROLLER_PORT:-}")
	RIG_TAKEN="$kport $cport"
	rport=$(pick_port redis "${HOTELBUS_RIG_REDIS_PORT:-16379}" "${HOTELBUS_RIG_REDIS_PORT:-}")

	local kdir=$dir/kafka rdir=$dir/redis
	rm -rf "$kdir" "$rdir" "$dir/redis-cluster" "$dir/env"
	mkdir -p "$kdir/data" "$kdir/logs" "$rdir"
	{
		broker_props 1 "$kport" "$cport" "127.0.0.1:$cport" "$kdir/data" 1
		# The only broker has no one to fail over to: a heartbeat missed on a starved two-core
		# machine must not fence it (the default session timeout is 9 s).
		echo broker.session.timeout.ms=30000
	} >"$kdir/server.properties"
	local cluster_id
	cluster_id=$(kafka_uuid)
	kafka_storage format -t "$cluster_id" -c "$kdir/server.properties" --standalone >"$kdir/logs/format.log" 2>&1 ||
		{ cat "$kdir/logs/format.log" >&2; die "kafka storage format failed"; }

	log "starting kafka on 127.0.0.1:$kport (controller $cport)"
	start_broker "$kdir"

	log "starting redis-server on 127.0.0.1:$rport"
	redis-server --bind 127.0.0.1 --port "$rport" --save '' --appendonly no --daemonize no \
		--dir "$rdir" --logfile "$rdir/redis.log" </dev/null >/dev/null 2>&1 &
	echo $! >"$rdir/pid"

	# The venv and the npm tools are installed while the broker boots.
	locked ensure_venv
	locked ensure_npm_tools

	local start=$SECONDS
	until [[ $(redis-cli -h 127.0.0.1 -p "$rport" ping 2>/dev/null) == PONG ]]; do
		if ! alive "$(cat "$rdir/pid")" || ((SECONDS - start > 30)); then
			tail -n 20 "$rdir/redis.log" >&2 || true
			die "redis-server on 127.0.0.1:$rport did not answer PING"
		fi
		sleep 0.1
	done
	local cluster
	cluster=$(HOTELBUS_RIG_REDIS_HA_PORT=${HOTELBUS_RIG_REDIS_CLUSTER_PORT:-} bash "$RIG_DIR/redis-ha.sh" cluster "$dir/redis-cluster")
	wait_broker "127.0.0.1:$kport" 1 "$kdir" "${HOTELBUS_RIG_TIMEOUT:-120}"

	cat >"$dir/env" <<EOF
export HOTELBUS_TEST_REAL=1
export HOTELBUS_TEST_BROKERS=127.0.0.1:$kport
export HOTELBUS_TEST_REDIS=redis://127.0.0.1:$rport/0
export HOTELBUS_TEST_REDIS_CLUSTER=$cluster
export HOTELBUS_TEST_PYTHON=$VENV/bin/python
export HOTELBUS_TEST_NODE_MODULES=$NPM_TOOLS/node_modules
EOF
	# The RabbitMQ bridge's node (HOTELBUS_RIG_AMQP_PORT, RABBITMQ_DIST_PORT); adds HOTELBUS_TEST_AMQP.
	rabbitmq_start "$dir"
	log "up: kafka 127.0.0.1:$kport, redis 127.0.0.1:$rport, redis cluster $cluster, python $VENV/bin/python (state $dir)"
}

# rig_stop STATE_DIR
rig_stop() {
	local state=$1
	stop_pid "$state/kafka/pid" "-Dhotelbus.rig=$state/kafka" kafka
	stop_pid "$state/redis/pid" redis-server redis-server
	bash "$RIG_DIR/redis-ha.sh" stop "$state/redis-cluster"
	rabbitmq_stop "$state"
	rm -f "$state/env"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	state=${2:-$RUN_DIR/hotelbus-single}
	case ${1:-} in
	start)
		mkdir -p "$state"
		rig_stop "$state"
		rig_start "$state"
		cat "$state/env"
		;;
	stop) rig_stop "$state" ;;
	*)
		echo "usage: $0 start|stop [STATE_DIR]" >&2
		exit 2
		;;
	esac
fi
