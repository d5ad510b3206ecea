// Package gateway is the HTTP ingestion of hotelbus: services that are not written in Go publish
// the seed's JSON envelope over HTTP, and the gateway publishes it through the streams.Producer of
// the system the request's bearer credential names.
//
// Routes (the embedded OpenAPI 3 document, served at /openapi.json, is the full contract):
//
//	POST /v1/events        one envelope; 202 after the broker acknowledged it or it was spooled
//	POST /v1/events/batch  {"events": [envelope, ...]}; a result per item
//	GET  /healthz          the process serves requests
//	GET  /readyz           broker and registry reachable, no spool full
//	GET  /metrics          Prometheus metrics (hotelbus_gateway_*)
//	GET  /openapi.json     the OpenAPI document
//
// The credential decides the source system: an envelope naming another system in metadata.source,
// an event type the system does not own, or a tenant outside the credential's scope is refused
// with 403. Token buckets per system and per (system, tenant) refuse what exceeds their rate with
// 429 and Retry-After (Limits). Refusals are RFC 9457 problem+json, their text cut to a few
// hundred bytes, and never reach Kafka. A request with an Idempotency-Key gets the first answer
// given to the same key of the same system within the TTL, and publishes nothing new.
//
// Memory is bounded whatever the input: request bodies are read only while their bytes fit
// Config.MaxBufferedBytes, and events are parsed only while their bytes fit Config.MaxParseBytes
// (a parse's memory grows with the event's arrays), so hostile bodies wait or get 503 instead of
// growing the heap.
package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/semaphore"

	"github.com/hotelbus/hotelbus/streams"
)

// Routes.
const (
	RouteEvents  = "/v1/events"
	RouteBatch   = "/v1/events/batch"
	RouteHealth  = "/healthz"
	RouteReady   = "/readyz"
	RouteMetrics = "/metrics"
	RouteOpenAPI = "/openapi.json"
)

// Header names the gateway reads or writes besides the standard ones.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	// HeaderReplayed is "true" on an answer replayed for a repeated Idempotency-Key.
	HeaderReplayed = "Idempotent-Replayed"
	// HeaderCorrelationID, when present, becomes the correlationId of events that have none.
	HeaderCorrelationID = "X-Correlation-Id"
	// HeaderTraceparent (W3C), when valid, gives the traceId of events that have none.
	HeaderTraceparent = "traceparent"
)

// Accepted is the answer for one accepted event (202, or an item of a batch).
type Accepted struct {
	// Status is "published" (the broker acknowledged it at Partition/Offset) or "spooled" (the
	// broker is unreachable; the event is in the durable spool at Seq and is delivered in order
	// when the broker is back).
	Status    string  `json:"status"`
	EventID   string  `json:"eventId"`
	Topic     string  `json:"topic"`
	Partition *int32  `json:"partition,omitempty"`
	Offset    *int64  `json:"offset,omitempty"`
	Seq       *uint64 `json:"seq,omitempty"`
}

// BatchItem is the result of one event of a batch: Code is the status a single POST of the event
// would have had; Accepted or Problem is set.
type BatchItem struct {
	Index int `json:"index"`
	Code  int `json:"code"`
	*Accepted
	Problem *Problem `json:"problem,omitempty"`
}

// BatchResult is the body of a batch answer: 202 when every item was accepted, 207 otherwise.
type BatchResult struct {
	Results []BatchItem `json:"results"`
}

// Server is the gateway. Its Handler serves the routes; Serve and Shutdown run it on an
// http.Server with the configured timeouts.
type Server struct {
	cfg     Config
	idem    *idempotency
	metrics *metrics
	limits  *limiter
	bodies  *semaphore.Weighted // bytes of request bodies held (MaxBufferedBytes)
	parses  *semaphore.Weighted // bytes of the events being parsed (MaxParseBytes)
	handler http.Handler
	http    *http.Server

	mu   sync.Mutex
	full map[string]int // system -> spool depth when a publish last failed with ErrSpoolFull
}

