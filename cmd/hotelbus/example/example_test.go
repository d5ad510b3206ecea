package example_test

import (
	"strings"
	"testing"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil/cmdtest"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// TestExampleProduces: the example of every event type of the catalog, piped into produce as its
// owner, is published, twice as two events (no eventId is printed).
func TestExampleProduces(t *testing.T) {
	b := streamstest.Kfake(t)
	prefix := streamstest.Name(t, "ex") + "."
	cat := streamstest.PrefixedCatalog(t, b, prefix)
	cl, url := streamstest.Registry(t)
	streamstest.RegisterSchemas(t, cl, cat)
	base, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, et := range base.EventTypes() {
		topic, _ := cat.TopicFor(et)
		ex := cmdtest.Run(t, nil, "", "example", et, "--tenant", "example-tenant")
		if ex.Code != 0 || strings.Count(ex.Out, "\n") != 1 || strings.Contains(ex.Out, "eventId") {
			t.Errorf("example %s: exit %d, want one line without an eventId\n%s%s", et, ex.Code, ex.Out, ex.ErrOut)
			continue
		}
		in := ex.Out + ex.Out
		pr := cmdtest.Run(t, nil, in, "produce", "--system", topic.Owner, "--brokers", strings.Join(b.Brokers, ","),
			"--registry", url, "--prefix", prefix)
		if pr.Code != 0 || strings.Count(pr.Out, "\tok\t") != 2 {
			t.Errorf("example %s | produce --system %s: exit %d\n%s%s", et, topic.Owner, pr.Code, pr.Out, pr.ErrOut)
		}
	}
}

func TestExampleUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		frag string
	}{
		{[]string{"example"}, "accepts 1 arg"},
		{[]string{"example", "reservaton.created"}, "did you mean reservation.created?"},
		{[]string{"example", "reservation.created", "--major", "9"}, "has no major version 9 (it has v1"},
	} {
		r := cmdtest.Run(t, nil, "", tc.args...)
		if r.Code != 2 || !strings.Contains(r.ErrOut, tc.frag) {
			t.Errorf("%v: exit %d, want 2 and %q\n%s", tc.args, r.Code, tc.frag, r.ErrOut)
		}
	}
}
