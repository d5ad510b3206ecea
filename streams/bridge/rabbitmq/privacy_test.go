package rabbitmq_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// TestPersonalDataSealedOnKafka: with a Serde that protects personal data (the command's
// --key-file), a guest's name published on RabbitMQ reaches Kafka sealed, and one published on
// Kafka reaches RabbitMQ clear.
func TestPersonalDataSealedOnKafka(t *testing.T) {
	f := newFixture(t)
	keyFile := filepath.Join(t.TempDir(), privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(keyFile); err != nil {
		t.Fatal(err)
	}
	kf, err := privacy.OpenKeyFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := privacy.NewKeys(streamstest.Writer(t, f.backend, f.cat, "hotel-common"), kf, f.cat.KeyTopic, []kgo.Opt{kgo.SeedBrokers(f.backend.Brokers...)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(keys.Close)
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	subjects, err := privacy.LoadSubjects(topics.Embedded(), f.cat, set)
	if err != nil {
		t.Fatal(err)
	}
	f.serde = f.newSerde(streams.WithFieldProtector(privacy.NewProtector(subjects, keys)))
	topo := f.cat.RabbitMQ
	observer := "hotelbus.test.privacy"
	f.observe(t, observer, topo.Exchanges...)
	f.bridge(t, true, true)

	// RabbitMQ → Kafka: sealed.
	f.examples["customer.created"]["lastName"] = "Rabbitside"
	user, id := "rmq-member", uuid.NewString()
	ex, _ := topo.Exchange("customer.created")
	line, _ := json.Marshal(inMessage{User: user, UserID: &user, Exchange: ex, RoutingKey: "customer.created",
		Body: f.envelopeJSON(t, "customer.created", id, "rmq-privacy", "", 0), MessageID: id, TenantID: "rmq-privacy"})
	f.peer(t, "publish", string(line)+"\n")
	cl := f.backend.Client(t, kgo.ConsumeTopics(f.topicsOf("customer.created")...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var raw *kgo.Record
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for raw == nil && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			if streams.Header(r, streams.HeaderEventID) == id {
				raw = r
			}
		})
	}
	if raw == nil {
		t.Fatalf("event %s never reached Kafka", id)
	}
	if v := string(raw.Value); strings.Contains(v, "Rabbitside") || !strings.Contains(v, privacy.Prefix) {
		t.Errorf("RabbitMQ → Kafka: the record's value holds the clear name or no sealed value: %q", v)
	}

	// Kafka → RabbitMQ: clear.
	p, err := streams.NewProducer("hotel-member", f.serde, streams.Brokers(f.backend.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	f.examples["customer.created"]["lastName"] = "Kafkaside"
	env, err := f.serde.ParseJSON([]byte(f.envelopeJSON(t, "customer.created", "", "kafka-privacy", "", 0)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	for _, m := range parseMessages(t, f.peer(t, "consume", "", observer, "1000", "5")) {
		if m.MessageID == env.EventID {
			if !strings.Contains(m.Body, `"lastName":"Kafkaside"`) {
				t.Errorf("Kafka → RabbitMQ: the body does not hold the clear name: %.300s", m.Body)
			}
			return
		}
	}
	t.Errorf("event %s never reached RabbitMQ", env.EventID)
}
