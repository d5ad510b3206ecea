package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
)

// HeaderSeq is the Kafka header holding an event's Position.Seq in decimal, on records published
// through SDKPublisher or a producer with Generator.SeqHook.
const HeaderSeq = "hotelbus.sim.seq"

// RecordSeq returns the HeaderSeq of r; ok is false when it is absent or not a positive number.
func RecordSeq(r *kgo.Record) (seq uint64, ok bool) {
	v := streams.Header(r, HeaderSeq)
	if v == "" {
		return 0, false
	}
	seq, err := strconv.ParseUint(v, 10, 64)
	return seq, err == nil && seq > 0
}

// SeqHook returns a franz-go hook that adds HeaderSeq to every produced record whose eventId header
// names an event of this generator (see Seq); other records pass unchanged. Give it to a
// producer with streams.KafkaOptions(kgo.WithHooks(g.SeqHook())), for instance to the
// producers of an in-process gateway, so that its records carry the header too.
func (g *Generator) SeqHook() kgo.Hook { return seqHook{g} }

type seqHook struct{ g *Generator }

// OnProduceRecordBuffered runs inside Produce, before the record is batched, so the header is
// encoded with it (franz-go documents this hook for interceptors that modify headers).
func (h seqHook) OnProduceRecordBuffered(r *kgo.Record) {
	if _, ok := RecordSeq(r); ok {
		return // a spooled record sent again
	}
	if p, ok := h.g.Seq(streams.Header(r, streams.HeaderEventID)); ok {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderSeq, Value: strconv.AppendUint(nil, p.Seq, 10)})
	}
}

// Publisher sends generated events. Publish hands one event over and may return before it is
// acknowledged; done is called exactly once with the outcome (nil: acknowledged, or spooled by a
// producer or gateway that spools). Events handed over by one goroutine reach the broker in that
// order for each Position.Key. Close waits for the events handed over, until ctx ends.
type Publisher interface {
	Publish(ctx context.Context, ev *Event, done func(error))
	Close(ctx context.Context) error
}

// SDKPublisher publishes through one streams.Producer per publishing system, each adding
// HeaderSeq (SeqHook).
type SDKPublisher struct {
	producers map[string]*streams.Producer
}

// NewSDKPublisher returns a publisher with a producer per system of the catalog that publishes
// something, built from serde and opts (at least streams.Brokers).
func NewSDKPublisher(g *Generator, serde *streams.Serde, opts ...streams.ProducerOption) (*SDKPublisher, error) {
	p := &SDKPublisher{producers: map[string]*streams.Producer{}}
	opts = append(opts, streams.KafkaOptions(kgo.WithHooks(g.SeqHook())))
	for _, sys := range g.cat.Systems {
		if len(sys.Publishes) == 0 {
			continue
		}
		pr, err := streams.NewProducer(sys.Name, serde, opts...)
		if err != nil {
			_ = p.Close(context.Background())
			return nil, fmt.Errorf("simulate: producer of %s: %w", sys.Name, err)
		}
		p.producers[sys.Name] = pr
	}
	return p, nil
}

// Publish implements Publisher with streams.Producer.PublishAsync.
func (p *SDKPublisher) Publish(ctx context.Context, ev *Event, done func(error)) {
	pr := p.producers[ev.System]
	if pr == nil {
		done(fmt.Errorf("simulate: no producer for %s", ev.System))
		return
	}
	pr.PublishAsync(ctx, ev.Envelope, func(_ streams.Result, err error) { done(err) })
}

// Close closes every producer (see streams.Producer.Close).
func (p *SDKPublisher) Close(ctx context.Context) error {
	var errs []error
	for _, pr := range p.producers {
		errs = append(errs, pr.Close(ctx))
	}
	return errors.Join(errs...)
}

