package topics_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hotelbus/hotelbus/topics"
)

func embeddedCatalog(t *testing.T) *topics.Catalog {
	t.Helper()
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	return cat
}

// TestShippedViews pins the views the issue asks for and that each reads what its system
// subscribes to, from one topic.
func TestShippedViews(t *testing.T) {
	cat := embeddedCatalog(t)
	vs, err := topics.LoadViews(topics.Embedded(), cat)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"hotel-saas/guests": "customerId", "hotel-saas/stays": "reservationId",
		"hotel-pms/members": "membershipId", "hotel-pms/orders": "orderId", "hotel-member/stays": "reservationId",
	}
	if len(vs.Views) != len(want) {
		t.Fatalf("%d views, want %d", len(vs.Views), len(want))
	}
	for _, v := range vs.Views {
		if want[v.String()] != v.Key {
			t.Errorf("%s: key %q, want %q", v, v.Key, want[v.String()])
		}
		if v.Changelog != "hotelbus.views."+v.System+"."+v.Name+".changelog" {
			t.Errorf("%s: changelog %q", v, v.Changelog)
		}
	}
	stays, _ := vs.Lookup("hotel-member", "stays")
	if stays.Apply["reservation.canceled"] != topics.Delete || stays.Topic != "hotelbus.pms.reservations" {
		t.Errorf("hotel-member/stays: %+v", stays)
	}
}

func TestViewsRefused(t *testing.T) {
	cat := embeddedCatalog(t)
	const head = "changelog: hotelbus.views.{system}.{view}.changelog\nviews:\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"not subscribed", head + "  hotel-saas:\n    orders: {key: orderId, apply: {service.ordered: upsert}}\n",
			"views.hotel-saas.orders.apply.service.ordered: hotel-saas does not subscribe to \"service.ordered\""},
		{"unknown system", head + "  hotel-spa:\n    x: {key: a, apply: {customer.updated: upsert}}\n", "views.hotel-spa"},
		{"bad action", head + "  hotel-saas:\n    guests: {key: customerId, apply: {customer.updated: replace}}\n", `action "replace"`},
		{"only delete", head + "  hotel-member:\n    stays: {key: reservationId, apply: {reservation.canceled: delete}}\n", "every action is delete"},
		{"two topics", head + "  hotel-member:\n    mixed: {key: reservationId, apply: {reservation.created: upsert, billing.paid: merge}}\n",
			"a view reads one topic"},
		{"bad key", head + "  hotel-saas:\n    guests: {key: customer.id, apply: {customer.updated: upsert}}\n", "views.hotel-saas.guests.key"},
		{"bad name", head + "  hotel-saas:\n    Guests: {key: customerId, apply: {customer.updated: upsert}}\n", "view name must match"},
		{"no feed", head + "  hotel-saas:\n    guests: {key: customerId}\n", "at least one event type"},
		{"unknown field", head + "  hotel-saas:\n    guests: {key: customerId, keys: x, apply: {customer.updated: upsert}}\n", "keys"},
		{"changelog template", "changelog: hotelbus.views.{system}\nviews: {}\n", "must contain {system} and {view}"},
		{"changelog clash", "changelog: hotelbus.{view}{system}\nviews:\n  hotel-member:\n    .audit: {key: a, apply: {reservation.created: upsert}}\n", "view name must match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := topics.LoadViews(fstest.MapFS{topics.ViewsFile: {Data: []byte(tc.yaml)}}, cat)
			if !errors.Is(err, topics.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want ErrInvalid containing %q", err, tc.want)
			}
		})
	}
}
