#!/usr/bin/env python3
"""Independent Avro interop peer for hotelbus tests, built on confluent-kafka for Python.

It talks to Kafka through librdkafka and to the schema registry through confluent-kafka's
SchemaRegistryClient, AvroSerializer and AvroDeserializer, so it shares no code with hotelbus.

  consume --brokers B --registry URL --topic T --count N [--timeout S] [--group G] [--defaults]
      Reads N records from the beginning of every partition of T (no offsets are committed) and
      prints one JSON object per line, in arrival order (ordered within a partition only):
      {"key", "partition", "offset", "headers": {name: str}, "value": <decoded record>}.
      The value is the canonical JSON form: decimals as strings with the schema's scale, dates
      "YYYY-MM-DD", timestamp-millis RFC 3339 UTC with 3 fractional digits and "Z", enums as
      symbols, null for None, record keys in schema field order. Exits 1 if fewer than N records
      arrive within the timeout. With --defaults the AvroDeserializer has confluent-kafka's default
      settings (TopicNameStrategy: it asks the registry for the writer schema with
      ?subject=<topic>-value); without, it uses TopicRecordNameStrategy like hotelbus.

  produce --brokers B --registry URL --topic T --subject S --input FILE
      Reads JSON lines {"key", "headers", "value"} where value is a canonical JSON envelope
      (null: a tombstone), converts it to Avro natives following the latest schema registered
      under S, serializes it with AvroSerializer (never registering: the wire header carries the
      registered id) and produces with acks=all and the murmur2 partitioner (the Java client's
      and franz-go's default). Prints the number of records produced.

  produce --defaults --brokers B --registry URL --topic T --schema-file F --input FILE
      The same with confluent-kafka's default settings everywhere: AvroSerializer on the schema
      text in F with auto.register.schemas (it registers F under TopicNameStrategy's
      <topic>-value), a Producer with only bootstrap.servers set. Prints the number of records
      produced, then the id the serializer registered, as {"id": N} on a line of its own.

Exit status: 0 success, 1 failure of the work, 2 bad usage.
"""

import argparse
import datetime
import decimal
import json
import sys
import time

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, topic_record_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro.schema import expand_schema

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class PeerError(Exception):
    """A failure of the work: reported on stderr, exit status 1."""


def fail(msg):
    raise PeerError(msg)


# --- schema-driven conversion ---------------------------------------------------------------
# Schemas are walked in their expanded form (fastavro.schema.expand_schema), so every named
# reference is replaced by its definition and no name table is needed.


def _type_of(schema):
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "union"
    return schema["type"] if isinstance(schema["type"], str) else _type_of(schema["type"])


def _logical(schema):
    return schema.get("logicalType") if isinstance(schema, dict) else None


def _union_branch(schema, value, path):
    """Picks the branch of a union for a value: null for None, else the single non-null branch."""
    if value is None:
        if "null" in [_type_of(b) for b in schema]:
            return "null"
        fail(f"{path}: null is not allowed here")
    branches = [b for b in schema if _type_of(b) != "null"]
    if len(branches) != 1:
        fail(f"{path}: only [null, T] unions are supported")
    return branches[0]


def _quantum(scale):
    return decimal.Decimal(1).scaleb(-scale)


def _format_instant(dt, digits):
    dt = dt.astimezone(datetime.timezone.utc)
    frac = f"{dt.microsecond:06d}"[:digits]
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + "." + frac + "Z"


