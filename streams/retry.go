package streams

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// RetryError is what the retry middleware returns when it gives up on a message: Err is the last
// attempt's error, unchanged for errors.Is, errors.As and IsRetryable. Exhausted tells the two ways
// to give up apart: true when Err was retryable and the attempts ran out, false when Err was not
// retryable (it was not tried again).
type RetryError struct {
	Err                       error
	Attempts                  int
	FirstFailure, LastFailure time.Time
	Exhausted                 bool
}

func (e *RetryError) Error() string {
	if e.Exhausted {
		return fmt.Sprintf("streams: retries exhausted after %d attempts: %v", e.Attempts, e.Err)
	}
	return fmt.Sprintf("streams: not retryable (attempt %d): %v", e.Attempts, e.Err)
}

func (e *RetryError) Unwrap() error { return e.Err }

// RetryAfterer is implemented by retryable errors that know when trying again makes sense (an
// HTTP 429 or 503 with Retry-After): the retry middleware waits at least that long.
type RetryAfterer interface {
	RetryAfter() time.Duration
}

// Retry returns the retry middleware. It calls the inner handler until it succeeds, returns an
// error that IsRetryable rejects, or has been called RetryMaxAttempts times; between attempts it
// waits an exponential backoff with full jitter (see RetryBackoff), or longer when the error is a
// RetryAfterer asking for more. Retries happen in place: only
// the message being retried (and so its key) waits; the consumer keeps other keys flowing.
//
// Before each call it sets m.Attempt (from 1); after each failure it sets m.LastFailure, and
// m.FirstFailure on the first. When it gives up it returns a *RetryError wrapping the last error,
// for the dead-letter middleware outside it. When ctx ends while it waits between attempts it
// returns an error wrapping ctx's error (and the last failure): the consumer is shutting down or
// losing the partition, and the message must be neither committed nor dead-lettered.
//
// Chain order: Retry sits inside the dead-letter middleware (Dedup, DeadLetter, Retry, handler),
// so that a message is dead-lettered once, after its last attempt. Retry panics on an invalid
// option (a programming error).
func Retry(opts ...RetryOption) Middleware {
	cfg := defaultRetryConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		panic(err)
	}
	return func(next Handler) Handler {
		return func(ctx context.Context, m *Message) error {
			bo := Backoff{Initial: cfg.backoffInitial, Max: cfg.backoffMax, Jitter: true}
			for attempt := 1; ; attempt++ {
				m.Attempt = attempt
				err := next(ctx, m)
				if err == nil {
					return nil
				}
				now := time.Now()
				if m.FirstFailure.IsZero() {
					m.FirstFailure = now
				}
				m.LastFailure = now
				if ctx.Err() != nil {
					return fmt.Errorf("streams: retry stopped at attempt %d (last error: %v): %w", attempt, err, ctx.Err())
				}
				retryable := IsRetryable(err)
				if !retryable || attempt >= cfg.maxAttempts {
					return &RetryError{Err: err, Attempts: attempt, FirstFailure: m.FirstFailure, LastFailure: m.LastFailure, Exhausted: retryable}
				}
				wait := bo.Next()
				var ra RetryAfterer
				if errors.As(err, &ra) {
					wait = max(wait, ra.RetryAfter())
				}
				if sleepCtx(ctx, wait) != nil {
					return fmt.Errorf("streams: retry stopped after attempt %d (last error: %v): %w", attempt, err, ctx.Err())
				}
			}
		}
	}
}
