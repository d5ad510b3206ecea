package monitor_test

import (
	"encoding/json"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams/monitor"
	"github.com/hotelbus/hotelbus/topics"
)

// handlerOnly returns a monitor's handler that is never Run, over a client of a broker that
// accepts connections and never answers (a journey read then lasts until its timeout).
func handlerOnly(t *testing.T, cfg monitor.Config) http.Handler {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var held []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	cl, err := kgo.NewClient(kgo.SeedBrokers(ln.Addr().String()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl.Close()
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Catalog, cfg.Client = cat, cl
	m, err := monitor.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m.Handler()
}

// call serves one request from remote (ip:port) with host as Host.
func call(h http.Handler, method, target, remote, host string, header http.Header, body io.Reader) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, body)
	r.RemoteAddr, r.Host = remote, host
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

const loopback, outside = "127.0.0.1:40000", "10.1.2.3:40000"

// problem checks an application/problem+json answer with status.
func problem(t *testing.T, what string, w *httptest.ResponseRecorder, status int) {
	t.Helper()
	var p struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if w.Code != status || w.Header().Get("Content-Type") != "application/problem+json" || json.Unmarshal(w.Body.Bytes(), &p) != nil || p.Status != status || p.Detail == "" {
		t.Errorf("%s: %d %s %q; want a %d problem", what, w.Code, w.Header().Get("Content-Type"), w.Body, status)
	}
}

// TestSecurityHeaders: every answer, of every route and of refusals, forbids framing and sniffing
// and restricts scripts, styles and connections to the monitor's own.
func TestSecurityHeaders(t *testing.T) {
	h := handlerOnly(t, monitor.Config{})
	for _, tc := range []struct{ path, remote, host string }{
		{"/", loopback, "localhost:9300"}, {"/app.js", loopback, "127.0.0.1"}, {"/api/snapshot", loopback, "localhost"},
		{"/metrics", outside, "10.0.0.9:9300"}, {"/healthz", outside, "x"}, {"/nope", loopback, "localhost"},
		{"/", outside, "10.0.0.9"}, {"/", loopback, "evil.example"},
	} {
		w := call(h, http.MethodGet, tc.path, tc.remote, tc.host, nil, nil)
		csp := w.Header().Get("Content-Security-Policy")
		if !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe") ||
			w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s from %s: %d, headers %v", tc.path, tc.remote, w.Code, w.Header())
		}
	}
}

// TestHostAllowList: a name that is not localhost or allowed is refused (DNS rebinding: a page of
// evil.example whose name resolves to 127.0.0.1 must not read the dashboard), except on the
// probes and /metrics.
func TestHostAllowList(t *testing.T) {
	h := handlerOnly(t, monitor.Config{AllowedHosts: []string{"monitor.hotel.example"}})
	for host, want := range map[string]int{
		"localhost:9300": 200, "127.0.0.1:9300": 200, "[::1]:9300": 200, "10.0.0.9": 200, "Monitor.Hotel.Example": 200, "monitor.hotel.example.:443": 200,
		"evil.example": 421, "evil.example:9300": 421, "localhost.evil.example": 421, "": 421,
	} {
		w := call(h, http.MethodGet, "/api/snapshot", loopback, host, nil, nil)
		if want == 421 {
			problem(t, "Host "+host, w, 421)
		} else if w.Code != want {
			t.Errorf("Host %q: %d, want %d", host, w.Code, want)
		}
	}
	for _, path := range []string{"/metrics", "/healthz"} {
		if w := call(h, http.MethodGet, path, loopback, "evil.example", nil, nil); w.Code != 200 {
			t.Errorf("%s with another Host: %d", path, w.Code)
		}
	}
}

