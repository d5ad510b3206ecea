package streams

import (
	"bytes"
	"reflect"
	"strings"
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
		native := env.Map("", env.Data)
		c := compile(v.Envelope)
		ours, err := c.enc(nil, native)
		if err != nil {
			t.Fatalf("%s: encode: %v", v.EventType, err)
		}
		direct := compileEnvelope(v.Envelope)
		if direct == nil {
			t.Fatalf("%s: envelope.avsc not recognised by the direct codec", v.EventType)
		}
		if d, err := direct.enc(nil, env, v.String()); err != nil || !bytes.Equal(d, ours) {
			t.Errorf("%s: direct envelope encoding differs from the generic codec (%v)", v.EventType, err)
		}
		for _, user := range []string{"", "guest-7"} {
			env.Metadata.UserID = user
			body, err := direct.enc(nil, env, v.String())
			if err != nil {
				t.Fatal(err)
			}
			r := &binReader{buf: body}
			got := direct.dec(r)
			if r.err != nil || len(r.buf) != 0 {
				t.Fatalf("%s: direct decoder cannot read the bytes: %v (%d left)", v.EventType, r.err, len(r.buf))
			}
			r = &binReader{buf: body}
			m, _ := c.dec(r).(map[string]any)
			want := envelopeFromMap(m)
			if !reflect.DeepEqual(normalize(got.Data), normalize(want.Data)) {
				t.Errorf("%s: direct decoding's data\n%v\nwant\n%v", v.EventType, got.Data, want.Data)
			}
			got.Data, want.Data = nil, nil
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: direct decoding %+v, want %+v", v.EventType, got, want)
			}
		}
		var byHamba map[string]any
		if err := avro.Unmarshal(v.Envelope, ours, &byHamba); err != nil {
			t.Fatalf("%s: hamba cannot read the codec's bytes: %v", v.EventType, err)
		}
		if got := compiled(v.Envelope).native(byHamba); !reflect.DeepEqual(normalize(got), normalize(native)) {
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

// TestCompiledBySchemaValue: two schemas of one canonical form (one fingerprint) that differ in a
// default get codecs of their own, each writing an absent field with its own default.
func TestCompiledBySchemaValue(t *testing.T) {
	parse := func(text string) *avro.RecordSchema {
		s, err := avro.ParseWithCache(text, "", &avro.SchemaCache{})
		if err != nil {
			t.Fatal(err)
		}
		return s.(*avro.RecordSchema)
	}
	a := parse(`{"type": "record", "name": "R", "fields": [{"name": "n", "type": "int", "default": 1}]}`)
	b := parse(`{"type": "record", "name": "R", "fields": [{"name": "n", "type": "int", "default": 2}]}`)
	if a.Fingerprint() != b.Fingerprint() {
		t.Fatal("the two schemas should share a fingerprint")
	}
	for _, c := range []struct {
		s    *avro.RecordSchema
		want []byte
	}{{a, []byte{2}}, {b, []byte{4}}} { // zigzag varints of 1 and 2
		if got, err := compiled(c.s).enc(nil, map[string]any{}); err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s: %x, %v; want %x", c.s, got, err, c.want)
		}
	}
}

