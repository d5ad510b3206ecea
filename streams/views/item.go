package views

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/hotelbus/hotelbus/topics"
)

// Item is one entry of a view: the data of the events that made it, in the seed's JSON shape (the
// canonical JSON the SDK writes: decimals as strings, dates YYYY-MM-DD), with the timestamp and
// eventId of the event that changed it last. GetAs decodes Data into a generated event type.
type Item struct {
	Key       string          `json:"key"`
	Data      json.RawMessage `json:"data"`
	UpdatedAt time.Time       `json:"updatedAt"`
	EventID   string          `json:"eventId"`
	// Sealed names, for each top-level field of Data that holds personal-data values sealed by
	// streams/privacy, the event that wrote it: what opening them needs (the data key is found by
	// the tenant and the id the sealed value carries; the associated data is the eventId and the
	// field path). It is kept on disk and in the changelog with the item; an item read through a
	// view with a Protector lists only the fields that could not be opened. Absent when none.
	Sealed map[string]Origin `json:"sealed,omitempty"`
}

// Origin is the event that wrote a top-level field of an item: its eventId, type and the version
// its data was decoded in (the view's newest minor of the writer's major).
type Origin struct {
	EventID   string `json:"eventId"`
	EventType string `json:"eventType"`
	Version   string `json:"version"`
}

// draft is an item while a batch's events change it. Its data is kept as given (raw) until a merge
// needs its top-level fields, which are then decoded once and encoded once for the whole batch,
// however many merges the batch makes.
type draft struct {
	present   bool
	key       string
	raw       json.RawMessage            // the data, when fields is nil
	fields    map[string]json.RawMessage // the data split by a merge
	updatedAt time.Time
	eventID   string
	sealed    map[string]Origin // Item.Sealed
}

// draftOf returns the draft of a stored item (nil: absent).
func draftOf(stored []byte) (*draft, error) {
	if stored == nil {
		return &draft{}, nil
	}
	var it Item
	if err := json.Unmarshal(stored, &it); err != nil {
		return nil, fmt.Errorf("views: stored item: %w", err)
	}
	return &draft{present: true, key: it.Key, raw: it.Data, updatedAt: it.UpdatedAt, eventID: it.EventID, sealed: it.Sealed}, nil
}

// apply changes the draft by one event: upsert replaces the data with c.data, merge copies the
// non-null top-level fields of c.fields over it (an absent item starting empty), delete removes
// the item; the origins of sealed fields follow the fields. changed is false when nothing changed:
// the event is the one that changed the item last (a repeat), or it deletes an absent item.
func (d *draft) apply(c *change) (changed bool, err error) {
	if d.present && d.eventID == c.eventID {
		return false, nil
	}
	switch c.action {
	case topics.Delete:
		was := d.present
		*d = draft{}
		return was, nil
	case topics.Upsert:
		*d = draft{present: true, key: c.key, raw: c.data, updatedAt: c.ts, eventID: c.eventID}
		for _, f := range c.sealed {
			if d.sealed == nil {
				d.sealed = map[string]Origin{}
			}
			d.sealed[f] = c.origin
		}
		return true, nil
	case topics.Merge:
		if !d.present {
			*d = draft{fields: map[string]json.RawMessage{}}
		} else if d.fields == nil {
			if d.fields, err = splitFields(d.raw); err != nil {
				return false, err
			}
			d.raw = nil
		}
		for k, v := range c.fields {
			if string(v) == "null" {
				continue
			}
			d.fields[k] = v
			if slices.Contains(c.sealed, k) {
				if d.sealed == nil {
					d.sealed = map[string]Origin{}
				}
				d.sealed[k] = c.origin
			} else {
				delete(d.sealed, k)
			}
		}
		d.present, d.key, d.updatedAt, d.eventID = true, c.key, c.ts, c.eventID
		return true, nil
	}
	return false, fmt.Errorf("%w: action %q", ErrInvalid, c.action)
}

// encode returns the stored JSON of the item (nil when absent), an Item's JSON written by hand:
// encoding/json would validate and compact the data's raw JSON again, the largest cost of a
// catch-up. Nothing in the key (idRe) or the data's field names (Avro names) needs escaping.
func (d *draft) encode() ([]byte, error) {
	if !d.present {
		return nil, nil
	}
	eventID, err := json.Marshal(d.eventID)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 128+len(d.raw)+64*len(d.fields))
	b = append(append(b, `{"key":"`...), d.key...)
	b = d.updatedAt.AppendFormat(append(b, `","updatedAt":"`...), time.RFC3339Nano)
	b = append(append(append(b, `","eventId":`...), eventID...), `,"data":`...)
	if d.fields == nil {
		b = append(b, d.raw...)
	} else {
		b = append(b, '{')
		for i, k := range slices.Sorted(maps.Keys(d.fields)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(append(append(append(b, '"'), k...), `":`...), d.fields[k]...)
		}
		b = append(b, '}')
	}
	if len(d.sealed) > 0 {
		sealed, err := json.Marshal(d.sealed)
		if err != nil {
			return nil, err
		}
		b = append(append(b, `,"sealed":`...), sealed...)
	}
	return append(b, '}'), nil
}

// splitFields returns the top-level fields of a JSON object, each value's JSON as written. It reads
// the object with jsontext's tokenizer, a single pass without reflection: encoding/json's
// Unmarshal into a map was a quarter of a catch-up's time.
func splitFields(obj []byte) (map[string]json.RawMessage, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, fmt.Errorf("views: item data is not a JSON object: %v", err)
	}
	fields := map[string]json.RawMessage{}
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, fmt.Errorf("views: item data: %w", err)
		}
		name := tok.String() // before the next read voids tok
		val, err := dec.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("views: item data: %w", err)
		}
		fields[name] = bytes.Clone(val)
	}
	return fields, nil
}
