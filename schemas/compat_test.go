package schemas_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"
	"github.com/twmb/franz-go/pkg/sr"

	"github.com/hotelbus/hotelbus/schemas"
)

// Rule sources cited by the cases:
//
//	[spec]  Apache Avro specification, "Schema Resolution" (writer data read with a reader schema).
//	[java]  Apache Avro Java SchemaCompatibility.checkReaderWriterCompatibility, which Confluent
//	        Schema Registry runs for Avro (AvroSchema.isBackwardCompatible).
//	[cflt]  Confluent docs, "Schema Evolution and Compatibility", table "Compatibility types":
//	        BACKWARD = new schema reads data of the last version; FORWARD = last version reads data of
//	        the new schema; FULL = both; *_TRANSITIVE = against all previous versions; NONE = no check.

var compatAllLevels = []sr.CompatibilityLevel{
	sr.CompatNone,
	sr.CompatBackward, sr.CompatBackwardTransitive,
	sr.CompatForward, sr.CompatForwardTransitive,
	sr.CompatFull, sr.CompatFullTransitive,
}

// Level sets: a case lists the levels at which Confluent refuses the candidate.
var (
	compatRefuseBackward = []sr.CompatibilityLevel{sr.CompatBackward, sr.CompatBackwardTransitive, sr.CompatFull, sr.CompatFullTransitive}
	compatRefuseForward  = []sr.CompatibilityLevel{sr.CompatForward, sr.CompatForwardTransitive, sr.CompatFull, sr.CompatFullTransitive}
	compatRefuseBoth     = []sr.CompatibilityLevel{sr.CompatBackward, sr.CompatBackwardTransitive, sr.CompatForward, sr.CompatForwardTransitive, sr.CompatFull, sr.CompatFullTransitive}
	compatRefuseOnlyTr   = []sr.CompatibilityLevel{sr.CompatBackwardTransitive, sr.CompatForwardTransitive, sr.CompatFullTransitive}
)

// compatRecord returns a record hotelbus.reservation.v1.ReservationCreated with the given fields.
func compatRecord(fields ...string) string {
	return compatNamedRecord("hotelbus.reservation.v1", "ReservationCreated", "", fields...)
}

func compatNamedRecord(namespace, name, extra string, fields ...string) string {
	return fmt.Sprintf(`{"type":"record","name":%q,"namespace":%q,"doc":"A reservation was created."%s,"fields":[%s]}`,
		name, namespace, extra, strings.Join(fields, ","))
}

const (
	compatID         = `{"name":"reservationId","type":"string","doc":"Reservation id."}`
	compatStatusEnum = `{"type":"enum","name":"Status","doc":"Status.","symbols":[%s]%s}`
)

func compatStatus(symbols, enumDefault, fieldDefault string) string {
	def := ""
	if enumDefault != "" {
		def = fmt.Sprintf(`,"default":%q`, enumDefault)
	}
	fdef := ""
	if fieldDefault != "" {
		fdef = fmt.Sprintf(`,"default":%q`, fieldDefault)
	}
	return fmt.Sprintf(`{"name":"status","doc":"Status.","type":`+compatStatusEnum+`%s}`, symbols, def, fdef)
}

type compatCase struct {
	name string
	// why cites the rule that decides the case.
	why       string
	history   []string // oldest first
	candidate string
	// refuse lists the levels at which the registry refuses candidate; it accepts at all others.
	refuse []sr.CompatibilityLevel
	// errContains must appear in an error message wherever the candidate is refused.
	errContains string
	// oldest: errors are against history[0] rather than the latest schema.
	oldest bool
	// warnings are substrings of the expected warnings, one each, at every level.
	warnings []string
}

