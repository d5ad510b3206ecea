package bench_test

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/bench"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

var rows = []string{"produce", "produce-typed", "consume", "consume-typed", "consume-lazy", "dedup-roundtrips", "key-ordering", "dedup-throughput", "publish-sealed", "consume-sealed", "replay", "e2e-p50", "e2e-p99"}

// checkReport runs `hotelbus bench --quick --json` with args and checks that every row is there
// with positive figures and a ratio that is their quotient, or skipped with a reason.
func checkReport(t *testing.T, env map[string]string, args ...string) {
	t.Helper()
	res := cmdtest.Run(t, env, "", append([]string{"bench", "--quick", "--json"}, args...)...)
	if res.Code != 0 {
		t.Fatalf("bench exited %d\n%s\n%s", res.Code, res.Out, res.ErrOut)
	}
	var rep bench.Report
	if err := json.Unmarshal([]byte(res.Out), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, res.Out)
	}
	if !rep.Quick || rep.Events == 0 || len(rep.Rows) != len(rows) {
		t.Fatalf("report %+v; want a quick run with %d rows", rep, len(rows))
	}
	_, kcatErr := exec.LookPath("kcat")
	for i, r := range rep.Rows {
		if r.Name != rows[i] {
			t.Errorf("row %d is %q, want %q", i, r.Name, rows[i])
		}
		if r.Better != "higher" && r.Better != "lower" {
			t.Errorf("%s: better %q", r.Name, r.Better)
		}
		if r.Skipped {
			if r.Name != "replay" || kcatErr == nil || streamstest.Real() || r.Note == "" {
				t.Errorf("%s skipped (%s); only replay may be, when kcat is missing outside the rig", r.Name, r.Note)
			}
			continue
		}
		if r.Value <= 0 || r.BaselineValue <= 0 || r.Ratio <= 0 || r.Unit == "" {
			t.Errorf("%s: %+v; want positive figures", r.Name, r)
		} else if d := r.Ratio - r.Value/r.BaselineValue; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s: ratio %v is not %v / %v", r.Name, r.Ratio, r.Value, r.BaselineValue)
		}
	}
	// the dedup checks of a batch are one round trip
	if r := rep.Rows[slices.Index(rows, "dedup-roundtrips")]; r.Value < 0.99 || r.Value > 1.01 {
		t.Errorf("dedup check round trips per batch: %v, want 1", r.Value)
	}
}

// TestBenchEmbedded: with no flags the command starts its embedded stack and says so.
func TestBenchEmbedded(t *testing.T) {
	if testing.Short() {
		t.Skip("a quick bench run takes tens of seconds")
	}
	checkReport(t, nil)
}

// TestBenchRig runs against the rig's Apache Kafka and redis-server with an embedded registry.
func TestBenchRig(t *testing.T) {
	if testing.Short() {
		t.Skip("a quick bench run takes tens of seconds")
	}
	be := streamstest.RealKafka(t)
	redisURL := streamstest.RedisBackends(t)["redis"]
	if redisURL == "" {
		t.Skip("no real Redis (HOTELBUS_TEST_REDIS)")
	}
	_, registry := streamstest.Registry(t)
	checkReport(t, nil, "--brokers", strings.Join(be.Brokers, ","), "--redis", redisURL, "--registry", registry)
}

func TestBenchTable(t *testing.T) {
	rep := &bench.Report{Quick: true, Environment: "test", Rows: []bench.Row{
		{Name: "produce", Value: 50, BaselineValue: 100, Ratio: 0.5, Unit: "events/s", Better: "higher", Goal: "≥ 0.7"},
		{Name: "replay", Skipped: true, Note: "kcat not found"},
	}}
	var b strings.Builder
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"produce", "50.0 events/s", "100 events/s", "0.5↑", "≥ 0.7", "replay", "skipped", "kcat not found"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}
