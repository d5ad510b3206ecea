package rabbitmq

import (
	"context"
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/hotelbus/hotelbus/streams"
)

// HeaderAuditKind carries an audit record's kind (published, handled) on the audit exchange.
const HeaderAuditKind = "hotelbus-audit-kind"

// Audit copies the audit log's records to the audit exchange until ctx ends: routing key = the
// record's eventType, body = the record's JSON, headers kind, tenantId and hotelbus-origin: kafka.
// cl must read the catalog's audit topic through a consumer group of its own with auto-commit
// disabled (kgo.ConsumerGroup, kgo.ConsumeTopics, kgo.DisableAutoCommit): each polled batch is
// published in order, and its offsets are committed only after RabbitMQ confirmed every record of
// it (a failure publishes the batch again, so a record may be copied twice, never lost). A value
// that is no audit record is skipped and counted (direction "audit", outcome "skipped"). It returns
// when ctx ends or cl is closed.
func (b *Bridge) Audit(ctx context.Context, cl *kgo.Client) error {
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		if err := fs.Err0(); err != nil {
			fs.EachError(func(topic string, p int32, err error) {
				b.cfg.logger.Warn("rabbitmq: reading the audit log", "topic", topic, "partition", p, "err", err)
			})
		}
		var recs []*kgo.Record
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
		if len(recs) == 0 {
			continue
		}
		bo := b.cfg.backoff()
		for {
			err := b.copyAudit(ctx, recs)
			if err == nil {
				break
			}
			b.cfg.logger.Warn("rabbitmq: copying audit records failed, retrying", "records", len(recs), "in", bo.Step(), "err", err)
			if bo.Wait(ctx) != nil {
				return nil
			}
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil && ctx.Err() == nil {
			b.cfg.logger.Warn("rabbitmq: committing the audit log's offsets", "err", err)
		}
	}
}

// copyAudit publishes recs in order and waits for every confirm.
func (b *Bridge) copyAudit(ctx context.Context, recs []*kgo.Record) error {
	var sent []*pending
	for _, r := range recs {
		a, err := streams.ParseAuditRecord(r.Value)
		if err != nil {
			b.count("audit", "skipped")
			continue
		}
		w, err := b.pub.send(ctx, b.topo.AuditExchange, a.EventType, amqp.Publishing{
			ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: a.EventID,
			Timestamp: a.At, CorrelationId: a.CorrelationID, Body: r.Value,
			Headers: amqp.Table{HeaderAuditKind: a.Kind, HeaderTenantID: a.TenantID, HeaderOrigin: originKafka},
		})
		if err != nil {
			return err
		}
		sent = append(sent, w)
	}
	for _, w := range sent {
		out, err := w.wait(ctx)
		b.confirms.WithLabelValues(out.String()).Inc()
		switch out {
		case confirmed:
			b.count("audit", "published")
		case returned: // no queue is bound to the audit exchange: nobody reads the audit log there
			b.count("audit", "unroutable")
		default:
			return fmt.Errorf("audit record %s: %w", w.pub.messageID, err)
		}
	}
	return nil
}
