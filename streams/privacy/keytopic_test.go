package privacy_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/streamstest"
)

// TestKeyTopicIssues: a compacted key topic kept forever has no issue; one that deletes by time
// names each wrong setting; a missing one is an error.
func TestKeyTopicIssues(t *testing.T) {
	for _, b := range streamstest.Backends(t) {
		t.Run(b.Name, func(t *testing.T) {
			ctx := context.Background()
			adm := kadm.NewClient(b.Client(t))
			good, bad := streamstest.Name(t, "keys-good"), streamstest.Name(t, "keys-bad")
			str := func(s string) *string { return &s }
			for topic, cfg := range map[string]map[string]*string{
				good: {"cleanup.policy": str("compact"), "retention.ms": str("-1")},
				bad:  {"cleanup.policy": str("delete"), "retention.ms": str("604800000")},
			} {
				if _, err := adm.CreateTopic(ctx, 1, 1, cfg, topic); err != nil {
					t.Fatal(err)
				}
			}
			// A topic just created may be unknown to a broker for a moment (UNKNOWN_TOPIC_OR_PARTITION).
			streamstest.Eventually(t, time.Minute, "the new topics in the metadata", func() bool {
				td, err := adm.ListTopics(ctx, good, bad)
				return err == nil && td.Has(good) && td.Has(bad) && td[good].Err == nil && td[bad].Err == nil
			})
			if issues, err := privacy.KeyTopicIssues(ctx, adm, good); err != nil || len(issues) != 0 {
				t.Errorf("compacted, kept forever: %v %v", issues, err)
			}
			want := []string{"cleanup.policy=delete, want compact", "retention.ms=604800000, want -1"}
			if issues, err := privacy.KeyTopicIssues(ctx, adm, bad); err != nil || !slices.Equal(issues, want) {
				t.Errorf("deleting by time: %q %v, want %q", issues, err, want)
			}
			if _, err := privacy.KeyTopicIssues(ctx, adm, streamstest.Name(t, "keys-missing")); err == nil {
				t.Error("a missing key topic: no error")
			}
		})
	}
}
