#!/usr/bin/env bash
# A private, restartable single-node Apache Kafka broker for fault-injection tests (the shared rig
# broker must not be stopped under other tests). Uses the jars cached by the rig.
#
#   broker.sh start STATE_DIR [PORT]   format STATE_DIR (first start only) and start; waits until up;
#                                      prints the bootstrap address
#   broker.sh stop  STATE_DIR          clean shutdown (SIGTERM)
#   broker.sh kill  STATE_DIR          SIGKILL, no shutdown
#
# The port (and controller port) are chosen on first start and kept in STATE_DIR, so a restart
# comes back at the same address with the same data.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

cmd=${1:-}
state=${2:-}
[[ -n $cmd && -n $state ]] || { echo "usage: $0 start|stop|kill STATE_DIR [PORT]" >&2; exit 2; }
dir=$state/kafka

case $cmd in
start)
	locked ensure_kafka_jars
	# A first start picks free ports; another process may take one before the broker binds it
	# (free_port closes its socket), so a first start whose broker cannot bind tries new ports,
	# up to three times. A restart, or a start given its PORT, keeps its ports.
	for attempt in 1 2 3; do
		mkdir -p "$dir/data" "$dir/logs"
		fresh=false
		if [[ ! -f $dir/ports ]]; then
			fresh=true
			kport=${3:-$(free_port)}
			cport=$(free_port)
			echo "$kport $cport" >"$dir/ports"
			{
				broker_props 1 "$kport" "$cport" "127.0.0.1:$cport" "$dir/data" 1
				# short, so a restart after kill -9 re-registers quickly (the old incarnation must expire)
				echo broker.session.timeout.ms=6000
				echo broker.heartbeat.interval.ms=1000
			} >"$dir/server.properties"
			kafka_storage format -t "$(kafka_uuid)" -c "$dir/server.properties" --standalone >"$dir/logs/format.log" 2>&1 ||
				{ cat "$dir/logs/format.log" >&2; die "kafka storage format failed"; }
		fi
		read -r kport cport <"$dir/ports"
		start_broker "$dir"
		if (wait_broker "127.0.0.1:$kport" 1 "$dir" "${HOTELBUS_RIG_TIMEOUT:-120}"); then
			echo "127.0.0.1:$kport"
			exit 0
		fi
		if ! $fresh || [[ -n ${3:-} ]] || ((attempt == 3)) || ! grep -qs "Address already in use" "$dir/logs/server.log" "$dir/logs/stdout.log"; then
			exit 1
		fi
		log "ports $kport/$cport were taken before the broker bound them; trying new ones"
		rm -rf "$dir"
	done
	;;
stop) stop_pid "$dir/pid" "-Dhotelbus.rig=$dir" kafka ;;
kill)
	if [[ -f $dir/pid ]]; then
		pid=$(cat "$dir/pid")
		kill -KILL "$pid" 2>/dev/null || true
		while alive "$pid"; do sleep 0.1; done
		rm -f "$dir/pid"
	fi
	;;
*)
	echo "usage: $0 start|stop|kill STATE_DIR [PORT]" >&2
	exit 2
	;;
esac
