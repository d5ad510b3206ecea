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
	seed, start := rand.Int64(), time.Now()
	events := func(cat *topics.Catalog) ([]*simulate.Event, error) {
		g, err := simulate.New(cat, r.set, simulate.Options{Seed: seed, Tenants: 50, Skew: 1.1, Start: start})
		if err != nil {
			return nil, err
		}
		var out []*simulate.Event
		for len(out) < r.sz.privacy {
			ev := g.Next()
			if v, ok := r.set.Version(ev.Envelope.EventType, ev.Envelope.Version); ok && subjects.Seals(v) {
				out = append(out, ev)
			}
		}
		return out, nil
	}
	plainEvents, err := events(plainCat)
	if err != nil {
		return nil, err
	}
	sealedEvents, err := events(sealedCat)
	if err != nil {
		return nil, err
	}
	for i := range sealedEvents { // registers each side's schemas, and creates the keys
		if _, err := plain.Record(ctx, plainEvents[i].Envelope); err != nil {
			return nil, err
		}
		if _, err := sealed.Record(ctx, sealedEvents[i].Envelope); err != nil {
			return nil, fmt.Errorf("sealing %s %s: %w", sealedEvents[i].Envelope.EventType, sealedEvents[i].Envelope.EventID, err)
		}
	}
	values, _, _ := prot.Counts()
	if err := r.awaitLeaders(ctx); err != nil {
		return nil, err
	}

	// Eight rounds, each publishing an eighth of the events on both sides, the side going first
	// alternating: a broker slowing down or speeding up during the row weighs on both alike.
	plainPubs, sealedPubs := r.publishers(plain), r.publishers(sealed)
	defer plainPubs.close()
	defer sealedPubs.close()
	var plainN, sealedN int
	var plainTook, sealedTook time.Duration
	const rounds = 8
	for i := range rounds {
		q := func(evs []*simulate.Event) []*simulate.Event { return evs[i*len(evs)/rounds : (i+1)*len(evs)/rounds] }
		for side := range 2 {
			pubs, evs, n, took := plainPubs, q(plainEvents), &plainN, &plainTook
			if (side+i)%2 == 1 {
				pubs, evs, n, took = sealedPubs, q(sealedEvents), &sealedN, &sealedTook
			}
			k, d, err := pubs.publish(ctx, evs)
			if err != nil {
				return nil, err
			}
			*n, *took = *n+k, *took+d
		}
	}
	plainRate, sealedRate := rate(plainN, plainTook), rate(sealedN, sealedTook)
	// Each side's topics read twice, through two groups, in the order plain, sealed, sealed, plain.
	var plainSecs, sealedSecs float64
	for i, side := range []string{"plain", "sealed", "sealed", "plain"} {
		cat, serde, secs := plainCat, plain, &plainSecs
		if side == "sealed" {
			cat, serde, secs = sealedCat, sealed, &sealedSecs
		}
		got, _, _, err := r.consumeRate(ctx, cat, serde, len(plainEvents), fmt.Sprintf(".%d", i/2))
		if err != nil {
			return nil, err
		}
		*secs += float64(len(plainEvents)) / got
	}
	plainIn, sealedIn := float64(2*len(plainEvents))/plainSecs, float64(2*len(sealedEvents))/sealedSecs
	pub := row("publish-sealed", "SDK PublishAsync, personal data sealed", sealedRate, "the same events, not sealed", plainRate, "events/s", "higher", "≥ 0.87")
	st := keys.Stats()
	pub.Note = fmt.Sprintf("%d events with personal data, %.1f values sealed per event, %d guests' keys (cache: %d hits, %d misses)",
		len(sealedEvents), float64(values)/float64(len(sealedEvents)), st.Live, st.CacheHits, st.CacheMisses)
	return []Row{
		pub,
		row("consume-sealed", "consume row's consumer, personal data opened", sealedIn, "the same events, not sealed", plainIn, "events/s", "higher", "≥ 0.87"),
	}, nil
}
