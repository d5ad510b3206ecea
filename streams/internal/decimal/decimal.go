// Package decimal is the arithmetic of Avro's decimal logical type, shared by the SDK's codec and
// validation and by replay's Parquet mapping: the unscaled integer a decimal value is stored as at
// a scale within a precision, and that integer's big-endian two's complement bytes.
package decimal

import (
	"errors"
	"math/big"
	"math/bits"
)

var (
	// ErrScale: the value has more decimal places than the scale.
	ErrScale = errors.New("more decimal places than the scale")
	// ErrPrecision: the value has more digits than the precision.
	ErrPrecision = errors.New("more digits than the precision")
)

// Spec is one decimal(precision, scale) type.
type Spec struct {
	scale, limit      *big.Int // 10^scale, 10^precision
	precision, places int      // places: the scale
}

// New returns the decimal(precision, scale) type. It allocates nothing for a precision up to 76
// (Avro's largest 32-byte decimal): validation calls it per value.
func New(precision, scale int) Spec {
	return Spec{scale: pow10(scale), limit: pow10(precision), precision: precision, places: scale}
}

// Fits reports whether Unscaled(r) would succeed. It allocates nothing when r's numerator and
// denominator fit in 64 bits and the precision is at most 19 digits (any amount of money):
// a publish checks every decimal it writes.
func (s Spec) Fits(r *big.Rat) bool {
	num, den := r.Num(), r.Denom()
	if s.precision > 19 || s.places > 19 || !num.IsInt64() || !den.IsUint64() {
		_, err := s.Unscaled(r)
		return err == nil
	}
	n := num.Int64()
	abs := uint64(n)
	if n < 0 {
		abs = -abs
	}
	hi, lo := bits.Mul64(abs, s.scale.Uint64())
	if hi >= den.Uint64() { // the quotient needs more than 64 bits: more than 19 digits
		return false
	}
	q, rem := bits.Div64(hi, lo, den.Uint64())
	return rem == 0 && q < s.limit.Uint64()
}

// powers holds 10^0 through 10^76, shared and never written: Spec only reads them.
var powers = func() []*big.Int {
	p := make([]*big.Int, 77)
	p[0] = big.NewInt(1)
	for i := 1; i < len(p); i++ {
		p[i] = new(big.Int).Mul(p[i-1], big.NewInt(10))
	}
	return p
}()

func pow10(n int) *big.Int {
	if n >= 0 && n < len(powers) {
		return powers[n]
	}
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// Unscaled returns r × 10^scale, the integer the type stores r as; ErrScale when that is not an
// integer, ErrPrecision when it has more digits than the precision.
func (s Spec) Unscaled(r *big.Rat) (*big.Int, error) {
	n := new(big.Int).Mul(r.Num(), s.scale)
	var rem big.Int
	n.QuoRem(n, r.Denom(), &rem)
	switch {
	case rem.Sign() != 0:
		return nil, ErrScale
	case new(big.Int).Abs(n).Cmp(s.limit) >= 0:
		return nil, ErrPrecision
	}
	return n, nil
}

// Rat returns the value an unscaled integer n stands for.
func (s Spec) Rat(n *big.Int) *big.Rat { return new(big.Rat).SetFrac(n, s.scale) }

// TwosComplement returns the shortest big-endian two's complement bytes of n.
func TwosComplement(n *big.Int) []byte {
	switch n.Sign() {
	case 0:
		return []byte{0}
	case 1:
		b := n.Bytes()
		if b[0]&0x80 != 0 {
			return append([]byte{0}, b...)
		}
		return b
	}
	size := len(n.Bytes()) + 1
	mod := new(big.Int).Lsh(big.NewInt(1), uint(size*8))
	b := new(big.Int).Add(n, mod).Bytes()
	for len(b) > 1 && b[0] == 0xff && b[1]&0x80 != 0 {
		b = b[1:]
	}
	return b
}

// FromTwosComplement returns the integer of big-endian two's complement bytes.
func FromTwosComplement(b []byte) *big.Int {
	n := new(big.Int).SetBytes(b)
	if len(b) > 0 && b[0]&0x80 != 0 {
		n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(len(b)*8)))
	}
	return n
}
