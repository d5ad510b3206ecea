package streams_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// The consumer tests publish events whose correlationId is their sequence number within their
// key, and record every side effect in a streamstest.Checker. There is no dedup middleware here:
// duplicates are what the consumer itself produces.

// eventSpec is one kind of event a test publishes.
type eventSpec struct {
	eventType string
	// key returns the checker key of the event published for tenant tn with sequence seq, and
	// may set data fields on env.
	key func(topic string, tn, seq int, env *streams.Envelope) string
}

// byTenant keys events by topic and tenant, the default ordering.
func byTenant(eventType string) eventSpec {
	return eventSpec{eventType: eventType, key: func(topic string, tn, _ int, env *streams.Envelope) string {
		return topic + "/" + env.Metadata.TenantID
	}}
}

// publishMany publishes perTenant events of each spec for each of tenants tenants, tenant by
// tenant in turn, records them in chk and returns the records in publication order.
func publishMany(t testing.TB, b streamstest.Backend, serde *streams.Serde, chk *streamstest.Checker, specs []eventSpec, tenants, perTenant int) []*kgo.Record {
	t.Helper()
	recs := buildEvents(t, serde, chk, specs, tenants, perTenant)
	produceRecords(t, b, recs)
	return recs
}

// buildEvents makes the records publishMany publishes, without producing them.
func buildEvents(t testing.TB, serde *streams.Serde, chk *streamstest.Checker, specs []eventSpec, tenants, perTenant int) []*kgo.Record {
	t.Helper()
	ctx := context.Background()
	var recs []*kgo.Record
	seqs := map[string]int{}
	_, cat := loadAll(t)
	for _, sp := range specs {
		topic, err := serde.Topic(sp.eventType)
		if err != nil {
			t.Fatal(err)
		}
		base := example(t, serde, sp.eventType)
		latest, _ := serde.Schemas().Latest(sp.eventType)
		owner, _ := cat.Owner(sp.eventType)
		for i := range perTenant {
			for tn := range tenants {
				env := *base
				env.Data = copyData(base.Data)
				env.EventID = uuid.NewString()
				env.Version = latest.String()
				env.Timestamp = time.Now()
				env.Metadata.TenantID = fmt.Sprintf("tenant-%03d", tn)
				env.Metadata.Source = owner
				env.Metadata.TraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
				key := sp.key(topic, tn, i, &env)
				seq := seqs[key]
				seqs[key]++
				env.Metadata.CorrelationID = strconv.Itoa(seq)
				rec, err := serde.Record(ctx, &env)
				if err != nil {
					t.Fatal(err)
				}
				chk.Published(key, env.EventID, seq)
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

func copyData(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// produceRecords writes recs in order and waits for every acknowledgement.
func produceRecords(t testing.TB, b streamstest.Backend, recs []*kgo.Record) {
	t.Helper()
	cl := b.Client(t, kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(len(recs)+1))
	errs := make(chan error, len(recs))
	for _, r := range recs {
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) { errs <- err })
	}
	for range recs {
		if err := <-errs; err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// seqOf returns the checker sequence number a test event carries.
func seqOf(m *streams.Message) int {
	n, _ := strconv.Atoi(m.Envelope.Metadata.CorrelationID)
	return n
}

// consumerRun is a consumer running in the background.
type consumerRun struct {
	c    *streams.Consumer
	done chan error
	once sync.Once
}

// startConsumer makes a consumer for system, lets register add its handlers, and runs it until
// stop is called or the test ends.
func startConsumer(t testing.TB, system string, b streamstest.Backend, serde *streams.Serde, register func(*streams.Consumer), opts ...streams.ConsumerOption) *consumerRun {
	t.Helper()
	base := []streams.ConsumerOption{streams.Brokers(b.Brokers...), streams.CommitInterval(100 * time.Millisecond),
		streams.Logger(slog.New(slog.NewTextHandler(t.Output(), nil))), streams.KafkaOptions(kgo.HeartbeatInterval(200 * time.Millisecond))}
	c, err := streams.NewConsumer(system, serde, append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	register(c)
	r := &consumerRun{c: c, done: make(chan error, 1)}
	go func() { r.done <- c.Run(context.Background()) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop closes the consumer and fails the test if Run returned an error.
func (r *consumerRun) stop(t testing.TB) {
	t.Helper()
	r.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := r.c.Close(ctx); err != nil {
			t.Errorf("close: %v", err)
			return
		}
		// ErrClosed: Close won the race with the goroutine that calls Run, which is documented
		if err := <-r.done; err != nil && !errors.Is(err, streams.ErrClosed) {
			t.Errorf("run: %v", err)
		}
	})
}

var eventually = streamstest.Eventually

// checkCommittedAtEnd fails unless the group's committed offset of every partition of the topics
// equals the partition's end offset.
func checkCommittedAtEnd(t testing.TB, b streamstest.Backend, group string, topicNames ...string) {
	t.Helper()
	for _, p := range committedShort(t, b, group, topicNames...) {
		t.Error(p)
	}
}

// committedAtEnd reports whether group committed the end offset of every non-empty partition of
// topicNames.
func committedAtEnd(t testing.TB, b streamstest.Backend, group string, topicNames ...string) bool {
	return len(committedShort(t, b, group, topicNames...)) == 0
}

// committedShort names the non-empty partitions of topicNames where group's committed offset is
// not the end offset.
func committedShort(t testing.TB, b streamstest.Backend, group string, topicNames ...string) []string {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topicNames...)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var short []string
	ends.Each(func(e kadm.ListedOffset) {
		if e.Offset == 0 {
			return
		}
		if got, _ := committed.Lookup(e.Topic, e.Partition); got.At != e.Offset {
			short = append(short, fmt.Sprintf("%s/%d: committed %d, end %d", e.Topic, e.Partition, got.At, e.Offset))
		}
	})
	return short
}

// keyGuard fails the test when two handler calls for one key overlap, and tracks the peak number
// of concurrent calls.
type keyGuard struct {
	mu       sync.Mutex
	active   map[string]bool
	cur      int
	peak     int
	overlaps int
}

func newKeyGuard() *keyGuard { return &keyGuard{active: map[string]bool{}} }

func (g *keyGuard) enter(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.active[key] {
		g.overlaps++
	}
	g.active[key] = true
	g.cur++
	g.peak = max(g.peak, g.cur)
}

func (g *keyGuard) leave(key string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.active, key)
	g.cur--
}

func (g *keyGuard) stats() (peak, overlaps int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.peak, g.overlaps
}

// checkNoAnomalies fails on any lost, duplicated or out-of-order event.
func checkNoAnomalies(t testing.TB, r streamstest.CheckerReport) {
	t.Helper()
	if len(r.Lost) != 0 || len(r.Duplicated) != 0 || len(r.OutOfOrder) != 0 {
		t.Errorf("checker: %s", r)
	}
}

// TestConsumerPerKeyOrder: 20,000 events over 200 tenants, handlers sleeping 0-2ms: every event
// handled exactly once, each tenant's in order, different tenants concurrently within the bounds,
// and the committed offsets reach the end.
func TestConsumerPerKeyOrder(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 200, 100
			recs := publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			guard := newKeyGuard()
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					key := m.Record.Topic + "/" + m.Envelope.Metadata.TenantID
					guard.enter(key)
					defer guard.leave(key)
					time.Sleep(time.Duration(rand.IntN(2000)) * time.Microsecond)
					chk.Handled(key, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, streams.MaxInFlight(32), streams.MaxInFlightPerPartition(16))
			eventually(t, 3*time.Minute, "every event handled", func() bool { return handled.Load() >= tenants*per })
			r.stop(t)
			rep := chk.Report()
			checkNoAnomalies(t, rep)
			peak, overlaps := guard.stats()
			if overlaps != 0 {
				t.Errorf("%d handler calls overlapped another of the same tenant", overlaps)
			}
			if peak < 2 || peak > 32 {
				t.Errorf("peak concurrency %d, want 2..32 (MaxInFlight 32)", peak)
			}
			t.Logf("%s; peak concurrency %d", rep, peak)
			checkCommittedAtEnd(t, b, r.c.Group(), recs[0].Topic)
		})
	}
}

// TestConsumerMembershipChurn: three members share the group while one after another is closed
// and replaced during consumption. Nothing is lost and no tenant sees a new event before an older
// one; events handled again after a rebalance are duplicates, counted and logged (no dedup here).
func TestConsumerMembershipChurn(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 200, 50
			specs := []eventSpec{byTenant("service.ordered"), byTenant("member.status_changed")}
			recs := publishMany(t, b, serde, chk, specs, tenants, per)
			guard := newKeyGuard()
			var mu sync.Mutex
			seen := map[string]bool{}
			register := func(c *streams.Consumer) {
				h := func(_ context.Context, m *streams.Message) error {
					key := m.Record.Topic + "/" + m.Envelope.Metadata.TenantID
					guard.enter(key)
					defer guard.leave(key)
					time.Sleep(2 * time.Millisecond)
					chk.Handled(key, m.Envelope.EventID, seqOf(m))
					mu.Lock()
					seen[m.Envelope.EventID] = true
					mu.Unlock()
					return nil
				}
				c.HandleType("service.ordered", h)
				c.HandleType("member.status_changed", h)
			}
			unique := func() int { mu.Lock(); defer mu.Unlock(); return len(seen) }
			start := func() *consumerRun {
				return startConsumer(t, "hotel-pms", b, serde, register, streams.MaxInFlight(2), streams.MaxPending(100))
			}
			members := []*consumerRun{start(), start(), start()}
			churns := 0
			deadline := time.Now().Add(3 * time.Minute)
			for unique() < len(specs)*tenants*per {
				if time.Now().After(deadline) {
					t.Fatalf("handled %d of %d events before the deadline", unique(), len(specs)*tenants*per)
				}
				time.Sleep(300 * time.Millisecond)
				if unique() >= len(specs)*tenants*per {
					break
				}
				i := rand.IntN(len(members))
				members[i].stop(t)
				members[i] = start()
				churns++
			}
			for _, m := range members {
				m.stop(t)
			}
			rep := chk.Report()
			if len(rep.Lost) != 0 || len(rep.OutOfOrder) != 0 {
				t.Errorf("checker: %s", rep)
			}
			if _, overlaps := guard.stats(); overlaps != 0 {
				t.Errorf("%d handler calls overlapped another of the same tenant", overlaps)
			}
			if churns < 3 {
				t.Errorf("only %d members replaced during consumption; the test did not exercise rebalancing", churns)
			}
			t.Logf("%d members replaced; %d events handled more than once (%d handler calls for %d events)",
				churns, len(rep.Duplicated), rep.Handled, rep.Published)
			checkCommittedAtEnd(t, b, members[0].c.Group(), recs[0].Topic, recs[len(recs)-1].Topic)
		})
	}
}

