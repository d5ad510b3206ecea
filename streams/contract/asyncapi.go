package contract

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// AvroSchemaFormat is the AsyncAPI schemaFormat of every Kafka message payload: the registered
// envelope schema (Avro 1.9.0 JSON), as schemas.Version.Text holds it.
const AvroSchemaFormat = "application/vnd.apache.avro+json;version=1.9.0"

// AsyncAPIVersion is the AsyncAPI specification version AsyncAPI writes.
const AsyncAPIVersion = "3.0.0"

// Binding versions of the AsyncAPI Kafka and HTTP bindings used.
const (
	kafkaBindingVersion = "0.5.0"
	httpBindingVersion  = "0.3.0"
)

// Content types of the messages: Avro in the Confluent wire format on Kafka, the JSON envelope at
// the gateway.
const (
	kafkaContentType = "application/vnd.apache.avro+binary"
	jsonContentType  = "application/json"
)

// asyncAPIDoc is the root of the document; its fields are in the order the specification lists
// them, the maps below them are written with sorted keys (encoding/json), so the output is stable.
type asyncAPIDoc struct {
	AsyncAPI           string         `json:"asyncapi"`
	ID                 string         `json:"id"`
	Info               map[string]any `json:"info"`
	Servers            map[string]any `json:"servers"`
	DefaultContentType string         `json:"defaultContentType"`
	Channels           map[string]any `json:"channels"`
	Operations         map[string]any `json:"operations"`
	Components         map[string]any `json:"components"`
}

func ref(pointer ...string) map[string]any {
	for i, p := range pointer {
		pointer[i] = strings.ReplaceAll(strings.ReplaceAll(p, "~", "~0"), "/", "~1")
	}
	return map[string]any{"$ref": "#/" + strings.Join(pointer, "/")}
}

