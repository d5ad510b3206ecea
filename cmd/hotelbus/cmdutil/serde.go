package cmdutil

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Catalog returns the embedded catalog (default environment) with every topic and group name
// prefixed by prefix (--prefix: an isolated copy of the topics).
func Catalog(prefix string) (*topics.Catalog, error) {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		return nil, err
	}
	return cat.WithPrefix(prefix), nil
}

// Serde resolves --registry (see Registry) and returns the Serde of the embedded schemas over
// cat. register makes it register schema versions on first use (--dev-register).
func (f *Factory) Serde(registryFlag string, cat *topics.Catalog, register bool) (*streams.Serde, error) {
	url, err := f.Registry(registryFlag)
	if err != nil {
		return nil, err
	}
	cl, err := sr.NewClient(sr.URLs(url))
	if err != nil {
		return nil, Usagef("--registry: %v", err)
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return nil, err
	}
	return streams.NewSerde(cl, set, cat, streams.AutoRegister(register))
}

// RedisClient resolves --redis (see Redis) and returns a client for it; the caller closes it.
func (f *Factory) RedisClient(flag string) (*redis.Client, error) {
	url, err := f.Redis(flag)
	if err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, Usagef("--redis: %v", err)
	}
	return redis.NewClient(opts), nil
}

// LookupSystem returns the catalog's system called name, or a usage error naming --system and
// listing the systems.
func LookupSystem(cat *topics.Catalog, name string) (topics.System, error) {
	if name == "" {
		return topics.System{}, Usagef("--system is required")
	}
	sys, err := cat.LookupSystem(name)
	if err != nil {
		return topics.System{}, Usagef("--system: %v", err)
	}
	return sys, nil
}

// Interruptible returns a cobra RunE that calls run with a context canceled by SIGINT or SIGTERM,
// for the long-running commands that shut down gracefully.
func Interruptible(run func(ctx context.Context) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(c.Context(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		return run(ctx)
	}
}
