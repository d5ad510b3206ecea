package streams_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
)

// TestBackoff: waits start at Initial, double up to Max and stay there; Reset starts over; with
// Jitter each wait is below its step (and they are not all equal); Wait returns ctx's error when
// ctx ends first.
func TestBackoff(t *testing.T) {
	b := streams.Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}
	var got []time.Duration
	for range 5 {
		got = append(got, b.Next())
	}
	want := []time.Duration{10, 20, 40, 50, 50}
	for i := range want {
		if got[i] != want[i]*time.Millisecond {
			t.Fatalf("waits %v, want %v ms", got, want)
		}
	}
	b.Reset()
	if d := b.Next(); d != 10*time.Millisecond {
		t.Fatalf("after Reset: %v, want 10ms", d)
	}
	j := streams.Backoff{Initial: time.Second, Max: time.Second, Jitter: true}
	seen := map[time.Duration]bool{}
	for range 50 {
		d := j.Next()
		if d < 0 || d >= time.Second {
			t.Fatalf("jittered wait %v outside [0, 1s)", d)
		}
		seen[d] = true
	}
	if len(seen) < 2 {
		t.Fatalf("50 jittered waits all equal: %v", seen)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	long := streams.Backoff{Initial: time.Hour, Max: time.Hour}
	if err := long.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on an ended context: %v, want context.Canceled", err)
	}
}
