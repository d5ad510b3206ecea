// Package avrobin reads the Avro binary encoding of a value without decoding it: it skips values
// by their schema and reads the longs, strings and block headers between them. The consumer reads
// a record's ordering key with it without decoding the record, and streams/privacy seals the
// personal data of an encoded record with it. hamba/avro decodes whole values only (its Reader's
// skipping is internal to its decoders), hence this small reader.
package avrobin

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hamba/avro/v2"
)

// ErrTruncated is returned for a value that ends before its schema says it does.
var ErrTruncated = errors.New("avrobin: truncated value")

// MaxDepth bounds the nesting of the values Skip walks.
const MaxDepth = 64

// Reader reads Src from Pos.
type Reader struct {
	Src []byte
	Pos int
}

// Long reads an int or a long.
func (r *Reader) Long() (int64, error) {
	v, n := binary.Varint(r.Src[r.Pos:])
	if n <= 0 {
		return 0, ErrTruncated
	}
	r.Pos += n
	return v, nil
}

// Bytes reads a bytes or string value, returning it (a slice of Src).
func (r *Reader) Bytes() ([]byte, error) {
	l, n := binary.Varint(r.Src[r.Pos:])
	if n <= 0 || l < 0 || l > int64(len(r.Src)-r.Pos-n) {
		return nil, ErrTruncated
	}
	start := r.Pos + n
	r.Pos = start + int(l)
	return r.Src[start:r.Pos], nil
}

// SkipN skips n bytes.
func (r *Reader) SkipN(n int) error {
	if n < 0 || n > len(r.Src)-r.Pos {
		return ErrTruncated
	}
	r.Pos += n
	return nil
}

// BlockHeader reads the header of a block of an array or a map: its item count (0 ends the value)
// and, when the writer gave it (a negative count), the block's size in bytes (else -1). The count
// is checked against the bytes left.
func (r *Reader) BlockHeader() (count, size int64, err error) {
	if count, err = r.Long(); err != nil {
		return 0, 0, err
	}
	size = -1
	if count < 0 {
		count = -count
		if size, err = r.Long(); err != nil {
			return 0, 0, err
		}
	}
	if count > int64(len(r.Src)-r.Pos) { // each item takes at least a byte but null: a bound all the same
		return 0, 0, fmt.Errorf("avrobin: a block of %d items in %d bytes", count, len(r.Src)-r.Pos)
	}
	return count, size, nil
}

// Branch reads the index of a union's branch and returns that branch.
func (r *Reader) Branch(u *avro.UnionSchema) (avro.Schema, error) {
	i, err := r.Long()
	if err != nil {
		return nil, err
	}
	if i < 0 || int(i) >= len(u.Types()) {
		return nil, fmt.Errorf("avrobin: union branch %d of %d", i, len(u.Types()))
	}
	return u.Types()[i], nil
}

// Skip skips one value of schema s.
func (r *Reader) Skip(s avro.Schema) error { return r.skip(s, 0) }

func (r *Reader) skip(s avro.Schema, depth int) error {
	if depth > MaxDepth {
		return fmt.Errorf("avrobin: nested deeper than %d", MaxDepth)
	}
	switch s := s.(type) {
	case *avro.RefSchema:
		return r.skip(s.Schema(), depth+1)
	case *avro.NullSchema:
		return nil
	case *avro.PrimitiveSchema:
		switch s.Type() {
		case avro.Boolean:
			return r.SkipN(1)
		case avro.Int, avro.Long:
			_, err := r.Long()
			return err
		case avro.Float:
			return r.SkipN(4)
		case avro.Double:
			return r.SkipN(8)
		case avro.Bytes, avro.String:
			_, err := r.Bytes()
			return err
		}
	case *avro.RecordSchema:
		for _, f := range s.Fields() {
			if err := r.skip(f.Type(), depth+1); err != nil {
				return err
			}
		}
		return nil
	case *avro.EnumSchema:
		_, err := r.Long()
		return err
	case *avro.FixedSchema:
		return r.SkipN(s.Size())
	case *avro.UnionSchema:
		b, err := r.Branch(s)
		if err != nil {
			return err
		}
		return r.skip(b, depth+1)
	case *avro.ArraySchema:
		return r.blocks(func() error { return r.skip(s.Items(), depth+1) })
	case *avro.MapSchema:
		return r.blocks(func() error {
			if _, err := r.Bytes(); err != nil {
				return err
			}
			return r.skip(s.Values(), depth+1)
		})
	}
	return fmt.Errorf("avrobin: schema type %s not supported", s.Type())
}

// blocks skips the blocks of an array or a map, by their byte sizes when given.
func (r *Reader) blocks(item func() error) error {
	for {
		count, size, err := r.BlockHeader()
		if err != nil || count == 0 {
			return err
		}
		if size >= 0 {
			if err := r.SkipN(int(min(size, int64(len(r.Src))+1))); err != nil {
				return err
			}
			continue
		}
		for range count {
			if err := item(); err != nil {
				return err
			}
		}
	}
}

// Field skips, in the record of schema rec at Pos, the fields before the one named name, and
// returns that field with Pos at its value (nil when rec has no such field: Pos is then past the
// record).
func (r *Reader) Field(rec *avro.RecordSchema, name string) (*avro.Field, error) {
	for _, f := range rec.Fields() {
		if f.Name() == name {
			return f, nil
		}
		if err := r.Skip(f.Type()); err != nil {
			return nil, fmt.Errorf("%s: %w", f.Name(), err)
		}
	}
	return nil, nil
}

// StringAt reads the string at path in the record of schema rec at Pos: a field of rec, then
// fields of the records it holds, each possibly an optional union. A null reads as "". ok is false
// when a field of path is missing, or is not a record (or, last, a string) in the schema.
func (r *Reader) StringAt(rec *avro.RecordSchema, path ...string) (s string, ok bool, err error) {
	for i, name := range path {
		f, err := r.Field(rec, name)
		if err != nil || f == nil {
			return "", false, err
		}
		t := f.Type()
		if u, isUnion := t.(*avro.UnionSchema); isUnion {
			if t, err = r.Branch(u); err != nil {
				return "", false, err
			}
		}
		switch t := t.(type) {
		case *avro.NullSchema:
			return "", i == len(path)-1, nil
		case *avro.RecordSchema:
			rec = t
			continue
		case *avro.PrimitiveSchema:
			if i == len(path)-1 && t.Type() == avro.String {
				b, err := r.Bytes()
				return string(b), err == nil, err
			}
		}
		return "", false, nil
	}
	return "", false, nil
}
