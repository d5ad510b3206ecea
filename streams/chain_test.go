package streams_test

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestConsumerFullChain runs the whole consumer chain as UseStandard assembles it (dedup on Redis,
// registered as the batch preparer too, dead letters outside retry)
// over 20,000 events of 200 tenants with poison records mixed in, handlers failing transiently on
// 20% of the events and permanently on chosen ones: every event is handled exactly once and in
// order except the permanent ones, which end in the dead-letter topic with their headers, together
// with the poison records, and nothing else does.
func TestConsumerFullChain(t *testing.T) {
	redisURL := streamstest.RedisBackends(t)["redis"]
	if redisURL == "" {
		redisURL = streamstest.RedisBackends(t)["miniredis"]
	}
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, cat := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per = 200, 100
			recs := buildEvents(t, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			permanent := map[string]bool{}
			transient := map[string]bool{}
			for i, r := range recs {
				id := streams.Header(r, streams.HeaderEventID)
				h := fnv.New32a()
				h.Write([]byte(id))
				switch {
				case i%997 == 13:
					permanent[id] = true
				case h.Sum32()%5 == 0:
					transient[id] = true
				}
			}
			// poison: undecodable values on the same topic, between each tenant's events
			var poison []*kgo.Record
			for i := range 50 {
				poison = append(poison, &kgo.Record{Topic: recs[0].Topic, Key: fmt.Appendf(nil, "tenant-%03d", i*4),
					Value: []byte{0x00, 0x00, 0x0f, 0x42, 0x3f, 0x02}, Headers: []kgo.RecordHeader{{Key: streams.HeaderEventType, Value: []byte("service.ordered")}}})
			}
			produceRecords(t, b, recs[:len(recs)/2])
			produceRecords(t, b, poison)
			produceRecords(t, b, recs[len(recs)/2:])

			opts, err := redis.ParseURL(redisURL)
			if err != nil {
				t.Fatal(err)
			}
			rdb := redis.NewClient(opts)
			t.Cleanup(func() { rdb.Close() })
			sys, _ := cat.System("hotel-pms")
			dedup, err := streams.NewDedup(rdb, streamstest.Name(t, "group"))
			if err != nil {
				t.Fatal(err)
			}
			dl, err := streams.NewDeadLetters(streamstest.Writer(t, b, cat, "hotel-pms"), sys.DeadLetterTopic)
			if err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			attempts := map[string]int{}
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					id := m.Envelope.EventID
					mu.Lock()
					attempts[id]++
					n := attempts[id]
					mu.Unlock()
					switch {
					case permanent[id]:
						handled.Add(1)
						return streams.Permanent(errors.New("order refers to an unknown room"))
					case transient[id] && n == 1:
						return errors.New("PMS briefly unavailable")
					}
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, id, seqOf(m))
					handled.Add(1)
					return nil
				})
			}, streams.UseStandard(streams.StandardChain{Dedup: dedup, DeadLetters: dl,
				Retry: []streams.RetryOption{streams.RetryBackoff(time.Millisecond, 10*time.Millisecond)}}))
			eventually(t, 3*time.Minute, "every event handled or given up", func() bool { return handled.Load() >= int64(len(recs)) })

			dlq := consume(t, b, len(permanent)+len(poison), sys.DeadLetterTopic)
			r.stop(t)
			rep := chk.Report()
			if len(rep.Duplicated) != 0 || len(rep.OutOfOrder) != 0 {
				t.Errorf("duplicated %d, out of order %d: %v %v", len(rep.Duplicated), len(rep.OutOfOrder), rep.Duplicated, rep.OutOfOrder)
			}
			lost := slices.Clone(rep.Lost)
			slices.Sort(lost)
			var want []string
			for id := range permanent {
				want = append(want, id)
			}
			slices.Sort(want)
			if !slices.Equal(lost, want) {
				t.Errorf("%d events never handled, want exactly the %d permanent failures", len(lost), len(want))
			}
			classes := map[string]int{}
			for _, d := range dlq {
				class := streams.Header(d, streams.HeaderDLQErrorClass)
				classes[class]++
				for _, h := range []string{streams.HeaderDLQTopic, streams.HeaderDLQPartition, streams.HeaderDLQOffset, streams.HeaderDLQGroup, streams.HeaderDLQErrorMessage, streams.HeaderDLQAttempts} {
					if streams.Header(d, h) == "" {
						t.Errorf("dead letter of class %s lacks header %s", class, h)
					}
				}
				if id := streams.Header(d, streams.HeaderEventID); class != streams.ClassDecode && !permanent[id] {
					t.Errorf("event %s (class %s) was dead-lettered but only permanent failures may be", id, class)
				}
			}
			if classes[streams.ClassDecode] != len(poison) || classes[streams.ClassPermanent] != len(permanent) {
				t.Errorf("dead letters by class %v, want %d decode and %d permanent", classes, len(poison), len(permanent))
			}
			retried := 0
			for id := range transient {
				if attempts[id] >= 2 {
					retried++
				}
			}
			t.Logf("%s: %d handled once, %d retried after a transient failure, %d dead-lettered (%v); dedup hits %d, round trips %d",
				b.Name, rep.Handled, retried, len(dlq), classes, dedup.Hits(), dedup.RoundTrips())
			if retried != len(transient) {
				t.Errorf("%d of %d transient failures retried", retried, len(transient))
			}
			checkCommittedAtEnd(t, b, r.c.Group(), recs[0].Topic)
		})
	}
}

