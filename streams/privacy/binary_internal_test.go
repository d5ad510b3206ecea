package privacy

import (
	"reflect"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
)

// TestBinWalkerRewrites: the walker replaces exactly the strings of its plan, at the paths of the
// map form, in arrays (of either block form: hamba writes a block's byte size, which a rewrite
// changes), maps and optional unions, writes the optional values of null nodes as null, and copies
// every other value of every type as it was.
func TestBinWalkerRewrites(t *testing.T) {
	s := avro.MustParse(`{"type":"record","name":"R","fields":[
		{"name":"id","type":"string"},
		{"name":"guests","type":{"type":"array","items":{"type":"record","name":"G","fields":[
			{"name":"name","type":"string"},{"name":"age","type":"int"},{"name":"vip","type":"boolean"},
			{"name":"born","type":["null","int"]}]}}},
		{"name":"tags","type":{"type":"map","values":"string"}},
		{"name":"email","type":["null","string"]},
		{"name":"phone","type":["null","string"]},
		{"name":"rate","type":"double"},
		{"name":"weight","type":"float"},
		{"name":"code","type":{"type":"fixed","name":"F","size":3}},
		{"name":"kind","type":{"type":"enum","name":"E","symbols":["A","B"]}},
		{"name":"raw","type":"bytes"},
		{"name":"count","type":"long"},
		{"name":"note","type":"string"}]}`)
	plan := &node{fields: []*node{
		{field: "guests", items: &node{fields: []*node{{field: "name", str: true}, {field: "born", null: true}}}},
		{field: "tags", values: &node{str: true}},
		{field: "email", str: true},
		{field: "phone", str: true},
	}}
	email, born := "a@example.jp", 1986
	in := map[string]any{
		"id": "r1",
		"guests": []any{
			map[string]any{"name": "佐藤", "age": 40, "vip": true, "born": &born},
			map[string]any{"name": "Kenta", "age": 7, "vip": false, "born": nil},
		},
		"tags":  map[string]any{"k": "v"},
		"email": &email, "phone": nil,
		"rate": 1.5, "weight": float32(2.5), "code": [3]byte{1, 2, 3}, "kind": "B", "raw": []byte{0, 1},
		"count": int64(-7), "note": "unchanged",
	}
	want := map[string]any{
		"id": "r1",
		"guests": []any{
			map[string]any{"name": "<guests[0].name=佐藤>", "age": 40, "vip": true, "born": nil},
			map[string]any{"name": "<guests[1].name=Kenta>", "age": 7, "vip": false, "born": nil},
		},
		"tags":  map[string]any{"k": "<tags{k}=v>"},
		"email": "<email=a@example.jp>", "phone": nil,
		"rate": 1.5, "weight": float32(2.5), "code": [3]byte{1, 2, 3}, "kind": "B", "raw": []byte{0, 1},
		"count": int64(-7), "note": "unchanged",
	}
	for name, api := range map[string]avro.API{
		"byte sizes": avro.Config{}.Freeze(),
		"counts":     avro.Config{DisableBlockSizeHeader: true}.Freeze(),
	} {
		t.Run(name, func(t *testing.T) {
			src, err := api.Marshal(s, in)
			if err != nil {
				t.Fatal(err)
			}
			w := binWalker{Reader: avrobin.Reader{Src: src}, rewrite: true, nulls: true, fn: func(path, s []byte) ([]byte, error) {
				return []byte("<" + string(path) + "=" + string(s) + ">"), nil
			}}
			if err := w.value(s, plan, 0); err != nil || w.Pos != len(src) {
				t.Fatalf("walk: %v at %d of %d", err, w.Pos, len(src))
			}
			out := append(w.out, src[w.run:]...)
			var got map[string]any
			if err := avro.Unmarshal(s, out, &got); err != nil {
				t.Fatal(err)
			}
			got["email"] = deopt(got["email"])
			if !reflect.DeepEqual(normalize(got), normalize(want)) {
				t.Errorf("rewritten value:\n got %v\nwant %v", got, want)
			}

			// A reader that skips the arrays and maps by their blocks' byte sizes lands on the
			// fields after them.
			reader := avro.MustParse(`{"type":"record","name":"R","fields":[{"name":"count","type":"long"},{"name":"note","type":"string"}]}`)
			resolved, err := avro.NewSchemaCompatibility().Resolve(reader, s)
			if err != nil {
				t.Fatal(err)
			}
			var tail struct {
				Count int64  `avro:"count"`
				Note  string `avro:"note"`
			}
			if err := api.Unmarshal(resolved, out, &tail); err != nil || tail.Count != -7 || tail.Note != "unchanged" {
				t.Errorf("skipping the rewritten blocks: %+v, %v", tail, err)
			}

			// Every cut of the value fails cleanly.
			for cut := range len(src) {
				w := binWalker{Reader: avrobin.Reader{Src: src[:cut]}, rewrite: true, fn: func(_, s []byte) ([]byte, error) { return s, nil }}
				if err := w.value(s, plan, 0); err == nil {
					t.Fatalf("a value cut at %d of %d bytes walked without an error", cut, len(src))
				}
			}
		})
	}
}

// deopt returns the branch of an optional union as hamba decodes it into a map.
func deopt(v any) any {
	if m, ok := v.(map[string]any); ok {
		for _, b := range m {
			return b
		}
	}
	return v
}

// normalize gives ints one Go type, as hamba decodes them.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = normalize(e)
		}
		return out
	case int:
		return int64(v)
	case int32:
		return int64(v)
	}
	return v
}