// TestAuthentication: without configuration only loopback clients are served; with a token file
// the bearer token (or the session cookie from POST /login) is required, a rotated token
// replaces the old one and an empty file accepts none; a trusted proxy's user header counts only
// from the proxy's network. The probes and /metrics answer everyone.
func TestAuthentication(t *testing.T) {
	t.Run("none configured", func(t *testing.T) {
		h := handlerOnly(t, monitor.Config{})
		if w := call(h, http.MethodGet, "/api/snapshot", loopback, "localhost", nil, nil); w.Code != 200 {
			t.Errorf("loopback: %d", w.Code)
		}
		problem(t, "outside", call(h, http.MethodGet, "/api/snapshot", outside, "10.0.0.9", nil, nil), 401)
		problem(t, "outside, dashboard", call(h, http.MethodGet, "/", outside, "10.0.0.9", nil, nil), 401)
		for _, path := range []string{"/metrics", "/healthz", "/readyz"} {
			if w := call(h, http.MethodGet, path, outside, "10.0.0.9", nil, nil); w.Code == 401 {
				t.Errorf("%s from outside: 401", path)
			}
		}
	})
	t.Run("token file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "token")
		write := func(s string, age time.Duration) { streamstest.WriteFileAged(t, path, s, age) }
		write("monitor-token-one-0123456789\n", time.Hour)
		h := handlerOnly(t, monitor.Config{TokenFile: path})
		bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }
		get := func(remote string, hd http.Header) int {
			return call(h, http.MethodGet, "/api/snapshot", remote, "localhost", hd, nil).Code
		}
		if c := get(outside, bearer("monitor-token-one-0123456789")); c != 200 {
			t.Errorf("right token: %d", c)
		}
		problem(t, "no token", call(h, http.MethodGet, "/api/snapshot", outside, "localhost", nil, nil), 401)
		problem(t, "no token from loopback", call(h, http.MethodGet, "/api/snapshot", loopback, "localhost", nil, nil), 401)
		problem(t, "wrong token", call(h, http.MethodGet, "/api/snapshot", outside, "localhost", bearer("monitor-token-two-0123456789"), nil), 401)
		if w := call(h, http.MethodGet, "/", outside, "localhost", nil, nil); w.Code != 401 || !strings.Contains(w.Body.String(), `name="token"`) {
			t.Errorf("dashboard without a session: %d %q; want 401 and the sign-in form", w.Code, w.Body)
		}
		form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
		problem(t, "login, wrong token", call(h, http.MethodPost, "/login", outside, "localhost", form, strings.NewReader(url.Values{"token": {"nope-nope-nope-nope"}}.Encode())), 401)
		w := call(h, http.MethodPost, "/login", outside, "localhost", form, strings.NewReader(url.Values{"token": {"monitor-token-one-0123456789"}}.Encode()))
		cookie := w.Header().Get("Set-Cookie")
		if w.Code != http.StatusSeeOther || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Strict") || strings.Contains(cookie, "monitor-token-one") {
			t.Fatalf("login: %d, Set-Cookie %q", w.Code, cookie)
		}
		session := http.Header{"Cookie": {strings.Split(cookie, ";")[0]}}
		if c := get(outside, session); c != 200 {
			t.Errorf("session cookie: %d", c)
		}

		write("monitor-token-two-0123456789\n", 0)
		time.Sleep(1100 * time.Millisecond)
		if get(outside, bearer("monitor-token-one-0123456789")) != 401 || get(outside, session) != 401 || get(outside, bearer("monitor-token-two-0123456789")) != 200 {
			t.Errorf("after the rotation: the old token or its session still works, or the new one does not")
		}
		write("", 0)
		time.Sleep(1100 * time.Millisecond)
		if c := get(outside, bearer("monitor-token-two-0123456789")); c != 401 {
			t.Errorf("empty token file: %d, want 401 (no token accepted)", c)
		}
		if m := call(h, http.MethodGet, "/metrics", outside, "localhost", nil, nil).Body.String(); !strings.Contains(m, "hotelbus_monitor_token_reload_errors_total 1") ||
			strings.Contains(m, "monitor-token") {
			t.Errorf("metrics: want one token reload error and no token:\n%s", m)
		}
	})
	t.Run("trusted proxy", func(t *testing.T) {
		h := handlerOnly(t, monitor.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
		user := http.Header{"X-Forwarded-User": {"alice@hotel.example"}}
		if w := call(h, http.MethodGet, "/api/snapshot", outside, "localhost", user, nil); w.Code != 200 {
			t.Errorf("proxy with user: %d", w.Code)
		}
		problem(t, "proxy without user", call(h, http.MethodGet, "/api/snapshot", outside, "localhost", nil, nil), 401)
		problem(t, "user header from elsewhere", call(h, http.MethodGet, "/api/snapshot", "192.168.1.7:5555", "localhost", user, nil), 401)
		problem(t, "loopback once auth is configured", call(h, http.MethodGet, "/api/snapshot", loopback, "localhost", nil, nil), 401)
	})
}

// TestJourneyBounded: a journey reads at most JourneyMaxRange back, an invalid correlationId is
// refused, reads run at most JourneyConcurrency at once (429 beyond, with Retry-After) and each
// ends at JourneyTimeout (504): the audit topic is never scanned without bound.
func TestJourneyBounded(t *testing.T) {
	h := handlerOnly(t, monitor.Config{JourneyConcurrency: 2, JourneyTimeout: 3 * time.Second, JourneyMaxRange: time.Hour})
	journey := func(q string) *httptest.ResponseRecorder {
		return call(h, http.MethodGet, "/api/journey?"+q, loopback, "localhost", nil, nil)
	}
	problem(t, "no id", journey(""), 400)
	problem(t, "long id", journey("correlationId="+strings.Repeat("x", 300)), 400)
	problem(t, "control character", journey("correlationId=a%0Ab"), 400)
	problem(t, "from before the range", journey("correlationId=c&from=-2h"), 400)
	problem(t, "from before the range (RFC 3339)", journey("correlationId=c&from="+time.Now().Add(-25*time.Hour).UTC().Format(time.RFC3339)), 400)

	var wg sync.WaitGroup
	slow := make([]*httptest.ResponseRecorder, 2)
	start := time.Now()
	for i := range slow {
		wg.Go(func() { slow[i] = journey("correlationId=c&from=-30m") })
	}
	time.Sleep(200 * time.Millisecond)
	w := journey("correlationId=c")
	problem(t, "a third journey at once", w, 429)
	if w.Header().Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	wg.Wait()
	for _, w := range slow {
		problem(t, "a journey past its timeout", w, 504)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the journeys took %s, want about the 3s timeout", d)
	}
}
