package streamstest

import (
	"fmt"
	"slices"
	"sync"
)

// Checker is a queue checker in the spirit of Jepsen's: a test tells it every event it published
// (with the event's key and its sequence number within the key) and every side effect a handler
// ran, and Report says which events were lost, which had their side effects run more than once,
// and which ran out of order within their key. It is safe for concurrent use; the order of Handled
// calls is the order in which side effects are taken to have happened.
type Checker struct {
	mu         sync.Mutex
	published  map[string]bool         // eventID -> published
	handled    map[string]int          // eventID -> side effects run
	highest    map[string]handledEvent // key -> highest sequence handled so far
	outOfOrder []string
	calls      int
	pubOrder   []string
}

type handledEvent struct {
	seq     int
	eventID string
}

// CheckerReport is what a Checker found.
type CheckerReport struct {
	// Lost lists the eventIds published and never handled, in publication order.
	Lost []string
	// Duplicated lists the eventIds handled more than once, sorted.
	Duplicated []string
	// OutOfOrder describes each event handled for the first time after an event of the same key
	// with a higher sequence number had been handled: "key: seq 3 (eventId) after seq 5 (eventId)".
	OutOfOrder []string
	// Published counts the Published calls; Handled counts the Handled calls, repeats included.
	Published, Handled int
}

// NewChecker returns an empty checker.
func NewChecker() *Checker {
	return &Checker{published: map[string]bool{}, handled: map[string]int{}, highest: map[string]handledEvent{}}
}

// Published records that the event eventID was published with sequence number seq within key;
// sequence numbers of one key increase in publication order. Publishing an eventID twice counts
// once.
func (c *Checker) Published(_, eventID string, _ int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.published[eventID] {
		c.published[eventID] = true
		c.pubOrder = append(c.pubOrder, eventID)
	}
}

// Handled records that a handler ran the side effect of event eventID (sequence seq within key).
// Only the first side effect of an event counts for ordering: a repeat is a duplicate, not a
// reordering.
func (c *Checker) Handled(key, eventID string, seq int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	c.handled[eventID]++
	if c.handled[eventID] > 1 {
		return
	}
	if h, ok := c.highest[key]; ok && h.seq > seq {
		c.outOfOrder = append(c.outOfOrder, fmt.Sprintf("%s: seq %d (%s) after seq %d (%s)", key, seq, eventID, h.seq, h.eventID))
		return
	}
	c.highest[key] = handledEvent{seq: seq, eventID: eventID}
}

// Report returns what the checker found so far.
func (c *Checker) Report() CheckerReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := CheckerReport{Published: len(c.pubOrder), Handled: c.calls, OutOfOrder: slices.Clone(c.outOfOrder)}
	for _, id := range c.pubOrder {
		if c.handled[id] == 0 {
			r.Lost = append(r.Lost, id)
		}
	}
	for id, n := range c.handled {
		if n > 1 {
			r.Duplicated = append(r.Duplicated, id)
		}
	}
	slices.Sort(r.Duplicated)
	return r
}

// String summarizes the report, with up to three examples of each problem.
func (r CheckerReport) String() string {
	return fmt.Sprintf("published %d, handled %d: %d lost %v, %d duplicated %v, %d out of order %v", r.Published, r.Handled,
		len(r.Lost), head(r.Lost), len(r.Duplicated), head(r.Duplicated), len(r.OutOfOrder), head(r.OutOfOrder))
}

func head(s []string) []string { return s[:min(len(s), 3)] }
