#!/usr/bin/env bash
# `make faults`: the fault-injection suite (streams/faults). Brings the rig up (single.sh: one
# broker and one redis-server, shared by the scenarios that do not kill brokers), builds the
# hotelbus binary once, runs the suite, prints the summary table and each scenario's table, and
# always stops everything it started: the rig, and the private brokers (broker.sh), the
# three-node cluster (cluster3.sh) and the Redis Sentinel sets and Clusters (redis-ha.sh) the
# scenarios start under its state directory, also when the
# tests fail, time out or the run is interrupted. After a failure the processes' and brokers' logs
# are kept in a directory it names. Exits with go test's status.
#
#   faults.sh [GO TEST ARGS...]                   e.g. faults.sh -run TestRedisKill9
#   faults.sh node-start NODE_DIR ADDR NODE_ID    start a killed cluster3 node again on its data and
#                                                 wait until it is registered (used by the suite)
set -euo pipefail
# shellcheck source=single.sh
source "$(dirname "${BASH_SOURCE[0]}")/single.sh"

if [[ ${1:-} == node-start ]]; then
	(($# == 4)) || die "usage: $0 node-start NODE_DIR ADDR NODE_ID"
	start_broker "$2"
	wait_broker "$3" "$4" "$2" "${HOTELBUS_RIG_TIMEOUT:-120}"
	exit 0
fi

need_cmd go
mkdir -p "$CACHE"
state=$(mktemp -d "$RUN_DIR/hotelbus-faults.XXXXXX")
report=$state/report.txt
gotest=

# stop_group PGID: SIGTERM to the process group of go test (the test binary, the gateway and
# dispatcher processes it started, the brokers its rig scripts started), SIGKILL after 30 s.
stop_group() {
	local pgid=$1 i
	kill -TERM -- "-$pgid" 2>/dev/null || return 0
	for ((i = 0; i < 300; i++)); do
		kill -0 -- "-$pgid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "processes of the test run still alive after 30 s, killing them"
	kill -KILL -- "-$pgid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $gotest ]]; then
		stop_group "$gotest"
		wait "$gotest" 2>/dev/null || true
	fi
	local d
	for d in "$state"/broker.*; do
		[[ ! -d $d ]] || bash "$RIG_DIR/broker.sh" stop "$d" || rc=1
	done
	for d in "$state"/redis-ha.*; do
		[[ ! -d $d ]] || bash "$RIG_DIR/redis-ha.sh" stop "$d" || rc=1
	done
	for d in "$state"/cluster3.*; do
		[[ ! -d $d ]] || HOTELBUS_RIG_TMP=$d bash "$RIG_DIR/cluster3.sh" stop || rc=1
	done
	rig_stop "$state/rig" || rc=1
	if ((rc != 0)); then
		# The failed tests' process logs and their brokers' logs, without data.
		local keep
		keep=$(mktemp -d "${TMPDIR:-/tmp}/hotelbus-faults-logs.XXXXXX")
		tar -C "$state" --exclude='*/data' --exclude=./hotelbus -cf - . | tar -C "$keep" -xf - || true
		log "logs of the failed run kept in $keep"
	fi
	if [[ -s $report.summary ]]; then
		printf '\n== fault-injection suite: summary ==\n'
		cat "$report.summary"
		printf '\n'
		cat "$report"
	else
		log "no scenario reported a table"
	fi
	rm -rf "$state"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$state/rig"
rig_start "$state/rig"
# shellcheck source=/dev/null
source "$state/rig/env"
cd "$RIG_DIR/../.."
log "building the hotelbus binary"
go build -o "$state/hotelbus" ./cmd/hotelbus
export HOTELBUS_FAULTS=1 HOTELBUS_FAULTS_BIN=$state/hotelbus HOTELBUS_FAULTS_STATE=$state HOTELBUS_FAULTS_REPORT=$report
log "go test -race=false -count=1 -timeout 30m ./streams/faults/ $*"
# A background job in its own process group (see test.sh), which cleanup stops as a whole.
set -m
go test -race=false -count=1 -timeout 30m -v ./streams/faults/ "$@" &
gotest=$!
set +m
rc=0
wait "$gotest" || rc=$?
exit "$rc"
