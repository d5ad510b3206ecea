package views

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/go-json-experiment/json/jsontext"
)

// open replaces the sealed values of it, an item of tenant read from the store, by what the view's
// Protector opens them to (clear values, or the erasure marker), each field with the event that
// wrote it (Item.Sealed). A field it cannot open (the keys unreachable, a value that does not
// authenticate, a version the view's schemas lack) is served sealed, stays listed in Sealed, and
// is logged. Without a Protector, it is left as stored.
func (v *View) open(ctx context.Context, tenant string, it *Item) {
	p := v.l.cfg.Protector
	if p == nil || len(it.Sealed) == 0 {
		return
	}
	fields, err := splitFields(it.Data)
	if err != nil {
		v.logOnce("views: personal-data fields served sealed", fmt.Errorf("item %s/%s: %w", tenant, it.Key, err))
		return
	}
	byOrigin := map[Origin][]string{}
	for f, o := range it.Sealed {
		if _, ok := fields[f]; ok {
			byOrigin[o] = append(byOrigin[o], f)
		}
	}
	opened := map[string][]byte{}
	for o, names := range byOrigin {
		if err := v.openFields(ctx, p, tenant, o, names, fields, opened); err != nil {
			v.logOnce("views: personal-data fields served sealed", fmt.Errorf("item %s/%s, fields %v of event %s: %w", tenant, it.Key, names, o.EventID, err))
		}
	}
	if len(opened) == 0 {
		return
	}
	data, err := replaceFields(it.Data, opened)
	if err != nil {
		v.logOnce("views: personal-data fields served sealed", fmt.Errorf("item %s/%s: %w", tenant, it.Key, err))
		return
	}
	it.Data = data
	var still map[string]Origin
	for f, o := range it.Sealed {
		if _, ok := opened[f]; !ok {
			if still == nil {
				still = map[string]Origin{}
			}
			still[f] = o
		}
	}
	it.Sealed = still
}

// openFields opens the fields names of fields, written by event o, into opened (their JSON).
func (v *View) openFields(ctx context.Context, p Protector, tenant string, o Origin, names []string, fields map[string]json.RawMessage, opened map[string][]byte) error {
	ver, ok := v.l.cfg.Schemas.Version(o.EventType, o.Version)
	if !ok {
		return fmt.Errorf("%w: %s %s is not in the view's schemas", ErrInvalid, o.EventType, o.Version)
	}
	data := make(map[string]any, len(names))
	for _, f := range names {
		dec := json.NewDecoder(bytes.NewReader(fields[f]))
		dec.UseNumber() // numbers come back as written
		var val any
		if err := dec.Decode(&val); err != nil {
			return fmt.Errorf("field %s: %w", f, err)
		}
		data[f] = val
	}
	if err := p.OpenData(ctx, tenant, o.EventID, ver, data); err != nil {
		return err
	}
	for _, f := range names {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(data[f]); err != nil {
			return fmt.Errorf("field %s: %w", f, err)
		}
		opened[f] = bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	}
	return nil
}

// replaceFields returns the JSON object obj with the values of the top-level fields repl names
// replaced, the fields in their order.
func replaceFields(obj []byte, repl map[string][]byte) ([]byte, error) {
	dec := jsontext.NewDecoder(bytes.NewReader(obj))
	if tok, err := dec.ReadToken(); err != nil || tok.Kind() != '{' {
		return nil, fmt.Errorf("views: item data is not a JSON object: %v", err)
	}
	out := append(make([]byte, 0, len(obj)), '{')
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return nil, fmt.Errorf("views: item data: %w", err)
		}
		name := tok.String()
		val, err := dec.ReadValue()
		if err != nil {
			return nil, fmt.Errorf("views: item data: %w", err)
		}
		if r, ok := repl[name]; ok {
			val = r
		}
		if len(out) > 1 {
			out = append(out, ',')
		}
		if out, err = jsontext.AppendQuote(out, name); err != nil {
			return nil, err
		}
		out = append(append(out, ':'), val...)
	}
	return append(out, '}'), nil
}
