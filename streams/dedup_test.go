package streams_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// redisBackend is one Redis a dedup test runs against.
type redisBackend struct {
	name string
	url  string
	// expires is false for a miniredis whose clock does not run: its keys never expire by
	// themselves.
	expires bool
}

// dedupBackends returns streamstest.RedisBackends (miniredis, and the real redis-server under
// `make test`) plus a miniredis whose clock follows real time, so that lease expiry is exercised
// in process too, and under `make test` the rig's Redis Cluster of three masters: every multi-key
// operation of Dedup must stay within one hash slot (a CROSSSLOT error fails the test).
func dedupBackends(t *testing.T) []redisBackend {
	t.Helper()
	var out []redisBackend
	for name, url := range streamstest.RedisBackends(t) {
		out = append(out, redisBackend{name: name, url: url, expires: name != "miniredis"})
	}
	if url := streamstest.RedisCluster(t); url != "" {
		out = append(out, redisBackend{name: "cluster", url: url, expires: true})
	}
	return append(out, redisBackend{name: "miniredis-clock", url: "redis://" + clockedMiniredis(t, 5*time.Millisecond).Addr(), expires: true})
}

// clockedMiniredis starts a miniredis whose keys expire with the passing of real time: every
// tick it fast-forwards by the time since the last one. A key set just after a tick loses that
// whole next tick, and a key lives on until the tick after its end: keys expire up to one tick
// early or late. Each FastForward sorts and
// walks every key under miniredis's one lock: a test holding some 10^5 keys (TestConsumerKill9)
// needs a long tick, or its Redis calls wait behind the clock until they time out; a test of
// lease timing needs a short one.
func clockedMiniredis(t *testing.T, tick time.Duration) *miniredis.Miniredis {
	t.Helper()
	mr := miniredis.RunT(t)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		last := time.Now()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for {
			select {
			case <-stop:
				return
			case now := <-ticker.C:
				mr.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return mr
}

// countHook counts the commands and pipelines a Redis client sends, leaving out the handshake
// of new connections (HELLO, CLIENT ..., AUTH, SELECT), which go-redis also runs through hooks.
type countHook struct{ n atomic.Int64 }

func (h *countHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *countHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (h *countHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if slices.ContainsFunc(cmds, func(c redis.Cmder) bool { return !handshake(c) }) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

func handshake(cmd redis.Cmder) bool {
	switch strings.ToLower(cmd.Name()) {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

// countedRedis returns a client for url (any form streams.NewRedisClient takes) with a
// countHook, closed when the test ends. tune adjusts the options of a redis:// URL.
func countedRedis(t *testing.T, url string, tune ...func(*redis.Options)) (redis.UniversalClient, *countHook) {
	t.Helper()
	var rdb redis.UniversalClient
	if len(tune) > 0 {
		opts, err := redis.ParseURL(url)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tune {
			f(opts)
		}
		rdb = redis.NewClient(opts)
	} else {
		var err error
		if rdb, err = streams.NewRedisClient(url); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = rdb.Close() })
	h := &countHook{}
	rdb.AddHook(h)
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("ping %s: %v", url, err)
	}
	return rdb, h
}

// isDone reports d.IsDone of the event, failing t on a Redis error.
func isDone(t testing.TB, d *streams.Dedup, source, eventID string) bool {
	t.Helper()
	done, err := d.IsDone(context.Background(), source, eventID)
	if err != nil {
		t.Fatalf("IsDone(%s, %s): %v", source, eventID, err)
	}
	return done
}

func newDedup(t *testing.T, rdb redis.UniversalClient, group string, opts ...streams.DedupOption) *streams.Dedup {
	t.Helper()
	d, err := streams.NewDedup(rdb, group, append([]streams.DedupOption{streams.DedupBackoff(5*time.Millisecond, 50*time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// goldenEvents returns a function making envelopes parsed from eventType's golden example, each
// with a fresh eventId.
func goldenEvents(t testing.TB, eventType string) func() *streams.Envelope {
	t.Helper()
	set, cat := loadAll(t)
	serde, _ := newSerde(t, set, cat)
	v, ok := serde.Schemas().Latest(eventType)
	if !ok {
		t.Fatalf("no schema for %s", eventType)
	}
	return func() *streams.Envelope {
		env, err := serde.ParseJSON(v.Example)
		if err != nil {
			t.Fatal(err)
		}
		env.EventID = uuid.NewString()
		return env
	}
}

// dedupMsg wraps env as the consumer would hand it over, fetched from topic/partition@offset.
func dedupMsg(env *streams.Envelope, group, topic string, partition int32, offset int64) *streams.Message {
	return &streams.Message{
		Envelope: env,
		Group:    group,
		Record: &kgo.Record{
			Topic: topic, Partition: partition, Offset: offset,
			Key: []byte(env.Metadata.TenantID), Headers: streams.Headers(env),
			Timestamp: env.Timestamp,
		},
	}
}

// callCounter is a handler counting its calls per eventId.
type callCounter struct {
	mu    sync.Mutex
	calls map[string]int
}

func (c *callCounter) handle(_ context.Context, m *streams.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.calls == nil {
		c.calls = map[string]int{}
	}
	c.calls[m.Envelope.EventID]++
	return nil
}

func (c *callCounter) get(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls[id]
}

func (c *callCounter) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.calls {
		n += v
	}
	return n
}

// TestDedupBatch: Prepare checks a whole batch in exactly one Redis round trip; each event is
// handled once and is done afterwards: its hash-tagged key holds its lease for the done TTL, and
// the lease's token is in its owner's done set, which outlives the key; redelivered copies are
// committed without calling the handler, after two round trips (the keys, then the done sets).
func TestDedupBatch(t *testing.T) {
	events := goldenEvents(t, "reservation.created")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, hook := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group, streams.DedupLease(time.Minute), streams.DedupDoneTTL(48*time.Hour))
			var cnt callCounter
			h := d.Middleware()(cnt.handle)

			const n = 50
			var envs []*streams.Envelope
			var batch []*streams.Message
			for i := range n {
				env := events()
				envs = append(envs, env)
				batch = append(batch, dedupMsg(env, group, "t.reservations", int32(i%3), int64(i)))
			}
			// A poison record passes through dedup untouched.
			poison := &streams.Message{DecodeErr: errors.New("bad magic byte"), Group: group,
				Record: &kgo.Record{Topic: "t.reservations", Offset: n, Key: []byte("tenant")}}
			batch = append(batch, poison)

			before := hook.n.Load()
			if err := d.Prepare(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if got := hook.n.Load() - before; got != 1 {
				t.Fatalf("Prepare of %d messages made %d Redis calls, want 1", len(batch), got)
			}
			if d.RoundTrips() != 1 || d.Acquired() != n {
				t.Fatalf("RoundTrips=%d Acquired=%d, want 1 and %d", d.RoundTrips(), d.Acquired(), n)
			}
			poisonCalls := 0
			poisonH := d.Middleware()(func(context.Context, *streams.Message) error { poisonCalls++; return nil })
			if err := poisonH(ctx, poison); err != nil || poisonCalls != 1 {
				t.Fatalf("poison record: err=%v calls=%d, want it passed through once", err, poisonCalls)
			}
			for _, m := range batch[:n] {
				if err := h(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			for _, env := range envs {
				if c := cnt.get(env.EventID); c != 1 {
					t.Fatalf("event %s handled %d times", env.EventID, c)
				}
				key := "hotelbus:dedup:{" + group + "}:" + env.Metadata.Source + ":" + env.EventID // the documented key
				v, err := rdb.Get(ctx, key).Result()
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				ttl := rdb.PTTL(ctx, key).Val()
				if ttl <= 47*time.Hour || ttl > 48*time.Hour {
					t.Fatalf("%s TTL %v, want the done TTL 48h", key, ttl)
				}
				// The documented done set: <owner>:<sequence / 512, base 36>, member sequence % 512.
				token, _, _ := strings.Cut(v, "|")
				owner, seq, _ := strings.Cut(token, ":")
				n, err := strconv.ParseUint(seq, 36, 64)
				if err != nil {
					t.Fatalf("%s = %q: no lease token", key, v)
				}
				set := "hotelbus:dedup-done:{" + group + "}:" + owner + ":" + strconv.FormatUint(n/512, 36)
				if !rdb.SIsMember(ctx, set, n%512).Val() {
					t.Fatalf("%s = %q: not in the done set %s", key, v, set)
				}
				// Read after the key's: allow for the time between the two reads.
				if setTTL := rdb.PTTL(ctx, set).Val(); setTTL < ttl-time.Second || setTTL > 48*time.Hour {
					t.Fatalf("done set %s TTL %v, want at least the key's %v and at most 48h", set, setTTL, ttl)
				}
				if !isDone(t, d, env.Metadata.Source, env.EventID) {
					t.Fatalf("%s: IsDone false after the handler", key)
				}
			}

			// Redelivery of the same events, in another order and partition: all skipped, including
			// a copy not decoded yet because the registry was unreachable (deduplicated by its
			// eventId header).
			var again []*streams.Message
			for i := n - 1; i >= 1; i-- {
				again = append(again, dedupMsg(envs[i], group, "t.reservations", 7, int64(100+i)))
			}
			undecoded := dedupMsg(envs[0], group, "t.reservations", 8, 1)
			undecoded.Envelope, undecoded.DecodeErr = nil, fmt.Errorf("decode: %w", streams.ErrRegistry)
			again = append(again, undecoded)
			before = hook.n.Load()
			if err := d.Prepare(ctx, again); err != nil {
				t.Fatal(err)
			}
			if got := hook.n.Load() - before; got != 2 {
				t.Fatalf("second Prepare made %d Redis calls, want 2 (the keys, then their owner's done sets)", got)
			}
			for _, m := range again {
				if err := h(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if cnt.total() != n || d.Hits() != n || d.Acquired() != n {
				t.Fatalf("after redelivery: %d handler calls, Hits=%d Acquired=%d; want %d, %d, %d",
					cnt.total(), d.Hits(), d.Acquired(), n, n, n)
			}
			if got := hook.n.Load() - before; got != 2 {
				t.Fatalf("skipping done events made %d extra Redis calls", got-2)
			}

			// Another group handles the same events independently.
			other := newDedup(t, rdb, group+"-other")
			var cnt2 callCounter
			m := dedupMsg(envs[n-1], group+"-other", "t.reservations", 7, 100)
			if err := other.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			if err := other.Middleware()(cnt2.handle)(ctx, m); err != nil || cnt2.total() != 1 {
				t.Fatalf("other group: err=%v calls=%d, want 1 call", err, cnt2.total())
			}
		})
	}
}

// TestDedupFailureReleases: a failed handler's lease is deleted and its error returned, so that
// a redelivery handles the event again.
func TestDedupFailureReleases(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group)
			env := events()
			boom := errors.New("downstream unavailable")
			calls := 0
			h := d.Middleware()(func(context.Context, *streams.Message) error {
				calls++
				if calls == 1 {
					return boom
				}
				return nil
			})
			m := dedupMsg(env, group, "t.billing", 0, 5)
			if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			if err := h(ctx, m); !errors.Is(err, boom) {
				t.Fatalf("handler error = %v, want %v", err, boom)
			}
			if n := rdb.Exists(ctx, d.Key(env.Metadata.Source, env.EventID)).Val(); n != 0 {
				t.Fatalf("lease still held after the failure")
			}
			m = dedupMsg(env, group, "t.billing", 0, 5)
			if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			if err := h(ctx, m); err != nil || calls != 2 {
				t.Fatalf("redelivery: err=%v calls=%d, want handled again", err, calls)
			}
			if !isDone(t, d, env.Metadata.Source, env.EventID) {
				t.Fatalf("key = %q after the successful redelivery, not done", rdb.Get(ctx, d.Key(env.Metadata.Source, env.EventID)).Val())
			}
		})
	}
}

// TestDedupWaitsForForeignLease: an event leased by another consumer is not skipped: the handler
// waits until the other owner finishes, then commits without handling; when the other owner fails
// instead, the waiting consumer handles the event; a lease abandoned by a crashed owner is taken
// once it expires.
func TestDedupWaitsForForeignLease(t *testing.T) {
	events := goldenEvents(t, "customer.updated")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			group := streamstest.Name(t, "g")
			rdbA, _ := countedRedis(t, rb.url)
			rdbB, hookB := countedRedis(t, rb.url)
			a := newDedup(t, rdbA, group)
			b := newDedup(t, rdbB, group)

			for _, ownerFails := range []bool{false, true} {
				env := events()
				mA := dedupMsg(env, group, "t.customers", 1, 10)
				mB := dedupMsg(env, group, "t.customers", 1, 10)
				if err := a.Prepare(ctx, []*streams.Message{mA}); err != nil {
					t.Fatal(err)
				}
				if err := b.Prepare(ctx, []*streams.Message{mB}); err != nil {
					t.Fatal(err)
				}
				release := make(chan struct{})
				aDone := make(chan error, 1)
				go func() {
					aDone <- a.Middleware()(func(context.Context, *streams.Message) error {
						<-release
						if ownerFails {
							return errors.New("owner failed")
						}
						return nil
					})(ctx, mA)
				}()
				var bCalls atomic.Int32
				bDone := make(chan error, 1)
				polls := hookB.n.Load()
				go func() {
					bDone <- b.Middleware()(func(context.Context, *streams.Message) error { bCalls.Add(1); return nil })(ctx, mB)
				}()
				// B polls Redis while A holds the lease, and neither returns nor handles.
				waitUntil(t, func() bool { return hookB.n.Load() >= polls+3 })
				select {
				case err := <-bDone:
					t.Fatalf("B returned (%v) while A held the lease", err)
				default:
				}
				close(release)
				if err := <-aDone; (err != nil) != ownerFails {
					t.Fatalf("A: %v", err)
				}
				if err := <-bDone; err != nil {
					t.Fatal(err)
				}
				if want := map[bool]int32{false: 0, true: 1}[ownerFails]; bCalls.Load() != want {
					t.Fatalf("owner failed=%v: B handled %d times, want %d", ownerFails, bCalls.Load(), want)
				}
			}
			if b.Waits() != 2 || b.Hits() != 1 {
				t.Fatalf("B: Waits=%d Hits=%d, want 2 and 1", b.Waits(), b.Hits())
			}

			if !rb.expires {
				return
			}
			// A crashed owner's lease (never finished, never released) is taken once expired.
			env := events()
			if err := rdbA.Set(ctx, a.Key(env.Metadata.Source, env.EventID), "crashed-owner", 200*time.Millisecond).Err(); err != nil {
				t.Fatal(err)
			}
			m := dedupMsg(env, group, "t.customers", 2, 3)
			if err := b.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			calls := 0
			if err := b.Middleware()(func(context.Context, *streams.Message) error { calls++; return nil })(ctx, m); err != nil || calls != 1 {
				t.Fatalf("after the crashed owner's lease: err=%v calls=%d", err, calls)
			}
			if el := time.Since(start); el < 150*time.Millisecond {
				t.Fatalf("took the lease after %v, before it expired", el)
			}
		})
	}
}

// TestDedupExtendsLease: a handler running longer than the lease keeps it (the lease is
// extended), so another consumer never handles the event concurrently and skips it afterwards.
func TestDedupExtendsLease(t *testing.T) {
	events := goldenEvents(t, "service.ordered")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			group := streamstest.Name(t, "g")
			rdbA, _ := countedRedis(t, rb.url)
			rdbB, _ := countedRedis(t, rb.url)
			const lease = 300 * time.Millisecond
			a := newDedup(t, rdbA, group, streams.DedupLease(lease))
			b := newDedup(t, rdbB, group, streams.DedupLease(lease), streams.DedupBackoff(20*time.Millisecond, 20*time.Millisecond))
			env := events()
			mA := dedupMsg(env, group, "t.services", 0, 1)
			if err := a.Prepare(ctx, []*streams.Message{mA}); err != nil {
				t.Fatal(err)
			}
			var running, bCalls atomic.Int32
			var ttlSeen atomic.Int64
			aDone := make(chan error, 1)
			go func() {
				aDone <- a.Middleware()(func(context.Context, *streams.Message) error {
					running.Store(1)
					defer running.Store(0)
					time.Sleep(time.Second) // the slow handler under test: 3 leases long
					// The lease's deadline is the end of its value ("<token>|<Unix ms>").
					v := rdbA.Get(ctx, a.Key(env.Metadata.Source, env.EventID)).Val()
					ms, _ := strconv.ParseInt(v[strings.LastIndexByte(v, '|')+1:], 10, 64)
					ttlSeen.Store(int64(time.Until(time.UnixMilli(ms))))
					return nil
				})(ctx, mA)
			}()
			waitUntil(t, func() bool { return running.Load() == 1 })
			// B sees the event again and again while A runs: it must never handle it.
			bDone := make(chan error, 1)
			go func() {
				mB := dedupMsg(env, group, "t.services", 0, 1)
				if err := b.Prepare(ctx, []*streams.Message{mB}); err != nil {
					bDone <- err
					return
				}
				bDone <- b.Middleware()(func(context.Context, *streams.Message) error {
					bCalls.Add(1)
					if running.Load() == 1 {
						return errors.New("handled concurrently with the lease holder")
					}
					return nil
				})(ctx, mB)
			}()
			if err := <-aDone; err != nil {
				t.Fatal(err)
			}
			if err := <-bDone; err != nil {
				t.Fatal(err)
			}
			if bCalls.Load() != 0 || b.Hits() != 1 {
				t.Fatalf("B handled %d times (Hits=%d): want skipped as done", bCalls.Load(), b.Hits())
			}
			if ttl := time.Duration(ttlSeen.Load()); ttl <= 0 || ttl > lease {
				t.Fatalf("lease deadline after 1s of handling in %v, want within (0, %v]", ttl, lease)
			}
		})
	}
}