// logCounter counts log records by message.
type logCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.counts[msg]
}

// TestConsumerSkipsUnsubscribedAndUnhandled: on one topic, a type the system does not subscribe to
// is skipped without decoding (its values are garbage), a subscribed type without a handler is
// logged as "no handler found" and skipped, and both are committed past.
func TestConsumerSkipsUnsubscribedAndUnhandled(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			set, _ := loadAll(t)
			cat := testCatalog(t)
			ensure(t, b, cat)
			serde, _ := newSerde(t, set, cat)
			chk := streamstest.NewChecker()
			const tenants, per = 20, 15
			recs := publishMany(t, b, serde, chk, []eventSpec{byTenant("reservation.updated")}, tenants, per)
			unhandled := publishMany(t, b, serde, streamstest.NewChecker(), []eventSpec{byTenant("checkin_checkout.checked_in")}, tenants, per)
			var garbage []*kgo.Record
			for i := range tenants * per {
				garbage = append(garbage, &kgo.Record{Topic: recs[0].Topic, Key: fmt.Appendf(nil, "tenant-%03d", i%tenants), Value: []byte("not avro"),
					Headers: []kgo.RecordHeader{{Key: streams.HeaderEventType, Value: []byte("reservation.created")}, {Key: streams.HeaderVersion, Value: []byte("1.0")}}})
			}
			produceRecords(t, b, garbage)
			logs := &logCounter{counts: map[string]int{}}
			var mu sync.Mutex
			entered := map[string]int{}
			spy := func(next streams.Handler) streams.Handler {
				return func(ctx context.Context, m *streams.Message) error {
					mu.Lock()
					entered[streams.Header(m.Record, streams.HeaderEventType)]++
					if m.DecodeErr != nil {
						entered["decode error"]++
					}
					mu.Unlock()
					return next(ctx, m)
				}
			}
			var handled atomic.Int64
			r := startConsumer(t, "hotel-saas", b, serde, func(c *streams.Consumer) {
				c.HandleType("reservation.updated", func(_ context.Context, m *streams.Message) error {
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, streams.Use(spy), streams.Logger(slog.New(logs)))
			eventually(t, 2*time.Minute, "every event handled or skipped", func() bool {
				return handled.Load() >= tenants*per && logs.count("streams: consumer: no handler found; event skipped") >= len(unhandled)
			})
			r.stop(t)
			checkNoAnomalies(t, chk.Report())
			if n := logs.count("streams: consumer: no handler found; event skipped"); n != len(unhandled) {
				t.Errorf("%d no-handler warnings, want %d", n, len(unhandled))
			}
			mu.Lock()
			defer mu.Unlock()
			if len(entered) != 1 || entered["reservation.updated"] != tenants*per {
				t.Errorf("the chain saw %v, want only %d reservation.updated", entered, tenants*per)
			}
			checkCommittedAtEnd(t, b, r.c.Group(), recs[0].Topic)
		})
	}
}

