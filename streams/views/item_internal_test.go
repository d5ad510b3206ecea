package views

import (
	"encoding/json"
	"reflect"
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
		changed, err := d.apply(&change{action: a, key: "k1", data: json.RawMessage(data), fields: fields, ts: ts, eventID: id})
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
		if changed, err := d.apply(&change{action: topics.Merge, key: "k1", fields: fields, ts: ts, eventID: string(rune('f' + i))}); !changed || err != nil {
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

// TestApplySealedOrigins: each top-level field holding sealed values keeps the event that wrote it
// last, through upserts, merges (a later clear value drops it, a null keeps it) and the store.
func TestApplySealedOrigins(t *testing.T) {
	ts := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	o1 := Origin{EventID: "e1", EventType: "reservation.updated", Version: "1.0"}
	o2 := Origin{EventID: "e2", EventType: "checkin_checkout.checked_in", Version: "1.0"}
	d, _ := draftOf(nil)
	fields := map[string]json.RawMessage{"guest": json.RawMessage(`{"n":"hbpii1:x"}`), "note": json.RawMessage(`"hbpii1:y"`), "n": json.RawMessage(`1`)}
	if _, err := d.apply(&change{action: topics.Merge, key: "k1", fields: fields, ts: ts, eventID: "e1", origin: o1, sealed: []string{"guest", "note"}}); err != nil {
		t.Fatal(err)
	}
	fields = map[string]json.RawMessage{"docs": json.RawMessage(`["hbpii1:z"]`), "note": json.RawMessage(`"clear now"`), "guest": json.RawMessage(`null`)}
	if _, err := d.apply(&change{action: topics.Merge, key: "k1", fields: fields, ts: ts, eventID: "e2", origin: o2, sealed: []string{"docs"}}); err != nil {
		t.Fatal(err)
	}
	enc, _ := d.encode()
	back, err := draftOf(enc)
	if err != nil {
		t.Fatalf("%s: %v", enc, err)
	}
	want := map[string]Origin{"guest": o1, "docs": o2}
	if !reflect.DeepEqual(back.sealed, want) {
		t.Fatalf("sealed = %v, want %v (stored %s)", back.sealed, want, enc)
	}
	if _, err := back.apply(&change{action: topics.Upsert, key: "k1", data: json.RawMessage(`{"a":"hbpii1:q"}`), ts: ts, eventID: "e3", origin: o1, sealed: []string{"a"}}); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.sealed, map[string]Origin{"a": o1}) {
		t.Fatalf("after an upsert, sealed = %v", back.sealed)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }
