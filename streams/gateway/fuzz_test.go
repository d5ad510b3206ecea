package gateway_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// FuzzGateway sends random bodies and headers to the publishing routes of a gateway on kfake
// (tight limits, a tenant-scoped credential, rate limits) and checks that no answer is a 5xx, that
// every refusal is problem+json, and that Kafka gains exactly the events the answer accepted: one
// for a 202 of /v1/events, the accepted items of a batch, none otherwise (or for a replay).
//
// The seed corpus is every system's golden events, single and batched, with the headers the
// gateway reads. Run it with: go test -run '^$' -fuzz FuzzGateway -fuzztime 60s ./streams/gateway/
func FuzzGateway(f *testing.F) {
	fx := newFixture(f, streamstest.Kfake(f), "redis://"+miniredis.RunT(f).Addr(), fxOpts{
		scope: map[string]string{"hotel-saas": "t*,tenant-a"},
		config: func(c *gateway.Config) {
			c.MaxBodyBytes, c.MaxEventBytes, c.MaxBatchEvents = 64<<10, 16<<10, 8
			c.Limits = gateway.Limits{TenantRate: 1000, TenantBurst: 1000, TenantBuckets: 64}
		},
	})
	systems := []string{"hotel-pms", "hotel-member", "hotel-saas", "hotel-common"}
	owned := map[string][]string{
		"hotel-pms":    {"reservation.created", "reservation.updated", "checkin_checkout.checked_in"},
		"hotel-member": {"member.registered", "points.added"},
		"hotel-saas":   {"service.ordered", "feedback.submitted"},
		"hotel-common": {"auth.user_created", "system.maintenance"},
	}
	for i, sys := range systems {
		for _, et := range owned[sys] {
			env := mustJSON(f, envelope(f, et, "tenant-a"))
			f.Add(uint8(i), false, env, "application/json", "", "", "X-Any", "v")
			f.Add(uint8(i), true, mustJSON(f, map[string]any{"events": []json.RawMessage{env, env}}), "application/json; charset=utf-8",
				"key-1", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Correlation-Id", "flow-1")
		}
	}
	f.Add(uint8(9), false, []byte(`{"eventType":"x"}`), "text/plain", "\x00", "\r\n", "Content-Length", "-1")
	f.Fuzz(func(t *testing.T, who uint8, isBatch bool, body []byte, contentType, idemKey, traceparent, hdrName, hdrValue string) {
		route := evs
		if isBatch {
			route = batch
		}
		req := httptest.NewRequest("POST", route, bytes.NewReader(body))
		req.Header = http.Header{}
		req.Header.Set("Content-Type", contentType)
		if int(who) < len(systems) {
			req.Header.Set("Authorization", "Bearer "+fx.tokens[systems[who]])
		} else if who%2 == 0 {
			req.Header.Set("Authorization", "Bearer "+string(body[:min(len(body), 40)]))
		}
		for k, v := range map[string]string{"Idempotency-Key": idemKey, "traceparent": traceparent, hdrName: hdrValue} {
			if k != "" && v != "" {
				req.Header[k] = append(req.Header[k], v)
			}
		}
		before := fx.records(t)
		rec := httptest.NewRecorder()
		fx.gw.Handler().ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%d: %s", rec.Code, rec.Body)
		}
		accepted := int64(0)
		switch {
		case rec.Code == http.StatusAccepted && !isBatch:
			accepted = 1
		case isBatch && (rec.Code == http.StatusAccepted || rec.Code == http.StatusMultiStatus):
			var br gateway.BatchResult
			if err := json.Unmarshal(rec.Body.Bytes(), &br); err != nil {
				t.Fatalf("batch answer %d: %v", rec.Code, err)
			}
			for _, it := range br.Results {
				if it.Accepted != nil {
					accepted++
				}
			}
		case rec.Code >= 400 && !strings.HasPrefix(rec.Header().Get("Content-Type"), "application/problem+json"):
			t.Fatalf("%d as %q: %s", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
		}
		if rec.Header().Get(gateway.HeaderReplayed) == "true" {
			accepted = 0
		}
		if got := fx.records(t) - before; got != accepted {
			t.Fatalf("answer %d accepted %d events, Kafka gained %d: %s", rec.Code, accepted, got, rec.Body)
		}
	})
}
