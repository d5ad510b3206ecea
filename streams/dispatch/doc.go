// Package dispatch delivers a system's events to an HTTP endpoint, for services that are not
// written in Go: the push half of the HTTP integration (the gateway is the publish half).
//
// A Dispatcher is the final handler of a streams.Consumer chain (dedup, dead letters, retry,
// dispatcher), so per-key order, deduplication, retries and dead letters are the consumer
// runtime's. Each event is POSTed as a CloudEvents 1.0 HTTP binary-mode message: the body is the
// seed's JSON envelope, and the headers are ce-specversion, ce-id (eventId), ce-type (eventType),
// ce-source (/hotelbus/<publishing system>), ce-time (the event's timestamp), ce-subject (the
// record key, the tenantId), the extensions ce-tenantid and ce-correlationid, traceparent, and
// Hotelbus-Signature (see Sign).
//
// Answers: 2xx is done. 408, 429, 5xx, connection errors and timeouts are transient: the error is
// retryable (and carries Retry-After, which the retry middleware honours). Any other status is
// permanent: a TargetError that adds the status and the start of the answer to the dead-letter
// record.
//
// Circuit breaker: after Breaker's threshold of consecutive transient failures the target counts as
// down. Deliveries then wait inside the dispatcher instead of failing, so an outage neither floods
// the dead-letter topic nor uses up retry attempts: the partitions' handlers are paused (the
// consumer stops polling once MaxPending records wait) and one probe delivery is sent after the
// probe interval, doubling while the target stays down. The first probe that gets a non-transient
// answer closes the breaker and the waiting deliveries go on, each key in its order.
package dispatch