// GatewayPublisher posts events to a hotelbus gateway (POST /v1/events/batch), as each system's
// service would: with the system's bearer token. Each tenant's events go through one of a fixed set
// of workers, one request at a time, so they reach the gateway, and the broker, in generation order.
// A worker batches the events that queued up while its previous request ran (up to 100, of one
// system). Nothing is retried: an event whose request failed, or whose batch item is not 202, is
// reported failed (it may still have been published; dedup removes a later repeat).
type GatewayPublisher struct {
	url    string
	tokens map[string]string
	set    *schemas.Set
	client *http.Client
	queues []chan gwJob
	wg     sync.WaitGroup
	once   sync.Once
}

type gwJob struct {
	ev   *Event
	body []byte
	done func(error)
}

// NewGatewayPublisher returns a publisher to the gateway at url (http://host:port) with a token
// per system (a system without one fails its events), writing the canonical JSON of set's schemas and
// posting with client (nil: a client with a 60s timeout) from workers goroutines (default 16).
func NewGatewayPublisher(url string, tokens map[string]string, set *schemas.Set, client *http.Client, workers int) *GatewayPublisher {
	if client == nil {
		client = &http.Client{Timeout: 60 * time.Second}
	}
	if workers < 1 {
		workers = 16
	}
	p := &GatewayPublisher{url: url, tokens: tokens, set: set, client: client, queues: make([]chan gwJob, workers)}
	for i := range p.queues {
		p.queues[i] = make(chan gwJob, 256)
		p.wg.Add(1)
		go p.work(p.queues[i])
	}
	return p
}

// Publish implements Publisher. It blocks while the tenant's worker has 256 events queued.
func (p *GatewayPublisher) Publish(_ context.Context, ev *Event, done func(error)) {
	v, ok := p.set.Version(ev.Envelope.EventType, ev.Envelope.Version)
	if !ok {
		done(fmt.Errorf("%w: %s %s", streams.ErrUnknownEventType, ev.Envelope.EventType, ev.Envelope.Version))
		return
	}
	body, err := streams.AppendJSON(nil, ev.Envelope, v.Data)
	if err != nil {
		done(err)
		return
	}
	if p.tokens[ev.System] == "" {
		done(fmt.Errorf("simulate: no gateway token for %s", ev.System))
		return
	}
	h := fnv.New32a()
	_, _ = h.Write([]byte(ev.Tenant))
	p.queues[h.Sum32()%uint32(len(p.queues))] <- gwJob{ev: ev, body: body, done: done}
}

func (p *GatewayPublisher) work(q chan gwJob) {
	defer p.wg.Done()
	var held *gwJob
	for {
		var batch []gwJob
		if held != nil {
			batch, held = append(batch, *held), nil
		} else {
			j, ok := <-q
			if !ok {
				return
			}
			batch = append(batch, j)
		}
	more:
		for len(batch) < 100 {
			select {
			case j, ok := <-q:
				if !ok {
					break more
				}
				if j.ev.System != batch[0].ev.System {
					held = &j
					break more
				}
				batch = append(batch, j)
			default:
				break more
			}
		}
		p.post(batch)
	}
}

