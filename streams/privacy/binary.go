package privacy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/hamba/avro/v2"
)

// binWalker walks the Avro binary encoding of a value along a plan (the strings of its nodes),
// without decoding the rest: it reads src and, when rewriting, writes out a copy of it in which
// fn replaced each string of the plan. A publisher seals an encoded record with it, whichever
// encoder wrote the record (the map form's, or hamba's for a typed event), with no map built or
// copied. hamba/avro decodes and encodes whole values only; a walk that rewrites a few strings of
// an encoded value in place is not in its API, hence this one.
type binWalker struct {
	src []byte
	pos int
	// Rewriting: out receives src[run:pos] before each replaced string, and the rest at the end.
	rewrite bool
	out     []byte
	run     int
	path    []byte
	fn      func(path, s []byte) ([]byte, error) // the replacement is used before fn is called again
}

var errTruncated = errors.New("truncated value")

// value walks one value of schema s, whose strings under n go to fn (n nil: skipped whole).
func (w *binWalker) value(s avro.Schema, n *node, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nested deeper than %d", maxDepth)
	}
	if r, ok := s.(*avro.RefSchema); ok {
		s = r.Schema()
	}
	switch s := s.(type) {
	case *avro.NullSchema:
		return nil
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Boolean:
			return w.skip(1)
		case avro.Int, avro.Long:
			_, err := w.long()
			return err
		case avro.Float:
			return w.skip(4)
		case avro.Double:
			return w.skip(8)
		case avro.Bytes:
			return w.skipBytes()
		case avro.String:
			if n == nil || !n.str {
				return w.skipBytes()
			}
			return w.str()
		}
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			var c *node
			if n != nil {
				for _, fc := range n.fields {
					if fc.field == f.Name() {
						c = fc
						break
					}
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
	case *avro.EnumSchema:
		_, err := w.long()
		return err
	case *avro.FixedSchema:
		return w.skip(s.Size())
	case *avro.UnionSchema:
		i, err := w.long()
		if err != nil {
			return err
		}
		if i < 0 || int(i) >= len(s.Types()) {
			return fmt.Errorf("union branch %d of %d", i, len(s.Types()))
		}
		return w.value(s.Types()[i], n, depth+1)
	case *avro.ArraySchema:
		var c *node
		if n != nil {
			c = n.items
		}
		return w.blocks(c, depth, func(i int) error {
			mark := len(w.path)
			if c != nil {
				w.path = append(strconv.AppendInt(append(w.path, '['), int64(i), 10), ']')
			}
			err := w.value(s.Items(), c, depth+1)
			w.path = w.path[:mark]
			return err
		})
	case *avro.MapSchema:
		var c *node
		if n != nil {
			c = n.values
		}
		return w.blocks(c, depth, func(int) error {
			start := w.pos
			if err := w.skipBytes(); err != nil {
				return err
			}
			mark := len(w.path)
			if c != nil {
				key, _, _ := w.bytesAt(start)
				w.path = append(append(append(w.path, '{'), key...), '}')
			}
			err := w.value(s.Values(), c, depth+1)
			w.path = w.path[:mark]
			return err
		})
	}
	return fmt.Errorf("schema type %s not supported", s.Type())
}

// blocks walks the blocks of an array or a map, calling item for each item (numbered from 0).
// A block written with its byte size (a negative count) is rewritten with its count alone when
// its items may change (c not nil), since their size may.
func (w *binWalker) blocks(c *node, depth int, item func(i int) error) error {
	for i := 0; ; {
		start := w.pos
		count, err := w.long()
		if err != nil {
			return err
		}
		if count == 0 {
			return nil
		}
		if count < 0 {
			count = -count
			if _, err := w.long(); err != nil { // the block's size in bytes
				return err
			}
			if w.rewrite && c != nil {
				w.out = binary.AppendVarint(append(w.out, w.src[w.run:start]...), count)
				w.run = w.pos
			}
		}
		if count > int64(len(w.src)-w.pos) { // each item takes at least a byte, but null: a bound all the same
			return fmt.Errorf("block of %d items in %d bytes", count, len(w.src)-w.pos)
		}
		for range count {
			if err := item(i); err != nil {
				return err
			}
			i++
		}
	}
}

func (w *binWalker) long() (int64, error) {
	v, n := binary.Varint(w.src[w.pos:])
	if n <= 0 {
		return 0, errTruncated
	}
	w.pos += n
	return v, nil
}

func (w *binWalker) skip(n int) error {
	if n < 0 || n > len(w.src)-w.pos {
		return errTruncated
	}
	w.pos += n
	return nil
}

func (w *binWalker) skipBytes() error {
	_, end, err := w.bytesAt(w.pos)
	w.pos = end
	return err
}

// bytesAt returns the bytes or string encoded at start, and where it ends.
func (w *binWalker) bytesAt(start int) ([]byte, int, error) {
	l, n := binary.Varint(w.src[start:])
	if n <= 0 || l < 0 || l > int64(len(w.src)-start-n) {
		return nil, start, errTruncated
	}
	end := start + n + int(l)
	return w.src[start+n : end], end, nil
}

// str gives the string at pos to fn, and writes what fn returned in its place when rewriting.
func (w *binWalker) str() error {
	start := w.pos
	b, end, err := w.bytesAt(start)
	if err != nil {
		return err
	}
	w.pos = end
	s, err := w.fn(w.path, b)
	if err != nil || !w.rewrite {
		return err
	}
	w.out = append(w.out, w.src[w.run:start]...)
	w.out = append(binary.AppendVarint(w.out, int64(len(s))), s...)
	w.run = end
	return nil
}

// envelope walks the body of an event written with the envelope schema env, giving fn the
// strings of its data under n (paths relative to the data, as in the map form). When rewriting it
// appends the rewritten body to out and returns it.
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
	if w.pos != len(w.src) {
		return fmt.Errorf("%d bytes after the record", len(w.src)-w.pos)
	}
	if w.rewrite {
		w.out = append(w.out, w.src[w.run:]...)
	}
	return nil
}
