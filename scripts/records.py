#!/usr/bin/env python3
"""Produce sample records to, or print records from, a Kafka topic (demo helper).

  records.py produce TOPIC [--count N] [--brokers HOST:PORT]
  records.py show TOPIC [--count N] [--brokers HOST:PORT] [--timeout SECONDS]
  records.py wait TOPIC --count N [--timeout SECONDS]   (exit 1 if fewer arrive)

Needs `confluent-kafka` from PyPI (Debian's python3-confluent-kafka is too old
for the local broker).
"""
import argparse
import json
import sys

from confluent_kafka import Consumer, Producer, TopicPartition

COUNTRIES = ["NL", "BE", "DE", "FR"]


def produce(args):
    producer = Producer({"bootstrap.servers": args.brokers, "enable.idempotence": True})
    for i in range(args.count):
        value = {"id": i, "country": COUNTRIES[i % len(COUNTRIES)], "text": f"hello weir {i}"}
        producer.produce(
            args.topic,
            key=f"user-{i % 50}".encode(),
            value=json.dumps(value).encode(),
            headers=[("source", b"demo")],
        )
        producer.poll(0)
    left = producer.flush(30)
    if left:
        sys.exit(f"records.py: {left} records not acknowledged")
    print(f"produced {args.count} records to {args.topic}")


def read(args, on_record):
    """Read all partitions from the start until `--count` records or `--timeout` idle seconds."""
    consumer = Consumer({
        "bootstrap.servers": args.brokers,
        "group.id": "weir-records-show",
        "enable.auto.commit": False,
    })
    # Read every partition from the start without joining a group.
    partitions = consumer.list_topics(args.topic, timeout=10).topics[args.topic].partitions
    consumer.assign([TopicPartition(args.topic, p, 0) for p in sorted(partitions)])
    seen = 0
    idle = 0.0
    while seen < args.count and idle < args.timeout:
        msg = consumer.poll(0.5)
        if msg is None or msg.error():
            idle += 0.5
            continue
        idle = 0.0
        seen += 1
        on_record(msg)
    consumer.close()
    return seen


def show(args):
    def print_record(msg):
        headers = {k: v.decode(errors="replace") for k, v in (msg.headers() or [])}
        key = msg.key().decode(errors="replace") if msg.key() else None
        value = msg.value().decode(errors="replace") if msg.value() else None
        print(f"{msg.topic()}/{msg.partition()}@{msg.offset()} key={key} headers={headers} value={value}")

    read(args, print_record)


def wait(args):
    seen = read(args, lambda _msg: None)
    print(f"{seen} records in {args.topic}")
    if seen < args.count:
        sys.exit(f"records.py: expected {args.count} records in {args.topic}, found {seen}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["produce", "show", "wait"])
    parser.add_argument("topic")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    {"produce": produce, "show": show, "wait": wait}[args.command](args)


if __name__ == "__main__":
    main()
