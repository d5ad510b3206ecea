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

// TestFits agrees with Unscaled on values around the limits of the 64-bit fast path and beyond it.
func TestFits(t *testing.T) {
	specs := []Spec{New(5, 2), New(12, 0), New(18, 4), New(19, 19), New(19, 0), New(20, 2), New(38, 10)}
	values := []string{"0", "1", "-1", "123.45", "-999.99", "999.999", "1000", "0.001", "1/3", "-1/3", "2/5",
		"9223372036854775807", "-9223372036854775808", "18446744073709551615", "1844674407370955161.5",
		"99999999999999.9999", "-99999999999999.9999", "999999999999999999", "1000000000000000000",
		"9999999999999999999", "0.9999999999999999999", "0.00000000000000000001", "1/18446744073709551615",
		"123456789012345678901234567890", "-1/7"}
	for _, s := range specs {
		for _, in := range values {
			r, ok := new(big.Rat).SetString(in)
			if !ok {
				t.Fatalf("bad value %s", in)
			}
			_, err := s.Unscaled(r)
			if got := s.Fits(r); got != (err == nil) {
				t.Errorf("decimal(%d,%d) %s: Fits %v, Unscaled error %v", s.precision, s.places, in, got, err)
			}
		}
	}
	r := big.NewRat(12345, 100)
	if n := testing.AllocsPerRun(100, func() { New(12, 2).Fits(r) }); n != 0 {
		t.Errorf("Fits allocates %v times", n)
	}
}
