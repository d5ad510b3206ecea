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
	step := func(a topics.Action, cur *Item, data, id string) (*Item, bool) {
		t.Helper()
		next, changed, err := applyEvent(a, cur, "k1", json.RawMessage(data), ts, id)
		if err != nil {
			t.Fatal(err)
		}
		return next, changed
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
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
