package streamstest

import (
	"context"
	"testing"
	"time"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Writer returns a streams.Writer of system on b, closed when the test ends. Its publish audit is
// off (the audit topic of cat may not exist on b) unless opts turn it on.
func Writer(t testing.TB, b Backend, cat *topics.Catalog, system string, opts ...streams.ProducerOption) *streams.Writer {
	t.Helper()
	w, err := streams.NewWriter(system, cat, append([]streams.ProducerOption{streams.Brokers(b.Brokers...), streams.PublishAudit(false)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	})
	return w
}
