package decimal

import (
	"bytes"
	"errors"
	"math/big"
	"testing"
)

// TestTwosComplement: the shortest two's complement bytes, and back.
func TestTwosComplement(t *testing.T) {
	for n, want := range map[int64][]byte{0: {0}, 1: {1}, 127: {0x7f}, 128: {0, 0x80}, 255: {0, 0xff}, 256: {1, 0},
		-1: {0xff}, -128: {0x80}, -129: {0xff, 0x7f}, -256: {0xff, 0}, -32768: {0x80, 0}, -32769: {0xff, 0x7f, 0xff}} {
		got := TwosComplement(big.NewInt(n))
		if !bytes.Equal(got, want) {
			t.Errorf("%d: %x, want %x", n, got, want)
		}
		if back := FromTwosComplement(got); back.Int64() != n {
			t.Errorf("%d: back %s", n, back)
		}
	}
}

// TestUnscaled: decimal(5,2) stores 123.45 as 12345 and refuses a third decimal place and a sixth
// digit.
func TestUnscaled(t *testing.T) {
	s := New(5, 2)
	for in, want := range map[string]error{"123.45": nil, "-999.99": nil, "0.001": ErrScale, "1000": ErrPrecision, "-1000.00": ErrPrecision} {
		r, _ := new(big.Rat).SetString(in)
		n, err := s.Unscaled(r)
		if !errors.Is(err, want) {
			t.Errorf("%s: %v, want %v", in, err, want)
		}
		if err == nil && s.Rat(n).Cmp(r) != 0 {
			t.Errorf("%s: unscaled %s is %s", in, n, s.Rat(n).RatString())
		}
	}
}
