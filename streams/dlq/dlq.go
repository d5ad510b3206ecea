// Package dlq reads, counts and redrives the dead letters of one hotelbus system.
//
// A system's consumer writes the events it gives up on to its dead-letter topic
// (topics.System.DeadLetterTopic) with the original key, value and headers plus the
// hotelbus.dlq.* headers (see streams.DeadLetters). Scan reads that topic up to the high-water
// marks taken when it starts, so it always finishes, and parses each record into a DeadLetter;
// Filter selects dead letters by event type (globs), error class, tenant, event id, time and exact
// position. List counts them by event type, error class, tenant and time bucket.
//
// Redrive writes a selection back to the system's redrive topic (topics.System.RedriveTopic), which
// the system's streams.Consumer reads with its event topics: key, value and headers unchanged (the
// hotelbus.dlq.* ones kept for provenance, earlier hotelbus.redrive.* ones replaced) plus
// streams.HeaderRedriveID, streams.HeaderRedriveSource, streams.HeaderRedriveAt and HeaderRedriveRun.
// The redrive id is derived from the run id and the dead letter's position (RedriveID), so a run
// repeated with the same run id after a crash writes the same ids, which the consumer's dedup
// handles once. A dead letter already redriven (its position found in a HeaderRedriveSource of the
// redrive topic) is skipped unless forced. The redrive topic is the record of what was redriven,
// when, and by which run.
package dlq

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Sentinel errors; test with errors.Is.
var (
	// ErrConfig: a setting or filter cannot work; the message names it by its command-line flag.
	ErrConfig = errors.New("dlq: invalid configuration")
	// ErrNotFound: no dead letter at the position asked for.
	ErrNotFound = errors.New("dlq: no such dead letter")
	// ErrNoMatch: Redrive's filter selected nothing, or an eventId or position it names explicitly
	// matched no dead letter; the message says which. Not retried: the selection is wrong.
	ErrNoMatch = errors.New("dlq: nothing selected")
)

// Config says where the cluster is and how dead letters are decoded.
type Config struct {
	// Brokers are the seed brokers (required); KafkaOptions adds connection options (SASL, TLS).
	Brokers      []string
	KafkaOptions []kgo.Opt
	// Serde decodes the values of scanned dead letters into DeadLetter.Envelope (nil: no decoding;
	// Redrive never decodes).
	Serde *streams.Serde
	// Now is the clock of redrive timestamps (nil: time.Now).
	Now func() time.Time
}

// DLQ is the dead-letter tooling of one system. Its methods are safe for concurrent use.
type DLQ struct {
	cat     *topics.Catalog
	system  string
	topic   string
	redrive string
	// eventTypes are the catalog's, for suggestions when an --event-type matched nothing.
	eventTypes []string
	cfg        Config
	cl         *kgo.Client
	adm        *kadm.Client
}

