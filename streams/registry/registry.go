// Package registry is the embedded Confluent-compatible schema registry used by `hotelbus dev` and by
// tests: franz-go's srfake (the REST API, in memory) served over HTTP on a listener of its own, with
//
//   - real compatibility checks: POST /subjects/{subject}/versions refuses an Avro schema that breaks
//     the subject's level (or the global one) with HTTP 409 as Confluent does, and POST
//     /compatibility/subjects/{subject}/versions[/{version}] answers with the same verdicts
//     (schemas.CheckCompatibility). Other schema types are not checked;
//   - optional durability (DataDir): schema ids, versions, deletions and levels survive a restart.
package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/sr"
	"github.com/twmb/franz-go/pkg/sr/srfake"
)

// maxBody bounds request bodies, as srfake does.
const maxBody = 1 << 20

// Registry is a running embedded schema registry. Its methods are safe for concurrent use.
type Registry struct {
	fake    *srfake.Registry
	handler http.Handler
	server  *http.Server
	served  chan error // Serve's result
	url     string

	// mu serializes changes (register, PUT, DELETE) with their journal appends, so the journal order is
	// the order srfake applied them in.
	mu      sync.Mutex
	journal *journal // nil in memory-only mode
	// refuse, once set (a journal append failed, or Close), makes every later change fail: the
	// state in memory may be ahead of the journal, and a restart must not lose acknowledged changes.
	refuse error

	closeOnce sync.Once
	closeErr  error
}

// New starts a registry; Close stops it.
func New(opts ...Option) (*Registry, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &Registry{fake: srfake.NewRegistry(srfake.WithGlobalCompat(cfg.defaultLevel))}
	r.fake.Intercept(r.intercept)
	r.handler = http.HandlerFunc(r.serveHTTP)
	if cfg.dataDir != "" {
		j, entries, err := openJournal(cfg.dataDir)
		if err != nil {
			return nil, err
		}
		if err := r.replay(entries); err != nil {
			return nil, errors.Join(err, j.close())
		}
		r.journal = j
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		err = fmt.Errorf("registry: listening on %s: %w", cfg.listen, err)
		if r.journal != nil {
			err = errors.Join(err, r.journal.close())
		}
		return nil, err
	}
	r.url = "http://" + ln.Addr().String()
	r.server = &http.Server{Handler: r.handler, ReadHeaderTimeout: 10 * time.Second}
	r.served = make(chan error, 1)
	go func() { r.served <- r.server.Serve(ln) }()
	return r, nil
}

// URL returns the registry's base URL, "http://host:port".
func (r *Registry) URL() string { return r.url }

// Handler returns the registry's HTTP handler, the one served at URL, to mount elsewhere.
func (r *Registry) Handler() http.Handler { return r.handler }

// Close stops serving at once: connections are closed and requests in flight may go unanswered, but a
// change in flight completes, journal append included, before the journal is closed. Changes requested
// through Handler afterwards fail with 503. Close is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		var errs []error
		if err := r.server.Close(); err != nil {
			errs = append(errs, fmt.Errorf("registry: closing the server: %w", err))
		}
		if err := <-r.served; !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, fmt.Errorf("registry: serve: %w", err))
		}
		r.mu.Lock()
		r.refuse = ErrClosed
		if r.journal != nil {
			errs = append(errs, r.journal.close())
			r.journal = nil
		}
		r.mu.Unlock()
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// serveHTTP serializes changes and journals those srfake accepted; everything else goes to srfake
// (and its interceptor, see intercept) directly.
func (r *Registry) serveHTTP(w http.ResponseWriter, req *http.Request) {
	rt := parseRoute(req)
	if rt.kind != routeRegister && rt.kind != routeChange {
		r.fake.Handler().ServeHTTP(w, req)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, maxBody))
	if err != nil {
		writeError(w, http.StatusUnprocessableEntity, sr.ErrInvalidSchema.Code, "registry: reading the request body: "+err.Error())
		return
	}
	req.Body = io.NopCloser(bytes.NewReader(body))

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refuse != nil {
		status := http.StatusInternalServerError
		if errors.Is(r.refuse, ErrClosed) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, sr.ErrStoreError.Code, r.refuse.Error())
		return
	}
	var rec recorder
	if rt.kind == routeRegister {
		r.register(&rec, req, rt.subject, body)
	} else {
		r.fake.Handler().ServeHTTP(&rec, req)
		if rec.ok() {
			r.record(&rec, entry{Op: opHTTP, Method: req.Method, Target: req.URL.RequestURI(), Body: string(body)})
		}
	}
	rec.flush(w)
}