// TestDedupDualPublished: the copies of one event published in two versions (same eventId) are
// handled once, whether they arrive in the same batch or in later ones.
func TestDedupDualPublished(t *testing.T) {
	events := goldenEvents(t, "reservation.updated")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, hook := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group)
			var cnt callCounter
			h := d.Middleware()(cnt.handle)

			v1 := events()
			v2 := *v1
			v2.Version = "2.0"
			m1 := dedupMsg(v1, group, "t.reservations", 0, 1)
			m2 := dedupMsg(&v2, group, "t.reservations-v2", 0, 1)
			before := hook.n.Load()
			if err := d.Prepare(ctx, []*streams.Message{m1, m2}); err != nil {
				t.Fatal(err)
			}
			if hook.n.Load()-before != 1 {
				t.Fatalf("Prepare made %d Redis calls", hook.n.Load()-before)
			}
			// Different topics: the consumer may run both at once.
			var wg sync.WaitGroup
			errs := make(chan error, 2)
			for _, m := range []*streams.Message{m2, m1} {
				wg.Go(func() { errs <- h(ctx, m) })
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			m3 := dedupMsg(&v2, group, "t.reservations-v2", 0, 1)
			if err := d.Prepare(ctx, []*streams.Message{m3}); err != nil {
				t.Fatal(err)
			}
			if err := h(ctx, m3); err != nil {
				t.Fatal(err)
			}
			if c := cnt.get(v1.EventID); c != 1 {
				t.Fatalf("dual-published event handled %d times, want 1", c)
			}
			if d.Hits() != 2 || d.Acquired() != 1 {
				t.Fatalf("Hits=%d Acquired=%d, want 2 and 1", d.Hits(), d.Acquired())
			}
		})
	}
}

