package streams_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// scriptHook counts the script calls (EVAL, EVALSHA) and the commands a Redis client sends.
type scriptHook struct{ scripts, cmds atomic.Int64 }

func (h *scriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptHook) count(cmd redis.Cmder) {
	if handshake(cmd) {
		return
	}
	h.cmds.Add(1)
	if n := strings.ToLower(cmd.Name()); n == "eval" || n == "evalsha" {
		h.scripts.Add(1)
	}
}

func (h *scriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.count(cmd)
		return next(ctx, cmd)
	}
}

func (h *scriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			h.count(c)
		}
		return next(ctx, cmds)
	}
}

// TestDedupDoneMarksNoScript: a batch's leases are taken with one command per event (SET NX GET,
// no script) in one round trip, and the done marks of handlers finishing together go out as one
// SADD (and the TTL's PEXPIRE) per done set, no command per event and no script (a script call
// costs Redis several times a SET per key), in a few round trips, not one per event; releasing a
// batch's unused leases is one script call. Every event is handled once and is done afterwards.
func TestDedupDoneMarksNoScript(t *testing.T) {
	events := goldenEvents(t, "reservation.created")
	for _, rb := range dedupBackends(t) {
		t.Run(rb.name, func(t *testing.T) {
			ctx := testCtx(t)
			rdb, _ := countedRedis(t, rb.url)
			hook := &scriptHook{}
			rdb.AddHook(hook)
			group := streamstest.Name(t, "g")
			d := newDedup(t, rdb, group, streams.DedupLease(time.Minute))
			const n = 200
			var batch []*streams.Message
			for i := range n {
				batch = append(batch, dedupMsg(events(), group, "t.reservations", int32(i%3), int64(i)))
			}
			if err := d.Prepare(ctx, batch); err != nil {
				t.Fatal(err)
			}
			if s, c := hook.scripts.Load(), hook.cmds.Load(); s != 0 || c != n {
				t.Fatalf("Prepare of %d events: %d script calls and %d commands, want 0 and %d", n, s, c, n)
			}
			var cnt callCounter
			h := d.Middleware()(cnt.handle)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, n)
			for i, m := range batch {
				wg.Go(func() { <-start; errs[i] = h(ctx, m) })
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("message %d: %v", i, err)
				}
			}
			trips := d.DoneRoundTrips()
			// The batch's tokens (1 to 200) share one done set: SADD and PEXPIRE per round trip.
			if s, c := hook.scripts.Load(), hook.cmds.Load()-n; s != 0 || c != 2*trips || trips >= n/4 {
				t.Fatalf("%d done marks: %d script calls and %d commands in %d round trips, want none, 2 a round trip and far fewer round trips than events", n, s, c, trips)
			}
			for _, m := range batch {
				if c := cnt.get(m.Envelope.EventID); c != 1 {
					t.Fatalf("event %s handled %d times", m.Envelope.EventID, c)
				}
				if !isDone(t, d, m.Envelope.Metadata.Source, m.Envelope.EventID) {
					t.Fatalf("event %s: not done", m.Envelope.EventID)
				}
			}

			// Release: the unused leases of a batch go in one script call.
			var spare []*streams.Message
			for i := range n {
				spare = append(spare, dedupMsg(events(), group, "t.reservations", 0, int64(n+i)))
			}
			if err := d.Prepare(ctx, spare); err != nil {
				t.Fatal(err)
			}
			before := hook.scripts.Load()
			if err := d.Release(ctx, spare); err != nil {
				t.Fatal(err)
			}
			if s := hook.scripts.Load() - before; s != 1 {
				t.Fatalf("Release of %d leases: %d script calls, want 1", n, s)
			}
			for _, m := range spare {
				if err := rdb.Get(ctx, d.Key(m.Envelope.Metadata.Source, m.Envelope.EventID)).Err(); err != redis.Nil {
					t.Fatalf("released lease of %s still there (%v)", m.Envelope.EventID, err)
				}
			}
		})
	}
}
