package schemas_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
)

// conventionOwners is the seed's catalog: the 20 event types and the system that publishes each.
var conventionOwners = map[string]string{
	"service.ordered":              "hotel-saas",
	"service.canceled":             "hotel-saas",
	"feedback.submitted":           "hotel-saas",
	"reservation.created":          "hotel-pms",
	"reservation.updated":          "hotel-pms",
	"reservation.canceled":         "hotel-pms",
	"checkin_checkout.checked_in":  "hotel-pms",
	"checkin_checkout.checked_out": "hotel-pms",
	"billing.created":              "hotel-pms",
	"billing.paid":                 "hotel-pms",
	"customer.created":             "hotel-member",
	"customer.updated":             "hotel-member",
	"member.registered":            "hotel-member",
	"member.status_changed":        "hotel-member",
	"points.added":                 "hotel-member",
	"points.used":                  "hotel-member",
	"system.maintenance":           "hotel-common",
	"system.error":                 "hotel-common",
	"auth.user_created":            "hotel-common",
	"auth.permissions_changed":     "hotel-common",
}

var conventionFileRe = regexp.MustCompile(`^events/([^/]+)/v([1-9][0-9]*)/([0-9]+)\.(0|[1-9][0-9]*)\.avsc$`)

// conventionFile is one data schema version found under events/.
type conventionFile struct {
	path         string
	eventType    string
	dirMajor     int
	major, minor int
	rec          *avro.RecordSchema
}

func conventionFiles(t *testing.T) []conventionFile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("events", "*", "v*", "*.avsc"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no schema files under events/")
	}
	var files []conventionFile
	for _, p := range paths {
		p = filepath.ToSlash(p)
		m := conventionFileRe.FindStringSubmatch(p)
		if m == nil {
			t.Errorf("%s: not named events/<eventType>/v<major>/<major>.<minor>.avsc", p)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		s, err := avro.ParseBytesWithCache(b, "", &avro.SchemaCache{})
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		rec, ok := s.(*avro.RecordSchema)
		if !ok {
			t.Errorf("%s: top-level type is %s, want record", p, s.Type())
			continue
		}
		f := conventionFile{path: p, eventType: m[1], rec: rec}
		f.dirMajor, _ = strconv.Atoi(m[2])
		f.major, _ = strconv.Atoi(m[3])
		f.minor, _ = strconv.Atoi(m[4])
		files = append(files, f)
	}
	return files
}

func TestConventionEventTypes(t *testing.T) {
	entries, err := os.ReadDir("events")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		if !e.IsDir() {
			t.Errorf("events/%s: only event type directories belong here", e.Name())
			continue
		}
		got = append(got, e.Name())
	}
	want := slices.Sorted(maps.Keys(conventionOwners))
	if !slices.Equal(got, want) {
		t.Errorf("event type directories:\n got %v\nwant %v", got, want)
	}
}

