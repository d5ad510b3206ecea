package schemas

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"github.com/hamba/avro/v2"
)

// Problem is one violation of the hotelbus schema conventions, found by Lint.
type Problem struct {
	// Path is the dotted field path from the linted record ("primaryGuest.email"; "lines[]" is an
	// array's items, "tags{}" a map's values), or the record's full name for the record itself.
	Path string
	// Rule names the convention broken; see Lint.
	Rule    string
	Message string
}

// String returns "path: rule: message".
func (p Problem) String() string { return p.Path + ": " + p.Rule + ": " + p.Message }

// MoneyFullName is the one record allowed to carry a decimal.
const MoneyFullName = "hotelbus.types.Money"

// lintPIINames are field names that denote personal data. A field whose name equals one of them, or
// ends with one in camel case (guestEmail, billingAddress, mobilePhone), must carry "pii": true; an
// explicit "pii": false records a reviewed exception. Matching is by name only: free-text fields
// with other names (specialRequests is listed, but not every note) still need a human to mark them.
// userId is a person's account; token and last4 are a payment card's vault token and last digits.
var lintPIINames = []string{
	"givenName", "familyName", "surname", "firstName", "lastName", "middleName", "fullName",
	"displayName", "email", "emails", "emailAddress", "phone", "phones", "phoneNumber",
	"phoneNumbers", "address", "addresses", "birthDate", "dateOfBirth", "nationality", "userName",
	"passportNumber", "documentNumber", "specialRequests", "notes", "comment",
	"userId", "token", "last4",
}

// Lint checks a parsed schema (a data record, or a data record composed into the envelope) against
// the hotelbus conventions and returns every violation, in schema order; nil means clean. Each named
// type is checked once, where it is first defined. Rules:
//
//	doc        every record, enum and field has a non-empty "doc"
//	float      no float or double anywhere
//	decimal    a decimal appears only as hotelbus.types.Money.amount
//	money      a record named Money is hotelbus.types.Money with exactly amount (bytes decimal,
//	           precision 18, scale 2) and currency (string)
//	enum       every enum has a default symbol (the parser already rejects a default that is not a symbol)
//	union      the only union is a field typed ["null", T] with "default": null
//	date       a field named *Date (or date) is {"type":"int","logicalType":"date"}, or, personal
//	           data only, a string (IsDateString: YYYY-MM-DD, checked by the SDK when it publishes)
//	timestamp  a field named *At, *Time, *Timestamp (or timestamp) is {"type":"long","logicalType":
//	           "timestamp-millis"}; no other timestamp logical type is used
//	id         a field named id or *Id is a string; one named *Ids is an array of strings
//	pii        a field named like personal data (lintPIINames) carries "pii": true (or an explicit false);
//	           "pii", where present, is a boolean
//	logical    no logicalType that Avro ignores (unknown, or on the wrong base type or parameters)
//	type       only types the platform maps (LeafTypes): no fixed, no plain bytes, no logical type
//	           other than decimal, date and timestamp-millis
func Lint(s avro.Schema) []Problem {
	l := &linter{seen: map[string]bool{}}
	if n, ok := s.(avro.NamedSchema); ok {
		l.root = n.FullName()
	}
	l.walk("", s)
	return l.problems
}

type linter struct {
	root     string
	seen     map[string]bool
	problems []Problem
}

func (l *linter) report(path, rule, msg string) {
	if path == "" {
		path = l.root
	}
	l.problems = append(l.problems, Problem{Path: path, Rule: rule, Message: msg})
}

// first reports whether a named type is met for the first time.
func (l *linter) first(n avro.NamedSchema) bool {
	if l.seen[n.FullName()] {
		return false
	}
	l.seen[n.FullName()] = true
	return true
}

