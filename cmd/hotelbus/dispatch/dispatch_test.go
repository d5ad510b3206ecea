package dispatch_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/uuid"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

const (
	secret    = "command-test-secret-0123456789"
	oldSecret = "the-previous-secret-0123456789"
)

// TestDispatchCommandUsage: bad invocations exit 2 naming the flag at fault.
func TestDispatchCommandUsage(t *testing.T) {
	env := map[string]string{"HOTELBUS_DISPATCH_SECRET": secret, "HOTELBUS_REGISTRY": "http://127.0.0.1:1", "HOTELBUS_REDIS": "redis://127.0.0.1:1/0",
		"HOTELBUS_BROKERS": "127.0.0.1:1"}
	for _, tc := range []struct {
		env  map[string]string
		args []string
		want string
	}{
		{env, []string{"dispatch", "--target", "http://x/"}, "--system is required"},
		{env, []string{"dispatch", "--system", "hotel-spa", "--target", "http://x/"}, `--system: topics: unknown system "hotel-spa"`},
		{env, []string{"dispatch", "--system", "hotel-pms"}, "--target is required"},
		{env, []string{"dispatch", "--system", "hotel-pms", "--target", "ftp://x/"}, `target ftp://x/: want an http`},
		{env, []string{"dispatch", "--system", "hotel-pms", "--target", "http://hook:p4ss@x/", "--registry", "http://127.0.0.1:1"}, "TargetAuthFile"},
		{env, []string{"dispatch", "--system", "hotel-pms", "--target", "http://x/", "--target-auth-file", "/nonexistent"}, "TargetAuthFile"},
		{nil, []string{"dispatch", "--system", "hotel-pms", "--target", "http://x/"}, "pass --secret-file, set HOTELBUS_DISPATCH_SECRET, or start `hotelbus dev`"},
		{env, []string{"dispatch", "--system", "hotel-pms", "--target", "http://x/", "--secret-file", "/nonexistent"}, "--secret-file"},
		{map[string]string{"HOTELBUS_DISPATCH_SECRET": secret + ",short"}, []string{"dispatch", "--system", "hotel-pms", "--target", "http://x/", "--registry", "http://127.0.0.1:1"}, "Secret"},
	} {
		r := cmdtest.Run(t, tc.env, "", tc.args...)
		if r.Code != 2 || !strings.Contains(r.ErrOut, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, r.Code, r.ErrOut, tc.want)
		}
	}
	// A second dispatcher on the same host must not fail on a fixed default port.
	if r := cmdtest.Run(t, nil, "", "dispatch", "--help"); !strings.Contains(r.Out, `(default "127.0.0.1:0")`) {
		t.Errorf("dispatch --help: --listen should default to a free port (127.0.0.1:0):\n%s", r.Out)
	}
}

// TestDispatchCommandDelivers runs `hotelbus dispatch` against kfake: the events hotel-pms
// subscribes to reach the target signed, and SIGINT stops it cleanly.
func TestDispatchCommandDelivers(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix := streamstest.Name(t, "dc") + "."
	base, err := topics.Load(topics.Embedded(), "test") // one broker: replication 1
	if err != nil {
		t.Fatal(err)
	}
	cat := base.WithPrefix(prefix)
	streamstest.CreateTopics(t, b, cat)
	reg, regURL := streamstest.Registry(t)
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	serde, err := streams.NewSerde(reg, set, cat, streams.AutoRegister(true))
	if err != nil {
		t.Fatal(err)
	}
	p, err := streams.NewProducer("hotel-saas", serde, streams.Brokers(b.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := set.Latest("service.ordered")
	const events = 50
	want := map[string]bool{}
	for range events {
		env, err := serde.ParseJSON(v.Example)
		if err != nil {
			t.Fatal(err)
		}
		env.EventID, env.Metadata.Source = uuid.NewString(), ""
		if _, err := p.Publish(context.Background(), env); err != nil {
			t.Fatal(err)
		}
		want[env.EventID] = true
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	got := map[string]int{}
	var bad []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		err := dispatch.Verify([][]byte{[]byte(secret)}, r.Header, body, time.Now(), time.Minute)
		if err == nil && r.Header.Get("Authorization") != "Bearer cmd-auth-token" {
			err = fmt.Errorf("authorization %q", r.Header.Get("Authorization"))
		}
		if err != nil {
			bad = append(bad, err.Error())
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		got[r.Header.Get("ce-id")]++
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	env := map[string]string{"HOTELBUS_BROKERS": strings.Join(b.Brokers, ","), "HOTELBUS_REGISTRY": regURL,
		"HOTELBUS_REDIS": "redis://" + miniredis.RunT(t).Addr(), "HOTELBUS_DISPATCH_SECRET": secret + "," + oldSecret}
	authFile := filepath.Join(t.TempDir(), "auth")
	if err := os.WriteFile(authFile, []byte("Authorization: Bearer cmd-auth-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const queryToken = "cmd-query-token"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opsAddr := ln.Addr().String()
	ln.Close()
	done := make(chan cmdtest.Result, 1)
	go func() {
		done <- cmdtest.Run(t, env, "", "dispatch", "--system", "hotel-pms", "--target", srv.URL+"/hook?token="+queryToken,
			"--target-auth-file", authFile, "--prefix", prefix, "--listen", opsAddr)
	}()
	deadline := time.Now().Add(time.Minute)
	for {
		mu.Lock()
		n := len(got)
		mu.Unlock()
		if n == events {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("dispatch exited: %d %s", r.Code, r.ErrOut)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d events delivered", n, events)
		}
		time.Sleep(20 * time.Millisecond)
	}
	res, err := http.Get("http://" + opsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(res.Body)
	res.Body.Close()
	wantLine := fmt.Sprintf("hotelbus_events_handled_total{event_type=\"service.ordered\",group=\"%shotelbus.hotel-pms\",outcome=\"handled\"} 50", prefix)
	if !strings.Contains(string(metrics), wantLine) || !strings.Contains(string(metrics), `hotelbus_dispatch_deliveries_total{status_class="2xx",system="hotel-pms"} 50`) {
		t.Errorf("/metrics lacks %q or the 50 2xx deliveries:\n%s", wantLine, metrics)
	}
	if strings.Contains(string(metrics), queryToken) {
		t.Errorf("/metrics shows the target's query token")
	}
	if res, err := http.Get("http://" + opsAddr + "/readyz"); err != nil || res.StatusCode != 200 {
		t.Errorf("/readyz: %v %v", res, err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r.Code != 0 || !strings.Contains(r.ErrOut, "dispatch stopped: 50 delivered, 0 refused") || strings.Contains(r.ErrOut, queryToken) ||
			!strings.Contains(r.ErrOut, "to "+srv.URL+"/hook;") {
			t.Errorf("after SIGINT: exit %d\n%s", r.Code, r.ErrOut)
		}
	case <-time.After(time.Minute):
		t.Fatal("dispatch did not stop on SIGINT")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(bad) != 0 {
		t.Fatalf("bad signatures: %v", bad)
	}
	for id, n := range got {
		if !want[id] || n != 1 {
			t.Errorf("event %s delivered %d times (published: %v)", id, n, want[id])
		}
	}
}
