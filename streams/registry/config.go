package registry

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/sr"
)

// Option configures New.
type Option func(*config)

type config struct {
	dataDir      string
	listen       string
	defaultLevel sr.CompatibilityLevel
}

func defaultConfig() config {
	return config{
		listen:       "127.0.0.1:0",
		defaultLevel: sr.CompatFullTransitive,
	}
}

// DataDir makes the registry durable: every change is appended to dir/registry.jsonl (created with
// dir if missing) and fsynced before it is acknowledged, and New replays the file, so schema ids,
// versions and compatibility levels survive a restart. "" (the default) keeps everything in memory.
// One registry at a time may use a dir.
func DataDir(dir string) Option {
	return func(c *config) { c.dataDir = dir }
}

// Listen sets the TCP address the registry serves on. The default, "127.0.0.1:0", is a free loopback
// port; URL reports the one chosen.
func Listen(addr string) Option {
	return func(c *config) { c.listen = addr }
}

// DefaultLevel sets the global compatibility level, used by subjects without their own level, and
// the level DELETE /config goes back to. The default is FULL_TRANSITIVE, the level hotelbus holds
// its subjects at (Confluent's is BACKWARD). A global level set over HTTP (PUT /config) and kept in
// DataDir takes precedence after a restart.
func DefaultLevel(level sr.CompatibilityLevel) Option {
	return func(c *config) { c.defaultLevel = level }
}

func (c config) validate() error {
	if c.listen == "" {
		return fmt.Errorf("%w: empty listen address", ErrConfig)
	}
	if c.defaultLevel.String() == "" {
		return fmt.Errorf("%w: unknown default compatibility level %d", ErrConfig, c.defaultLevel)
	}
	return nil
}
