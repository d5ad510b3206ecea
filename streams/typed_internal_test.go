package streams

import (
	"bytes"
	"math/big"
	"reflect"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/events"
)

// TestGeneratedTypesRoundTrip decodes every subject's golden example, written by the generic
// codec, into its generated type with hamba/avro and encodes it again; read back generically and
// written by the generic codec, that must give the same bytes (hamba writes arrays in sized blocks,
// so its own bytes may differ), so the generated types carry every field, symbol, date and decimal.
func TestGeneratedTypesRoundTrip(t *testing.T) {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	for _, sub := range set.Subjects {
		v := sub.Latest()
		t.Run(v.EventType, func(t *testing.T) {
			env, err := ParseJSON(v.Example, func(et, ver string) (*avro.RecordSchema, string, error) { return v.Data, v.String(), nil })
			if err != nil {
				t.Fatal(err)
			}
			want, err := compile(v.Data).enc(nil, env.Data)
			if err != nil {
				t.Fatal(err)
			}
			typed := events.New(sub.EventType, sub.Major)
			if typed == nil {
				t.Fatalf("no generated type for %s v%d", sub.EventType, sub.Major)
			}
			if err := avro.Unmarshal(v.Data, want, typed); err != nil {
				t.Fatalf("decode into %T: %v", typed, err)
			}
			got, err := avro.Marshal(v.Data, typed)
			if err != nil {
				t.Fatalf("encode %T: %v", typed, err)
			}
			c := compile(v.Data)
			r := &binReader{buf: got}
			back := c.dec(r)
			if r.err != nil || len(r.buf) != 0 {
				t.Fatalf("hamba's encoding of %T does not read back: %v", typed, r.err)
			}
			if got, err = c.enc(nil, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%T re-encodes differently:\n got %x\nwant %x", typed, got, want)
			}
		})
	}
}

// TestValueCheckerPaths: the compiled check of typed values finds a nil or too precise decimal wherever
// the schema can hold one (a required field, an optional one, array items, map values, a
// recursive record, a field typed any) and names its path; valid values pass.
func TestValueCheckerPaths(t *testing.T) {
	s := avro.MustParse(`{"type":"record","name":"Node","fields":[
		{"name":"price","type":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}},
		{"name":"fee","type":["null",{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}],"default":null},
		{"name":"list","type":{"type":"array","items":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}}},
		{"name":"byName","type":{"type":"map","values":{"type":"bytes","logicalType":"decimal","precision":6,"scale":2}}},
		{"name":"child","type":["null","Node"],"default":null},
		{"name":"note","type":"string"}]}`)
	type node struct {
		Price  *big.Rat            `avro:"price"`
		Fee    *big.Rat            `avro:"fee"`
		List   []*big.Rat          `avro:"list"`
		ByName map[string]*big.Rat `avro:"byName"`
		Child  *node               `avro:"child"`
		Note   string              `avro:"note"`
	}
	type holder struct {
		Node any `avro:"node"`
	}
	hs := avro.MustParse(`{"type":"record","name":"Holder","fields":[{"name":"node","type":` + s.String() + `}]}`)
	ok := func() *node {
		return &node{Price: big.NewRat(1, 4), List: []*big.Rat{big.NewRat(1, 2)}, ByName: map[string]*big.Rat{"a": big.NewRat(3, 1)}}
	}
	for name, c := range map[string]struct {
		v    func() *node
		want string
	}{
		"valid":             {ok, ""},
		"nil required":      {func() *node { n := ok(); n.Price = nil; return n }, "x.price: required decimal is nil"},
		"optional too fine": {func() *node { n := ok(); n.Fee = big.NewRat(1, 3); return n }, "x.fee: "},
		"array item":        {func() *node { n := ok(); n.List = append(n.List, nil); return n }, "x.list[1]: required decimal is nil"},
		"map value":         {func() *node { n := ok(); n.ByName["b"] = big.NewRat(10000, 1); return n }, "x.byName.b: 10000.00 exceeds decimal(6,2)"},
		"recursive":         {func() *node { n := ok(); n.Child = ok(); n.Child.Child = ok(); n.Child.Child.Price = nil; return n }, "x.child.child.price: required decimal is nil"},
	} {
		t.Run(name, func(t *testing.T) {
			for _, via := range []string{"struct", "any"} {
				errs := &fieldErrs{}
				schema, v, path := s, reflect.ValueOf(c.v()), "x"
				if via == "any" {
					schema, v, path = hs, reflect.ValueOf(&holder{Node: c.v()}), ""
				}
				check := valueChecker(schema, v.Type())
				if fine := check(v, "", nil); fine != (c.want == "") {
					t.Errorf("%s: the check without paths says fine=%v", via, fine)
				}
				if fine := check(v, path, errs); fine != (c.want == "") {
					t.Errorf("%s: the check with paths says fine=%v", via, fine)
				}
				err := errs.err()
				switch {
				case c.want == "" && err != nil:
					t.Errorf("%s: %v", via, err)
				case c.want != "" && (err == nil || !strings.Contains(err.Error(), strings.TrimPrefix(c.want, "x")) || via == "struct" && !strings.Contains(err.Error(), c.want)):
					t.Errorf("%s: %v, want %q", via, err, c.want)
				}
			}
		})
	}
	if c := valueChecker(avro.MustParse(`{"type":"record","name":"Plain","fields":[{"name":"n","type":"string"}]}`), reflect.TypeFor[*struct{}]()); c != nil {
		t.Error("a schema without decimals has a check")
	}
}