// TestCompiledOperationsAgree: on values of an enum, a union of three branches, a typed slice and
// a map, the JSON form takes what conform accepts and refuses what it refuses, naming the path.
func TestCompiledOperationsAgree(t *testing.T) {
	s, err := avro.ParseWithCache(`{"type": "record", "name": "R", "fields": [
		{"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
		{"name": "u", "type": ["null", "long", "string"]},
		{"name": "a", "type": {"type": "array", "items": "string"}},
		{"name": "m", "type": {"type": "map", "values": "int"}}]}`, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	c := compiled(s)
	for _, v := range []struct {
		value map[string]any
		json  string // "" when refused
		path  string
	}{
		{map[string]any{"e": "A", "u": nil, "a": []string{"x"}, "m": map[string]any{"k": 1}}, `{"e":"A","u":null,"a":["x"],"m":{"k":1}}`, ""},
		{map[string]any{"e": "B", "u": int64(7), "a": []any{}, "m": map[string]any{}}, `{"e":"B","u":7,"a":[],"m":{}}`, ""},
		{map[string]any{"e": "C", "u": nil, "a": []any{}, "m": map[string]any{}}, "", "data.e"},
		{map[string]any{"e": "A", "u": nil, "a": []any{1}, "m": map[string]any{}}, "", "data.a[0]"},
		{map[string]any{"e": "A", "u": nil, "a": []any{}, "m": map[string]any{"k": "1"}}, "", "data.m.k"},
	} {
		errs := &fieldErrs{}
		c.conform(v.value, "data", errs, leaf.check, false)
		j, jerr := c.json(nil, v.value, "data")
		switch {
		case v.json != "" && (errs.err() != nil || jerr != nil || string(j) != v.json):
			t.Errorf("%v: conform %v, json %s, %v; want %s", v.value, errs.err(), j, jerr, v.json)
		case v.json == "" && (errs.err() == nil || jerr == nil || !strings.Contains(errs.err().Error(), v.path+": ") || !strings.Contains(jerr.Error(), v.path+": ")):
			t.Errorf("%v: conform %v, json %v; want both refused at %s", v.value, errs.err(), jerr, v.path)
		}
	}
}

// TestConformedDefaultsAreCopies: an absent field is filled with a value of its own each time, so
// a caller changing one event's data (sealing, redaction) changes neither the next event nor the
// schema's default; the binary form writes the same default.
func TestConformedDefaultsAreCopies(t *testing.T) {
	s, err := avro.ParseWithCache(`{"type": "record", "name": "R", "fields": [
		{"name": "opts", "type": {"type": "record", "name": "O", "fields": [{"name": "tags", "type": {"type": "array", "items": "string"}}]},
		 "default": {"tags": ["vip"]}}]}`, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	c := compiled(s)
	for i := range 2 {
		errs := &fieldErrs{}
		got, _ := c.conform(map[string]any{}, "data", errs, leaf.check, false).(map[string]any)
		opts, _ := got["opts"].(map[string]any)
		if errs.err() != nil || !reflect.DeepEqual(opts["tags"], []any{"vip"}) {
			t.Fatalf("event %d: %v, %v; want the default", i, got, errs.err())
		}
		opts["tags"].([]any)[0] = "changed"
	}
	want, _ := c.enc(nil, map[string]any{"opts": map[string]any{"tags": []any{"vip"}}})
	if got, err := c.enc(nil, map[string]any{}); err != nil || !bytes.Equal(got, want) {
		t.Errorf("absent field encoded as %x, %v; want %x", got, err, want)
	}
}

// TestReplacePII: every value of a pii field is replaced, at any depth (records in arrays, maps,
// optional fields and a recursive type), a null one is left, and nothing else is touched.
func TestReplacePII(t *testing.T) {
	s, err := avro.ParseWithCache(`{"type": "record", "name": "R", "fields": [
		{"name": "email", "type": ["null", "string"], "default": null, "pii": true},
		{"name": "phone", "type": ["null", "string"], "default": null, "pii": true},
		{"name": "note", "type": "string"},
		{"name": "guests", "type": {"type": "array", "items": {"type": "record", "name": "G", "fields": [
			{"name": "name", "type": "string", "pii": true}, {"name": "age", "type": "int"}]}}},
		{"name": "byRoom", "type": {"type": "map", "values": "G"}},
		{"name": "next", "type": ["null", "R"], "default": null}]}`, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatal(err)
	}
	guest := func(name string) map[string]any { return map[string]any{"name": name, "age": 30} }
	v := map[string]any{"email": "a@example.com", "phone": nil, "note": "n", "guests": []any{guest("Sato")},
		"byRoom": map[string]any{"101": guest("Kato")},
		"next":   map[string]any{"email": "b@example.com", "phone": nil, "note": "m", "guests": []any{}, "byRoom": map[string]any{}, "next": nil}}
	ReplacePII(s, v, func(x any) any { return "h:" + x.(string) })
	want := map[string]any{"email": "h:a@example.com", "phone": nil, "note": "n", "guests": []any{map[string]any{"name": "h:Sato", "age": 30}},
		"byRoom": map[string]any{"101": map[string]any{"name": "h:Kato", "age": 30}},
		"next":   map[string]any{"email": "h:b@example.com", "phone": nil, "note": "m", "guests": []any{}, "byRoom": map[string]any{}, "next": nil}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got  %v\nwant %v", v, want)
	}
}
