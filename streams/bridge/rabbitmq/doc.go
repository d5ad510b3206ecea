// Package rabbitmq bridges RabbitMQ, the broker of the platform's first stage, and Kafka, so that
// hotel systems can move from one to the other one at a time.
//
// Topology (declared idempotently, durable, at every connection): the catalog's topic exchanges
// (topics.RabbitMQ: hotelbus.system, hotelbus.business, hotelbus.audit), the dead-letter exchange
// hotelbus.dlx with a quorum queue of the same name bound to "#" (so nothing sent there is lost),
// and the bridge's quorum queue bound with "#" to every event exchange. On RabbitMQ a message's
// routing key is its eventType, its body the seed's JSON envelope (application/json), its
// message-id the eventId, with timestamp, correlation-id and the headers tenantId and traceparent.
//
// RabbitMQ → Kafka (Inbound): each message of the queue is validated as an envelope and published
// through a streams.Producer of the system its AMQP user-id maps to (UserMap; RabbitMQ checks the
// user-id against the connection's user). A message without a mapped user-id, claiming a type its
// system does not own, or otherwise invalid goes to the dead-letter exchange with the header
// hotelbus-dlx-reason; it is acknowledged on RabbitMQ only after the dead-letter exchange
// confirmed it. A published message is acknowledged only after Kafka acknowledged it (or the
// producer's spool holds it). Messages with the same tenantId are taken one at a time, in queue
// order; others concurrently, up to Prefetch.
//
// Kafka → RabbitMQ (Outbound): a handler for the consumer runtime (its own group, dedup, retry,
// dead letters) that publishes each event to its exchange with the mandatory flag on a channel in
// confirm mode, and returns only after RabbitMQ confirmed it: the consumer commits the offset only
// then. A nack, a return (no queue bound) or a lost channel is an error of the handler (retried,
// then dead-lettered by the runtime).
//
// The audit log (Audit): its records are copied to the audit exchange, offsets committed after
// the confirms.
//
// No loops: what the bridge writes to RabbitMQ carries hotelbus-origin: kafka, and Inbound
// acknowledges such messages without taking them into Kafka; what it writes to Kafka carries the
// record header hotelbus-origin: rabbitmq (OriginHook), and Outbound skips such records.
//
// The connection is redialled with backoff when it closes (a RabbitMQ restart): deliveries not yet
// acknowledged come back from RabbitMQ, publications not yet confirmed fail and are retried, so
// nothing is lost; repeats carry the same eventId, which consumers deduplicate.
package rabbitmq
