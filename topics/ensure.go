package topics

import (
	"context"
	"fmt"
	"slices"

	"github.com/twmb/franz-go/pkg/kadm"
)

// Ensure creates the catalog's topics that do not exist yet, with their partitions, replication
// factor and configs, and returns the names it created. Existing topics are left as they are; a
// topic that appears between listing and creating counts as existing. It returns once the
// cluster's metadata shows every topic it created with all its partitions (up to 30 s).
func Ensure(ctx context.Context, adm *kadm.Client, c *Catalog) ([]string, error) {
	existing, err := adm.ListTopics(ctx)
	if err != nil {
		return nil, fmt.Errorf("topics: listing topics: %w", err)
	}
	var created []string
	d := &Diff{}
	for _, t := range c.Topics {
		if existing.Has(t.Name) {
			continue
		}
		cr := creation(t)
		ok, err := create(ctx, adm, cr)
		if err != nil {
			return created, err
		}
		if ok {
			created = append(created, t.Name)
			d.Create = append(d.Create, cr)
		}
	}
	slices.Sort(created)
	return created, settle(ctx, adm, d)
}