// AsyncAPI returns the AsyncAPI 3.0 document of the contract as indented JSON. version is the
// document's info.version (the hotelbus release that rendered it).
//
// Servers: a Kafka server and a gateway (HTTP) server per environment, or only the catalog's
// environment when it was loaded for one; hosts are server variables, since deployments choose
// them. Channels: one per event topic, with its Kafka bindings resolved for the catalog's
// environment, and one for the gateway's POST /v1/events. Messages: one per event type and major
// version, its payload the registered Avro schema of the newest minor, its example the golden JSON
// envelope with the Kafka headers the SDK writes for it. Operations: per system, send on every
// topic it owns and receive (with its consumer group) on every topic it subscribes to, and send
// through the gateway of the types it owns.
func (k *Contract) AsyncAPI(version string) ([]byte, error) {
	c := k.Catalog
	envs := c.Environments
	if c.Env != "" {
		envs = []string{c.Env}
	}
	doc := asyncAPIDoc{
		AsyncAPI: AsyncAPIVersion,
		ID:       "urn:hotelbus:events",
		Info: map[string]any{
			"title":   "hotelbus events",
			"version": version,
			"description": "The events the hotel systems exchange through hotelbus, rendered from topics/ and schemas/ " +
				"by `hotelbus catalog --asyncapi`. Each event type has one owner, the only system that publishes it. " +
				"On Kafka, records are keyed by tenantId and their values are Avro in the Confluent wire format " +
				"(schema id in the payload, subject per topic and record name); at the gateway the same envelope is " +
				"JSON, with decimals as strings and dates as ISO 8601 strings. Delivery is at least once: handlers " +
				"deduplicate by eventId.",
			"tags": k.systemTags(),
		},
		Servers:            map[string]any{},
		DefaultContentType: kafkaContentType,
		Channels:           map[string]any{},
		Operations:         map[string]any{},
	}
	var kafkaServers, gatewayServers []any
	for _, env := range envs {
		doc.Servers["kafka-"+env] = map[string]any{
			"host":     "{bootstrap}",
			"protocol": "kafka",
			"title":    "Kafka (" + env + ")",
			"description": fmt.Sprintf("The %s environment's Kafka cluster. Values are Avro in the Confluent wire format; "+
				"their schemas are in a Confluent-compatible schema registry.", env),
			"variables": map[string]any{"bootstrap": map[string]any{
				"description": "bootstrap brokers, host:port[,host:port...] (the chart's kafka.bootstrap; for `hotelbus dev`, endpoints.json)",
				"examples":    []string{"kafka:9092"},
			}},
			"bindings": map[string]any{"kafka": map[string]any{"schemaRegistryVendor": "confluent", "bindingVersion": kafkaBindingVersion}},
		}
		doc.Servers["gateway-"+env] = map[string]any{
			"host":     "{gateway}",
			"protocol": "http",
			"title":    "Gateway (" + env + ")",
			"description": fmt.Sprintf("The %s environment's HTTP gateway: services publish the JSON envelope with their system's bearer "+
				"token; the token decides metadata.source. Its full HTTP contract (batches, idempotency keys, problem+json answers) "+
				"is the OpenAPI document it serves at GET /openapi.json.", env),
			"variables": map[string]any{"gateway": map[string]any{
				"description": "host:port of the gateway (`hotelbus gateway --listen`)",
				"examples":    []string{"gateway.hotelbus.svc:8080"},
			}},
			"security": []any{ref("components", "securitySchemes", "systemToken")},
		}
		kafkaServers = append(kafkaServers, ref("servers", "kafka-"+env))
		gatewayServers = append(gatewayServers, ref("servers", "gateway-"+env))
	}

	messages := map[string]any{}
	gatewayMessages := map[string]any{}
	for _, et := range k.EventTypes {
		for _, sub := range et.Subjects {
			m, err := kafkaMessage(et, sub)
			if err != nil {
				return nil, err
			}
			messages[messageID(sub)] = m
			gm, err := gatewayMessage(et, sub)
			if err != nil {
				return nil, err
			}
			gatewayMessages[messageID(sub)+".json"] = gm
		}
	}
	for _, t := range c.Topics {
		if t.Kind != topics.KindEvents {
			continue
		}
		msgs := map[string]any{}
		for _, et := range k.EventTypes {
			if et.Topic.Name != t.Name {
				continue
			}
			for _, sub := range et.Subjects {
				msgs[messageID(sub)] = ref("components", "messages", messageID(sub))
			}
		}
		doc.Channels[t.Name] = map[string]any{
			"address":     t.Name,
			"title":       t.Name,
			"description": fmt.Sprintf("%s. Written by %s only (one writer per topic); keyed by tenantId.", t.Description, t.Owner),
			"servers":     kafkaServers,
			"messages":    msgs,
			"bindings":    map[string]any{"kafka": kafkaTopicBinding(t)},
		}
	}
	gmsgs := map[string]any{}
	for id := range gatewayMessages {
		gmsgs[id] = ref("components", "messages", id)
	}
	doc.Channels["gateway.events"] = map[string]any{
		"address": "/v1/events",
		"title":   "Gateway: POST /v1/events",
		"description": "One JSON envelope per request; 202 after the broker acknowledged it (or it was spooled durably). " +
			"POST /v1/events/batch takes {\"events\": [...]}. Refusals are RFC 9457 problem+json and never reach Kafka.",
		"servers":  gatewayServers,
		"messages": gmsgs,
	}

	for _, s := range c.Systems {
		k.systemOperations(doc.Operations, s)
	}

	maps.Copy(messages, gatewayMessages)
	doc.Components = map[string]any{
		"messages": messages,
		"securitySchemes": map[string]any{"systemToken": map[string]any{
			"type":        "http",
			"scheme":      "bearer",
			"description": "One token per system; it decides the events' metadata.source and which event types the caller may publish.",
		}},
		"correlationIds": map[string]any{"correlationId": map[string]any{
			"description": "Ties together the events of one business flow (`hotelbus trace` follows it).",
			"location":    "$message.header#/correlationId",
		}},
	}
	return json.MarshalIndent(doc, "", "  ")
}

func (k *Contract) systemTags() []any {
	var tags []any
	for _, s := range k.Catalog.Systems {
		tags = append(tags, map[string]any{"name": s.Name, "description": s.Description})
	}
	return tags
}

