package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/hamba/avro/v2"
)

// parsedAvro is an Avro schema as the registry keeps it: parsed by hamba/avro (for the compatibility
// checks) and keyed by a canonical form (for lookups and id reuse).
type parsedAvro struct {
	schema avro.Schema
	// key is the same for two texts that Confluent canonicalises alike: whitespace, key order and
	// inherited or explicit namespaces do not matter; defaults, docs, aliases and properties do.
	key string
}

// parseAvro parses text, whose named references are already in cache, and checks every field
// default the way Apache Avro 1.12 does (Schema.isValidDefault): a union default may match any
// branch (AVRO-3649), an int default must be an integral number in the int range, a long one an
// integral number in the long range, a record default must give every field without a default.
//
// hamba/avro checks defaults itself with older rules (a union default must match the first branch,
// and ints are not range-checked) and prints `<nil>` for the value it failed to convert, so the
// defaults are checked here instead: the text is parsed once without any default (hamba resolves
// names and types), each default is checked against the resolved type, and the text is parsed again
// with its defaults after moving, in each union whose default matches a later branch, that branch
// first. The compatibility checks only ask whether a field has a default, and union branch order
// does not change their verdict; the key records the moves, so the reordering never merges two
// different schemas.
func parseAvro(text string, cache func() *avro.SchemaCache) (parsedAvro, error) {
	var raw any
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return parsedAvro{}, fmt.Errorf("not JSON: %w", err)
	}
	if dec.More() {
		return parsedAvro{}, fmt.Errorf("not JSON: data after the schema")
	}
	var defaults []*fieldDefault
	stripped := stripDefaults(raw, &defaults)
	bare, err := parseJSON(stripped, cache())
	if err != nil {
		return parsedAvro{}, err
	}
	resolveDefaults(bare, defaults, map[avro.Schema]bool{})
	var moved []string
	for _, d := range defaults {
		if d.resolved == nil {
			continue // not reached by the walk: hamba would not have parsed the schema
		}
		branch, err := checkDefault(d.resolved, d.value, defaults, "field "+d.name)
		if err != nil {
			return parsedAvro{}, err
		}
		if branch > 0 {
			types := d.field["type"].([]any)
			reordered := append([]any{types[branch]}, append(append([]any{}, types[:branch]...), types[branch+1:]...)...)
			d.field["type"] = reordered
			moved = append(moved, fmt.Sprintf("%s:%d", d.name, branch))
		}
	}
	full, err := parseJSON(raw, cache())
	if err != nil {
		return parsedAvro{}, err
	}
	canon, err := json.Marshal(full)
	if err != nil {
		return parsedAvro{}, fmt.Errorf("canonical form: %w", err)
	}
	key := string(canon)
	if len(moved) > 0 {
		key += "\x00" + strings.Join(moved, ",")
	}
	return parsedAvro{schema: full, key: key}, nil
}

func parseJSON(v any, cache *avro.SchemaCache) (avro.Schema, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	s, err := avro.ParseBytesWithCache(b, "", cache)
	if err != nil {
		// hamba prints a value it could not convert as <nil>; the defaults were checked above, so
		// this only remains for defaults nested in record defaults.
		return nil, fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "<nil>", "null"))
	}
	return s, nil
}

// fieldDefault is a field's default, taken out of the schema for the first parse.
type fieldDefault struct {
	name     string
	field    map[string]any // the field's JSON object in the original schema, default included
	value    any
	resolved avro.Schema // the field's type, set by resolveDefaults
}

// stripDefaults returns a copy of v without field defaults: each is appended to defs and its field
// in the copy tagged with defaultTag. v is not changed.
func stripDefaults(v any, defs *[]*fieldDefault) any {
	switch t := v.(type) {
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = stripDefaults(x, defs)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[k] = x
		}
		if ty, ok := t["type"]; ok {
			out["type"] = stripDefaults(ty, defs)
		}
		for _, k := range []string{"items", "values"} {
			if x, ok := t[k]; ok {
				out[k] = stripDefaults(x, defs)
			}
		}
		if fields, ok := t["fields"].([]any); ok {
			outFields := make([]any, len(fields))
			for i, f := range fields {
				fm, ok := f.(map[string]any)
				if !ok {
					outFields[i] = f
					continue
				}
				cp := make(map[string]any, len(fm))
				for k, x := range fm {
					cp[k] = x
				}
				if ty, ok := fm["type"]; ok {
					cp["type"] = stripDefaults(ty, defs)
				}
				if d, ok := fm["default"]; ok {
					delete(cp, "default")
					cp[defaultTag] = strconv.Itoa(len(*defs))
					name, _ := fm["name"].(string)
					*defs = append(*defs, &fieldDefault{name: name, field: fm, value: d})
				}
				outFields[i] = cp
			}
			out["fields"] = outFields
		}
		return out
	}
	return v
}

// defaultTag is the property stripDefaults leaves on a field in place of its default: the index of
// the default in the list it returns.
const defaultTag = "hotelbus.registry.default"

