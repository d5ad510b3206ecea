package topics

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// RabbitMQ is the topology of the RabbitMQ bridge (`hotelbus bridge rabbitmq`), declared under
// rabbitmq in CatalogFile: which topic exchange carries each event type (by its resource, the part
// of {resource}.{action} before the dot), the exchange of the audit log, the dead-letter exchange,
// the quorum queue the bridge reads from, and the consumer group and dead-letter topic of its Kafka
// side. Nil in a Catalog whose CatalogFile declares no rabbitmq section.
type RabbitMQ struct {
	// Exchanges are the event exchanges, in declaration order.
	Exchanges []string
	// AuditExchange carries the audit log's records.
	AuditExchange string
	// DeadLetterExchange receives what the bridge refuses to take into Kafka, with a reason header.
	DeadLetterExchange string
	// Queue is the durable quorum queue, bound to every event exchange, that the bridge takes
	// RabbitMQ publications from.
	Queue string
	// ConsumeAs is the system whose subscriptions (every event type) the bridge's Kafka side reads.
	ConsumeAs string
	// Group is the consumer group of the bridge's Kafka side.
	Group string
	// DeadLetterTopic is where the bridge's Kafka side sends events it gave up on.
	DeadLetterTopic string

	exchangeOf map[string]string // resource -> exchange
}

// Exchange returns the exchange that carries eventType, by the type's resource.
func (r *RabbitMQ) Exchange(eventType string) (string, bool) {
	res, _, ok := strings.Cut(eventType, ".")
	if !ok {
		return "", false
	}
	ex, ok := r.exchangeOf[res]
	return ex, ok
}

type rabbitMQDecl struct {
	Exchanges          map[string][]string `yaml:"exchanges"`
	AuditExchange      string              `yaml:"auditExchange"`
	DeadLetterExchange string              `yaml:"deadLetterExchange"`
	Queue              string              `yaml:"queue"`
	ConsumeAs          string              `yaml:"consumeAs"`
	Group              string              `yaml:"group"`
	DeadLetterTopic    string              `yaml:"deadLetterTopic"`
}

// amqpNameRe is the grammar of exchange and queue names: AMQP allows up to 255 bytes of almost
// anything; hotelbus keeps to what is also a valid topic name, and refuses the reserved amq. prefix.
var amqpNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

// loadRabbitMQ validates the rabbitmq section: every published event type's resource is carried
// by exactly one event exchange, every listed resource is one of a published type, the exchanges
// and the queue are distinct valid names, ConsumeAs subscribes to every type, and the dead-letter
// topic clashes with no declared topic. It runs after loadTopics, and adds the dead-letter topic.
func (c *Catalog) loadRabbitMQ(d *rabbitMQDecl, tf topicsFile, env string) error {
	if d == nil {
		return nil
	}
	const key = "rabbitmq"
	r := &RabbitMQ{AuditExchange: d.AuditExchange, DeadLetterExchange: d.DeadLetterExchange, Queue: d.Queue,
		ConsumeAs: d.ConsumeAs, Group: d.Group, DeadLetterTopic: d.DeadLetterTopic, exchangeOf: map[string]string{}}
	resources := map[string]bool{}
	for _, et := range c.EventTypes() {
		res, _, _ := strings.Cut(et, ".")
		resources[res] = true
	}
	names := map[string]string{}
	name := func(k, v string) error {
		switch {
		case !amqpNameRe.MatchString(v) || strings.HasPrefix(v, "amq."):
			return invalid(CatalogFile, key+"."+k, "%q must be 1-249 of [a-zA-Z0-9._-] and not start with amq.", v)
		case names[v] != "":
			return invalid(CatalogFile, key+"."+k, "%q is also %s", v, names[v])
		}
		names[v] = key + "." + k
		return nil
	}
	for _, ex := range sortedKeys(d.Exchanges) {
		if err := name("exchanges."+ex, ex); err != nil {
			return err
		}
		k := key + ".exchanges." + ex
		if len(d.Exchanges[ex]) == 0 {
			return invalid(CatalogFile, k, "an exchange carries at least one resource")
		}
		for i, res := range d.Exchanges[ex] {
			rk := fmt.Sprintf("%s[%d]", k, i)
			if !resources[res] {
				return invalid(CatalogFile, rk, "%q is the resource of no published event type", res)
			}
			if prev, dup := r.exchangeOf[res]; dup {
				return invalid(CatalogFile, rk, "%q is already carried by %s: one exchange per resource", res, prev)
			}
			r.exchangeOf[res] = ex
		}
		r.Exchanges = append(r.Exchanges, ex)
	}
	for _, res := range sortedKeys(resources) {
		if _, ok := r.exchangeOf[res]; !ok {
			return invalid(CatalogFile, key+".exchanges", "resource %q (of published event types) is carried by no exchange", res)
		}
	}
	for _, f := range [][2]string{{"auditExchange", d.AuditExchange}, {"deadLetterExchange", d.DeadLetterExchange}, {"queue", d.Queue}} {
		if err := name(f[0], f[1]); err != nil {
			return err
		}
	}
	if s, ok := c.System(d.ConsumeAs); !ok || !s.SubscribesAll {
		return invalid(CatalogFile, key+".consumeAs", "%q must be a system subscribing to every event type (\"*\")", d.ConsumeAs)
	}
	if !topicRe.MatchString(d.Group) {
		return invalid(CatalogFile, key+".group", "consumer group %q must be 1-249 of [a-zA-Z0-9._-]", d.Group)
	}
	if slices.ContainsFunc(c.Systems, func(s System) bool { return s.Group == d.Group }) {
		return invalid(CatalogFile, key+".group", "%q is a system's consumer group", d.Group)
	}
	dl := Topic{Name: d.DeadLetterTopic, Kind: KindDeadLetter, Owner: d.ConsumeAs, Description: "events the RabbitMQ bridge gave up on"}
	if _, dup := c.topics[dl.Name]; dup || !topicRe.MatchString(dl.Name) {
		return invalid(CatalogFile, key+".deadLetterTopic", "topic %q clashes with a declared topic or is not a valid name", dl.Name)
	}
	if err := resolve(&dl, "deadLetters", tf.Defaults, tf.DeadLetters.settings, tf.Environments[env].settings); err != nil {
		return err
	}
	c.add(dl)
	c.RabbitMQ = r
	return nil
}