// New returns the DLQ of system, a system of cat that subscribes to events. It does not connect
// before a method needs the cluster; Close releases it.
func New(cat *topics.Catalog, system string, cfg Config) (*DLQ, error) {
	sys, err := cat.LookupSystem(system)
	if err != nil {
		return nil, fmt.Errorf("%w: --system: %w", ErrConfig, err)
	}
	if sys.DeadLetterTopic == "" || sys.RedriveTopic == "" {
		return nil, fmt.Errorf("%w: --system: %s subscribes to nothing: it has no dead-letter topic", ErrConfig, system)
	}
	if len(cfg.Brokers) == 0 {
		return nil, fmt.Errorf("%w: --brokers: no broker", ErrConfig)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cl, err := kgo.NewClient(cfg.base()...)
	if err != nil {
		return nil, fmt.Errorf("%w: kafka client: %v", ErrConfig, err)
	}
	return &DLQ{cat: cat, system: system, topic: sys.DeadLetterTopic, redrive: sys.RedriveTopic, eventTypes: cat.EventTypes(), cfg: cfg, cl: cl,
		adm: kadm.NewClient(cl)}, nil
}

func (c *Config) base() []kgo.Opt {
	return append([]kgo.Opt{kgo.SeedBrokers(c.Brokers...)}, c.KafkaOptions...)
}

// Close releases the DLQ's connections.
func (q *DLQ) Close() { q.cl.Close() }

// Topic returns the system's dead-letter topic.
func (q *DLQ) Topic() string { return q.topic }

// RedriveTopic returns the system's redrive topic.
func (q *DLQ) RedriveTopic() string { return q.redrive }

// Filter selects dead letters; a dead letter is selected when it passes every non-empty field.
type Filter struct {
	// EventTypes are globs in path.Match syntax ("reservation.*") matched against the event type.
	EventTypes []string
	// ErrorClasses are streams.Class* values.
	ErrorClasses []string
	// Tenants are record keys (tenantIds).
	Tenants []string
	// EventIDs are envelope event ids.
	EventIDs []string
	// From (included) and To (excluded) bound the time the record was dead-lettered (DeadLetter.Time).
	From, To time.Time
	// Refs select exact dead letters; a Ref without a topic names one of the system's dead-letter
	// topic, a Ref naming another topic is refused.
	Refs []Ref
}

// Empty reports whether f selects every dead letter.
func (f *Filter) Empty() bool {
	return len(f.EventTypes)+len(f.ErrorClasses)+len(f.Tenants)+len(f.EventIDs)+len(f.Refs) == 0 && f.From.IsZero() && f.To.IsZero()
}

// matcher is a validated Filter.
type matcher struct {
	f                     Filter
	classes, tenants, ids map[string]bool
	refs                  map[Ref]bool
	minOffset, maxOffset  map[int32]int64 // per partition, the range Refs spans
}

func set(vals []string) map[string]bool {
	if len(vals) == 0 {
		return nil
	}
	m := make(map[string]bool, len(vals))
	for _, v := range vals {
		m[v] = true
	}
	return m
}

func (q *DLQ) compile(f Filter) (*matcher, error) {
	for _, g := range f.EventTypes {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("%w: --event-type: %q: %v", ErrConfig, g, err)
		}
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return nil, fmt.Errorf("%w: --from %s is not before --to %s", ErrConfig, formatMillis(f.From), formatMillis(f.To))
	}
	m := &matcher{f: f, classes: set(f.ErrorClasses), tenants: set(f.Tenants), ids: set(f.EventIDs)}
	if len(f.Refs) > 0 {
		m.refs = map[Ref]bool{}
		m.minOffset, m.maxOffset = map[int32]int64{}, map[int32]int64{}
	}
	for _, r := range f.Refs {
		if r.Topic != "" && r.Topic != q.topic {
			return nil, fmt.Errorf("%w: %s is not in %s's dead-letter topic %s", ErrConfig, r, q.system, q.topic)
		}
		r.Topic = q.topic
		m.refs[r] = true
		if lo, ok := m.minOffset[r.Partition]; !ok || r.Offset < lo {
			m.minOffset[r.Partition] = r.Offset
		}
		m.maxOffset[r.Partition] = max(m.maxOffset[r.Partition], r.Offset)
	}
	return m, nil
}

// match reports whether d passes the filter.
func (m *matcher) match(d *DeadLetter) bool {
	f := &m.f
	switch {
	case m.refs != nil && !m.refs[d.Ref],
		m.classes != nil && !m.classes[d.ErrorClass],
		m.tenants != nil && !m.tenants[d.Tenant],
		m.ids != nil && !m.ids[d.EventID],
		!f.From.IsZero() && d.Time.Before(f.From),
		!f.To.IsZero() && !d.Time.Before(f.To):
		return false
	}
	if len(f.EventTypes) == 0 {
		return true
	}
	return slices.ContainsFunc(f.EventTypes, func(g string) bool { ok, _ := path.Match(g, d.EventType); return ok })
}

// ScanStats counts what a scan read.
type ScanStats struct {
	// Read counts the records read from the dead-letter topic; Matched those the filter selected.
	Read, Matched int64
}

// Scan calls fn with every dead letter the filter selects, in offset order within each partition,
// reading the dead-letter topic up to the high-water marks taken when it starts. Values are decoded
// when the Config has a Serde. It stops at fn's first error and returns it.
func (q *DLQ) Scan(ctx context.Context, f Filter, fn func(*DeadLetter) error) (ScanStats, error) {
	m, err := q.compile(f)
	if err != nil {
		return ScanStats{}, err
	}
	return q.scan(ctx, m, q.cfg.Serde, fn)
}

// Get returns the dead letter at ref (whose topic, when set, must be the dead-letter topic),
// decoded when the Config has a Serde, or an error wrapping ErrNotFound.
func (q *DLQ) Get(ctx context.Context, ref Ref) (*DeadLetter, error) {
	var out *DeadLetter
	_, err := q.Scan(ctx, Filter{Refs: []Ref{ref}}, func(d *DeadLetter) error { out = d; return nil })
	if err != nil {
		return nil, err
	}
	if out == nil {
		ref.Topic = q.topic
		return nil, fmt.Errorf("%w: %s", ErrNotFound, ref)
	}
	return out, nil
}

