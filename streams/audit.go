package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// AuditRecord is one entry of the audit topic (topics.Catalog.AuditTopic): a publish by a system,
// or the outcome of one run of a consumer group's handler chain. The audit topic holds them as
// JSON, keyed by correlationId (the eventId when there is none), so one journey stays in one
// partition, in order.
type AuditRecord struct {
	Kind          string    `json:"kind"` // AuditPublished or AuditHandled
	System        string    `json:"system"`
	Group         string    `json:"group,omitempty"` // handled only
	EventID       string    `json:"eventId"`
	EventType     string    `json:"eventType"`
	TenantID      string    `json:"tenantId"`
	CorrelationID string    `json:"correlationId"`
	Topic         string    `json:"topic"`
	Partition     int32     `json:"partition"`
	Offset        int64     `json:"offset"`
	Attempt       int       `json:"attempt,omitempty"` // handled only
	Outcome       string    `json:"outcome"`           // Outcome* constants
	LatencyMs     float64   `json:"latencyMs,omitempty"`
	At            time.Time `json:"at"`
	Error         string    `json:"error,omitempty"`
}

// Audit record kinds.
const (
	AuditPublished = "published"
	AuditHandled   = "handled"
)

// ParseAuditRecord decodes one audit topic value.
func ParseAuditRecord(b []byte) (AuditRecord, error) {
	var r AuditRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("streams: audit record: %w", err)
	}
	if r.Kind != AuditPublished && r.Kind != AuditHandled {
		return r, fmt.Errorf("streams: audit record: kind %q is neither %q nor %q", r.Kind, AuditPublished, AuditHandled)
	}
	return r, nil
}

// AuditLog writes AuditRecords to the audit topic: every record a Writer writes (every Producer
// and Writer has one, see PublishAudit; it is a PublishObserver) and every outcome of a consumer's
// chain (Middleware, outermost). Writes go through a Writer's client write, without observers or
// spans, and are asynchronous and never block the caller: when franz-go's buffer is full a record
// is dropped and counted (Dropped), and failed writes are logged and counted (Failed), because the
// audit log must not slow down or stop the event flow it describes. Safe for concurrent use.
type AuditLog struct {
	w       *Writer
	log     *slog.Logger
	dropped atomic.Int64
	failed  atomic.Int64
	sent    func(*kgo.Record, error) // the promise of every record, made once
}

func newAuditLog(w *Writer, logger *slog.Logger) *AuditLog {
	a := &AuditLog{w: w, log: logger}
	a.sent = a.promise
	return a
}

