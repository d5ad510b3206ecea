package simulate

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"github.com/google/uuid"
	"github.com/hamba/avro/v2"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

// Options configure a Generator. A zero field takes the default its comment gives.
type Options struct {
	// Seed selects the traffic: the same Options give the same events.
	Seed int64
	// Tenants is the number of hotel groups, 1 to 65535. Default 10.
	Tenants int
	// Skew is the Zipf exponent of the tenants' shares of the traffic: tenant i (from 0) produces a
	// share proportional to 1/(i+1)^Skew. 0 spreads traffic evenly; 1 to 1.5 lets the first few
	// groups produce most of it. 0 to 5.
	Skew float64
	// Start is the timestamp of the first event. Default 2026-11-27T00:00:00Z.
	Start time.Time
	// Step is how far event timestamps advance from one event to the next. Default 10ms.
	Step time.Duration
}

// DefaultStart is the timestamp of the first event when Options.Start is zero.
var DefaultStart = time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)

// Event is one generated event and the system that publishes it.
type Event struct {
	// System is the event type's owner in the catalog.
	System   string
	Envelope *streams.Envelope
	Position
}

// Position is where an event stands in its tenant's sequence on its topic (see the package
// documentation).
type Position struct {
	Tenant string
	// Topic is the catalog's topic for the event type.
	Topic string
	// Seq is 1 for the tenant's first event on Topic and increases by one per event, with no gap.
	Seq uint64
	// Key is the ordering key the consumer keeps order by: "<topic>/<tenant>", or
	// "<topic>/<tenant>/<reservationId>" for the types the catalog orders by reservationId.
	Key string
}

// Generator produces the events of one simulated run. Next is not safe for concurrent use; Seq,
// Tenants and Share are, and may run while another goroutine calls Next.
type Generator struct {
	cat     *topics.Catalog
	opts    Options
	tag     uint32
	rng     *rand.Rand
	cum     []float64 // cumulative tenant shares, the last one 1
	names   []string
	tenants []*tenant
	types   map[string]*eventType
	n       int64
}

// eventType is what the generator knows about one event type.
type eventType struct {
	name    string
	system  string
	version string
	data    map[string]any // the golden example's data
	topic   int            // index in cat.Topics
	ordered bool           // the catalog orders it by reservationId
}

// New returns a generator of the catalog's event types, with payloads from the golden examples of
// their newest schema versions in set. It refuses a catalog that orders a type by a data field other
// than reservationId (the generator could not name the key), and an event type without an example.
func New(cat *topics.Catalog, set *schemas.Set, o Options) (*Generator, error) {
	if o.Tenants == 0 {
		o.Tenants = 10
	}
	if o.Start.IsZero() {
		o.Start = DefaultStart
	}
	if o.Step == 0 {
		o.Step = 10 * time.Millisecond
	}
	switch {
	case o.Tenants < 1 || o.Tenants > math.MaxUint16:
		return nil, fmt.Errorf("simulate: Tenants: %d is not between 1 and %d", o.Tenants, math.MaxUint16)
	case o.Skew < 0 || o.Skew > 5 || math.IsNaN(o.Skew):
		return nil, fmt.Errorf("simulate: Skew: %v is not between 0 and 5", o.Skew)
	case o.Step < 0:
		return nil, fmt.Errorf("simulate: Step: %s is negative", o.Step)
	case len(cat.Topics) > 1<<12:
		return nil, fmt.Errorf("simulate: the catalog has %d topics, more than the eventId can number (4096)", len(cat.Topics))
	}
	g := &Generator{cat: cat, opts: o, types: map[string]*eventType{}}
	g.tag = uint32(mix(uint64(o.Seed), 0x5eed) >> 40) // 24 bits
	g.rng = rand.New(rand.NewPCG(uint64(o.Seed), mix(uint64(o.Seed), 1)))
	lookup := func(et, version string) (*avro.RecordSchema, string, error) {
		v, ok := set.Version(et, version)
		if version == "" {
			v, ok = set.Latest(et)
		}
		if !ok {
			return nil, "", fmt.Errorf("%w: %s %s", streams.ErrUnknownEventType, et, version)
		}
		return v.Data, v.String(), nil
	}
	for _, name := range cat.EventTypes() {
		v, ok := set.Latest(name)
		if !ok || len(v.Example) == 0 {
			return nil, fmt.Errorf("simulate: %s has no schema with a golden example", name)
		}
		env, err := streams.ParseJSON(v.Example, lookup)
		if err != nil {
			return nil, fmt.Errorf("simulate: golden example of %s: %w", name, err)
		}
		owner, _ := cat.Owner(name)
		tp, _ := cat.TopicFor(name)
		et := &eventType{name: name, system: owner, version: v.String(), data: env.Data,
			topic: slices.IndexFunc(cat.Topics, func(t topics.Topic) bool { return t.Name == tp.Name })}
		switch f := cat.OrderingKey(name); f {
		case "":
		case "reservationId":
			et.ordered = true
		default:
			return nil, fmt.Errorf("simulate: the catalog orders %s by %q; the generator can only key by reservationId", name, f)
		}
		g.types[name] = et
	}
	for _, name := range append(slices.Clone(lifecycleTypes), standaloneTypes...) {
		if g.types[name] == nil {
			return nil, fmt.Errorf("simulate: the catalog has no %s", name)
		}
	}
	total := 0.0
	for i := range o.Tenants {
		total += 1 / math.Pow(float64(i+1), o.Skew)
		g.cum = append(g.cum, total)
		g.names = append(g.names, TenantName(i))
		g.tenants = append(g.tenants, newTenant(i, len(cat.Topics)))
	}
	for i := range g.cum {
		g.cum[i] /= total
	}
	g.cum[len(g.cum)-1] = 1
	return g, nil
}