// resolveDefaults sets the parsed type of each default, from the fields of s tagged by
// stripDefaults. Each named type is visited once.
func resolveDefaults(s avro.Schema, defs []*fieldDefault, seen map[avro.Schema]bool) {
	if seen[s] {
		return
	}
	seen[s] = true
	switch x := s.(type) {
	case *avro.RecordSchema:
		for _, f := range x.Fields() {
			if d := taggedDefault(f, defs); d != nil {
				d.resolved = f.Type()
			}
			resolveDefaults(f.Type(), defs, seen)
		}
	case *avro.UnionSchema:
		for _, b := range x.Types() {
			resolveDefaults(b, defs, seen)
		}
	case *avro.ArraySchema:
		resolveDefaults(x.Items(), defs, seen)
	case *avro.MapSchema:
		resolveDefaults(x.Values(), defs, seen)
	}
}

// taggedDefault returns the default stripDefaults took out of f, or nil.
func taggedDefault(f *avro.Field, defs []*fieldDefault) *fieldDefault {
	tag, _ := f.Prop(defaultTag).(string)
	i, err := strconv.Atoi(tag)
	if err != nil || i < 0 || i >= len(defs) {
		return nil
	}
	return defs[i]
}

// checkDefault checks v as a default of s and returns, for a union, the index of the first branch it
// matches (0 otherwise). at names the field for the message.
func checkDefault(s avro.Schema, v any, defs []*fieldDefault, at string) (int, error) {
	if ref, ok := s.(*avro.RefSchema); ok {
		s = ref.Schema()
	}
	bad := func(why string) (int, error) {
		//lint:ignore ST1005 Avro Java's message, which Confluent clients show as it is
		return 0, fmt.Errorf("Invalid default for %s: %s is not a valid %s value (%s)", at, jsonText(v), typeName(s), why)
	}
	switch x := s.(type) {
	case *avro.UnionSchema:
		for i, b := range x.Types() {
			if _, err := checkDefault(b, v, defs, at); err == nil {
				return i, nil
			}
		}
		return bad("it matches no branch of the union")
	case *avro.RecordSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("a record default is a JSON object")
		}
		for _, f := range x.Fields() {
			fv, ok := m[f.Name()]
			if !ok {
				if d := taggedDefault(f, defs); d != nil {
					fv, ok = d.value, true
				}
			}
			if !ok {
				return bad("field " + f.Name() + " has no value and no default")
			}
			if _, err := checkDefault(f.Type(), fv, defs, at+"."+f.Name()); err != nil {
				return 0, err
			}
		}
		return 0, nil
	case *avro.ArraySchema:
		a, ok := v.([]any)
		if !ok {
			return bad("an array default is a JSON array")
		}
		for i, e := range a {
			if _, err := checkDefault(x.Items(), e, defs, fmt.Sprintf("%s[%d]", at, i)); err != nil {
				return 0, err
			}
		}
		return 0, nil
	case *avro.MapSchema:
		m, ok := v.(map[string]any)
		if !ok {
			return bad("a map default is a JSON object")
		}
		for k, e := range m {
			if _, err := checkDefault(x.Values(), e, defs, at+"."+k); err != nil {
				return 0, err
			}
		}
		return 0, nil
	case *avro.EnumSchema:
		sym, ok := v.(string)
		if !ok {
			return bad("an enum default is a JSON string")
		}
		for _, s := range x.Symbols() {
			if s == sym {
				return 0, nil
			}
		}
		return bad("not a symbol of the enum")
	case *avro.FixedSchema:
		if _, ok := v.(string); !ok {
			return bad("a fixed default is a JSON string")
		}
		return 0, nil
	}
	switch s.Type() {
	case avro.Null:
		if v != nil {
			return bad("a null default is JSON null")
		}
	case avro.Boolean:
		if _, ok := v.(bool); !ok {
			return bad("a boolean default is true or false")
		}
	case avro.Int, avro.Long:
		n, ok := v.(json.Number)
		if !ok || strings.ContainsAny(n.String(), ".eE") {
			return bad("an integral JSON number is required")
		}
		i, err := n.Int64()
		if err != nil || s.Type() == avro.Int && (i < math.MinInt32 || i > math.MaxInt32) {
			return bad("out of range")
		}
	case avro.Float, avro.Double:
		if _, ok := v.(json.Number); !ok {
			return bad("a JSON number is required")
		}
	case avro.String, avro.Bytes:
		if _, ok := v.(string); !ok {
			return bad("a JSON string is required")
		}
	default:
		return bad("unsupported type")
	}
	return 0, nil
}

func typeName(s avro.Schema) string {
	if n, ok := s.(avro.NamedSchema); ok {
		return string(s.Type()) + " " + n.FullName()
	}
	return string(s.Type())
}

func jsonText(v any) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Sprint(v)
	}
	return strings.TrimSpace(b.String())
}
