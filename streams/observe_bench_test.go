package streams_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkConsumeInstrumentation measures the consume path of one record in process (decode the
// Avro value into the reader's version, then run the chain: retry around a no-op handler) with
// and without the metrics middleware (tracing off, the default), interleaved in the same loop so
// that both see the same machine. It reports both costs and the overhead in percent (goal: at
// most 3).
func BenchmarkConsumeInstrumentation(b *testing.B) {
	b.ReportAllocs()
	set, cat := loadAll(b)
	serde, _ := newSerde(b, set, cat)
	recs := buildEvents(b, serde, streamstest.NewChecker(), []eventSpec{byTenant("service.ordered")}, 100, 10)
	reader, _ := set.Latest("service.ordered")
	mt, err := streams.NewMetrics(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	noop := func(context.Context, *streams.Message) error { return nil }
	bare := streams.Retry()(noop)
	instrumented := mt.Middleware()(streams.Retry()(noop))
	ctx := context.Background()
	consume := func(h streams.Handler, n int) time.Duration {
		start := time.Now()
		for i := range n {
			r := recs[i%len(recs)]
			env, err := serde.DecodeAs(ctx, r.Value, reader)
			if err != nil {
				b.Fatal(err)
			}
			if err := h(ctx, &streams.Message{Envelope: env, Record: r, Group: "hotelbus.hotel-pms"}); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(start)
	}
	consume(bare, len(recs)) // warm the decoder and the label cache
	consume(instrumented, len(recs))
	var tBare, tInst time.Duration
	b.ResetTimer()
	for range b.N {
		for range 10 { // short alternating runs: both variants see the same machine load
			tBare += consume(bare, 10)
			tInst += consume(instrumented, 10)
		}
	}
	n := float64(b.N * 100)
	b.ReportMetric(float64(tBare.Nanoseconds())/n, "bare-ns/event")
	b.ReportMetric(float64(tInst.Nanoseconds())/n, "metrics-ns/event")
	b.ReportMetric(100*(float64(tInst)/float64(tBare)-1), "overhead-%")
}
