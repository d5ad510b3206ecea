package rabbitmq_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/streams/bridge/rabbitmq"
	"github.com/hotelbus/hotelbus/topics"
)

// TestParseUserMap: "<system> <rabbitmq user>" lines map users to systems; an unknown system, a
// user given twice, a user name outside the grammar and a malformed line are refused, naming the
// line and never echoing the user name.
func TestParseUserMap(t *testing.T) {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	m, err := rabbitmq.ParseUserMap(strings.NewReader("# systems on RabbitMQ\nhotel-pms pms-app\n\nhotel-pms pms-batch\nhotel-member crm\n"), cat)
	if err != nil || len(m) != 3 || m["pms-app"] != "hotel-pms" || m["pms-batch"] != "hotel-pms" || m["crm"] != "hotel-member" {
		t.Fatalf("ParseUserMap = %v, %v", m, err)
	}
	for in, want := range map[string]string{
		"hotel-pms pms\nhotel-member pms\n": "line 2: user pms is already hotel-pms's",
		"hotel-spa spa\n":                   "line 1: topics: unknown system",
		"hotel-pms pms app\n":               "line 1: want",
		"hotel-pms pm/s\n":                  "line 1: user must be",
		"# nothing\n":                       "no \"<system> <rabbitmq user>\" line",
	} {
		_, err := rabbitmq.ParseUserMap(strings.NewReader(in), cat)
		if !errors.Is(err, rabbitmq.ErrConfig) || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseUserMap(%q) = %v, want ErrConfig with %q", in, err, want)
		}
	}
}
