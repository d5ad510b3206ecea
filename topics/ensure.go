package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// Ensure creates the catalog's topics that do not exist yet, with their partitions, replication
// factor and configs, and returns the names it created. Existing topics are left as they are; a
// topic that appears between listing and creating counts as existing.
func Ensure(ctx context.Context, adm *kadm.Client, c *Catalog) ([]string, error) {
	existing, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("topics: listing topics: %w", err)
	}
	var created []string
	for _, t := range c.Topics {
		if existing.Has(t.Name) {
			continue
		}
		configs := map[string]*string{}
		for k, v := range t.Configs() {
			configs[k] = &v
		}
		resp, err := adm.CreateTopic(ctx, t.Partitions, t.ReplicationFactor, configs, t.Name)
		if err == nil {
			err = resp.Err
		}
		if errors.Is(err, kerr.TopicAlreadyExists) {
			continue // created concurrently, or not yet in the metadata we listed
		}
		if err != nil {
			return created, fmt.Errorf("topics: creating %s: %w", t.Name, err)
		}
		created = append(created, t.Name)
	}
	slices.Sort(created)
	return created, nil
}
