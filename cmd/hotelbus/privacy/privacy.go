// Package privacy implements `hotelbus privacy`: erase a guest (destroy their data keys), show what
// the key topic holds about one, and rotate the key-encryption key (see streams/privacy).
package privacy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/user"
	"strconv"
	"time"

	"github.com/spf13/cobra"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	"github.com/hotelbus/hotelbus/streams/privacy"
	"github.com/hotelbus/hotelbus/topics"
)

type options struct {
	tenant, subject string
	by              string
	keyFile         string
	prefix          string
	json            bool
	rewrapOnly      bool
	kafka           *cmdutil.KafkaFlags
}

// New returns the privacy command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "privacy forget | status | rotate-kek",
		Short: "Erase a guest's personal data, show a guest's keys, rotate the key-encryption key",
		Long: `Events' personal-data fields ("pii": true) are sealed with a data key per (tenant, data subject);
topics/privacy.yaml says which data field names the subject of each event type. The data keys live
in the compacted key topic, wrapped by a key-encryption key (KEK) of the key file.

forget destroys a subject's keys (tombstones on the key topic, which every reader follows) and
records the erasure (who, when, which subject; no data): every past event of the subject then
reads back with its personal-data strings as "[erased]" everywhere, its other fields intact.
status shows a subject's live keys (ids and KEK, never key material) and erasures, and checks the
key topic's settings (compacted, kept forever): exit 1 when they are wrong.
rotate-kek adds a KEK to the key file, makes it current and re-wraps every data key under it;
events are not rewritten. Copy the rotated key file to every process before the next restart.`,
		Example: `  hotelbus privacy forget --tenant sakura-hotels --subject cus_01J9V3H6T2R8M4K7N5Q1W0XZ3A
  hotelbus privacy status --tenant sakura-hotels --subject cus_01J9V3H6T2R8M4K7N5Q1W0XZ3A --json
  hotelbus privacy rotate-kek --key-file /etc/hotelbus/privacy-keys.json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return cmdutil.Usagef("privacy: say forget, status or rotate-kek")
		},
	}
	o.kafka = cmdutil.AddKafkaFlags(cmd)
	cmdutil.AddKeyFileFlag(cmd, &o.keyFile)
	subject := func(c *cobra.Command) {
		c.Flags().StringVar(&o.tenant, "tenant", "", "tenantId of the subject (required)")
		c.Flags().StringVar(&o.subject, "subject", "", "the subject: the value of its event type's subject field in topics/privacy.yaml (required)")
	}
	forget := &cobra.Command{
		Use:   "forget --tenant T --subject S [--by NAME]",
		Short: "Destroy a subject's data keys and record the erasure",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Interruptible(func(ctx context.Context) error { return runForget(ctx, f, o) }),
	}
	subject(forget)
	forget.Flags().StringVar(&o.by, "by", "", "who asked for the erasure, for the erasure record (default: the user running the command)")
	status := &cobra.Command{
		Use:   "status --tenant T --subject S",
		Short: "Show a subject's keys and erasures, and check the key topic's settings",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Interruptible(func(ctx context.Context) error { return runStatus(ctx, f, o) }),
	}
	subject(status)
	rotate := &cobra.Command{
		Use:   "rotate-kek [--rewrap-only]",
		Short: "Add a new key-encryption key to the key file and re-wrap every data key under it",
		Args:  cobra.NoArgs,
		RunE:  cmdutil.Interruptible(func(ctx context.Context) error { return runRotate(ctx, f, o) }),
	}
	rotate.Flags().BoolVar(&o.rewrapOnly, "rewrap-only", false, "do not add a KEK: re-wrap the keys not yet under the current one (after an interrupted rotation)")
	for _, c := range []*cobra.Command{forget, status, rotate} {
		cmdutil.AddPrefixFlag(c, &o.prefix)
		c.Flags().BoolVar(&o.json, "json", false, "print JSON")
		cmd.AddCommand(c)
	}
	return cmd
}

// keys resolves the flags and starts the Keys of the key topic.
func (o *options) keys(ctx context.Context, f *cmdutil.Factory, needSubject bool) (*privacy.Keys, *topics.Catalog, func(), error) {
	if needSubject && (o.tenant == "" || o.subject == "") {
		return nil, nil, nil, cmdutil.Usagef("--tenant and --subject are required")
	}
	cat, err := cmdutil.Catalog(o.prefix)
	if err != nil {
		return nil, nil, nil, err
	}
	file, err := f.KeyFile(o.keyFile, true)
	if err != nil {
		return nil, nil, nil, err
	}
	keys, closeKeys, err := f.PrivacyKeys(file, o.kafka, cat)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := f.Reachable(ctx); err != nil {
		closeKeys()
		return nil, nil, nil, err
	}
	return keys, cat, closeKeys, nil
}

// forgetReport is forget's --json output.
type forgetReport struct {
	Tenant        string    `json:"tenantId"`
	Subject       string    `json:"subject"`
	KeysDestroyed int       `json:"keysDestroyed"`
	By            string    `json:"by"`
	At            time.Time `json:"at"`
}

func runForget(ctx context.Context, f *cmdutil.Factory, o *options) error {
	by := o.by
	if by == "" {
		if u, err := user.Current(); err == nil {
			by = u.Username
		}
	}
	if by == "" {
		return cmdutil.Usagef("--by: who asked for the erasure (the current user is unknown)")
	}
	keys, _, closeKeys, err := o.keys(ctx, f, true)
	if err != nil {
		return err
	}
	defer closeKeys()
	n, err := keys.Forget(ctx, o.tenant, o.subject, by)
	if errors.Is(err, privacy.ErrNoSubject) {
		return cmdutil.Usagef("--tenant/--subject: %v", err)
	}
	if err != nil {
		return err
	}
	rep := forgetReport{Tenant: o.tenant, Subject: o.subject, KeysDestroyed: n, By: by, At: time.Now().UTC()}
	if o.json {
		return cmdutil.WriteJSON(f.Out, rep)
	}
	_, err = fmt.Fprintf(f.Out, "erased subject %s of tenant %s: %d data key(s) destroyed; erasure recorded by %s\n", o.subject, o.tenant, n, by)
	return err
}

// statusReport is status's --json output.
type statusReport struct {
	privacy.SubjectStatus
	KeyTopic       string   `json:"keyTopic"`
	KeyTopicIssues []string `json:"keyTopicIssues"`
}

func runStatus(ctx context.Context, f *cmdutil.Factory, o *options) error {
	keys, cat, closeKeys, err := o.keys(ctx, f, true)
	if err != nil {
		return err
	}
	defer closeKeys()
	st, err := keys.Status(ctx, o.tenant, o.subject)
	if err != nil {
		return err
	}
	issues, err := keyTopicIssues(ctx, f, o, cat.KeyTopic)
	if err != nil {
		return err
	}
	rep := statusReport{SubjectStatus: st, KeyTopic: cat.KeyTopic, KeyTopicIssues: issues}
	if o.json {
		err = cmdutil.WriteJSON(f.Out, rep)
	} else {
		err = writeStatus(f.Out, rep)
	}
	if err != nil {
		return err
	}
	if len(issues) > 0 {
		return fmt.Errorf("privacy: key topic %s: %v", cat.KeyTopic, issues)
	}
	return nil
}

// keyTopicIssues checks the key topic's settings on the cluster (privacy.KeyTopicIssues).
func keyTopicIssues(ctx context.Context, f *cmdutil.Factory, o *options, topic string) ([]string, error) {
	cl, err := f.KafkaClient(o.kafka)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	return privacy.KeyTopicIssues(ctx, kadm.NewClient(cl), topic)
}

func writeStatus(w io.Writer, rep statusReport) error {
	fmt.Fprintf(w, "subject %s of tenant %s\n", rep.Subject, rep.Tenant)
	if len(rep.Keys) == 0 {
		fmt.Fprintln(w, "  no live data key")
	}
	for _, k := range rep.Keys {
		fmt.Fprintf(w, "  key %s  wrapped by %s  created %s\n", k.KeyID, k.KEK, k.CreatedAt.Format(time.RFC3339))
	}
	for _, e := range rep.Erasures {
		fmt.Fprintf(w, "  erased %s by %s (%s key(s) destroyed)\n", e.At.Format(time.RFC3339), e.By, strconv.Itoa(e.Keys))
	}
	if len(rep.KeyTopicIssues) == 0 {
		_, err := fmt.Fprintf(w, "key topic %s: compacted, kept forever\n", rep.KeyTopic)
		return err
	}
	for _, i := range rep.KeyTopicIssues {
		fmt.Fprintf(w, "key topic %s: %s\n", rep.KeyTopic, i)
	}
	return nil
}

// rotateReport is rotate-kek's --json output.
type rotateReport struct {
	KeyFile   string `json:"keyFile"`
	KEK       string `json:"kek"`
	Rewrapped int    `json:"rewrapped"`
}

func runRotate(ctx context.Context, f *cmdutil.Factory, o *options) error {
	file, err := f.KeyFile(o.keyFile, true)
	if err != nil {
		return err
	}
	var kek string
	if o.rewrapOnly {
		kf, err := privacy.OpenKeyFile(file)
		if err != nil {
			return cmdutil.Usagef("--key-file: %v", err)
		}
		kek = kf.CurrentKEK()
	} else if kek, err = privacy.RotateKeyFile(file, time.Now()); err != nil {
		return err
	}
	o.keyFile = file
	keys, _, closeKeys, err := o.keys(ctx, f, false)
	if err != nil {
		return err
	}
	defer closeKeys()
	n, err := keys.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("privacy: %s is current in %s, but re-wrapping stopped after %d key(s): %w (the old KEK stays in the file; fix the cause and run rotate-kek --rewrap-only)", kek, file, n, err)
	}
	rep := rotateReport{KeyFile: file, KEK: kek, Rewrapped: n}
	if o.json {
		return cmdutil.WriteJSON(f.Out, rep)
	}
	_, err = fmt.Fprintf(f.Out, "%s is the current KEK of %s; %d data key(s) re-wrapped under it\n", kek, file, n)
	return err
}
