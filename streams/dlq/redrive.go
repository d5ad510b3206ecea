package dlq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// HeaderRedriveRun names the redrive run that wrote a redriven record (RedriveOptions.RunID), so
// that the redrive topic tells which run redrove what.
const HeaderRedriveRun = "hotelbus.redrive.run"

// redrivePrefix starts every redrive header; a redriven record carries only the current redrive's.
const redrivePrefix = "hotelbus.redrive."

// redriveNamespace is the UUID namespace of redrive ids.
var redriveNamespace = uuid.MustParse("5d0f3c1e-8b7a-4e52-9a61-2f4b8c9d0e13")

// RedriveID returns the redrive id of the dead letter at source in the run runID: a name-based
// UUID (version 5) of both, so the same run always gives the same dead letter the same id and
// different runs give it different ids.
func RedriveID(runID string, source Ref) string {
	return uuid.NewSHA1(redriveNamespace, []byte(runID+"\n"+source.String())).String()
}

// Outcome is what Redrive did with one selected dead letter.
type Outcome string

// Outcomes.
const (
	// Redriven: written to the redrive topic and acknowledged by every in-sync replica.
	Redriven Outcome = "redriven"
	// WouldRedrive: a dry run selected it; nothing was written.
	WouldRedrive Outcome = "would-redrive"
	// Skipped: already redriven (by an earlier run, or by this run id before a crash) and not
	// forced, or forced but already redriven with this very redrive id.
	Skipped Outcome = "skipped"
	// Failed: the write failed; Error says why.
	Failed Outcome = "failed"
)

// Item is the outcome for one selected dead letter.
type Item struct {
	Outcome    Outcome `json:"outcome"`
	Source     Ref     `json:"source"`
	EventID    string  `json:"eventId"`
	EventType  string  `json:"eventType"`
	Tenant     string  `json:"tenant"`
	ErrorClass string  `json:"errorClass"`
	// RedriveID is the id this run gives the dead letter (HeaderRedriveID of the redriven record).
	RedriveID string `json:"redriveId"`
	// Target is where the redriven record was written (Redriven only).
	Target *Ref `json:"target,omitempty"`
	// Previous are the redrive ids of earlier redrives of the dead letter found in the redrive topic.
	Previous []string `json:"previous,omitempty"`
	Error    string   `json:"error,omitempty"`
}

// RedriveOptions says which dead letters to redrive and how.
type RedriveOptions struct {
	Filter Filter
	// DryRun reports what would be redriven and writes nothing.
	DryRun bool
	// Rate bounds the writes in events per second (0: unbounded).
	Rate float64
	// Force redrives dead letters already redriven by another run (with a new redrive id, so the
	// consumer handles them again).
	Force bool
	// RunID names the run ("": a new UUIDv7). Rerun an interrupted run with its id: what it wrote
	// is skipped, and what it wrote unacknowledged gets the same redrive ids, handled once.
	RunID string
	// OnItem, when set, is called with each item once its outcome is known, in scan order (offset
	// order within each dead-letter partition), from one goroutine at a time.
	OnItem func(Item)
}

// Report is what a redrive did.
type Report struct {
	RunID        string `json:"runId"`
	DryRun       bool   `json:"dryRun"`
	Topic        string `json:"topic"`
	RedriveTopic string `json:"redriveTopic"`
	// Scanned counts the dead letters read; Matched those the filter selected, which each end as
	// one of the four outcomes.
	Scanned      int64         `json:"scanned"`
	Matched      int64         `json:"matched"`
	Redriven     int64         `json:"redriven"`
	WouldRedrive int64         `json:"wouldRedrive"`
	Skipped      int64         `json:"skipped"`
	Failed       int64         `json:"failed"`
	Items        []Item        `json:"items"`
	Duration     time.Duration `json:"-"`
}

func (r *Report) add(it Item) {
	switch it.Outcome {
	case Redriven:
		r.Redriven++
	case WouldRedrive:
		r.WouldRedrive++
	case Skipped:
		r.Skipped++
	case Failed:
		r.Failed++
	}
	r.Items = append(r.Items, it)
}

