package topics_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// TestReconcile runs plan and apply against every backend: kfake always, Apache Kafka under
// `make test`.
func TestReconcile(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) { testReconcile(t, b) })
	}
}

// edits are text replacements in topics.yaml; each must apply exactly once.
type edit struct{ old, new string }

var (
	// servicesTo6 raises hotelbus.saas.services to 6 partitions in the test environment (which
	// otherwise sets 3 for every topic).
	servicesTo6 = edit{"      - service.canceled\n", "      - service.canceled\n    environments:\n      test:\n        partitions: 6\n"}
	// billingTo14d shortens hotelbus.pms.billing's retention from 30 days.
	billingTo14d = edit{"    retention: 30d\n\n  - name: hotelbus.saas.services", "    retention: 14d\n\n  - name: hotelbus.saas.services"}
	// feedbackRF2 declares a replication factor the topic was not created with.
	feedbackRF2 = edit{"      - feedback.submitted\n    partitions: 6\n", "      - feedback.submitted\n    partitions: 6\n    environments:\n      test:\n        replicationFactor: 2\n"}
)

// loadEdited loads the test-environment catalog from a copy of the embedded declarations with
// topics.yaml edited, prefixed with prefix.
func loadEdited(t *testing.T, prefix string, edits ...edit) *topics.Catalog {
	t.Helper()
	yaml := read(t, topics.TopicsFile)
	for _, e := range edits {
		if strings.Count(yaml, e.old) != 1 {
			t.Fatalf("fixture text %q is not in %s exactly once", e.old, topics.TopicsFile)
		}
		yaml = strings.Replace(yaml, e.old, e.new, 1)
	}
	fsys := fstest.MapFS{
		topics.CatalogFile: &fstest.MapFile{Data: []byte(read(t, topics.CatalogFile))},
		topics.TopicsFile:  &fstest.MapFile{Data: []byte(yaml)},
	}
	c, err := topics.Load(fsys, "test")
	if err != nil {
		t.Fatal(err)
	}
	return c.WithPrefix(prefix)
}

func plan(t *testing.T, adm *kadm.Client, c *topics.Catalog) *topics.Diff {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	d, err := topics.Plan(ctx, adm, c)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func apply(t *testing.T, adm *kadm.Client, d *topics.Diff) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := topics.Apply(ctx, adm, d); err != nil {
		t.Fatal(err)
	}
}