// New returns a gateway built from cfg (see Config for the defaults).
func New(cfg Config) (*Server, error) {
	c := cfg.withDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	systems := make([]string, 0, len(c.Producers))
	for sys := range c.Producers {
		systems = append(systems, sys)
	}
	s := &Server{cfg: c, full: map[string]int{}, limits: newLimiter(c.Limits, systems),
		bodies: semaphore.NewWeighted(c.MaxBufferedBytes), parses: semaphore.NewWeighted(c.MaxParseBytes),
		idem: &idempotency{rdb: c.Redis, ttl: c.IdempotencyTTL, lease: c.IdempotencyLease, wait: c.PublishTimeout}}
	s.metrics = newMetrics(s)
	mux := http.NewServeMux()
	mux.Handle("POST "+RouteEvents, s.instrument(RouteEvents, s.serveEvent))
	mux.Handle("POST "+RouteBatch, s.instrument(RouteBatch, s.serveBatch))
	mux.HandleFunc("GET "+RouteHealth, func(w http.ResponseWriter, _ *http.Request) {
		s.writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+RouteReady, s.serveReady)
	gatherers := prometheus.Gatherers{s.metrics.reg}
	if c.Metrics != nil {
		gatherers = append(gatherers, c.Metrics)
	}
	mux.Handle("GET "+RouteMetrics, promhttp.HandlerFor(gatherers, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET "+RouteOpenAPI, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(openAPI)
	})
	mux.HandleFunc("/", s.serveUnrouted)
	s.handler = s.limitHeaders(mux)
	s.http = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: c.ReadHeaderTimeout,
		ReadTimeout:       c.ReadTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       c.IdleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(c.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// Handler returns the gateway's routes, for tests (httptest) or a caller's own http.Server.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve answers requests on ln until Shutdown; it returns nil after a Shutdown. The answers
// net/http gives itself, before a handler runs (431 for headers above 64 KiB, 400 for a malformed
// request), are problem+json too.
func (s *Server) Serve(ln net.Listener) error {
	if err := s.http.Serve(problemListener{ln}); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops accepting connections and waits, until ctx ends, for the requests in flight to
// be answered (their events published or spooled). The producers stay open: close them after.
func (s *Server) Shutdown(ctx context.Context) error { return s.http.Shutdown(ctx) }

// serveUnrouted answers requests outside the routes: 405 for a known path, 404 otherwise.
func (s *Server) serveUnrouted(w http.ResponseWriter, r *http.Request) {
	allow := map[string]string{RouteEvents: "POST", RouteBatch: "POST", RouteHealth: "GET, HEAD",
		RouteReady: "GET, HEAD", RouteMetrics: "GET, HEAD", RouteOpenAPI: "GET, HEAD"}[r.URL.Path]
	if allow == "" {
		s.write(w, problemAnswer(kindNotFound.problem(r.URL.Path+" is not a route of this gateway")))
		return
	}
	w.Header().Set("Allow", allow)
	s.write(w, problemAnswer(kindMethod.problem(r.Method+" is not allowed on "+r.URL.Path+"; use "+allow)))
}

// limitHeaders answers 431 to a request whose line and header fields exceed maxHeaderBytes.
// http.Server.MaxHeaderBytes alone does not hold on a kept-alive connection, whose next request
// net/http may read past the limit.
func (s *Server) limitHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := len(r.Method) + len(r.RequestURI) + len(r.Proto) + len(r.Host) + 4
		for k, vs := range r.Header {
			for _, v := range vs {
				n += len(k) + len(v) + 4
			}
		}
		if n > maxHeaderBytes {
			w.Header().Set("Connection", "close")
			s.write(w, problemAnswer(headersTooLarge()))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// instrument counts, times and tracks the requests of a publishing route.
func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	dur := s.metrics.duration.WithLabelValues(route)
	var tracer trace.Tracer
	if s.cfg.TracerProvider != nil {
		tracer = s.cfg.TracerProvider.Tracer("github.com/hotelbus/hotelbus/streams/gateway")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		s.metrics.inFlight.Inc()
		defer s.metrics.inFlight.Dec()
		sw := &statusWriter{ResponseWriter: w}
		var span trace.Span
		if tracer != nil {
			ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			ctx, span = tracer.Start(ctx, "POST "+route, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("http.route", route)))
			r = r.WithContext(ctx)
		}
		h(sw, r)
		if span != nil {
			span.SetAttributes(attribute.Int("http.response.status_code", sw.status))
			if sw.status >= 500 {
				span.SetStatus(codes.Error, http.StatusText(sw.status))
			}
			span.End()
		}
		dur.Observe(time.Since(start).Seconds())
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.status)).Inc()
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) serveEvent(w http.ResponseWriter, r *http.Request) {
	s.servePublish(w, r, RouteEvents, s.cfg.MaxEventBytes, 0, s.publishOne)
}

func (s *Server) serveBatch(w http.ResponseWriter, r *http.Request) {
	s.servePublish(w, r, RouteBatch, s.cfg.MaxBodyBytes, 2, s.publishBatch)
}

// publishRequest is an authenticated request's body, to parse and publish.
type publishRequest struct {
	system  string
	tenants tenantScope
	body    []byte
	release func() // returns the body's share of MaxBufferedBytes, once
}

// parsed drops the body and returns its share of MaxBufferedBytes, once its events are parsed
// and handed to the producer (the parsed events and answers hold no part of it).
func (r *publishRequest) parsed() {
	r.body = nil
	r.release()
}

// maxQueueWait bounds how long a request waits for room in MaxBufferedBytes or MaxParseBytes
// before it is answered 503.
const maxQueueWait = 10 * time.Second

// servePublish runs what both publishing routes share, in this order: authentication (401), the
// system's rate limit (429), media type (415), body size (413), room to buffer the body (503), JSON
// depth (400), Idempotency-Key (replay, 422 for a reused key, 503 when Redis is unreachable), then
// publish.
func (s *Server) servePublish(w http.ResponseWriter, r *http.Request, route string, limit int64, extraDepth int,
	publish func(ctx context.Context, req *publishRequest) *answer) {
	cred, ok := s.cfg.Credentials.lookup(r.Header.Get("Authorization"))
	if !ok {
		msg := "send Authorization: Bearer <your system's token>"
		if r.Header.Get("Authorization") != "" {
			msg = "the bearer token is not a credential of any system"
		}
		s.write(w, problemAnswer(kindUnauthorized.problem(msg)))
		return
	}
	if wait, ok := s.limits.admit(cred.system, time.Now()); !ok {
		s.metrics.limited.WithLabelValues(cred.system, "system").Inc()
		s.write(w, rateAnswer(s.limits.rateProblem(cred.system, "system"), wait))
		return
	}
	if !isJSON(r.Header.Get("Content-Type")) {
		s.write(w, problemAnswer(kindMediaType.problem("send Content-Type: application/json (UTF-8)")))
		return
	}
	tooLarge := kindTooLarge.problem("the body exceeds " + strconv.FormatInt(limit, 10) + " bytes")
	if r.ContentLength > limit {
		s.write(w, problemAnswer(tooLarge))
		return
	}
	share := limit // a body of unknown length may take up to limit
	if r.ContentLength >= 0 {
		share = max(r.ContentLength, 1)
	}
	if p := s.acquire(r.Context(), s.bodies, share); p != nil {
		s.write(w, problemAnswer(p))
		return
	}
	req := &publishRequest{system: cred.system, tenants: cred.tenants, release: sync.OnceFunc(func() { s.bodies.Release(share) })}
	defer req.parsed()
	body, p := readBody(w, r, limit, tooLarge)
	if p != nil {
		s.write(w, problemAnswer(p))
		return
	}
	if tooDeep(body, s.cfg.MaxJSONDepth+extraDepth) {
		s.write(w, problemAnswer(kindMalformed.problem("JSON nested deeper than "+strconv.Itoa(s.cfg.MaxJSONDepth)+" levels",
			FieldError{"$", "nested too deep"})))
		return
	}
	req.body = body
	// Once publishing starts, the request's events are published or spooled and the answer stored
	// even if the client goes away.
	ctx := context.WithoutCancel(r.Context())
	var l *lease
	if key := r.Header.Get(HeaderIdempotencyKey); key != "" {
		if !validKey(key) {
			s.write(w, problemAnswer(kindMalformed.problem("Idempotency-Key must be 1 to 255 visible ASCII characters",
				FieldError{"header:Idempotency-Key", "invalid"})))
			return
		}
		var replay *answer
		l, replay, p = s.idem.begin(r.Context(), cred.system, key, fingerprint(route, body))
		switch {
		case p != nil:
			s.write(w, problemAnswer(p))
			return
		case replay != nil:
			s.metrics.replays.WithLabelValues(cred.system).Inc()
			w.Header().Set(HeaderReplayed, "true")
			s.write(w, replay)
			return
		}
	}
	if tp := r.Header.Get(HeaderTraceparent); tp != "" {
		ctx = streams.ContextWithTraceparent(ctx, tp)
	}
	if cid := r.Header.Get(HeaderCorrelationID); cid != "" {
		ctx = streams.ContextWithCorrelationID(ctx, cid)
	}
	a := publish(ctx, req)
	if l != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := s.idem.finish(sctx, l, a); err != nil {
			s.cfg.Logger.Error("gateway: Idempotency-Key answer not stored; a retry will publish again", "system", cred.system, "err", err)
		}
		cancel()
	}
	s.write(w, a)
}

// acquire takes n of sem, waiting up to maxQueueWait; it fails with 503 when there is no room by
// then or the client went away.
func (s *Server) acquire(ctx context.Context, sem *semaphore.Weighted, n int64) *Problem {
	if sem.TryAcquire(n) {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, maxQueueWait)
	defer cancel()
	if sem.Acquire(ctx, n) != nil {
		s.metrics.busy.Inc()
		return kindUnavailable.problem("the gateway is busy parsing other requests; retry later")
	}
	return nil
}

// parse parses one event of req while holding its bytes of MaxParseBytes, then checks the
// credential's tenant scope (403) and takes its tokens from the rate limits (429, with the wait).
// raw is at most MaxEventBytes long.
func (s *Server) parse(ctx context.Context, req *publishRequest, raw []byte) (*streams.Envelope, *Problem, time.Duration) {
	share := max(int64(len(raw)), 1)
	if p := s.acquire(ctx, s.parses, share); p != nil {
		return nil, p, 0
	}
	env, err := s.cfg.Producers[req.system].ParseJSON(raw)
	s.parses.Release(share)
	if err != nil {
		s.metrics.events.WithLabelValues(req.system, "", "refused").Inc()
		return nil, problemFor(err), 0
	}
	tenant := env.Metadata.TenantID
	if !req.tenants.allows(tenant) {
		s.metrics.events.WithLabelValues(req.system, env.EventType, "refused").Inc()
		return nil, kindTenantScope.problem("the credential of "+req.system+" may not publish for tenant "+excerpt(tenant),
			FieldError{"metadata.tenantId", "outside the tenants of the credential"}), 0
	}
	if bucket, wait := s.limits.take(req.system, tenant, time.Now()); bucket != "" {
		s.metrics.limited.WithLabelValues(req.system, bucket).Inc()
		s.metrics.events.WithLabelValues(req.system, env.EventType, "refused").Inc()
		return nil, s.limits.rateProblem(req.system, bucket), wait
	}
	return env, nil, 0
}

// publishOne parses and publishes the body of /v1/events.
func (s *Server) publishOne(ctx context.Context, req *publishRequest) *answer {
	env, prob, wait := s.parse(ctx, req, req.body)
	req.parsed()
	if prob != nil {
		return rateAnswer(prob, wait)
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	res, err := s.cfg.Producers[req.system].Publish(ctx, env)
	code, acc, prob := s.outcome(req.system, env.EventType, res, err)
	if prob != nil {
		return problemAnswer(prob)
	}
	return jsonAnswer(code, acc)
}

// publishBatch parses every item and publishes the valid ones in order; each gets its result.
func (s *Server) publishBatch(ctx context.Context, req *publishRequest) *answer {
	raws, prob := batchItems(req.body)
	if prob != nil {
		return problemAnswer(prob)
	}
	switch n := len(raws); {
	case n == 0:
		return problemAnswer(kindMalformed.problem("a batch needs at least one event", FieldError{"events", "required, non-empty"}))
	case n > s.cfg.MaxBatchEvents:
		return problemAnswer(kindTooLarge.problem("a batch holds at most "+strconv.Itoa(s.cfg.MaxBatchEvents)+" events, this one "+strconv.Itoa(n),
			FieldError{"events", "too many events"}))
	}
	p := s.cfg.Producers[req.system]
	ctx, cancel := context.WithTimeout(ctx, s.cfg.PublishTimeout)
	defer cancel()
	items := make([]BatchItem, len(raws))
	var wg sync.WaitGroup
	var retryIn time.Duration
	for i, raw := range raws {
		items[i].Index = i
		if int64(len(raw)) > s.cfg.MaxEventBytes {
			items[i].Code, items[i].Problem = http.StatusRequestEntityTooLarge,
				kindTooLarge.problem("the event exceeds "+strconv.FormatInt(s.cfg.MaxEventBytes, 10)+" bytes")
			s.metrics.events.WithLabelValues(req.system, "", "refused").Inc()
			continue
		}
		env, prob, wait := s.parse(ctx, req, raw)
		if prob != nil {
			items[i].Code, items[i].Problem = prob.Status, prob
			retryIn = max(retryIn, wait)
			continue
		}
		wg.Add(1)
		eventType := env.EventType // the callback keeps no reference to the parsed event
		p.PublishAsync(ctx, env, func(res streams.Result, err error) {
			defer wg.Done()
			items[i].Code, items[i].Accepted, items[i].Problem = s.outcome(req.system, eventType, res, err)
		})
	}
	req.parsed()
	wg.Wait()
	code, retry := http.StatusAccepted, false
	for _, it := range items {
		if it.Problem != nil {
			code = http.StatusMultiStatus
			retry = retry || it.Code == http.StatusTooManyRequests
		}
	}
	a := jsonAnswer(code, BatchResult{Results: items})
	a.RetryAfter, a.retryIn = retry, retryIn
	return a
}

// batchItems returns the items of a batch body {"events": [envelope, ...]}, each a slice of body
// (nothing is copied, so a batch costs its body and one item's parse at a time).
func batchItems(body []byte) ([][]byte, *Problem) {
	malformed := func(msg string) *Problem {
		return kindMalformed.problem(`the body must be {"events": [envelope, ...]}`, FieldError{"$", msg})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, malformed("expected a JSON object")
	}
	var items [][]byte
	seen := false
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, malformed(err.Error())
		}
		switch {
		case k != "events":
			return nil, malformed("unknown field " + excerpt(k.(string)))
		case seen:
			return nil, malformed(`duplicate field "events"`)
		}
		seen = true
		t, err := dec.Token()
		if err != nil {
			return nil, malformed(err.Error())
		}
		if t == nil {
			continue
		}
		if t != json.Delim('[') {
			return nil, malformed(`"events" must be an array`)
		}
		for dec.More() {
			var v span
			if err := dec.Decode(&v); err != nil {
				return nil, malformed(err.Error())
			}
			end := int(dec.InputOffset())
			items = append(items, body[end-v.n:end])
		}
		if _, err := dec.Token(); err != nil {
			return nil, malformed(err.Error())
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, malformed(err.Error())
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, kindMalformed.problem("trailing data after the JSON object", FieldError{"$", "trailing data"})
	}
	return items, nil
}

// span measures a JSON value without copying it: the decoder hands it the value's bytes.
type span struct{ n int }

func (s *span) UnmarshalJSON(b []byte) error { s.n = len(b); return nil }

// outcome turns a publish result into the answer's parts, counting it.
func (s *Server) outcome(system, eventType string, res streams.Result, err error) (int, *Accepted, *Problem) {
	if err != nil {
		if errors.Is(err, streams.ErrSpoolFull) {
			s.markFull(system)
		}
		prob := problemFor(err)
		outcome := "refused"
		if prob.Status >= 500 || prob.Status == http.StatusTooManyRequests {
			outcome = "failed"
			s.cfg.Logger.Warn("gateway: publish failed", "system", system, "eventType", eventType, "status", prob.Status, "err", err)
		}
		s.metrics.events.WithLabelValues(system, eventType, outcome).Inc()
		return prob.Status, nil, prob
	}
	acc := &Accepted{Status: "published", EventID: res.EventID, Topic: res.Topic}
	if res.Spooled {
		acc.Status, acc.Seq = "spooled", &res.Seq
	} else {
		acc.Partition, acc.Offset = &res.Partition, &res.Offset
	}
	s.metrics.events.WithLabelValues(system, eventType, acc.Status).Inc()
	return http.StatusAccepted, acc, nil
}

// markFull notes that system's spool refused an event. The Producer does not report its spool's
// fill level, so the spool counts as full until its depth falls below the depth seen then.
func (s *Server) markFull(system string) {
	d := s.cfg.Producers[system].SpoolDepth()
	s.mu.Lock()
	s.full[system] = d
	s.mu.Unlock()
}

func (s *Server) spoolFull(system string) bool {
	d := s.cfg.Producers[system].SpoolDepth()
	s.mu.Lock()
	defer s.mu.Unlock()
	mark, ok := s.full[system]
	if ok && d < mark {
		delete(s.full, system)
		return false
	}
	return ok
}

// Readiness is the body of /readyz: Status "ready" (200) or "unready" (503), and each check's
// result ("ok" or what failed).
type Readiness struct {
	Status string            `json:"status"`
	Checks map[string]string `json:"checks"`
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.ReadyTimeout)
	defer cancel()
	rd := Readiness{Status: "ready", Checks: map[string]string{}}
	check := func(name string, err error) {
		rd.Checks[name] = "ok"
		if err != nil {
			rd.Checks[name], rd.Status = err.Error(), "unready"
		}
	}
	if s.cfg.Kafka != nil {
		check("kafka", s.cfg.Kafka.Ping(ctx))
	}
	if s.cfg.Registry != nil {
		check("registry", s.cfg.Registry.Compatibility(ctx)[0].Err)
	}
	for sys, p := range s.cfg.Producers {
		var err error
		switch {
		case s.spoolFull(sys):
			err = errors.New("spool full")
		case p.SpoolErr() != nil:
			err = p.SpoolErr()
		}
		check("spool:"+sys, err)
	}
	code := http.StatusOK
	if rd.Status != "ready" {
		code = http.StatusServiceUnavailable
	}
	s.writeJSON(w, code, rd)
}

