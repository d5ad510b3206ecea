package bench_test

import (
	"context"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams/bench"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkSideBySide runs the quick bench table (the rows of `hotelbus bench --quick`) on each
// backend, against the real redis-server when the rig provides one, and reports every row's
// ratio against its baseline.
func BenchmarkSideBySide(b *testing.B) {
	b.ReportAllocs()
	urls := streamstest.RedisBackends(b)
	url := urls["redis"]
	if url == "" {
		url = urls["miniredis"]
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	for _, be := range streamstest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			b.ReportAllocs()
			_, regURL := streamstest.Registry(b)
			var rep *bench.Report
			for range b.N {
				if rep, err = bench.Run(context.Background(), bench.Env{Brokers: be.Brokers, Registry: regURL, Redis: rdb}, bench.Options{Quick: true}); err != nil {
					b.Fatal(err)
				}
			}
			for _, row := range rep.Rows {
				if !row.Skipped {
					b.ReportMetric(row.Ratio, row.Name+"-ratio")
				}
			}
		})
	}
}
