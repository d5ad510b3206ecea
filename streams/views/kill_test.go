package views_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/faults"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

const testToken = "view-test-token-0123456789"

// startServer starts `hotelbus view serve` for system on dir as a child process and waits until it
// listens; it returns the process and its base URL.
func (r *rig) startServer(t *testing.T, bin, name, system, dir string) (*faults.Proc, string) {
	t.Helper()
	creds := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(creds, []byte(system+" "+testToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := faults.FreePort(t)
	url := "http://127.0.0.1:" + strconv.Itoa(port)
	p := faults.Start(t, name, []string{"HOTELBUS_DATA_DIR=" + t.TempDir()}, bin, "view", "serve", "--system", system, "--dir", dir,
		"--listen", "127.0.0.1:"+strconv.Itoa(port), "--brokers", strings.Join(r.b.Brokers, ","), "--registry", r.regURL,
		"--prefix", r.prefix, "--credentials", creds, "--offline-grace", "1s")
	streamstest.Eventually(t, 2*time.Minute, name+" listening", func() bool {
		if p.Exited() {
			t.Fatalf("%s exited: %s", name, p.Tail(20))
		}
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
		}
		return err == nil && resp.StatusCode == http.StatusOK
	})
	return p, url
}

// TestKill9MidStream kills the view server binary with SIGKILL three times while events arrive,
// restarts it on the same store each time, and finds every view equal to the model (the store
// resumes exactly where its last transaction left it). It then deletes the store and restores a
// fresh one from the changelog the killed processes wrote: 0 differences again, and the time the
// restore took.
func TestKill9MidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := faults.Binary(t)
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			const system = "hotel-saas"
			r := newRig(t, b)
			evs := r.events(t, scaled(b, 12_000), 200, 11)
			tenants := tenantsOf(evs)
			dir := t.TempDir()
			head := len(evs) / 6
			r.publish(t, evs[:head])
			rng := rand.New(rand.NewPCG(3, 4))
			published := head
			for round := range 3 {
				p, url := r.startServer(t, bin, fmt.Sprintf("view-%d", round), system, dir)
				next := published + (len(evs)-head)/3
				if round == 2 {
					next = len(evs)
				}
				done := make(chan struct{})
				go func() { defer close(done); r.publish(t, evs[published:next]) }()
				before := applied(t, url)
				streamstest.Eventually(t, time.Minute, "the server applying events", func() bool { return applied(t, url) > before })
				time.Sleep(time.Duration(rng.IntN(800)) * time.Millisecond)
				p.Kill9(t)
				<-done
				published = next
				t.Logf("round %d: killed -9 after the events up to %d were published", round, published)
			}
			p, url := r.startServer(t, bin, "view-final", system, dir)
			waitReady(t, url)
			if err := p.Terminate(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			l := r.open(t, system, dir)
			r.caughtUp(t, l, 2*time.Minute)
			model := r.model(t, system, evs)
			if n := diff(t, l, model, tenants); n != 0 {
				t.Fatalf("after kill -9: %d differences", n)
			}
			t.Logf("after 3 kill -9: 0 differences over%s", modelSize(model))
			_ = l.Close()

			start := time.Now()
			restored := r.open(t, system, t.TempDir())
			waitLocalReady(t, restored, 2*time.Minute)
			took := time.Since(start)
			if n := diff(t, restored, model, tenants); n != 0 {
				t.Fatalf("restored from the changelog: %d differences", n)
			}
			t.Logf("empty store restored from the changelog and ready in %s: 0 differences", took.Round(time.Millisecond))
		})
	}
}

// applied returns the sum of the server's hotelbus_view_applied_total series.
func applied(t *testing.T, url string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "hotelbus_view_applied_total{") {
			f, _ := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
			sum += f
		}
	}
	return sum
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	streamstest.Eventually(t, 2*time.Minute, "the view server ready", func() bool {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

func waitLocalReady(t *testing.T, l interface{ Ready() error }, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for l.Ready() != nil {
		if ctx.Err() != nil {
			t.Fatalf("not ready after %s: %v", timeout, l.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
