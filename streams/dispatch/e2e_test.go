package dispatch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

const gatewayToken = "e2e-gateway-token-0123456789"

// startGateway serves the gateway for hotel-saas over f's backend (brokers given separately, for a
// restartable one), with a spool so that a broker outage is answered "spooled".
func (f *fixture) startGateway(t testing.TB, brokers []string) string {
	t.Helper()
	p, err := streams.NewProducer("hotel-saas", f.serde, streams.Brokers(brokers...), streams.SpoolDir(t.TempDir()),
		streams.SpoolAfter(2*time.Second), streams.DrainBackoff(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	creds, err := gateway.NewCredentials([]string{"hotel-saas"}, gateway.CredentialSource{Tokens: map[string][]string{"hotel-saas": {gatewayToken}}})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(t).Addr()})
	t.Cleanup(func() { rdb.Close() })
	gw, err := gateway.New(gateway.Config{Producers: map[string]*streams.Producer{"hotel-saas": p}, Credentials: creds, Redis: rdb,
		Kafka: streamstest.Backend{Brokers: brokers}.Client(t), Registry: f.serde.Registry(), PublishTimeout: 30 * time.Second,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gw.Handler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// post publishes one service.ordered event of tenant with sequence seq through the gateway and
// returns the answer's status ("published" or "spooled") and eventId.
func post(t testing.TB, url string, example map[string]any, tenant string, seq int) (string, string) {
	t.Helper()
	ev := map[string]any{"eventType": "service.ordered", "data": example["data"],
		"metadata": map[string]any{"tenantId": tenant, "correlationId": strconv.Itoa(seq), "userId": nil}}
	body, _ := json.Marshal(ev)
	req, _ := http.NewRequest(http.MethodPost, url+gateway.RouteEvents, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+gatewayToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var a gateway.Accepted
	if res.StatusCode != http.StatusAccepted || json.Unmarshal(b, &a) != nil {
		t.Fatalf("post %s #%d: %d %s", tenant, seq, res.StatusCode, b)
	}
	return a.Status, a.EventID
}

func (f *fixture) example(t testing.TB) map[string]any {
	t.Helper()
	v, _ := f.serde.Schemas().Latest("service.ordered")
	var m map[string]any
	if err := json.Unmarshal(v.Example, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestGatewayToTargetAcrossBrokerRestart: services post events to the gateway while the broker
// is stopped and started again. Every event answered 202 (published or spooled) reaches the
// dispatcher's target once, in per-tenant order.
func TestGatewayToTargetAcrossBrokerRestart(t *testing.T) {
	for _, b := range streamstest.RestartableBackends(t) {
		t.Run(b.Name, func(t *testing.T) {
			f := newFixture(t, b.Backend)
			tg := newTarget(t, f.chk)
			d, _ := f.dispatcher(t, tg.srv.URL)
			url := f.startGateway(t, b.Brokers)
			example := f.example(t)
			const tenants, per = 20, 30
			var spooled atomic.Int64
			var wg sync.WaitGroup
			sent := make(chan struct{}, tenants*per)
			for tn := range tenants {
				wg.Add(1)
				go func() {
					defer wg.Done()
					tenant := fmt.Sprintf("tenant-%03d", tn)
					for seq := range per {
						status, id := post(t, url, example, tenant, seq)
						f.chk.Published(tenant, id, seq)
						if status == "spooled" {
							spooled.Add(1)
						}
						sent <- struct{}{}
					}
				}()
			}
			eventually(t, time.Minute, "a third posted", func() bool { return len(sent) >= tenants*per/3 })
			b.Stop(t)
			eventually(t, time.Minute, "two thirds posted", func() bool { return len(sent) >= 2*tenants*per/3 })
			b.Start(t)
			wg.Wait()
			eventually(t, 3*time.Minute, "every event delivered", func() bool { return d.Stats().Delivered >= tenants*per })
			noAnomalies(t, f.chk.Report(), nil)
			if spooled.Load() == 0 {
				t.Fatal("no answer said spooled: the broker outage was not observed")
			}
			t.Logf("%s: %d events posted, %d answered spooled, all delivered once in order", b.Name, tenants*per, spooled.Load())
		})
	}
}