def to_json(value, schema, path="value"):
    """Avro natives (as fastavro decodes them) -> canonical JSON values."""
    if isinstance(schema, list):
        return to_json(value, _union_branch(schema, value, path), path)
    if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
        return to_json(value, schema["type"], path)
    t = _type_of(schema)
    lt = _logical(schema)
    if value is None:
        if t != "null":
            fail(f"{path}: null for non-null type {t}")
        return None
    if lt == "decimal" and t in ("bytes", "fixed"):
        scale = schema.get("scale", 0)
        return format(decimal.Decimal(value).quantize(_quantum(scale)), "f")
    if lt == "date":
        return value.isoformat()
    if lt in ("timestamp-millis", "timestamp-micros"):
        if isinstance(value, int):
            return value
        return _format_instant(value, 3 if lt == "timestamp-millis" else 6)
    if lt == "uuid":
        return str(value)
    if t == "record":
        return {f["name"]: to_json(value.get(f["name"]), f["type"], f"{path}.{f['name']}") for f in schema["fields"]}
    if t == "enum":
        return value
    if t == "array":
        return [to_json(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
    if t == "map":
        return {k: to_json(v, schema["values"], f"{path}.{k}") for k, v in value.items()}
    if t in ("bytes", "fixed"):
        return bytes(value).decode("latin-1")
    if t in ("boolean", "int", "long", "float", "double", "string"):
        return value
    fail(f"{path}: unsupported Avro type {t}")


def from_json(value, schema, path="value"):
    """Canonical JSON values -> Avro natives fastavro writes (Decimal, date, aware datetime...)."""
    if isinstance(schema, list):
        return from_json(value, _union_branch(schema, value, path), path)
    if isinstance(schema, dict) and isinstance(schema["type"], (dict, list)):
        return from_json(value, schema["type"], path)
    t = _type_of(schema)
    lt = _logical(schema)
    if t == "null":
        if value is not None:
            fail(f"{path}: want null, got {value!r}")
        return None
    if value is None:
        fail(f"{path}: null for non-null type {t}")
    if lt == "decimal" and t in ("bytes", "fixed"):
        if not isinstance(value, str):
            fail(f"{path}: decimal must be a JSON string, got {value!r}")
        scale = schema.get("scale", 0)
        try:
            ctx = decimal.Context(prec=schema.get("precision", 38), traps=[decimal.Inexact, decimal.InvalidOperation])
            return decimal.Decimal(value).quantize(_quantum(scale), context=ctx)
        except (decimal.InvalidOperation, decimal.Inexact) as e:
            fail(f"{path}: {value!r} is not a decimal with at most {scale} decimals ({e!r})")
    if lt == "date":
        try:
            return datetime.date.fromisoformat(value)
        except (TypeError, ValueError) as e:
            fail(f"{path}: bad date {value!r}: {e}")
    if lt in ("timestamp-millis", "timestamp-micros"):
        if isinstance(value, int) and not isinstance(value, bool):
            return EPOCH + datetime.timedelta(milliseconds=value if lt == "timestamp-millis" else value / 1000)
        try:
            dt = datetime.datetime.fromisoformat(value)
        except (TypeError, ValueError) as e:
            fail(f"{path}: bad timestamp {value!r}: {e}")
        if dt.tzinfo is None:
            fail(f"{path}: timestamp {value!r} has no time zone")
        return dt
    if t == "record":
        if not isinstance(value, dict):
            fail(f"{path}: want an object, got {value!r}")
        known = {f["name"] for f in schema["fields"]}
        extra = set(value) - known
        if extra:
            fail(f"{path}: fields not in schema {schema.get('name')}: {sorted(extra)}")
        out = {}
        for f in schema["fields"]:
            if f["name"] in value:
                out[f["name"]] = from_json(value[f["name"]], f["type"], f"{path}.{f['name']}")
            elif "default" in f:
                out[f["name"]] = f["default"]
            else:
                fail(f"{path}: missing field {f['name']}")
        return out
    if t == "enum":
        if value not in schema["symbols"]:
            fail(f"{path}: {value!r} is not a symbol of {schema.get('name')}")
        return value
    if t == "array":
        if not isinstance(value, list):
            fail(f"{path}: want an array, got {value!r}")
        return [from_json(v, schema["items"], f"{path}[{i}]") for i, v in enumerate(value)]
    if t == "map":
        if not isinstance(value, dict):
            fail(f"{path}: want an object, got {value!r}")
        return {k: from_json(v, schema["values"], f"{path}.{k}") for k, v in value.items()}
    if t in ("int", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            fail(f"{path}: want an integer, got {value!r}")
        return value
    if t in ("float", "double"):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            fail(f"{path}: want a number, got {value!r}")
        return float(value)
    if t == "boolean":
        if not isinstance(value, bool):
            fail(f"{path}: want a boolean, got {value!r}")
        return value
    if t == "string":
        if not isinstance(value, str):
            fail(f"{path}: want a string, got {value!r}")
        return value
    if t in ("bytes", "fixed"):
        return value.encode("latin-1")
    fail(f"{path}: unsupported Avro type {t}")


# --- commands -------------------------------------------------------------------------------


def _writer_schema(registry, cache, raw):
    """Expanded writer schema of a Confluent-framed value (magic byte 0, 4-byte schema id)."""
    if len(raw) < 5 or raw[0] != 0:
        fail("value is not in the Confluent wire format (magic byte 0 + schema id)")
    sid = int.from_bytes(raw[1:5], "big")
    if sid not in cache:
        cache[sid] = expand_schema(json.loads(registry.get_schema(sid).schema_str))
    return cache[sid]


def _partitions(consumer, topic, deadline):
    while True:
        md = consumer.list_topics(topic, timeout=max(0.1, min(5.0, deadline - time.monotonic())))
        tmd = md.topics.get(topic)
        if tmd is not None and tmd.error is None and tmd.partitions:
            return sorted(tmd.partitions)
        if time.monotonic() >= deadline:
            fail(f"topic {topic} not found: {tmd.error if tmd is not None else 'no metadata'}")
        time.sleep(0.2)


def cmd_consume(args):
    registry = SchemaRegistryClient({"url": args.registry})
    if args.defaults:
        deserialize = AvroDeserializer(registry)
    else:
        # The subject comes from the writer schema's record name, as the producer's did.
        deserialize = AvroDeserializer(
            registry,
            conf={"use.latest.version": False, "subject.name.strategy": topic_record_subject_name_strategy},
        )
    consumer = Consumer(
        {
            "bootstrap.servers": args.brokers,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "enable.partition.eof": False,
        }
    )
    deadline = time.monotonic() + args.timeout
    schemas = {}
    got = 0
    try:
        # Manual assignment: always from the beginning, whatever the group committed.
        parts = _partitions(consumer, args.topic, deadline)
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])
        while got < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"got {got} of {args.count} records from {args.topic} within {args.timeout}s")
            msg = consumer.poll(min(left, 1.0))
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                fail(f"consume {args.topic}: {msg.error()}")
            raw = msg.value()
            value = None
            if raw is not None:
                schema = _writer_schema(registry, schemas, raw)
                decoded = deserialize(raw, SerializationContext(msg.topic(), MessageField.VALUE, msg.headers()))
                value = to_json(decoded, schema)
            key = msg.key()
            out = {
                "key": key.decode("utf-8") if key is not None else None,
                "partition": msg.partition(),
                "offset": msg.offset(),
                "headers": {k: (v.decode("utf-8") if v is not None else None) for k, v in (msg.headers() or [])},
                "value": value,
            }
            sys.stdout.write(json.dumps(out, ensure_ascii=False, separators=(",", ":")) + "\n")
            got += 1
        sys.stdout.flush()
    finally:
        consumer.close()


