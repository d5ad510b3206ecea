package monitor

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// securityHeaders are set on every answer: no framing (clickjacking), no script, style or
// connection but the monitor's own, no MIME sniffing, no referrer.
var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
	"X-Frame-Options":        "DENY",
	"X-Content-Type-Options": "nosniff",
	"Referrer-Policy":        "no-referrer",
}

// loginPaths are served to anyone whose Host is allowed: the sign-in form and its style sheet.
var loginPaths = []string{"/login", "/style.css"}

// openPaths answer without authentication and for any Host: the probes and the Prometheus scrape
// (which reaches pods by IP, and carries no secret: group, topic and system names and counts).
var openPaths = []string{"/healthz", "/readyz", "/metrics"}

// sessionCookie holds a browser's proof of the token after POST /login.
const sessionCookie = "hotelbus_monitor_session"

// tokenRecheck is how often the token file is checked for a change.
const tokenRecheck = time.Second

// access guards the handler: security headers everywhere; for every path but openPaths, a Host
// allow-list (against DNS rebinding) and authentication (see Config.TokenFile).
type access struct {
	cfg  *Config
	next http.Handler

	reloadErrs prometheus.Counter

	mu      sync.Mutex
	loaded  bool // the token file was read at least once
	checked time.Time
	mod     time.Time
	size    int64
	token   []byte // nil: no valid token (none configured, or the file unusable)
}

func (a *access) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	for k, v := range securityHeaders {
		w.Header().Set(k, v)
	}
	if slices.Contains(openPaths, r.URL.Path) {
		a.next.ServeHTTP(w, r)
		return
	}
	if !a.hostAllowed(r.Host) {
		writeProblem(w, http.StatusMisdirectedRequest, "Host not allowed",
			"monitor: this Host is not served (allowed: IP addresses, localhost and the configured allowed hosts)")
		return
	}
	if r.Method == http.MethodPost && r.URL.Path == "/login" {
		a.login(w, r)
		return
	}
	if !slices.Contains(loginPaths, r.URL.Path) && !a.authenticated(r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="hotelbus-monitor"`)
		if r.Method == http.MethodGet && (r.URL.Path == "/" || r.URL.Path == "/index.html") && a.cfg.TokenFile != "" {
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			b, _ := assets.ReadFile("assets/login.html")
			_, _ = w.Write(b)
			return
		}
		detail := "monitor: send Authorization: Bearer <token>, or come through the trusted proxy"
		if a.cfg.TokenFile == "" && len(a.cfg.TrustedProxies) == 0 {
			detail = "monitor: no authentication is configured (a token file or a trusted proxy), so only loopback clients are served"
		}
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", detail)
		return
	}
	a.next.ServeHTTP(w, r)
}

// hostAllowed: an IP literal (a rebinding attack needs a name), localhost, or a configured host.
func (a *access) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if _, err := netip.ParseAddr(host); err == nil || host == "localhost" {
		return true
	}
	return slices.ContainsFunc(a.cfg.AllowedHosts, func(h string) bool { return strings.EqualFold(h, host) })
}

// authenticated: a valid bearer token or session cookie; a request from a trusted proxy carrying
// the user header; or, with no authentication configured, a loopback client.
func (a *access) authenticated(r *http.Request) bool {
	if tok := a.currentToken(); tok != nil {
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && equalSecret([]byte(strings.TrimSpace(v)), tok) {
			return true
		}
		if c, err := r.Cookie(sessionCookie); err == nil && hmac.Equal([]byte(c.Value), []byte(session(tok))) {
			return true
		}
	}
	ip := remoteIP(r)
	if len(a.cfg.TrustedProxies) > 0 && ip.IsValid() && slices.ContainsFunc(a.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(ip) }) {
		return strings.TrimSpace(r.Header.Get(a.cfg.UserHeader)) != ""
	}
	return a.cfg.TokenFile == "" && len(a.cfg.TrustedProxies) == 0 && ip.IsLoopback()
}

// login sets the session cookie when the form's token is valid, for browsers (EventSource cannot
// send an Authorization header).
func (a *access) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	tok := a.currentToken()
	if tok == nil || r.ParseForm() != nil || !equalSecret([]byte(strings.TrimSpace(r.PostForm.Get("token"))), tok) {
		writeProblem(w, http.StatusUnauthorized, "Unauthorized", "monitor: wrong token")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: session(tok), Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil})
	http.Redirect(w, r, "./", http.StatusSeeOther)
}

// currentToken returns the token of Config.TokenFile, rereading the file when its modification
// time or size changed (checked at most once a second). An unreadable file, or a token shorter
// than 16 bytes (an empty file included), accepts no token: authentication fails closed, and the
// failure is logged at error and counted in hotelbus_monitor_token_reload_errors_total.
func (a *access) currentToken() []byte {
	if a.cfg.TokenFile == "" {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.loaded && time.Since(a.checked) < tokenRecheck {
		return a.token
	}
	a.checked = time.Now()
	fi, err := os.Stat(a.cfg.TokenFile)
	if err == nil && a.loaded && fi.ModTime().Equal(a.mod) && fi.Size() == a.size {
		return a.token
	}
	var b []byte
	if err == nil {
		a.mod, a.size = fi.ModTime(), fi.Size()
		b, err = os.ReadFile(a.cfg.TokenFile)
	}
	a.loaded = true
	if b = bytes.TrimSpace(b); err == nil && len(b) < 16 {
		err = fmt.Errorf("%s: the token must have at least 16 bytes (got %d)", a.cfg.TokenFile, len(b))
	}
	if err != nil {
		a.token = nil
		a.reloadErrs.Inc()
		a.cfg.Logger.Error("monitor: token file unusable; no bearer token is accepted until it is fixed", "err", err)
		return nil
	}
	a.token = b
	return a.token
}

// equalSecret compares in constant time (of the digests, so the length does not leak either).
func equalSecret(got, want []byte) bool {
	g, w := sha256.Sum256(got), sha256.Sum256(want)
	return hmac.Equal(g[:], w[:])
}

// session is the cookie value of token: a MAC, so the token itself is never stored in the browser.
func session(token []byte) string {
	m := hmac.New(sha256.New, token)
	m.Write([]byte("hotelbus-monitor-session"))
	return hex.EncodeToString(m.Sum(nil))
}

func remoteIP(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