var compatCases = []compatCase{
	{
		name:      "field added with default",
		why:       "[spec] reader field absent from the writer takes its default; [cflt] FULL allows adding optional fields",
		history:   []string{compatRecord(compatID)},
		candidate: compatRecord(compatID, `{"name":"nights","type":"int","doc":"n","default":1}`),
	},
	{
		name:      "optional field added with null default",
		why:       `[spec] as above, the default of ["null", T] is null; hotelbus's own way to add a field`,
		history:   []string{compatRecord(compatID)},
		candidate: compatRecord(compatID, `{"name":"note","type":["null","string"],"doc":"n","default":null}`),
	},
	{
		name:        "field added without default",
		why:         "[java] READER_FIELD_MISSING_DEFAULT_VALUE when the new schema reads old data; the old reader ignores the extra field ([spec] writer fields absent from the reader are ignored)",
		history:     []string{compatRecord(compatID)},
		candidate:   compatRecord(compatID, `{"name":"loyaltyTier","type":"string","doc":"t"}`),
		refuse:      compatRefuseBackward,
		errContains: "loyaltyTier",
	},
	{
		name:      "field with default removed",
		why:       "[spec] the new reader ignores the old field; the old reader fills it from its default; [cflt] FULL allows deleting optional fields",
		history:   []string{compatRecord(compatID, `{"name":"note","type":["null","string"],"doc":"n","default":null}`)},
		candidate: compatRecord(compatID),
	},
	{
		name:        "field without default removed",
		why:         "[java] the old reader misses the field and has no default (READER_FIELD_MISSING_DEFAULT_VALUE); [cflt] BACKWARD allows deleting fields",
		history:     []string{compatRecord(compatID, `{"name":"guestName","type":"string","doc":"g"}`)},
		candidate:   compatRecord(compatID),
		refuse:      compatRefuseForward,
		errContains: "guestName",
	},
	{
		name:      "int promoted to long",
		why:       "[spec] int is promotable to long, float, double; long is not demoted to int",
		history:   []string{compatRecord(compatID, `{"name":"nights","type":"int","doc":"n"}`)},
		candidate: compatRecord(compatID, `{"name":"nights","type":"long","doc":"n"}`),
		refuse:    compatRefuseForward,
	},
	{
		name:      "long narrowed to int",
		why:       "[spec] a long writer cannot be read as int; the old long reader promotes the new int",
		history:   []string{compatRecord(compatID, `{"name":"nights","type":"long","doc":"n"}`)},
		candidate: compatRecord(compatID, `{"name":"nights","type":"int","doc":"n"}`),
		refuse:    compatRefuseBackward,
	},
	{
		name:      "int changed to string",
		why:       "[java] TYPE_MISMATCH both ways: no promotion between int and string",
		history:   []string{compatRecord(compatID, `{"name":"nights","type":"int","doc":"n"}`)},
		candidate: compatRecord(compatID, `{"name":"nights","type":"string","doc":"n"}`),
		refuse:    compatRefuseBoth,
	},
	{
		name:      "string changed to bytes",
		why:       "[spec] string is promotable to bytes and bytes to string",
		history:   []string{compatRecord(compatID, `{"name":"code","type":"string","doc":"c"}`)},
		candidate: compatRecord(compatID, `{"name":"code","type":"bytes","doc":"c"}`),
	},
	{
		name:      "array items promoted int to long",
		why:       "[spec] arrays resolve item by item: long reads int, int does not read long",
		history:   []string{compatRecord(compatID, `{"name":"nights","type":{"type":"array","items":"int"},"doc":"n"}`)},
		candidate: compatRecord(compatID, `{"name":"nights","type":{"type":"array","items":"long"},"doc":"n"}`),
		refuse:    compatRefuseForward,
	},
	{
		name:      "enum symbol added, enum has a default",
		why:       "[spec] (Avro 1.9+) a writer symbol unknown to the reader resolves to the reader enum's default; [java] checkReaderEnumContainsAllWriterEnumSymbols accepts when the reader enum has a default",
		history:   []string{compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED"`, "UNKNOWN", ""))},
		candidate: compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED","CANCELED"`, "UNKNOWN", "")),
	},
	{
		name:        "enum symbol added, no enum default",
		why:         "[java] MISSING_ENUM_SYMBOLS when the old reader lacks CANCELED and its enum has no default",
		history:     []string{compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED"`, "", ""))},
		candidate:   compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED","CANCELED"`, "", "")),
		refuse:      compatRefuseForward,
		errContains: "CANCELED",
	},
	{
		name:        "enum symbol added, only the field has a default",
		why:         "[spec] a field default is used only when the writer lacks the field; unknown symbols need the enum's own default",
		history:     []string{compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED"`, "", "UNKNOWN"))},
		candidate:   compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED","CANCELED"`, "", "UNKNOWN")),
		refuse:      compatRefuseForward,
		errContains: "CANCELED",
	},
	{
		name:        "enum symbol removed, no enum default",
		why:         "[java] MISSING_ENUM_SYMBOLS when the new reader lacks CANCELED; the old reader has every new symbol",
		history:     []string{compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED","CANCELED"`, "", ""))},
		candidate:   compatRecord(compatID, compatStatus(`"UNKNOWN","CONFIRMED"`, "", "")),
		refuse:      compatRefuseBackward,
		errContains: "CANCELED",
	},
	{
		name:      "union widened",
		why:       "[spec] each writer branch must resolve in the reader union: the old [null,string] reader has no branch for int",
		history:   []string{compatRecord(compatID, `{"name":"x","type":["null","string"],"doc":"x","default":null}`)},
		candidate: compatRecord(compatID, `{"name":"x","type":["null","string","int"],"doc":"x","default":null}`),
		refuse:    compatRefuseForward,
	},
	{
		name:      "union narrowed",
		why:       "[spec] the new [null,string] reader has no branch for the old writer's int",
		history:   []string{compatRecord(compatID, `{"name":"x","type":["null","string","int"],"doc":"x","default":null}`)},
		candidate: compatRecord(compatID, `{"name":"x","type":["null","string"],"doc":"x","default":null}`),
		refuse:    compatRefuseBackward,
	},
	{
		name:      "optional field made required",
		why:       "[spec] a writer union needs every branch readable: string cannot read the null branch; a reader union reads string",
		history:   []string{compatRecord(compatID, `{"name":"email","type":["null","string"],"doc":"e","default":null}`)},
		candidate: compatRecord(compatID, `{"name":"email","type":"string","doc":"e"}`),
		refuse:    compatRefuseBackward,
	},
	{
		name:      "required field made optional",
		why:       "[spec] the new [null,string] reader reads string; the old string reader cannot read null",
		history:   []string{compatRecord(compatID, `{"name":"email","type":"string","doc":"e"}`)},
		candidate: compatRecord(compatID, `{"name":"email","type":["null","string"],"doc":"e","default":null}`),
		refuse:    compatRefuseForward,
	},
	{
		name:      "nested record gains a field without default",
		why:       "[spec] records resolve recursively: the new Guest reader lacks a default for email",
		history:   []string{compatRecord(compatID, `{"name":"guest","doc":"g","type":{"type":"record","name":"Guest","doc":"g","fields":[{"name":"name","type":"string","doc":"n"}]}}`)},
		candidate: compatRecord(compatID, `{"name":"guest","doc":"g","type":{"type":"record","name":"Guest","doc":"g","fields":[{"name":"name","type":"string","doc":"n"},{"name":"email","type":"string","doc":"e"}]}}`),
		refuse:    compatRefuseBackward,
	},
	{
		name:      "fixed size changed",
		why:       "[java] FIXED_SIZE_MISMATCH both ways",
		history:   []string{compatRecord(compatID, `{"name":"h","doc":"h","type":{"type":"fixed","name":"Hash","size":16}}`)},
		candidate: compatRecord(compatID, `{"name":"h","doc":"h","type":{"type":"fixed","name":"Hash","size":32}}`),
		refuse:    compatRefuseBoth,
	},
	{
		name:      "namespace changed",
		why:       "[java] schemaNameEquals compares unqualified names (Avro 1.9+), so the registry accepts; generated classes move package: warning",
		history:   []string{compatRecord(compatID)},
		candidate: compatNamedRecord("hotelbus.booking.v1", "ReservationCreated", "", compatID),
		warnings:  []string{`moved from namespace "hotelbus.reservation.v1" to "hotelbus.booking.v1"`},
	},
	{
		name:      "record renamed with alias",
		why:       "[java] schemaNameEquals applies the reader's aliases only: the new reader names the old record in its aliases, the old reader has none",
		history:   []string{compatRecord(compatID)},
		candidate: compatNamedRecord("hotelbus.reservation.v1", "BookingCreated", `,"aliases":["ReservationCreated"]`, compatID),
		refuse:    compatRefuseForward,
		warnings:  []string{"renamed to hotelbus.reservation.v1.BookingCreated"},
	},
	{
		name:      "record renamed without alias",
		why:       "[java] NAME_MISMATCH both ways",
		history:   []string{compatRecord(compatID)},
		candidate: compatNamedRecord("hotelbus.reservation.v1", "BookingCreated", "", compatID),
		refuse:    compatRefuseBoth,
	},
	{
		name:        "field renamed with alias",
		why:         "[java] lookupWriterField applies the reader field's aliases: the new reader finds guestName; the old reader misses guestName and has no default",
		history:     []string{compatRecord(compatID, `{"name":"guestName","type":"string","doc":"g"}`)},
		candidate:   compatRecord(compatID, `{"name":"fullName","type":"string","doc":"g","aliases":["guestName"]}`),
		refuse:      compatRefuseForward,
		errContains: "guestName",
		warnings:    []string{"ReservationCreated.guestName renamed to fullName"},
	},
	{
		name:      "field removed and an identical one added (rename without alias)",
		why:       "[spec] both fields have defaults, so both directions resolve; the data of note is silently dropped: warning",
		history:   []string{compatRecord(compatID, `{"name":"note","type":["null","string"],"doc":"n","default":null}`)},
		candidate: compatRecord(compatID, `{"name":"comment","type":["null","string"],"doc":"n","default":null}`),
		warnings:  []string{"ReservationCreated.note removed and comment added"},
	},
	{
		name:      "doc change only",
		why:       "[spec] doc plays no part in resolution",
		history:   []string{compatRecord(compatID)},
		candidate: strings.Replace(compatRecord(strings.Replace(compatID, "Reservation id.", "The reservation's id.", 1)), "A reservation was created.", "Emitted when a reservation is created.", 1),
	},
	{
		name: "v3 compatible with v2 but not v1",
		why:  "[cflt] non-transitive levels compare with the last version only: v3 re-adds x as int with a default, which v2 (no x) accepts and v1 (x string) does not",
		history: []string{
			compatRecord(compatID, `{"name":"x","type":"string","doc":"x"}`),
			compatRecord(compatID),
		},
		candidate: compatRecord(compatID, `{"name":"x","type":"int","doc":"x","default":0}`),
		refuse:    compatRefuseOnlyTr,
		oldest:    true,
	},
	{
		name: "history versions differ only by a default (hamba memo divergence)",
		why:  "[java] memoizes per check by object identity: v1 (x without default) cannot read v3 (x removed) although v2 (x with default) can; hamba's fingerprint memo would merge v1 and v2",
		history: []string{
			compatRecord(compatID, `{"name":"x","type":"string","doc":"x"}`),
			compatRecord(compatID, `{"name":"x","type":"string","doc":"x","default":""}`),
		},
		candidate:   compatRecord(compatID),
		refuse:      []sr.CompatibilityLevel{sr.CompatForwardTransitive, sr.CompatFullTransitive},
		errContains: "x",
		oldest:      true,
	},
	{
		name:        "reader field matching two writer fields (hamba alias divergence)",
		why:         "[java] lookupWriterField throws when field a matches writer a by name and writer b by alias; Confluent reports the exception as incompatible; hamba takes the first match",
		history:     []string{compatRecord(compatID, `{"name":"a","type":"string","doc":"a"}`, `{"name":"b","type":"string","doc":"b","default":""}`)},
		candidate:   compatRecord(compatID, `{"name":"a","type":"string","doc":"a","aliases":["b"]}`),
		refuse:      compatRefuseBackward,
		errContains: "several fields",
	},
}

func compatParse(t *testing.T, s string) avro.Schema {
	t.Helper()
	sch, err := avro.ParseWithCache(s, "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parse %s: %v", s, err)
	}
	return sch
}

// compatDirections returns the directions a level checks.
func compatDirections(level sr.CompatibilityLevel) []string {
	switch level {
	case sr.CompatBackward, sr.CompatBackwardTransitive:
		return []string{schemas.DirectionBackward}
	case sr.CompatForward, sr.CompatForwardTransitive:
		return []string{schemas.DirectionForward}
	case sr.CompatFull, sr.CompatFullTransitive:
		return []string{schemas.DirectionBackward, schemas.DirectionForward}
	}
	return nil
}

func TestCompatibilityTable(t *testing.T) {
	for _, c := range compatCases {
		history := make([]avro.Schema, len(c.history))
		for i, h := range c.history {
			history[i] = compatParse(t, h)
		}
		candidate := compatParse(t, c.candidate)
		for _, level := range compatAllLevels {
			t.Run(level.String()+"/"+c.name, func(t *testing.T) {
				r := schemas.CheckCompatibility(level, candidate, history)
				want := !slices.Contains(c.refuse, level)
				if r.Compatible() != want || r.Level != level {
					t.Fatalf("%s: Compatible() = %v, want %v (level %v); rule: %s; errors: %v", level, r.Compatible(), want, r.Level, c.why, r.Errors)
				}
				against := len(history) - 1
				if c.oldest {
					against = 0
				}
				found := c.errContains == ""
				for _, f := range r.Errors {
					if !slices.Contains(compatDirections(level), f.Direction) || f.Against != against || f.Message == "" {
						t.Errorf("finding %+v: want direction in %v against history[%d]", f, compatDirections(level), against)
					}
					found = found || strings.Contains(f.Message, c.errContains)
				}
				if !want && !found {
					t.Errorf("no error mentions %q: %v", c.errContains, r.Errors)
				}
				if len(r.Warnings) != len(c.warnings) {
					t.Fatalf("warnings = %v, want %d matching %q", r.Warnings, len(c.warnings), c.warnings)
				}
				for i, w := range c.warnings {
					f := r.Warnings[i]
					if f.Direction != "" || f.Against != len(history)-1 || !strings.Contains(f.Message, w) {
						t.Errorf("warning %+v: want one against history[%d] containing %q", f, len(history)-1, w)
					}
				}
			})
		}
	}
}

// TestCompatibilityCaseCount keeps the table at 15 cases or more for each of the 7 levels.
func TestCompatibilityCaseCount(t *testing.T) {
	for _, level := range compatAllLevels {
		accepted, refused := 0, 0
		for _, c := range compatCases {
			if slices.Contains(c.refuse, level) {
				refused++
			} else {
				accepted++
			}
		}
		if accepted+refused < 15 {
			t.Errorf("%s: %d cases, want >= 15", level, accepted+refused)
		}
		if level != sr.CompatNone && (accepted == 0 || refused == 0) {
			t.Errorf("%s: %d accepted, %d refused: the table must exercise both verdicts", level, accepted, refused)
		}
	}
}

func TestCompatibilityEmptyHistory(t *testing.T) {
	s := compatParse(t, compatRecord(compatID))
	for _, level := range compatAllLevels {
		if r := schemas.CheckCompatibility(level, s, nil); !r.Compatible() || len(r.Warnings) != 0 {
			t.Errorf("%s: %+v, want compatible without warnings", level, r)
		}
	}
}

func TestCompatibilityUnknownLevel(t *testing.T) {
	s := compatParse(t, compatRecord(compatID))
	r := schemas.CheckCompatibility(sr.CompatibilityLevel(0), s, []avro.Schema{s})
	if r.Compatible() || len(r.Errors) != 1 || r.Errors[0].Against != -1 {
		t.Fatalf("unknown level: %+v, want one error against -1", r)
	}
	if got := r.Errors[0].String(); !strings.Contains(got, "unknown compatibility level") {
		t.Errorf("String() = %q", got)
	}
}

func TestCompatibilityFindingString(t *testing.T) {
	for _, tc := range []struct {
		f    schemas.Finding
		want string
	}{
		{schemas.Finding{Against: 2, Direction: schemas.DirectionBackward, Message: "m"}, "backward: the new schema cannot read data written with history[2]: m"},
		{schemas.Finding{Against: 0, Direction: schemas.DirectionForward, Message: "m"}, "forward: history[0] cannot read data written with the new schema: m"},
		{schemas.Finding{Against: 1, Message: "m"}, "warning (vs history[1]): m"},
	} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%+v.String() = %q, want %q", tc.f, got, tc.want)
		}
	}
}

// TestCompatibilityReusedHistory checks verdicts do not depend on the order or repetition of checks
// over schemas with equal canonical forms (hamba's memo is keyed by canonical fingerprints).
func TestCompatibilityReusedHistory(t *testing.T) {
	withDefault := compatParse(t, compatRecord(compatID, `{"name":"x","type":"string","doc":"x","default":""}`))
	without := compatParse(t, compatRecord(compatID, `{"name":"x","type":"string","doc":"x"}`))
	removed := compatParse(t, compatRecord(compatID))
	if r := schemas.CheckCompatibility(sr.CompatForward, removed, []avro.Schema{withDefault}); !r.Compatible() {
		t.Fatalf("x with default: %v", r.Errors)
	}
	if r := schemas.CheckCompatibility(sr.CompatForward, removed, []avro.Schema{without}); r.Compatible() {
		t.Fatal("x without default: compatible after a check of its default-only variant")
	}
}
