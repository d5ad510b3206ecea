package streamstest

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"

	"github.com/hotelbus/hotelbus/topics"
)

// Catalog returns the test environment's catalog (topics.Load of the embedded files for "test")
// with every topic and group name prefixed by Name(t, "t"), so tests sharing a broker do not see
// each other's records, and creates its topics on b, deleting them when the test ends.
func Catalog(t testing.TB, b Backend) *topics.Catalog {
	t.Helper()
	return PrefixedCatalog(t, b, Name(t, "t")+".")
}

// PrefixedCatalog is Catalog with a given prefix, for tests that pass it to a command's --prefix.
func PrefixedCatalog(t testing.TB, b Backend, prefix string) *topics.Catalog {
	t.Helper()
	base, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatalf("streamstest: catalog: %v", err)
	}
	cat := base.WithPrefix(prefix)
	CreateTopics(t, b, cat)
	return cat
}

// RegisterSchemas registers every embedded schema version under cat's topics in the registry cl,
// at the default compatibility level, as `hotelbus schemas register` does, and returns the set.
func RegisterSchemas(t testing.TB, cl *sr.Client, cat *topics.Catalog) *schemas.Set {
	t.Helper()
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatalf("streamstest: schemas: %v", err)
	}
	ctx := context.Background()
	topicOf := func(et string) (string, bool) { tp, ok := cat.TopicFor(et); return tp.Name, ok }
	states, err := schemas.Compare(ctx, cl, set, topicOf, schemas.DefaultLevel)
	if err == nil {
		err = schemas.Register(ctx, cl, states, schemas.DefaultLevel)
	}
	if err != nil {
		t.Fatalf("streamstest: registering the schemas: %v", err)
	}
	return set
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