func (l *linter) walk(path string, s avro.Schema) {
	switch t := s.(type) {
	case *avro.RefSchema:
		l.walk(path, t.Schema())
	case *avro.RecordSchema:
		if !l.first(t) {
			return
		}
		if t.Doc() == "" {
			l.report(path, "doc", "record "+t.FullName()+" has no doc")
		}
		if t.Name() == "Money" {
			l.money(path, t)
			return
		}
		for _, f := range t.Fields() {
			l.field(lintJoin(path, f.Name()), f)
		}
	case *avro.EnumSchema:
		if !l.first(t) {
			return
		}
		if t.Doc() == "" {
			l.report(path, "doc", "enum "+t.FullName()+" has no doc")
		}
		if !t.HasDefault() {
			l.report(path, "enum", "enum "+t.FullName()+` has no "default" symbol (usually UNKNOWN), so adding a symbol would break readers`)
		}
	case *avro.ArraySchema:
		l.walk(path+"[]", t.Items())
	case *avro.MapSchema:
		l.walk(path+"{}", t.Values())
	case *avro.UnionSchema:
		l.report(path, "union", `a union may only be a field's type, as ["null", T] with "default": null`)
		for _, b := range t.Types() {
			l.walk(path, b)
		}
	case *avro.FixedSchema:
		if !l.first(t) {
			return
		}
		if t.Logical() != nil && t.Logical().Type() == avro.Decimal {
			l.report(path, "decimal", "decimals appear only as "+MoneyFullName+".amount")
		}
		l.report(path, "type", "fixed is not a type the platform maps (schemas.LeafTypes)")
		l.ignoredLogical(path, t.Prop("logicalType"))
	case *avro.PrimitiveSchema:
		l.primitive(path, t)
	}
}

func (l *linter) primitive(path string, p *avro.PrimitiveSchema) {
	if p.Type() == avro.Float || p.Type() == avro.Double {
		l.report(path, "float", string(p.Type())+" is inexact: use "+MoneyFullName+" for money and int or long otherwise")
	}
	lg := p.Logical()
	if lg != nil {
		switch lg.Type() {
		case avro.Decimal:
			l.report(path, "decimal", "decimals appear only as "+MoneyFullName+".amount")
		case avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
			l.report(path, "timestamp", "instants use timestamp-millis, not "+string(lg.Type()))
			return
		}
	}
	if !IsLeafType(p) {
		what := string(p.Type())
		if lg != nil {
			what = string(p.Type()) + " with logicalType " + string(lg.Type())
		}
		l.report(path, "type", what+" is not a type the platform maps (schemas.LeafTypes)")
	}
	l.ignoredLogical(path, p.Prop("logicalType"))
}

// ignoredLogical reports a logicalType attribute the parser left as a plain property: Avro ignores
// a logical type that is unknown or does not fit its base type, so the field silently loses it.
func (l *linter) ignoredLogical(path string, lt any) {
	if lt != nil {
		l.report(path, "logical", "logicalType "+lintQuote(lt)+" is ignored by Avro here (unknown, wrong base type or bad parameters)")
	}
}

func (l *linter) field(path string, f *avro.Field) {
	if f.Doc() == "" {
		l.report(path, "doc", "field has no doc")
	}
	l.pii(path, f)
	typ := f.Type()
	if u, ok := typ.(*avro.UnionSchema); ok {
		ts := u.Types()
		if len(ts) != 2 || ts[0].Type() != avro.Null || ts[1].Type() == avro.Null {
			l.report(path, "union", `the only union allowed is ["null", T]`)
			for _, b := range ts {
				l.walk(path, b)
			}
			return
		}
		if !f.HasDefault() || f.Default() != nil {
			l.report(path, "union", `an optional field needs "default": null`)
		}
		typ = ts[1]
	}
	l.named(path, f.Name(), typ, IsPII(f))
	l.walk(path, typ)
}

// IsDateString reports whether f holds a calendar date as a string: a field named date or *Date
// whose type, or the non-null branch of its ["null", T] union, is string. The date rule allows that
// for personal data only, so that it can be sealed (streams/privacy seals strings). Its values are
// ISO 8601 calendar dates, YYYY-MM-DD (time.DateOnly): the SDK refuses any other text when it
// publishes, and the contract's JSON Schema says "format": "date".
func IsDateString(f *avro.Field) bool {
	if name := f.Name(); name != "date" && !lintCamelSuffix(name, "Date") {
		return false
	}
	t := f.Type()
	if u, ok := t.(*avro.UnionSchema); ok && len(u.Types()) == 2 && u.Nullable() {
		for _, b := range u.Types() {
			if b.Type() != avro.Null {
				t = b
			}
		}
	}
	return t.Type() == avro.String
}