// partitionsAndConfigs reads a topic's partition count and a config through a client of its own,
// so no metadata cached by the client under test can answer.
func partitionsAndConfigs(t *testing.T, b streamstest.Backend, topic, key string) (int, string) {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx := context.Background()
	details, err := adm.ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := rcs.On(topic, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rc.Configs {
		if c.Key == key {
			return len(details[topic].Partitions), c.MaybeValue()
		}
	}
	t.Fatalf("%s: config %s not reported", topic, key)
	return 0, ""
}

func testReconcile(t *testing.T, b streamstest.Backend) {
	prefix := streamstest.Name(t, "t") + "."
	adm := kadm.NewClient(b.Client(t))
	cat := loadEdited(t, prefix)
	services, billing := prefix+"hotelbus.saas.services", prefix+"hotelbus.pms.billing"
	stray, outsider := prefix+"hotelbus.stray", prefix+"other"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		names := []string{stray, outsider}
		for _, tp := range cat.Topics {
			names = append(names, tp.Name)
		}
		_, _ = kadm.NewClient(b.Client(t)).DeleteTopics(ctx, names...)
	})

	// An empty cluster: every declared topic is to be created, with its settings.
	d := plan(t, adm, cat)
	if len(d.Create) != len(cat.Topics) || len(d.Partitions) != 0 || len(d.Configs) != 0 || len(d.Warnings) != 0 || d.Empty() {
		t.Fatalf("plan on an empty cluster:\n%s", d)
	}
	for _, tp := range cat.Topics {
		if !slices.ContainsFunc(d.Create, func(c topics.Creation) bool { return c.Topic == tp.Name }) {
			t.Errorf("plan does not create %s", tp.Name)
		}
	}
	wantLine := "+ create " + billing + " (partitions 3, rf 1, cleanup.policy=delete, min.insync.replicas=1, retention.ms=2592000000)\n"
	if !strings.Contains(d.String(), wantLine) {
		t.Errorf("plan does not print %q:\n%s", wantLine, d)
	}

	apply(t, adm, d)
	if d := plan(t, adm, cat); !d.Empty() || len(d.Warnings) != 0 || !strings.HasPrefix(d.String(), "in sync: 19 declared topics") {
		t.Fatalf("plan after apply:\n%s", d)
	}
	if n, ret := partitionsAndConfigs(t, b, billing, "retention.ms"); n != 3 || ret != "2592000000" {
		t.Errorf("%s after apply: %d partitions, retention.ms %s", billing, n, ret)
	}
	ctx := context.Background()
	states, err := topics.Describe(ctx, adm, cat)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if !s.InSync() || s.Partitions != 3 || s.ReplicationFactor != 1 {
			t.Errorf("describe %s after apply: %+v, drift %v", s.Declared.Name, s, s.Drift())
		}
	}
	again := plan(t, adm, cat)
	apply(t, adm, again) // a no-op
	if d := plan(t, adm, cat); !d.Empty() {
		t.Fatalf("plan after a second apply:\n%s", d)
	}

	// More partitions declared: the topic grows.
	grown := loadEdited(t, prefix, servicesTo6)
	d = plan(t, adm, grown)
	if want := []topics.PartitionChange{{Topic: services, From: 3, To: 6}}; !slices.Equal(d.Partitions, want) || len(d.Create)+len(d.Configs)+len(d.Warnings) != 0 {
		t.Fatalf("plan with 6 partitions declared, want only %v:\n%s", want, d)
	}
	if want := "~ " + services + " partitions 3 -> 6\n"; !strings.Contains(d.String(), want) {
		t.Errorf("plan does not print %q:\n%s", want, d)
	}
	apply(t, adm, d)
	if n, _ := partitionsAndConfigs(t, b, services, "retention.ms"); n != 6 {
		t.Errorf("%s has %d partitions after apply, want 6", services, n)
	}
	if states, err := topics.Describe(ctx, adm, grown); err != nil || !slices.ContainsFunc(states, func(s topics.TopicState) bool {
		return s.Declared.Name == services && s.Partitions == 6 && s.InSync()
	}) {
		t.Errorf("describe after growing: %v %+v", err, states)
	}

	// A shorter retention declared: the config changes, nothing else does.
	shorter := loadEdited(t, prefix, servicesTo6, billingTo14d)
	d = plan(t, adm, shorter)
	if want := []topics.ConfigChange{{Topic: billing, Key: "retention.ms", From: "2592000000", To: "1209600000"}}; !slices.Equal(d.Configs, want) || len(d.Create)+len(d.Partitions)+len(d.Warnings) != 0 {
		t.Fatalf("plan with 14d retention, want only %v:\n%s", want, d)
	}
	if want := "~ " + billing + " retention.ms 2592000000 -> 1209600000\n"; !strings.Contains(d.String(), want) {
		t.Errorf("plan does not print %q:\n%s", want, d)
	}
	apply(t, adm, d)
	if _, ret := partitionsAndConfigs(t, b, billing, "retention.ms"); ret != "1209600000" {
		t.Errorf("%s retention.ms = %s after apply, want 1209600000", billing, ret)
	}
	if _, mir := partitionsAndConfigs(t, b, billing, "min.insync.replicas"); mir != "1" {
		t.Errorf("%s min.insync.replicas = %s after altering retention, want 1 (incremental alter)", billing, mir)
	}
	if d := plan(t, adm, shorter); !d.Empty() || len(d.Warnings) != 0 {
		t.Fatalf("plan after the config change:\n%s", d)
	}

	// Fewer partitions and another replication factor declared, and topics nobody declared:
	// warnings only, and apply changes none of it.
	mustCreate(t, adm, stray, outsider)
	refused := loadEdited(t, prefix, billingTo14d, feedbackRF2)
	d = plan(t, adm, refused)
	if !d.Empty() {
		t.Fatalf("plan that would shrink, re-replicate or delete has changes:\n%s", d)
	}
	warned := map[string]string{}
	for _, w := range d.Warnings {
		warned[w.Topic] = w.Message
	}
	for topic, fragment := range map[string]string{
		services:                          "declares 3 partitions but has 6",
		prefix + "hotelbus.saas.feedback": "replication factor is 1, declared 2",
		stray:                             "not declared",
	} {
		if !strings.Contains(warned[topic], fragment) {
			t.Errorf("no warning for %s mentioning %q:\n%s", topic, fragment, d)
		}
		if !strings.Contains(d.String(), "! warning "+topic+": ") {
			t.Errorf("warning for %s not printed:\n%s", topic, d)
		}
	}
	if len(d.Warnings) != 3 {
		t.Errorf("want 3 warnings (none for %s, outside the namespace):\n%s", outsider, d)
	}
	apply(t, adm, d)
	if n, _ := partitionsAndConfigs(t, b, services, "retention.ms"); n != 6 {
		t.Errorf("%s has %d partitions after applying a plan declaring 3; it must not shrink", services, n)
	}
	if details, err := kadm.NewClient(b.Client(t)).ListTopics(ctx, stray); err != nil || details[stray].Err != nil {
		t.Errorf("undeclared %s was touched: %v %v", stray, err, details[stray].Err)
	}
}

func mustCreate(t *testing.T, adm *kadm.Client, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := adm.CreateTopic(context.Background(), 1, 1, nil, n); err != nil {
			t.Fatalf("creating %s: %v", n, err)
		}
	}
}