// TestConsumerUndecodableRecords: poison records (bad magic byte, unknown schema id, corrupt body)
// mixed into a partition reach the middleware with DecodeErr set; with nothing taking them, the
// final handler returns a permanent error, the consumer logs and skips them, and every good event
// after them is handled in order.
func TestConsumerUndecodableRecords(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 20, 60
			good := buildEvents(t, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			schemaID := good[0].Value[1:5]
			poisons := [][]byte{{0x01, 'x', 'y'}, {0x00, 0x00, 0x0f, 0x42, 0x3f, 0x02}, append(append([]byte{0x00}, schemaID...), 0xff)}
			var mixed []*kgo.Record
			for i := range tenants * 3 {
				mixed = append(mixed, &kgo.Record{Topic: good[0].Topic, Key: fmt.Appendf(nil, "tenant-%03d", i%tenants), Value: poisons[i%3],
					Headers: []kgo.RecordHeader{{Key: streams.HeaderEventType, Value: []byte("service.ordered")}, {Key: streams.HeaderVersion, Value: []byte("1.0")}}})
			}
			// the poison sits mid-partition, between each tenant's events 29 and 30
			produceRecords(t, b, good[:len(good)/2])
			produceRecords(t, b, mixed)
			produceRecords(t, b, good[len(good)/2:])
			var mu sync.Mutex
			var decodeErrs, permanent int
			spy := func(next streams.Handler) streams.Handler {
				return func(ctx context.Context, m *streams.Message) error {
					err := next(ctx, m)
					if m.DecodeErr != nil {
						mu.Lock()
						if errors.Is(m.DecodeErr, streams.ErrMalformedRecord) {
							decodeErrs++
						}
						if errors.Is(err, streams.ErrPermanent) && errors.Is(err, streams.ErrMalformedRecord) && !streams.IsRetryable(err) {
							permanent++
						}
						mu.Unlock()
					}
					return err
				}
			}
			logs := &logCounter{counts: map[string]int{}}
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, streams.Use(spy), streams.Logger(slog.New(logs)))
			eventually(t, 2*time.Minute, "every good event handled", func() bool { return handled.Load() >= int64(len(good)) })
			r.stop(t)
			checkNoAnomalies(t, chk.Report())
			mu.Lock()
			defer mu.Unlock()
			if decodeErrs != len(mixed) || permanent != len(mixed) {
				t.Errorf("%d messages with a malformed-record DecodeErr and %d permanent errors, want %d of each", decodeErrs, permanent, len(mixed))
			}
			if n := logs.count("streams: consumer: handler failed; event skipped"); n != len(mixed) {
				t.Errorf("%d failures logged, want %d", n, len(mixed))
			}
			checkCommittedAtEnd(t, b, r.c.Group(), good[0].Topic)
		})
	}
}

