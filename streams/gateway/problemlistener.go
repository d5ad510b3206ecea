package gateway

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
)

// maxHeaderBytes bounds a request's line and header fields (http.Server.MaxHeaderBytes).
const maxHeaderBytes = 64 << 10

// problemListener makes the answers net/http writes on its own, before any handler runs, RFC
// 9457 problem+json like every other refusal of the gateway: 431 for header fields above
// maxHeaderBytes, 400 for a malformed request, 501 for an unknown transfer coding. net/http has no
// hook for them; it writes each with one Write of a fixed shape on the connection, which is
// recognized here and replaced.
type problemListener struct{ net.Listener }

func (l problemListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &problemConn{Conn: c}, nil
}

type problemConn struct {
	net.Conn
}

func headersTooLarge() *Problem {
	return kindHeaderLarge.problem("the request line and header fields exceed " + strconv.Itoa(maxHeaderBytes) + " bytes")
}

// textErrorHeaders is what net/http's server writes between the status line and the body of its
// own error answers (net/http/server.go, conn.serve).
const textErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

func (c *problemConn) Write(b []byte) (int, error) {
	if p := serverProblem(b); p != nil {
		a := problemAnswer(p)
		var out bytes.Buffer
		out.WriteString("HTTP/1.1 " + strconv.Itoa(p.Status) + " " + http.StatusText(p.Status) + "\r\n")
		out.WriteString("Content-Type: " + a.ContentType + "\r\nContent-Length: " + strconv.Itoa(len(a.Body)) + "\r\nConnection: close\r\n\r\n")
		out.Write(a.Body)
		if _, err := c.Conn.Write(out.Bytes()); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// serverProblem returns the problem for b when b is a whole error answer of net/http's server:
// "HTTP/1.1 <code> <text>" textErrorHeaders "<body>". Handlers' answers never match: they carry
// other headers (Content-Length, Date) and are never text/plain.
func serverProblem(b []byte) *Problem {
	rest, ok := bytes.CutPrefix(b, []byte("HTTP/1.1 "))
	if !ok || len(rest) < 4 || rest[3] != ' ' {
		return nil
	}
	code, err := strconv.Atoi(string(rest[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil
	}
	status, body, ok := bytes.Cut(rest, []byte(textErrorHeaders))
	if !ok || bytes.IndexByte(status, '\n') >= 0 {
		return nil
	}
	switch code {
	case http.StatusRequestHeaderFieldsTooLarge:
		return headersTooLarge()
	case http.StatusNotImplemented:
		return kindNotImpl.problem(string(body))
	}
	return kindMalformed.problem(string(body))
}
