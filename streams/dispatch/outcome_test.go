package dispatch_test

import (
	"context"
	"errors"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams/dispatch"
)

// TestDispatchFailureClasses: every transient delivery failure is logged with its class and the
// eventId, and a failure whose outcome is unknown (the request was sent, no answer came) is told
// apart from one that never left (the target may have acted on the first, never on the second).
func TestDispatchFailureClasses(t *testing.T) {
	serde, m := message(t)
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL
	refused.Close()
	acted := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		acted <- struct{}{} // the side effect runs, the answer comes too late
		time.Sleep(300 * time.Millisecond)
		w.WriteHeader(http.StatusNoContent)
	}))
	defer slow.Close()
	// A target that reads the request and drops the connection without an answer.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Read(make([]byte, 64<<10))
			_ = c.Close()
		}
	}()
	unavailable := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }))
	defer unavailable.Close()

	for _, tc := range []struct {
		name, url, class string
	}{
		{"connection refused", refusedURL, dispatch.ClassNotSent},
		{"answer after the timeout", slow.URL, dispatch.ClassUnknownOutcome},
		{"connection dropped after the request", "http://" + ln.Addr().String(), dispatch.ClassUnknownOutcome},
		{"503", unavailable.URL, dispatch.ClassStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs streamstest.LogBuffer
			log := slog.New(slog.NewTextHandler(&logs, nil))
			d, err := dispatch.New(tc.url, serde, dispatch.Secret(secret), dispatch.Timeout(100*time.Millisecond),
				dispatch.Breaker(100, time.Second, time.Second), dispatch.Logger(log))
			if err != nil {
				t.Fatal(err)
			}
			err = d.Handler()(context.Background(), m)
			if err == nil {
				t.Fatal("delivery succeeded, want a transient failure")
			}
			var de *dispatch.DeliveryError
			if tc.class != dispatch.ClassStatus && (!errors.As(err, &de) || de.Sent != (tc.class == dispatch.ClassUnknownOutcome)) {
				t.Fatalf("err = %v, want a DeliveryError with Sent = %v", err, tc.class == dispatch.ClassUnknownOutcome)
			}
			out := logs.String()
			if !strings.Contains(out, "class="+tc.class) || !strings.Contains(out, "eventId="+m.Envelope.EventID) {
				t.Fatalf("log does not name class %s and the eventId:\n%s", tc.class, out)
			}
			if tc.class == dispatch.ClassUnknownOutcome && !strings.Contains(out, "level=WARN") {
				t.Fatalf("an unknown outcome is not logged at warn:\n%s", out)
			}
		})
	}
	select {
	case <-acted:
	default:
		t.Fatal("the slow target never ran its side effect: the unknown-outcome case was not exercised")
	}
}
