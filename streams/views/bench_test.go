package views_test

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams/gateway"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestBenchmarks prints the figures of the benchmarks (opt-in: HOTELBUS_VIEW_BENCH=1):
// the catch-up rate of an empty view server next to a raw franz-go client reading the same topics,
// and Get's p50/p99 and rate over HTTP with a bearer token. HOTELBUS_VIEW_BENCH_EVENTS sets the
// events generated (default 20000); HOTELBUS_VIEW_CPUPROFILE writes a CPU profile of the catch-up
// alone to that file (the kfake run's is overwritten by the real broker's).
func TestBenchmarks(t *testing.T) {
	if os.Getenv("HOTELBUS_VIEW_BENCH") != "1" {
		t.Skip("opt-in: HOTELBUS_VIEW_BENCH=1")
	}
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			const system = "hotel-saas"
			r := newRig(t, b)
			size := 20_000
			if s := os.Getenv("HOTELBUS_VIEW_BENCH_EVENTS"); s != "" {
				var err error
				if size, err = strconv.Atoi(s); err != nil {
					t.Fatalf("HOTELBUS_VIEW_BENCH_EVENTS: %v", err)
				}
			}
			evs := r.events(t, size, 200, 5)
			r.publish(t, evs)
			var topicsRead []string
			var total int64
			for _, v := range r.all.ForSystem(system) {
				if !slices.Contains(topicsRead, v.Topic) {
					topicsRead = append(topicsRead, v.Topic)
					for _, end := range r.ends(t, v.Topic) {
						total += end
					}
				}
			}
			// The views read their topics once each (two views, two topics here).
			if path := os.Getenv("HOTELBUS_VIEW_CPUPROFILE"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					t.Fatal(err)
				}
			}
			start := time.Now()
			l := r.open(t, system, t.TempDir())
			r.caughtUp(t, l, 5*time.Minute)
			viewRate := float64(total) / time.Since(start).Seconds()
			pprof.StopCPUProfile()

			start = time.Now()
			cl := b.Client(t, kgo.ConsumeTopics(topicsRead...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			var n int64
			for n < total {
				fs := cl.PollFetches(context.Background())
				n += int64(fs.NumRecords())
			}
			rawRate := float64(total) / time.Since(start).Seconds()
			t.Logf("catch-up: view server %.0f records/s, raw franz-go %.0f records/s (ratio %.3f), %d records of %v",
				viewRate, rawRate, viewRate/rawRate, total, topicsRead)

			creds, err := gateway.NewCredentials([]string{system}, gateway.CredentialSource{Tokens: map[string][]string{system: {testToken}}})
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(l.Handler(creds))
			defer srv.Close()
			model := r.model(t, system, evs)
			var keys []string
			for k := range model["stays"] {
				keys = append(keys, k)
			}
			const workers, perWorker = 8, 2500
			lat := make([][]time.Duration, workers)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
			var wg sync.WaitGroup
			start = time.Now()
			for w := range workers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					rng := rand.New(rand.NewPCG(uint64(w), 9))
					for range perWorker {
						tenant, key := splitKey(keys[rng.IntN(len(keys))])
						req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/views/stays/"+tenant+"/"+key, nil)
						req.Header.Set("Authorization", "Bearer "+testToken)
						t0 := time.Now()
						resp, err := client.Do(req)
						if err != nil || resp.StatusCode != http.StatusOK {
							t.Errorf("GET: %v %v", err, resp)
							return
						}
						_, _ = resp.Body.Read(make([]byte, 64<<10))
						resp.Body.Close()
						lat[w] = append(lat[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			all := slices.Concat(lat...)
			slices.Sort(all)
			t.Logf("Get over HTTP (%d clients, %d gets): p50 %s, p99 %s, %.0f gets/s", workers, len(all),
				all[len(all)/2].Round(time.Microsecond), all[len(all)*99/100].Round(time.Microsecond), float64(len(all))/elapsed.Seconds())
		})
	}
}
