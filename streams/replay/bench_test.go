package replay_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkReplayJSONL replays 20,000 events of four types (decoding Avro, writing canonical JSON)
// from the real broker when HOTELBUS_TEST_BROKERS is set, else from kfake, and reports records/s.
func BenchmarkReplayJSONL(b *testing.B) {
	backends := streamstest.Backends(b)
	f := newFixture(b, backends[len(backends)-1], 20_000)
	c := replay.DefaultConfig()
	c.Brokers, c.Stdout, c.Topics = f.b.Brokers, io.Discard, f.topicNames()
	b.ReportAllocs()
	var records int64
	var elapsed time.Duration
	for b.Loop() {
		r, err := replay.New(f.serde, f.cat, c)
		if err != nil {
			b.Fatal(err)
		}
		sum, err := r.Run(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		if sum.Written != 20_000 {
			b.Fatalf("summary %s, want 20000 written", sum)
		}
		records += sum.Written
		elapsed += sum.Duration
	}
	b.ReportMetric(float64(records)/elapsed.Seconds(), "records/s")
}