// TestDedupRelease: leases of prepared messages that will not be handled are given back at once.
func TestDedupRelease(t *testing.T) {
	events := goldenEvents(t, "points.added")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			a := newDedup(t, rdb, group)
			b := newDedup(t, rdb, group)
			var batch []*streams.Message
			for i := range 5 {
				batch = append(batch, dedupMsg(events(), group, "t.points", 0, int64(i)))
			}
			if err := a.Prepare(ctx, batch); err != nil {
				t.Fatal(err)
			}
			var cnt callCounter
			if err := a.Middleware()(cnt.handle)(ctx, batch[0]); err != nil {
				t.Fatal(err)
			}
			if err := a.Release(ctx, batch); err != nil {
				t.Fatal(err)
			}
			var again []*streams.Message
			for _, m := range batch {
				again = append(again, dedupMsg(m.Envelope, group, "t.points", 0, m.Record.Offset))
			}
			if err := b.Prepare(ctx, again); err != nil {
				t.Fatal(err)
			}
			for _, m := range again {
				if err := b.Middleware()(cnt.handle)(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			if cnt.total() != 5 || b.Acquired() != 4 || b.Hits() != 1 || b.Waits() != 0 {
				t.Fatalf("calls=%d Acquired=%d Hits=%d Waits=%d; want 5, 4, 1, 0", cnt.total(), b.Acquired(), b.Hits(), b.Waits())
			}
		})
	}
}

