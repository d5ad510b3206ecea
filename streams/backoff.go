package streams

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is the SDK's one exponential backoff, for every wait between attempts (dedup waiting for
// Redis or a lease, the consumer running a chain again, the retry middleware; local views and the
// RabbitMQ bridge starting over after a failure): the first wait is Initial, each next one
// doubles, up to Max. With Jitter each wait is instead uniform in [0, that step) ("full jitter"),
// so that many clients failing together do not retry together.
// Written here rather than taken from a library because it is twelve lines and every caller needs
// the context-aware Wait. A Backoff is not safe for concurrent use; its zero step starts at
// Initial, and Reset starts over.
type Backoff struct {
	Initial, Max time.Duration
	Jitter       bool
	step         time.Duration
}

// Next returns the next wait and advances the step.
func (b *Backoff) Next() time.Duration {
	b.step = max(b.step, b.Initial)
	d := b.step
	b.step = min(2*b.step, b.Max)
	if b.Jitter && d > 0 {
		return rand.N(d)
	}
	return d
}

// Step returns the step the next wait is taken from (Initial before the first).
func (b *Backoff) Step() time.Duration { return max(b.step, b.Initial) }

// Reset starts over at Initial.
func (b *Backoff) Reset() { b.step = 0 }

// Wait sleeps Next(), or until ctx ends (returning its error).
func (b *Backoff) Wait(ctx context.Context) error {
	return sleepCtx(ctx, b.Next())
}

// sleepCtx sleeps d, or until ctx ends (returning its error).
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
