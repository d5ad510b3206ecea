package privacy_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// BenchmarkPublishConsume publishes reservation.created events of 100 guests through a Producer
// and decodes them back from the topic, with and without a Protector, in one run on one broker:
// the rig's Apache Kafka when HOTELBUS_TEST_BROKERS is set, else kfake. Compare the ns/op of the
// plain and sealed sub-benchmarks (publish: per event acknowledged; encode: per record encoded
// without a broker, the SDK's own cost; consume: per record decoded).
//
//	go test -run '^$' -bench PublishConsume -benchtime 2000x ./streams/privacy/
func BenchmarkPublishConsume(b *testing.B) {
	backends := streamstest.Backends(b)
	be := backends[len(backends)-1]
	r := newRig(b, be)
	for _, mode := range []struct {
		name  string
		serde *streams.Serde
	}{{"plain", r.plain}, {"sealed", r.serde}} {
		b.Run(mode.name+"/publish", func(b *testing.B) {
			p := r.producer(b, "hotel-pms", mode.serde)
			envs := make([]*streams.Envelope, b.N)
			for i := range envs {
				envs[i] = r.example(b, "reservation.created")
				envs[i].Data["primaryGuest"].(map[string]any)["customerId"] = fmt.Sprintf("cus_bench%03d", i%100)
			}
			ctx := context.Background()
			// Steady state: each guest's data key exists (its creation, once per guest, is a
			// synchronous write to the key topic, timed by the warm-up sub-benchmark instead).
			if _, err := p.PublishBatch(ctx, warmup(b, r)); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i += 100 {
				if _, err := p.PublishBatch(ctx, envs[i:min(i+100, b.N)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/encode", func(b *testing.B) {
			envs := warmup(b, r)
			for _, e := range envs { // what Producer.Prepare fills in
				e.EventID, e.Timestamp, e.Version = uuid.NewString(), time.Now(), "1.0"
				e.Metadata.Source, e.Metadata.CorrelationID = "hotel-pms", uuid.NewString()
				e.Metadata.TraceID = strings.ReplaceAll(uuid.NewString(), "-", "")
			}
			ctx := context.Background()
			if _, err := mode.serde.Record(ctx, envs[0]); err != nil { // registers the schema id once
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, err := mode.serde.Record(ctx, envs[i%len(envs)]); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(mode.name+"/consume", func(b *testing.B) {
			var recs []*kgo.Record
			for _, rec := range r.upToEnd(b, context.Background(), r.topic("reservation.created")) {
				if bytes.Contains(rec.Value, []byte(privacy.Prefix)) == (mode.name == "sealed") {
					recs = append(recs, rec)
				}
			}
			if len(recs) == 0 {
				b.Fatal("no record to consume: run the publish sub-benchmark first (-bench PublishConsume)")
			}
			ctx := context.Background()
			b.ResetTimer()
			for i := range b.N {
				if _, err := mode.serde.Decode(ctx, recs[i%len(recs)].Value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// warmup returns one reservation.created of each of the benchmark's 100 guests.
func warmup(b *testing.B, r *rig) []*streams.Envelope {
	envs := make([]*streams.Envelope, 100)
	for i := range envs {
		envs[i] = r.example(b, "reservation.created")
		envs[i].Data["primaryGuest"].(map[string]any)["customerId"] = fmt.Sprintf("cus_bench%03d", i)
	}
	return envs
}