// logCapture is a slog handler that counts records by level and signals each one.
type logCapture struct {
	mu     sync.Mutex
	counts map[slog.Level]int
	msgs   []string
	seen   chan struct{}
}

func newLogCapture() *logCapture {
	return &logCapture{counts: map[slog.Level]int{}, seen: make(chan struct{}, 1000)}
}

func (c *logCapture) Enabled(context.Context, slog.Level) bool { return true }
func (c *logCapture) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	c.counts[r.Level]++
	c.msgs = append(c.msgs, r.Message)
	c.mu.Unlock()
	select {
	case c.seen <- struct{}{}:
	default:
	}
	return nil
}
func (c *logCapture) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *logCapture) WithGroup(string) slog.Handler      { return c }

func (c *logCapture) count(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[l]
}

// waitLogs waits for n more log records.
func (c *logCapture) waitLogs(t *testing.T, n int) {
	t.Helper()
	for range n {
		select {
		case <-c.seen:
		case <-time.After(10 * time.Second):
			t.Fatalf("no log record in 10s")
		}
	}
}

// failFast makes a client report an unreachable Redis at once, without go-redis's own retries, so
// that the middleware's backoff is what the outage tests exercise.
func failFast(o *redis.Options) { o.MaxRetries, o.DialerRetries = -1, 1 }

