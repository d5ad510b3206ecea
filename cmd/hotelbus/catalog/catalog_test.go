package catalog_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
)

// TestContractOutputs: --asyncapi prints the document (servers of --env only), --typescript and
// --html write their files, and the three combine.
func TestContractOutputs(t *testing.T) {
	r := cmdtest.Run(t, nil, "", "catalog", "--asyncapi", "--env", "staging")
	var doc struct {
		AsyncAPI string         `json:"asyncapi"`
		Servers  map[string]any `json:"servers"`
	}
	if r.Code != 0 || json.Unmarshal([]byte(r.Out), &doc) != nil || doc.AsyncAPI != "3.0.0" {
		t.Fatalf("--asyncapi: exit %d, stderr %q, out %.200q", r.Code, r.ErrOut, r.Out)
	}
	if len(doc.Servers) != 2 || doc.Servers["kafka-staging"] == nil || doc.Servers["gateway-staging"] == nil {
		t.Errorf("--env staging: servers %v, want kafka-staging and gateway-staging", doc.Servers)
	}

	dir := t.TempDir()
	ts := filepath.Join(dir, "hotelbus.ts")
	r = cmdtest.Run(t, nil, "", "catalog", "--typescript", ts, "--html", filepath.Join(dir, "site"))
	if r.Code != 0 || r.Out != "" {
		t.Fatalf("--typescript --html: exit %d, stderr %q, out %q", r.Code, r.ErrOut, r.Out)
	}
	b, err := os.ReadFile(ts)
	if err != nil || !strings.Contains(string(b), "export interface BillingPaidV1Data {") {
		t.Errorf("--typescript wrote %d bytes (%v) without BillingPaidV1Data", len(b), err)
	}
	for _, f := range []string{"index.html", "style.css", "events/billing.paid.html"} {
		if _, err := os.Stat(filepath.Join(dir, "site", f)); err != nil {
			t.Errorf("--html: %v", err)
		}
	}
	r = cmdtest.Run(t, nil, "", "catalog", "--typescript", "-")
	if r.Code != 0 || !strings.HasPrefix(r.Out, "// hotelbus event contract") {
		t.Errorf("--typescript -: exit %d, out %.100q", r.Code, r.Out)
	}
}

func TestContractUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"catalog", "--asyncapi", "--json"}, "--json"},
		{[]string{"catalog", "--asyncapi", "--typescript", "-"}, "--typescript"},
		{[]string{"catalog", "--asyncapi", "--env", "moon"}, "--env"},
	} {
		r := cmdtest.Run(t, nil, "", tc.args...)
		if r.Code != cmdutil.ExitUsage || !strings.Contains(r.ErrOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 naming %s", tc.args, r.Code, r.ErrOut, tc.want)
		}
	}
	r := cmdtest.Run(t, nil, "", "catalog", "--html", "/proc/no/such/dir")
	if r.Code != cmdutil.ExitFailure || !strings.Contains(r.ErrOut, "--html") {
		t.Errorf("--html into an unwritable place: exit %d, stderr %q; want exit 1 naming --html", r.Code, r.ErrOut)
	}
}
