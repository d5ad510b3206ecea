# shellcheck shell=bash
# Shared helpers for the test rig. Sourced by the other scripts in this directory, never run.
#
# Cache (outside the repo, kept between runs): ${HOTELBUS_CACHE:-$HOME/.cache/hotelbus}
#   m2/                 Maven local repository used to resolve the broker jars
#   kafka/libs/*.jar    Apache Kafka broker + log4j2 backend (from pom.xml)
#   kafka/libs/.stamp   sha256 of pom.xml the jars were resolved from
#   venv/               Python venv for the interop peer (confluent-kafka, fastavro)
#   venv/.stamp         sha256 of requirements.txt + the base interpreter version
#   npm/node_modules/   npm tools for the contract checks (from package.json)
#   npm/.stamp          sha256 of package.json + the node version
#
# Run-time state (broker data and logs, pid files) lives under $RUN_DIR: ${HOTELBUS_RIG_TMP:-/dev/shm}
# when writable, else ${TMPDIR:-/tmp}. Memory, because fsync stalls on a busy disk starve the KRaft
# controller, and the data is thrown away anyway.

RIG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${HOTELBUS_CACHE:-$HOME/.cache/hotelbus}
RUN_DIR=${HOTELBUS_RIG_TMP:-/dev/shm}
[[ -d $RUN_DIR && -w $RUN_DIR ]] || RUN_DIR=${TMPDIR:-/tmp}
KAFKA_LIBS=$CACHE/kafka/libs
VENV=$CACHE/venv
NPM_TOOLS=$CACHE/npm
JAVA=${JAVA:-java}
BASE_PYTHON=${HOTELBUS_BASE_PYTHON:-python3}

log() { printf 'rig [%3ds]: %s\n' "$SECONDS" "$*" >&2; }
die() { printf 'rig: error: %s\n' "$*" >&2; exit 1; }

# sha FILE...: hash of the files' contents (not their paths, so a fresh clone elsewhere matches).
sha() { cat "$@" | sha256sum | cut -d' ' -f1; }

# port_busy PORT succeeds when something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port NAME PREFERRED [EXPLICIT]: prints PREFERRED when free. An explicitly requested port that
# is busy is refused; a default one that is busy is replaced by the next free port above it that
# is not in $RIG_TAKEN (space separated), so one rig's ports never collide with each other.
pick_port() {
	local name=$1 want=$2 explicit=${3:-}
	if ! port_busy "$want"; then
		echo "$want"
		return
	fi
	[[ -z $explicit ]] || die "$name port $want (set explicitly) is already in use"
	local p
	for ((p = want + 10; p < want + 2000; p++)); do
		if [[ " ${RIG_TAKEN:-} " != *" $p "* ]] && ! port_busy "$p"; then
			log "$name port $want is busy, using $p"
			echo "$p"
			return
		fi
	done
	die "no free port found for $name near $want"
}

# locked CMD...: runs CMD holding the cache's setup lock, so concurrent rigs never build the same
# jars or venv at once. The lock's fd is closed again, so no started server inherits it.
locked() {
	mkdir -p "$CACHE"
	local fd
	exec {fd}>"$CACHE/.setup.lock"
	flock "$fd"
	"$@"
	exec {fd}>&-
}

# retry CMD...: runs CMD, and once more after a pause when it fails (registries can blip).
retry() {
	"$@" && return 0
	log "retrying in 5 s: $*"
	sleep 5
	"$@"
}

# need_cmd CMD: fails clearly when CMD is missing.
need_cmd() { command -v "$1" >/dev/null 2>&1 || die "'$1' not found in PATH"; }

