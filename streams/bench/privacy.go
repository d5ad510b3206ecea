package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/topics"
)

// privacy measures what guest-data protection costs: the simulated events that carry personal
// data are published, then consumed, once with a Protector (streams/privacy, with a key file and
// a key topic of the run's own) and once without, each side on topics and a consumer group of its
// own. Registering schemas and creating a guest's data key (a synchronous write to the key topic,
// once per guest) are not timed: each side encodes every event once before the clocks start, as a
// publisher that has run a while has each schema id and each key.
func (r *run) privacy(ctx context.Context) ([]Row, error) {
	plainCat, plain, err := r.catalog(ctx, "plain.", 0)
	if err != nil {
		return nil, err
	}
	sealedCat, _, err := r.catalog(ctx, "sealed.", 0)
	if err != nil {
		return nil, err
	}
	subjects, err := privacy.LoadSubjects(topics.Embedded(), sealedCat, r.set)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "hotelbus-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	keyFile := filepath.Join(dir, privacy.KeyFileName)
	if _, err := privacy.GenerateKeyFile(keyFile); err != nil {
		return nil, err
	}
	kms, err := privacy.OpenKeyFile(keyFile)
	if err != nil {
		return nil, err
	}
	w, err := streams.NewWriter("hotel-common", sealedCat, r.producerOpts()...)
	if err != nil {
		return nil, err
	}
	defer w.Close(context.Background())
	keys, err := privacy.NewKeys(w, kms, sealedCat.KeyTopic, append([]kgo.Opt{kgo.SeedBrokers(r.env.Brokers...)}, r.env.KafkaOptions...))
	if err != nil {
		return nil, err
	}
	defer keys.Close()
	prot := privacy.NewProtector(subjects, keys)
	sealed, err := streams.NewSerde(r.reg, r.set, sealedCat, streams.AutoRegister(true), streams.WithFieldProtector(prot))
	if err != nil {
		return nil, err
	}

	// The same events on both sides: two generators of one seed.
	type side struct {
		cat       *topics.Catalog
		serde     *streams.Serde
		events    []*simulate.Event
		published int
		publishes time.Duration
		cpu       int64   // ns of the process's CPU time while the side published
		reads     float64 // seconds
	}
	plainSide, sealedSide := &side{cat: plainCat, serde: plain}, &side{cat: sealedCat, serde: sealed}
	seed, start := rand.Int64(), time.Now()
	for _, sd := range []*side{plainSide, sealedSide} {
		g, err := simulate.New(sd.cat, r.set, simulate.Options{Seed: seed, Tenants: 50, Skew: 1.1, Start: start})
		if err != nil {
			return nil, err
		}
		for len(sd.events) < r.sz.privacy {
			ev := g.Next()
			if v, ok := r.set.Version(ev.Envelope.EventType, ev.Envelope.Version); ok && subjects.Seals(v) {
				sd.events = append(sd.events, ev)
			}
		}
		for _, ev := range sd.events { // registers the side's schemas and, sealed, creates the keys
			if _, err := sd.serde.Record(ctx, ev.Envelope); err != nil {
				return nil, fmt.Errorf("encoding %s %s: %w", ev.Envelope.EventType, ev.Envelope.EventID, err)
			}
		}
	}
	values, _, _ := prot.Counts()
	if err := r.awaitLeaders(ctx); err != nil {
		return nil, err
	}

	// Eight rounds, each publishing an eighth of the events on both sides, the side going first
	// alternating: a broker slowing down or speeding up during the row weighs on both alike.
	n := r.sz.privacy
	sides := [2]*side{plainSide, sealedSide}
	pubs := [2]*publishers{r.publishers(plain), r.publishers(sealed)}
	defer pubs[0].close()
	defer pubs[1].close()
	const rounds = 8
	for i := range rounds {
		for j := range 2 {
			k := (i + j) % 2
			sd := sides[k]
			cpu0 := processCPU()
			timed, took, err := pubs[k].publish(ctx, sd.events[i*n/rounds:(i+1)*n/rounds])
			if err != nil {
				return nil, err
			}
			cpu1 := processCPU()
			sd.published, sd.publishes, sd.cpu = sd.published+timed, sd.publishes+took, sd.cpu+cpu1-cpu0
		}
	}
	// Each side's topics read twice, through two groups, in the order plain, sealed, sealed, plain.
	for i, sd := range []*side{plainSide, sealedSide, sealedSide, plainSide} {
		got, _, _, err := r.consumeRate(ctx, sd.cat, sd.serde, n, false, fmt.Sprintf(".%d", i/2))
		if err != nil {
			return nil, err
		}
		sd.reads += float64(n) / got
	}
	plainRate, sealedRate := rate(plainSide.published, plainSide.publishes), rate(sealedSide.published, sealedSide.publishes)
	plainIn, sealedIn := float64(2*n)/plainSide.reads, float64(2*n)/sealedSide.reads
	pub := row("publish-sealed", "SDK PublishAsync, personal data sealed", sealedRate, "the same events, not sealed", plainRate, "events/s", "higher", "≥ 0.87")
	st := keys.Stats()
	pub.Note = fmt.Sprintf("%d events with personal data, %.1f values sealed per event, %d guests' keys (cache: %d hits, %d misses)",
		n, float64(values)/float64(n), st.Live, st.CacheHits, st.CacheMisses)
	if sealedSide.cpu > 0 { // 0 where the platform does not tell (processCPU)
		// The process's CPU time while each side published: what sealing costs the publisher,
		// less sensitive than the rates to a broker on the same cores.
		pub.Note += fmt.Sprintf("; this process's CPU per event published: %.1f µs sealed, %.1f µs plain (ratio %.2f)",
			float64(sealedSide.cpu)/float64(sealedSide.published)/1e3, float64(plainSide.cpu)/float64(plainSide.published)/1e3,
			float64(plainSide.cpu)/float64(plainSide.published)/(float64(sealedSide.cpu)/float64(sealedSide.published)))
	}
	return []Row{
		pub,
		row("consume-sealed", "consume row's consumer, personal data opened", sealedIn, "the same events, not sealed", plainIn, "events/s", "higher", "≥ 0.87"),
	}, nil
}
