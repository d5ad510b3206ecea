package streams_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// The interoperability tests put hotelbus and an independent client (Python confluent-kafka with
// its SchemaRegistryClient and Avro serializers, over librdkafka) on the same real broker and the
// embedded registry over HTTP, and check every field in both directions. kcat checks keys,
// partitions and headers from outside.

const peerScript = "streamstest/peer/avro_peer.py"

type peerRecord struct {
	Key       string            `json:"key"`
	Partition int32             `json:"partition"`
	Offset    int64             `json:"offset"`
	Headers   map[string]string `json:"headers"`
	Value     json.RawMessage   `json:"value"`
}

func peer(t *testing.T, python string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, append([]string{peerScript}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peer %s: %v\n%s", args[0], err, stderr.Bytes())
	}
	return out
}

// sameJSON compares two JSON documents by value.
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

func TestInteropPythonReadsHotelbus(t *testing.T) {
	python := streamstest.Python(t)
	b := streamstest.RealKafka(t)
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, url := newSerde(t, set, cat)
	byTopic := map[string][]*schemas.Version{}
	for i, res := range produceGoldens(t, b, serde) {
		byTopic[res.Topic] = append(byTopic[res.Topic], set.Subjects[i].Latest())
	}
	checked := 0
	for topic, versions := range byTopic {
		out := peer(t, python, "consume", "--brokers", strings.Join(b.Brokers, ","), "--registry", url,
			"--topic", topic, "--count", strconv.Itoa(len(versions)), "--timeout", "60")
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var pr peerRecord
			if err := json.Unmarshal(sc.Bytes(), &pr); err != nil {
				t.Fatalf("peer output: %v: %s", err, sc.Bytes())
			}
			et := pr.Headers[streams.HeaderEventType]
			v, ok := set.Version(et, pr.Headers[streams.HeaderVersion])
			if !ok {
				t.Fatalf("peer saw eventType and version headers %q %q", et, pr.Headers[streams.HeaderVersion])
			}
			if !sameJSON(t, pr.Value, v.Example) {
				t.Errorf("%s as decoded by confluent-kafka differs:\n got %s\nwant %s", et, pr.Value, v.Example)
			}
			var ex struct {
				EventID  string `json:"eventId"`
				Metadata struct {
					TenantID string `json:"tenantId"`
				} `json:"metadata"`
			}
			_ = json.Unmarshal(v.Example, &ex)
			if pr.Key != ex.Metadata.TenantID || pr.Headers[streams.HeaderEventID] != ex.EventID {
				t.Errorf("%s: key %q headers %v", et, pr.Key, pr.Headers)
			}
			checked++
		}
	}
	if checked != len(set.Subjects) {
		t.Errorf("peer decoded %d events, want %d", checked, len(set.Subjects))
	}
}