// named applies the rules that tie a field's name to its (non-null) type. A pii date may also be a
// string (ISO 8601, YYYY-MM-DD): guest-data protection seals only strings (streams/privacy).
func (l *linter) named(path, name string, typ avro.Schema, pii bool) {
	switch {
	case name == "date" || lintCamelSuffix(name, "Date"):
		if !lintIsLogical(typ, avro.Int, avro.Date) && !(pii && typ.Type() == avro.String) {
			l.report(path, "date", `a calendar date is {"type":"int","logicalType":"date"} (a pii date may be a string, so that it can be sealed)`)
		}
	case name == "timestamp" || lintCamelSuffix(name, "At") || lintCamelSuffix(name, "Time") || lintCamelSuffix(name, "Timestamp"):
		// Other timestamp logical types on a long are reported where the type is walked.
		if !lintIsInstant(typ) {
			l.report(path, "timestamp", `an instant is {"type":"long","logicalType":"timestamp-millis"}`)
		}
	case name == "id" || lintCamelSuffix(name, "Id"):
		if typ.Type() != avro.String {
			l.report(path, "id", "ids are strings")
		}
	case lintCamelSuffix(name, "Ids"):
		if a, ok := typ.(*avro.ArraySchema); !ok || a.Items().Type() != avro.String {
			l.report(path, "id", "a list of ids is an array of strings")
		}
	}
}

func (l *linter) pii(path string, f *avro.Field) {
	switch v := f.Prop("pii"); v.(type) {
	case bool:
	case nil:
		if lintIsPIIName(f.Name()) {
			l.report(path, "pii", `personal-data field must carry "pii": true`)
		}
	default:
		l.report(path, "pii", `"pii" must be a boolean, not `+lintQuote(v))
	}
}

func (l *linter) money(path string, r *avro.RecordSchema) {
	if r.FullName() != MoneyFullName {
		l.report(path, "money", "money is the shared record "+MoneyFullName+", not "+r.FullName())
	}
	for _, f := range r.Fields() {
		if f.Doc() == "" {
			l.report(lintJoin(path, f.Name()), "doc", "field has no doc")
		}
	}
	if !lintIsMoneyShape(r) {
		l.report(path, "money", "Money is exactly {amount: bytes decimal(18,2), currency: string}")
	}
}

func lintIsMoneyShape(r *avro.RecordSchema) bool {
	fs := r.Fields()
	if len(fs) != 2 || fs[0].Name() != "amount" || fs[1].Name() != "currency" {
		return false
	}
	amount, ok := fs[0].Type().(*avro.PrimitiveSchema)
	if !ok || amount.Type() != avro.Bytes {
		return false
	}
	d, ok := amount.Logical().(*avro.DecimalLogicalSchema)
	if !ok || d.Precision() != 18 || d.Scale() != 2 {
		return false
	}
	currency, ok := fs[1].Type().(*avro.PrimitiveSchema)
	return ok && currency.Type() == avro.String && currency.Logical() == nil
}

func lintIsInstant(s avro.Schema) bool {
	p, ok := s.(*avro.PrimitiveSchema)
	if !ok || p.Type() != avro.Long || p.Logical() == nil {
		return false
	}
	switch p.Logical().Type() {
	case avro.TimestampMillis, avro.TimestampMicros, avro.LocalTimestampMillis, avro.LocalTimestampMicros:
		return true
	}
	return false
}

func lintIsLogical(s avro.Schema, base avro.Type, lt avro.LogicalType) bool {
	p, ok := s.(*avro.PrimitiveSchema)
	return ok && p.Type() == base && p.Logical() != nil && p.Logical().Type() == lt
}

// lintCamelSuffix reports whether name is a longer camel-case name ending in the word suffix
// (checkedInAt ends in At; format does not).
func lintCamelSuffix(name, suffix string) bool {
	return len(name) > len(suffix) && strings.HasSuffix(name, suffix)
}

func lintIsPIIName(name string) bool {
	for _, p := range lintPIINames {
		if name == p {
			return true
		}
		word := string(unicode.ToUpper(rune(p[0]))) + p[1:]
		if lintCamelSuffix(name, word) {
			return true
		}
	}
	return false
}

func lintJoin(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func lintQuote(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}
