package streams

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestCompiledCodecAgreesWithHamba cross-checks the compiled codec against hamba/avro, an
// independent implementation, on every golden event: hamba decodes what the codec writes to the
// same values, and the codec decodes its own bytes back. (Internal: the codec is unexported. The
// other direction, foreign bytes read by the codec, is the Python interop test.)
func TestCompiledCodecAgreesWithHamba(t *testing.T) {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range set.Subjects {
		v := sub.Latest()
		env, err := ParseJSON(v.Example, func(string, string) (*avro.RecordSchema, string, error) { return v.Data, v.String(), nil })
		if err != nil {
			t.Fatal(err)
		}
		native := map[string]any{"eventId": env.EventID, "eventType": env.EventType, "version": env.Version, "timestamp": env.Timestamp,
			"data": env.Data, "metadata": map[string]any{"tenantId": env.Metadata.TenantID, "source": env.Metadata.Source,
				"correlationId": env.Metadata.CorrelationID, "userId": nilIfEmpty(env.Metadata.UserID), "traceId": env.Metadata.TraceID}}
		c := compile(v.Envelope)
		ours, err := c.enc(nil, native)
		if err != nil {
			t.Fatalf("%s: encode: %v", v.EventType, err)
		}
		direct := compileEnvelope(v.Envelope)
		if direct == nil {
			t.Fatalf("%s: envelope.avsc not recognised by the direct encoder", v.EventType)
		}
		if d, err := direct(nil, env, v.String()); err != nil || !bytes.Equal(d, ours) {
			t.Errorf("%s: direct envelope encoding differs from the generic codec (%v)", v.EventType, err)
		}
		var byHamba map[string]any
		if err := avro.Unmarshal(v.Envelope, ours, &byHamba); err != nil {
			t.Fatalf("%s: hamba cannot read the codec's bytes: %v", v.EventType, err)
		}
		if got := fromAvro(v.Envelope, byHamba); !reflect.DeepEqual(normalize(got), normalize(native)) {
			t.Errorf("%s: hamba reads\n%v\nwant\n%v", v.EventType, got, native)
		}
		r := &binReader{buf: ours}
		back := c.dec(r)
		if r.err != nil || len(r.buf) != 0 {
			t.Fatalf("%s: codec cannot read its own bytes: %v (%d left)", v.EventType, r.err, len(r.buf))
		}
		if !reflect.DeepEqual(normalize(back), normalize(native)) {
			t.Errorf("%s: codec reads back\n%v\nwant\n%v", v.EventType, back, native)
		}
	}
}

// normalize prints decimals and times canonically so DeepEqual compares values, not representations.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case interface{ RatString() string }:
		return x.RatString()
	case interface{ UnixMilli() int64 }:
		return x.UnixMilli()
	}
	return v
}
