package dlq

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"time"
)

// Unknown is the key under which List counts a dead letter with no event type, error class or
// tenant.
const Unknown = "(unknown)"

// Count is the number of dead letters with one key.
type Count struct {
	Key   string `json:"key"`
	Count int64  `json:"count"`
}

// Bucket is the number of dead letters dead-lettered in [Start, Start+bucket size).
type Bucket struct {
	Start time.Time `json:"start"`
	Count int64     `json:"count"`
}

// Summary counts dead letters. Counts are sorted by count, largest first, then by key; buckets by
// time.
type Summary struct {
	Topic string `json:"topic"`
	// Total counts the dead letters; Undecodable those whose value did not decode (0 when nothing
	// was decoded).
	Total       int64 `json:"total"`
	Undecodable int64 `json:"undecodable"`
	// First and Last are the earliest and latest dead-letter times (zero when Total is 0).
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
	// BucketSize is the width of the ByTime buckets; buckets start at multiples of it (UTC).
	BucketSize   string   `json:"bucketSize"`
	ByEventType  []Count  `json:"byEventType"`
	ByErrorClass []Count  `json:"byErrorClass"`
	ByTenant     []Count  `json:"byTenant"`
	ByTime       []Bucket `json:"byTime"`
}

// Aggregator counts dead letters into a Summary. Not safe for concurrent use.
type Aggregator struct {
	topic                   string
	bucket                  time.Duration
	total, undecodable      int64
	first, last             time.Time
	types, classes, tenants map[string]int64
	times                   map[time.Time]int64
}

// NewAggregator returns an empty Aggregator for dead letters of topic with time buckets of the
// given width (at least a second; smaller widths are raised to a second).
func NewAggregator(topic string, bucket time.Duration) *Aggregator {
	return &Aggregator{topic: topic, bucket: max(bucket, time.Second), types: map[string]int64{}, classes: map[string]int64{},
		tenants: map[string]int64{}, times: map[time.Time]int64{}}
}

// Add counts d.
func (a *Aggregator) Add(d *DeadLetter) {
	a.total++
	if d.DecodeErr != nil {
		a.undecodable++
	}
	if a.first.IsZero() || d.Time.Before(a.first) {
		a.first = d.Time
	}
	if d.Time.After(a.last) {
		a.last = d.Time
	}
	a.types[orUnknown(d.EventType)]++
	a.classes[orUnknown(d.ErrorClass)]++
	a.tenants[orUnknown(d.Tenant)]++
	a.times[d.Time.UTC().Truncate(a.bucket)]++
}

func orUnknown(s string) string {
	if s == "" {
		return Unknown
	}
	return s
}

// Summary returns the counts so far.
func (a *Aggregator) Summary() Summary {
	s := Summary{Topic: a.topic, Total: a.total, Undecodable: a.undecodable, First: a.first.UTC(), Last: a.last.UTC(),
		BucketSize: a.bucket.String(), ByEventType: counts(a.types), ByErrorClass: counts(a.classes), ByTenant: counts(a.tenants),
		ByTime: []Bucket{}}
	if a.total == 0 {
		s.First, s.Last = time.Time{}, time.Time{}
	}
	for _, t := range slices.SortedFunc(maps.Keys(a.times), time.Time.Compare) {
		s.ByTime = append(s.ByTime, Bucket{Start: t, Count: a.times[t]})
	}
	return s
}

func counts(m map[string]int64) []Count {
	out := make([]Count, 0, len(m))
	for k, n := range m {
		out = append(out, Count{Key: k, Count: n})
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(cmp.Compare(b.Count, a.Count), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// List counts the dead letters the filter selects (see Scan) in time buckets of the given width.
func (q *DLQ) List(ctx context.Context, f Filter, bucket time.Duration) (Summary, error) {
	a := NewAggregator(q.topic, bucket)
	_, err := q.Scan(ctx, f, func(d *DeadLetter) error { a.Add(d); return nil })
	return a.Summary(), err
}
