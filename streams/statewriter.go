package streams

import (
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/topics"
)

// MaxStateKeyBytes bounds the key of a state record (see NewStateWriter).
const MaxStateKeyBytes = 512

// NewStateWriter returns a Writer for records of state rather than events, such as a local view's
// compacted changelog: each record goes to a topic outside the catalog (a catalog topic holds
// events: ErrNotOwner), its key is the caller's own (1 to MaxStateKeyBytes bytes, else
// ErrInvalidIdentifier; the tenantId grammar of an event's key does not apply), a nil Value is a
// tombstone, and it goes to rec.Partition as given (franz-go's ManualPartitioner), so the caller
// keeps a key on one partition. No publish audit records are written (they record events). The
// options and every other setting are NewWriter's.
func NewStateWriter(system string, cat *topics.Catalog, opts ...ProducerOption) (*Writer, error) {
	opts = append(opts, PublishAudit(false), KafkaOptions(kgo.RecordPartitioner(kgo.ManualPartitioner())))
	w, err := NewWriter(system, cat, opts...)
	if err != nil {
		return nil, err
	}
	w.state = true
	return w, nil
}

// mayWriteState refuses a state record for a catalog topic or with an empty or oversized key.
func mayWriteState(cat *topics.Catalog, rec *kgo.Record) error {
	if _, ok := cat.Topic(rec.Topic); ok {
		return fmt.Errorf("%w: %s is a catalog topic: its records are events, not state", ErrNotOwner, rec.Topic)
	}
	if n := len(rec.Key); n == 0 || n > MaxStateKeyBytes {
		return fmt.Errorf("%w: key: a state record's key must be 1 to %d bytes, got %d", ErrInvalidIdentifier, MaxStateKeyBytes, n)
	}
	return nil
}
