package registry_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// The default-settings interop tests put confluent-kafka for Python, with its default Avro
// serializer (auto.register.schemas) and deserializer and TopicNameStrategy, against hotelbus
// topics on the embedded registry set up as `hotelbus dev` sets it up (every schema registered
// under its TopicRecordNameStrategy subject at FULL_TRANSITIVE), on the rig's real Kafka. They run
// under `make test` (the peer's venv comes from the rig) and are skipped without the rig.

// defaultPeer runs the interop peer (streams/streamstest/peer/avro_peer.py) with args and returns
// its standard output.
func defaultPeer(t *testing.T, python string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	script := filepath.Join(streamstest.ModuleRoot(t), "streams", "streamstest", "peer", "avro_peer.py")
	cmd := exec.CommandContext(ctx, python, append([]string{script}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peer %s: %v\n%s", strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

func sameJSON(t *testing.T, got, want []byte) bool {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("not JSON: %v: %s", err, want)
	}
	return reflect.DeepEqual(g, w)
}

// devStack is the part of `hotelbus dev` these tests need: the catalog's topics (prefixed for this
// test) on the rig's Kafka, the embedded registry with every schema registered, and a Serde.
func devStack(t *testing.T) (streamstest.Backend, *sr.Client, string, *streams.Serde, *topics.Catalog) {
	t.Helper()
	b := streamstest.RealKafka(t)
	cat := streamstest.Catalog(t, b)
	cl, url := streamstest.Registry(t)
	set := streamstest.RegisterSchemas(t, cl, cat)
	serde, err := streams.NewSerde(cl, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	return b, cl, url, serde, cat
}

// TestDefaultPythonDeserializerReadsHotelbus: every event type, published by the Go SDK, decoded
// by confluent-kafka's AvroDeserializer on default settings. It asks for the writer schema with
// ?subject=<topic>-value, a subject that does not hold the id (hotelbus registers under
// TopicRecordNameStrategy subjects): Confluent only takes a context from it, and so must we.
func TestDefaultPythonDeserializerReadsHotelbus(t *testing.T) {
	python := streamstest.Python(t)
	b, _, url, serde, _ := devStack(t)
	ctx := context.Background()
	producers := map[string]*streams.Producer{}
	perTopic := map[string]int{}
	for _, sub := range serde.Schemas().Subjects {
		env, err := serde.ParseJSON(sub.Latest().Example)
		if err != nil {
			t.Fatal(err)
		}
		p := producers[env.Metadata.Source]
		if p == nil {
			if p, err = streams.NewProducer(env.Metadata.Source, serde, streams.Brokers(b.Brokers...)); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = p.Close(context.Background()) })
			producers[env.Metadata.Source] = p
		}
		res, err := p.Publish(ctx, env)
		if err != nil {
			t.Fatalf("publish %s: %v", sub.EventType, err)
		}
		perTopic[res.Topic]++
	}
	checked := 0
	for topic, n := range perTopic {
		out := defaultPeer(t, python, "consume", "--defaults", "--brokers", strings.Join(b.Brokers, ","), "--registry", url,
			"--topic", topic, "--count", strconv.Itoa(n), "--timeout", "60")
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var rec struct {
				Headers map[string]string `json:"headers"`
				Value   json.RawMessage   `json:"value"`
			}
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				t.Fatalf("peer output: %v: %s", err, sc.Bytes())
			}
			et := rec.Headers[streams.HeaderEventType]
			v, ok := serde.Schemas().Version(et, rec.Headers[streams.HeaderVersion])
			if !ok {
				t.Fatalf("peer saw eventType and version headers %q %q", et, rec.Headers[streams.HeaderVersion])
			}
			if !sameJSON(t, rec.Value, v.Example) {
				t.Errorf("%s as decoded by the default AvroDeserializer differs:\n got %s\nwant %s", et, rec.Value, v.Example)
			}
			checked++
		}
	}
	if want := len(serde.Schemas().Subjects); checked != want {
		t.Errorf("the default deserializer decoded %d events, want %d", checked, want)
	}
}