// Tenants returns the tenant names, in the order of their shares (largest first when skewed).
func (g *Generator) Tenants() []string { return slices.Clone(g.names) }

// Share returns the expected fraction of events produced by the i-th tenant.
func (g *Generator) Share(i int) float64 {
	if i == 0 {
		return g.cum[0]
	}
	return g.cum[i] - g.cum[i-1]
}

// Generated returns how many events Next has returned.
func (g *Generator) Generated() int64 { return g.n }

// Next returns the next event. Its envelope is complete (eventId, timestamp, version, source,
// correlationId, traceId set) and owned by the caller.
func (g *Generator) Next() *Event {
	r := g.rng.Float64()
	ti := sort.SearchFloat64s(g.cum, r)
	if ti == len(g.cum) {
		ti--
	}
	t := g.tenants[ti]
	ts := g.opts.Start.Add(time.Duration(g.n) * g.opts.Step).UTC().Truncate(time.Millisecond)
	g.n++
	c := &ctx{g: g, t: t, ts: ts}
	name, data, lifecycle := c.step()
	et := g.types[name]
	t.seq[et.topic]++
	seq := t.seq[et.topic]
	if !et.ordered {
		lifecycle = 0
	}
	id := g.eventID(ti, et.topic, lifecycle, seq)
	correlation := id
	if c.stay != nil {
		correlation = c.stay.correlation // one correlation id per reservation lifecycle
	}
	env := &streams.Envelope{EventID: id, EventType: name, Version: et.version, Timestamp: ts, Data: data,
		Metadata: streams.Metadata{TenantID: t.name, Source: et.system, CorrelationID: correlation,
			UserID: c.user, TraceID: g.hex(32, uint64(ti), kindTrace, uint64(g.n))}}
	return &Event{System: et.system, Envelope: env, Position: g.position(ti, et.topic, lifecycle, seq)}
}

func (g *Generator) position(tenant, topic int, lifecycle uint32, seq uint64) Position {
	p := Position{Tenant: g.names[tenant], Topic: g.cat.Topics[topic].Name, Seq: seq}
	p.Key = p.Topic + "/" + p.Tenant
	if lifecycle != 0 {
		p.Key += "/" + g.reservationID(tenant, lifecycle)
	}
	return p
}

