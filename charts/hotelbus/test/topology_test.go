package chart_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/hotelbus/hotelbus/charts/hotelbus/test/topology"
)

// files/topology.yaml is what the topic declarations in topics/ give today.
func TestTopologyIsCurrent(t *testing.T) {
	f, err := topology.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	want, err := topology.Render(f)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(chartDir, "files", "topology.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("charts/hotelbus/files/topology.yaml is stale: topics/ changed; run `make chart-topology`")
	}
	prod := f.Environments["prod"]
	for sys, s := range prod.Systems {
		if s.Group == "" || s.GroupPartitions <= 0 || len(s.ACLs) == 0 {
			t.Errorf("prod %s: group %q, %d partitions, %d ACLs", sys, s.Group, s.GroupPartitions, len(s.ACLs))
		}
	}
	if len(prod.Gateway.ACLs) == 0 || prod.TopicPrefix == "" || prod.GroupPrefix == "" {
		t.Errorf("prod: gateway ACLs %d, topic prefix %q, group prefix %q", len(prod.Gateway.ACLs), prod.TopicPrefix, prod.GroupPrefix)
	}
}
