package dispatch

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HeaderSignature carries the delivery's signature: "t=<unix seconds>,v2=<hex HMAC-SHA256>".
const HeaderSignature = "Hotelbus-Signature"

// SignedHeaders are the CloudEvents headers the v2 signature binds, in the order they are signed:
// a receiver that checks the signature knows that the event's id, type, source and tenant are the
// dispatcher's, not only its body.
var SignedHeaders = []string{"ce-id", "ce-type", "ce-source", "ce-tenantid"}

// Sign returns the signature header value of a request with headers h and body, sent at t, under
// secret. The v2 scheme is the HMAC-SHA256 of these lines joined by "\n" (LF):
//
//	<t, decimal Unix seconds>
//	<ce-id>
//	<ce-type>
//	<ce-source>
//	<ce-tenantid>
//	<body>
//
// Header values cannot hold a line feed (the dispatcher refuses such an event, and HTTP servers
// such a request), so the lines are unambiguous. Binding the time lets a receiver refuse replays.
func Sign(secret []byte, t time.Time, h http.Header, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v2=" + hex.EncodeToString(mac(secret, ts, h, body))
}

func mac(secret []byte, ts string, h http.Header, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	for _, k := range SignedHeaders {
		m.Write([]byte{'\n'})
		m.Write([]byte(h.Get(k)))
	}
	m.Write([]byte{'\n'})
	m.Write(body)
	return m.Sum(nil)
}

// Verify checks the signature of a delivery (its headers h and body), for receivers written in Go
// and as the reference for other languages. It accepts the request when one v2 signature of the
// header matches under one of secrets (constant-time; during a rotation, pass the new secret and
// the old one) and its time is within tolerance of now. Other schemes in the header are ignored:
// v1 (the body only, without the headers) is not accepted. Errors wrap ErrBadSignature and never
// contain a secret.
func Verify(secrets [][]byte, h http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	header := h.Get(HeaderSignature)
	var ts string
	var sigs [][]byte
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v2":
			if b, err := hex.DecodeString(v); err == nil {
				sigs = append(sigs, b)
			}
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return fmt.Errorf("%w: want %s: t=<unix seconds>,v2=<hex>, got %s", ErrBadSignature, HeaderSignature, cut(header, 200))
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed at %s, %s away from now (tolerance %s)", ErrBadSignature, time.Unix(sec, 0).UTC().Format(time.RFC3339), d.Round(time.Second), tolerance)
	}
	for _, k := range SignedHeaders {
		if strings.ContainsAny(h.Get(k), "\r\n") {
			return fmt.Errorf("%w: header %s holds a line break", ErrBadSignature, k)
		}
	}
	if len(secrets) == 0 {
		return fmt.Errorf("%w: no secret to verify with", ErrBadSignature)
	}
	for _, s := range secrets {
		want := mac(s, ts, h, body)
		for _, sig := range sigs {
			if hmac.Equal(sig, want) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no v2 signature matches the body and the headers %s under the %d secret(s)", ErrBadSignature, strings.Join(SignedHeaders, ", "), len(secrets))
}

// cut returns s quoted, cut to at most n bytes (for errors that show untrusted input).
func cut(s string, n int) string {
	if len(s) > n {
		return strconv.Quote(strings.ToValidUTF8(s[:n], "")) + "..."
	}
	return strconv.Quote(s)
}
