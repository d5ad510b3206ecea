package views_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/events"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
)

// TestGetAs: an item decoded into the generated type of the event that feeds its view loses
// nothing (published again as that type, it makes the same item); a merge view's item decodes into
// each type that fed it; a type that does not feed the view and an absent key are refused.
func TestGetAs(t *testing.T) {
	r := newRig(t, streamstest.Kfake(t))
	evs := r.events(t, 600, 3, 43)
	r.publish(t, evs)
	l := r.open(t, "hotel-pms", t.TempDir())
	r.caughtUp(t, l, time.Minute)
	members, _ := l.View("members")
	orders, _ := l.View("orders")
	p, err := streams.NewProducer("hotel-member", r.serde, streams.Brokers(r.b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	checked, canceled := 0, 0
	for _, ev := range evs {
		tenant := ev.Envelope.Metadata.TenantID
		switch ev.Envelope.EventType {
		case "member.status_changed":
			if checked == 20 {
				continue
			}
			key := ev.Envelope.Data["membershipId"].(string)
			typed, before, err := views.GetAs[events.MemberStatusChangedV1](members, tenant, key)
			if err != nil {
				t.Fatal(err)
			}
			if typed.MembershipID != key {
				t.Fatalf("typed membershipId %q, key %q", typed.MembershipID, key)
			}
			res, err := streams.Publish(ctx, p, tenant, typed)
			if err != nil {
				t.Fatal(err)
			}
			if err := members.WaitFor(ctx, res.Partition, res.Offset); err != nil {
				t.Fatal(err)
			}
			after, err := members.Get(tenant, key)
			if err != nil || after.EventID != res.EventID || !bytes.Equal(after.Data, before.Data) {
				t.Fatalf("published again as %T, the item became\n%s (%v), was\n%s", typed, after.Data, err, before.Data)
			}
			checked++
		case "service.canceled":
			key := ev.Envelope.Data["orderId"].(string)
			if _, err := orders.Get(tenant, key); err != nil {
				continue
			}
			o, _, err := views.GetAs[events.ServiceOrderedV1](orders, tenant, key)
			if err != nil && !errors.Is(err, streams.ErrInvalidEvent) { // an order canceled without being ordered lacks fields
				t.Fatal(err)
			}
			c, _, err := views.GetAs[events.ServiceCanceledV1](orders, tenant, key)
			if err != nil || c.OrderID != key || c.CanceledAt.IsZero() || (o != nil && o.OrderID != key) {
				t.Fatalf("canceled order %s: %+v %+v %v", key, o, c, err)
			}
			canceled++
		}
	}
	if checked == 0 || canceled == 0 {
		t.Fatalf("%d members and %d canceled orders checked", checked, canceled)
	}
	if _, _, err := views.GetAs[events.CustomerUpdatedV1](members, "sakura-hotels", "m1"); !errors.Is(err, views.ErrConfig) {
		t.Errorf("a type that does not feed the view: %v", err)
	}
	if _, _, err := views.GetAs[events.MemberStatusChangedV1](members, "sakura-hotels", "absent"); !errors.Is(err, views.ErrNotFound) {
		t.Errorf("an absent key: %v", err)
	}
}
