package streams

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"
)

// OffsetRange is the part [Start, End) of one partition.
type OffsetRange struct{ Start, End int64 }

// ReadRanges reads the given ranges of topic's partitions through a client made with opts (seed
// brokers and connection options) and calls fn with each record, in offset order within a
// partition (partitions interleave). It returns when every range is read, fn returns an error, or
// ctx ends. The tools that read a topic up to the end offsets taken when they started (dead
// letters, audit journeys) use it, so such a read always finishes. Empty ranges are skipped.
func ReadRanges(ctx context.Context, opts []kgo.Opt, topic string, ranges map[int32]OffsetRange, fn func(*kgo.Record) error) error {
	offsets := map[int32]kgo.Offset{}
	ends := map[int32]int64{}
	for p, r := range ranges {
		if r.Start < r.End {
			offsets[p] = kgo.NewOffset().At(r.Start)
			ends[p] = r.End
		}
	}
	if len(ends) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(append(append([]kgo.Opt(nil), opts...), kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		return fmt.Errorf("streams: kafka client: %w", err)
	}
	defer cl.Close()
	for len(ends) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("streams: reading %s: %w", topic, err)
		}
		var ferr error
		fs.EachError(func(t string, p int32, e error) {
			if ferr == nil {
				ferr = fmt.Errorf("streams: reading %s[%d]: %w", t, p, e)
			}
		})
		if ferr != nil {
			return ferr
		}
		var cbErr error
		fs.EachPartition(func(fp kgo.FetchTopicPartition) {
			end, ok := ends[fp.Partition]
			if !ok || cbErr != nil {
				return
			}
			for _, r := range fp.Records {
				if r.Offset >= end {
					break
				}
				if cbErr = fn(r); cbErr != nil {
					return
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset >= end-1 {
				delete(ends, fp.Partition)
				cl.PauseFetchPartitions(map[string][]int32{topic: {fp.Partition}})
			}
		})
		if cbErr != nil {
			return cbErr
		}
	}
	return nil
}
