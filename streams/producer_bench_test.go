package streams_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Publish throughput against raw franz-go producing the same pre-encoded bytes with the same
// settings (acks=all, idempotent, linger 5ms, snappy), on one broker: the rig's Apache Kafka when
// HOTELBUS_TEST_BROKERS is set, else in-process kfake. Compare ns/op of the pair (run with
// -benchtime=20000x or more so batching dominates).

func benchBackend(b *testing.B) streamstest.Backend {
	if addr := os.Getenv(streamstest.EnvBrokers); addr != "" {
		return streamstest.Backend{Name: "kafka", Brokers: strings.Split(addr, ","), Real: true}
	}
	return streamstest.Kfake(b)
}

func benchSetup(b *testing.B) (streamstest.Backend, *streams.Serde, *streams.Envelope) {
	bk := benchBackend(b)
	set, cat := loadAll(b)
	cat = cat.WithPrefix(streamstest.Name(b, "bench") + ".")
	ensureB(b, bk, cat)
	serde, _ := newSerde(b, set, cat)
	env := example(b, serde, "reservation.created")
	return bk, serde, env
}

func BenchmarkPublishAsync(b *testing.B) {
	bk, serde, env := benchSetup(b)
	p, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(bk.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	if _, err := p.Publish(ctx, copyEnv(env)); err != nil { // registers the schema id
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		wg.Add(1)
		p.PublishAsync(ctx, copyEnv(env), func(_ streams.Result, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
}

func BenchmarkRawFranzGo(b *testing.B) {
	bk, serde, env := benchSetup(b)
	ctx := context.Background()
	e := copyEnv(env)
	e.EventID, e.Metadata.Source, e.Metadata.CorrelationID, e.Metadata.TraceID = "0193f6e4-0000-7000-8000-000000000000", "hotel-pms", "c", "4bf92f3577b34da6a3ce929d0e0e4736"
	e.Version, e.Timestamp = "1.0", env.Timestamp
	if e.Timestamp.IsZero() {
		e.Timestamp = e.Timestamp.AddDate(2026, 0, 0)
	}
	tmpl, err := serde.Record(ctx, e)
	if err != nil {
		b.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(bk.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5e6),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var wg sync.WaitGroup
	var failed sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		wg.Add(1)
		rec := &kgo.Record{Topic: tmpl.Topic, Key: tmpl.Key, Value: tmpl.Value, Headers: tmpl.Headers}
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
}

func copyEnv(env *streams.Envelope) *streams.Envelope {
	c := *env
	return &c
}
