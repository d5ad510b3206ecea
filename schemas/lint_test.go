package schemas_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

const lintMoney = `{"type":"record","name":"Money","namespace":"hotelbus.types","doc":"Money.","fields":[
	{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2},"doc":"Amount."},
	{"name":"currency","type":"string","doc":"ISO 4217 code."}]}`

// lintRecord wraps fields in a documented top-level record hotelbus.test.v1.T.
func lintRecord(fields ...string) string {
	return `{"type":"record","name":"T","namespace":"hotelbus.test.v1","doc":"Test record.","fields":[` +
		strings.Join(fields, ",") + `]}`
}

func lintParse(t *testing.T, schema string) avro.Schema {
	t.Helper()
	s, err := avro.ParseBytesWithCache([]byte(schema), "", &avro.SchemaCache{})
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, schema)
	}
	return s
}

// lintGot renders problems as "path rule" for comparison.
func lintGot(ps []schemas.Problem) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Path+" "+p.Rule)
	}
	return out
}

func TestLint(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema string
		want   []string // "path rule", in schema order; none means clean
	}{
		{
			name: "clean record using every convention",
			schema: lintRecord(
				`{"name":"reservationId","type":"string","doc":"Id."}`,
				`{"name":"price","type":`+lintMoney+`,"doc":"Price."}`,
				`{"name":"fee","type":["null","hotelbus.types.Money"],"default":null,"doc":"Fee."}`,
				`{"name":"arrivalDate","type":{"type":"int","logicalType":"date"},"doc":"Arrival."}`,
				`{"name":"birthDate","type":["null","string"],"default":null,"doc":"Birth date, sealable.","pii":true}`,
				`{"name":"canceledAt","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null,"doc":"When."}`,
				`{"name":"status","type":{"type":"enum","name":"Status","doc":"Status.","symbols":["UNKNOWN","OK"],"default":"UNKNOWN"},"doc":"Status."}`,
				`{"name":"guest","type":{"type":"record","name":"Guest","doc":"Guest.","fields":[
					{"name":"givenName","type":"string","doc":"Name.","pii":true},
					{"name":"email","type":["null","string"],"default":null,"doc":"E-mail.","pii":true}]},"doc":"Guest."}`,
				`{"name":"lines","type":{"type":"array","items":{"type":"record","name":"Line","doc":"Line.","fields":[
					{"name":"gross","type":"hotelbus.types.Money","doc":"Gross."}]}},"doc":"Lines."}`,
				`{"name":"billIds","type":{"type":"array","items":"string"},"doc":"Bills."}`,
				`{"name":"attributes","type":{"type":"map","values":"string"},"doc":"Attributes."}`,
				`{"name":"points","type":"long","doc":"Points."}`,
			),
		},
		{
			name:   "explicit pii false is a reviewed exception",
			schema: lintRecord(`{"name":"propertyAddress","type":"string","doc":"The hotel's address.","pii":false}`),
		},
		{
			name:   "record without doc",
			schema: `{"type":"record","name":"T","namespace":"hotelbus.test.v1","fields":[{"name":"n","type":"int","doc":"N."}]}`,
			want:   []string{"hotelbus.test.v1.T doc"},
		},
		{
			name: "field, nested record and enum without doc",
			schema: lintRecord(
				`{"name":"n","type":"int"}`,
				`{"name":"inner","type":{"type":"record","name":"Inner","fields":[{"name":"m","type":"int"}]},"doc":"Inner."}`,
				`{"name":"kind","type":{"type":"enum","name":"Kind","symbols":["UNKNOWN"],"default":"UNKNOWN"},"doc":"Kind."}`,
			),
			want: []string{"n doc", "inner doc", "inner.m doc", "kind doc"},
		},
		{
			name: "float and double",
			schema: lintRecord(
				`{"name":"rate","type":"float","doc":"Rate."}`,
				`{"name":"rates","type":{"type":"array","items":"double"},"doc":"Rates."}`,
				`{"name":"scores","type":{"type":"map","values":"double"},"doc":"Scores."}`,
			),
			want: []string{"rate float", "rates[] float", "scores{} float"},
		},
		{
			name: "decimal outside Money",
			schema: lintRecord(
				`{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2},"doc":"Amount."}`,
				`{"name":"fixedAmount","type":{"type":"fixed","name":"F","size":8,"logicalType":"decimal","precision":10,"scale":2},"doc":"Amount."}`,
			),
			want: []string{"amount decimal", "fixedAmount decimal", "fixedAmount type"},
		},
		{
			name: "types the platform does not map",
			schema: lintRecord(
				`{"name":"ref","type":{"type":"string","logicalType":"uuid"},"doc":"Reference."}`,
				`{"name":"duration","type":{"type":"int","logicalType":"time-millis"},"doc":"Duration."}`,
				`{"name":"photo","type":"bytes","doc":"Photo."}`,
				`{"name":"hash","type":["null",{"type":"fixed","name":"H","size":16}],"default":null,"doc":"Hash."}`,
			),
			want: []string{"ref type", "duration type", "photo type", "hash type"},
		},
		{
			name: "Money with the wrong scale, reported once however often it is used",
			schema: lintRecord(
				`{"name":"price","type":`+strings.Replace(lintMoney, `"scale":2`, `"scale":4`, 1)+`,"doc":"Price."}`,
				`{"name":"total","type":"hotelbus.types.Money","doc":"Total."}`,
			),
			want: []string{"price money"},
		},
		{
			name: "Money without currency",
			schema: lintRecord(`{"name":"price","type":{"type":"record","name":"Money","namespace":"hotelbus.types","doc":"Money.","fields":[
				{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":18,"scale":2},"doc":"Amount."}]},"doc":"Price."}`),
			want: []string{"price money"},
		},
		{
			name:   "a local Money record",
			schema: lintRecord(`{"name":"price","type":` + strings.Replace(lintMoney, `"hotelbus.types"`, `"hotelbus.test.v1"`, 1) + `,"doc":"Price."}`),
			want:   []string{"price money"},
		},
		{
			name:   "enum without default",
			schema: lintRecord(`{"name":"status","type":{"type":"enum","name":"S","doc":"S.","symbols":["UNKNOWN","OK"]},"doc":"Status."}`),
			want:   []string{"status enum"},
		},
		{
			name: "unions other than [null, T] with default null",
			schema: lintRecord(
				`{"name":"a","type":["string","null"],"default":"x","doc":"A."}`,
				`{"name":"b","type":["null","string","int"],"default":null,"doc":"B."}`,
				`{"name":"c","type":["null","string"],"doc":"C."}`,
				`{"name":"d","type":["string","int"],"default":"x","doc":"D."}`,
				`{"name":"e","type":{"type":"array","items":["null","string"]},"doc":"E."}`,
			),
			want: []string{"a union", "b union", "c union", "d union", "e[] union"},
		},
		{
			name: "dates",
			schema: lintRecord(
				`{"name":"arrivalDate","type":"string","doc":"Arrival."}`,
				`{"name":"departureDate","type":["null",{"type":"long","logicalType":"timestamp-millis"}],"default":null,"doc":"Departure."}`,
				`{"name":"birthDate","type":{"type":"long","logicalType":"date"},"doc":"Birth date.","pii":true}`,
			),
			want: []string{"arrivalDate date", "departureDate date", "birthDate date", "birthDate logical"},
		},
		{
			name: "timestamps",
			schema: lintRecord(
				`{"name":"createdAt","type":"long","doc":"Created."}`,
				`{"name":"pickupTime","type":"string","doc":"Pickup."}`,
				`{"name":"timestamp","type":{"type":"int","logicalType":"date"},"doc":"When."}`,
				`{"name":"updatedAt","type":{"type":"long","logicalType":"timestamp-micros"},"doc":"Updated."}`,
				`{"name":"localAt","type":{"type":"long","logicalType":"local-timestamp-millis"},"doc":"Local."}`,
			),
			want: []string{"createdAt timestamp", "pickupTime timestamp", "timestamp timestamp", "updatedAt timestamp", "localAt timestamp"},
		},
		{
			name: "ids are strings",
			schema: lintRecord(
				`{"name":"customerId","type":"long","doc":"Customer."}`,
				`{"name":"id","type":["null","int"],"default":null,"doc":"Id."}`,
				`{"name":"roomIds","type":{"type":"array","items":"int"},"doc":"Rooms."}`,
				`{"name":"billIds","type":"string","doc":"Bills."}`,
			),
			want: []string{"customerId id", "id id", "roomIds id", "billIds id"},
		},
		{
			name: "personal data without pii",
			schema: lintRecord(
				`{"name":"email","type":["null","string"],"default":null,"doc":"E-mail."}`,
				`{"name":"guestPhone","type":"string","doc":"Phone."}`,
				`{"name":"specialRequests","type":"string","doc":"Requests.","pii":"yes"}`,
				`{"name":"guest","type":{"type":"record","name":"G","doc":"G.","fields":[{"name":"surname","type":"string","doc":"Surname."}]},"doc":"Guest.","pii":true}`,
			),
			want: []string{"email pii", "guestPhone pii", "specialRequests pii", "guest.surname pii"},
		},
		{
			name: "logical types Avro ignores",
			schema: lintRecord(
				`{"name":"code","type":{"type":"string","logicalType":"country-code"},"doc":"Code."}`,
				`{"name":"blob","type":{"type":"bytes","logicalType":"decimal","precision":0,"scale":0},"doc":"Blob."}`,
			),
			want: []string{"code logical", "blob type", "blob logical"},
		},
		{
			name: "named types are linted once, at first use",
			schema: lintRecord(
				`{"name":"a","type":{"type":"record","name":"R","fields":[{"name":"x","type":"float","doc":"X."}]},"doc":"A."}`,
				`{"name":"b","type":"R","doc":"B."}`,
				`{"name":"c","type":{"type":"array","items":"R"},"doc":"C."}`,
			),
			want: []string{"a doc", "a.x float"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := lintGot(schemas.Lint(lintParse(t, tc.schema)))
			if !slices.Equal(got, tc.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestLintEnvelopePaths(t *testing.T) {
	data := lintRecord(`{"name":"guest","type":{"type":"record","name":"G","doc":"G.","fields":[
		{"name":"email","type":"string","doc":"E-mail."}]},"doc":"Guest."}`)
	env := `{"type":"record","name":"TEvent","namespace":"hotelbus.test.v1","fields":[
		{"name":"eventId","type":"string","doc":"Id."},
		{"name":"timestamp","type":{"type":"long","logicalType":"timestamp-millis"},"doc":"When."},
		{"name":"data","type":` + data + `,"doc":"Payload."}]}`
	got := schemas.Lint(lintParse(t, env))
	want := []schemas.Problem{
		{Path: "hotelbus.test.v1.TEvent", Rule: "doc"},
		{Path: "data.guest.email", Rule: "pii"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want paths and rules %v", got, want)
	}
	for i := range want {
		if got[i].Path != want[i].Path || got[i].Rule != want[i].Rule || got[i].Message == "" {
			t.Errorf("problem %d = %+v, want path %q rule %q and a message", i, got[i], want[i].Path, want[i].Rule)
		}
	}
}

func TestLintEnumDefaultMustBeASymbol(t *testing.T) {
	// Lint cannot see this case: the parser refuses the schema, which is what keeps it out.
	s := lintRecord(`{"name":"status","type":{"type":"enum","name":"S","doc":"S.","symbols":["UNKNOWN","OK"],"default":"MISSING"},"doc":"Status."}`)
	if _, err := avro.ParseBytesWithCache([]byte(s), "", &avro.SchemaCache{}); err == nil {
		t.Fatal("an enum default that is not a symbol parsed")
	}
}

func TestLintProblemString(t *testing.T) {
	p := schemas.Problem{Path: "data.primaryGuest.email", Rule: "pii", Message: `personal-data field must carry "pii": true`}
	want := `data.primaryGuest.email: pii: personal-data field must carry "pii": true`
	if got := p.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestIsDateString: a field named date or *Date typed string (or ["null", "string"]) holds a date
// as a string; an Avro date, another name or another type does not.
func TestIsDateString(t *testing.T) {
	rec := avro.MustParse(`{"type":"record","name":"R","fields":[
		{"name":"birthDate","type":["null","string"],"default":null},
		{"name":"date","type":"string"},
		{"name":"arrivalDate","type":{"type":"int","logicalType":"date"}},
		{"name":"update","type":"string"},
		{"name":"Date","type":"string"},
		{"name":"dueDates","type":{"type":"array","items":"string"}},
		{"name":"expiryDate","type":["null","long"],"default":null}]}`).(*avro.RecordSchema)
	want := map[string]bool{"birthDate": true, "date": true}
	for _, f := range rec.Fields() {
		if got := schemas.IsDateString(f); got != want[f.Name()] {
			t.Errorf("%s: %v, want %v", f.Name(), got, want[f.Name()])
		}
	}
}
