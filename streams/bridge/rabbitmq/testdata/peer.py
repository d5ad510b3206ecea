"""Independent RabbitMQ peer for the bridge's tests: pika, the Python client, with default settings.

  peer.py publish HOST PORT PASSWORD < lines    one JSON object per line: {"user", "exchange",
      "routingKey", "body", "messageId", "tenantId", "userId"}; published with publisher confirms,
      as connection user "user"; "userId" (may differ from "user", or be null) is the user-id
      property. Prints {"published": N, "refused": [...]} ("refused": the channel errors, such as
      RabbitMQ's refusal of a user-id that is not the connection's user). A lost connection (a
      broker restart) is reopened and the message published again.
  peer.py consume HOST PORT USER PASSWORD QUEUE N TIMEOUT   prints one JSON object per message
      (properties and headers) until N messages or TIMEOUT seconds of silence; acks each.
  peer.py bind HOST PORT USER PASSWORD QUEUE EXCHANGE...   declares a durable quorum queue bound
      with "#" to each exchange (declared as durable topic exchanges when missing).
  peer.py delete HOST PORT USER PASSWORD QUEUE...   deletes the queues.
"""
import json
import sys
import time

import pika


def connect(host, port, user, password):
    return pika.BlockingConnection(pika.ConnectionParameters(
        host=host, port=int(port), credentials=pika.PlainCredentials(user, password)))


def publish(host, port, password):
    conns, chans, n, refused = {}, {}, 0, []
    for line in sys.stdin:
        m = json.loads(line)
        user = m["user"]
        props = pika.BasicProperties(content_type="application/json", delivery_mode=2,
                                     message_id=m.get("messageId"), user_id=m.get("userId"),
                                     correlation_id=m.get("correlationId"),
                                     timestamp=int(time.time()),
                                     headers={"tenantId": m["tenantId"]} if m.get("tenantId") else None)
        for attempt in range(120):
            try:
                if user not in chans or chans[user].is_closed:
                    if user not in conns or conns[user].is_closed:
                        conns[user] = connect(host, port, user, password)
                    chans[user] = conns[user].channel()
                    chans[user].confirm_delivery()
                chans[user].basic_publish(m["exchange"], m["routingKey"], m["body"].encode(), props, mandatory=True)
                n += 1
                break
            except (pika.exceptions.ChannelClosedByBroker, pika.exceptions.UnroutableError) as e:
                refused.append({"messageId": m.get("messageId"), "error": str(e)})
                break
            except pika.exceptions.AMQPError:
                # The broker restarted: publish the same message again (at least once, in order).
                conns.pop(user, None)
                chans.pop(user, None)
                time.sleep(0.5)
    for c in conns.values():
        if c.is_open:
            c.close()
    print(json.dumps({"published": n, "refused": refused}))


def consume(host, port, user, password, queue, n, timeout):
    conn = connect(host, port, user, password)
    ch = conn.channel()
    ch.basic_qos(prefetch_count=500)
    got = 0
    for method, props, body in ch.consume(queue, inactivity_timeout=float(timeout)):
        if method is None:
            break
        h = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in (props.headers or {}).items()}
        print(json.dumps({"exchange": method.exchange, "routingKey": method.routing_key,
                          "messageId": props.message_id, "correlationId": props.correlation_id,
                          "contentType": props.content_type, "timestamp": props.timestamp,
                          "headers": h, "body": body.decode()}, default=str), flush=True)
        ch.basic_ack(method.delivery_tag)
        got += 1
        if got >= int(n):
            break
    conn.close()


def bind(host, port, user, password, queue, *exchanges):
    conn = connect(host, port, user, password)
    ch = conn.channel()
    ch.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    for ex in exchanges:
        ch.exchange_declare(ex, exchange_type="topic", durable=True)
        ch.queue_bind(queue, ex, routing_key="#")
    conn.close()


def delete(host, port, user, password, *queues):
    conn = connect(host, port, user, password)
    ch = conn.channel()
    for q in queues:
        ch.queue_delete(q)
    conn.close()


if __name__ == "__main__":
    {"publish": publish, "consume": consume, "bind": bind, "delete": delete}[sys.argv[1]](*sys.argv[2:])
