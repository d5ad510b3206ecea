# Thin entry points; the logic lives in .ci/rig/ (see the comments at the top of each script), except
# for `build` and `image` below, whose few lines are the release recipe itself.
# The rig caches Kafka jars and a Python venv in $(HOTELBUS_CACHE) (default ~/.cache/hotelbus).

GO ?= go

.PHONY: test test-fast faults vet bench chart chart-topology cluster3-up cluster3-down rig-up rig-down \
	build image image-ref sbom

# The real thing: Apache Kafka + redis-server + the Python interop peer, race detector on.
test:
	bash .ci/rig/test.sh

# The fault-injection suite (streams/faults, opt-in): kill -9 of brokers (one, and a three-node
# cluster), dispatchers and Redis (one server; a Sentinel primary; a Cluster master), a failing
# target, a stalled dispatcher; 50,000 events each through
# the real gateway and dispatcher binaries; prints a table per scenario. Also run by `make test`.
faults:
	bash .ci/rig/faults.sh

# Embedded components only (kfake, srfake, miniredis).
test-fast:
	$(GO) test ./...

vet:
	@out=$$(gofmt -l .); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# The Helm chart: helm lint --strict over charts/hotelbus/ci, helm unittest, strict decoding of the
# rendered manifests, the alert rules evaluated (helm and helm-unittest are built into the cache).
chart:
	bash .ci/rig/helm.sh

# Regenerate charts/hotelbus/files/topology.yaml after a change to topics/.
chart-topology:
	cd charts/hotelbus/test && $(GO) run ./cmd/gentopology ../files/topology.yaml

cluster3-up:
	bash .ci/rig/cluster3.sh start

cluster3-down:
	bash .ci/rig/cluster3.sh stop

# A long-lived single-node rig for running tests by hand: `eval "$$(make -s rig-up)"`.
rig-up:
	@bash .ci/rig/single.sh start

rig-down:
	bash .ci/rig/single.sh stop

# The release binary and the container image (cmd/hotelbus/Dockerfile, FROM scratch). VERSION
# defaults to the chart's appVersion, so `make image` builds the image the chart runs by default
# (values.yaml image.repository, tag = appVersion); COMMIT to the checked-out commit. Both are
# stamped into `hotelbus version` and the image's OCI labels. GOARCH picks the platform (linux).
VERSION ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' charts/hotelbus/Chart.yaml)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
GOARCH ?= $(shell $(GO) env GOARCH)
IMAGE ?= hotelbus/hotelbus:$(VERSION)
# docker when a Docker daemon answers, else buildah (no daemon); podman works too.
IMAGE_TOOL ?= $(shell docker info >/dev/null 2>&1 && echo docker || echo buildah)
# The CA bundle copied into the image: the build machine's (Debian, macOS, Fedora paths).
CA_BUNDLE ?= $(firstword $(wildcard /etc/ssl/certs/ca-certificates.crt /etc/ssl/cert.pem /etc/pki/tls/certs/ca-bundle.crt))
BUILD_DIR := .build
BIN := $(BUILD_DIR)/linux-$(GOARCH)/hotelbus
STAGE := $(BUILD_DIR)/image/linux-$(GOARCH)
VERSION_PKG := github.com/hotelbus/hotelbus/cmd/hotelbus/version

# A static (no cgo), reproducible (-trimpath) linux binary with the version and commit stamped;
# prints its path.
build:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath \
		-ldflags '-s -w -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)' \
		-o $(BIN) ./cmd/hotelbus
	@echo $(BIN)

# The image from `make build`'s binary; the last line printed is the image reference.
image: build
	@test -n "$(CA_BUNDLE)" || { echo "no CA bundle found: set CA_BUNDLE=/path/to/ca-certificates.crt" >&2; exit 2; }
	rm -rf $(STAGE) && mkdir -p $(STAGE)
	cp $(BIN) $(STAGE)/hotelbus
	cp $(CA_BUNDLE) $(STAGE)/ca-certificates.crt
	printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >$(STAGE)/passwd
	printf 'root:x:0:\nnonroot:x:65532:\n' >$(STAGE)/group
	$(IMAGE_TOOL) build --platform linux/$(GOARCH) -f cmd/hotelbus/Dockerfile \
		--build-arg VERSION=$(VERSION) --build-arg REVISION=$(COMMIT) -t $(IMAGE) $(STAGE)
	@echo $(IMAGE)

# The reference `make image` builds (for scripts: docker push "$$(make -s image-ref)").
image-ref:
	@echo $(IMAGE)

# A CycloneDX SBOM of the binary's Go modules (cyclonedx-gomod, built into the cache) in
# .build/sbom/; prints its path.
sbom: build
	@bash .ci/rig/image.sh sbom $(BIN) $(VERSION)