// eventId layout (128 bits, see the package documentation):
//
//	hi: tag 24 | tenant 16 | lifecycle bits 31..24 (8) | version 8 (4) | topic (12)
//	lo: variant 0b10 (2) | lifecycle bits 23..0 (24) | seq (38)
const (
	seqBits = 38
	maxSeq  = 1<<seqBits - 1
)

func (g *Generator) eventID(tenant, topic int, lifecycle uint32, seq uint64) string {
	hi := uint64(g.tag)<<40 | uint64(tenant)<<24 | uint64(lifecycle>>24)<<16 | 0x8<<12 | uint64(topic)
	lo := 0b10<<62 | uint64(lifecycle&0xffffff)<<seqBits | seq&maxSeq
	var u uuid.UUID
	for i := range 8 {
		u[i] = byte(hi >> (56 - 8*i))
		u[8+i] = byte(lo >> (56 - 8*i))
	}
	return u.String()
}

// Seq returns the position of the event with eventID, decoded from the eventId alone; ok is false
// for an eventId this generator's Options and catalog did not produce. Any generator built with
// the same Options and catalog decodes the same positions.
func (g *Generator) Seq(eventID string) (p Position, ok bool) {
	u, err := uuid.Parse(eventID)
	if err != nil || u.Version() != 8 || u.Variant() != uuid.RFC4122 {
		return Position{}, false
	}
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(u[i])
		lo = lo<<8 | uint64(u[8+i])
	}
	tenant, topic := int(hi>>24&0xffff), int(hi&0xfff)
	lifecycle := uint32(hi>>16&0xff)<<24 | uint32(lo>>seqBits&0xffffff)
	seq := lo & maxSeq
	if uint32(hi>>40) != g.tag || tenant >= len(g.names) || topic >= len(g.cat.Topics) || seq == 0 {
		return Position{}, false
	}
	return g.position(tenant, topic, lifecycle, seq), true
}

// TenantName returns the name of the i-th simulated tenant (from 0): a hotel group such as
// "sakura-hotels", with a numeric suffix once the names repeat.
func TenantName(i int) string {
	p := profiles[i%len(profiles)]
	if i < len(profiles) {
		return p.name
	}
	return fmt.Sprintf("%s-%d", p.name, i/len(profiles)+1)
}

// mix is SplitMix64 over a and b: the deterministic hash behind every generated id.
func mix(a, b uint64) uint64 {
	z := a*0x9e3779b97f4a7c15 + b + 0x632be59bd9b4e5b5
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// ulid returns a 26-character Crockford base32 id derived from (tag, tenant, kind, n), the shape of
// the ids in the golden examples.
func (g *Generator) ulid(tenant int, kind, n uint64) string {
	a := mix(uint64(g.tag)<<16|uint64(tenant), kind<<40^n)
	b := mix(a, n)
	var out [26]byte
	out[0] = '0'
	out[1] = '1'
	for i := 2; i < 26; i++ {
		var v uint64
		if i < 14 {
			v = a >> (5 * (i - 2))
		} else {
			v = b >> (5 * (i - 14))
		}
		out[i] = crockford[v&31]
	}
	return string(out[:])
}

// hex returns n lowercase hex digits derived from the arguments.
func (g *Generator) hex(n int, tenant, kind, k uint64) string {
	const digits = "0123456789abcdef"
	out := make([]byte, n)
	h := mix(uint64(g.tag)<<16|tenant, kind<<40^k)
	for i := range out {
		if i%16 == 0 && i > 0 {
			h = mix(h, uint64(i))
		}
		out[i] = digits[h>>(4*(i%16))&15]
	}
	return string(out)
}

// id kinds: the kind argument of ulid and hex.
const (
	kindReservation = iota + 1
	kindCustomer
	kindMember
	kindOrder
	kindBill
	kindPayment
	kindPoints
	kindFeedback
	kindDocument
	kindTrace
	kindLine
	kindIncident
	kindConversation
)

func (g *Generator) reservationID(tenant int, lifecycle uint32) string {
	return "rsv_" + g.ulid(tenant, kindReservation, uint64(lifecycle))
}
