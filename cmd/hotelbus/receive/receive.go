// Package receive implements `hotelbus receive`: a receiver for `hotelbus dispatch` to try a flow
// end to end, and the reference of what a receiver checks.
package receive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/hotelbus/hotelbus/cmd/hotelbus/cmdutil"
	hbdispatch "github.com/hotelbus/hotelbus/cmd/hotelbus/dispatch"
	"github.com/hotelbus/hotelbus/streams/dispatch"
)

// maxBody bounds a delivery's body; a larger one is refused with 413.
const maxBody = 4 << 20

type options struct {
	listen     string
	secretFile string
	refuse     []string
	tolerance  time.Duration
	bodies     bool
}

// New returns the receive command.
func New(f *cmdutil.Factory) *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "receive [--listen ADDR] [--refuse TYPE ...] [--body]",
		Short: "Receive the events hotelbus dispatch pushes, verify them and print one line each",
		Long: `receive answers the POSTs of ` + "`hotelbus dispatch`" + `: it verifies each delivery's Hotelbus-Signature (v2,
under the dispatch secrets: --secret-file, HOTELBUS_DISPATCH_SECRET, or the dev stack's), answers 204
and prints one line per event: time, ce-type, ce-tenantid and ce-id (--body adds the JSON envelope).

A bad signature gets 401; an event whose type --refuse names gets 422, which the dispatcher takes as
a permanent refusal and dead-letters (to try the dead-letter tools). It is a development tool: a
production receiver does the same checks (dispatch.Verify in Go) and deduplicates by ce-id.`,
		Example: `  hotelbus receive --listen 127.0.0.1:8080
  hotelbus receive --listen 127.0.0.1:8080 --refuse reservation.canceled --body`,
		Args: cobra.NoArgs,
		RunE: cmdutil.Interruptible(func(ctx context.Context) error { return run(ctx, f, o) }),
	}
	fl := cmd.Flags()
	fl.StringVar(&o.listen, "listen", "127.0.0.1:8080", "address to receive deliveries on (`host:port`)")
	fl.StringVar(&o.secretFile, "secret-file", "", "file of accepted signing secrets, one per line (default $"+hbdispatch.EnvSecret+", or the dev stack's)")
	fl.StringArrayVar(&o.refuse, "refuse", nil, "answer 422 to events of this `type` so they are dead-lettered (repeatable)")
	fl.DurationVar(&o.tolerance, "tolerance", 5*time.Minute, "how far a signature's time may be from now")
	fl.BoolVar(&o.bodies, "body", false, "print each event's JSON envelope")
	return cmd
}

func run(ctx context.Context, f *cmdutil.Factory, o *options) error {
	secrets, err := hbdispatch.ReadSecrets(f, o.secretFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return cmdutil.Usagef("--listen: %v", err)
	}
	var mu sync.Mutex // one line at a time on the output
	var received, refused int
	print := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(f.Out, format, a...)
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusRequestEntityTooLarge)
			return
		}
		now := time.Now()
		id, typ, tenant := r.Header.Get("ce-id"), r.Header.Get("ce-type"), r.Header.Get("ce-tenantid")
		if err := dispatch.Verify(secrets, r.Header, body, now, o.tolerance); err != nil {
			print("%s  401 %v  %q\n", now.Format(time.TimeOnly), err, id)
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		if slices.Contains(o.refuse, typ) {
			mu.Lock()
			refused++
			mu.Unlock()
			print("%s  422 refused (--refuse)  %s  %s  %s\n", now.Format(time.TimeOnly), typ, tenant, id)
			http.Error(w, "refused by --refuse", http.StatusUnprocessableEntity)
			return
		}
		mu.Lock()
		received++
		mu.Unlock()
		line := fmt.Sprintf("%s  204  %s  %s  %s", now.Format(time.TimeOnly), typ, tenant, id)
		if o.bodies {
			line += "\n" + strings.TrimSpace(string(body))
		}
		print("%s\n", line)
		w.WriteHeader(http.StatusNoContent)
	})}
	fmt.Fprintf(f.ErrOut, "receiving on http://%s/ (Ctrl-C stops)\n", ln.Addr())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(f.ErrOut, "receive stopped: %d received, %d refused\n", received, refused)
	return nil
}
