package streams

import (
	"encoding/json"
	"math/big"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// TestLeaves holds the leaf of each of schemas.LeafTypes to one contract: a Go value that check
// accepts is encoded and decoded back to itself, written as its canonical JSON, and read back from
// that JSON to itself; a value of another Go type is refused by check, enc and appendJSON alike,
// naming the path. A type added to LeafTypes fails here until it has a leaf and a case.
func TestLeaves(t *testing.T) {
	day := time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC)
	instant := time.Date(2026, 12, 5, 4, 30, 15, 123e6, time.UTC)
	cases := map[string]struct {
		value any    // as check accepts it and dec returns it
		json  string // its canonical JSON
		wrong any    // a value of another Go type
	}{
		`"string"`:  {"Sakura", `"Sakura"`, 3},
		`"boolean"`: {true, `true`, "true"},
		`"int"`:     {2147483647, `2147483647`, int64(1) << 31},
		`"long"`:    {int64(-1) << 40, `-1099511627776`, 1.5},
		`"float"`:   {float32(0.25), `0.25`, 0.25},
		`"double"`:  {2.5, `2.5`, float32(1)},
		`{"type": "bytes", "logicalType": "decimal", "precision": 18, "scale": 2}`: {big.NewRat(-123456, 100), `"-1234.56"`, 1234.56},
		`{"type": "int", "logicalType": "date"}`:                                   {day, `"2026-12-05"`, "2026-12-05"},
		`{"type": "long", "logicalType": "timestamp-millis"}`:                      {instant, `"2026-12-05T04:30:15.123Z"`, instant.UnixMilli()},
	}
	for _, schema := range schemas.LeafTypes {
		c, ok := cases[schema]
		if !ok {
			t.Errorf("schemas.LeafTypes holds %s, which has no case here", schema)
			continue
		}
		s, err := avro.Parse(schema)
		if err != nil {
			t.Fatal(err)
		}
		l := leafOf(s.(*avro.PrimitiveSchema))
		t.Run(schema, func(t *testing.T) {
			if u, ok := l.(unsupportedLeaf); ok {
				t.Fatal(u.err)
			}
			errs := &fieldErrs{}
			if l.check(c.value, "x", errs); errs.err() != nil {
				t.Fatalf("check(%#v): %v", c.value, errs.err())
			}
			b, err := l.enc(nil, c.value)
			if err != nil {
				t.Fatalf("enc(%#v): %v", c.value, err)
			}
			r := &binReader{buf: b}
			if got := l.dec(r); r.err != nil || len(r.buf) != 0 || !same(got, c.value) {
				t.Errorf("dec(enc(%#v)) = %#v (error %v, %d bytes left)", c.value, got, r.err, len(r.buf))
			}
			j, err := l.appendJSON(nil, c.value, "x")
			if err != nil || string(j) != c.json {
				t.Errorf("appendJSON(%#v) = %s, %v; want %s", c.value, j, err, c.json)
			}
			dec := json.NewDecoder(strings.NewReader(c.json))
			dec.UseNumber()
			var raw any
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			if got := l.fromJSON(raw, "x", errs); errs.err() != nil || !same(got, c.value) {
				t.Errorf("fromJSON(%s) = %#v (%T), %v; want %#v (%T)", c.json, got, got, errs.err(), c.value, c.value)
			}

			if l.check(c.wrong, "x", errs); errs.err() == nil || !strings.Contains(errs.err().Error(), "x: ") {
				t.Errorf("check(%#v) = %v, want a problem at x", c.wrong, errs.err())
			}
			if _, err := l.enc(nil, c.wrong); err == nil {
				t.Errorf("enc(%#v) accepted", c.wrong)
			}
			if _, err := l.appendJSON(nil, c.wrong, "x"); err == nil || !strings.Contains(err.Error(), "x: ") {
				t.Errorf("appendJSON(%#v) = %v, want a problem at x", c.wrong, err)
			}
		})
	}
}

// same compares leaf values: numbers of *big.Rat by value, the rest deeply.
func same(a, b any) bool {
	if ra, ok := a.(*big.Rat); ok {
		rb, ok := b.(*big.Rat)
		return ok && ra.Cmp(rb) == 0
	}
	return reflect.DeepEqual(a, b)
}