// TestDefaultPythonSerializerWritesHotelbus: for each hotelbus topic, the first event type routed
// to it, produced by confluent-kafka's AvroSerializer on default settings (it registers the
// schema file under <topic>-value), read back by the Go SDK. The registry finds the schema
// hotelbus registered, so the serializer gets the same id. A second event type on a topic is
// refused under <topic>-value (a different record, incompatible at FULL_TRANSITIVE, as at
// Confluent's own BACKWARD): TopicNameStrategy holds one record type per topic.
func TestDefaultPythonSerializerWritesHotelbus(t *testing.T) {
	python := streamstest.Python(t)
	b, cl, url, serde, cat := devStack(t)
	ctx := context.Background()
	dir := t.TempDir()
	want := map[string][]byte{}
	var topicNames []string
	for _, tp := range cat.Topics {
		if len(tp.EventTypes) == 0 {
			continue
		}
		v, ok := serde.Schemas().Latest(tp.EventTypes[0])
		if !ok {
			continue
		}
		var ex struct {
			EventID  string `json:"eventId"`
			Metadata struct {
				TenantID string `json:"tenantId"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(v.Example, &ex); err != nil {
			t.Fatal(err)
		}
		line, _ := json.Marshal(map[string]any{"key": ex.Metadata.TenantID,
			"headers": map[string]string{streams.HeaderEventType: tp.EventTypes[0]}, "value": json.RawMessage(v.Example)})
		in := filepath.Join(dir, tp.Name+".jsonl")
		schemaFile := filepath.Join(dir, tp.Name+".avsc")
		if err := os.WriteFile(in, append(line, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(schemaFile, []byte(v.Text), 0o644); err != nil {
			t.Fatal(err)
		}
		out := defaultPeer(t, python, "produce", "--defaults", "--brokers", strings.Join(b.Brokers, ","), "--registry", url,
			"--topic", tp.Name, "--schema-file", schemaFile, "--input", in)
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		var got struct {
			ID int `json:"id"`
		}
		if len(lines) != 2 || lines[0] != "1" || json.Unmarshal([]byte(lines[1]), &got) != nil {
			t.Fatalf("peer produce output %q, want 1 and the registered id", out)
		}
		hotelbus, err := cl.SchemaByVersion(ctx, v.Subject(tp.Name), -1)
		if err != nil {
			t.Fatal(err)
		}
		if got.ID != hotelbus.ID {
			t.Errorf("%s: the default serializer registered id %d under %s-value; hotelbus's %s holds id %d", tp.Name, got.ID, tp.Name, v.Subject(tp.Name), hotelbus.ID)
		}
		want[ex.EventID] = v.Example
		topicNames = append(topicNames, tp.Name)

		if len(tp.EventTypes) > 1 {
			second, ok := serde.Schemas().Latest(tp.EventTypes[1])
			if !ok {
				continue
			}
			_, err := cl.CreateSchema(ctx, tp.Name+"-value", sr.Schema{Schema: second.Text})
			var re *sr.ResponseError
			if err == nil || !errors.As(err, &re) || re.StatusCode != 409 {
				t.Errorf("%s-value: a second event type registered: %v, want 409", tp.Name, err)
			}
		}
	}
	cl2 := b.Client(t, kgo.ConsumeTopics(topicNames...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	pollCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for len(want) > 0 && pollCtx.Err() == nil {
		fs := cl2.PollFetches(pollCtx)
		fs.EachError(func(topic string, p int32, err error) {
			if pollCtx.Err() == nil {
				t.Fatalf("fetch %s/%d: %v", topic, p, err)
			}
		})
		for _, r := range fs.Records() {
			env, err := serde.Decode(ctx, r.Value)
			if err != nil {
				t.Fatalf("hotelbus cannot decode the default serializer's %s: %v", streams.Header(r, streams.HeaderEventType), err)
			}
			out, err := serde.JSON(env)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, out, want[env.EventID]) {
				t.Errorf("%s written by the default serializer reads back as\n%s\nwant\n%s", env.EventType, out, want[env.EventID])
			}
			delete(want, env.EventID)
		}
	}
	if len(want) > 0 {
		t.Errorf("%d events from the default serializer never decoded", len(want))
	}
}