// post sends one batch of events of one system and reports each outcome.
func (p *GatewayPublisher) post(batch []gwJob) {
	fail := func(err error) {
		for _, j := range batch {
			j.done(err)
		}
	}
	var buf bytes.Buffer
	buf.WriteString(`{"events":[`)
	for i, j := range batch {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.Write(j.body)
	}
	buf.WriteString(`]}`)
	req, err := http.NewRequest(http.MethodPost, p.url+gateway.RouteBatch, &buf)
	if err != nil {
		fail(fmt.Errorf("simulate: gateway request: %w", err))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+p.tokens[batch[0].ev.System])
	res, err := p.client.Do(req)
	if err != nil {
		fail(fmt.Errorf("simulate: gateway: %w", err))
		return
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	var out gateway.BatchResult
	switch {
	case err != nil:
		fail(fmt.Errorf("simulate: gateway answer: %w", err))
		return
	case res.StatusCode != http.StatusAccepted && res.StatusCode != http.StatusMultiStatus:
		fail(fmt.Errorf("simulate: gateway answered %s: %s", res.Status, bytes.TrimSpace(b[:min(len(b), 300)])))
		return
	case json.Unmarshal(b, &out) != nil || len(out.Results) != len(batch):
		fail(fmt.Errorf("simulate: gateway answered %s with an unexpected body: %s", res.Status, b[:min(len(b), 300)]))
		return
	}
	for i, j := range batch {
		it := out.Results[i]
		if it.Code == http.StatusAccepted && it.Accepted != nil {
			j.done(nil)
			continue
		}
		msg := http.StatusText(it.Code)
		if it.Problem != nil {
			msg = it.Problem.Title + ": " + it.Problem.Detail
		}
		j.done(fmt.Errorf("simulate: gateway refused %s: %d %s", j.ev.Envelope.EventID, it.Code, msg))
	}
}

// Close stops the workers after they posted everything handed over, or returns when ctx ends.
// Publish must not be called after Close.
func (p *GatewayPublisher) Close(ctx context.Context) error {
	p.once.Do(func() {
		for _, q := range p.queues {
			close(q)
		}
	})
	done := make(chan struct{})
	go func() { p.wg.Wait(); close(done) }()
	select {
	case <-done:
		p.client.CloseIdleConnections()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("simulate: gateway requests still running: %w", ctx.Err())
	}
}

// Runner publishes a generator's events through a publisher at a rate.
type Runner struct {
	Generator *Generator
	Publisher Publisher
	// Rate is the target in events per second; 0 hands events over as fast as the publisher takes
	// them. The schedule is absolute (event n is due at start + n/Rate), so a slow moment is
	// caught up afterwards.
	Rate float64
	// Count stops the run after this many events; Duration after this long. With neither, the run
	// lasts until ctx ends.
	Count    int64
	Duration time.Duration
	// Observe, when set, is called once per event with its outcome (nil: acknowledged), from the
	// publisher's goroutines, before Run counts the event as finished.
	Observe func(ev *Event, err error)
}

// Summary is what a run did.
type Summary struct {
	// Events were handed to the publisher; Acknowledged + Failed = Events once Run returned.
	Events, Acknowledged, Failed int64
	// Elapsed runs from the first event handed over to the last outcome.
	Elapsed time.Duration
	// PerTenant and PerType count acknowledged events.
	PerTenant map[string]int64
	PerType   map[string]int64
	// FirstError is the first failure reported, nil when none.
	FirstError error
}

// Rate returns acknowledged events per second over Elapsed.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Acknowledged) / s.Elapsed.Seconds()
}

// Run publishes until Count or Duration is reached or ctx ends, then waits for every outcome (the
// publishes are not canceled with ctx: what was handed over completes). It returns the summary,
// and an error when an event failed.
func (r *Runner) Run(ctx context.Context) (Summary, error) {
	if r.Rate < 0 || r.Count < 0 || r.Duration < 0 {
		return Summary{}, fmt.Errorf("simulate: Rate, Count and Duration must not be negative")
	}
	sum := Summary{PerTenant: map[string]int64{}, PerType: map[string]int64{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	pubCtx := context.WithoutCancel(ctx)
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for n := int64(0); (r.Count == 0 || n < r.Count) && (r.Duration == 0 || time.Since(start) < r.Duration) && ctx.Err() == nil; n++ {
		if r.Rate > 0 {
			if wait := time.Until(start.Add(time.Duration(float64(n) / r.Rate * float64(time.Second)))); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					continue // the loop condition ends the run
				case <-timer.C:
				}
			}
		}
		ev := r.Generator.Next()
		sum.Events++
		wg.Add(1)
		r.Publisher.Publish(pubCtx, ev, func(err error) {
			if r.Observe != nil {
				r.Observe(ev, err)
			}
			mu.Lock()
			if err != nil {
				sum.Failed++
				if sum.FirstError == nil {
					sum.FirstError = err
				}
			} else {
				sum.Acknowledged++
				sum.PerTenant[ev.Tenant]++
				sum.PerType[ev.Envelope.EventType]++
			}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	sum.Elapsed = time.Since(start)
	if sum.Failed > 0 {
		return sum, fmt.Errorf("simulate: %d of %d events failed; the first: %w", sum.Failed, sum.Events, sum.FirstError)
	}
	return sum, nil
}
