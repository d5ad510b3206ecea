package views

import (
	"encoding/json"
	"fmt"
	"time"

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
}

// applyEvent returns the item after an event with the given action, key, data (a JSON object),
// timestamp and eventId, given the current item (nil when absent). It returns nil for a deleted
// (or still absent) item; changed is false when the event changes nothing (the same eventId as
// the one that last changed the item: a repeat).
func applyEvent(action topics.Action, cur *Item, key string, data json.RawMessage, ts time.Time, eventID string) (next *Item, changed bool, err error) {
	if cur != nil && cur.EventID == eventID {
		return cur, false, nil
	}
	switch action {
	case topics.Delete:
		return nil, cur != nil, nil
	case topics.Upsert:
		return &Item{Key: key, Data: data, UpdatedAt: ts, EventID: eventID}, true, nil
	case topics.Merge:
		if cur == nil {
			data, err = mergeFields(nil, data)
		} else {
			data, err = mergeFields(cur.Data, data)
		}
		if err != nil {
			return nil, false, err
		}
		return &Item{Key: key, Data: data, UpdatedAt: ts, EventID: eventID}, true, nil
	}
	return nil, false, fmt.Errorf("%w: action %q", ErrInvalid, action)
}

// mergeFields copies the non-null top-level fields of over onto base (nil: an empty object).
func mergeFields(base, over json.RawMessage) (json.RawMessage, error) {
	fields := map[string]json.RawMessage{}
	if base != nil {
		if err := json.Unmarshal(base, &fields); err != nil {
			return nil, fmt.Errorf("views: stored item: %w", err)
		}
	}
	var upd map[string]json.RawMessage
	if err := json.Unmarshal(over, &upd); err != nil {
		return nil, fmt.Errorf("views: event data: %w", err)
	}
	for k, v := range upd {
		if string(v) != "null" {
			fields[k] = v
		}
	}
	return json.Marshal(fields)
}
