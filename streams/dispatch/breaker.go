package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hotelbus/hotelbus/streams"
)

// State is the circuit breaker's state.
type State int

const (
	// Closed: the target is up; deliveries go out at once.
	Closed State = iota
	// Open: the target is down; deliveries wait for the next probe.
	Open
	// Probing: one probe delivery is out; the others wait for its outcome.
	Probing
)

func (s State) String() string {
	switch s {
	case Closed:
		return "closed"
	case Open:
		return "open"
	}
	return "probing"
}

// breaker counts consecutive transient failures and, past the threshold, holds deliveries back
// until a probe gets through. Safe for concurrent use.
type breaker struct {
	threshold          int
	log                *slog.Logger
	mu                 sync.Mutex
	state              State
	failures           int
	probes             streams.Backoff // the probe intervals: initial, doubling up to max
	wait               time.Duration   // the current probe interval
	openUntil          time.Time
	changed            chan struct{} // closed and replaced on every state change
	opened, probesSent int64
}

func newBreaker(threshold int, initial, max time.Duration, log *slog.Logger) *breaker {
	return &breaker{threshold: threshold, probes: streams.Backoff{Initial: initial, Max: max}, log: log, changed: make(chan struct{})}
}

// acquire blocks until a delivery may go out: at once while closed; while open, until the probe
// time, when exactly one caller becomes the probe (probe is true) and the others wait for its
// outcome. It returns ctx's error when ctx ends first.
func (b *breaker) acquire(ctx context.Context) (probe bool, err error) {
	for {
		b.mu.Lock()
		wait := time.Duration(-1) // probing: until the probe's outcome
		switch b.state {
		case Closed:
			b.mu.Unlock()
			return false, nil
		case Open:
			if wait = time.Until(b.openUntil); wait <= 0 {
				b.setLocked(Probing)
				b.probesSent++
				b.mu.Unlock()
				return true, nil
			}
		}
		ch := b.changed
		b.mu.Unlock()
		if err := waitFor(ctx, ch, wait); err != nil {
			return false, err
		}
	}
}

// success records an answer from the target that was not a transient failure.
func (b *breaker) success(probe bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures = 0
	if b.state != Closed && (probe || b.state == Open) {
		b.log.Info("dispatch: target is back; circuit closed")
		b.wait = 0
		b.probes.Reset()
		b.setLocked(Closed)
	}
}

// failure records a transient failure and reports whether the breaker is now open (or probing):
// the caller should then wait for recovery (acquire) instead of failing. after is the target's
// Retry-After, which the next probe respects.
func (b *breaker) failure(probe bool, after time.Duration) (open bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.failures++
	switch {
	case probe:
		b.wait = b.probes.Next()
	case b.state == Closed && b.failures >= b.threshold:
		b.probes.Reset()
		b.wait = b.probes.Next()
		b.opened++
		b.log.Warn("dispatch: target down; circuit open, deliveries wait for a probe", "consecutive_failures", b.failures, "probe_in", b.wait)
	case b.state == Closed:
		return false
	default:
		return true // open or probing already: a delivery that was out when it opened
	}
	b.openUntil = time.Now().Add(max(b.wait, after))
	b.setLocked(Open)
	return true
}

func (b *breaker) setLocked(s State) {
	b.state = s
	close(b.changed)
	b.changed = make(chan struct{})
}

func (b *breaker) current() State {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.state
}

// waitFor waits until ch is closed, d passes (d < 0: no limit) or ctx ends (returning its error).
func waitFor(ctx context.Context, ch <-chan struct{}, d time.Duration) error {
	var timeout <-chan time.Time
	if d >= 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-ch:
	case <-timeout:
	}
	return nil
}
