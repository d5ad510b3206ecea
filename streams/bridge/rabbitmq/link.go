package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hotelbus/hotelbus/topics"
)

// link keeps one AMQP connection up: it dials, declares the topology, hands the connection out,
// and dials again with backoff when it closes. amqp091-go does not reconnect by itself.
type link struct {
	url      string
	redacted string // url without the password: the form logs and errors show
	topo     *topics.RabbitMQ
	cfg      *config
	log      *slog.Logger

	mu      sync.Mutex
	conn    *amqp.Connection // nil while down
	up      chan struct{}    // closed when conn is set; replaced when it goes down
	lastErr error
}

func newLink(rawURL string, topo *topics.RabbitMQ, cfg *config) (*link, error) {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
		// url's errors quote the whole URL, the password included.
		return nil, fmt.Errorf("%w: AMQP URL: want amqp://USER:PASS@HOST:PORT/VHOST", ErrConfig)
	}
	r := *u
	if r.User != nil {
		r.User = url.User(r.User.Username())
	}
	return &link{url: rawURL, redacted: r.String(), topo: topo, cfg: cfg, log: cfg.logger, up: make(chan struct{})}, nil
}

// run keeps the connection up until ctx ends, then closes it.
func (l *link) run(ctx context.Context) {
	bo := l.cfg.backoff()
	for ctx.Err() == nil {
		conn, err := l.dial()
		if err != nil {
			l.setErr(err)
			l.log.Warn("rabbitmq: connecting failed, retrying", "addr", l.redacted, "in", bo.Step(), "err", err)
			_ = bo.Wait(ctx)
			continue
		}
		bo.Reset()
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		l.mu.Lock()
		l.conn, l.lastErr = conn, nil
		close(l.up)
		l.mu.Unlock()
		l.log.Info("rabbitmq: connected", "addr", l.redacted)
		select {
		case <-ctx.Done():
			_ = conn.Close()
		case e := <-closed:
			l.log.Warn("rabbitmq: connection closed, reconnecting", "addr", l.redacted, "err", e)
		}
		l.mu.Lock()
		l.conn, l.up = nil, make(chan struct{})
		if l.lastErr == nil {
			l.lastErr = fmt.Errorf("rabbitmq: connection to %s closed", l.redacted)
		}
		l.mu.Unlock()
	}
}

func (l *link) setErr(err error) {
	l.mu.Lock()
	l.lastErr = err
	l.mu.Unlock()
}

// dial connects with the dial timeout and declares the topology.
func (l *link) dial() (*amqp.Connection, error) {
	conn, err := amqp.DialConfig(l.url, amqp.Config{Heartbeat: l.cfg.heartbeat, Locale: "en_US",
		Dial: amqp.DefaultDial(l.cfg.dialTimeout), Properties: amqp.Table{"connection_name": "hotelbus-bridge"}})
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: dial %s: %w", l.redacted, err)
	}
	if err := l.declare(conn); err != nil {
		_ = conn.Close()
		return nil, err
	}
	return conn, nil
}

// declare declares the topology; every declaration is idempotent (the same arguments as before).
func (l *link) declare(conn *amqp.Connection) error {
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("rabbitmq: %s: opening a channel: %w", l.redacted, err)
	}
	defer ch.Close()
	quorum := amqp.Table{"x-queue-type": "quorum"}
	for _, ex := range append(append([]string{}, l.topo.Exchanges...), l.topo.AuditExchange, l.topo.DeadLetterExchange) {
		if err := ch.ExchangeDeclare(ex, amqp.ExchangeTopic, true, false, false, false, nil); err != nil {
			return fmt.Errorf("rabbitmq: %s: declaring exchange %s: %w", l.redacted, ex, err)
		}
	}
	queues := [][2]string{{l.topo.DeadLetterExchange, l.topo.DeadLetterExchange}}
	if l.cfg.inbound {
		for _, ex := range l.topo.Exchanges {
			queues = append(queues, [2]string{l.topo.Queue, ex})
		}
	}
	for _, q := range queues {
		if _, err := ch.QueueDeclare(q[0], true, false, false, false, quorum); err != nil {
			return fmt.Errorf("rabbitmq: %s: declaring queue %s: %w", l.redacted, q[0], err)
		}
		if err := ch.QueueBind(q[0], "#", q[1], false, nil); err != nil {
			return fmt.Errorf("rabbitmq: %s: binding queue %s to %s: %w", l.redacted, q[0], q[1], err)
		}
	}
	return nil
}

// current waits until the connection is up, or ctx ends.
func (l *link) current(ctx context.Context) (*amqp.Connection, error) {
	for {
		l.mu.Lock()
		conn, up := l.conn, l.up
		l.mu.Unlock()
		if conn != nil && !conn.IsClosed() {
			return conn, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("rabbitmq: waiting for the connection to %s: %w", l.redacted, errors.Join(ctx.Err(), l.err()))
		}
	}
}

// err is nil while connected, else the reason it is not.
func (l *link) err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn != nil && !l.conn.IsClosed() {
		return nil
	}
	if l.lastErr == nil {
		return fmt.Errorf("rabbitmq: not connected to %s yet", l.redacted)
	}
	return l.lastErr
}
