package privacy

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/internal/avrobin"
)

// Prefix starts every sealed string (see the package doc for the format).
const Prefix = "hbpii1:"

// Erased is what a sealed string of an erased subject reads back as, in every string position
// (required or optional, alone or in an array), so every reader and format shows it the same way.
const Erased = "[erased]"

const (
	keyIDLen = len(KeyID{})
	nonceLen = 12
)

// Protector seals and opens the pii fields of events (a streams.FieldProtector): give it to the
// Serde of producers, consumers, dispatchers and replay with streams.WithFieldProtector.
// Safe for concurrent use.
type Protector struct {
	subjects *Subjects
	keys     *Keys

	sealedValues, openedValues, erasedValues atomic.Int64
}

var _ streams.FieldProtector = (*Protector)(nil)

// NewProtector returns a Protector that finds subjects with subjects and keys in keys.
func NewProtector(subjects *Subjects, keys *Keys) *Protector {
	return &Protector{subjects: subjects, keys: keys}
}

// Counts returns how many values were sealed, opened and read back as Erased so far.
func (p *Protector) Counts() (sealed, opened, erased int64) {
	return p.sealedValues.Load(), p.openedValues.Load(), p.erasedValues.Load()
}

// Seal implements streams.FieldProtector: it appends to dst the body of env (written with v's
// envelope schema) in which every pii string of the data is sealed with the key of the event's
// (tenantId, subject), creating the key on first use.
func (p *Protector) Seal(ctx context.Context, env *streams.Envelope, v *schemas.Version, dst, body []byte) ([]byte, error) {
	pl := p.subjects.plan(v)
	if pl.seal == nil {
		return append(dst, body...), nil
	}
	subject := pl.subjectOf(env.Data)
	if env.Data == nil { // a typed event: read the subject from its encoding
		var err error
		if subject, err = pl.subjectIn(v, body); err != nil {
			return nil, fmt.Errorf("%w: %s %s: %v", streams.ErrInvalidEvent, env.EventType, v, err)
		}
	}
	tenant, subject, err := pl.names(env, subject)
	if err != nil {
		return nil, err
	}
	id, a, err := p.keys.sealKey(ctx, tenant, subject)
	if err != nil {
		return nil, err
	}
	b := sealScratches.Get().(*sealScratch)
	defer b.release()
	var sealed int64
	w := binWalker{Reader: avrobin.Reader{Src: body}, rewrite: true, nulls: true, out: dst, path: b.path[:0], fn: func(path, s []byte) ([]byte, error) {
		if bytes.HasPrefix(s, prefix) {
			return nil, fmt.Errorf("%w: data.%s: a clear value may not start with %q", streams.ErrInvalidEvent, path, Prefix)
		}
		sealed++
		return b.seal(a, id, env.EventID, path, s)
	}}
	err = w.envelope(v.Envelope, pl.seal)
	b.path = w.path[:0]
	p.sealedValues.Add(sealed)
	if errors.Is(err, streams.ErrInvalidEvent) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("%w: sealing %s %s: %v", streams.ErrInvalidEvent, env.EventType, v, err)
	}
	return w.out, nil
}

// prefix is Prefix as bytes.
var prefix = []byte(Prefix)

// names returns the tenant of env and subject (env's, found in its data), checked against the key
// grammar.
func (pl *plan) names(env *streams.Envelope, subject string) (string, string, error) {
	if subject == "" {
		paths := make([]string, len(pl.subject))
		for i, sp := range pl.subject {
			paths[i] = "data." + strings.Join(sp, ".")
		}
		return "", "", fmt.Errorf("%w: %s %s: one of %s must be set (topics/privacy.yaml)", ErrNoSubject, env.EventType, env.Version, strings.Join(paths, ", "))
	}
	if !validName(subject) || !validName(env.Metadata.TenantID) {
		return "", "", fmt.Errorf("%w: the tenantId and subject of a %s must match %s", ErrNoSubject, env.EventType, SubjectGrammar)
	}
	return env.Metadata.TenantID, subject, nil
}

