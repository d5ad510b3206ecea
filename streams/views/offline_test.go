package views_test

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams/registry"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/streams/views"
)

// TestOffline stops the broker and the registry under a caught-up view: it keeps answering with
// a growing staleness, also after a restart while both are still down (ready after OfflineGrace,
// answering at once). The broker then returns without the registry: the restarted view decodes
// the new records with the writer schemas cached in its store and catches up, 0 differences.
func TestOffline(t *testing.T) {
	for _, rb := range streamstest.RestartableBackends(t) {
		t.Run(rb.Name, func(t *testing.T) {
			const system = "hotel-member"
			reg, err := registry.New()
			if err != nil {
				t.Fatal(err)
			}
			defer reg.Close()
			rc, err := sr.NewClient(sr.URLs(reg.URL()))
			if err != nil {
				t.Fatal(err)
			}
			r := newRigWith(t, rb.Backend, rc, reg.URL())
			evs := r.events(t, scaled(rb.Backend, 6000), 200, 21)
			tenants := tenantsOf(evs)
			first := len(evs) * 2 / 3
			r.publish(t, evs[:first])
			dir := t.TempDir()
			cfg := r.config(system, dir)
			cfg.OfflineGrace = 500 * time.Millisecond
			l, err := views.Open(cfg)
			if err != nil {
				t.Fatal(err)
			}
			r.caughtUp(t, l, 2*time.Minute)
			if n := diff(t, l, r.model(t, system, evs[:first]), tenants); n != 0 {
				t.Fatalf("before the outage: %d differences", n)
			}
			// The probe is a stay in the view before the outage and after it: a later event may
			// remove a stay (a 404 then), and map order picks any.
			before, after := r.model(t, system, evs[:first]), r.model(t, system, evs)
			var probe string
			for k := range before["stays"] {
				if _, ok := after["stays"][k]; ok {
					probe = k
					break
				}
			}
			if probe == "" {
				t.Fatal("no stay is in the view both before and after the outage")
			}
			tenant, key := splitKey(probe)

			rb.Stop(t)
			_ = reg.Close()
			s1 := getStaleness(t, l, tenant, key)
			time.Sleep(1500 * time.Millisecond)
			s2 := getStaleness(t, l, tenant, key)
			if s2 < s1+1 {
				t.Fatalf("staleness went from %.3fs to %.3fs in 1.5s with the broker down", s1, s2)
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}

			start := time.Now()
			l, err = views.Open(cfg)
			if err != nil {
				t.Fatalf("opening while Kafka and the registry are down: %v", err)
			}
			defer l.Close()
			s3 := getStaleness(t, l, tenant, key)
			t.Logf("broker and registry down: staleness %.3fs, %.3fs, after a restart %.3fs (answered %s after Open)", s1, s2, s3, time.Since(start).Round(time.Millisecond))
			if s3 < s2 {
				t.Fatalf("staleness after the restart %.3fs, below the %.3fs before it", s3, s2)
			}
			waitLocalReady(t, l, 10*time.Second)

			rb.Start(t)
			r.publish(t, evs[first:]) // the test's serde has every id cached: no registry needed
			r.caughtUp(t, l, 2*time.Minute)
			if n := diff(t, l, r.model(t, system, evs), tenants); n != 0 {
				t.Fatalf("after the broker returned: %d differences", n)
			}
			if s := getStaleness(t, l, tenant, key); s > 5 {
				t.Fatalf("caught up, yet the staleness is %.3fs", s)
			}
		})
	}
}

// getStaleness reads one item over HTTP and returns its staleness header, failing unless 200.
func getStaleness(t *testing.T, l *views.Local, tenant, key string) float64 {
	t.Helper()
	srv := httptest.NewServer(l.Handler(nil))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v1/views/stays/" + tenant + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/%s: %s", tenant, key, resp.Status)
	}
	s, err := strconv.ParseFloat(resp.Header.Get(views.HeaderStaleness), 64)
	if err != nil {
		t.Fatalf("%s: %q: %v", views.HeaderStaleness, resp.Header.Get(views.HeaderStaleness), err)
	}
	return s
}
