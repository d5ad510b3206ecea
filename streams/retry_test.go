package streams_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

func retryMessage() *streams.Message {
	return &streams.Message{Group: "g", Record: &kgo.Record{Topic: "t", Key: []byte("tenant-1")}}
}

// TestRetryTransient: a handler failing transiently is called again until it succeeds, with
// Attempt, FirstFailure and LastFailure kept on the message.
func TestRetryTransient(t *testing.T) {
	transient := errors.New("connection reset")
	var attempts []int
	h := streams.Retry(streams.RetryBackoff(time.Millisecond, 2*time.Millisecond))(func(_ context.Context, m *streams.Message) error {
		attempts = append(attempts, m.Attempt)
		if len(attempts) < 4 {
			return transient
		}
		return nil
	})
	m := retryMessage()
	start := time.Now()
	if err := h(testCtx(t), m); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(attempts) != "[1 2 3 4]" || m.Attempt != 4 {
		t.Fatalf("attempts seen %v, m.Attempt %d; want [1 2 3 4] and 4", attempts, m.Attempt)
	}
	if m.FirstFailure.Before(start) || m.LastFailure.Before(m.FirstFailure) || m.LastFailure.Equal(m.FirstFailure) {
		t.Fatalf("failures first=%v last=%v (start %v)", m.FirstFailure, m.LastFailure, start)
	}
}

// TestRetryExhausted: a handler that keeps failing with a retryable error is called MaxAttempts
// times; the last error is returned inside a *RetryError saying so.
func TestRetryExhausted(t *testing.T) {
	for name, cause := range map[string]error{
		"plain":    errors.New("timeout talking to the PMS"),
		"registry": fmt.Errorf("lookup: %w", streams.ErrRegistry),
		"kerr":     kerr.NotLeaderForPartition,
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			h := streams.Retry(streams.RetryMaxAttempts(3), streams.RetryBackoff(time.Millisecond, time.Millisecond))(
				func(context.Context, *streams.Message) error { calls++; return cause })
			m := retryMessage()
			err := h(testCtx(t), m)
			var re *streams.RetryError
			if !errors.As(err, &re) || !errors.Is(err, cause) {
				t.Fatalf("error %v (%T), want a *RetryError wrapping %v", err, err, cause)
			}
			if calls != 3 || re.Attempts != 3 || !re.Exhausted || m.Attempt != 3 {
				t.Fatalf("calls=%d Attempts=%d Exhausted=%v m.Attempt=%d; want 3, 3, true, 3", calls, re.Attempts, re.Exhausted, m.Attempt)
			}
			if !re.FirstFailure.Equal(m.FirstFailure) || !re.LastFailure.Equal(m.LastFailure) || !re.LastFailure.After(re.FirstFailure) {
				t.Fatalf("RetryError failures %v..%v, message %v..%v", re.FirstFailure, re.LastFailure, m.FirstFailure, m.LastFailure)
			}
		})
	}
}

// TestRetryPermanent: errors IsRetryable rejects are not tried again.
func TestRetryPermanent(t *testing.T) {
	for name, cause := range map[string]error{
		"Permanent":      streams.Permanent(errors.New("reservation does not exist")),
		"invalid event":  &streams.InvalidEventError{Fields: []streams.FieldError{{Path: "data.x", Message: "missing"}}},
		"kerr not retry": kerr.TopicAuthorizationFailed,
	} {
		t.Run(name, func(t *testing.T) {
			calls := 0
			h := streams.Retry(streams.RetryBackoff(time.Millisecond, time.Millisecond))(
				func(context.Context, *streams.Message) error { calls++; return cause })
			err := h(testCtx(t), retryMessage())
			var re *streams.RetryError
			if !errors.As(err, &re) || !errors.Is(err, cause) || streams.IsRetryable(err) {
				t.Fatalf("error %v, want a non-retryable *RetryError wrapping %v", err, cause)
			}
			if calls != 1 || re.Attempts != 1 || re.Exhausted {
				t.Fatalf("calls=%d Attempts=%d Exhausted=%v; want 1, 1, false", calls, re.Attempts, re.Exhausted)
			}
		})
	}
}

// TestRetryBackoffGrows: the waits between attempts grow exponentially (full jitter: the mean wait
// before attempt n+1 is initial*2^(n-1)/2) and never exceed the maximum.
func TestRetryBackoffGrows(t *testing.T) {
	const runs, attempts = 40, 6
	calls := make([][]time.Time, runs)
	var wg sync.WaitGroup
	ctx := testCtx(t)
	for i := range runs {
		h := streams.Retry(streams.RetryMaxAttempts(attempts), streams.RetryBackoff(2*time.Millisecond, time.Second))(
			func(context.Context, *streams.Message) error {
				calls[i] = append(calls[i], time.Now())
				return errors.New("still failing")
			})
		wg.Go(func() { _ = h(ctx, retryMessage()) })
	}
	wg.Wait()
	mean := make([]time.Duration, attempts-1) // mean[k]: wait after the (k+1)-th failure
	for _, c := range calls {
		if len(c) != attempts {
			t.Fatalf("%d calls, want %d", len(c), attempts)
		}
		for k := range attempts - 1 {
			mean[k] += c[k+1].Sub(c[k]) / runs
		}
	}
	// Expected means: 1, 2, 4, 8, 16 ms (plus scheduling latency).
	if mean[4] < 2*mean[1] || mean[4] < 8*time.Millisecond || mean[3] < mean[0] {
		t.Fatalf("mean waits %v do not grow exponentially", mean)
	}

	// A low maximum caps every wait: 12 attempts with max 1ms take nowhere near 2^11 ms.
	start := time.Now()
	h := streams.Retry(streams.RetryMaxAttempts(12), streams.RetryBackoff(time.Millisecond, time.Millisecond))(
		func(context.Context, *streams.Message) error { return errors.New("failing") })
	_ = h(ctx, retryMessage())
	if el := time.Since(start); el > time.Second {
		t.Fatalf("12 attempts with max backoff 1ms took %v", el)
	}
}

// TestRetryStopsOnCancel: canceling the context while waiting between attempts returns at once
// with the context's error, without another attempt.
func TestRetryStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(testCtx(t))
	calls := 0
	failed := make(chan struct{})
	h := streams.Retry(streams.RetryBackoff(time.Hour, time.Hour))(func(context.Context, *streams.Message) error {
		calls++
		close(failed)
		return errors.New("transient")
	})
	done := make(chan error, 1)
	go func() { done <- h(ctx, retryMessage()) }()
	<-failed
	cancel()
	select {
	case err := <-done:
		var re *streams.RetryError
		if !errors.Is(err, context.Canceled) || errors.As(err, &re) {
			t.Fatalf("error %v, want context.Canceled and no RetryError", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Retry did not return after the context was canceled")
	}
	if calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}

// TestRetryConfig: invalid options are a programming error.
func TestRetryConfig(t *testing.T) {
	for name, opt := range map[string]streams.RetryOption{
		"zero attempts":    streams.RetryMaxAttempts(0),
		"inverted backoff": streams.RetryBackoff(time.Second, time.Millisecond),
		"zero backoff":     streams.RetryBackoff(0, time.Second),
	} {
		func() {
			defer func() {
				r := recover()
				if err, ok := r.(error); !ok || !errors.Is(err, streams.ErrConfig) {
					t.Errorf("%s: panic %v, want an ErrConfig error", name, r)
				}
			}()
			streams.Retry(opt)
		}()
	}
}
