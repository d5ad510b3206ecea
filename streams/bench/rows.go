package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/replay"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/topics"
)

var discard = slog.New(slog.DiscardHandler)

// firstLast records the times of the first and last of a count of events.
type firstLast struct {
	mu          sync.Mutex
	first, last time.Time
	n           int
}

func (f *firstLast) add(k int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if f.first.IsZero() {
		f.first = now
	}
	f.last = now
	f.n += k
	return f.n
}

func (f *firstLast) rate() float64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return rate(f.n, f.last.Sub(f.first))
}

// produceConsume measures the produce rows with simulated traffic, then reads the three sides'
// records back for the consume and dedup-roundtrips rows.
func (r *run) produceConsume(ctx context.Context) ([]Row, error) {
	n := r.sz.produce
	g, err := simulate.New(r.cat, r.set, simulate.Options{Seed: rand.Int64(), Tenants: 50, Skew: 1.1, Start: time.Now()})
	if err != nil {
		return nil, err
	}
	next := func() []*simulate.Event {
		evs := make([]*simulate.Event, n)
		for i := range evs {
			evs[i] = g.Next()
		}
		return evs
	}
	generic, typedEvents := next(), next()
	typed, err := r.typedOf(ctx, typedEvents)
	if err != nil {
		return nil, err
	}
	raw := make([]*kgo.Record, n)
	for i, ev := range next() {
		if raw[i], err = r.serde.Record(ctx, ev.Envelope); err != nil { // registers every schema first
			return nil, err
		}
	}
	cl, err := r.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// No side pays for the run's new topics electing leaders, nor for its clients' first
	// connection and producer id: the SDK publishes the first event of each system (publishWith),
	// raw franz-go its first record, before the clocks start.
	if err := r.awaitLeaders(ctx); err != nil {
		return nil, err
	}
	if err := cl.ProduceSync(ctx, raw[0]).FirstErr(); err != nil {
		return nil, fmt.Errorf("raw franz-go: %w", err)
	}
	pubs, typedPubs := r.publishers(r.serde), r.publishers(r.serde) // producers of each side's own
	defer pubs.close()
	defer typedPubs.close()
	// The sides one after the other, each all its events: rounds of a few thousand events would
	// time the acknowledgement's latency more than the raw side's throughput.
	type side struct {
		publish func() (int, time.Duration, error)
		timed   int
		took    time.Duration
		cpu     int64 // ns
	}
	sides := []*side{
		{publish: func() (int, time.Duration, error) { return pubs.publish(ctx, generic) }},
		{publish: func() (int, time.Duration, error) { return typedPubs.publishTyped(ctx, typedEvents, typed) }},
		{publish: func() (int, time.Duration, error) { return produceRaw(ctx, cl, raw[1:]) }},
	}
	for _, sd := range sides {
		runtime.GC() // the previous side's garbage is not collected on this side's time
		cpu0 := processCPU()
		if sd.timed, sd.took, err = sd.publish(); err != nil {
			return nil, err
		}
		sd.cpu = processCPU() - cpu0
	}
	rawRate := rate(sides[2].timed, sides[2].took)
	var rows []Row
	for k, sdk := range []struct{ name, measure string }{{"produce", "SDK PublishAsync"}, {"produce-typed", "SDK PublishAsync of generated types"}} {
		rw := row(sdk.name, sdk.measure, rate(sides[k].timed, sides[k].took), "raw franz-go, same bytes", rawRate, "events/s", "higher", "≥ 0.7")
		rw.Note = "SDK: 2 records per event (its audit record), raw: 1"
		if sides[k].cpu > 0 && sides[2].cpu > 0 { // 0 where the platform does not tell (processCPU)
			// This process's CPU per event: what the SDK costs the publisher, less sensitive than the
			// rates to a broker on the same cores.
			rw.Note += fmt.Sprintf("; this process's CPU per event: %.1f µs SDK, %.1f µs raw",
				float64(sides[k].cpu)/float64(sides[k].timed)/1e3, float64(sides[2].cpu)/float64(sides[2].timed)/1e3)
		}
		rows = append(rows, rw)
	}
	consume, err := r.consume(ctx, 3*n)
	if err != nil {
		return nil, err
	}
	return append(rows, consume...), nil
}

