package views

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Authorizer checks a request's Authorization header for a tenant: the system its bearer token
// authenticates and whether the token's tenant scope allows the tenant. gateway.Credentials is
// one (the gateway's credentials format, reloaded when its file changes).
type Authorizer interface {
	Authorize(authorization, tenant string) (system string, tenantAllowed, ok bool)
}

// HeaderStaleness carries a view's staleness in seconds (three decimals) on every view answer.
const HeaderStaleness = "Hotelbus-View-Staleness"

// Page is the answer of a list request.
type Page struct {
	Items []Item `json:"items"`
	// Next is the cursor of the next page; absent on the last.
	Next string `json:"next,omitempty"`
}

// Handler serves the views over HTTP:
//
//	GET /v1/views/{view}/{tenantId}/{key}                          one Item, 404 when absent
//	GET /v1/views/{view}/{tenantId}?prefix=&limit=&cursor=         a Page of the tenant's items
//
// limit defaults to 100 (at most 1000); cursor is the previous page's next. Every answer carries
// HeaderStaleness. With auth set, a request needs a bearer token of the views' system (403
// otherwise) whose tenant scope allows the tenant (403); nil auth serves everyone (tests,
// loopback). Refusals are application/problem+json (RFC 9457).
func (l *Local) Handler(auth Authorizer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/views/{view}/{tenant}/{key}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := l.serveView(w, r, auth)
		if !ok {
			return
		}
		it, err := v.get(r.Context(), r.PathValue("tenant"), r.PathValue("key"))
		if err != nil {
			l.fail(w, v, err)
			return
		}
		l.answer(w, v, it)
	})
	mux.HandleFunc("GET /v1/views/{view}/{tenant}", func(w http.ResponseWriter, r *http.Request) {
		v, ok := l.serveView(w, r, auth)
		if !ok {
			return
		}
		q := r.URL.Query()
		limit := 100
		if s := q.Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil {
				l.fail(w, v, ErrInvalid)
				return
			}
			limit = n
		}
		items, next, err := v.scan(r.Context(), r.PathValue("tenant"), q.Get("prefix"), q.Get("cursor"), limit)
		if err != nil {
			l.fail(w, v, err)
			return
		}
		if items == nil {
			items = []Item{}
		}
		l.answer(w, v, Page{Items: items, Next: next})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		problem(w, http.StatusNotFound, "not-found", "No such route", "GET /v1/views/{view}/{tenantId}[/{key}]")
	})
	return mux
}

// serveView authenticates the request and finds its view, answering the refusal itself.
func (l *Local) serveView(w http.ResponseWriter, r *http.Request, auth Authorizer) (*View, bool) {
	if auth != nil {
		sys, tenantOK, ok := auth.Authorize(r.Header.Get("Authorization"), r.PathValue("tenant"))
		switch {
		case !ok:
			w.Header().Set("WWW-Authenticate", `Bearer realm="hotelbus-views"`)
			problem(w, http.StatusUnauthorized, "unauthenticated", "Missing or unknown bearer token", "")
			return nil, false
		case sys != l.cfg.System:
			problem(w, http.StatusForbidden, "not-your-views", "The token's system may not read these views", "these are the views of "+l.cfg.System)
			return nil, false
		case !tenantOK:
			problem(w, http.StatusForbidden, "tenant-not-allowed", "The token's tenant scope does not include this tenant", "")
			return nil, false
		}
	}
	v, err := l.View(r.PathValue("view"))
	if err != nil {
		problem(w, http.StatusNotFound, "unknown-view", "No such view", err.Error())
		return nil, false
	}
	return v, true
}

func (l *Local) answer(w http.ResponseWriter, v *View, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		l.fail(w, v, err)
		return
	}
	l.count(v, http.StatusOK)
	w.Header().Set(HeaderStaleness, staleness(v.Staleness()))
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (l *Local) fail(w http.ResponseWriter, v *View, err error) {
	w.Header().Set(HeaderStaleness, staleness(v.Staleness()))
	switch {
	case errors.Is(err, ErrNotFound):
		l.count(v, http.StatusNotFound)
		problem(w, http.StatusNotFound, "not-found", "No such item", "")
	case errors.Is(err, ErrInvalid):
		l.count(v, http.StatusBadRequest)
		problem(w, http.StatusBadRequest, "invalid-request", "Invalid tenantId, key, prefix, cursor or limit",
			"tenantId, key, prefix and cursor match ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$; limit is 1 to 1000")
	default:
		l.count(v, http.StatusInternalServerError)
		l.cfg.Logger.Error("views: reading the store", "view", v.def.String(), "err", err)
		problem(w, http.StatusInternalServerError, "store-error", "The view's store could not be read", "")
	}
}

func (l *Local) count(v *View, code int) {
	if l.m != nil {
		l.m.requests.WithLabelValues(l.cfg.System, v.def.Name, strconv.Itoa(code)).Inc()
	}
}

func staleness(d time.Duration) string { return strconv.FormatFloat(d.Seconds(), 'f', 3, 64) }

// problem writes an RFC 9457 problem details answer.
func problem(w http.ResponseWriter, status int, slug, title, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(struct {
		Type   string `json:"type"`
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail,omitempty"`
	}{"urn:hotelbus:problem:" + slug, title, status, detail})
}
