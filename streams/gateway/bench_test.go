package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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

// hostileBatch returns a batch body of about maxBody bytes: events of about maxEvent bytes each,
// every one invalid in each element of a long array (childrenAges: strings where ints belong), so
// that parsing one yields a field error per element.
func hostileBatch(b *testing.B, maxBody, maxEvent int) []byte {
	env := envelope(b, "reservation.updated", "tenant-a")
	env["data"].(map[string]any)["childrenAges"] = []any{}
	shell := mustJSON(b, env)
	i := bytes.Index(shell, []byte(`"childrenAges":[]`)) + len(`"childrenAges":[`)
	n := (maxEvent - len(shell) - 64) / 4
	elems := bytes.Repeat([]byte(`"x",`), n)
	event := append(append(append([]byte{}, shell[:i]...), elems[:len(elems)-1]...), shell[i:]...)
	var body bytes.Buffer
	body.WriteString(`{"events":[`)
	for body.Len()+len(event)+4 < maxBody {
		if body.Len() > len(`{"events":[`) {
			body.WriteByte(',')
		}
		body.Write(event)
	}
	body.WriteString(`]}`)
	return body.Bytes()
}

// BenchmarkHostileBatchMemory posts 8 maximum-size batches of invalid events with long arrays at
// once (the default limits: 4 MiB bodies, 512 KiB events) and reports the process's peak RSS
// (VmHWM, reset before each round through /proc/self/clear_refs) and peak Go heap (sampled every
// millisecond) in MiB. The process includes the client and kfake, so the figures bound the
// gateway's from above. The goal is a peak RSS at most 128 MiB.
func BenchmarkHostileBatchMemory(b *testing.B) {
	f := newFixture(b, streamstest.Kfake(b), "redis://"+miniredis.RunT(b).Addr(), fxOpts{})
	body := hostileBatch(b, 4<<20, 512<<10)
	const parallel = 8
	var peakRSS, peakHeap uint64
	var busy atomic.Int64 // answers 503: waited more than 10s for room to read or parse
	for b.Loop() {
		runtime.GC()
		debug.FreeOSMemory()
		if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
			b.Skipf("cannot reset the peak RSS: %v", err)
		}
		stop := make(chan struct{})
		sampled := make(chan uint64)
		go func() { sampled <- sampleHeap(stop) }()
		var wg sync.WaitGroup
		for range parallel {
			wg.Go(func() {
				req, _ := http.NewRequest("POST", f.url+batch, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+f.tokens["hotel-pms"])
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusMultiStatus:
				case http.StatusServiceUnavailable:
					busy.Add(1)
				default:
					b.Errorf("status %d", res.StatusCode)
				}
			})
		}
		wg.Wait()
		close(stop)
		peakHeap = max(peakHeap, <-sampled)
		peakRSS = max(peakRSS, vmHWM(b))
	}
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(busy.Load())/float64(b.N), "503/op")
}

// sampleHeap returns the largest heap (objects, live and not yet swept) seen every millisecond
// until stop is closed.
func sampleHeap(stop <-chan struct{}) uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		metrics.Read(s)
		peak = max(peak, s[0].Value.Uint64())
		select {
		case <-stop:
			return peak
		case <-tick.C:
		}
	}
}

// vmHWM returns the process's peak resident set size since the last reset, from /proc/self/status.
func vmHWM(b *testing.B) uint64 {
	st, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.Lines(string(st)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}