func TestInteropHotelbusReadsPython(t *testing.T) {
	python := streamstest.Python(t)
	b := streamstest.RealKafka(t)
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	cl, url := streamstest.Registry(t)
	topicOf := func(et string) (string, bool) { tp, ok := cat.TopicFor(et); return tp.Name, ok }
	ctx := context.Background()
	states, err := schemas.Compare(ctx, cl, set, topicOf, schemas.DefaultLevel)
	if err != nil {
		t.Fatal(err)
	}
	if err := schemas.Register(ctx, cl, states, schemas.DefaultLevel); err != nil {
		t.Fatal(err)
	}
	serde, err := streams.NewSerde(cl, set, cat)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	want := map[string][]byte{}
	var topicNames []string
	for _, sub := range set.Subjects {
		v := sub.Latest()
		topic, _ := topicOf(sub.EventType)
		var ex map[string]any
		_ = json.Unmarshal(v.Example, &ex)
		md := ex["metadata"].(map[string]any)
		line, _ := json.Marshal(map[string]any{"key": md["tenantId"], "headers": map[string]string{streams.HeaderEventType: sub.EventType}, "value": json.RawMessage(v.Example)})
		in := filepath.Join(dir, sub.EventType+".jsonl")
		if err := os.WriteFile(in, append(line, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		peer(t, python, "produce", "--brokers", strings.Join(b.Brokers, ","), "--registry", url,
			"--topic", topic, "--subject", v.Subject(topic), "--input", in)
		want[ex["eventId"].(string)] = v.Example
		topicNames = append(topicNames, topic)
	}
	for _, r := range consume(t, b, len(want), topicNames...) {
		env, err := serde.Decode(ctx, r.Value)
		if err != nil {
			t.Fatalf("hotelbus cannot decode confluent-kafka's %s: %v", streams.Header(r, streams.HeaderEventType), err)
		}
		out, err := serde.JSON(env)
		if err != nil {
			t.Fatal(err)
		}
		if !sameJSON(t, out, want[env.EventID]) {
			t.Errorf("%s written by confluent-kafka reads back as\n%s\nwant\n%s", env.EventType, out, want[env.EventID])
		}
		delete(want, env.EventID)
	}
	if len(want) > 0 {
		t.Errorf("%d events from the peer never decoded", len(want))
	}
}

// TestInteropKcatSeesKeysPartitionsHeaders reads hotelbus records with kcat (no Avro: Debian's build
// has none) and checks the key, the partition franz-go chose, and every envelope header.
func TestInteropKcatSeesKeysPartitionsHeaders(t *testing.T) {
	b := streamstest.RealKafka(t)
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if streamstest.Real() {
			t.Fatal("kcat is required under make test: ", err)
		}
		t.Skip("kcat not installed")
	}
	set, _ := loadAll(t)
	cat := testCatalog(t)
	ensure(t, b, cat)
	serde, _ := newSerde(t, set, cat)
	ctx := context.Background()
	env, err := serde.ParseJSON(latest(t, set, "reservation.created").Example)
	if err != nil {
		t.Fatal(err)
	}
	p := newProducer(t, "hotel-pms", b, serde)
	var produced []*kgo.Record
	for _, tenant := range []string{"tenant-a", "tenant-b", "tenant-c", "tenant-d", "tenant-a"} {
		e := *env
		e.Metadata.TenantID, e.EventID = tenant, ""
		res, err := p.Publish(ctx, &e)
		if err != nil {
			t.Fatal(err)
		}
		// what hotelbus says it wrote, with the headers it writes
		produced = append(produced, &kgo.Record{Topic: res.Topic, Key: []byte(tenant), Partition: res.Partition, Offset: res.Offset, Headers: streams.Headers(&e)})
	}
	out, err := exec.Command(kcat, "-C", "-b", strings.Join(b.Brokers, ","), "-t", produced[0].Topic, "-o", "beginning", "-e", "-q",
		"-f", "%k\t%p\t%o\t%h\n").Output()
	if err != nil {
		t.Fatalf("kcat: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(produced) {
		t.Fatalf("kcat read %d records, want %d:\n%s", len(lines), len(produced), out)
	}
	seen := 0
	for _, l := range lines {
		f := strings.SplitN(l, "\t", 4)
		for _, p := range produced {
			if f[1] != strconv.Itoa(int(p.Partition)) || f[2] != strconv.FormatInt(p.Offset, 10) {
				continue
			}
			seen++
			if f[0] != string(p.Key) {
				t.Errorf("kcat key %q at %s/%s, hotelbus wrote %q", f[0], f[1], f[2], p.Key)
			}
			for _, h := range p.Headers {
				if !strings.Contains(f[3], h.Key+"="+string(h.Value)) {
					t.Errorf("%s: kcat headers %q lack %s=%s", f[0], f[3], h.Key, h.Value)
				}
			}
		}
	}
	if seen != len(produced) {
		t.Errorf("kcat found %d of the %d records at the partition and offset hotelbus reported", seen, len(produced))
	}
	if produced[0].Partition != produced[4].Partition {
		t.Errorf("tenant-a landed on partitions %d and %d", produced[0].Partition, produced[4].Partition)
	}
}
