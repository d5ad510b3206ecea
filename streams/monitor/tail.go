package monitor

import (
	"net/url"
	"path"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// TailEntry is one recent event or audit record in the live tail.
type TailEntry struct {
	Time time.Time `json:"time"`
	// Kind is streams.AuditPublished or streams.AuditHandled; Outcome is a streams.Outcome* (an
	// event read from an event topic is published).
	Kind          string  `json:"kind"`
	Outcome       string  `json:"outcome"`
	System        string  `json:"system"`
	Group         string  `json:"group,omitempty"`
	EventID       string  `json:"eventId"`
	EventType     string  `json:"eventType"`
	TenantID      string  `json:"tenantId"`
	CorrelationID string  `json:"correlationId"`
	Attempt       int     `json:"attempt,omitempty"`
	LatencyMs     float64 `json:"latencyMs,omitempty"`
	Error         string  `json:"error,omitempty"`
	Topic         string  `json:"topic,omitempty"`
	Partition     int32   `json:"partition"`
	Offset        int64   `json:"offset"`
}

// Filter selects tail entries; empty fields select everything.
type Filter struct {
	Tenant string
	// Type is an event type or a glob of them ("reservation.*").
	Type          string
	CorrelationID string
}

// ParseFilter reads a Filter from the query parameters tenant, type and correlationId.
func ParseFilter(q url.Values) Filter {
	return Filter{Tenant: q.Get("tenant"), Type: q.Get("type"), CorrelationID: q.Get("correlationId")}
}

// Match reports whether f selects e.
func (f Filter) Match(e *TailEntry) bool {
	if f.Tenant != "" && e.TenantID != f.Tenant {
		return false
	}
	if f.CorrelationID != "" && e.CorrelationID != f.CorrelationID {
		return false
	}
	if f.Type != "" && e.EventType != f.Type {
		if ok, err := path.Match(f.Type, e.EventType); err != nil || !ok {
			return false
		}
	}
	return true
}

// ring keeps the last entries added.
type ring struct {
	buf  []TailEntry
	next int
	full bool
}

func newRing(n int) ring { return ring{buf: make([]TailEntry, n)} }

func (r *ring) add(e TailEntry) {
	if len(r.buf) == 0 {
		return
	}
	r.buf[r.next] = e
	r.next++
	if r.next == len(r.buf) {
		r.next, r.full = 0, true
	}
}

func (r *ring) len() int {
	if r.full {
		return len(r.buf)
	}
	return r.next
}

// newest returns up to limit entries f selects (all when limit <= 0), newest first by time, the
// most recently added first among equal times.
func (r *ring) newest(f Filter, limit int) []TailEntry {
	out := []TailEntry{}
	n := r.len()
	for i := 1; i <= n; i++ {
		e := &r.buf[(r.next-i+len(r.buf))%len(r.buf)]
		if f.Match(e) {
			out = append(out, *e)
		}
	}
	slices.SortStableFunc(out, func(a, b TailEntry) int { return b.Time.Compare(a.Time) })
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

// auditEntry decodes an audit record into a tail entry.
func auditEntry(r *kgo.Record) (TailEntry, error) {
	a, err := streams.ParseAuditRecord(r.Value)
	if err != nil {
		return TailEntry{}, err
	}
	return TailEntry{Time: a.At.UTC(), Kind: a.Kind, Outcome: a.Outcome, System: a.System, Group: a.Group, EventID: a.EventID, EventType: a.EventType,
		TenantID: a.TenantID, CorrelationID: a.CorrelationID, Attempt: a.Attempt, LatencyMs: a.LatencyMs, Error: a.Error,
		Topic: a.Topic, Partition: a.Partition, Offset: a.Offset}, nil
}
