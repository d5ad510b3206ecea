// Package produce implements `hotelbus produce`: JSON envelopes in, Avro on Kafka out.
package produce

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	system       string
	file         string
	kafka        *cmdutil.KafkaFlags
	keyFile      string
	registry     string
	spoolDir     string
	prefix       string
	json         bool
	devRegister  bool
	drainTimeout time.Duration
	spoolAfter   time.Duration
}

// New returns the produce command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "produce --system S [--file F]",
		Short: "Publish JSON envelopes (one per line) as the events of one system",
		Long: `produce reads the seed's JSON envelope, one per line, from --file or standard input, and publishes
each as the system given by --system: Avro in the Confluent wire format on the event type's topic,
keyed by tenantId. eventId (UUIDv7), timestamp, version, source, correlationId and traceId are filled
in when absent; an event type the system does not own, a source naming another system, a missing
tenantId and data that does not match the schema are refused before anything is sent.

It prints one result per input line, in input order:
  <line>  ok       <eventId>  <topic>  <partition>  <offset>
  <line>  spooled  <eventId>  <topic>  seq=<n>        (broker unreachable; in --spool-dir, delivered later)
  <line>  error    <message naming the field>
and exits 1 if any line failed. With --spool-dir, events the broker cannot take are kept on disk and
delivered in order by this run (waiting up to --drain-timeout at the end) or the next one.`,
		Example: `  hotelbus produce --system hotel-pms --file reservations.jsonl
  cat events.jsonl | hotelbus produce --system hotel-saas --json
  hotelbus produce --system hotel-pms --spool-dir /var/lib/hotelbus/spool < events.jsonl`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.system, "system", "", "the publishing system (required): hotel-pms, hotel-member, hotel-saas or hotel-common")
	fl.StringVar(&o.file, "file", "-", "file of JSON envelopes, one per line (- for standard input)")
	fl.StringVar(&o.registry, "registry", "", "schema registry URL (env HOTELBUS_REGISTRY)")
	fl.StringVar(&o.spoolDir, "spool-dir", "", "durable offline spool directory (default: none; events fail when the broker is unreachable)")
	fl.DurationVar(&o.spoolAfter, "spool-after", 15*time.Second, "with --spool-dir: how long an event waits for the broker before it is spooled")
	fl.DurationVar(&o.drainTimeout, "drain-timeout", 30*time.Second, "with --spool-dir: how long to wait at the end for spooled events to be delivered")
	cmdutil.AddPrefixFlag(cmd, &o.prefix)
	fl.BoolVar(&o.json, "json", false, "print one JSON object per result")
	fl.BoolVar(&o.devRegister, "dev-register", false, "register schema versions on first use (development only)")
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	cat, err := topics.Load(topics.Embedded(), "")
	if err != nil {
		return err
	}
	if _, err := cmdutil.LookupSystem(cat, o.system); err != nil {
		return err
	}
	in, err := openInput(f, o.file)
	if err != nil {
		return err
	}
	defer in.Close()
	priv, err := f.PrivacyOptions(o.keyFile, o.kafka, cat.WithPrefix(o.prefix), "") // seal personal data
	if err != nil {
		return err
	}
	defer priv.Close()
	serde, err := f.Serde(o.registry, cat.WithPrefix(o.prefix), o.devRegister, priv.SerdeOptions...)
	if err != nil {
		return err
	}
	if err := f.Reachable(ctx); err != nil { // the registry
		return err
	}
	seeds, kopts, err := f.KafkaOpts(o.kafka)
	if err != nil {
		return err
	}
	// The brokers must answer too, unless the spool keeps the events while they are away.
	check := f.Reachable
	if o.spoolDir != "" {
		check = f.WarnUnreachable
	}
	if err := check(ctx); err != nil {
		return err
	}
	popts := []streams.ProducerOption{streams.Brokers(seeds...), streams.KafkaOptions(kopts...)}
	if o.spoolDir != "" {
		popts = append(popts, streams.SpoolDir(o.spoolDir), streams.SpoolAfter(o.spoolAfter))
	}
	p, err := streams.NewProducer(o.system, serde, popts...)
	if err != nil {
		if errors.Is(err, streams.ErrConfig) {
			return cmdutil.Usagef("%v", err)
		}
		return err
	}
	counts, err := publishLines(ctx, f.Out, in, p, o.json)
	if o.spoolDir != "" {
		dctx, cancel := context.WithTimeout(ctx, o.drainTimeout)
		if derr := p.Drained(dctx); derr != nil {
			fmt.Fprintf(f.ErrOut, "warning: %v; they stay in %s and are delivered by the next run\n", derr, o.spoolDir)
		}
		cancel()
	}
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if cerr := p.Close(cctx); cerr != nil && err == nil {
		err = cerr
	}
	fmt.Fprintf(f.ErrOut, "%d acknowledged, %d spooled, %d failed\n", counts.ok, counts.spooled, counts.failed)
	if err != nil {
		return err
	}
	if counts.failed > 0 {
		return fmt.Errorf("produce: %d of %d events failed", counts.failed, counts.ok+counts.spooled+counts.failed)
	}
	return nil
}

