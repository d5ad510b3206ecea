package streams

// SerdeOption configures a Serde.
type SerdeOption func(*serdeConfig)

type serdeConfig struct {
	autoRegister bool
}

func defaultSerdeConfig() serdeConfig {
	return serdeConfig{autoRegister: false}
}

func (c *serdeConfig) validate() error { return nil }

// AutoRegister makes the Serde register a schema version under its subject the first time it
// encodes with it, instead of only looking its id up. Default: false (production subjects are
// registered by `hotelbus schemas register`, which enforces compatibility first); `hotelbus dev`
// turns it on. Maps to the Confluent serializer setting auto.register.schemas.
func AutoRegister(on bool) SerdeOption {
	return func(c *serdeConfig) { c.autoRegister = on }
}
