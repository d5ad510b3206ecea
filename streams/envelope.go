// Package streams is the hotelbus runtime library: the event envelope, its JSON and Avro forms, and
// the registry-backed serde that puts envelopes on Kafka in the Confluent wire format.
package streams

import (
	"time"
)

// Envelope is one event in the hotelbus standard envelope.
//
// Data holds the event's payload as generic values following the data record's schema:
//
//	record              map[string]any (every field present; an absent optional field is nil)
//	string, enum        string
//	boolean             bool
//	int                 int (int32 and int64 are accepted on the way in)
//	long                int64 (int and int32 are accepted on the way in)
//	decimal (Money)     *big.Rat (a decimal string is accepted on the way in)
//	date                time.Time at midnight UTC
//	timestamp-millis    time.Time in UTC
//	array               []any
//	map                 map[string]any
//	["null", T]         nil or the value of T, unwrapped
type Envelope struct {
	// EventID is the UUID that deduplicates the event; the same across dual-published versions.
	EventID   string
	EventType string
	// Version is the data schema's "major.minor".
	Version   string
	Timestamp time.Time
	Data      map[string]any
	Metadata  Metadata
}

// Metadata is the envelope's routing and tracing context.
type Metadata struct {
	// TenantID is the record key: events of one tenant keep their order within a topic.
	TenantID string
	// Source is the publishing system, taken from its identity, never from the caller's payload.
	Source        string
	CorrelationID string
	// UserID is optional; "" is written as null.
	UserID  string
	TraceID string
}
