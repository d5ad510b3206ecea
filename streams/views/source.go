package views

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/topics"
)

const (
	minBackoff = 200 * time.Millisecond
	maxBackoff = 10 * time.Second
	// maxBatch bounds the records applied in one transaction.
	maxBatch = 5000
)

// run keeps the view up to date until ctx ends: it creates the changelog, restores from it when
// the store is empty, and reads the source partitions, starting over with backoff on any failure
// (Kafka down, the topic missing).
func (v *View) run(ctx context.Context) {
	bo := streams.Backoff{Initial: minBackoff, Max: maxBackoff}
	for ctx.Err() == nil {
		err := v.runOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		v.logOnce("views: view stopped; retrying", err)
		if bo.Wait(ctx) != nil {
			return
		}
	}
}

func (v *View) runOnce(ctx context.Context) error {
	parts, created, err := v.ensureChangelog(ctx)
	if err != nil {
		return err
	}
	if !v.restored {
		if err := v.restore(ctx, created); err != nil {
			return err
		}
	}
	return v.consume(ctx, parts)
}

// ensureChangelog returns the source topic's partition count and creates the view's changelog
// topic (compacted, as many partitions, the source topic's replication capped at the brokers
// there are) when it is missing, saying so; an existing one with fewer partitions is an error.
func (v *View) ensureChangelog(ctx context.Context) (parts int32, created bool, err error) {
	l := v.l
	cctx, cancel := context.WithTimeout(ctx, l.cfg.RequestTimeout)
	defer cancel()
	md, err := l.adm.Metadata(cctx, v.def.Topic, v.changelog)
	if err != nil {
		return 0, false, fmt.Errorf("views: metadata of %s: %w", v.def.Topic, err)
	}
	src, ok := md.Topics[v.def.Topic]
	if !ok || src.Err != nil || len(src.Partitions) == 0 {
		return 0, false, fmt.Errorf("views: source topic %s of %s is missing (run `hotelbus topics apply`): %v", v.def.Topic, v.def, src.Err)
	}
	n := int32(len(src.Partitions))
	if cl, ok := md.Topics[v.changelog]; ok && cl.Err == nil {
		if int32(len(cl.Partitions)) < n {
			return 0, false, fmt.Errorf("views: changelog %s has %d partitions, fewer than the %d of %s", v.changelog, len(cl.Partitions), n, v.def.Topic)
		}
		return n, false, nil
	}
	rf, minISR := int16(1), 1
	if t, ok := l.cfg.Catalog.Topic(v.def.Topic); ok {
		rf, minISR = t.ReplicationFactor, t.MinInsyncReplicas
	}
	rf = min(rf, int16(len(md.Brokers)))
	minISR = min(minISR, int(rf))
	ms := strconv.Itoa(minISR)
	compact := "compact"
	resp, err := l.adm.CreateTopic(cctx, n, rf, map[string]*string{"cleanup.policy": &compact, "min.insync.replicas": &ms}, v.changelog)
	if err == nil {
		err = resp.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return 0, false, fmt.Errorf("views: creating the changelog %s: %w", v.changelog, err)
	}
	if err == nil {
		l.cfg.Logger.Info("views: created the changelog topic", "view", v.def.String(), "topic", v.changelog, "partitions", n, "replicationFactor", rf)
	}
	return n, err == nil, nil
}

// consume reads every partition of the source topic from the stored positions (the first record
// where there is none) and applies what it reads, batch by batch, until ctx ends or a write fails.
// Reading and decoding the next batch (poll) runs while the current one is applied: the batches
// stay in order, and a batch's changes and positions are still one transaction.
func (v *View) consume(ctx context.Context, parts int32) error {
	l := v.l
	v.mu.Lock()
	offsets := map[int32]kgo.Offset{}
	for p := range parts {
		if o, ok := v.pos[p]; ok {
			offsets[p] = kgo.NewOffset().At(o)
		} else {
			offsets[p] = kgo.NewOffset().AtStart()
		}
	}
	v.mu.Unlock()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(l.cfg.Brokers...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{v.def.Topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500 * time.Millisecond)}, l.cfg.KafkaOptions...)...)
	if err != nil {
		return fmt.Errorf("views: Kafka client: %w", err)
	}
	defer cl.Close()
	pctx, stop := context.WithCancel(ctx)
	batches := make(chan *batch, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); defer close(batches); v.poll(pctx, cl, batches) }()
	defer func() {
		stop()
		for range batches { // unblock the reader; what it prepared is read again by the next client
		}
		wg.Wait()
	}()
	for b := range batches {
		if err := v.apply(ctx, b); err != nil {
			return err // the client is dropped: the next one starts at the stored positions
		}
	}
	return ctx.Err()
}

