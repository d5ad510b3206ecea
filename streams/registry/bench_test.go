package registry_test

import (
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/registry"
)

// registerMany registers n distinct schemas, each under a subject of its own as hotelbus's
// TopicRecordNameStrategy subjects are, through the HTTP handler, and returns each registration's
// duration.
func registerMany(tb testing.TB, n int) []time.Duration {
	tb.Helper()
	r, err := registry.New()
	if err != nil {
		tb.Fatal(err)
	}
	defer r.Close()
	out := make([]time.Duration, n)
	for i := range n {
		fields := []string{`{"name":"eventId","type":"string"}`, `{"name":"tenantId","type":"string"}`}
		for f := range 8 {
			fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":["null","string"],"default":null,"doc":"field %d of event %d"}`, f, f, i))
		}
		body := reg(fmt.Sprintf(`{"type":"record","name":"Event%d","namespace":"hotel.bench.v1","fields":[%s]}`, i, strings.Join(fields, ",")))
		req := httptest.NewRequest("POST", fmt.Sprintf("/subjects/hotelbus.bench-hotel.bench.v1.Event%d/versions", i), strings.NewReader(body))
		w := httptest.NewRecorder()
		start := time.Now()
		r.Handler().ServeHTTP(w, req)
		out[i] = time.Since(start)
		if w.Code != 200 {
			tb.Fatalf("registration %d: %d %s", i, w.Code, w.Body)
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

func mean(ds []time.Duration) time.Duration {
	var sum time.Duration
	for _, d := range ds {
		sum += d
	}
	return sum / time.Duration(len(ds))
}

// BenchmarkRegister2000 registers 2,000 schemas per iteration and reports the mean time of one
// registration among the first and among the last hundred.
func BenchmarkRegister2000(b *testing.B) {
	var first, last time.Duration
	for b.Loop() {
		ds := registerMany(b, 2000)
		first += mean(ds[:100])
		last += mean(ds[len(ds)-100:])
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "ns/op-first100")
	b.ReportMetric(float64(last.Nanoseconds())/float64(b.N), "ns/op-last100")
}

// TestRegistrationCostDoesNotGrow registers 2,000 schemas and compares the median registration
// among the last hundred with the first hundred: the registry used to re-read every stored schema
// on each registration, which made the last ones an order of magnitude slower. The bound (4x)
// leaves room for a loaded machine.
func TestRegistrationCostDoesNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	ds := registerMany(t, 2000)
	first, last := median(ds[:100]), median(ds[len(ds)-100:])
	t.Logf("median registration: first hundred %v, last hundred %v", first, last)
	if last > 4*first {
		t.Errorf("the last hundred registrations take %v each (median), the first hundred %v: cost grows with the number of schemas", last, first)
	}
}
