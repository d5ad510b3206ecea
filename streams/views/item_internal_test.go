package views

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/topics"
)

// TestApplyEvent pins upsert (replace), merge (non-null top-level fields over the item), delete,
// and the eventId dedup.
func TestApplyEvent(t *testing.T) {
	ts := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	// step applies one event to cur through a draft, stored and read back between events as the
	// batches of a catch-up do.
	step := func(a topics.Action, cur *Item, data, id string) (*Item, bool) {
		t.Helper()
		var stored []byte
		if cur != nil {
			stored, _ = json.Marshal(cur)
		}
		d, err := draftOf(stored)
		if err != nil {
			t.Fatal(err)
		}
		var fields map[string]json.RawMessage
		if a == topics.Merge {
			_ = json.Unmarshal([]byte(data), &fields)
		}
		changed, err := d.apply(a, "k1", json.RawMessage(data), fields, ts, id)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := d.encode()
		if err != nil || enc == nil {
			return nil, changed
		}
		var next Item
		if err := json.Unmarshal(enc, &next); err != nil {
			t.Fatalf("encoded item %s: %v", enc, err)
		}
		return &next, changed
	}
	eq := func(it *Item, want string) {
		t.Helper()
		var a, b any
		_ = json.Unmarshal(it.Data, &a)
		_ = json.Unmarshal([]byte(want), &b)
		if ja, jb := mustJSON(a), mustJSON(b); ja != jb {
			t.Fatalf("data = %s, want %s", ja, jb)
		}
	}
	it, changed := step(topics.Upsert, nil, `{"a":1,"b":"x","c":null}`, "e1")
	eq(it, `{"a":1,"b":"x","c":null}`)
	if !changed || it.EventID != "e1" || it.Key != "k1" || !it.UpdatedAt.Equal(ts) {
		t.Fatalf("upsert: %+v changed=%v", it, changed)
	}
	it, _ = step(topics.Merge, it, `{"a":2,"b":null,"d":[1]}`, "e2")
	eq(it, `{"a":2,"b":"x","c":null,"d":[1]}`)
	if _, changed = step(topics.Merge, it, `{"a":3}`, "e2"); changed {
		t.Fatal("the same eventId again changed the item")
	}
	it, _ = step(topics.Upsert, it, `{"z":true}`, "e3")
	eq(it, `{"z":true}`)
	if it, changed = step(topics.Delete, it, `{}`, "e4"); it != nil || !changed {
		t.Fatalf("delete: %+v %v", it, changed)
	}
	if _, changed = step(topics.Delete, nil, `{}`, "e5"); changed {
		t.Fatal("deleting an absent item changed something")
	}
	it, _ = step(topics.Merge, nil, `{"a":1,"b":null}`, "e6")
	eq(it, `{"a":1}`)

	// A batch's merges into one draft: decoded once, encoded once, the same result.
	d, _ := draftOf(nil)
	for i, over := range []string{`{"a":1,"b":"x"}`, `{"b":null,"c":[2]}`, `{"a":3}`} {
		var fields map[string]json.RawMessage
		_ = json.Unmarshal([]byte(over), &fields)
		if changed, err := d.apply(topics.Merge, "k1", nil, fields, ts, string(rune('f'+i))); !changed || err != nil {
			t.Fatalf("merge %d: %v %v", i, changed, err)
		}
	}
	enc, _ := d.encode()
	var batched Item
	if err := json.Unmarshal(enc, &batched); err != nil || batched.EventID != "h" || batched.Key != "k1" {
		t.Fatalf("batched merges: %s %v", enc, err)
	}
	eq(&batched, `{"a":3,"b":"x","c":[2]}`)
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
