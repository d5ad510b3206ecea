package streamstest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/topics"
)

// Catalog returns the test environment's catalog (topics.Load of the embedded files for "test")
// with every topic and group name prefixed by Name(t, "t"), so tests sharing a broker do not see
// each other's records, and creates its topics on b, deleting them when the test ends.
func Catalog(t testing.TB, b Backend) *topics.Catalog {
	t.Helper()
	base, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatalf("streamstest: catalog: %v", err)
	}
	cat := base.WithPrefix(Name(t, "t") + ".")
	CreateTopics(t, b, cat)
	return cat
}

// CreateTopics creates cat's topics on b (those missing) and deletes the ones it created when the
// test ends; it returns their names.
func CreateTopics(t testing.TB, b Backend, cat *topics.Catalog) []string {
	t.Helper()
	adm := kadm.NewClient(b.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	created, err := topics.Ensure(ctx, adm, cat)
	if err != nil {
		t.Fatalf("streamstest: creating the test topics: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = adm.DeleteTopics(ctx, created...)
	})
	return created
}
