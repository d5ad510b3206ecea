package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
	"github.com/hotelbus/hotelbus/streams/gateway"
)

// endToEnd serves a gateway for hotel-saas and hotel-pms's dispatcher, both in process, posts
// service.ordered events as fast as 32 clients can (the peak), then at half the peak rate, and
// compares the latency from post to arrival at the target with the gateway's answer time.
func (r *run) endToEnd(ctx context.Context) ([]Row, error) {
	cat, serde, err := r.catalog(ctx, "e2e.", 0)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	arrived := map[string]time.Time{}
	targetURL, stopTarget, err := serve(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		_, _ = io.Copy(io.Discard, req.Body)
		mu.Lock()
		if _, ok := arrived[req.Header.Get("ce-id")]; !ok {
			arrived[req.Header.Get("ce-id")] = time.Now()
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	if err != nil {
		return nil, err
	}
	defer stopTarget()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(arrived) }

	sys, _ := cat.System("hotel-pms")
	dedup, err := streams.NewDedup(r.env.Redis, sys.Group)
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	d, err := dispatch.New(targetURL, serde, dispatch.Secret(secret), dispatch.Logger(discard))
	if err != nil {
		return nil, err
	}
	c, err := streams.NewConsumer(sys.Name, serde, append(r.consumerOpts(), streams.Logger(discard),
		streams.UseStandard(streams.StandardChain{Dedup: dedup}))...)
	if err != nil {
		return nil, err
	}
	d.HandleAll(c, sys.Subscribes)
	stopAll := make(chan struct{})
	consumed := make(chan error, 1)
	go func() { consumed <- runUntil(ctx, c, stopAll, time.Hour) }()
	defer func() {
		close(stopAll)
		<-consumed
	}()

	p, err := streams.NewProducer("hotel-saas", serde, r.producerOpts()...)
	if err != nil {
		return nil, err
	}
	defer p.Close(context.Background())
	token := "bench-" + r.prefix + "-token-0123456789"
	creds, err := gateway.NewCredentials([]string{"hotel-saas"}, gateway.CredentialSource{Tokens: map[string][]string{"hotel-saas": {token}}})
	if err != nil {
		return nil, err
	}
	gw, err := gateway.New(gateway.Config{Producers: map[string]*streams.Producer{"hotel-saas": p}, Credentials: creds,
		Redis: r.env.Redis, Logger: discard})
	if err != nil {
		return nil, err
	}
	gwURL, stopGateway, err := serve(gw.Handler())
	if err != nil {
		return nil, err
	}
	defer stopGateway()

	v, _ := r.set.Latest("service.ordered")
	var example map[string]any
	if err := json.Unmarshal(v.Example, &example); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	post := func(tenant string) (string, time.Duration, error) {
		body, _ := json.Marshal(map[string]any{"eventType": "service.ordered", "data": example["data"],
			"metadata": map[string]any{"tenantId": tenant, "userId": nil}})
		req, _ := http.NewRequest(http.MethodPost, gwURL+gateway.RouteEvents, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		start := time.Now()
		res, err := client.Do(req)
		if err != nil {
			return "", 0, err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		took := time.Since(start)
		var a gateway.Accepted
		if res.StatusCode != http.StatusAccepted || json.Unmarshal(b, &a) != nil {
			return "", 0, fmt.Errorf("gateway answered %s: %s", res.Status, b)
		}
		return a.EventID, took, nil
	}
	wait := func(n int, what string) error {
		deadline := time.Now().Add(3 * time.Minute)
		for count() < n {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d events arrived at the target", what, count(), n)
			}
			time.Sleep(5 * time.Millisecond)
		}
		return nil
	}

	const clients = 32
	peakPosts := r.sz.peakPosts / clients * clients
	errs := make([]error, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for cl := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range peakPosts / clients {
				if _, _, err := post(fmt.Sprintf("tenant-%03d", cl)); err != nil {
					errs[cl] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	peak := rate(peakPosts, time.Since(start))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if err := wait(peakPosts, "peak phase"); err != nil {
		return nil, err
	}

	paced := r.sz.pacedPosts
	interval := time.Duration(float64(time.Second) / (peak / 2))
	sentAt := make(map[string]time.Time, paced)
	acks := make([]time.Duration, 0, paced)
	var smu sync.Mutex
	var perr error
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range paced {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			at := time.Now()
			id, took, err := post(fmt.Sprintf("tenant-%03d", i%200))
			smu.Lock()
			defer smu.Unlock()
			if err != nil {
				perr = err
				return
			}
			sentAt[id] = at
			acks = append(acks, took)
		}()
	}
	wg.Wait()
	if perr != nil {
		return nil, perr
	}
	if err := wait(peakPosts+paced, "paced phase"); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, paced)
	mu.Lock()
	for id, at := range sentAt {
		lat = append(lat, arrived[id].Sub(at))
	}
	mu.Unlock()
	e2e, ack := sortedMillis(lat), sortedMillis(acks)
	note := fmt.Sprintf("peak %.0f posts/s (32 clients), measured at %.0f/s", peak, peak/2)
	p50 := row("e2e-p50", "gateway → dispatcher target, p50", percentile(e2e, 0.5), "gateway 202 answer, p50", percentile(ack, 0.5), "ms", "lower", "")
	p99 := row("e2e-p99", "gateway → dispatcher target, p99", percentile(e2e, 0.99), "gateway 202 answer, p99", percentile(ack, 0.99), "ms", "lower", "")
	p50.Note, p99.Note = note, note
	return []Row{p50, p99}, nil
}

// serve serves h on a free local port and returns its base URL and a stop function.
func serve(h http.Handler) (string, func(), error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("bench: listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}
