package schemas

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hamba/avro/v2"
)

// PIIMarksFile, at the root of a schema tree, lists personal-data marks for fields of versions
// published before they were marked: "<file> <dotted field path>" a line, # comments. Load adds
// "pii": true to those fields of Version.Data and Version.Envelope; Version.Text stays the text as
// published and registered. The file is optional; a line that names no file, no field, or a field
// whose file already carries "pii" makes Load fail, so a mark cannot silently miss.
//
// Why not edit the published file: the registry keeps every registered text, the serde finds a
// schema id by its text, and Compare/Register refuse a registry history that schemas/ lacks, so a
// changed property in a published version would break every existing registry.
const PIIMarksFile = "pii-marks.txt"

// IsPII reports whether f holds personal data: it carries "pii": true, in its file or by
// PIIMarksFile.
func IsPII(f *avro.Field) bool { b, _ := f.Prop("pii").(bool); return b }

// piiMark is one line of PIIMarksFile.
type piiMark struct {
	line int
	file string
	path string
	used bool
}

func (m *piiMark) errorf(format string, a ...any) error {
	return fmt.Errorf("%w: %s:%d: %s %s: %s", ErrInvalid, PIIMarksFile, m.line, m.file, m.path, fmt.Sprintf(format, a...))
}

// loadPIIMarks reads PIIMarksFile, by file; nil when the tree has none.
func loadPIIMarks(fsys fs.FS) (map[string][]*piiMark, error) {
	b, err := fs.ReadFile(fsys, PIIMarksFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	marks := map[string][]*piiMark{}
	seen := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: %s:%d: want \"<file> <field path>\"", ErrInvalid, PIIMarksFile, n)
		}
		m := &piiMark{line: n, file: f[0], path: f[1]}
		if seen[line] {
			return nil, m.errorf("listed twice")
		}
		seen[line] = true
		marks[m.file] = append(marks[m.file], m)
	}
	return marks, sc.Err()
}

// applyPIIMarks sets "pii": true on the fields marks name in a record schema decoded from JSON.
func applyPIIMarks(rec map[string]any, marks []*piiMark) error {
	for _, m := range marks {
		if err := markField(rec, strings.Split(m.path, "."), m); err != nil {
			return err
		}
		m.used = true
	}
	return nil
}

func markField(rec map[string]any, path []string, m *piiMark) error {
	name, suffix := path[0], ""
	for strings.HasSuffix(name, "[]") || strings.HasSuffix(name, "{}") {
		name, suffix = name[:len(name)-2], name[len(name)-2:]+suffix
	}
	fields, _ := rec["fields"].([]any)
	for _, f := range fields {
		field, _ := f.(map[string]any)
		if field["name"] != name {
			continue
		}
		if len(path) == 1 {
			if suffix != "" {
				return m.errorf("a mark names a field, not its items or values")
			}
			if _, ok := field["pii"]; ok {
				return m.errorf(`the field already carries "pii" in its file: remove this line`)
			}
			field["pii"] = true
			return nil
		}
		t := optionalType(field["type"])
		for ; suffix != ""; suffix = suffix[2:] {
			ct, _ := t.(map[string]any)
			switch {
			case strings.HasPrefix(suffix, "[]") && ct["type"] == "array":
				t = optionalType(ct["items"])
			case strings.HasPrefix(suffix, "{}") && ct["type"] == "map":
				t = optionalType(ct["values"])
			default:
				return m.errorf("%s is not an array ([]) or a map ({}) as written", name)
			}
		}
		inner, _ := t.(map[string]any)
		if inner["type"] != "record" {
			if ref, ok := t.(string); ok {
				return m.errorf("%s is a reference to %s: mark the field where that type is defined", name, ref)
			}
			return m.errorf("%s is not a record", name)
		}
		return markField(inner, path[1:], m)
	}
	return m.errorf("no field %q", name)
}

// optionalType returns T of a ["null", T] union, else t.
func optionalType(t any) any {
	if u, ok := t.([]any); ok && len(u) == 2 && u[0] == "null" {
		return u[1]
	}
	return t
}

// unusedPIIMark returns an error for the first mark that named a file the tree does not have.
func unusedPIIMark(marks map[string][]*piiMark) error {
	var first *piiMark
	for _, ms := range marks {
		for _, m := range ms {
			if !m.used && (first == nil || m.line < first.line) {
				first = m
			}
		}
	}
	if first != nil {
		return first.errorf("no such file in the schema tree")
	}
	return nil
}
