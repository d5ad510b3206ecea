package dispatch_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/dispatch"
)

// TestDispatchRedactsTarget: a token in the target's query shows nowhere: not in the error (which
// becomes the dead letter's error message), the logs, the span, nor the metrics; credentials in
// the URL are refused without being echoed.
func TestDispatchRedactsTarget(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close() // unreachable: the client's error names the URL
	const token = "s3cr3t-query-token"
	serde, m := message(t)
	var logs streamstest.LogBuffer
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	d, err := dispatch.New(base+"/hooks?token="+token, serde, dispatch.Secret(secret), dispatch.Breaker(100, time.Second, time.Second),
		dispatch.Logger(slog.New(slog.NewTextHandler(&logs, nil))), dispatch.Tracing(tp))
	if err != nil {
		t.Fatal(err)
	}
	if d.Target() != base+"/hooks" {
		t.Errorf("Target() = %q, want %q", d.Target(), base+"/hooks")
	}
	err = d.Handler()(context.Background(), m)
	if err == nil || !streams.IsRetryable(err) {
		t.Fatalf("unreachable target: %v, want a retryable error", err)
	}
	var out []string
	out = append(out, err.Error(), logs.String())
	for _, s := range rec.Ended() {
		for _, a := range s.Attributes() {
			out = append(out, string(a.Key)+"="+a.Value.String())
		}
		for _, e := range s.Events() {
			for _, a := range e.Attributes {
				out = append(out, a.Value.String())
			}
		}
		out = append(out, s.Status().Description)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(d.Collector("hotel-pms"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var metrics bytes.Buffer
	for _, mf := range mfs {
		_, _ = expfmt.MetricFamilyToText(&metrics, mf)
	}
	out = append(out, metrics.String())
	for i, s := range out {
		if strings.Contains(s, token) {
			t.Errorf("output %d shows the token: %s", i, s)
		}
	}
	if !strings.Contains(metrics.String(), `target="`+base+`/hooks"`) {
		t.Errorf("metrics: %s; want the redacted target as label", metrics.String())
	}

	_, err = dispatch.New("https://hooks:p4ssw0rd@pms.example/hooks", serde, dispatch.Secret(secret))
	if !errors.Is(err, dispatch.ErrConfig) || strings.Contains(err.Error(), "p4ssw0rd") || !strings.Contains(err.Error(), "TargetAuthFile") {
		t.Fatalf("credentials in the URL: %v; want ErrConfig pointing at TargetAuthFile, without the password", err)
	}
}

// TestDispatchRefusesRedirects: a 3xx answer is a permanent refusal with its status; the
// redirect is not followed, so the signed body never reaches the other address.
func TestDispatchRefusesRedirects(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		elsewhere.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	serde, m := message(t)
	for _, status := range []int{301, 302, 303, 307, 308} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/collect", status)
		}))
		// A caller's client that follows redirects is made not to.
		d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.HTTPClient(&http.Client{}))
		if err != nil {
			t.Fatal(err)
		}
		err = d.Handler()(context.Background(), m)
		var te *dispatch.TargetError
		if !errors.As(err, &te) || te.Status != status || streams.IsRetryable(err) {
			t.Errorf("%d: %v; want a permanent TargetError with the status", status, err)
		} else if h := te.DeadLetterHeaders(); string(h[0].Value) != fmt.Sprint(status) {
			t.Errorf("%d: dead-letter headers %v", status, h)
		}
		srv.Close()
	}
	if n := elsewhere.Load(); n != 0 {
		t.Fatalf("the redirect target got %d requests", n)
	}
}

// TestDispatchTargetAuthFile: the headers of the authentication file are sent and a change of the
// file is picked up; an invalid update keeps the previous headers and is logged without its
// content; files the dispatcher cannot use are refused at New without echoing a value.
func TestDispatchTargetAuthFile(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = append(got, r.Header.Get("Authorization")+"|"+r.Header.Get("X-Api-Key"))
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	serde, m := message(t)
	path := filepath.Join(t.TempDir(), "auth")
	write := func(s string, age time.Duration) { streamstest.WriteFileAged(t, path, s, age) }
	write("# the PMS hook's credentials\nAuthorization: Bearer tok-one\n\nX-Api-Key: k1\n", time.Hour)
	var logs streamstest.LogBuffer
	d, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.TargetAuthFile(path), dispatch.Logger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	deliver := func() string {
		t.Helper()
		if err := d.Handler()(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return got[len(got)-1]
	}
	if g := deliver(); g != "Bearer tok-one|k1" {
		t.Fatalf("sent %q", g)
	}
	write("Authorization: Bearer tok-two\n", 0)
	time.Sleep(1100 * time.Millisecond)
	if g := deliver(); g != "Bearer tok-two|" {
		t.Fatalf("after the update: sent %q, want the new token", g)
	}
	write("Authorization Bearer tok-three-malformed\n", 0)
	time.Sleep(1100 * time.Millisecond)
	if g := deliver(); g != "Bearer tok-two|" {
		t.Fatalf("after an invalid update: sent %q, want the previous token", g)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || strings.Contains(l, "tok-") {
		t.Fatalf("logs %q: want the failed reload at error, without the file's content", l)
	}

	for name, content := range map[string]string{
		"no colon":  "Bearer tok-secret\n",
		"reserved":  "ce-tenantid: tok-secret\n",
		"signature": "Hotelbus-Signature: tok-secret\n",
		"empty":     "# nothing\n",
		"control":   "Authorization: Bearer tok-secret\x00\n",
	} {
		write(content, time.Hour)
		_, err := dispatch.New(srv.URL, serde, dispatch.Secret(secret), dispatch.TargetAuthFile(path))
		if !errors.Is(err, dispatch.ErrConfig) || strings.Contains(err.Error(), "tok-secret") {
			t.Errorf("%s: %v; want ErrConfig without the value", name, err)
		}
	}
}