// sealScratch holds the buffers of one event's sealing, reused across events (sealScratches).
type sealScratch struct {
	path, aad, ct, out []byte
	nonces             *mrand.ChaCha8 // seeded from crypto/rand when the scratch is made
}

var sealScratches = sync.Pool{New: func() any {
	var seed [32]byte
	_, _ = rand.Read(seed[:]) // never fails on the platforms Go supports (it crashes the program instead)
	return &sealScratch{path: make([]byte, 0, 64), nonces: mrand.NewChaCha8(seed)}
}}

// release returns b to the pool.
func (b *sealScratch) release() {
	*b = sealScratch{path: b.path[:0], aad: b.aad[:0], ct: b.ct[:0], out: b.out[:0], nonces: b.nonces}
	sealScratches.Put(b)
}

// seal returns Prefix + base64url(id | nonce | AES-GCM(s, aad = eventId NUL path)), in a buffer
// of b that the next call reuses. The nonce is nonceLen random bytes of a ChaCha8 generator of
// the scratch: a cryptographically strong generator (math/rand/v2), seeded from crypto/rand, and
// used by one goroutine at a time; it draws a nonce several times faster than crypto/rand, whose
// reads were a sixth of the cost of sealing a value. GCM asks of a nonce only that it never repeats
// under one key, which random 96-bit nonces meet with the usual bound (2^32 values per key).
func (b *sealScratch) seal(a cipher.AEAD, id KeyID, eventID string, path, s []byte) ([]byte, error) {
	b.ct = append(b.ct[:0], id[:]...)
	b.ct = binary.LittleEndian.AppendUint64(b.ct, b.nonces.Uint64())
	b.ct = binary.LittleEndian.AppendUint32(b.ct, uint32(b.nonces.Uint64()))
	b.aad = aadOf(b.aad[:0], eventID, path)
	b.ct = a.Seal(b.ct, b.ct[keyIDLen:keyIDLen+nonceLen], s, b.aad)
	b.out = append(b.out[:0], Prefix...)
	b.out = base64.RawURLEncoding.AppendEncode(b.out, b.ct)
	return b.out, nil
}

// aadOf appends the associated data of a value: its event's id, NUL, its field path.
func aadOf(b []byte, eventID string, path []byte) []byte {
	return append(append(append(b, eventID...), 0), path...)
}

// Open implements streams.FieldProtector: it replaces, in place, every sealed string of env.Data
// by its clear value, or by Erased when the key it names is gone. Clear strings (events published
// before protection) are left as they are.
func (p *Protector) Open(ctx context.Context, env *streams.Envelope, v *schemas.Version) error {
	pl := p.subjects.plan(v)
	if pl.seal == nil || env.Data == nil {
		return nil
	}
	o := p.opener(ctx, env.EventID)
	o.pl, o.env = pl, env
	return o.run(pl.seal, env.Data)
}

// OpenData is Open for part of an event's data read back apart from its envelope: it replaces, in
// place, every sealed string of data, top-level fields of the data of event eventID of tenant in
// v's shape (the map form, or generic JSON values as encoding/json decodes the SDK's canonical
// JSON), by its clear value, or by Erased when its key is gone. Fields of v that data lacks are
// skipped. The subject is not needed: the key is found by the id the sealed value carries, among
// the tenant's live keys. A local view (streams/views) keeps, per top-level field, the event that
// wrote it, and opens its items with it as they are read.
func (p *Protector) OpenData(ctx context.Context, tenant, eventID string, v *schemas.Version, data map[string]any) error {
	pl := p.subjects.plan(v)
	if pl.seal == nil || data == nil {
		return nil
	}
	o := p.opener(ctx, eventID)
	o.tenant = tenant
	return o.run(pl.seal, data)
}

// opener opens the sealed strings of one event. Its buffers (the path, the associated data, the
// base64 text, the ciphertext, the plaintext) are reused across the event's values and, through
// openers, across events; it keeps the key of the value opened last (an event's values are sealed
// with one key).
type opener struct {
	p       *Protector
	ctx     context.Context
	eventID string
	// The key of a value is found by the event's subject (Open: pl and env) or by the tenant and
	// the key id alone (OpenData: tenant).
	pl     *plan
	env    *streams.Envelope
	tenant string

	named           bool
	subject         string
	namesErr        error
	lastID          KeyID
	last            cipher.AEAD // nil with haveLast: erased
	haveLast        bool
	opened, erased  int64
	path, aad, text []byte
	raw, out        []byte
	clear           strings.Builder // the event's clear values; a new one each event
}

