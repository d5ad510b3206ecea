package cmdutil_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
)

// TestTracingFromEnvironment: tracing is off without OTEL_* configuration, and with an OTLP
// endpoint the spans reach it over OTLP/HTTP.
func TestTracingFromEnvironment(t *testing.T) {
	env := map[string]string{}
	f := &cmdutil.Factory{Getenv: func(k string) string { return env[k] }}
	tp, shutdown, err := f.Tracing(context.Background(), "test")
	if tp != nil || err != nil || shutdown(context.Background()) != nil {
		t.Fatalf("no OTEL_* variables: provider %v, err %v; want off", tp, err)
	}

	var posts atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/traces" && r.Header.Get("Content-Type") == "application/x-protobuf" {
			posts.Add(1)
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	env["OTEL_EXPORTER_OTLP_ENDPOINT"] = srv.URL
	tp, shutdown, err = f.Tracing(context.Background(), "test")
	if tp == nil || err != nil {
		t.Fatalf("with an endpoint: provider %v, err %v", tp, err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "work")
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if posts.Load() != 1 {
		t.Fatalf("%d OTLP exports received, want 1", posts.Load())
	}

	env["OTEL_SDK_DISABLED"] = "true"
	if tp, _, _ := f.Tracing(context.Background(), "test"); tp != nil {
		t.Fatal("OTEL_SDK_DISABLED=true: tracing on")
	}
}
