package replay

import (
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/parquet-go/parquet-go"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/internal/decimal"
)

// pqNode is one node of the plan that shreds a generic value (see streams.Envelope) into the
// columns of a Parquet schema derived from its Avro schema (Dremel repetition and definition
// levels).
type pqNode struct {
	name     string
	optional bool
	kind     pqKind
	// children of a record, sorted by name as parquet.Group orders them; the element of a list; the
	// key and value of a map.
	children []*pqNode
	leaf     func(any) (parquet.Value, error)
	column   int    // leaf column index
	cols     [2]int // first and last+1 leaf column of the subtree
}

type pqKind int

const (
	pqLeaf pqKind = iota
	pqRecord
	pqList
	pqMap
)

// pqSchema builds the Parquet schema and shredding plan of an envelope whose data follows data.
func pqSchema(envelope, data *avro.RecordSchema) (*parquet.Schema, *pqNode, error) {
	root := &pqNode{kind: pqRecord}
	node := parquet.Group{}
	for _, f := range envelopeFields(envelope, data) {
		n, pn, err := pqField(f.Name, f.Shape, f.Name, 0)
		if err != nil {
			return nil, nil, err
		}
		node[f.Name] = n
		root.children = append(root.children, pn)
	}
	slices.SortFunc(root.children, func(a, b *pqNode) int { return strings.Compare(a.name, b.name) })
	schema := parquet.NewSchema(data.Name(), node)
	index := map[string]int{}
	for i, c := range schema.Columns() {
		index[strings.Join(c, ".")] = i
	}
	if err := root.number(nil, index); err != nil {
		return nil, nil, err
	}
	return schema, root, nil
}

// envelopeFields returns the fields of the envelope's Shape, its data field with data's Shape (the
// version's data record, or its redacted form).
func envelopeFields(envelope, data *avro.RecordSchema) []streams.ShapeField {
	fields := slices.Clone(streams.ShapeOf(envelope).Fields) // Shapes are shared: not changed in place
	for i := range fields {
		if fields[i].Name == "data" {
			fields[i].Shape = streams.ShapeOf(data)
		}
	}
	return fields
}

// number sets the column indexes of the leaves from their paths in the schema.
func (n *pqNode) number(path []string, index map[string]int) error {
	if n.name != "" {
		path = append(path, n.name)
	}
	switch n.kind {
	case pqLeaf:
		i, ok := index[strings.Join(path, ".")]
		if !ok {
			return fmt.Errorf("replay: parquet schema has no column %s", strings.Join(path, "."))
		}
		n.column, n.cols = i, [2]int{i, i + 1}
		return nil
	case pqList:
		path = append(path, "list")
	case pqMap:
		path = append(path, "key_value")
	}
	n.cols = [2]int{-1, -1}
	for _, c := range n.children {
		if err := c.number(path, index); err != nil {
			return err
		}
		if n.cols[0] < 0 || c.cols[0] < n.cols[0] {
			n.cols[0] = c.cols[0]
		}
		n.cols[1] = max(n.cols[1], c.cols[1])
	}
	return nil
}

// maxDepth bounds the nesting pqField maps: a Parquet schema is finite, a recursive type is not.
const maxDepth = 32

// pqField returns the Parquet node and plan of a value of sh at depth; path names it in errors.
func pqField(name string, sh *streams.Shape, path string, depth int) (parquet.Node, *pqNode, error) {
	if depth > maxDepth {
		return nil, nil, fmt.Errorf("replay: parquet: %s: nested deeper than %d (a recursive type?)", path, maxDepth)
	}
	n, pn, err := pqType(name, sh, path, depth)
	if err != nil || !sh.Optional {
		return n, pn, err
	}
	pn.optional = true
	return parquet.Optional(n), pn, nil
}