// TestConsumerCloseResumes: a consumer closed mid-stream finishes what it fetched and commits it;
// a new member of the group resumes there, so over both every event is handled exactly once.
func TestConsumerCloseResumes(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 200, 100
			recs := publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			var first, second atomic.Int64
			closing := make(chan struct{})
			var once sync.Once
			handler := func(n *atomic.Int64) streams.Handler {
				return func(_ context.Context, m *streams.Message) error {
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					if n.Add(1) == 5000 {
						once.Do(func() { close(closing) })
					}
					return nil
				}
			}
			r1 := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) { c.HandleType("service.ordered", handler(&first)) },
				streams.MaxPending(300))
			select {
			case <-closing:
			case <-time.After(2 * time.Minute):
				t.Fatal("the first consumer did not handle 5,000 events")
			}
			r1.stop(t)
			if first.Load() >= tenants*per {
				t.Fatalf("the first consumer handled all %d events before it was closed", first.Load())
			}
			r2 := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) { c.HandleType("service.ordered", handler(&second)) })
			eventually(t, 2*time.Minute, "the rest handled", func() bool { return first.Load()+second.Load() >= tenants*per })
			r2.stop(t)
			rep := chk.Report()
			checkNoAnomalies(t, rep)
			t.Logf("first consumer %d events, second %d; %s", first.Load(), second.Load(), rep)
			checkCommittedAtEnd(t, b, r2.c.Group(), recs[0].Topic)
		})
	}
}

