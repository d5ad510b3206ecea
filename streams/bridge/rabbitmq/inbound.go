package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hotelbus/hotelbus/streams"
)

// Publisher is what Inbound publishes through: a streams.Producer bound to one system.
type Publisher interface {
	Publish(ctx context.Context, env *streams.Envelope) (streams.Result, error)
}

// maxDetail bounds the hotelbus-dlx-detail header.
const maxDetail = 512

// Inbound takes the messages systems publish on RabbitMQ into Kafka until ctx ends (see the package
// documentation), through producers, one per system of the user map (give them OriginHook). It
// consumes the catalog's queue with manual acknowledgements and Prefetch unacknowledged messages;
// it survives a lost connection by consuming again on the next one. On return (ctx ended) the
// messages not yet acknowledged are left to RabbitMQ, which delivers them again to the next
// consumer.
func (b *Bridge) Inbound(ctx context.Context, producers map[string]Publisher) error {
	if !b.cfg.inbound {
		return fmt.Errorf("%w: Inbound needs a UserMap", ErrConfig)
	}
	for user, system := range b.cfg.userMap {
		if producers[system] == nil {
			return fmt.Errorf("%w: no producer for %s (user %s of the user map)", ErrConfig, system, user)
		}
	}
	in := &inbound{b: b, producers: producers, lanes: map[string][]delivery{}}
	defer in.wg.Wait()
	bo := b.cfg.backoff()
	for ctx.Err() == nil {
		err := in.consume(ctx)
		if ctx.Err() != nil {
			break
		}
		b.cfg.logger.Warn("rabbitmq: consuming stopped, starting again", "queue", b.topo.Queue, "in", bo.Step(), "err", err)
		if bo.Wait(ctx) != nil {
			break
		}
	}
	return nil
}

type inbound struct {
	b         *Bridge
	producers map[string]Publisher
	wg        sync.WaitGroup

	mu    sync.Mutex
	lanes map[string][]delivery // per tenantId: the message being taken first, then those waiting
}

// delivery is a message and whether its channel is gone: RabbitMQ then delivers it again on the
// next channel, so a waiting message of a gone channel is dropped (taking it would put it in
// Kafka ahead of the earlier messages redelivered with it), and a failing one is not retried.
type delivery struct {
	amqp.Delivery
	gone *atomic.Bool
}

// consume reads the queue on one channel until it closes or ctx ends.
func (in *inbound) consume(ctx context.Context) error {
	conn, err := in.b.link.current(ctx)
	if err != nil {
		return err
	}
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	if err := ch.Qos(in.b.cfg.prefetch, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.ConsumeWithContext(ctx, in.b.topo.Queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	gone := new(atomic.Bool)
	defer gone.Store(true)
	for d := range deliveries {
		in.enqueue(ctx, delivery{d, gone})
	}
	return errors.New("the delivery channel closed")
}

// enqueue starts d at once, or after the messages of its tenant already taken; the tenantId header
// only schedules (a message whose header contradicts its envelope is dead-lettered).
func (in *inbound) enqueue(ctx context.Context, d delivery) {
	key, _ := d.Headers[HeaderTenantID].(string)
	in.mu.Lock()
	q, busy := in.lanes[key]
	in.lanes[key] = append(q, d)
	in.mu.Unlock()
	if busy {
		return
	}
	in.wg.Add(1)
	go func() {
		defer in.wg.Done()
		for {
			if !d.gone.Load() && ctx.Err() == nil {
				in.take(ctx, d)
			}
			in.mu.Lock()
			q := in.lanes[key][1:]
			if len(q) == 0 {
				delete(in.lanes, key)
				in.mu.Unlock()
				return
			}
			in.lanes[key] = q
			d = q[0]
			in.mu.Unlock()
		}
	}()
}

// take publishes d to Kafka or dead-letters it, then acknowledges it; a retryable failure is
// tried again with backoff until ctx ends (the message is then left unacknowledged). An attempt
// that has started is not canceled with ctx (a shutdown): its outcome is waited for, so that a
// message Kafka took is acknowledged instead of being taken again by the next consumer; it is
// canceled ConfirmTimeout after ctx ended.
func (in *inbound) take(ctx context.Context, d delivery) {
	if origin, _ := d.Headers[HeaderOrigin].(string); origin == originKafka {
		in.b.count("in", "loop-skipped")
		_ = d.Ack(false)
		return
	}
	bo := in.b.cfg.backoff()
	attempt, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(in.b.cfg.confirmWait, stop) })()
	for {
		reason, err := in.publish(attempt, d)
		if reason != "" {
			err = in.deadLetter(attempt, d, reason, err)
			if err == nil {
				in.b.count("in", "dead-lettered")
				_ = d.Ack(false) // a failed ack (the channel closed) means RabbitMQ delivers it again
				return
			}
		} else if err == nil {
			in.b.count("in", "published")
			_ = d.Ack(false)
			return
		}
		if ctx.Err() != nil || d.gone.Load() {
			return
		}
		in.b.cfg.logger.Warn("rabbitmq: taking a message into Kafka failed, retrying", "messageId", cut(d.MessageId), "in", bo.Step(), "err", err)
		if bo.Wait(ctx) != nil {
			return
		}
	}
}

