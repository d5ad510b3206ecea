package cmdutil

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams"
)

// DefaultConnectTimeout is how long a command waits, by default, for Kafka, the schema registry
// and Redis to answer at start (--connect-timeout).
const DefaultConnectTimeout = 10 * time.Second

// component is a service a command resolved (Kafka, the schema registry or Redis) and will talk to.
type component struct {
	// what names the kind of service; addr is where it is and origin where addr came from (the
	// flag, the environment variable or the dev stack's endpoints.json).
	what, addr, origin string
	// try is the request sent to check that it answers ("Metadata request", "GET /subjects",
	// "PING"); ping sends it.
	try  string
	ping func(ctx context.Context) error
	// checked is set once Reachable or WarnUnreachable has asked it.
	checked bool
}

// use records that the command talks to a component, once per kind and address.
func (f *Factory) use(c *component) {
	for _, u := range f.components {
		if u.what == c.what && u.addr == c.addr {
			return
		}
	}
	f.components = append(f.components, c)
}

func (f *Factory) useKafka(seeds []string, origin string, opts []kgo.Opt) {
	f.use(&component{what: "Kafka", addr: strings.Join(seeds, ","), origin: origin, try: "Metadata request",
		ping: func(ctx context.Context) error {
			cl, err := kgo.NewClient(append(opts, kgo.SeedBrokers(seeds...))...)
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.Ping(ctx)
		}})
}

func (f *Factory) useRegistry(url, origin string) {
	f.use(&component{what: "the schema registry", addr: url, origin: origin, try: "GET /subjects",
		ping: func(ctx context.Context) error {
			cl, err := sr.NewClient(sr.URLs(url))
			if err != nil {
				return err
			}
			_, err = cl.Subjects(ctx)
			return err
		}})
}

func (f *Factory) useRedis(url, origin string) {
	f.use(&component{what: "Redis", addr: streams.RedactRedisURL(url), origin: origin, try: "PING",
		ping: func(ctx context.Context) error {
			// One attempt: the answer, not a retry policy, is checked.
			cl, err := f.RedisClientFor(url, streams.RedisNoRetry())
			if err != nil {
				return err
			}
			defer cl.Close()
			return cl.Ping(ctx).Err()
		}})
}

// Reachable checks that every component the command resolved so far through this Factory (Kafka
// by KafkaOpts or KafkaClient, the registry by Registry or Serde, Redis by Redis or RedisClient)
// answers, asking them all at once and waiting at most --connect-timeout (DefaultConnectTimeout).
// Commands call it after their flags are validated and before the work starts, so that an
// unreachable address fails at once instead of hanging in a client's retries. The error wraps
// ErrUnreachable with one line per component that did not answer, naming it, its address, where
// the address came from and the request tried. A component is asked once per Factory.
func (f *Factory) Reachable(ctx context.Context) error {
	if f.ConnectTimeout <= 0 {
		return Usagef("--connect-timeout: %s is not positive", f.ConnectTimeout)
	}
	ctx, cancel := context.WithTimeout(ctx, f.ConnectTimeout)
	defer cancel()
	var pending []*component
	for _, c := range f.components {
		if !c.checked {
			c.checked = true
			pending = append(pending, c)
		}
	}
	errs := make([]error, len(pending))
	var wg sync.WaitGroup
	for i, c := range pending {
		wg.Go(func() {
			if err := c.ping(ctx); err != nil {
				errs[i] = f.unreachable(ctx, c, err)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WarnUnreachable is Reachable for long-running commands (gateway, dispatch, monitor), whose
// clients keep retrying and whose /readyz reports not ready until the component answers: it
// prints each failure as a "warning: ... (still trying)" line on ErrOut instead of failing, and
// returns nil unless --connect-timeout is unusable.
func (f *Factory) WarnUnreachable(ctx context.Context) error {
	err := f.Reachable(ctx)
	if !errors.Is(err, ErrUnreachable) {
		return err
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintf(f.ErrOut, "warning: %s (still trying)\n", line)
	}
	return nil
}

// unreachable describes c's failure to answer: a deadline is shown as the timeout it is.
func (f *Factory) unreachable(ctx context.Context, c *component, err error) error {
	if ctx.Err() != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || isTimeout(err)) {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s (--connect-timeout)", f.ConnectTimeout)
		} else {
			err = fmt.Errorf("interrupted: %w", ctx.Err())
		}
	}
	return fmt.Errorf("%w %s at %s (from %s): %s: %v", ErrUnreachable, c.what, c.addr, c.origin, c.try, err)
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}