// poll reads and prepares batches into out until ctx ends. A partition stalled on a record the
// registry must decode first is sought back to it (which drops what the client buffered of it)
// before the next poll, after a pause.
func (v *View) poll(ctx context.Context, cl *kgo.Client, out chan<- *batch) {
	drained, cancelDrain := context.WithCancel(ctx)
	cancelDrain() // polls with it return only what is buffered
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return
		}
		// One transaction (and one changelog flush) per batch is its cost: take what else is
		// already buffered, up to maxBatch records, into the same one.
		for n := fs.NumRecords(); n < maxBatch && cl.BufferedFetchRecords() > 0; {
			more := cl.PollRecords(drained, maxBatch-n)
			if more.NumRecords() == 0 {
				break
			}
			n += more.NumRecords()
			fs = append(fs, more...)
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				v.logOnce("views: fetch error", fmt.Errorf("%s[%d]: %w", t, p, err))
			}
		})
		b := v.prepare(ctx, fs)
		select {
		case out <- b:
		case <-ctx.Done():
			return
		}
		if len(b.stalled) > 0 {
			seek := map[string]map[int32]kgo.EpochOffset{v.def.Topic: {}}
			for p, off := range b.stalled {
				seek[v.def.Topic][p] = kgo.EpochOffset{Epoch: -1, Offset: off}
			}
			cl.SetOffsets(seek)
			v.logOnce("views: the registry is unreachable; a partition waits for it", b.stallErr)
			if !sleep(ctx, time.Second) {
				return
			}
		}
	}
}

// change is one event to apply to an item.
type change struct {
	partition int32
	tenant    string
	key       string
	action    topics.Action
	data      json.RawMessage            // upsert
	fields    map[string]json.RawMessage // merge: data's top-level fields
	ts        time.Time
	eventID   string
	origin    Origin   // the event, for the fields of sealed
	sealed    []string // the top-level fields that hold sealed personal-data values
}

// batch is what one poll gives: the changes in order, the next offset of every partition read,
// the eventIds read, and the partitions that stopped at a record the registry must decode first.
type batch struct {
	changes  []change
	from     map[int32]int64 // the offset of the first record read of every partition
	pos      map[int32]int64
	ids      []string
	stalled  map[int32]int64
	stallErr error
}

// prepare decodes and checks the records of a poll (see the package documentation for what is
// skipped and what stalls a partition). Decoding, the main cost, runs on up to GOMAXPROCS
// goroutines; the results are taken in offset order.
func (v *View) prepare(ctx context.Context, fs kgo.Fetches) *batch {
	type decoded struct {
		c      *change
		reason string
		err    error
		skip   bool // a type the view does not read, known from its header
	}
	recs := fs.Records()
	out := make([]decoded, len(recs))
	workers := min(runtime.GOMAXPROCS(0), len(recs)/64+1)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(recs); i += workers {
				r := recs[i]
				if et := streams.Header(r, streams.HeaderEventType); et != "" {
					if _, feeds := v.def.Apply[et]; !feeds {
						out[i].skip = true
						continue
					}
				}
				out[i].c, out[i].reason, out[i].err = v.decode(ctx, r)
			}
		}()
	}
	wg.Wait()
	b := &batch{from: map[int32]int64{}, pos: map[int32]int64{}, stalled: map[int32]int64{}}
	for i, r := range recs {
		if _, stalled := b.stalled[r.Partition]; stalled {
			continue
		}
		d := out[i]
		switch {
		case d.skip:
			b.ids = append(b.ids, streams.Header(r, streams.HeaderEventID))
		case d.err != nil && streams.IsRetryable(d.err):
			b.stalled[r.Partition], b.stallErr = r.Offset, d.err
			continue
		case d.err != nil:
			v.skip(r, d.reason, d.err)
		case d.c != nil:
			b.changes = append(b.changes, *d.c)
			b.ids = append(b.ids, d.c.eventID)
		}
		if _, ok := b.from[r.Partition]; !ok {
			b.from[r.Partition] = r.Offset
		}
		b.pos[r.Partition] = r.Offset + 1
	}
	return b
}