// systemOperations adds the operations of system s: send on the topics it owns, receive on the
// topics it subscribes to (only the types it subscribes to), and send through the gateway.
func (k *Contract) systemOperations(ops map[string]any, s topics.System) {
	tags := []any{map[string]any{"name": s.Name}}
	var gatewayMsgs []any
	for _, t := range k.Catalog.Topics {
		if t.Kind != topics.KindEvents {
			continue
		}
		var sent, received []any
		for _, et := range k.EventTypes {
			if et.Topic.Name != t.Name {
				continue
			}
			for _, sub := range et.Subjects {
				r := ref("channels", t.Name, "messages", messageID(sub))
				if et.Owner == s.Name {
					sent = append(sent, r)
					gatewayMsgs = append(gatewayMsgs, ref("channels", "gateway.events", "messages", messageID(sub)+".json"))
				}
				if slices.Contains(et.Subscribers, s.Name) {
					received = append(received, r)
				}
			}
		}
		if len(sent) > 0 {
			ops[s.Name+".send."+t.Name] = map[string]any{
				"action":   "send",
				"channel":  ref("channels", t.Name),
				"title":    s.Name + " publishes to " + t.Name,
				"summary":  "Through the Go SDK's producer (or the gateway); " + s.Name + " is the topic's only writer.",
				"messages": sent,
				"tags":     tags,
			}
		}
		if len(received) > 0 {
			ops[s.Name+".receive."+t.Name] = map[string]any{
				"action":  "receive",
				"channel": ref("channels", t.Name),
				"title":   s.Name + " subscribes to " + t.Name,
				"summary": fmt.Sprintf("Consumer group %s: per-key order, deduplication by eventId, retries, then the dead-letter topic %s.",
					s.Group, s.DeadLetterTopic),
				"messages": received,
				"tags":     tags,
				"bindings": map[string]any{"kafka": map[string]any{
					"groupId":        map[string]any{"type": "string", "enum": []string{s.Group}},
					"bindingVersion": kafkaBindingVersion,
				}},
			}
		}
	}
	if len(gatewayMsgs) > 0 {
		ops[s.Name+".send.gateway"] = map[string]any{
			"action":   "send",
			"channel":  ref("channels", "gateway.events"),
			"title":    s.Name + " publishes through the gateway",
			"summary":  "POST /v1/events with " + s.Name + "'s bearer token; any other event type is refused with 403.",
			"messages": gatewayMsgs,
			"tags":     tags,
			"security": []any{ref("components", "securitySchemes", "systemToken")},
			"bindings": map[string]any{"http": map[string]any{"method": "POST", "bindingVersion": httpBindingVersion}},
		}
	}
}

func kafkaTopicBinding(t topics.Topic) map[string]any {
	ms := int64(-1)
	if t.Retention >= 0 {
		ms = t.Retention.Milliseconds()
	}
	return map[string]any{
		"topic":      t.Name,
		"partitions": t.Partitions,
		"replicas":   t.ReplicationFactor,
		"topicConfiguration": map[string]any{
			"cleanup.policy":      strings.Split(t.CleanupPolicy, ","),
			"retention.ms":        ms,
			"min.insync.replicas": t.MinInsyncReplicas,
		},
		"bindingVersion": kafkaBindingVersion,
	}
}

// example decodes a major version's golden JSON envelope.
func example(sub *schemas.Subject) (map[string]any, error) {
	var ex map[string]any
	if err := json.Unmarshal(sub.Latest().Example, &ex); err != nil {
		return nil, fmt.Errorf("%w: %s v%d: example.json: %v", ErrInconsistent, sub.EventType, sub.Major, err)
	}
	return ex, nil
}

// exampleHeaders are the Kafka headers the SDK writes for an example envelope (streams.Headers).
func exampleHeaders(ex map[string]any) map[string]any {
	md, _ := ex["metadata"].(map[string]any)
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	env := &streams.Envelope{EventID: str(ex, "eventId"), EventType: str(ex, "eventType"), Version: str(ex, "version"),
		Metadata: streams.Metadata{Source: str(md, "source"), CorrelationID: str(md, "correlationId"), TraceID: str(md, "traceId")}}
	out := map[string]any{}
	for _, h := range streams.Headers(env) {
		out[h.Key] = string(h.Value)
	}
	return out
}

