package cmdutil

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/topics"
)

// EnvKeyFile names the environment variable that sets --key-file.
const EnvKeyFile = "HOTELBUS_PRIVACY_KEY_FILE"

// KeyWriterSystem is the system commands write key records as (a command that seals creates the
// key of a new subject; `privacy forget` tombstones keys).
const KeyWriterSystem = "hotel-common"

// AddKeyFileFlag registers --key-file on cmd.
func AddKeyFileFlag(cmd *cobra.Command, v *string) {
	cmd.PersistentFlags().StringVar(v, "key-file", "", "key `file` of guest-data protection's key-encryption keys (env "+EnvKeyFile+
		"; default: a running hotelbus dev stack's)")
}

// KeyFile resolves --key-file: the flag, else HOTELBUS_PRIVACY_KEY_FILE, else the running dev
// stack's. Without one, it returns "" when !required (the command then reads sealed values as
// they are on Kafka) and a usage error naming where it looked otherwise.
func (f *Factory) KeyFile(flagValue string, required bool) (string, error) {
	if flagValue != "" {
		return flagValue, nil
	}
	if v := f.Getenv(EnvKeyFile); v != "" {
		return v, nil
	}
	e, file, err := f.DevStack("key file", func(e *Endpoints) bool { return e.KeyFile != "" })
	if err != nil {
		if !required {
			return "", nil
		}
		return "", Usagef("no key file: pass --key-file, set %s, or start `hotelbus dev`; %v", EnvKeyFile, err)
	}
	fmt.Fprintf(f.ErrOut, "using the key file %s from the dev stack's %s\n", e.KeyFile, file)
	return e.KeyFile, nil
}

// PrivacyKeys opens keyFile and starts the privacy.Keys of cat's key topic on the cluster the
// Kafka flags name (StartKeys); the caller calls close when done.
func (f *Factory) PrivacyKeys(keyFile string, k *KafkaFlags, cat *topics.Catalog) (keys *privacy.Keys, close func(), err error) {
	seeds, base, err := f.KafkaOpts(k)
	if err != nil {
		return nil, nil, err
	}
	return StartKeys(keyFile, seeds, base, cat)
}

// StartKeys opens keyFile and starts the privacy.Keys of cat's key topic on the brokers seeds
// (with the connection options base), writing key records as KeyWriterSystem; the caller calls
// close when done.
func StartKeys(keyFile string, seeds []string, base []kgo.Opt, cat *topics.Catalog) (keys *privacy.Keys, close func(), err error) {
	kf, err := privacy.OpenKeyFile(keyFile)
	if err != nil {
		return nil, nil, Usagef("--key-file: %v", err)
	}
	// Key records are not events: no publish audit records (trace would list them without an eventId).
	w, err := streams.NewWriter(KeyWriterSystem, cat, streams.Brokers(seeds...), streams.KafkaOptions(base...), streams.PublishAudit(false))
	if err != nil {
		return nil, nil, err
	}
	closeWriter := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = w.Close(ctx)
	}
	keys, err = privacy.NewKeys(w, kf, cat.KeyTopic, append(slices.Clone(base), kgo.SeedBrokers(seeds...)))
	if err != nil {
		closeWriter()
		return nil, nil, err
	}
	return keys, func() { keys.Close(); closeWriter() }, nil
}

// StartProtector is StartKeys with a privacy.Protector over the keys, for a Serde that seals and
// opens (streams.WithFieldProtector).
func StartProtector(keyFile string, seeds []string, base []kgo.Opt, cat *topics.Catalog, set *schemas.Set) (p *privacy.Protector, close func(), err error) {
	subjects, err := privacy.LoadSubjects(topics.Embedded(), cat, set)
	if err != nil {
		return nil, nil, err
	}
	keys, close, err := StartKeys(keyFile, seeds, base, cat)
	if err != nil {
		return nil, nil, err
	}
	return privacy.NewProtector(subjects, keys), close, nil
}

// Privacy is guest-data protection as a command starts it (PrivacyOptions).
type Privacy struct {
	// SerdeOptions make a Serde seal and open personal data; none without a key file.
	SerdeOptions []streams.SerdeOption
	protector    *privacy.Protector
	close        func()
}

// Register registers the protector's metrics (privacy.Protector.Collector) with reg; without a key
// file there are none.
func (p *Privacy) Register(reg prometheus.Registerer) {
	if p.protector != nil {
		reg.MustRegister(p.protector.Collector())
	}
}

// Protector returns the protector the SerdeOptions use, for readers that open sealed values
// outside a Serde (a view's items); nil without a key file.
func (p *Privacy) Protector() *privacy.Protector { return p.protector }

// Close stops the keys' tail.
func (p *Privacy) Close() {
	if p.close != nil {
		p.close()
	}
}

// PrivacyOptions starts guest-data protection with the key file --key-file resolves to (KeyFile).
// Without a key file its Privacy has no options and it writes noKeys on ErrOut (when not empty:
// what that means for the command). The caller closes it.
func (f *Factory) PrivacyOptions(keyFileFlag string, k *KafkaFlags, cat *topics.Catalog, noKeys string) (*Privacy, error) {
	file, err := f.KeyFile(keyFileFlag, false)
	if err != nil {
		return nil, err
	}
	if file == "" {
		if noKeys != "" {
			fmt.Fprintf(f.ErrOut, "no key file (--key-file, %s or a dev stack's): %s\n", EnvKeyFile, noKeys)
		}
		return &Privacy{}, nil
	}
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return nil, err
	}
	seeds, base, err := f.KafkaOpts(k)
	if err != nil {
		return nil, err
	}
	p, closeKeys, err := StartProtector(file, seeds, base, cat, set)
	if err != nil {
		return nil, err
	}
	return &Privacy{SerdeOptions: []streams.SerdeOption{streams.WithFieldProtector(p)}, protector: p, close: closeKeys}, nil
}
