package streams

import (
	"encoding/json"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/events"
)

// BenchmarkCodecReservationCreated encodes and decodes the golden reservation.created data
// record, side by side: the generated type through hamba/avro's struct codec ("typed"), the
// generic map through hamba/avro ("hamba-generic"), the generic map through the hand codec of
// avrocodec.go ("hand"), and the generated type through encoding/json ("json").
func BenchmarkCodecReservationCreated(b *testing.B) {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		b.Fatal(err)
	}
	v, _ := set.Latest("reservation.created")
	env, err := ParseJSON(v.Example, func(string, string) (*avro.RecordSchema, string, error) { return v.Data, v.String(), nil })
	if err != nil {
		b.Fatal(err)
	}
	hand := compile(v.Data)
	body, err := hand.enc(nil, env.Data)
	if err != nil {
		b.Fatal(err)
	}
	typed := &events.ReservationCreatedV1{}
	if err := avro.Unmarshal(v.Data, body, typed); err != nil {
		b.Fatal(err)
	}
	var generic map[string]any
	if err := avro.Unmarshal(v.Data, body, &generic); err != nil {
		b.Fatal(err)
	}
	b.Run("typed", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := avro.Marshal(v.Data, typed)
			if err != nil {
				b.Fatal(err)
			}
			var back events.ReservationCreatedV1
			if err := avro.Unmarshal(v.Data, out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hamba-generic", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := avro.Marshal(v.Data, generic)
			if err != nil {
				b.Fatal(err)
			}
			var back map[string]any
			if err := avro.Unmarshal(v.Data, out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := hand.enc(nil, env.Data)
			if err != nil {
				b.Fatal(err)
			}
			r := &binReader{buf: out}
			_ = hand.dec(r)
			if r.err != nil {
				b.Fatal(r.err)
			}
		}
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			out, err := json.Marshal(typed)
			if err != nil {
				b.Fatal(err)
			}
			var back events.ReservationCreatedV1
			if err := json.Unmarshal(out, &back); err != nil {
				b.Fatal(err)
			}
		}
	})
}
