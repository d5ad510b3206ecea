package streams

import (
	"reflect"
	"slices"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestEnvelopeFieldsOnce: the envelope's field list (envelopeFields, envelopeKeys, metadataKeys) is
// the envelope schema's, name for name and in order, and the typed codec's avroEnvelope, the one
// place that repeats it (as struct tags hamba reads), names the same fields in the same order.
func TestEnvelopeFieldsOnce(t *testing.T) {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	names := func(r *avro.RecordSchema) (out []string) {
		for _, f := range r.Fields() {
			out = append(out, f.Name())
		}
		return out
	}
	tags := func(typ reflect.Type) (out []string) {
		for i := range typ.NumField() {
			out = append(out, typ.Field(i).Tag.Get("avro"))
		}
		return out
	}
	// Every subject wraps its data in the one envelope.avsc: the first subject's says it for all.
	sub := set.Subjects[0]
	env := sub.Latest().Envelope
	var md *avro.RecordSchema
	for _, f := range env.Fields() {
		if f.Name() == "metadata" {
			md, _ = f.Type().(*avro.RecordSchema)
		}
	}
	top := names(env)
	if md == nil || !slices.Equal(top, envelopeKeys) || !slices.Equal(names(md), metadataKeys) {
		t.Fatalf("%s: envelope schema fields %v, metadata %v; envelopeFields say %v, %v", sub.EventType, top, names(md), envelopeKeys, metadataKeys)
	}
	if got := tags(reflect.TypeFor[avroEnvelope]()); !slices.Equal(got, top) {
		t.Errorf("avroEnvelope's avro tags %v, the envelope schema's fields %v", got, top)
	}
	if got := tags(reflect.TypeFor[avroMetadata]()); !slices.Equal(got, names(md)) {
		t.Errorf("avroMetadata's avro tags %v, the metadata fields %v", got, names(md))
	}
}
