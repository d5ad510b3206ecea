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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
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

// produceConsume measures the produce row with simulated traffic, then reads both sides' records
// back for the consume and dedup-roundtrips rows.
func (r *run) produceConsume(ctx context.Context) ([]Row, error) {
	n := r.sz.produce
	g, err := simulate.New(r.cat, r.set, simulate.Options{Seed: rand.Int64(), Tenants: 50, Skew: 1.1, Start: time.Now()})
	if err != nil {
		return nil, err
	}
	sdk := make([]*simulate.Event, n)
	for i := range sdk {
		sdk[i] = g.Next()
	}
	raw := make([]*kgo.Record, n)
	for i := range raw {
		if raw[i], err = r.serde.Record(ctx, g.Next().Envelope); err != nil { // registers every schema first
			return nil, err
		}
	}
	cl, err := r.client(kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.SnappyCompression(), kgo.NoCompression()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	// Neither side pays for the run's new topics electing leaders, nor for its clients' first
	// connection and producer id: the SDK publishes the first event of each system, raw franz-go
	// its first record, before the clocks start.
	if err := r.awaitLeaders(ctx); err != nil {
		return nil, err
	}
	pubs := r.publishers(r.serde)
	defer pubs.close()
	timed, took, err := pubs.publish(ctx, sdk)
	if err != nil {
		return nil, err
	}
	sdkRate := rate(timed, took)
	if err := cl.ProduceSync(ctx, raw[0]).FirstErr(); err != nil {
		return nil, fmt.Errorf("raw franz-go: %w", err)
	}
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, rec := range raw[1:] {
		wg.Add(1)
		cl.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.CompareAndSwap(nil, err)
			}
			wg.Done()
		})
	}
	wg.Wait()
	rawRate := rate(len(raw)-1, time.Since(start))
	if err, _ := failed.Load().(error); err != nil {
		return nil, fmt.Errorf("raw franz-go: %w", err)
	}
	produce := row("produce", "SDK PublishAsync", sdkRate, "raw franz-go, same bytes", rawRate, "events/s", "higher", "≥ 0.7")
	produce.Note = "SDK: 2 records per event (its audit record), raw: 1"
	rows := []Row{produce}
	consume, err := r.consume(ctx, 2*n)
	if err != nil {
		return nil, err
	}
	return append(rows, consume...), nil
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
	var timed []*simulate.Event
	for _, ev := range events {
		if p.by[ev.System] != nil {
			timed = append(timed, ev)
			continue
		}
		pr, err := streams.NewProducer(ev.System, p.serde, p.r.producerOpts()...)
		if err != nil {
			return 0, 0, err
		}
		p.by[ev.System] = pr
		if _, err := pr.Publish(ctx, ev.Envelope); err != nil {
			return 0, 0, fmt.Errorf("publishing: %w", err)
		}
	}
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for _, ev := range timed {
		wg.Add(1)
		p.by[ev.System].PublishAsync(ctx, ev.Envelope, func(_ streams.Result, err error) {
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
// subscribes to every type) with Redis dedup and a no-op handler, decoding every record; then
// again through another group with LazyDecode (the no-op handler never asks for the event); then
// with raw franz-go.
func (r *run) consume(ctx context.Context, total int) ([]Row, error) {
	hb, d, batches, err := r.consumeRate(ctx, r.cat, r.serde, total, "")
	if err != nil {
		return nil, err
	}
	lazy, _, _, err := r.consumeRate(ctx, r.cat, r.serde, total, ".lazy", streams.LazyDecode())
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
		row("consume-lazy", "the same, LazyDecode (not decoded)", lazy, "raw franz-go consume", raw.rate(), "events/s", "higher", "≥ 0.5"),
		trips,
	}, nil
}

// consumeRate handles the total records of the event topics of cat with hotel-common's consumer
// over serde through its group (plus suffix, with dedup keys of its own) and returns the rate from
// the first handler call to the last, the Dedup, and the batches prepared.
func (r *run) consumeRate(ctx context.Context, cat *topics.Catalog, serde *streams.Serde, total int, suffix string, opts ...streams.ConsumerOption) (float64, *streams.Dedup, float64, error) {
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
	for _, et := range sys.Subscribes {
		c.HandleType(et, func(context.Context, *streams.Message) error {
			if fl.add(1) == total {
				close(all)
			}
			return nil
		})
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