// TestConventionLintClean lints every version as Load gives it: with the marks of
// schemas.PIIMarksFile, which hold the pii marks of fields published before they were marked.
func TestConventionLintClean(t *testing.T) {
	set, err := schemas.Load(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, sub := range set.Subjects {
		for _, v := range sub.Versions {
			n++
			for _, p := range schemas.Lint(v.Data) {
				t.Errorf("%s: %s", v.File, p)
			}
		}
	}
	if files := len(conventionFiles(t)); n != files {
		t.Errorf("Load gave %d versions, events/ has %d files", n, files)
	}
}

func TestConventionNames(t *testing.T) {
	defs := map[string]string{} // named type full name -> description, across all files
	where := map[string]string{}
	for _, f := range conventionFiles(t) {
		resource, _, _ := strings.Cut(f.eventType, ".")
		ns := fmt.Sprintf("hotelbus.%s.v%d", resource, f.dirMajor)
		if f.major != f.dirMajor {
			t.Errorf("%s: major %d in directory v%d", f.path, f.major, f.dirMajor)
		}
		if got := f.rec.Namespace(); got != ns {
			t.Errorf("%s: namespace %q, want %q", f.path, got, ns)
		}
		if got, want := f.rec.Name(), conventionPascal(f.eventType); got != want {
			t.Errorf("%s: name %q, want %q", f.path, got, want)
		}
		for _, n := range conventionNamed(f.rec, nil) {
			if n.Namespace() != ns && n.FullName() != schemas.MoneyFullName {
				t.Errorf("%s: named type %s must be in namespace %s", f.path, n.FullName(), ns)
			}
			// One full name, one definition: readers and code generators share named types.
			d := conventionDescribe(n, nil)
			if prev, ok := defs[n.FullName()]; ok && prev != d {
				t.Errorf("%s: %s differs from its definition in %s:\n%s\n%s", f.path, n.FullName(), where[n.FullName()], d, prev)
			} else if !ok {
				defs[n.FullName()], where[n.FullName()] = d, f.path
			}
		}
	}
}

func TestConventionPascal(t *testing.T) {
	for in, want := range map[string]string{
		"reservation.created":          "ReservationCreated",
		"checkin_checkout.checked_in":  "CheckinCheckoutCheckedIn",
		"auth.permissions_changed":     "AuthPermissionsChanged",
		"points.used":                  "PointsUsed",
		"member.status_changed":        "MemberStatusChanged",
		"checkin_checkout.checked_out": "CheckinCheckoutCheckedOut",
	} {
		if got := conventionPascal(in); got != want {
			t.Errorf("conventionPascal(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestConventionExamples(t *testing.T) {
	latest := map[string]conventionFile{} // events/<type>/v<major> -> newest minor
	for _, f := range conventionFiles(t) {
		dir := filepath.Dir(f.path)
		if cur, ok := latest[dir]; !ok || f.minor > cur.minor {
			latest[dir] = f
		}
	}
	if len(latest) < len(conventionOwners) {
		t.Errorf("%d major versions with schemas, want at least one per event type (%d)", len(latest), len(conventionOwners))
	}
	for _, dir := range slices.Sorted(maps.Keys(latest)) {
		f := latest[dir]
		t.Run(f.eventType, func(t *testing.T) {
			p := filepath.Join(dir, "example.json")
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatalf("every major version needs a golden example: %v", err)
			}
			root, err := conventionDecode(b)
			if err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			want, err := json.MarshalIndent(root, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			if want = append(want, '\n'); !bytes.Equal(b, want) {
				t.Errorf("%s is not formatted as json.MarshalIndent(v, \"\", \"  \") plus a newline; want:\n%s", p, want)
			}
			c := &conventionChecker{t: t, file: p}
			c.envelope(root, f)
		})
	}
}

var (
	conventionUUIDRe  = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	conventionTraceRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	conventionMoneyRe = regexp.MustCompile(`^[A-Z]{3}$`)
)

// conventionChecker checks a golden example against the canonical JSON form of its schema.
type conventionChecker struct {
	t    *testing.T
	file string
}

func (c *conventionChecker) errorf(path, format string, args ...any) {
	c.t.Helper()
	c.t.Errorf("%s: %s: %s", c.file, path, fmt.Sprintf(format, args...))
}

func (c *conventionChecker) envelope(root *conventionJSON, f conventionFile) {
	if !c.object(root, "", []string{"eventId", "eventType", "version", "timestamp", "data", "metadata"}) {
		return
	}
	eventID, eventType, version, ts, data, meta := root.elems[0], root.elems[1], root.elems[2], root.elems[3], root.elems[4], root.elems[5]
	if eventID.kind != "string" || !conventionUUIDRe.MatchString(eventID.text) {
		c.errorf("eventId", "want a lowercase UUID string, got %s", eventID.text)
	}
	if eventType.kind != "string" || eventType.text != f.eventType {
		c.errorf("eventType", "got %s, want %q", eventType.text, f.eventType)
	}
	if want := fmt.Sprintf("%d.%d", f.major, f.minor); version.kind != "string" || version.text != want {
		c.errorf("version", "got %s, want %q (the newest minor, %s)", version.text, want, f.path)
	}
	c.timestamp(ts, "timestamp")
	c.value(data, "data", f.rec)
	if !c.object(meta, "metadata", []string{"tenantId", "source", "correlationId", "userId", "traceId"}) {
		return
	}
	for i, k := range []string{"tenantId", "source", "correlationId"} {
		if c.kind(meta.elems[i], "metadata."+k, "string") && meta.elems[i].text == "" {
			c.errorf("metadata."+k, "must not be empty")
		}
	}
	if src := meta.elems[1].text; src != conventionOwners[f.eventType] {
		c.errorf("metadata.source", "got %q, want the owner %q", src, conventionOwners[f.eventType])
	}
	if meta.elems[3].kind != "null" {
		c.kind(meta.elems[3], "metadata.userId", "string")
	}
	if tr := meta.elems[4]; tr.kind != "string" || !conventionTraceRe.MatchString(tr.text) || strings.Trim(tr.text, "0") == "" {
		c.errorf("metadata.traceId", "want 32 lowercase hex digits, not all zero, got %s", tr.text)
	}
}

// object checks that v is an object with exactly keys, in that order.
func (c *conventionChecker) object(v *conventionJSON, path string, keys []string) bool {
	c.t.Helper()
	if !c.kind(v, path, "object") {
		return false
	}
	if !slices.Equal(v.keys, keys) {
		c.errorf(path, "keys must be every field in schema order:\n got %v\nwant %v", v.keys, keys)
		return false
	}
	return true
}

func (c *conventionChecker) kind(v *conventionJSON, path, kind string) bool {
	c.t.Helper()
	if v.kind != kind {
		c.errorf(path, "got a JSON %s, want %s", v.kind, kind)
		return false
	}
	return true
}

func (c *conventionChecker) timestamp(v *conventionJSON, path string) {
	if !c.kind(v, path, "string") {
		return
	}
	ts, err := time.Parse(time.RFC3339Nano, v.text)
	if err != nil || ts.UTC().Format("2006-01-02T15:04:05.000Z") != v.text {
		c.errorf(path, "%q is not RFC 3339 UTC with exactly 3 fractional digits and Z", v.text)
	}
}

func (c *conventionChecker) value(v *conventionJSON, path string, s avro.Schema) {
	switch t := s.(type) {
	case *avro.RefSchema:
		c.value(v, path, t.Schema())
	case *avro.RecordSchema:
		var names []string
		for _, f := range t.Fields() {
			names = append(names, f.Name())
		}
		if !c.object(v, path, names) {
			return
		}
		for i, f := range t.Fields() {
			c.value(v.elems[i], conventionJoin(path, f.Name()), f.Type())
		}
		if t.FullName() == schemas.MoneyFullName && !conventionMoneyRe.MatchString(v.elems[1].text) {
			c.errorf(path+".currency", "%q is not an ISO 4217 code", v.elems[1].text)
		}
	case *avro.UnionSchema:
		if v.kind != "null" {
			c.value(v, path, t.Types()[len(t.Types())-1])
		}
	case *avro.EnumSchema:
		if c.kind(v, path, "string") && !slices.Contains(t.Symbols(), v.text) {
			c.errorf(path, "%q is not a symbol of %s", v.text, t.FullName())
		}
	case *avro.ArraySchema:
		if c.kind(v, path, "array") {
			for i, e := range v.elems {
				c.value(e, fmt.Sprintf("%s[%d]", path, i), t.Items())
			}
		}
	case *avro.MapSchema:
		if c.kind(v, path, "object") {
			for i, e := range v.elems {
				c.value(e, path+"."+v.keys[i], t.Values())
			}
		}
	case *avro.PrimitiveSchema:
		c.primitive(v, path, t)
	default:
		c.errorf(path, "schema type %s is not expected in event data", s.Type())
	}
}

func (c *conventionChecker) primitive(v *conventionJSON, path string, p *avro.PrimitiveSchema) {
	var lt avro.LogicalType
	if p.Logical() != nil {
		lt = p.Logical().Type()
	}
	switch {
	case lt == avro.Date:
		if d, err := time.Parse(time.DateOnly, v.text); v.kind != "string" || err != nil || d.Format(time.DateOnly) != v.text {
			c.errorf(path, "want a YYYY-MM-DD date string, got %s", v.text)
		}
	case lt == avro.TimestampMillis:
		c.timestamp(v, path)
	case lt == avro.Decimal:
		d := p.Logical().(*avro.DecimalLogicalSchema)
		re := regexp.MustCompile(fmt.Sprintf(`^-?(0|[1-9][0-9]*)\.[0-9]{%d}$`, d.Scale()))
		digits := len(strings.NewReplacer("-", "", ".", "").Replace(v.text))
		if v.kind != "string" || !re.MatchString(v.text) || digits > d.Precision() {
			c.errorf(path, "want a decimal string with exactly %d decimals and at most %d digits, got %s", d.Scale(), d.Precision(), v.text)
		}
	case p.Type() == avro.String:
		c.kind(v, path, "string")
	case p.Type() == avro.Boolean:
		c.kind(v, path, "bool")
	case p.Type() == avro.Int || p.Type() == avro.Long:
		bits := 32
		if p.Type() == avro.Long {
			bits = 64
		}
		if _, err := strconv.ParseInt(v.text, 10, bits); v.kind != "number" || err != nil {
			c.errorf(path, "want an integer that fits %s, got %s", p.Type(), v.text)
		}
	default:
		c.errorf(path, "schema type %s is not expected in event data", p.Type())
	}
}

// conventionJSON is a JSON value that keeps its object keys in file order.
type conventionJSON struct {
	kind  string // object, array, string, number, bool, null
	keys  []string
	elems []*conventionJSON // object values (parallel to keys) or array elements
	text  string            // string value, number literal, true or false
}

// MarshalJSON writes the value compactly with keys in file order, so that json.MarshalIndent
// reproduces exactly what Go would print for the same document.
func (v *conventionJSON) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	switch v.kind {
	case "object", "array":
		open, end := byte('['), byte(']')
		if v.kind == "object" {
			open, end = '{', '}'
		}
		b.WriteByte(open)
		for i, e := range v.elems {
			if i > 0 {
				b.WriteByte(',')
			}
			if v.kind == "object" {
				k, _ := json.Marshal(v.keys[i])
				b.Write(k)
				b.WriteByte(':')
			}
			eb, err := e.MarshalJSON()
			if err != nil {
				return nil, err
			}
			b.Write(eb)
		}
		b.WriteByte(end)
	case "string":
		return json.Marshal(v.text)
	case "null":
		b.WriteString("null")
	default:
		b.WriteString(v.text)
	}
	return b.Bytes(), nil
}

func conventionDecode(b []byte) (*conventionJSON, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	v, err := conventionDecodeValue(dec)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data after the JSON document")
	}
	return v, nil
}

func conventionDecodeValue(dec *json.Decoder) (*conventionJSON, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch tok := tok.(type) {
	case json.Delim:
		v := &conventionJSON{kind: "array"}
		if tok == '{' {
			v.kind = "object"
		}
		for dec.More() {
			if v.kind == "object" {
				k, err := dec.Token()
				if err != nil {
					return nil, err
				}
				if slices.Contains(v.keys, k.(string)) {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				v.keys = append(v.keys, k.(string))
			}
			e, err := conventionDecodeValue(dec)
			if err != nil {
				return nil, err
			}
			v.elems = append(v.elems, e)
		}
		if _, err := dec.Token(); err != nil {
			return nil, err
		}
		return v, nil
	case string:
		return &conventionJSON{kind: "string", text: tok}, nil
	case json.Number:
		return &conventionJSON{kind: "number", text: tok.String()}, nil
	case bool:
		return &conventionJSON{kind: "bool", text: strconv.FormatBool(tok)}, nil
	default:
		return &conventionJSON{kind: "null"}, nil
	}
}

// conventionPascal derives a data record name from an event type: checkin_checkout.checked_in ->
// CheckinCheckoutCheckedIn.
func conventionPascal(eventType string) string {
	var b strings.Builder
	for w := range strings.FieldsFuncSeq(eventType, func(r rune) bool { return r == '.' || r == '_' }) {
		b.WriteString(strings.ToUpper(w[:1]) + w[1:])
	}
	return b.String()
}

// conventionNamed returns the named types reachable from s, each once, in schema order.
func conventionNamed(s avro.Schema, acc []avro.NamedSchema) []avro.NamedSchema {
	switch t := s.(type) {
	case *avro.RefSchema:
		return conventionNamed(t.Schema(), acc)
	case avro.NamedSchema:
		if slices.ContainsFunc(acc, func(n avro.NamedSchema) bool { return n.FullName() == t.FullName() }) {
			return acc
		}
		acc = append(acc, t)
		if r, ok := t.(*avro.RecordSchema); ok {
			for _, f := range r.Fields() {
				acc = conventionNamed(f.Type(), acc)
			}
		}
	case *avro.ArraySchema:
		return conventionNamed(t.Items(), acc)
	case *avro.MapSchema:
		return conventionNamed(t.Values(), acc)
	case *avro.UnionSchema:
		for _, b := range t.Types() {
			acc = conventionNamed(b, acc)
		}
	}
	return acc
}

// conventionDescribe renders a schema with docs, defaults and "pii" marks, nested named types
// expanded, so that two definitions of one full name can be compared whatever file they are in.
func conventionDescribe(s avro.Schema, stack []string) string {
	switch t := s.(type) {
	case *avro.RefSchema:
		return conventionDescribe(t.Schema(), stack)
	case *avro.RecordSchema:
		if slices.Contains(stack, t.FullName()) {
			return t.FullName()
		}
		stack = append(stack, t.FullName())
		var fs []string
		for _, f := range t.Fields() {
			def := "-"
			if f.HasDefault() {
				db, _ := json.Marshal(f.Default())
				def = string(db)
			}
			fs = append(fs, fmt.Sprintf("%s %s doc=%q default=%s pii=%v", f.Name(), conventionDescribe(f.Type(), stack), f.Doc(), def, f.Prop("pii")))
		}
		return fmt.Sprintf("record %s doc=%q {%s}", t.FullName(), t.Doc(), strings.Join(fs, "; "))
	case *avro.EnumSchema:
		return fmt.Sprintf("enum %s doc=%q %v default=%s", t.FullName(), t.Doc(), t.Symbols(), t.Default())
	case *avro.ArraySchema:
		return "array<" + conventionDescribe(t.Items(), stack) + ">"
	case *avro.MapSchema:
		return "map<" + conventionDescribe(t.Values(), stack) + ">"
	case *avro.UnionSchema:
		var bs []string
		for _, b := range t.Types() {
			bs = append(bs, conventionDescribe(b, stack))
		}
		return "[" + strings.Join(bs, ", ") + "]"
	default:
		return s.String()
	}
}

func conventionJoin(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// conventionPublishedFile records the SHA-256 of every version's registered text.
const conventionPublishedFile = "testdata/published-texts.sha256"

var conventionRecord = flag.Bool("record-published", false, "append the text digests of new schema versions to "+conventionPublishedFile)

// TestConventionPublishedTexts: the registered text of a published version never changes (the
// registry keeps it and the serde looks its id up by it): every version's Text has the digest
// recorded when it was added. A new version is recorded with
// `go test ./schemas -run TestConventionPublishedTexts -record-published`, which never rewrites a
// recorded digest.
func TestConventionPublishedTexts(t *testing.T) {
	set, err := schemas.Load(os.DirFS("."))
	if err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	b, err := os.ReadFile(conventionPublishedFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if file, sum, ok := strings.Cut(l, " "); ok {
			recorded[file] = sum
		}
	}
	var added []string
	for _, sub := range set.Subjects {
		for _, v := range sub.Versions {
			d := sha256.Sum256([]byte(v.Text))
			sum := hex.EncodeToString(d[:])
			switch old, ok := recorded[v.File]; {
			case !ok && *conventionRecord:
				added = append(added, v.File+" "+sum+"\n")
			case !ok:
				t.Errorf("%s: no recorded digest: a new version? record it with -record-published", v.File)
			case old != sum:
				t.Errorf("%s: the registered text changed (a published version was edited): a mark added later goes to %s, any other change to a new version", v.File, schemas.PIIMarksFile)
			}
		}
	}
	if len(added) > 0 {
		f, err := os.OpenFile(conventionPublishedFile, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
		if err == nil {
			_, err = f.WriteString(strings.Join(added, ""))
			err = errors.Join(err, f.Close())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}
