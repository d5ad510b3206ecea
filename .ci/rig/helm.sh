#!/usr/bin/env bash
# Chart checks (part of `make test`, also `make chart`): builds helm and helm-unittest from their Go
# modules at pinned versions into the cache, then over charts/hotelbus:
#
#   1. helm lint --strict with every charts/hotelbus/ci/*-values.yaml (the matrix);
#   2. helm template per values file into $HOTELBUS_CHART_RENDERED/<name>.yaml (the manifests the
#      Go test module decodes strictly), plus <name>.yaml.err for the values the schema must refuse;
#   3. helm unittest over charts/hotelbus/tests/;
#   4. go test ./... in charts/hotelbus/test (its own Go module): strict decoding into k8s.io/api and
#      CRD types, the alert rules evaluated with the Prometheus rules engine, the topology drift check.
#
# Cache: ${HOTELBUS_CACHE:-~/.cache/hotelbus}/helm/
#   helm-<version>/helm              built with `go install helm.sh/helm/v3/cmd/helm@<version>`
#   helm-unittest-<version>/untt     built from the module zip (its go.mod has a replace directive,
#                                    which `go install pkg@version` refuses)
# A binary present at its versioned path is reused; a partial build never lands there.
# Exits non-zero on the first failing step. Extra arguments go to the final `go test`.
# `helm.sh --build-only` only builds the two binaries and prints the path of helm.
set -euo pipefail
# shellcheck source=common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

HELM_VERSION=v3.22.0
UNITTEST_VERSION=v1.1.2
# The Kubernetes version helm assumes without a cluster (helm template, lint, unittest), as helm's
# own release build sets it from its client-go; a plain `go install` would leave it at 1.20 and
# refuse the chart's kubeVersion.
KUBE_MAJOR=1
KUBE_MINOR=37

REPO=$(cd "$RIG_DIR/../.." && pwd)
CHART=$REPO/charts/hotelbus
HELM_CACHE=$CACHE/helm
HELM=$HELM_CACHE/helm-$HELM_VERSION-k8s$KUBE_MAJOR.$KUBE_MINOR/helm
UNTT=$HELM_CACHE/helm-unittest-$UNITTEST_VERSION-k8s$KUBE_MAJOR.$KUBE_MINOR/untt
# -X flags naming the assumed Kubernetes version in helm's packages.
kube_ldflags() {
	local p
	for p in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
		printf -- '-X %s.k8sVersionMajor=%s -X %s.k8sVersionMinor=%s ' "$p" "$KUBE_MAJOR" "$p" "$KUBE_MINOR"
	done
}

# build_helm: go install of the pinned helm CLI into a scratch GOBIN, moved into place when whole.
build_helm() {
	[[ -x $HELM ]] && return 0
	log "building helm $HELM_VERSION (first run only)"
	local tmp
	tmp=$(mktemp -d "$HELM_CACHE/.build.XXXXXX")
	GOBIN=$tmp CGO_ENABLED=0 GOFLAGS=-mod=mod retry go install -trimpath \
		-ldflags "$(kube_ldflags) -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	mkdir -p "$(dirname "$HELM")"
	mv "$tmp/helm" "$HELM"
	rm -rf "$tmp"
}

# build_unittest: the plugin's binary built inside its downloaded module, so its replace directive
# applies. It runs standalone (`untt CHART`), no helm plugin install needed.
build_unittest() {
	[[ -x $UNTT ]] && return 0
	log "building helm-unittest $UNITTEST_VERSION (first run only)"
	local dir tmp
	dir=$(cd "$HELM_CACHE" && GOFLAGS=-mod=mod retry go mod download -json "github.com/helm-unittest/helm-unittest@$UNITTEST_VERSION" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[[ -n $dir && -f $dir/go.mod ]] || die "go mod download gave no module directory for helm-unittest $UNITTEST_VERSION"
	tmp=$(mktemp -d "$HELM_CACHE/.build.XXXXXX")
	(cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=readonly GOWORK=off retry go build -trimpath -o "$tmp/untt" \
		-ldflags "$(kube_ldflags) -X github.com/helm-unittest/helm-unittest/internal/build.version=${UNITTEST_VERSION#v}" ./cmd/helm-unittest)
	mkdir -p "$(dirname "$UNTT")"
	mv "$tmp/untt" "$UNTT"
	rm -rf "$tmp"
}

# helm_locked CMD...: like common.sh's locked, on a lock of its own, so a long first build does not
# hold up a rig starting elsewhere.
helm_locked() {
	local fd
	exec {fd}>"$HELM_CACHE/.build.lock"
	flock "$fd"
	"$@"
	exec {fd}>&-
}

need_cmd go
mkdir -p "$HELM_CACHE"
helm_locked build_helm
helm_locked build_unittest
if [[ ${1:-} == --build-only ]]; then
	echo "$HELM"
	exit 0
fi

need_cmd flock
work=$(mktemp -d "${TMPDIR:-/tmp}/hotelbus-chart.XXXXXX")
trap 'rm -rf "$work"' EXIT
rendered=$work/rendered
mkdir -p "$rendered"

mapfile -t values < <(cd "$CHART/ci" && ls -- *-values.yaml)
((${#values[@]} > 0)) || die "no charts/hotelbus/ci/*-values.yaml"
# The release name and namespace the Go tests expect (rules_test.go selects namespace "hotelbus").
release=(hotelbus "$CHART" --namespace hotelbus)

log "helm lint --strict over ${#values[@]} values files"
for v in "${values[@]}"; do
	"$HELM" lint --strict --quiet "$CHART" --namespace hotelbus -f "$CHART/ci/$v" >"$work/lint.out" 2>&1 || {
		cat "$work/lint.out" >&2
		die "helm lint --strict -f ci/$v failed"
	}
done

log "helm template per values file into $rendered"
for v in "${values[@]}"; do
	"$HELM" template "${release[@]}" -f "$CHART/ci/$v" >"$rendered/${v%-values.yaml}.yaml" ||
		die "helm template -f ci/$v failed"
done

log "helm unittest"
"$UNTT" --strict --color=false --file 'tests/*_test.yaml' "$CHART"

log "building the hotelbus binary for the command-line contract test"
(cd "$REPO" && go build -o "$work/hotelbus" ./cmd/hotelbus)

log "go test in charts/hotelbus/test"
cd "$CHART/test"
HOTELBUS_CHART_RENDERED=$rendered HOTELBUS_CHART_BINARY=$work/hotelbus go test -count=1 ./... "$@"