// TestConsumerRedisRestart: Redis goes away in the middle of consumption and comes back with its
// data (a restart of a persistent Redis). Dedup fails closed: nothing is handled without it (but
// the handlers running when it went and, with their leases, at most DedupMaxUnmarked events whose
// done marks were not acknowledged yet), and no event is lost, handled twice or out of order.
func TestConsumerRedisRestart(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b)
			chk := streamstest.NewChecker()
			const tenants, per, inFlight, unmarked = 200, 100, 64, 64
			publishMany(t, b, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			mr := miniredis.RunT(t)
			rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
			t.Cleanup(func() { rdb.Close() })
			dedup, err := streams.NewDedup(rdb, streamstest.Name(t, "group"), streams.DedupBackoff(10*time.Millisecond, 200*time.Millisecond),
				streams.DedupLogger(slog.New(slog.DiscardHandler)), streams.DedupMaxUnmarked(unmarked))
			if err != nil {
				t.Fatal(err)
			}
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					time.Sleep(50 * time.Microsecond)
					return nil
				})
			}, streams.Use(dedup.Middleware(), streams.Retry(streams.RetryBackoff(time.Millisecond, 10*time.Millisecond))), streams.UsePreparer(dedup),
				streams.MaxInFlight(inFlight)) // the bound below, with unmarked
			eventually(t, time.Minute, "a quarter handled", func() bool { return handled.Load() >= tenants*per/4 })
			mr.Close()
			down := handled.Load()
			time.Sleep(time.Second) // Redis stays away for a second: handlers in flight finish, nothing new starts
			during := handled.Load() - down
			if err := mr.Restart(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 3*time.Minute, "every event handled", func() bool { return handled.Load() >= tenants*per })
			r.stop(t)
			checkNoAnomalies(t, chk.Report())
			t.Logf("%s: %d handled while Redis was down (in flight when it went), %d in all", b.Name, during, handled.Load())
			if during > inFlight+unmarked {
				t.Errorf("%d events handled while Redis was down: dedup did not fail closed", during)
			}
		})
	}
}

// TestConsumerBrokerRestart: the broker stops and starts again in the middle of consumption (an
// Apache Kafka process under make test; kfake persisting to disk otherwise). The group loses its
// partitions while the broker is away and gets them back after the restart. No event is lost,
// handled twice or out of order; records handled but not committed before the stop are delivered
// again and skipped by dedup.
//
// Dedup runs on miniredis, whose keys never expire by themselves (it has no clock of its own): a
// lease that the consumer took for a record and did not give back when it lost the partition
// would block that record's key for good, so the test also shows that leases are released.
func TestConsumerBrokerRestart(t *testing.T) {
	for _, b := range streamstest.RestartableBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			serde, _ := isolated(t, b.Backend)
			chk := streamstest.NewChecker()
			const tenants, per = 200, 100
			publishMany(t, b.Backend, serde, chk, []eventSpec{byTenant("service.ordered")}, tenants, per)
			rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
			t.Cleanup(func() { rdb.Close() })
			dedup, err := streams.NewDedup(rdb, streamstest.Name(t, "group"), streams.DedupLogger(slog.New(slog.DiscardHandler)))
			if err != nil {
				t.Fatal(err)
			}
			var handled atomic.Int64
			r := startConsumer(t, "hotel-pms", b.Backend, serde, func(c *streams.Consumer) {
				c.HandleType("service.ordered", func(_ context.Context, m *streams.Message) error {
					chk.Handled(m.Record.Topic+"/"+m.Envelope.Metadata.TenantID, m.Envelope.EventID, seqOf(m))
					handled.Add(1)
					time.Sleep(100 * time.Microsecond)
					return nil
				})
			}, streams.Use(dedup.Middleware(), streams.Retry()), streams.UsePreparer(dedup))
			eventually(t, time.Minute, "a quarter handled", func() bool { return handled.Load() >= tenants*per/4 })
			b.Stop(t)
			b.Start(t)
			eventually(t, 3*time.Minute, "every event handled", func() bool { return handled.Load() >= tenants*per })
			r.stop(t)
			checkNoAnomalies(t, chk.Report())
			t.Logf("%s: %d handler calls for %d events; %d redeliveries skipped by dedup, %d waited for a lease",
				b.Name, handled.Load(), tenants*per, dedup.Hits(), dedup.Waits())
		})
	}
}
