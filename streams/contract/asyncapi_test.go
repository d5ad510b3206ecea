package contract_test

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/contract"
	"github.com/hotelbus/hotelbus/topics"
)

func asyncAPI(t *testing.T, k *contract.Contract) (map[string]any, []byte) {
	t.Helper()
	b, err := k.AsyncAPI("test")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc, b
}

// at walks a decoded JSON document along keys (object keys, or decimal array indexes).
func at(v any, keys ...string) any {
	for _, k := range keys {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}

func refs(v any) []string {
	var out []string
	for _, r := range v.([]any) {
		out = append(out, r.(map[string]any)["$ref"].(string))
	}
	slices.Sort(out)
	return out
}

// TestAsyncAPIDocument checks the document against the catalog it was rendered from: a channel per
// event topic with the environment's settings as Kafka bindings, a message per event type and major
// version with the registered schema and the golden example, operations per system that follow
// ownership and subscriptions with the consumer group, servers per environment.
func TestAsyncAPIDocument(t *testing.T) {
	for _, env := range []string{"", "dev"} {
		t.Run("env="+env, func(t *testing.T) {
			k := load(t, env, nil)
			doc, _ := asyncAPI(t, k)
			c := k.Catalog

			wantServers := len(c.Environments) * 2
			if env != "" {
				wantServers = 2
				if at(doc, "servers", "kafka-"+env, "protocol") != "kafka" || at(doc, "servers", "gateway-"+env, "protocol") != "http" {
					t.Errorf("servers of %s missing: %v", env, at(doc, "servers"))
				}
			}
			if n := len(doc["servers"].(map[string]any)); n != wantServers {
				t.Errorf("%d servers, want %d", n, wantServers)
			}

			channels := doc["channels"].(map[string]any)
			events := 0
			for _, tp := range c.Topics {
				if tp.Kind != topics.KindEvents {
					if _, ok := channels[tp.Name]; ok {
						t.Errorf("channel for %s topic %s", tp.Kind, tp.Name)
					}
					continue
				}
				events++
				b := at(channels, tp.Name, "bindings", "kafka")
				if at(b, "partitions") != float64(tp.Partitions) || at(b, "replicas") != float64(tp.ReplicationFactor) ||
					at(b, "topicConfiguration", "retention.ms") != float64(tp.Retention.Milliseconds()) ||
					at(b, "topicConfiguration", "min.insync.replicas") != float64(tp.MinInsyncReplicas) {
					t.Errorf("channel %s bindings %v, want %d partitions, %d replicas, retention %s", tp.Name, b, tp.Partitions, tp.ReplicationFactor, tp.Retention)
				}
			}
			if len(channels) != events+1 || channels["gateway.events"] == nil {
				t.Errorf("%d channels, want %d event topics and gateway.events", len(channels), events)
			}

			for _, et := range k.EventTypes {
				for _, sub := range et.Subjects {
					id := fmt.Sprintf("%s.v%d", et.Name, sub.Major)
					m := at(doc, "components", "messages", id)
					if at(m, "payload", "schemaFormat") != contract.AvroSchemaFormat {
						t.Errorf("%s: payload schemaFormat %v", id, at(m, "payload", "schemaFormat"))
					}
					var registered, example any
					_ = json.Unmarshal([]byte(sub.Latest().Text), &registered)
					_ = json.Unmarshal(sub.Latest().Example, &example)
					if !jsonEqual(at(m, "payload", "schema"), registered) {
						t.Errorf("%s: payload is not the registered schema of %s", id, sub.Latest())
					}
					if !jsonEqual(at(m, "examples", "0", "payload"), example) || !jsonEqual(at(doc, "components", "messages", id+".json", "examples", "0", "payload"), example) {
						t.Errorf("%s: examples are not example.json", id)
					}
					if at(m, "examples", "0", "headers", "source") != et.Owner || at(m, "examples", "0", "headers", "eventType") != et.Name {
						t.Errorf("%s: example headers %v", id, at(m, "examples", "0", "headers"))
					}
					if at(channels, et.Topic.Name, "messages", id) == nil {
						t.Errorf("%s is not a message of channel %s", id, et.Topic.Name)
					}
				}
			}

			// A date held in a string (customer.* 2.0's birthDate, schemas.IsDateString) is a JSON
			// Schema date, as an Avro date (1.0's) is.
			for _, id := range []string{"customer.created.v2.json", "customer.created.v1.json"} {
				bd := at(doc, "components", "messages", id, "payload", "properties", "data", "properties", "birthDate", "anyOf")
				if !strings.Contains(fmt.Sprint(bd), "format:date") {
					t.Errorf("%s: birthDate %v, want a string of format date", id, bd)
				}
			}

			ops := doc["operations"].(map[string]any)
			for _, s := range c.Systems {
				for _, tp := range c.Topics {
					send, receive := ops[s.Name+".send."+tp.Name], ops[s.Name+".receive."+tp.Name]
					if owns := tp.Owner == s.Name && tp.Kind == topics.KindEvents; owns != (send != nil) {
						t.Errorf("%s owns %s: %v, but send operation: %v", s.Name, tp.Name, owns, send != nil)
					}
					var want []string
					for _, id := range messageIDs(k, s.Subscribes) {
						if et, _ := c.TopicFor(id[:strings.LastIndex(id, ".v")]); et.Name == tp.Name {
							want = append(want, "#/channels/"+tp.Name+"/messages/"+id)
						}
					}
					slices.Sort(want)
					if len(want) == 0 {
						if receive != nil {
							t.Errorf("%s receives from %s without subscribing to any of its types", s.Name, tp.Name)
						}
						continue
					}
					if got := refs(at(receive, "messages")); !slices.Equal(got, want) {
						t.Errorf("%s receive %s: messages %v, want %v", s.Name, tp.Name, got, want)
					}
					if g := at(receive, "bindings", "kafka", "groupId", "enum", "0"); g != s.Group {
						t.Errorf("%s receive %s: groupId %v, want %s", s.Name, tp.Name, g, s.Group)
					}
				}
				var want []string
				for _, id := range messageIDs(k, s.Publishes) {
					want = append(want, "#/channels/gateway.events/messages/"+id+".json")
				}
				slices.Sort(want)
				if got := refs(at(ops, s.Name+".send.gateway", "messages")); !slices.Equal(got, want) {
					t.Errorf("%s sends through the gateway %v, want what it owns %v", s.Name, got, want)
				}
			}
		})
	}
}

// messageIDs are the message ids of every major version of the event types.
func messageIDs(k *contract.Contract, types []string) []string {
	var out []string
	for _, et := range k.EventTypes {
		if slices.Contains(types, et.Name) {
			for _, sub := range et.Subjects {
				out = append(out, fmt.Sprintf("%s.v%d", et.Name, sub.Major))
			}
		}
	}
	return out
}

func jsonEqual(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

var summaryRe = regexp.MustCompile(`(?m)^errors=(\d+) warnings=(\d+) infos=(\d+) hints=(\d+)$`)

// TestAsyncAPIValidatesWithParser runs the AsyncAPI project's parser (@asyncapi/parser with its
// Avro schema parser, testdata/validate-asyncapi.cjs) over the document of the declared defaults
// and of prod, and requires zero errors and zero warnings. Needs the rig's npm tools (make test).
func TestAsyncAPIValidatesWithParser(t *testing.T) {
	for _, env := range []string{"", "prod"} {
		t.Run("env="+env, func(t *testing.T) {
			_, b := asyncAPI(t, load(t, env, nil))
			name := "asyncapi.json"
			if env != "" {
				name = "asyncapi-" + env + ".json"
			}
			p := artifact(t, name, b)
			out, code := node(t, "testdata", "validate-asyncapi.cjs", p)
			t.Logf("parser output:\n%s", out)
			m := summaryRe.FindStringSubmatch(out)
			if code != 0 || m == nil || m[1] != "0" || m[2] != "0" {
				t.Fatalf("the AsyncAPI parser refused the document (exit %d)", code)
			}
		})
	}
}

// TestAsyncAPIParserCatchesDefects proves the parser check can fail: a document with a Money
// amount as a JSON number in a gateway example, an Avro payload naming an undefined type, a Kafka
// example header claiming another source, and a topic of zero partitions yields an error for each.
func TestAsyncAPIParserCatchesDefects(t *testing.T) {
	doc, _ := asyncAPI(t, load(t, "", nil))
	msgs := at(doc, "components", "messages").(map[string]any)
	at(msgs, "billing.paid.v1.json", "examples", "0", "payload", "data", "amount").(map[string]any)["amount"] = 12.5
	fields := at(msgs, "billing.paid.v1", "payload", "schema", "fields").([]any)
	fields[0].(map[string]any)["type"] = "Strang"
	at(msgs, "service.ordered.v1", "examples", "0", "headers").(map[string]any)["source"] = "hotel-pms"
	at(doc, "channels", "hotelbus.pms.billing", "bindings", "kafka").(map[string]any)["partitions"] = 0
	b, _ := json.Marshal(doc)
	out, code := node(t, "testdata", "validate-asyncapi.cjs", artifact(t, "asyncapi-defects.json", b))
	t.Logf("parser output:\n%s", out)
	if code != 1 {
		t.Errorf("exit %d, want 1", code)
	}
	for _, want := range []string{
		`"path":"components.messages.billing.paid.v1.json.examples.0.payload.data.amount.amount"`,
		`"code":"avro-schema","path":"components.messages.billing.paid.v1.payload"`,
		`"path":"components.messages.service.ordered.v1.examples.0.headers.source"`,
		`"path":"channels.hotelbus.pms.billing.bindings.kafka.partitions"`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no error %s", want)
		}
	}
}

// TestEveryMajorIsAMessage: with a second major version of billing.paid, the topic's channel, its
// owner's send operation and its subscribers' receive operations carry a message per major, each
// with its own schema, and the TypeScript declarations a data type per major.
func TestEveryMajorIsAMessage(t *testing.T) {
	v1, _ := fs.ReadFile(schemas.Embedded(), "events/billing.paid/v1/1.0.avsc")
	ex, _ := fs.ReadFile(schemas.Embedded(), "events/billing.paid/v1/example.json")
	k := load(t, "", schemaTree(t, "", map[string]string{
		"events/billing.paid/v2/2.0.avsc":     strings.ReplaceAll(string(v1), "hotelbus.billing.v1", "hotelbus.billing.v2"),
		"events/billing.paid/v2/example.json": strings.Replace(string(ex), `"version": "1.0"`, `"version": "2.0"`, 1),
	}))
	doc, _ := asyncAPI(t, k)
	for _, id := range []string{"billing.paid.v1", "billing.paid.v2"} {
		if at(doc, "channels", "hotelbus.pms.billing", "messages", id) == nil {
			t.Errorf("channel hotelbus.pms.billing lacks %s", id)
		}
		for _, op := range []string{"hotel-pms.send.hotelbus.pms.billing", "hotel-member.receive.hotelbus.pms.billing"} {
			if !slices.Contains(refs(at(doc, "operations", op, "messages")), "#/channels/hotelbus.pms.billing/messages/"+id) {
				t.Errorf("%s lacks %s", op, id)
			}
		}
	}
	if ns := at(doc, "components", "messages", "billing.paid.v2", "payload", "schema", "namespace"); ns != "hotelbus.billing.v2" {
		t.Errorf("billing.paid.v2 payload namespace %v", ns)
	}
	ts, err := k.TypeScript()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export interface BillingPaidV2Data {", "export type BillingPaidV2Event = Envelope<\"billing.paid\", `2.${number}`, BillingPaidV2Data>;"} {
		if !strings.Contains(string(ts), want) {
			t.Errorf("TypeScript lacks %s", want)
		}
	}
}