// Redrive writes the dead letters the filter selects to the system's redrive topic (see the package
// documentation), skipping those already redriven unless forced, at most Rate per second, and
// reports every selected dead letter. The writes are idempotent and acknowledged by every in-sync
// replica; a tenant's dead letters keep their order. It returns an error when a write failed (the
// report says which) or ctx ended, and one wrapping ErrNoMatch when a non-empty filter selected
// nothing or an eventId or position it names matched no dead letter (the others are redriven).
func (q *DLQ) Redrive(ctx context.Context, o RedriveOptions) (Report, error) {
	started := time.Now()
	if o.Rate < 0 {
		return Report{}, fmt.Errorf("%w: --rate: %v is negative", ErrConfig, o.Rate)
	}
	m, err := q.compile(o.Filter)
	if err != nil {
		return Report{}, err
	}
	if o.RunID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return Report{}, fmt.Errorf("dlq: run id: %w", err)
		}
		o.RunID = id.String()
	}
	rep := Report{RunID: o.RunID, DryRun: o.DryRun, Topic: q.topic, RedriveTopic: q.redrive, Items: []Item{}}
	prior, err := q.redriven(ctx)
	if err != nil {
		return rep, err
	}
	// The records are written as the system that owns the redrive topic, through the SDK's writer
	// (ownership, identifier grammar, acks=all and idempotence, observers and audit as a publish).
	prod, err := streams.NewWriter(q.system, q.cat, streams.Brokers(q.cfg.Brokers...), streams.KafkaOptions(q.cfg.KafkaOptions...))
	if err != nil {
		return rep, fmt.Errorf("dlq: writer: %w", err)
	}

	type pending struct {
		item Item
		done chan struct{}
	}
	queue := make(chan *pending, 4096)
	var emitter sync.WaitGroup
	emitter.Add(1)
	go func() {
		defer emitter.Done()
		for p := range queue {
			<-p.done
			rep.add(p.item)
			if o.OnItem != nil {
				o.OnItem(p.item)
			}
		}
	}()

	var first time.Time
	var sent int64
	seenIDs, seenRefs := map[string]bool{}, map[Ref]bool{}
	st, scanErr := q.scan(ctx, m, nil, func(d *DeadLetter) error {
		seenIDs[d.EventID], seenRefs[d.Ref] = true, true
		p := &pending{done: make(chan struct{}), item: Item{Source: d.Ref, EventID: d.EventID, EventType: d.EventType,
			Tenant: d.Tenant, ErrorClass: d.ErrorClass, RedriveID: RedriveID(o.RunID, d.Ref), Previous: prior[d.Ref.String()]}}
		it := &p.item
		switch {
		case slices.Contains(it.Previous, it.RedriveID) || (len(it.Previous) > 0 && !o.Force):
			it.Outcome = Skipped
			close(p.done)
		case o.DryRun:
			it.Outcome = WouldRedrive
			close(p.done)
		default:
			if o.Rate > 0 {
				if first.IsZero() {
					first = time.Now()
				}
				if err := sleepUntil(ctx, first.Add(time.Duration(float64(sent)/o.Rate*float64(time.Second)))); err != nil {
					return err
				}
			}
			sent++
			prod.Write(ctx, q.redriveRecord(d, o.RunID, it.RedriveID), func(r streams.Result, err error) {
				if err != nil {
					it.Outcome, it.Error = Failed, err.Error()
				} else {
					it.Outcome, it.Target = Redriven, &Ref{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset}
				}
				close(p.done)
			})
		}
		queue <- p
		return nil
	})
	// Flush waits for every promise; Close fails those a canceled flush left pending, so the
	// emitter always ends.
	flushErr := prod.Close(ctx)
	close(queue)
	emitter.Wait()
	rep.Scanned, rep.Matched, rep.Duration = st.Read, st.Matched, time.Since(started)
	switch {
	case scanErr != nil:
		return rep, scanErr
	case flushErr != nil:
		return rep, fmt.Errorf("dlq: redrive run %s: waiting for acknowledgements: %w", rep.RunID, flushErr)
	case rep.Failed > 0:
		return rep, fmt.Errorf("dlq: redrive run %s: %d of %d writes failed (rerun with --run-id %s to finish it)",
			rep.RunID, rep.Failed, sent, rep.RunID)
	}
	return rep, q.unmatched(ctx, o.Filter, st, seenIDs, seenRefs)
}