// TestConsumerOrderingKey: reservation events are ordered per reservation (the catalog's ordering
// key), not per tenant: one tenant's reservations are handled concurrently, each in order. The key
// is read from the record's encoding: under LazyDecode the records reach the handler undecoded.
func TestConsumerOrderingKey(t *testing.T) {
	set, _ := loadAll(t)
	cat := testCatalog(t)
	if f := cat.OrderingKey("reservation.created"); f != "reservationId" {
		t.Fatalf("OrderingKey(reservation.created) = %q", f)
	}
	for _, lazy := range []bool{false, true} {
		t.Run(fmt.Sprintf("lazy=%v", lazy), func(t *testing.T) {
			b := streamstest.Kfake(t)
			ensure(t, b, cat)
			serde, _ := newSerde(t, set, cat)
			chk := streamstest.NewChecker()
			const reservations, per = 20, 30
			spec := eventSpec{eventType: "reservation.created", key: func(_ string, tn, seq int, env *streams.Envelope) string {
				env.Metadata.TenantID = "tenant-000" // one tenant, one partition
				id := fmt.Sprintf("rsv-%02d", tn)
				env.Data["reservationId"] = id
				return id
			}}
			publishMany(t, b, serde, chk, []eventSpec{spec}, reservations, per)
			guard := newKeyGuard()
			var handled, decodedAtEntry atomic.Int64
			var opts []streams.ConsumerOption
			if lazy {
				opts = append(opts, streams.LazyDecode())
			}
			r := startConsumer(t, "hotel-member", b, serde, func(c *streams.Consumer) {
				c.HandleType("reservation.created", func(ctx context.Context, m *streams.Message) error {
					if m.Envelope != nil {
						decodedAtEntry.Add(1)
					}
					env, err := m.Decode(ctx)
					if err != nil {
						return err
					}
					key := env.Data["reservationId"].(string)
					guard.enter(key)
					defer guard.leave(key)
					time.Sleep(time.Millisecond)
					chk.Handled(key, env.EventID, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, opts...)
			eventually(t, time.Minute, "every event handled", func() bool { return handled.Load() >= reservations*per })
			r.stop(t)
			checkNoAnomalies(t, chk.Report())
			if peak, overlaps := guard.stats(); overlaps != 0 || peak < 2 {
				t.Errorf("one tenant's reservations: peak concurrency %d (want > 1), %d overlaps of one reservation", peak, overlaps)
			}
			if n := decodedAtEntry.Load(); lazy && n != 0 {
				t.Errorf("%d records were decoded before the lazy handler asked: the ordering key was not read from the encoding", n)
			}
		})
	}
}

// TestConsumerDualSubscription: with handlers for v1 and v2 of a type, a dual-published event
// reaches each handler once, in its own version.
func TestConsumerDualSubscription(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, p, parse := dualFixture(t, b)
	a, a2 := parse(), parse()
	a2.Version = "2.0"
	a2.Data["refundPolicy"] = "FULL_REFUND"
	res, err := p.PublishDual(context.Background(), a, a2)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *streams.Message, 4)
	h := func(_ context.Context, m *streams.Message) error { got <- m; return nil }
	r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		c.Handle("service.canceled", 1, h)
		c.HandleType("service.canceled", h) // v2, the newest major
	})
	versions := map[string]*streams.Message{}
	for range 2 {
		select {
		case m := <-got:
			versions[m.Envelope.Version] = m
		case <-time.After(time.Minute):
			t.Fatalf("got %d copies", len(versions))
		}
	}
	r.stop(t)
	m1, m2 := versions["1.0"], versions["2.0"]
	if m1 == nil || m2 == nil || m1.Envelope.EventID != res[0].EventID || m2.Envelope.EventID != res[0].EventID {
		t.Fatalf("copies %v", versions)
	}
	if m2.Envelope.Data["refundPolicy"] != "FULL_REFUND" || m1.Envelope.Data["refundPolicy"] != nil {
		t.Errorf("v1 data %v, v2 data %v", m1.Envelope.Data, m2.Envelope.Data)
	}
	if len(got) != 0 {
		t.Errorf("%d extra copies", len(got))
	}
}

// TestConsumerConfig: bad options and registrations are refused with ErrConfig before anything
// connects.
func TestConsumerConfig(t *testing.T) {
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	brokers := streams.Brokers("127.0.0.1:1")
	for name, opts := range map[string][]streams.ConsumerOption{
		"no brokers":                   nil,
		"producer option":              {brokers, streams.Linger(time.Second)},
		"zero in flight":               {brokers, streams.MaxInFlight(0)},
		"zero in flight per partition": {brokers, streams.MaxInFlightPerPartition(0)},
		"shutdown beyond rebalance":    {brokers, streams.ShutdownTimeout(time.Minute), streams.RebalanceTimeout(30 * time.Second)},
		"nil middleware":               {brokers, streams.Use(nil)},
		"standard chain, bad retry":    {brokers, streams.UseStandard(streams.StandardChain{Retry: []streams.RetryOption{streams.RetryMaxAttempts(0)}})},
	} {
		if _, err := streams.NewConsumer("hotel-pms", serde, opts...); !errors.Is(err, streams.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	if _, err := streams.NewConsumer("hotel-spa", serde, brokers); !errors.Is(err, streams.ErrConfig) {
		t.Errorf("unknown system: err = %v", err)
	}
	ok := func(context.Context, *streams.Message) error { return nil }
	for name, register := range map[string]func(*streams.Consumer){
		"no handlers":    func(*streams.Consumer) {},
		"not subscribed": func(c *streams.Consumer) { c.HandleType("reservation.created", ok) },
		"unknown major":  func(c *streams.Consumer) { c.Handle("service.ordered", 7, ok) },
		"two handlers":   func(c *streams.Consumer) { c.Handle("service.ordered", 1, ok); c.HandleType("service.ordered", ok) },
		"nil handler":    func(c *streams.Consumer) { c.HandleType("service.ordered", nil) },
		"unknown type":   func(c *streams.Consumer) { c.HandleType("room.cleaned", ok) },
	} {
		c, err := streams.NewConsumer("hotel-pms", serde, brokers)
		if err != nil {
			t.Fatal(err)
		}
		register(c)
		if err := c.Run(context.Background()); !errors.Is(err, streams.ErrConfig) {
			t.Errorf("%s: Run = %v, want ErrConfig", name, err)
		}
	}
	c, _ := streams.NewConsumer("hotel-pms", serde, brokers)
	c.HandleType("service.ordered", ok)
	if err := c.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, streams.ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkConsumerKeyOrdering compares, with a 2ms handler on one partition holding 1,000
// tenants, key-ordered concurrency (the default bounds) with handling the partition one record at
// a time (MaxInFlightPerPartition 1). It reports both throughputs,
// measured from the first handler call to the last, and their ratio as "speedup" (goal: 20x).
func BenchmarkConsumerKeyOrdering(b *testing.B) {
	b.ReportAllocs()
	for _, be := range streamstest.Backends(b) {
		b.Run(be.Name, func(b *testing.B) {
			b.ReportAllocs()
			var ordered, serial float64
			for range b.N {
				ordered = benchConsume(b, be, 10)
				serial = benchConsume(b, be, 1, streams.MaxInFlightPerPartition(1))
			}
			b.ReportMetric(ordered, "ordered-events/s")
			b.ReportMetric(serial, "serial-events/s")
			b.ReportMetric(ordered/serial, "speedup")
		})
	}
}

// benchConsume publishes perTenant events for each of 1,000 tenants to a one-partition topic and
// returns the rate at which a consumer with opts handles them with a 2ms handler.
func benchConsume(b *testing.B, be streamstest.Backend, perTenant int, opts ...streams.ConsumerOption) float64 {
	b.StopTimer()
	set, cat := loadAll(b)
	cat = cat.WithPrefix(streamstest.Name(b, "b") + ".")
	onePartition(b, be, cat)
	serde, _ := newSerde(b, set, cat)
	total := int64(len(publishMany(b, be, serde, streamstest.NewChecker(), []eventSpec{byTenant("service.ordered")}, 1000, perTenant)))
	b.StartTimer()
	var mu sync.Mutex
	var first, last time.Time
	var handled atomic.Int64
	r := startConsumer(b, "hotel-pms", be, serde, func(c *streams.Consumer) {
		c.HandleType("service.ordered", func(context.Context, *streams.Message) error {
			mu.Lock()
			if first.IsZero() {
				first = time.Now()
			}
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			mu.Lock()
			last = time.Now()
			mu.Unlock()
			handled.Add(1)
			return nil
		})
	}, opts...)
	eventually(b, 5*time.Minute, "every event handled", func() bool { return handled.Load() >= total })
	r.stop(b)
	return float64(total) / last.Sub(first).Seconds()
}

// onePartition creates every topic of cat with one partition and deletes them when b ends.
func onePartition(b *testing.B, be streamstest.Backend, cat *topics.Catalog) {
	adm := kadm.NewClient(be.Client(b))
	ctx := context.Background()
	var names []string
	for _, tp := range cat.Topics {
		names = append(names, tp.Name)
	}
	if _, err := adm.CreateTopics(ctx, 1, 1, nil, names...); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _, _ = adm.DeleteTopics(context.Background(), names...) })
}

// TestConsumerRetriesRetryableChainErrors: a retryable error that reaches the consumer (say, the
// dead-letter write failed) leaves the record unfinished; the chain runs again and the key's later
// events wait for it, so nothing is lost, reordered or committed past it.
func TestConsumerRetriesRetryableChainErrors(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	chk := streamstest.NewChecker()
	const tenants, per = 10, 30
	recs := publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
	var failures atomic.Int64
	flaky := func(next streams.Handler) streams.Handler {
		return func(ctx context.Context, m *streams.Message) error {
			if seqOf(m) == 5 && m.Envelope.Metadata.TenantID == "tenant-003" && failures.Add(1) <= 3 {
				return errors.New("dead-letter topic unavailable") // retryable by default
			}
			return next(ctx, m)
		}
	}
	logs := &logCounter{counts: map[string]int{}}
	var handled atomic.Int64
	r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
			chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
			handled.Add(1)
			return nil
		})
	}, streams.Use(flaky), streams.Logger(slog.New(logs)))
	eventually(t, time.Minute, "every event handled", func() bool { return handled.Load() >= tenants*per })
	r.stop(t)
	checkNoAnomalies(t, chk.Report())
	if n := logs.count("streams: consumer: retryable failure reached the consumer; the record stays unfinished and runs again"); n != 3 {
		t.Errorf("%d retries logged, want 3", n)
	}
	if n := logs.count("streams: consumer: handler failed; event skipped"); n != 0 {
		t.Errorf("%d events skipped, want none", n)
	}
	checkCommittedAtEnd(t, b, r.c.Group(), recs[0].Topic)
}

