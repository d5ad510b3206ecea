package views_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
)

var systems = []string{"hotel-member", "hotel-pms", "hotel-saas"}

// TestShippedViewsMatchSchemas checks every shipped view's key against the schemas of the types
// that feed it.
func TestShippedViewsMatchSchemas(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	if err := views.CheckSchemas(r.all.Views, r.set); err != nil {
		t.Fatal(err)
	}
	broken := r.all.Views[0]
	broken.Key = "confirmationNumber"
	if err := views.CheckSchemas(append(r.all.Views[:0:0], broken), r.set); err == nil {
		t.Fatalf("view %s keyed by a field its types lack was accepted", broken)
	}
}

// TestModel20k: 20,000 events (see scaled) across 200 tenants feed every shipped view; every key of every view
// equals a model computed from the same events, and no view holds a key the model lacks.
func TestModel20k(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			evs := r.events(t, scaled(b, 20_000), 200, 7)
			tenants := tenantsOf(evs)
			start := time.Now()
			r.publish(t, evs)
			t.Logf("published %d events (%d tenants) in %s", len(evs), len(tenants), time.Since(start).Round(time.Millisecond))
			for _, sys := range systems {
				l := r.open(t, sys, t.TempDir())
				start := time.Now()
				r.caughtUp(t, l, 3*time.Minute)
				model := r.model(t, sys, evs)
				t.Logf("%s caught up in %s; model:%s", sys, time.Since(start).Round(time.Millisecond), modelSize(model))
				if n := diff(t, l, model, tenants); n != 0 {
					t.Fatalf("%s: %d differences", sys, n)
				}
			}
		})
	}
}

// TestReadYourWrites: after a Producer's acknowledgement, WaitFor its partition and offset (or
// WaitForEvent its eventId) and the item is there.
func TestReadYourWrites(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	l := r.open(t, "hotel-pms", t.TempDir())
	v, err := l.View("members")
	if err != nil {
		t.Fatal(err)
	}
	p, err := streams.NewProducer("hotel-member", r.serde, streams.Brokers(r.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	evs := r.events(t, 400, 2, 41)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := 0
	for _, ev := range evs {
		if ev.Envelope.EventType != "member.status_changed" {
			continue
		}
		n++
		res, err := p.Publish(ctx, ev.Envelope)
		if err != nil {
			t.Fatal(err)
		}
		if n%2 == 0 {
			err = v.WaitFor(ctx, res.Partition, res.Offset)
		} else {
			err = v.WaitForEvent(ctx, res.EventID)
		}
		if err != nil {
			t.Fatal(err)
		}
		it, err := v.Get(ev.Envelope.Metadata.TenantID, ev.Envelope.Data["membershipId"].(string))
		if err != nil || it.EventID != res.EventID {
			t.Fatalf("after the wait: %+v %v, want event %s", it, err, res.EventID)
		}
	}
	if n == 0 {
		t.Fatal("no member.status_changed generated")
	}
	short, cancel2 := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel2()
	if err := v.WaitFor(short, 0, 1<<40); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting for an offset never written: %v", err)
	}
}
