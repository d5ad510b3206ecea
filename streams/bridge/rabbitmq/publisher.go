package rabbitmq

import (
	"context"
	"fmt"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// publisher publishes with the mandatory flag on a channel in confirm mode, reopened on the
// link's current connection when it closes, and tells each caller its publication's fate: acked,
// returned (unroutable), nacked or lost with the channel.
//
// Returns carry no delivery tag, so they are matched to publications by their order: RabbitMQ
// sends a mandatory publication's basic.return before its basic.ack, and amqp091-go hands a
// return to an unbuffered listener before it dispatches the next frame. One goroutine (listen)
// receives both, so a return is recorded before the confirm of its publication is seen.
type publisher struct {
	link *link
	wait time.Duration

	mu sync.Mutex // serializes opening the channel and taking a delivery tag with the publish
	ch *pubChannel
}

type pubChannel struct {
	ch      *amqp.Channel
	mu      sync.Mutex
	pending map[uint64]*publication
	closed  bool
}

type publication struct {
	messageID string
	returned  bool
	done      chan struct{}
	acked     bool
}

// outcome of one publication.
type outcome int

const (
	confirmed outcome = iota
	returned
	nacked
	lost // the channel closed, or no confirm within the timeout
)

// String is the outcome as the result label of hotelbus_bridge_rabbitmq_confirms_total.
func (o outcome) String() string { return [...]string{"ack", "returned", "nack", "lost"}[o] }

// channel returns the open publishing channel, or opens one on conn. Called with p.mu held.
func (p *publisher) channel(conn *amqp.Connection) (*pubChannel, error) {
	if p.ch != nil && !p.ch.isClosed() {
		return p.ch, nil
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: %s: opening a channel: %w", p.link.redacted, err)
	}
	if err := ch.Confirm(false); err != nil {
		_ = ch.Close()
		return nil, fmt.Errorf("rabbitmq: %s: confirm mode: %w", p.link.redacted, err)
	}
	pc := &pubChannel{ch: ch, pending: map[uint64]*publication{}}
	go pc.listen(ch.NotifyReturn(make(chan amqp.Return)), ch.NotifyPublish(make(chan amqp.Confirmation, 1024)))
	p.ch = pc
	return pc, nil
}

func (pc *pubChannel) isClosed() bool {
	pc.mu.Lock()
	defer pc.mu.Unlock()
	return pc.closed
}

// listen records returns and settles publications as confirms arrive; when the channel closes it
// settles every pending publication as lost.
func (pc *pubChannel) listen(returns <-chan amqp.Return, confirms <-chan amqp.Confirmation) {
	var returnedIDs []string // returned, their confirm not yet seen, in order
	for returns != nil || confirms != nil {
		select {
		case r, ok := <-returns:
			if !ok {
				returns = nil
				continue
			}
			returnedIDs = append(returnedIDs, r.MessageId)
		case c, ok := <-confirms:
			if !ok {
				confirms = nil
				continue
			}
			pc.mu.Lock()
			pub := pc.pending[c.DeliveryTag]
			delete(pc.pending, c.DeliveryTag)
			pc.mu.Unlock()
			if pub == nil {
				continue
			}
			for i, id := range returnedIDs {
				if id == pub.messageID {
					pub.returned = true
					returnedIDs = append(returnedIDs[:i], returnedIDs[i+1:]...)
					break
				}
			}
			pub.acked = c.Ack
			close(pub.done)
		}
	}
	pc.mu.Lock()
	pc.closed = true
	for tag, pub := range pc.pending {
		delete(pc.pending, tag)
		close(pub.done)
	}
	pc.mu.Unlock()
}

// publish sends msg to exchange with routing key key and the mandatory flag, and waits for its
// confirm (at most the confirm timeout, or until ctx ends).
func (p *publisher) publish(ctx context.Context, exchange, key string, msg amqp.Publishing) (outcome, error) {
	pending, err := p.send(ctx, exchange, key, msg)
	if err != nil {
		return lost, err
	}
	return pending.wait(ctx)
}

// pending is a publication sent and not yet known confirmed.
type pending struct {
	p   *publisher
	pc  *pubChannel
	pub *publication
}

// send publishes msg without waiting for its confirm: publications sent one after the other reach
// RabbitMQ in that order. Waiting for a connection is bounded by the confirm timeout, and done
// without holding p.mu.
func (p *publisher) send(ctx context.Context, exchange, key string, msg amqp.Publishing) (*pending, error) {
	cctx, cancel := context.WithTimeout(ctx, p.wait)
	conn, err := p.link.current(cctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotConfirmed, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	pc, err := p.channel(conn)
	if err != nil {
		return nil, err
	}
	pub := &publication{messageID: msg.MessageId, done: make(chan struct{})}
	tag := pc.ch.GetNextPublishSeqNo()
	pc.mu.Lock()
	pc.pending[tag] = pub
	pc.mu.Unlock()
	if err := pc.ch.PublishWithContext(ctx, exchange, key, true, false, msg); err != nil {
		pc.mu.Lock()
		delete(pc.pending, tag)
		pc.mu.Unlock()
		return nil, fmt.Errorf("rabbitmq: %s: publishing to %s: %w", p.link.redacted, exchange, err)
	}
	return &pending{p: p, pc: pc, pub: pub}, nil
}

// wait waits for the publication's confirm (at most the confirm timeout, or until ctx ends).
func (w *pending) wait(ctx context.Context) (outcome, error) {
	t := time.NewTimer(w.p.wait)
	defer t.Stop()
	select {
	case <-w.pub.done:
	case <-t.C:
		return lost, fmt.Errorf("%w: no confirm from %s within %s", ErrNotConfirmed, w.p.link.redacted, w.p.wait)
	case <-ctx.Done():
		return lost, fmt.Errorf("%w: %w", ErrNotConfirmed, ctx.Err())
	}
	switch {
	case w.pub.returned:
		return returned, nil
	case w.pub.acked:
		return confirmed, nil
	case w.pc.isClosed():
		return lost, fmt.Errorf("%w: the channel to %s closed before the confirm", ErrNotConfirmed, w.p.link.redacted)
	}
	return nacked, fmt.Errorf("%w: %s nacked it", ErrNotConfirmed, w.p.link.redacted)
}