// TestDedupFailClosed: while Redis is unreachable nothing is handled: Prepare and the middleware
// back off and log until Redis answers again (restarted, empty, on the same address), then
// proceed. It needs a Redis the test may stop: its own miniredis.
func TestDedupFailClosed(t *testing.T) {
	events := goldenEvents(t, "member.registered")
	ctx := testCtx(t)
	mr := miniredis.NewMiniRedis()
	if err := mr.Start(); err != nil {
		t.Fatal(err)
	}
	addr := mr.Addr()
	rdb, _ := countedRedis(t, "redis://"+addr, failFast)
	logs := newLogCapture()
	group := streamstest.Name(t, "g")
	d := newDedup(t, rdb, group, streams.DedupLogger(slog.New(logs)))
	var cnt callCounter
	h := d.Middleware()(cnt.handle)

	batch := []*streams.Message{dedupMsg(events(), group, "t.members", 0, 1), dedupMsg(events(), group, "t.members", 0, 2)}
	unprepared := dedupMsg(events(), group, "t.members", 1, 1)
	mr.Close()

	// A canceled context ends the wait.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Prepare(cctx, batch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Prepare with a canceled context while Redis is down = %v", err)
	}

	prepared := make(chan error, 1)
	go func() { prepared <- d.Prepare(ctx, batch) }()
	handled := make(chan error, 1)
	go func() { handled <- h(ctx, unprepared) }()
	logs.waitLogs(t, 6)
	select {
	case err := <-prepared:
		t.Fatalf("Prepare returned (%v) while Redis was down", err)
	case err := <-handled:
		t.Fatalf("the middleware returned (%v) while Redis was down", err)
	default:
	}
	if cnt.total() != 0 || logs.count(slog.LevelWarn) < 6 {
		t.Fatalf("while down: %d handler calls, %d warnings; want 0 and at least 6", cnt.total(), logs.count(slog.LevelWarn))
	}

	mr2 := miniredis.NewMiniRedis()
	if err := mr2.StartAddr(addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(mr2.Close)
	if err := <-prepared; err != nil {
		t.Fatal(err)
	}
	if err := <-handled; err != nil {
		t.Fatal(err)
	}
	for _, m := range batch {
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range append(batch, unprepared) {
		if c := cnt.get(m.Envelope.EventID); c != 1 {
			t.Fatalf("event handled %d times after Redis came back", c)
		}
		if v := mr2.Exists(d.Key(m.Envelope.Metadata.Source, m.Envelope.EventID)); !v {
			t.Fatalf("no dedup key for %s after Redis came back", m.Envelope.EventID)
		}
	}
	if logs.count(slog.LevelError) != 0 {
		t.Fatalf("fail-closed logged %d errors", logs.count(slog.LevelError))
	}
}

// TestDedupFailOpen: with DedupFailOpen, a batch is handled without dedup while Redis is
// unreachable, with an error-level log per batch.
func TestDedupFailOpen(t *testing.T) {
	events := goldenEvents(t, "member.status_changed")
	ctx := testCtx(t)
	mr := miniredis.RunT(t)
	rdb, _ := countedRedis(t, "redis://"+mr.Addr(), failFast)
	logs := newLogCapture()
	group := streamstest.Name(t, "g")
	d := newDedup(t, rdb, group, streams.DedupFailOpen(true), streams.DedupLogger(slog.New(logs)))
	var cnt callCounter
	h := d.Middleware()(cnt.handle)
	mr.Close()

	batch := []*streams.Message{dedupMsg(events(), group, "t.members", 0, 1), dedupMsg(events(), group, "t.members", 0, 2)}
	if err := d.Prepare(ctx, batch); err != nil {
		t.Fatal(err)
	}
	for _, m := range batch {
		if err := h(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if cnt.total() != 2 || d.Acquired() != 0 || d.RoundTrips() != 0 {
		t.Fatalf("calls=%d Acquired=%d RoundTrips=%d; want 2, 0, 0", cnt.total(), d.Acquired(), d.RoundTrips())
	}
	if n := logs.count(slog.LevelError); n != 1 {
		t.Fatalf("%d error-level logs for one batch, want 1: %v", n, logs.msgs)
	}
	if !strings.Contains(logs.msgs[0], "WITHOUT deduplication") {
		t.Fatalf("log %q does not say dedup is off", logs.msgs[0])
	}
}

// TestDedupConfig: invalid options and groups are refused with ErrConfig.
func TestDedupConfig(t *testing.T) {
	rdb, _ := countedRedis(t, "redis://"+miniredis.RunT(t).Addr())
	for name, tc := range map[string]struct {
		group string
		opts  []streams.DedupOption
	}{
		"empty group":       {group: ""},
		"brace in group":    {group: "a{b}"},
		"tiny lease":        {group: "g", opts: []streams.DedupOption{streams.DedupLease(time.Millisecond)}},
		"done below lease":  {group: "g", opts: []streams.DedupOption{streams.DedupDoneTTL(time.Second)}},
		"backoff inverted":  {group: "g", opts: []streams.DedupOption{streams.DedupBackoff(time.Second, time.Millisecond)}},
		"nil logger":        {group: "g", opts: []streams.DedupOption{streams.DedupLogger(nil)}},
		"zero backoff init": {group: "g", opts: []streams.DedupOption{streams.DedupBackoff(0, time.Second)}},
	} {
		if _, err := streams.NewDedup(rdb, tc.group, tc.opts...); !errors.Is(err, streams.ErrConfig) {
			t.Errorf("%s: err = %v, want ErrConfig", name, err)
		}
	}
	if _, err := streams.NewDedup(rdb, "hotel-pms"); err != nil {
		t.Errorf("defaults refused: %v", err)
	}
}

// testCtx returns a context that ends with the test or after a minute, so that a middleware that
// waits forever fails the test instead of hanging it.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitUntil polls cond until it holds, failing the test after 10 seconds.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestDedupOnDone: effects registered with OnDone are applied in the transaction that marks the
// event done, once per event: not when the handler fails, not by a second owner that finds the
// event done, and only the last registration of the attempt that succeeded.
func TestDedupOnDone(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group)
			env := events()
			ledger := "ledger:{" + d.Tag() + "}"
			attempt := 0
			h := d.Middleware()(func(_ context.Context, m *streams.Message) error {
				attempt++
				n := attempt
				d.OnDone(m, func(p redis.Pipeliner) { p.RPush(ctx, ledger, fmt.Sprintf("%s#%d", m.Envelope.EventID, n)) })
				if n == 1 {
					return errors.New("payment gateway timeout")
				}
				return nil
			})
			deliver := func() error {
				m := dedupMsg(env, group, "t.billing", 0, 5)
				if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
					t.Fatal(err)
				}
				return h(ctx, m)
			}
			if err := deliver(); err == nil {
				t.Fatal("first attempt: want the handler's error")
			}
			if n := rdb.LLen(ctx, ledger).Val(); n != 0 {
				t.Fatalf("effects of a failed attempt applied: ledger has %d entries", n)
			}
			for range 3 { // the success, then two redeliveries that find the event done
				if err := deliver(); err != nil {
					t.Fatal(err)
				}
			}
			got := rdb.LRange(ctx, ledger, 0, -1).Val()
			if want := []string{env.EventID + "#2"}; !slices.Equal(got, want) {
				t.Fatalf("ledger = %v, want %v", got, want)
			}
			if attempt != 2 || d.Hits() != 2 {
				t.Fatalf("handler ran %d times, %d dedup hits; want 2 and 2", attempt, d.Hits())
			}
			if !isDone(t, d, env.Metadata.Source, env.EventID) {
				t.Fatalf("key = %q, want done", rdb.Get(ctx, d.Key(env.Metadata.Source, env.EventID)).Val())
			}
		})
	}
}

