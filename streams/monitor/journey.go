package monitor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// OutcomePending is the outcome Journey gives a subscriber of an event type (in the catalog) that
// has no audit record of handling the event yet; the audit topic never holds it.
const OutcomePending = "pending"

// Journey is everything the audit topic recorded about one correlation id: which events, published
// by whom, handled by which groups, when, and with what outcome.
type Journey struct {
	CorrelationID string `json:"correlationId"`
	// Events are sorted by publish time (first record when no publish was recorded).
	Events []JourneyEvent `json:"events"`
	// Systems lists every system that published or handled one of the events, sorted.
	Systems []string `json:"systems"`
	// Records are the audit records, sorted by time.
	Records []streams.AuditRecord `json:"records"`
	// Undecodable counts records with the correlation id as key that were not audit records.
	Undecodable int `json:"undecodable"`
}

// JourneyEvent is one event of a journey.
type JourneyEvent struct {
	EventID   string `json:"eventId"`
	EventType string `json:"eventType"`
	TenantID  string `json:"tenantId"`
	// Published is the first publish record (nil when none was recorded).
	Published *streams.AuditRecord `json:"published,omitempty"`
	// Deliveries has one entry per group that handled the event and per subscriber of its type (in
	// the catalog) with no record yet (Outcome OutcomePending), sorted by system.
	Deliveries []Delivery `json:"deliveries"`
}

// Delivery is the handling of one event by one system's group.
type Delivery struct {
	System string `json:"system"`
	Group  string `json:"group,omitempty"`
	// Outcome is the outcome of the latest record (streams.Outcome*, or OutcomePending).
	Outcome string `json:"outcome"`
	// Attempts is the highest attempt recorded; Runs counts the records (runs of the chain).
	Attempts int       `json:"attempts"`
	Runs     int       `json:"runs"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
	// LatencyMs is the latest record's latency.
	LatencyMs float64 `json:"latencyMs"`
	// Error is the latest record's error, or the error class of a dead letter.
	Error string `json:"error,omitempty"`
}

// BuildJourney assembles the journey of correlationID from audit records (others are ignored).
// The catalog names the subscribers that have not handled an event yet; nil leaves them out.
func BuildJourney(cat *topics.Catalog, correlationID string, recs []streams.AuditRecord) *Journey {
	j := &Journey{CorrelationID: correlationID, Events: []JourneyEvent{}, Systems: []string{}, Records: []streams.AuditRecord{}}
	for _, r := range recs {
		if r.CorrelationID == correlationID {
			j.Records = append(j.Records, r)
		}
	}
	slices.SortStableFunc(j.Records, func(a, b streams.AuditRecord) int { return a.At.Compare(b.At) })
	index := map[string]int{}
	deliveries := map[string]map[string]*Delivery{} // eventId -> system -> delivery
	for i := range j.Records {
		r := &j.Records[i]
		if !slices.Contains(j.Systems, r.System) {
			j.Systems = append(j.Systems, r.System)
		}
		k, ok := index[r.EventID]
		if !ok {
			k = len(j.Events)
			index[r.EventID] = k
			j.Events = append(j.Events, JourneyEvent{EventID: r.EventID, EventType: r.EventType, TenantID: r.TenantID})
			deliveries[r.EventID] = map[string]*Delivery{}
		}
		e := &j.Events[k]
		if r.Kind == streams.AuditPublished {
			if e.Published == nil {
				e.Published = r
			}
			continue
		}
		d := deliveries[r.EventID][r.System]
		if d == nil {
			d = &Delivery{System: r.System, Group: r.Group, First: r.At}
			deliveries[r.EventID][r.System] = d
		}
		d.Outcome, d.Last, d.LatencyMs, d.Error = r.Outcome, r.At, r.LatencyMs, r.Error
		d.Attempts = max(d.Attempts, r.Attempt)
		d.Runs++
	}
	for i := range j.Events {
		e := &j.Events[i]
		if cat != nil {
			for _, s := range cat.Systems {
				if _, seen := deliveries[e.EventID][s.Name]; !seen && slices.Contains(s.Subscribes, e.EventType) {
					deliveries[e.EventID][s.Name] = &Delivery{System: s.Name, Group: s.Group, Outcome: OutcomePending}
				}
			}
		}
		e.Deliveries = []Delivery{}
		for _, d := range deliveries[e.EventID] {
			e.Deliveries = append(e.Deliveries, *d)
		}
		slices.SortFunc(e.Deliveries, func(a, b Delivery) int { return cmp.Compare(a.System, b.System) })
	}
	slices.SortStableFunc(j.Events, func(a, b JourneyEvent) int { return eventTime(&a).Compare(eventTime(&b)) })
	slices.Sort(j.Systems)
	return j
}

// eventTime is when an event was published, or else first seen.
func eventTime(e *JourneyEvent) time.Time {
	if e.Published != nil {
		return e.Published.At
	}
	var first time.Time
	for _, d := range e.Deliveries {
		if !d.First.IsZero() && (first.IsZero() || d.First.Before(first)) {
			first = d.First
		}
	}
	return first
}

// ReadAudit reads the audit topic from the first record at or after from (zero: the log start) up
// to its end offsets when called, and returns the records whose key (the correlation id) keep
// accepts, decoded, and the number of those that were not audit records.
func ReadAudit(ctx context.Context, cl *kgo.Client, topic string, from time.Time, keep func(key []byte) bool) (_ []streams.AuditRecord, undecodable int, _ error) {
	adm := kadm.NewClient(cl)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: audit topic %s: end offsets: %w", topic, err)
	}
	var starts kadm.ListedOffsets
	if from.IsZero() {
		starts, err = adm.ListStartOffsets(ctx, topic)
	} else {
		starts, err = adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), topic)
	}
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: audit topic %s: start offsets: %w", topic, err)
	}
	ranges := map[int32]streams.OffsetRange{}
	starts.Each(func(o kadm.ListedOffset) {
		end, _ := ends.Lookup(topic, o.Partition)
		ranges[o.Partition] = streams.OffsetRange{Start: o.Offset, End: end.Offset}
	})
	var out []streams.AuditRecord
	err = streams.ReadRanges(ctx, cl.Opts(), topic, ranges, func(r *kgo.Record) error {
		if !keep(r.Key) {
			return nil
		}
		a, err := streams.ParseAuditRecord(r.Value)
		if err != nil {
			undecodable++
			return nil
		}
		out = append(out, a)
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("monitor: audit topic: %w", err)
	}
	return out, undecodable, nil
}

// ReadJourney reads the audit records of correlationID from the audit topic (see ReadAudit) and
// assembles its journey.
func ReadJourney(ctx context.Context, cl *kgo.Client, cat *topics.Catalog, correlationID string, from time.Time) (*Journey, error) {
	recs, undecodable, err := ReadAudit(ctx, cl, cat.AuditTopic, from, func(key []byte) bool { return string(key) == correlationID })
	if err != nil {
		return nil, err
	}
	j := BuildJourney(cat, correlationID, recs)
	j.Undecodable = undecodable
	return j, nil
}
