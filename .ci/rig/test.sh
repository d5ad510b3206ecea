#!/usr/bin/env bash
# `make test`: brings the rig up (single.sh), runs the whole Go test suite against the real
# components with the race detector, and always stops the rig again, also when the tests fail or
# the run is interrupted. Exits with go test's status. Extra arguments go to `go test`.
set -euo pipefail
# shellcheck source=single.sh
source "$(dirname "${BASH_SOURCE[0]}")/single.sh"

need_cmd go
mkdir -p "$CACHE"
state=$(mktemp -d "$RUN_DIR/hotelbus-rig.XXXXXX")
gotest=

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ -n $gotest ]] && kill -0 "$gotest" 2>/dev/null; then
		# go test runs in its own process group: end it with its test binaries.
		kill -TERM -- "-$gotest" 2>/dev/null || true
		wait "$gotest" 2>/dev/null || true
	fi
	rig_stop "$state" || rc=1
	if ((rc != 0)) && [[ -d $state/kafka/logs ]]; then
		local keep
		keep=$(mktemp -d "${TMPDIR:-/tmp}/hotelbus-rig-logs.XXXXXX")
		cp -r "$state/kafka/logs" "$keep/kafka"
		cp "$state/redis/redis.log" "$keep/" 2>/dev/null || true
		log "broker and redis logs kept in $keep"
	fi
	rm -rf "$state"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

locked ensure_chromium
rig_start "$state"
# shellcheck source=/dev/null
source "$state/env"
# -timeout: the streams package takes about 5.5 minutes under the race detector on two quiet cores
# (real Kafka and Redis); go test's default of 10 minutes per package leaves too little room on a
# loaded machine.
log "go test -race -count=1 -timeout 25m ./... $*"
# A background job in its own process group, so a signal to this script is handled at once
# (bash defers traps while a foreground command runs) and stops the tests too.
set -m
go test -race -count=1 -timeout 25m ./... "$@" &
gotest=$!
set +m
rc=0
wait "$gotest" || rc=$?
gotest=
# The container image, built and run as the chart's pods run it against this rig (image.sh).
((rc != 0)) || bash "$RIG_DIR/image.sh" || rc=$?
# The Helm chart checks (no rig needed); skipped when the Go tests failed, so that exits fast.
((rc != 0)) || bash "$RIG_DIR/helm.sh" || rc=$?
((rc != 0)) || bash "$RIG_DIR/faults.sh" || rc=$? # the fault-injection suite (its own rig), once all above passed
exit "$rc"