# ensure_debs: installs redis-server and kcat from Debian when missing. The package lists are only
# refreshed when something has to be installed. Services are kept from starting on install.
ensure_debs() {
	local missing=()
	command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
	command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
	command -v kcat >/dev/null 2>&1 || missing+=(kcat)
	((${#missing[@]} == 0)) && return 0
	apt_install "${missing[@]}"
	if ! command -v redis-server >/dev/null || ! command -v kcat >/dev/null; then
		die "redis-server/kcat still missing after install"
	fi
}

# apt_install PKG...: installs Debian packages with apt-get (refreshing the package lists first),
# keeping services from starting on install; shows apt's output and fails when it fails.
apt_install() {
	need_cmd apt-get
	local sudo=()
	if ((EUID != 0)); then
		need_cmd sudo
		sudo=(sudo -n)
	fi
	log "installing $* with apt-get"
	local policy=/usr/sbin/policy-rc.d made_policy=
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		made_policy=1
	fi
	local rc=0 out
	out=$(mktemp)
	{
		retry env DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get update -qq &&
			retry env DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$@"
	} >"$out" 2>&1 </dev/null || rc=$?
	[[ -z $made_policy ]] || "${sudo[@]}" rm -f "$policy"
	((rc == 0)) || cat "$out" >&2
	rm -f "$out"
	((rc == 0)) || die "apt-get install $* failed"
}

# ensure_rabbitmq: installs Debian's rabbitmq-server when missing (the RabbitMQ bridge's tests),
# kept from starting on install like ensure_debs' packages.
ensure_rabbitmq() {
	[[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]] && return 0
	need_cmd apt-get
	((EUID == 0)) || die "installing rabbitmq-server needs root"
	log "installing rabbitmq-server with apt-get"
	local policy=/usr/sbin/policy-rc.d made_policy= rc=0 out
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
	fi
	out=$(mktemp)
	{
		retry env DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
			retry env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends rabbitmq-server
	} >"$out" 2>&1 </dev/null || rc=$?
	[[ -z $made_policy ]] || rm -f "$policy"
	((rc == 0)) || { cat "$out" >&2; rm -f "$out"; die "apt-get install rabbitmq-server failed"; }
	rm -f "$out"
}

# ensure_chromium: installs Debian's chromium when no Chromium is in PATH, for the dashboard's
# headless browser test (chromedp finds it in PATH). The package lists are only refreshed when it
# has to be installed.
ensure_chromium() {
	if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
		return 0
	fi
	apt_install chromium
	command -v chromium >/dev/null || die "chromium still missing after install"
}

# ensure_containers: installs Debian's buildah (builds the image without a daemon), podman and
# runc (run it; podman is told to use runc, see image.sh) when missing.
ensure_containers() {
	local missing=() c
	for c in buildah podman runc; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	((${#missing[@]} == 0)) && return 0
	apt_install "${missing[@]}"
	for c in buildah podman runc; do
		command -v "$c" >/dev/null 2>&1 || die "$c still missing after install"
	done
}

# ensure_kafka_jars: resolves the broker jars with Maven unless the cache already holds the jars
# resolved from the current pom.xml.
ensure_kafka_jars() {
	local want
	want=$(sha "$RIG_DIR/pom.xml")
	if [[ -f $KAFKA_LIBS/.stamp && $(cat "$KAFKA_LIBS/.stamp") == "$want" ]]; then
		return 0
	fi
	need_cmd mvn
	need_cmd "$JAVA"
	log "resolving Apache Kafka jars with Maven into $KAFKA_LIBS"
	local tmp=$CACHE/kafka/libs.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	if ! retry mvn -q -B -f "$RIG_DIR/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$CACHE/kafka/maven.log" 2>&1 </dev/null; then
		cat "$CACHE/kafka/maven.log" >&2
		die "maven could not resolve the broker jars (see output above)"
	fi
	ls "$tmp"/kafka_2.13-*.jar >/dev/null 2>&1 || die "maven produced no kafka_2.13 jar in $tmp"
	echo "$want" >"$tmp/.stamp"
	rm -rf "$KAFKA_LIBS"
	mv "$tmp" "$KAFKA_LIBS"
}

# ensure_venv: creates the interop peer's venv unless it exists for the current requirements.
ensure_venv() {
	need_cmd "$BASE_PYTHON"
	local want
	want=$( (cat "$RIG_DIR/requirements.txt"; "$BASE_PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)
	if [[ -f $VENV/.stamp && $(cat "$VENV/.stamp") == "$want" ]] && "$VENV/bin/python" -c 'import confluent_kafka, fastavro' 2>/dev/null; then
		return 0
	fi
	log "creating Python venv in $VENV"
	rm -rf "$VENV"
	"$BASE_PYTHON" -m venv "$VENV" >&2 || die "python -m venv failed (on Debian's python3, install python3-venv)"
	retry "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$RIG_DIR/requirements.txt" >&2 ||
		die "pip install of the peer's requirements failed"
	"$VENV/bin/python" -c 'import confluent_kafka, fastavro; from confluent_kafka.schema_registry.avro import AvroSerializer' ||
		die "the venv cannot import confluent_kafka's Avro serializer"
	echo "$want" >"$VENV/.stamp"
}

# ensure_npm_tools: installs the npm packages of package.json (exact versions) into $NPM_TOOLS unless
# it holds them for the current package.json and node. Needs node and npm (Debian's nodejs, npm).
ensure_npm_tools() {
	need_cmd node
	need_cmd npm
	local want
	want=$( (cat "$RIG_DIR/package.json"; node --version) | sha256sum | cut -d' ' -f1)
	if [[ -f $NPM_TOOLS/.stamp && $(cat "$NPM_TOOLS/.stamp") == "$want" ]]; then
		return 0
	fi
	log "installing npm tools into $NPM_TOOLS"
	local tmp=$NPM_TOOLS.tmp
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp "$RIG_DIR/package.json" "$tmp/"
	retry npm install --prefix "$tmp" --no-audit --no-fund --ignore-scripts --omit=dev --no-package-lock \
		--loglevel=error >&2 </dev/null || die "npm install of the rig's tools failed (.ci/rig/package.json)"
	[[ -x $tmp/node_modules/.bin/tsc && -d $tmp/node_modules/@asyncapi/parser ]] || die "npm produced no tsc or @asyncapi/parser in $tmp"
	echo "$want" >"$tmp/.stamp"
	rm -rf "$NPM_TOOLS"
	mv "$tmp" "$NPM_TOOLS"
}

# java_opts LOGDIR: JVM flags for one broker with a small heap that logs to LOGDIR/server.log.
java_opts() {
	printf '%s\n' -Xmx512m -Xms512m -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
		-XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
		"-Dkafka.logs.dir=$1" "-Dlog4j2.configurationFile=$RIG_DIR/log4j2.xml" \
		-cp "$KAFKA_LIBS/*"
}

# kafka_uuid: a random Kafka Uuid (16 random bytes, base64url without padding, never starting
# with '-'), the form StorageTool random-uuid prints, without a JVM start.
kafka_uuid() {
	local u
	while :; do
		u=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		[[ $u == -* ]] || break
	done
	echo "$u"
}

# broker_props NODE PORT CTLPORT QUORUM DATADIR RF: server.properties of one combined
# broker+controller on loopback; QUORUM is controller.quorum.bootstrap.servers, RF the replication
# factor of topics and internal topics (min.insync.replicas is RF-1, at least 1).
broker_props() {
	local node=$1 port=$2 cport=$3 quorum=$4 data=$5 rf=$6
	local isr=$((rf > 1 ? rf - 1 : 1))
	cat <<EOF
process.roles=broker,controller
node.id=$node
controller.quorum.bootstrap.servers=$quorum
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
auto.create.topics.enable=false
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=16777216
EOF
}

# kafka_storage ARGS...: runs Kafka's StorageTool.
kafka_storage() {
	"$JAVA" -Xmx256m -Dlog4j2.configurationFile="$RIG_DIR/log4j2-tools.xml" -cp "$KAFKA_LIBS/*" kafka.tools.StorageTool "$@"
}

# start_broker DIR: starts kafka.Kafka on DIR/server.properties in the background; pid in DIR/pid.
start_broker() {
	local dir=$1
	mkdir -p "$dir/logs"
	local opts
	mapfile -t opts < <(java_opts "$dir/logs")
	# The marker lets stop_pid tell this broker from an unrelated process that reused the pid.
	nohup "$JAVA" "${opts[@]}" -Dhotelbus.rig="$dir" kafka.Kafka "$dir/server.properties" \
		>"$dir/logs/stdout.log" 2>&1 </dev/null &
	echo $! >"$dir/pid"
}

# alive PID: the process exists and is not a zombie.
alive() {
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
	[[ $st != Z* ]]
}

# stop_pid PIDFILE MARKER [NAME]: stops the process in PIDFILE when its command line contains MARKER:
# SIGTERM, up to 30 s for a clean shutdown, then SIGKILL. Removes PIDFILE.
stop_pid() {
	local pidfile=$1 marker=$2 name=${3:-process} pid
	[[ -f $pidfile ]] || return 0
	pid=$(cat "$pidfile")
	if [[ -n $pid ]] && alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$marker"; then
		kill -TERM "$pid" 2>/dev/null || true
		local i
		for ((i = 0; i < 300; i++)); do
			alive "$pid" || break
			sleep 0.1
		done
		if alive "$pid"; then
			log "$name (pid $pid) did not stop in 30 s, killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
		# Reap it when it is our child; otherwise give init a moment to reap it.
		wait "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			[[ -e /proc/$pid ]] || break
			sleep 0.1
		done
		log "stopped $name (pid $pid)"
	fi
	rm -f "$pidfile"
}

# wait_broker ADDR NODEID DIR TIMEOUT: waits until the metadata of the broker at ADDR lists
# node NODEID (an unfenced, registered broker); on timeout prints the log tail and fails.
wait_broker() {
	local addr=$1 node=$2 dir=$3 timeout=$4 start=$SECONDS out pid
	pid=$(cat "$dir/pid")
	while ((SECONDS - start < timeout)); do
		if ! alive "$pid"; then
			broker_log_tail "$dir"
			die "broker $node exited during startup"
		fi
		if out=$(kcat -L -b "$addr" -m 2 2>/dev/null) && grep -q "broker $node at " <<<"$out"; then
			return 0
		fi
		sleep 0.3
	done
	broker_log_tail "$dir"
	die "broker $node at $addr did not come up in ${timeout}s"
}

broker_log_tail() {
	local f
	for f in "$1/logs/server.log" "$1/logs/stdout.log"; do
		[[ -s $f ]] || continue
		# The cause of a failed start is often far above the shutdown lines of the tail.
		printf -- '--- first errors of %s ---\n' "$f" >&2
		grep -m 5 -E 'ERROR|FATAL|Exception' "$f" >&2 || true
		printf -- '--- tail of %s ---\n' "$f" >&2
		tail -n 40 "$f" >&2
	done
}
