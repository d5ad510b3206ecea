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

// registerOne registers the i-th of a series of distinct schemas, under a subject of its own as
// hotelbus's TopicRecordNameStrategy subjects are, through the HTTP handler, and returns how long
// the registration took.
func registerOne(tb testing.TB, r *registry.Registry, i int) time.Duration {
	fields := []string{`{"name":"eventId","type":"string"}`, `{"name":"tenantId","type":"string"}`}
	for f := range 8 {
		fields = append(fields, fmt.Sprintf(`{"name":"f%d","type":["null","string"],"default":null,"doc":"field %d of event %d"}`, f, f, i))
	}
	body := reg(fmt.Sprintf(`{"type":"record","name":"Event%d","namespace":"hotel.bench.v1","fields":[%s]}`, i, strings.Join(fields, ",")))
	req := httptest.NewRequest("POST", fmt.Sprintf("/subjects/hotelbus.bench-hotel.bench.v1.Event%d/versions", i), strings.NewReader(body))
	w := httptest.NewRecorder()
	start := time.Now()
	r.Handler().ServeHTTP(w, req)
	d := time.Since(start)
	if w.Code != 200 {
		tb.Fatalf("registration %d: %d %s", i, w.Code, w.Body)
	}
	return d
}

func newRegistry(tb testing.TB) *registry.Registry {
	tb.Helper()
	r, err := registry.New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = r.Close() })
	return r
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
		r := newRegistry(b)
		ds := make([]time.Duration, 2000)
		for i := range ds {
			ds[i] = registerOne(b, r, i)
		}
		first += mean(ds[:100])
		last += mean(ds[len(ds)-100:])
	}
	b.ReportMetric(float64(first.Nanoseconds())/float64(b.N), "ns/op-first100")
	b.ReportMetric(float64(last.Nanoseconds())/float64(b.N), "ns/op-last100")
}

// TestRegistrationCostDoesNotGrow compares registrations into a registry holding 1,900 schemas
// with registrations into an empty one, alternating between the two so that the machine's load
// weighs on both alike: the registry used to re-read every stored schema on each registration,
// which made the former an order of magnitude slower. The bound (3x the median) leaves room for
// noise.
func TestRegistrationCostDoesNotGrow(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	full, empty := newRegistry(t), newRegistry(t)
	const stored, pairs = 1900, 100
	for i := range stored {
		registerOne(t, full, i)
	}
	var small, large []time.Duration
	for i := range pairs {
		small = append(small, registerOne(t, empty, i))
		large = append(large, registerOne(t, full, stored+i))
	}
	s, l := median(small), median(large)
	t.Logf("median registration: into an empty registry %v, into one holding %d schemas %v", s, stored, l)
	if l > 3*s {
		t.Errorf("a registration takes %v (median) with %d schemas stored, %v with none: cost grows with the number of schemas", l, stored, s)
	}
}