// NewAuditLog returns the audit log of w's system, writing to its catalog's audit topic through w
// (which the caller owns and closes). logger nil is slog.Default().
func NewAuditLog(w *Writer, logger *slog.Logger) (*AuditLog, error) {
	if w == nil || w.cat.AuditTopic == "" {
		return nil, fmt.Errorf("%w: NewAuditLog: a writer whose catalog has an audit topic is required", ErrConfig)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return newAuditLog(w, logger), nil
}

// Write sends r without waiting.
func (a *AuditLog) Write(r AuditRecord) {
	rec := auditRecords.Get().(*kgo.Record)
	b, ok := r.appendJSON(rec.Value[:0])
	if !ok {
		m, err := json.Marshal(r)
		if err != nil {
			a.failed.Add(1)
			auditRecords.Put(rec)
			return
		}
		b = append(rec.Value[:0], m...)
	}
	key := r.CorrelationID
	if key == "" {
		key = r.EventID
	}
	n := len(b)
	b = append(b, key...) // the key after the value: one buffer, whose capacity the value keeps
	*rec = kgo.Record{Topic: a.w.cat.AuditTopic, Key: b[n:], Value: b[:n]}
	a.w.send(context.Background(), rec, true, a.sent)
}

// auditRecords recycles the records of the audit log, their value and key in one buffer of the
// value's capacity: franz-go no longer reads a record once it has called its promise. Buffers
// grown past 4 KiB (a long error) are not kept.
var auditRecords = sync.Pool{New: func() any { return &kgo.Record{Value: make([]byte, 0, 512)} }}

// promise counts and logs a failed write, and recycles the record.
func (a *AuditLog) promise(r *kgo.Record, err error) {
	switch {
	case err == nil:
	case errors.Is(err, kgo.ErrMaxBuffered):
		a.dropped.Add(1)
	default:
		if a.failed.Add(1) == 1 {
			a.log.Warn("streams: audit log write failed (further failures are only counted)", "topic", r.Topic, "err", err)
		}
	}
	if cap(r.Value) <= 4<<10 {
		*r = kgo.Record{Value: r.Value[:0]}
		auditRecords.Put(r)
	}
}

// Flush waits for the records written so far to be acknowledged or fail.
func (a *AuditLog) Flush(ctx context.Context) error { return a.w.Flush(ctx) }

// Dropped counts records dropped because the client's buffer was full; Failed those the broker
// refused or that could not be encoded.
func (a *AuditLog) Dropped() int64 { return a.dropped.Load() }

// Failed counts records that could not be written.
func (a *AuditLog) Failed() int64 { return a.failed.Load() }

// ObservePublish records one published event (PublishObserver).
func (a *AuditLog) ObservePublish(system string, rec *kgo.Record, res Result, err error) {
	r := AuditRecord{Kind: AuditPublished, System: system, EventID: Header(rec, HeaderEventID), EventType: Header(rec, HeaderEventType),
		TenantID: string(rec.Key), CorrelationID: Header(rec, HeaderCorrelationID), Topic: rec.Topic, Partition: res.Partition,
		Offset: res.Offset, Outcome: publishOutcome(res, err), At: time.Now().UTC()}
	if res.Spooled || err != nil {
		r.Partition, r.Offset = -1, -1
	}
	if err != nil {
		r.Error = err.Error()
	}
	a.Write(r)
}

// Middleware returns the consumer middleware recording every run of the chain inside it (put it
// outermost, next to the metrics middleware). Runs abandoned by a shutdown or a lost partition
// are not recorded: the record is delivered again.
func (a *AuditLog) Middleware() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			obs, err, abandoned := observeChain(ctx, m, next)
			if abandoned {
				return err
			}
			r := AuditRecord{Kind: AuditHandled, System: a.w.system, Group: m.Group, EventType: obs.eventType, Topic: m.Record.Topic,
				Partition: m.Record.Partition, Offset: m.Record.Offset, Attempt: max(m.Attempt, 1), Outcome: obs.outcome,
				LatencyMs: float64(obs.latency.Microseconds()) / 1000, At: time.Now().UTC(), TenantID: string(m.Record.Key),
				EventID: Header(m.Record, HeaderEventID), CorrelationID: Header(m.Record, HeaderCorrelationID)}
			if env := m.Envelope; env != nil {
				r.EventID, r.TenantID, r.CorrelationID = env.EventID, env.Metadata.TenantID, env.Metadata.CorrelationID
			}
			if err != nil {
				r.Error = err.Error()
			} else if obs.detail != "" {
				r.Error = obs.detail
			}
			a.Write(r)
			return err
		}
	}
}

// appendJSON appends r as json.Marshal writes it, byte for byte (TestAuditRecordJSON); ok is false
// for what it leaves to json.Marshal (a latency json would write with an exponent, a time outside
// years 0-9999). Every event published is described by one, written in franz-go's promise
// goroutine, where json.Marshal's reflection cost a tenth of the publish path's CPU.
func (r *AuditRecord) appendJSON(b []byte) ([]byte, bool) {
	if abs := math.Abs(r.LatencyMs); abs != 0 && (abs < 1e-6 || abs >= 1e21 || math.IsNaN(abs)) || r.At.Year() < 0 || r.At.Year() > 9999 {
		return nil, false
	}
	str := func(key, v string) {
		b = append(b, key...)
		b = appendPlainString(b, v)
	}
	str(`{"kind":`, r.Kind)
	str(`,"system":`, r.System)
	if r.Group != "" {
		str(`,"group":`, r.Group)
	}
	str(`,"eventId":`, r.EventID)
	str(`,"eventType":`, r.EventType)
	str(`,"tenantId":`, r.TenantID)
	str(`,"correlationId":`, r.CorrelationID)
	str(`,"topic":`, r.Topic)
	b = strconv.AppendInt(append(b, `,"partition":`...), int64(r.Partition), 10)
	b = strconv.AppendInt(append(b, `,"offset":`...), r.Offset, 10)
	if r.Attempt != 0 {
		b = strconv.AppendInt(append(b, `,"attempt":`...), int64(r.Attempt), 10)
	}
	str(`,"outcome":`, r.Outcome)
	if r.LatencyMs != 0 {
		b = strconv.AppendFloat(append(b, `,"latencyMs":`...), r.LatencyMs, 'f', -1, 64)
	}
	b = append(r.At.AppendFormat(append(b, `,"at":"`...), time.RFC3339Nano), '"')
	if r.Error != "" {
		str(`,"error":`, r.Error)
	}
	return append(b, '}'), true
}

// appendPlainString is appendString with a fast path for text json.Marshal writes unescaped
// (printable ASCII but for " \ < > &), as the identifiers of an audit record are.
func appendPlainString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !jsonPlain[s[i]] {
			return appendString(b, s)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}

// jsonPlain marks the bytes json.Marshal writes in a string as they are.
var jsonPlain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
