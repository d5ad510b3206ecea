package streams_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkConsumeDedup compares the consumer runtime with dedup on Redis (the real redis-server
// under make test) and a no-op handler with raw franz-go consuming the same 20,000 records, and
// reports both rates (first record to last), their ratio (goal:
// at least 0.5), the Redis round trips of the dedup checks per polled batch (goal: exactly 1) and
// all Redis requests (checks and done marks) per batch.
func BenchmarkConsumeDedup(b *testing.B) {
	b.ReportAllocs()
	urls := streamstest.RedisBackends(b)
	url := urls["redis"]
	if url == "" {
		url = urls["miniredis"]
	}
	for _, be := range streamstest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			b.ReportAllocs()
			var hb, raw float64
			var st dedupBenchStats
			for range b.N {
				b.StopTimer()
				set, cat := loadAll(b)
				cat = cat.WithPrefix(streamstest.Name(b, "b") + ".")
				ensureB(b, be, cat)
				serde, _ := newSerde(b, set, cat)
				recs := publishMany(b, be, serde, streamstest.NewChecker(), []eventSpec{byTenant("service.ordered")}, 200, 100)
				b.StartTimer()
				hb, st = benchHotelbusConsume(b, be, serde, url, len(recs))
				raw = benchRawConsume(b, be, recs[0].Topic, len(recs))
			}
			b.ReportMetric(hb, "hotelbus-events/s")
			b.ReportMetric(raw, "raw-events/s")
			b.ReportMetric(hb/raw, "ratio")
			b.ReportMetric(float64(st.checkTrips)/float64(st.batches), "check-roundtrips/batch")
			b.ReportMetric(float64(st.requests)/float64(st.batches), "redis-requests/batch")
			b.ReportMetric(float64(st.events)/float64(st.batches), "events/batch")
		})
	}
}

type dedupBenchStats struct{ batches, checkTrips, requests, events int64 }

// countingPreparer counts the batches it passes on to a BatchPreparer.
type countingPreparer struct {
	streams.BatchPreparer
	batches atomic.Int64
}

func (c *countingPreparer) Prepare(ctx context.Context, batch []*streams.Message) error {
	c.batches.Add(1)
	return c.BatchPreparer.Prepare(ctx, batch)
}

// firstLast records the times of the first and the last of n events and says when all arrived.
type firstLast struct {
	mu          sync.Mutex
	first, last time.Time
	n           int
}

func (f *firstLast) add(k int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.first.IsZero() {
		f.first = now
	}
	f.last = now
	f.n += k
	return f.n
}

func (f *firstLast) rate() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return float64(f.n) / f.last.Sub(f.first).Seconds()
}

func benchHotelbusConsume(b *testing.B, be streamstest.Backend, serde *streams.Serde, url string, total int) (float64, dedupBenchStats) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	hook := &countHook{}
	rdb.AddHook(hook)
	d, err := streams.NewDedup(rdb, streamstest.Name(b, "g"))
	if err != nil {
		b.Fatal(err)
	}
	prep := &countingPreparer{BatchPreparer: d}
	var fl firstLast
	done := make(chan struct{})
	r := startConsumer(b, "hotel-pms", be, serde, func(c *streams.Consumer) {
		c.HandleType("service.ordered", func(context.Context, *streams.Message) error {
			if fl.add(1) == total {
				close(done)
			}
			return nil
		})
	}, streams.Use(d.Middleware()), streams.UsePreparer(prep))
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatal("timed out waiting for every event")
	}
	r.stop(b)
	return fl.rate(), dedupBenchStats{batches: prep.batches.Load(), checkTrips: d.RoundTrips(), requests: hook.n.Load(), events: int64(total)}
}

// benchRawConsume consumes total records of topic with a plain franz-go client (no group, so no
// join to wait for) and returns the rate from the client's creation to the last record. The
// runtime's rate is taken from its first handler call, after its group join and first fetch, so
// the comparison leans towards raw franz-go.
func benchRawConsume(b *testing.B, be streamstest.Backend, topic string, total int) float64 {
	var fl firstLast
	fl.add(0)
	cl := be.Client(b, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for n := 0; n < total; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("raw consumer: %d of %d records: %v", n, total, err)
		}
		if k := fs.NumRecords(); k > 0 {
			n = fl.add(k)
		}
	}
	return fl.rate()
}
