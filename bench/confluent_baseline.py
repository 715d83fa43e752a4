#!/usr/bin/env python3
"""What Weir's users run today: a confluent-kafka-python consumer that parses
each JSON record in CPython, keeps those whose `country` is `NL` (the logic of
Weir's json-filter plugins), produces them with a header, and commits a batch's
offsets only after its outputs are delivered. `--threads N` runs the JSON work
in a thread pool of N, as the usual advice for slow processing goes.

  confluent_baseline.py --input T --output T2 --records N [--threads N]
  confluent_baseline.py --input T --output T2 --serve-seconds S   (latency runs)

Prints one JSON object: records, seconds (first record to last commit),
cpu_seconds, peak_rss_mib.
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


def keep(value):
    """The json-filter logic: whether the record is kept."""
    doc = json.loads(value)
    return isinstance(doc, dict) and doc.get(FIELD) == EQUALS


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
    args = parser.parse_args()

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
    seen, started, cpu_at_start = 0, None, 0.0
    stop_at = time.monotonic() + args.serve_seconds if args.serve_seconds else None
    while (args.records and seen < args.records) or (stop_at and time.monotonic() < stop_at):
        messages = consumer.consume(BATCH, timeout=0.1)
        if not messages:
            continue
        if started is None:
            started, cpu_at_start = time.monotonic(), cpu_seconds()
        messages = [m for m in messages if m.error() is None]
        values = [m.value() for m in messages]
        kept = list(pool.map(keep, values, chunksize=50)) if pool else [keep(v) for v in values]
        for message, keep_it in zip(messages, kept):
            if keep_it:
                headers = (message.headers() or []) + [HEADER]
                while True:
                    try:
                        producer.produce(args.output, key=message.key(), value=message.value(),
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
        "seconds": seconds,
        "cpu_seconds": cpu_seconds() - cpu_at_start,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    consumer.close()
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
