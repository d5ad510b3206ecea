// Package events holds the Go types of the hotelbus event catalog, generated from schemas/ by
// go generate: one struct per event type and major version (ReservationCreatedV1 is the data of
// reservation.created 1.x, from the newest minor of that major), with the named records and enums
// it uses.
//
// The mapping from Avro: records are structs with avro tags (encoded and decoded by hamba/avro's
// struct codec), ["null", T] is *T (nil is null), decimal is *big.Rat, date and timestamp-millis
// are time.Time (a date at midnight UTC), int is int, long is int64, arrays are slices, enums are
// string types with one constant per symbol. Each event type has EventType, EventVersion and
// Schema methods, which streams.Publish and streams.Handle use to find its topic and schema.
//
// The files ending in _gen.go are generated; TestGeneratedMatchesSchemas fails when they no
// longer match schemas/ (run go generate ./streams/events).
package events

//go:generate go run ./internal/gen/cmd
