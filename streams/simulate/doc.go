// Package simulate generates realistic, deterministic hotel traffic and publishes it, for
// `hotelbus simulate`, the benchmarks and the fault-injection suite.
//
// A Generator produces streams.Envelope values, each with the system that publishes it. Per tenant
// (a hotel group; a few large groups produce most traffic when Options.Skew > 0) it runs
// reservation lifecycles, interleaved:
//
//	[customer.created [member.registered]] reservation.created reservation.updated*
//	( reservation.canceled
//	| checkin_checkout.checked_in (service.ordered [service.canceled])* billing.created billing.paid
//	  checkin_checkout.checked_out [points.added] [feedback.submitted] )
//
// plus occasional customer.updated, member.status_changed, points.used, auth.* and system.* events.
// Payloads start from each event type's golden example (schemas.Version.Example) with ids, dates
// and amounts varied consistently within a lifecycle: the bill adds up the nights and the services
// ordered, the payment pays the bill, the points follow the amount paid.
//
// # Determinism
//
// The same Options (Seed, Tenants, Skew, Start, Step) and the same catalog and schemas give the same
// events in the same order, eventIds included. Replaying a seed against a consumer group whose
// dedup keys still exist therefore yields nothing but duplicates: use a new seed per run.
//
// # Sequence numbers
//
// Every event has a Position: its tenant, its topic, and Seq, 1, 2, 3, ... in generation order per
// tenant and topic (order is per key per topic in Kafka, so that is the unit that can be checked
// end to end). The Position travels with the event in two ways:
//
//   - the eventId encodes it. It is a UUIDv8 whose 122 free bits hold a 24-bit tag of the seed, the
//     16-bit tenant index, the 12-bit topic index in the catalog, a 32-bit lifecycle number (0 for
//     events ordered by tenant) and the 38-bit Seq. Generator.Seq(eventId) decodes it with no state,
//     so it works on any copy of the event: the Kafka record's eventId header, a replayed JSON line,
//     or a dispatched CloudEvents request (its ce-id header and the envelope's eventId), including in
//     another process that builds a Generator with the same Options and catalog;
//   - records published through SDKPublisher also carry the Kafka header HeaderSeq (decimal Seq;
//     read it with RecordSeq). The gateway builds its own records, so events sent through
//     GatewayPublisher carry only the eventId.
//
// Position.Key is the ordering key the consumer runtime keeps order by ("<topic>/<tenant>", or
// "<topic>/<tenant>/<reservationId>" for the types the catalog orders by reservationId): Seq
// increases along a key in publication order, which is what a conformance checker needs
// (streamstest.Checker's key and seq).
package simulate