// headersSchema describes the Kafka headers of a major version's records.
func headersSchema(et EventType, sub *schemas.Subject) map[string]any {
	str := func(doc string) map[string]any { return map[string]any{"type": "string", "description": doc} }
	version := str("major.minor of the data schema")
	version["pattern"] = fmt.Sprintf(`^%d\.(0|[1-9][0-9]*)$`, sub.Major)
	eventType := str("the event type")
	eventType["const"] = et.Name
	source := str("the publishing system")
	source["const"] = et.Owner
	tp := str("W3C trace context, 00-<traceId>-<span id derived from eventId>-01")
	tp["pattern"] = `^00-[0-9a-f]{32}-[0-9a-f]{16}-01$`
	return map[string]any{
		"type":     "object",
		"required": []string{streams.HeaderEventType, streams.HeaderVersion, streams.HeaderEventID, streams.HeaderSource, streams.HeaderCorrelationID, streams.HeaderTraceparent},
		"properties": map[string]any{
			streams.HeaderEventType:     eventType,
			streams.HeaderVersion:       version,
			streams.HeaderEventID:       str("the envelope's eventId (the deduplication key)"),
			streams.HeaderSource:        source,
			streams.HeaderCorrelationID: str("the envelope's metadata.correlationId"),
			streams.HeaderTraceparent:   tp,
		},
	}
}

func kafkaMessage(et EventType, sub *schemas.Subject) (map[string]any, error) {
	v := sub.Latest()
	var payload map[string]any
	if err := json.Unmarshal([]byte(v.Text), &payload); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInconsistent, v.File, err)
	}
	ex, err := example(sub)
	if err != nil {
		return nil, err
	}
	var minors []string
	for _, mv := range sub.Versions {
		minors = append(minors, mv.String())
	}
	return map[string]any{
		"name":          TypeName(sub.EventType, sub.Major),
		"title":         fmt.Sprintf("%s v%d", sub.EventType, sub.Major),
		"summary":       fmt.Sprintf("%s, major version %d (minors %s; the payload is %s)", sub.EventType, sub.Major, strings.Join(minors, ", "), v),
		"description":   description(et, v),
		"contentType":   kafkaContentType,
		"headers":       headersSchema(et, sub),
		"payload":       map[string]any{"schemaFormat": AvroSchemaFormat, "schema": payload},
		"correlationId": ref("components", "correlationIds", "correlationId"),
		"tags":          []any{map[string]any{"name": et.Owner}},
		"bindings": map[string]any{"kafka": map[string]any{
			"key":                     map[string]any{"type": "string", "description": "metadata.tenantId"},
			"schemaIdLocation":        "payload",
			"schemaIdPayloadEncoding": "confluent",
			"schemaLookupStrategy":    "TopicRecordNameStrategy",
			"bindingVersion":          kafkaBindingVersion,
		}},
		"examples": []any{map[string]any{
			"name":    "golden",
			"summary": "schemas/events/" + sub.EventType + fmt.Sprintf("/v%d/example.json", sub.Major) + ", as JSON",
			"headers": exampleHeaders(ex),
			"payload": ex,
		}},
		"x-hotelbus-subject": v.Subject(et.Topic.Name),
	}, nil
}

// description is a message's description: the data record's doc, then who publishes and reads it
// and what orders it.
func description(et EventType, v *schemas.Version) string {
	owner := ""
	if !strings.Contains(v.Data.Doc(), "Owner: "+et.Owner) {
		owner = "Owner: " + et.Owner + ". "
	}
	return fmt.Sprintf("%s\n\n%sSubscribers: %s. Ordered by %s.", v.Data.Doc(), owner, subscribers(et), et.keyField())
}

func subscribers(et EventType) string {
	if len(et.Subscribers) == 0 {
		return "none"
	}
	return strings.Join(et.Subscribers, ", ")
}
