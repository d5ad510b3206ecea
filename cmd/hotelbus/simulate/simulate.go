// Package simulate implements `hotelbus simulate`: realistic hotel traffic, published through the
// Go SDK or the HTTP gateway.
package simulate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/schemas"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/streams/gateway"
	sim "github.com/hotelbus/hotelbus/streams/simulate"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	tenants     int
	rate        float64
	duration    time.Duration
	count       int64
	skew        float64
	seed        int64
	start       string
	via         string
	gateway     string
	tokensFile  string
	workers     int
	kafka       *cmdutil.KafkaFlags
	registry    string
	prefix      string
	devRegister bool
	json        bool
	keyFile     string
}

// New returns the simulate command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "simulate [--tenants N] [--rate R] [--duration D | --count N]",
		Short: "Publish realistic hotel traffic: reservation lifecycles, guests, loyalty, concierge",
		Long: `simulate publishes generated traffic of --tenants hotel groups, each running reservation
lifecycles (created, updated, sometimes canceled, checked in, services ordered, billed, paid,
checked out, points added, feedback) plus customer, member and occasional auth and system events,
each event as the system that owns it. With --skew, a few large groups produce most traffic
(tenant i gets a share proportional to 1/(i+1)^skew).

Traffic is deterministic: the same --seed, --tenants and --skew give the same events, eventIds
included (--start pins the timestamps too). Every event has a sequence number per tenant and topic,
encoded in its eventId; through the SDK each record also carries it in the header hotelbus.sim.seq.
A seed replayed against a consumer group that still has its dedup keys is all duplicates: the
default seed is random and printed.

--via sdk (default) publishes with one Go producer per system (--brokers, --registry);
--via gateway posts batches to a gateway (--gateway, tokens per system from --gateway-tokens, a file
of "<system> <token>" lines, or HOTELBUS_GATEWAY_TOKEN_<SYSTEM>, or a running hotelbus dev stack, whose
gateway and tokens --via gateway uses given no flag). Through the SDK, personal-data fields are
sealed with the guest-data protection key file (--key-file, ` + cmdutil.EnvKeyFile + `, or a running dev
stack's), as the gateway seals them.
It stops after --count events or --duration, or on Ctrl-C, waits for every outcome and prints a
summary; it exits 1 when an event failed.`,
		Example: `  hotelbus simulate --count 10000 --rate 500
  hotelbus simulate --tenants 50 --skew 1.2 --duration 10m --rate 200 --seed 7
  hotelbus simulate --via gateway --count 1000                 # through a running hotelbus dev stack's gateway
  hotelbus simulate --via gateway --gateway http://localhost:8080 --gateway-tokens tokens.txt --count 5000 --json`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.IntVar(&o.tenants, "tenants", 10, "number of hotel groups")
	fl.Float64Var(&o.rate, "rate", 100, "events per second (0: as fast as the broker or gateway takes them)")
	fl.DurationVar(&o.duration, "duration", 0, "stop after this long")
	fl.Int64Var(&o.count, "count", 0, "stop after this many events")
	fl.Float64Var(&o.skew, "skew", 1.1, "Zipf exponent of the tenants' traffic shares (0: even)")
	fl.Int64Var(&o.seed, "seed", 0, "traffic seed (default: random, printed)")
	fl.StringVar(&o.start, "start", "", "timestamp of the first event, RFC 3339 (default: now)")
	fl.StringVar(&o.via, "via", "sdk", "publish through the Go SDK (sdk) or the HTTP gateway (gateway)")
	fl.StringVar(&o.gateway, "gateway", "", "with --via gateway: the gateway's base URL (env HOTELBUS_GATEWAY; default: a running hotelbus dev stack)")
	fl.StringVar(&o.tokensFile, "gateway-tokens", "", "with --via gateway: file of \"<system> <token>\" lines")
	fl.IntVar(&o.workers, "workers", 16, "with --via gateway: concurrent requests (each tenant's events stay on one)")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.BoolVar(&o.devRegister, "dev-register", false, "register schema versions on first use (development only)")
	fl.BoolVar(&o.json, "json", false, "print the summary as JSON")
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	if err := o.validate(); err != nil {
		return err
	}
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		return err
	}
	cat = cat.WithPrefix(o.prefix)
	set, err := schemas.Load(schemas.Embedded())
	if err != nil {
		return err
	}
	seedGiven := o.seed != 0
	if !seedGiven {
		o.seed = rand.Int64N(1<<53) + 1
	}
	start := time.Now().UTC().Truncate(time.Millisecond)
	if o.start != "" {
		if start, err = time.Parse(time.RFC3339Nano, o.start); err != nil {
			return cmdutil.Usagef("--start: %v", err)
		}
	}
	step := time.Millisecond
	if o.rate > 0 {
		step = time.Duration(float64(time.Second) / o.rate)
	}
	g, err := sim.New(cat, set, sim.Options{Seed: o.seed, Tenants: o.tenants, Skew: o.skew, Start: start, Step: step})
	if err != nil {
		return cmdutil.Usagef("%v", err)
	}
	pub, priv, err := o.publisher(f, g, cat, set)
	if err != nil {
		return err
	}
	defer priv.Close()
	if err := f.Reachable(ctx); err != nil {
		return err
	}
	if o.count == 0 && o.duration == 0 {
		fmt.Fprintln(f.ErrOut, "publishing until Ctrl-C")
	}
	r := &sim.Runner{Generator: g, Publisher: pub, Rate: o.rate, Count: o.count, Duration: o.duration}
	sum, runErr := r.Run(ctx)
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cerr := pub.Close(cctx); cerr != nil && runErr == nil {
		runErr = cerr
	}
	if err := o.print(f.Out, g, sum); err != nil {
		return err
	}
	return runErr
}

