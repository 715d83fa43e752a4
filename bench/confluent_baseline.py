#!/usr/bin/env python3
"""What Weir's users run today: a confluent-kafka-python consumer that parses
each JSON record in CPython, keeps those whose `country` is `NL` (the logic of
Weir's json-filter plugins), produces them with a header, and commits a batch's
offsets only after its outputs are delivered. `--threads N` runs the JSON work
in a thread pool of N, as the usual advice for slow processing goes.

`--avro REGISTRY_URL` does the same on Confluent-framed Avro values, as Weir's
`--schema-registry URL --schema-encode value` does: each value is decoded by
confluent-kafka-python's AvroDeserializer (writer schema by id from the
registry), filtered as a dict, and the kept ones are encoded by its
AvroSerializer with the latest schema of subject `<output>-value` (which must
be registered beforehand).

  confluent_baseline.py --input T --output T2 --records N [--threads N] [--avro URL]
  confluent_baseline.py --input T --output T2 --serve-seconds S   (latency runs)

Prints one JSON object: records, outputs, seconds (first record to last
commit), cpu_seconds, peak_rss_mib.
"""
import argparse
import json
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from confluent_kafka import Consumer, KafkaException, Producer

BATCH = 500
FIELD, EQUALS, HEADER = "country", "NL", ("weir-filter", b"country=NL")


def keep(doc):
    """The json-filter logic: whether the (parsed) record is kept."""
    return isinstance(doc, dict) and doc.get(FIELD) == EQUALS


def json_filter(value):
    """A JSON record's output value if it is kept, else None."""
    return value if keep(json.loads(value)) else None


def avro_filter(registry_url, input_topic, output_topic):
    """The same for Confluent-framed Avro values: decode with AvroDeserializer,
    keep as json_filter does, encode with AvroSerializer under the latest
    schema of `<output_topic>-value`."""
    from confluent_kafka.schema_registry import SchemaRegistryClient
    from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = SchemaRegistryClient({"url": registry_url})
    by_topic = {"subject.name.strategy.type": "TOPIC"}  # `<topic>-value`, as Weir
    schema = client.get_latest_version(f"{output_topic}-value").schema.schema_str
    deserialize = AvroDeserializer(client, conf=by_topic)
    serialize = AvroSerializer(client, schema, conf={**by_topic, "auto.register.schemas": False})
    source = SerializationContext(input_topic, MessageField.VALUE)
    sink = SerializationContext(output_topic, MessageField.VALUE)

    def work(value):
        doc = deserialize(value, source)
        return serialize(doc, sink) if keep(doc) else None

    return work


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--input", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--records", type=int, default=0, help="stop after this many")
    parser.add_argument("--serve-seconds", type=float, default=0, help="or run this long")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--fetch-wait-ms", type=int, default=500, help="fetch.wait.max.ms")
    parser.add_argument("--avro", metavar="REGISTRY_URL", default="",
                        help="values are Avro (Confluent wire format) with schemas in this registry")
    args = parser.parse_args()
    work = avro_filter(args.avro, args.input, args.output) if args.avro else json_filter

    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": f"bench-confluent-{time.time_ns()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "fetch.wait.max.ms": args.fetch_wait_ms,
    })
    producer = Producer({
        "bootstrap.servers": args.brokers,
        "enable.idempotence": True,
        "linger.ms": 5,
    })
    failures = []

    def delivered(err, _msg):
        if err is not None:
            failures.append(err)

    pool = ThreadPoolExecutor(args.threads) if args.threads else None
    consumer.subscribe([args.input])
    seen, produced, started, cpu_at_start = 0, 0, None, 0.0
    stop_at = time.monotonic() + args.serve_seconds if args.serve_seconds else None
    while (args.records and seen < args.records) or (stop_at and time.monotonic() < stop_at):
        messages = consumer.consume(BATCH, timeout=0.1)
        if not messages:
            continue
        if started is None:
            started, cpu_at_start = time.monotonic(), cpu_seconds()
        messages = [m for m in messages if m.error() is None]
        values = [m.value() for m in messages]
        outputs = list(pool.map(work, values, chunksize=50)) if pool else [work(v) for v in values]
        for message, output in zip(messages, outputs):
            if output is not None:
                produced += 1
                headers = (message.headers() or []) + [HEADER]
                while True:
                    try:
                        producer.produce(args.output, key=message.key(), value=output,
                                         headers=headers, timestamp=message.timestamp()[1],
                                         on_delivery=delivered)
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.poll(0)
        # Commit only what is delivered.
        producer.flush()
        if failures:
            raise KafkaException(failures[0])
        consumer.commit(asynchronous=False)
        seen += len(messages)
    seconds = time.monotonic() - started if started else 0.0
    result = {
        "records": seen,
        "outputs": produced,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_at_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    consumer.close()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
