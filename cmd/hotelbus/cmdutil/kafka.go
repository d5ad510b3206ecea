package cmdutil

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// KafkaFlags are the flags that say where a Kafka cluster is and how to authenticate to it.
type KafkaFlags struct {
	Brokers         string
	SASLMechanism   string
	SASLUser        string
	SASLPasswordEnv string
	TLS             bool
	TLSCA           string
}

// SASL mechanisms --sasl-mechanism accepts.
var saslMechanisms = []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"}

// AddKafkaFlags registers --brokers, --sasl-mechanism, --sasl-user, --sasl-password-env, --tls and
// --tls-ca as persistent flags of cmd (so a parent command shares them with its subcommands) and
// returns where their values land.
func AddKafkaFlags(cmd *cobra.Command) *KafkaFlags {
	k := &KafkaFlags{}
	fs := cmd.PersistentFlags()
	fs.StringVar(&k.Brokers, "brokers", "", "comma-separated bootstrap brokers, each `host:port` (env HOTELBUS_BROKERS; default: a running hotelbus dev stack)")
	fs.StringVar(&k.SASLMechanism, "sasl-mechanism", "", "authenticate with SASL: "+strings.Join(saslMechanisms, ", "))
	fs.StringVar(&k.SASLUser, "sasl-user", "", "SASL user name")
	fs.StringVar(&k.SASLPasswordEnv, "sasl-password-env", "", "name of the environment `variable` that holds the SASL password (never pass a password on the command line)")
	fs.BoolVar(&k.TLS, "tls", false, "connect to the brokers over TLS")
	fs.StringVar(&k.TLSCA, "tls-ca", "", "PEM `file` of the CA that signed the brokers' certificates (implies --tls; default: the system's roots)")
	return k
}

// KafkaClient returns a client for the cluster the flags name, with opts added. Brokers resolve
// as Factory.Brokers does; the SASL password is read from the environment variable
// --sasl-password-env names. Inconsistent or unusable flag values are usage errors naming the flag.
func (f *Factory) KafkaClient(k *KafkaFlags, opts ...kgo.Opt) (*kgo.Client, error) {
	seeds, base, err := f.KafkaOpts(k)
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(append(base, kgo.SeedBrokers(seeds...)), opts...)...)
	if err != nil {
		return nil, fmt.Errorf("cmdutil: kafka client: %w", err)
	}
	return cl, nil
}

// KafkaOpts returns the seed brokers and the connection options (SASL, TLS) the flags select,
// for code that builds its own client (the producer). Errors are as KafkaClient's. Reachable
// then checks the brokers (with these options, so SASL and TLS failures show there too).
func (f *Factory) KafkaOpts(k *KafkaFlags) (seeds []string, base []kgo.Opt, err error) {
	brokers, origin, err := f.brokers(k.Brokers)
	if err != nil {
		return nil, nil, err
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b == "" {
			return nil, nil, Usagef("--brokers: %q has an empty address", brokers)
		}
		seeds = append(seeds, b)
	}
	mech, err := f.saslMechanism(k)
	if err != nil {
		return nil, nil, err
	}
	if mech != nil {
		base = append(base, kgo.SASL(mech))
	}
	if k.TLS || k.TLSCA != "" {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if k.TLSCA != "" {
			pem, err := os.ReadFile(k.TLSCA)
			if err != nil {
				return nil, nil, Usagef("--tls-ca: %v", err)
			}
			cfg.RootCAs = x509.NewCertPool()
			if !cfg.RootCAs.AppendCertsFromPEM(pem) {
				return nil, nil, Usagef("--tls-ca: %s holds no PEM certificate", k.TLSCA)
			}
		}
		base = append(base, kgo.DialTLSConfig(cfg))
	} else if mech != nil && mech.Name() == "PLAIN" {
		fmt.Fprintln(f.ErrOut, "warning: --sasl-mechanism PLAIN without --tls sends the password in clear text")
	}
	f.useKafka(seeds, origin, base)
	return seeds, base, nil
}

// saslMechanism returns the mechanism the SASL flags select, or nil when SASL is off.
func (f *Factory) saslMechanism(k *KafkaFlags) (sasl.Mechanism, error) {
	if k.SASLMechanism == "" {
		if k.SASLUser != "" || k.SASLPasswordEnv != "" {
			return nil, Usagef("--sasl-user and --sasl-password-env need --sasl-mechanism (%s)", strings.Join(saslMechanisms, ", "))
		}
		return nil, nil
	}
	name := strings.ToUpper(k.SASLMechanism)
	if !slices.Contains(saslMechanisms, name) {
		return nil, Usagef("--sasl-mechanism: %q is not one of %s", k.SASLMechanism, strings.Join(saslMechanisms, ", "))
	}
	if k.SASLUser == "" {
		return nil, Usagef("--sasl-mechanism %s needs --sasl-user", name)
	}
	if k.SASLPasswordEnv == "" {
		return nil, Usagef("--sasl-mechanism %s needs --sasl-password-env, the name of the variable holding the password", name)
	}
	pass := f.Getenv(k.SASLPasswordEnv)
	if pass == "" {
		return nil, Usagef("--sasl-password-env: environment variable %s is unset or empty", k.SASLPasswordEnv)
	}
	switch name {
	case "PLAIN":
		return plain.Auth{User: k.SASLUser, Pass: pass}.AsMechanism(), nil
	case "SCRAM-SHA-256":
		return scram.Auth{User: k.SASLUser, Pass: pass}.AsSha256Mechanism(), nil
	}
	return scram.Auth{User: k.SASLUser, Pass: pass}.AsSha512Mechanism(), nil
}