def _produce_defaults(args):
    """produce --defaults: confluent-kafka's defaults, the serializer registering the schema."""
    registry = SchemaRegistryClient({"url": args.registry})
    with open(args.schema_file, encoding="utf-8") as f:
        schema_str = f.read()
    serialize = AvroSerializer(registry, schema_str)
    producer = Producer({"bootstrap.servers": args.brokers})
    count = _produce_lines(args, producer, serialize, expand_schema(json.loads(schema_str)))
    print(count)
    subject = f"{args.topic}-value"
    print(json.dumps({"id": registry.lookup_schema(subject, Schema(schema_str, "AVRO")).schema_id}))


def cmd_produce(args):
    if args.defaults:
        if not args.schema_file:
            fail("produce --defaults needs --schema-file")
        _produce_defaults(args)
        return
    if not args.subject:
        fail("produce needs --subject (or --defaults with --schema-file)")
    registry = SchemaRegistryClient({"url": args.registry})
    latest = registry.get_latest_version(args.subject)
    schema_str = latest.schema.schema_str
    expanded = expand_schema(json.loads(schema_str))
    serialize = AvroSerializer(
        registry,
        Schema(schema_str, "AVRO", latest.schema.references),
        conf={
            "auto.register.schemas": False,
            "use.latest.version": False,
            "normalize.schemas": False,
            "subject.name.strategy": topic_record_subject_name_strategy,
        },
    )
    subject = topic_record_subject_name_strategy(
        SerializationContext(args.topic, MessageField.VALUE), expanded.get("name")
    )
    if subject != args.subject:
        fail(f"subject {args.subject} does not match topic {args.topic} + record {expanded.get('name')} ({subject})")

    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
        }
    )
    print(_produce_lines(args, producer, serialize, expanded))


