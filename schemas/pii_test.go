package schemas_test

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams/streamstest"
	"github.com/hotelbus/hotelbus/topics"
)

// piiTree copies the embedded schema tree; without marks it lacks schemas.PIIMarksFile, else that
// file is marks.
func piiTree(t *testing.T, marks *string) fstest.MapFS {
	t.Helper()
	tree := fstest.MapFS{}
	err := fs.WalkDir(schemas.Embedded(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == schemas.PIIMarksFile {
			return err
		}
		b, err := fs.ReadFile(schemas.Embedded(), p)
		tree[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if marks != nil {
		tree[schemas.PIIMarksFile] = &fstest.MapFile{Data: []byte(*marks)}
	}
	return tree
}

// piiField returns the field at a dotted path of a record, through ["null", T] unions.
func piiField(t *testing.T, rec *avro.RecordSchema, path string) *avro.Field {
	t.Helper()
	var s avro.Schema = rec
	var f *avro.Field
	for name := range strings.SplitSeq(path, ".") {
		if u, ok := s.(*avro.UnionSchema); ok {
			s = u.Types()[1]
		}
		if ref, ok := s.(*avro.RefSchema); ok {
			s = ref.Schema()
		}
		r, ok := s.(*avro.RecordSchema)
		if !ok {
			t.Fatalf("%s: %s is not a record", rec.FullName(), path)
		}
		f = nil
		for _, c := range r.Fields() {
			if c.Name() == name {
				f = c
			}
		}
		if f == nil {
			t.Fatalf("%s has no field %s", rec.FullName(), path)
		}
		s = f.Type()
	}
	return f
}

// TestPIIMarks: the user id of the envelope and the card token and last four digits are personal
// data in the loaded schemas, while the registered texts are the texts as published: a registry
// filled before the marks existed gives every version its id and has nothing to add.
func TestPIIMarks(t *testing.T) {
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		t.Fatal(err)
	}
	for et, paths := range map[string][]string{
		"billing.paid":                {"card.token", "card.last4"},
		"reservation.created":         {"guaranteeCard.token", "guaranteeCard.last4"},
		"reservation.updated":         {"guaranteeCard.token", "guaranteeCard.last4", "updatedBy"},
		"auth.user_created":           {"userId", "createdBy"},
		"checkin_checkout.checked_in": {"checkedInBy"},
	} {
		v, _ := set.Latest(et)
		for _, p := range paths {
			if pii, _ := piiField(t, v.Data, p).Prop("pii").(bool); !pii {
				t.Errorf("%s: data %s is not marked pii", v.File, p)
			}
			if pii, _ := piiField(t, v.Envelope, "data."+p).Prop("pii").(bool); !pii {
				t.Errorf("%s: envelope data.%s is not marked pii", v.File, p)
			}
		}
	}
	for _, sub := range set.Subjects {
		v := sub.Latest()
		if pii, _ := piiField(t, v.Envelope, "metadata.userId").Prop("pii").(bool); !pii {
			t.Errorf("%s: metadata.userId is not marked pii", v.File)
		}
	}

	published, err := schemas.Load(piiTree(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := topics.Load(topics.Embedded(), "test")
	if err != nil {
		t.Fatal(err)
	}
	topicOf := func(et string) (string, bool) { tp, ok := cat.TopicFor(et); return tp.Name, ok }
	ctx := context.Background()
	cl, _ := streamstest.Registry(t)
	states, err := schemas.Compare(ctx, cl, published, topicOf, schemas.DefaultLevel)
	if err == nil {
		err = schemas.Register(ctx, cl, states, schemas.DefaultLevel)
	}
	if err != nil {
		t.Fatal(err)
	}
	if states, err = schemas.Compare(ctx, cl, set, topicOf, schemas.DefaultLevel); err != nil {
		t.Fatal(err)
	}
	for _, st := range states {
		if len(st.Problems) > 0 || len(st.Missing) > 0 {
			t.Errorf("%s: problems %v, %d versions to register, want none against the published history", st.Subject, st.Problems, len(st.Missing))
		}
	}
	for i, sub := range set.Subjects {
		for j, v := range sub.Versions {
			if old := published.Subjects[i].Versions[j].Text; v.Text != old {
				t.Errorf("%s: the registered text changed:\n got %s\nwant %s", v.File, v.Text, old)
			}
			topic, _ := topicOf(v.EventType)
			if _, err := cl.LookupSchema(ctx, v.Subject(topic), sr.Schema{Schema: v.Text, Type: sr.TypeAvro}); err != nil {
				t.Errorf("%s: the registry does not find the text the serde looks up: %v", v.File, err)
			}
		}
	}
}

// TestPIIMarksRefused: a mark that would silently miss makes Load fail, naming the line.
func TestPIIMarksRefused(t *testing.T) {
	for marks, frag := range map[string]string{
		"events/billing.paid/v1/1.0.avsc card.nosuch":                  `:1: events/billing.paid/v1/1.0.avsc card.nosuch: no field "nosuch"`,
		"events/nosuch/v1/1.0.avsc card.token":                         "no such file",
		"events/auth.user_created/v1/1.0.avsc userName":                `already carries "pii"`,
		"events/billing.paid/v1/1.0.avsc balanceAfter.amount":          "reference to hotelbus.types.Money",
		"events/billing.paid/v1/1.0.avsc card[].token":                 "not an array",
		"envelope.avsc data.card.token":                                "marked in its event type's file",
		"# a comment\nenvelope.avsc":                                   `:2: want "<file> <field path>"`,
		"envelope.avsc metadata.userId\nenvelope.avsc metadata.userId": ":2: envelope.avsc metadata.userId: listed twice",
	} {
		_, err := schemas.Load(piiTree(t, &marks))
		if !errors.Is(err, schemas.ErrInvalid) || !strings.Contains(err.Error(), frag) {
			t.Errorf("marks %q: %v, want ErrInvalid containing %q", marks, err, frag)
		}
	}
}
