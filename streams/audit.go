package streams

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

// AuditLog writes AuditRecords to the audit topic: every event a producer sends (every Producer
// has one, see PublishAudit; it is a PublishObserver) and every outcome of a consumer's chain (Middleware, outermost). Writes
// are asynchronous and never block the caller: when franz-go's buffer is full a record is dropped
// and counted (Dropped), and failed writes are logged and counted (Failed), because the audit log
// must not slow down or stop the event flow it describes. Safe for concurrent use.
type AuditLog struct {
	client  func() *kgo.Client // the client to write with now
	topic   string
	system  string
	log     *slog.Logger
	dropped atomic.Int64
	failed  atomic.Int64
}

// NewAuditLog returns the audit log of system, writing to topic through cl (a client the caller
// owns and closes after Flush).
func NewAuditLog(cl *kgo.Client, topic, system string, logger *slog.Logger) (*AuditLog, error) {
	if cl == nil || topic == "" || system == "" {
		return nil, fmt.Errorf("%w: NewAuditLog: client, topic and system are required", ErrConfig)
	}
	if logger == nil {
		logger = slog.Default()
	}
	return &AuditLog{client: func() *kgo.Client { return cl }, topic: topic, system: system, log: logger}, nil
}

// Write sends r without waiting.
func (a *AuditLog) Write(r AuditRecord) {
	b, err := json.Marshal(r)
	if err != nil {
		a.failed.Add(1)
		return
	}
	key := r.CorrelationID
	if key == "" {
		key = r.EventID
	}
	a.client().TryProduce(context.Background(), &kgo.Record{Topic: a.topic, Key: []byte(key), Value: b}, func(_ *kgo.Record, err error) {
		switch {
		case err == nil:
		case errors.Is(err, kgo.ErrMaxBuffered):
			a.dropped.Add(1)
		default:
			if a.failed.Add(1) == 1 {
				a.log.Warn("streams: audit log write failed (further failures are only counted)", "topic", a.topic, "err", err)
			}
		}
	})
}

// Flush waits for the records written so far to be acknowledged or fail.
func (a *AuditLog) Flush(ctx context.Context) error { return a.client().Flush(ctx) }

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
			r := AuditRecord{Kind: AuditHandled, System: a.system, Group: m.Group, EventType: obs.eventType, Topic: m.Record.Topic,
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
