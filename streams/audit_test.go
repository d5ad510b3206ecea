package streams_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestPublishAuditRecordsUnderLoad: with many events in flight from concurrent callers (the
// audit log recycles its records once franz-go is done with them), every publish audit record
// written is its own event's: it parses, names the eventId, correlationId and offset of the
// event published with that correlation id, and is keyed by that correlation id.
func TestPublishAuditRecordsUnderLoad(t *testing.T) {
	b := streamstest.Kfake(t)
	serde, cat := isolated(t, b)
	p := newProducer(t, "hotel-pms", b, serde)
	const callers, each = 4, 500
	type published struct {
		eventID string
		offset  int64
	}
	var mu sync.Mutex
	want := map[string]published{} // by correlation id
	var wg sync.WaitGroup
	for c := range callers {
		for i := range each {
			env := example(t, serde, "reservation.created")
			env.Metadata.CorrelationID = fmt.Sprintf("flow-%d-%d-%s", c, i, strings.Repeat("x", i%40))
			wg.Add(1)
			go p.PublishAsync(context.Background(), env, func(res streams.Result, err error) {
				defer wg.Done()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				want[env.Metadata.CorrelationID] = published{res.EventID, res.Offset}
				mu.Unlock()
			})
		}
	}
	wg.Wait()
	recs := consume(t, b, callers*each, cat.AuditTopic)
	for _, r := range recs {
		ar, err := streams.ParseAuditRecord(r.Value)
		if err != nil {
			t.Fatalf("audit record %q: %v", r.Value, err)
		}
		w, ok := want[ar.CorrelationID]
		if !ok || string(r.Key) != ar.CorrelationID || ar.EventID != w.eventID || ar.Offset != w.offset {
			t.Errorf("audit record under key %q: %s; published with its correlation id: %+v (%v)", r.Key, r.Value, w, ok)
		}
		delete(want, ar.CorrelationID)
	}
	if len(want) != 0 {
		t.Errorf("%d events without an audit record", len(want))
	}
}
