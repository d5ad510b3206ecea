package replay_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

func TestReplayUsage(t *testing.T) {
	base := []string{"replay", "--brokers", "127.0.0.1:1", "--registry", "http://127.0.0.1:1"}
	for _, tc := range []struct {
		args []string
		frag string
	}{
		{[]string{"--topic", "x", "--where", "data.amount >"}, "^"},
		{[]string{"--topic", "x", "--where", "1 + 1"}, "must be a bool"},
		{[]string{"--topic", "x", "--format", "parquet"}, "--out"},
		{[]string{"--topic", "x", "--format", "xml"}, "--format"},
		{[]string{"--topic", "x", "--from", "yesterday"}, "--from"},
		{[]string{"--topic", "x", "--redact"}, "--redact-key-env"},
		{[]string{"--topic", "x", "--where", "true", "--where-cost-limit", "0"}, "--where-cost-limit"},
		{[]string{"--event-type", "nosuch.*"}, "--event-type"},
		{[]string{"--system", "hotel-pms", "--to-topic", "hotelbus.pms.billing"}, "--allow-owner-topic"},
	} {
		r := cmdtest.Run(t, nil, "", append(base, tc.args...)...)
		if r.Code != 2 || !strings.Contains(r.ErrOut, tc.frag) {
			t.Errorf("replay %v: exit %d, want 2 and a message containing %q\n%s", tc.args, r.Code, tc.frag, r.ErrOut)
		}
	}
}

// TestReplayCommand publishes with `hotelbus produce` and reads the events back with
// `hotelbus replay`.
func TestReplayCommand(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix := streamstest.Name(t, "rc") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	cl, url := streamstest.Registry(t)
	set := streamstest.RegisterSchemas(t, cl, cat)
	v, _ := set.Latest("points.added")
	var lines []string
	for i := range 5 {
		var m map[string]any
		_ = json.Unmarshal(v.Example, &m)
		delete(m, "eventId")
		m["metadata"].(map[string]any)["tenantId"] = "tenant-" + strconv.Itoa(i%2)
		l, _ := json.Marshal(m)
		lines = append(lines, string(l))
	}
	flags := []string{"--brokers", strings.Join(b.Brokers, ","), "--registry", url, "--prefix", prefix}
	if r := cmdtest.Run(t, nil, strings.Join(lines, "\n"), append([]string{"produce", "--system", "hotel-member"}, flags...)...); r.Code != 0 {
		t.Fatalf("produce: exit %d\n%s%s", r.Code, r.Out, r.ErrOut)
	}
	r := cmdtest.Run(t, nil, "", append([]string{"replay", "--event-type", "points.*", "--tenant", "tenant-1"}, flags...)...)
	if r.Code != 0 {
		t.Fatalf("replay: exit %d\n%s", r.Code, r.ErrOut)
	}
	out := strings.Split(strings.TrimSpace(r.Out), "\n")
	if len(out) != 2 || !strings.Contains(r.ErrOut, "replay: read 5, matched 2, written 2") {
		t.Errorf("replay printed %d lines, stderr %q; want 2 lines of tenant-1 and the summary", len(out), r.ErrOut)
	}
	// No selection: every event topic of the catalog, so "everything of one tenant" needs no topic.
	all := cmdtest.Run(t, nil, "", append([]string{"replay", "--tenant", "tenant-1"}, flags...)...)
	if all.Code != 0 || len(strings.Split(strings.TrimSpace(all.Out), "\n")) != 2 {
		t.Errorf("replay --tenant tenant-1 (no topic selection): exit %d, want 0 and the 2 events\n%s%s", all.Code, all.Out, all.ErrOut)
	}
	// A selection that wrote nothing is exit 1 with the reason.
	for _, tc := range []struct {
		args []string
		frag string
	}{
		{[]string{"--event-type", "points.*", "--where", "eventType == 'nothing'"}, "none of the 5 records read passed the filters (--where"},
		{[]string{"--event-type", "points.*", "--tenant", "tenant-9"}, "none of the 5 records read passed the filters"},
		{[]string{"--event-type", "billing.*"}, "holds no record"},
	} {
		r := cmdtest.Run(t, nil, "", append(append([]string{"replay"}, tc.args...), flags...)...)
		if r.Code != 1 || !strings.Contains(r.ErrOut, tc.frag) {
			t.Errorf("replay %v: exit %d, want 1 and %q\n%s", tc.args, r.Code, tc.frag, r.ErrOut)
		}
	}
	// Ten million iterations on the first event: stopped at the cost limit, exit 1, naming the flag.
	expensive := "true"
	for i := range 7 {
		expensive = fmt.Sprintf("[0,1,2,3,4,5,6,7,8,9].all(v%d, %s)", i, expensive)
	}
	r2 := cmdtest.Run(t, nil, "", append([]string{"replay", "--event-type", "points.*", "--where", expensive}, flags...)...)
	if r2.Code != 1 || !strings.Contains(r2.ErrOut, "cost limit of 1000000 (--where-cost-limit)") {
		t.Errorf("replay --where <10^7 iterations>: exit %d, want 1 naming --where-cost-limit\n%s", r2.Code, r2.ErrOut)
	}
	for _, l := range out {
		var e struct {
			EventType string `json:"eventType"`
			Metadata  struct {
				TenantID string `json:"tenantId"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal([]byte(l), &e); err != nil || e.EventType != "points.added" || e.Metadata.TenantID != "tenant-1" {
			t.Errorf("line %q: %v", l, err)
		}
	}
}