// TestDedupOnDoneLostLease: when another owner took the event over while the handler ran (the
// lease expired), the first owner's effects are dropped: the new owner applies its own.
func TestDedupOnDoneLostLease(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	ctx := testCtx(t)
	rdb, _ := countedRedis(t, "redis://"+miniredis.RunT(t).Addr())
	group := streamstest.Name(t, "g")
	d := newDedup(t, rdb, group)
	env := events()
	ledger := "ledger:{" + d.Tag() + "}"
	h := d.Middleware()(func(_ context.Context, m *streams.Message) error {
		d.OnDone(m, func(p redis.Pipeliner) { p.RPush(ctx, ledger, "first owner") })
		rdb.Set(ctx, d.Key(env.Metadata.Source, env.EventID), "another-owner:1", time.Minute) // the lease moved on
		return nil
	})
	m := dedupMsg(env, group, "t.billing", 0, 5)
	if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
		t.Fatal(err)
	}
	if err := h(ctx, m); err != nil {
		t.Fatal(err)
	}
	if n := rdb.LLen(ctx, ledger).Val(); n != 0 {
		t.Fatalf("effects applied by an owner that had lost the lease: %v", rdb.LRange(ctx, ledger, 0, -1).Val())
	}
	if v := rdb.Get(ctx, d.Key(env.Metadata.Source, env.EventID)).Val(); v != "another-owner:1" {
		t.Fatalf("key = %q, want the other owner's lease untouched", v)
	}
}

// TestDedupDoneLeavesForeignLease: a handler that succeeded after its lease moved on to another
// owner (it expired while the handler ran, and was taken over) marks the event done in its own
// done set and leaves the key alone: the other owner, whose handler already runs, decides with
// its own mark. The first owner's success is still reported (its offset may be committed).
func TestDedupDoneLeavesForeignLease(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group)
			other := newDedup(t, rdb, group)
			env := events()
			key := d.Key(env.Metadata.Source, env.EventID)
			var taken *streams.Message
			h := d.Middleware()(func(context.Context, *streams.Message) error {
				rdb.Del(ctx, key) // the lease expired, and the other owner took the event
				taken = dedupMsg(env, group, "t.billing", 1, 5)
				return other.Prepare(ctx, []*streams.Message{taken})
			})
			m := dedupMsg(env, group, "t.billing", 0, 5)
			if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			if err := h(ctx, m); err != nil {
				t.Fatal(err)
			}
			held := rdb.Get(ctx, key).Val()
			if isDone(t, d, env.Metadata.Source, env.EventID) {
				t.Fatalf("key = %q: done by the first owner's mark, want the other owner's lease to decide", held)
			}
			calls := 0
			if err := other.Middleware()(func(context.Context, *streams.Message) error { calls++; return nil })(ctx, taken); err != nil || calls != 1 {
				t.Fatalf("other owner: err=%v calls=%d, want it to handle the event it took", err, calls)
			}
			if !isDone(t, d, env.Metadata.Source, env.EventID) {
				t.Fatalf("key = %q after the other owner's handler, want done", rdb.Get(ctx, key).Val())
			}
		})
	}
}

// TestDedupDoneAfterDeadline: an event marked done keeps its owner's lease in its key, past the
// lease's deadline; a redelivery after the deadline reads the owner's done set and skips the
// event, instead of taking the lease over and handling it again.
func TestDedupDoneAfterDeadline(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			const lease = 100 * time.Millisecond
			first := newDedup(t, rdb, group, streams.DedupLease(lease))
			again := newDedup(t, rdb, group, streams.DedupLease(lease))
			env := events()
			calls := 0
			handle := func(context.Context, *streams.Message) error { calls++; return nil }
			for i, d := range []*streams.Dedup{first, again} {
				m := dedupMsg(env, group, "t.billing", 0, 5)
				if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
					t.Fatal(err)
				}
				if err := d.Middleware()(handle)(ctx, m); err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					time.Sleep(2 * lease)
				}
			}
			if calls != 1 || again.Hits() != 1 || again.TakeOvers() != 0 {
				t.Fatalf("handled %d times, redelivery: Hits=%d TakeOvers=%d; want 1, 1, 0", calls, again.Hits(), again.TakeOvers())
			}
		})
	}
}

