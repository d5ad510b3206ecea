package streams_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/hotelbus/hotelbus/streams"
)

// The benchmarks compare the Avro path (validate, wire-format encode with a cached schema id;
// decode and resolve) with encoding/json of the same reservation.created envelope in its JSON
// form. Compare ns/op and the B/event metric of the pairs.

type benchFixture struct {
	serde *streams.Serde
	env   *streams.Envelope
}

func benchEnvelope(b *testing.B) (*benchFixture, []byte) {
	set, cat := loadAll(b)
	serde, _ := newSerde(b, set, cat)
	golden := latest(b, set, "reservation.created").Example
	env, err := serde.ParseJSON(golden)
	if err != nil {
		b.Fatal(err)
	}
	return &benchFixture{serde: serde, env: env}, golden
}

// wire returns the fixture's wire-format value (and registers its schema).
func (f *benchFixture) wire(b *testing.B) []byte {
	_, wire, err := f.serde.AppendEncode(context.Background(), nil, f.env)
	if err != nil {
		b.Fatal(err)
	}
	return wire
}

func BenchmarkAvroEncode(b *testing.B) {
	f, _ := benchEnvelope(b)
	ctx := context.Background()
	wire := f.wire(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, _, err := f.serde.AppendEncode(ctx, nil, f.env); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wire)), "B/event")
}

func BenchmarkAvroDecode(b *testing.B) {
	f, _ := benchEnvelope(b)
	ctx := context.Background()
	wire := f.wire(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := f.serde.Decode(ctx, wire); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wire)), "B/event")
}

func BenchmarkJSONEncode(b *testing.B) {
	_, golden := benchEnvelope(b)
	var doc map[string]any
	if err := json.Unmarshal(golden, &doc); err != nil {
		b.Fatal(err)
	}
	out, _ := json.Marshal(doc)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := json.Marshal(doc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(out)), "B/event")
}

func BenchmarkJSONDecode(b *testing.B) {
	_, golden := benchEnvelope(b)
	var doc map[string]any
	_ = json.Unmarshal(golden, &doc)
	compact, _ := json.Marshal(doc)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		var v map[string]any
		if err := json.Unmarshal(compact, &v); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(compact)), "B/event")
}
