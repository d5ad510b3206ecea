package privacy_test

import (
	"errors"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/topics"
)

func embedded(t *testing.T) (*topics.Catalog, *schemas.Set) {
	t.Helper()
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		t.Fatal(err)
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	return cat, set
}

// TestResidualPinned: the pii values whose type cannot hold a ciphertext are exactly these (the
// package doc's decision): optional ones are published as null, the others stay clear; a new
// non-string pii field fails here until it is decided.
func TestResidualPinned(t *testing.T) {
	cat, set := embedded(t)
	s, err := privacy.LoadSubjects(topics.Embedded(), cat, set)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"auth.user_created 1.0 emails[].primary (boolean)",
		"auth.user_created 1.0 emails[].type (enum)",
		"checkin_checkout.checked_in 1.0 identityDocuments[].documentType (enum)",
		"customer.created 1.0 birthDate (int, published as null)",
		"customer.created 1.0 title (enum)",
		"customer.created 2.0 title (enum)",
		"customer.updated 1.0 birthDate (int, published as null)",
		"customer.updated 1.0 title (enum)",
		"customer.updated 2.0 title (enum)",
	}
	got := s.Residual(set)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("residual clear pii values:\n got %q\nwant %q", got, want)
	}
}

// TestSubjectsRefused: privacy.yaml is refused when a type with pii fields has no subject, a path
// is not a string field, or a type is not in the catalog; each error names the key.
func TestSubjectsRefused(t *testing.T) {
	cat, set := embedded(t)
	good := readEmbedded(t)
	for name, tc := range map[string]struct {
		edit func(string) string
		want string
	}{
		"missing type": {func(s string) string {
			return strings.Replace(s, "  billing.paid: [customerId, reservationId, billId]\n", "", 1)
		},
			"billing.paid 1.0 has pii fields but no subject"},
		"not a string": {func(s string) string {
			return strings.Replace(s, "customer.created: [customerId]", "customer.created: [birthDate]", 1)
		},
			`subjects.customer.created[0]: "birthDate" is not a string field`},
		"no such field": {func(s string) string {
			return strings.Replace(s, "customer.created: [customerId]", "customer.created: [guestId]", 1)
		},
			`"guestId" is not a string field`},
		"unknown type": {func(s string) string { return s + "  guest.teleported: [guestId]\n" },
			`subjects.guest.teleported: "guest.teleported" is not an event type`},
	} {
		t.Run(name, func(t *testing.T) {
			fsys := fstest.MapFS{topics.PrivacyFile: {Data: []byte(tc.edit(good))}}
			_, err := privacy.LoadSubjects(fsys, cat, set)
			if !errors.Is(err, privacy.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want ErrInvalid saying %q", err, tc.want)
			}
		})
	}
}

func readEmbedded(t *testing.T) string {
	t.Helper()
	b, err := fs.ReadFile(topics.Embedded(), topics.PrivacyFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