// pqType is pqField for the type of sh, optional or not.
func pqType(name string, sh *streams.Shape, path string, depth int) (parquet.Node, *pqNode, error) {
	pn := &pqNode{name: name}
	switch s := sh.Schema.(type) {
	case *avro.RecordSchema:
		pn.kind = pqRecord
		g := parquet.Group{}
		for _, f := range sh.Fields {
			n, c, err := pqField(f.Name, f.Shape, path+"."+f.Name, depth+1)
			if err != nil {
				return nil, nil, err
			}
			g[f.Name] = n
			pn.children = append(pn.children, c)
		}
		slices.SortFunc(pn.children, func(a, b *pqNode) int { return strings.Compare(a.name, b.name) })
		return g, pn, nil
	case *avro.ArraySchema:
		n, elem, err := pqField("element", sh.Elem, path+"[]", depth+1)
		if err != nil {
			return nil, nil, err
		}
		pn.kind, pn.children = pqList, []*pqNode{elem}
		return parquet.List(n), pn, nil
	case *avro.MapSchema:
		n, val, err := pqField("value", sh.Elem, path+"{}", depth+1)
		if err != nil {
			return nil, nil, err
		}
		key := &pqNode{name: "key", leaf: pqString}
		pn.kind, pn.children = pqMap, []*pqNode{key, val}
		return parquet.Map(parquet.String(), n), pn, nil
	case *avro.EnumSchema:
		pn.leaf = pqString
		return parquet.String(), pn, nil
	case *avro.UnionSchema:
		return nil, nil, fmt.Errorf("replay: parquet: %s: only unions of null and one other type are supported", path)
	case *avro.PrimitiveSchema:
		n, f, err := pqPrimitive(s, path)
		pn.leaf = f
		return n, pn, err
	}
	return nil, nil, fmt.Errorf("replay: parquet: %s: Avro type %s is not supported", path, sh.Schema.Type())
}

func pqPrimitive(s *avro.PrimitiveSchema, path string) (parquet.Node, func(any) (parquet.Value, error), error) {
	if l := s.Logical(); l != nil {
		switch l.Type() {
		case avro.Decimal:
			return pqDecimal(l.(*avro.DecimalLogicalSchema))
		case avro.Date:
			return parquet.Date(), func(v any) (parquet.Value, error) {
				t, ok := v.(time.Time)
				if !ok {
					return parquet.Value{}, fmt.Errorf("expected a date, got %T", v)
				}
				days := t.Unix() / 86400
				if t.Unix()%86400 < 0 {
					days--
				}
				return parquet.Int32Value(int32(days)), nil
			}, nil
		case avro.TimestampMillis:
			return parquet.Timestamp(parquet.Millisecond), func(v any) (parquet.Value, error) {
				t, ok := v.(time.Time)
				if !ok {
					return parquet.Value{}, fmt.Errorf("expected a timestamp, got %T", v)
				}
				return parquet.Int64Value(t.UnixMilli()), nil
			}, nil
		}
		return nil, nil, fmt.Errorf("replay: parquet: %s: logical type %s is not supported", path, l.Type())
	}
	switch s.Type() {
	case avro.String:
		return parquet.String(), pqString, nil
	case avro.Bytes:
		return parquet.Leaf(parquet.ByteArrayType), func(v any) (parquet.Value, error) {
			b, ok := v.([]byte)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected bytes, got %T", v)
			}
			return parquet.ByteArrayValue(b), nil
		}, nil
	case avro.Boolean:
		return parquet.Leaf(parquet.BooleanType), func(v any) (parquet.Value, error) {
			b, ok := v.(bool)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected a boolean, got %T", v)
			}
			return parquet.BooleanValue(b), nil
		}, nil
	case avro.Int:
		return parquet.Leaf(parquet.Int32Type), func(v any) (parquet.Value, error) {
			n, ok := v.(int)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected an int, got %T", v)
			}
			return parquet.Int32Value(int32(n)), nil
		}, nil
	case avro.Long:
		return parquet.Leaf(parquet.Int64Type), func(v any) (parquet.Value, error) {
			n, ok := v.(int64)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected a long, got %T", v)
			}
			return parquet.Int64Value(n), nil
		}, nil
	case avro.Double:
		return parquet.Leaf(parquet.DoubleType), func(v any) (parquet.Value, error) {
			f, ok := v.(float64)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected a double, got %T", v)
			}
			return parquet.DoubleValue(f), nil
		}, nil
	case avro.Float:
		return parquet.Leaf(parquet.FloatType), func(v any) (parquet.Value, error) {
			f, ok := v.(float32)
			if !ok {
				return parquet.Value{}, fmt.Errorf("expected a float, got %T", v)
			}
			return parquet.FloatValue(f), nil
		}, nil
	}
	return nil, nil, fmt.Errorf("replay: parquet: %s: Avro type %s is not supported", path, s.Type())
}

