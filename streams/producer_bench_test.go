package streams_test

import (
	"context"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// Publish throughput against raw franz-go producing the same pre-encoded bytes with the same
// settings (acks=all, idempotent, linger 5ms, snappy), on one broker: the rig's Apache Kafka when
// HOTELBUS_TEST_BROKERS is set, else in-process kfake. Compare ns/op of the pair (run with
// -benchtime=20000x or more so batching dominates). Both report cpu-ns/op, the process's CPU time
// (user and system, every goroutine, the GC included) per event: on a shared machine it moves less
// than ns/op, and against a broker in another process it is the client's cost alone.

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

// BenchmarkPublishAsync publishes with the defaults: each event also writes its publish audit
// record (two Kafka records per event).
func BenchmarkPublishAsync(b *testing.B) { benchmarkPublishAsync(b, false) }

// BenchmarkPublishAsyncWithoutAudit is BenchmarkPublishAsync with PublishAudit(false): the price
// of the audit record is the difference.
func BenchmarkPublishAsyncWithoutAudit(b *testing.B) {
	benchmarkPublishAsync(b, false, streams.PublishAudit(false))
}

// BenchmarkPublishTyped is BenchmarkPublishAsync with the event as its generated type
// (events.ReservationCreatedV1), published with streams.PublishAsync.
func BenchmarkPublishTyped(b *testing.B) { benchmarkPublishAsync(b, true) }

func benchmarkPublishAsync(b *testing.B, typed bool, opts ...streams.ProducerOption) {
	bk, serde, env := benchSetup(b)
	p, err := streams.NewProducer("hotel-pms", serde, append([]streams.ProducerOption{streams.Brokers(bk.Brokers...)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx := context.Background()
	publish := func(done func(streams.Result, error)) { p.PublishAsync(ctx, copyEnv(env), done) }
	if typed {
		e := typedExample(b, serde, env)
		publish = func(done func(streams.Result, error)) { streams.PublishAsync(ctx, p, "sakura-hotels", e, done) }
	}
	first := make(chan error, 1)
	publish(func(_ streams.Result, err error) { first <- err })
	if err := <-first; err != nil { // the first registers the schema id
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		wg.Add(1)
		publish(func(_ streams.Result, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
}

// typedExample returns env's data as its generated type, read from the data's JSON by DecodeData.
func typedExample(b *testing.B, serde *streams.Serde, env *streams.Envelope) *events.ReservationCreatedV1 {
	data, err := serde.DataJSON(env)
	if err != nil {
		b.Fatal(err)
	}
	e, err := streams.DecodeData[events.ReservationCreatedV1](serde, data)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

func BenchmarkRawFranzGo(b *testing.B) {
	bk, serde, env := benchSetup(b)
	ctx := context.Background()
	// the same bytes Publish would write: distinct events (eventId, traceId), encoded beforehand
	prep, err := streams.NewProducer("hotel-pms", serde, streams.Brokers(bk.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		e := copyEnv(env)
		if err := prep.Prepare(ctx, e); err != nil {
			b.Fatal(err)
		}
		if recs[i], err = serde.Record(ctx, e); err != nil {
			b.Fatal(err)
		}
	}
	_ = prep.Close(ctx)
	cl, err := kgo.NewClient(kgo.SeedBrokers(bk.Brokers...), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var wg sync.WaitGroup
	var failed sync.Once
	b.ReportAllocs()
	b.ResetTimer()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		wg.Add(1)
		cl.Produce(ctx, recs[i], func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Do(func() { b.Error(err) })
			}
			wg.Done()
		})
	}
	wg.Wait()
}

// reportCPU starts measuring the process's CPU time; the function it returns reports it per
// operation as cpu-ns/op.
func reportCPU(b *testing.B) func() {
	start := cpuTime(b)
	return func() { b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op") }
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func copyEnv(env *streams.Envelope) *streams.Envelope {
	c := *env
	return &c
}
