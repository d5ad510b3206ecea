package spool

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

const (
	formatVersion = 1
	// headerLen is crc32c + version + enqueued + size; see the file layout in the package doc.
	headerLen = 4 + 1 + 8 + 8
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// payloadSize is what an entry counts against MaxBytes.
func payloadSize(e *Entry) int64 {
	n := len(e.Topic) + len(e.Key) + len(e.Value) + len(e.EventID)
	for _, h := range e.Headers {
		n += len(h.Key) + len(h.Value)
	}
	return int64(n)
}

// encodedLen is the exact length encodeEntry writes for e.
func encodedLen(e *Entry) int {
	n := headerLen + strLen(len(e.Topic)) + nullableLen(e.Key) + nullableLen(e.Value) +
		strLen(len(e.EventID)) + uvarintLen(uint64(len(e.Headers)))
	for _, h := range e.Headers {
		n += strLen(len(h.Key)) + nullableLen(h.Value)
	}
	return n
}

func uvarintLen(x uint64) int {
	n := 1
	for x >= 0x80 {
		x >>= 7
		n++
	}
	return n
}

func strLen(n int) int { return uvarintLen(uint64(n)) + n }

func nullableLen(b []byte) int {
	if b == nil {
		return 1
	}
	return uvarintLen(uint64(len(b))+1) + len(b)
}

// encodeEntry writes the value stored under key into dst, which must be exactly encodedLen(e) long.
func encodeEntry(dst, key []byte, e *Entry, enqueued time.Time, size int64) {
	dst[4] = formatVersion
	binary.BigEndian.PutUint64(dst[5:], uint64(enqueued.UnixNano()))
	binary.BigEndian.PutUint64(dst[13:], uint64(size))
	b := dst[headerLen:headerLen]
	b = appendString(b, e.Topic)
	b = appendNullable(b, e.Key)
	b = appendNullable(b, e.Value)
	b = appendString(b, e.EventID)
	b = binary.AppendUvarint(b, uint64(len(e.Headers)))
	for _, h := range e.Headers {
		b = appendString(b, h.Key)
		b = appendNullable(b, h.Value)
	}
	binary.BigEndian.PutUint32(dst, checksum(key, dst[4:]))
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendNullable(b, v []byte) []byte {
	if v == nil {
		return append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(len(v))+1)
	return append(b, v...)
}

func checksum(key, rest []byte) uint32 {
	return crc32.Update(crc32.Update(0, castagnoli, key), castagnoli, rest)
}

// intact reports whether the value v stored under key passes its checksum.
func intact(key, v []byte) bool {
	return len(v) >= headerLen && checksum(key, v[4:]) == binary.BigEndian.Uint32(v)
}

// storedSize returns the payload size recorded in a stored value without verifying its checksum,
// bounded by the value's length so that a damaged header cannot claim more than the entry holds.
func storedSize(v []byte) int64 {
	if len(v) < headerLen {
		return int64(len(v))
	}
	return min(int64(binary.BigEndian.Uint64(v[13:])), int64(len(v)-headerLen))
}

// storedEnqueued returns the enqueue time recorded in a stored value without verifying its
// checksum; the zero time when the value is too short to hold one.
func storedEnqueued(v []byte) time.Time {
	if len(v) < headerLen {
		return time.Time{}
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v[5:]))).UTC()
}

// decodeEntry verifies and decodes the value v stored under key. The returned Entry owns its
// memory (v may be bbolt's mmap, valid only during the transaction). Failures are *CorruptError.
func decodeEntry(key, v []byte) (Entry, error) {
	if len(key) != 8 {
		return Entry{}, &CorruptError{Reason: fmt.Sprintf("key of %d bytes, want 8", len(key))}
	}
	seq := binary.BigEndian.Uint64(key)
	corrupt := func(format string, args ...any) (Entry, error) {
		return Entry{}, &CorruptError{Seq: seq, Reason: fmt.Sprintf(format, args...)}
	}
	if len(v) < headerLen {
		return corrupt("value of %d bytes is shorter than the %d-byte header", len(v), headerLen)
	}
	if !intact(key, v) {
		return corrupt("checksum mismatch")
	}
	if v[4] != formatVersion {
		return corrupt("unknown format version %d", v[4])
	}
	// One copy of the variable part backs every byte slice of the entry; capacities are capped so
	// that appending to one field cannot overwrite the next.
	d := decoder{buf: append([]byte(nil), v[headerLen:]...)}
	e := Entry{
		Seq:      seq,
		Enqueued: time.Unix(0, int64(binary.BigEndian.Uint64(v[5:]))).UTC(),
	}
	e.Topic = d.string()
	e.Key = d.nullable()
	e.Value = d.nullable()
	e.EventID = d.string()
	if n := d.uvarint(); n > 0 && d.err == nil {
		// Each header takes at least two bytes, which bounds a damaged count.
		if n > uint64(len(d.buf)-d.off)/2 {
			return corrupt("header count %d exceeds the remaining %d bytes", n, len(d.buf)-d.off)
		}
		e.Headers = make([]Header, n)
		for i := range e.Headers {
			e.Headers[i] = Header{Key: d.string(), Value: d.nullable()}
		}
	}
	if d.err != nil {
		return corrupt("%v", d.err)
	}
	if d.off != len(d.buf) {
		return corrupt("%d trailing bytes", len(d.buf)-d.off)
	}
	if size := binary.BigEndian.Uint64(v[13:]); size != uint64(payloadSize(&e)) {
		return corrupt("recorded size %d, decoded payload is %d bytes", size, payloadSize(&e))
	}
	return e, nil
}

// decoder reads the variable part of an entry; the first failure sticks in err and later reads
// return zero values.
type decoder struct {
	buf []byte
	off int
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	x, n := binary.Uvarint(d.buf[d.off:])
	if n <= 0 {
		d.err = fmt.Errorf("bad varint at offset %d", d.off)
		return 0
	}
	d.off += n
	return x
}

func (d *decoder) bytes(n uint64) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.buf)-d.off) {
		d.err = fmt.Errorf("length %d at offset %d exceeds the remaining %d bytes", n, d.off, len(d.buf)-d.off)
		return nil
	}
	end := d.off + int(n)
	b := d.buf[d.off:end:end]
	d.off = end
	return b
}

func (d *decoder) string() string { return string(d.bytes(d.uvarint())) }

func (d *decoder) nullable() []byte {
	n := d.uvarint()
	if n == 0 || d.err != nil {
		return nil
	}
	return d.bytes(n - 1)
}