// TestDedupTakesOverExpiredLease: a lease whose owner crashed (never finished, never released) is
// taken over at its deadline, and the takeover is logged with the eventId and counted, because the
// crashed owner's attempt may have run its side effect. A live lease is never taken over.
func TestDedupTakesOverExpiredLease(t *testing.T) {
	events := goldenEvents(t, "reservation.created")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			group := streamstest.Name(t, "g")
			rdbA, _ := countedRedis(t, rb.url)
			rdbB, _ := countedRedis(t, rb.url)
			const lease = 400 * time.Millisecond
			var logs streamstest.LogBuffer
			logger := slog.New(slog.NewTextHandler(&logs, nil))
			crashed := newDedup(t, rdbA, group, streams.DedupLease(lease))
			b := newDedup(t, rdbB, group, streams.DedupLease(lease), streams.DedupLogger(logger),
				streams.DedupBackoff(20*time.Millisecond, 50*time.Millisecond))
			env := events()
			// The crashed owner took the lease and died before marking the event done.
			if err := crashed.Prepare(ctx, []*streams.Message{dedupMsg(env, group, "t.reservations", 0, 7)}); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			m := dedupMsg(env, group, "t.reservations", 0, 7)
			if err := b.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			calls := 0
			if err := b.Middleware()(func(context.Context, *streams.Message) error { calls++; return nil })(ctx, m); err != nil || calls != 1 {
				t.Fatalf("err=%v calls=%d, want the event handled once", err, calls)
			}
			if el := time.Since(start); el < lease*3/4 {
				t.Fatalf("took the lease over after %v, before its deadline (%v)", el, lease)
			}
			if b.TakeOvers() != 1 {
				t.Fatalf("TakeOvers = %d, want 1", b.TakeOvers())
			}
			out := logs.String()
			if !strings.Contains(out, "took over the expired lease") || !strings.Contains(out, "eventId="+env.EventID) {
				t.Fatalf("the takeover was not logged with the eventId:\n%s", out)
			}
			if !isDone(t, b, env.Metadata.Source, env.EventID) {
				t.Fatalf("key = %q after the handler, want done", rdbB.Get(ctx, b.Key(env.Metadata.Source, env.EventID)).Val())
			}
		})
	}
}

// lostReplyHook lets Redis apply the first pipeline and then reports it failed, as a connection
// broken after the request was sent does.
type lostReplyHook struct{ lost atomic.Bool }

func (h *lostReplyHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *lostReplyHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *lostReplyHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if err == nil && h.lost.CompareAndSwap(false, true) {
			return io.ErrUnexpectedEOF
		}
		return err
	}
}

// TestDedupPrepareAfterLostReply: when Prepare's round trip took the leases but its reply was
// lost, the retry finds the leases are its own (same owner token, the first deadline) and handles
// the events at once, instead of waiting for its own leases to expire and taking them over.
func TestDedupPrepareAfterLostReply(t *testing.T) {
	events := goldenEvents(t, "service.ordered")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			rdb.AddHook(&lostReplyHook{})
			const lease = 5 * time.Second
			d := newDedup(t, rdb, streamstest.Name(t, "g"), streams.DedupLease(lease))
			env := events()
			m := dedupMsg(env, "g", "t.services", 0, 1)
			start := time.Now()
			if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
				t.Fatal(err)
			}
			calls := 0
			if err := d.Middleware()(func(context.Context, *streams.Message) error { calls++; return nil })(ctx, m); err != nil || calls != 1 {
				t.Fatalf("err=%v calls=%d, want handled once", err, calls)
			}
			if el := time.Since(start); el > lease/2 || d.TakeOvers() != 0 || d.Waits() != 0 {
				t.Fatalf("handled after %v with %d takeovers and %d waits: the retry did not recognise its own lease", el, d.TakeOvers(), d.Waits())
			}
		})
	}
}

// slowRedisHook fails every pipeline of more than max commands the way a Redis that cannot answer
// them within the client's read timeout does, without sending them.
type slowRedisHook struct{ max, failed atomic.Int64 }

