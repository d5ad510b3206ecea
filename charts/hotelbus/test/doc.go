// Package chart tests the hotelbus Helm chart from outside: the manifests helm renders for each
// values file of charts/hotelbus/ci (read from $HOTELBUS_CHART_RENDERED, written by
// .ci/rig/helm.sh) decode strictly into their API types and keep the chart's guarantees; the
// PrometheusRule's alerts fire on recorded series; files/topology.yaml matches topics/; the image's
// Dockerfile and `make image` agree with the chart; the image built runs as the chart runs it
// (container_test.go, with podman, in `make test`).
package chart
