package dlq

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// Ref names one record: "<topic>/<partition>@<offset>", the form of streams.HeaderRedriveSource.
// A Ref without a topic ("<partition>@<offset>") names a record of the system's dead-letter topic.
type Ref struct {
	Topic     string
	Partition int32
	Offset    int64
}

// String returns "<topic>/<partition>@<offset>", or "<partition>@<offset>" without a topic.
func (r Ref) String() string {
	s := strconv.FormatInt(int64(r.Partition), 10) + "@" + strconv.FormatInt(r.Offset, 10)
	if r.Topic == "" {
		return s
	}
	return r.Topic + "/" + s
}

// MarshalText makes a Ref its String form in JSON.
func (r Ref) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// ParseRef parses "<topic>/<partition>@<offset>" or "<partition>@<offset>".
func ParseRef(s string) (Ref, error) {
	var r Ref
	rest := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		r.Topic, rest = s[:i], s[i+1:]
		if r.Topic == "" {
			return Ref{}, fmt.Errorf("dlq: %q: empty topic (want TOPIC/PARTITION@OFFSET or PARTITION@OFFSET)", s)
		}
	}
	ps, os, ok := strings.Cut(rest, "@")
	p, perr := strconv.ParseInt(ps, 10, 32)
	o, oerr := strconv.ParseInt(os, 10, 64)
	if !ok || perr != nil || oerr != nil || p < 0 || o < 0 {
		return Ref{}, fmt.Errorf("dlq: %q is not TOPIC/PARTITION@OFFSET or PARTITION@OFFSET", s)
	}
	r.Partition, r.Offset = int32(p), o
	return r, nil
}

// DeadLetter is one record of a dead-letter topic, with the hotelbus.dlq.* headers parsed. A header
// that is missing or does not parse leaves its field zero; Headers keeps every header as written.
type DeadLetter struct {
	// Ref is where the dead letter is (the dead-letter topic, partition, offset).
	Ref Ref
	// Time is when the record was dead-lettered: its Kafka timestamp in the dead-letter topic.
	Time    time.Time
	Key     []byte
	Value   []byte
	Headers []kgo.RecordHeader

	// EventID, EventType and Version come from the envelope headers, else from the decoded envelope.
	EventID, EventType, Version string
	// Tenant is the record key (the envelope's tenantId).
	Tenant string

	// Origin is where the record was consumed from (HeaderDLQTopic, HeaderDLQPartition,
	// HeaderDLQOffset); OriginTime its timestamp there.
	Origin     Ref
	OriginTime time.Time
	// Group is the consumer group that gave up; ErrorClass one of the streams.Class* values.
	Group                     string
	ErrorClass, ErrorMessage  string
	Attempts                  int
	FirstFailure, LastFailure time.Time

	// Envelope is the decoded value when the DLQ has a Serde and the value decodes; otherwise
	// DecodeErr says why it did not (nil when no decoding was asked for).
	Envelope  *streams.Envelope
	DecodeErr error
}

// Decoded reports whether the value was decoded into Envelope.
func (d *DeadLetter) Decoded() bool { return d.Envelope != nil }

// Header returns the first header named key ("" when absent).
func (d *DeadLetter) Header(key string) string {
	for _, h := range d.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// parse builds the DeadLetter of r, decoding the value with serde when it is not nil.
func parse(ctx context.Context, serde *streams.Serde, r *kgo.Record) *DeadLetter {
	d := &DeadLetter{Ref: Ref{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}, Time: r.Timestamp,
		Key: r.Key, Value: r.Value, Headers: r.Headers, Tenant: string(r.Key), Origin: Ref{Partition: -1, Offset: -1}}
	for _, h := range r.Headers {
		if !strings.HasPrefix(h.Key, "hotelbus.dlq.") && h.Key != streams.HeaderEventID && h.Key != streams.HeaderEventType &&
			h.Key != streams.HeaderVersion {
			continue
		}
		v := string(h.Value)
		switch h.Key {
		case streams.HeaderEventID:
			d.EventID = v
		case streams.HeaderEventType:
			d.EventType = v
		case streams.HeaderVersion:
			d.Version = v
		case streams.HeaderDLQTopic:
			d.Origin.Topic = v
		case streams.HeaderDLQPartition:
			if p, err := strconv.ParseInt(v, 10, 32); err == nil {
				d.Origin.Partition = int32(p)
			}
		case streams.HeaderDLQOffset:
			if o, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.Origin.Offset = o
			}
		case streams.HeaderDLQTimestamp:
			d.OriginTime = parseTime(v)
		case streams.HeaderDLQGroup:
			d.Group = v
		case streams.HeaderDLQErrorClass:
			d.ErrorClass = v
		case streams.HeaderDLQErrorMessage:
			d.ErrorMessage = v
		case streams.HeaderDLQAttempts:
			d.Attempts, _ = strconv.Atoi(v)
		case streams.HeaderDLQFirstFailure:
			d.FirstFailure = parseTime(v)
		case streams.HeaderDLQLastFailure:
			d.LastFailure = parseTime(v)
		}
	}
	if serde == nil {
		return d
	}
	d.Envelope, d.DecodeErr = serde.Decode(ctx, r.Value)
	if d.Envelope != nil {
		if d.EventID == "" {
			d.EventID = d.Envelope.EventID
		}
		if d.EventType == "" {
			d.EventType = d.Envelope.EventType
		}
		if d.Version == "" {
			d.Version = d.Envelope.Version
		}
	}
	return d
}

func parseTime(v string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// formatMillis formats t as the hotelbus headers do: RFC 3339 UTC with milliseconds.
func formatMillis(t time.Time) string {
	return t.UTC().Format("2006-01-02T15:04:05.000Z")
}
