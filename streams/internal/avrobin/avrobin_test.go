package avrobin_test

import (
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
)

var schema = avro.MustParse(`{"type":"record","name":"R","fields":[
	{"name":"id","type":"string"},
	{"name":"items","type":{"type":"array","items":{"type":"record","name":"I","fields":[
		{"name":"name","type":"string"},{"name":"n","type":"int"},{"name":"ok","type":"boolean"}]}}},
	{"name":"tags","type":{"type":"map","values":["null","string"]}},
	{"name":"opt","type":["null","long"]},
	{"name":"rate","type":"double"},
	{"name":"weight","type":"float"},
	{"name":"code","type":{"type":"fixed","name":"F","size":3}},
	{"name":"kind","type":{"type":"enum","name":"E","symbols":["A","B"]}},
	{"name":"raw","type":"bytes"},
	{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
	{"name":"again","type":"I"},
	{"name":"last","type":"string"}]}`).(*avro.RecordSchema)

var value = map[string]any{
	"id":     "r1",
	"items":  []any{map[string]any{"name": "a", "n": 1, "ok": true}, map[string]any{"name": "b", "n": -2, "ok": false}},
	"tags":   map[string]any{"k": "v", "none": nil},
	"opt":    int64(7),
	"rate":   1.5,
	"weight": float32(2),
	"code":   [3]byte{1, 2, 3},
	"kind":   "B",
	"raw":    []byte{0, 1},
	"at":     int64(1700000000000),
	"again":  map[string]any{"name": "c", "n": 3, "ok": true},
	"last":   "the end",
}

// TestSkip: a value of every type is skipped to its end, with arrays and maps in either block form
// (hamba writes each block's byte size by default); Field stops at a field's value; every cut of
// the value fails instead of reading past it.
func TestSkip(t *testing.T) {
	for name, api := range map[string]avro.API{
		"byte sizes": avro.Config{}.Freeze(),
		"counts":     avro.Config{DisableBlockSizeHeader: true}.Freeze(),
	} {
		t.Run(name, func(t *testing.T) {
			src, err := api.Marshal(schema, value)
			if err != nil {
				t.Fatal(err)
			}
			r := avrobin.Reader{Src: src}
			if err := r.Skip(schema); err != nil || r.Pos != len(src) {
				t.Fatalf("Skip: %v at %d of %d bytes", err, r.Pos, len(src))
			}
			r = avrobin.Reader{Src: src}
			f, err := r.Field(schema, "last")
			if err != nil || f == nil {
				t.Fatalf("Field(last): %v, %v", f, err)
			}
			if b, err := r.Bytes(); err != nil || string(b) != "the end" || r.Pos != len(src) {
				t.Fatalf("the last field reads %q, %v", b, err)
			}
			r = avrobin.Reader{Src: src}
			if f, err := r.Field(schema, "missing"); f != nil || err != nil || r.Pos != len(src) {
				t.Fatalf("Field(missing) = %v, %v at %d", f, err, r.Pos)
			}
			for cut := range len(src) {
				r := avrobin.Reader{Src: src[:cut]}
				if err := r.Skip(schema); err == nil {
					t.Fatalf("a value cut at %d of %d bytes skipped without an error", cut, len(src))
				}
			}
		})
	}
}

// FuzzSkip: whatever the bytes, Skip and Field return (an error, or a position within the input)
// without panicking or reading past the input.
func FuzzSkip(f *testing.F) {
	for _, api := range []avro.API{avro.Config{}.Freeze(), avro.Config{DisableBlockSizeHeader: true}.Freeze()} {
		src, err := api.Marshal(schema, value)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		r := avrobin.Reader{Src: src}
		if err := r.Skip(schema); err == nil && (r.Pos < 0 || r.Pos > len(src)) {
			t.Fatalf("Skip ended at %d of %d bytes", r.Pos, len(src))
		}
		r = avrobin.Reader{Src: src}
		if f, err := r.Field(schema, "last"); err == nil && f != nil {
			_, _ = r.Bytes()
		}
	})
}
