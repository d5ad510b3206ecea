// Package contract renders the event catalog (topics/) and its schemas (schemas/) for the teams
// that do not read Go: an AsyncAPI 3.0 document (AsyncAPI), a static HTML catalog site (WriteHTML)
// and TypeScript declarations of the gateway's JSON form (TypeScript). It reads the catalog and the
// schema tree only; every output is a pure function of them, so a committed copy can be compared
// byte for byte with a fresh rendering.
package contract

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/topics"
)

// Contract is the catalog joined with the schemas: what every renderer reads.
type Contract struct {
	Catalog *topics.Catalog
	Schemas *schemas.Set
	// EventTypes are the published event types, sorted by name.
	EventTypes []EventType
}

// EventType is one published event type with everything the catalog and the schemas say about it.
type EventType struct {
	// Name is "{resource}.{action}".
	Name  string
	Owner string
	// Topic is the topic the type is routed to, with its settings for the catalog's environment.
	Topic topics.Topic
	// OrderingKey is the top-level data field that orders the type within a consumer; "" means
	// the record key, tenantId.
	OrderingKey string
	// Subscribers are the systems that subscribe to the type, sorted.
	Subscribers []string
	// Subjects are the type's major versions, oldest first.
	Subjects []*schemas.Subject
}

// New joins a catalog with a schema set. Every published event type needs at least one major
// version in the set and every event type in the set must be published by a system; otherwise the
// error wraps ErrInconsistent and names the type.
func New(c *topics.Catalog, set *schemas.Set) (*Contract, error) {
	k := &Contract{Catalog: c, Schemas: set}
	for _, name := range c.EventTypes() {
		owner, _ := c.Owner(name)
		topic, _ := c.TopicFor(name)
		et := EventType{Name: name, Owner: owner, Topic: topic, OrderingKey: c.OrderingKey(name)}
		for _, s := range c.Systems {
			if slices.Contains(s.Subscribes, name) {
				et.Subscribers = append(et.Subscribers, s.Name)
			}
		}
		for _, sub := range set.Subjects {
			if sub.EventType == name {
				et.Subjects = append(et.Subjects, sub)
			}
		}
		if len(et.Subjects) == 0 {
			return nil, fmt.Errorf("%w: %s is published by %s but has no schema under schemas/events/%s", ErrInconsistent, name, owner, name)
		}
		k.EventTypes = append(k.EventTypes, et)
	}
	for _, name := range set.EventTypes() {
		if _, ok := c.Owner(name); !ok {
			return nil, fmt.Errorf("%w: schemas/events/%s has schemas but no system publishes %s in %s", ErrInconsistent, name, name, topics.CatalogFile)
		}
	}
	return k, nil
}

// TypeName is the identifier of an event type at a major version in generated code:
// "billing.paid", 1 gives "BillingPaidV1" (the TypeScript data type is BillingPaidV1Data).
func TypeName(eventType string, major int) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(eventType, func(r rune) bool { return r == '.' || r == '_' }) {
		r := []rune(part)
		r[0] = unicode.ToUpper(r[0])
		b.WriteString(string(r))
	}
	fmt.Fprintf(&b, "V%d", major)
	return b.String()
}

// messageID is the key of a major version's message in the AsyncAPI document and its anchor in the
// HTML catalog: "billing.paid.v1".
func messageID(sub *schemas.Subject) string { return fmt.Sprintf("%s.v%d", sub.EventType, sub.Major) }

// keyField is the data field an event type's consumers order by, as a reader sees it.
func (et EventType) keyField() string {
	if et.OrderingKey == "" {
		return "metadata.tenantId (the record key)"
	}
	return "data." + et.OrderingKey
}
