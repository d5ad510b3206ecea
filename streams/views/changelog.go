package views

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// restoreBatch is how many changelog records a restore writes per transaction.
const restoreBatch = 5000

// restore empties the view's store and fills it from the changelog up to the end offsets listed
// first, then records, in the transaction that marks the restore done, the highest source position
// the changelog holds for each partition. A restore cut short (crash, Kafka gone) leaves no mark,
// and the next run starts it over. A changelog just created (empty) is not read.
func (v *View) restore(ctx context.Context, created bool) error {
	l := v.l
	start := time.Now()
	if err := l.st.reset(v.def.Name, v.def.Topic); err != nil {
		return fmt.Errorf("views: %s: resetting the store: %w", v.def, err)
	}
	if created {
		return v.finishRestore(start, 0, map[int32]int64{})
	}
	lctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout)
	starts, err := l.adm.ListStartOffsets(lctx, v.changelog)
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = l.adm.ListEndOffsets(lctx, v.changelog)
	}
	cancel()
	if err == nil {
		err = starts.Error()
	}
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("views: offsets of the changelog %s: %w", v.changelog, err)
	}
	ranges := map[int32]streams.OffsetRange{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(v.changelog, o.Partition)
		ranges[o.Partition] = streams.OffsetRange{Start: s.Offset, End: o.Offset}
	})
	pos := map[int32]int64{}
	var ops []op
	var n int
	opts := append([]kgo.Opt{kgo.SeedBrokers(l.cfg.Brokers...)}, l.cfg.KafkaOptions...)
	err = streams.ReadRanges(ctx, opts, v.changelog, ranges, func(r *kgo.Record) error {
		n++
		o, err := changelogOp(r)
		if err != nil {
			l.cfg.Logger.Warn("views: changelog record skipped", "view", v.def.String(), "partition", r.Partition, "offset", r.Offset, "err", err)
			return nil
		}
		p, off := sourcePosition(r)
		if off > pos[p] {
			pos[p] = off
		}
		ops = append(ops, o)
		if len(ops) == restoreBatch {
			if _, err := l.st.commit(v.def.Name, ops, nil, false); err != nil {
				return err
			}
			ops = ops[:0]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("views: restoring %s from %s: %w", v.def, v.changelog, err)
	}
	if _, err := l.st.commit(v.def.Name, ops, nil, false); err != nil {
		return fmt.Errorf("views: restoring %s: %w", v.def, err)
	}
	return v.finishRestore(start, n, pos)
}

// finishRestore marks the restore done with the source positions found, in one transaction.
func (v *View) finishRestore(start time.Time, records int, pos map[int32]int64) error {
	l := v.l
	count, err := l.st.commit(v.def.Name, nil, pos, true)
	if err != nil {
		return fmt.Errorf("views: restoring %s: %w", v.def, err)
	}
	v.mu.Lock()
	v.restored, v.count = true, count
	v.pos = pos
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
	l.cfg.Logger.Info("views: restored from the changelog", "view", v.def.String(), "records", records, "items", count,
		"took", time.Since(start).Round(time.Millisecond))
	if l.m != nil {
		l.m.restoreSeconds.WithLabelValues(l.cfg.System, v.def.Name).Set(time.Since(start).Seconds())
	}
	return nil
}

// changelogOp returns the store operation of a changelog record: its key "<tenantId>/<key>" and
// its value, an Item's JSON (nil: a tombstone).
func changelogOp(r *kgo.Record) (op, error) {
	tenant, key, ok := strings.Cut(string(r.Key), "/")
	if !ok || !idRe.MatchString(tenant) || !idRe.MatchString(key) {
		return op{}, fmt.Errorf("%w: key is not <tenantId>/<key>", ErrInvalid)
	}
	if r.Value != nil {
		var it Item
		if err := json.Unmarshal(r.Value, &it); err != nil || it.Key != key {
			return op{}, fmt.Errorf("%w: value is not the item of its key", ErrInvalid)
		}
	}
	return op{key: itemKey(tenant, key), value: r.Value}, nil
}

// sourcePosition returns the source partition a changelog record names and the offset where the
// batch that wrote it began.
func sourcePosition(r *kgo.Record) (int32, int64) {
	p, err1 := strconv.ParseInt(streams.Header(r, HeaderSourcePartition), 10, 32)
	off, err2 := strconv.ParseInt(streams.Header(r, HeaderSourceOffset), 10, 64)
	if err1 != nil || err2 != nil {
		return r.Partition, 0
	}
	return int32(p), off
}
