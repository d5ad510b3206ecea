package privacy

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
)

// keyTopicSettings are what the key topic must keep: a key topic that deletes by time or size
// destroys data keys nobody erased, and with them their subjects' events.
var keyTopicSettings = map[string]string{"cleanup.policy": "compact", "retention.ms": "-1", "retention.bytes": "-1"}

// KeyTopicIssues describes topic on the cluster and returns each setting that differs from
// cleanup.policy=compact, retention.ms=-1 and retention.bytes=-1 ("retention.ms=604800000, want
// -1"), sorted by name; none when it is right. An error means it could not be described (a missing
// topic included).
func KeyTopicIssues(ctx context.Context, adm *kadm.Client, topic string) ([]string, error) {
	rcs, err := adm.DescribeTopicConfigs(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("privacy: describing the key topic %s: %w", topic, err)
	}
	rc, err := rcs.On(topic, nil)
	if err == nil {
		err = rc.Err
	}
	if err != nil {
		return nil, fmt.Errorf("privacy: describing the key topic %s: %w", topic, err)
	}
	issues := []string{}
	for _, c := range rc.Configs {
		if w, ok := keyTopicSettings[c.Key]; ok && c.Value != nil && *c.Value != w {
			issues = append(issues, fmt.Sprintf("%s=%s, want %s", c.Key, *c.Value, w))
		}
	}
	slices.Sort(issues)
	return issues, nil
}