func (o *options) validate() error {
	switch {
	case o.tenants < 1 || o.tenants > 65535:
		return cmdutil.Usagef("--tenants: %d is not between 1 and 65535", o.tenants)
	case o.rate < 0:
		return cmdutil.Usagef("--rate: must not be negative")
	case o.count < 0 || o.duration < 0:
		return cmdutil.Usagef("--count and --duration must not be negative")
	case o.skew < 0 || o.skew > 5:
		return cmdutil.Usagef("--skew: %v is not between 0 and 5", o.skew)
	case o.via != "sdk" && o.via != "gateway":
		return cmdutil.Usagef("--via: %q is not sdk or gateway", o.via)
	case o.via == "sdk" && (o.gateway != "" || o.tokensFile != ""):
		return cmdutil.Usagef("--gateway and --gateway-tokens need --via gateway")
	case o.workers < 1:
		return cmdutil.Usagef("--workers: must be at least 1")
	}
	return nil
}

// publisher returns the --via publisher and its guest-data protection (through the SDK, personal
// data is sealed with the key file, as the gateway seals it), which the caller closes.
func (o *options) publisher(f *cmdutil.Factory, g *sim.Generator, cat *topics.Catalog, set *schemas.Set) (sim.Publisher, *cmdutil.Privacy, error) {
	if o.via == "gateway" {
		url, err := f.Resolve(o.gateway, "gateway", "HOTELBUS_GATEWAY", func(e *cmdutil.Endpoints) string { return e.Gateway })
		if err != nil {
			return nil, nil, err
		}
		tokens, err := o.tokens(f, cat)
		if err != nil {
			return nil, nil, err
		}
		return sim.NewGatewayPublisher(strings.TrimRight(url, "/"), tokens, set, nil, o.workers), &cmdutil.Privacy{}, nil
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return nil, nil, err
	}
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat, "personal-data fields are published in clear")
	if err != nil {
		return nil, nil, err
	}
	serde, err := f.Serde(o.registry, cat, o.devRegister, priv.SerdeOptions...)
	if err != nil {
		priv.Close()
		return nil, nil, err
	}
	p, err := sim.NewSDKPublisher(g, serde, streams.Brokers(seeds...), streams.KafkaOptions(kopts...))
	if err != nil {
		priv.Close()
		if errors.Is(err, streams.ErrConfig) {
			return nil, nil, cmdutil.Usagef("%v", err)
		}
		return nil, nil, err
	}
	return p, priv, nil
}

