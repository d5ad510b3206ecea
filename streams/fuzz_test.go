package streams_test

import (
	"bytes"
	"testing"
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
