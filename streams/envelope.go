// Package streams is the hotelbus runtime library: the event envelope, its JSON and Avro forms, and
// the registry-backed serde that puts envelopes on Kafka in the Confluent wire format.
package streams

import (
	"time"
)

// The envelope's fields are defined once, here: the Envelope struct and envelopeFields, from which
// the JSON form (ParseJSON, AppendJSON), the generic value (Map, the generic Avro codec, the
// decoder's envelopeFromMap, replay's --where variables and Parquet rows) and the direct Avro
// codec (compileEnvelope) take their field names, order and accessors. Only the typed codec's
// avroEnvelope (struct tags hamba reads) repeats them; TestEnvelopeFieldsOnce holds it and the
// envelope schema (schemas/envelope.avsc) to this list.

// envelopeField is one string field of the envelope: its name in JSON and Avro, whether it sits in
// metadata, whether ParseJSON requires it, whether "" is written as null, and where it is held.
type envelopeField struct {
	name     string
	meta     bool
	required bool
	nullable bool
	ptr      func(*Envelope) *string
}

func (f envelopeField) get(e *Envelope) string    { return *f.ptr(e) }
func (f envelopeField) set(e *Envelope, s string) { *f.ptr(e) = s }

// envelopeFields are the envelope's string fields in schema order; timestamp and data follow
// version at the top level, and metadata is last.
var envelopeFields = [...]envelopeField{
	{name: "eventId", ptr: func(e *Envelope) *string { return &e.EventID }},
	{name: "eventType", required: true, ptr: func(e *Envelope) *string { return &e.EventType }},
	{name: "version", ptr: func(e *Envelope) *string { return &e.Version }},
	{name: "tenantId", meta: true, required: true, ptr: func(e *Envelope) *string { return &e.Metadata.TenantID }},
	{name: "source", meta: true, ptr: func(e *Envelope) *string { return &e.Metadata.Source }},
	{name: "correlationId", meta: true, ptr: func(e *Envelope) *string { return &e.Metadata.CorrelationID }},
	{name: "userId", meta: true, nullable: true, ptr: func(e *Envelope) *string { return &e.Metadata.UserID }},
	{name: "traceId", meta: true, ptr: func(e *Envelope) *string { return &e.Metadata.TraceID }},
}

// Field returns the string field of env named name in the envelope schema (eventId, eventType,
// version, and metadata's tenantId, source, correlationId, userId, traceId), or nil for any other
// name.
func (env *Envelope) Field(name string) *string {
	for _, f := range envelopeFields {
		if f.name == name {
			return f.ptr(env)
		}
	}
	return nil
}

// The envelope's top-level keys and metadata's keys, in schema order.
var envelopeKeys, metadataKeys = func() (top, md []string) {
	for _, f := range envelopeFields {
		if f.meta {
			md = append(md, f.name)
		} else {
			top = append(top, f.name)
		}
	}
	return append(top, "timestamp", "data", "metadata"), md
}()

// Map returns env as the generic value of the envelope record (the form of Envelope's Data for the
// whole envelope): its fields by name, metadata a map, an empty nullable field (userId) nil, data
// as given (env.Data, or a form of it the caller needs), version as given ("" keeps env.Version).
// replay's --where variables and Parquet rows are this map.
func (env *Envelope) Map(version string, data any) map[string]any {
	top := make(map[string]any, len(envelopeFields)+3)
	md := make(map[string]any, 5)
	for _, f := range envelopeFields {
		var v any = f.get(env)
		if f.nullable && v == "" {
			v = nil
		}
		if f.meta {
			md[f.name] = v
		} else {
			top[f.name] = v
		}
	}
	if version != "" {
		top["version"] = version
	}
	top["timestamp"], top["data"], top["metadata"] = env.Timestamp, data, md
	return top
}

// envelopeFromMap is the Envelope of m, a decoded generic envelope (Map's form; a missing or
// mistyped field is left empty).
func envelopeFromMap(m map[string]any) *Envelope {
	env := &Envelope{}
	md, _ := m["metadata"].(map[string]any)
	for _, f := range envelopeFields {
		from := m
		if f.meta {
			from = md
		}
		s, _ := from[f.name].(string)
		f.set(env, s)
	}
	ts, _ := m["timestamp"].(time.Time)
	env.Timestamp = ts.UTC()
	env.Data, _ = m["data"].(map[string]any)
	return env
}

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