// TestConsumerLazyDecode: with LazyDecode every chain starts with m.Envelope nil. A handler that
// never decodes handles every event once and in order by its headers (dedup included); one that
// decodes gets the envelope its headers name. A record that does not decode, or whose envelope's
// eventId is not its header's, fails Decode permanently and is dead-lettered without stalling its
// key, and the event its header named (arriving later) is still handled, not taken for a
// duplicate.
func TestConsumerLazyDecode(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	chk := streamstest.NewChecker()
	const tenants, per = 4, 50
	good := buildEvents(t, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
	const decoding = "tenant-000" // the handler decodes this tenant's records only
	var named *kgo.Record         // a later event of the decoding tenant, whose id a poison claims
	for _, r := range good[len(good)/2:] {
		if string(r.Key) == decoding {
			named = r
			break
		}
	}
	env := example(t, serde, "service.ordered")
	env.EventID, env.Timestamp, env.Version = uuid.NewString(), time.Now(), "1.0"
	env.Metadata = streams.Metadata{TenantID: decoding, Source: "hotel-saas", CorrelationID: "poison-claims-another-id", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}
	claims, err := serde.Record(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range claims.Headers {
		if h.Key == streams.HeaderEventID {
			claims.Headers[i].Value = []byte(streams.Header(named, streams.HeaderEventID))
		}
	}
	malformed := &kgo.Record{Topic: good[0].Topic, Key: []byte(decoding), Value: []byte{0x00, 0x00, 0x0f, 0x42, 0x3f, 0x02},
		Headers: streams.Headers(&streams.Envelope{EventType: "service.ordered", Version: "1.0", EventID: uuid.NewString(),
			Metadata: streams.Metadata{Source: "hotel-saas", CorrelationID: "poison-malformed", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"}})}
	produceRecords(t, b, good[:len(good)/2])
	produceRecords(t, b, []*kgo.Record{claims, malformed})
	produceRecords(t, b, good[len(good)/2:])

	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	dlqTopic, chain := dedupDeadLetterChain(t, b, cat, rdb, streamstest.Name(t, "group"))
	var handled, decodedAtEntry, mismatched atomic.Int64
	r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		c.HandleType("service.ordered", func(ctx context.Context, m *streams.Message) error {
			if m.Envelope != nil {
				decodedAtEntry.Add(1)
			}
			id := streams.Header(m.Record, streams.HeaderEventID)
			if string(m.Record.Key) == decoding {
				env, err := m.Decode(ctx)
				if err != nil {
					return err
				}
				if env.EventID != id {
					mismatched.Add(1)
				}
			}
			seq, _ := strconv.Atoi(streams.Header(m.Record, streams.HeaderCorrelationID))
			chk.Handled(m.Record.Topic+"/"+string(m.Record.Key), id, seq)
			handled.Add(1)
			return nil
		})
	}, append(chain, streams.LazyDecode())...)
	eventually(t, time.Minute, "every event handled", func() bool { return handled.Load() >= int64(len(good)) })
	dlq := consume(t, b, 2, dlqTopic)
	r.stop(t)
	checkNoAnomalies(t, chk.Report())
	if n := decodedAtEntry.Load(); n != 0 {
		t.Errorf("%d chains started with the record decoded", n)
	}
	if n := mismatched.Load(); n != 0 {
		t.Errorf("Decode gave %d envelopes whose eventId is not their header's", n)
	}
	classes := map[string]int{}
	for _, d := range dlq {
		classes[streams.Header(d, streams.HeaderDLQErrorClass)]++
	}
	if classes[streams.ClassInvalidIdentifier] != 1 || classes[streams.ClassDecode] != 1 {
		t.Errorf("dead letters by class %v, want one invalid-identifier and one decode", classes)
	}
	checkCommittedAtEnd(t, b, r.c.Group(), good[0].Topic)
}