// tokens returns a gateway token per publishing system: --gateway-tokens, then
// HOTELBUS_GATEWAY_TOKEN_<SYSTEM>, then the dev stack's tokens.
func (o *options) tokens(f *cmdutil.Factory, cat *topics.Catalog) (map[string]string, error) {
	tokens := map[string]string{}
	if o.tokensFile != "" {
		fh, err := os.Open(o.tokensFile)
		if err != nil {
			return nil, cmdutil.Usagef("--gateway-tokens: %v", err)
		}
		defer fh.Close()
		sc := bufio.NewScanner(fh)
		for n := 1; sc.Scan(); n++ {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			sys, tok, ok := strings.Cut(line, " ")
			if !ok || strings.TrimSpace(tok) == "" {
				return nil, cmdutil.Usagef("--gateway-tokens: line %d is not \"<system> <token>\"", n)
			}
			tokens[sys] = strings.TrimSpace(tok)
		}
		if err := sc.Err(); err != nil {
			return nil, cmdutil.Usagef("--gateway-tokens: %v", err)
		}
	}
	var dev map[string]string
	devNote := ""
	var missing []string
	for _, s := range cat.Systems {
		if len(s.Publishes) == 0 || tokens[s.Name] != "" {
			continue
		}
		v, _, _ := strings.Cut(f.Getenv(gateway.EnvName(s.Name)), ",")
		if v == "" && dev == nil && devNote == "" {
			e, file, err := f.DevStack("gateway tokens", func(e *cmdutil.Endpoints) bool { return len(e.Tokens) > 0 })
			if err != nil {
				devNote = "; " + err.Error()
			} else {
				dev = e.Tokens
				fmt.Fprintf(f.ErrOut, "using the dev stack's gateway tokens from %s\n", file)
			}
		}
		if v != "" {
			tokens[s.Name] = v
		} else if dev[s.Name] != "" {
			tokens[s.Name] = dev[s.Name]
		} else {
			missing = append(missing, s.Name)
		}
	}
	if len(missing) > 0 {
		return nil, cmdutil.Usagef("no gateway token for %s: pass --gateway-tokens, set %s..., or start `hotelbus dev`%s",
			strings.Join(missing, ", "), gateway.EnvPrefix, devNote)
	}
	return tokens, nil
}

type summaryJSON struct {
	Seed           int64            `json:"seed"`
	Via            string           `json:"via"`
	Tenants        int              `json:"tenants"`
	Skew           float64          `json:"skew"`
	Events         int64            `json:"events"`
	Acknowledged   int64            `json:"acknowledged"`
	Failed         int64            `json:"failed"`
	ElapsedSeconds float64          `json:"elapsedSeconds"`
	EventsPerSec   float64          `json:"eventsPerSecond"`
	PerTenant      map[string]int64 `json:"perTenant"`
	PerType        map[string]int64 `json:"perType"`
	FirstError     string           `json:"firstError,omitempty"`
}

func (o *options) print(w io.Writer, g *sim.Generator, s sim.Summary) error {
	j := summaryJSON{Seed: o.seed, Via: o.via, Tenants: o.tenants, Skew: o.skew, Events: s.Events, Acknowledged: s.Acknowledged,
		Failed: s.Failed, ElapsedSeconds: s.Elapsed.Seconds(), EventsPerSec: s.Rate(), PerTenant: s.PerTenant, PerType: s.PerType}
	if s.FirstError != nil {
		j.FirstError = s.FirstError.Error()
	}
	if o.json {
		return cmdutil.WriteJSON(w, j)
	}
	fmt.Fprintf(w, "%d events via %s in %s (%.0f/s): %d acknowledged, %d failed; seed %d, %d tenants, skew %g\n",
		s.Events, o.via, s.Elapsed.Round(time.Millisecond), s.Rate(), s.Acknowledged, s.Failed, o.seed, o.tenants, o.skew)
	if s.FirstError != nil {
		fmt.Fprintf(w, "first failure: %v\n", s.FirstError)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "tenant\tevents\tshare\texpected\t")
	names := g.Tenants()
	shown := 0
	for i, name := range names {
		if s.PerTenant[name] == 0 && i >= 10 {
			continue
		}
		if shown++; shown > 20 {
			fmt.Fprintf(tw, "(%d more)\t\t\t\t\n", len(names)-i)
			break
		}
		fmt.Fprintf(tw, "%s\t%d\t%.1f%%\t%.1f%%\t\n", name, s.PerTenant[name], 100*float64(s.PerTenant[name])/float64(max(s.Acknowledged, 1)), 100*g.Share(i))
	}
	_ = tw.Flush()
	types := make([]string, 0, len(s.PerType))
	for t := range s.PerType {
		types = append(types, t)
	}
	sort.Slice(types, func(a, b int) bool { return s.PerType[types[a]] > s.PerType[types[b]] })
	fmt.Fprintln(tw, "event type\tevents\t")
	for _, t := range types {
		fmt.Fprintf(tw, "%s\t%d\t\n", t, s.PerType[t])
	}
	return tw.Flush()
}