func pqString(v any) (parquet.Value, error) {
	s, ok := v.(string)
	if !ok {
		return parquet.Value{}, fmt.Errorf("expected a string, got %T", v)
	}
	return parquet.ByteArrayValue([]byte(s)), nil
}

// pqDecimal stores a decimal's unscaled value: INT32 up to 9 digits, INT64 up to 18, else a
// big-endian two's complement BYTE_ARRAY, as the Parquet DECIMAL logical type allows.
func pqDecimal(d *avro.DecimalLogicalSchema) (parquet.Node, func(any) (parquet.Value, error), error) {
	spec := decimal.New(d.Precision(), d.Scale())
	unscaled := func(v any) (*big.Int, error) {
		r, ok := v.(*big.Rat)
		if !ok || r == nil {
			return nil, fmt.Errorf("expected a decimal, got %T", v)
		}
		n, err := spec.Unscaled(r)
		if err != nil {
			return nil, fmt.Errorf("%s: %w of decimal(%d,%d)", r.RatString(), err, d.Precision(), d.Scale())
		}
		return n, nil
	}
	switch p := d.Precision(); {
	case p <= 9:
		return parquet.Decimal(d.Scale(), p, parquet.Int32Type), func(v any) (parquet.Value, error) {
			n, err := unscaled(v)
			if err != nil {
				return parquet.Value{}, err
			}
			return parquet.Int32Value(int32(n.Int64())), nil
		}, nil
	case p <= 18:
		return parquet.Decimal(d.Scale(), p, parquet.Int64Type), func(v any) (parquet.Value, error) {
			n, err := unscaled(v)
			if err != nil {
				return parquet.Value{}, err
			}
			return parquet.Int64Value(n.Int64()), nil
		}, nil
	default:
		return parquet.Decimal(d.Scale(), p, parquet.ByteArrayType), func(v any) (parquet.Value, error) {
			n, err := unscaled(v)
			if err != nil {
				return parquet.Value{}, err
			}
			return parquet.ByteArrayValue(decimal.TwosComplement(n)), nil
		}, nil
	}
}

// shred appends the values of v (nil when absent) under n to row, at repetition level r, definition
// level d and repetition depth depth.
func (n *pqNode) shred(row parquet.Row, v any, r, d, depth int) (parquet.Row, error) {
	if n.optional {
		if v == nil {
			return n.nulls(row, r, d), nil
		}
		d++
	}
	var err error
	switch n.kind {
	case pqLeaf:
		pv, err := n.leaf(v)
		if err != nil {
			return nil, fmt.Errorf("column %d: %w", n.column, err)
		}
		return append(row, pv.Level(r, d, n.column)), nil
	case pqRecord:
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: expected a record, got %T", n.name, v)
		}
		for _, c := range n.children {
			if row, err = c.shred(row, m[c.name], r, d, depth); err != nil {
				return nil, err
			}
		}
		return row, nil
	case pqList:
		a, _ := v.([]any)
		if len(a) == 0 {
			return n.nulls(row, r, d), nil
		}
		for i, e := range a {
			ri := r
			if i > 0 {
				ri = depth + 1
			}
			if row, err = n.children[0].shred(row, e, ri, d+1, depth+1); err != nil {
				return nil, err
			}
		}
		return row, nil
	}
	m, _ := v.(map[string]any) // pqMap
	if len(m) == 0 {
		return n.nulls(row, r, d), nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		ri := r
		if i > 0 {
			ri = depth + 1
		}
		if row, err = n.children[0].shred(row, k, ri, d+1, depth+1); err != nil {
			return nil, err
		}
		if row, err = n.children[1].shred(row, m[k], ri, d+1, depth+1); err != nil {
			return nil, err
		}
	}
	return row, nil
}

// nulls appends one null per leaf column of n's subtree.
func (n *pqNode) nulls(row parquet.Row, r, d int) parquet.Row {
	for c := n.cols[0]; c < n.cols[1]; c++ {
		row = append(row, parquet.NullValue().Level(r, d, c))
	}
	return row
}

// pqRow shreds one envelope value (a map with the envelope's fields) into a row in column order.
func pqRow(root *pqNode, env map[string]any) (parquet.Row, error) {
	row, err := root.shred(make(parquet.Row, 0, 32), env, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	slices.SortStableFunc(row, func(a, b parquet.Value) int { return a.Column() - b.Column() })
	return row, nil
}
