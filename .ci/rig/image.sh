#!/usr/bin/env bash
# The container image (part of `make test`, after the Go tests, while test.sh's rig is up):
#
#   1. installs buildah, podman and runc from Debian when missing (common.sh ensure_containers);
#   2. `make image`: the static binary in the FROM scratch image, built with buildah (no daemon);
#   3. the SBOM of the binary's Go modules (below) into .build/sbom/;
#   4. the container test, TestImage in charts/hotelbus/test: the image run with podman the way
#      the chart's rendered pods run it (user, read-only root, no capabilities, the pod's args and
#      volumes), on the host network against the rig's Kafka and Redis.
#
#   image.sh [GO TEST ARGS...]    all of the above; needs the rig's env (single.sh start; source env)
#   image.sh sbom BINARY VERSION  only the SBOM of BINARY (`make sbom`); prints its path
#
# podman runs as `podman --cgroup-manager=cgroupfs run --runtime runc --ulimit nofile=1024:1024
# --ulimit nproc=1024:1024`: sandboxes without systemd refuse crun's and the default rlimits
# (HOTELBUS_PODMAN overrides the whole prefix, e.g. "podman" on a workstation).
#
# Cache: ${HOTELBUS_CACHE:-~/.cache/hotelbus}/cyclonedx-gomod-<version>/cyclonedx-gomod, built with
# `go install` at a pinned version; a partial build never lands there.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CYCLONEDX_VERSION=v1.10.0
CYCLONEDX=$CACHE/cyclonedx-gomod-$CYCLONEDX_VERSION/cyclonedx-gomod
REPO=$(cd "$RIG_DIR/../.." && pwd)

build_cyclonedx() {
	[[ -x $CYCLONEDX ]] && return 0
	log "building cyclonedx-gomod $CYCLONEDX_VERSION (first run only)"
	local tmp
	mkdir -p "$CACHE"
	tmp=$(mktemp -d "$CACHE/.cyclonedx.XXXXXX")
	GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-mod=mod retry go install -trimpath \
		"github.com/CycloneDX/cyclonedx-gomod/cmd/cyclonedx-gomod@$CYCLONEDX_VERSION" >&2
	mkdir -p "$(dirname "$CYCLONEDX")"
	mv "$tmp/cyclonedx-gomod" "$CYCLONEDX"
	rm -rf "$tmp"
}

# sbom BINARY VERSION: a CycloneDX (JSON) SBOM of the modules BINARY's build info lists (what
# `go version -m` shows), at .build/sbom/hotelbus-VERSION-<os>-<arch>.cdx.json; prints its path.
sbom() {
	local bin=$1 version=$2 platform out
	[[ -x $bin ]] || die "sbom: $bin is not an executable (run make build)"
	need_cmd go
	locked build_cyclonedx
	platform=$(go version -m "$bin" | sed -n 's/^\tbuild\tGOOS=//p')-$(go version -m "$bin" | sed -n 's/^\tbuild\tGOARCH=//p')
	mkdir -p "$REPO/.build/sbom"
	out=$REPO/.build/sbom/hotelbus-$version-$platform.cdx.json
	"$CYCLONEDX" bin -json -noserial -version "v$version" -output "$out" "$bin" 2>"$out.log" ||
		{ cat "$out.log" >&2; die "cyclonedx-gomod bin $bin failed"; }
	rm -f "$out.log"
	grep -q '"purl": "pkg:golang/github.com/twmb/franz-go@' "$out" || die "sbom: $out lists no franz-go module"
	echo "$out"
}

if [[ ${1:-} == sbom ]]; then
	(($# == 3)) || die "usage: $0 sbom BINARY VERSION"
	sbom "$2" "$3"
	exit 0
fi

need_cmd go
need_cmd make
[[ -n ${HOTELBUS_TEST_BROKERS:-} && -n ${HOTELBUS_TEST_REDIS:-} ]] ||
	die "the container test needs the rig: HOTELBUS_TEST_BROKERS and HOTELBUS_TEST_REDIS are not set (single.sh start; source its env)"
locked ensure_containers
helm=$(bash "$RIG_DIR/helm.sh" --build-only | tail -n 1)

# buildah even where a Docker daemon answers: podman runs the image from the storage buildah
# writes to.
log "make image"
start=$SECONDS
out=$(cd "$REPO" && make -s image IMAGE_TOOL=buildah 2>&1) || { printf '%s\n' "$out" >&2; die "make image failed"; }
ref=$(tail -n 1 <<<"$out")
log "built $ref in $((SECONDS - start)) s"

bom=$(sbom "$REPO/.build/linux-$(go env GOARCH)/hotelbus" "${ref##*:}")
log "SBOM: $bom ($(grep -c '"purl": "pkg:golang/' "$bom") modules)"

log "container test (charts/hotelbus/test, -run '^TestImage$')"
cd "$REPO/charts/hotelbus/test"
HOTELBUS_IMAGE=$ref HOTELBUS_HELM=$helm HOTELBUS_PODMAN=${HOTELBUS_PODMAN:-} \
	go test -count=1 -v -run '^TestImage$' . "$@"
