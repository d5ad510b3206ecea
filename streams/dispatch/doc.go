// Package dispatch delivers a system's events to an HTTP endpoint, for services that are not
// written in Go: the push half of the HTTP integration (the gateway is the publish half).
//
// A Dispatcher is the final handler of a streams.Consumer chain (dedup, dead letters, retry,
// dispatcher), so per-key order, deduplication, retries and dead letters are the consumer
// runtime's. Each event is POSTed as a CloudEvents 1.0 HTTP binary-mode message: the body is the
// seed's JSON envelope, and the headers are ce-specversion, ce-id (eventId), ce-type (eventType),
// ce-source (/hotelbus/<publishing system>), ce-time (the event's timestamp), ce-subject (the
// record key, the tenantId), the extensions ce-tenantid and ce-correlationid, traceparent,
// Hotelbus-Signature (see Sign), and the headers of the TargetAuthFile.
//
// Signature: "Hotelbus-Signature: t=<unix seconds>,v2=<hex>", the HMAC-SHA256 under the first
// (newest) Secret of the lines t, ce-id, ce-type, ce-source, ce-tenantid and the body joined by
// "\n". A receiver calls Verify with every secret it accepts (two during a rotation) and refuses
// the request unless it returns nil; it also deduplicates on ce-id. The v1 scheme (the body only)
// is neither sent nor accepted: it let a replayed body be paired with other headers.
//
// Nothing in an event is trusted: an event whose identifiers cannot be sent as request headers (a
// control character such as CR, LF or NUL, which Go's HTTP client refuses, or more than 4096 bytes)
// is refused before any request with a permanent InvalidHeaderError: dead-lettered as an invalid
// event, never retried, never counted by the circuit breaker, so a poisoned event cannot stop the
// delivery of the others.
//
// The target's address is shown redacted everywhere (Target: no userinfo, no query) in logs,
// metrics, errors, dead letters and spans; credentials in the URL are refused: the target
// authenticates the dispatcher with TargetAuthFile's headers instead.
//
// Answers: 2xx is done. 408, 429, 5xx, connection errors and timeouts are transient: the error is
// retryable (and carries Retry-After, which the retry middleware honours). Any other status,
// 3xx included (redirects are never followed: the signed body must not go elsewhere), is
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