// decode returns the change a record makes (nil when its type does not feed the view), or why it
// is skipped.
func (v *View) decode(ctx context.Context, r *kgo.Record) (*change, string, error) {
	s := v.l.serde
	env, err := s.Decode(ctx, r.Value)
	if err != nil {
		return nil, "undecodable", err
	}
	action, feeds := v.def.Apply[env.EventType]
	if !feeds {
		return nil, "", nil
	}
	if !idRe.MatchString(env.Metadata.TenantID) || env.Metadata.TenantID != string(r.Key) {
		return nil, "invalid-identifier", fmt.Errorf("%w: metadata.tenantId must match %s and equal the record key", ErrInvalid, idRe)
	}
	key, _ := env.Data[v.def.Key].(string)
	if !idRe.MatchString(key) {
		return nil, "invalid-key", fmt.Errorf("%w: data.%s must match %s", ErrInvalid, v.def.Key, idRe)
	}
	if env.EventID == "" {
		return nil, "invalid-identifier", fmt.Errorf("%w: no eventId", ErrInvalid)
	}
	data, err := s.DataJSON(env)
	if err != nil {
		return nil, "undecodable", err
	}
	c := &change{partition: r.Partition, tenant: env.Metadata.TenantID, key: key, action: action, data: data, ts: env.Timestamp, eventID: env.EventID,
		origin: Origin{EventID: env.EventID, EventType: env.EventType, Version: env.Version}}
	// A merge's fields are split here, on the decoding goroutines, not in apply's single one; an
	// upsert's only when it holds sealed values, to name the fields that do.
	hasSealed := bytes.Contains(data, sealedMark)
	if action == topics.Merge || hasSealed {
		fields, err := splitFields(data)
		if err != nil {
			return nil, "undecodable", err
		}
		if hasSealed {
			for k, raw := range fields {
				if bytes.Contains(raw, sealedMark) {
					c.sealed = append(c.sealed, k)
				}
			}
		}
		if action == topics.Merge {
			c.fields, c.data = fields, nil
		}
	}
	return c, "", nil
}

// sealedMark starts a sealed value in the data's JSON (a quote inside a clear string is escaped).
var sealedMark = []byte(`"` + privacy.Prefix)

func (v *View) skip(r *kgo.Record, reason string, err error) {
	v.l.cfg.Logger.Warn("views: record skipped", "view", v.def.String(), "reason", reason, "topic", r.Topic, "partition", r.Partition,
		"offset", r.Offset, "err", err)
	if v.l.m != nil {
		v.l.m.skipped.WithLabelValues(v.l.cfg.System, v.def.Name, reason).Inc()
	}
}

