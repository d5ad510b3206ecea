package streamstest_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// publish records n events for key, with ids "<key>-<seq>".
func publish(c *streamstest.Checker, key string, n int) {
	for i := range n {
		c.Published(key, fmt.Sprintf("%s-%d", key, i), i)
	}
}

func handle(c *streamstest.Checker, key string, seqs ...int) {
	for _, s := range seqs {
		c.Handled(key, fmt.Sprintf("%s-%d", key, s), s)
	}
}

func TestCheckerClean(t *testing.T) {
	c := streamstest.NewChecker()
	publish(c, "a", 3)
	publish(c, "b", 2)
	handle(c, "b", 0)
	handle(c, "a", 0, 1)
	handle(c, "b", 1)
	handle(c, "a", 2)
	r := c.Report()
	if len(r.Lost)+len(r.Duplicated)+len(r.OutOfOrder) != 0 || r.Published != 5 || r.Handled != 5 {
		t.Errorf("report %s", r)
	}
}

func TestCheckerDetectsLost(t *testing.T) {
	c := streamstest.NewChecker()
	publish(c, "a", 4)
	handle(c, "a", 0, 2)
	r := c.Report()
	if !slices.Equal(r.Lost, []string{"a-1", "a-3"}) {
		t.Errorf("lost = %v, want [a-1 a-3]", r.Lost)
	}
	if len(r.Duplicated) != 0 || len(r.OutOfOrder) != 0 {
		t.Errorf("report %s", r)
	}
}

func TestCheckerDetectsDuplicated(t *testing.T) {
	c := streamstest.NewChecker()
	publish(c, "a", 3)
	// a redelivery replays a prefix already handled: duplicates, and not a reordering
	handle(c, "a", 0, 1, 0, 1, 2, 2)
	r := c.Report()
	if !slices.Equal(r.Duplicated, []string{"a-0", "a-1", "a-2"}) {
		t.Errorf("duplicated = %v", r.Duplicated)
	}
	if len(r.Lost) != 0 || len(r.OutOfOrder) != 0 || r.Handled != 6 {
		t.Errorf("report %s", r)
	}
}

func TestCheckerDetectsOutOfOrder(t *testing.T) {
	c := streamstest.NewChecker()
	publish(c, "a", 3)
	publish(c, "b", 2)
	handle(c, "a", 0, 2, 1)
	handle(c, "b", 1, 0) // another key has its own order
	r := c.Report()
	want := []string{"a: seq 1 (a-1) after seq 2 (a-2)", "b: seq 0 (b-0) after seq 1 (b-1)"}
	if !slices.Equal(r.OutOfOrder, want) {
		t.Errorf("out of order = %q, want %q", r.OutOfOrder, want)
	}
	if len(r.Lost) != 0 || len(r.Duplicated) != 0 {
		t.Errorf("report %s", r)
	}
}

func TestCheckerConcurrentUse(t *testing.T) {
	c := streamstest.NewChecker()
	const keys, per = 50, 100
	var wg sync.WaitGroup
	for k := range keys {
		wg.Go(func() {
			key := fmt.Sprintf("k%d", k)
			publish(c, key, per)
			for i := range per {
				handle(c, key, i)
			}
		})
	}
	wg.Wait()
	r := c.Report()
	if r.Published != keys*per || r.Handled != keys*per || len(r.Lost)+len(r.Duplicated)+len(r.OutOfOrder) != 0 {
		t.Errorf("report %s", r)
	}
}
