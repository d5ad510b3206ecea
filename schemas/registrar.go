package schemas

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"
)

// DefaultLevel is the compatibility level hotelbus sets on its subjects: new fields are optional,
// removal goes through deprecation, and every version can read and be read by every other.
const DefaultLevel = sr.CompatFullTransitive

// ErrIncompatible is wrapped by Check and Register errors for a schema that breaks its subject's
// compatibility level; the message names the subject, the field and the rule.
var ErrIncompatible = errors.New("schemas: incompatible schema")

// ErrHistory is wrapped when the registry holds a version of a subject that the schema tree does not
// (every published version must be kept in schemas/), or holds them in another order.
var ErrHistory = errors.New("schemas: registry history differs from schemas/")

// TopicOf returns the topic an event type's subjects live on.
type TopicOf func(eventType string) (string, bool)

// SubjectState compares one subject in the schema tree with the registry.
type SubjectState struct {
	Subject   string
	EventType string
	Major     int
	// Level is the level the subject should have; CurrentLevel what the registry reports for it
	// ("" when the subject has no level of its own).
	Level, CurrentLevel string
	// Registered counts the local versions (oldest first) the registry already holds; Missing are
	// the local versions still to register, in order.
	Registered int
	Missing    []*Version
	// Problems make the subject unregistrable as it is: history differences, incompatibility.
	Problems []error
	// Warnings never block (see CheckCompatibility).
	Warnings []string
}

// CheckLocal lints every version and checks each version against the ones before it at level.
// It returns one error per problem, each naming the file.
func CheckLocal(set *Set, level sr.CompatibilityLevel) (problems []error, warnings []string) {
	for _, sub := range set.Subjects {
		for i, v := range sub.Versions {
			for _, p := range Lint(v.Data) {
				problems = append(problems, fmt.Errorf("%s: %s", v.File, p))
			}
			if i == 0 {
				continue
			}
			errs, warns := compare(level, v, history(sub.Versions[:i]), subjectLabel(sub, ""))
			problems = append(problems, errs...)
			warnings = append(warnings, warns...)
		}
	}
	return problems, warnings
}

func history(vs []*Version) []avro.Schema {
	out := make([]avro.Schema, len(vs))
	for i, v := range vs {
		out[i] = v.Envelope
	}
	return out
}

func subjectLabel(sub *Subject, subject string) string {
	if subject != "" {
		return "subject " + subject
	}
	return fmt.Sprintf("%s v%d", sub.EventType, sub.Major)
}

// compare checks v against earlier schemas and phrases every finding with subject, version and rule.
func compare(level sr.CompatibilityLevel, v *Version, earlier []avro.Schema, label string) (errs []error, warns []string) {
	r := CheckCompatibility(level, v.Envelope, earlier)
	name := func(i int) string { return fmt.Sprintf("version %d.%d", v.Major, i) }
	for _, f := range r.Errors {
		errs = append(errs, fmt.Errorf("%w: %s: version %s (%s) breaks %s: %s", ErrIncompatible, label, v, v.File, level, f.Describe(name)))
	}
	for _, f := range r.Warnings {
		warns = append(warns, fmt.Sprintf("%s: version %s (%s): %s", label, v, v.File, f.Describe(name)))
	}
	return errs, warns
}

// Compare reads the registry's state of every subject in set. It changes nothing.
func Compare(ctx context.Context, cl *sr.Client, set *Set, topicOf TopicOf, level sr.CompatibilityLevel) ([]SubjectState, error) {
	var out []SubjectState
	for _, sub := range set.Subjects {
		topic, ok := topicOf(sub.EventType)
		if !ok {
			return nil, fmt.Errorf("schemas: %s has schemas but no topic in the catalog", sub.EventType)
		}
		st := SubjectState{Subject: sub.Latest().Subject(topic), EventType: sub.EventType, Major: sub.Major, Level: level.String()}
		remote, err := cl.Schemas(ctx, st.Subject)
		if err != nil && !notFound(err) {
			return nil, fmt.Errorf("schemas: reading %s from the registry: %w", st.Subject, err)
		}
		if res := cl.Compatibility(ctx, st.Subject); len(res) == 1 && res[0].Err == nil {
			st.CurrentLevel = res[0].Level.String()
		}
		var remoteSchemas []avro.Schema
		for i, r := range remote {
			rs, err := avro.ParseWithCache(r.Schema.Schema, "", &avro.SchemaCache{})
			if err != nil {
				st.Problems = append(st.Problems, fmt.Errorf("%w: subject %s version %d does not parse: %v", ErrHistory, st.Subject, r.Version, err))
				continue
			}
			remoteSchemas = append(remoteSchemas, rs)
			switch {
			case i >= len(sub.Versions):
				st.Problems = append(st.Problems, fmt.Errorf("%w: subject %s has registry version %d (id %d) but schemas/ has only %d version(s) of %s v%d: add the missing file, every published version is kept",
					ErrHistory, st.Subject, r.Version, r.ID, len(sub.Versions), sub.EventType, sub.Major))
			case rs.Fingerprint() != sub.Versions[i].Envelope.Fingerprint():
				st.Problems = append(st.Problems, fmt.Errorf("%w: subject %s registry version %d (id %d) is not %s: a published version was edited or removed",
					ErrHistory, st.Subject, r.Version, r.ID, sub.Versions[i].File))
			default:
				st.Registered++
			}
		}
		if len(st.Problems) == 0 {
			st.Missing = sub.Versions[st.Registered:]
			earlier := remoteSchemas
			for _, v := range st.Missing {
				errs, warns := compare(level, v, earlier, "subject "+st.Subject)
				st.Problems = append(st.Problems, errs...)
				st.Warnings = append(st.Warnings, warns...)
				earlier = append(earlier, v.Envelope)
			}
		}
		out = append(out, st)
	}
	return out, nil
}

// Register sets each subject's level and registers its missing versions in order, after Compare
// found no problem in any subject: it registers nothing at all when one subject is refused. The
// registry's own compatibility check still applies.
func Register(ctx context.Context, cl *sr.Client, states []SubjectState, level sr.CompatibilityLevel) error {
	var refused []error
	for _, st := range states {
		refused = append(refused, st.Problems...)
	}
	if len(refused) > 0 {
		return errors.Join(refused...)
	}
	for _, st := range states {
		if st.CurrentLevel != level.String() {
			res := cl.SetCompatibility(ctx, sr.SetCompatibility{Level: level}, st.Subject)
			if len(res) == 1 && res[0].Err != nil {
				return fmt.Errorf("schemas: setting %s to %s: %w", st.Subject, level, res[0].Err)
			}
		}
		for _, v := range st.Missing {
			if _, err := cl.CreateSchema(ctx, st.Subject, sr.Schema{Schema: v.Text, Type: sr.TypeAvro}); err != nil {
				var re *sr.ResponseError
				if errors.As(err, &re) && re.StatusCode == http.StatusConflict {
					return fmt.Errorf("%w: subject %s refused version %s (%s): %s", ErrIncompatible, st.Subject, v, v.File, re.Message)
				}
				return fmt.Errorf("schemas: registering %s version %s: %w", st.Subject, v, err)
			}
		}
	}
	return nil
}

func notFound(err error) bool {
	var re *sr.ResponseError
	return errors.As(err, &re) && (re.StatusCode == http.StatusNotFound || strings.HasPrefix(fmt.Sprint(re.ErrorCode), "404"))
}