// apply folds a batch's changes into the items they touch (read in one transaction, each decoded
// and encoded once), writes each changed item to the changelog and, once the broker acknowledged
// every one, commits the items (in key order, which bbolt writes fastest) and the positions in one
// transaction.
func (v *View) apply(ctx context.Context, b *batch) error {
	if len(b.pos) == 0 {
		return nil
	}
	type touched struct {
		partition int32
		d         *draft
		dirty     bool
	}
	items := map[string]*touched{}
	var keys [][]byte
	for _, c := range b.changes {
		k := string(itemKey(c.tenant, c.key))
		if _, ok := items[k]; !ok {
			items[k] = nil
			keys = append(keys, []byte(k))
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	stored, err := v.l.st.gets(v.def.Name, keys)
	if err != nil {
		return fmt.Errorf("views: %s: %w", v.def, err)
	}
	for i, k := range keys {
		d, err := draftOf(stored[i])
		if err != nil {
			return fmt.Errorf("views: %s: %w", v.def, err)
		}
		items[string(k)] = &touched{d: d}
	}
	for _, c := range b.changes {
		t := items[string(itemKey(c.tenant, c.key))]
		changed, err := t.d.apply(&c)
		if err != nil {
			v.l.cfg.Logger.Warn("views: event not applied", "view", v.def.String(), "eventId", c.eventID, "err", err)
			continue
		}
		t.partition, t.dirty = c.partition, t.dirty || changed
		if v.l.m != nil && changed {
			v.l.m.applied.WithLabelValues(v.l.cfg.System, v.def.Name, string(c.action)).Inc()
		}
	}
	var ops []op
	var recs []*kgo.Record
	for _, k := range keys {
		t := items[string(k)]
		if !t.dirty {
			continue
		}
		val, err := t.d.encode()
		if err != nil {
			return err
		}
		ops = append(ops, op{key: k, value: val})
		tenant, key, _ := cut0(string(k))
		recs = append(recs, &kgo.Record{Topic: v.changelog, Partition: t.partition, Key: []byte(tenant + "/" + key), Value: val,
			Headers: []kgo.RecordHeader{{Key: HeaderSourceTopic, Value: []byte(v.def.Topic)}, {Key: HeaderSourcePartition, Value: partitionHeader(t.partition)},
				{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(b.from[t.partition], 10))}}})
	}
	if len(recs) > 0 {
		pctx, cancel := context.WithTimeout(ctx, v.l.cfg.RequestTimeout)
		_, err := v.l.writer.WriteSync(pctx, recs...)
		cancel()
		if err != nil {
			return fmt.Errorf("views: writing the changelog %s: %w", v.changelog, err)
		}
	}
	count, err := v.l.st.commit(v.def.Name, ops, b.pos, false)
	if err != nil {
		return fmt.Errorf("views: %s: committing: %w", v.def, err)
	}
	v.mu.Lock()
	for p, o := range b.pos {
		v.pos[p] = o
	}
	for _, id := range b.ids {
		v.seen.add(id)
	}
	// Reaching the end offsets listed last confirms the view was caught up when they were listed:
	// a batch applied between two checks must not leave the staleness at an older confirmation.
	if v.ends != nil && v.contactedAt.After(v.caughtUpAt) && v.lagLocked() == 0 {
		v.caughtUpAt = v.contactedAt
	}
	v.count = count
	close(v.changed)
	v.changed = make(chan struct{})
	v.mu.Unlock()
	return nil
}

// cut0 splits a stored item key into tenant and key.
func cut0(k string) (tenant, key string, ok bool) {
	for i := 0; i < len(k); i++ {
		if k[i] == 0 {
			return k[:i], k[i+1:], true
		}
	}
	return k, "", false
}

// check lists the source partitions' end offsets every CheckEvery: lag, staleness, readiness.
func (v *View) check(ctx context.Context) {
	tick := time.NewTicker(v.l.cfg.CheckEvery)
	defer tick.Stop()
	for {
		v.checkOnce(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (v *View) checkOnce(ctx context.Context) {
	cctx, cancel := context.WithTimeout(ctx, min(v.l.cfg.RequestTimeout, 3*time.Second))
	defer cancel()
	listed, err := v.l.adm.ListEndOffsets(cctx, v.def.Topic)
	if err == nil {
		err = listed.Error()
	}
	if err != nil {
		return
	}
	ends := map[int32]int64{}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	if len(ends) == 0 {
		return
	}
	now := time.Now()
	v.mu.Lock()
	v.ends, v.contactedAt = ends, now
	if v.startEnds == nil {
		v.startEnds = ends
	}
	if v.lagLocked() == 0 {
		v.caughtUpAt = now
	}
	if !v.ready && v.restored {
		ready := true
		for p, end := range v.startEnds {
			ready = ready && v.pos[p] >= end
		}
		v.ready = ready
	}
	save := v.caughtUpAt.Sub(v.savedFresh) >= 5*time.Second
	if save {
		v.savedFresh = v.caughtUpAt
	}
	fresh := v.caughtUpAt
	v.mu.Unlock()
	if save {
		_ = v.l.st.putFresh(v.def.Name, fresh)
	}
}