var openers = sync.Pool{New: func() any { return &opener{path: make([]byte, 0, 64)} }}

func (p *Protector) opener(ctx context.Context, eventID string) *opener {
	o := openers.Get().(*opener)
	o.p, o.ctx, o.eventID = p, ctx, eventID
	return o
}

// run opens the strings of data under n, then counts them and returns o to the pool.
func (o *opener) run(n *node, data map[string]any) error {
	_, err := walk(n, data, o.path[:0], o.open)
	o.release()
	return err
}

// release counts what o opened and returns it to the pool.
func (o *opener) release() {
	o.p.openedValues.Add(o.opened)
	o.p.erasedValues.Add(o.erased)
	clear(o.out[:cap(o.out)]) // no clear value waits in the pool
	*o = opener{path: o.path[:0], aad: o.aad[:0], text: o.text[:0], raw: o.raw[:0], out: o.out[:0]}
	openers.Put(o)
}

// OpenBody implements streams.FieldProtector: it appends to dst the body of an event written with
// v's envelope schema in which every sealed string of the data is replaced by its clear value, or
// by Erased when its key is gone. The key is found by the tenant and the key id each sealed value
// carries, as OpenData does.
func (p *Protector) OpenBody(ctx context.Context, v *schemas.Version, dst, body []byte) ([]byte, error) {
	pl := p.subjects.plan(v)
	if pl.seal == nil || !bytes.Contains(body, prefix) {
		return append(dst, body...), nil
	}
	eventID, tenant, err := envelopeIDs(v.Envelope, body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s %s: %v", streams.ErrMalformedRecord, v.EventType, v, err)
	}
	o := p.opener(ctx, eventID)
	defer o.release()
	o.tenant = tenant
	var openErr error // a value that does not open, or its key unreachable
	w := binWalker{Reader: avrobin.Reader{Src: body}, rewrite: true, out: dst, path: o.path[:0], fn: func(path, s []byte) ([]byte, error) {
		if !bytes.HasPrefix(s, prefix) {
			return s, nil
		}
		clear, err := o.openSealed(path, s)
		openErr = err
		return clear, err
	}}
	err = w.envelope(v.Envelope, pl.seal)
	o.path = w.path[:0]
	switch {
	case openErr != nil:
		return nil, openErr
	case err != nil:
		return nil, fmt.Errorf("%w: %s %s: %v", streams.ErrMalformedRecord, v.EventType, v, err)
	}
	return w.out, nil
}

// envelopeIDs reads the eventId and the metadata's tenantId of an event's body written with env.
func envelopeIDs(env *avro.RecordSchema, body []byte) (eventID, tenant string, err error) {
	for _, f := range []struct {
		to   *string
		path []string
	}{{&eventID, []string{"eventId"}}, {&tenant, []string{"metadata", "tenantId"}}} {
		r := avrobin.Reader{Src: body}
		v, ok, err := r.StringAt(env, f.path...)
		if err != nil || !ok {
			return "", "", fmt.Errorf("%s: not a string (%v)", strings.Join(f.path, "."), err)
		}
		*f.to = v
	}
	return eventID, tenant, nil
}

// key returns the key id names for the value at path (nil: erased).
func (o *opener) key(id KeyID, path []byte) (cipher.AEAD, error) {
	if o.env == nil {
		return o.p.keys.openKeyByID(o.ctx, o.tenant, id)
	}
	if !o.named {
		o.tenant, o.subject, o.namesErr = o.pl.names(o.env, o.pl.subjectOf(o.env.Data))
		o.named = true
	}
	if o.namesErr != nil {
		return nil, fmt.Errorf("%w: data.%s is sealed but the event names no subject", ErrTampered, path)
	}
	return o.p.keys.openKey(o.ctx, o.tenant, o.subject, id)
}

