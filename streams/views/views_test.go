package views_test

import (
	"testing"
	"time"

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

// TestModel20k: 20,000 events across 200 tenants feed every shipped view; every key of every view
// equals a model computed from the same events, and no view holds a key the model lacks.
func TestModel20k(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			r := newRig(t, b)
			evs := r.events(t, 20_000, 200, 7)
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