func isJSON(contentType string) bool {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || !(mt == "application/json" || strings.HasPrefix(mt, "application/") && strings.HasSuffix(mt, "+json")) {
		return false
	}
	cs, ok := params["charset"]
	return !ok || strings.EqualFold(cs, "utf-8")
}

// readBody reads at most limit bytes of body; a longer body is tooLarge.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, tooLarge *Problem) ([]byte, *Problem) {
	buf := bytes.NewBuffer(make([]byte, 0, max(r.ContentLength, 512)))
	if _, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit)); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, kindMalformed.problem("the body ended early")
		}
		return nil, kindMalformed.problem("reading the body: " + err.Error())
	}
	return buf.Bytes(), nil
}

// tooDeep reports whether JSON b nests objects and arrays deeper than limit. It only counts
// brackets outside strings; malformed JSON is left to the parser.
func tooDeep(b []byte, limit int) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case inStr:
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if depth++; depth > limit {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

func problemAnswer(p *Problem) *answer {
	a := jsonAnswer(p.Status, p)
	a.ContentType = "application/problem+json"
	a.RetryAfter = p.Status == http.StatusTooManyRequests || p.Status == http.StatusServiceUnavailable
	return a
}

// rateAnswer is the answer for p, with the Retry-After of a rate limit's wait when there is one.
func rateAnswer(p *Problem, wait time.Duration) *answer {
	a := problemAnswer(p)
	a.retryIn = wait
	return a
}

func jsonAnswer(status int, v any) *answer {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("gateway: encoding an answer: " + err.Error()) // only plain structs are encoded
	}
	return &answer{Status: status, ContentType: "application/json", Body: buf.Bytes()}
}

// write writes an answer, with the headers its status calls for.
func (s *Server) write(w http.ResponseWriter, a *answer) {
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(a.Body)))
	if a.RetryAfter || a.retryIn > 0 {
		secs := int(s.cfg.RetryAfter / time.Second)
		if a.retryIn > 0 {
			secs = max(int(math.Ceil(a.retryIn.Seconds())), 1)
		}
		h.Set("Retry-After", strconv.Itoa(secs))
	}
	if a.Status == http.StatusUnauthorized {
		h.Set("WWW-Authenticate", `Bearer realm="hotelbus"`)
	}
	w.WriteHeader(a.Status)
	_, _ = w.Write(a.Body)
}

func (s *Server) writeJSON(w http.ResponseWriter, status int, v any) {
	s.write(w, jsonAnswer(status, v))
}
