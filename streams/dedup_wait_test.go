package streams_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
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

// TestDedupWaitReplicas: a done mark with DedupWaitReplicas waits for a replica (no warning on a
// primary with one; a warning naming WAIT on miniredis, which has none), and NewDedup refuses the
// option with a Cluster client (its pipeline's WAIT would go to any node).
func TestDedupWaitReplicas(t *testing.T) {
	cl, err := streams.NewRedisClient("redis-cluster://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := streams.NewDedup(cl, "g", streams.DedupWaitReplicas(1, time.Second)); !errors.Is(err, streams.ErrConfig) {
		t.Errorf("Cluster client with DedupWaitReplicas: %v, want ErrConfig", err)
	}
	if _, err := streams.NewDedup(cl, "g", streams.DedupWaitReplicas(1, 0)); !errors.Is(err, streams.ErrConfig) {
		t.Errorf("DedupWaitReplicas without a timeout: %v, want ErrConfig", err)
	}

	urls := map[string]bool{"redis://" + miniredis.RunT(t).Addr(): false}
	if u := os.Getenv(EnvBenchRedisReplicated); u != "" {
		urls[u] = true
	}
	events := goldenEvents(t, "reservation.created")
	for url, replicated := range urls {
		rdb, err := streams.NewRedisClient(url)
		if err != nil {
			t.Fatal(err)
		}
		var logs streamstest.LogBuffer
		d := newDedup(t, rdb, streamstest.Name(t, "g"), streams.DedupWaitReplicas(1, 200*time.Millisecond),
			streams.DedupLogger(slog.New(slog.NewTextHandler(&logs, nil))))
		m := dedupMsg(events(), "g", "t", 0, 1)
		ctx := testCtx(t)
		if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
			t.Fatal(err)
		}
		if err := d.Middleware()(func(context.Context, *streams.Message) error { return nil })(ctx, m); err != nil {
			t.Fatal(err)
		}
		if !isDone(t, d, m.Envelope.Metadata.Source, m.Envelope.EventID) {
			t.Errorf("%s: key = %q, want done", url, rdb.Get(ctx, d.Key(m.Envelope.Metadata.Source, m.Envelope.EventID)).Val())
		}
		if warned := strings.Contains(logs.String(), "not acknowledged by enough replicas"); warned == replicated {
			t.Errorf("%s (replicated %v): WAIT warning %v:\n%s", url, replicated, warned, logs.String())
		}
		rdb.Close()
	}
}
