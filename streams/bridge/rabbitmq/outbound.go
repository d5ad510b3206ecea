package rabbitmq

import (
	"context"
	"fmt"
	"slices"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/hotelbus/hotelbus/streams"
)

// Handler returns the final handler of a consumer chain that publishes each event to RabbitMQ
// (Kafka → RabbitMQ): to the exchange carrying its type, routing key = eventType, body = the JSON
// envelope, persistent, with the mandatory flag, and returns after RabbitMQ confirmed it, so the
// consumer commits the offset only then. It returns nil for a record the bridge itself wrote from
// RabbitMQ (hotelbus-origin: rabbitmq), without publishing it; a retryable error wrapping
// ErrNotConfirmed for a nack, a timeout or a lost connection; and a permanent error for an event
// RabbitMQ returned (ErrUnroutable) or one that cannot be rendered.
func (b *Bridge) Handler() streams.Handler {
	return func(ctx context.Context, m *streams.Message) error {
		if streams.Header(m.Record, HeaderOrigin) == originRMQ {
			b.count("out", "loop-skipped")
			return nil
		}
		env := m.Envelope
		exchange, ok := b.topo.Exchange(env.EventType)
		if !ok {
			return streams.Permanent(fmt.Errorf("rabbitmq: no exchange carries %s (catalog rabbitmq.exchanges)", env.EventType))
		}
		body, err := b.serde.JSON(env)
		if err != nil {
			return streams.Permanent(fmt.Errorf("rabbitmq: rendering %s as JSON: %w", env.EventID, err))
		}
		headers := amqp.Table{HeaderOrigin: originKafka, HeaderTenantID: env.Metadata.TenantID}
		if tp := streams.Header(m.Record, streams.HeaderTraceparent); tp != "" {
			headers[streams.HeaderTraceparent] = tp
		}
		// A publication that has started is not canceled with ctx (a revoked partition, a
		// shutdown): its confirm must reach dedup's done mark, or the next owner publishes it
		// again. ConfirmTimeout bounds the wait.
		out, err := b.pub.publish(context.WithoutCancel(ctx), exchange, env.EventType, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: env.EventID,
			Timestamp: env.Timestamp, CorrelationId: env.Metadata.CorrelationID, Type: env.EventType,
			Headers: headers, Body: body,
		})
		b.confirms.WithLabelValues(out.String()).Inc()
		switch out {
		case confirmed:
			b.count("out", "published")
			return nil
		case returned:
			return streams.Permanent(fmt.Errorf("%w: %s to %s with routing key %s: no queue is bound for it", ErrUnroutable, env.EventID, exchange, env.EventType))
		}
		return err
	}
}

// HandleAll registers Handler on c for every local major version of each of eventTypes, so that
// events of every version are bridged; with dedup in the chain a dual-published event is bridged
// once, in the version of its first copy on the partition: the newest major (see
// Producer.PublishDual).
func (b *Bridge) HandleAll(c *streams.Consumer, eventTypes []string) {
	h := b.Handler()
	for _, sub := range b.serde.Schemas().Subjects {
		if slices.Contains(eventTypes, sub.EventType) {
			c.Handle(sub.EventType, sub.Major, h)
		}
	}
}