// produceRaw produces recs with raw franz-go and returns how many and how long they took, from the
// first call to the last acknowledgement.
func produceRaw(ctx context.Context, cl *kgo.Client, recs []*kgo.Record) (int, time.Duration, error) {
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, rec := range recs {
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	took := time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		return 0, 0, fmt.Errorf("raw franz-go: %w", err)
	}
	return len(recs), took, nil
}

// publishers publish events through a Producer per owning system over one Serde.
type publishers struct {
	r     *run
	serde *streams.Serde
	by    map[string]*streams.Producer
}

func (r *run) publishers(serde *streams.Serde) *publishers {
	return &publishers{r: r, serde: serde, by: map[string]*streams.Producer{}}
}

// publish publishes events with PublishAsync and returns how many it timed and how long they took,
// from the first call to the last acknowledgement. A system's first event is published alone and
// not timed: its producer's first connection and producer id are not the path measured.
func (p *publishers) publish(ctx context.Context, events []*simulate.Event) (int, time.Duration, error) {
	return p.publishWith(ctx, events, func(pr *streams.Producer, i int, done func(streams.Result, error)) {
		pr.PublishAsync(ctx, events[i].Envelope, done)
	})
}

// publishTyped is publish of the events' typed values (typed[i] is events[i]'s data) with
// streams.PublishAsync.
func (p *publishers) publishTyped(ctx context.Context, events []*simulate.Event, typed []streams.Event) (int, time.Duration, error) {
	return p.publishWith(ctx, events, func(pr *streams.Producer, i int, done func(streams.Result, error)) {
		streams.PublishAsync(ctx, pr, events[i].Envelope.Metadata.TenantID, typed[i], done)
	})
}

