package rabbitmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// benchMessages is the size of each direction's run.
const benchMessages = 10_000

// BenchmarkBridge measures messages/s each way next to pika doing the RabbitMQ side's work
// directly (the RabbitMQ-only baseline), on the same node and the same messages:
//
//	in:  the bridge draining its queue into Kafka (validate, publish as the user's system, ack
//	     after Kafka's ack) vs pika consuming the same messages from a queue (ack each)
//	out: the bridge reading Kafka and publishing with confirms and mandatory vs pika publishing the
//	     same envelopes with confirms and mandatory
//
// Run it with `go test -run '^$' -bench Bridge -benchtime 1x ./streams/bridge/rabbitmq/`; each
// iteration moves benchMessages messages each way (b.N is ignored beyond one run).
func BenchmarkBridge(b *testing.B) {
	f := newFixture(b)
	topo := f.cat.RabbitMQ
	baseline := "hotelbus.test.bench"
	f.observe(b, baseline, topo.Exchanges...)
	// The bridge's queue, as the bridge declares it, filled before the bridge starts.
	f.peer(b, "bind", "", append([]string{topo.Queue}, topo.Exchanges...)...)

	users := []string{"rmq-pms", "rmq-member", "rmq-saas"}
	var in strings.Builder
	for i := range benchMessages {
		user := users[i%len(users)]
		et := typeOf[user]
		tenant := fmt.Sprintf("bench-tenant-%03d", i%200)
		id := uuid.NewString()
		ex, _ := topo.Exchange(et)
		line, _ := json.Marshal(inMessage{User: user, UserID: &user, Exchange: ex, RoutingKey: et,
			Body: f.envelopeJSON(b, et, id, tenant, "", i), MessageID: id, TenantID: tenant})
		in.Write(append(line, '\n'))
	}
	b.ResetTimer()
	start := time.Now()
	f.peer(b, "publish", in.String())
	pikaPublish := rate(start)

	start = time.Now()
	f.peer(b, "consume", "", baseline, fmt.Sprint(benchMessages), "10")
	pikaConsume := rate(start)

	start = time.Now()
	bin := f.bridge(b, true, false)
	streamstest.Eventually(b, 5*time.Minute, "the bridge to take every message into Kafka", func() bool {
		return bin.Counts()["in/published"] >= benchMessages
	})
	bridgeIn := rate(start)

	p, err := streams.NewProducer("hotel-common", f.serde, streams.Brokers(f.backend.Brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer p.Close(context.Background())
	for i := 0; i < benchMessages; i += 500 {
		envs := make([]*streams.Envelope, 0, 500)
		for j := i; j < i+500; j++ {
			env, err := f.serde.ParseJSON([]byte(f.envelopeJSON(b, "system.maintenance", "", fmt.Sprintf("bench-tenant-%03d", j%200), "", j)))
			if err != nil {
				b.Fatal(err)
			}
			envs = append(envs, env)
		}
		if _, err := p.PublishBatch(context.Background(), envs); err != nil {
			b.Fatal(err)
		}
	}
	start = time.Now()
	bout := f.bridge(b, false, true)
	streamstest.Eventually(b, 5*time.Minute, "the bridge to publish every event to RabbitMQ", func() bool {
		return bout.Counts()["out/published"] >= benchMessages
	})
	bridgeOut := rate(start)
	b.StopTimer()

	b.ReportMetric(bridgeIn, "in-msgs/s")
	b.ReportMetric(pikaConsume, "pika-consume-msgs/s")
	b.ReportMetric(bridgeOut, "out-msgs/s")
	b.ReportMetric(pikaPublish, "pika-publish-msgs/s")
	b.Logf("\n%-44s %12s %12s %7s\n%-44s %12.0f %12.0f %7.2f\n%-44s %12.0f %12.0f %7.2f\n(%d messages each way, 200 tenants; bridge runs include connecting and joining the group)",
		"row (messages/s)", "bridge", "pika", "ratio",
		"in: RabbitMQ -> Kafka vs pika consume", bridgeIn, pikaConsume, bridgeIn/pikaConsume,
		"out: Kafka -> RabbitMQ vs pika publish", bridgeOut, pikaPublish, bridgeOut/pikaPublish, benchMessages)
}

func rate(start time.Time) float64 { return benchMessages / time.Since(start).Seconds() }
