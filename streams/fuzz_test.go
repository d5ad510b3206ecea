package streams_test

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/hotelbus/hotelbus/streams"
)

// FuzzParseJSON: the JSON envelope decoder never panics, and whatever it accepts it writes back in
// canonical form that parses again to the same canonical bytes.
func FuzzParseJSON(f *testing.F) {
	set, cat := loadAll(f)
	serde, _ := newSerde(f, set, cat)
	for _, sub := range set.Subjects {
		f.Add(sub.Latest().Example)
	}
	f.Add([]byte(`{"eventType":"billing.paid","data":{"amount":{"amount":1}},"metadata":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, in []byte) {
		env, err := serde.ParseJSON(in)
		if err != nil {
			return
		}
		if env.EventID == "" {
			env.EventID = "generated"
		}
		out, err := serde.JSON(env)
		if err != nil {
			t.Fatalf("accepted input does not print: %v\n%s", err, in)
		}
		again, err := serde.ParseJSON(out)
		if err != nil {
			t.Fatalf("canonical output does not parse: %v\n%s", err, out)
		}
		out2, err := serde.JSON(again)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("canonical form is not stable:\n%s\n%s", out, out2)
		}
	})
}

// FuzzDecode: arbitrary bytes behind a valid schema id never panic the decoder; they decode or fail
// with ErrMalformedRecord.
func FuzzDecode(f *testing.F) {
	set, cat := loadAll(f)
	serde, _ := newSerde(f, set, cat)
	env, err := serde.ParseJSON(latest(f, set, "reservation.created").Example)
	if err != nil {
		f.Fatal(err)
	}
	_, wire, err := serde.AppendEncode(context.Background(), nil, env)
	if err != nil {
		f.Fatal(err)
	}
	header := wire[:5]
	f.Add(wire[5:])
	f.Add(wire[5 : len(wire)/2])
	f.Fuzz(func(t *testing.T, body []byte) {
		_, err := serde.Decode(context.Background(), append(append([]byte{}, header...), body...))
		if err != nil && !errors.Is(err, streams.ErrMalformedRecord) {
			t.Fatalf("unexpected error class: %v", err)
		}
	})
}