def _produce_lines(args, producer, serialize, expanded):
    """Produces every line of args.input; returns the number produced once all are delivered."""
    errors = []

    def delivered(err, _msg):
        if err is not None:
            errors.append(str(err))

    count = 0
    with open(args.input, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                fail(f"{args.input}:{lineno}: {e}")
            if not isinstance(rec, dict) or "value" not in rec:
                fail(f"{args.input}:{lineno}: want an object with a value")
            headers = [(k, v.encode("utf-8")) for k, v in (rec.get("headers") or {}).items()]
            payload = None  # a null value is produced as a tombstone
            if rec["value"] is not None:
                native = from_json(rec["value"], expanded, f"{args.input}:{lineno}: value")
                payload = serialize(native, SerializationContext(args.topic, MessageField.VALUE, headers))
            key = rec.get("key")
            while True:
                try:
                    producer.produce(
                        args.topic,
                        key=key.encode("utf-8") if key is not None else None,
                        value=payload,
                        headers=headers,
                        on_delivery=delivered,
                    )
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
            count += 1
    left = producer.flush(args.timeout)
    if left:
        fail(f"{left} records still undelivered after {args.timeout}s")
    if errors:
        fail(f"{len(errors)} records failed: {errors[0]}")
    return count


def main(argv=None):
    p = argparse.ArgumentParser(prog="avro_peer", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("consume", help="read N records from the beginning and print them as JSON lines")
    c.add_argument("--brokers", required=True)
    c.add_argument("--registry", required=True)
    c.add_argument("--topic", required=True)
    c.add_argument("--count", required=True, type=int)
    c.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    c.add_argument("--group", default="hotelbus-avro-peer", help="group.id; offsets are never committed")
    c.add_argument("--defaults", action="store_true", help="AvroDeserializer with confluent-kafka's default settings")
    pr = sub.add_parser("produce", help="produce JSON lines as Avro under the latest schema of a subject")
    pr.add_argument("--brokers", required=True)
    pr.add_argument("--registry", required=True)
    pr.add_argument("--topic", required=True)
    pr.add_argument("--subject", help="the subject whose latest schema is used (without --defaults)")
    pr.add_argument("--defaults", action="store_true", help="confluent-kafka's default settings, auto-registering")
    pr.add_argument("--schema-file", help="the schema the serializer registers (with --defaults)")
    pr.add_argument("--input", required=True)
    pr.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for delivery (default 30)")
    args = p.parse_args(argv)
    try:
        (cmd_consume if args.cmd == "consume" else cmd_produce)(args)
    except PeerError as e:
        print(f"avro_peer: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # registry, Kafka and serialization errors are failures of the work
        print(f"avro_peer: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