func (o *opener) open(path []byte, s string) (string, error) {
	if !strings.HasPrefix(s, Prefix) {
		return s, nil
	}
	o.text = append(o.text[:0], s...)
	clear, err := o.openSealed(path, o.text)
	if err != nil {
		return "", err
	}
	if o.last == nil {
		return Erased, nil
	}
	// The event's clear values share one buffer (a string each would be an allocation each): a
	// Builder never changes bytes it has written, so each value is a substring of it.
	if o.clear.Cap()-o.clear.Len() < len(clear) {
		o.clear.Grow(max(len(clear), 256))
	}
	start := o.clear.Len()
	o.clear.Write(clear)
	return o.clear.String()[start:], nil
}

// erased is Erased as bytes.
var erased = []byte(Erased)

// openSealed returns the clear value of sealed (Prefix and its base64 text) in a buffer of o that
// the next call reuses, or Erased when its key is gone (o.last is then nil).
func (o *opener) openSealed(path, sealed []byte) ([]byte, error) {
	text := sealed[len(Prefix):]
	size := base64.RawURLEncoding.DecodedLen(len(text))
	o.raw = slices.Grow(o.raw[:0], size)[:size]
	n, err := base64.RawURLEncoding.Decode(o.raw, text)
	if err != nil || n < keyIDLen+nonceLen+16 {
		return nil, fmt.Errorf("%w: data.%s is not a sealed value", ErrTampered, path)
	}
	raw := o.raw[:n]
	id := KeyID(raw[:keyIDLen])
	if !o.haveLast || id != o.lastID {
		a, err := o.key(id, path)
		if err != nil {
			return nil, err
		}
		o.lastID, o.last, o.haveLast = id, a, true
	}
	if o.last == nil {
		o.erased++
		return erased, nil
	}
	o.aad = aadOf(o.aad[:0], o.eventID, path)
	clear, err := o.last.Open(o.out[:0], raw[keyIDLen:keyIDLen+nonceLen], raw[keyIDLen+nonceLen:], o.aad)
	if err != nil {
		return nil, fmt.Errorf("%w: data.%s of event %s", ErrTampered, path, o.eventID)
	}
	o.out = clear
	o.opened++
	return clear, nil
}

// replaced reports whether walking a value of n in place may return another value than the one
// given (a string, or an array given as []string), which must be stored back; a record or map is
// changed where it is.
func (n *node) replaced() bool { return n.str || n.items != nil }

// walk applies fn to every string of v under n, at its path (appended to path, a buffer walk
// reuses: fn must not keep it), in place: it returns the value to store back where v was (a new
// one for a string, or for an array given as []string). A value of another Go type than the map
// form's is left as it is.
func walk(n *node, v any, path []byte, fn func(path []byte, s string) (string, error)) (any, error) {
	if v == nil {
		return nil, nil
	}
	switch {
	case n.str:
		s, ok := v.(string)
		if !ok {
			return v, nil
		}
		return fn(path, s)
	case n.items != nil:
		var items []any
		switch a := v.(type) {
		case []any:
			items = a
		case []string:
			items = make([]any, len(a))
			for i, s := range a {
				items[i] = s
			}
		default:
			return v, nil
		}
		for i, it := range items {
			p := append(strconv.AppendInt(append(path, '['), int64(i), 10), ']')
			nv, err := walk(n.items, it, p, fn)
			if err != nil {
				return nil, err
			}
			if n.items.replaced() {
				items[i] = nv
			}
		}
		return items, nil
	case n.values != nil:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for k, mv := range m {
			nv, err := walk(n.values, mv, append(append(append(path, '{'), k...), '}'), fn)
			if err != nil {
				return nil, err
			}
			m[k] = nv
		}
		return m, nil
	default:
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		for _, c := range n.fields {
			mv := m[c.field]
			if mv == nil { // absent or null
				continue
			}
			p := path
			if len(p) > 0 {
				p = append(p, '.')
			}
			p = append(p, c.field...)
			nv, err := walk(c, mv, p, fn)
			if err != nil {
				return nil, err
			}
			if c.replaced() {
				m[c.field] = nv
			}
		}
		return m, nil
	}
}
