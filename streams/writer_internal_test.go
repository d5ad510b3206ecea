package streams

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDeliveryDeadlines: a record's delivery deadline is never earlier than DeliveryTimeout after
// it was written and at most one slot (1% of it) later; records written within one slot share one
// context (one timer), a later one gets the next.
func TestDeliveryDeadlines(t *testing.T) {
	const d = 30 * time.Second
	dd := newDeliveryDeadlines(d)
	if dd.slot != 300*time.Millisecond {
		t.Errorf("slot of %s = %s, want 300ms (1%%)", d, dd.slot)
	}
	t0 := time.Now()
	first := dd.at(t0)
	for _, after := range []time.Duration{0, time.Millisecond, dd.slot / 2, dd.slot} {
		now := t0.Add(after)
		ctx := dd.at(now)
		if ctx != first {
			t.Errorf("written %s after the first: a new deadline, want the slot's", after)
		}
		at, _ := ctx.Deadline()
		if at.Before(now.Add(d)) || at.After(now.Add(d+dd.slot)) {
			t.Errorf("written %s after the first: deadline %s after it, want %s to %s", after, at.Sub(now), d, d+dd.slot)
		}
	}
	now := t0.Add(dd.slot + time.Nanosecond)
	next := dd.at(now)
	if next == first {
		t.Error("written past the slot: the first slot's deadline, want the next")
	}
	if at, _ := next.Deadline(); at.Before(now.Add(d)) {
		t.Errorf("written past the slot: deadline %s after it, want at least %s", at.Sub(now), d)
	}
	if dd := newDeliveryDeadlines(24 * time.Hour); dd.slot != 864*time.Second {
		t.Errorf("slot of 24h = %s, want 14m24s (1%%: at most 101 deadlines wait at a time)", dd.slot)
	}
}

// TestDeliveryBoundKeepsValues: a bounded record's context keeps the values of the context it
// was written with (a span, a correlation id), ends at the deadline with the cause
// ErrDeliveryTimeout, and not when its caller's context ends (franz-go sees that one as the
// produce context).
func TestDeliveryBoundKeepsValues(t *testing.T) {
	dd := newDeliveryDeadlines(50 * time.Millisecond)
	caller, cancel := context.WithCancel(ContextWithCorrelationID(context.Background(), "flow-7"))
	rec := &kgo.Record{Context: caller}
	deadline := dd.bound(rec)
	cancel()
	if CorrelationID(rec.Context) != "flow-7" {
		t.Errorf("correlation id %q in the record's context, want flow-7", CorrelationID(rec.Context))
	}
	if rec.Context.Err() != nil {
		t.Errorf("record's context ended with its caller's: %v", rec.Context.Err())
	}
	select {
	case <-rec.Context.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("record's context did not end at its deadline")
	}
	if !errors.Is(context.Cause(rec.Context), ErrDeliveryTimeout) || !errors.Is(context.Cause(deadline), ErrDeliveryTimeout) {
		t.Errorf("cause %v, deadline's %v, want ErrDeliveryTimeout", context.Cause(rec.Context), context.Cause(deadline))
	}
	plain := &kgo.Record{}
	if dd.bound(plain); plain.Context == nil {
		t.Fatal("a record without a context got none")
	}
	if _, ok := plain.Context.Deadline(); !ok {
		t.Error("a record without a context got no deadline")
	}
}
