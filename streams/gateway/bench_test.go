package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// benchPost posts body to route as hotel-pms and fails on any answer but 202.
func benchPost(b *testing.B, f *fixture, route string, body []byte) {
	req, _ := http.NewRequest("POST", f.url+route, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+f.tokens["hotel-pms"])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		b.Fatalf("status %d", res.StatusCode)
	}
}

// BenchmarkPublishEvent measures POST /v1/events through httptest against kfake: one request at a
// time (latency-bound: each waits for the producer's linger and the acknowledgement) and 32 at
// once (throughput). Allocations include the HTTP client's.
func BenchmarkPublishEvent(b *testing.B) {
	f := newFixture(b, streamstest.Kfake(b), "redis://"+miniredis.RunT(b).Addr(), fxOpts{})
	body := mustJSON(b, envelope(b, "reservation.created", "tenant-a"))
	http.DefaultTransport.(*http.Transport).MaxIdleConnsPerHost = 64
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		start := time.Now()
		for b.Loop() {
			benchPost(b, f, evs, body)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
	b.Run("parallel32", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		start := time.Now()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				benchPost(b, f, evs, body)
			}
		})
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "req/s")
	})
}

// BenchmarkPublishBatch measures POST /v1/events/batch of 100 events against kfake.
func BenchmarkPublishBatch(b *testing.B) {
	f := newFixture(b, streamstest.Kfake(b), "redis://"+miniredis.RunT(b).Addr(), fxOpts{})
	envs := make([]any, 100)
	for i := range envs {
		envs[i] = json.RawMessage(mustJSON(b, envelope(b, "reservation.created", "tenant-"+string(rune('a'+i%26)))))
	}
	body := mustJSON(b, map[string]any{"events": envs})
	b.ReportAllocs()
	start := time.Now()
	for b.Loop() {
		benchPost(b, f, batch, body)
	}
	b.ReportMetric(float64(b.N*100)/time.Since(start).Seconds(), "events/s")
}
