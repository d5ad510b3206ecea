package streams_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
)

// EnvBenchRedisReplicated names a Redis whose primary has at least one replica (a
// redis-sentinel:// URL, e.g. from `.ci/rig/redis-ha.sh sentinel DIR`), for
// BenchmarkDedupWaitReplicas.
const EnvBenchRedisReplicated = "HOTELBUS_BENCH_REDIS_REPLICATED"

// BenchmarkDedupWaitReplicas measures the cost of DedupWaitReplicas: the dedup protocol (one
// Prepare per batch of 500, then the middleware with a no-op handler on 64 goroutines, done marks
// coalesced) without WAIT and with WAIT 1 in the done marks' pipeline, on a primary with one
// replica. Reported as events/s; b.N counts events.
//
//	HOTELBUS_BENCH_REDIS_REPLICATED=$(bash .ci/rig/redis-ha.sh sentinel /tmp/ha) \
//	  go test -run '^$' -bench DedupWaitReplicas -benchtime 20000x ./streams/
func BenchmarkDedupWaitReplicas(b *testing.B) {
	url := os.Getenv(EnvBenchRedisReplicated)
	if url == "" {
		b.Skipf("%s unset: needs a Redis primary with a replica", EnvBenchRedisReplicated)
	}
	events := goldenEvents(b, "reservation.created")
	for _, bc := range []struct {
		name string
		opts []streams.DedupOption
	}{
		{"no-wait", nil},
		{"wait-1-replica", []streams.DedupOption{streams.DedupWaitReplicas(1, time.Second)}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rdb, err := streams.NewRedisClient(url)
			if err != nil {
				b.Fatal(err)
			}
			defer rdb.Close()
			d, err := streams.NewDedup(rdb, "bench-"+bc.name+"-"+time.Now().Format("150405.000"), bc.opts...)
			if err != nil {
				b.Fatal(err)
			}
			h := d.Middleware()(func(context.Context, *streams.Message) error { return nil })
			ctx := context.Background()
			const batch, workers = 500, 64
			b.ResetTimer()
			start := time.Now()
			for done := 0; done < b.N; done += batch {
				msgs := make([]*streams.Message, min(batch, b.N-done))
				for i := range msgs {
					msgs[i] = dedupMsg(events(), "bench", "t", 0, int64(done+i))
				}
				if err := d.Prepare(ctx, msgs); err != nil {
					b.Fatal(err)
				}
				work := make(chan *streams.Message)
				var wg sync.WaitGroup
				for range workers {
					wg.Go(func() {
						for m := range work {
							if err := h(ctx, m); err != nil {
								b.Error(err)
							}
						}
					})
				}
				for _, m := range msgs {
					work <- m
				}
				close(work)
				wg.Wait()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "events/s")
		})
	}
}
