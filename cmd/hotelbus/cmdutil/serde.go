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
// cat, with opts. register makes it register schema versions on first use (--dev-register).
func (f *Factory) Serde(registryFlag string, cat *topics.Catalog, register bool, opts ...streams.SerdeOption) (*streams.Serde, error) {
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
	return streams.NewSerde(cl, set, cat, append([]streams.SerdeOption{streams.AutoRegister(register)}, opts...)...)
}

// RedisClient resolves --redis (see Redis) and returns a client for it (one server, Sentinel or
// Cluster, by the URL's form: streams.NewRedisClient); the caller closes it. The data nodes'
// password is HOTELBUS_REDIS_PASSWORD's when the URL has none, the Sentinels' is
// HOTELBUS_REDIS_SENTINEL_PASSWORD's.
func (f *Factory) RedisClient(flag string) (redis.UniversalClient, error) {
	url, err := f.Redis(flag)
	if err != nil {
		return nil, err
	}
	return f.RedisClientFor(url)
}

// RedisURLUsage ends the usage of every --redis flag: the forms, the variable, the password.
const RedisURLUsage = "redis://host:port/db (one server), redis-sentinel://host:port[,host:port...]/<master>[/<db>] or " +
	"redis-cluster://host:port[,host:port...]; rediss... for TLS (env HOTELBUS_REDIS; password from HOTELBUS_REDIS_PASSWORD)"

// Environment variables holding the Redis passwords (a Secret in the chart).
const (
	EnvRedisPassword         = "HOTELBUS_REDIS_PASSWORD"
	EnvRedisSentinelPassword = "HOTELBUS_REDIS_SENTINEL_PASSWORD"
)

// RedisClientFor returns a client for a Redis URL already resolved by Redis, as RedisClient does.
func (f *Factory) RedisClientFor(url string, opts ...streams.RedisOption) (redis.UniversalClient, error) {
	opts = append(opts, streams.RedisPassword(f.Getenv(EnvRedisPassword)), streams.RedisSentinelPassword(f.Getenv(EnvRedisSentinelPassword)))
	rdb, err := streams.NewRedisClient(url, opts...)
	if err != nil {
		return nil, Usagef("--redis: %v", err)
	}
	return rdb, nil
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
