package replay

import (
	"context"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/hotelbus/hotelbus/topics"
)

// selection is what New resolved from the catalog: the topics to read and the event types to keep
// (nil: every type).
type selection struct {
	topics []string
	types  map[string]bool
}

func selectTopics(cat *topics.Catalog, c *Config) (selection, error) {
	var sel selection
	add := func(t string) {
		if !slices.Contains(sel.topics, t) {
			sel.topics = append(sel.topics, t)
		}
	}
	for _, s := range c.Systems {
		sys, err := cat.LookupSystem(s)
		if err != nil {
			return sel, fmt.Errorf("%w: --system: %w", ErrConfig, err)
		}
		for _, et := range sys.Publishes {
			if t, ok := cat.TopicFor(et); ok {
				add(t.Name)
			}
		}
	}
	if len(c.EventTypes) > 0 {
		sel.types = map[string]bool{}
		for _, g := range c.EventTypes {
			n := 0
			for _, et := range cat.EventTypes() {
				if ok, _ := path.Match(g, et); ok {
					sel.types[et] = true
					t, _ := cat.TopicFor(et)
					add(t.Name)
					n++
				}
			}
			if n == 0 {
				return sel, fmt.Errorf("%w: --event-type: %q matches no event type of the catalog", ErrConfig, g)
			}
		}
	}
	for _, t := range c.Topics {
		add(t)
	}
	if len(c.Systems)+len(c.EventTypes)+len(c.Topics) == 0 {
		for _, et := range cat.EventTypes() {
			if t, ok := cat.TopicFor(et); ok {
				add(t.Name)
			}
		}
	}
	slices.Sort(sel.topics)
	return sel, nil
}

// span is the part of one partition a replay reads: offsets [start, end).
type span struct {
	topic      string
	partition  int32
	start, end int64
}

// spans lists the partitions of the selected topics with their offset ranges: the end is the
// high-water mark now (or the first offset at or after To), the start the log start, FromOffset or
// the first offset at or after From. Partitions with nothing to read are left out.
func spans(ctx context.Context, adm *kadm.Client, names []string, c *Config) ([]span, error) {
	starts, err := adm.ListStartOffsets(ctx, names...)
	if err == nil {
		err = listErr(starts, names)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: listing start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, names...)
	if err == nil {
		err = listErr(ends, names)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: listing high-water marks: %w", err)
	}
	from, err := offsetsAt(ctx, adm, c.From, names)
	if err != nil {
		return nil, err
	}
	to, err := offsetsAt(ctx, adm, c.To, names)
	if err != nil {
		return nil, err
	}
	var out []span
	ends.Each(func(e kadm.ListedOffset) {
		s := span{topic: e.Topic, partition: e.Partition, end: e.Offset}
		if st, ok := starts.Lookup(e.Topic, e.Partition); ok {
			s.start = st.Offset
		}
		if f, ok := from.Lookup(e.Topic, e.Partition); ok {
			s.start = max(s.start, f.Offset)
		}
		if c.FromOffset >= 0 {
			s.start = max(s.start, c.FromOffset)
		}
		if t, ok := to.Lookup(e.Topic, e.Partition); ok {
			s.end = min(s.end, t.Offset)
		}
		if s.start < s.end {
			out = append(out, s)
		}
	})
	slices.SortFunc(out, func(a, b span) int {
		if c := strings.Compare(a.topic, b.topic); c != 0 {
			return c
		}
		return int(a.partition - b.partition)
	})
	return out, nil
}

// offsetsAt lists the first offset at or after t in every partition (the end offset where there is
// none); nil when t is zero.
func offsetsAt(ctx context.Context, adm *kadm.Client, t time.Time, names []string) (kadm.ListedOffsets, error) {
	if t.IsZero() {
		return nil, nil
	}
	l, err := adm.ListOffsetsAfterMilli(ctx, t.UnixMilli(), names...)
	if err == nil {
		err = listErr(l, names)
	}
	if err != nil {
		return nil, fmt.Errorf("replay: listing offsets at %s: %w", t.Format(time.RFC3339Nano), err)
	}
	return l, nil
}

// listErr returns the first partition error of a listing, naming a topic that does not exist.
func listErr(l kadm.ListedOffsets, names []string) error {
	for _, n := range names {
		if _, ok := l[n]; !ok {
			return fmt.Errorf("topic %q does not exist", n)
		}
	}
	var first error
	l.Each(func(o kadm.ListedOffset) {
		if o.Err == nil || first != nil {
			return
		}
		if errors.Is(o.Err, kerr.UnknownTopicOrPartition) {
			first = fmt.Errorf("topic %q does not exist", o.Topic)
			return
		}
		first = fmt.Errorf("%s[%d]: %w", o.Topic, o.Partition, o.Err)
	})
	return first
}