// publishWith is publish with send publishing events[i] through the producer of its system.
func (p *publishers) publishWith(ctx context.Context, events []*simulate.Event, send func(pr *streams.Producer, i int, done func(streams.Result, error))) (int, time.Duration, error) {
	var timed []int
	for i, ev := range events {
		if p.by[ev.System] != nil {
			timed = append(timed, i)
			continue
		}
		pr, err := streams.NewProducer(ev.System, p.serde, p.r.producerOpts()...)
		if err != nil {
			return 0, 0, err
		}
		p.by[ev.System] = pr
		first := make(chan error, 1)
		send(pr, i, func(_ streams.Result, err error) { first <- err })
		if err := <-first; err != nil {
			return 0, 0, fmt.Errorf("publishing: %w", err)
		}
	}
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, i := range timed {
		wg.Add(1)
		send(p.by[events[i].System], i, func(_ streams.Result, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return 0, 0, fmt.Errorf("publishing: %w", err)
	}
	return len(timed), time.Since(start), nil
}

// typedOf returns the data of each event as its generated type (streams/events), read back by
// hamba/avro from the event's encoding.
func (r *run) typedOf(ctx context.Context, evs []*simulate.Event) ([]streams.Event, error) {
	out := make([]streams.Event, len(evs))
	for i, ev := range evs {
		v, ok := r.serde.Schemas().Version(ev.Envelope.EventType, ev.Envelope.Version)
		if !ok {
			return nil, fmt.Errorf("bench: no schema %s %s", ev.Envelope.EventType, ev.Envelope.Version)
		}
		typed, ok := events.New(v.EventType, v.Major).(streams.Event)
		if !ok || typed.EventVersion() != v.String() {
			return nil, fmt.Errorf("bench: no generated type of %s %s", v.EventType, v)
		}
		rec, err := r.serde.Record(ctx, ev.Envelope)
		if err != nil {
			return nil, err
		}
		holder := struct {
			Data any `avro:"data"`
		}{Data: typed}
		if err := avro.Unmarshal(v.Envelope, rec.Value[5:], &holder); err != nil { // after the wire format's magic byte and schema id
			return nil, fmt.Errorf("bench: %s %s into %T: %w", v.EventType, v, typed, err)
		}
		out[i] = typed
	}
	return out, nil
}

func (p *publishers) close() {
	for _, pr := range p.by {
		_ = pr.Close(context.Background())
	}
}

// awaitLeaders waits until every partition of the run's topics has a leader (new topics elect
// theirs after they are created), for at most a minute.
func (r *run) awaitLeaders(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		md, err := r.adm.Metadata(ctx, r.topics...)
		ready := err == nil
		for _, t := range md.Topics {
			for _, p := range t.Partitions {
				ready = ready && t.Err == nil && p.Err == nil && p.Leader >= 0
			}
		}
		if ready {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: waiting for the leaders of the run's topics: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// countingPreparer counts the batches passed to a BatchPreparer.
type countingPreparer struct {
	streams.BatchPreparer
	batches atomic.Int64
}

func (c *countingPreparer) Prepare(ctx context.Context, batch []*streams.Message) error {
	c.batches.Add(1)
	return c.BatchPreparer.Prepare(ctx, batch)
}

// consume reads the total records of the run's event topics with hotel-common's consumer (it
// subscribes to every type) with Redis dedup and a no-op handler, decoding every record into the
// map form; then again through other groups, decoding into the generated types, and with
// LazyDecode (the no-op handler never asks for the event); then with raw franz-go.
func (r *run) consume(ctx context.Context, total int) ([]Row, error) {
	hb, d, batches, err := r.consumeRate(ctx, r.cat, r.serde, total, false, "")
	if err != nil {
		return nil, err
	}
	typed, _, _, err := r.consumeRate(ctx, r.cat, r.serde, total, true, ".typed")
	if err != nil {
		return nil, err
	}
	lazy, _, _, err := r.consumeRate(ctx, r.cat, r.serde, total, false, ".lazy", streams.LazyDecode())
	if err != nil {
		return nil, err
	}

	var names []string
	for _, t := range r.cat.Topics {
		if t.Kind == topics.KindEvents {
			names = append(names, t.Name)
		}
	}
	var raw firstLast
	raw.add(0)
	cl, err := r.client(kgo.ConsumeTopics(names...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	rctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for got := 0; got < total; {
		fs := cl.PollFetches(rctx)
		if err := rctx.Err(); err != nil {
			return nil, fmt.Errorf("raw consumer: %d of %d records: %w", got, total, err)
		}
		if k := fs.NumRecords(); k > 0 {
			got = raw.add(k)
		}
	}
	trips := row("dedup-roundtrips", "dedup check round trips per batch", float64(d.RoundTrips())/batches,
		"events per batch (a round trip each)", float64(total)/batches, "per batch", "lower", "1 trip/batch")
	trips.Note = fmt.Sprintf("done marks: %.2f round trips per batch", float64(d.DoneRoundTrips())/batches)
	return []Row{
		row("consume", "runtime + Redis dedup, no-op handler", hb, "raw franz-go consume", raw.rate(), "events/s", "higher", "≥ 0.5"),
		row("consume-typed", "the same, into the generated types (streams.HandleEvent)", typed, "raw franz-go consume", raw.rate(), "events/s", "higher", "≥ 0.5"),
		row("consume-lazy", "the same, LazyDecode (not decoded)", lazy, "raw franz-go consume", raw.rate(), "events/s", "higher", "≥ 0.5"),
		trips,
	}, nil
}

// consumeRate handles the total records of the event topics of cat with hotel-common's consumer
// over serde through its group (plus suffix, with dedup keys of its own), with handlers of the
// newest major of each type in the map form or, when typed, in its generated type, and returns the
// rate from the first handler call to the last, the Dedup, and the batches prepared.
func (r *run) consumeRate(ctx context.Context, cat *topics.Catalog, serde *streams.Serde, total int, typed bool, suffix string, opts ...streams.ConsumerOption) (float64, *streams.Dedup, float64, error) {
	sys, _ := cat.System("hotel-common")
	d, err := streams.NewDedup(r.env.Redis, sys.Group+suffix)
	if err != nil {
		return 0, nil, 0, err
	}
	prep := &countingPreparer{BatchPreparer: d}
	var fl firstLast
	all := make(chan struct{})
	opts = append(append(r.consumerOpts(), streams.Logger(discard), streams.Use(d.Middleware()), streams.UsePreparer(prep)), opts...)
	if suffix != "" {
		opts = append(opts, streams.Group(sys.Group+suffix))
	}
	c, err := streams.NewConsumer(sys.Name, serde, opts...)
	if err != nil {
		return 0, nil, 0, err
	}
	handler := func(context.Context, *streams.Message) error {
		if fl.add(1) == total {
			close(all)
		}
		return nil
	}
	for _, et := range sys.Subscribes {
		v, ok := serde.Schemas().Latest(et)
		if !typed || !ok {
			c.HandleType(et, handler)
			continue
		}
		streams.HandleEvent(c, func() streams.Event { e, _ := events.New(et, v.Major).(streams.Event); return e },
			func(ctx context.Context, m *streams.Message, _ streams.Event) error { return handler(ctx, m) })
	}
	if err := runUntil(ctx, c, all, 5*time.Minute); err != nil {
		return 0, nil, 0, fmt.Errorf("consumer runtime%s: %d of %d events: %w", suffix, fl.n, total, err)
	}
	return fl.rate(), d, float64(max(prep.batches.Load(), 1)), nil
}

// runUntil runs c until done is closed, then closes it; it fails after timeout or when Run ends
// early.
func runUntil(ctx context.Context, c *streams.Consumer, done <-chan struct{}, timeout time.Duration) error {
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	stop := func() error {
		cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := c.Close(cctx)
		if rerr := <-ran; rerr != nil && !errors.Is(rerr, streams.ErrClosed) && err == nil {
			err = rerr
		}
		return err
	}
	select {
	case <-done:
		return stop()
	case err := <-ran:
		ran <- err
		_ = stop()
		return fmt.Errorf("consumer stopped: %v", err)
	case <-time.After(timeout):
		_ = stop()
		return fmt.Errorf("timed out after %s", timeout)
	case <-ctx.Done():
		_ = stop()
		return ctx.Err()
	}
}

// keyOrdering handles 1,000 tenants' events on a one-partition topic with a 2 ms handler, key-ordered
// (default bounds) and then partition-serial.
func (r *run) keyOrdering(ctx context.Context) ([]Row, error) {
	ordered, err := r.orderedRate(ctx, "ko.", r.sz.orderedPer)
	if err != nil {
		return nil, err
	}
	serial, err := r.orderedRate(ctx, "ks.", r.sz.serialPer, streams.MaxInFlightPerPartition(1))
	if err != nil {
		return nil, err
	}
	return []Row{row("key-ordering", "key-ordered, 1000 keys, 2ms handler", ordered, "partition-serial", serial, "events/s", "higher", "≥ 20")}, nil
}

func (r *run) orderedRate(ctx context.Context, sub string, perTenant int, opts ...streams.ConsumerOption) (float64, error) {
	_, serde, err := r.catalog(ctx, sub, 1)
	if err != nil {
		return 0, err
	}
	const tenants = 1000
	v, _ := r.set.Latest("service.ordered")
	base, err := serde.ParseJSON(v.Example)
	if err != nil {
		return 0, err
	}
	p, err := streams.NewProducer("hotel-saas", serde, r.producerOpts()...)
	if err != nil {
		return 0, err
	}
	envs := make([]*streams.Envelope, 0, tenants*perTenant)
	for range perTenant {
		for tn := range tenants {
			env := *base
			env.EventID, env.Metadata.TenantID, env.Metadata.CorrelationID = uuid.NewString(), fmt.Sprintf("tenant-%04d", tn), ""
			envs = append(envs, &env)
		}
	}
	_, err = p.PublishBatch(ctx, envs)
	_ = p.Close(context.Background())
	if err != nil {
		return 0, err
	}
	total := len(envs)
	var fl firstLast
	all := make(chan struct{})
	c, err := streams.NewConsumer("hotel-pms", serde, append(append(r.consumerOpts(), streams.Logger(discard)), opts...)...)
	if err != nil {
		return 0, err
	}
	c.HandleType("service.ordered", func(context.Context, *streams.Message) error {
		fl.add(0)
		time.Sleep(2 * time.Millisecond)
		if fl.add(1) == total {
			close(all)
		}
		return nil
	})
	if err := runUntil(ctx, c, all, 5*time.Minute); err != nil {
		return 0, fmt.Errorf("%d of %d events: %w", fl.n, total, err)
	}
	return fl.rate(), nil
}

// dedupThroughput runs the dedup protocol (check in one pipeline per batch, a no-op handler, done
// marks) outside a consumer, against pipelined SET NX PX of as many keys.
func (r *run) dedupThroughput(ctx context.Context) ([]Row, error) {
	batch, total := r.sz.dedupBatch, r.sz.dedupEvents
	d, err := streams.NewDedup(r.env.Redis, r.prefix+"dedup")
	if err != nil {
		return nil, err
	}
	mw := d.Middleware()(func(context.Context, *streams.Message) error { return nil })
	start := time.Now()
	for done := 0; done < total; done += batch {
		msgs := make([]*streams.Message, batch)
		for i := range msgs {
			msgs[i] = &streams.Message{Envelope: &streams.Envelope{EventID: uuid.NewString()}, Record: &kgo.Record{}, Group: r.prefix + "dedup"}
		}
		if err := d.Prepare(ctx, msgs); err != nil {
			return nil, err
		}
		var wg sync.WaitGroup
		errs := make([]error, len(msgs))
		for i, m := range msgs {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = mw(ctx, m) }()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	dedupRate := rate(total, time.Since(start))
	key := "hotelbus:bench:{" + r.prefix + "}:"
	start = time.Now()
	for done := 0; done < total; done += batch {
		pipe := r.env.Redis.Pipeline()
		for range batch {
			pipe.SetNX(ctx, key+uuid.NewString(), "x", time.Minute)
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return nil, err
		}
	}
	setRate := rate(total, time.Since(start))
	rw := row("dedup-throughput", fmt.Sprintf("dedup check + done, batches of %d", batch), dedupRate,
		fmt.Sprintf("pipelined SET NX PX (-P %d)", batch), setRate, "events/s", "higher", "")
	rw.Note = "the dedup keys expire with the done TTL; the SET NX keys after a minute"
	return []Row{rw}, nil
}

// replayRow replays the run's reservations topic to JSONL and reads it raw with kcat.
func (r *run) replayRow(ctx context.Context) ([]Row, error) {
	tp, _ := r.cat.TopicFor("reservation.created")
	kcat := r.kcatPath()
	if kcat == "" {
		return []Row{{Name: "replay", Measure: "replay to JSONL", Baseline: "kcat -C -e", Unit: "records/s", Better: "higher",
			Skipped: true, Note: "kcat not found (install kcat, or pass its path)"}}, nil
	}
	if len(r.env.KafkaOptions) > 0 {
		return []Row{{Name: "replay", Measure: "replay to JSONL", Baseline: "kcat -C -e", Unit: "records/s", Better: "higher",
			Skipped: true, Note: "the kcat baseline does not take the SASL/TLS options"}}, nil
	}
	cfg := replay.DefaultConfig()
	cfg.Brokers, cfg.Topics, cfg.Stdout = r.env.Brokers, []string{tp.Name}, io.Discard
	rp, err := replay.New(r.serde, r.cat, cfg)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	sum, err := rp.Run(ctx)
	if err != nil {
		return nil, err
	}
	replayRate := rate(int(sum.Written), time.Since(start))
	start = time.Now()
	cmd := exec.CommandContext(ctx, kcat, "-C", "-b", strings.Join(r.env.Brokers, ","), "-t", tp.Name, "-o", "beginning", "-e", "-q", "-f", "%o\n")
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("kcat: %w", err)
	}
	lines := 0
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines++
	}
	if err := cmd.Wait(); err != nil {
		return nil, fmt.Errorf("kcat: %w: %s", err, stderr.String())
	}
	kcatRate := rate(lines, time.Since(start))
	if int64(lines) != sum.Read {
		return nil, fmt.Errorf("kcat read %d records of %s, replay %d", lines, tp.Name, sum.Read)
	}
	rw := row("replay", "hotelbus replay to JSONL", replayRate, "kcat -C -e raw read", kcatRate, "records/s", "higher", "")
	rw.Note = fmt.Sprintf("%d records; both include process or client start", lines)
	return []Row{rw}, nil
}
