// Package views keeps a system's local views (topics/views.yaml) on its own disk and serves them,
// so that the system can answer from them while the other systems, Kafka or the schema registry
// are down: Kafka Streams' GlobalKTable and Goka's views, for this catalog.
//
// Guarantees:
//
//   - Every replica reads every partition of a view's source topic directly (no consumer group:
//     each holds all tenants). Records of one tenant share a partition, so each key's events are
//     applied in the order they were written. An event type the view does not read is skipped by
//     its eventType header, without decoding.
//   - The state changes of a polled batch and the next offset of every source partition it read
//     are written in one bbolt transaction, so a restart (or kill -9) resumes exactly after what is
//     on disk. Each item remembers the eventId that last changed it; the same event again (a
//     producer's retry) is not applied twice. Applying any suffix of a key's events again gives
//     the same item (upsert resets, merge keeps the last non-null value of each field), so reading
//     from an earlier position than the one on disk is harmless.
//   - Every state change goes to the view's compacted changelog topic (the item as JSON, or a
//     tombstone for a delete; key "<tenantId>/<key>"; partition = the source partition; headers
//     with the source topic, partition and the offset where the change's batch began) and is
//     acknowledged BEFORE the transaction that applies it commits. A replica whose store is empty
//     (new disk, file deleted) restores the items from the changelog and resumes the source
//     partitions at the highest positions recorded there, the start of the last batch seen, which
//     it applies again: the restore may have read only part of that batch (another replica was
//     writing it, or its writer died), and everything after a recorded position either did not
//     touch the view or is applied again idempotently.
//   - A record that cannot be applied (undecodable, a tenantId or key outside the identifier
//     grammar, a key field missing) is skipped, logged with its position and counted in
//     hotelbus_view_skipped_total by reason; it never stops the partition. A record that cannot be
//     decoded because the registry is unreachable stops its partition until the registry answers.
//   - Writer schemas are cached in the store the first time the registry returns them, so a view
//     server decodes what it has seen before while the registry is down, and starts from disk and
//     answers while Kafka and the registry are both down (staleness growing).
//
// Personal data: a view decodes without opening, so the personal-data values streams/privacy sealed
// at publish stay sealed in the store and in the changelog. Each item names, per top-level field
// holding sealed values, the event that wrote it (Item.Sealed: eventId, type, version); with
// Config.Protector the values are opened as items are read (Get, Scan, GetAs, Handler), by the
// tenant, that event and the key id each value carries, so an item merged from events sealed under
// different subjects' keys opens field by field, and a subject erased with `privacy forget` reads
// privacy.Erased. A value that cannot be opened (keys unreachable) is served sealed and logged, and
// so is a field of an item stored before items kept origins, until an event changes it.
//
// Staleness is the time since the view was last confirmed caught up (its positions at the
// partitions' end offsets). A view is ready once it has caught up with the end offsets seen after
// it started, or, started from a store that already held positions, when Kafka stays unreachable
// for OfflineGrace (it then serves what it has, with its staleness).
package views
