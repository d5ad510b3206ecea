package privacy

import (
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
)

// binWalker walks the Avro binary encoding of a value along a plan (the strings of its nodes),
// skipping the rest undecoded (avrobin): it gives each string of the plan to fn and, when
// rewriting, writes to out a copy of the value in which fn's results replace them (and, with
// nulls, null replaces the values of the plan's null nodes). A publisher seals an encoded record
// with it, whichever encoder wrote the record (the map form's, or hamba's for a typed event), with
// no map built or copied.
type binWalker struct {
	avrobin.Reader
	// Rewriting: out receives Src[run:Pos] before each replaced value, and the rest at the end.
	rewrite bool
	nulls   bool // rewriting writes the values of null nodes as null (sealing)
	out     []byte
	run     int
	path    []byte
	fn      func(path, s []byte) ([]byte, error) // the replacement is used before fn is called again
}

// value walks one value of schema s, whose strings under n go to fn (n nil: skipped whole).
func (w *binWalker) value(s avro.Schema, n *node, depth int) error {
	if n == nil {
		return w.Skip(s)
	}
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	switch s := s.(type) {
	case *avro.RefSchema:
		return w.value(s.Schema(), n, depth+1)
	case *avro.PrimitiveSchema:
		if !n.str || s.Type() != avro.String {
			return w.Skip(s)
		}
		return w.str()
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			var c *node
			for _, fc := range n.fields {
				if fc.field == f.Name() {
					c = fc
					break
				}
			}
			mark := len(w.path)
			if c != nil {
				if mark > 0 {
					w.path = append(w.path, '.')
				}
				w.path = append(w.path, f.Name()...)
			}
			if err := w.value(f.Type(), c, depth+1); err != nil {
				return err
			}
			w.path = w.path[:mark]
		}
		return nil
	case *avro.UnionSchema:
		start := w.Pos
		b, err := w.Branch(s)
		if err != nil {
			return err
		}
		if !n.null {
			return w.value(b, n, depth+1)
		}
		if err := w.Skip(b); err != nil || !w.rewrite || !w.nulls || b.Type() == avro.Null {
			return err
		}
		null, _ := s.Indices()
		w.out = binary.AppendVarint(append(w.out, w.Src[w.run:start]...), int64(null))
		w.run = w.Pos
		return nil
	case *avro.ArraySchema:
		return w.blocks(func(i int) error {
			mark := len(w.path)
			w.path = append(strconv.AppendInt(append(w.path, '['), int64(i), 10), ']')
			err := w.value(s.Items(), n.items, depth+1)
			w.path = w.path[:mark]
			return err
		})
	case *avro.MapSchema:
		return w.blocks(func(int) error {
			key, err := w.Bytes()
			if err != nil {
				return err
			}
			mark := len(w.path)
			w.path = append(append(append(w.path, '{'), key...), '}')
			err = w.value(s.Values(), n.values, depth+1)
			w.path = w.path[:mark]
			return err
		})
	}
	return w.Skip(s)
}

// blocks walks the blocks of an array or a map, calling item for each item (numbered from 0). A
// block written with its byte size is rewritten with its count alone, since its items' size may
// change.
func (w *binWalker) blocks(item func(i int) error) error {
	for i := 0; ; {
		start := w.Pos
		count, size, err := w.BlockHeader()
		if err != nil || count == 0 {
			return err
		}
		if size >= 0 && w.rewrite {
			w.out = binary.AppendVarint(append(w.out, w.Src[w.run:start]...), count)
			w.run = w.Pos
		}
		for range count {
			if err := item(i); err != nil {
				return err
			}
			i++
		}
	}
}

// str gives the string at Pos to fn, and writes what fn returned in its place when rewriting.
func (w *binWalker) str() error {
	start := w.Pos
	b, err := w.Bytes()
	if err != nil {
		return err
	}
	s, err := w.fn(w.path, b)
	if err != nil || !w.rewrite {
		return err
	}
	w.out = append(w.out, w.Src[w.run:start]...)
	w.out = append(binary.AppendVarint(w.out, int64(len(s))), s...)
	w.run = w.Pos
	return nil
}

// envelope walks the body of an event written with the envelope schema env, giving fn the
// strings of its data under n (paths relative to the data, as in the map form). When rewriting it
// then appends the rest of the body to out.
func (w *binWalker) envelope(env *avro.RecordSchema, n *node) error {
	for _, f := range env.Fields() {
		c := n
		if f.Name() != "data" {
			c = nil
		}
		if err := w.value(f.Type(), c, 0); err != nil {
			return fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	if w.Pos != len(w.Src) {
		return fmt.Errorf("%d bytes after the record", len(w.Src)-w.Pos)
	}
	if w.rewrite {
		w.out = append(w.out, w.Src[w.run:]...)
	}
	return nil
}