func (h *slowRedisHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (h *slowRedisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (h *slowRedisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if int64(len(cmds)) > h.max.Load() {
			h.failed.Add(1)
			err := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
			for _, c := range cmds {
				c.SetErr(err)
			}
			return err
		}
		return next(ctx, cmds)
	}
}

// TestDedupPrepareLargeBatchSlowRedis: a batch too large for Redis to answer in one round trip
// within the read timeout is checked in smaller round trips, instead of the same round trip being
// retried forever, and so are the done sets of its redelivery; once Redis answers again, Prepare
// grows back to one round trip per batch.
func TestDedupPrepareLargeBatchSlowRedis(t *testing.T) {
	events := goldenEvents(t, "service.ordered")
	rdb, cnt := countedRedis(t, streamstest.RedisBackends(t)["miniredis"])
	h := &slowRedisHook{}
	h.max.Store(1000)
	rdb.AddHook(h)
	d := newDedup(t, rdb, streamstest.Name(t, "g"))
	batch := func(n int) []*streams.Message {
		ms := make([]*streams.Message, n)
		for i := range ms {
			ms[i] = dedupMsg(events(), "g", "t.services", 0, int64(i))
		}
		return ms
	}
	ctx, cancel := context.WithTimeout(testCtx(t), 30*time.Second)
	defer cancel()
	ms := batch(5000)
	if err := d.Prepare(ctx, ms); err != nil {
		t.Fatalf("prepare of %d events with Redis answering at most %d at a time: %v (%d round trips failed)", len(ms), h.max.Load(), err, h.failed.Load())
	}
	calls := 0
	handle := d.Middleware()(func(context.Context, *streams.Message) error { calls++; return nil })
	for _, m := range ms {
		if err := handle(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if calls != len(ms) || d.TakeOvers() != 0 || d.Waits() != 0 {
		t.Fatalf("handled %d of %d, %d takeovers, %d waits: want each once, at once", calls, len(ms), d.TakeOvers(), d.Waits())
	}
	// Redelivered while Redis is still slow: the done sets are read in round trips Redis can
	// answer too, so that the middleware skips every event without a Redis call of its own.
	again := make([]*streams.Message, len(ms))
	for i, m := range ms {
		again[i] = dedupMsg(m.Envelope, "g", "t.services", 1, int64(i))
	}
	if err := d.Prepare(ctx, again); err != nil {
		t.Fatal(err)
	}
	before := cnt.n.Load()
	for _, m := range again {
		if err := handle(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if n := cnt.n.Load() - before; calls != len(ms) || d.Hits() != int64(len(ms)) || n != 0 {
		t.Fatalf("redelivery: %d handler calls, %d hits, %d Redis calls in the middleware; want %d, %d, 0", calls, d.Hits(), n, len(ms), len(ms))
	}
	h.max.Store(1 << 20) // Redis is fast again
	for range 8 {
		if err := d.Prepare(ctx, batch(5000)); err != nil {
			t.Fatal(err)
		}
	}
	trips := d.RoundTrips()
	if err := d.Prepare(ctx, batch(5000)); err != nil {
		t.Fatal(err)
	}
	if n := d.RoundTrips() - trips; n != 1 {
		t.Fatalf("a batch of 5,000 took %d round trips once Redis answered again, want 1", n)
	}
}

// TestDedupCountsKeysLost: a lease that Redis lost while its handler ran (a failover to a replica
// that had not received it; here the key is deleted) is counted in KeysLost and logged with the
// eventId, so that a duplicate it allowed is explained, when the owner next writes the key: the
// keeper's extension of a handler that runs on (which writes the lease back), or the OnDone
// transaction (which writes "done"). The event ends done either way.
func TestDedupCountsKeysLost(t *testing.T) {
	events := goldenEvents(t, "billing.paid")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			group := streamstest.Name(t, "g")
			var logs streamstest.LogBuffer
			d := newDedup(t, rdb, group, streams.DedupLease(300*time.Millisecond), streams.DedupLogger(slog.New(slog.NewTextHandler(&logs, nil))))
			reg := prometheus.NewRegistry()
			metrics, err := streams.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			metrics.ObserveDedup(d)
			for i, effects := range []bool{false, true} {
				env := events()
				key := d.Key(env.Metadata.Source, env.EventID)
				h := d.Middleware()(func(ctx context.Context, m *streams.Message) error {
					if err := rdb.Del(ctx, key).Err(); err != nil {
						return err
					}
					if effects {
						d.OnDone(m, func(p redis.Pipeliner) { p.Incr(ctx, "effects:{"+d.Tag()+"}") })
						return nil
					}
					eventually(t, 10*time.Second, "the keeper extends the lost lease", func() bool { return d.KeysLost() == int64(i+1) })
					return nil
				})
				m := dedupMsg(env, group, "t.billing", 0, int64(i))
				if err := d.Prepare(ctx, []*streams.Message{m}); err != nil {
					t.Fatal(err)
				}
				if err := h(ctx, m); err != nil {
					t.Fatal(err)
				}
				if !isDone(t, d, env.Metadata.Source, env.EventID) {
					t.Errorf("effects %v: key = %q, want done", effects, rdb.Get(ctx, key).Val())
				}
				if got := d.KeysLost(); got != int64(i+1) {
					t.Errorf("effects %v: KeysLost = %d, want %d", effects, got, i+1)
				}
				if got := metricValue(t, reg, "hotelbus_dedup_keys_lost_total", map[string]string{"group": group}); got != float64(i+1) {
					t.Errorf("effects %v: hotelbus_dedup_keys_lost_total = %v, want %d", effects, got, i+1)
				}
				if !strings.Contains(logs.String(), "Redis lost the lease") || !strings.Contains(logs.String(), env.EventID) {
					t.Errorf("effects %v: no warning naming the eventId:\n%s", effects, logs.String())
				}
			}
		})
	}
}

// gateHook holds every pipeline that marks events done (SADD to a done set) until open is closed.
type gateHook struct{ open chan struct{} }

func (gateHook) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (gateHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (g gateHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if args := c.Args(); c.Name() == "sadd" && len(args) > 1 && strings.HasPrefix(fmt.Sprint(args[1]), "hotelbus:dedup-done:") {
				<-g.open
				break
			}
		}
		return next(ctx, cmds)
	}
}

// TestDedupDoneMarksHoldCommits: a Consumer's handlers do not wait for their events' done marks
// (the next record of a key runs at once), but no offset is committed past an event whose mark
// Redis has not acknowledged: with the marks held back, every event is handled and nothing is
// committed; once they are written, the offsets reach the end.
func TestDedupDoneMarksHoldCommits(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, _ := isolated(t, b)
	chk := streamstest.NewChecker()
	const tenants, per = 5, 40
	recs := publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
	rdb, _ := countedRedis(t, "redis://"+miniredis.RunT(t).Addr())
	gate := gateHook{open: make(chan struct{})}
	rdb.AddHook(gate)
	d := newDedup(t, rdb, streamstest.Name(t, "group"))
	var handled atomic.Int64
	r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
		c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
			chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
			handled.Add(1)
			return nil
		})
	}, streams.Use(d.Middleware()), streams.UsePreparer(d))
	eventually(t, time.Minute, "every event handled with the done marks held back", func() bool { return handled.Load() == tenants*per })
	time.Sleep(500 * time.Millisecond) // five commit intervals
	committed, err := kadm.NewClient(b.Client(t)).FetchOffsets(context.Background(), r.c.Group())
	if err != nil {
		t.Fatal(err)
	}
	committed.Each(func(o kadm.OffsetResponse) {
		if o.At > 0 {
			t.Errorf("%s/%d: offset %d committed before any done mark was acknowledged", o.Topic, o.Partition, o.At)
		}
	})
	close(gate.open)
	eventually(t, time.Minute, "the offsets committed to the end", func() bool {
		return committedAtEnd(t, b, r.c.Group(), recs[0].Topic)
	})
	r.stop(t)
	checkNoAnomalies(t, chk.Report())
	if n := d.DoneRoundTrips(); n == 0 || n > 3 {
		t.Errorf("%d done round trips for %d events handled while the first was held: want them coalesced", n, tenants*per)
	}
}
