#!/usr/bin/env bash
# A private RabbitMQ node for the RabbitMQ bridge's tests (Debian's rabbitmq-server), on loopback.
#
#   rabbitmq.sh start STATE_DIR   start the node, create the test users, append to STATE_DIR/env
#   rabbitmq.sh stop  STATE_DIR   stop the node STATE_DIR/rabbitmq/pid names
#
# Ports: HOTELBUS_RIG_AMQP_PORT (default 15675) for AMQP and RABBITMQ_DIST_PORT (default 15676) for
# Erlang distribution; a busy explicit port is refused, a busy default one replaced. The node's
# name, data (mnesia), logs, config and feature flags live under STATE_DIR/rabbitmq, owned by the
# rabbitmq user, so that several rigs run side by side. Also sourced by single.sh.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# Users the tests connect as (RabbitMQ checks a message's user-id against the connection's user):
# hotelbus-bridge (the bridge), and one per system publishing on RabbitMQ.
RABBIT_USERS=(hotelbus-bridge rmq-pms rmq-member rmq-saas rmq-common)
RABBIT_PASSWORD=hotelbus-test

# rabbit_env DIR NODE PORT DIST: the environment of the node's scripts.
rabbit_env() {
	local dir=$1 node=$2 port=$3 dist=$4
	printf '%s\n' HOME=/var/lib/rabbitmq "RABBITMQ_NODENAME=$node" "RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
		"RABBITMQ_NODE_PORT=$port" "RABBITMQ_DIST_PORT=$dist" "RABBITMQ_MNESIA_BASE=$dir/mnesia" \
		"RABBITMQ_LOG_BASE=$dir/log" "RABBITMQ_PID_FILE=$dir/pid" "RABBITMQ_CONFIG_FILE=$dir/rabbitmq" \
		"RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins" "RABBITMQ_FEATURE_FLAGS_FILE=$dir/feature_flags" \
		"RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config"
}

# rabbitctl DIR ARGS...: rabbitmqctl against the node in DIR, as the rabbitmq user.
rabbitctl() {
	local dir=$1
	shift
	# shellcheck disable=SC2046
	runuser -u rabbitmq -- env $(cat "$dir/env") /usr/lib/rabbitmq/bin/rabbitmqctl -n "$(sed -n 's/^RABBITMQ_NODENAME=//p' "$dir/env")" "$@"
}

# rabbitmq_start STATE_DIR: starts the node, waits for AMQP, creates the users; prints the
# HOTELBUS_TEST_AMQP* export lines.
rabbitmq_start() {
	local state=$1 dir=$1/rabbitmq
	locked ensure_rabbitmq
	local port dist
	port=$(pick_port amqp "${HOTELBUS_RIG_AMQP_PORT:-15675}" "${HOTELBUS_RIG_AMQP_PORT:-}")
	RIG_TAKEN="${RIG_TAKEN:-} $port"
	dist=$(pick_port rabbitmq-dist "${RABBITMQ_DIST_PORT:-15676}" "${RABBITMQ_DIST_PORT:-}")
	rabbitmq_stop "$state"
	# The node runs as the rabbitmq user, which cannot pass through the rig's state directories
	# (mktemp -d makes them 0700): its files live in a directory of their own under RUN_DIR, which
	# $state/rabbitmq links to, and rabbitmq_stop removes.
	local real
	real=$(mktemp -d "$RUN_DIR/hotelbus-rabbitmq.XXXXXX")
	chmod 0755 "$real"
	ln -s "$real" "$dir"
	dir=$real
	mkdir -p "$dir/mnesia" "$dir/log"
	echo '[].' >"$dir/enabled_plugins"
	echo '[].' >"$dir/advanced.config"
	# Quorum queues and user-id checks need nothing beyond the defaults; disk_free_limit is low so
	# a full CI disk does not block publishers.
	printf '%s\n' "listeners.tcp.default = 127.0.0.1:$port" "disk_free_limit.absolute = 50MB" \
		"log.file.level = warning" "loopback_users = none" >"$dir/rabbitmq.conf"
	local node="hotelbus-$port@localhost"
	rabbit_env "$dir" "$node" "$port" "$dist" >"$dir/env"
	chown -R rabbitmq:rabbitmq "$dir"
	log "starting rabbitmq-server $node on 127.0.0.1:$port (dist $dist)"
	# shellcheck disable=SC2046
	setsid runuser -u rabbitmq -- env $(cat "$dir/env") /usr/lib/rabbitmq/bin/rabbitmq-server \
		</dev/null >"$dir/log/startup.log" 2>&1 &
	local start=$SECONDS
	until [[ -s $dir/pid ]] && rabbitctl "$dir" await_startup --timeout 5 >/dev/null 2>&1; do
		if ((SECONDS - start > ${HOTELBUS_RIG_TIMEOUT:-120})); then
			tail -n 30 "$dir/log/startup.log" >&2 || true
			die "rabbitmq-server $node did not start"
		fi
		sleep 1
	done
	local u
	for u in "${RABBIT_USERS[@]}"; do
		rabbitctl "$dir" add_user "$u" "$RABBIT_PASSWORD" >/dev/null
		rabbitctl "$dir" set_permissions -p / "$u" '.*' '.*' '.*' >/dev/null
	done
	rabbitctl "$dir" set_user_tags hotelbus-bridge administrator >/dev/null
	cat >>"$state/env" <<ENV
export HOTELBUS_TEST_AMQP=amqp://hotelbus-bridge:$RABBIT_PASSWORD@127.0.0.1:$port/
export HOTELBUS_TEST_AMQP_PASSWORD=$RABBIT_PASSWORD
export HOTELBUS_TEST_RABBITMQ_DIR=$dir
ENV
	log "up: rabbitmq 127.0.0.1:$port (node $node, users ${RABBIT_USERS[*]})"
}

# rabbitmq_stop STATE_DIR
rabbitmq_stop() {
	local dir=$1/rabbitmq real
	[[ -e $dir || -L $dir ]] || return 0
	[[ -f $dir/pid ]] && stop_pid "$dir/pid" beam rabbitmq-server
	real=$(readlink -f "$dir")
	if [[ $real == "$RUN_DIR"/hotelbus-rabbitmq.* ]]; then
		rm -rf "$real"
	fi
	rm -rf "$dir"
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
	state=${2:?usage: $0 start|stop STATE_DIR}
	case ${1:-} in
	start)
		mkdir -p "$state"
		rabbitmq_stop "$state"
		rabbitmq_start "$state"
		;;
	stop) rabbitmq_stop "$state" ;;
	*)
		echo "usage: $0 start|stop STATE_DIR" >&2
		exit 2
		;;
	esac
fi
