# Thin entry points; the logic lives in .ci/rig/ (see the comments at the top of each script).
# The rig caches Kafka jars and a Python venv in $(HOTELBUS_CACHE) (default ~/.cache/hotelbus).

GO ?= go

.PHONY: test test-fast faults vet bench chart chart-topology cluster3-up cluster3-down rig-up rig-down

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