// span is the part [start, end) of one partition a scan reads.
type span struct {
	partition  int32
	start, end int64
}

// spans lists the partitions of the dead-letter topic with what the matcher needs read of them.
func (q *DLQ) spans(ctx context.Context, m *matcher) ([]span, error) {
	starts, ends, err := q.bounds(ctx, q.topic)
	if err != nil {
		return nil, err
	}
	var from kadm.ListedOffsets
	if !m.f.From.IsZero() {
		if from, err = q.adm.ListOffsetsAfterMilli(ctx, m.f.From.UnixMilli(), q.topic); err == nil {
			err = from.Error()
		}
		if err != nil {
			return nil, fmt.Errorf("dlq: listing offsets of %s at --from: %w", q.topic, err)
		}
	}
	var out []span
	ends.Each(func(e kadm.ListedOffset) {
		s := span{partition: e.Partition, end: e.Offset}
		if st, ok := starts.Lookup(e.Topic, e.Partition); ok {
			s.start = st.Offset
		}
		if fo, ok := from.Lookup(e.Topic, e.Partition); ok {
			s.start = max(s.start, fo.Offset)
		}
		if m.refs != nil {
			lo, ok := m.minOffset[e.Partition]
			if !ok {
				return
			}
			s.start, s.end = max(s.start, lo), min(s.end, m.maxOffset[e.Partition]+1)
		}
		if s.start < s.end {
			out = append(out, s)
		}
	})
	slices.SortFunc(out, func(a, b span) int { return int(a.partition - b.partition) })
	return out, nil
}

// bounds lists the log start and high-water mark of every partition of topic.
func (q *DLQ) bounds(ctx context.Context, topic string) (starts, ends kadm.ListedOffsets, err error) {
	if starts, err = q.adm.ListStartOffsets(ctx, topic); err == nil {
		err = listErr(starts, topic)
	}
	if err == nil {
		if ends, err = q.adm.ListEndOffsets(ctx, topic); err == nil {
			err = listErr(ends, topic)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dlq: listing offsets of %s: %w", topic, err)
	}
	return starts, ends, nil
}

func listErr(l kadm.ListedOffsets, topic string) error {
	if _, ok := l[topic]; !ok {
		return fmt.Errorf("topic %q does not exist (run `hotelbus topics apply`)", topic)
	}
	var first error
	l.Each(func(o kadm.ListedOffset) {
		switch {
		case o.Err == nil || first != nil:
		case errors.Is(o.Err, kerr.UnknownTopicOrPartition):
			first = fmt.Errorf("topic %q does not exist (run `hotelbus topics apply`)", o.Topic)
		default:
			first = fmt.Errorf("%s[%d]: %w", o.Topic, o.Partition, o.Err)
		}
	})
	return first
}

// scan reads the matcher's spans of the dead-letter topic and calls fn with each selected dead
// letter, decoding with serde when it is not nil.
func (q *DLQ) scan(ctx context.Context, m *matcher, serde *streams.Serde, fn func(*DeadLetter) error) (ScanStats, error) {
	var st ScanStats
	parts, err := q.spans(ctx, m)
	if err != nil {
		return st, err
	}
	err = readSpans(ctx, &q.cfg, q.topic, parts, func(r *kgo.Record) error {
		st.Read++
		d := parse(ctx, serde, r)
		if !m.match(d) {
			return nil
		}
		st.Matched++
		return fn(d)
	})
	return st, err
}

// readSpans reads every span of topic to its end and calls fn with each record, in offset order
// within a partition.
func readSpans(ctx context.Context, cfg *Config, topic string, parts []span, fn func(*kgo.Record) error) error {
	ranges := make(map[int32]streams.OffsetRange, len(parts))
	for _, p := range parts {
		ranges[p.partition] = streams.OffsetRange{Start: p.start, End: p.end}
	}
	if err := streams.ReadRanges(ctx, cfg.base(), topic, ranges, fn); err != nil {
		return fmt.Errorf("dlq: %w", err)
	}
	return nil
}

// Serde returns the Serde dead letters are decoded with (nil: none).
func (q *DLQ) Serde() *streams.Serde { return q.cfg.Serde }
