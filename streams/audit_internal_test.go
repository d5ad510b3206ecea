package streams

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAuditRecordJSON: the audit record's hand-written JSON is json.Marshal's, byte for byte:
// omitted empty fields, escaped text (quotes, control characters, HTML characters, invalid
// UTF-8, U+2028; also each alone in a field, past the fast path for plain text), negative and
// fractional numbers, times with and without nanoseconds and zones; and what it leaves to
// json.Marshal (an exponent latency, a year past 9999) is left to it.
func TestAuditRecordJSON(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 15, 0, 123_456_789, time.UTC)
	for name, r := range map[string]AuditRecord{
		"published": {Kind: AuditPublished, System: "hotel-pms", EventID: "0193a4b2-7c1d-7e8f-9a0b-1c2d3e4f5a6b", EventType: "reservation.created",
			TenantID: "sakura-hotels", CorrelationID: "corr-1", Topic: "hotelbus.pms.reservations", Partition: 3, Offset: 1234567890123, Outcome: OutcomePublished, At: at},
		"handled": {Kind: AuditHandled, System: "hotel-member", Group: "hotelbus.hotel-member", EventID: "e", EventType: "t", TenantID: "x",
			CorrelationID: `a"b\c<d>&e`, Topic: "t", Partition: -1, Offset: -1, Attempt: 3, Outcome: OutcomeFailed, LatencyMs: 12.345,
			At: at.Truncate(time.Second), Error: "boom:\n\t\x01 \xff\u2028 ホテル"},
		"one each": {Kind: "\x7f", System: "a<b", Group: "a>b", EventID: "a&b", EventType: `a"b`, TenantID: `a\b`, CorrelationID: "a\x1fb",
			Topic: "ホテル", Outcome: "a\u2028b", Error: "a\xffb", At: at},
		"zone":    {Kind: AuditHandled, LatencyMs: -0.5, At: at.In(time.FixedZone("JST", 9*3600))},
		"zero":    {},
		"large":   {LatencyMs: 1e20 + 1, At: at},
		"exp":     {LatencyMs: 1e22, At: at},
		"tiny":    {LatencyMs: 1e-7, At: at},
		"far":     {At: time.Date(12026, 1, 1, 0, 0, 0, 0, time.UTC)},
		"integer": {LatencyMs: 7, At: at},
	} {
		want, werr := json.Marshal(r)
		got, ok := r.appendJSON(nil)
		switch {
		case !ok && (name == "exp" || name == "tiny" || name == "far"):
		case !ok:
			t.Errorf("%s: left to json.Marshal", name)
		case werr != nil || string(got) != string(want):
			t.Errorf("%s:\n got %s\nwant %s (%v)", name, got, want, werr)
		}
	}
}
