package privacy

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
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

// Seal implements streams.FieldProtector: it returns a copy of env.Data whose pii strings are
// sealed with the key of the event's (tenantId, subject), creating the key on first use.
func (p *Protector) Seal(ctx context.Context, env *streams.Envelope, v *schemas.Version) (map[string]any, error) {
	pl := p.subjects.plan(v)
	if pl.seal == nil || env.Data == nil {
		return env.Data, nil
	}
	tenant, subject, err := pl.names(env)
	if err != nil {
		return nil, err
	}
	id, a, err := p.keys.sealKey(ctx, tenant, subject)
	if err != nil {
		return nil, err
	}
	var scratch sealScratch // reused across the event's values: one allocation a value, its string
	out, err := walk(pl.seal, env.Data, "", true, func(path, s string) (string, error) {
		if strings.HasPrefix(s, Prefix) {
			return "", fmt.Errorf("%w: data.%s: a clear value may not start with %q", streams.ErrInvalidEvent, path, Prefix)
		}
		p.sealedValues.Add(1)
		return scratch.seal(a, id, env.EventID, path, s)
	})
	if err != nil {
		return nil, err
	}
	m, _ := out.(map[string]any)
	return m, nil
}

// names returns the tenant and subject of env, checked against the key grammar.
func (pl *plan) names(env *streams.Envelope) (string, string, error) {
	subject := pl.subjectOf(env.Data)
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

// sealScratch holds the buffers of one event's sealing.
type sealScratch struct{ aad, ct, out []byte }

// seal returns Prefix + base64url(id | nonce | AES-GCM(s, aad = eventId NUL path)).
func (b *sealScratch) seal(a cipher.AEAD, id KeyID, eventID, path, s string) (string, error) {
	b.ct = append(b.ct[:0], id[:]...)
	b.ct = append(b.ct, make([]byte, nonceLen)...)
	if _, err := rand.Read(b.ct[keyIDLen:]); err != nil {
		return "", fmt.Errorf("privacy: random nonce: %w", err)
	}
	b.aad = aadOf(b.aad[:0], eventID, path)
	b.ct = a.Seal(b.ct, b.ct[keyIDLen:keyIDLen+nonceLen], []byte(s), b.aad)
	b.out = append(b.out[:0], Prefix...)
	b.out = base64.RawURLEncoding.AppendEncode(b.out, b.ct)
	return string(b.out), nil
}

// aadOf appends the associated data of a value: its event's id, NUL, its field path.
func aadOf(b []byte, eventID, path string) []byte {
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
	var tenant, subject string
	var namesErr error
	named := false
	keys := map[KeyID]cipher.AEAD{}
	var aad []byte
	_, err := walk(pl.seal, env.Data, "", false, func(path, s string) (string, error) {
		if !strings.HasPrefix(s, Prefix) {
			return s, nil
		}
		if !named {
			tenant, subject, namesErr = pl.names(env)
			named = true
		}
		if namesErr != nil {
			return "", fmt.Errorf("%w: data.%s is sealed but the event names no subject", ErrTampered, path)
		}
		raw, err := base64.RawURLEncoding.DecodeString(s[len(Prefix):])
		if err != nil || len(raw) < keyIDLen+nonceLen+16 {
			return "", fmt.Errorf("%w: data.%s is not a sealed value", ErrTampered, path)
		}
		id := KeyID(raw[:keyIDLen])
		a, ok := keys[id]
		if !ok {
			if a, err = p.keys.openKey(ctx, tenant, subject, id); err != nil {
				return "", err
			}
			keys[id] = a
		}
		if a == nil {
			p.erasedValues.Add(1)
			return Erased, nil
		}
		aad = aadOf(aad[:0], env.EventID, path)
		clear, err := a.Open(raw[keyIDLen+nonceLen:keyIDLen+nonceLen], raw[keyIDLen:keyIDLen+nonceLen], raw[keyIDLen+nonceLen:], aad)
		if err != nil {
			return "", fmt.Errorf("%w: data.%s of event %s", ErrTampered, path, env.EventID)
		}
		p.openedValues.Add(1)
		return string(clear), nil
	})
	return err
}

// walk applies fn to every string of v under n, at its path. With clone it returns a copy of the
// records and arrays it changes (v is the caller's) and refuses a value of another Go type than
// the map form's where a sealable value belongs, so nothing passes unsealed; without, it changes v
// in place.
func walk(n *node, v any, path string, clone bool, fn func(path, s string) (string, error)) (any, error) {
	if v == nil {
		return nil, nil
	}
	bad := func() (any, error) {
		if !clone {
			return v, nil
		}
		return nil, fmt.Errorf("%w: data.%s: a %T where the schema wants another type", streams.ErrInvalidEvent, path, v)
	}
	switch {
	case n.str:
		s, ok := v.(string)
		if !ok {
			return bad()
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
			return bad()
		}
		out := items
		if clone {
			out = make([]any, len(items))
		}
		for i, it := range items {
			nv, err := walk(n.items, it, path+"["+strconv.Itoa(i)+"]", clone, fn)
			if err != nil {
				return nil, err
			}
			out[i] = nv
		}
		return out, nil
	case n.values != nil:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		out := m
		if clone {
			out = maps.Clone(m)
		}
		for k, mv := range m {
			nv, err := walk(n.values, mv, path+"{"+k+"}", clone, fn)
			if err != nil {
				return nil, err
			}
			out[k] = nv
		}
		return out, nil
	default:
		m, ok := v.(map[string]any)
		if !ok {
			return bad()
		}
		out := m
		if clone {
			out = maps.Clone(m)
		}
		for _, c := range n.fields {
			p := c.field
			if path != "" {
				p = path + "." + c.field
			}
			nv, err := walk(c, m[c.field], p, clone, fn)
			if err != nil {
				return nil, err
			}
			if _, present := m[c.field]; present || nv != nil {
				out[c.field] = nv
			}
		}
		return out, nil
	}
}
