package bench

import (
	"context"
	"os"
	"slices"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkConsumeRows runs only the produce, consume and dedup-throughput rows of a quick run, on
// the real broker and redis-server when the rig provides them (HOTELBUS_TEST_BROKERS,
// HOTELBUS_TEST_REDIS) and on kfake and miniredis otherwise: the run to profile the consume path
// with, reporting each row's median ratio (go test -run '^$' -bench ConsumeRows -cpuprofile cpu.out -memprofile mem.out ./streams/bench).
func BenchmarkConsumeRows(b *testing.B) {
	benchmarkRows(b, (*run).produceConsume, (*run).dedupThroughput)
}

// BenchmarkDedupRows runs only the dedup-throughput row of a quick run, as BenchmarkConsumeRows
// does: the run to profile the dedup protocol with, apart from the consumer.
func BenchmarkDedupRows(b *testing.B) { benchmarkRows(b, (*run).dedupThroughput) }

// BenchmarkPrivacyRows runs only the publish-sealed and consume-sealed rows of a quick run, as
// BenchmarkConsumeRows does: the run to profile guest-data protection with.
func BenchmarkPrivacyRows(b *testing.B) { benchmarkRows(b, (*run).privacy) }

// benchmarkRows runs the steps of a quick run (of a full-size run when HOTELBUS_BENCH_FULL is
// set: the longer run to profile with) b.N times and reports each row's median ratio.
func benchmarkRows(b *testing.B, steps ...func(*run, context.Context) ([]Row, error)) {
	be := streamstest.Backends(b)[0]
	url := streamstest.RedisBackends(b)["miniredis"]
	if u := os.Getenv(streamstest.EnvRedis); u != "" && os.Getenv(streamstest.EnvBrokers) != "" {
		be, url = streamstest.RealKafka(b), u
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		b.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	b.Cleanup(func() { rdb.Close() })
	_, regURL := streamstest.Registry(b)
	ctx := context.Background()
	ratios := map[string][]float64{}
	for range b.N {
		r := &run{env: Env{Brokers: be.Brokers, Registry: regURL, Redis: rdb}, sz: sizesFor(os.Getenv("HOTELBUS_BENCH_FULL") == "")}
		if err := r.setup(ctx); err != nil {
			b.Fatal(err)
		}
		var rows []Row
		for _, step := range steps {
			more, err := step(r, ctx)
			if err != nil {
				r.cleanup()
				b.Fatal(err)
			}
			rows = append(rows, more...)
		}
		r.cleanup()
		for _, row := range rows {
			b.Logf("%s: %.0f %s vs %.0f (%s): ratio %.3f; %s", row.Name, row.Value, row.Unit, row.BaselineValue, row.Baseline, row.Ratio, row.Note)
			ratios[row.Name] = append(ratios[row.Name], row.Ratio)
		}
	}
	for name, rs := range ratios {
		slices.Sort(rs)
		b.ReportMetric(rs[len(rs)/2], name+"-ratio-median")
	}
}
