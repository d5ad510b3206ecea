package views

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/topics"
)

// Config is what Open builds a system's views from. System, Dir, Catalog, Views, Schemas, Brokers
// and RegistryURLs are required; every other field has the default its comment gives.
type Config struct {
	// System is the system whose views these are.
	System string
	// Dir holds the store file (StoreFile); it is created when missing (mode 0700).
	Dir string
	// Catalog is the (possibly prefixed) catalog the views' source topics are named in.
	Catalog *topics.Catalog
	// Views are the views to keep, all of System (topics.LoadViews, ForSystem).
	Views []topics.View
	// Schemas is the local schema set; every view's key must be a string field of every feeding
	// type's schemas.
	Schemas *schemas.Set
	// Prefix is prepended to the changelog topics' names: the prefix Catalog was made with.
	// Default "".
	Prefix string
	// Brokers are the seed brokers (bootstrap.servers).
	Brokers []string
	// KafkaOptions are extra franz-go options (SASL, TLS), applied after the package's own.
	KafkaOptions []kgo.Opt
	// RegistryURLs are the schema registry's URLs.
	RegistryURLs []string
	// RegistryOptions are extra sr client options (basic auth), applied after the package's own.
	RegistryOptions []sr.ClientOpt
	// Logger receives skipped records, restores and connection trouble. Default slog.Default().
	Logger *slog.Logger
	// Metrics registers the views' series (lag, staleness, size, applied, skipped) when set.
	// Default nil (none).
	Metrics prometheus.Registerer
	// OfflineGrace is how long a view started from a store that already held positions waits for
	// Kafka before it declares itself ready on what it has. Default 5s.
	OfflineGrace time.Duration
	// CheckEvery is how often each view lists its source partitions' end offsets (lag, staleness,
	// readiness). Default 1s.
	CheckEvery time.Duration
	// RequestTimeout bounds each call to Kafka: a changelog flush, an end-offset listing, topic
	// creation. Default 10s.
	RequestTimeout time.Duration
	// Protector opens, as items are read (Get, Scan, GetAs, Handler), the personal-data values
	// streams/privacy sealed at publish: readers get clear values, and an erased subject's values
	// read as privacy.Erased. Items stay sealed on disk and in the changelog either way. Default
	// nil: items are served as stored, their personal-data values sealed.
	Protector Protector
}

// Protector opens the sealed values of the top-level fields data of event eventID of tenant,
// decoded as generic JSON values in the shape of v, in place (Config.Protector).
// *privacy.Protector is one (privacy.Protector.OpenData).
type Protector interface {
	OpenData(ctx context.Context, tenant, eventID string, v *schemas.Version, data map[string]any) error
}

func (c *Config) defaults() error {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.OfflineGrace == 0 {
		c.OfflineGrace = 5 * time.Second
	}
	if c.CheckEvery == 0 {
		c.CheckEvery = time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 10 * time.Second
	}
	switch {
	case c.System == "":
		return fmt.Errorf("%w: System: required", ErrConfig)
	case c.Dir == "":
		return fmt.Errorf("%w: Dir: required", ErrConfig)
	case c.Catalog == nil:
		return fmt.Errorf("%w: Catalog: required", ErrConfig)
	case c.Schemas == nil:
		return fmt.Errorf("%w: Schemas: required", ErrConfig)
	case len(c.Views) == 0:
		return fmt.Errorf("%w: Views: at least one view of %s is required", ErrConfig, c.System)
	case len(c.Brokers) == 0:
		return fmt.Errorf("%w: Brokers: at least one seed broker is required", ErrConfig)
	case len(c.RegistryURLs) == 0:
		return fmt.Errorf("%w: RegistryURLs: required", ErrConfig)
	case c.OfflineGrace < 0 || c.CheckEvery < 10*time.Millisecond || c.RequestTimeout < 100*time.Millisecond:
		return fmt.Errorf("%w: OfflineGrace must not be negative, CheckEvery be at least 10ms, RequestTimeout at least 100ms", ErrConfig)
	}
	for _, v := range c.Views {
		if v.System != c.System {
			return fmt.Errorf("%w: Views: %s is not a view of %s", ErrConfig, v, c.System)
		}
	}
	return nil
}

// CheckSchemas reports, wrapping ErrInvalid, every view whose key is not a top-level string field
// (nullable or not) of every major version's newest schema of each type that feeds it.
func CheckSchemas(vs []topics.View, set *schemas.Set) error {
	for _, v := range vs {
		for _, et := range v.EventTypes {
			found := false
			for _, sub := range set.Subjects {
				if sub.EventType != et {
					continue
				}
				found = true
				if !stringField(sub.Latest(), v.Key) {
					return fmt.Errorf("%w: view %s: %s v%d has no string field %q at the top of its data", ErrInvalid, v, et, sub.Major, v.Key)
				}
			}
			if !found {
				return fmt.Errorf("%w: view %s: no schema for %s", ErrInvalid, v, et)
			}
		}
	}
	return nil
}

// stringField reports whether v's data record has a field name of type string (not nullable: an
// item's key is always there).
func stringField(v *schemas.Version, name string) bool {
	for _, f := range v.Data.Fields() {
		if f.Name() == name {
			return f.Type().Type() == avro.String
		}
	}
	return false
}