// register serves a registration (compatibility is enforced by intercept) and journals the version
// it created, if any. The caller holds r.mu.
func (r *Registry) register(rec *recorder, req *http.Request, subject string, body []byte) {
	_, existed, err := r.lookup(req.Context(), subject, body)
	if err != nil {
		rec.fail(err)
		return
	}
	r.fake.Handler().ServeHTTP(rec, req)
	if !rec.ok() || existed {
		return
	}
	var created struct {
		ID int `json:"id"`
	}
	var sch sr.Schema
	if err := errors.Join(json.Unmarshal(rec.body.Bytes(), &created), json.Unmarshal(body, &sch)); err != nil {
		rec.fail(fmt.Errorf("registry: decoding registration of %q: %w", subject, err))
		return
	}
	ss, found, err := r.lookup(req.Context(), subject, body)
	if err == nil && (!found || ss.ID != created.ID) {
		err = fmt.Errorf("registry: schema id %d registered under %q but not found there", created.ID, subject)
	}
	if err != nil {
		rec.fail(err)
		return
	}
	r.record(rec, entry{Op: opRegister, Subject: subject, Version: ss.Version, ID: ss.ID, Schema: &sch})
}

// record journals e; if that fails, rec's success response is replaced by the error and every later
// change is refused. The caller holds r.mu.
func (r *Registry) record(rec *recorder, e entry) {
	if r.journal == nil {
		return
	}
	if err := r.journal.append(e); err != nil {
		r.refuse = fmt.Errorf("registry: changes refused after a journal failure: %w", err)
		rec.fail(err)
	}
}

// replay applies a journal to the fresh srfake registry.
func (r *Registry) replay(entries []entry) error {
	ctx := context.Background()
	for i, e := range entries {
		var err error
		switch e.Op {
		case opRegister:
			err = r.replayRegister(ctx, e)
		case opHTTP:
			var status int
			var body []byte
			status, body, err = r.inproc(ctx, e.Method, e.Target, []byte(e.Body))
			if err == nil && status/100 != 2 {
				err = fmt.Errorf("%s %s answered %d: %s", e.Method, e.Target, status, bytes.TrimSpace(body))
			}
		default:
			err = fmt.Errorf("unknown op %q", e.Op)
		}
		if err != nil {
			return fmt.Errorf("%w: replaying entry %d: %w", ErrJournal, i+1, err)
		}
	}
	return nil
}

// replayRegister restores one registration with its id and version. srfake's SeedSchema takes both but
// panics on an id already seeded, which is how a schema registered under several subjects is stored;
// then RegisterSchema, which reuses the id of an equal schema and gives the subject's next version,
// must reproduce them. SeedSchema raises srfake's next id above the seeded one, so new ids continue
// after the largest replayed id.
func (r *Registry) replayRegister(ctx context.Context, e entry) (err error) {
	if e.Schema == nil || e.Subject == "" || e.ID <= 0 || e.Version <= 0 {
		return fmt.Errorf("incomplete register entry %+v", e)
	}
	status, _, err := r.inproc(ctx, http.MethodGet, "/schemas/ids/"+strconv.Itoa(e.ID), nil)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("seeding %q version %d id %d: %v", e.Subject, e.Version, e.ID, p)
			}
		}()
		r.fake.SeedSchema(e.Subject, e.Version, e.ID, *e.Schema)
		return nil
	}
	id, version, err := r.fake.RegisterSchema(e.Subject, *e.Schema)
	if err != nil {
		return fmt.Errorf("registering %q: %w", e.Subject, err)
	}
	if id != e.ID || version != e.Version {
		return fmt.Errorf("%q registered as version %d id %d, journal says version %d id %d", e.Subject, version, id, e.Version, e.ID)
	}
	return nil
}

// recorder buffers a response of srfake so that it can be inspected before it is sent.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *recorder) Header() http.Header {
	if w.header == nil {
		w.header = http.Header{}
	}
	return w.header
}

func (w *recorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *recorder) ok() bool { return w.status == 0 || w.status/100 == 2 }

// fail replaces the response with a 500 for err.
func (w *recorder) fail(err error) {
	w.header, w.status = nil, 0
	w.body.Reset()
	writeError(w, http.StatusInternalServerError, sr.ErrStoreError.Code, err.Error())
}

func (w *recorder) flush(dst http.ResponseWriter) {
	for k, v := range w.header {
		dst.Header()[k] = v
	}
	if w.status != 0 {
		dst.WriteHeader(w.status)
	}
	// A failed write means the client went away; there is no one left to tell.
	_, _ = dst.Write(w.body.Bytes())
}

// inproc serves one request with srfake's handler in process.
func (r *Registry) inproc(ctx context.Context, method, target string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return 0, nil, fmt.Errorf("registry: %s %s: %w", method, target, err)
	}
	var rec recorder
	r.fake.Handler().ServeHTTP(&rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	return rec.status, rec.body.Bytes(), nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.schemaregistry.v1+json")
	w.WriteHeader(status)
	// A failed write means the client went away; there is no one left to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"error_code": code, "message": msg})
}