// unmatched returns an error wrapping ErrNoMatch that names every eventId and position of f that
// no selected dead letter has, or says that f selected nothing at all; nil when f is empty (select
// everything) or every part of it matched.
func (q *DLQ) unmatched(ctx context.Context, f Filter, st ScanStats, ids map[string]bool, refs map[Ref]bool) error {
	var missing []string
	for _, id := range f.EventIDs {
		if !ids[id] && !slices.Contains(missing, "eventId "+id) {
			missing = append(missing, "eventId "+id)
		}
	}
	var parts map[int32][2]int64 // partition -> [log start, end), listed only when a position is missing
	for _, r := range f.Refs {
		r.Topic = q.topic
		if refs[r] {
			continue
		}
		if parts == nil {
			parts = map[int32][2]int64{}
			if starts, ends, err := q.bounds(ctx, q.topic); err == nil {
				ends.Each(func(e kadm.ListedOffset) {
					s, _ := starts.Lookup(e.Topic, e.Partition)
					parts[e.Partition] = [2]int64{s.Offset, e.Offset}
				})
			}
		}
		why := "not selected by the other filters"
		if b, ok := parts[r.Partition]; !ok {
			why = fmt.Sprintf("the topic has %d partitions, 0 to %d", len(parts), len(parts)-1)
		} else if r.Offset < b[0] || r.Offset >= b[1] {
			why = fmt.Sprintf("partition %d holds offsets %d to %d", r.Partition, b[0], b[1]-1)
			if b[0] >= b[1] {
				why = fmt.Sprintf("partition %d is empty", r.Partition)
			}
		}
		missing = append(missing, fmt.Sprintf("position %s (%s)", r, why))
	}
	switch {
	case len(missing) > 0:
		return fmt.Errorf("%w in %s: no dead letter has %s", ErrNoMatch, q.topic, strings.Join(missing, "; none has "))
	case st.Matched > 0 || f.Empty():
		return nil
	}
	hint := ""
	for _, g := range f.EventTypes {
		if !strings.ContainsAny(g, "*?[\\") && !slices.Contains(q.eventTypes, g) {
			hint += fmt.Sprintf(" (event type %q is not in the catalog%s)", g, topics.DidYouMean(g, q.eventTypes))
		}
	}
	return fmt.Errorf("%w in %s: none of the %d dead letters read matches the filter%s", ErrNoMatch, q.topic, st.Read, hint)
}

// redriveRecord is the record redriving d: its key, value and headers without earlier redrive
// headers, plus this redrive's.
func (q *DLQ) redriveRecord(d *DeadLetter, runID, redriveID string) *kgo.Record {
	headers := make([]kgo.RecordHeader, 0, len(d.Headers)+4)
	for _, h := range d.Headers {
		if !strings.HasPrefix(h.Key, redrivePrefix) {
			headers = append(headers, h)
		}
	}
	headers = append(headers,
		kgo.RecordHeader{Key: streams.HeaderRedriveID, Value: []byte(redriveID)},
		kgo.RecordHeader{Key: streams.HeaderRedriveSource, Value: []byte(d.Ref.String())},
		kgo.RecordHeader{Key: streams.HeaderRedriveAt, Value: []byte(formatMillis(q.cfg.Now()))},
		kgo.RecordHeader{Key: HeaderRedriveRun, Value: []byte(runID)})
	return &kgo.Record{Topic: q.redrive, Key: d.Key, Value: d.Value, Headers: headers}
}

// redriven reads the redrive topic up to its high-water marks and returns, per dead letter
// (HeaderRedriveSource), the redrive ids it was written with.
func (q *DLQ) redriven(ctx context.Context) (map[string][]string, error) {
	starts, ends, err := q.bounds(ctx, q.redrive)
	if err != nil {
		return nil, err
	}
	var parts []span
	ends.Each(func(e kadm.ListedOffset) {
		s := span{partition: e.Partition, end: e.Offset}
		if st, ok := starts.Lookup(e.Topic, e.Partition); ok {
			s.start = st.Offset
		}
		if s.start < s.end {
			parts = append(parts, s)
		}
	})
	out := map[string][]string{}
	err = readSpans(ctx, &q.cfg, q.redrive, parts, func(r *kgo.Record) error {
		if src := streams.Header(r, streams.HeaderRedriveSource); src != "" {
			out[src] = append(out[src], streams.Header(r, streams.HeaderRedriveID))
		}
		return nil
	})
	return out, err
}

// sleepUntil waits until t or the end of ctx.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("dlq: redrive: %w", ctx.Err())
	}
}
