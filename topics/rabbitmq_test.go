package topics_test

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hotelbus/hotelbus/topics"
)

// TestRabbitMQTopology: the embedded catalog maps every event type to the exchange, and
// the loader refuses a resource carried by no exchange or by two, and a dead-letter exchange that
// is also an event exchange.
func TestRabbitMQTopology(t *testing.T) {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	r := cat.RabbitMQ
	for _, et := range cat.EventTypes() {
		want := "hotelbus.business"
		if strings.HasPrefix(et, "system.") || strings.HasPrefix(et, "auth.") {
			want = "hotelbus.system"
		}
		if ex, ok := r.Exchange(et); !ok || ex != want {
			t.Errorf("%s goes to %q, want %s", et, ex, want)
		}
	}
	if r.DeadLetterExchange != "hotelbus.dlx" || r.AuditExchange != "hotelbus.audit" || r.Group != "hotelbus.bridge.rabbitmq" {
		t.Errorf("topology %+v", r)
	}
	if _, ok := cat.Topic(r.DeadLetterTopic); !ok {
		t.Errorf("dead-letter topic %s is not declared", r.DeadLetterTopic)
	}
	for name, edit := range map[string][2]string{
		"resource carried by no exchange": {"[system, auth]", "[system]"},
		"resource carried twice":          {"[system, auth]", "[system, auth, billing]"},
		"dlx is an event exchange":        {"deadLetterExchange: hotelbus.dlx", "deadLetterExchange: hotelbus.system"},
		"consumeAs subscribes to some":    {"consumeAs: hotel-common", "consumeAs: hotel-pms"},
	} {
		src := read(t, topics.CatalogFile)
		if !strings.Contains(src, edit[0]) {
			t.Fatalf("%s: %q not in the catalog", name, edit[0])
		}
		fsys := fstest.MapFS{topics.CatalogFile: {Data: []byte(strings.Replace(src, edit[0], edit[1], 1))},
			topics.TopicsFile: {Data: []byte(read(t, topics.TopicsFile))}}
		if _, err := topics.Load(fsys, ""); !errors.Is(err, topics.ErrInvalid) || !strings.Contains(err.Error(), "rabbitmq") {
			t.Errorf("%s: Load = %v, want ErrInvalid naming rabbitmq", name, err)
		}
	}
}
