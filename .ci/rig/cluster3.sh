#!/usr/bin/env bash
# A three-node Apache Kafka cluster (KRaft, every node broker+controller) on loopback, for
# replication and failover tests by hand or from `make cluster3-up` / `make cluster3-down`.
#
#   cluster3.sh start   format three fresh nodes with one cluster id and the same static
#                       --initial-controllers, start them, wait until every node serves metadata
#                       listing all three brokers, print the bootstrap list
#   cluster3.sh stop    stop the three nodes
#   cluster3.sh status  list the nodes that are running
#
# Nodes 1..3: broker ports 19192/19292/19392, controller ports 19193/19293/19393 (a busy port is
# refused). Replication factor 3, min.insync.replicas 2 (topics and internal topics).
# State in $RUN_DIR/hotelbus-cluster3/node<N> (data, logs/server.log, pid; RUN_DIR: see common.sh);
# its env file exports HOTELBUS_CLUSTER3_BROKERS. Stopping drops the data and keeps the logs.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

STATE=$RUN_DIR/hotelbus-cluster3
NODES=(1 2 3)
bport() { echo $((19092 + 100 * $1)); }
cport() { echo $((19093 + 100 * $1)); }
BOOTSTRAP=$(for n in "${NODES[@]}"; do printf '127.0.0.1:%s,' "$(bport "$n")"; done)
BOOTSTRAP=${BOOTSTRAP%,}

stop_all() {
	local n
	for n in "${NODES[@]}"; do
		stop_pid "$STATE/node$n/pid" "-Dhotelbus.rig=$STATE/node$n" "kafka node $n" &
	done
	wait
	rm -rf "$STATE/env" "$STATE"/node*/data
}

start_all() {
	locked ensure_debs
	locked ensure_kafka_jars
	need_cmd "$JAVA"
	stop_all
	local n
	for n in "${NODES[@]}"; do
		! port_busy "$(bport "$n")" || die "port $(bport "$n") (node $n broker) is already in use"
		! port_busy "$(cport "$n")" || die "port $(cport "$n") (node $n controller) is already in use"
	done

	local quorum="" voters="" cluster_id
	cluster_id=$(kafka_uuid)
	for n in "${NODES[@]}"; do
		quorum+="127.0.0.1:$(cport "$n"),"
		voters+="$n@127.0.0.1:$(cport "$n"):$(kafka_uuid),"
	done
	quorum=${quorum%,}
	voters=${voters%,}

	rm -rf "$STATE"
	local pids=()
	for n in "${NODES[@]}"; do
		local dir=$STATE/node$n
		mkdir -p "$dir/data" "$dir/logs"
		broker_props "$n" "$(bport "$n")" "$(cport "$n")" "$quorum" "$dir/data" 3 >"$dir/server.properties"
		# Every node is formatted with the same cluster id and the same initial voter set; each one
		# takes its own directory id from its entry.
		kafka_storage format -t "$cluster_id" -c "$dir/server.properties" --initial-controllers "$voters" \
			>"$dir/logs/format.log" 2>&1 &
		pids+=($!)
	done
	for n in "${NODES[@]}"; do
		wait "${pids[n - 1]}" || {
			cat "$STATE/node$n/logs/format.log" >&2
			die "kafka storage format of node $n failed"
		}
	done

	# A failed start leaves nothing running.
	trap 'rc=$?; ((rc == 0)) || stop_all; exit $rc' EXIT
	for n in "${NODES[@]}"; do
		log "starting kafka node $n on 127.0.0.1:$(bport "$n") (controller $(cport "$n"))"
		start_broker "$STATE/node$n"
	done
	for n in "${NODES[@]}"; do
		wait_broker "127.0.0.1:$(bport "$n")" "$n" "$STATE/node$n" "${HOTELBUS_RIG_TIMEOUT:-180}"
	done
	# Every node has registered; wait until each one's metadata lists all three brokers.
	local start=$SECONDS out
	for n in "${NODES[@]}"; do
		until out=$(kcat -L -b "127.0.0.1:$(bport "$n")" -m 2 2>/dev/null) && grep -q '^ 3 brokers:' <<<"$out"; do
			((SECONDS - start < 60)) || die "node $n does not list three brokers: $out"
			sleep 0.3
		done
	done
	trap - EXIT
	echo "export HOTELBUS_CLUSTER3_BROKERS=$BOOTSTRAP" >"$STATE/env"
	log "cluster3 up: $BOOTSTRAP (cluster id $cluster_id, state $STATE)"
	cat "$STATE/env"
}

status() {
	local n pid up=0
	for n in "${NODES[@]}"; do
		pid=$(cat "$STATE/node$n/pid" 2>/dev/null || true)
		if [[ -n $pid ]] && alive "$pid"; then
			echo "node $n: running (pid $pid) on 127.0.0.1:$(bport "$n")"
			up=$((up + 1))
		else
			echo "node $n: stopped"
		fi
	done
	((up == ${#NODES[@]}))
}

case ${1:-} in
start) start_all ;;
stop) stop_all ;;
status) status ;;
*)
	echo "usage: $0 start|stop|status" >&2
	exit 2
	;;
esac
