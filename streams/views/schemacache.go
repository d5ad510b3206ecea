package views

import (
	"bytes"
	"io"
	"net/http"
	"regexp"
	"strconv"
)

// schemaByID matches the registry path of a writer schema by id, which franz-go's sr client asks
// for when it decodes a record (GET /schemas/ids/{id}).
var schemaByID = regexp.MustCompile(`/schemas/ids/([0-9]{1,10})$`)

// schemaCache is an http.RoundTripper in front of the schema registry that keeps every writer
// schema the registry returned by id in the store and answers from it first: a registry id names
// one schema forever, so the cache never goes stale, and records the view server has seen types of
// before decode while the registry is down. Every other request goes to the registry.
type schemaCache struct {
	st   *store
	next http.RoundTripper
}

func (c schemaCache) RoundTrip(r *http.Request) (*http.Response, error) {
	m := schemaByID.FindStringSubmatch(r.URL.Path)
	if r.Method != http.MethodGet || m == nil {
		return c.next.RoundTrip(r)
	}
	id := m[1]
	if body := c.st.schema(id); body != nil {
		return &http.Response{StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{"Content-Type": {"application/vnd.schemaregistry.v1+json"}}, Body: io.NopCloser(bytes.NewReader(body)),
			ContentLength: int64(len(body)), Request: r}, nil
	}
	resp, err := c.next.RoundTrip(r)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	_ = c.st.putSchema(id, body) // a failed write only means asking the registry again next time
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return resp, nil
}