// publish validates d and publishes it as the system of its user-id. It returns a dead-letter
// reason for a message that must not reach Kafka, or the error of a publication that may succeed
// when tried again.
func (in *inbound) publish(ctx context.Context, d delivery) (reason string, err error) {
	system := in.b.cfg.userMap[d.UserId]
	if d.UserId == "" || system == "" {
		return ReasonUnmappedUser, fmt.Errorf("user-id %q is not in the user map", cut(d.UserId))
	}
	env, err := in.b.serde.ParseJSON(d.Body)
	if err != nil {
		return ReasonInvalidEvent, err
	}
	switch tenant, _ := d.Headers[HeaderTenantID].(string); {
	case tenant != "" && tenant != env.Metadata.TenantID:
		return ReasonHeaderMismatch, fmt.Errorf("header tenantId %q is not the envelope's", cut(tenant))
	case d.RoutingKey != env.EventType:
		return ReasonHeaderMismatch, fmt.Errorf("routing key %q is not the envelope's eventType %s", cut(d.RoutingKey), env.EventType)
	case d.MessageId != "" && env.EventID != "" && !strings.EqualFold(d.MessageId, env.EventID):
		return ReasonHeaderMismatch, fmt.Errorf("message-id %q is not the envelope's eventId", cut(d.MessageId))
	}
	if ex, ok := in.b.topo.Exchange(env.EventType); ok && ex != d.Exchange {
		return ReasonWrongExchange, fmt.Errorf("%s belongs on exchange %s, not %q", env.EventType, ex, cut(d.Exchange))
	}
	if env.EventID == "" {
		env.EventID = d.MessageId
	}
	if env.EventID == "" {
		// A new eventId on each delivery would make a redelivered message a new event in Kafka.
		return ReasonMissingEventID, errors.New("neither the envelope's eventId nor message-id is set")
	}
	if env.Metadata.CorrelationID == "" {
		env.Metadata.CorrelationID = d.CorrelationId
	}
	if tp, _ := d.Headers[streams.HeaderTraceparent].(string); tp != "" {
		ctx = streams.ContextWithTraceparent(ctx, tp)
	}
	_, err = in.producers[system].Publish(ctx, env)
	switch {
	case err == nil:
		return "", nil
	case errors.Is(err, streams.ErrNotOwner):
		return ReasonNotOwner, err
	case !streams.IsRetryable(err) && !errors.Is(err, streams.ErrClosed) && ctx.Err() == nil:
		return ReasonInvalidEvent, err
	}
	return "", err
}

// deadLetter publishes d to the dead-letter exchange with its routing key, properties and headers,
// plus the reason, and waits for the confirm.
func (in *inbound) deadLetter(ctx context.Context, d delivery, reason string, cause error) error {
	h := amqp.Table{}
	for k, v := range d.Headers {
		h[k] = v
	}
	h[HeaderReason] = reason
	h[HeaderDetail] = detail(cause)
	h["hotelbus-dlx-exchange"] = d.Exchange
	h["hotelbus-dlx-user-id"] = d.UserId
	out, err := in.b.pub.publish(ctx, in.b.topo.DeadLetterExchange, d.RoutingKey, amqp.Publishing{
		ContentType: d.ContentType, ContentEncoding: d.ContentEncoding, DeliveryMode: amqp.Persistent,
		CorrelationId: d.CorrelationId, MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type,
		AppId: d.AppId, Headers: h, Body: d.Body,
	})
	switch out {
	case confirmed, returned: // hotelbus.dlx's own queue is bound to "#": a return is not expected
		in.b.deadLetters.WithLabelValues(reason).Inc()
		return nil
	}
	return err
}

// detail is err's message as a header value: printable ASCII, at most maxDetail bytes.
func detail(err error) string {
	if err == nil {
		return ""
	}
	s := []byte(err.Error())
	for i, c := range s {
		if c < 0x20 || c > 0x7e {
			s[i] = '?'
		}
	}
	if len(s) > maxDetail {
		s = append(s[:maxDetail-3], "..."...)
	}
	return string(s)
}

// cut shows at most 64 bytes of an identifier from outside, quoted by the caller with %q.
func cut(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