func openInput(f *cmdutil.Factory, file string) (io.ReadCloser, error) {
	if file == "-" || file == "" {
		return io.NopCloser(f.In), nil
	}
	r, err := os.Open(file)
	if err != nil {
		return nil, cmdutil.Usagef("--file: %v", err)
	}
	return r, nil
}

type counts struct{ ok, spooled, failed int }

type outcome struct {
	line int
	res  streams.Result
	err  error
	done chan struct{}
}

// publishLines publishes every line asynchronously and prints the outcomes in input order.
func publishLines(ctx context.Context, out io.Writer, in io.Reader, p *streams.Producer, asJSON bool) (counts, error) {
	queue := make(chan *outcome, 4096)
	var c counts
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for oc := range queue {
			<-oc.done
			printOutcome(out, oc, asJSON, &c)
		}
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64*1024), 4<<20)
	line := 0
	var readErr error
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		oc := &outcome{line: line, done: make(chan struct{})}
		queue <- oc
		if ctx.Err() != nil {
			oc.err = fmt.Errorf("not sent: %w", ctx.Err())
			close(oc.done)
			continue
		}
		env, err := p.ParseJSON([]byte(text))
		if err != nil {
			oc.err = err
			close(oc.done)
			continue
		}
		p.PublishAsync(ctx, env, func(r streams.Result, err error) {
			oc.res, oc.err = r, err
			close(oc.done)
		})
	}
	if err := sc.Err(); err != nil {
		readErr = fmt.Errorf("produce: reading input after line %d: %w", line, err)
	}
	close(queue)
	wg.Wait()
	return c, readErr
}

func printOutcome(out io.Writer, oc *outcome, asJSON bool, c *counts) {
	type jsonLine struct {
		Line      int    `json:"line"`
		Status    string `json:"status"`
		EventID   string `json:"eventId,omitempty"`
		Topic     string `json:"topic,omitempty"`
		Partition *int32 `json:"partition,omitempty"`
		Offset    *int64 `json:"offset,omitempty"`
		Seq       uint64 `json:"seq,omitempty"`
		Error     string `json:"error,omitempty"`
	}
	j := jsonLine{Line: oc.line, EventID: oc.res.EventID, Topic: oc.res.Topic}
	switch {
	case oc.err != nil:
		c.failed++
		j.Status, j.Error = "error", oc.err.Error()
		if !asJSON {
			fmt.Fprintf(out, "%d\terror\t%v\n", oc.line, oc.err)
		}
	case oc.res.Spooled:
		c.spooled++
		j.Status, j.Seq = "spooled", oc.res.Seq
		if !asJSON {
			fmt.Fprintf(out, "%d\tspooled\t%s\t%s\tseq=%d\n", oc.line, oc.res.EventID, oc.res.Topic, oc.res.Seq)
		}
	default:
		c.ok++
		j.Status, j.Partition, j.Offset = "ok", &oc.res.Partition, &oc.res.Offset
		if !asJSON {
			fmt.Fprintf(out, "%d\tok\t%s\t%s\t%d\t%d\n", oc.line, oc.res.EventID, oc.res.Topic, oc.res.Partition, oc.res.Offset)
		}
	}
	if asJSON {
		_ = cmdutil.WriteJSONLine(out, j)
	}
}
